package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// CreateTenant inserts t with CreatedAt and UpdatedAt set to the store's
// clock. ECONFLICT if the id exists.
func (db *DB) CreateTenant(ctx context.Context, t domain.Tenant) error {
	settings, err := json.Marshal(t.Settings)
	if err != nil {
		return fmt.Errorf("sqlite: create tenant: encode settings: %w", err)
	}
	now := micros(db.stamp())
	_, err = db.w.ExecContext(ctx, `INSERT INTO tenants
		(id, name, settings, secret_hash, default_owner, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Name, string(settings), blob(t.SecretHash), t.DefaultOwner, now, now)
	return mapErr(err, "create tenant", fmt.Sprintf("tenant %q", t.ID), t.ID)
}

const tenantColumns = `id, name, settings, secret_hash, default_owner, created_at, updated_at, prev_secret_hash, prev_secret_until`

// Tenant returns one tenant. ENOTFOUND if absent.
func (db *DB) Tenant(ctx context.Context, id string) (domain.Tenant, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id)
	t, err := scanTenant(row)
	if err != nil {
		return domain.Tenant{}, mapErr(err, "get tenant", fmt.Sprintf("tenant %q", id), id)
	}
	return t, nil
}

// ListTenants returns every tenant ordered by id.
func (db *DB) ListTenants(ctx context.Context) ([]domain.Tenant, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	if err != nil {
		return nil, mapErr(err, "list tenants", "", "")
	}
	defer rows.Close()
	var out []domain.Tenant
	for rows.Next() {
		t, err := scanTenant(rows)
		if err != nil {
			return nil, mapErr(err, "list tenants", "", "")
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list tenants", "", "")
	}
	return out, nil
}

// UpdateTenant replaces name, settings and default owner of t.ID and sets
// UpdatedAt to the store's clock; CreatedAt and the webhook secrets are
// kept (RotateTenantSecret changes those). ENOTFOUND if absent.
func (db *DB) UpdateTenant(ctx context.Context, t domain.Tenant) error {
	settings, err := json.Marshal(t.Settings)
	if err != nil {
		return fmt.Errorf("sqlite: update tenant: encode settings: %w", err)
	}
	res, err := db.w.ExecContext(ctx, `UPDATE tenants
		SET name = ?, settings = ?, default_owner = ?, updated_at = ?
		WHERE id = ?`,
		t.Name, string(settings), t.DefaultOwner, micros(db.stamp()), t.ID)
	return mustAffect(res, err, "update tenant", fmt.Sprintf("tenant %q", t.ID), t.ID)
}

type scanner interface{ Scan(dest ...any) error }

func scanTenant(s scanner) (domain.Tenant, error) {
	var (
		t                domain.Tenant
		settings         string
		created, updated int64
		prevUntil        int64
	)
	if err := s.Scan(&t.ID, &t.Name, &settings, &t.SecretHash, &t.DefaultOwner, &created, &updated,
		&t.PrevSecretHash, &prevUntil); err != nil {
		return domain.Tenant{}, err
	}
	if err := json.Unmarshal([]byte(settings), &t.Settings); err != nil {
		return domain.Tenant{}, fmt.Errorf("decode settings of tenant %q: %w", t.ID, err)
	}
	if len(t.SecretHash) == 0 {
		t.SecretHash = nil
	}
	if len(t.PrevSecretHash) == 0 || prevUntil == 0 {
		t.PrevSecretHash = nil
	} else {
		t.PrevSecretUntil = fromMicros(prevUntil)
	}
	t.CreatedAt, t.UpdatedAt = fromMicros(created), fromMicros(updated)
	return t, nil
}

// blob keeps a nil hash from binding as NULL in the NOT NULL column.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// PutEmployee inserts or replaces the employee (tenant, CRM user id) with
// UpdatedAt set to the store's clock. ENOTFOUND if the tenant does not
// exist.
func (db *DB) PutEmployee(ctx context.Context, e domain.Employee) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO employees
		(tenant_id, crm_user_id, sip, phone, name, email, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, crm_user_id) DO UPDATE SET
			sip = excluded.sip, phone = excluded.phone, name = excluded.name,
			email = excluded.email, updated_at = excluded.updated_at`,
		e.TenantID, e.CRMUserID, e.SIP, e.Phone, e.Name, e.Email, micros(db.stamp()))
	return mapErr(err, "put employee", "", e.TenantID)
}

const employeeColumns = `tenant_id, crm_user_id, sip, phone, name, email, updated_at`

