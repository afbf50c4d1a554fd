//! The audit event model: who did what to which resource, with what outcome, and the record
//! that places an event in its org's hash chain. Hashing and verification live in
//! `gatehouse-audit`; these are the shared types.

use serde::{Deserialize, Serialize};

use crate::{OrgId, Timestamp};

/// What kind of principal acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A named human.
    User,
    /// A documented service identity.
    Service,
    /// An app, acting for the human at the end of `on_behalf_of`.
    App,
    /// A caller that did not authenticate (recorded only for denials).
    Anonymous,
}

/// One identity in an actor chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ActorRef {
    /// User, service or app.
    pub kind: ActorKind,
    /// Its id.
    pub id: String,
    /// Its name (email for users).
    pub name: String,
}

/// Who acted, with the full on-behalf-of chain (empty when acting for themselves).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Actor {
    /// The identity that made the call.
    #[serde(flatten)]
    pub who: ActorRef,
    /// Whom it acted for, nearest first.
    #[serde(default)]
    pub on_behalf_of: Vec<ActorRef>,
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done.
    Success,
    /// Refused by authentication or authorization.
    Denied,
    /// Attempted and failed.
    Failed,
}

impl Outcome {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Denied => "denied",
            Self::Failed => "failed",
        }
    }
}

/// The resource acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResourceRef {
    /// Its type, such as `app` or `secret`.
    pub kind: String,
    /// Its id.
    pub id: String,
    /// Its place in the folder tree, when it has one.
    pub path: Option<String>,
}

/// An event before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditDraft {
    /// The org whose chain records it.
    pub org_id: OrgId,
    /// Who.
    pub actor: Actor,
    /// A dotted verb such as `app.revision.push`.
    pub action: String,
    /// On what.
    pub resource: ResourceRef,
    /// With what result.
    pub outcome: Outcome,
    /// Why it was denied or failed.
    pub reason: Option<String>,
    /// The request's id.
    pub request_id: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    /// The caller's user agent.
    pub user_agent: Option<String>,
    /// Further facts; sensitive values are stored as keyed HMACs, never as themselves.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

/// A record in an org's chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditRecord {
    /// Position in the org's chain, from 1, without gaps.
    pub seq: u64,
    /// When it was recorded (UTC, milliseconds).
    pub time: Timestamp,
    /// The event.
    #[serde(flatten)]
    pub draft: AuditDraft,
    /// Hex SHA-256 of the previous record (zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this record: `H("gatehouse-audit-v1" ‖ prev ‖ canonical(body))`.
    pub hash: String,
}
