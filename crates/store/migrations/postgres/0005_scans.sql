-- Commit-time scanning: one scan per revision (a durable queue), its findings, the blocking
-- policy (org-wide and per-folder overrides), and suppressions of single findings.
CREATE TABLE scans (
    org_id        TEXT NOT NULL,
    app_id        TEXT NOT NULL,
    digest        TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    queued_at     BIGINT NOT NULL,
    started_at    BIGINT,
    finished_at   BIGINT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    error         TEXT,
    scanner       TEXT,
    files_scanned BIGINT,
    bytes_scanned BIGINT,
    duration_ms   BIGINT,
    PRIMARY KEY (org_id, app_id, digest),
    FOREIGN KEY (org_id, app_id, digest) REFERENCES revisions (org_id, app_id, digest)
);
CREATE INDEX scans_queue ON scans (status, queued_at);

-- Revisions pushed before scanning existed are scanned once after the upgrade.
INSERT INTO scans (org_id, app_id, digest, status, queued_at)
    SELECT org_id, app_id, digest, 'queued', created_at FROM revisions;

CREATE TABLE scan_findings (
    org_id      TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    rule_id     TEXT NOT NULL,
    title       TEXT NOT NULL,
    severity    TEXT NOT NULL CHECK (severity IN ('low', 'medium', 'high', 'critical')),
    path        TEXT NOT NULL,
    line        BIGINT NOT NULL,
    col         BIGINT NOT NULL,
    end_line    BIGINT NOT NULL,
    end_col     BIGINT NOT NULL,
    fingerprint TEXT,
    preview     TEXT,
    PRIMARY KEY (org_id, app_id, digest, seq),
    FOREIGN KEY (org_id, app_id, digest) REFERENCES scans (org_id, app_id, digest)
);

-- folder_id '' is the org-wide policy; a folder's row overrides it for everything below.
CREATE TABLE scan_policies (
    org_id     TEXT NOT NULL,
    folder_id  TEXT NOT NULL,
    block_at   TEXT NOT NULL CHECK (block_at IN ('low', 'medium', 'high', 'critical')),
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (org_id, folder_id)
);

CREATE TABLE scan_suppressions (
    org_id      TEXT NOT NULL,
    id          TEXT NOT NULL,
    app_id      TEXT NOT NULL,
    fingerprint TEXT,
    rule_id     TEXT,
    path        TEXT,
    reason      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT,
    revoked_by  TEXT,
    PRIMARY KEY (org_id, id),
    FOREIGN KEY (org_id, app_id) REFERENCES apps (org_id, id),
    CHECK (fingerprint IS NOT NULL OR (rule_id IS NOT NULL AND path IS NOT NULL))
);
CREATE INDEX scan_suppressions_app ON scan_suppressions (org_id, app_id);
