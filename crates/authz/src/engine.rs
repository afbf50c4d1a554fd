//! A per-organization snapshot of roles, bindings, groups and guardrails, and decisions over it.

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::OnceLock;

use cedar_policy::{
    Authorizer, Context, Effect, Entities, EntityId, EntityTypeName, EntityUid, Policy, PolicyId, PolicySet, Request,
    RestrictedExpression, ValidationMode, Validator,
};
use rustc_hash::FxHashMap;

use crate::action::{Action, ActionSet, BuiltinRole, ResourceKind};
use crate::{AuthzError, schema};

/// Who a binding grants a role to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Subject {
    /// A user or service identity, by id.
    Principal(String),
    /// A group, by id.
    Group(String),
}

/// A folder as the snapshot needs it.
#[derive(Debug, Clone)]
pub struct FolderData {
    /// The folder's id.
    pub id: String,
    /// Its parent; `None` for the root.
    pub parent: Option<String>,
    /// Its name.
    pub name: String,
    /// Its path (`/finance/refunds`; `/` for the root).
    pub path: String,
}

/// A custom role: a named set of actions.
#[derive(Debug, Clone)]
pub struct RoleData {
    /// The role's name.
    pub name: String,
    /// The names of the actions it allows.
    pub actions: Vec<String>,
}

/// A role granted to a subject on a folder.
#[derive(Debug, Clone)]
pub struct BindingData {
    /// The binding's id.
    pub id: String,
    /// The role's name (built-in or custom).
    pub role: String,
    /// The folder it is granted on.
    pub folder: String,
    /// Who holds it.
    pub subject: Subject,
}

/// A guardrail: one Cedar `forbid` policy.
#[derive(Debug, Clone)]
pub struct GuardrailData {
    /// The guardrail's name (its Cedar policy id is `guardrail:<name>`).
    pub name: String,
    /// The policy text.
    pub policy: String,
}

/// Everything a snapshot is built from, as loaded from the store.
#[derive(Debug, Clone, Default)]
pub struct SnapshotData {
    /// The organization's id.
    pub org_id: String,
    /// The organization's name.
    pub org_name: String,
    /// The version of the org's authorization data this was read at.
    pub version: i64,
    /// Every folder.
    pub folders: Vec<FolderData>,
    /// Custom roles.
    pub roles: Vec<RoleData>,
    /// Role bindings.
    pub bindings: Vec<BindingData>,
    /// Groups, as (id, name).
    pub groups: Vec<(String, String)>,
    /// Group memberships, as (principal id, group id).
    pub memberships: Vec<(String, String)>,
    /// Guardrails.
    pub guardrails: Vec<GuardrailData>,
}

/// Person or service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person.
    User,
    /// A service identity.
    Service,
}

/// The principal a decision is for.
#[derive(Debug, Clone)]
pub struct Who {
    /// The principal's id.
    pub id: String,
    /// Person or service.
    pub kind: PrincipalKind,
    /// Email or slug.
    pub name: String,
    /// Whether the principal is active.
    pub active: bool,
}

/// The resource a request acts on.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its kind.
    pub kind: ResourceKind,
    /// Its id (for folders, the folder id; for the org, the org id).
    pub id: String,
    /// Its name, for policies and explanations.
    pub name: String,
    /// The folder it sits in; for a folder, the folder itself; for org-level resources, `None`
    /// (the root folder).
    pub folder: Option<String>,
    /// The app it belongs to (secrets and integrations scoped to an app).
    pub app: Option<String>,
    /// An app's sensitivity (`low`, `normal`, `high`).
    pub sensitivity: Option<String>,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// An API token.
    Token,
    /// A browser session from single sign-on.
    Session,
    /// An OAuth client-credentials access token.
    ClientCredentials,
    /// A TLS client certificate.
    Mtls,
}

impl AuthMethod {
    /// The name policies see in `context.authn`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Session => "session",
            Self::ClientCredentials => "client_credentials",
            Self::Mtls => "mtls",
        }
    }
}

/// Facts about the request for guardrails.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Whether the identity provider reported multi-factor authentication.
    pub mfa: bool,
    /// The provider's `amr` values.
    pub amr: Vec<String>,
    /// The provider's `acr`.
    pub acr: Option<String>,
    /// How the caller authenticated.
    pub authn: AuthMethod,
    /// The caller's address, when known.
    pub source_ip: Option<IpAddr>,
}

