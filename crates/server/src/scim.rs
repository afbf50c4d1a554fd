//! The SCIM 2.0 service at `/scim/v2` (RFC 7643/7644), through which an org's identity provider
//! creates, changes, deactivates and deletes users and groups. Authenticated by the org's SCIM
//! bearer token; every change is an audit record written in the change's transaction.

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gatehouse_core::{Credential, Principal};
use gatehouse_scim::{
    Filter, GROUP_SCHEMA, Kind, LIST_SCHEMA, ScimError, ScimType, Selection, USER_SCHEMA, apply_patch, normalize,
    parse_filter, select,
};
use gatehouse_store::{AuditCtx, ScimCaller, ScimGroup, ScimLookup, ScimUser, StoreError};
use serde_json::{Map, Value, json};

use crate::AppState;
use crate::audit::{RequestMeta, Slot};

/// Largest page a list or search returns.
const MAX_RESULTS: usize = 1000;
/// Page size when the client does not ask for one.
const DEFAULT_COUNT: usize = 100;

const SCIM_JSON: &str = "application/scim+json";

/// The SCIM routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/.search", post(search_users))
        .route("/scim/v2/Users/{id}", get(get_user).put(replace_user).patch(patch_user).delete(delete_user))
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/.search", post(search_groups))
        .route("/scim/v2/Groups/{id}", get(get_group).put(replace_group).patch(patch_group).delete(delete_group))
        .route("/scim/v2/.search", post(search_all))
        .route("/scim/v2/{*rest}", axum::routing::any(unknown))
}

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl Failure {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self { status, scim_type: None, detail: detail.into() }
    }
}

impl From<ScimError> for Failure {
    fn from(e: ScimError) -> Self {
        Self {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST),
            scim_type: Some(e.scim_type.as_str()),
            detail: e.detail,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, e.to_string()),
            StoreError::Conflict(m) => Self { status: StatusCode::CONFLICT, scim_type: Some("uniqueness"), detail: m },
            StoreError::Invalid(m) => {
                Self { status: StatusCode::BAD_REQUEST, scim_type: Some("invalidValue"), detail: m }
            }
            e if e.is_unavailable() || matches!(e, StoreError::AuditUnavailable(_)) => {
                tracing::error!(error = %e, "SCIM: store unavailable");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "the database or the audit log is unavailable")
            }
            e => {
                tracing::error!(error = %e, "SCIM: store error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error; details are in the server log")
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut res = scim_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        res
    }
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))], bytes).into_response()
}

type Answer = Result<Response, Failure>;

/// The caller of a SCIM request: an org's SCIM token.
pub(crate) struct Scim {
    caller: ScimCaller,
    audit: AuditCtx,
    base: String,
}

impl FromRequestParts<AppState> for Scim {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Failure> {
        let unauthorized = || Failure::new(StatusCode::UNAUTHORIZED, "a valid SCIM bearer token is required");
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim().to_owned())
            .ok_or_else(unauthorized)?;
        let caller = state.store.scim_authenticate(&token).await?.ok_or_else(unauthorized)?;
        let principal = Principal {
            id: caller.principal.id.clone(),
            org_id: caller.org_id.clone(),
            kind: caller.principal.kind,
            name: caller.principal.name.clone(),
            token_id: caller.token_id.clone(),
            scope: caller.principal.max_scope,
            credential: Credential::ScimToken,
            operator: false,
            authz_version: 0,
            sign_in: None,
        };
        let meta = parts.extensions.get::<RequestMeta>().cloned().unwrap_or_else(|| RequestMeta::from_parts(parts));
        if let Some(slot) = parts.extensions.get::<Slot>() {
            let mut seen = slot.0.lock().unwrap_or_else(|p| p.into_inner());
            seen.principal = Some(principal.clone());
        }
        let base = match &state.public_url {
            Some(url) => format!("{}/scim/v2", url.trim_end_matches('/')),
            None => {
                let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
                format!("http://{host}/scim/v2")
            }
        };
        Ok(Self { audit: meta.ctx(&principal), caller, base })
    }
}

