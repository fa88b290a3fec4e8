-- Finished call events are counted as they finish and deleted after their
-- retention, so /status and the sweep cost the same after a year of history
-- as on the first day: waiting events are read through partial indexes,
-- finished ones through these counters, kept by triggers in the transaction
-- that changes an event's state.
CREATE TABLE event_state_counts (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    state     text   NOT NULL,
    n         bigint NOT NULL,
    PRIMARY KEY (tenant_id, state)
);
INSERT INTO event_state_counts (tenant_id, state, n)
SELECT tenant_id, state, count(*) FROM call_events WHERE state <> 'waiting' GROUP BY tenant_id, state;

CREATE FUNCTION call_events_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.state <> 'waiting' THEN
        UPDATE event_state_counts SET n = n - 1 WHERE tenant_id = OLD.tenant_id AND state = OLD.state;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.state <> 'waiting' THEN
        INSERT INTO event_state_counts (tenant_id, state, n) VALUES (NEW.tenant_id, NEW.state, 1)
        ON CONFLICT (tenant_id, state) DO UPDATE SET n = event_state_counts.n + 1;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER call_events_count_insert AFTER INSERT ON call_events
    FOR EACH ROW WHEN (NEW.state <> 'waiting') EXECUTE FUNCTION call_events_count();
CREATE TRIGGER call_events_count_update AFTER UPDATE OF state ON call_events
    FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state) EXECUTE FUNCTION call_events_count();
CREATE TRIGGER call_events_count_delete AFTER DELETE ON call_events
    FOR EACH ROW WHEN (OLD.state <> 'waiting') EXECUTE FUNCTION call_events_count();

-- The backlog's age, and the retention sweep's way to the oldest finished
-- events.
CREATE INDEX call_events_waiting_age ON call_events (tenant_id, received_at) WHERE state = 'waiting';
CREATE INDEX call_events_finished_age ON call_events (tenant_id, received_at) WHERE state <> 'waiting';
CREATE INDEX crm_writes_age ON crm_writes (tenant_id, created_at);