impl Default for RequestContext {
    fn default() -> Self {
        Self { mfa: false, amr: Vec::new(), acr: None, authn: AuthMethod::Token, source_ip: None }
    }
}

/// A binding that gave the principal a role on the resource or an ancestor.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Grant {
    /// The binding's id.
    pub binding: String,
    /// The role.
    pub role: String,
    /// The path of the folder it is granted on.
    pub folder: String,
    /// The group it came through, when not granted directly.
    pub via_group: Option<String>,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
}

/// A decision and what decided it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// Allow or deny.
    pub decision: Decision,
    /// The action asked about.
    pub action: String,
    /// The Cedar policies that decided: permits for an allow, forbids for a deny by guardrail.
    pub policies: Vec<String>,
    /// Role bindings that apply here, whether or not their role allows the action.
    pub grants: Vec<Grant>,
    /// Policies that could not be evaluated (each one denies).
    pub errors: Vec<String>,
    /// One sentence a person can read.
    pub reason: String,
}

impl Explanation {
    /// Whether the decision was allow.
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allow
    }
}

struct FolderNode {
    parent: Option<u32>,
    name: String,
    path: String,
    uid: EntityUid,
    /// Every folder above this one, and the org.
    ancestors: Vec<EntityUid>,
}

struct GroupNode {
    id: String,
    name: String,
    uid: EntityUid,
}

struct RoleDef {
    name: String,
    actions: ActionSet,
}

/// One org's authorization data, indexed for decisions. Immutable; rebuilt when the data changes.
pub struct Snapshot {
    version: i64,
    org_uid: EntityUid,
    org_name: String,
    uses_source_ip: bool,
    folders: Vec<FolderNode>,
    folder_index: FxHashMap<String, u32>,
    root: u32,
    roles: Vec<RoleDef>,
    role_index: FxHashMap<String, u16>,
    bindings: Vec<BindingData>,
    /// subject id → folder → (role, binding index)
    grants: FxHashMap<String, FxHashMap<u32, Vec<(u16, u32)>>>,
    groups: Vec<GroupNode>,
    groups_of: FxHashMap<String, Vec<u32>>,
    policies: PolicySet,
    authorizer: Authorizer,
}

const NS: &str = "Gatehouse";

fn uid(kind: &str, id: &str) -> EntityUid {
    // Parsing a type name runs Cedar's parser; parse each of our few types once.
    static TYPES: OnceLock<FxHashMap<&'static str, EntityTypeName>> = OnceLock::new();
    let types = TYPES.get_or_init(|| {
        ["Org", "Folder", "App", "Secret", "Integration", "User", "ServiceIdentity", "Group", "Action"]
            .into_iter()
            .filter_map(|k| EntityTypeName::from_str(&format!("{NS}::{k}")).ok().map(|t| (k, t)))
            .collect()
    });
    let ty = match types.get(kind) {
        Some(t) => t.clone(),
        None => EntityTypeName::from_str(&format!("{NS}::{kind}")).unwrap_or_else(|_| unreachable!("type {kind}")),
    };
    EntityUid::from_type_name_and_id(ty, EntityId::new(id))
}

fn action_uid(a: Action) -> EntityUid {
    uid("Action", a.name())
}

type CoreUid = cedar_policy_core::ast::EntityUID;
type CoreEntity = cedar_policy_core::ast::Entity;

/// A literal attribute value, built without running Cedar's expression evaluator.
fn lit(v: impl Into<cedar_policy_core::ast::Value>) -> cedar_policy_core::ast::PartialValue {
    cedar_policy_core::ast::PartialValue::Value(v.into())
}

/// An entity for the request slice; `parents` must already hold every ancestor.
fn core_entity(
    uid: EntityUid,
    attrs: Vec<(&str, cedar_policy_core::ast::PartialValue)>,
    parents: HashSet<CoreUid>,
) -> CoreEntity {
    CoreEntity::new_with_attr_partial_value(
        uid.into(),
        attrs.into_iter().map(|(k, v)| (k.into(), v)),
        HashSet::new(),
        parents,
        [],
    )
}

fn string(s: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(s.to_owned())
}