async fn unknown(_: Scim, uri: axum::http::Uri) -> Failure {
    Failure::new(StatusCode::NOT_FOUND, format!("no SCIM endpoint at `{}`", uri.path()))
}

// ----- discovery -----

fn list_response(resources: Vec<Value>, total: usize, start: usize) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

async fn service_provider_config(scim: Scim) -> Response {
    scim_json(StatusCode::OK, &gatehouse_scim::service_provider_config(&scim.base, MAX_RESULTS))
}

async fn resource_types(scim: Scim) -> Response {
    let all = gatehouse_scim::resource_types(&scim.base);
    let n = all.len();
    scim_json(StatusCode::OK, &list_response(all, n, 1))
}

async fn resource_type(scim: Scim, Path(id): Path<String>) -> Answer {
    gatehouse_scim::resource_types(&scim.base)
        .into_iter()
        .find(|r| r["id"] == json!(id))
        .map(|r| scim_json(StatusCode::OK, &r))
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no resource type `{}`", short(&id))))
}

async fn schemas(scim: Scim) -> Response {
    let all = gatehouse_scim::schemas(&scim.base);
    let n = all.len();
    scim_json(StatusCode::OK, &list_response(all, n, 1))
}

async fn schema(scim: Scim, Path(id): Path<String>) -> Answer {
    gatehouse_scim::schemas(&scim.base)
        .into_iter()
        .find(|r| r["id"] == json!(id))
        .map(|r| scim_json(StatusCode::OK, &r))
        .ok_or_else(|| Failure::new(StatusCode::NOT_FOUND, format!("no schema `{}`", short(&id))))
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

// ----- rendering -----

fn meta(
    kind: Kind,
    base: &str,
    id: &str,
    created: gatehouse_core::Timestamp,
    updated: gatehouse_core::Timestamp,
) -> Value {
    json!({
        "resourceType": kind.name(),
        "created": created.to_string(),
        "lastModified": updated.to_string(),
        "location": format!("{base}{}/{id}", kind.endpoint()),
        "version": format!("W/\"{}\"", updated.as_millis()),
    })
}

/// The attributes a PATCH or PUT works on: what was stored, with the columns that are
/// authoritative for sign-in laid over it.
fn user_doc(u: &ScimUser) -> Map<String, Value> {
    let mut doc = u.attrs.clone();
    doc.insert("userName".to_owned(), json!(u.record.name));
    // An inactive user whose `active` was removed (rather than set false) shows no `active`.
    if u.record.active || doc.contains_key("active") {
        doc.insert("active".to_owned(), json!(u.record.active));
    }
    match &u.external_id {
        Some(e) => doc.insert("externalId".to_owned(), json!(e)),
        None => doc.remove("externalId"),
    };
    doc
}

fn user_resource(u: &ScimUser, base: &str) -> Map<String, Value> {
    let id = u.record.id.as_str();
    let mut r = Map::new();
    r.insert("schemas".to_owned(), json!([USER_SCHEMA]));
    r.insert("id".to_owned(), json!(id));
    r.extend(user_doc(u));
    if !u.groups.is_empty() {
        let groups: Vec<Value> = u
            .groups
            .iter()
            .map(|(gid, name)| {
                json!({"value": gid.as_str(), "$ref": format!("{base}/Groups/{}", gid.as_str()), "display": name, "type": "direct"})
            })
            .collect();
        r.insert("groups".to_owned(), Value::Array(groups));
    }
    r.insert("meta".to_owned(), meta(Kind::User, base, id, u.record.created_at, u.updated_at));
    r
}

fn member_values(members: &[gatehouse_core::PrincipalId], base: &str) -> Vec<Value> {
    members
        .iter()
        .map(|m| json!({"value": m.as_str(), "$ref": format!("{base}/Users/{}", m.as_str()), "type": "User"}))
        .collect()
}

fn group_doc(g: &ScimGroup, base: &str) -> Map<String, Value> {
    let mut doc = g.attrs.clone();
    doc.remove("members");
    doc.insert("displayName".to_owned(), json!(g.group.name));
    match &g.group.external_id {
        Some(e) => doc.insert("externalId".to_owned(), json!(e)),
        None => doc.remove("externalId"),
    };
    if !g.members.is_empty() {
        doc.insert("members".to_owned(), Value::Array(member_values(&g.members, base)));
    }
    doc
}

fn group_resource(g: &ScimGroup, base: &str) -> Map<String, Value> {
    let id = g.group.id.as_str();
    let mut r = Map::new();
    r.insert("schemas".to_owned(), json!([GROUP_SCHEMA]));
    r.insert("id".to_owned(), json!(id));
    r.extend(group_doc(g, base));
    r.insert("meta".to_owned(), meta(Kind::Group, base, id, g.group.created_at, g.updated_at));
    r
}

/// Member ids out of a group document's `members` (the document keeps no members itself).
fn take_members(doc: &mut Map<String, Value>) -> Vec<String> {
    match doc.remove("members") {
        Some(Value::Array(items)) => {
            items.iter().filter_map(|m| m.get("value").and_then(Value::as_str).map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    }
}

fn resource_response(status: StatusCode, resource: Map<String, Value>) -> Response {
    let location = resource.get("meta").and_then(|m| m.get("location")).and_then(Value::as_str).map(str::to_owned);
    let mut res = scim_json(status, &Value::Object(resource));
    if let Some(loc) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        res.headers_mut().insert(header::LOCATION, loc);
    }
    res
}

fn parse_body(body: &Bytes) -> Result<Value, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::new(ScimType::InvalidSyntax, format!("invalid JSON: {e}")).into())
}

