-- Call events as the PBX posted them. seq orders events of one partition
-- (one client's number); (tenant_id, unique_id, kind) makes the endpoint
-- idempotent. Times are Unix microseconds; processed_at NULL until then.
CREATE TABLE call_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    unique_id    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    partition    TEXT    NOT NULL,
    fields       TEXT    NOT NULL, -- JSON object of strings
    received_at  INTEGER NOT NULL,
    state        TEXT    NOT NULL,
    note         TEXT    NOT NULL,
    attempts     INTEGER NOT NULL,
    retry_at     INTEGER NOT NULL, -- not tried again before this
    processed_at INTEGER,
    UNIQUE (tenant_id, unique_id, kind)
) STRICT;
CREATE INDEX call_events_waiting ON call_events (tenant_id, partition, seq) WHERE state = 'waiting';
CREATE INDEX call_events_state ON call_events (tenant_id, state);

-- Bodies the events endpoint answered 400, for inspection.
CREATE TABLE rejected_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    received_at  INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    body         BLOB    NOT NULL
) STRICT;
CREATE INDEX rejected_events_tenant ON rejected_events (tenant_id, id);

-- CRM creates made for call events, by idempotency key. entity_id is ''
-- while the create is in flight or its answer was lost.
CREATE TABLE crm_writes (
    tenant_id  TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    entity_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key)
) STRICT, WITHOUT ROWID;

-- Who applies a partition's events now: one holder at a time, on any
-- instance, until its lease runs out (a crashed holder's lease expires).
CREATE TABLE event_leases (
    tenant_id TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    partition TEXT    NOT NULL,
    holder    TEXT    NOT NULL,
    until     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, partition)
) STRICT, WITHOUT ROWID;