/// The permit of the roles. Which roles allow the action asked about, here, is decided by the
/// index before Cedar runs: `context.roles` holds exactly those, and this one policy permits when
/// there is any. Explanations name each of them as `role:<name>`. One policy per role (with
/// its action list) made Cedar build a 30-element set per role per decision, and evaluate every
/// role of the org — custom ones included — on every request.
const ROLES_POLICY: &str = "permit(principal, action, resource) when { context.roles != [] };";

/// Policies every organization has.
const BUILTIN_POLICIES: &[(&str, &str)] = &[
    (
        "builtin:self",
        "permit(principal, action == Gatehouse::Action::\"principal.self\", resource) when { resource == principal };",
    ),
    ("builtin:deactivated", "forbid(principal, action, resource) when { !principal.active };"),
];

/// Checks a custom role definition before it is stored.
pub fn validate_role(name: &str, actions: &[String]) -> Result<ActionSet, AuthzError> {
    let invalid = |reason: String| AuthzError::InvalidRole { name: name.to_owned(), reason };
    if BuiltinRole::by_name(name).is_some() {
        return Err(invalid("a built-in role has that name".to_owned()));
    }
    if name.is_empty()
        || name.len() > 63
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        || name.starts_with('-')
    {
        return Err(invalid("a role name is 1-63 lowercase letters, digits and hyphens".to_owned()));
    }
    if actions.is_empty() {
        return Err(invalid("a role needs at least one action".to_owned()));
    }
    actions.iter().map(|a| a.parse::<Action>().map_err(|e| invalid(e.to_string()))).collect()
}

/// Checks a guardrail before it is stored: one `forbid` that type-checks against the schema.
pub fn validate_guardrail(name: &str, text: &str) -> Result<(), AuthzError> {
    let invalid = |reason: String| AuthzError::InvalidGuardrail { name: name.to_owned(), reason };
    let policy = parse_guardrail(name, text).map_err(invalid)?;
    let mut set = PolicySet::new();
    set.add(policy.clone()).map_err(|e| invalid(e.to_string()))?;
    let result = Validator::new(schema().clone()).validate(&set, ValidationMode::Strict);
    if let Some(e) = result.validation_errors().next() {
        return Err(invalid(format!("{e}")));
    }
    Ok(())
}

fn parse_guardrail(name: &str, text: &str) -> Result<Policy, String> {
    let policy = Policy::parse(Some(PolicyId::new(format!("guardrail:{name}"))), text).map_err(|e| {
        let mut msg = e.to_string();
        if text.matches(';').count() > 1 {
            msg.push_str(" (a guardrail is exactly one policy)");
        }
        msg
    })?;
    if policy.effect() != Effect::Forbid {
        return Err("a guardrail can only forbid; grant access with roles".to_owned());
    }
    Ok(policy)
}

