package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/callrouter/callrouter/internal/domain"
	"github.com/callrouter/callrouter/internal/store"
)

// CreateTenant inserts t with CreatedAt and UpdatedAt set to the store's
// clock. ECONFLICT if the id exists.
func (db *DB) CreateTenant(ctx context.Context, t domain.Tenant) error {
	settings, err := json.Marshal(t.Settings)
	if err != nil {
		return fmt.Errorf("postgres: create tenant: encode settings: %w", err)
	}
	now := db.stamp()
	_, err = db.pool.Exec(ctx, `INSERT INTO tenants
		(id, name, settings, secret_hash, default_owner, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $6)`,
		t.ID, t.Name, settings, blob(t.SecretHash), t.DefaultOwner, now)
	return mapErr(err, "create tenant", fmt.Sprintf("tenant %q", t.ID), t.ID)
}

const tenantColumns = `id, name, settings, secret_hash, default_owner, created_at, updated_at, prev_secret_hash, prev_secret_until`

// Tenant returns one tenant. ENOTFOUND if absent.
func (db *DB) Tenant(ctx context.Context, id string) (domain.Tenant, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id = $1`, id)
	t, err := scanTenant(row)
	if err != nil {
		return domain.Tenant{}, mapErr(err, "get tenant", fmt.Sprintf("tenant %q", id), id)
	}
	return t, nil
}

// ListTenants returns every tenant ordered by id.
func (db *DB) ListTenants(ctx context.Context) ([]domain.Tenant, error) {
	rows, _ := db.pool.Query(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY id`)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Tenant, error) { return scanTenant(r) })
	if err != nil {
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
		return fmt.Errorf("postgres: update tenant: encode settings: %w", err)
	}
	tag, err := db.pool.Exec(ctx, `UPDATE tenants
		SET name = $2, settings = $3, default_owner = $4, updated_at = $5
		WHERE id = $1`,
		t.ID, t.Name, settings, t.DefaultOwner, db.stamp())
	return mustAffect(tag, err, "update tenant", fmt.Sprintf("tenant %q", t.ID), t.ID)
}

func scanTenant(row pgx.Row) (domain.Tenant, error) {
	var (
		t         domain.Tenant
		settings  []byte
		prevUntil *time.Time
	)
	if err := row.Scan(&t.ID, &t.Name, &settings, &t.SecretHash, &t.DefaultOwner, &t.CreatedAt, &t.UpdatedAt,
		&t.PrevSecretHash, &prevUntil); err != nil {
		return domain.Tenant{}, err
	}
	if err := json.Unmarshal(settings, &t.Settings); err != nil {
		return domain.Tenant{}, fmt.Errorf("decode settings of tenant %q: %w", t.ID, err)
	}
	if len(t.SecretHash) == 0 {
		t.SecretHash = nil
	}
	if len(t.PrevSecretHash) == 0 || prevUntil == nil {
		t.PrevSecretHash = nil
	} else {
		t.PrevSecretUntil = prevUntil.UTC()
	}
	t.CreatedAt, t.UpdatedAt = t.CreatedAt.UTC(), t.UpdatedAt.UTC()
	return t, nil
}

// blob keeps a nil hash from encoding as NULL in the NOT NULL column.
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
	_, err := db.pool.Exec(ctx, `INSERT INTO employees
		(tenant_id, crm_user_id, sip, phone, name, email, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, crm_user_id) DO UPDATE SET
			sip = excluded.sip, phone = excluded.phone, name = excluded.name,
			email = excluded.email, updated_at = excluded.updated_at`,
		e.TenantID, e.CRMUserID, e.SIP, e.Phone, e.Name, e.Email, db.stamp())
	return mapErr(err, "put employee", "", e.TenantID)
}

const employeeColumns = `tenant_id, crm_user_id, sip, phone, name, email, updated_at`

