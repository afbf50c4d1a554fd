//! Single sign-on: sign-ins in flight, users found or created from the identity provider's
//! claims, and sessions with idle and absolute timeouts that can be revoked.

use gatehouse_core::{
    Credential, OrgId, Principal, PrincipalId, PrincipalKind, PrincipalRecord, Scope, SignIn, Timestamp, TokenId,
};
use rand::RngCore;

use crate::principals::hash_secret;
use crate::{AuditCtx, Store, StoreError, TokenRejection, append_audit, on_read, on_write, parse_col, resource};

/// Every session secret starts with this, so secret scanners can recognise a leaked one.
pub const SESSION_PREFIX: &str = "gss_";

/// How often `last_seen_at` is written at most (idle timeouts of under two minutes write it more
/// often: every quarter of the timeout).
const TOUCH_GRANULARITY_MS: i64 = 30_000;

/// A sign-in in flight, as the callback needs it.
#[derive(Debug, Clone)]
pub struct PendingLogin {
    /// The org signing in.
    pub org_id: OrgId,
    /// The nonce sent in the authorization request.
    pub nonce: String,
    /// The PKCE verifier.
    pub pkce_verifier: String,
    /// Where to send the browser afterwards (a path on this server).
    pub return_to: Option<String>,
    /// The CLI's loopback URL, for a CLI sign-in.
    pub cli_redirect: Option<String>,
    /// The CLI's verifier hash, for a CLI sign-in.
    pub cli_challenge: Option<String>,
}

/// What the identity provider said about the person signing in.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    /// `sub`.
    pub subject: String,
    /// `email`, if verified or the provider does not say.
    pub email: Option<String>,
    /// `preferred_username`.
    pub username: Option<String>,
    /// `name`.
    pub name: Option<String>,
    /// `amr`.
    pub amr: Vec<String>,
    /// `acr`.
    pub acr: Option<String>,
    /// Whether `amr`/`acr` show multi-factor authentication.
    pub mfa: bool,
    /// Group names or ids, when the provider sends them and membership follows them.
    pub groups: Option<Vec<String>>,
}

/// Session lifetimes.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Ends after this long without a request.
    pub idle: std::time::Duration,
    /// Ends this long after sign-in, whatever happens.
    pub absolute: std::time::Duration,
}

/// A new session; the secret goes into the cookie or to the CLI and is not stored.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its id (for listing and revoking).
    pub id: String,
    /// The secret.
    pub secret: String,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
    /// Who signed in.
    pub principal: PrincipalRecord,
}

/// A session's metadata.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct SessionInfo {
    /// Its id.
    pub id: String,
    /// `browser` or `cli`.
    pub kind: String,
    /// Whose.
    pub principal_id: PrincipalId,
    /// When it began.
    pub created_at: Timestamp,
    /// The last request made with it (to within 30 seconds).
    pub last_seen_at: Timestamp,
    /// When it ends at the latest.
    pub expires_at: Timestamp,
    /// When it was revoked (signed out, deprovisioned, revoked by an admin).
    pub revoked_at: Option<Timestamp>,
    /// Whether the provider reported multi-factor authentication.
    pub mfa: bool,
    /// Where it was started from.
    pub source: Option<String>,
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    hex::encode(raw)
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    kind: String,
    org_id: String,
    principal_id: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    mfa: bool,
    amr: String,
    acr: Option<String>,
    source: Option<String>,
}

const SESSION_COLUMNS: &str =
    "id, kind, org_id, principal_id, created_at, last_seen_at, expires_at, revoked_at, mfa, amr, acr, source";

