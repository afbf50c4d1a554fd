//! What SCIM provisioning reads and writes: users and groups with the attributes the identity
//! provider sent, per-org SCIM bearer tokens, and deprovisioning that revokes every credential in
//! the same transaction.

use gatehouse_core::{Group, GroupId, OrgId, PrincipalId, PrincipalKind, PrincipalRecord, Scope, Timestamp, TokenId};
use rand::RngCore;
use serde_json::{Map, Value};

use crate::principals::hash_secret;
use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col, resource};

/// Every SCIM token starts with this, so secret scanners can recognise a leaked one.
pub const SCIM_TOKEN_PREFIX: &str = "gst_";

/// The service identity SCIM changes are attributed to in each org.
pub const SCIM_PRINCIPAL: &str = "scim-provisioner";

/// A SCIM token's metadata.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ScimToken {
    /// Its id.
    pub id: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// Who created it.
    pub created_by: String,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
}

/// A SCIM token just created; the secret is shown once.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NewScimToken {
    /// Its id.
    pub id: String,
    /// The bearer token to configure in the identity provider.
    pub token: String,
}

/// Whom a valid SCIM token acts as.
#[derive(Debug, Clone)]
pub struct ScimCaller {
    /// The org it provisions.
    pub org_id: OrgId,
    /// The org's SCIM service identity.
    pub principal: PrincipalRecord,
    /// The token's id.
    pub token_id: TokenId,
}

/// A user as SCIM sees it.
#[derive(Debug, Clone)]
pub struct ScimUser {
    /// The principal.
    pub record: PrincipalRecord,
    /// The identity provider's id.
    pub external_id: Option<String>,
    /// The SCIM attributes as last written (userName, active and externalId come from the
    /// principal's columns, which are authoritative).
    pub attrs: Map<String, Value>,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// The groups it is in, as (id, name).
    pub groups: Vec<(GroupId, String)>,
}

/// A group as SCIM sees it.
#[derive(Debug, Clone)]
pub struct ScimGroup {
    /// The group.
    pub group: Group,
    /// Its SCIM attributes as last written.
    pub attrs: Map<String, Value>,
    /// When it last changed.
    pub updated_at: Timestamp,
    /// Its members.
    pub members: Vec<PrincipalId>,
}

/// An index a SCIM filter can be answered from.
#[derive(Debug, Clone, Copy)]
pub enum ScimLookup<'a> {
    /// Every resource.
    All,
    /// By id.
    Id(&'a str),
    /// By userName (users) or displayName (groups), case-insensitively.
    Name(&'a str),
    /// By externalId.
    ExternalId(&'a str),
}

/// Revokes every credential of `principal`: API tokens, client secrets and sessions. Returns how
/// many were revoked. Used inside the transaction that deactivates or deletes.
macro_rules! revoke_credentials {
    ($tx:expr, $org:expr, $principal:expr, $now:expr) => {{
        let mut revoked: u64 = 0;
        for sql in [
            "UPDATE api_tokens SET revoked_at = $1 WHERE org_id = $2 AND principal_id = $3 AND revoked_at IS NULL",
            "UPDATE client_secrets SET revoked_at = $1 WHERE org_id = $2 AND principal_id = $3 AND revoked_at IS NULL",
            "UPDATE sessions SET revoked_at = $1 WHERE org_id = $2 AND principal_id = $3 AND revoked_at IS NULL",
        ] {
            revoked += sqlx::query(sql)
                .bind($now)
                .bind($org.as_str())
                .bind($principal.as_str())
                .execute(&mut *$tx)
                .await?
                .rows_affected();
        }
        revoked
    }};
}
pub(crate) use revoke_credentials;

#[derive(sqlx::FromRow)]
struct UserRow {
    id: String,
    org_id: String,
    name: String,
    display_name: String,
    max_scope: String,
    active: bool,
    created_at: i64,
    external_id: Option<String>,
    scim: Option<String>,
    updated_at: Option<i64>,
}

const USER_SELECT: &str = "SELECT id, org_id, name, display_name, max_scope, active, created_at, external_id, scim, \
    updated_at FROM principals WHERE org_id = $1 AND kind = 'user' AND deleted_at IS NULL";

#[derive(sqlx::FromRow)]
struct GroupScimRow {
    id: String,
    name: String,
    external_id: Option<String>,
    created_at: i64,
    scim: Option<String>,
    updated_at: Option<i64>,
}

const GROUP_SCIM_SELECT: &str =
    "SELECT id, name, external_id, created_at, scim, updated_at FROM groups WHERE org_id = $1";

fn parse_doc(col: &str, text: Option<String>) -> Result<Map<String, Value>, StoreError> {
    match text {
        None => Ok(Map::new()),
        Some(t) => match serde_json::from_str(&t) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(StoreError::Corrupt(format!("{col} is not a JSON object"))),
        },
    }
}

/// The name shown for a user: displayName, else the formatted or assembled name, else userName.
fn display_name_of(doc: &Map<String, Value>, user_name: &str) -> String {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned);
    let name = doc.get("name");
    let assembled = || {
        let parts: Vec<String> =
            ["givenName", "familyName"].iter().filter_map(|k| s(name.and_then(|n| n.get(*k)))).collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    };
    let d = s(doc.get("displayName"))
        .or_else(|| s(name.and_then(|n| n.get("formatted"))))
        .or_else(assembled)
        .unwrap_or_else(|| user_name.to_owned());
    d.chars().take(200).collect()
}

