//! Principals (users, service identities) and API tokens.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::{ApiToken, NewToken, PrincipalId, PrincipalKind, PrincipalRecord, Scope, TokenId};
use gatehouse_store::NewPrincipal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, Auth, Read};
use gatehouse_authz::Action;

/// Tokens live this long unless asked otherwise.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// No token lives longer: long-lived static credentials are what Gatehouse exists to remove.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(366 * 24 * 3600);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_principals, create_principal))
        .routes(routes!(get_principal, update_principal))
        .routes(routes!(list_tokens, create_token))
        .routes(routes!(revoke_token))
        .routes(routes!(create_client_secret))
}

/// List the org's users and service identities.
#[utoipa::path(get, path = "/api/v1/principals", tag = "principals", params(super::paging::PageParams),
    responses((status = 200, body = Vec<PrincipalRecord>, headers(("link" = String, description = "next page, when there is one"))), (status = 401, body = crate::Problem)))]
async fn list_principals(
    State(state): State<AppState>,
    auth: Auth<Read>,
    uri: axum::http::Uri,
    ApiQuery(params): ApiQuery<super::paging::PageParams>,
) -> ApiResult<axum::response::Response> {
    let p = auth.principal();
    auth.authorize(&state, Action::PrincipalRead, &resource::root()).await?;
    let page = super::paging::page(params.limit, params.after)?;
    let list = state.store.list_principals(&p.org_id, &page).await?;
    Ok(super::paging::respond(list, &page, &uri, |r| r.name.clone()))
}

/// A request to create a principal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePrincipal {
    /// `user` or `service`.
    pub kind: PrincipalKind,
    /// A lowercase email for users, a slug for services.
    pub name: String,
    /// Name for people.
    pub display_name: Option<String>,
    /// The most this principal's tokens may carry (default `read`).
    pub max_scope: Option<Scope>,
}

/// Create a user or service identity (admin).
#[utoipa::path(post, path = "/api/v1/principals", tag = "principals", request_body = CreatePrincipal,
    responses((status = 201, body = PrincipalRecord), (status = 409, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_principal(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<CreatePrincipal>,
) -> ApiResult<(StatusCode, Json<PrincipalRecord>)> {
    let p = auth.principal();
    auth.authorize(&state, Action::PrincipalManage, &resource::root()).await?;
    // A new principal is granted its scope's role on the root folder: that is granting a role.
    auth.authorize(&state, Action::RoleManage, &resource::root()).await?;
    let record = state
        .store
        .create_principal(
            &p.org_id,
            NewPrincipal {
                kind: req.kind,
                name: req.name,
                display_name: req.display_name,
                max_scope: req.max_scope.unwrap_or(Scope::Read),
            },
            &auth.audit(),
        )
        .await?;
    tracing::info!(principal = %record.id, by = %p.id, "principal created");
    Ok((StatusCode::CREATED, Json(record)))
}

/// Show a principal.
#[utoipa::path(get, path = "/api/v1/principals/{id}", tag = "principals", params(("id" = PrincipalId, Path)),
    responses((status = 200, body = PrincipalRecord), (status = 404, body = crate::Problem)))]
async fn get_principal(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(id): ApiPath<PrincipalId>,
) -> ApiResult<Json<PrincipalRecord>> {
    let p = auth.principal();
    let record = state.store.get_principal(&p.org_id, &id).await?;
    let target = resource::principal(record.id.as_str(), record.kind, &record.name);
    if !(id == p.id && auth.allows(&state, Action::PrincipalSelf, &target).await?) {
        auth.authorize(&state, Action::PrincipalRead, &target).await?;
    }
    Ok(Json(record))
}

/// A change to a principal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdatePrincipal {
    /// `false` deactivates the principal and revokes all its tokens at once.
    pub active: bool,
}

/// Deactivate or reactivate a principal (admin). Deactivation revokes its tokens.
#[utoipa::path(patch, path = "/api/v1/principals/{id}", tag = "principals", params(("id" = PrincipalId, Path)),
    request_body = UpdatePrincipal,
    responses((status = 200, body = PrincipalRecord), (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn update_principal(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<PrincipalId>,
    ApiJson(req): ApiJson<UpdatePrincipal>,
) -> ApiResult<Json<PrincipalRecord>> {
    let p = auth.principal();
    let record = state.store.get_principal(&p.org_id, &id).await?;
    auth.authorize(&state, Action::PrincipalManage, &resource::principal(id.as_str(), record.kind, &record.name))
        .await?;
    if id == p.id && !req.active {
        return Err(ApiError::Unprocessable("you cannot deactivate yourself".to_owned()));
    }
    let record = state.store.set_principal_active(&p.org_id, &id, req.active, &auth.audit()).await?;
    tracing::info!(principal = %id, active = req.active, by = %p.id, "principal updated");
    Ok(Json(record))
}

/// Filters for listing tokens.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TokenFilter {
    /// Only this principal's tokens (admins only for other principals).
    pub principal_id: Option<PrincipalId>,
    /// Most tokens to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Cursor from the previous page's `Link: rel="next"` header.
    pub after: Option<String>,
}

/// List token metadata (never secrets): the caller's own, or any principal's for admins.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", params(TokenFilter),
    responses((status = 200, body = Vec<ApiToken>, headers(("link" = String, description = "next page, when there is one"))), (status = 403, body = crate::Problem)))]
