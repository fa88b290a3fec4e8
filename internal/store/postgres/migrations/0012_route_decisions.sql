-- Route decisions kept for the routing report (issue 14, item 5): one per
-- call id the PBX sent with its route request, the first one made, joined
-- later with the call's call_answered and call_end events by
-- (tenant_id, unique_id). call_id has the default collation, as
-- call_events.unique_id does, so the join compares like with like.
-- owner_id is the CRM user the call was routed to ('' for no forward).
-- Deleted with the tenant and, like finished events, after the tenant's
-- retention.
CREATE TABLE route_decisions (
    tenant_id text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id   text        NOT NULL,
    at        timestamptz NOT NULL,
    owner_id  text        NOT NULL,
    target    text        NOT NULL,
    reason    text        NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
);
CREATE INDEX route_decisions_at ON route_decisions (tenant_id, at);