impl SessionRow {
    fn info(self) -> Result<SessionInfo, StoreError> {
        Ok(SessionInfo {
            id: self.id,
            kind: self.kind,
            principal_id: parse_col("sessions.principal_id", &self.principal_id)?,
            created_at: Timestamp::from_millis(self.created_at),
            last_seen_at: Timestamp::from_millis(self.last_seen_at),
            expires_at: Timestamp::from_millis(self.expires_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            mfa: self.mfa,
            source: self.source,
        })
    }
}

impl Store {
    /// Records a sign-in about to be sent to the identity provider; `state` is what comes back.
    pub async fn create_login(
        &self,
        state: &str,
        login: &PendingLogin,
        ttl: std::time::Duration,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        on_write!(self, |pool| {
            // Sign-ins abandoned at the provider are cleared as new ones start.
            sqlx::query("DELETE FROM oidc_logins WHERE expires_at < $1").bind(now.as_millis()).execute(pool).await?;
            sqlx::query(
                "INSERT INTO oidc_logins (state_hash, org_id, nonce, pkce_verifier, return_to, cli_redirect, cli_challenge, \
                 created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(hash_secret(state).to_vec())
            .bind(login.org_id.as_str())
            .bind(&login.nonce)
            .bind(&login.pkce_verifier)
            .bind(&login.return_to)
            .bind(&login.cli_redirect)
            .bind(&login.cli_challenge)
            .bind(now.as_millis())
            .bind(now.plus(ttl).as_millis())
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Takes (and forgets) the sign-in that `state` names, unless it expired; a state is good once.
    pub async fn take_login(&self, state: &str) -> Result<Option<PendingLogin>, StoreError> {
        type Row = (String, String, String, Option<String>, Option<String>, Option<String>, i64);
        let hash = hash_secret(state).to_vec();
        let row: Option<Row> = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<Row> = sqlx::query_as(
                "SELECT org_id, nonce, pkce_verifier, return_to, cli_redirect, cli_challenge, expires_at \
                 FROM oidc_logins WHERE state_hash = $1",
            )
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM oidc_logins WHERE state_hash = $1").bind(&hash).execute(&mut *tx).await?;
            tx.commit().await?;
            row
        });
        let Some((org, nonce, pkce_verifier, return_to, cli_redirect, cli_challenge, expires_at)) = row else {
            return Ok(None);
        };
        if expires_at < Timestamp::now().as_millis() {
            return Ok(None);
        }
        Ok(Some(PendingLogin {
            org_id: parse_col("oidc_logins.org_id", &org)?,
            nonce,
            pkce_verifier,
            return_to,
            cli_redirect,
            cli_challenge,
        }))
    }

    /// The user the claims name: by linked subject, else by email or username matching a
    /// user's name (then the subject is linked), else, when `jit` allows, a new user. A
    /// deactivated user is refused. When `claims.groups` is given, the user's group memberships
    /// become the org's groups named (or with the external id) in it.
    pub async fn sign_in_user(
        &self,
        org: &OrgId,
        claims: &Claims,
        jit: bool,
        audit: &AuditCtx,
    ) -> Result<Result<PrincipalRecord, String>, StoreError> {
        let by_subject: Option<(String,)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT id FROM principals WHERE org_id = $1 AND oidc_subject = $2 AND deleted_at IS NULL"
        )
        .bind(org.as_str())
        .bind(&claims.subject)
        .fetch_optional(pool)
        .await?);
        let mut record = match by_subject {
            Some((id,)) => Some(self.get_principal(org, &parse_col("principals.id", &id)?).await?),
            None => None,
        };
        if record.is_none() {
            for name in [claims.email.as_deref(), claims.username.as_deref()].into_iter().flatten() {
                let found: Option<(String, Option<String>)> = on_read!(self, |pool| {
                    sqlx::query_as(
                    "SELECT id, oidc_subject FROM principals WHERE org_id = $1 AND kind = 'user' AND lower(name) = lower($2) \
                     AND deleted_at IS NULL"
                )
                .bind(org.as_str())
                .bind(name)
                .fetch_optional(pool)
                .await?
                });
                if let Some((id, subject)) = found {
                    if subject.is_some() {
                        // Linked to another subject of the provider: not this person.
                        return Ok(Err(format!("user `{name}` is linked to another identity")));
                    }
                    let id: PrincipalId = parse_col("principals.id", &id)?;
                    // Linking decides who this provider identity is from now on: recorded.
                    let event = audit.event(
                        "principal.sso.link",
                        resource("principal", id.as_str()),
                        serde_json::json!({"subject": claims.subject, "matched": name}),
                    );
                    on_write!(self, |pool| {
                        let mut tx = pool.begin().await?;
                        sqlx::query("UPDATE principals SET oidc_subject = $1 WHERE org_id = $2 AND id = $3")
                            .bind(&claims.subject)
                            .bind(org.as_str())
                            .bind(id.as_str())
                            .execute(&mut *tx)
                            .await?;
                        append_audit!(tx, vec![event])?;
                        tx.commit().await?;
                    });
                    record = Some(self.get_principal(org, &id).await?);
                    break;
                }
            }
        }
        let record = match record {
            Some(r) => r,
            None if !jit => {
                return Ok(Err(
                    "no Gatehouse user matches this identity; provision it (SCIM) or enable just-in-time users"
                        .to_owned(),
                ));
            }
            None => {
                let Some(name) = claims.email.clone().or_else(|| claims.username.clone()) else {
                    return Ok(Err("the identity provider sent neither an email nor a username".to_owned()));
                };
                let record = PrincipalRecord {
                    id: PrincipalId::generate(),
                    org_id: org.clone(),
                    kind: PrincipalKind::User,
                    display_name: claims.name.clone().unwrap_or_else(|| name.clone()).chars().take(200).collect(),
                    name,
                    max_scope: Scope::Admin,
                    active: true,
                    created_at: Timestamp::now(),
                };
                let event = audit.event(
                    "principal.create",
                    resource("principal", record.id.as_str()),
                    serde_json::json!({"kind": "user", "name": record.name, "by": "sso", "granted": null}),
                );
                on_write!(self, |pool| {
                    let mut tx = pool.begin().await?;
                    crate::principals::insert_principal_sql!(&record).execute(&mut *tx).await?;
                    sqlx::query("UPDATE principals SET oidc_subject = $1 WHERE org_id = $2 AND id = $3")
                        .bind(&claims.subject)
                        .bind(org.as_str())
                        .bind(record.id.as_str())
                        .execute(&mut *tx)
                        .await?;
                    append_audit!(tx, vec![event])?;
                    tx.commit().await?;
                });
                record
            }
        };
        if !record.active {
            return Ok(Err(format!("user `{}` is deactivated", record.name)));
        }
        if let Some(groups) = &claims.groups {
            self.sync_groups(org, &record.id, groups, audit).await?;
        }
        Ok(Ok(record))
    }

