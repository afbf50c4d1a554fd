//! Scan results and release verdicts of revisions, the blocking policy, and suppressions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_core::{Suppression, SuppressionId, Timestamp};
use gatehouse_store::NewSuppression;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::apps::resolve_app;
use super::folders::resolve_folder;
use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, ApiJson, ApiPath, Auth, Read, Write};
use crate::scan::{DEFAULT_BLOCK_AT, ScanReport, scan_report};
use gatehouse_authz::Action;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_scan, rescan))
        .routes(routes!(get_policy, set_org_policy))
        .routes(routes!(set_folder_policy))
        .routes(routes!(list_suppressions, create_suppression))
        .routes(routes!(revoke_suppression))
        .routes(routes!(get_review_policy, set_review_policy))
}

/// A revision's scan: status, findings (masked, never a secret value), and the release verdict
/// under the current policy and suppressions. Only `pass` may be released.
#[utoipa::path(get, path = "/api/v1/apps/{app}/revisions/{rev}/scan", tag = "scans",
    params(("app" = String, Path, description = "app id or name"), ("rev" = String, Path, description = "digest, prefix, number or `head`")),
    responses((status = 200, body = ScanReport), (status = 404, body = crate::Problem)))]
async fn get_scan(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath((app, rev)): ApiPath<(String, String)>,
) -> ApiResult<Json<ScanReport>> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    let revision = state.store.get_revision(&p.org_id, &app.id, &rev).await?;
    Ok(Json(scan_report(&state.store, &p.org_id, &app, &revision).await?))
}

/// Queue the revision's scan again: after a failed scan, or to apply changed rules.
#[utoipa::path(post, path = "/api/v1/apps/{app}/revisions/{rev}/scan", tag = "scans",
    params(("app" = String, Path, description = "app id or name"), ("rev" = String, Path, description = "digest, prefix, number or `head`")),
    responses((status = 202, body = ScanReport), (status = 404, body = crate::Problem)))]
async fn rescan(
    State(state): State<AppState>,
    auth: Auth<Write>,
    ApiPath((app, rev)): ApiPath<(String, String)>,
) -> ApiResult<(StatusCode, Json<ScanReport>)> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRescan, &resource::app(&app)).await?;
    let revision = state.store.get_revision(&p.org_id, &app.id, &rev).await?;
    state.store.rescan(&p.org_id, &app.id, &revision.digest, &auth.audit()).await?;
    state.scanner.wake();
    Ok((StatusCode::ACCEPTED, Json(scan_report(&state.store, &p.org_id, &app, &revision).await?)))
}

/// The blocking policy: which severities block a release, org-wide and per folder.
#[derive(Serialize, ToSchema)]
pub struct ScanPolicy {
    /// Used when neither the org nor a folder sets a level.
    pub default_block_at: String,
    /// The org-wide level, when set.
    pub org_block_at: Option<String>,
    /// Folder overrides; each applies to the folder and everything below it.
    pub folders: Vec<FolderPolicy>,
}

/// One folder's override.
#[derive(Serialize, ToSchema)]
pub struct FolderPolicy {
    pub folder_id: gatehouse_core::FolderId,
    pub path: String,
    pub block_at: String,
}

/// A level to set; `null` removes it (the folder then follows its parents, the org the default).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    /// `low`, `medium`, `high` or `critical`.
    #[schema(nullable, pattern = "^(low|medium|high|critical)$")]
    pub block_at: Option<String>,
}

fn check_level(level: &Option<String>) -> ApiResult<()> {
    match level.as_deref() {
        None | Some("low" | "medium" | "high" | "critical") => Ok(()),
        Some(other) => {
            Err(ApiError::Unprocessable(format!("`block_at` must be low, medium, high or critical, not {other:?}")))
        }
    }
}

async fn policy(state: &AppState, org: &gatehouse_core::OrgId) -> ApiResult<ScanPolicy> {
    let rows = state.store.scan_policies(org).await?;
    let folders = state.store.list_folders(org).await?;
    Ok(ScanPolicy {
        default_block_at: DEFAULT_BLOCK_AT.as_str().to_owned(),
        org_block_at: rows.iter().find(|r| r.folder_id.is_none()).map(|r| r.block_at.clone()),
        folders: rows
            .iter()
            .filter_map(|r| {
                let id = r.folder_id.as_ref()?;
                let path = folders.iter().find(|f| &f.id == id).map(|f| f.path.clone())?;
                Some(FolderPolicy { folder_id: id.clone(), path, block_at: r.block_at.clone() })
            })
            .collect(),
    })
}

