package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/callrouter/callrouter/internal/store"
)

var _ store.ChangeLog = (*DB)(nil)

// LeaseSync takes or renews a tenant's sync lease for holder unless another
// holder's lease has not run out.
func (db *DB) LeaseSync(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	var got string
	err := db.w.QueryRowContext(ctx, `INSERT INTO sync_leases (tenant_id, holder, until) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE sync_leases.holder = excluded.holder OR sync_leases.until <= ?
		RETURNING holder`, tenantID, holder, micros(now.Add(ttl)), micros(now)).Scan(&got)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapErr(err, "lease sync", "", tenantID)
}

// ReleaseSync ends holder's sync lease.
func (db *DB) ReleaseSync(ctx context.Context, tenantID, holder string) error {
	_, err := db.w.ExecContext(ctx, `DELETE FROM sync_leases WHERE tenant_id = ? AND holder = ?`, tenantID, holder)
	return mapErr(err, "release sync", "", tenantID)
}

// AppendChanges appends payloads to the change log in one transaction.
func (db *DB) AppendChanges(ctx context.Context, payloads []string) error {
	if len(payloads) == 0 {
		return nil
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: append changes: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	at := micros(db.stamp())
	for _, p := range payloads {
		if _, err := tx.ExecContext(ctx, `INSERT INTO change_log (payload, at) VALUES (?, ?)`, p, at); err != nil {
			return fmt.Errorf("sqlite: append changes: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: append changes: %w", err)
	}
	return nil
}

// ChangesAfter returns up to limit change-log entries after seq after.
func (db *DB) ChangesAfter(ctx context.Context, after int64, limit int) ([]store.LoggedChange, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT seq, payload FROM change_log WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: read changes: %w", err)
	}
	defer rows.Close()
	var out []store.LoggedChange
	for rows.Next() {
		var c store.LoggedChange
		if err := rows.Scan(&c.Seq, &c.Payload); err != nil {
			return nil, fmt.Errorf("sqlite: read changes: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: read changes: %w", err)
	}
	return out, nil
}

// LastChange returns the newest seq the change log has handed out, trimmed
// entries included.
func (db *DB) LastChange(ctx context.Context) (int64, error) {
	// sqlite_sequence keeps the high-water mark of AUTOINCREMENT even when
	// every entry has been trimmed.
	var seq int64
	err := db.r.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'change_log'`).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite: last change: %w", err)
	}
	return seq, nil
}

// TrimChanges removes change-log entries appended before before.
func (db *DB) TrimChanges(ctx context.Context, before time.Time) error {
	// The log holds an entry per index row written (migration 0017), so a
	// large import leaves a million: they go a batch at a time from the
	// oldest, each a short write that lets ingest's commits in between,
	// and a batch not all old enough ends the trim.
	for {
		res, err := db.w.ExecContext(ctx, `DELETE FROM change_log WHERE seq IN (
			SELECT seq FROM change_log ORDER BY seq LIMIT ?) AND at < ?`, trimBatch, micros(before))
		if err != nil {
			return fmt.Errorf("sqlite: trim changes: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n < trimBatch {
			return nil
		}
	}
}

// trimBatch bounds the change-log entries one trim statement deletes.
const trimBatch = 5000