// ----- listing and search -----

/// `filter`, `startIndex`, `count`, `attributes`, `excludedAttributes`, from a query string or a
/// SearchRequest body.
#[derive(Debug, Default)]
struct ListParams {
    filter: Option<String>,
    start: usize,
    count: usize,
    attributes: Option<String>,
    excluded: Option<String>,
}

fn list_params(q: &HashMap<String, String>) -> Result<ListParams, Failure> {
    let get = |name: &str| q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let number = |name: &str, default: usize| -> Result<usize, Failure> {
        match get(name) {
            None => Ok(default),
            Some(v) => match v.trim().parse::<i64>() {
                Ok(n) => Ok(usize::try_from(n.max(0)).unwrap_or(0)),
                Err(_) => Err(ScimError::new(ScimType::InvalidValue, format!("`{name}` must be an integer")).into()),
            },
        }
    };
    Ok(ListParams {
        filter: get("filter").filter(|f| !f.trim().is_empty()),
        start: number("startIndex", 1)?.max(1),
        count: number("count", DEFAULT_COUNT)?.min(MAX_RESULTS),
        attributes: get("attributes"),
        excluded: get("excludedAttributes"),
    })
}

fn search_params(body: &Bytes) -> Result<ListParams, Failure> {
    let body = parse_body(body)?;
    let Value::Object(o) = body else {
        return Err(ScimError::new(ScimType::InvalidSyntax, "a SearchRequest must be an object").into());
    };
    let mut q = HashMap::new();
    for (k, v) in o {
        let text = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            _ => continue,
        };
        q.insert(k, text);
    }
    list_params(&q)
}

/// The store lookup that answers `filter` when it is an equality on an indexed attribute (the
/// login name of users, the name of groups, externalId, id), else all; the filter is applied to
/// what comes back either way.
fn lookup(kind: Kind, filter: Option<&Filter>) -> ScimLookup<'_> {
    match (kind, filter.and_then(Filter::simple_eq)) {
        (Kind::User, Some(("userName", v))) | (Kind::Group, Some(("displayName", v))) => ScimLookup::Name(v),
        (_, Some(("externalId", v))) => ScimLookup::ExternalId(v),
        (_, Some(("id", v))) => ScimLookup::Id(v),
        _ => ScimLookup::All,
    }
}

