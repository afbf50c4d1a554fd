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
