-- Foundation schema: tenants, principals, tokens, folders, apps, immutable revisions.
-- Every tenant-owned table carries org_id, and references between tenant rows include org_id
-- so a row can never point into another tenant.

CREATE TABLE orgs (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    operator     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT NOT NULL
);

CREATE TABLE principals (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'service')),
    name         TEXT NOT NULL,
    display_name TEXT NOT NULL,
    max_scope    TEXT NOT NULL CHECK (max_scope IN ('read', 'push', 'write', 'admin')),
    active       BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    name         TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL UNIQUE,
    scope        TEXT NOT NULL CHECK (scope IN ('read', 'push', 'write', 'admin')),
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id),
    FOREIGN KEY (org_id, created_by) REFERENCES principals (org_id, id)
);
CREATE INDEX api_tokens_principal ON api_tokens (org_id, principal_id);

CREATE TABLE folders (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    parent_id  TEXT,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (org_id, id),
    UNIQUE (org_id, parent_id, name),
    FOREIGN KEY (org_id, parent_id) REFERENCES folders (org_id, id)
);
CREATE UNIQUE INDEX folders_one_root ON folders (org_id) WHERE parent_id IS NULL;

CREATE TABLE apps (
    id            TEXT PRIMARY KEY,
    org_id        TEXT NOT NULL,
    folder_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    owner_id      TEXT NOT NULL,
    sensitivity   TEXT NOT NULL CHECK (sensitivity IN ('low', 'normal', 'high')),
    status        TEXT NOT NULL CHECK (status IN ('active', 'archived')),
    description   TEXT,
    head_revision TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (org_id, name),
    UNIQUE (org_id, id),
    FOREIGN KEY (org_id, folder_id) REFERENCES folders (org_id, id),
    FOREIGN KEY (org_id, owner_id) REFERENCES principals (org_id, id)
);
CREATE INDEX apps_folder ON apps (org_id, folder_id);

-- Content-addressed archives, per tenant so one org can never learn of another's content.
CREATE TABLE blobs (
    org_id     TEXT NOT NULL REFERENCES orgs (id),
    digest     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    data       BYTEA NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, digest)
);

CREATE TABLE revisions (
    org_id        TEXT NOT NULL,
    app_id        TEXT NOT NULL,
    digest        TEXT NOT NULL,
    number        BIGINT NOT NULL,
    parent_digest TEXT,
    author_id     TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    ai_agent      TEXT,
    ai_model      TEXT,
    ai_prompt_ids TEXT NOT NULL,
    message       TEXT,
    file_count    BIGINT NOT NULL,
    content_bytes BIGINT NOT NULL,
    archive_bytes BIGINT NOT NULL,
    manifest      TEXT NOT NULL,
    PRIMARY KEY (org_id, app_id, digest),
    UNIQUE (org_id, app_id, number),
    FOREIGN KEY (org_id, app_id) REFERENCES apps (org_id, id),
    FOREIGN KEY (org_id, digest) REFERENCES blobs (org_id, digest),
    FOREIGN KEY (org_id, author_id) REFERENCES principals (org_id, id)
);

-- Revisions and their archives are immutable evidence: refuse changes at the lowest level.
CREATE FUNCTION gatehouse_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'GH001';
END;
$$;
CREATE TRIGGER revisions_immutable BEFORE UPDATE OR DELETE ON revisions
    FOR EACH ROW EXECUTE FUNCTION gatehouse_immutable();
CREATE TRIGGER blobs_immutable BEFORE UPDATE ON blobs
    FOR EACH ROW EXECUTE FUNCTION gatehouse_immutable();
