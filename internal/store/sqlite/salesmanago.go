package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/callrouter/callrouter/internal/store"
)

const smColumns = `tenant_id, base_url, client_id, owner_email, secrets, state, last_error, error_at,
	full_done, sm_cursor, zoho_cursor, last_slot, run_kind, run_at, run_error, to_zoho, to_sm, conflicts,
	skipped, updated_at`

func smOf(tenantID string) string {
	return fmt.Sprintf("salesmanago connection of tenant %q", tenantID)
}

func nullMicros(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return micros(t)
}

// PutSM inserts or replaces a tenant's SALESmanago connection; the state
// becomes active and progress and counters start over. ENOTFOUND if the
// tenant does not exist.
func (db *DB) PutSM(ctx context.Context, c store.SMConn) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO salesmanago (`+smColumns+`, lease_holder, lease_until)
		VALUES (?, ?, ?, ?, ?, ?, '', NULL, 0, NULL, NULL, NULL, '', NULL, '', 0, 0, 0, 0, ?, '', 0)
		ON CONFLICT (tenant_id) DO UPDATE SET
			base_url = excluded.base_url, client_id = excluded.client_id, owner_email = excluded.owner_email,
			secrets = excluded.secrets, state = excluded.state, last_error = '', error_at = NULL, full_done = 0,
			sm_cursor = NULL, zoho_cursor = NULL, last_slot = NULL, run_kind = '', run_at = NULL, run_error = '',
			to_zoho = 0, to_sm = 0, conflicts = 0, skipped = 0, updated_at = excluded.updated_at`,
		c.TenantID, c.BaseURL, c.ClientID, c.OwnerEmail, blob(c.Secrets), store.SMActive, micros(db.stamp()))
	return mapErr(err, "put salesmanago", "", c.TenantID)
}

// SMConn returns a tenant's SALESmanago connection. ENOTFOUND if none.
func (db *DB) SMConn(ctx context.Context, tenantID string) (store.SMConn, error) {
	c, err := scanSM(db.r.QueryRowContext(ctx, `SELECT `+smColumns+` FROM salesmanago WHERE tenant_id = ?`, tenantID))
	if err != nil {
		return store.SMConn{}, mapErr(err, "get salesmanago", smOf(tenantID), tenantID)
	}
	return c, nil
}

// ListSM returns every SALESmanago connection ordered by tenant.
func (db *DB) ListSM(ctx context.Context) ([]store.SMConn, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+smColumns+` FROM salesmanago ORDER BY tenant_id`)
	if err != nil {
		return nil, mapErr(err, "list salesmanago", "", "")
	}
	defer rows.Close()
	var out []store.SMConn
	for rows.Next() {
		c, err := scanSM(rows)
		if err != nil {
			return nil, mapErr(err, "list salesmanago", "", "")
		}
		out = append(out, c)
	}
	return out, mapErr(rows.Err(), "list salesmanago", "", "")
}

func scanSM(s scanner) (store.SMConn, error) {
	var (
		c                                 store.SMConn
		errorAt, smCur, zCur, slot, runAt sql.NullInt64
		updated                           int64
	)
	if err := s.Scan(&c.TenantID, &c.BaseURL, &c.ClientID, &c.OwnerEmail, &c.Secrets, &c.State, &c.LastError, &errorAt,
		&c.FullDone, &smCur, &zCur, &slot, &c.RunKind, &runAt, &c.RunError, &c.ToZoho, &c.ToSM, &c.Conflicts,
		&c.Skipped, &updated); err != nil {
		return store.SMConn{}, err
	}
	if len(c.Secrets) == 0 {
		c.Secrets = nil
	}
	c.ErrorAt, c.SMCursor, c.ZohoCursor = fromNullMicros(errorAt), fromNullMicros(smCur), fromNullMicros(zCur)
	c.LastSlot, c.RunAt, c.UpdatedAt = fromNullMicros(slot), fromNullMicros(runAt), fromMicros(updated)
	return c, nil
}

// DeleteSM removes a tenant's SALESmanago connection and its links.
// ENOTFOUND if none.
func (db *DB) DeleteSM(ctx context.Context, tenantID string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM salesmanago WHERE tenant_id = ?`, tenantID)
	return mustAffect(res, err, "delete salesmanago", smOf(tenantID), tenantID)
}

// SetSMState sets the state and last error, stamps UpdatedAt, and ErrorAt
// with an error. ENOTFOUND.
func (db *DB) SetSMState(ctx context.Context, tenantID, state, lastError string) error {
	now := micros(db.stamp())
	var errorAt any
	if lastError != "" {
		errorAt = now
	}
	res, err := db.w.ExecContext(ctx, `UPDATE salesmanago SET state = ?, last_error = ?, updated_at = ?,
		error_at = coalesce(?, error_at) WHERE tenant_id = ?`, state, lastError, now, errorAt, tenantID)
	return mustAffect(res, err, "set salesmanago state", smOf(tenantID), tenantID)
}

