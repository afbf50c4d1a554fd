//! Access control data: groups and their members, custom roles, role bindings on folders and
//! guardrails. Every change bumps the org's `authz_version` in the same transaction, so servers
//! holding a cached snapshot learn of it on the next request.

use gatehouse_authz::{BindingData, FolderData, GuardrailData, RoleData, SnapshotData, Subject};
use gatehouse_core::{
    CustomRole, FolderId, Group, GroupId, Guardrail, OrgId, PrincipalId, RoleBinding, RoleBindingId, Scope, SubjectRef,
    Timestamp,
};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col, resource};

/// Marks the org's access-control data changed, inside the caller's transaction.
macro_rules! bump_authz {
    ($tx:expr, $org:expr) => {
        sqlx::query("UPDATE orgs SET authz_version = authz_version + 1 WHERE id = $1")
            .bind($org.as_str())
            .execute(&mut *$tx)
            .await?
    };
}

/// Grants `role` to a principal on the org's root folder, inside the caller's transaction.
macro_rules! insert_root_binding {
    ($tx:expr, $org:expr, $principal:expr, $role:expr, $by:expr, $now:expr) => {
        sqlx::query(
            "INSERT INTO role_bindings (id, org_id, folder_id, role, principal_id, group_id, created_at, created_by) \
             SELECT $1, $2, id, $3, $4, NULL, $5, $6 FROM folders WHERE org_id = $2 AND parent_id IS NULL",
        )
        .bind(gatehouse_core::RoleBindingId::generate().as_str())
        .bind($org.as_str())
        .bind($role)
        .bind($principal.as_str())
        .bind($now.as_millis())
        .bind($by.as_str())
        .execute(&mut *$tx)
        .await?
    };
}

/// Deletes the org's row named `$name` from `$table` inside `$tx`, or fails with not-found.
macro_rules! delete_named {
    ($tx:expr, $table:literal, $kind:literal, $org:expr, $name:expr) => {{
        let n = sqlx::query(concat!("DELETE FROM ", $table, " WHERE org_id = $1 AND name = $2"))
            .bind($org.as_str())
            .bind($name)
            .execute(&mut *$tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::not_found($kind, $name));
        }
    }};
}

/// Adds (`$add` true) or removes `$principal` in group `$group` within transaction `$tx`;
/// evaluates to the rows affected (0 when there was nothing to change).
macro_rules! change_membership {
    ($tx:expr, $org:expr, $group:expr, $principal:expr, $add:expr) => {
        if $add {
            sqlx::query(
                "INSERT INTO group_members (org_id, group_id, principal_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
        } else {
            sqlx::query("DELETE FROM group_members WHERE org_id = $1 AND group_id = $2 AND principal_id = $3")
        }
        .bind($org.as_str())
        .bind($group)
        .bind($principal)
        .execute(&mut *$tx)
        .await?
        .rows_affected()
    };
}

pub(crate) use {bump_authz, change_membership, insert_root_binding};

/// The built-in role a principal's maximum scope implies when it is created: the grant it gets on
/// the root folder unless a caller asks otherwise.
pub fn role_for_scope(scope: Scope) -> &'static str {
    match scope {
        Scope::Admin => "org-admin",
        Scope::Write | Scope::Push => "builder",
        Scope::Read => "viewer",
        Scope::Audit => "auditor",
    }
}

/// Who a new binding is for.
#[derive(Debug, Clone)]
pub enum BindingSubject {
    /// A principal.
    Principal(PrincipalId),
    /// A group.
    Group(GroupId),
}

/// (id, role, folder, principal, group) of a stored binding.
type BindingTuple = (String, String, String, Option<String>, Option<String>);

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: String,
    name: String,
    external_id: Option<String>,
    member_count: i64,
    created_at: i64,
}

impl GroupRow {
    fn into_group(self) -> Result<Group, StoreError> {
        Ok(Group {
            id: parse_col("groups.id", &self.id)?,
            name: self.name,
            external_id: self.external_id,
            member_count: self.member_count,
            created_at: Timestamp::from_millis(self.created_at),
        })
    }
}