impl Snapshot {
    /// Indexes `data`. Bindings to unknown folders or roles grant nothing; a stored guardrail that
    /// no longer parses is an error (deciding without it would be deciding wrongly).
    pub fn build(data: SnapshotData) -> Result<Self, AuthzError> {
        let org_uid = uid("Org", &data.org_id);

        let mut folder_index = FxHashMap::default();
        for (i, f) in data.folders.iter().enumerate() {
            folder_index.insert(f.id.clone(), i as u32);
        }
        let mut parents = Vec::with_capacity(data.folders.len());
        let mut root = None;
        for (i, f) in data.folders.iter().enumerate() {
            parents.push(match &f.parent {
                Some(p) => Some(
                    *folder_index
                        .get(p)
                        .ok_or_else(|| AuthzError::Inconsistent(format!("folder {} has an unknown parent", f.id)))?,
                ),
                None => {
                    root = Some(i as u32);
                    None
                }
            });
        }
        let root = root.ok_or_else(|| AuthzError::Inconsistent("the organization has no root folder".to_owned()))?;
        let uids: Vec<EntityUid> = data.folders.iter().map(|f| uid("Folder", &f.id)).collect();
        let mut folders = Vec::with_capacity(data.folders.len());
        for (i, f) in data.folders.iter().enumerate() {
            let mut ancestors = Vec::new();
            let mut at = parents[i];
            while let Some(p) = at {
                // Folders are a tree by construction; a cycle in stored data must not hang us.
                if ancestors.len() > data.folders.len() {
                    return Err(AuthzError::Inconsistent("the folder tree has a cycle".to_owned()));
                }
                ancestors.push(uids[p as usize].clone());
                at = parents[p as usize];
            }
            ancestors.push(org_uid.clone());
            folders.push(FolderNode {
                parent: parents[i],
                name: f.name.clone(),
                path: f.path.clone(),
                uid: uids[i].clone(),
                ancestors,
            });
        }

        let mut roles: Vec<RoleDef> =
            BuiltinRole::ALL.iter().map(|r| RoleDef { name: r.name().to_owned(), actions: r.actions() }).collect();
        for r in &data.roles {
            // Unknown actions grant nothing (a stored role can outlive an action's name).
            let actions = r.actions.iter().filter_map(|a| a.parse::<Action>().ok()).collect();
            if BuiltinRole::by_name(&r.name).is_none() {
                roles.push(RoleDef { name: r.name.clone(), actions });
            }
        }
        let role_index: FxHashMap<String, u16> =
            roles.iter().enumerate().map(|(i, r)| (r.name.clone(), i as u16)).collect();

        let mut grants: FxHashMap<String, FxHashMap<u32, Vec<(u16, u32)>>> = FxHashMap::default();
        for (i, b) in data.bindings.iter().enumerate() {
            let (Some(&role), Some(&folder)) = (role_index.get(&b.role), folder_index.get(&b.folder)) else {
                continue;
            };
            let subject = match &b.subject {
                Subject::Principal(id) | Subject::Group(id) => id.clone(),
            };
            grants.entry(subject).or_default().entry(folder).or_default().push((role, i as u32));
        }

        let mut group_index = FxHashMap::default();
        let groups: Vec<GroupNode> = data
            .groups
            .iter()
            .enumerate()
            .map(|(i, (id, name))| {
                group_index.insert(id.clone(), i as u32);
                GroupNode { id: id.clone(), name: name.clone(), uid: uid("Group", id) }
            })
            .collect();
        let mut groups_of: FxHashMap<String, Vec<u32>> = FxHashMap::default();
        for (principal, group) in &data.memberships {
            if let Some(&g) = group_index.get(group) {
                groups_of.entry(principal.clone()).or_default().push(g);
            }
        }

        let mut policies = PolicySet::new();
        let add = |set: &mut PolicySet, id: String, text: &str| -> Result<(), AuthzError> {
            let p = Policy::parse(Some(PolicyId::new(id.clone())), text)
                .map_err(|e| AuthzError::Inconsistent(format!("policy {id}: {e}")))?;
            set.add(p).map_err(|e| AuthzError::Inconsistent(e.to_string()))
        };
        for (id, text) in BUILTIN_POLICIES {
            add(&mut policies, (*id).to_owned(), text)?;
        }
        add(&mut policies, "roles".to_owned(), ROLES_POLICY)?;
        for g in &data.guardrails {
            let p = parse_guardrail(&g.name, &g.policy)
                .map_err(|reason| AuthzError::InvalidGuardrail { name: g.name.clone(), reason })?;
            policies.add(p).map_err(|e| AuthzError::Inconsistent(e.to_string()))?;
        }

        Ok(Self {
            version: data.version,
            org_uid,
            org_name: data.org_name,
            uses_source_ip: data.guardrails.iter().any(|g| g.policy.contains("source_ip")),
            folders,
            folder_index,
            root,
            roles,
            role_index,
            bindings: data.bindings,
            grants,
            groups,
            groups_of,
            policies,
            authorizer: Authorizer::new(),
        })
    }

    /// The version of the data this snapshot was built from.
    pub fn version(&self) -> i64 {
        self.version
    }

    /// The actions a role allows, if the role exists.
    pub fn role_actions(&self, role: &str) -> Option<ActionSet> {
        self.role_index.get(role).map(|&i| self.roles[i as usize].actions)
    }

    /// Whether `folder` is a folder of this organization.
    pub fn has_folder(&self, folder: &str) -> bool {
        self.folder_index.contains_key(folder)
    }

    /// The folder a resource's bindings are looked up from.
    fn start(&self, resource: &Resource) -> Option<u32> {
        match &resource.folder {
            Some(f) => self.folder_index.get(f).copied(),
            None => Some(self.root),
        }
    }