// SaveSMProgress records a pass or a step of one. ENOTFOUND.
func (db *DB) SaveSMProgress(ctx context.Context, tenantID string, p store.SMProgress) error {
	var runAt any
	if p.Kind != "" {
		runAt = micros(db.stamp())
	}
	res, err := db.w.ExecContext(ctx, `UPDATE salesmanago SET
		sm_cursor = coalesce(?, sm_cursor), zoho_cursor = coalesce(?, zoho_cursor),
		full_done = max(full_done, ?), last_slot = coalesce(?, last_slot),
		run_kind = CASE WHEN ? = '' THEN run_kind ELSE ? END,
		run_error = CASE WHEN ? = '' THEN run_error ELSE ? END,
		run_at = coalesce(?, run_at),
		to_zoho = to_zoho + ?, to_sm = to_sm + ?, conflicts = conflicts + ?, skipped = skipped + ?,
		lease_until = CASE WHEN ? <> '' AND lease_holder = ? THEN 0 ELSE lease_until END
		WHERE tenant_id = ?`,
		nullMicros(p.SMCursor), nullMicros(p.ZohoCursor), p.FullDone, nullMicros(p.Slot),
		p.Kind, p.Kind, p.Kind, p.Error, runAt,
		p.ToZoho, p.ToSM, p.Conflicts, p.Skipped, p.Release, p.Release, tenantID)
	return mustAffect(res, err, "save salesmanago progress", smOf(tenantID), tenantID)
}

// LeaseSM takes or renews holder's lease on a tenant's sync unless another
// holder's has not run out. ENOTFOUND without a connection.
func (db *DB) LeaseSM(ctx context.Context, tenantID, holder string, ttl time.Duration) (bool, error) {
	now := db.stamp()
	res, err := db.w.ExecContext(ctx, `UPDATE salesmanago SET lease_holder = ?, lease_until = ?
		WHERE tenant_id = ? AND (lease_holder = ? OR lease_until <= ?)`,
		holder, micros(now.Add(ttl)), tenantID, holder, micros(now))
	if err != nil {
		return false, mapErr(err, "lease salesmanago", "", tenantID)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		return err == nil, mapErr(err, "lease salesmanago", "", tenantID)
	}
	var one int
	err = db.r.QueryRowContext(ctx, `SELECT 1 FROM salesmanago WHERE tenant_id = ?`, tenantID).Scan(&one)
	return false, mapErr(err, "lease salesmanago", smOf(tenantID), tenantID)
}

// SMLinks returns the existing links of the given e-mails ordered by
// e-mail.
func (db *DB) SMLinks(ctx context.Context, tenantID string, emails []string) ([]store.SMLink, error) {
	var out []store.SMLink
	for len(emails) > 0 {
		n := min(len(emails), 500)
		chunk := emails[:n]
		emails = emails[n:]
		args := make([]any, 0, n+1)
		args = append(args, tenantID)
		for _, e := range chunk {
			args = append(args, e)
		}
		rows, err := db.r.QueryContext(ctx, `SELECT email, sm_id, zoho_module, zoho_id, sm_seen, zoho_seen, updated_at
			FROM salesmanago_links WHERE tenant_id = ? AND email IN (?`+strings.Repeat(", ?", n-1)+`)`, args...)
		if err != nil {
			return nil, mapErr(err, "salesmanago links", "", tenantID)
		}
		for rows.Next() {
			l := store.SMLink{TenantID: tenantID}
			var updated int64
			if err := rows.Scan(&l.Email, &l.SMID, &l.ZohoModule, &l.ZohoID, &l.SMSeen, &l.ZohoSeen, &updated); err != nil {
				rows.Close()
				return nil, mapErr(err, "salesmanago links", "", tenantID)
			}
			l.UpdatedAt = fromMicros(updated)
			out = append(out, l)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, mapErr(err, "salesmanago links", "", tenantID)
		}
	}
	store.SortSMLinks(out)
	return out, nil
}

// PutSMLinks inserts or replaces links in one transaction. ENOTFOUND
// without a connection, EINVALID for a link without an e-mail.
func (db *DB) PutSMLinks(ctx context.Context, tenantID string, links []store.SMLink) error {
	if err := store.CheckSMLinks(links); err != nil {
		return err
	}
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "put salesmanago links", "", tenantID)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it does nothing
	now := micros(db.stamp())
	for _, l := range links {
		if _, err := tx.ExecContext(ctx, `INSERT INTO salesmanago_links
			(tenant_id, email, sm_id, zoho_module, zoho_id, sm_seen, zoho_seen, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, email) DO UPDATE SET sm_id = excluded.sm_id, zoho_module = excluded.zoho_module,
				zoho_id = excluded.zoho_id, sm_seen = excluded.sm_seen, zoho_seen = excluded.zoho_seen,
				updated_at = excluded.updated_at`,
			tenantID, l.Email, l.SMID, l.ZohoModule, l.ZohoID, l.SMSeen, l.ZohoSeen, now); err != nil {
			return mapErr(err, "put salesmanago links", "", tenantID)
		}
	}
	return mapErr(tx.Commit(), "put salesmanago links: commit", "", tenantID)
}

// CountSMLinks returns how many links a tenant has.
func (db *DB) CountSMLinks(ctx context.Context, tenantID string) (int, error) {
	var n int
	err := db.r.QueryRowContext(ctx, `SELECT count(*) FROM salesmanago_links WHERE tenant_id = ?`, tenantID).Scan(&n)
	return n, mapErr(err, "count salesmanago links", "", tenantID)
}