    async fn sync_groups(
        &self,
        org: &OrgId,
        principal: &PrincipalId,
        names: &[String],
        audit: &AuditCtx,
    ) -> Result<(), StoreError> {
        let all: Vec<(String, String, Option<String>)> =
            on_read!(self, |pool| sqlx::query_as("SELECT id, name, external_id FROM groups WHERE org_id = $1")
                .bind(org.as_str())
                .fetch_all(pool)
                .await?);
        let current: Vec<(String,)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT group_id FROM group_members WHERE org_id = $1 AND principal_id = $2"
        )
        .bind(org.as_str())
        .bind(principal.as_str())
        .fetch_all(pool)
        .await?);
        let current: std::collections::HashSet<String> = current.into_iter().map(|(g,)| g).collect();
        let wanted: std::collections::HashSet<String> = all
            .iter()
            .filter(|(_, name, ext)| names.iter().any(|n| n == name || Some(n) == ext.as_ref()))
            .map(|(id, _, _)| id.clone())
            .collect();
        let added: Vec<&String> = wanted.difference(&current).collect();
        let removed: Vec<&String> = current.difference(&wanted).collect();
        if added.is_empty() && removed.is_empty() {
            return Ok(());
        }
        let event = audit.event(
            "principal.groups.sync",
            resource("principal", principal.as_str()),
            serde_json::json!({"added": added, "removed": removed, "by": "sso"}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            for g in &added {
                crate::access::change_membership!(tx, org, g.as_str(), principal.as_str(), true);
            }
            for g in &removed {
                crate::access::change_membership!(tx, org, g.as_str(), principal.as_str(), false);
            }
            crate::access::bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Starts a session for `principal` with what the provider said about the sign-in, recording
    /// `auth.login` in the same transaction.
    pub async fn create_session(
        &self,
        principal: &PrincipalRecord,
        kind: &str,
        claims: &Claims,
        limits: SessionLimits,
        audit: &AuditCtx,
    ) -> Result<NewSession, StoreError> {
        let secret = format!("{SESSION_PREFIX}{}", random_hex());
        let id = TokenId::generate().as_str().to_owned();
        let now = Timestamp::now();
        let expires_at = now.plus(limits.absolute);
        let amr = serde_json::to_string(&claims.amr).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let event = audit.event(
            "auth.login",
            resource("principal", principal.id.as_str()),
            serde_json::json!({"session": id, "kind": kind, "mfa": claims.mfa, "amr": claims.amr, "acr": claims.acr}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO sessions (id_hash, id, kind, org_id, principal_id, created_at, last_seen_at, expires_at, mfa, amr, \
                 acr, source, user_agent, idle_ms) VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(hash_secret(&secret).to_vec())
            .bind(&id)
            .bind(kind)
            .bind(principal.org_id.as_str())
            .bind(principal.id.as_str())
            .bind(now.as_millis())
            .bind(expires_at.as_millis())
            .bind(claims.mfa)
            .bind(&amr)
            .bind(&claims.acr)
            .bind(&audit.source)
            .bind(&audit.user_agent)
            .bind(i64::try_from(limits.idle.as_millis()).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(NewSession { id, secret, expires_at, principal: principal.clone() })
    }

    /// The principal behind session `secret`, if it is live: not revoked, not past its absolute
    /// end, used within its idle timeout, its user active. Refreshes the idle clock.
    pub async fn session_principal(&self, secret: &str) -> Result<Result<Principal, TokenRejection>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Row {
            #[sqlx(flatten)]
            s: SessionRow,
            idle_ms: i64,
            name: String,
            kind_p: String,
            active: bool,
            operator: bool,
            authz_version: i64,
        }
        let sql = "SELECT s.id, s.kind, s.org_id, s.principal_id, s.created_at, s.last_seen_at, s.expires_at, s.revoked_at, \
             s.mfa, s.amr, s.acr, s.source, s.idle_ms, p.name, p.kind AS kind_p, p.active, o.operator, o.authz_version \
             FROM sessions s JOIN principals p ON p.org_id = s.org_id AND p.id = s.principal_id \
             JOIN orgs o ON o.id = s.org_id WHERE s.id_hash = $1";
        let row: Option<Row> =
            on_read!(self, |pool| sqlx::query_as(sql).bind(hash_secret(secret).to_vec()).fetch_optional(pool).await?);
        let Some(row) = row else { return Ok(Err(TokenRejection::Unknown)) };
        let now = Timestamp::now().as_millis();
        if row.s.revoked_at.is_some() {
            return Ok(Err(TokenRejection::Revoked));
        }
        if !row.active {
            return Ok(Err(TokenRejection::Inactive));
        }
        if row.s.expires_at <= now || row.s.last_seen_at.saturating_add(row.idle_ms) <= now {
            return Ok(Err(TokenRejection::Expired));
        }
        // Written at most every 30 s, and often enough that a short idle timeout still sees use.
        if now - row.s.last_seen_at > TOUCH_GRANULARITY_MS.min(row.idle_ms / 4) {
            on_write!(self, |pool| {
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(&row.s.id)
                    .execute(pool)
                    .await?;
            });
        }
        let amr: Vec<String> = serde_json::from_str(&row.s.amr).unwrap_or_default();
        Ok(Ok(Principal {
            id: parse_col("sessions.principal_id", &row.s.principal_id)?,
            org_id: parse_col("sessions.org_id", &row.s.org_id)?,
            kind: parse_col::<PrincipalKind>("principals.kind", &row.kind_p)?,
            name: row.name,
            token_id: parse_col("sessions.id", &row.s.id)?,
            scope: Scope::Admin,
            credential: Credential::Session,
            operator: row.operator,
            authz_version: row.authz_version,
            sign_in: Some(SignIn { mfa: row.s.mfa, amr, acr: row.s.acr }),
        }))
    }

    /// Ends session `id` of `org` (sign-out or an admin's revocation).
    pub async fn revoke_session(
        &self,
        org: &OrgId,
        id: &str,
        action: &str,
        audit: &AuditCtx,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        let found = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<(String,)> = sqlx::query_as(
                "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL RETURNING principal_id",
            )
            .bind(now)
            .bind(org.as_str())
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((principal,)) = &row {
                append_audit!(
                    tx,
                    vec![audit.event(action, resource("session", id), serde_json::json!({"principal": principal}))]
                )?;
            }
            tx.commit().await?;
            row.is_some()
        });
        if !found {
            return Err(StoreError::not_found("session", id));
        }
        Ok(())
    }

    /// Sessions of `org` (of one principal when given), newest first.
    pub async fn list_sessions(
        &self,
        org: &OrgId,
        principal: Option<&PrincipalId>,
    ) -> Result<Vec<SessionInfo>, StoreError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM sessions WHERE org_id = $1 AND ($2 IS NULL OR principal_id = $2) \
             ORDER BY created_at DESC LIMIT 1000"
        );
        let rows: Vec<SessionRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(principal.map(PrincipalId::as_str))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(SessionRow::info).collect()
    }

