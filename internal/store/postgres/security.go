package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store"
)

// RotateTenantSecret makes newHash the tenant's webhook secret hash and
// keeps the replaced hash accepted until prevUntil (none when prevUntil is
// zero), in one statement, so two rotations never interleave. ENOTFOUND if
// the tenant does not exist.
func (db *DB) RotateTenantSecret(ctx context.Context, tenantID string, newHash []byte, prevUntil time.Time) error {
	var until *time.Time
	if !prevUntil.IsZero() {
		u := prevUntil.UTC().Truncate(time.Microsecond)
		until = &u
	}
	// SET expressions read the row as it was, so prev_secret_hash gets the
	// hash being replaced.
	tag, err := db.pool.Exec(ctx, `UPDATE tenants
		SET prev_secret_hash = CASE WHEN $2::timestamptz IS NULL THEN '\x'::bytea ELSE secret_hash END,
			prev_secret_until = $2, secret_hash = $3, updated_at = $4
		WHERE id = $1`,
		tenantID, until, blob(newHash), db.stamp())
	return mustAffect(tag, err, "rotate tenant secret", fmt.Sprintf("tenant %q", tenantID), tenantID)
}

const adminTokenColumns = `id, name, scope, hash, created_at, revoked_at`

// CreateAdminToken stores tok with CreatedAt set to the store's clock.
// ECONFLICT if its id or hash exists.
func (db *DB) CreateAdminToken(ctx context.Context, tok store.AdminToken) (store.AdminToken, error) {
	tok.CreatedAt, tok.RevokedAt = db.stamp(), time.Time{}
	_, err := db.pool.Exec(ctx, `INSERT INTO admin_tokens (id, name, scope, hash, created_at, revoked_at)
		VALUES ($1, $2, $3, $4, $5, NULL)`, tok.ID, tok.Name, tok.Scope, blob(tok.Hash), tok.CreatedAt)
	if err != nil {
		return store.AdminToken{}, mapErr(err, "create admin token", fmt.Sprintf("admin token %q", tok.ID), "")
	}
	return tok, nil
}

// AdminTokenByHash returns the token whose hash is hash. ENOTFOUND if none.
func (db *DB) AdminTokenByHash(ctx context.Context, hash []byte) (store.AdminToken, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens WHERE hash = $1`, blob(hash))
	tok, err := scanAdminToken(row)
	if err != nil {
		return store.AdminToken{}, mapErr(err, "get admin token", "admin token", "")
	}
	return tok, nil
}

// ListAdminTokens returns every token, oldest first.
func (db *DB) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, _ := db.pool.Query(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens ORDER BY created_at, id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.AdminToken, error) { return scanAdminToken(r) })
	if err != nil {
		return nil, mapErr(err, "list admin tokens", "", "")
	}
	return out, nil
}

// RevokeAdminToken marks a token revoked, keeping the first revocation's
// time. ENOTFOUND if absent.
func (db *DB) RevokeAdminToken(ctx context.Context, id string) (store.AdminToken, error) {
	row := db.pool.QueryRow(ctx, `UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, $2)
		WHERE id = $1 RETURNING `+adminTokenColumns, id, db.stamp())
	tok, err := scanAdminToken(row)
	if err != nil {
		return store.AdminToken{}, mapErr(err, "revoke admin token", fmt.Sprintf("admin token %q", id), "")
	}
	return tok, nil
}

func scanAdminToken(row pgx.Row) (store.AdminToken, error) {
	var (
		tok     store.AdminToken
		revoked *time.Time
	)
	if err := row.Scan(&tok.ID, &tok.Name, &tok.Scope, &tok.Hash, &tok.CreatedAt, &revoked); err != nil {
		return store.AdminToken{}, err
	}
	tok.CreatedAt = tok.CreatedAt.UTC()
	if revoked != nil {
		tok.RevokedAt = revoked.UTC()
	}
	return tok, nil
}