/// Show the blocking policy.
#[utoipa::path(get, path = "/api/v1/scan-policy", tag = "scans", responses((status = 200, body = ScanPolicy)))]
async fn get_policy(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<ScanPolicy>> {
    auth.authorize(&state, Action::PolicyRead, &resource::root()).await?;
    Ok(Json(policy(&state, &auth.principal().org_id).await?))
}

/// Set or clear the org-wide blocking level.
#[utoipa::path(put, path = "/api/v1/scan-policy", tag = "scans", request_body = SetPolicy,
    responses((status = 200, body = ScanPolicy), (status = 403, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn set_org_policy(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<SetPolicy>,
) -> ApiResult<Json<ScanPolicy>> {
    check_level(&req.block_at)?;
    let p = auth.principal();
    auth.authorize(&state, Action::PolicyManage, &resource::root()).await?;
    state.store.set_scan_policy(&p.org_id, None, req.block_at.as_deref(), &p.id, &auth.audit()).await?;
    Ok(Json(policy(&state, &p.org_id).await?))
}

/// Set or clear a folder's override of the blocking level.
#[utoipa::path(put, path = "/api/v1/folders/{folder}/scan-policy", tag = "scans", request_body = SetPolicy,
    params(("folder" = String, Path, description = "folder id or path")),
    responses((status = 200, body = ScanPolicy), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn set_folder_policy(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(folder): ApiPath<String>,
    ApiJson(req): ApiJson<SetPolicy>,
) -> ApiResult<Json<ScanPolicy>> {
    check_level(&req.block_at)?;
    let p = auth.principal();
    let folder = resolve_folder(&state.store, &p.org_id, &folder).await?;
    auth.authorize(&state, Action::PolicyManage, &resource::folder(&folder)).await?;
    state.store.set_scan_policy(&p.org_id, Some(&folder.id), req.block_at.as_deref(), &p.id, &auth.audit()).await?;
    Ok(Json(policy(&state, &p.org_id).await?))
}

/// Suppressions of an app's findings, newest first, including expired and revoked ones.
#[utoipa::path(get, path = "/api/v1/apps/{app}/suppressions", tag = "scans",
    params(("app" = String, Path, description = "app id or name")),
    responses((status = 200, body = Vec<Suppression>), (status = 404, body = crate::Problem)))]
async fn list_suppressions(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(app): ApiPath<String>,
) -> ApiResult<Json<Vec<Suppression>>> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::AppRead, &resource::app(&app)).await?;
    Ok(Json(state.store.list_suppressions(&p.org_id, &app.id).await?))
}

/// Longest a suppression may last.
const MAX_SUPPRESSION_DAYS: i64 = 90;

/// What to accept, why, and for how long. Give `fingerprint` (one secret wherever it appears in
/// the app) or `rule_id` with `path` (one rule in one file).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSuppressionRequest {
    #[schema(max_length = 200)]
    pub fingerprint: Option<String>,
    #[schema(max_length = 200)]
    pub rule_id: Option<String>,
    #[schema(max_length = 1024)]
    pub path: Option<String>,
    /// Why this finding is acceptable (at least 10 characters; recorded in the audit log).
    #[schema(min_length = 10, max_length = 2000)]
    pub reason: String,
    /// Days until it expires (1–90).
    #[schema(minimum = 1, maximum = 90)]
    pub expires_in_days: i64,
}

