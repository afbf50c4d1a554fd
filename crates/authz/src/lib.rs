//! Who may do what where.
//!
//! Roles — built-in or custom sets of [`Action`]s — are granted to principals or groups *on a
//! folder* and hold on that folder and everything below it. Guardrails are Cedar `forbid`
//! policies an admin adds (MFA for production deploys, source networks, …). A decision is Cedar's:
//!
//! 1. An index over the folder tree finds the role bindings that apply to this principal (directly
//!    or through its groups) on the resource or one of its ancestors. This is Cedar's recommended
//!    *policy slicing*, done by us because 10,000 bindings as 10,000 Cedar policies would make every
//!    decision walk all of them.
//! 2. Cedar evaluates one permit over the roles that allow the action here (`context.roles`),
//!    the built-in policies and the org's guardrails, over a small entity slice: the principal
//!    and its groups, the resource and its folder chain up to the org.
//!
//! A policy that fails to evaluate denies: a guardrail must never be skipped because an
//! attribute was missing.

mod action;
mod engine;
mod schema;

pub use action::{Action, ActionSet, BuiltinRole, ResourceKind, UnknownAction};
pub use engine::FolderData;
pub use engine::{
    AuthMethod, BindingData, Decision, Explanation, Grant, GuardrailData, PrincipalKind, RequestContext, Resource,
    RoleData, Snapshot, SnapshotData, Subject, Who, validate_guardrail, validate_role,
};
pub use schema::{cedar_schema_text, schema};

/// Why a role, a guardrail or a snapshot cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthzError {
    /// A guardrail is not valid Cedar, not a single `forbid`, or does not type-check.
    #[error("guardrail `{name}` is invalid: {reason}")]
    InvalidGuardrail {
        /// The guardrail's name.
        name: String,
        /// What is wrong, in Cedar's words.
        reason: String,
    },
    /// A custom role names an action that does not exist, or shadows a built-in role.
    #[error("role `{name}` is invalid: {reason}")]
    InvalidRole {
        /// The role's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The stored data is inconsistent (a binding to an unknown folder or role).
    #[error("authorization data is inconsistent: {0}")]
    Inconsistent(String),
}