// Employee returns one employee. ENOTFOUND if absent.
func (db *DB) Employee(ctx context.Context, tenantID, crmUserID string) (domain.Employee, error) {
	row := db.r.QueryRowContext(ctx, `SELECT `+employeeColumns+` FROM employees
		WHERE tenant_id = ? AND crm_user_id = ?`, tenantID, crmUserID)
	e, err := scanEmployee(row)
	if err != nil {
		return domain.Employee{}, mapErr(err, "get employee",
			fmt.Sprintf("employee %q of tenant %q", crmUserID, tenantID), tenantID)
	}
	return e, nil
}

// ListEmployees returns a tenant's employees ordered by CRM user id; none
// for an unknown tenant.
func (db *DB) ListEmployees(ctx context.Context, tenantID string) ([]domain.Employee, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT `+employeeColumns+` FROM employees
		WHERE tenant_id = ? ORDER BY crm_user_id`, tenantID)
	if err != nil {
		return nil, mapErr(err, "list employees", "", tenantID)
	}
	defer rows.Close()
	var out []domain.Employee
	for rows.Next() {
		e, err := scanEmployee(rows)
		if err != nil {
			return nil, mapErr(err, "list employees", "", tenantID)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list employees", "", tenantID)
	}
	return out, nil
}

func scanEmployee(s scanner) (domain.Employee, error) {
	var (
		e       domain.Employee
		updated int64
	)
	if err := s.Scan(&e.TenantID, &e.CRMUserID, &e.SIP, &e.Phone, &e.Name, &e.Email, &updated); err != nil {
		return domain.Employee{}, err
	}
	e.UpdatedAt = fromMicros(updated)
	return e, nil
}

// DeleteEmployee removes one employee. ENOTFOUND if absent.
func (db *DB) DeleteEmployee(ctx context.Context, tenantID, crmUserID string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM employees WHERE tenant_id = ? AND crm_user_id = ?`,
		tenantID, crmUserID)
	return mustAffect(res, err, "delete employee",
		fmt.Sprintf("employee %q of tenant %q", crmUserID, tenantID), tenantID)
}

