-- A tenant's connection to its SALESmanago account for the SALESmanago ⇄
-- Zoho CRM contact sync, one per tenant, with the sync's progress.
-- secrets (API key and secret) are sealed by the caller. A NULL time is one
-- that has not happened yet.
CREATE TABLE salesmanago (
    tenant_id    TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url     TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    owner_email  TEXT    NOT NULL,
    secrets      BLOB    NOT NULL,
    state        TEXT    NOT NULL,
    last_error   TEXT    NOT NULL,
    error_at     INTEGER,
    full_done    INTEGER NOT NULL, -- 0 or 1: the first (full) sync finished
    sm_cursor    INTEGER,          -- SALESmanago changes are read from here
    zoho_cursor  INTEGER,          -- Zoho Modified_Time changes are read from here
    last_slot    INTEGER,          -- the last scheduled slot covered
    run_kind     TEXT    NOT NULL,
    run_at       INTEGER,
    run_error    TEXT    NOT NULL,
    to_zoho      INTEGER NOT NULL,
    to_sm        INTEGER NOT NULL,
    conflicts    INTEGER NOT NULL,
    skipped      INTEGER NOT NULL,
    lease_holder TEXT    NOT NULL,
    lease_until  INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- One person kept in step, keyed by e-mail, with what each side held after
-- the last pass (the fingerprints that stop ping-pong and find conflicts).
CREATE TABLE salesmanago_links (
    tenant_id   TEXT    NOT NULL REFERENCES salesmanago (tenant_id) ON DELETE CASCADE,
    email       TEXT    NOT NULL,
    sm_id       TEXT    NOT NULL,
    zoho_module TEXT    NOT NULL,
    zoho_id     TEXT    NOT NULL,
    sm_seen     TEXT    NOT NULL,
    zoho_seen   TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, email)
) STRICT, WITHOUT ROWID;
