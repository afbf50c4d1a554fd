//! The audit log over HTTP: search, verification, export, investigator HMAC matching, and the
//! intake of app events from data planes.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_core::Timestamp;
use gatehouse_core::audit::{ActorKind, ActorRef, AuditRecord, Outcome, ResourceRef};
use gatehouse_store::{AuditFilter, ChainHead, ExportState};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::audit::{ExportHeader, ExportLine};
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiQuery, AuditRead, Auth, Push};
use gatehouse_authz::Action;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(search, append_events))
        .routes(routes!(verify))
        .routes(routes!(export))
        .routes(routes!(head))
        .routes(routes!(public_key))
        .routes(routes!(match_hmac))
        .routes(routes!(export_health))
}

/// Search filters; all optional, combined with AND.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Recorded at or after (RFC 3339).
    pub since: Option<String>,
    /// Recorded before (RFC 3339).
    pub until: Option<String>,
    /// Actor id or name.
    pub actor: Option<String>,
    /// Action, or a prefix ending in `.` such as `app.`.
    pub action: Option<String>,
    /// Resource id.
    pub resource: Option<String>,
    /// `success`, `denied` or `failed`.
    pub outcome: Option<Outcome>,
    /// Most records to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Cursor from the previous page's `Link: rel="next"` header (a sequence number).
    pub after: Option<String>,
}

fn time_param(name: &str, v: &Option<String>) -> ApiResult<Option<Timestamp>> {
    v.as_deref()
        .map(|s| s.parse::<Timestamp>().map_err(|_| ApiError::BadRequest(format!("`{name}` must be an RFC 3339 time"))))
        .transpose()
}

/// Search the caller's org's audit log, oldest first.
#[utoipa::path(get, path = "/api/v1/audit/events", tag = "audit", params(SearchParams),
    responses((status = 200, body = Vec<AuditRecord>, headers(("link" = String, description = "next page, when there is one")))))]
async fn search(
    State(state): State<AppState>,
    auth: Auth<AuditRead>,
    uri: axum::http::Uri,
    ApiQuery(q): ApiQuery<SearchParams>,
) -> ApiResult<Response> {
    auth.authorize(&state, Action::AuditRead, &resource::org(&auth.principal().org_id)).await?;
    let page = super::paging::page(q.limit, q.after.clone())?;
    let after_seq = match &q.after {
        Some(a) => {
            Some(a.parse::<u64>().map_err(|_| ApiError::BadRequest("`after` must be a sequence number".into()))?)
        }
        None => None,
    };
    let filter = AuditFilter {
        since: time_param("since", &q.since)?,
        until: time_param("until", &q.until)?,
        actor: q.actor,
        action: q.action,
        resource: q.resource,
        outcome: q.outcome,
        after_seq,
        limit: page.limit,
    };
    let records = state.store.search_audit(&auth.principal().org_id, &filter).await?;
    Ok(super::paging::respond(records, &page, &uri, |r| r.seq.to_string()))
}

/// A range of the chain.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeParams {
    /// First sequence number (the oldest retained when absent).
    #[param(minimum = 1)]
    pub from: Option<u64>,
    /// Last sequence number (the head when absent).
    #[param(minimum = 1)]
    pub to: Option<u64>,
}

/// The result of a verification.
#[derive(Serialize, ToSchema)]
pub struct VerifyResult {
    /// Whether the range verified.
    pub ok: bool,
    /// First sequence number checked.
    pub first_seq: u64,
    /// Last sequence number checked.
    pub last_seq: u64,
    /// Records checked.
    pub records: u64,
    /// Checkpoints whose signature and Merkle root were checked.
    pub checkpoints: u64,
    /// Records after the last checkpoint (chained, not yet signed).
    pub unsigned_tail: u64,
    /// When not ok: the first bad sequence number.
    pub bad_seq: Option<u64>,
    /// When not ok: `altered`, `broken_link`, `gap`, `forged_checkpoint` or `checkpoint_mismatch`.
    pub problem: Option<String>,
    /// When not ok: details for the investigator.
    pub detail: Option<String>,
}

impl From<Result<gatehouse_audit::VerifyReport, gatehouse_audit::Tamper>> for VerifyResult {
    fn from(r: Result<gatehouse_audit::VerifyReport, gatehouse_audit::Tamper>) -> Self {
        match r {
            Ok(v) => Self {
                ok: true,
                first_seq: v.first_seq,
                last_seq: v.last_seq,
                records: v.records,
                checkpoints: v.checkpoints,
                unsigned_tail: v.unsigned_tail,
                bad_seq: None,
                problem: None,
                detail: None,
            },
            Err(t) => Self {
                ok: false,
                first_seq: 0,
                last_seq: 0,
                records: 0,
                checkpoints: 0,
                unsigned_tail: 0,
                bad_seq: Some(t.seq),
                problem: serde_json::to_value(t.kind).ok().and_then(|v| v.as_str().map(str::to_owned)),
                detail: Some(t.detail),
            },
        }
    }
}