    /// Session `id` of `org`.
    pub async fn get_session(&self, org: &OrgId, id: &str) -> Result<SessionInfo, StoreError> {
        let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE org_id = $1 AND id = $2");
        let row: Option<SessionRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(id).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("session", id))?.info()
    }

    /// A one-time code for the CLI's loopback listener, standing for a sign-in of `principal`.
    pub async fn create_cli_code(
        &self,
        principal: &PrincipalRecord,
        challenge: &str,
        claims: &Claims,
    ) -> Result<String, StoreError> {
        let code = random_hex();
        let now = Timestamp::now();
        let amr = serde_json::to_string(&claims.amr).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_write!(self, |pool| {
            sqlx::query("DELETE FROM cli_codes WHERE expires_at < $1").bind(now.as_millis()).execute(pool).await?;
            sqlx::query(
                "INSERT INTO cli_codes (code_hash, org_id, principal_id, challenge, mfa, amr, acr, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(hash_secret(&code).to_vec())
            .bind(principal.org_id.as_str())
            .bind(principal.id.as_str())
            .bind(challenge)
            .bind(claims.mfa)
            .bind(&amr)
            .bind(&claims.acr)
            .bind(now.plus(std::time::Duration::from_secs(120)).as_millis())
            .execute(pool)
            .await?;
        });
        Ok(code)
    }

    /// Takes (once) the CLI code: the principal and the sign-in facts, with the challenge to
    /// check the CLI's verifier against.
    pub async fn take_cli_code(&self, code: &str) -> Result<Option<(PrincipalRecord, String, Claims)>, StoreError> {
        type Row = (String, String, String, bool, String, Option<String>, i64);
        let hash = hash_secret(code).to_vec();
        let row: Option<Row> = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let row: Option<Row> = sqlx::query_as(
                "SELECT org_id, principal_id, challenge, mfa, amr, acr, expires_at FROM cli_codes WHERE code_hash = $1",
            )
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM cli_codes WHERE code_hash = $1").bind(&hash).execute(&mut *tx).await?;
            tx.commit().await?;
            row
        });
        let Some((org, principal, challenge, mfa, amr, acr, expires_at)) = row else { return Ok(None) };
        if expires_at < Timestamp::now().as_millis() {
            return Ok(None);
        }
        let org: OrgId = parse_col("cli_codes.org_id", &org)?;
        let record = self.get_principal(&org, &parse_col("cli_codes.principal_id", &principal)?).await?;
        let claims = Claims { mfa, amr: serde_json::from_str(&amr).unwrap_or_default(), acr, ..Claims::default() };
        Ok(Some((record, challenge, claims)))
    }
}

