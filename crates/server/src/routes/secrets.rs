//! Secrets (write-only to people) and the org's vault key.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::{SecretId, SecretMeta};
use gatehouse_vault::{KeyStatus, Scope};
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use zeroize::Zeroizing;

use super::apps::resolve_app;
use super::folders::resolve_folder;
use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, Auth, Read, Write};
use gatehouse_authz::Action;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_secrets, set_secret))
        .routes(routes!(get_secret, delete_secret))
        .routes(routes!(key_status))
        .routes(routes!(rotate_key))
        .routes(routes!(destroy_key))
}

/// List secret metadata. Values are never returned.
#[utoipa::path(get, path = "/api/v1/secrets", tag = "secrets", params(super::paging::PageParams),
    responses((status = 200, body = Vec<SecretMeta>, headers(("link" = String, description = "next page, when there is one"))), (status = 401, body = crate::Problem)))]
async fn list_secrets(
    State(state): State<AppState>,
    auth: Auth<Read>,
    uri: axum::http::Uri,
    ApiQuery(params): ApiQuery<super::paging::PageParams>,
) -> ApiResult<axum::response::Response> {
    let page = super::paging::page(params.limit, params.after)?;
    let list = state.vault.list(&auth.principal().org_id, &page).await?;
    let next = super::paging::next_cursor(&list, &page, |m| m.id.to_string());
    auth.filters_each_item();
    let mut visible = Vec::with_capacity(list.len());
    // Secrets scoped to the same app share one lookup of the app's folder.
    let mut apps = AppFolders::new();
    for m in list {
        let resource = secret_resource(&state, &auth.principal().org_id, &m, &mut apps).await?;
        if auth.allows(&state, Action::SecretRead, &resource).await? {
            visible.push(m);
        }
    }
    Ok(super::paging::respond_after(visible, next, &uri))
}

/// A secret value to store.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSecret {
    /// Name within its scope: letters, digits, `_`, `-`, `.`.
    #[schema(pattern = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")]
    pub name: String,
    /// The value (UTF-8). Write-only: no API returns it.
    #[schema(value_type = String, format = Password, min_length = 1, max_length = 65536)]
    pub value: Zeroizing<String>,
    /// Scope the secret to this folder (id or path) and everything below it.
    pub folder: Option<String>,
    /// Scope the secret to this app (id or name).
    pub app: Option<String>,
    /// Flag the secret for rotation this many days after each write.
    #[schema(minimum = 1, maximum = 3650)]
    pub rotate_every_days: Option<i64>,
}

/// Create a secret, or write a new version of it (a rotation). Without `folder` or `app` the
/// secret belongs to the whole org.
#[utoipa::path(post, path = "/api/v1/secrets", tag = "secrets", request_body = SetSecret,
    responses((status = 201, body = SecretMeta, description = "first version"), (status = 200, body = SecretMeta, description = "new version"),
        (status = 410, body = crate::Problem, description = "the organization's key was destroyed"),
        (status = 422, body = crate::Problem), (status = 503, body = crate::Problem, description = "key management unavailable")))]
async fn set_secret(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(req): ApiJson<SetSecret>,
) -> ApiResult<(StatusCode, Json<SecretMeta>)> {
    let p = auth.principal();
    let scope = match (&req.folder, &req.app) {
        (Some(_), Some(_)) => return Err(ApiError::Unprocessable("give `folder` or `app`, not both".to_owned())),
        (Some(f), None) => {
            let folder = resolve_folder(&state.store, &p.org_id, f).await?;
            auth.authorize(&state, Action::SecretWrite, &resource::folder(&folder)).await?;
            Scope::Folder(folder.id)
        }
        (None, Some(a)) => {
            let app = resolve_app(&state.store, &p.org_id, a).await?;
            auth.authorize(&state, Action::SecretWrite, &resource::app(&app)).await?;
            Scope::App(app.id)
        }
        (None, None) => {
            auth.authorize(&state, Action::SecretWrite, &resource::root()).await?;
            Scope::Org
        }
    };
    let meta = state
        .vault
        .put(&p.org_id, &scope, &req.name, req.value.as_bytes(), &p.id, req.rotate_every_days, &auth.audit())
        .await?;
    tracing::info!(secret = %meta.id, version = meta.current_version, by = %p.id, "secret written");
    let status = if meta.current_version == 1 { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(meta)))
}

/// Show a secret's metadata: scope, versions, rotation, last use.
#[utoipa::path(get, path = "/api/v1/secrets/{id}", tag = "secrets", params(("id" = SecretId, Path)),
    responses((status = 200, body = SecretMeta), (status = 404, body = crate::Problem)))]
async fn get_secret(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(id): ApiPath<SecretId>,
) -> ApiResult<Json<SecretMeta>> {
    let meta = state.vault.get(&auth.principal().org_id, &id).await?;
    auth.authorize(
        &state,
        Action::SecretRead,
        &secret_resource(&state, &auth.principal().org_id, &meta, &mut AppFolders::new()).await?,
    )
    .await?;
    Ok(Json(meta))
}

