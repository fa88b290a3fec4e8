-- Route decisions kept for the routing report (issue 14, item 5): one per
-- call id the PBX sent with its route request, the first one made, joined
-- later with the call's call_answered and call_end events by
-- (tenant_id, unique_id). owner_id is the CRM user the call was routed to
-- ('' for no forward). Times are Unix microseconds. Deleted with the
-- tenant and, like finished events, after the tenant's retention.
CREATE TABLE route_decisions (
    tenant_id TEXT    NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    call_id   TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    owner_id  TEXT    NOT NULL,
    target    TEXT    NOT NULL,
    reason    TEXT    NOT NULL,
    PRIMARY KEY (tenant_id, call_id)
) STRICT;
CREATE INDEX route_decisions_at ON route_decisions (tenant_id, at);