// PutStop inserts or replaces a stop-list number (kind "" is stored as a
// line); CreatedAt is kept when
// set and stamped with the store's clock when zero. ENOTFOUND if the tenant
// does not exist.
func (db *DB) PutStop(ctx context.Context, s domain.StopEntry) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO stop_list (tenant_id, number, note, created_at, kind)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, number) DO UPDATE SET
			note = excluded.note, created_at = excluded.created_at, kind = excluded.kind`,
		s.TenantID, s.Number, s.Note, micros(db.stampOr(s.CreatedAt)), string(stopKind(s.Kind)))
	return mapErr(err, "put stop", "", s.TenantID)
}

// stopKind is the kind stored for k: an entry without one is a line.
func stopKind(k domain.StopKind) domain.StopKind {
	if k == "" {
		return domain.StopLine
	}
	return k
}

// ListStops returns a tenant's stop list ordered by number; none for an
// unknown tenant.
func (db *DB) ListStops(ctx context.Context, tenantID string) ([]domain.StopEntry, error) {
	rows, err := db.r.QueryContext(ctx, `SELECT tenant_id, number, note, created_at, kind FROM stop_list
		WHERE tenant_id = ? ORDER BY number`, tenantID)
	if err != nil {
		return nil, mapErr(err, "list stops", "", tenantID)
	}
	defer rows.Close()
	var out []domain.StopEntry
	for rows.Next() {
		var (
			s       domain.StopEntry
			created int64
		)
		if err := rows.Scan(&s.TenantID, &s.Number, &s.Note, &created, &s.Kind); err != nil {
			return nil, mapErr(err, "list stops", "", tenantID)
		}
		s.CreatedAt = fromMicros(created)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list stops", "", tenantID)
	}
	return out, nil
}

// DeleteStop removes a number. ENOTFOUND if absent.
func (db *DB) DeleteStop(ctx context.Context, tenantID, number string) error {
	res, err := db.w.ExecContext(ctx, `DELETE FROM stop_list WHERE tenant_id = ? AND number = ?`,
		tenantID, number)
	return mustAffect(res, err, "delete stop",
		fmt.Sprintf("stop-list number %q of tenant %q", number, tenantID), tenantID)
}

// mustAffect maps err, and turns a statement that touched no row into
// ENOTFOUND for what.
func mustAffect(res sql.Result, err error, op, what, tenantID string) error {
	if err != nil {
		return mapErr(err, op, what, tenantID)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return mapErr(err, op, what, tenantID)
	}
	if n == 0 {
		return mapErr(sql.ErrNoRows, op, what, tenantID)
	}
	return nil
}

const upsertIndexSQL = `INSERT INTO phone_index
	(tenant_id, phone, suffix, kind, entity_id, open, owner_id, name, updated_at, seen_at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (tenant_id, kind, entity_id, phone) DO UPDATE SET
		suffix = excluded.suffix, open = excluded.open, owner_id = excluded.owner_id,
		name = excluded.name, updated_at = excluded.updated_at, seen_at = excluded.seen_at`

// UpsertIndex inserts or replaces the rows in one transaction: either all
// are stored or none; a later row replaces an earlier one with the same
// key. UpdatedAt is kept when set and stamped with the store's clock when
// zero. ENOTFOUND if a row's tenant does not exist.
func (db *DB) UpsertIndex(ctx context.Context, rows []domain.IndexEntry) error {
	if len(rows) == 0 {
		return nil
	}
	now := micros(db.stamp())
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr(err, "upsert index", "", "")
	}
	defer tx.Rollback()
	if err := db.upsertRows(ctx, tx, "upsert index", rows, now); err != nil {
		return err
	}
	return mapErr(tx.Commit(), "upsert index: commit", "", "")
}

// upsertRows upserts rows in tx one by one, a later row replacing an
// earlier one with the same key; a zero UpdatedAt becomes now, and every
// row is seen now (see FinishFullSync). It returns mapped errors prefixed
// with op.
func (db *DB) upsertRows(ctx context.Context, tx *sql.Tx, op string, rows []domain.IndexEntry, now int64) error {
	// The writer pool has one connection, so this reuses the statement
	// prepared at Open instead of compiling it again.
	stmt := tx.StmtContext(ctx, db.upsert)
	for i := range rows {
		r := &rows[i]
		at := now
		if !r.UpdatedAt.IsZero() {
			at = micros(r.UpdatedAt)
		}
		if _, err := stmt.ExecContext(ctx, r.TenantID, r.Phone, r.Suffix, string(r.Kind), r.EntityID,
			r.Open, r.OwnerID, r.Name, at, now); err != nil {
			return mapErr(err, op, "", r.TenantID)
		}
	}
	return nil
}

// deleteEntitySQL names the index of the table's UNIQUE constraint, which
// SQLite calls sqlite_autoindex_phone_index_2 (the second constraint of
// 0001_init.sql): without statistics the planner assumes tenant_id alone
// is selective and scans the whole tenant through the primary key instead,
// ~10ms per entity at 100k rows against ~15µs. Open prepares the statement,
// so a schema without that index fails there.
const deleteEntitySQL = `DELETE FROM phone_index INDEXED BY sqlite_autoindex_phone_index_2
	WHERE tenant_id = ? AND kind = ? AND entity_id = ? RETURNING suffix`

// DeleteEntity removes every row of one entity and returns the distinct
// suffixes it had, sorted; none if the entity has no rows.
func (db *DB) DeleteEntity(ctx context.Context, tenantID string, kind domain.EntityKind, entityID string) ([]string, error) {
	out, err := deleteEntity(ctx, db.del, nil, tenantID, kind, entityID)
	if err != nil {
		return nil, mapErr(err, "delete entity", "", tenantID)
	}
	return sortedSet(out), nil
}

// deleteEntity runs del, the statement prepared from deleteEntitySQL, and
// appends the suffixes of the removed rows to suffixes.
func deleteEntity(ctx context.Context, del *sql.Stmt, suffixes []string, tenantID string, kind domain.EntityKind, entityID string) ([]string, error) {
	rows, err := del.QueryContext(ctx, tenantID, string(kind), entityID)
	if err != nil {
		return suffixes, err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return suffixes, err
		}
		suffixes = append(suffixes, s)
	}
	return suffixes, rows.Err()
}

// sortedSet sorts s and drops repeats; nil when s is empty.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	slices.Sort(s)
	return slices.Compact(s)
}

// ReplaceEntities removes every row of the named entities of a tenant and
// upserts rows in their place, in one transaction, and returns the sorted
// distinct suffixes the removed rows had, nil if none. A later row
// replaces an earlier one with the same key; UpdatedAt is kept when set and
// stamped with the store's clock when zero. EINVALID, before anything is
// touched, if a row belongs to another tenant or to an entity not named;
// ENOTFOUND if the tenant does not exist.
func (db *DB) ReplaceEntities(ctx context.Context, tenantID string, entities []store.EntityRef, rows []domain.IndexEntry) ([]string, error) {
	targets, err := replaceTargets(tenantID, entities, rows)
	if err != nil {
		return nil, err
	}
	now := micros(db.stamp())
	tx, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, mapErr(err, "replace entities", "", tenantID)
	}
	defer tx.Rollback()
	// Deleting finds no row of an unknown tenant, and with no rows to
	// insert no foreign key would object either.
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM tenants WHERE id = ?`, tenantID).Scan(&one); err != nil {
		return nil, mapErr(err, "replace entities", fmt.Sprintf("tenant %q", tenantID), tenantID)
	}
	// One prepared delete per entity: each is an in-process range scan of
	// the (tenant, kind, entity, phone) index.
	del := tx.StmtContext(ctx, db.del)
	var removed []string
	for _, e := range targets {
		if removed, err = deleteEntity(ctx, del, removed, tenantID, e.Kind, e.ID); err != nil {
			return nil, mapErr(err, "replace entities", "", tenantID)
		}
	}
	if err := db.upsertRows(ctx, tx, "replace entities", rows, now); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, mapErr(err, "replace entities: commit", "", tenantID)
	}
	return sortedSet(removed), nil
}

