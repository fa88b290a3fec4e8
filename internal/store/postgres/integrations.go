package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

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
	_, err := db.pool.Exec(ctx, `INSERT INTO integrations (`+integrationColumns+`)
		VALUES ($1, $2, $3, $4, $5, 1, $6, '', $7, '', 0, NULL, NULL, NULL, $8, NULL, NULL)
		ON CONFLICT (tenant_id) DO UPDATE SET full_from = NULL,
			crm = excluded.crm, base_url = excluded.base_url, creds = excluded.creds,
			token = excluded.token, token_version = integrations.token_version + 1,
			state = excluded.state, last_error = excluded.last_error,
			phase = excluded.phase, cursor = excluded.cursor, synced = excluded.synced,
			last_sync_at = excluded.last_sync_at, success_at = excluded.success_at,
			error_at = excluded.error_at, updated_at = excluded.updated_at`,
		in.TenantID, in.CRM, in.BaseURL, blob(in.Creds), nullBlob(in.Token), in.State,
		store.PhaseFull, db.stamp())
	return mapErr(err, "put integration", "", in.TenantID)
}

// Integration returns a tenant's integration. ENOTFOUND if none.
func (db *DB) Integration(ctx context.Context, tenantID string) (store.Integration, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations
		WHERE tenant_id = $1`, tenantID)
	in, err := scanIntegration(row)
	if err != nil {
		return store.Integration{}, mapErr(err, "get integration", integrationOf(tenantID), tenantID)
	}
	return in, nil
}

// ListIntegrations returns every integration ordered by tenant.
func (db *DB) ListIntegrations(ctx context.Context) ([]store.Integration, error) {
	rows, _ := db.pool.Query(ctx, `SELECT `+integrationColumns+` FROM integrations ORDER BY tenant_id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.Integration, error) { return scanIntegration(r) })
	if err != nil {
		return nil, mapErr(err, "list integrations", "", "")
	}
	return out, nil
}

func scanIntegration(row pgx.Row) (store.Integration, error) {
	var (
		in                      store.Integration
		lastSync, success, fail *time.Time
		fullFrom, reconciled    *time.Time
	)
	if err := row.Scan(&in.TenantID, &in.CRM, &in.BaseURL, &in.Creds, &in.Token, &in.TokenVersion,
		&in.State, &in.LastError, &in.Phase, &in.Cursor, &in.Synced,
		&lastSync, &success, &fail, &in.UpdatedAt, &fullFrom, &reconciled); err != nil {
		return store.Integration{}, err
	}
	if len(in.Creds) == 0 {
		in.Creds = nil
	}
	if len(in.Token) == 0 {
		in.Token = nil
	}
	in.LastSyncAt, in.SuccessAt, in.ErrorAt = utcOrZero(lastSync), utcOrZero(success), utcOrZero(fail)
	in.UpdatedAt = in.UpdatedAt.UTC()
	in.FullFrom, in.ReconciledAt = utcOrZero(fullFrom), utcOrZero(reconciled)
	return in, nil
}

// SetIntegrationState sets the state and last error and stamps UpdatedAt;
// with restart the sync also starts over with a full sync, no cursor,
// nothing synced and no FullFrom. The sync times are kept. ENOTFOUND if the tenant has no
// integration.
func (db *DB) SetIntegrationState(ctx context.Context, tenantID, state, lastError string, restart bool) error {
	q := `UPDATE integrations SET state = $2, last_error = $3, updated_at = $4 WHERE tenant_id = $1`
	args := []any{tenantID, state, lastError, db.stamp()}
	if restart {
		q = `UPDATE integrations SET state = $2, last_error = $3, updated_at = $4,
			phase = $5, cursor = '', synced = 0, full_from = NULL WHERE tenant_id = $1`
		args = append(args, store.PhaseFull)
	}
	tag, err := db.pool.Exec(ctx, q, args...)
	return mustAffect(tag, err, "set integration state", integrationOf(tenantID), tenantID)
}

