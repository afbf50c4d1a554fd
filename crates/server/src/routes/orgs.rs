//! Organizations (tenants) and the caller's identity.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::{NewToken, Org, OrgId, PrincipalRecord, Scope};
use gatehouse_store::NewOrg;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, Anyone, ApiJson, ApiPath, Auth, Read};
use gatehouse_authz::Action;

/// Lifetime of the first admin token of a new org.
const NEW_ORG_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(whoami)).routes(routes!(list_orgs, create_org)).routes(routes!(get_org))
}

/// Who the caller is.
#[derive(Serialize, ToSchema)]
pub struct WhoAmI {
    /// The principal.
    pub principal: PrincipalRecord,
    /// Its org.
    pub org: Org,
    /// The scope of the token used, as limited by the principal's `max_scope`.
    pub scope: Scope,
    /// The token used (for a session, the session's id).
    pub token_id: gatehouse_core::TokenId,
    /// The kind of credential used.
    pub credential: gatehouse_core::Credential,
    /// For a session, what the identity provider said about the sign-in.
    pub sign_in: Option<gatehouse_core::SignIn>,
}

/// Describe the calling principal, its org and its effective scope.
#[utoipa::path(get, path = "/api/v1/whoami", tag = "identity",
    responses((status = 200, body = WhoAmI), (status = 401, body = crate::Problem)))]
async fn whoami(State(state): State<AppState>, auth: Auth<Anyone>) -> ApiResult<Json<WhoAmI>> {
    let p = auth.principal();
    auth.authorize(&state, Action::PrincipalSelf, &resource::principal(p.id.as_str(), p.kind, &p.name)).await?;
    Ok(Json(WhoAmI {
        principal: state.store.get_principal(&p.org_id, &p.id).await?,
        org: state.store.get_org(&p.org_id).await?,
        scope: p.scope,
        token_id: p.token_id.clone(),
        credential: p.credential,
        sign_in: p.sign_in.clone(),
    }))
}

/// List orgs: all of them for operator admins, otherwise the caller's own.
#[utoipa::path(get, path = "/api/v1/orgs", tag = "orgs",
    responses((status = 200, body = Vec<Org>), (status = 401, body = crate::Problem)))]
async fn list_orgs(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<Vec<Org>>> {
    let p = auth.principal();
    if p.operator && p.has(Scope::Admin) && auth.allows(&state, Action::OrgCreate, &resource::org(&p.org_id)).await? {
        Ok(Json(state.store.list_orgs().await?))
    } else {
        auth.authorize(&state, Action::OrgRead, &resource::org(&p.org_id)).await?;
        Ok(Json(vec![state.store.get_org(&p.org_id).await?]))
    }
}

/// A request to create an org.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    /// Slug, unique across the deployment.
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Name for people (defaults to `name`).
    pub display_name: Option<String>,
    /// Email of the org's first admin.
    pub admin_email: String,
}

/// A new org with its first admin and that admin's token (shown once).
#[derive(Serialize, ToSchema)]
pub struct CreatedOrg {
    /// The org.
    pub org: Org,
    /// Its first admin.
    pub admin: PrincipalRecord,
    /// The admin's token; valid for 7 days.
    pub token: NewToken,
}

/// Create a tenant org with its first admin (operator admins only).
#[utoipa::path(post, path = "/api/v1/orgs", tag = "orgs", request_body = CreateOrg,
    responses((status = 201, body = CreatedOrg), (status = 403, body = crate::Problem), (status = 409, body = crate::Problem)))]
async fn create_org(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<CreateOrg>,
) -> ApiResult<(StatusCode, Json<CreatedOrg>)> {
    let p = auth.principal();
    if !p.operator {
        return Err(ApiError::Forbidden("only admins of the operator org may create organizations".to_owned()));
    }
    auth.authorize(&state, Action::OrgCreate, &resource::org(&p.org_id)).await?;
    let created = state
        .store
        .create_org(
            NewOrg {
                display_name: req.display_name.unwrap_or_else(|| req.name.clone()),
                name: req.name,
                admin_email: req.admin_email,
                admin_token_ttl: Some(NEW_ORG_TOKEN_TTL),
            },
            &auth.audit(),
        )
        .await?;
    tracing::info!(org = %created.org.id, by = %p.id, "organization created");
    Ok((StatusCode::CREATED, Json(CreatedOrg { org: created.org, admin: created.admin, token: created.token })))
}

/// Show an org: the caller's own, or any for operator admins.
#[utoipa::path(get, path = "/api/v1/orgs/{id}", tag = "orgs", params(("id" = OrgId, Path)),
    responses((status = 200, body = Org), (status = 404, body = crate::Problem)))]
async fn get_org(State(state): State<AppState>, auth: Auth<Read>, ApiPath(id): ApiPath<OrgId>) -> ApiResult<Json<Org>> {
    let p = auth.principal();
    if id == p.org_id {
        auth.authorize(&state, Action::OrgRead, &resource::org(&p.org_id)).await?;
    } else if !(p.operator
        && p.has(Scope::Admin)
        && auth.allows(&state, Action::OrgCreate, &resource::org(&p.org_id)).await?)
    {
        return Err(ApiError::NotFound(format!("organization `{id}` not found")));
    }
    Ok(Json(state.store.get_org(&id).await?))
}
