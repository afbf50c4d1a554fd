//! Revisions: push, history, archive download and diff.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_bundle::{Bundle, Limits, RevisionDiff};
use gatehouse_core::{App, OrgId, Provenance, Revision};
use gatehouse_store::{AppPatch, NewRevision, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::apps::resolve_app;
use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, ApiQuery, Auth, Push, Read};
use gatehouse_authz::Action;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_revisions, push_revision))
        .routes(routes!(get_revision))
        .routes(routes!(get_archive))
        .routes(routes!(diff_revisions))
}

/// Media types accepted for bundle uploads.
const ARCHIVE_TYPES: [&str; 5] =
    ["application/gzip", "application/x-gzip", "application/x-tar", "application/tar+gzip", "application/octet-stream"];

/// Metadata sent with a push.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PushParams {
    /// The parent revision's digest; the app's latest revision when absent.
    pub parent: Option<String>,
    /// A message describing the change.
    pub message: Option<String>,
    /// The AI coding agent that produced the change.
    pub ai_agent: Option<String>,
    /// The model behind it.
    pub ai_model: Option<String>,
    /// Comma-separated ids of the prompts that produced the change.
    pub ai_prompt_ids: Option<String>,
}

/// The outcome of a push.
#[derive(Serialize, ToSchema)]
pub struct PushResult {
    /// The stored revision.
    pub revision: Revision,
    /// False when this exact content had been pushed to the app before.
    pub created: bool,
}

fn check_text(field: &str, value: &Option<String>, max: usize) -> ApiResult<()> {
    if value.as_ref().is_some_and(|v| v.len() > max || v.chars().any(|c| c.is_control() && c != '\n')) {
        return Err(ApiError::BadRequest(format!("`{field}` must be at most {max} bytes of printable text")));
    }
    Ok(())
}

fn provenance(params: &PushParams) -> ApiResult<Provenance> {
    check_text("ai_agent", &params.ai_agent, 200)?;
    check_text("ai_model", &params.ai_model, 200)?;
    check_text("ai_prompt_ids", &params.ai_prompt_ids, 20_000)?;
    let prompt_ids: Vec<String> = params
        .ai_prompt_ids
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if prompt_ids.len() > 200 || prompt_ids.iter().any(|p| p.len() > 200) {
        return Err(ApiError::BadRequest("at most 200 prompt ids of at most 200 bytes each".to_owned()));
    }
    Ok(Provenance {
        agent: params.ai_agent.clone().filter(|s| !s.is_empty()),
        model: params.ai_model.clone().filter(|s| !s.is_empty()),
        prompt_ids,
    })
}

/// Reads the upload, refusing it as soon as it passes the configured limit.
async fn read_archive(headers: &HeaderMap, body: Body, limits: &Limits) -> ApiResult<Vec<u8>> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_ascii_lowercase());
    match content_type {
        Some(ct) if ARCHIVE_TYPES.contains(&ct.as_str()) => {}
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "send the bundle as `Content-Type: application/gzip` (a tar.gz archive)".to_owned(),
            ));
        }
    }
    let too_large = || {
        ApiError::PayloadTooLarge(format!("the bundle is larger than the limit of {} bytes", limits.max_archive_bytes))
    };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.max_archive_bytes) {
        return Err(too_large());
    }
    let mut archive = Vec::with_capacity(declared.unwrap_or(0).min(limits.max_archive_bytes) as usize);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        let chunk = chunk.map_err(|_| ApiError::BadRequest("the request body could not be read".to_owned()))?;
        if (archive.len() + chunk.len()) as u64 > limits.max_archive_bytes {
            return Err(too_large());
        }
        archive.extend_from_slice(&chunk);
    }
    Ok(archive)
}

/// Push a revision: the body is the app folder as a tar.gz archive with `gatehouse.toml` at its
/// root. Identical content is stored once; pushing it again answers 200 with the existing revision.
#[utoipa::path(post, path = "/api/v1/apps/{app}/revisions", tag = "revisions",
    params(("app" = String, Path, description = "app id or name"), PushParams),
    request_body(content = Vec<u8>, content_type = "application/gzip", description = "tar.gz of the app folder"),
    responses(
        (status = 201, body = PushResult, description = "new revision"),
        (status = 200, body = PushResult, description = "identical content already pushed"),
        (status = 413, body = crate::Problem), (status = 415, body = crate::Problem),
        (status = 422, body = crate::Problem, description = "invalid bundle or manifest")))]
async fn push_revision(
    State(state): State<AppState>,
    auth: Auth<Push>,
    ApiPath(app): ApiPath<String>,
    ApiQuery(params): ApiQuery<PushParams>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<PushResult>)> {
    let p = auth.principal().clone();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppPush, &resource::app(&app)).await?;
    check_text("message", &params.message, 2000)?;
    let provenance = provenance(&params)?;
    let archive = read_archive(&headers, body, &state.limits).await?;
    let limits = state.limits;
    let (bundle, canonical) = tokio::task::spawn_blocking(move || Bundle::open_for_storage(archive, &limits))
        .await
        .map_err(|_| ApiError::Internal)??;
    bundle.manifest.expect_app(&app.name).map_err(ApiError::InvalidManifest)?;
    let manifest = serde_json::to_value(&bundle.manifest).map_err(|_| ApiError::Internal)?;
    let outcome = state
        .store
        .push_revision(
            &p.org_id,
            &app.id,
            NewRevision {
                digest: bundle.digest.to_hex(),
                archive: canonical,
                parent: params.parent.map(|s| s.trim().to_ascii_lowercase()),
                author_id: p.id.clone(),
                provenance,
                message: params.message,
                file_count: bundle.tree.len() as i64,
                content_bytes: bundle.tree.content_bytes() as i64,
                manifest,
            },
            &auth.audit(),
        )
        .await?;
    // A manifest may raise the app's sensitivity, never lower it.
    if bundle.manifest.app.sensitivity > app.sensitivity {
        state
            .store
            .update_app(
                &p.org_id,
                &app.id,
                AppPatch { sensitivity: Some(bundle.manifest.app.sensitivity), ..AppPatch::default() },
                &auth.audit(),
            )
            .await?;
    }
    tracing::info!(app = %app.id, digest = %outcome.revision.digest, created = outcome.created, by = %p.id, "revision pushed");
    if outcome.created {
        state.scanner.wake();
    }
    let status = if outcome.created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(PushResult { revision: outcome.revision, created: outcome.created })))
}