/// A SCIM userName is any non-empty login name without control characters.
fn check_user_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid("userName must be 1-256 characters without control characters".to_owned()));
    }
    Ok(())
}

fn str_field<'a>(doc: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    doc.get(key).and_then(Value::as_str)
}

fn random_secret(prefix: &str) -> String {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    format!("{prefix}{}", hex::encode(raw))
}

impl Store {
    // ----- tokens -----

    /// Creates a SCIM token for `org` (and the org's SCIM service identity on first use). Earlier
    /// tokens stay valid until revoked, so the identity provider can be switched without a gap.
    pub async fn create_scim_token(&self, org: &OrgId, audit: &AuditCtx) -> Result<NewScimToken, StoreError> {
        let token = random_secret(SCIM_TOKEN_PREFIX);
        let id = TokenId::generate().as_str().to_owned();
        let now = Timestamp::now();
        let existing = self.principal_by_name(org, SCIM_PRINCIPAL).await;
        let (principal, create) = match existing {
            Ok(p) if p.kind == PrincipalKind::Service => (p, false),
            Ok(_) => {
                return Err(StoreError::Conflict(format!("a user is named `{SCIM_PRINCIPAL}`")));
            }
            Err(StoreError::NotFound { .. }) => (
                PrincipalRecord {
                    id: PrincipalId::generate(),
                    org_id: org.clone(),
                    kind: PrincipalKind::Service,
                    name: SCIM_PRINCIPAL.to_owned(),
                    display_name: "SCIM provisioning".to_owned(),
                    max_scope: Scope::Read,
                    active: true,
                    created_at: now,
                },
                true,
            ),
            Err(e) => return Err(e),
        };
        let mut events = Vec::new();
        if create {
            events.push(audit.event(
                "principal.create",
                resource("principal", principal.id.as_str()),
                serde_json::json!({"kind": "service", "name": SCIM_PRINCIPAL, "granted": null}),
            ));
        }
        events.push(audit.event("scim.token.create", resource("scim_token", &id), serde_json::json!({})));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            if create {
                // No role: the SCIM identity acts only through the SCIM endpoints.
                crate::principals::insert_principal_sql!(&principal).execute(&mut *tx).await?;
            } else if !principal.active {
                sqlx::query("UPDATE principals SET active = TRUE WHERE org_id = $1 AND id = $2")
                    .bind(org.as_str())
                    .bind(principal.id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO scim_tokens (id, org_id, principal_id, secret_hash, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(org.as_str())
            .bind(principal.id.as_str())
            .bind(hash_secret(&token).to_vec())
            .bind(now.as_millis())
            .bind(&audit.actor.who.id)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, events)?;
            tx.commit().await?;
        });
        Ok(NewScimToken { id, token })
    }

