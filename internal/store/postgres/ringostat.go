package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

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
	var until *time.Time
	if !c.ReconciledUntil.IsZero() {
		u := c.ReconciledUntil.UTC().Truncate(time.Microsecond)
		until = &u
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO ringostat (`+ringostatColumns+`, lease_holder, lease_until)
		VALUES ($1, $2, $3, $4, $5, '', NULL, '', false, 0, '', NULL, $6, 0, '', NULL, $7, '', '-infinity')
		ON CONFLICT (tenant_id) DO UPDATE SET
			base_url = excluded.base_url, project_id = excluded.project_id, auth_key = excluded.auth_key,
			state = excluded.state, last_error = '', error_at = NULL, push_cursor = '', push_done = false,
			pushed = 0, push_error = '', push_at = NULL, reconciled_until = excluded.reconciled_until,
			recovered = 0, reconcile_error = '', reconcile_at = NULL, updated_at = excluded.updated_at`,
		c.TenantID, c.BaseURL, c.ProjectID, blob(c.AuthKey), store.RingostatActive, until, db.stamp())
	return mapErr(err, "put ringostat", "", c.TenantID)
}

// RingostatConn returns a tenant's Ringostat connection. ENOTFOUND if none.
func (db *DB) RingostatConn(ctx context.Context, tenantID string) (store.RingostatConn, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+ringostatColumns+` FROM ringostat WHERE tenant_id = $1`, tenantID)
	c, err := scanRingostat(row)
	if err != nil {
		return store.RingostatConn{}, mapErr(err, "get ringostat", ringostatOf(tenantID), tenantID)
	}
	return c, nil
}

// ListRingostat returns every Ringostat connection ordered by tenant.
func (db *DB) ListRingostat(ctx context.Context) ([]store.RingostatConn, error) {
	rows, _ := db.pool.Query(ctx, `SELECT `+ringostatColumns+` FROM ringostat ORDER BY tenant_id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.RingostatConn, error) { return scanRingostat(r) })
	if err != nil {
		return nil, mapErr(err, "list ringostat", "", "")
	}
	return out, nil
}

func scanRingostat(row pgx.Row) (store.RingostatConn, error) {
	var (
		c                                   store.RingostatConn
		errorAt, pushAt, until, reconcileAt *time.Time
	)
	if err := row.Scan(&c.TenantID, &c.BaseURL, &c.ProjectID, &c.AuthKey, &c.State, &c.LastError, &errorAt,
		&c.PushCursor, &c.PushDone, &c.Pushed, &c.PushError, &pushAt, &until, &c.Recovered, &c.ReconcileError,
		&reconcileAt, &c.UpdatedAt); err != nil {
		return store.RingostatConn{}, err
	}
	if len(c.AuthKey) == 0 {
		c.AuthKey = nil
	}
	c.ErrorAt, c.PushAt = utcOrZero(errorAt), utcOrZero(pushAt)
	c.ReconciledUntil, c.ReconcileAt = utcOrZero(until), utcOrZero(reconcileAt)
	c.UpdatedAt = c.UpdatedAt.UTC()
	return c, nil
}

