//! Access control: roles, role bindings on folders, groups, guardrails, and explanations.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use gatehouse_authz::{Action, BuiltinRole, Explanation};
use gatehouse_core::{CustomRole, Group, GroupId, Guardrail, PrincipalId, RoleBinding, RoleBindingId};
use gatehouse_store::BindingSubject;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::apps::resolve_app;
use super::folders::resolve_folder;
use crate::AppState;
use crate::authz::resource;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Admin, ApiJson, ApiPath, Auth, Read};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_roles))
        .routes(routes!(put_role, delete_role))
        .routes(routes!(list_bindings, grant_role))
        .routes(routes!(revoke_role))
        .routes(routes!(list_groups, create_group))
        .routes(routes!(get_group, delete_group))
        .routes(routes!(add_member, remove_member))
        .routes(routes!(list_guardrails))
        .routes(routes!(put_guardrail, delete_guardrail))
        .routes(routes!(explain))
        .routes(routes!(schema))
}

/// A role and what it allows.
#[derive(Serialize, ToSchema)]
pub struct RoleView {
    /// The role's name.
    pub name: String,
    /// Whether every org has it.
    pub builtin: bool,
    /// What it is for.
    pub description: String,
    /// The actions it allows.
    pub actions: Vec<String>,
}

/// The built-in and custom roles.
#[utoipa::path(get, path = "/api/v1/roles", tag = "access", responses((status = 200, body = Vec<RoleView>)))]
async fn list_roles(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<Vec<RoleView>>> {
    auth.authorize(&state, Action::AuthzRead, &resource::root()).await?;
    let mut out: Vec<RoleView> = BuiltinRole::ALL
        .iter()
        .map(|r| RoleView {
            name: r.name().to_owned(),
            builtin: true,
            description: r.description().to_owned(),
            actions: r.actions().iter().map(|a| a.name().to_owned()).collect(),
        })
        .collect();
    for r in state.store.list_roles(&auth.principal().org_id).await? {
        out.push(RoleView { name: r.name, builtin: false, description: r.description, actions: r.actions });
    }
    Ok(Json(out))
}

/// A custom role's definition.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRole {
    /// What it is for.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// The actions it allows (`gatehouse authz actions` lists them).
    #[schema(min_items = 1)]
    pub actions: Vec<String>,
}

/// Define or redefine a custom role. Takes effect on the next request.
#[utoipa::path(put, path = "/api/v1/roles/{name}", tag = "access", request_body = PutRole,
    params(("name" = String, Path, description = "role name")),
    responses((status = 200, body = CustomRole), (status = 403, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn put_role(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PutRole>,
) -> ApiResult<Json<CustomRole>> {
    auth.authorize(&state, Action::RoleManage, &resource::root()).await?;
    gatehouse_authz::validate_role(&name, &req.actions).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let description = req.description.unwrap_or_default();
    check_text("description", &description, 500)?;
    let p = auth.principal();
    Ok(Json(state.store.put_role(&p.org_id, &name, &description, &req.actions, &auth.audit()).await?))
}

/// Delete a custom role that is granted nowhere.
#[utoipa::path(delete, path = "/api/v1/roles/{name}", tag = "access",
    params(("name" = String, Path, description = "role name")),
    responses((status = 204), (status = 404, body = crate::Problem), (status = 409, body = crate::Problem)))]
async fn delete_role(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    auth.authorize(&state, Action::RoleManage, &resource::root()).await?;
    if BuiltinRole::by_name(&name).is_some() {
        return Err(ApiError::Unprocessable(format!("`{name}` is built in and cannot be deleted")));
    }
    state.store.delete_role(&auth.principal().org_id, &name, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Filters for role bindings.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct BindingFilter {
    /// Only this principal's or group's bindings (by id).
    pub subject: Option<String>,
}

/// Role bindings on folders the caller may see.
#[utoipa::path(get, path = "/api/v1/role-bindings", tag = "access", params(BindingFilter),
    responses((status = 200, body = Vec<RoleBinding>)))]