    /// The org's SCIM tokens, newest first.
    pub async fn list_scim_tokens(&self, org: &OrgId) -> Result<Vec<ScimToken>, StoreError> {
        let rows: Vec<(String, i64, String, Option<i64>)> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT id, created_at, created_by, revoked_at FROM scim_tokens WHERE org_id = $1 ORDER BY created_at DESC, id"
        )
        .bind(org.as_str())
        .fetch_all(pool)
        .await?
        });
        Ok(rows
            .into_iter()
            .map(|(id, c, by, r)| ScimToken {
                id,
                created_at: Timestamp::from_millis(c),
                created_by: by,
                revoked_at: r.map(Timestamp::from_millis),
            })
            .collect())
    }

    /// Revokes SCIM token `id`.
    pub async fn revoke_scim_token(&self, org: &OrgId, id: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let event = audit.event("scim.token.revoke", resource("scim_token", id), serde_json::json!({}));
        let found = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE scim_tokens SET revoked_at = $1 WHERE org_id = $2 AND id = $3 AND revoked_at IS NULL",
            )
            .bind(Timestamp::now().as_millis())
            .bind(org.as_str())
            .bind(id)
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
            return Err(StoreError::not_found("SCIM token", id));
        }
        Ok(())
    }

    /// Whom the SCIM bearer `secret` acts as, if it is a live token of an org.
    pub async fn scim_authenticate(&self, secret: &str) -> Result<Option<ScimCaller>, StoreError> {
        if !secret.starts_with(SCIM_TOKEN_PREFIX) {
            return Ok(None);
        }
        let row: Option<(String, String, String)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT id, org_id, principal_id FROM scim_tokens WHERE secret_hash = $1 AND revoked_at IS NULL"
        )
        .bind(hash_secret(secret).to_vec())
        .fetch_optional(pool)
        .await?);
        let Some((token_id, org, principal)) = row else { return Ok(None) };
        let org_id: OrgId = parse_col("scim_tokens.org_id", &org)?;
        let principal = self.get_principal(&org_id, &parse_col("scim_tokens.principal_id", &principal)?).await?;
        if !principal.active {
            return Ok(None);
        }
        Ok(Some(ScimCaller { org_id, principal, token_id: parse_col("scim_tokens.id", &token_id)? }))
    }

    // ----- users -----

    /// Users of `org` found by `lookup`, by name.
    pub async fn scim_users(&self, org: &OrgId, lookup: ScimLookup<'_>) -> Result<Vec<ScimUser>, StoreError> {
        let (cond, arg) = match lookup {
            ScimLookup::All => ("", None),
            ScimLookup::Id(v) => (" AND id = $2", Some(v)),
            ScimLookup::Name(v) => (" AND lower(name) = lower($2)", Some(v)),
            ScimLookup::ExternalId(v) => (" AND external_id = $2", Some(v)),
        };
        let sql = format!("{USER_SELECT}{cond} ORDER BY name");
        let rows: Vec<UserRow> = on_read!(self, |pool| {
            let q = sqlx::query_as(&sql).bind(org.as_str());
            match arg {
                Some(a) => q.bind(a).fetch_all(pool).await?,
                None => q.fetch_all(pool).await?,
            }
        });
        // Only the memberships of the users found (one user, for the lookups SCIM clients make
        // before every change).
        let sql = format!(
            "SELECT m.principal_id, g.id, g.name FROM group_members m JOIN groups g ON g.org_id = m.org_id AND g.id = m.group_id \
             WHERE m.org_id = $1 AND m.principal_id IN (SELECT id FROM principals WHERE org_id = $1 AND kind = 'user' \
             AND deleted_at IS NULL{cond}) ORDER BY g.name"
        );
        let memberships: Vec<(String, String, String)> = on_read!(self, |pool| {
            let q = sqlx::query_as(&sql).bind(org.as_str());
            match arg {
                Some(a) => q.bind(a).fetch_all(pool).await?,
                None => q.fetch_all(pool).await?,
            }
        });
        let mut groups: std::collections::HashMap<String, Vec<(GroupId, String)>> = Default::default();
        for (p, g, name) in memberships {
            groups.entry(p).or_default().push((parse_col("groups.id", &g)?, name));
        }
        rows.into_iter()
            .map(|r| {
                let groups = groups.remove(&r.id).unwrap_or_default();
                let mut attrs = parse_doc("principals.scim", r.scim)?;
                if !attrs.contains_key("displayName") && r.display_name != r.name {
                    attrs.insert("displayName".to_owned(), Value::String(r.display_name.clone()));
                }
                Ok(ScimUser {
                    record: PrincipalRecord {
                        id: parse_col("principals.id", &r.id)?,
                        org_id: parse_col("principals.org_id", &r.org_id)?,
                        kind: PrincipalKind::User,
                        name: r.name,
                        display_name: r.display_name,
                        max_scope: parse_col("principals.max_scope", &r.max_scope)?,
                        active: r.active,
                        created_at: Timestamp::from_millis(r.created_at),
                    },
                    external_id: r.external_id,
                    attrs,
                    updated_at: Timestamp::from_millis(r.updated_at.unwrap_or(r.created_at)),
                    groups,
                })
            })
            .collect()
    }

    /// User `id` of `org`, unless deleted.
    pub async fn scim_user(&self, org: &OrgId, id: &str) -> Result<ScimUser, StoreError> {
        self.scim_users(org, ScimLookup::Id(id)).await?.pop().ok_or_else(|| StoreError::not_found("User", id))
    }

    /// Creates a user from SCIM attributes (`userName`, `active` and `externalId` among them).
    /// Users created through SCIM get no role: access comes from their groups' grants.
    pub async fn scim_create_user(
        &self,
        org: &OrgId,
        attrs: Map<String, Value>,
        audit: &AuditCtx,
    ) -> Result<ScimUser, StoreError> {
        let name = str_field(&attrs, "userName").unwrap_or_default().to_owned();
        check_user_name(&name)?;
        let record = PrincipalRecord {
            id: PrincipalId::generate(),
            org_id: org.clone(),
            kind: PrincipalKind::User,
            display_name: display_name_of(&attrs, &name),
            name,
            max_scope: Scope::Admin,
            active: attrs.get("active").and_then(Value::as_bool).unwrap_or(true),
            created_at: Timestamp::now(),
        };
        let external_id = str_field(&attrs, "externalId").map(str::to_owned);
        let event = audit.event(
            "scim.user.create",
            resource("principal", record.id.as_str()),
            serde_json::json!({"userName": record.name, "externalId": external_id, "active": record.active}),
        );
        let doc = serde_json::to_string(&attrs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            crate::principals::insert_principal_sql!(&record).execute(&mut *tx).await.map_err(|e| {
                match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("userName `{}` is taken", record.name)),
                    other => other,
                }
            })?;
            sqlx::query(
                "UPDATE principals SET external_id = $1, scim = $2, updated_at = $3 WHERE org_id = $4 AND id = $5",
            )
            .bind(&external_id)
            .bind(&doc)
            .bind(record.created_at.as_millis())
            .bind(org.as_str())
            .bind(record.id.as_str())
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.scim_user(org, record.id.as_str()).await
    }

    /// Replaces user `id`'s SCIM attributes (after a PUT or PATCH). When `active` turns false,
    /// every session, API token and client secret of the user is revoked in the same transaction.
    /// `before` is the user as the caller read it.
    pub async fn scim_update_user(
        &self,
        org: &OrgId,
        before: &ScimUser,
        attrs: Map<String, Value>,
        action: &str,
        audit: &AuditCtx,
    ) -> Result<ScimUser, StoreError> {
        let id = before.record.id.as_str();
        let name = str_field(&attrs, "userName").unwrap_or_default().to_owned();
        check_user_name(&name)?;
        // A user whose `active` was removed is not known to be active, so it is treated as
        // inactive: deprovisioning fails closed.
        let active = attrs.get("active").and_then(Value::as_bool).unwrap_or(false);
        let external_id = str_field(&attrs, "externalId").map(str::to_owned);
        let display_name = display_name_of(&attrs, &name);
        let doc = serde_json::to_string(&attrs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = Timestamp::now().as_millis();
        let pid = before.record.id.clone();
        let mut changed: Vec<&str> = Vec::new();
        for (key, old) in before.attrs.iter() {
            if attrs.get(key) != Some(old) {
                changed.push(key);
            }
        }
        for key in attrs.keys() {
            if !before.attrs.contains_key(key) {
                changed.push(key);
            }
        }
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE principals SET name = $1, display_name = $2, active = $3, external_id = $4, scim = $5, \
                 updated_at = $6 WHERE org_id = $7 AND id = $8",
            )
            .bind(&name)
            .bind(&display_name)
            .bind(active)
            .bind(&external_id)
            .bind(&doc)
            .bind(now)
            .bind(org.as_str())
            .bind(pid.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("userName `{name}` is taken")),
                other => other,
            })?;
            let mut events = vec![audit.event(
                action,
                resource("principal", pid.as_str()),
                serde_json::json!({"userName": name, "changed": changed}),
            )];
            if before.record.active != active {
                let revoked = if active { 0 } else { revoke_credentials!(tx, org, pid, now) };
                let what = if active { "principal.activate" } else { "principal.deactivate" };
                events.push(audit.event(
                    what,
                    resource("principal", pid.as_str()),
                    serde_json::json!({"credentials_revoked": revoked, "by": "scim"}),
                ));
                // Deactivated principals are denied by a built-in policy; the snapshot must know.
                crate::access::bump_authz!(tx, org);
            }
            append_audit!(tx, events)?;
            tx.commit().await?;
        });
        self.scim_user(org, id).await
    }

    /// Deletes user `id` as SCIM sees it: the principal is deactivated, its credentials revoked,
    /// its memberships and role bindings removed, and it is renamed so the userName is free again.
    /// The row stays because audit records, apps and tokens refer to it.
    pub async fn scim_delete_user(&self, org: &OrgId, id: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let before = self.scim_user(org, id).await?;
        let pid = before.record.id.clone();
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let revoked = revoke_credentials!(tx, org, pid, now);
            sqlx::query(
                "UPDATE principals SET active = FALSE, deleted_at = $1, updated_at = $1, external_id = NULL, \
                 name = $2 WHERE org_id = $3 AND id = $4",
            )
            .bind(now)
            .bind(format!("deleted:{}", pid.as_str()))
            .bind(org.as_str())
            .bind(pid.as_str())
            .execute(&mut *tx)
            .await?;
            for sql in [
                "DELETE FROM group_members WHERE org_id = $1 AND principal_id = $2",
                "DELETE FROM role_bindings WHERE org_id = $1 AND principal_id = $2",
            ] {
                sqlx::query(sql).bind(org.as_str()).bind(pid.as_str()).execute(&mut *tx).await?;
            }
            crate::access::bump_authz!(tx, org);
            append_audit!(
                tx,
                vec![audit.event(
                    "scim.user.delete",
                    resource("principal", pid.as_str()),
                    serde_json::json!({"userName": before.record.name, "credentials_revoked": revoked}),
                )]
            )?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ----- groups -----

    /// Groups of `org` found by `lookup`, by name, with their members.
    pub async fn scim_groups(&self, org: &OrgId, lookup: ScimLookup<'_>) -> Result<Vec<ScimGroup>, StoreError> {
        let (cond, arg) = match lookup {
            ScimLookup::All => ("", None),
            ScimLookup::Id(v) => (" AND id = $2", Some(v)),
            ScimLookup::Name(v) => (" AND lower(name) = lower($2)", Some(v)),
            ScimLookup::ExternalId(v) => (" AND external_id = $2", Some(v)),
        };
        let sql = format!("{GROUP_SCIM_SELECT}{cond} ORDER BY name");
        let rows: Vec<GroupScimRow> = on_read!(self, |pool| {
            let q = sqlx::query_as(&sql).bind(org.as_str());
            match arg {
                Some(a) => q.bind(a).fetch_all(pool).await?,
                None => q.fetch_all(pool).await?,
            }
        });
        let sql = format!(
            "SELECT group_id, principal_id FROM group_members WHERE org_id = $1 \
             AND group_id IN (SELECT id FROM groups WHERE org_id = $1{cond}) ORDER BY principal_id"
        );
        let members: Vec<(String, String)> = on_read!(self, |pool| {
            let q = sqlx::query_as(&sql).bind(org.as_str());
            match arg {
                Some(a) => q.bind(a).fetch_all(pool).await?,
                None => q.fetch_all(pool).await?,
            }
        });
        let mut by_group: std::collections::HashMap<String, Vec<PrincipalId>> = Default::default();
        for (g, p) in members {
            by_group.entry(g).or_default().push(parse_col("group_members.principal_id", &p)?);
        }
        rows.into_iter()
            .map(|r| {
                let members = by_group.remove(&r.id).unwrap_or_default();
                Ok(ScimGroup {
                    group: Group {
                        id: parse_col("groups.id", &r.id)?,
                        name: r.name,
                        external_id: r.external_id,
                        member_count: i64::try_from(members.len()).unwrap_or(i64::MAX),
                        created_at: Timestamp::from_millis(r.created_at),
                    },
                    attrs: parse_doc("groups.scim", r.scim)?,
                    updated_at: Timestamp::from_millis(r.updated_at.unwrap_or(r.created_at)),
                    members,
                })
            })
            .collect()
    }

    /// Group `id` of `org`.
    pub async fn scim_group(&self, org: &OrgId, id: &str) -> Result<ScimGroup, StoreError> {
        self.scim_groups(org, ScimLookup::Id(id)).await?.pop().ok_or_else(|| StoreError::not_found("Group", id))
    }

    /// Creates a group from SCIM attributes with `members` (ids of users of the org; others are
    /// left out and reported in the audit record).
    pub async fn scim_create_group(
        &self,
        org: &OrgId,
        attrs: Map<String, Value>,
        members: &[String],
        audit: &AuditCtx,
    ) -> Result<ScimGroup, StoreError> {
        let id = GroupId::generate();
        self.scim_write_group(org, &id, None, attrs, Some(members), "scim.group.create", audit).await
    }

    /// Replaces group `id`'s attributes and, when `members` is given, its membership.
    /// `before` is the group as the caller read it.
    pub async fn scim_update_group(
        &self,
        org: &OrgId,
        before: ScimGroup,
        attrs: Map<String, Value>,
        members: Option<&[String]>,
        action: &str,
        audit: &AuditCtx,
    ) -> Result<ScimGroup, StoreError> {
        let gid = before.group.id.clone();
        self.scim_write_group(org, &gid, Some(before), attrs, members, action, audit).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn scim_write_group(
        &self,
        org: &OrgId,
        id: &GroupId,
        before: Option<ScimGroup>,
        attrs: Map<String, Value>,
        members: Option<&[String]>,
        action: &str,
        audit: &AuditCtx,
    ) -> Result<ScimGroup, StoreError> {
        let name = str_field(&attrs, "displayName").unwrap_or_default().to_owned();
        crate::access::check_group_name(&name)?;
        let external_id = str_field(&attrs, "externalId").map(str::to_owned);
        let doc = serde_json::to_string(&attrs).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = Timestamp::now().as_millis();
        // Members must be live users of this org.
        let (wanted, ignored): (Vec<String>, Vec<String>) = match members {
            None => (Vec::new(), Vec::new()),
            Some(ids) => {
                let live: Vec<(String,)> = on_read!(self, |pool| sqlx::query_as(
                    "SELECT id FROM principals WHERE org_id = $1 AND kind = 'user' AND deleted_at IS NULL"
                )
                .bind(org.as_str())
                .fetch_all(pool)
                .await?);
                let users: std::collections::HashSet<String> = live.into_iter().map(|(id,)| id).collect();
                let mut seen = std::collections::HashSet::new();
                ids.iter().filter(|i| seen.insert(i.as_str())).cloned().partition(|i| users.contains(i))
            }
        };
        let old: Vec<String> =
            before.as_ref().map(|b| b.members.iter().map(|m| m.as_str().to_owned()).collect()).unwrap_or_default();
        let added: Vec<&String> = wanted.iter().filter(|w| !old.contains(w)).collect();
        let removed: Vec<&String> =
            if members.is_some() { old.iter().filter(|o| !wanted.contains(o)).collect() } else { Vec::new() };
        let mut details = serde_json::json!({"displayName": name, "externalId": external_id});
        if !added.is_empty() {
            details["members_added"] = serde_json::json!(added);
        }
        if !removed.is_empty() {
            details["members_removed"] = serde_json::json!(removed);
        }
        if !ignored.is_empty() {
            details["members_ignored"] = serde_json::json!(ignored);
        }
        let event = audit.event(action, resource("group", id.as_str()), details);
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let conflict = |e: sqlx::Error| match StoreError::from(e) {
                StoreError::Conflict(_) => StoreError::Conflict(format!("group `{name}` already exists")),
                other => other,
            };
            if before.is_none() {
                sqlx::query(
                    "INSERT INTO groups (id, org_id, name, external_id, created_at, scim, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $5)",
                )
                .bind(id.as_str())
                .bind(org.as_str())
                .bind(&name)
                .bind(&external_id)
                .bind(now)
                .bind(&doc)
                .execute(&mut *tx)
                .await
                .map_err(conflict)?;
            } else {
                sqlx::query(
                    "UPDATE groups SET name = $1, external_id = $2, scim = $3, updated_at = $4 WHERE org_id = $5 AND id = $6",
                )
                .bind(&name)
                .bind(&external_id)
                .bind(&doc)
                .bind(now)
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await
                .map_err(conflict)?;
            }
            for p in &removed {
                crate::access::change_membership!(tx, org, id.as_str(), p.as_str(), false);
            }
            for p in &added {
                crate::access::change_membership!(tx, org, id.as_str(), p.as_str(), true);
            }
            crate::access::bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.scim_group(org, id.as_str()).await
    }

    /// Deletes group `id` with its memberships and the roles granted to it.
    pub async fn scim_delete_group(&self, org: &OrgId, id: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let group = self.scim_group(org, id).await?;
        self.delete_group_as(org, &group.group.id, "scim.group.delete", audit).await
    }
}
