-- Who runs a tenant's CRM sync cycle now: one holder at a time, on any
-- instance, until its lease runs out (a crashed holder's lease expires and
-- a survivor resumes from the stored sync position).
CREATE TABLE sync_leases (
    tenant_id text COLLATE "C" NOT NULL PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    holder    text        NOT NULL,
    until     timestamptz NOT NULL
);
