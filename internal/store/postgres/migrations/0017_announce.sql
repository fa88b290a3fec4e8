-- Changes announce themselves: triggers send the NOTIFY that tells the
-- other instances (internal/notify) what to drop or reload, inside the
-- transaction that makes the change. PostgreSQL delivers a notification
-- when that transaction commits and never without it, so an instance that
-- dies after committing cannot leave the others stale, and a change made
-- by hand in psql is announced too.
--
-- The payload is notify's message: {"origin","at","tenant","kind","keys"}.
-- origin is empty: every instance, the writer included, applies it.

-- The channel of the instances on a schema; notify.ChannelFor agrees.
CREATE FUNCTION callrouter_channel(sch text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN sch = 'public' THEN 'callrouter_changes'
        WHEN octet_length('callrouter_changes.' || sch) <= 63 THEN 'callrouter_changes.' || sch
        ELSE 'callrouter_changes.' || left(md5(sch), 16)
    END
$$;

-- Announces that a tenant's routing configuration changed. Identical
-- payloads of one transaction are delivered once (now() is the
-- transaction's start), so a statement touching many rows announces once.
CREATE FUNCTION callrouter_announce_tenant(sch text, tenant text) RETURNS void
LANGUAGE sql AS $$
    SELECT pg_notify(callrouter_channel(sch),
        '{"origin":"","at":' || (extract(epoch FROM now()) * 1000000)::bigint ||
        ',"tenant":' || to_json(tenant)::text || ',"kind":"tenant"}')
$$;

-- Announces index keys (national suffixes) of tenants: 200 keys a payload
-- keeps one under PostgreSQL's 8000 bytes; a tenant with more than 64
-- payloads' worth is announced as a flush, as notify's encoder does.
CREATE FUNCTION callrouter_announce_keys(sch text, changed_tenant text[], changed_suffix text[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    ch text := callrouter_channel(sch);
    head text;
    r record;
BEGIN
    FOR r IN
        SELECT t, array_agg(s ORDER BY s) AS keys
        FROM (SELECT DISTINCT t, s FROM unnest(changed_tenant, changed_suffix) AS u (t, s)) d
        GROUP BY t
    LOOP
        head := '{"origin":"","at":' || (extract(epoch FROM now()) * 1000000)::bigint ||
            ',"tenant":' || to_json(r.t)::text;
        IF cardinality(r.keys) > 64 * 200 THEN
            PERFORM pg_notify(ch, head || ',"kind":"flush"}');
            CONTINUE;
        END IF;
        FOR i IN 0 .. (cardinality(r.keys) - 1) / 200 LOOP
            PERFORM pg_notify(ch, head || ',"kind":"keys","keys":[' ||
                (SELECT string_agg(to_json(k)::text, ',') FROM unnest(r.keys[i * 200 + 1 : i * 200 + 200]) AS k) || ']}');
        END LOOP;
    END LOOP;
END
$$;

CREATE FUNCTION callrouter_index_inserted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM callrouter_announce_keys(TG_TABLE_SCHEMA,
        (SELECT array_agg(tenant_id) FROM new_rows), (SELECT array_agg(suffix) FROM new_rows));
    RETURN NULL;
END
$$;

CREATE FUNCTION callrouter_index_deleted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM callrouter_announce_keys(TG_TABLE_SCHEMA,
        (SELECT array_agg(tenant_id) FROM old_rows), (SELECT array_agg(suffix) FROM old_rows));
    RETURN NULL;
END
$$;

-- An update announces only rows whose routing changed: a full sync writes
-- every row again (seen_at), and that alone must not empty the other
-- instances' caches. Both the old and the new suffix are announced.
CREATE FUNCTION callrouter_index_updated() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    ts text[];
    ss text[];
BEGIN
    SELECT array_agg(c.t), array_agg(v.s) INTO ts, ss
    FROM (
        SELECT n.tenant_id AS t, n.suffix AS ns, o.suffix AS os
        FROM new_rows n JOIN old_rows o
            ON o.tenant_id = n.tenant_id AND o.kind = n.kind AND o.entity_id = n.entity_id AND o.phone = n.phone
        WHERE (o.suffix, o.open, o.owner_id, o.name, o.updated_at) IS DISTINCT FROM
              (n.suffix, n.open, n.owner_id, n.name, n.updated_at)
    ) c CROSS JOIN LATERAL (VALUES (c.ns), (c.os)) AS v (s);
    PERFORM callrouter_announce_keys(TG_TABLE_SCHEMA, ts, ss);
    RETURN NULL;
END
$$;

CREATE TRIGGER phone_index_announce_insert AFTER INSERT ON phone_index
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION callrouter_index_inserted();
CREATE TRIGGER phone_index_announce_update AFTER UPDATE ON phone_index
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION callrouter_index_updated();
CREATE TRIGGER phone_index_announce_delete AFTER DELETE ON phone_index
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION callrouter_index_deleted();

-- What a tenant's routing configuration is built from (tenant.Registry):
-- the tenant row, its employees, stop list and CRM users.
-- The trigger's argument names the column that holds the tenant id.
CREATE FUNCTION callrouter_config_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM callrouter_announce_tenant(TG_TABLE_SCHEMA, to_jsonb(OLD) ->> TG_ARGV[0]);
    ELSE
        PERFORM callrouter_announce_tenant(TG_TABLE_SCHEMA, to_jsonb(NEW) ->> TG_ARGV[0]);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER tenants_announce AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION callrouter_config_changed('id');
CREATE TRIGGER employees_announce AFTER INSERT OR UPDATE OR DELETE ON employees
    FOR EACH ROW EXECUTE FUNCTION callrouter_config_changed('tenant_id');
CREATE TRIGGER stop_list_announce AFTER INSERT OR UPDATE OR DELETE ON stop_list
    FOR EACH ROW EXECUTE FUNCTION callrouter_config_changed('tenant_id');
CREATE TRIGGER crm_users_announce AFTER INSERT OR UPDATE OR DELETE ON crm_users
    FOR EACH ROW EXECUTE FUNCTION callrouter_config_changed('tenant_id');