    /// The bindings that give `who` (directly or by group) a role on the folder `start` or above.
    fn applicable(&self, who: &Who, start: u32, mut each: impl FnMut(u16, u32, Option<u32>)) {
        let subjects = std::iter::once((who.id.as_str(), None)).chain(
            self.groups_of.get(&who.id).into_iter().flatten().map(|&g| (self.groups[g as usize].id.as_str(), Some(g))),
        );
        for (subject, group) in subjects {
            let Some(by_folder) = self.grants.get(subject) else { continue };
            let mut at = Some(start);
            while let Some(f) = at {
                if let Some(list) = by_folder.get(&f) {
                    for &(role, binding) in list {
                        each(role, binding, group);
                    }
                }
                at = self.folders[f as usize].parent;
            }
        }
    }

    /// Decides whether `who` may do `action` on `resource`, and says why.
    pub fn authorize(&self, who: &Who, action: Action, resource: &Resource, ctx: &RequestContext) -> Explanation {
        let deny = |reason: String, grants: Vec<Grant>, errors: Vec<String>, policies: Vec<String>| Explanation {
            decision: Decision::Deny,
            action: action.name().to_owned(),
            policies,
            grants,
            errors,
            reason,
        };
        if !action.resources().contains(&resource.kind) {
            return deny(
                format!("`{action}` does not apply to a {}", resource.kind.cedar_type()),
                Vec::new(),
                Vec::new(),
                Vec::new(),
            );
        }
        let Some(start) = self.start(resource) else {
            return deny("the resource's folder is unknown".to_owned(), Vec::new(), Vec::new(), Vec::new());
        };
        let mut held: Vec<u16> = Vec::new();
        let mut grants = Vec::new();
        self.applicable(who, start, |role, binding, group| {
            if !held.contains(&role) {
                held.push(role);
            }
            let b = &self.bindings[binding as usize];
            grants.push(Grant {
                binding: b.id.clone(),
                role: b.role.clone(),
                folder: self
                    .folder_index
                    .get(&b.folder)
                    .map(|&f| self.folders[f as usize].path.clone())
                    .unwrap_or_default(),
                via_group: group.map(|g| self.groups[g as usize].name.clone()),
            });
        });
        let self_service = action == Action::PrincipalSelf && resource.id == who.id;
        // Cedar denies by default and only role permits and `builtin:self` permit; when neither
        // can apply, the answer is deny without evaluating anything.
        if !self_service && !held.iter().any(|&r| self.roles[r as usize].actions.contains(action)) {
            let reason = if grants.is_empty() {
                format!("no role is granted to {} on this resource or any folder above it", who.name)
            } else {
                format!("no role {} holds here allows `{action}`", who.name)
            };
            return deny(reason, grants, Vec::new(), Vec::new());
        }
        let (request, entities) = match self.slice(who, action, resource, start, &held, ctx) {
            Ok(x) => x,
            Err(e) => return deny(format!("the request could not be evaluated: {e}"), grants, vec![e], Vec::new()),
        };
        let response = self.authorizer.is_authorized(&request, &self.policies, &entities);
        let policies: Vec<String> = response
            .diagnostics()
            .reason()
            .flat_map(|p| {
                if p.to_string() == "roles" {
                    held.iter()
                        .filter(|&&r| self.roles[r as usize].actions.contains(action))
                        .map(|&r| format!("role:{}", self.roles[r as usize].name))
                        .collect()
                } else {
                    vec![p.to_string()]
                }
            })
            .collect();
        let errors: Vec<String> = response.diagnostics().errors().map(|e| e.to_string()).collect();
        if !errors.is_empty() {
            return deny(
                "a policy could not be evaluated, and a policy that cannot be evaluated denies".to_owned(),
                grants,
                errors,
                policies,
            );
        }
        match response.decision() {
            cedar_policy::Decision::Allow => Explanation {
                decision: Decision::Allow,
                action: action.name().to_owned(),
                reason: format!("allowed by {}", policies.join(", ")),
                policies,
                grants,
                errors,
            },
            cedar_policy::Decision::Deny if policies.is_empty() => {
                deny(format!("no policy permits `{action}` here"), grants, errors, policies)
            }
            cedar_policy::Decision::Deny => {
                deny(format!("forbidden by {}", policies.join(", ")), grants, errors, policies)
            }
        }
    }

