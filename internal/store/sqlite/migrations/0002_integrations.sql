-- A tenant's CRM connection and its sync state, one per tenant. Creds and
-- token are sealed by the caller. A NULL token is a CRM without tokens; a
-- NULL time is one that has not happened yet.
CREATE TABLE integrations (
    tenant_id     TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    crm           TEXT    NOT NULL,
    base_url      TEXT    NOT NULL,
    creds         BLOB    NOT NULL,
    token         BLOB,
    token_version INTEGER NOT NULL, -- compare-and-swap version of token
    state         TEXT    NOT NULL,
    last_error    TEXT    NOT NULL,
    phase         TEXT    NOT NULL,
    cursor        TEXT    NOT NULL,
    synced        INTEGER NOT NULL,
    last_sync_at  INTEGER,
    success_at    INTEGER,
    error_at      INTEGER,
    updated_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
