-- Changes announce themselves: triggers append to the change log (which
-- the other processes on the file poll, see internal/notify) inside the
-- transaction that makes the change, so a process that dies after
-- committing cannot leave the others stale, and a change made by hand in
-- the sqlite3 shell is announced too.
--
-- The payload is notify's message without "at" ({"origin","tenant","kind",
-- "keys"}); origin is empty: every process, the writer included, applies
-- it. SQLite's triggers are per row, so a statement touching many rows
-- logs as many entries; the poller merges adjacent ones of a tenant.

CREATE TRIGGER phone_index_announce_insert AFTER INSERT ON phone_index BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'keys', 'keys', json_array(NEW.suffix)),
        CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

-- Only rows whose routing changed: a full sync writes every row again
-- (seen_at), and that alone must not empty the other processes' caches.
CREATE TRIGGER phone_index_announce_update AFTER UPDATE ON phone_index
WHEN OLD.suffix IS NOT NEW.suffix OR OLD.open IS NOT NEW.open OR OLD.owner_id IS NOT NEW.owner_id
    OR OLD.name IS NOT NEW.name OR OLD.updated_at IS NOT NEW.updated_at BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'keys', 'keys',
            CASE WHEN OLD.suffix = NEW.suffix THEN json_array(NEW.suffix) ELSE json_array(OLD.suffix, NEW.suffix) END),
        CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER phone_index_announce_delete AFTER DELETE ON phone_index BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', OLD.tenant_id, 'kind', 'keys', 'keys', json_array(OLD.suffix)),
        CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

-- What a tenant's routing configuration is built from (tenant.Registry):
-- the tenant row, its employees, stop list and CRM users.

CREATE TRIGGER tenants_announce_insert AFTER INSERT ON tenants BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER tenants_announce_update AFTER UPDATE ON tenants BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER tenants_announce_delete AFTER DELETE ON tenants BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', OLD.id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER employees_announce_insert AFTER INSERT ON employees BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER employees_announce_update AFTER UPDATE ON employees BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER employees_announce_delete AFTER DELETE ON employees BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', OLD.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER stop_list_announce_insert AFTER INSERT ON stop_list BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER stop_list_announce_update AFTER UPDATE ON stop_list BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER stop_list_announce_delete AFTER DELETE ON stop_list BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', OLD.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER crm_users_announce_insert AFTER INSERT ON crm_users BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER crm_users_announce_update AFTER UPDATE ON crm_users BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', NEW.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;

CREATE TRIGGER crm_users_announce_delete AFTER DELETE ON crm_users BEGIN
    INSERT INTO change_log (payload, at) VALUES (
        json_object('origin', '', 'tenant', OLD.tenant_id, 'kind', 'tenant'), CAST(unixepoch('subsec') * 1000000 AS INTEGER));
END;