    /// The request and the two entities Cedar needs: the principal with its groups as parents, and
    /// the resource with every ancestor (folders up to the org) as parents. Ancestors are given
    /// whole, so `resource in Folder::"…"` holds without the folders themselves in the slice;
    /// building Cedar's entity store costs microseconds per entity, which is why it stays at two.
    fn slice(
        &self,
        who: &Who,
        action: Action,
        resource: &Resource,
        start: u32,
        held: &[u16],
        ctx: &RequestContext,
    ) -> Result<(Request, Entities), String> {
        let principal_type = match who.kind {
            PrincipalKind::User => "User",
            PrincipalKind::Service => "ServiceIdentity",
        };
        let principal_uid = uid(principal_type, &who.id);
        let groups_of = |id: &str| -> HashSet<CoreUid> {
            self.groups_of.get(id).into_iter().flatten().map(|&g| self.groups[g as usize].uid.clone().into()).collect()
        };
        let mut entities: Vec<CoreEntity> = Vec::with_capacity(2);
        entities.push(core_entity(
            principal_uid.clone(),
            vec![("name", lit(who.name.as_str())), ("active", lit(who.active))],
            groups_of(&who.id),
        ));
        let folder = &self.folders[start as usize];
        let in_folder = || -> HashSet<CoreUid> {
            let mut set: HashSet<CoreUid> = folder.ancestors.iter().cloned().map(Into::into).collect();
            set.insert(folder.uid.clone().into());
            set
        };
        let resource_uid = match resource.kind {
            ResourceKind::User | ResourceKind::ServiceIdentity if resource.id == who.id => principal_uid.clone(),
            ResourceKind::Org => {
                entities.push(core_entity(
                    self.org_uid.clone(),
                    vec![("name", lit(self.org_name.as_str()))],
                    HashSet::new(),
                ));
                self.org_uid.clone()
            }
            ResourceKind::Folder => {
                entities.push(core_entity(
                    folder.uid.clone(),
                    vec![("name", lit(folder.name.as_str())), ("path", lit(folder.path.as_str()))],
                    folder.ancestors.iter().cloned().map(Into::into).collect(),
                ));
                folder.uid.clone()
            }
            kind => {
                let ruid = uid(kind.cedar_type(), &resource.id);
                let mut attrs = vec![("name", lit(resource.name.as_str()))];
                let parents = match kind {
                    ResourceKind::App => {
                        attrs.push(("sensitivity", lit(resource.sensitivity.as_deref().unwrap_or("normal"))));
                        in_folder()
                    }
                    ResourceKind::Secret | ResourceKind::Integration => {
                        let mut set = in_folder();
                        if let Some(app) = &resource.app {
                            set.insert(uid("App", app).into());
                        }
                        set
                    }
                    ResourceKind::User | ResourceKind::ServiceIdentity => {
                        attrs.push(("active", lit(true)));
                        groups_of(&resource.id)
                    }
                    _ => HashSet::new(),
                };
                entities.push(core_entity(ruid.clone(), attrs, parents));
                ruid
            }
        };
        let roles = held
            .iter()
            .filter(|&&r| self.roles[r as usize].actions.contains(action))
            .map(|&r| string(&self.roles[r as usize].name));
        let mut pairs = vec![
            ("roles".to_owned(), RestrictedExpression::new_set(roles)),
            ("mfa".to_owned(), RestrictedExpression::new_bool(ctx.mfa)),
            ("amr".to_owned(), RestrictedExpression::new_set(ctx.amr.iter().map(|a| string(a)))),
            ("authn".to_owned(), string(ctx.authn.as_str())),
        ];
        if let Some(acr) = &ctx.acr {
            pairs.push(("acr".to_owned(), string(acr)));
        }
        // Building an `ipaddr` costs more than the rest of the request; only guardrails read it.
        if let Some(ip) = ctx.source_ip
            && self.uses_source_ip
        {
            pairs.push(("source_ip".to_owned(), RestrictedExpression::new_ip(ip.to_string())));
        }
        let context = Context::from_pairs(pairs).map_err(|e| e.to_string())?;
        let request =
            Request::new(principal_uid, action_uid(action), resource_uid, context, None).map_err(|e| e.to_string())?;
        // Every entity carries all its ancestors already (see above), so the closure is complete.
        let entities = cedar_policy_core::entities::Entities::from_entities(
            entities,
            None::<&cedar_policy_core::entities::NoEntitiesSchema>,
            cedar_policy_core::entities::TCComputation::AssumeAlreadyComputed,
            cedar_policy_core::extensions::Extensions::all_available(),
        )
        .map(Entities::from)
        .map_err(|e| e.to_string())?;
        Ok((request, entities))
    }
}
