package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"

	"fmt"
	"slices"
	"time"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

const ringostatColumns = `tenant_id, base_url, project_id, auth_key, state, last_error, error_at,
	push_cursor, push_done, pushed, push_error, push_at, reconciled_until, recovered, reconcile_error,
	reconcile_at, updated_at`

// PutRingostat inserts or replaces a tenant's Ringostat connection; the
// state becomes active and the push and counters start over. ENOTFOUND if
// the tenant does not exist.
func (db *DB) PutRingostat(ctx context.Context, c store.RingostatConn) error {
	var until any
	if !c.ReconciledUntil.IsZero() {
		until = micros(c.ReconciledUntil)
	}
	_, err := db.w.ExecContext(ctx, `INSERT INTO ringostat (`+ringostatColumns+`, lease_holder, lease_until)
		VALUES (?, ?, ?, ?, ?, '', NULL, '', 0, 0, '', NULL, ?, 0, '', NULL, ?, '', 0)
		ON CONFLICT (tenant_id) DO UPDATE SET
			base_url = excluded.base_url, project_id = excluded.project_id, auth_key = excluded.auth_key,
			state = excluded.state, last_error = '', error_at = NULL, push_cursor = '', push_done = 0,
			pushed = 0, push_error = '', push_at = NULL, reconciled_until = excluded.reconciled_until,
			recovered = 0, reconcile_error = '', reconcile_at = NULL, updated_at = excluded.updated_at`,
		c.TenantID, c.BaseURL, c.ProjectID, blob(c.AuthKey), store.RingostatActive, until, micros(db.stamp()))
	return mapErr(err, "put ringostat", "", c.TenantID)
}

// RingostatConn returns a tenant's Ringostat connection. ENOTFOUND if none.
func (db *DB) RingostatConn(ctx context.Context, tenantID string) (store.RingostatConn, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+ringostatColumns+` FROM ringostat WHERE tenant_id = ?`, tenantID)
	c, err := scanRingostat(row)
	if err != nil {
		return store.RingostatConn{}, mapErr(err, "get ringostat", ringostatOf(tenantID), tenantID)
	}
	return c, nil
}

// ListRingostat returns every Ringostat connection ordered by tenant.
func (db *DB) ListRingostat(ctx context.Context) ([]store.RingostatConn, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+ringostatColumns+` FROM ringostat ORDER BY tenant_id`)
	if err != nil {
		return nil, mapErr(err, "list ringostat", "", "")
	}
	defer rows.Close()
	var out []store.RingostatConn
	for rows.Next() {
		c, err := scanRingostat(rows)
		if err != nil {
			return nil, mapErr(err, "list ringostat", "", "")
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list ringostat", "", "")
	}
	return out, nil
}

func scanRingostat(s scanner) (store.RingostatConn, error) {
	var (
		c                                   store.RingostatConn
		errorAt, pushAt, until, reconcileAt sql.NullInt64
		updated                             int64
	)
	if err := s.Scan(&c.TenantID, &c.BaseURL, &c.ProjectID, &c.AuthKey, &c.State, &c.LastError, &errorAt,
		&c.PushCursor, &c.PushDone, &c.Pushed, &c.PushError, &pushAt, &until, &c.Recovered, &c.ReconcileError,
		&reconcileAt, &updated); err != nil {
		return store.RingostatConn{}, err
	}
	if len(c.AuthKey) == 0 {
		c.AuthKey = nil
	}
	c.ErrorAt, c.PushAt = fromNullMicros(errorAt), fromNullMicros(pushAt)
	c.ReconciledUntil, c.ReconcileAt = fromNullMicros(until), fromNullMicros(reconcileAt)
	c.UpdatedAt = fromMicros(updated)
	return c, nil
}

