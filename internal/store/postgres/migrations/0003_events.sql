-- Call events as the PBX posted them. seq orders events of one partition
-- (one client's number); (tenant_id, unique_id, kind) makes the endpoint
-- idempotent.
CREATE TABLE call_events (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id           text COLLATE "C" NOT NULL UNIQUE,
    tenant_id    text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    unique_id    text        NOT NULL,
    kind         text        NOT NULL,
    partition    text COLLATE "C" NOT NULL,
    fields       text        NOT NULL, -- JSON object of strings (text: jsonb refuses \u0000)
    received_at  timestamptz NOT NULL,
    state        text        NOT NULL,
    note         text        NOT NULL,
    attempts     integer     NOT NULL,
    retry_at     timestamptz NOT NULL, -- not tried again before this
    processed_at timestamptz,
    UNIQUE (tenant_id, unique_id, kind)
);
CREATE INDEX call_events_waiting ON call_events (tenant_id, partition, seq) WHERE state = 'waiting';
CREATE INDEX call_events_state ON call_events (tenant_id, state);

-- Bodies the events endpoint answered 400, for inspection.
CREATE TABLE rejected_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    received_at  timestamptz NOT NULL,
    reason       text        NOT NULL,
    content_type text        NOT NULL,
    body         bytea       NOT NULL
);
CREATE INDEX rejected_events_tenant ON rejected_events (tenant_id, id);

-- CRM creates made for call events, by idempotency key. entity_id is ''
-- while the create is in flight or its answer was lost.
CREATE TABLE crm_writes (
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key        text COLLATE "C" NOT NULL,
    kind       text        NOT NULL,
    entity_id  text        NOT NULL,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Who applies a partition's events now: one holder at a time, on any
-- instance, until its lease runs out (a crashed holder's lease expires).
CREATE TABLE event_leases (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    partition text COLLATE "C" NOT NULL,
    holder    text        NOT NULL,
    until     timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, partition)
);