// SaveSyncProgress sets the phase, cursor and synced count and stamps
// LastSyncAt. p.Success also stamps SuccessAt and clears LastError;
// p.Error also stamps ErrorAt and sets LastError (so with both, LastError
// is p.Error). UpdatedAt is kept. ENOTFOUND if the tenant has no
// integration.
func (db *DB) SaveSyncProgress(ctx context.Context, tenantID string, p store.SyncProgress) error {
	now := db.stamp()
	var (
		successAt, errorAt *time.Time // nil keeps the stored value
		lastError          *string
	)
	if p.Success {
		successAt, lastError = &now, new("")
	}
	if p.Error != "" {
		errorAt, lastError = &now, &p.Error
	}
	tag, err := db.pool.Exec(ctx, `UPDATE integrations SET
			phase = $2, cursor = $3, synced = $4, last_sync_at = $5,
			success_at = coalesce($6, success_at), error_at = coalesce($7, error_at),
			last_error = coalesce($8, last_error)
		WHERE tenant_id = $1`,
		tenantID, p.Phase, p.Cursor, p.Synced, now, successAt, errorAt, lastError)
	return mustAffect(tag, err, "save sync progress", integrationOf(tenantID), tenantID)
}

// SaveIntegrationToken stores token (nil or empty stores none) if the
// stored TokenVersion is still version, and returns the new version, one
// more. UpdatedAt is kept. ECONFLICT if the version moved; ENOTFOUND if
// the tenant has no integration.
func (db *DB) SaveIntegrationToken(ctx context.Context, tenantID string, token []byte, version int64) (int64, error) {
	var next int64
	// A concurrent saver of the same version waits for this row lock, then
	// finds the version moved and updates nothing.
	err := db.pool.QueryRow(ctx, `UPDATE integrations SET token = $2, token_version = token_version + 1
		WHERE tenant_id = $1 AND token_version = $3 RETURNING token_version`,
		tenantID, nullBlob(token), version).Scan(&next)
	if err == nil {
		return next, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return 0, mapErr(err, "save integration token", "", tenantID)
	}
	// No row matched: either there is none or its version moved.
	var one int
	if err := db.pool.QueryRow(ctx, `SELECT 1 FROM integrations WHERE tenant_id = $1`, tenantID).Scan(&one); err != nil {
		return 0, mapErr(err, "save integration token", integrationOf(tenantID), tenantID)
	}
	return 0, domain.Errorf(domain.ECONFLICT, "token of tenant %q: version %d is stale, another writer saved first", tenantID, version)
}

// StartFullSync records the store's clock as the integration's FullFrom.
// ENOTFOUND if the tenant has no integration.
func (db *DB) StartFullSync(ctx context.Context, tenantID string) error {
	tag, err := db.pool.Exec(ctx, `UPDATE integrations SET full_from = $2 WHERE tenant_id = $1`, tenantID, db.stamp())
	return mustAffect(tag, err, "start full sync", integrationOf(tenantID), tenantID)
}

// sweepSQL removes the rows of a tenant not written since a time and
// returns their distinct suffixes in byte order; rows from before
// migration 0007 have no seen_at and go too.
const sweepSQL = `WITH gone AS (
		DELETE FROM phone_index WHERE tenant_id = $1 AND (seen_at IS NULL OR seen_at < $2) RETURNING suffix
	)
	SELECT DISTINCT suffix COLLATE "C" FROM gone ORDER BY 1`

// FinishFullSync removes the tenant's index rows not written since
// FullFrom less store.SweepMargin, clears FullFrom and stamps ReconciledAt,
// in one transaction, and returns the removed rows' distinct suffixes,
// sorted. Without FullFrom it does nothing. ENOTFOUND if the tenant has no
// integration.
func (db *DB) FinishFullSync(ctx context.Context, tenantID string) ([]string, error) {
	var removed []string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var from *time.Time
		// FOR UPDATE: a PutIntegration racing this end waits, and its new
		// full sync is not swept by this one's start.
		if err := tx.QueryRow(ctx, `SELECT full_from FROM integrations WHERE tenant_id = $1 FOR UPDATE`, tenantID).Scan(&from); err != nil {
			return err
		}
		if from == nil {
			return nil
		}
		gone, _ := tx.Query(ctx, sweepSQL, tenantID, from.Add(-store.SweepMargin))
		var err error
		if removed, err = pgx.CollectRows(gone, pgx.RowTo[string]); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE integrations SET full_from = NULL, reconciled_at = $2 WHERE tenant_id = $1`, tenantID, db.stamp())
		return err
	})
	if err != nil {
		return nil, mapErr(err, "finish full sync", integrationOf(tenantID), tenantID)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, nil
}

func integrationOf(tenantID string) string { return fmt.Sprintf("integration of tenant %q", tenantID) }

// nullBlob encodes an empty token as NULL, so both backends return nil
// for it.
func nullBlob(b []byte) []byte {
	if len(b) == 0 {
		return nil // pgx encodes a nil []byte as NULL
	}
	return b
}

func utcOrZero(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}
