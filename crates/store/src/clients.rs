//! OAuth client-credentials secrets of service identities, and the principal behind a
//! short-lived access token.

use gatehouse_core::{Credential, OrgId, Principal, PrincipalId, PrincipalKind, Scope, Timestamp, TokenId};
use rand::RngCore;

use crate::principals::hash_secret;
use crate::{AuditCtx, Store, StoreError, TokenRejection, append_audit, on_read, on_write, parse_col, resource};

/// Every client secret starts with this, so secret scanners can recognise a leaked one.
pub const CLIENT_SECRET_PREFIX: &str = "gcs_";

/// A new client secret; the secret is shown once.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NewClientSecret {
    /// The secret's id (for revocation and the audit log).
    pub id: String,
    /// The OAuth `client_id`: the service identity's id.
    pub client_id: PrincipalId,
    /// The OAuth `client_secret`.
    pub client_secret: String,
}

#[derive(sqlx::FromRow)]
struct ClientRow {
    secret_id: String,
    principal_id: String,
    org_id: String,
    kind: String,
    name: String,
    max_scope: String,
    active: bool,
    operator: bool,
    authz_version: i64,
    revoked_at: Option<i64>,
}

const CLIENT_SELECT: &str = "SELECT c.id AS secret_id, p.id AS principal_id, p.org_id, p.kind, p.name, p.max_scope, p.active, \
    o.operator, o.authz_version, c.revoked_at \
    FROM client_secrets c \
    JOIN principals p ON p.org_id = c.org_id AND p.id = c.principal_id \
    JOIN orgs o ON o.id = c.org_id \
    WHERE c.secret_hash = $1";

/// The principal behind an access token, with the secret it was issued against: revoking that
/// secret (or deactivating the principal, which revokes them all) refuses the token at once, and
/// reactivation does not revive it.
const TOKEN_SELECT: &str = "SELECT c.id AS secret_id, p.id AS principal_id, p.org_id, p.kind, p.name, p.max_scope, \
    p.active, o.operator, o.authz_version, c.revoked_at \
    FROM client_secrets c \
    JOIN principals p ON p.org_id = c.org_id AND p.id = c.principal_id \
    JOIN orgs o ON o.id = c.org_id \
    WHERE c.org_id = $1 AND c.principal_id = $2 AND c.id = $3";

impl ClientRow {
    fn principal(self, jti: TokenId, scope: Option<Scope>) -> Result<Result<Principal, TokenRejection>, StoreError> {
        if !self.active {
            return Ok(Err(TokenRejection::Inactive));
        }
        if self.revoked_at.is_some() {
            return Ok(Err(TokenRejection::Revoked));
        }
        let max_scope: Scope = parse_col("principals.max_scope", &self.max_scope)?;
        Ok(Ok(Principal {
            id: parse_col("principals.id", &self.principal_id)?,
            org_id: parse_col("principals.org_id", &self.org_id)?,
            kind: parse_col::<PrincipalKind>("principals.kind", &self.kind)?,
            name: self.name,
            token_id: jti,
            scope: scope.map_or(max_scope, |s| s.min(max_scope)),
            credential: Credential::ClientCredentials,
            operator: self.operator,
            authz_version: self.authz_version,
            sign_in: None,
        }))
    }
}

