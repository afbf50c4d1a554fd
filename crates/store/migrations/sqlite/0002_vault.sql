-- The vault: named secrets whose versions are sealed with their own data key, wrapped by a
-- key-encryption key (KEK) held by a KMS. The database never holds a usable key.

-- Which KEK an org's new data keys are wrapped with (absent: the deployment default).
CREATE TABLE org_keys (
    org_id       TEXT PRIMARY KEY REFERENCES orgs (id),
    kek_ref      TEXT NOT NULL,
    updated_at   BIGINT NOT NULL,
    destroyed_at BIGINT
);

CREATE TABLE secrets (
    id                TEXT PRIMARY KEY,
    org_id            TEXT NOT NULL REFERENCES orgs (id),
    scope_kind        TEXT NOT NULL CHECK (scope_kind IN ('org', 'folder', 'app')),
    scope_id          TEXT NOT NULL,
    name              TEXT NOT NULL,
    current_version   BIGINT NOT NULL,
    created_by        TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    last_rotated_at   BIGINT NOT NULL,
    last_rotated_by   TEXT NOT NULL,
    last_used_at      BIGINT,
    rotate_every_days BIGINT,
    UNIQUE (org_id, id),
    UNIQUE (org_id, scope_kind, scope_id, name),
    FOREIGN KEY (org_id, created_by) REFERENCES principals (org_id, id)
);

CREATE TABLE secret_versions (
    org_id      TEXT NOT NULL,
    secret_id   TEXT NOT NULL,
    version     BIGINT NOT NULL,
    nonce       BLOB NOT NULL,
    ciphertext  BLOB NOT NULL,
    wrapped_dek BLOB NOT NULL,
    kek_ref     TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, secret_id, version),
    FOREIGN KEY (org_id, secret_id) REFERENCES secrets (org_id, id) ON DELETE CASCADE
);
CREATE INDEX secret_versions_kek ON secret_versions (org_id, kek_ref);