// Employee returns one employee. ENOTFOUND if absent.
func (db *DB) Employee(ctx context.Context, tenantID, crmUserID string) (domain.Employee, error) {
	row := db.pool.QueryRow(ctx, `SELECT `+employeeColumns+` FROM employees
		WHERE tenant_id = $1 AND crm_user_id = $2`, tenantID, crmUserID)
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
	rows, _ := db.pool.Query(ctx, `SELECT `+employeeColumns+` FROM employees
		WHERE tenant_id = $1 ORDER BY crm_user_id`, tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Employee, error) { return scanEmployee(r) })
	if err != nil {
		return nil, mapErr(err, "list employees", "", tenantID)
	}
	return out, nil
}

func scanEmployee(row pgx.Row) (domain.Employee, error) {
	var e domain.Employee
	if err := row.Scan(&e.TenantID, &e.CRMUserID, &e.SIP, &e.Phone, &e.Name, &e.Email, &e.UpdatedAt); err != nil {
		return domain.Employee{}, err
	}
	e.UpdatedAt = e.UpdatedAt.UTC()
	return e, nil
}

// DeleteEmployee removes one employee. ENOTFOUND if absent.
func (db *DB) DeleteEmployee(ctx context.Context, tenantID, crmUserID string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM employees WHERE tenant_id = $1 AND crm_user_id = $2`,
		tenantID, crmUserID)
	return mustAffect(tag, err, "delete employee",
		fmt.Sprintf("employee %q of tenant %q", crmUserID, tenantID), tenantID)
}

// PutStop inserts or replaces a stop-list number (kind "" is stored as a
// line); CreatedAt is kept when
// set and stamped with the store's clock when zero. ENOTFOUND if the tenant
// does not exist.
func (db *DB) PutStop(ctx context.Context, s domain.StopEntry) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO stop_list (tenant_id, number, note, created_at, kind)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (tenant_id, number) DO UPDATE SET
			note = excluded.note, created_at = excluded.created_at, kind = excluded.kind`,
		s.TenantID, s.Number, s.Note, db.stampOr(s.CreatedAt), string(stopKind(s.Kind)))
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
	rows, _ := db.pool.Query(ctx, `SELECT tenant_id, number, note, created_at, kind FROM stop_list
		WHERE tenant_id = $1 ORDER BY number`, tenantID)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.StopEntry, error) {
		var s domain.StopEntry
		err := r.Scan(&s.TenantID, &s.Number, &s.Note, &s.CreatedAt, &s.Kind)
		s.CreatedAt = s.CreatedAt.UTC()
		return s, err
	})
	if err != nil {
		return nil, mapErr(err, "list stops", "", tenantID)
	}
	return out, nil
}

