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
    -- The record exactly as hashed; the columns above are search indexes over it.
    record TEXT NOT NULL,
    -- The record's hash, also inside `record`; kept apart so checkpoints need not parse records.
    hash TEXT NOT NULL,
    PRIMARY KEY (org_id, seq)
);
CREATE INDEX audit_events_by_time ON audit_events (org_id, time);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit records are immutable'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN OLD.seq > COALESCE((SELECT anchor_seq FROM audit_heads WHERE org_id = OLD.org_id), 0)
BEGIN SELECT RAISE(ABORT, 'audit records are removed only by retention'); END;

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
