-- Access control: groups, custom roles, role bindings on folders, guardrail policies.
-- Every change to these (and to the folder tree) bumps orgs.authz_version in the same
-- transaction; servers compare it on each request to know their cached snapshot is current.

ALTER TABLE orgs ADD COLUMN authz_version BIGINT NOT NULL DEFAULT 0;

CREATE TABLE groups (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    name         TEXT NOT NULL,
    external_id  TEXT,
    created_at   BIGINT NOT NULL,
    UNIQUE (org_id, name),
    UNIQUE (org_id, id)
);
CREATE UNIQUE INDEX groups_external ON groups (org_id, external_id) WHERE external_id IS NOT NULL;

CREATE TABLE group_members (
    org_id       TEXT NOT NULL,
    group_id     TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    PRIMARY KEY (org_id, group_id, principal_id),
    FOREIGN KEY (org_id, group_id) REFERENCES groups (org_id, id),
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id)
);
CREATE INDEX group_members_principal ON group_members (org_id, principal_id);

-- A custom role: a named set of actions (a JSON array of action names).
CREATE TABLE custom_roles (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    actions     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (org_id, name)
);

-- A role granted to a principal or a group on a folder, and so on everything below it.
CREATE TABLE role_bindings (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    folder_id    TEXT NOT NULL,
    role         TEXT NOT NULL,
    principal_id TEXT,
    group_id     TEXT,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    CHECK ((principal_id IS NULL) <> (group_id IS NULL)),
    FOREIGN KEY (org_id, folder_id) REFERENCES folders (org_id, id),
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id),
    FOREIGN KEY (org_id, group_id) REFERENCES groups (org_id, id)
);
CREATE UNIQUE INDEX role_bindings_unique ON role_bindings (org_id, folder_id, role, COALESCE(principal_id, group_id));

-- A guardrail: one Cedar forbid policy, checked against the schema before it is stored.
CREATE TABLE guardrails (
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    policy      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (org_id, name)
);

-- Principals made before roles existed keep what their maximum scope let them do, as a visible,
-- revocable grant on the root folder.
INSERT INTO role_bindings (id, org_id, folder_id, role, principal_id, group_id, created_at, created_by)
SELECT 'rb_' || md5(random()::text || clock_timestamp()::text || p.id), p.org_id, f.id,
       CASE p.max_scope WHEN 'admin' THEN 'org-admin' WHEN 'write' THEN 'builder' WHEN 'push' THEN 'builder'
                        WHEN 'audit' THEN 'auditor' ELSE 'viewer' END,
       p.id, NULL, p.created_at, p.id
FROM principals p JOIN folders f ON f.org_id = p.org_id AND f.parent_id IS NULL;