// DeleteStop removes a number. ENOTFOUND if absent.
func (db *DB) DeleteStop(ctx context.Context, tenantID, number string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM stop_list WHERE tenant_id = $1 AND number = $2`,
		tenantID, number)
	return mustAffect(tag, err, "delete stop",
		fmt.Sprintf("stop-list number %q of tenant %q", number, tenantID), tenantID)
}

// mustAffect maps err, and turns a statement that touched no row into
// ENOTFOUND for what.
func mustAffect(tag pgconn.CommandTag, err error, op, what, tenantID string) error {
	if err != nil {
		return mapErr(err, op, what, tenantID)
	}
	if tag.RowsAffected() == 0 {
		return mapErr(pgx.ErrNoRows, op, what, tenantID)
	}
	return nil
}

// upsertChunk bounds the rows one statement carries, and so the size of
// the arrays encoded for it.
const upsertChunk = 10_000

// The rows travel as one array per column and unnest back into rows: one
// round trip per chunk, no temporary table, no catalog churn.
const upsertIndexSQL = `INSERT INTO phone_index
	(tenant_id, phone, suffix, kind, entity_id, open, owner_id, name, updated_at, seen_at)
	SELECT *, $10::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
		$6::boolean[], $7::text[], $8::text[], $9::timestamptz[])
	ON CONFLICT (tenant_id, kind, entity_id, phone) DO UPDATE SET
		suffix = excluded.suffix, open = excluded.open, owner_id = excluded.owner_id,
		name = excluded.name, updated_at = excluded.updated_at, seen_at = excluded.seen_at`

type indexKey struct{ tenant, kind, entity, phone string }

// UpsertIndex inserts or replaces the rows in one transaction: either all
// are stored or none; a later row replaces an earlier one with the same
// key. UpdatedAt is kept when set and stamped with the store's clock when
// zero. ENOTFOUND if a row's tenant does not exist.
func (db *DB) UpsertIndex(ctx context.Context, rows []domain.IndexEntry) error {
	if len(rows) == 0 {
		return nil
	}
	rows = lastPerKey(rows)
	now := db.stamp()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		return upsertRows(ctx, tx, rows, now)
	})
	var (
		pe      *pgconn.PgError
		missing string
	)
	if errors.As(err, &pe) && pe.Code == codeForeignKey {
		// The violation does not say which row; find a tenant to name.
		missing = db.missingTenant(ctx, rows)
	}
	return mapErr(err, "upsert index", "", missing)
}

// upsertRows upserts rows, which must not repeat a key (see lastPerKey),
// in tx, a statement per upsertChunk rows; a zero UpdatedAt becomes now,
// and every row is seen now (see FinishFullSync). Errors are the driver's.
func upsertRows(ctx context.Context, tx pgx.Tx, rows []domain.IndexEntry, now time.Time) error {
	n := min(len(rows), upsertChunk)
	var (
		tenant  = make([]string, 0, n)
		phone   = make([]string, 0, n)
		suffix  = make([]string, 0, n)
		kind    = make([]string, 0, n)
		entity  = make([]string, 0, n)
		open    = make([]bool, 0, n)
		owner   = make([]string, 0, n)
		name    = make([]string, 0, n)
		updated = make([]time.Time, 0, n)
	)
	for chunk := range slices.Chunk(rows, upsertChunk) {
		tenant, phone, suffix, kind, entity = tenant[:0], phone[:0], suffix[:0], kind[:0], entity[:0]
		open, owner, name, updated = open[:0], owner[:0], name[:0], updated[:0]
		for i := range chunk {
			r := &chunk[i]
			tenant = append(tenant, r.TenantID)
			phone = append(phone, r.Phone)
			suffix = append(suffix, r.Suffix)
			kind = append(kind, string(r.Kind))
			entity = append(entity, r.EntityID)
			open = append(open, r.Open)
			owner = append(owner, r.OwnerID)
			name = append(name, r.Name)
			if r.UpdatedAt.IsZero() {
				updated = append(updated, now)
			} else {
				updated = append(updated, r.UpdatedAt.UTC().Truncate(time.Microsecond))
			}
		}
		if _, err := tx.Exec(ctx, upsertIndexSQL, tenant, phone, suffix, kind, entity, open, owner, name, updated, now); err != nil {
			return err
		}
	}
	return nil
}

// lastPerKey drops every row that a later row with the same key replaces:
// one INSERT … ON CONFLICT cannot touch a row twice.
func lastPerKey(rows []domain.IndexEntry) []domain.IndexEntry {
	if len(rows) < 2 {
		return rows
	}
	last := make(map[indexKey]int, len(rows))
	for i := range rows {
		r := &rows[i]
		last[indexKey{r.TenantID, string(r.Kind), r.EntityID, r.Phone}] = i
	}
	if len(last) == len(rows) {
		return rows
	}
	out := make([]domain.IndexEntry, 0, len(last))
	for i := range rows {
		r := &rows[i]
		if last[indexKey{r.TenantID, string(r.Kind), r.EntityID, r.Phone}] == i {
			out = append(out, *r)
		}
	}
	return out
}

// missingTenant returns the first tenant of rows that does not exist, or ""
// if it cannot tell.
func (db *DB) missingTenant(ctx context.Context, rows []domain.IndexEntry) string {
	var ids []string
	for i := range rows {
		if !slices.Contains(ids, rows[i].TenantID) {
			ids = append(ids, rows[i].TenantID)
		}
	}
	var id string
	err := db.pool.QueryRow(ctx, `SELECT t FROM unnest($1::text[]) WITH ORDINALITY AS u (t, n)
		WHERE NOT EXISTS (SELECT 1 FROM tenants WHERE id = t) ORDER BY n LIMIT 1`, ids).Scan(&id)
	if err != nil {
		return ""
	}
	return id
}

// DeleteEntity removes every row of one entity and returns the distinct
// suffixes it had, sorted; none if the entity has no rows.
func (db *DB) DeleteEntity(ctx context.Context, tenantID string, kind domain.EntityKind, entityID string) ([]string, error) {
	rows, _ := db.pool.Query(ctx, `DELETE FROM phone_index
		WHERE tenant_id = $1 AND kind = $2 AND entity_id = $3 RETURNING suffix`,
		tenantID, string(kind), entityID)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, mapErr(err, "delete entity", "", tenantID)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// replaceDeleteSQL deletes the rows of the entities named by two parallel
// arrays of kinds and ids, in one statement whatever their number, and
// returns the distinct suffixes the rows had, in byte order.
const replaceDeleteSQL = `WITH gone AS (
		DELETE FROM phone_index p
		USING unnest($2::text[], $3::text[]) AS e (kind, entity_id)
		WHERE p.tenant_id = $1 AND p.kind = e.kind AND p.entity_id = e.entity_id
		RETURNING p.suffix
	)
	SELECT DISTINCT suffix COLLATE "C" FROM gone ORDER BY 1`

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
	kinds, ids := make([]string, len(targets)), make([]string, len(targets))
	for i, e := range targets {
		kinds[i], ids[i] = string(e.Kind), e.ID
	}
	rows = lastPerKey(rows)
	now := db.stamp()
	var removed []string
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Deleting finds no row of an unknown tenant, and with no rows to
		// insert no foreign key would object either.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1`, tenantID).Scan(&one); err != nil {
			return err
		}
		gone, _ := tx.Query(ctx, replaceDeleteSQL, tenantID, kinds, ids)
		var err error
		if removed, err = pgx.CollectRows(gone, pgx.RowTo[string]); err != nil {
			return err
		}
		return upsertRows(ctx, tx, rows, now)
	})
	if err != nil {
		// No rows only comes from the tenant check.
		return nil, mapErr(err, "replace entities", fmt.Sprintf("tenant %q", tenantID), tenantID)
	}
	if len(removed) == 0 {
		return nil, nil
	}
	return removed, nil
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

