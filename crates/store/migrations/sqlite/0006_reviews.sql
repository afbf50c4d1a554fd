-- The independent review of each revision, with its signed attestation.
CREATE TABLE reviews (
    org_id           TEXT NOT NULL,
    app_id           TEXT NOT NULL,
    digest           TEXT NOT NULL,
    reviewer         TEXT NOT NULL,
    model            TEXT,
    generating_model TEXT,
    decision         TEXT NOT NULL CHECK (decision IN ('approve', 'reject', 'error')),
    summary          TEXT NOT NULL,
    findings         TEXT NOT NULL,
    error            TEXT,
    attestation      TEXT NOT NULL,
    signature        TEXT NOT NULL,
    key_id           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (org_id, app_id, digest),
    FOREIGN KEY (org_id, app_id, digest) REFERENCES scans (org_id, app_id, digest)
);