// DeleteRingostat removes a tenant's Ringostat connection. ENOTFOUND if none.
func (db *DB) DeleteRingostat(ctx context.Context, tenantID string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM ringostat WHERE tenant_id = $1`, tenantID)
	return mustAffect(tag, err, "delete ringostat", ringostatOf(tenantID), tenantID)
}

// SetRingostatState sets the state and last error, stamps UpdatedAt, and
// ErrorAt with an error. ENOTFOUND if the tenant has no connection.
func (db *DB) SetRingostatState(ctx context.Context, tenantID, state, lastError string) error {
	now := db.stamp()
	var errorAt *time.Time
	if lastError != "" {
		errorAt = &now
	}
	tag, err := db.pool.Exec(ctx, `UPDATE ringostat SET state = $2, last_error = $3, updated_at = $4,
		error_at = coalesce($5, error_at) WHERE tenant_id = $1`, tenantID, state, lastError, now, errorAt)
	return mustAffect(tag, err, "set ringostat state", ringostatOf(tenantID), tenantID)
}

// SaveRingostatPush records a push step and stamps PushAt. ENOTFOUND.
func (db *DB) SaveRingostatPush(ctx context.Context, tenantID string, p store.RingostatPush) error {
	q := `UPDATE ringostat SET pushed = pushed + $2, push_error = $3, push_at = $4,
		push_cursor = $5, push_done = $6 WHERE tenant_id = $1`
	args := []any{tenantID, p.Pushed, p.Error, db.stamp(), p.Cursor, p.Done}
	if p.Keep {
		q = `UPDATE ringostat SET pushed = pushed + $2, push_error = $3, push_at = $4 WHERE tenant_id = $1`
		args = args[:4]
	}
	tag, err := db.pool.Exec(ctx, q, args...)
	return mustAffect(tag, err, "save ringostat push", ringostatOf(tenantID), tenantID)
}

// SaveRingostatReconcile records a reconciliation pass and stamps
// ReconcileAt. ENOTFOUND.
func (db *DB) SaveRingostatReconcile(ctx context.Context, tenantID string, r store.RingostatReconcile) error {
	var until *time.Time
	if !r.Until.IsZero() {
		u := r.Until.UTC().Truncate(time.Microsecond)
		until = &u
	}
	tag, err := db.pool.Exec(ctx, `UPDATE ringostat SET reconciled_until = coalesce($2, reconciled_until),
		recovered = recovered + $3, reconcile_error = $4, reconcile_at = $5 WHERE tenant_id = $1`,
		tenantID, until, r.Recovered, r.Error, db.stamp())
	return mustAffect(tag, err, "save ringostat reconcile", ringostatOf(tenantID), tenantID)
}

// LeaseRingostat takes or renews holder's lease on a tenant's connection
// unless another holder's has not run out. ENOTFOUND without a connection.
func (db *DB) LeaseRingostat(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	tag, err := db.pool.Exec(ctx, `UPDATE ringostat SET lease_holder = $2, lease_until = $3
		WHERE tenant_id = $1 AND (lease_holder = $2 OR lease_until <= $4)`, tenantID, holder, now.Add(ttl), now)
	if err != nil {
		return false, mapErr(err, "lease ringostat", "", tenantID)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var one int
	err = db.pool.QueryRow(ctx, `SELECT 1 FROM ringostat WHERE tenant_id = $1`, tenantID).Scan(&one)
	return false, mapErr(err, "lease ringostat", ringostatOf(tenantID), tenantID)
}

// IndexEntities returns the index rows of the first limit entities of a
// tenant after after, ordered by kind, entity id, phone.
func (db *DB) IndexEntities(ctx context.Context, tenantID string, after store.EntityRef, limit int) ([]domain.IndexEntry, error) {
	if limit <= 0 {
		return nil, nil
	}
	rows, _ := db.pool.Query(ctx, `SELECT phone, suffix, kind, entity_id, open, owner_id, name, updated_at
		FROM phone_index WHERE tenant_id = $1 AND (kind, entity_id) IN (
			SELECT DISTINCT kind, entity_id FROM phone_index
			WHERE tenant_id = $1 AND (kind, entity_id) > ($2, $3) ORDER BY kind, entity_id LIMIT $4)
		ORDER BY kind, entity_id, phone`, tenantID, string(after.Kind), after.ID, limit)
	return collectEntityRows(rows, tenantID, "index entities")
}

// EntityIndex returns the index rows of the named entities of a tenant,
// ordered by kind, entity id, phone.
func (db *DB) EntityIndex(ctx context.Context, tenantID string, refs []store.EntityRef) ([]domain.IndexEntry, error) {
	refs = slices.Clone(refs)
	slices.SortFunc(refs, func(a, b store.EntityRef) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.ID, b.ID))
	})
	refs = slices.Compact(refs)
	kinds, ids := make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		kinds[i], ids[i] = string(r.Kind), r.ID
	}
	rows, _ := db.pool.Query(ctx, `SELECT p.phone, p.suffix, p.kind, p.entity_id, p.open, p.owner_id, p.name, p.updated_at
		FROM unnest($2::text[], $3::text[]) AS r (kind, entity_id)
		JOIN phone_index p ON p.tenant_id = $1 AND p.kind = r.kind AND p.entity_id = r.entity_id
		ORDER BY p.kind, p.entity_id, p.phone`, tenantID, kinds, ids)
	return collectEntityRows(rows, tenantID, "entity index")
}

func collectEntityRows(rows pgx.Rows, tenantID, op string) ([]domain.IndexEntry, error) {
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.IndexEntry, error) {
		e := domain.IndexEntry{TenantID: tenantID}
		var kind string
		if err := r.Scan(&e.Phone, &e.Suffix, &kind, &e.EntityID, &e.Open, &e.OwnerID, &e.Name, &e.UpdatedAt); err != nil {
			return e, err
		}
		e.Kind = domain.ParseKind(kind)
		e.UpdatedAt = e.UpdatedAt.UTC()
		return e, nil
	})
	if err != nil {
		return nil, mapErr(err, op, "", tenantID)
	}
	return out, nil
}

func ringostatOf(tenantID string) string {
	return fmt.Sprintf("ringostat connection of tenant %q", tenantID)
}

// SetEventField sets one field of a stored event, the row locked while it
// is read and written. ENOTFOUND if the event does not exist.
func (db *DB) SetEventField(ctx context.Context, tenantID, eventID, key, value string) error {
	_, err := db.setEventField(ctx, tenantID, eventID, key, value, false)
	return err
}

// ClaimEventField sets one field of a stored event unless it is set, the
// row locked while it is read and written. ENOTFOUND if the event does not
// exist.
func (db *DB) ClaimEventField(ctx context.Context, tenantID, eventID, key, value string) (bool, error) {
	return db.setEventField(ctx, tenantID, eventID, key, value, true)
}

func (db *DB) setEventField(ctx context.Context, tenantID, eventID, key, value string, ifAbsent bool) (bool, error) {
	set := false
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var raw string
		if err := tx.QueryRow(ctx, `SELECT fields FROM call_events WHERE tenant_id = $1 AND id = $2 FOR UPDATE`,
			tenantID, eventID).Scan(&raw); err != nil {
			return mapErr(err, "set event field", fmt.Sprintf("event %q of tenant %q", eventID, tenantID), tenantID)
		}
		fields := map[string]string{}
		if err := json.Unmarshal([]byte(raw), &fields); err != nil {
			return fmt.Errorf("postgres: set event field: decode fields: %w", err)
		}
		if _, had := fields[key]; had && ifAbsent {
			return nil
		}
		fields[key] = value
		b, err := json.Marshal(fields)
		if err != nil {
			return fmt.Errorf("postgres: set event field: encode fields: %w", err)
		}
		_, err = tx.Exec(ctx, `UPDATE call_events SET fields = $3 WHERE tenant_id = $1 AND id = $2`, tenantID, eventID, string(b))
		set = err == nil
		return err
	})
	return set, mapErr(err, "set event field", "", tenantID)
}
