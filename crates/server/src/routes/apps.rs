//! Apps.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::{App, AppId, AppStatus, OrgId, PrincipalId, Scope, Sensitivity};
use gatehouse_store::{AppPatch, NewApp, Store};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::folders::resolve_folder;
use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, Read, Write};
use gatehouse_authz::Action;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_apps, create_app)).routes(routes!(get_app, update_app))
}

/// Finds an app by id (`app_…`) or by name.
pub(crate) async fn resolve_app(store: &Store, org: &OrgId, reference: &str) -> ApiResult<App> {
    if AppId::looks_like(reference) {
        let id: AppId = reference.parse().map_err(|e: gatehouse_core::IdError| ApiError::NotFound(e.to_string()))?;
        Ok(store.get_app(org, &id).await?)
    } else {
        Ok(store.app_by_name(org, reference).await?)
    }
}

/// Filters for listing apps.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AppFilter {
    /// Only apps directly in this folder (id or path).
    pub folder: Option<String>,
    /// Most apps to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Cursor from the previous page's `Link: rel="next"` header.
    pub after: Option<String>,
}

/// List apps.
#[utoipa::path(get, path = "/api/v1/apps", tag = "apps", params(AppFilter),
    responses((status = 200, body = Vec<App>, headers(("link" = String, description = "next page, when there is one"))), (status = 401, body = crate::Problem)))]
async fn list_apps(
    State(state): State<AppState>,
    auth: Auth<Read>,
    uri: axum::http::Uri,
    ApiQuery(filter): ApiQuery<AppFilter>,
) -> ApiResult<axum::response::Response> {
    let p = auth.principal();
    let folder = match &filter.folder {
        Some(f) => Some(resolve_folder(&state.store, &p.org_id, f).await?.id),
        None => None,
    };
    let page = super::paging::page(filter.limit, filter.after)?;
    let apps = state.store.list_apps(&p.org_id, folder.as_ref(), &page).await?;
    // The cursor is the last app the store returned, so paging goes on past apps filtered out.
    let next = super::paging::next_cursor(&apps, &page, |a| a.name.clone());
    auth.filters_each_item();
    let mut visible = Vec::with_capacity(apps.len());
    for a in apps {
        if auth.allows(&state, Action::AppRead, &resource::app(&a)).await? {
            visible.push(a);
        }
    }
    Ok(super::paging::respond_after(visible, next, &uri))
}

/// A request to create an app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApp {
    /// Slug, unique in the org; the manifest's `[app].name` must match it.
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Folder by id or path; the root when absent.
    pub folder: Option<String>,
    /// Owner; the caller when absent.
    pub owner_id: Option<PrincipalId>,
    /// Sensitivity; `normal` when absent.
    pub sensitivity: Option<Sensitivity>,
    /// Free text.
    pub description: Option<String>,
}

/// Create an app.
#[utoipa::path(post, path = "/api/v1/apps", tag = "apps", request_body = CreateApp,
    responses((status = 201, body = App), (status = 409, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_app(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(req): ApiJson<CreateApp>,
) -> ApiResult<(StatusCode, Json<App>)> {
    let p = auth.principal();
    let folder = match &req.folder {
        Some(f) => resolve_folder(&state.store, &p.org_id, f).await?,
        None => state.store.root_folder(&p.org_id).await?,
    };
    auth.authorize(&state, Action::AppCreate, &resource::folder(&folder)).await?;
    let app = state
        .store
        .create_app(
            &p.org_id,
            NewApp {
                name: req.name,
                folder_id: folder.id,
                owner_id: req.owner_id.unwrap_or_else(|| p.id.clone()),
                sensitivity: req.sensitivity.unwrap_or_default(),
                description: req.description,
            },
            &auth.audit(),
        )
        .await?;
    tracing::info!(app = %app.id, by = %p.id, "app created");
    Ok((StatusCode::CREATED, Json(app)))
}

/// Show an app, by id or name.
#[utoipa::path(get, path = "/api/v1/apps/{app}", tag = "apps", params(("app" = String, Path, description = "app id or name")),
    responses((status = 200, body = App), (status = 404, body = crate::Problem)))]
async fn get_app(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(app): ApiPath<String>,
) -> ApiResult<Json<App>> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    Ok(Json(app))
}

/// A change to an app.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateApp {
    /// Move to this folder (id or path).
    pub folder: Option<String>,
    /// New owner.
    pub owner_id: Option<PrincipalId>,
    /// New sensitivity; lowering it requires `admin`.
    pub sensitivity: Option<Sensitivity>,
    /// `archived` stops new revisions; `active` resumes them.
    pub status: Option<AppStatus>,
    /// New description.
    pub description: Option<String>,
}

/// Change an app's folder, owner, sensitivity, status or description.
#[utoipa::path(patch, path = "/api/v1/apps/{app}", tag = "apps", params(("app" = String, Path, description = "app id or name")),
    request_body = UpdateApp,
    responses((status = 200, body = App), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem)))]
async fn update_app(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiPath(app): ApiPath<String>,
    ApiJson(req): ApiJson<UpdateApp>,
) -> ApiResult<Json<App>> {
    let p = auth.principal();
    let current = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppUpdate, &resource::app(&current)).await?;
    if req.sensitivity.is_some_and(|s| s < current.sensitivity) {
        auth.require(Scope::Admin)?;
        // Lowering sensitivity weakens every control keyed on it: a security decision.
        auth.authorize(
            &state,
            Action::PolicyManage,
            &resource::folder(&state.store.get_folder(&p.org_id, &current.folder_id).await?),
        )
        .await?;
    }
    let folder_id = match &req.folder {
        Some(f) => {
            let to = resolve_folder(&state.store, &p.org_id, f).await?;
            // Moving an app is creating it somewhere else.
            auth.authorize(&state, Action::AppCreate, &resource::folder(&to)).await?;
            Some(to.id)
        }
        None => None,
    };
    let updated = state
        .store
        .update_app(
            &p.org_id,
            &current.id,
            AppPatch {
                folder_id,
                owner_id: req.owner_id,
                sensitivity: req.sensitivity,
                status: req.status,
                description: req.description.map(Some),
            },
            &auth.audit(),
        )
        .await?;
    tracing::info!(app = %current.id, by = %p.id, "app updated");
    Ok(Json(updated))
}
