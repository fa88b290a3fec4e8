package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/callrouter/callrouter/internal/store"
)

// RotateTenantSecret makes newHash the tenant's webhook secret hash and
// keeps the replaced hash accepted until prevUntil (none when prevUntil is
// zero), in one statement, so two rotations never interleave. ENOTFOUND if
// the tenant does not exist.
func (db *DB) RotateTenantSecret(ctx context.Context, tenantID string, newHash []byte, prevUntil time.Time) error {
	keep, until := 0, int64(0)
	if !prevUntil.IsZero() {
		keep, until = 1, micros(prevUntil.UTC())
	}
	// SET expressions read the row as it was, so prev_secret_hash gets the
	// hash being replaced.
	res, err := db.w.ExecContext(ctx, `UPDATE tenants
		SET prev_secret_hash = CASE WHEN ? THEN secret_hash ELSE x'' END,
			prev_secret_until = ?, secret_hash = ?, updated_at = ?
		WHERE id = ?`,
		keep, until, blob(newHash), micros(db.stamp()), tenantID)
	return mustAffect(res, err, "rotate tenant secret", fmt.Sprintf("tenant %q", tenantID), tenantID)
}

const adminTokenColumns = `id, name, scope, hash, created_at, revoked_at`

// CreateAdminToken stores tok with CreatedAt set to the store's clock.
// ECONFLICT if its id or hash exists.
func (db *DB) CreateAdminToken(ctx context.Context, tok store.AdminToken) (store.AdminToken, error) {
	tok.CreatedAt, tok.RevokedAt = db.stamp(), time.Time{}
	_, err := db.w.ExecContext(ctx, `INSERT INTO admin_tokens (id, name, scope, hash, created_at, revoked_at)
		VALUES (?, ?, ?, ?, ?, NULL)`, tok.ID, tok.Name, tok.Scope, blob(tok.Hash), micros(tok.CreatedAt))
	if err != nil {
		return store.AdminToken{}, mapErr(err, "create admin token", fmt.Sprintf("admin token %q", tok.ID), "")
	}
	return tok, nil
}

// AdminTokenByHash returns the token whose hash is hash. ENOTFOUND if none.
func (db *DB) AdminTokenByHash(ctx context.Context, hash []byte) (store.AdminToken, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens WHERE hash = ?`, blob(hash))
	tok, err := scanAdminToken(row)
	if err != nil {
		return store.AdminToken{}, mapErr(err, "get admin token", "admin token", "")
	}
	return tok, nil
}

// ListAdminTokens returns every token, oldest first.
func (db *DB) ListAdminTokens(ctx context.Context) ([]store.AdminToken, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+adminTokenColumns+` FROM admin_tokens ORDER BY created_at, id`)
	if err != nil {
		return nil, mapErr(err, "list admin tokens", "", "")
	}
	defer rows.Close()
	var out []store.AdminToken
	for rows.Next() {
		tok, err := scanAdminToken(rows)
		if err != nil {
			return nil, mapErr(err, "list admin tokens", "", "")
		}
		out = append(out, tok)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list admin tokens", "", "")
	}
	return out, nil
}

// RevokeAdminToken marks a token revoked, keeping the first revocation's
// time. ENOTFOUND if absent.
func (db *DB) RevokeAdminToken(ctx context.Context, id string) (store.AdminToken, error) {
	row := db.w.QueryRowContext(ctx, `UPDATE admin_tokens SET revoked_at = coalesce(revoked_at, ?)
		WHERE id = ? RETURNING `+adminTokenColumns, micros(db.stamp()), id)
	tok, err := scanAdminToken(row)
	if err != nil {
		return store.AdminToken{}, mapErr(err, "revoke admin token", fmt.Sprintf("admin token %q", id), "")
	}
	return tok, nil
}

func scanAdminToken(s scanner) (store.AdminToken, error) {
	var (
		tok     store.AdminToken
		created int64
		revoked sql.NullInt64
	)
	if err := s.Scan(&tok.ID, &tok.Name, &tok.Scope, &tok.Hash, &created, &revoked); err != nil {
		return store.AdminToken{}, err
	}
	tok.CreatedAt = fromMicros(created)
	if revoked.Valid {
		tok.RevokedAt = fromMicros(revoked.Int64)
	}
	return tok, nil
}
