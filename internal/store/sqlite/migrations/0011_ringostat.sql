-- A tenant's connection to its Ringostat project's API, one per tenant, and
-- the progress of what callrouter does with it: the contacts push to Smart
-- Phone and the call-log reconciliation. auth_key is sealed by the caller.
-- A NULL time is one that has not happened yet.
CREATE TABLE ringostat (
    tenant_id        TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url         TEXT    NOT NULL,
    project_id       TEXT    NOT NULL,
    auth_key         BLOB    NOT NULL,
    state            TEXT    NOT NULL,
    last_error       TEXT    NOT NULL,
    error_at         INTEGER,
    push_cursor      TEXT    NOT NULL, -- last entity of the full push, '' before the first
    push_done        INTEGER NOT NULL, -- 0 or 1: the full push finished
    pushed           INTEGER NOT NULL,
    push_error       TEXT    NOT NULL,
    push_at          INTEGER,
    reconciled_until INTEGER,          -- end of the last call-log window read
    recovered        INTEGER NOT NULL,
    reconcile_error  TEXT    NOT NULL,
    reconcile_at     INTEGER,
    lease_holder     TEXT    NOT NULL,
    lease_until      INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
