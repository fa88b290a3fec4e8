-- A tenant's connection to its Ringostat project's API, one per tenant, and
-- the progress of what callrouter does with it: the contacts push to Smart
-- Phone and the call-log reconciliation. auth_key is sealed by the caller.
-- A NULL time is one that has not happened yet.
CREATE TABLE ringostat (
    tenant_id        text COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url         text        NOT NULL,
    project_id       text        NOT NULL,
    auth_key         bytea       NOT NULL,
    state            text        NOT NULL,
    last_error       text        NOT NULL,
    error_at         timestamptz,
    push_cursor      text        NOT NULL, -- last entity of the full push, '' before the first
    push_done        boolean     NOT NULL, -- the full push finished
    pushed           bigint      NOT NULL,
    push_error       text        NOT NULL,
    push_at          timestamptz,
    reconciled_until timestamptz,          -- end of the last call-log window read
    recovered        bigint      NOT NULL,
    reconcile_error  text        NOT NULL,
    reconcile_at     timestamptz,
    lease_holder     text        NOT NULL,
    lease_until      timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
