//! Principals (users and service identities) and their API tokens.

use std::time::Duration;

use gatehouse_core::{
    ApiToken, NewToken, OrgId, Principal, PrincipalId, PrincipalKind, PrincipalRecord, Scope, Timestamp, TokenId,
    validate_slug,
};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col, resource};

/// Every token secret starts with this, so secret scanners can recognise a leaked one.
pub const TOKEN_PREFIX: &str = "gat_";

/// How often `last_used_at` is refreshed at most, to keep reads from becoming writes.
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

/// What is needed to create a principal.
#[derive(Debug, Clone)]
pub struct NewPrincipal {
    /// Person or service.
    pub kind: PrincipalKind,
    /// Email for users, slug for services.
    pub name: String,
    /// Name for people.
    pub display_name: Option<String>,
    /// The most its tokens may carry.
    pub max_scope: Scope,
}

/// Why a presented token does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRejection {
    /// No token with that secret exists.
    Unknown,
    /// The token's expiry has passed.
    Expired,
    /// The token was revoked.
    Revoked,
    /// The token's principal was deactivated.
    Inactive,
}

macro_rules! insert_principal_sql {
    ($p:expr) => {
        sqlx::query(
            "INSERT INTO principals (id, org_id, kind, name, display_name, max_scope, active, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind($p.id.as_str())
        .bind($p.org_id.as_str())
        .bind($p.kind.as_str())
        .bind(&$p.name)
        .bind(&$p.display_name)
        .bind($p.max_scope.as_str())
        .bind($p.active)
        .bind($p.created_at.as_millis())
    };
}

macro_rules! insert_token_sql {
    ($org:expr, $t:expr, $hash:expr) => {
        sqlx::query(
            "INSERT INTO api_tokens (id, org_id, principal_id, name, secret_hash, scope, created_at, created_by, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind($t.id.as_str())
        .bind($org.as_str())
        .bind($t.principal_id.as_str())
        .bind(&$t.name)
        .bind($hash.to_vec())
        .bind($t.scope.as_str())
        .bind($t.created_at.as_millis())
        .bind($t.created_by.as_str())
        .bind($t.expires_at.map(|t| t.as_millis()))
    };
}

pub(crate) use {insert_principal_sql, insert_token_sql};

/// SHA-256 of a token secret: what is stored and looked up. Secrets are 256-bit random, so a
/// plain hash cannot be reversed by guessing.
pub(crate) fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A fresh token record and its secret's hash.
pub(crate) fn new_token(
    principal: &PrincipalId,
    created_by: &PrincipalId,
    name: &str,
    scope: Scope,
    expires_at: Option<Timestamp>,
    now: Timestamp,
) -> (NewToken, [u8; 32]) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(raw));
    let hash = hash_secret(&secret);
    let token = ApiToken {
        id: TokenId::generate(),
        principal_id: principal.clone(),
        name: name.to_owned(),
        scope,
        created_at: now,
        created_by: created_by.clone(),
        expires_at,
        revoked_at: None,
        last_used_at: None,
    };
    (NewToken { token, secret }, hash)
}

#[derive(sqlx::FromRow)]
pub(crate) struct PrincipalRow {
    id: String,
    org_id: String,
    kind: String,
    name: String,
    display_name: String,
    max_scope: String,
    active: bool,
    created_at: i64,
}

