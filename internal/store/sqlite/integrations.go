package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

const integrationColumns = `tenant_id, crm, base_url, creds, token, token_version, state, last_error,
	phase, cursor, synced, last_sync_at, success_at, error_at, updated_at, full_from, reconciled_at`

// PutIntegration inserts or replaces a tenant's integration: CRM, base
// URL, creds, token (nil or empty: none) and state come from in, the rest
// starts over: a new full sync with no cursor, nothing synced, no last
// error, no sync times, no FullFrom, TokenVersion 1, and UpdatedAt from
// the store's clock; ReconciledAt is kept. ENOTFOUND if the tenant does not exist.
func (db *DB) PutIntegration(ctx context.Context, in store.Integration) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO integrations (`+integrationColumns+`)
		VALUES (?, ?, ?, ?, ?, 1, ?, '', ?, '', 0, NULL, NULL, NULL, ?, NULL, NULL)
		ON CONFLICT (tenant_id) DO UPDATE SET full_from = NULL,
			crm = excluded.crm, base_url = excluded.base_url, creds = excluded.creds,
			token = excluded.token, token_version = integrations.token_version + 1,
			state = excluded.state, last_error = excluded.last_error,
			phase = excluded.phase, cursor = excluded.cursor, synced = excluded.synced,
			last_sync_at = excluded.last_sync_at, success_at = excluded.success_at,
			error_at = excluded.error_at, updated_at = excluded.updated_at`,
		in.TenantID, in.CRM, in.BaseURL, blob(in.Creds), nullBlob(in.Token), in.State,
		store.PhaseFull, micros(db.stamp()))
	return mapErr(err, "put integration", "", in.TenantID)
}

// Integration returns a tenant's integration. ENOTFOUND if none.
func (db *DB) Integration(ctx context.Context, tenantID string) (store.Integration, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+integrationColumns+` FROM integrations
		WHERE tenant_id = ?`, tenantID)
	in, err := scanIntegration(row)
	if err != nil {
		return store.Integration{}, mapErr(err, "get integration", integrationOf(tenantID), tenantID)
	}
	return in, nil
}

// ListIntegrations returns every integration ordered by tenant.
func (db *DB) ListIntegrations(ctx context.Context) ([]store.Integration, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+integrationColumns+` FROM integrations ORDER BY tenant_id`)
	if err != nil {
		return nil, mapErr(err, "list integrations", "", "")
	}
	defer rows.Close()
	var out []store.Integration
	for rows.Next() {
		in, err := scanIntegration(rows)
		if err != nil {
			return nil, mapErr(err, "list integrations", "", "")
		}
		out = append(out, in)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list integrations", "", "")
	}
	return out, nil
}

func scanIntegration(s scanner) (store.Integration, error) {
	var (
		in                      store.Integration
		lastSync, success, fail sql.NullInt64
		fullFrom, reconciled    sql.NullInt64
		updated                 int64
	)
	if err := s.Scan(&in.TenantID, &in.CRM, &in.BaseURL, &in.Creds, &in.Token, &in.TokenVersion,
		&in.State, &in.LastError, &in.Phase, &in.Cursor, &in.Synced,
		&lastSync, &success, &fail, &updated, &fullFrom, &reconciled); err != nil {
		return store.Integration{}, err
	}
	if len(in.Creds) == 0 {
		in.Creds = nil
	}
	in.LastSyncAt, in.SuccessAt, in.ErrorAt = fromNullMicros(lastSync), fromNullMicros(success), fromNullMicros(fail)
	in.UpdatedAt = fromMicros(updated)
	in.FullFrom, in.ReconciledAt = fromNullMicros(fullFrom), fromNullMicros(reconciled)
	return in, nil
}

// SetIntegrationState sets the state and last error and stamps UpdatedAt;
// with restart the sync also starts over with a full sync, no cursor,
// nothing synced and no FullFrom. The sync times are kept. ENOTFOUND if the tenant has no
// integration.
func (db *DB) SetIntegrationState(ctx context.Context, tenantID, state, lastError string, restart bool) error {
	q := `UPDATE integrations SET state = ?, last_error = ?, updated_at = ? WHERE tenant_id = ?`
	args := []any{state, lastError, micros(db.stamp()), tenantID}
	if restart {
		q = `UPDATE integrations SET state = ?, last_error = ?, updated_at = ?,
			phase = ?, cursor = '', synced = 0, full_from = NULL WHERE tenant_id = ?`
		args = []any{state, lastError, micros(db.stamp()), store.PhaseFull, tenantID}
	}
	res, err := db.w.ExecContext(ctx, q, args...)
	return mustAffect(res, err, "set integration state", integrationOf(tenantID), tenantID)
}

// SaveSyncProgress sets the phase, cursor and synced count and stamps
// LastSyncAt. p.Success also stamps SuccessAt and clears LastError;
// p.Error also stamps ErrorAt and sets LastError (so with both, LastError
// is p.Error). UpdatedAt is kept. ENOTFOUND if the tenant has no
// integration.
func (db *DB) SaveSyncProgress(ctx context.Context, tenantID string, p store.SyncProgress) error {
	now := micros(db.stamp())
	var successAt, errorAt, lastError any // nil keeps the stored value
	if p.Success {
		successAt, lastError = now, ""
	}
	if p.Error != "" {
		errorAt, lastError = now, p.Error
	}
	res, err := db.w.ExecContext(ctx, `UPDATE integrations SET
			phase = ?, cursor = ?, synced = ?, last_sync_at = ?,
			success_at = coalesce(?, success_at), error_at = coalesce(?, error_at),
			last_error = coalesce(?, last_error)
		WHERE tenant_id = ?`,
		p.Phase, p.Cursor, p.Synced, now, successAt, errorAt, lastError, tenantID)
	return mustAffect(res, err, "save sync progress", integrationOf(tenantID), tenantID)
}

// SaveIntegrationToken stores token (nil or empty stores none) if the stored
// TokenVersion is still version, and returns the new version, one more.
// UpdatedAt is kept. ECONFLICT if the version moved; ENOTFOUND if the
// tenant has no integration.
func (db *DB) SaveIntegrationToken(ctx context.Context, tenantID string, token []byte, version int64) (int64, error) {
	var next int64
	err := db.w.QueryRowContext(ctx, `UPDATE integrations SET token = ?, token_version = token_version + 1
		WHERE tenant_id = ? AND token_version = ? RETURNING token_version`,
		nullBlob(token), tenantID, version).Scan(&next)
	if err == nil {
		return next, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, mapErr(err, "save integration token", "", tenantID)
	}
	// No row matched: either there is none or its version moved.
	var one int
	if err := db.r.QueryRowContext(ctx, `SELECT 1 FROM integrations WHERE tenant_id = ?`, tenantID).Scan(&one); err != nil {
		return 0, mapErr(err, "save integration token", integrationOf(tenantID), tenantID)
	}
	return 0, domain.Errorf(domain.ECONFLICT, "token of tenant %q: version %d is stale, another writer saved first", tenantID, version)
}

// StartFullSync records the store's clock as the integration's FullFrom.
// ENOTFOUND if the tenant has no integration.
func (db *DB) StartFullSync(ctx context.Context, tenantID string) error {
	res, err := db.w.ExecContext(ctx, `UPDATE integrations SET full_from = ? WHERE tenant_id = ?`, micros(db.stamp()), tenantID)
	return mustAffect(res, err, "start full sync", integrationOf(tenantID), tenantID)
}

// sweepSQL removes the rows of a tenant not written since a time; rows
// from before migration 0007 have no seen_at and go too.
const sweepSQL = `DELETE FROM phone_index WHERE tenant_id = ? AND (seen_at IS NULL OR seen_at < ?) RETURNING suffix`

// FinishFullSync removes the tenant's index rows not written since
// FullFrom less store.SweepMargin, clears FullFrom and stamps ReconciledAt,
// in one transaction, and returns the removed rows' distinct suffixes,
// sorted. Without FullFrom it does nothing. ENOTFOUND if the tenant has no
// integration.
func (db *DB) FinishFullSync(ctx context.Context, tenantID string) ([]string, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, mapErr(err, "finish full sync", "", tenantID)
	}
	defer tx.Rollback()
	var from sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT full_from FROM integrations WHERE tenant_id = ?`, tenantID).Scan(&from); err != nil {
		return nil, mapErr(err, "finish full sync", integrationOf(tenantID), tenantID)
	}
	if !from.Valid {
		return nil, nil
	}
	before := micros(fromMicros(from.Int64).Add(-store.SweepMargin))
	rows, err := tx.QueryContext(ctx, sweepSQL, tenantID, before)
	if err != nil {
		return nil, mapErr(err, "finish full sync: sweep", "", tenantID)
	}
	var removed []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, mapErr(err, "finish full sync: sweep", "", tenantID)
		}
		removed = append(removed, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "finish full sync: sweep", "", tenantID)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE integrations SET full_from = NULL, reconciled_at = ? WHERE tenant_id = ?`,
		micros(db.stamp()), tenantID); err != nil {
		return nil, mapErr(err, "finish full sync", "", tenantID)
	}
	if err := tx.Commit(); err != nil {
		return nil, mapErr(err, "finish full sync: commit", "", tenantID)
	}
	return sortedSet(removed), nil
}

func integrationOf(tenantID string) string { return fmt.Sprintf("integration of tenant %q", tenantID) }

// nullBlob binds an empty token as NULL, so it comes back nil: the driver
// reads an empty blob as nil anyway.
func nullBlob(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func fromNullMicros(us sql.NullInt64) time.Time {
	if !us.Valid {
		return time.Time{}
	}
	return fromMicros(us.Int64)
}
