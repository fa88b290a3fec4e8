-- A tenant's CRM connection and its sync state, one per tenant. Creds and
-- token are sealed by the caller. A NULL token is a CRM without tokens; a
-- NULL time is one that has not happened yet.
CREATE TABLE integrations (
    tenant_id     text COLLATE "C" PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    crm           text        NOT NULL,
    base_url      text        NOT NULL,
    creds         bytea       NOT NULL,
    token         bytea,
    token_version bigint      NOT NULL, -- compare-and-swap version of token
    state         text        NOT NULL,
    last_error    text        NOT NULL,
    phase         text        NOT NULL,
    cursor        text        NOT NULL,
    synced        integer     NOT NULL,
    last_sync_at  timestamptz,
    success_at    timestamptz,
    error_at      timestamptz,
    updated_at    timestamptz NOT NULL
);