const GROUP_SELECT: &str = "SELECT g.id, g.name, g.external_id, g.created_at, \
    (SELECT COUNT(*) FROM group_members m WHERE m.org_id = g.org_id AND m.group_id = g.id) AS member_count \
    FROM groups g WHERE g.org_id = $1";

#[derive(sqlx::FromRow)]
struct BindingRow {
    id: String,
    role: String,
    folder_id: String,
    principal_id: Option<String>,
    group_id: Option<String>,
    subject_name: Option<String>,
    created_at: i64,
    created_by: String,
}

const BINDING_SELECT: &str = "SELECT b.id, b.role, b.folder_id, b.principal_id, b.group_id, \
    COALESCE(p.name, g.name) AS subject_name, b.created_at, b.created_by \
    FROM role_bindings b \
    LEFT JOIN principals p ON p.org_id = b.org_id AND p.id = b.principal_id \
    LEFT JOIN groups g ON g.org_id = b.org_id AND g.id = b.group_id \
    WHERE b.org_id = $1";

#[derive(sqlx::FromRow)]
struct RoleRow {
    name: String,
    description: String,
    actions: String,
    created_at: i64,
    updated_at: i64,
}

impl RoleRow {
    fn into_role(self) -> Result<CustomRole, StoreError> {
        Ok(CustomRole {
            actions: serde_json::from_str(&self.actions)
                .map_err(|e| StoreError::Corrupt(format!("custom_roles.actions: {e}")))?,
            name: self.name,
            description: self.description,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

#[derive(sqlx::FromRow)]
struct GuardrailRow {
    name: String,
    description: String,
    policy: String,
    created_at: i64,
    created_by: String,
}

impl Store {
    /// The version of `org`'s access-control data.
    pub async fn authz_version(&self, org: &OrgId) -> Result<i64, StoreError> {
        let v: Option<i64> = on_read!(self, |pool| sqlx::query_scalar("SELECT authz_version FROM orgs WHERE id = $1")
            .bind(org.as_str())
            .fetch_optional(pool)
            .await?);
        v.ok_or_else(|| StoreError::not_found("organization", org.as_str()))
    }

    /// Everything an authorization snapshot of `org` is built from, read in one transaction so
    /// the version matches the data.
    pub async fn authz_data(&self, org: &OrgId) -> Result<SnapshotData, StoreError> {
        let o = org.as_str();
        let (version, name, folders, roles, bindings, groups, memberships, guardrails) = on_read!(self, |pool| {
            let mut tx = pool.begin().await?;
            let (version, name): (i64, String) = sqlx::query_as("SELECT authz_version, name FROM orgs WHERE id = $1")
                .bind(o)
                .fetch_one(&mut *tx)
                .await?;
            let folders: Vec<(String, Option<String>, String)> =
                sqlx::query_as("SELECT id, parent_id, name FROM folders WHERE org_id = $1")
                    .bind(o)
                    .fetch_all(&mut *tx)
                    .await?;
            let roles: Vec<(String, String)> =
                sqlx::query_as("SELECT name, actions FROM custom_roles WHERE org_id = $1")
                    .bind(o)
                    .fetch_all(&mut *tx)
                    .await?;
            let bindings: Vec<BindingTuple> = sqlx::query_as(
                "SELECT id, role, folder_id, principal_id, group_id FROM role_bindings WHERE org_id = $1",
            )
            .bind(o)
            .fetch_all(&mut *tx)
            .await?;
            let groups: Vec<(String, String)> =
                sqlx::query_as("SELECT id, name FROM groups WHERE org_id = $1").bind(o).fetch_all(&mut *tx).await?;
            let memberships: Vec<(String, String)> =
                sqlx::query_as("SELECT principal_id, group_id FROM group_members WHERE org_id = $1")
                    .bind(o)
                    .fetch_all(&mut *tx)
                    .await?;
            let guardrails: Vec<(String, String)> =
                sqlx::query_as("SELECT name, policy FROM guardrails WHERE org_id = $1")
                    .bind(o)
                    .fetch_all(&mut *tx)
                    .await?;
            tx.commit().await?;
            (version, name, folders, roles, bindings, groups, memberships, guardrails)
        });
        let paths = folder_paths(&folders);
        Ok(SnapshotData {
            org_id: o.to_owned(),
            org_name: name,
            version,
            folders: folders
                .into_iter()
                .map(|(id, parent, name)| FolderData {
                    path: paths.get(&id).cloned().unwrap_or_default(),
                    id,
                    parent,
                    name,
                })
                .collect(),
            roles: roles
                .into_iter()
                .map(|(name, actions)| RoleData { name, actions: serde_json::from_str(&actions).unwrap_or_default() })
                .collect(),
            bindings: bindings
                .into_iter()
                .filter_map(|(id, role, folder, principal, group)| {
                    let subject = match (principal, group) {
                        (Some(p), _) => Subject::Principal(p),
                        (None, Some(g)) => Subject::Group(g),
                        (None, None) => return None,
                    };
                    Some(BindingData { id, role, folder, subject })
                })
                .collect(),
            groups,
            memberships,
            guardrails: guardrails.into_iter().map(|(name, policy)| GuardrailData { name, policy }).collect(),
        })
    }

    // ----- groups -----

    /// Creates group `name` (with the identity provider's `external_id`, when SCIM made it).
    pub async fn create_group(
        &self,
        org: &OrgId,
        name: &str,
        external_id: Option<&str>,
        audit: &AuditCtx,
    ) -> Result<Group, StoreError> {
        check_group_name(name)?;
        let id = GroupId::generate();
        let now = Timestamp::now();
        let event = audit.event(
            "group.create",
            resource("group", id.as_str()),
            serde_json::json!({"name": name, "external_id": external_id}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO groups (id, org_id, name, external_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.as_str())
                .bind(org.as_str())
                .bind(name)
                .bind(external_id)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await
                .map_err(|e| match StoreError::from(e) {
                    StoreError::Conflict(_) => StoreError::Conflict(format!("group `{name}` already exists")),
                    other => other,
                })?;
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.get_group(org, &id).await
    }

    /// The org's groups, by name.
    pub async fn list_groups(&self, org: &OrgId) -> Result<Vec<Group>, StoreError> {
        let sql = format!("{GROUP_SELECT} ORDER BY g.name");
        let rows: Vec<GroupRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).fetch_all(pool).await?);
        rows.into_iter().map(GroupRow::into_group).collect()
    }

    /// Group `id`.
    pub async fn get_group(&self, org: &OrgId, id: &GroupId) -> Result<Group, StoreError> {
        let sql = format!("{GROUP_SELECT} AND g.id = $2");
        let row: Option<GroupRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("group", id.as_str()))?.into_group()
    }

    /// Group `name`.
    pub async fn group_by_name(&self, org: &OrgId, name: &str) -> Result<Group, StoreError> {
        let sql = format!("{GROUP_SELECT} AND g.name = $2");
        let row: Option<GroupRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(name).fetch_optional(pool).await?);
        row.ok_or_else(|| StoreError::not_found("group", name))?.into_group()
    }

    /// The members of group `id`, as (principal id, name).
    pub async fn group_members(&self, org: &OrgId, id: &GroupId) -> Result<Vec<(PrincipalId, String)>, StoreError> {
        self.get_group(org, id).await?;
        let rows: Vec<(String, String)> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT p.id, p.name FROM group_members m JOIN principals p ON p.org_id = m.org_id AND p.id = m.principal_id \
             WHERE m.org_id = $1 AND m.group_id = $2 ORDER BY p.name"
        )
        .bind(org.as_str())
        .bind(id.as_str())
        .fetch_all(pool)
        .await?
        });
        rows.into_iter().map(|(id, name)| Ok((parse_col("principals.id", &id)?, name))).collect()
    }

    /// Adds or removes `principal` in group `id`. Adding a member twice, or removing a
    /// non-member, changes nothing and records nothing.
    pub async fn set_group_member(
        &self,
        org: &OrgId,
        id: &GroupId,
        principal: &PrincipalId,
        member: bool,
        audit: &AuditCtx,
    ) -> Result<bool, StoreError> {
        let group = self.get_group(org, id).await?;
        self.get_principal(org, principal).await?;
        let action = if member { "group.member.add" } else { "group.member.remove" };
        let event = audit.event(
            action,
            resource("group", id.as_str()),
            serde_json::json!({"group": group.name, "principal": principal}),
        );
        let changed = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = change_membership!(tx, org, id.as_str(), principal.as_str(), member);
            if n > 0 {
                bump_authz!(tx, org);
                append_audit!(tx, vec![event])?;
            }
            tx.commit().await?;
            n > 0
        });
        Ok(changed)
    }

    /// Deletes group `id` with its memberships and the roles granted to it.
    pub async fn delete_group(&self, org: &OrgId, id: &GroupId, audit: &AuditCtx) -> Result<(), StoreError> {
        self.delete_group_as(org, id, "group.delete", audit).await
    }

    /// Deletes group `id`, recording `action`.
    pub(crate) async fn delete_group_as(
        &self,
        org: &OrgId,
        id: &GroupId,
        action: &str,
        audit: &AuditCtx,
    ) -> Result<(), StoreError> {
        let group = self.get_group(org, id).await?;
        let event = audit.event(action, resource("group", id.as_str()), serde_json::json!({"name": group.name}));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            for sql in [
                "DELETE FROM role_bindings WHERE org_id = $1 AND group_id = $2",
                "DELETE FROM group_members WHERE org_id = $1 AND group_id = $2",
                "DELETE FROM groups WHERE org_id = $1 AND id = $2",
            ] {
                sqlx::query(sql).bind(org.as_str()).bind(id.as_str()).execute(&mut *tx).await?;
            }
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ----- role bindings -----

    /// Grants `role` to `subject` on `folder`. The role must be built in or defined for the org.
    pub async fn grant_role(
        &self,
        org: &OrgId,
        role: &str,
        folder: &FolderId,
        subject: &BindingSubject,
        audit: &AuditCtx,
    ) -> Result<RoleBinding, StoreError> {
        let folder_row = self.get_folder(org, folder).await?;
        let (principal, group, subject_id) = match subject {
            BindingSubject::Principal(p) => {
                self.get_principal(org, p).await?;
                (Some(p.as_str()), None, p.to_string())
            }
            BindingSubject::Group(g) => {
                self.get_group(org, g).await?;
                (None, Some(g.as_str()), g.to_string())
            }
        };
        if gatehouse_authz::BuiltinRole::by_name(role).is_none() && !self.role_exists(org, role).await? {
            return Err(StoreError::Invalid(format!(
                "there is no role `{}`; built-in roles are org-admin, security-admin, approver, builder, viewer and \
                 auditor, and custom roles are defined with PUT /api/v1/roles/{{name}}",
                role.chars().take(64).collect::<String>()
            )));
        }
        let id = RoleBindingId::generate();
        let event = audit.event(
            "role.grant",
            gatehouse_core::audit::ResourceRef {
                kind: "folder".to_owned(),
                id: folder.to_string(),
                path: Some(folder_row.path.clone()),
            },
            serde_json::json!({"binding": id, "role": role, "subject": subject_id}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO role_bindings (id, org_id, folder_id, role, principal_id, group_id, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.as_str())
            .bind(org.as_str())
            .bind(folder.as_str())
            .bind(role)
            .bind(principal)
            .bind(group)
            .bind(Timestamp::now().as_millis())
            .bind(audit.actor.who.id.clone())
            .execute(&mut *tx)
            .await
            .map_err(|e| match StoreError::from(e) {
                StoreError::Conflict(_) => {
                    StoreError::Conflict(format!("`{role}` is already granted to them on {}", folder_row.path))
                }
                other => other,
            })?;
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.get_binding(org, &id).await
    }

    async fn role_exists(&self, org: &OrgId, role: &str) -> Result<bool, StoreError> {
        let n: i64 = on_read!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM custom_roles WHERE org_id = $1 AND name = $2"
        )
        .bind(org.as_str())
        .bind(role)
        .fetch_one(pool)
        .await?);
        Ok(n > 0)
    }

    /// The org's role bindings, optionally only those of one subject (principal or group id).
    pub async fn list_bindings(&self, org: &OrgId, subject: Option<&str>) -> Result<Vec<RoleBinding>, StoreError> {
        let sql = format!(
            "{BINDING_SELECT} AND ($2 = '' OR b.principal_id = $2 OR b.group_id = $2) ORDER BY b.created_at, b.id"
        );
        let rows: Vec<BindingRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(subject.unwrap_or(""))
            .fetch_all(pool)
            .await?);
        let paths: std::collections::HashMap<String, String> =
            self.list_folders(org).await?.into_iter().map(|f| (f.id.to_string(), f.path)).collect();
        rows.into_iter()
            .map(|r| {
                let path = paths.get(&r.folder_id).cloned().unwrap_or_default();
                binding_from_row(r, path)
            })
            .collect()
    }

    /// Role binding `id`.
    pub async fn get_binding(&self, org: &OrgId, id: &RoleBindingId) -> Result<RoleBinding, StoreError> {
        let sql = format!("{BINDING_SELECT} AND b.id = $2");
        let row: Option<BindingRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        let row = row.ok_or_else(|| StoreError::not_found("role binding", id.as_str()))?;
        let folder: FolderId = parse_col("role_bindings.folder_id", &row.folder_id)?;
        let path = self.get_folder(org, &folder).await?.path;
        binding_from_row(row, path)
    }

    /// Revokes role binding `id`.
    pub async fn revoke_role(&self, org: &OrgId, id: &RoleBindingId, audit: &AuditCtx) -> Result<(), StoreError> {
        let b = self.get_binding(org, id).await?;
        let event = audit.event(
            "role.revoke",
            gatehouse_core::audit::ResourceRef {
                kind: "folder".to_owned(),
                id: b.folder_id.to_string(),
                path: Some(b.folder_path.clone()),
            },
            serde_json::json!({"binding": id, "role": b.role, "subject": b.subject.id}),
        );
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM role_bindings WHERE org_id = $1 AND id = $2")
                .bind(org.as_str())
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ----- custom roles -----

    /// Defines or redefines custom role `name` (already checked by the caller).
    pub async fn put_role(
        &self,
        org: &OrgId,
        name: &str,
        description: &str,
        actions: &[String],
        audit: &AuditCtx,
    ) -> Result<CustomRole, StoreError> {
        let now = Timestamp::now().as_millis();
        let json = serde_json::to_string(actions).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let event = audit.event("role.define", resource("role", name), serde_json::json!({"actions": actions}));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO custom_roles (org_id, name, description, actions, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $5) \
                 ON CONFLICT (org_id, name) DO UPDATE SET description = $3, actions = $4, updated_at = $5",
            )
            .bind(org.as_str())
            .bind(name)
            .bind(description)
            .bind(&json)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.list_roles(org)
            .await?
            .into_iter()
            .find(|r| r.name == name)
            .ok_or_else(|| StoreError::not_found("role", name))
    }

    /// The org's custom roles, by name.
    pub async fn list_roles(&self, org: &OrgId) -> Result<Vec<CustomRole>, StoreError> {
        let rows: Vec<RoleRow> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT name, description, actions, created_at, updated_at FROM custom_roles WHERE org_id = $1 ORDER BY name"
        )
        .bind(org.as_str())
        .fetch_all(pool)
        .await?
        });
        rows.into_iter().map(RoleRow::into_role).collect()
    }

    /// Deletes custom role `name`; refused while it is granted anywhere.
    pub async fn delete_role(&self, org: &OrgId, name: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let event = audit.event("role.delete", resource("role", name), serde_json::json!({}));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let bound: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM role_bindings WHERE org_id = $1 AND role = $2")
                .bind(org.as_str())
                .bind(name)
                .fetch_one(&mut *tx)
                .await?;
            if bound > 0 {
                return Err(StoreError::Conflict(format!(
                    "role `{name}` is granted {bound} time(s); revoke those grants first"
                )));
            }
            delete_named!(tx, "custom_roles", "role", org, name);
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }

    // ----- guardrails -----

    /// Adds or replaces guardrail `name` (already checked against the schema by the caller).
    pub async fn put_guardrail(
        &self,
        org: &OrgId,
        name: &str,
        description: &str,
        policy: &str,
        audit: &AuditCtx,
    ) -> Result<Guardrail, StoreError> {
        let now = Timestamp::now().as_millis();
        let by = audit.actor.who.id.clone();
        let event = audit.event("guardrail.set", resource("guardrail", name), serde_json::json!({"policy": policy}));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO guardrails (org_id, name, description, policy, created_at, created_by) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (org_id, name) DO UPDATE SET description = $3, policy = $4, created_at = $5, created_by = $6",
            )
            .bind(org.as_str())
            .bind(name)
            .bind(description)
            .bind(policy)
            .bind(now)
            .bind(&by)
            .execute(&mut *tx)
            .await?;
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        self.list_guardrails(org)
            .await?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| StoreError::not_found("guardrail", name))
    }

    /// The org's guardrails, by name.
    pub async fn list_guardrails(&self, org: &OrgId) -> Result<Vec<Guardrail>, StoreError> {
        let rows: Vec<GuardrailRow> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT name, description, policy, created_at, created_by FROM guardrails WHERE org_id = $1 ORDER BY name"
        )
        .bind(org.as_str())
        .fetch_all(pool)
        .await?
        });
        rows.into_iter()
            .map(|r| {
                Ok(Guardrail {
                    name: r.name,
                    description: r.description,
                    policy: r.policy,
                    created_at: Timestamp::from_millis(r.created_at),
                    created_by: r.created_by,
                })
            })
            .collect()
    }

    /// Removes guardrail `name`.
    pub async fn delete_guardrail(&self, org: &OrgId, name: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let event = audit.event("guardrail.delete", resource("guardrail", name), serde_json::json!({}));
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            delete_named!(tx, "guardrails", "guardrail", org, name);
            bump_authz!(tx, org);
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
        });
        Ok(())
    }
}