/// Verify the chain and its signed checkpoints over a range; names the first bad sequence number.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", params(RangeParams),
    responses((status = 200, body = VerifyResult)))]
async fn verify(
    State(state): State<AppState>,
    auth: Auth<AuditRead>,
    ApiQuery(q): ApiQuery<RangeParams>,
) -> ApiResult<Json<VerifyResult>> {
    auth.authorize(&state, Action::AuditRead, &resource::org(&auth.principal().org_id)).await?;
    let key = state.audit.verifying_key();
    let result = crate::audit::verify_org(&state.store, &key, &auth.principal().org_id, q.from, q.to).await?;
    Ok(Json(result.into()))
}

/// Export a range as NDJSON: a header line, then records with each checkpoint after the record it
/// ends at. `gatehouse audit verify --file` checks such a file offline with the public key.
#[utoipa::path(get, path = "/api/v1/audit/export", tag = "audit", params(RangeParams),
    responses((status = 200, content_type = "application/x-ndjson", body = String)))]
async fn export(
    State(state): State<AppState>,
    auth: Auth<AuditRead>,
    ApiQuery(q): ApiQuery<RangeParams>,
) -> ApiResult<Response> {
    auth.authorize(&state, Action::AuditRead, &resource::org(&auth.principal().org_id)).await?;
    let org = auth.principal().org_id.clone();
    let range = crate::audit::chain_range(&state.store, &org, q.from, q.to).await?;
    let (from, to) = (range.from, range.to);
    let header = ExportLine::Header(ExportHeader {
        format: "gatehouse-audit-export-v1".to_owned(),
        org_id: org.clone(),
        first_seq: from,
        last_seq: to,
        // A missing predecessor leaves the anchor empty: the file then fails at its first record.
        anchor_hash: range.anchor_hash.unwrap_or_default(),
        public_key: hex::encode(state.audit.verifying_key().as_bytes()),
    });
    let checkpoints: std::collections::VecDeque<_> =
        state.store.audit_checkpoints(&org, from, to).await?.into_iter().filter(|c| c.first_seq >= from).collect();
    let first = line(&header);
    let store = state.store.clone();
    // Streamed a page at a time, so a million-record export does not sit in memory. A database
    // error ends the body with an error, never with a file that merely looks shorter.
    let pages = futures_util::stream::unfold(Some((from, checkpoints, store, org)), move |state| async move {
        let (next, mut cps, store, org) = state?;
        if next > to {
            return None;
        }
        let page = match store.audit_range(&org, next, to, 2000).await {
            Ok(p) if !p.is_empty() => p,
            // Records missing at the end: the header's `last_seq` makes the file fail verification.
            Ok(_) => return None,
            Err(e) => {
                tracing::error!(error = %e, "audit export interrupted");
                return Some((Err(std::io::Error::other("audit export interrupted")), None));
            }
        };
        let last = page.last().map(|r| r.seq).unwrap_or(to);
        let mut out = Vec::new();
        for r in page {
            let seq = r.seq;
            out.extend(line(&ExportLine::Record(Box::new(r))));
            while let Some(cp) = cps.pop_front_if(|c| c.last_seq <= seq) {
                out.extend(line(&ExportLine::Checkpoint(cp)));
            }
        }
        Some((Ok(axum::body::Bytes::from(out)), Some((last + 1, cps, store, org))))
    });
    let body = futures_util::StreamExt::chain(
        futures_util::stream::once(async move { Ok::<_, std::io::Error>(axum::body::Bytes::from(first)) }),
        pages,
    );
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], Body::from_stream(body)).into_response())
}

fn line<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec(v).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Where the chain stands: head, retention anchor and last checkpoint.
#[utoipa::path(get, path = "/api/v1/audit/head", tag = "audit", responses((status = 200, body = ChainHeadView)))]
async fn head(State(state): State<AppState>, auth: Auth<AuditRead>) -> ApiResult<Json<ChainHeadView>> {
    auth.authorize(&state, Action::AuditRead, &resource::org(&auth.principal().org_id)).await?;
    Ok(Json(state.store.audit_head(&auth.principal().org_id).await?.into()))
}

/// Where an org's chain stands.
#[derive(Serialize, ToSchema)]
pub struct ChainHeadView {
    /// The last sequence number (0 when empty).
    pub seq: u64,
    /// Its hash.
    pub hash: String,
    /// Records up to this were removed by retention.
    pub anchor_seq: u64,
    /// The hash of record `anchor_seq`.
    pub anchor_hash: String,
    /// The last record covered by a signed checkpoint.
    pub checkpointed_seq: u64,
}

