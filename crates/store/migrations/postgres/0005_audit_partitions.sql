-- Audit records in monthly partitions by record time, so retention drops whole partitions of
-- pruned records instead of deleting rows. Partitions for the months around now are created here
-- and kept ahead by the server's maintenance task; a default partition catches any record outside
-- them, so an append never fails for want of a partition.
ALTER TABLE audit_events RENAME TO audit_events_unpartitioned;
DROP TRIGGER audit_events_guard ON audit_events_unpartitioned;
ALTER INDEX audit_events_by_time RENAME TO audit_events_unpartitioned_by_time;
ALTER TABLE audit_events_unpartitioned RENAME CONSTRAINT audit_events_pkey TO audit_events_unpartitioned_pkey;

CREATE TABLE audit_events (
    org_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    time BIGINT NOT NULL,
    action TEXT NOT NULL,
    outcome TEXT NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    resource_kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    record TEXT NOT NULL,
    -- The partition key must be part of the key; (org_id, seq) stays unique because sequence
    -- numbers are only ever reserved under the org's locked head row.
    PRIMARY KEY (org_id, seq, time)
) PARTITION BY RANGE (time);
CREATE INDEX audit_events_by_time ON audit_events (org_id, time);

-- Creates the partition for the month starting at `m` (UTC) unless it exists. If the default
-- partition already holds records of that month, the partition cannot be attached: those records
-- stay in the default partition (retention deletes them row by row) and a warning says so.
CREATE FUNCTION gatehouse_audit_partition(m date) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    name text := 'audit_events_p' || to_char(m, 'YYYYMM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_events FOR VALUES FROM (%s) TO (%s)', name,
            (extract(epoch FROM m::timestamp) * 1000)::bigint,
            (extract(epoch FROM (m + interval '1 month')::timestamp) * 1000)::bigint);
    END IF;
EXCEPTION WHEN others THEN
    RAISE WARNING 'audit partition % not created: %', name, SQLERRM;
END $$;

-- Partitions from this month to `months` ahead.
CREATE FUNCTION gatehouse_audit_partitions_ahead(months int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
    FOR i IN 0..months LOOP
        PERFORM gatehouse_audit_partition((m + make_interval(months => i))::date);
    END LOOP;
END $$;

-- Drops monthly partitions that end at or before `cutoff` and hold only records at or below
-- their org's retention anchor; returns how many records went with them.
CREATE FUNCTION gatehouse_audit_drop_pruned(cutoff bigint) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    r record;
    upper_bound bigint;
    n bigint;
    dropped bigint := 0;
BEGIN
    FOR r IN SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'audit_events'::regclass AND c.relname ~ '^audit_events_p[0-9]{6}$' LOOP
        upper_bound := (extract(epoch FROM (to_date(substr(r.name, 15), 'YYYYMM') + interval '1 month')::timestamp) * 1000)::bigint;
        CONTINUE WHEN upper_bound > cutoff;
        EXECUTE format('SELECT count(*) FROM %I e WHERE e.seq > COALESCE((SELECT h.anchor_seq FROM audit_heads h WHERE h.org_id = e.org_id), 0)', r.name) INTO n;
        CONTINUE WHEN n > 0;
        EXECUTE format('SELECT count(*) FROM %I', r.name) INTO n;
        EXECUTE format('DROP TABLE %I', r.name);
        dropped := dropped + n;
    END LOOP;
    RETURN dropped;
END $$;

DO $$
DECLARE
    m date := date_trunc('month', to_timestamp(COALESCE((SELECT MIN(time) FROM audit_events_unpartitioned),
        (extract(epoch FROM now()) * 1000)::bigint) / 1000.0) AT TIME ZONE 'UTC')::date;
BEGIN
    WHILE m <= (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months')::date LOOP
        PERFORM gatehouse_audit_partition(m);
        m := (m + interval '1 month')::date;
    END LOOP;
END $$;
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

INSERT INTO audit_events SELECT org_id, seq, time, action, outcome, actor_id, actor_name, resource_kind,
    resource_id, record FROM audit_events_unpartitioned;
DROP TABLE audit_events_unpartitioned;

CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_guard();
