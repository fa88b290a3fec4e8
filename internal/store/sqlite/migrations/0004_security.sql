-- Webhook secret rotation: the secret a rotation replaced keeps working
-- until prev_secret_until (Unix microseconds; 0 = no previous secret).
ALTER TABLE tenants ADD COLUMN prev_secret_hash BLOB NOT NULL DEFAULT x'';
ALTER TABLE tenants ADD COLUMN prev_secret_until INTEGER NOT NULL DEFAULT 0;

-- Admin API tokens besides the bootstrap one (which stays in meta). Only
-- the SHA-256 of a token is kept; a revoked token is kept for the record.
CREATE TABLE admin_tokens (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    scope      TEXT    NOT NULL CHECK (scope IN ('read', 'admin')),
    hash       BLOB    NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER -- NULL while the token is valid
) STRICT, WITHOUT ROWID;