// DeleteRingostat removes a tenant's Ringostat connection. ENOTFOUND if none.
func (db *DB) DeleteRingostat(ctx context.Context, tenantID string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM ringostat WHERE tenant_id = ?`, tenantID)
	return mustAffect(res, err, "delete ringostat", ringostatOf(tenantID), tenantID)
}

// SetRingostatState sets the state and last error, stamps UpdatedAt, and
// ErrorAt with an error. ENOTFOUND if the tenant has no connection.
func (db *DB) SetRingostatState(ctx context.Context, tenantID, state, lastError string) error {
	now := micros(db.stamp())
	var errorAt any
	if lastError != "" {
		errorAt = now
	}
	res, err := db.w.ExecContext(ctx, `UPDATE ringostat SET state = ?, last_error = ?, updated_at = ?,
		error_at = coalesce(?, error_at) WHERE tenant_id = ?`, state, lastError, now, errorAt, tenantID)
	return mustAffect(res, err, "set ringostat state", ringostatOf(tenantID), tenantID)
}

// SaveRingostatPush records a push step and stamps PushAt. ENOTFOUND.
func (db *DB) SaveRingostatPush(ctx context.Context, tenantID string, p store.RingostatPush) error {
	q := `UPDATE ringostat SET push_cursor = ?, push_done = ?, pushed = pushed + ?, push_error = ?, push_at = ?
		WHERE tenant_id = ?`
	args := []any{p.Cursor, p.Done, p.Pushed, p.Error, micros(db.stamp()), tenantID}
	if p.Keep {
		q = `UPDATE ringostat SET pushed = pushed + ?, push_error = ?, push_at = ? WHERE tenant_id = ?`
		args = args[2:]
	}
	res, err := db.w.ExecContext(ctx, q, args...)
	return mustAffect(res, err, "save ringostat push", ringostatOf(tenantID), tenantID)
}

// SaveRingostatReconcile records a reconciliation pass and stamps
// ReconcileAt. ENOTFOUND.
func (db *DB) SaveRingostatReconcile(ctx context.Context, tenantID string, r store.RingostatReconcile) error {
	var until any
	if !r.Until.IsZero() {
		until = micros(r.Until)
	}
	res, err := db.w.ExecContext(ctx, `UPDATE ringostat SET reconciled_until = coalesce(?, reconciled_until),
		recovered = recovered + ?, reconcile_error = ?, reconcile_at = ? WHERE tenant_id = ?`,
		until, r.Recovered, r.Error, micros(db.stamp()), tenantID)
	return mustAffect(res, err, "save ringostat reconcile", ringostatOf(tenantID), tenantID)
}

// LeaseRingostat takes or renews holder's lease on a tenant's connection
// unless another holder's has not run out. ENOTFOUND without a connection.
func (db *DB) LeaseRingostat(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	res, err := db.w.ExecContext(ctx, `UPDATE ringostat SET lease_holder = ?, lease_until = ?
		WHERE tenant_id = ? AND (lease_holder = ? OR lease_until <= ?)`,
		holder, micros(now.Add(ttl)), tenantID, holder, micros(now))
	if err != nil {
		return false, mapErr(err, "lease ringostat", "", tenantID)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err == nil, mapErr(err, "lease ringostat", "", tenantID)
	}
	var one int
	err = db.r.QueryRowContext(ctx, `SELECT 1 FROM ringostat WHERE tenant_id = ?`, tenantID).Scan(&one)
	return false, mapErr(err, "lease ringostat", ringostatOf(tenantID), tenantID)
}

// IndexEntities returns the index rows of the first limit entities of a
// tenant after after, ordered by kind, entity id, phone.
func (db *DB) IndexEntities(ctx context.Context, tenantID string, after store.EntityRef, limit int) ([]domain.IndexEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, err := db.r.QueryContext(ctx, `SELECT phone, suffix, kind, entity_id, open, owner_id, name, updated_at
		FROM phone_index WHERE tenant_id = ? AND (kind, entity_id) IN (
			SELECT DISTINCT kind, entity_id FROM phone_index
			WHERE tenant_id = ? AND (kind, entity_id) > (?, ?) ORDER BY kind, entity_id LIMIT ?)
		ORDER BY kind, entity_id, phone`, tenantID, tenantID, string(after.Kind), after.ID, limit)
	if err != nil {
		return nil, mapErr(err, "index entities", "", tenantID)
	}
	return collectEntityRows(rows, tenantID, "index entities")
}

// EntityIndex returns the index rows of the named entities of a tenant,
// ordered by kind, entity id, phone.
func (db *DB) EntityIndex(ctx context.Context, tenantID string, refs []store.EntityRef) ([]domain.IndexEntry, error) {
	var out []domain.IndexEntry
	for _, r := range uniqueRefs(refs) {
		rows, err := db.r.QueryContext(ctx, `SELECT phone, suffix, kind, entity_id, open, owner_id, name, updated_at
			FROM phone_index WHERE tenant_id = ? AND kind = ? AND entity_id = ? ORDER BY phone`,
			tenantID, string(r.Kind), r.ID)
		if err != nil {
			return nil, mapErr(err, "entity index", "", tenantID)
		}
		got, err := collectEntityRows(rows, tenantID, "entity index")
		if err != nil {
			return nil, err
		}
		out = append(out, got...)
	}
	return out, nil
}

// uniqueRefs returns refs sorted by kind and id, each once.
func uniqueRefs(refs []store.EntityRef) []store.EntityRef {
	out := slices.Clone(refs)
	slices.SortFunc(out, func(a, b store.EntityRef) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	return slices.Compact(out)
}

func collectEntityRows(rows *sql.Rows, tenantID, op string) ([]domain.IndexEntry, error) {
	defer rows.Close()
	var out []domain.IndexEntry
	for rows.Next() {
		e := domain.IndexEntry{TenantID: tenantID}
		var (
			kind    string
			updated int64
		)
		if err := rows.Scan(&e.Phone, &e.Suffix, &kind, &e.EntityID, &e.Open, &e.OwnerID, &e.Name, &updated); err != nil {
			return nil, mapErr(err, op, "", tenantID)
		}
		e.Kind = domain.ParseKind(kind)
		e.UpdatedAt = fromMicros(updated)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, op, "", tenantID)
	}
	return out, nil
}

func ringostatOf(tenantID string) string {
	return fmt.Sprintf("ringostat connection of tenant %q", tenantID)
}

// SetEventField sets one field of a stored event in one transaction on the
// single writer. ENOTFOUND if the event does not exist.
func (db *DB) SetEventField(ctx context.Context, tenantID, eventID, key, value string) error {
	_, err := db.setEventField(ctx, tenantID, eventID, key, value, false)
	return err
}

// ClaimEventField sets one field of a stored event unless it is set, on
// the single writer. ENOTFOUND if the event does not exist.
func (db *DB) ClaimEventField(ctx context.Context, tenantID, eventID, key, value string) (bool, error) {
	return db.setEventField(ctx, tenantID, eventID, key, value, true)
}

func (db *DB) setEventField(ctx context.Context, tenantID, eventID, key, value string, ifAbsent bool) (bool, error) {
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return false, mapErr(err, "set event field", "", tenantID)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	var raw string
	if err := tx.QueryRowContext(ctx, `SELECT fields FROM call_events WHERE tenant_id = ? AND id = ?`,
		tenantID, eventID).Scan(&raw); err != nil {
		return false, mapErr(err, "set event field", fmt.Sprintf("event %q of tenant %q", eventID, tenantID), tenantID)
	}
	fields := map[string]string{}
	if err := json.Unmarshal([]byte(raw), &fields); err != nil {
		return false, fmt.Errorf("sqlite: set event field: decode fields: %w", err)
	}
	if _, set := fields[key]; set && ifAbsent {
		return false, nil
	}
	fields[key] = value
	b, err := json.Marshal(fields)
	if err != nil {
		return false, fmt.Errorf("sqlite: set event field: encode fields: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE call_events SET fields = ? WHERE tenant_id = ? AND id = ?`,
		string(b), tenantID, eventID); err != nil {
		return false, mapErr(err, "set event field", "", tenantID)
	}
	if err := tx.Commit(); err != nil {
		return false, mapErr(err, "set event field: commit", "", tenantID)
	}
	return true, nil
}
