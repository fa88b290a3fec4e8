-- Webhook secret rotation: the secret a rotation replaced keeps working
-- until prev_secret_until (NULL = no previous secret).
ALTER TABLE tenants
    ADD COLUMN prev_secret_hash  bytea NOT NULL DEFAULT '\x',
    ADD COLUMN prev_secret_until timestamptz;

-- Admin API tokens besides the bootstrap one (which stays in meta). Only
-- the SHA-256 of a token is kept; a revoked token is kept for the record.
CREATE TABLE admin_tokens (
    id         text COLLATE "C" PRIMARY KEY,
    name       text        NOT NULL,
    scope      text        NOT NULL CHECK (scope IN ('read', 'admin')),
    hash       bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL,
    revoked_at timestamptz -- NULL while the token is valid
);
