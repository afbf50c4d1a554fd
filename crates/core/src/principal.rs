//! Who is acting: authenticated principals and the coarse scopes their tokens carry.
//!
//! Fine-grained authorization (roles on folders, Cedar policies) builds on top of this: every
//! request carries a [`Principal`], and every handler asks it for a [`Scope`] before acting.

use std::fmt;
use std::str::FromStr;

use crate::{OrgId, PrincipalId, TokenId};

/// Whether a principal is a person or a documented automation identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    /// A named human.
    User,
    /// A documented service identity (CI, a data plane, an integration).
    Service,
}

impl PrincipalKind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
        }
    }
}

impl FromStr for PrincipalKind {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        match s {
            "user" => Ok(Self::User),
            "service" => Ok(Self::Service),
            other => Err(ScopeError(format!("unknown principal kind `{other}` (expected user or service)"))),
        }
    }
}

/// What a token may do. `read` < `push` < `write` < `admin`, each including the ones below it;
/// `audit` stands apart: it reads the audit log and nothing else, and `admin` includes it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read everything in the organization.
    Read,
    /// Read, and push revisions of apps (for CI and coding agents).
    Push,
    /// Push, and create or change folders and apps.
    Write,
    /// Write, and manage principals, other principals' tokens and the organization.
    Admin,
    /// Read the audit log, nothing else (for auditors).
    Audit,
}

impl Scope {
    /// All scopes, least first.
    pub const ALL: [Scope; 5] = [Scope::Read, Scope::Push, Scope::Write, Scope::Admin, Scope::Audit];

    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Push => "push",
            Self::Write => "write",
            Self::Admin => "admin",
            Self::Audit => "audit",
        }
    }

    /// Whether holding `self` grants `needed`.
    pub fn grants(self, needed: Scope) -> bool {
        match (self, needed) {
            (Scope::Audit, needed) => needed == Scope::Audit,
            (held, Scope::Audit) => held == Scope::Admin,
            (held, needed) => held >= needed,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a scope or kind string is not recognised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeError(String);

impl FromStr for Scope {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| ScopeError(format!("unknown scope `{s}` (expected read, push, write, admin or audit)")))
    }
}

/// How sensitive an app is; `high` gates every deploy.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Sensitivity {
    /// Internal tools over non-sensitive data.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Regulated or personal data; every deploy needs approval.
    High,
}

impl Sensitivity {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
        }
    }
}

impl FromStr for Sensitivity {
    type Err = ScopeError;
    fn from_str(s: &str) -> Result<Self, ScopeError> {
        match s {
            "low" => Ok(Self::Low),
            "normal" => Ok(Self::Normal),
            "high" => Ok(Self::High),
            other => Err(ScopeError(format!("unknown sensitivity `{other}` (expected low, normal or high)"))),
        }
    }
}

/// The kind of credential a request was authenticated with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// An API token (`gat_…`).
    ApiToken,
    /// A short-lived access token from the OAuth client-credentials grant.
    ClientCredentials,
    /// An org's SCIM bearer token (usable only on `/scim/v2`).
    ScimToken,
    /// A session from single sign-on (a browser cookie or the CLI's session token).
    Session,
    /// A TLS client certificate issued by the org's client CA (service identities).
    Mtls,
}

/// What the identity provider said about a sign-in, carried by its session into authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct SignIn {
    /// Whether the provider reported multi-factor authentication.
    pub mfa: bool,
    /// The provider's `amr` values.
    pub amr: Vec<String>,
    /// The provider's `acr`.
    pub acr: Option<String>,
}

/// An authenticated caller, as established from a credential on each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal's id.
    pub id: PrincipalId,
    /// The organization the principal belongs to; every query it makes is scoped to it.
    pub org_id: OrgId,
    /// Person or service.
    pub kind: PrincipalKind,
    /// The principal's name (email for users), for logs and audit.
    pub name: String,
    /// The token the request was made with.
    pub token_id: TokenId,
    /// What that token may do.
    pub scope: Scope,
    /// The kind of credential presented.
    pub credential: Credential,
    /// Whether the principal's org is the operator org, whose admins may create other orgs.
    pub operator: bool,
    /// The version of the org's access-control data when the credential was checked; a server
    /// whose cached snapshot is older reloads it before deciding.
    pub authz_version: i64,
    /// For a session, what the identity provider said about the sign-in.
    pub sign_in: Option<SignIn>,
}

impl Principal {
    /// Whether this principal's credential grants `needed`.
    pub fn has(&self, needed: Scope) -> bool {
        self.scope.grants(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered() {
        assert!(Scope::Admin.grants(Scope::Read));
        assert!(Scope::Write.grants(Scope::Push));
        assert!(!Scope::Push.grants(Scope::Write));
        assert!(!Scope::Read.grants(Scope::Push));
        assert!(Scope::Admin.grants(Scope::Audit));
        assert!(Scope::Audit.grants(Scope::Audit));
        for s in [Scope::Read, Scope::Push, Scope::Write] {
            assert!(!s.grants(Scope::Audit), "{s} must not read the audit log");
            assert!(!Scope::Audit.grants(s), "audit must not grant {s}");
        }
        assert!(!Scope::Audit.grants(Scope::Admin));
    }

    #[test]
    fn scopes_parse() {
        assert_eq!("push".parse::<Scope>().unwrap(), Scope::Push);
        assert!("root".parse::<Scope>().unwrap_err().to_string().contains("unknown scope"));
    }
}