// LookupSuffix returns the rows of a tenant whose suffix key equals suffix,
// most recently updated first, then by kind, entity id and phone.
func (db *DB) LookupSuffix(ctx context.Context, tenantID, suffix string) ([]domain.IndexEntry, error) {
	rows, err := db.pool.Query(ctx, `SELECT phone, kind, entity_id, open, owner_id, name, updated_at
		FROM phone_index WHERE tenant_id = $1 AND suffix = $2
		ORDER BY updated_at DESC, kind, entity_id, phone`, tenantID, suffix)
	if err != nil {
		return nil, mapErr(err, "lookup suffix", "", tenantID)
	}
	defer rows.Close()
	var out []domain.IndexEntry
	for rows.Next() {
		e := domain.IndexEntry{TenantID: tenantID, Suffix: suffix}
		var kind string
		if err := rows.Scan(&e.Phone, &kind, &e.EntityID, &e.Open, &e.OwnerID, &e.Name, &e.UpdatedAt); err != nil {
			return nil, mapErr(err, "lookup suffix", "", tenantID)
		}
		e.Kind = domain.ParseKind(kind)
		e.UpdatedAt = e.UpdatedAt.UTC()
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr(err, "lookup suffix", "", tenantID)
	}
	return out, nil
}

// ScanIndex calls fn for every row of every tenant ordered by tenant,
// suffix, then most recently updated first, streaming rows as the server
// sends them over one connection. It returns fn's first error as is, or a
// wrapped driver error.
func (db *DB) ScanIndex(ctx context.Context, fn func(domain.IndexEntry) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return mapErr(err, "scan index", "", "")
	}
	defer tx.Rollback(ctx)
	// phone_index_suffix yields exactly this order. Without fresh
	// statistics (right after a bulk load, when instances warm up) the
	// planner prefers a full sort, spilled to disk, that sends no row for
	// seconds; walking the index streams from the first row.
	if _, err := tx.Exec(ctx, `SET LOCAL enable_sort = off`); err != nil {
		return mapErr(err, "scan index", "", "")
	}
	rows, err := tx.Query(ctx, `SELECT tenant_id, phone, suffix, kind, entity_id, open, owner_id, name, updated_at
		FROM phone_index ORDER BY tenant_id, suffix, updated_at DESC, kind, entity_id, phone`)
	if err != nil {
		return mapErr(err, "scan index", "", "")
	}
	defer rows.Close()
	var tenant, kind, lastTenant string
	for rows.Next() {
		var e domain.IndexEntry
		if err := rows.Scan(&tenant, &e.Phone, &e.Suffix, &kind, &e.EntityID, &e.Open, &e.OwnerID, &e.Name, &e.UpdatedAt); err != nil {
			return mapErr(err, "scan index", "", "")
		}
		// Rows arrive grouped by tenant and kinds are few: sharing their
		// strings keeps a million cached rows from holding a million
		// copies.
		if tenant != lastTenant {
			lastTenant = tenant
		}
		e.TenantID = lastTenant
		e.Kind = domain.ParseKind(kind)
		e.UpdatedAt = e.UpdatedAt.UTC()
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
		err = db.pool.QueryRow(ctx, `SELECT count(*) FROM phone_index`).Scan(&n)
	} else {
		err = db.pool.QueryRow(ctx, `SELECT count(*) FROM phone_index WHERE tenant_id = $1`, tenantID).Scan(&n)
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
	err := db.pool.QueryRow(ctx, `INSERT INTO audit_log (tenant_id, actor, action, detail, at)
		VALUES (NULLIF($1, ''), $2, $3, $4, $5) RETURNING id`,
		e.TenantID, e.Actor, e.Action, e.Detail, e.At).Scan(&e.ID)
	if err != nil {
		return domain.AuditEntry{}, mapErr(err, "append audit", "", e.TenantID)
	}
	return e, nil
}

