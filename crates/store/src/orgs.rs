//! Organizations, and the one-time bootstrap of the first one.

use std::time::Duration;

use gatehouse_core::{
    FolderId, NewToken, Org, OrgId, PrincipalId, PrincipalKind, PrincipalRecord, Scope, Timestamp, validate_slug,
};

use crate::principals::{insert_principal_sql, insert_token_sql, new_token};
use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, resource};

/// What is needed to create an org with its first admin.
#[derive(Debug, Clone)]
pub struct NewOrg {
    /// Slug, unique across the deployment.
    pub name: String,
    /// Name for people.
    pub display_name: String,
    /// The first admin's email (their principal name).
    pub admin_email: String,
    /// How long the first admin's token lives.
    pub admin_token_ttl: Option<Duration>,
}

/// A new org, its first admin and that admin's one-time token.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// The org.
    pub org: Org,
    /// Its first admin.
    pub admin: PrincipalRecord,
    /// The admin's token; the secret exists only here.
    pub token: NewToken,
}

#[derive(sqlx::FromRow)]
struct OrgRow {
    id: String,
    name: String,
    display_name: String,
    operator: bool,
    created_at: i64,
}

impl OrgRow {
    fn into_org(self) -> Result<Org, StoreError> {
        Ok(Org {
            id: crate::parse_col("orgs.id", &self.id)?,
            name: self.name,
            display_name: self.display_name,
            operator: self.operator,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

const ORG_COLUMNS: &str = "id, name, display_name, operator, created_at";

fn check_email(email: &str) -> Result<(), StoreError> {
    let ok = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("`{}` is not an email address", email.chars().take(80).collect::<String>())))
    }
}

impl Store {
    /// On an empty database, creates the operator org with its first admin and returns the
    /// admin's token; on any other database, returns `None`. Safe with several replicas starting
    /// at once.
    pub async fn bootstrap_if_empty(&self, new: NewOrg) -> Result<Option<Bootstrap>, StoreError> {
        self.create_org_inner(new, None).await
    }

    /// Creates a tenant with its root folder, first admin and the admin's first token.
    pub async fn create_org(&self, new: NewOrg, audit: &AuditCtx) -> Result<Bootstrap, StoreError> {
        self.create_org_inner(new, Some(audit))
            .await?
            .ok_or_else(|| StoreError::Conflict("organization exists".to_owned()))
    }

    /// Bootstraps the operator org when `audit` is `None`, else creates a tenant.
    async fn create_org_inner(&self, new: NewOrg, audit: Option<&AuditCtx>) -> Result<Option<Bootstrap>, StoreError> {
        let bootstrap = audit.is_none();
        validate_slug("organization", &new.name).map_err(|e| StoreError::Invalid(e.to_string()))?;
        check_email(&new.admin_email)?;
        if new.display_name.trim().is_empty() || new.display_name.len() > 200 {
            return Err(StoreError::Invalid("display name must be 1 to 200 characters".to_owned()));
        }
        let now = Timestamp::now();
        let org = Org {
            id: OrgId::generate(),
            name: new.name.clone(),
            display_name: new.display_name.clone(),
            operator: bootstrap,
            created_at: now,
        };
        let admin = PrincipalRecord {
            id: PrincipalId::generate(),
            org_id: org.id.clone(),
            kind: PrincipalKind::User,
            name: new.admin_email.to_ascii_lowercase(),
            display_name: new.admin_email.clone(),
            max_scope: Scope::Admin,
            active: true,
            created_at: now,
        };
        let expires = new.admin_token_ttl.map(|ttl| now.plus(ttl));
        let (token, hash) = new_token(&admin.id, &admin.id, "bootstrap", Scope::Admin, expires, now);
        let is_pg = self.is_postgres();
        let org_ref = resource("org", org.id.as_str());
        let details = serde_json::json!({"name": org.name, "admin": admin.name, "admin_token": token.token.id});
        // The new org's chain opens with its creation; a tenant's creation is also recorded in
        // the chain of the operator who created it.
        let mut events = vec![match audit {
            None => AuditCtx::system(&org.id, "bootstrap").event("org.bootstrap", org_ref.clone(), details.clone()),
            Some(ctx) => {
                AuditCtx { org_id: org.id.clone(), ..ctx.clone() }.event("org.create", org_ref.clone(), details.clone())
            }
        }];
        let operator_event = audit.map(|ctx| ctx.event("org.create", org_ref, details));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            if bootstrap {
                if is_pg {
                    // Replicas starting together must not both bootstrap.
                    sqlx::query("SELECT pg_advisory_xact_lock(727001)").execute(&mut *tx).await?;
                }
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orgs").fetch_one(&mut *tx).await?;
                if count > 0 {
                    return Ok(None);
                }
            }
            sqlx::query("INSERT INTO orgs (id, name, display_name, operator, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(org.id.as_str())
                .bind(&org.name)
                .bind(&org.display_name)
                .bind(org.operator)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => {
                        StoreError::Conflict(format!("organization `{}` already exists", org.name))
                    }
                    other => other,
                })?;
            sqlx::query("INSERT INTO folders (id, org_id, parent_id, name, created_at) VALUES ($1, $2, NULL, '', $3)")
                .bind(FolderId::generate().as_str())
                .bind(org.id.as_str())
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
            insert_principal_sql!(&admin).execute(&mut *tx).await?;
            crate::access::insert_root_binding!(tx, org.id, admin.id, "org-admin", admin.id, now);
            insert_token_sql!(&org.id, &token.token, &hash).execute(&mut *tx).await?;
            append_audit!(tx, std::mem::take(&mut events))?;
            if let Some(e) = operator_event.clone() {
                append_audit!(tx, vec![e])?;
            }
            tx.commit().await?;
        });
        Ok(Some(Bootstrap { org, admin, token }))
    }

    /// The operator org (the one bootstrapped first).
    pub async fn operator_org(&self) -> Result<Org, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE operator ORDER BY created_at LIMIT 1");
        let row: Option<OrgRow> = on_read!(self, |pool| sqlx::query_as(&sql).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("organization", "operator"))?.into_org()
    }

    /// The org with `id`.
    pub async fn get_org(&self, id: &OrgId) -> Result<Org, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE id = $1");
        let row: Option<OrgRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(id.as_str()).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("organization", id.as_str()))?.into_org()
    }

    /// The org named `name`.
    pub async fn org_by_name(&self, name: &str) -> Result<Org, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs WHERE name = $1");
        let row: Option<OrgRow> = on_read!(self, |pool| sqlx::query_as(&sql).bind(name).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("organization", name))?.into_org()
    }

    /// All orgs, oldest first.
    pub async fn list_orgs(&self) -> Result<Vec<Org>, StoreError> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM orgs ORDER BY created_at, id");
        let rows: Vec<OrgRow> = on_read!(self, |pool| sqlx::query_as(&sql).fetch_all(pool).await?);
        rows.into_iter().map(OrgRow::into_org).collect()
    }
}