// replaceTargets checks that every row belongs to tenantID and to one of
// entities, and returns entities without repeats.
func replaceTargets(tenantID string, entities []store.EntityRef, rows []domain.IndexEntry) ([]store.EntityRef, error) {
	named := make(map[store.EntityRef]struct{}, len(entities))
	targets := make([]store.EntityRef, 0, len(entities))
	for _, e := range entities {
		if _, ok := named[e]; !ok {
			named[e] = struct{}{}
			targets = append(targets, e)
		}
	}
	for i := range rows {
		r := &rows[i]
		if r.TenantID != tenantID {
			return nil, domain.Errorf(domain.EINVALID, "index row %d (%s %q, phone %q) belongs to tenant %q, not %q",
				i, r.Kind, r.EntityID, r.Phone, r.TenantID, tenantID)
		}
		if _, ok := named[store.EntityRef{Kind: r.Kind, ID: r.EntityID}]; !ok {
			return nil, domain.Errorf(domain.EINVALID, "index row %d (%s %q, phone %q) belongs to an entity not being replaced",
				i, r.Kind, r.EntityID, r.Phone)
		}
	}
	return targets, nil
}

const lookupSQL = `SELECT phone, kind, entity_id, open, owner_id, name, updated_at
	FROM phone_index WHERE tenant_id = ? AND suffix = ?
	ORDER BY updated_at DESC, kind, entity_id, phone`

// LookupSuffix returns the rows of a tenant whose suffix key equals suffix,
// most recently updated first, then by kind, entity id and phone.
func (db *DB) LookupSuffix(ctx context.Context, tenantID, suffix string) ([]domain.IndexEntry, error) {
	rows, err := db.lookup.QueryContext(ctx, tenantID, suffix)
	if err != nil {
		return nil, mapErr(err, "lookup suffix", "", tenantID)
	}
	defer rows.Close()
	var out []domain.IndexEntry
	for rows.Next() {
		e := domain.IndexEntry{TenantID: tenantID, Suffix: suffix}
		var (
			kind    string
			updated int64
		)
		if err := rows.Scan(&e.Phone, &kind, &e.EntityID, &e.Open, &e.OwnerID, &e.Name, &updated); err != nil {
			return nil, mapErr(err, "lookup suffix", "", tenantID)
		}
		e.Kind = domain.ParseKind(kind)
		e.UpdatedAt = fromMicros(updated)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "lookup suffix", "", tenantID)
	}
	return out, nil
}