impl Store {
    /// Issues a client secret for service identity `principal`. Earlier secrets stay valid
    /// (so a secret can be rotated without downtime) until the principal is deactivated.
    pub async fn create_client_secret(
        &self,
        org: &OrgId,
        principal: &PrincipalId,
        audit: &AuditCtx,
    ) -> Result<NewClientSecret, StoreError> {
        let record = self.get_principal(org, principal).await?;
        if record.kind != PrincipalKind::Service {
            return Err(StoreError::Invalid(
                "client credentials are for service identities; people sign in through the identity provider"
                    .to_owned(),
            ));
        }
        if !record.active {
            return Err(StoreError::Invalid("the principal is deactivated".to_owned()));
        }
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let secret = format!("{CLIENT_SECRET_PREFIX}{}", hex::encode(raw));
        let id = format!("cs_{}", uuid_like());
        let event = audit.event(
            "principal.client_secret.create",
            resource("principal", principal.as_str()),
            serde_json::json!({"client_secret_id": id}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO client_secrets (id, org_id, principal_id, secret_hash, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(org.as_str())
            .bind(principal.as_str())
            .bind(hash_secret(&secret).to_vec())
            .bind(Timestamp::now().as_millis())
            .bind(&audit.actor.who.id)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(NewClientSecret { id, client_id: principal.clone(), client_secret: secret })
    }

    /// Checks a client id and secret: the principal an access token issued now would carry, and
    /// the secret's id (which the token names, so revoking the secret refuses the token).
    pub async fn client_credentials(
        &self,
        client_id: &str,
        secret: &str,
        jti: TokenId,
        scope: Option<Scope>,
    ) -> Result<Result<(Principal, String), TokenRejection>, StoreError> {
        if !secret.starts_with(CLIENT_SECRET_PREFIX) {
            return Ok(Err(TokenRejection::Unknown));
        }
        let hash = hash_secret(secret).to_vec();
        let row: Option<ClientRow> =
            on_read!(self, |pool| sqlx::query_as(CLIENT_SELECT).bind(&hash).fetch_optional(pool).await?);
        match row {
            Some(row) if row.principal_id == client_id => {
                let secret_id = row.secret_id.clone();
                Ok(row.principal(jti, scope)?.map(|p| (p, secret_id)))
            }
            _ => Ok(Err(TokenRejection::Unknown)),
        }
    }

    /// The principal behind a verified access token, read fresh on every request so that
    /// deactivation or revoking the secret refuses its access tokens at once.
    pub async fn access_token_principal(
        &self,
        org: &OrgId,
        principal: &PrincipalId,
        secret_id: &str,
        jti: TokenId,
        scope: Scope,
    ) -> Result<Result<Principal, TokenRejection>, StoreError> {
        let row: Option<ClientRow> = on_read!(self, |pool| sqlx::query_as(TOKEN_SELECT)
            .bind(org.as_str())
            .bind(principal.as_str())
            .bind(secret_id)
            .fetch_optional(pool)
            .await?);
        match row {
            Some(row) => row.principal(jti, Some(scope)),
            None => Ok(Err(TokenRejection::Unknown)),
        }
    }
}

fn uuid_like() -> String {
    let mut raw = [0u8; 16];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

/// An org's client CA for mTLS.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ClientCa {
    /// The CA certificate(s), PEM.
    pub pem: String,
    /// SHA-256 of the first certificate's DER, hex.
    pub fingerprint: String,
    /// When it was set.
    pub created_at: Timestamp,
    /// Who set it.
    pub created_by: String,
}

impl Store {
    /// Sets (or replaces) the CA that issues `org`'s service identities' client certificates.
    /// The caller has checked that `pem` holds CA certificates.
    pub async fn set_client_ca(
        &self,
        org: &OrgId,
        pem: &str,
        fingerprint: &str,
        audit: &AuditCtx,
    ) -> Result<ClientCa, StoreError> {
        let now = Timestamp::now();
        let event =
            audit.event("mtls.ca.set", resource("org", org.as_str()), serde_json::json!({"fingerprint": fingerprint}));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM client_cas WHERE org_id = $1").bind(org.as_str()).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO client_cas (org_id, pem, fingerprint, created_at, created_by) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(org.as_str())
            .bind(pem)
            .bind(fingerprint)
            .bind(now.as_millis())
            .bind(&audit.actor.who.id)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(ClientCa {
            pem: pem.to_owned(),
            fingerprint: fingerprint.to_owned(),
            created_at: now,
            created_by: audit.actor.who.id.clone(),
        })
    }

    /// `org`'s client CA, if one is set.
    pub async fn client_ca(&self, org: &OrgId) -> Result<Option<ClientCa>, StoreError> {
        let row: Option<(String, String, i64, String)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT pem, fingerprint, created_at, created_by FROM client_cas WHERE org_id = $1"
        )
        .bind(org.as_str())
        .fetch_optional(pool)
        .await?);
        Ok(row.map(|(pem, fingerprint, c, by)| ClientCa {
            pem,
            fingerprint,
            created_at: Timestamp::from_millis(c),
            created_by: by,
        }))
    }

    /// Removes `org`'s client CA: no client certificate authenticates any more.
    pub async fn remove_client_ca(&self, org: &OrgId, audit: &AuditCtx) -> Result<(), StoreError> {
        let event = audit.event("mtls.ca.remove", resource("org", org.as_str()), serde_json::json!({}));
        let found = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM client_cas WHERE org_id = $1")
                .bind(org.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                append_audit!(tx, vec![event])?;
            }
            tx.commit().await?;
            n > 0
        });
        if !found {
            return Err(StoreError::not_found("client CA", org.as_str()));
        }
        Ok(())
    }

    /// The service identity `name` of `org` behind a verified client certificate, as a
    /// principal; `Err` when there is none, it is not a service, or it is deactivated.
    pub async fn mtls_principal(
        &self,
        org: &gatehouse_core::Org,
        name: &str,
        cert_id: TokenId,
    ) -> Result<Result<Principal, TokenRejection>, StoreError> {
        let record = match self.principal_by_name(&org.id, name).await {
            Ok(r) => r,
            Err(StoreError::NotFound { .. }) => return Ok(Err(TokenRejection::Unknown)),
            Err(e) => return Err(e),
        };
        if record.kind != PrincipalKind::Service {
            return Ok(Err(TokenRejection::Unknown));
        }
        if !record.active {
            return Ok(Err(TokenRejection::Inactive));
        }
        let version = self.authz_version(&org.id).await?;
        Ok(Ok(Principal {
            id: record.id,
            org_id: org.id.clone(),
            kind: PrincipalKind::Service,
            name: record.name,
            token_id: cert_id,
            scope: record.max_scope,
            credential: Credential::Mtls,
            operator: org.operator,
            authz_version: version,
            sign_in: None,
        }))
    }
}
