-- Identifiers and keys use the "C" collation: byte order, like Go's string
-- comparison and like SQLite, so ListTenants and ScanIndex order the same on
-- both backends whatever the database's locale, and comparisons are cheaper.
-- Times are timestamptz (microsecond precision).

CREATE TABLE tenants (
    id            text COLLATE "C" PRIMARY KEY,
    name          text        NOT NULL,
    settings      jsonb       NOT NULL, -- domain.Settings
    secret_hash   bytea       NOT NULL,
    default_owner text        NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE employees (
    tenant_id   text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    crm_user_id text COLLATE "C" NOT NULL,
    sip         text        NOT NULL,
    phone       text        NOT NULL,
    name        text        NOT NULL,
    email       text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, crm_user_id)
);

CREATE TABLE stop_list (
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    number     text COLLATE "C" NOT NULL,
    note       text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, number)
);

CREATE TABLE phone_index (
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    phone      text COLLATE "C" NOT NULL,
    suffix     text COLLATE "C" NOT NULL,
    kind       text COLLATE "C" NOT NULL,
    entity_id  text COLLATE "C" NOT NULL,
    open       boolean     NOT NULL,
    owner_id   text        NOT NULL,
    name       text        NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, kind, entity_id, phone)
);

-- Serves LookupSuffix and ScanIndex in their exact ORDER BY, so neither
-- sorts; the trailing key columns make the order total.
CREATE INDEX phone_index_suffix
    ON phone_index (tenant_id, suffix, updated_at DESC, kind, entity_id, phone);

-- No foreign key on tenant_id: audit entries outlive their tenant.
CREATE TABLE audit_log (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id text COLLATE "C",
    actor     text        NOT NULL,
    action    text        NOT NULL,
    detail    text        NOT NULL,
    at        timestamptz NOT NULL
);

CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id);

CREATE TABLE meta (
    key   text COLLATE "C" PRIMARY KEY,
    value text NOT NULL
);