async fn matching(
    state: &AppState,
    scim: &Scim,
    kind: Kind,
    filter: Option<&Filter>,
) -> Result<Vec<Map<String, Value>>, Failure> {
    let org = &scim.caller.org_id;
    let l = lookup(kind, filter);
    let found: Vec<Value> = match kind {
        Kind::User => {
            state.store.scim_users(org, l).await?.iter().map(|u| Value::Object(user_resource(u, &scim.base))).collect()
        }
        Kind::Group => state
            .store
            .scim_groups(org, l)
            .await?
            .iter()
            .map(|g| Value::Object(group_resource(g, &scim.base)))
            .collect(),
    };
    Ok(found
        .into_iter()
        .filter(|r| filter.is_none_or(|f| f.matches(r)))
        .filter_map(|r| match r {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .collect())
}

fn page(kind_of: impl Fn(&Map<String, Value>) -> Kind, all: Vec<Map<String, Value>>, p: &ListParams) -> Response {
    let total = all.len();
    let items: Vec<Value> = all
        .into_iter()
        .skip(p.start - 1)
        .take(p.count)
        .map(|r| {
            let kind = kind_of(&r);
            let sel = Selection::parse(kind, p.attributes.as_deref(), p.excluded.as_deref());
            Value::Object(select(kind, r, &sel))
        })
        .collect();
    scim_json(StatusCode::OK, &list_response(items, total, p.start))
}

async fn list(state: &AppState, scim: &Scim, kind: Kind, p: ListParams) -> Answer {
    let filter = p.filter.as_deref().map(|f| parse_filter(kind, f)).transpose()?;
    let all = matching(state, scim, kind, filter.as_ref()).await?;
    Ok(page(|_| kind, all, &p))
}

async fn list_users(State(state): State<AppState>, scim: Scim, Query(q): Query<HashMap<String, String>>) -> Answer {
    list(&state, &scim, Kind::User, list_params(&q)?).await
}

async fn list_groups(State(state): State<AppState>, scim: Scim, Query(q): Query<HashMap<String, String>>) -> Answer {
    list(&state, &scim, Kind::Group, list_params(&q)?).await
}

async fn search_users(State(state): State<AppState>, scim: Scim, body: Bytes) -> Answer {
    list(&state, &scim, Kind::User, search_params(&body)?).await
}

async fn search_groups(State(state): State<AppState>, scim: Scim, body: Bytes) -> Answer {
    list(&state, &scim, Kind::Group, search_params(&body)?).await
}

/// A search over both resource types. A filter is applied to each type it can be read for (an
/// attribute only users have selects no groups); one that fits neither is an error.
async fn search_all(State(state): State<AppState>, scim: Scim, body: Bytes) -> Answer {
    let p = search_params(&body)?;
    let mut all = Vec::new();
    let mut first_error = None;
    let mut parsed_any = p.filter.is_none();
    for kind in [Kind::User, Kind::Group] {
        let filter = match p.filter.as_deref().map(|f| parse_filter(kind, f)).transpose() {
            Ok(f) => f,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        parsed_any = true;
        all.extend(matching(&state, &scim, kind, filter.as_ref()).await?);
    }
    if !parsed_any && let Some(e) = first_error {
        return Err(e.into());
    }
    let kind_of = |r: &Map<String, Value>| {
        if r.get("schemas") == Some(&json!([GROUP_SCHEMA])) { Kind::Group } else { Kind::User }
    };
    Ok(page(kind_of, all, &p))
}

// ----- users -----

fn selection(kind: Kind, q: &HashMap<String, String>) -> Selection {
    let get = |name: &str| q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str());
    Selection::parse(kind, get("attributes"), get("excludedAttributes"))
}

async fn get_user(
    State(state): State<AppState>,
    scim: Scim,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let u = state.store.scim_user(&scim.caller.org_id, &id).await?;
    Ok(resource_response(StatusCode::OK, select(Kind::User, user_resource(&u, &scim.base), &selection(Kind::User, &q))))
}

async fn create_user(State(state): State<AppState>, scim: Scim, body: Bytes) -> Answer {
    let mut attrs = normalize(Kind::User, &parse_body(&body)?)?;
    attrs.entry("active").or_insert(json!(true));
    let u = state.store.scim_create_user(&scim.caller.org_id, attrs, &scim.audit).await?;
    Ok(resource_response(StatusCode::CREATED, user_resource(&u, &scim.base)))
}

async fn replace_user(State(state): State<AppState>, scim: Scim, Path(id): Path<String>, body: Bytes) -> Answer {
    let attrs = normalize(Kind::User, &parse_body(&body)?)?;
    let before = state.store.scim_user(&scim.caller.org_id, &id).await?;
    let mut attrs = attrs;
    // A PUT without `active` leaves it as it was rather than reactivating or deactivating.
    attrs.entry("active").or_insert(json!(before.record.active));
    let u = state.store.scim_update_user(&scim.caller.org_id, &before, attrs, "scim.user.replace", &scim.audit).await?;
    Ok(resource_response(StatusCode::OK, user_resource(&u, &scim.base)))
}

async fn patch_user(State(state): State<AppState>, scim: Scim, Path(id): Path<String>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let before = state.store.scim_user(&scim.caller.org_id, &id).await?;
    let mut doc = user_doc(&before);
    let u = if apply_patch(Kind::User, &mut doc, &body)? {
        state.store.scim_update_user(&scim.caller.org_id, &before, doc, "scim.user.patch", &scim.audit).await?
    } else {
        before
    };
    Ok(resource_response(StatusCode::OK, user_resource(&u, &scim.base)))
}

async fn delete_user(State(state): State<AppState>, scim: Scim, Path(id): Path<String>) -> Answer {
    state.store.scim_delete_user(&scim.caller.org_id, &id, &scim.audit).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ----- groups -----

async fn get_group(
    State(state): State<AppState>,
    scim: Scim,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Answer {
    let g = state.store.scim_group(&scim.caller.org_id, &id).await?;
    Ok(resource_response(
        StatusCode::OK,
        select(Kind::Group, group_resource(&g, &scim.base), &selection(Kind::Group, &q)),
    ))
}

async fn create_group(State(state): State<AppState>, scim: Scim, body: Bytes) -> Answer {
    let mut attrs = normalize(Kind::Group, &parse_body(&body)?)?;
    let members = take_members(&mut attrs);
    let g = state.store.scim_create_group(&scim.caller.org_id, attrs, &members, &scim.audit).await?;
    Ok(resource_response(StatusCode::CREATED, group_resource(&g, &scim.base)))
}

async fn replace_group(State(state): State<AppState>, scim: Scim, Path(id): Path<String>, body: Bytes) -> Answer {
    let mut attrs = normalize(Kind::Group, &parse_body(&body)?)?;
    let members = take_members(&mut attrs);
    let before = state.store.scim_group(&scim.caller.org_id, &id).await?;
    let g = state
        .store
        .scim_update_group(&scim.caller.org_id, before, attrs, Some(&members), "scim.group.replace", &scim.audit)
        .await?;
    Ok(resource_response(StatusCode::OK, group_resource(&g, &scim.base)))
}

async fn patch_group(State(state): State<AppState>, scim: Scim, Path(id): Path<String>, body: Bytes) -> Answer {
    let body = parse_body(&body)?;
    let before = state.store.scim_group(&scim.caller.org_id, &id).await?;
    let mut doc = group_doc(&before, &scim.base);
    let g = if apply_patch(Kind::Group, &mut doc, &body)? {
        let members = take_members(&mut doc);
        state
            .store
            .scim_update_group(&scim.caller.org_id, before, doc, Some(&members), "scim.group.patch", &scim.audit)
            .await?
    } else {
        before
    };
    Ok(resource_response(StatusCode::OK, group_resource(&g, &scim.base)))
}

async fn delete_group(State(state): State<AppState>, scim: Scim, Path(id): Path<String>) -> Answer {
    state.store.scim_delete_group(&scim.caller.org_id, &id, &scim.audit).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
