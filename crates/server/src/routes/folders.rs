//! The folder tree.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::{Folder, FolderId, OrgId};
use gatehouse_store::Store;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authz::resource;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, Auth, Read, Write};
use gatehouse_authz::Action;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_folders, create_folder)).routes(routes!(
        get_folder,
        update_folder,
        delete_folder
    ))
}

/// Finds a folder by id (`fld_…`) or by path (`/finance/refunds`).
pub(crate) async fn resolve_folder(store: &Store, org: &OrgId, reference: &str) -> ApiResult<Folder> {
    if FolderId::looks_like(reference) {
        let id: FolderId =
            reference.parse().map_err(|e: gatehouse_core::IdError| crate::ApiError::Unprocessable(e.to_string()))?;
        Ok(store.get_folder(org, &id).await?)
    } else if reference.starts_with('/') {
        Ok(store.folder_by_path(org, reference).await?)
    } else {
        Err(crate::ApiError::Unprocessable(format!(
            "`{}` is neither a folder id (`fld_…`) nor a path starting with `/`",
            reference.chars().take(80).collect::<String>()
        )))
    }
}

/// List the org's folders with their paths.
#[utoipa::path(get, path = "/api/v1/folders", tag = "folders",
    responses((status = 200, body = Vec<Folder>), (status = 401, body = crate::Problem)))]
async fn list_folders(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<Vec<Folder>>> {
    let p = auth.principal();
    auth.filters_each_item();
    let mut visible = Vec::new();
    for f in state.store.list_folders(&p.org_id).await? {
        if auth.allows(&state, Action::FolderRead, &resource::folder(&f)).await? {
            visible.push(f);
        }
    }
    Ok(Json(visible))
}

/// A request to create a folder.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateFolder {
    /// Name among its siblings (slug).
    #[schema(pattern = r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    /// Parent folder, by id or path; the root when absent.
    pub parent: Option<String>,
}

/// Create a folder.
#[utoipa::path(post, path = "/api/v1/folders", tag = "folders", request_body = CreateFolder,
    responses((status = 201, body = Folder), (status = 409, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_folder(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiJson(req): ApiJson<CreateFolder>,
) -> ApiResult<(StatusCode, Json<Folder>)> {
    let p = auth.principal();
    let parent = match &req.parent {
        Some(r) => resolve_folder(&state.store, &p.org_id, r).await?,
        None => state.store.root_folder(&p.org_id).await?,
    };
    auth.authorize(&state, Action::FolderCreate, &resource::folder(&parent)).await?;
    let parent = Some(parent.id);
    let folder = state.store.create_folder(&p.org_id, parent.as_ref(), &req.name, &auth.audit()).await?;
    tracing::info!(folder = %folder.id, by = %p.id, "folder created");
    Ok((StatusCode::CREATED, Json(folder)))
}

/// Show a folder.
#[utoipa::path(get, path = "/api/v1/folders/{id}", tag = "folders", params(("id" = FolderId, Path)),
    responses((status = 200, body = Folder), (status = 404, body = crate::Problem)))]
async fn get_folder(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(id): ApiPath<FolderId>,
) -> ApiResult<Json<Folder>> {
    let p = auth.principal();
    let folder = state.store.get_folder(&p.org_id, &id).await?;
    auth.authorize(&state, Action::FolderRead, &resource::folder(&folder)).await?;
    Ok(Json(folder))
}

/// A change to a folder.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateFolder {
    /// New name.
    pub name: Option<String>,
    /// New parent, by id or path. Moving under itself or a descendant is refused.
    pub parent: Option<String>,
}

/// Rename and/or move a folder.
#[utoipa::path(patch, path = "/api/v1/folders/{id}", tag = "folders", params(("id" = FolderId, Path)),
    request_body = UpdateFolder,
    responses((status = 200, body = Folder), (status = 404, body = crate::Problem), (status = 409, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn update_folder(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiPath(id): ApiPath<FolderId>,
    ApiJson(req): ApiJson<UpdateFolder>,
) -> ApiResult<Json<Folder>> {
    let p = auth.principal();
    let current = state.store.get_folder(&p.org_id, &id).await?;
    auth.authorize(&state, Action::FolderUpdate, &resource::folder(&current)).await?;
    let parent = match &req.parent {
        Some(r) => {
            let to = resolve_folder(&state.store, &p.org_id, r).await?;
            // A move carries the folder's grants and inherits new ones: it needs rights at both ends.
            auth.authorize(&state, Action::FolderCreate, &resource::folder(&to)).await?;
            Some(to.id)
        }
        None => None,
    };
    let folder = state.store.update_folder(&p.org_id, &id, req.name.as_deref(), parent.as_ref(), &auth.audit()).await?;
    tracing::info!(folder = %id, by = %p.id, "folder updated");
    Ok(Json(folder))
}

/// Delete an empty folder.
#[utoipa::path(delete, path = "/api/v1/folders/{id}", tag = "folders", params(("id" = FolderId, Path)),
    responses((status = 204), (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn delete_folder(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiPath(id): ApiPath<FolderId>,
) -> ApiResult<StatusCode> {
    let p = auth.principal();
    let folder = state.store.get_folder(&p.org_id, &id).await?;
    auth.authorize(&state, Action::FolderDelete, &resource::folder(&folder)).await?;
    state.store.delete_folder(&p.org_id, &id, &auth.audit()).await?;
    tracing::info!(folder = %id, by = %p.id, "folder deleted");
    Ok(StatusCode::NO_CONTENT)
}