impl PrincipalRow {
    fn into_record(self) -> Result<PrincipalRecord, StoreError> {
        Ok(PrincipalRecord {
            id: parse_col("principals.id", &self.id)?,
            org_id: parse_col("principals.org_id", &self.org_id)?,
            kind: parse_col("principals.kind", &self.kind)?,
            name: self.name,
            display_name: self.display_name,
            max_scope: parse_col("principals.max_scope", &self.max_scope)?,
            active: self.active,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

const PRINCIPAL_COLUMNS: &str = "id, org_id, kind, name, display_name, max_scope, active, created_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    id: String,
    principal_id: String,
    name: String,
    scope: String,
    created_at: i64,
    created_by: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TokenRow {
    fn into_token(self) -> Result<ApiToken, StoreError> {
        Ok(ApiToken {
            id: parse_col("api_tokens.id", &self.id)?,
            principal_id: parse_col("api_tokens.principal_id", &self.principal_id)?,
            name: self.name,
            scope: parse_col("api_tokens.scope", &self.scope)?,
            created_at: Timestamp::from_millis(self.created_at),
            created_by: parse_col("api_tokens.created_by", &self.created_by)?,
            expires_at: self.expires_at.map(Timestamp::from_millis),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            last_used_at: self.last_used_at.map(Timestamp::from_millis),
        })
    }
}

const TOKEN_COLUMNS: &str =
    "id, principal_id, name, scope, created_at, created_by, expires_at, revoked_at, last_used_at";

#[derive(sqlx::FromRow)]
struct AuthRow {
    token_id: String,
    scope: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
    principal_id: String,
    org_id: String,
    kind: String,
    name: String,
    max_scope: String,
    active: bool,
    operator: bool,
    authz_version: i64,
}

fn check_principal_name(kind: PrincipalKind, name: &str) -> Result<(), StoreError> {
    match kind {
        PrincipalKind::Service => validate_slug("service", name).map_err(|e| StoreError::Invalid(e.to_string())),
        PrincipalKind::User => {
            let ok = name.len() <= 254
                && name.split_once('@').is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
                && !name.chars().any(|c| c.is_whitespace() || c.is_control() || c.is_uppercase());
            if ok {
                Ok(())
            } else {
                Err(StoreError::Invalid(format!(
                    "user name `{}` must be a lowercase email address",
                    name.chars().take(80).collect::<String>()
                )))
            }
        }
    }
}

impl Store {
    /// Creates a user or service identity in `org`.
    pub async fn create_principal(
        &self,
        org: &OrgId,
        new: NewPrincipal,
        audit: &AuditCtx,
    ) -> Result<PrincipalRecord, StoreError> {
        check_principal_name(new.kind, &new.name)?;
        let display_name = new.display_name.unwrap_or_else(|| new.name.clone());
        if display_name.trim().is_empty() || display_name.len() > 200 {
            return Err(StoreError::Invalid("display name must be 1 to 200 characters".to_owned()));
        }
        let record = PrincipalRecord {
            id: PrincipalId::generate(),
            org_id: org.clone(),
            kind: new.kind,
            name: new.name,
            display_name,
            max_scope: new.max_scope,
            active: true,
            created_at: Timestamp::now(),
        };
        let event = audit.event(
            "principal.create",
            resource("principal", record.id.as_str()),
            serde_json::json!({"kind": record.kind, "name": record.name, "max_scope": record.max_scope,
                "granted": {"role": crate::access::role_for_scope(record.max_scope), "folder": "/"}}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            insert_principal_sql!(&record).execute(&mut *tx).await.map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("principal `{}` already exists", record.name)),
                other => other,
            })?;
            // What the maximum scope allows is granted on the root folder, visibly and revocably.
            crate::access::insert_root_binding!(
                tx,
                org,
                record.id,
                crate::access::role_for_scope(record.max_scope),
                audit.actor.who.id,
                record.created_at
            );
            crate::access::bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(record)
    }

    /// The principal `id` in `org`.
    pub async fn get_principal(&self, org: &OrgId, id: &PrincipalId) -> Result<PrincipalRecord, StoreError> {
        let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE org_id = $1 AND id = $2");
        let row: Option<PrincipalRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("principal", id.as_str()))?.into_record()
    }

    /// The principal named `name` (an email for users) in `org`.
    pub async fn principal_by_name(&self, org: &OrgId, name: &str) -> Result<PrincipalRecord, StoreError> {
        let sql = format!("SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE org_id = $1 AND name = $2");
        let row: Option<PrincipalRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(name).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("principal", name))?.into_record()
    }

    /// All principals of `org`, by name.
    pub async fn list_principals(&self, org: &OrgId, page: &crate::Page) -> Result<Vec<PrincipalRecord>, StoreError> {
        let sql = format!(
            "SELECT {PRINCIPAL_COLUMNS} FROM principals WHERE org_id = $1 AND ($2 IS NULL OR name > $2) ORDER BY name LIMIT $3"
        );
        let rows: Vec<PrincipalRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(page.after.clone())
            .bind(page.limit())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(PrincipalRow::into_record).collect()
    }

    /// Activates or deactivates a principal. Deactivation revokes all of its tokens in the same
    /// transaction, so nothing it held works a moment later.
    pub async fn set_principal_active(
        &self,
        org: &OrgId,
        id: &PrincipalId,
        active: bool,
        audit: &AuditCtx,
    ) -> Result<PrincipalRecord, StoreError> {
        let now = Timestamp::now().as_millis();
        let action = if active { "principal.activate" } else { "principal.deactivate" };
        let found = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let updated = sqlx::query("UPDATE principals SET active = $1 WHERE org_id = $2 AND id = $3")
                .bind(active)
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let mut revoked = 0;
            if !active {
                // Access tokens already issued are refused too: every request re-reads `active`
                // and the client secret the token names.
                revoked = crate::scim::revoke_credentials!(tx, org, id, now);
            }
            if updated > 0 {
                let details = serde_json::json!({"tokens_revoked": revoked});
                append_audit!(tx, vec![audit.event(action, resource("principal", id.as_str()), details)])?;
            }
            tx.commit().await?;
            updated > 0
        });
        if !found {
            return Err(StoreError::not_found("principal", id.as_str()));
        }
        self.get_principal(org, id).await
    }

    /// Revokes `org`'s bootstrap token if it is still live (once single sign-on is configured).
    /// The bootstrap token is the one issued with the org, by its first admin to itself, in the
    /// org's creating transaction — not any token someone named "bootstrap". Returns how many.
    pub async fn revoke_bootstrap_token(&self, org: &OrgId, audit: &AuditCtx) -> Result<u64, StoreError> {
        let name = "bootstrap";
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let ids: Vec<(String,)> = sqlx::query_as(
                "UPDATE api_tokens SET revoked_at = $1 WHERE org_id = $2 AND name = $3 AND revoked_at IS NULL \
                 AND created_by = principal_id AND created_at = (SELECT created_at FROM orgs WHERE id = $2) RETURNING id",
            )
            .bind(now)
            .bind(org.as_str())
            .bind(name)
            .fetch_all(&mut *tx)
            .await?;
            let events: Vec<_> = ids
                .iter()
                .map(|(id,)| audit.event("token.revoke", resource("token", id), serde_json::json!({"name": name})))
                .collect();
            if !events.is_empty() {
                append_audit!(tx, events)?;
            }
            tx.commit().await?;
            Ok(ids.len() as u64)
        })
    }

    /// Issues a token for `principal`. The caller checks who may issue what; this checks that the
    /// scope does not exceed the principal's `max_scope` and that the principal is active.
    // The issuer is stored with the token; the audit context says who asked (they differ for
    // break-glass tokens, which Gatehouse issues on the host operator's word).
    #[allow(clippy::too_many_arguments)]
    pub async fn create_token(
        &self,
        org: &OrgId,
        principal: &PrincipalId,
        created_by: &PrincipalId,
        name: &str,
        scope: Scope,
        ttl: Option<Duration>,
        audit: &AuditCtx,
    ) -> Result<NewToken, StoreError> {
        if name.trim().is_empty() || name.len() > 100 {
            return Err(StoreError::Invalid("token name must be 1 to 100 characters".to_owned()));
        }
        let owner = self.get_principal(org, principal).await?;
        if !owner.active {
            return Err(StoreError::Invalid(format!("principal `{}` is deactivated", owner.name)));
        }
        if !owner.max_scope.grants(scope) {
            return Err(StoreError::Invalid(format!(
                "principal `{}` may hold at most `{}` tokens; `{scope}` was asked",
                owner.name, owner.max_scope
            )));
        }
        let now = Timestamp::now();
        let (token, hash) = new_token(principal, created_by, name, scope, ttl.map(|d| now.plus(d)), now);
        let event = audit.event(
            "token.create",
            resource("token", token.token.id.as_str()),
            serde_json::json!({"principal": principal, "name": name, "scope": scope, "expires_at": token.token.expires_at}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            insert_token_sql!(org, &token.token, &hash).execute(&mut *tx).await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(token)
    }

    /// Tokens of `org`, newest first (ids are time-ordered), optionally only one principal's.
    pub async fn list_tokens(
        &self,
        org: &OrgId,
        principal: Option<&PrincipalId>,
        page: &crate::Page,
    ) -> Result<Vec<ApiToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND ($2 IS NULL OR principal_id = $2) \
             AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
        );
        let rows: Vec<TokenRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(principal.map(|p| p.as_str().to_owned()))
            .bind(page.after.clone())
            .bind(page.limit())
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(TokenRow::into_token).collect()
    }

    /// The token `id` in `org`.
    pub async fn get_token(&self, org: &OrgId, id: &TokenId) -> Result<ApiToken, StoreError> {
        let sql = format!("SELECT {TOKEN_COLUMNS} FROM api_tokens WHERE org_id = $1 AND id = $2");
        let row: Option<TokenRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("token", id.as_str()))?.into_token()
    }

    /// Revokes token `id`; revoking twice is harmless and keeps the first time.
    pub async fn revoke_token(&self, org: &OrgId, id: &TokenId, audit: &AuditCtx) -> Result<ApiToken, StoreError> {
        let now = Timestamp::now().as_millis();
        let event = audit.event("token.revoke", resource("token", id.as_str()), serde_json::json!({}));
        let n = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE api_tokens SET revoked_at = COALESCE(revoked_at, $1) WHERE org_id = $2 AND id = $3",
            )
            .bind(now)
            .bind(org.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                append_audit!(tx, vec![event.clone()])?;
            }
            tx.commit().await?;
            n
        });
        if n == 0 {
            return Err(StoreError::not_found("token", id.as_str()));
        }
        self.get_token(org, id).await
    }

    /// Establishes who presents `secret`, or why they are refused.
    pub async fn authenticate(&self, secret: &str) -> Result<Result<Principal, TokenRejection>, StoreError> {
        if !secret.starts_with(TOKEN_PREFIX) {
            return Ok(Err(TokenRejection::Unknown));
        }
        let hash = hash_secret(secret).to_vec();
        let sql = "SELECT t.id AS token_id, t.scope, t.expires_at, t.revoked_at, t.last_used_at, \
                   p.id AS principal_id, p.org_id, p.kind, p.name, p.max_scope, p.active, o.operator, \
                   o.authz_version \
                   FROM api_tokens t \
                   JOIN principals p ON p.org_id = t.org_id AND p.id = t.principal_id \
                   JOIN orgs o ON o.id = t.org_id \
                   WHERE t.secret_hash = $1";
        let row: Option<AuthRow> = on_read!(self, |pool| sqlx::query_as(sql).bind(&hash).fetch_optional(pool).await?);
        let Some(row) = row else {
            return Ok(Err(TokenRejection::Unknown));
        };
        let now = Timestamp::now().as_millis();
        if row.revoked_at.is_some() {
            return Ok(Err(TokenRejection::Revoked));
        }
        if row.expires_at.is_some_and(|e| e <= now) {
            return Ok(Err(TokenRejection::Expired));
        }
        if !row.active {
            return Ok(Err(TokenRejection::Inactive));
        }
        let token_scope: Scope = parse_col("api_tokens.scope", &row.scope)?;
        let max_scope: Scope = parse_col("principals.max_scope", &row.max_scope)?;
        if row.last_used_at.is_none_or(|t| now - t > LAST_USED_GRANULARITY_MS) {
            let touched = on_write!(self, |pool| sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&row.token_id)
                .execute(pool)
                .await
                .map(|_| ()));
            if let Err(e) = touched {
                tracing::warn!(error = %e, "could not record token use");
            }
        }
        Ok(Ok(Principal {
            id: parse_col("principals.id", &row.principal_id)?,
            org_id: parse_col("principals.org_id", &row.org_id)?,
            kind: parse_col::<PrincipalKind>("principals.kind", &row.kind)?,
            name: row.name,
            token_id: parse_col("api_tokens.id", &row.token_id)?,
            scope: token_scope.min(max_scope),
            credential: gatehouse_core::Credential::ApiToken,
            operator: row.operator,
            authz_version: row.authz_version,
            sign_in: None,
        }))
    }
}
