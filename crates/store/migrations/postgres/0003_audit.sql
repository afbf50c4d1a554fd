-- The audit log: one hash chain per org. Records are appended in the same transaction as the
-- change they describe, so a change without its record can never be committed.

-- The head of each org's chain; its row is the chain's lock.
CREATE TABLE audit_heads (
    org_id TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL,
    -- Records up to anchor_seq were removed by retention; anchor_hash is the hash of that record.
    anchor_seq BIGINT NOT NULL DEFAULT 0,
    anchor_hash TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
);

-- Records live in monthly partitions by record time, so retention drops whole partitions of
-- pruned records instead of deleting rows. Partitions for the months around now are created
-- here and kept ahead by the server's maintenance task; a default partition catches any record
-- outside them, so an append never fails for want of a partition.
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
    -- The record's hash, also inside `record`; kept apart so checkpoints need not parse records.
    hash TEXT NOT NULL,
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

SELECT gatehouse_audit_partitions_ahead(2);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

CREATE FUNCTION gatehouse_audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'audit records are immutable';
    END IF;
    IF OLD.seq > COALESCE((SELECT anchor_seq FROM audit_heads WHERE org_id = OLD.org_id), 0) THEN
        RAISE EXCEPTION 'audit records are removed only by retention';
    END IF;
    RETURN OLD;
END $$;
CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_guard();

CREATE TABLE audit_checkpoints (
    org_id TEXT NOT NULL,
    first_seq BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    head_hash TEXT NOT NULL,
    merkle_root TEXT NOT NULL,
    time BIGINT NOT NULL,
    key_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (org_id, last_seq)
);

-- Where each SIEM export stands, per org and sink.
CREATE TABLE audit_exports (
    org_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0,
    last_success_at BIGINT,
    last_error TEXT,
    last_error_at BIGINT,
    PRIMARY KEY (org_id, sink)
);
