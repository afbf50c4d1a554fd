-- OAuth client-credentials secrets of service identities. The client id is the principal's id;
-- the secret is stored as SHA-256 (it is 256-bit random, like API tokens).
CREATE TABLE client_secrets (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    principal_id TEXT NOT NULL,
    secret_hash  BYTEA NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    revoked_at   BIGINT,
    FOREIGN KEY (org_id, principal_id) REFERENCES principals (org_id, id)
);
CREATE INDEX client_secrets_principal ON client_secrets (org_id, principal_id);
