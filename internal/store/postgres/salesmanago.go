package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/callrouter/callrouter/internal/store"
)

const smColumns = `tenant_id, base_url, client_id, owner_email, secrets, state, last_error, error_at,
	full_done, sm_cursor, zoho_cursor, last_slot, run_kind, run_at, run_error, to_zoho, to_sm, conflicts,
	skipped, updated_at`

func smOf(tenantID string) string {
	return fmt.Sprintf("salesmanago connection of tenant %q", tenantID)
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Microsecond)
	return &u
}

// PutSM inserts or replaces a tenant's SALESmanago connection; the state
// becomes active and progress and counters start over. ENOTFOUND if the
// tenant does not exist.
func (db *DB) PutSM(ctx context.Context, c store.SMConn) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO salesmanago (`+smColumns+`, lease_holder, lease_until)
		VALUES ($1, $2, $3, $4, $5, $6, '', NULL, false, NULL, NULL, NULL, '', NULL, '', 0, 0, 0, 0, $7, '', '-infinity')
		ON CONFLICT (tenant_id) DO UPDATE SET
			base_url = excluded.base_url, client_id = excluded.client_id, owner_email = excluded.owner_email,
			secrets = excluded.secrets, state = excluded.state, last_error = '', error_at = NULL, full_done = false,
			sm_cursor = NULL, zoho_cursor = NULL, last_slot = NULL, run_kind = '', run_at = NULL, run_error = '',
			to_zoho = 0, to_sm = 0, conflicts = 0, skipped = 0, updated_at = excluded.updated_at`,
		c.TenantID, c.BaseURL, c.ClientID, c.OwnerEmail, blob(c.Secrets), store.SMActive, db.stamp())
	return mapErr(err, "put salesmanago", "", c.TenantID)
}

// SMConn returns a tenant's SALESmanago connection. ENOTFOUND if none.
func (db *DB) SMConn(ctx context.Context, tenantID string) (store.SMConn, error) {
	c, err := scanSM(db.pool.QueryRow(ctx, `SELECT `+smColumns+` FROM salesmanago WHERE tenant_id = $1`, tenantID))
	if err != nil {
		return store.SMConn{}, mapErr(err, "get salesmanago", smOf(tenantID), tenantID)
	}
	return c, nil
}

// ListSM returns every SALESmanago connection ordered by tenant.
func (db *DB) ListSM(ctx context.Context) ([]store.SMConn, error) {
	rows, _ := db.pool.Query(ctx, `SELECT `+smColumns+` FROM salesmanago ORDER BY tenant_id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SMConn, error) { return scanSM(r) })
	if err != nil {
		return nil, mapErr(err, "list salesmanago", "", "")
	}
	return out, nil
}

func scanSM(row pgx.Row) (store.SMConn, error) {
	var (
		c                                 store.SMConn
		errorAt, smCur, zCur, slot, runAt *time.Time
	)
	if err := row.Scan(&c.TenantID, &c.BaseURL, &c.ClientID, &c.OwnerEmail, &c.Secrets, &c.State, &c.LastError, &errorAt,
		&c.FullDone, &smCur, &zCur, &slot, &c.RunKind, &runAt, &c.RunError, &c.ToZoho, &c.ToSM, &c.Conflicts,
		&c.Skipped, &c.UpdatedAt); err != nil {
		return store.SMConn{}, err
	}
	if len(c.Secrets) == 0 {
		c.Secrets = nil
	}
	c.ErrorAt, c.SMCursor, c.ZohoCursor = utcOrZero(errorAt), utcOrZero(smCur), utcOrZero(zCur)
	c.LastSlot, c.RunAt, c.UpdatedAt = utcOrZero(slot), utcOrZero(runAt), c.UpdatedAt.UTC()
	return c, nil
}

