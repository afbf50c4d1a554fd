//! Shared types of Gatehouse with no I/O: ids, principals and scopes, timestamps, names.
//!
//! Every other crate depends on this one; it depends on none of ours.

pub mod audit;
pub mod id;
pub mod model;
pub mod name;
pub mod principal;
pub mod time;

pub use id::{AppId, FolderId, IdError, OrgId, PrincipalId, SecretId, SuppressionId, TokenId};
pub use model::{
    ApiToken, App, AppStatus, Folder, NewToken, Org, PrincipalRecord, Provenance, ReviewRecord, Revision, ScanFinding,
    ScanRecord, ScanStatus, SecretMeta, SecretScopeKind, Suppression,
};
pub use name::{NameError, validate_slug};
pub use principal::{Principal, PrincipalKind, Scope, ScopeError, Sensitivity};
pub use time::Timestamp;
