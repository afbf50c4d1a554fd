//! Shared types of Gatehouse with no I/O: ids, principals and scopes, timestamps, names.
//!
//! Every other crate depends on this one; it depends on none of ours.

mod access;
pub mod audit;
pub mod id;
mod model;
pub mod name;
pub mod principal;
pub mod time;

pub use access::{CustomRole, Group, Guardrail, RoleBinding, SubjectRef};
pub use id::{AppId, FolderId, GroupId, IdError, OrgId, PrincipalId, RoleBindingId, SecretId, SuppressionId, TokenId};
pub use model::{
    ApiToken, App, AppStatus, Folder, NewToken, Org, PrincipalRecord, Provenance, ReviewRecord, Revision, ScanFinding,
    ScanRecord, ScanStatus, SecretMeta, SecretScopeKind, Suppression,
};
pub use name::{NameError, validate_slug};
pub use principal::{Credential, Principal, PrincipalKind, Scope, ScopeError, Sensitivity, SignIn};
pub use time::Timestamp;
