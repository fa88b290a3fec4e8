-- Deletions and stale owners (issue 11, items 2 and 8).
--
-- seen_at is when the store last wrote an index row (its clock, Unix
-- microseconds): a full sync rewrites every row the CRM still returns, so
-- at its end the rows of the tenant not seen since it began belong to
-- entities the CRM no longer has. NULL: written before this migration.
ALTER TABLE phone_index ADD COLUMN seen_at INTEGER;

-- full_from is when the running full sync began (NULL when none runs or its
-- start is unknown); reconciled_at is when the last full sync ended with
-- its sweep, from which the next periodic reconciliation is due.
ALTER TABLE integrations ADD COLUMN full_from INTEGER;
ALTER TABLE integrations ADD COLUMN reconciled_at INTEGER;

-- The CRM's users as its users call listed them at the last refresh, so
-- routing can tell deactivated and removed users from active ones.
CREATE TABLE crm_users (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id         TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    active     INTEGER NOT NULL, -- 0 or 1
    listed_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
) STRICT, WITHOUT ROWID;