/// Accept a finding for a while. Needs the admin scope; the reason and expiry are required and
/// the decision is audited.
#[utoipa::path(post, path = "/api/v1/apps/{app}/suppressions", tag = "scans", request_body = NewSuppressionRequest,
    params(("app" = String, Path, description = "app id or name")),
    responses((status = 201, body = Suppression), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_suppression(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(app): ApiPath<String>,
    ApiJson(req): ApiJson<NewSuppressionRequest>,
) -> ApiResult<(StatusCode, Json<Suppression>)> {
    let text_ok = |v: &Option<String>, max: usize| v.as_ref().is_none_or(|s| !s.is_empty() && s.len() <= max);
    if !text_ok(&req.fingerprint, 200) || !text_ok(&req.rule_id, 200) || !text_ok(&req.path, 1024) {
        return Err(ApiError::Unprocessable("`fingerprint`, `rule_id` and `path` must be non-empty and short".into()));
    }
    match (&req.fingerprint, &req.rule_id, &req.path) {
        (Some(_), None, None) | (None, Some(_), Some(_)) => {}
        _ => return Err(ApiError::Unprocessable("give `fingerprint`, or `rule_id` together with `path`".into())),
    }
    let reason = req.reason.trim();
    if reason.chars().count() < 10 || reason.len() > 2000 {
        return Err(ApiError::Unprocessable("`reason` must say why, in 10 to 2000 characters".into()));
    }
    if !(1..=MAX_SUPPRESSION_DAYS).contains(&req.expires_in_days) {
        return Err(ApiError::Unprocessable(format!("`expires_in_days` must be 1 to {MAX_SUPPRESSION_DAYS}")));
    }
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::SuppressionManage, &resource::app(&app)).await?;
    let expires_at = Timestamp::from_millis(Timestamp::now().as_millis() + req.expires_in_days * 86_400_000);
    let new = NewSuppression {
        fingerprint: req.fingerprint,
        rule_id: req.rule_id,
        path: req.path,
        reason: reason.to_owned(),
        expires_at,
        created_by: p.id.clone(),
    };
    let s = state.store.create_suppression(&p.org_id, &app.id, new, &auth.audit()).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// End a suppression before it expires.
#[utoipa::path(delete, path = "/api/v1/apps/{app}/suppressions/{id}", tag = "scans",
    params(("app" = String, Path, description = "app id or name"), ("id" = SuppressionId, Path)),
    responses((status = 200, body = Suppression), (status = 403, body = crate::Problem), (status = 404, body = crate::Problem), (status = 409, body = crate::Problem)))]
async fn revoke_suppression(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath((app, id)): ApiPath<(String, SuppressionId)>,
) -> ApiResult<Json<Suppression>> {
    let p = auth.principal();
    let app = resolve_app(&state.store, &p.org_id, &app).await?;
    auth.authorize(&state, Action::SuppressionManage, &resource::app(&app)).await?;
    Ok(Json(state.store.revoke_suppression(&p.org_id, &app.id, &id, &p.id, &auth.audit()).await?))
}

/// What the independent reviewer is told, and whether a model may review its own work.
#[derive(Serialize, ToSchema)]
pub struct ReviewPolicy {
    /// The policy in words, given to the reviewing model.
    pub policy: String,
    /// Refuse a review by the model that wrote the revision (from its provenance).
    pub require_different_model: bool,
    /// `org` when the org set it, `default` for the server's configuration.
    pub source: String,
    /// The reviewing model, when one is configured (else the deterministic reviewer runs).
    pub model: Option<String>,
}

/// A review policy to set; `null` policy returns the org to the server's defaults.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetReviewPolicy {
    #[schema(nullable, max_length = 8000)]
    pub policy: Option<String>,
    /// Default true.
    pub require_different_model: Option<bool>,
}

async fn review_policy(state: &AppState, org: &gatehouse_core::OrgId) -> ApiResult<ReviewPolicy> {
    let defaults = state.scanner.default_review();
    Ok(match state.store.review_policy(org).await? {
        Some(p) => ReviewPolicy {
            policy: p.policy,
            require_different_model: p.require_different_model,
            source: "org".into(),
            model: defaults.model.clone(),
        },
        None => ReviewPolicy {
            policy: defaults.policy.clone(),
            require_different_model: defaults.require_different_model,
            source: "default".into(),
            model: defaults.model.clone(),
        },
    })
}

/// Show the review policy the org's revisions are reviewed under.
#[utoipa::path(get, path = "/api/v1/review-policy", tag = "scans", responses((status = 200, body = ReviewPolicy)))]
async fn get_review_policy(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<ReviewPolicy>> {
    auth.authorize(&state, Action::PolicyRead, &resource::root()).await?;
    Ok(Json(review_policy(&state, &auth.principal().org_id).await?))
}

/// Set the org's review policy (or clear it with a `null` policy). Applies from the next scan.
#[utoipa::path(put, path = "/api/v1/review-policy", tag = "scans", request_body = SetReviewPolicy,
    responses((status = 200, body = ReviewPolicy), (status = 403, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn set_review_policy(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<SetReviewPolicy>,
) -> ApiResult<Json<ReviewPolicy>> {
    let p = auth.principal();
    auth.authorize(&state, Action::PolicyManage, &resource::root()).await?;
    let policy = match req.policy.as_deref().map(str::trim) {
        Some(text)
            if text.is_empty() || text.chars().count() > 8000 || text.chars().any(|c| c.is_control() && c != '\n') =>
        {
            return Err(ApiError::Unprocessable("`policy` must be 1 to 8000 characters of text".into()));
        }
        Some(text) => Some((text, req.require_different_model.unwrap_or(true))),
        None => None,
    };
    state.store.set_review_policy(&p.org_id, policy, &p.id, &auth.audit()).await?;
    Ok(Json(review_policy(&state, &p.org_id).await?))
}