impl Store {
    /// Records a device-flow sign-in (the provider's device authorization response, as JSON)
    /// under the id the CLI polls with.
    pub async fn create_device_login(
        &self,
        id: &str,
        org: &OrgId,
        response: &str,
        expires_at: Timestamp,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            sqlx::query("DELETE FROM device_logins WHERE expires_at < $1").bind(now).execute(pool).await?;
            sqlx::query("INSERT INTO device_logins (id_hash, org_id, response, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(hash_secret(id).to_vec())
                .bind(org.as_str())
                .bind(response)
                .bind(expires_at.as_millis())
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// The device-flow sign-in `id`, unless it expired: (org, response JSON, expiry).
    pub async fn device_login(&self, id: &str) -> Result<Option<(OrgId, String, Timestamp)>, StoreError> {
        let row: Option<(String, String, i64)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT org_id, response, expires_at FROM device_logins WHERE id_hash = $1"
        )
        .bind(hash_secret(id).to_vec())
        .fetch_optional(pool)
        .await?);
        let Some((org, response, expires_at)) = row else { return Ok(None) };
        if expires_at < Timestamp::now().as_millis() {
            return Ok(None);
        }
        Ok(Some((parse_col("device_logins.org_id", &org)?, response, Timestamp::from_millis(expires_at))))
    }

    /// Forgets device-flow sign-in `id` (done, refused or expired). Returns whether it was there,
    /// so two polls finishing together start one session.
    pub async fn delete_device_login(&self, id: &str) -> Result<bool, StoreError> {
        let n = on_write!(self, |pool| sqlx::query("DELETE FROM device_logins WHERE id_hash = $1")
            .bind(hash_secret(id).to_vec())
            .execute(pool)
            .await?
            .rows_affected());
        Ok(n > 0)
    }
}