/// Delete a secret and all its versions.
#[utoipa::path(delete, path = "/api/v1/secrets/{id}", tag = "secrets", params(("id" = SecretId, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn delete_secret(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiPath(id): ApiPath<SecretId>,
) -> ApiResult<StatusCode> {
    let p = auth.principal();
    let meta = state.vault.get(&p.org_id, &id).await?;
    auth.authorize(
        &state,
        Action::SecretWrite,
        &secret_resource(&state, &p.org_id, &meta, &mut AppFolders::new()).await?,
    )
    .await?;
    state.vault.delete(&p.org_id, &id, &auth.audit()).await?;
    tracing::info!(secret = %id, by = %p.id, "secret deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The org's key: which KEK wraps its data keys, and re-wrap progress.
#[utoipa::path(get, path = "/api/v1/vault/key", tag = "vault",
    responses((status = 200, body = KeyStatus), (status = 403, body = crate::Problem)))]
async fn key_status(State(state): State<AppState>, auth: Auth<Admin>) -> ApiResult<Json<KeyStatus>> {
    auth.authorize(&state, Action::VaultKeyRead, &resource::org(&auth.principal().org_id)).await?;
    Ok(Json(state.vault.key_status(&auth.principal().org_id).await?))
}

/// A KEK rotation.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    /// An existing key to adopt, as `backend:name` (bring your own key); a new key is created for
    /// the org when absent.
    pub kek_ref: Option<String>,
}

/// Move the org to a new KEK. New secrets use it at once; existing data keys are re-wrapped in
/// the background (progress in `pending_rewrap`).
#[utoipa::path(post, path = "/api/v1/vault/key/rotate", tag = "vault", request_body = RotateKey,
    responses((status = 202, body = KeyStatus), (status = 422, body = crate::Problem), (status = 503, body = crate::Problem)))]
async fn rotate_key(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<RotateKey>,
) -> ApiResult<(StatusCode, Json<KeyStatus>)> {
    let p = auth.principal();
    auth.authorize(&state, Action::VaultKeyManage, &resource::org(&p.org_id)).await?;
    let status = state.vault.rotate_org_key(&p.org_id, req.kek_ref, &auth.audit()).await?;
    let (vault, org) = (state.vault.clone(), p.org_id.clone());
    tokio::spawn(async move {
        match vault.rewrap(&org, None).await {
            Ok(0) => tracing::info!(%org, "re-wrap finished"),
            Ok(left) => tracing::warn!(%org, left, "re-wrap incomplete"),
            Err(e) => tracing::error!(%org, error = %e, "re-wrap failed; it resumes at next start"),
        }
    });
    Ok((StatusCode::ACCEPTED, Json(status)))
}

/// Confirmation for crypto-shredding.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestroyKey {
    /// The org's name, typed out.
    pub confirm: String,
}

/// Destroy the org's own key: every secret of the org becomes unreadable for good.
#[utoipa::path(post, path = "/api/v1/vault/key/destroy", tag = "vault", request_body = DestroyKey,
    responses((status = 200, body = KeyStatus), (status = 422, body = crate::Problem)))]
async fn destroy_key(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<DestroyKey>,
) -> ApiResult<Json<KeyStatus>> {
    let p = auth.principal();
    auth.authorize(&state, Action::VaultKeyManage, &resource::org(&p.org_id)).await?;
    let org = state.store.get_org(&p.org_id).await?;
    if req.confirm != org.name {
        return Err(ApiError::Unprocessable(format!("set `confirm` to the organization's name, `{}`", org.name)));
    }
    state.vault.destroy_org_key(&p.org_id, &auth.audit()).await?;
    tracing::warn!(org = %p.org_id, by = %p.id, "organization key destroyed");
    Ok(Json(state.vault.key_status(&p.org_id).await?))
}

/// App id or name → (folder id, app id), filled as apps are resolved.
type AppFolders = std::collections::HashMap<String, (String, String)>;

/// A secret as the authorizer sees it: in its folder, or in its app's folder.
async fn secret_resource(
    state: &AppState,
    org: &gatehouse_core::OrgId,
    m: &SecretMeta,
    apps: &mut AppFolders,
) -> ApiResult<gatehouse_authz::Resource> {
    use gatehouse_core::SecretScopeKind;
    let (folder, app) = match m.scope_kind {
        SecretScopeKind::Org => (None, None),
        SecretScopeKind::Folder => (Some(m.scope_id.clone()), None),
        SecretScopeKind::App => {
            if !apps.contains_key(&m.scope_id) {
                let app = resolve_app(&state.store, org, &m.scope_id).await?;
                apps.insert(m.scope_id.clone(), (app.folder_id.to_string(), app.id.to_string()));
            }
            let (folder, app) = apps.get(&m.scope_id).cloned().unwrap_or_default();
            (Some(folder), Some(app))
        }
    };
    Ok(resource::secret(m.id.as_str(), &m.name, folder, app))
}