fn binding_from_row(r: BindingRow, folder_path: String) -> Result<RoleBinding, StoreError> {
    let (kind, id) = match (r.principal_id, r.group_id) {
        (Some(p), _) => ("principal", p),
        (None, Some(g)) => ("group", g),
        (None, None) => return Err(StoreError::Corrupt("role binding without a subject".to_owned())),
    };
    Ok(RoleBinding {
        id: parse_col("role_bindings.id", &r.id)?,
        role: r.role,
        folder_id: parse_col("role_bindings.folder_id", &r.folder_id)?,
        folder_path,
        subject: SubjectRef { kind: kind.to_owned(), id, name: r.subject_name.unwrap_or_default() },
        created_at: Timestamp::from_millis(r.created_at),
        created_by: r.created_by,
    })
}

pub(crate) fn check_group_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid("a group name is 1-256 characters without control characters".to_owned()));
    }
    Ok(())
}

/// Each folder's path from (id, parent, name) rows.
fn folder_paths(rows: &[(String, Option<String>, String)]) -> std::collections::HashMap<String, String> {
    let by_id: std::collections::HashMap<&str, (&Option<String>, &str)> =
        rows.iter().map(|(id, parent, name)| (id.as_str(), (parent, name.as_str()))).collect();
    let mut out = std::collections::HashMap::new();
    for (id, _, _) in rows {
        let mut names = Vec::new();
        let mut at = Some(id.as_str());
        while let Some(a) = at {
            if names.len() > rows.len() {
                break;
            }
            let Some((parent, name)) = by_id.get(a) else { break };
            if parent.is_some() {
                names.push(*name);
            }
            at = parent.as_deref();
        }
        names.reverse();
        out.insert(id.clone(), format!("/{}", names.join("/")));
    }
    out
}
