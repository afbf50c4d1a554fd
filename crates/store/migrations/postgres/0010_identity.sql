-- Identity: SCIM provisioning and single sign-on sessions.

-- What the identity provider sent for a user, kept so SCIM reads return it as written.
-- `name` stays the login name (SCIM userName); `deleted_at` marks users deleted through SCIM,
-- who are kept (deactivated, renamed) because audit records and apps still refer to them.
ALTER TABLE principals ADD COLUMN external_id TEXT;
ALTER TABLE principals ADD COLUMN scim TEXT;
ALTER TABLE principals ADD COLUMN updated_at BIGINT;
ALTER TABLE principals ADD COLUMN deleted_at BIGINT;
-- The identity provider's subject (`sub`), linked on the first single sign-on.
ALTER TABLE principals ADD COLUMN oidc_subject TEXT;
CREATE INDEX principals_external ON principals (org_id, external_id);
CREATE UNIQUE INDEX principals_oidc_subject ON principals (org_id, oidc_subject);
-- SCIM's userName is case-insensitive; so is sign-in.
CREATE UNIQUE INDEX principals_name_folded ON principals (org_id, lower(name));

ALTER TABLE groups ADD COLUMN scim TEXT;
ALTER TABLE groups ADD COLUMN updated_at BIGINT;

-- Bearer tokens an org's identity provider provisions with. Stored as SHA-256.
CREATE TABLE scim_tokens (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL REFERENCES orgs (id),
    principal_id TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT,
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id)
);
CREATE INDEX scim_tokens_org ON scim_tokens (org_id);

-- Browser sessions after single sign-on. The cookie holds a random id; only its SHA-256 is here,
-- so a database read does not yield usable sessions.
CREATE TABLE sessions (
    id_hash          BYTEA PRIMARY KEY,
    id               TEXT NOT NULL UNIQUE,
    kind             TEXT NOT NULL CHECK (kind IN ('browser', 'cli')),
    org_id           TEXT NOT NULL,
    principal_id     TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    idle_ms          BIGINT NOT NULL,
    revoked_at       BIGINT,
    mfa              BOOLEAN NOT NULL,
    amr              TEXT NOT NULL,
    acr              TEXT,
    source           TEXT,
    user_agent       TEXT,
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id)
);
CREATE INDEX sessions_principal ON sessions (org_id, principal_id);

-- Sign-ins in flight: what the callback must find to accept the provider's answer.
CREATE TABLE oidc_logins (
    state_hash    BYTEA PRIMARY KEY,
    org_id        TEXT NOT NULL REFERENCES orgs (id),
    nonce         TEXT NOT NULL,
    pkce_verifier TEXT NOT NULL,
    return_to     TEXT,
    -- For the CLI's sign-in: where its loopback listener waits, and the hash of its verifier.
    cli_redirect  TEXT,
    cli_challenge TEXT,
    created_at    BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL
);

-- One-time codes handed to the CLI's loopback listener after sign-in, exchanged (with the
-- CLI's verifier) for a session of kind `cli`.
CREATE TABLE cli_codes (
    code_hash     BYTEA PRIMARY KEY,
    org_id        TEXT NOT NULL,
    principal_id  TEXT NOT NULL,
    challenge     TEXT NOT NULL,
    mfa           BOOLEAN NOT NULL,
    amr           TEXT NOT NULL,
    acr           TEXT,
    expires_at    BIGINT NOT NULL,
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id)
);

-- The CA that signs an org's service identities' client certificates (mTLS). A certificate's
-- URI SAN names the org and the service; it is accepted only if this org's CA issued it.
CREATE TABLE client_cas (
    org_id      TEXT PRIMARY KEY REFERENCES orgs (id),
    pem         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL
);

-- Device-flow sign-ins in flight (RFC 8628): the provider's device authorization response (its
-- device code is a credential for the sign-in, so it stays here, not with the CLI).
CREATE TABLE device_logins (
    id_hash     BYTEA PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES orgs (id),
    response    TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
