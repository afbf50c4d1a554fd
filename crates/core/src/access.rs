//! Access-control records: groups, role bindings on folders, custom roles and guardrails.

use serde::{Deserialize, Serialize};

use crate::{FolderId, GroupId, RoleBindingId, Timestamp};

/// A group of principals; roles granted to it reach every member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// Its id.
    pub id: GroupId,
    /// Its name, unique in the org.
    pub name: String,
    /// The identity provider's id for it, when provisioned by SCIM.
    pub external_id: Option<String>,
    /// How many principals are in it.
    pub member_count: i64,
    /// When it was created.
    pub created_at: Timestamp,
}

/// Who a role binding grants to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubjectRef {
    /// `principal` or `group`.
    pub kind: String,
    /// The principal's or group's id.
    pub id: String,
    /// Its name (email, service slug or group name).
    pub name: String,
}

/// A role granted to a principal or group on a folder (and so on everything below it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RoleBinding {
    /// Its id.
    pub id: RoleBindingId,
    /// The role: built-in (`org-admin`, `security-admin`, `approver`, `builder`, `viewer`,
    /// `auditor`) or custom.
    pub role: String,
    /// The folder it is granted on.
    pub folder_id: FolderId,
    /// That folder's path.
    pub folder_path: String,
    /// Who holds it.
    pub subject: SubjectRef,
    /// When it was granted.
    pub created_at: Timestamp,
    /// Who granted it (a principal id, or `gatehouse` for grants the system made).
    pub created_by: String,
}

/// A custom role: a named set of actions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CustomRole {
    /// Its name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The actions it allows.
    pub actions: Vec<String>,
    /// When it was defined.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A guardrail: a Cedar `forbid` policy that holds whatever roles allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Guardrail {
    /// Its name; its Cedar policy id is `guardrail:<name>`.
    pub name: String,
    /// Why it exists.
    pub description: String,
    /// The Cedar policy text.
    pub policy: String,
    /// When it was added.
    pub created_at: Timestamp,
    /// Who added it (a principal id).
    pub created_by: String,
}
