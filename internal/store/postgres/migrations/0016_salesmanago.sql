-- A tenant's connection to its SALESmanago account for the SALESmanago ⇄
-- Zoho CRM contact sync, one per tenant, with the sync's progress.
-- secrets (API key and secret) are sealed by the caller. A NULL time is one
-- that has not happened yet.
CREATE TABLE salesmanago (
    tenant_id    text COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    base_url     text        NOT NULL,
    client_id    text        NOT NULL,
    owner_email  text        NOT NULL,
    secrets      bytea       NOT NULL,
    state        text        NOT NULL,
    last_error   text        NOT NULL,
    error_at     timestamptz,
    full_done    boolean     NOT NULL, -- the first (full) sync finished
    sm_cursor    timestamptz,          -- SALESmanago changes are read from here
    zoho_cursor  timestamptz,          -- Zoho Modified_Time changes are read from here
    last_slot    timestamptz,          -- the last scheduled slot covered
    run_kind     text        NOT NULL,
    run_at       timestamptz,
    run_error    text        NOT NULL,
    to_zoho      bigint      NOT NULL,
    to_sm        bigint      NOT NULL,
    conflicts    bigint      NOT NULL,
    skipped      bigint      NOT NULL,
    lease_holder text        NOT NULL,
    lease_until  timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- One person kept in step, keyed by e-mail, with what each side held after
-- the last pass (the fingerprints that stop ping-pong and find conflicts).
CREATE TABLE salesmanago_links (
    tenant_id   text COLLATE "C" NOT NULL REFERENCES salesmanago (tenant_id) ON DELETE CASCADE,
    email       text COLLATE "C" NOT NULL,
    sm_id       text        NOT NULL,
    zoho_module text        NOT NULL,
    zoho_id     text        NOT NULL,
    sm_seen     text        NOT NULL,
    zoho_seen   text        NOT NULL,
    updated_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, email)
);
