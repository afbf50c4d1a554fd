//! Identity administration: the org's SCIM provisioning tokens, sign-in sessions, and the client
//! CA for service identities' certificates.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_authz::Action;
use gatehouse_core::PrincipalId;
use gatehouse_store::{ClientCa, NewScimToken, ScimToken, SessionInfo};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authz::resource;
use crate::error::ApiResult;
use crate::extract::{Admin, Anyone, ApiJson, ApiPath, ApiQuery, Auth, Read};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_scim_tokens, create_scim_token))
        .routes(routes!(revoke_scim_token))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(get_client_ca, set_client_ca, remove_client_ca))
}

/// The org's client CA for mTLS, as PEM.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClientCa {
    /// One or more CA certificates, PEM. Service identities present certificates issued by it
    /// whose URI SAN is `spiffe://gatehouse/org/<org>/service/<service>`.
    pub pem: String,
}

/// The CA that issues the org's service identities' client certificates (mTLS).
#[utoipa::path(get, path = "/api/v1/client-ca", tag = "identity",
    responses((status = 200, body = ClientCa), (status = 404, body = crate::Problem)))]
async fn get_client_ca(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<ClientCa>> {
    let p = auth.principal();
    auth.authorize(&state, Action::IdentityManage, &resource::org(&p.org_id)).await?;
    let ca = state.store.client_ca(&p.org_id).await?;
    ca.map(Json).ok_or_else(|| crate::error::ApiError::NotFound("no client CA is set".to_owned()))
}

/// Set (or replace) the org's client CA. From the next request, certificates it issued
/// authenticate the service identities their URI SAN names; others' do not.
#[utoipa::path(put, path = "/api/v1/client-ca", tag = "identity", request_body = SetClientCa,
    responses((status = 200, body = ClientCa), (status = 422, body = crate::Problem)))]
async fn set_client_ca(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(body): ApiJson<SetClientCa>,
) -> ApiResult<Json<ClientCa>> {
    let p = auth.principal();
    auth.authorize(&state, Action::IdentityManage, &resource::org(&p.org_id)).await?;
    let fingerprint = crate::tls::check_ca_pem(&body.pem).map_err(crate::error::ApiError::Unprocessable)?;
    Ok(Json(state.store.set_client_ca(&p.org_id, &body.pem, &fingerprint, &auth.audit()).await?))
}

/// Remove the org's client CA: no client certificate authenticates any more.
#[utoipa::path(delete, path = "/api/v1/client-ca", tag = "identity",
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn remove_client_ca(State(state): State<AppState>, auth: Auth<Admin>) -> ApiResult<StatusCode> {
    let p = auth.principal();
    auth.authorize(&state, Action::IdentityManage, &resource::org(&p.org_id)).await?;
    state.store.remove_client_ca(&p.org_id, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whose sessions to list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// A principal's id (needs `principal.manage` on it); the caller's own sessions by default.
    pub principal_id: Option<PrincipalId>,
}

/// List sign-in sessions (never their secrets): the caller's own, or a principal's.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "identity", params(SessionQuery),
    responses((status = 200, body = Vec<SessionInfo>)))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: Auth<Anyone>,
    ApiQuery(q): ApiQuery<SessionQuery>,
) -> ApiResult<Json<Vec<SessionInfo>>> {
    let p = auth.principal();
    let whose = q.principal_id.unwrap_or_else(|| p.id.clone());
    authorize_on(&state, &auth, &whose).await?;
    Ok(Json(state.store.list_sessions(&p.org_id, Some(&whose)).await?))
}

/// One's own sessions are one's own business; anyone else's need `principal.manage` on them.
async fn authorize_on(state: &AppState, auth: &Auth<Anyone>, whose: &PrincipalId) -> ApiResult<()> {
    let p = auth.principal();
    if *whose == p.id {
        return auth
            .authorize(state, Action::PrincipalSelf, &resource::principal(p.id.as_str(), p.kind, &p.name))
            .await;
    }
    let record = state.store.get_principal(&p.org_id, whose).await?;
    auth.authorize(state, Action::PrincipalManage, &resource::principal(whose.as_str(), record.kind, &record.name))
        .await
}

/// Revoke a session (sign someone out everywhere they used it); the next request with it is
/// refused.
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "identity", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: Auth<Anyone>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let p = auth.principal();
    let session = state.store.get_session(&p.org_id, &id).await?;
    authorize_on(&state, &auth, &session.principal_id).await?;
    state.store.revoke_session(&p.org_id, &id, "session.revoke", &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List the org's SCIM tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/scim-tokens", tag = "identity",
    responses((status = 200, body = Vec<ScimToken>)))]
async fn list_scim_tokens(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<Vec<ScimToken>>> {
    let p = auth.principal();
    auth.authorize(&state, Action::IdentityManage, &resource::org(&p.org_id)).await?;
    Ok(Json(state.store.list_scim_tokens(&p.org_id).await?))
}

/// A request for a SCIM token: an empty object (fields may be added later; unknown ones are refused).
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateScimToken {}

/// Create a SCIM bearer token for the org's identity provider, to provision users and groups at
/// `/scim/v2`. The token is in this response only. Earlier tokens keep working until revoked.
#[utoipa::path(post, path = "/api/v1/scim-tokens", tag = "identity", request_body = CreateScimToken,
    responses((status = 201, body = NewScimToken)))]
async fn create_scim_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(_request): ApiJson<CreateScimToken>,
) -> ApiResult<(StatusCode, Json<NewScimToken>)> {
    let p = auth.principal();
    auth.authorize(&state, Action::IdentityManage, &resource::org(&p.org_id)).await?;
    let created = state.store.create_scim_token(&p.org_id, &auth.audit()).await?;
    tracing::info!(token = %created.id, by = %p.id, "SCIM token created");
    Ok((StatusCode::CREATED, Json(created)))
}

/// Revoke a SCIM token; the identity provider's next request with it is refused.
#[utoipa::path(delete, path = "/api/v1/scim-tokens/{id}", tag = "identity", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn revoke_scim_token(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    let p = auth.principal();
    auth.authorize(&state, Action::IdentityManage, &resource::org(&p.org_id)).await?;
    state.store.revoke_scim_token(&p.org_id, &id, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}
