package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// TakeRateSlot marks a free slot of account busy for hold and returns it;
// ok is false when all slots are busy, and wait then says when the first
// one frees. The slots are made on first use.
// Concurrent takers skip each other's locked rows, so two instances never
// take one slot. It returns the database's error.
func (db *DB) TakeRateSlot(ctx context.Context, account string, slots int, hold time.Duration) (int, bool, time.Duration, error) {
	for range 2 {
		var slot int
		err := db.pool.QueryRow(ctx, `
UPDATE crm_rate_slots SET busy_until = clock_timestamp() + $3::interval
WHERE account = $1 AND slot = (
    SELECT slot FROM crm_rate_slots
    WHERE account = $1 AND slot < $2 AND busy_until <= clock_timestamp()
    ORDER BY busy_until LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING slot`, account, slots, hold).Scan(&slot)
		if err == nil {
			return slot, true, 0, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, false, 0, fmt.Errorf("postgres: take rate slot of %s: %w", account, err)
		}
		// No free slot, or none made yet: make the account's slots (a no-op
		// when they exist) and ask once more.
		tag, err := db.pool.Exec(ctx, `INSERT INTO crm_rate_slots (account, slot)
SELECT $1, g FROM generate_series(0, $2 - 1) AS g ON CONFLICT DO NOTHING`, account, slots)
		if err != nil {
			return 0, false, 0, fmt.Errorf("postgres: make rate slots of %s: %w", account, err)
		}
		if tag.RowsAffected() == 0 {
			break
		}
	}
	var wait time.Duration
	if err := db.pool.QueryRow(ctx, `SELECT coalesce(greatest(min(busy_until) - clock_timestamp(), '0'::interval), '0'::interval)
FROM crm_rate_slots WHERE account = $1 AND slot < $2`, account, slots).Scan(&wait); err != nil {
		return 0, false, 0, fmt.Errorf("postgres: rate slots of %s: %w", account, err)
	}
	return 0, false, wait, nil
}

// ReleaseRateSlot keeps the slot busy for window from now and frees it
// then. It returns the database's error.
func (db *DB) ReleaseRateSlot(ctx context.Context, account string, slot int, window time.Duration) error {
	if _, err := db.pool.Exec(ctx, `UPDATE crm_rate_slots SET busy_until = clock_timestamp() + $3::interval
WHERE account = $1 AND slot = $2`, account, slot, window); err != nil {
		return fmt.Errorf("postgres: release rate slot of %s: %w", account, err)
	}
	return nil
}