// DeleteSM removes a tenant's SALESmanago connection and its links.
// ENOTFOUND if none.
func (db *DB) DeleteSM(ctx context.Context, tenantID string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM salesmanago WHERE tenant_id = $1`, tenantID)
	return mustAffect(tag, err, "delete salesmanago", smOf(tenantID), tenantID)
}

// SetSMState sets the state and last error, stamps UpdatedAt, and ErrorAt
// with an error. ENOTFOUND.
func (db *DB) SetSMState(ctx context.Context, tenantID, state, lastError string) error {
	now := db.stamp()
	var errorAt *time.Time
	if lastError != "" {
		errorAt = &now
	}
	tag, err := db.pool.Exec(ctx, `UPDATE salesmanago SET state = $2, last_error = $3, updated_at = $4,
		error_at = coalesce($5, error_at) WHERE tenant_id = $1`, tenantID, state, lastError, now, errorAt)
	return mustAffect(tag, err, "set salesmanago state", smOf(tenantID), tenantID)
}

// SaveSMProgress records a pass or a step of one. ENOTFOUND.
func (db *DB) SaveSMProgress(ctx context.Context, tenantID string, p store.SMProgress) error {
	var runAt *time.Time
	if p.Kind != "" {
		now := db.stamp()
		runAt = &now
	}
	tag, err := db.pool.Exec(ctx, `UPDATE salesmanago SET
		sm_cursor = coalesce($2, sm_cursor), zoho_cursor = coalesce($3, zoho_cursor),
		full_done = full_done OR $4, last_slot = coalesce($5, last_slot),
		run_kind = CASE WHEN $6 = '' THEN run_kind ELSE $6 END,
		run_error = CASE WHEN $6 = '' THEN run_error ELSE $7 END,
		run_at = coalesce($8, run_at),
		to_zoho = to_zoho + $9, to_sm = to_sm + $10, conflicts = conflicts + $11, skipped = skipped + $12,
		lease_until = CASE WHEN $13 <> '' AND lease_holder = $13 THEN 'epoch' ELSE lease_until END
		WHERE tenant_id = $1`,
		tenantID, nullTime(p.SMCursor), nullTime(p.ZohoCursor), p.FullDone, nullTime(p.Slot), p.Kind, p.Error, runAt,
		p.ToZoho, p.ToSM, p.Conflicts, p.Skipped, p.Release)
	return mustAffect(tag, err, "save salesmanago progress", smOf(tenantID), tenantID)
}

// LeaseSM takes or renews holder's lease on a tenant's sync unless another
// holder's has not run out. ENOTFOUND without a connection.
func (db *DB) LeaseSM(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	tag, err := db.pool.Exec(ctx, `UPDATE salesmanago SET lease_holder = $2, lease_until = $3
		WHERE tenant_id = $1 AND (lease_holder = $2 OR lease_until <= $4)`, tenantID, holder, now.Add(ttl), now)
	if err != nil {
		return false, mapErr(err, "lease salesmanago", "", tenantID)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var one int
	err = db.pool.QueryRow(ctx, `SELECT 1 FROM salesmanago WHERE tenant_id = $1`, tenantID).Scan(&one)
	return false, mapErr(err, "lease salesmanago", smOf(tenantID), tenantID)
}

// SMLinks returns the existing links of the given e-mails ordered by
// e-mail.
func (db *DB) SMLinks(ctx context.Context, tenantID string, emails []string) ([]store.SMLink, error) {
	if len(emails) == 0 {
		return nil, nil
	}
	rows, _ := db.pool.Query(ctx, `SELECT email, sm_id, zoho_module, zoho_id, sm_seen, zoho_seen, updated_at
		FROM salesmanago_links WHERE tenant_id = $1 AND email = ANY($2) ORDER BY email`, tenantID, emails)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (store.SMLink, error) {
		l := store.SMLink{TenantID: tenantID}
		err := r.Scan(&l.Email, &l.SMID, &l.ZohoModule, &l.ZohoID, &l.SMSeen, &l.ZohoSeen, &l.UpdatedAt)
		l.UpdatedAt = l.UpdatedAt.UTC()
		return l, err
	})
	if err != nil {
		return nil, mapErr(err, "salesmanago links", "", tenantID)
	}
	return out, nil
}

// PutSMLinks inserts or replaces links in one transaction. ENOTFOUND
// without a connection, EINVALID for a link without an e-mail.
func (db *DB) PutSMLinks(ctx context.Context, tenantID string, links []store.SMLink) error {
	if err := store.CheckSMLinks(links); err != nil {
		return err
	}
	if len(links) == 0 {
		return nil
	}
	now := db.stamp()
	b := &pgx.Batch{}
	for _, l := range links {
		b.Queue(`INSERT INTO salesmanago_links
			(tenant_id, email, sm_id, zoho_module, zoho_id, sm_seen, zoho_seen, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (tenant_id, email) DO UPDATE SET sm_id = excluded.sm_id, zoho_module = excluded.zoho_module,
				zoho_id = excluded.zoho_id, sm_seen = excluded.sm_seen, zoho_seen = excluded.zoho_seen,
				updated_at = excluded.updated_at`,
			tenantID, l.Email, l.SMID, l.ZohoModule, l.ZohoID, l.SMSeen, l.ZohoSeen, now)
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, b).Close() })
	return mapErr(err, "put salesmanago links", "", tenantID)
}

// CountSMLinks returns how many links a tenant has.
func (db *DB) CountSMLinks(ctx context.Context, tenantID string) (int, error) {
	var n int
	err := db.pool.QueryRow(ctx, `SELECT count(*) FROM salesmanago_links WHERE tenant_id = $1`, tenantID).Scan(&n)
	return n, mapErr(err, "count salesmanago links", "", tenantID)
}
