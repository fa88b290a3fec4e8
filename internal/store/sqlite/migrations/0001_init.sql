-- Times are INTEGER Unix microseconds in UTC: exact, compact, and they sort
-- numerically, which the phone index's "most recent first" order relies on.
-- Tables keyed by text are WITHOUT ROWID so the primary key is the table.

CREATE TABLE tenants (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    settings      TEXT    NOT NULL, -- domain.Settings as JSON
    secret_hash   BLOB    NOT NULL,
    default_owner TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE employees (
    tenant_id   TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    crm_user_id TEXT    NOT NULL,
    sip         TEXT    NOT NULL,
    phone       TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, crm_user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE stop_list (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number     TEXT    NOT NULL,
    note       TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, number)
) STRICT, WITHOUT ROWID;

-- The table is clustered in the order LookupSuffix and ScanIndex read it
-- (the key's trailing columns make it total), so a lookup is one range
-- scan and warming the cache is one sequential pass, with no index-to-table
-- seek per row. The unique identity of a row is (tenant_id, kind,
-- entity_id, phone), enforced by the unique constraint upserts target.
CREATE TABLE phone_index (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    phone      TEXT    NOT NULL,
    suffix     TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    entity_id  TEXT    NOT NULL,
    open       INTEGER NOT NULL, -- 0 or 1
    owner_id   TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, suffix, updated_at DESC, kind, entity_id, phone),
    UNIQUE (tenant_id, kind, entity_id, phone)
) STRICT, WITHOUT ROWID;

-- No foreign key on tenant_id: audit entries outlive their tenant.
CREATE TABLE audit_log (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id TEXT,
    actor     TEXT    NOT NULL,
    action    TEXT    NOT NULL,
    detail    TEXT    NOT NULL,
    at        INTEGER NOT NULL
) STRICT;

CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) STRICT, WITHOUT ROWID;