/// Paging for history.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Most revisions to return (1–1000, default 50).
    pub limit: Option<i64>,
    /// Only revisions numbered below this.
    pub before: Option<i64>,
}

/// List an app's revisions, newest first.
#[utoipa::path(get, path = "/api/v1/apps/{app}/revisions", tag = "revisions",
    params(("app" = String, Path, description = "app id or name"), HistoryParams),
    responses((status = 200, body = Vec<Revision>), (status = 404, body = crate::Problem)))]
async fn list_revisions(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(app): ApiPath<String>,
    ApiQuery(params): ApiQuery<HistoryParams>,
) -> ApiResult<Json<Vec<Revision>>> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    let limit = params.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("`limit` must be from 1 to 1000".to_owned()));
    }
    Ok(Json(state.store.list_revisions(&p.org_id, &app.id, limit, params.before).await?))
}

/// Show a revision by digest, unique digest prefix, number or `head`.
#[utoipa::path(get, path = "/api/v1/apps/{app}/revisions/{rev}", tag = "revisions",
    params(("app" = String, Path, description = "app id or name"), ("rev" = String, Path, description = "digest, prefix, number or `head`")),
    responses((status = 200, body = Revision), (status = 404, body = crate::Problem)))]
async fn get_revision(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath((app, rev)): ApiPath<(String, String)>,
) -> ApiResult<Json<Revision>> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    Ok(Json(state.store.get_revision(&p.org_id, &app.id, &rev).await?))
}

/// Download a revision's canonical archive (tar.gz).
#[utoipa::path(get, path = "/api/v1/apps/{app}/revisions/{rev}/archive", tag = "revisions",
    params(("app" = String, Path, description = "app id or name"), ("rev" = String, Path, description = "digest, prefix, number or `head`")),
    responses((status = 200, content_type = "application/gzip", body = Vec<u8>), (status = 404, body = crate::Problem)))]
async fn get_archive(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath((app, rev)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    let revision = state.store.get_revision(&p.org_id, &app.id, &rev).await?;
    let data = state.store.get_archive(&p.org_id, &revision.digest).await?;
    let short = revision.digest.get(..12).unwrap_or(&revision.digest);
    let disposition = format!("attachment; filename=\"{}-{short}.tar.gz\"", app.name);
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::ETAG, format!("\"{}\"", revision.digest)),
        ],
        data,
    )
        .into_response())
}

/// The two revisions to compare.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DiffParams {
    /// The older revision.
    pub from: String,
    /// The newer revision.
    pub to: String,
}

/// A diff with the revisions it compares.
#[derive(Serialize, ToSchema)]
pub struct DiffResult {
    /// The older revision.
    pub from: Revision,
    /// The newer revision.
    pub to: Revision,
    /// Changed files and changed capabilities.
    #[serde(flatten)]
    pub diff: RevisionDiff,
}

async fn load_bundle(store: &Store, org: &OrgId, revision: &Revision, limits: Limits) -> ApiResult<Bundle> {
    let data = store.get_archive(org, &revision.digest).await?;
    tokio::task::spawn_blocking(move || Bundle::open(&data, &limits)).await.map_err(|_| ApiError::Internal)?.map_err(
        |e| {
            tracing::error!(error = %e, "stored archive does not reopen");
            ApiError::Internal
        },
    )
}

/// Compare two revisions: file changes, and separately the manifest capabilities added or removed.
#[utoipa::path(get, path = "/api/v1/apps/{app}/diff", tag = "revisions",
    params(("app" = String, Path, description = "app id or name"), DiffParams),
    responses((status = 200, body = DiffResult), (status = 404, body = crate::Problem)))]
async fn diff_revisions(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(app): ApiPath<String>,
    ApiQuery(params): ApiQuery<DiffParams>,
) -> ApiResult<Json<DiffResult>> {
    let p = auth.principal();
    let app: App = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    let from = state.store.get_revision(&p.org_id, &app.id, &params.from).await?;
    let to = state.store.get_revision(&p.org_id, &app.id, &params.to).await?;
    // Stored archives were accepted under some limits; reopen them under generous ones so a
    // later tightening of limits cannot make history unreadable.
    let limits = Limits { max_archive_bytes: u64::MAX, max_unpacked_bytes: u64::MAX, max_files: usize::MAX };
    let a = load_bundle(&state.store, &p.org_id, &from, limits).await?;
    let b = load_bundle(&state.store, &p.org_id, &to, limits).await?;
    let diff = tokio::task::spawn_blocking(move || {
        gatehouse_bundle::diff::revisions((&a.tree, &a.manifest), (&b.tree, &b.manifest))
    })
    .await
    .map_err(|_| ApiError::Internal)?;
    Ok(Json(DiffResult { from, to, diff }))
}
