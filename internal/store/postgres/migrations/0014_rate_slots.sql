-- Rate-limit slots of each CRM account, shared by every instance on this
-- database: a slot is busy until busy_until, by the database's clock.
CREATE TABLE crm_rate_slots (
    account    text        NOT NULL,
    slot       integer     NOT NULL,
    busy_until timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (account, slot)
);