impl From<ChainHead> for ChainHeadView {
    fn from(h: ChainHead) -> Self {
        Self {
            seq: h.seq,
            hash: h.hash,
            anchor_seq: h.anchor_seq,
            anchor_hash: h.anchor_hash,
            checkpointed_seq: h.checkpointed_seq,
        }
    }
}

/// The key that verifies checkpoints.
#[derive(Serialize, ToSchema)]
pub struct PublicKey {
    /// `ed25519`.
    pub algorithm: String,
    /// The key's id, as checkpoints name it.
    pub key_id: String,
    /// The raw 32-byte public key, hex.
    pub public_key: String,
}

/// The public key that verifies checkpoints (for offline verification of exports).
#[utoipa::path(get, path = "/api/v1/audit/public-key", tag = "audit", responses((status = 200, body = PublicKey)))]
async fn public_key(State(state): State<AppState>, auth: Auth<AuditRead>) -> ApiResult<Json<PublicKey>> {
    auth.authorize(&state, Action::AuditRead, &resource::org(&auth.principal().org_id)).await?;
    let key = state.audit.verifying_key();
    Ok(Json(PublicKey {
        algorithm: "ed25519".to_owned(),
        key_id: gatehouse_audit::checkpoint::key_id(&key),
        public_key: hex::encode(key.as_bytes()),
    }))
}

/// An investigator's question: does this value match the HMAC recorded in a record?
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchRequest {
    /// The record.
    #[schema(minimum = 1)]
    pub seq: u64,
    /// JSON pointer into the record's `details`, such as `/token_hmac` or `/hmac/email`.
    pub field: String,
    /// The candidate value.
    pub value: String,
}

/// The answer.
#[derive(Serialize, ToSchema)]
pub struct MatchResult {
    /// Whether the value's HMAC equals the recorded one.
    pub matches: bool,
}

/// Check a candidate value against an HMAC stored in a record's details (the question is itself
/// recorded; the value is not).
#[utoipa::path(post, path = "/api/v1/audit/match", tag = "audit", request_body = MatchRequest,
    responses((status = 200, body = MatchResult)))]
async fn match_hmac(
    State(state): State<AppState>,
    auth: Auth<AuditRead>,
    ApiJson(req): ApiJson<MatchRequest>,
) -> ApiResult<Json<MatchResult>> {
    auth.authorize(&state, Action::AuditMatch, &resource::org(&auth.principal().org_id)).await?;
    let org = &auth.principal().org_id;
    let record = state
        .store
        .audit_range(org, req.seq, req.seq, 1)
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("audit record {} not found", req.seq)))?;
    let stored = record
        .draft
        .details
        .pointer(&req.field)
        .and_then(|v| v.as_str())
        .filter(|s| s.starts_with("hmac-sha256:"))
        .ok_or_else(|| ApiError::Unprocessable(format!("record {} has no HMAC at `{}`", req.seq, req.field)))?;
    let matches = constant_time_eq(state.audit.hmac(org, req.value.as_bytes()).as_bytes(), stored.as_bytes());
    let event = auth.audit().event(
        "audit.match",
        gatehouse_store::resource("audit_record", req.seq.to_string()),
        serde_json::json!({ "field": req.field, "matches": matches }),
    );
    state.store.append_audit(vec![event]).await?;
    Ok(Json(MatchResult { matches }))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// An event reported by an app or data plane.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppEvent {
    /// A dotted verb under `app.` or `integration.`, such as `integration.call`.
    pub action: String,
    /// What it acted on.
    pub resource: ResourceRef,
    /// How it ended.
    pub outcome: Outcome,
    /// Why it was denied or failed.
    pub reason: Option<String>,
    /// The people the caller acted for, nearest first (the app's user).
    #[serde(default)]
    pub on_behalf_of: Vec<ActorRef>,
    /// Further facts (at most 16 KiB as JSON).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    /// Values stored only as keyed HMACs under `details.hmac` (emails, account numbers, …).
    #[serde(default)]
    pub sensitive: std::collections::BTreeMap<String, String>,
}

/// A batch of app events.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppEvents {
    /// 1 to 1000 events.
    pub events: Vec<AppEvent>,
}

/// How many were recorded.
#[derive(Serialize, ToSchema)]
pub struct Appended {
    /// Events now durable in the log.
    pub recorded: usize,
}

/// Record app events (integration calls, data access) for the caller's org. Answers only once
/// they are durable; concurrent batches share commits.
#[utoipa::path(post, path = "/api/v1/audit/events", tag = "audit", request_body = AppEvents,
    responses((status = 201, body = Appended)))]
