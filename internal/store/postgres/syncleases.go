package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeaseSync takes or renews a tenant's sync lease for holder unless another
// holder's lease has not run out.
func (db *DB) LeaseSync(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	var got string
	err := db.pool.QueryRow(ctx, `INSERT INTO sync_leases (tenant_id, holder, until) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET holder = excluded.holder, until = excluded.until
		WHERE sync_leases.holder = excluded.holder OR sync_leases.until <= $4
		RETURNING holder`, tenantID, holder, now.Add(ttl), now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	return err == nil, mapErr(err, "lease sync", "", tenantID)
}

// ReleaseSync ends holder's sync lease.
func (db *DB) ReleaseSync(ctx context.Context, tenantID, holder string) error {
	_, err := db.pool.Exec(ctx, `DELETE FROM sync_leases WHERE tenant_id = $1 AND holder = $2`, tenantID, holder)
	return mapErr(err, "release sync", "", tenantID)
}
