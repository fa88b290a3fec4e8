-- Who runs a tenant's CRM sync cycle now: one holder at a time, on any
-- instance, until its lease runs out (a crashed holder's lease expires and
-- a survivor resumes from the stored sync position).
CREATE TABLE sync_leases (
    tenant_id TEXT    NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    holder    TEXT    NOT NULL,
    until     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Cache and configuration changes announced to the other processes on this
-- file (PostgreSQL uses LISTEN/NOTIFY instead). seq orders them: SQLite has
-- one writer at a time, so a reader never sees a later seq committed before
-- an earlier one; AUTOINCREMENT never reuses a trimmed seq, so a gap means
-- trimmed entries.
CREATE TABLE change_log (
    seq     INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    payload TEXT    NOT NULL,
    at      INTEGER NOT NULL
) STRICT;