// ListAudit returns up to limit entries of a tenant, newest first; all
// tenants when tenantID is "", no limit when limit <= 0.
func (db *DB) ListAudit(ctx context.Context, tenantID string, limit int) ([]domain.AuditEntry, error) {
	var lim *int // NULL: no limit
	if limit > 0 {
		lim = &limit
	}
	const cols = `SELECT id, coalesce(tenant_id, ''), actor, action, detail, at FROM audit_log`
	var rows pgx.Rows
	if tenantID == "" {
		rows, _ = db.pool.Query(ctx, cols+` ORDER BY id DESC LIMIT $1`, lim)
	} else {
		rows, _ = db.pool.Query(ctx, cols+` WHERE tenant_id = $1 ORDER BY id DESC LIMIT $2`, tenantID, lim)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.AuditEntry, error) {
		var e domain.AuditEntry
		err := r.Scan(&e.ID, &e.TenantID, &e.Actor, &e.Action, &e.Detail, &e.At)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, mapErr(err, "list audit", "", tenantID)
	}
	return out, nil
}

// GetMeta returns the value of key. ENOTFOUND if absent.
func (db *DB) GetMeta(ctx context.Context, key string) (string, error) {
	var v string
	if err := db.pool.QueryRow(ctx, `SELECT value FROM meta WHERE key = $1`, key).Scan(&v); err != nil {
		return "", mapErr(err, "get meta", fmt.Sprintf("meta key %q", key), "")
	}
	return v, nil
}

// SetMetaIfAbsent stores value under key unless the key exists, and
// reports whether it stored it. Errors are wrapped driver errors.
func (db *DB) SetMetaIfAbsent(ctx context.Context, key, value string) (bool, error) {
	tag, err := db.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO NOTHING`, key, value)
	if err != nil {
		return false, mapErr(err, "set meta", "", "")
	}
	return tag.RowsAffected() == 1, nil
}

// SetMeta stores value under key, replacing any previous value. Errors are
// wrapped driver errors.
func (db *DB) SetMeta(ctx context.Context, key, value string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO meta (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return mapErr(err, "set meta", "", "")
}
