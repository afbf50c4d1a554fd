//! Authorization for every route: a per-org snapshot cache, resources as the handlers see them,
//! and the check each handler makes before it reads or changes anything.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gatehouse_authz::{
    Action, AuthMethod, Explanation, PrincipalKind, RequestContext, Resource, ResourceKind, Snapshot, Who,
};
use gatehouse_core::{App, Folder, OrgId, Principal};
use gatehouse_store::Store;

use crate::error::ApiError;

/// Snapshots of each org's roles, bindings and guardrails, rebuilt when the org's version moves.
#[derive(Default)]
pub struct AuthzCache {
    snapshots: RwLock<HashMap<OrgId, Arc<Snapshot>>>,
    /// One rebuild at a time, so a burst of requests after a change builds once.
    rebuild: tokio::sync::Mutex<()>,
}

impl AuthzCache {
    /// The snapshot of `org` at `version` or later.
    pub async fn snapshot(&self, store: &Store, org: &OrgId, version: i64) -> Result<Arc<Snapshot>, ApiError> {
        if let Some(s) = self.current(org, version) {
            return Ok(s);
        }
        let _guard = self.rebuild.lock().await;
        if let Some(s) = self.current(org, version) {
            return Ok(s);
        }
        let data = store.authz_data(org).await?;
        let snapshot = tokio::task::spawn_blocking(move || Snapshot::build(data))
            .await
            .map_err(|e| {
                tracing::error!(org = %org, error = %e, "authorization snapshot build panicked");
                ApiError::Internal
            })?
            .map_err(|e| {
                tracing::error!(org = %org, error = %e, "cannot build the authorization snapshot");
                ApiError::Internal
            })?;
        let snapshot = Arc::new(snapshot);
        self.snapshots.write().unwrap_or_else(|p| p.into_inner()).insert(org.clone(), snapshot.clone());
        Ok(snapshot)
    }

    fn current(&self, org: &OrgId, version: i64) -> Option<Arc<Snapshot>> {
        let map = self.snapshots.read().unwrap_or_else(|p| p.into_inner());
        map.get(org).filter(|s| s.version() >= version).cloned()
    }
}

/// The principal as the authorizer sees it.
pub fn who(p: &Principal) -> Who {
    // Deactivated principals do not authenticate; anyone here is active.
    who_of(p.id.as_str(), p.kind, &p.name, true)
}

/// Any principal, by its stored facts (for explanations about someone else).
pub fn who_of(id: &str, kind: gatehouse_core::PrincipalKind, name: &str, active: bool) -> Who {
    Who {
        id: id.to_owned(),
        kind: match kind {
            gatehouse_core::PrincipalKind::User => PrincipalKind::User,
            gatehouse_core::PrincipalKind::Service => PrincipalKind::Service,
        },
        name: name.to_owned(),
        active,
    }
}

/// Facts about the request for guardrails.
pub fn context(source: Option<&str>) -> RequestContext {
    RequestContext {
        mfa: false,
        amr: Vec::new(),
        acr: None,
        authn: AuthMethod::Token,
        source_ip: source.and_then(|s| {
            s.parse::<std::net::SocketAddr>().map(|a| a.ip()).ok().or_else(|| s.parse::<std::net::IpAddr>().ok())
        }),
    }
}

/// Resources as handlers name them.
pub mod resource {
    use super::*;

    /// The organization.
    pub fn org(org: &OrgId) -> Resource {
        Resource {
            kind: ResourceKind::Org,
            id: org.to_string(),
            name: org.to_string(),
            folder: None,
            app: None,
            sensitivity: None,
        }
    }

    /// The root folder (org-wide settings, principals, groups, roles).
    pub fn root() -> Resource {
        Resource {
            kind: ResourceKind::Folder,
            id: String::new(),
            name: "/".into(),
            folder: None,
            app: None,
            sensitivity: None,
        }
    }

    /// A folder.
    pub fn folder(f: &Folder) -> Resource {
        Resource {
            kind: ResourceKind::Folder,
            id: f.id.to_string(),
            name: f.path.clone(),
            folder: Some(f.id.to_string()),
            app: None,
            sensitivity: None,
        }
    }

    /// An app.
    pub fn app(a: &App) -> Resource {
        Resource {
            kind: ResourceKind::App,
            id: a.id.to_string(),
            name: a.name.clone(),
            folder: Some(a.folder_id.to_string()),
            app: None,
            sensitivity: Some(a.sensitivity.as_str().to_owned()),
        }
    }

    /// A principal as the object of an action.
    pub fn principal(id: &str, kind: gatehouse_core::PrincipalKind, name: &str) -> Resource {
        Resource {
            kind: match kind {
                gatehouse_core::PrincipalKind::User => ResourceKind::User,
                gatehouse_core::PrincipalKind::Service => ResourceKind::ServiceIdentity,
            },
            id: id.to_owned(),
            name: name.to_owned(),
            folder: None,
            app: None,
            sensitivity: None,
        }
    }

    /// A secret in a folder (and app, when scoped to one).
    pub fn secret(id: &str, name: &str, folder: Option<String>, app: Option<String>) -> Resource {
        Resource {
            kind: ResourceKind::Secret,
            id: id.to_owned(),
            name: name.to_owned(),
            folder,
            app,
            sensitivity: None,
        }
    }
}

/// Decides `action` on `resource` for `principal`.
pub async fn explain(
    cache: &AuthzCache,
    store: &Store,
    principal: &Principal,
    action: Action,
    resource: &Resource,
    source: Option<&str>,
) -> Result<Explanation, ApiError> {
    let snapshot = cache.snapshot(store, &principal.org_id, principal.authz_version).await?;
    let mut ctx = context(source);
    ctx.authn = match principal.credential {
        gatehouse_core::Credential::ApiToken => AuthMethod::Token,
        gatehouse_core::Credential::ClientCredentials => AuthMethod::ClientCredentials,
        // SCIM tokens never reach API authorization; if one did, it would be as a token.
        gatehouse_core::Credential::ScimToken => AuthMethod::Token,
        gatehouse_core::Credential::Session => AuthMethod::Session,
        gatehouse_core::Credential::Mtls => AuthMethod::Mtls,
    };
    if let Some(sign_in) = &principal.sign_in {
        ctx.mfa = sign_in.mfa;
        ctx.amr.clone_from(&sign_in.amr);
        ctx.acr.clone_from(&sign_in.acr);
    }
    Ok(snapshot.authorize(&who(principal), action, resource, &ctx))
}