async fn append_events(
    State(state): State<AppState>,
    auth: Auth<Push>,
    ApiJson(req): ApiJson<AppEvents>,
) -> ApiResult<(StatusCode, Json<Appended>)> {
    auth.authorize(&state, Action::AuditAppend, &resource::org(&auth.principal().org_id)).await?;
    if req.events.is_empty() || req.events.len() > 1000 {
        return Err(ApiError::Unprocessable("`events` must hold 1 to 1000 events".to_owned()));
    }
    let ctx = auth.audit();
    let org = ctx.org_id.clone();
    let mut drafts = Vec::with_capacity(req.events.len());
    for (i, e) in req.events.into_iter().enumerate() {
        check_app_event(i, &e)?;
        let mut draft = ctx.event(&e.action, e.resource, e.details);
        if !draft.details.is_object() {
            draft.details = serde_json::json!({ "value": draft.details });
        }
        if !e.sensitive.is_empty() {
            let hmacs: serde_json::Map<String, serde_json::Value> = e
                .sensitive
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(state.audit.hmac(&org, v.as_bytes()))))
                .collect();
            draft.details["hmac"] = serde_json::Value::Object(hmacs);
        }
        // A data plane may echo a secret it was handed; every value the vault handed out is masked.
        let raw = serde_json::to_vec(&draft.details).unwrap_or_default();
        if let std::borrow::Cow::Owned(masked) = gatehouse_vault::redact::Redactor::global().redact(&raw) {
            draft.details = serde_json::from_slice(&masked).unwrap_or_else(|_| serde_json::json!({ "redacted": true }));
        }
        draft.outcome = e.outcome;
        draft.reason = e.reason.map(|r| {
            String::from_utf8_lossy(&gatehouse_vault::redact::Redactor::global().redact(r.as_bytes())).into_owned()
        });
        draft.actor.on_behalf_of = e.on_behalf_of;
        if draft.actor.who.kind == ActorKind::Service && !draft.actor.on_behalf_of.is_empty() {
            draft.actor.who.kind = ActorKind::App;
        }
        drafts.push(draft);
    }
    let recorded = drafts.len();
    state.batcher.append(drafts).await?;
    Ok((StatusCode::CREATED, Json(Appended { recorded })))
}

fn check_app_event(i: usize, e: &AppEvent) -> ApiResult<()> {
    let bad = |m: String| Err(ApiError::Unprocessable(format!("events[{i}]: {m}")));
    let verb_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 100
            && s.split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    };
    if !(e.action.starts_with("app.") || e.action.starts_with("integration.")) || !verb_ok(&e.action) {
        return bad("`action` must be a dotted lowercase verb under `app.` or `integration.`".to_owned());
    }
    if e.resource.kind.is_empty() || e.resource.kind.len() > 64 || e.resource.id.is_empty() || e.resource.id.len() > 256
    {
        return bad("`resource.kind` (1-64) and `resource.id` (1-256 characters) are required".to_owned());
    }
    if e.on_behalf_of.len() > 8 {
        return bad("at most 8 `on_behalf_of` entries".to_owned());
    }
    if serde_json::to_vec(&e.details).map(|v| v.len()).unwrap_or(usize::MAX) > 16 * 1024 || e.sensitive.len() > 32 {
        return bad("`details` must be at most 16 KiB and `sensitive` at most 32 fields".to_owned());
    }
    Ok(())
}

/// Health of the SIEM exports configured for the caller's org.
#[utoipa::path(get, path = "/api/v1/audit/exports", tag = "audit", responses((status = 200, body = Vec<ExportHealth>)))]
async fn export_health(State(state): State<AppState>, auth: Auth<AuditRead>) -> ApiResult<Json<Vec<ExportHealth>>> {
    auth.authorize(&state, Action::AuditRead, &resource::org(&auth.principal().org_id)).await?;
    let org = &auth.principal().org_id;
    let org_name = state.store.get_org(org).await?.name;
    let head = state.store.audit_head(org).await?;
    let mut out = Vec::new();
    for sink in state.exports.iter().filter(|e| e.org.as_ref().is_none_or(|o| *o == org_name)) {
        let s = state.store.export_state(org, &sink.name).await?;
        out.push(ExportHealth::new(s, head.seq));
    }
    Ok(Json(out))
}

/// One export's health.
#[derive(Serialize, ToSchema)]
pub struct ExportHealth {
    /// The export's name.
    pub name: String,
    /// The last sequence number delivered.
    pub delivered_seq: u64,
    /// Records recorded but not yet delivered.
    pub lag: u64,
    /// When a delivery last succeeded.
    pub last_success_at: Option<Timestamp>,
    /// The last delivery error, cleared by the next success.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
}

impl ExportHealth {
    fn new(s: ExportState, head: u64) -> Self {
        Self {
            name: s.sink,
            delivered_seq: s.seq,
            lag: head.saturating_sub(s.seq),
            last_success_at: s.last_success_at,
            last_error: s.last_error,
            last_error_at: s.last_error_at,
        }
    }
}