async fn list_bindings(
    State(state): State<AppState>,
    auth: Auth<Read>,
    crate::extract::ApiQuery(filter): crate::extract::ApiQuery<BindingFilter>,
) -> ApiResult<Json<Vec<RoleBinding>>> {
    let p = auth.principal();
    auth.filters_each_item();
    let mut out = Vec::new();
    let folders: std::collections::HashMap<_, _> =
        state.store.list_folders(&p.org_id).await?.into_iter().map(|f| (f.id.clone(), f)).collect();
    for b in state.store.list_bindings(&p.org_id, filter.subject.as_deref()).await? {
        let Some(folder) = folders.get(&b.folder_id) else { continue };
        if auth.allows(&state, Action::AuthzRead, &resource::folder(folder)).await? {
            out.push(b);
        }
    }
    Ok(Json(out))
}

/// A grant of a role on a folder.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantRole {
    /// The role.
    pub role: String,
    /// The folder, by id or path (`/` for the whole org).
    pub folder: String,
    /// A principal, by id.
    pub principal_id: Option<PrincipalId>,
    /// A group, by id.
    pub group_id: Option<GroupId>,
}

/// Grant a role to a principal or group on a folder and everything below it.
#[utoipa::path(post, path = "/api/v1/role-bindings", tag = "access", request_body = GrantRole,
    responses((status = 201, body = RoleBinding), (status = 403, body = crate::Problem), (status = 409, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn grant_role(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<GrantRole>,
) -> ApiResult<(StatusCode, Json<RoleBinding>)> {
    let p = auth.principal();
    let folder = resolve_folder(&state.store, &p.org_id, &req.folder).await?;
    auth.authorize(&state, Action::RoleManage, &resource::folder(&folder)).await?;
    let subject = match (req.principal_id, req.group_id) {
        (Some(p), None) => BindingSubject::Principal(p),
        (None, Some(g)) => BindingSubject::Group(g),
        _ => return Err(ApiError::Unprocessable("give exactly one of `principal_id` and `group_id`".to_owned())),
    };
    let binding = state.store.grant_role(&p.org_id, &req.role, &folder.id, &subject, &auth.audit()).await?;
    tracing::info!(binding = %binding.id, role = %binding.role, folder = %binding.folder_path, by = %p.id, "role granted");
    Ok((StatusCode::CREATED, Json(binding)))
}

/// Revoke a role binding. Takes effect on the next request.
#[utoipa::path(delete, path = "/api/v1/role-bindings/{id}", tag = "access", params(("id" = RoleBindingId, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn revoke_role(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<RoleBindingId>,
) -> ApiResult<StatusCode> {
    let p = auth.principal();
    let b = state.store.get_binding(&p.org_id, &id).await?;
    let folder = state.store.get_folder(&p.org_id, &b.folder_id).await?;
    auth.authorize(&state, Action::RoleManage, &resource::folder(&folder)).await?;
    state.store.revoke_role(&p.org_id, &id, &auth.audit()).await?;
    tracing::info!(binding = %id, by = %p.id, "role revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// The org's groups.
#[utoipa::path(get, path = "/api/v1/groups", tag = "access", responses((status = 200, body = Vec<Group>)))]
async fn list_groups(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<Vec<Group>>> {
    auth.authorize(&state, Action::GroupRead, &resource::root()).await?;
    Ok(Json(state.store.list_groups(&auth.principal().org_id).await?))
}

/// A new group.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateGroup {
    /// Its name, unique in the org.
    #[schema(min_length = 1, max_length = 256)]
    pub name: String,
}

/// Create a group (groups from the identity provider arrive through SCIM instead).
#[utoipa::path(post, path = "/api/v1/groups", tag = "access", request_body = CreateGroup,
    responses((status = 201, body = Group), (status = 409, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn create_group(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiJson(req): ApiJson<CreateGroup>,
) -> ApiResult<(StatusCode, Json<Group>)> {
    auth.authorize(&state, Action::GroupManage, &resource::root()).await?;
    let group = state.store.create_group(&auth.principal().org_id, &req.name, None, &auth.audit()).await?;
    Ok((StatusCode::CREATED, Json(group)))
}

/// A group with its members.
#[derive(Serialize, ToSchema)]
pub struct GroupView {
    /// The group.
    #[serde(flatten)]
    pub group: Group,
    /// Its members, as principal ids.
    pub members: Vec<PrincipalId>,
}

/// Show a group and its members.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "access", params(("id" = GroupId, Path)),
    responses((status = 200, body = GroupView), (status = 404, body = crate::Problem)))]
async fn get_group(
    State(state): State<AppState>,
    auth: Auth<Read>,
    ApiPath(id): ApiPath<GroupId>,
) -> ApiResult<Json<GroupView>> {
    auth.authorize(&state, Action::GroupRead, &resource::root()).await?;
    let org = &auth.principal().org_id;
    let group = state.store.get_group(org, &id).await?;
    let members = state.store.group_members(org, &id).await?.into_iter().map(|(id, _)| id).collect();
    Ok(Json(GroupView { group, members }))
}

/// Delete a group, its memberships and the roles granted to it.
#[utoipa::path(delete, path = "/api/v1/groups/{id}", tag = "access", params(("id" = GroupId, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn delete_group(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(id): ApiPath<GroupId>,
) -> ApiResult<StatusCode> {
    auth.authorize(&state, Action::GroupManage, &resource::root()).await?;
    state.store.delete_group(&auth.principal().org_id, &id, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a principal to a group.
#[utoipa::path(put, path = "/api/v1/groups/{id}/members/{principal}", tag = "access",
    params(("id" = GroupId, Path), ("principal" = PrincipalId, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn add_member(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath((id, principal)): ApiPath<(GroupId, PrincipalId)>,
) -> ApiResult<StatusCode> {
    auth.authorize(&state, Action::GroupManage, &resource::root()).await?;
    state.store.set_group_member(&auth.principal().org_id, &id, &principal, true, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Remove a principal from a group.
#[utoipa::path(delete, path = "/api/v1/groups/{id}/members/{principal}", tag = "access",
    params(("id" = GroupId, Path), ("principal" = PrincipalId, Path)),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn remove_member(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath((id, principal)): ApiPath<(GroupId, PrincipalId)>,
) -> ApiResult<StatusCode> {
    auth.authorize(&state, Action::GroupManage, &resource::root()).await?;
    state.store.set_group_member(&auth.principal().org_id, &id, &principal, false, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The org's guardrails.
#[utoipa::path(get, path = "/api/v1/guardrails", tag = "access", responses((status = 200, body = Vec<Guardrail>)))]
async fn list_guardrails(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<Json<Vec<Guardrail>>> {
    auth.authorize(&state, Action::AuthzRead, &resource::root()).await?;
    Ok(Json(state.store.list_guardrails(&auth.principal().org_id).await?))
}

/// A guardrail policy.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutGuardrail {
    /// Why it exists.
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// One Cedar `forbid` policy over the schema at `GET /api/v1/authz/schema`.
    #[schema(min_length = 1, max_length = 16384)]
    pub policy: String,
}

/// Add or replace a guardrail. It is type-checked against the schema first and holds from the
/// next request.
#[utoipa::path(put, path = "/api/v1/guardrails/{name}", tag = "access", request_body = PutGuardrail,
    params(("name" = String, Path, description = "guardrail name")),
    responses((status = 200, body = Guardrail), (status = 422, body = crate::Problem)))]
async fn put_guardrail(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(name): ApiPath<String>,
    ApiJson(req): ApiJson<PutGuardrail>,
) -> ApiResult<Json<Guardrail>> {
    auth.authorize(&state, Action::GuardrailManage, &resource::root()).await?;
    gatehouse_core::validate_slug("guardrail", &name).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let description = req.description.unwrap_or_default();
    check_text("description", &description, 500)?;
    if req.policy.len() > 16384 {
        return Err(ApiError::Unprocessable("`policy` is longer than 16384 bytes".to_owned()));
    }
    gatehouse_authz::validate_guardrail(&name, &req.policy).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let p = auth.principal();
    Ok(Json(state.store.put_guardrail(&p.org_id, &name, &description, &req.policy, &auth.audit()).await?))
}

/// Remove a guardrail.
#[utoipa::path(delete, path = "/api/v1/guardrails/{name}", tag = "access",
    params(("name" = String, Path, description = "guardrail name")),
    responses((status = 204), (status = 404, body = crate::Problem)))]
async fn delete_guardrail(
    State(state): State<AppState>,
    auth: Auth<Admin>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<StatusCode> {
    auth.authorize(&state, Action::GuardrailManage, &resource::root()).await?;
    state.store.delete_guardrail(&auth.principal().org_id, &name, &auth.audit()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A question: may this principal do this action on this resource?
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExplainRequest {
    /// The principal, by id or name (email or service slug); the caller when absent.
    pub principal: Option<String>,
    /// The action, such as `app.push`.
    pub action: String,
    /// The resource: `app:NAME`, `folder:/PATH`, `org`, or `principal:ID`.
    pub resource: String,
}

/// The decision and what decided it.
#[derive(Serialize, ToSchema)]
pub struct ExplainResponse {
    /// The principal asked about.
    pub principal: String,
    /// The resource asked about.
    pub resource: String,
    /// The decision.
    #[serde(flatten)]
    pub explanation: Explanation,
}

/// Explain an authorization decision: allow or deny, the deciding policies and the role
/// bindings that apply. The answer is for the principal's roles and the org's guardrails; a
/// request's token scope and session facts (MFA, address) are not part of the question.
#[utoipa::path(get, path = "/api/v1/authz/explain", tag = "access", params(ExplainRequest),
    responses((status = 200, body = ExplainResponse), (status = 404, body = crate::Problem), (status = 422, body = crate::Problem)))]
async fn explain(
    State(state): State<AppState>,
    auth: Auth<Read>,
    crate::extract::ApiQuery(req): crate::extract::ApiQuery<ExplainRequest>,
) -> ApiResult<Json<ExplainResponse>> {
    let p = auth.principal().clone();
    let action: Action =
        req.action.parse().map_err(|e: gatehouse_authz::UnknownAction| ApiError::Unprocessable(e.to_string()))?;
    let target = match req.principal.as_deref() {
        None => state.store.get_principal(&p.org_id, &p.id).await?,
        Some(r) if PrincipalId::looks_like(r) => {
            let id: PrincipalId =
                r.parse().map_err(|e: gatehouse_core::IdError| ApiError::Unprocessable(e.to_string()))?;
            state.store.get_principal(&p.org_id, &id).await?
        }
        Some(name) => state.store.principal_by_name(&p.org_id, name).await?,
    };
    let resource = match req.resource.split_once(':') {
        Some(("app", name)) => resource::app(&resolve_app(&state.store, &p.org_id, name).await?),
        Some(("folder", path)) => resource::folder(&resolve_folder(&state.store, &p.org_id, path).await?),
        Some(("principal", id)) => {
            let id: PrincipalId =
                id.parse().map_err(|e: gatehouse_core::IdError| ApiError::Unprocessable(e.to_string()))?;
            let r = state.store.get_principal(&p.org_id, &id).await?;
            resource::principal(r.id.as_str(), r.kind, &r.name)
        }
        None if req.resource == "org" => resource::org(&p.org_id),
        _ => {
            return Err(ApiError::Unprocessable(
                "`resource` is `app:NAME`, `folder:/PATH`, `principal:ID` or `org`".to_owned(),
            ));
        }
    };
    // Asking about oneself needs nothing more; about others, the right to read access rules where
    // the resource is.
    let asker_self = resource::principal(p.id.as_str(), p.kind, &p.name);
    if target.id != p.id || !auth.allows(&state, Action::PrincipalSelf, &asker_self).await? {
        let scope = match &resource.folder {
            Some(f) => {
                let id = f.parse().map_err(|e: gatehouse_core::IdError| ApiError::Unprocessable(e.to_string()))?;
                resource::folder(&state.store.get_folder(&p.org_id, &id).await?)
            }
            None => resource::root(),
        };
        auth.authorize(&state, Action::AuthzRead, &scope).await?;
    }
    let snapshot = state.authz.snapshot(&state.store, &p.org_id, p.authz_version).await?;
    let who = crate::authz::who_of(target.id.as_str(), target.kind, &target.name, target.active);
    let explanation = snapshot.authorize(&who, action, &resource, &gatehouse_authz::RequestContext::default());
    Ok(Json(ExplainResponse { principal: target.name, resource: req.resource, explanation }))
}

/// The Cedar schema guardrails are written against.
#[utoipa::path(get, path = "/api/v1/authz/schema", tag = "access",
    responses((status = 200, body = String, content_type = "text/plain")))]
async fn schema(State(state): State<AppState>, auth: Auth<Read>) -> ApiResult<String> {
    auth.authorize(&state, Action::AuthzRead, &resource::root()).await?;
    Ok(gatehouse_authz::cedar_schema_text())
}

fn check_text(field: &str, text: &str, max: usize) -> ApiResult<()> {
    if text.chars().count() > max || text.chars().any(|c| c.is_control() && c != '\n') {
        return Err(ApiError::Unprocessable(format!("`{field}` must be at most {max} characters of text")));
    }
    Ok(())
}