async fn list_tokens(
    State(state): State<AppState>,
    auth: Auth<Read>,
    uri: axum::http::Uri,
    ApiQuery(filter): ApiQuery<TokenFilter>,
) -> ApiResult<axum::response::Response> {
    let p = auth.principal();
    let own = resource::principal(p.id.as_str(), p.kind, &p.name);
    let principal = match filter.principal_id {
        Some(other) if other != p.id => {
            auth.require(Scope::Admin)?;
            let r = state.store.get_principal(&p.org_id, &other).await?;
            auth.authorize(&state, Action::PrincipalRead, &resource::principal(other.as_str(), r.kind, &r.name))
                .await?;
            Some(other)
        }
        Some(own_id) => {
            auth.authorize(&state, Action::PrincipalSelf, &own).await?;
            Some(own_id)
        }
        None if p.has(Scope::Admin) && auth.allows(&state, Action::PrincipalRead, &resource::root()).await? => None,
        None => {
            auth.authorize(&state, Action::PrincipalSelf, &own).await?;
            Some(p.id.clone())
        }
    };
    let page = super::paging::page(filter.limit, filter.after)?;
    let tokens = state.store.list_tokens(&p.org_id, principal.as_ref(), &page).await?;
    Ok(super::paging::respond(tokens, &page, &uri, |t| t.id.to_string()))
}

/// A request for a token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// A label, such as `laptop` or `github-actions`.
    #[schema(min_length = 1, max_length = 100)]
    pub name: String,
    /// What it may do; at most the caller's own scope.
    pub scope: Scope,
    /// Lifetime in seconds (default 90 days, at most 366 days).
    #[schema(minimum = 1, maximum = 31_622_400)]
    pub ttl_seconds: Option<u64>,
    /// Issue for another principal (admins only); the caller by default.
    pub principal_id: Option<PrincipalId>,
}

/// Create an API token. The secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, body = NewToken), (status = 403, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_token(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiJson(req): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<NewToken>)> {
    let p = auth.principal();
    let owner = req.principal_id.unwrap_or_else(|| p.id.clone());
    if owner != p.id {
        auth.require(Scope::Admin)?;
        let r = state.store.get_principal(&p.org_id, &owner).await?;
        auth.authorize(&state, Action::PrincipalManage, &resource::principal(owner.as_str(), r.kind, &r.name)).await?;
    } else {
        auth.authorize(&state, Action::PrincipalSelf, &resource::principal(p.id.as_str(), p.kind, &p.name)).await?;
    }
    if owner == p.id && !p.scope.grants(req.scope) {
        // A token can never mint a stronger one.
        return Err(ApiError::Forbidden(format!("a `{}` token cannot create a `{}` token", p.scope, req.scope)));
    }
    let ttl = match req.ttl_seconds {
        None => DEFAULT_TOKEN_TTL,
        Some(0) => return Err(ApiError::Unprocessable("`ttl_seconds` must be at least 1".to_owned())),
        Some(s) => Duration::from_secs(s),
    };
    if ttl > MAX_TOKEN_TTL {
        return Err(ApiError::Unprocessable(format!(
            "`ttl_seconds` must be at most {} (366 days)",
            MAX_TOKEN_TTL.as_secs()
        )));
    }
    let token =
        state.store.create_token(&p.org_id, &owner, &p.id, &req.name, req.scope, Some(ttl), &auth.audit()).await?;
    tracing::info!(token = %token.token.id, principal = %owner, by = %p.id, "token created");
    Ok((StatusCode::CREATED, Json(token)))
}

/// Revoke a token: one's own, or any in the org for admins.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", params(("id" = TokenId, Path)),
    responses((status = 200, body = ApiToken), (status = 404, body = crate::Problem)))]
async fn revoke_token(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(id): ApiPath<TokenId>,
) -> ApiResult<Json<ApiToken>> {
    let p = auth.principal();
    let token = state.store.get_token(&p.org_id, &id).await?;
    if token.principal_id != p.id {
        auth.require(Scope::Admin)?;
        let r = state.store.get_principal(&p.org_id, &token.principal_id).await?;
        auth.authorize(
            &state,
            Action::PrincipalManage,
            &resource::principal(token.principal_id.as_str(), r.kind, &r.name),
        )
        .await?;
    } else {
        auth.authorize(&state, Action::PrincipalSelf, &resource::principal(p.id.as_str(), p.kind, &p.name)).await?;
    }
    let revoked = state.store.revoke_token(&p.org_id, &id, &auth.audit()).await?;
    tracing::info!(token = %id, by = %p.id, "token revoked");
    Ok(Json(revoked))
}

/// Issue an OAuth client secret for a service identity: it exchanges `client_id` (the identity's
/// id) and the secret at `POST /oauth/token` for access tokens of at most 15 minutes. The secret
/// is in this response only; deactivating the identity revokes its secrets and refuses its
/// access tokens at once.
#[utoipa::path(post, path = "/api/v1/principals/{id}/client-secrets", tag = "principals", params(("id" = PrincipalId, Path)),
    responses((status = 201, body = gatehouse_store::NewClientSecret), (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_client_secret(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<PrincipalId>,
) -> ApiResult<(StatusCode, Json<gatehouse_store::NewClientSecret>)> {
    let p = auth.principal();
    let record = state.store.get_principal(&p.org_id, &id).await?;
    auth.authorize(&state, Action::PrincipalManage, &resource::principal(id.as_str(), record.kind, &record.name))
        .await?;
    let created = state.store.create_client_secret(&p.org_id, &id, &auth.audit()).await?;
    tracing::info!(principal = %id, secret = %created.id, by = %p.id, "client secret issued");
    Ok((StatusCode::CREATED, Json(created)))
}