// ScanIndex calls fn for every row of every tenant ordered by tenant,
// suffix, then most recently updated first, streaming from one read
// connection. It returns fn's first error as is, or a wrapped driver error.
func (db *DB) ScanIndex(ctx context.Context, fn func(domain.IndexEntry) error) error {
	rows, err := db.r.QueryContext(ctx, `SELECT tenant_id, phone, suffix, kind, entity_id, open, owner_id, name, updated_at
		FROM phone_index ORDER BY tenant_id, suffix, updated_at DESC, kind, entity_id, phone`)
	if err != nil {
		return mapErr(err, "scan index", "", "")
	}
	defer rows.Close()
	var (
		tenant, kind sql.RawBytes
		lastTenant   string
		updated      int64
	)
	for rows.Next() {
		var e domain.IndexEntry
		if err := rows.Scan(&tenant, &e.Phone, &e.Suffix, &kind, &e.EntityID, &e.Open, &e.OwnerID, &e.Name, &updated); err != nil {
			return mapErr(err, "scan index", "", "")
		}
		// Rows arrive grouped by tenant and kinds are few: sharing their
		// strings saves two allocations per row when warming from millions.
		if string(tenant) != lastTenant {
			lastTenant = string(tenant)
		}
		e.TenantID = lastTenant
		e.Kind = domain.ParseKind(string(kind))
		e.UpdatedAt = fromMicros(updated)
		if err := fn(e); err != nil {
			return err
		}
	}
	return mapErr(rows.Err(), "scan index", "", "")
}

// CountIndex returns the number of rows of one tenant, or of all tenants
// when tenantID is "".
func (db *DB) CountIndex(ctx context.Context, tenantID string) (int, error) {
	var (
		n   int
		err error
	)
	if tenantID == "" {
		err = db.r.QueryRowContext(ctx, `SELECT count(*) FROM phone_index`).Scan(&n)
	} else {
		err = db.r.QueryRowContext(ctx, `SELECT count(*) FROM phone_index WHERE tenant_id = ?`, tenantID).Scan(&n)
	}
	if err != nil {
		return 0, mapErr(err, "count index", "", tenantID)
	}
	return n, nil
}

// AppendAudit stores e and returns it with ID set and At kept if set, else
// stamped with the store's clock. Errors are wrapped driver errors.
func (db *DB) AppendAudit(ctx context.Context, e domain.AuditEntry) (domain.AuditEntry, error) {
	e.At = db.stampOr(e.At)
	var tenant any
	if e.TenantID != "" {
		tenant = e.TenantID
	}
	res, err := db.w.ExecContext(ctx, `INSERT INTO audit_log (tenant_id, actor, action, detail, at)
		VALUES (?, ?, ?, ?, ?)`, tenant, e.Actor, e.Action, e.Detail, micros(e.At))
	if err != nil {
		return domain.AuditEntry{}, mapErr(err, "append audit", "", e.TenantID)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return domain.AuditEntry{}, mapErr(err, "append audit", "", e.TenantID)
	}
	return e, nil
}

// ListAudit returns up to limit entries of a tenant, newest first; all
// tenants when tenantID is "", no limit when limit <= 0.
func (db *DB) ListAudit(ctx context.Context, tenantID string, limit int) ([]domain.AuditEntry, error) {
	if limit <= 0 {
		limit = -1 // SQLite's "no limit"
	}
	var (
		rows *sql.Rows
		err  error
	)
	const cols = `SELECT id, coalesce(tenant_id, ''), actor, action, detail, at FROM audit_log`
	if tenantID == "" {
		rows, err = db.r.QueryContext(ctx, cols+` ORDER BY id DESC LIMIT ?`, limit)
	} else {
		rows, err = db.r.QueryContext(ctx, cols+` WHERE tenant_id = ? ORDER BY id DESC LIMIT ?`, tenantID, limit)
	}
	if err != nil {
		return nil, mapErr(err, "list audit", "", tenantID)
	}
	defer rows.Close()
	var out []domain.AuditEntry
	for rows.Next() {
		var (
			e  domain.AuditEntry
			at int64
		)
		if err := rows.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.Detail, &at); err != nil {
			return nil, mapErr(err, "list audit", "", tenantID)
		}
		e.At = fromMicros(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "list audit", "", tenantID)
	}
	return out, nil
}

// GetMeta returns the value of key. ENOTFOUND if absent.
func (db *DB) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	if err := db.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&v); err != nil {
		return "", mapErr(err, "get meta", fmt.Sprintf("meta key %q", key), "")
	}
	return v, nil
}

// SetMetaIfAbsent stores value under key unless the key exists, and
// reports whether it stored it. Errors are wrapped driver errors.
func (db *DB) SetMetaIfAbsent(ctx context.Context, key, value string) (bool, error) {
	res, err := db.w.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO NOTHING`, key, value)
	if err != nil {
		return false, mapErr(err, "set meta", "", "")
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, mapErr(err, "set meta", "", "")
	}
	return n == 1, nil
}

// SetMeta stores value under key, replacing any previous value. Errors are
// wrapped driver errors.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.w.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return mapErr(err, "set meta", "", "")
}
