//! The actions Gatehouse authorizes, the resources each applies to, and the built-in roles.

use std::fmt;
use std::str::FromStr;

/// The kinds of resource a request acts on; each is a Cedar entity type in namespace `Gatehouse`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// The organization itself (the parent of the root folder).
    Org,
    /// A folder; folders nest, and roles granted on one reach everything below it.
    Folder,
    /// An app.
    App,
    /// A stored secret.
    Secret,
    /// An integration an app calls (Salesforce, Slack, …).
    Integration,
    /// A person.
    User,
    /// A documented automation identity.
    ServiceIdentity,
    /// A group of principals.
    Group,
}

impl ResourceKind {
    /// The Cedar entity type name, without namespace.
    pub fn cedar_type(self) -> &'static str {
        match self {
            Self::Org => "Org",
            Self::Folder => "Folder",
            Self::App => "App",
            Self::Secret => "Secret",
            Self::Integration => "Integration",
            Self::User => "User",
            Self::ServiceIdentity => "ServiceIdentity",
            Self::Group => "Group",
        }
    }
}

macro_rules! actions {
    ($($variant:ident => $name:literal, [$($kind:ident),+], $doc:literal;)*) => {
        /// Something a principal may do. The names are Cedar action ids (`Gatehouse::Action::"app.push"`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Action {
            $( #[doc = $doc] $variant, )*
        }

        impl Action {
            /// Every action, in declaration order.
            pub const ALL: &'static [Action] = &[$(Action::$variant),*];

            /// The action's name, as written in policies and role definitions.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)* }
            }

            /// What the action is for, for listings and `authz actions`.
            pub fn description(self) -> &'static str {
                match self { $(Action::$variant => $doc,)* }
            }

            /// The resource kinds the action applies to.
            pub fn resources(self) -> &'static [ResourceKind] {
                match self { $(Action::$variant => &[$(ResourceKind::$kind),+],)* }
            }
        }
    };
}

actions! {
    OrgRead => "org.read", [Org, Folder], "See the organization and its settings.";
    OrgCreate => "org.create", [Org], "Create another organization (operator organization only).";
    FolderRead => "folder.read", [Folder], "See a folder.";
    FolderCreate => "folder.create", [Folder], "Create a folder inside this one.";
    FolderUpdate => "folder.update", [Folder], "Rename or move a folder.";
    FolderDelete => "folder.delete", [Folder], "Delete an empty folder.";
    AppRead => "app.read", [App], "See an app, its revisions, archives, diffs and scans.";
    AppCreate => "app.create", [Folder], "Create an app in this folder.";
    AppUpdate => "app.update", [App], "Change an app's description, sensitivity, folder or status.";
    AppPush => "app.push", [App], "Push a new revision of an app.";
    AppRescan => "app.rescan", [App], "Scan a revision again.";
    AppApprove => "app.approve", [App], "Approve a revision for release.";
    AppDeploy => "app.deploy", [App], "Deploy an approved revision.";
    SuppressionManage => "suppression.manage", [App], "Suppress or unsuppress a scan finding.";
    PolicyRead => "policy.read", [Org, Folder], "See scan and review policies.";
    PolicyManage => "policy.manage", [Org, Folder], "Change scan and review policies.";
    SecretRead => "secret.read", [Secret, Folder, App], "See secrets' metadata (never values).";
    SecretWrite => "secret.write", [Secret, Folder, App], "Create, rotate or delete a secret.";
    VaultKeyRead => "vault.key.read", [Org], "See the vault key's status.";
    VaultKeyManage => "vault.key.manage", [Org], "Rotate or destroy the vault key.";
    PrincipalRead => "principal.read", [User, ServiceIdentity, Folder], "See principals and their tokens.";
    PrincipalManage => "principal.manage", [User, ServiceIdentity, Folder], "Create, change or deactivate principals; manage their tokens.";
    PrincipalSelf => "principal.self", [User, ServiceIdentity], "See oneself and manage one's own tokens.";
    GroupRead => "group.read", [Group, Folder], "See groups and their members.";
    GroupManage => "group.manage", [Group, Folder], "Create groups and change their members.";
    AuthzRead => "authz.read", [Folder], "See roles, role bindings and guardrails; ask for explanations.";
    RoleManage => "role.manage", [Folder], "Grant and revoke roles on a folder; define custom roles.";
    GuardrailManage => "guardrail.manage", [Folder], "Add and remove guardrail policies.";
    IdentityManage => "identity.manage", [Org], "Manage SCIM provisioning tokens and revoke sign-in sessions.";
    AuditRead => "audit.read", [Org], "Read, verify and export the audit log.";
    AuditMatch => "audit.match", [Org], "Test a value against a keyed hash in the audit log.";
    AuditAppend => "audit.append", [Org], "Send app and data-plane events to the audit log.";
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An action name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action `{0}` (see `gatehouse authz actions`)")]
pub struct UnknownAction(pub String);

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, UnknownAction> {
        Action::ALL.iter().copied().find(|a| a.name() == s).ok_or_else(|| UnknownAction(s.chars().take(80).collect()))
    }
}

/// A set of actions, as a bit set (there are fewer than 64 actions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ActionSet(u64);

impl ActionSet {
    /// Every action.
    pub fn all() -> Self {
        Action::ALL.iter().copied().collect()
    }

    /// Whether `a` is in the set.
    pub fn contains(self, a: Action) -> bool {
        self.0 & (1 << a as u64) != 0
    }

    /// The set with `a` added.
    pub fn with(self, a: Action) -> Self {
        Self(self.0 | (1 << a as u64))
    }

    /// The actions in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Action> {
        Action::ALL.iter().copied().filter(move |a| self.contains(*a))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl FromIterator<Action> for ActionSet {
    fn from_iter<I: IntoIterator<Item = Action>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), ActionSet::with)
    }
}

/// The roles every organization has. Granted on a folder, a role holds there and below.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinRole {
    /// Everything.
    OrgAdmin,
    /// Policies, guardrails, suppressions, secrets, the vault key and the audit log.
    SecurityAdmin,
    /// Reads, approves and deploys.
    Approver,
    /// Creates and changes apps and folders, pushes, writes secrets.
    Builder,
    /// Reads everything except the audit log.
    Viewer,
    /// Reads the audit log and nothing else.
    Auditor,
}

impl BuiltinRole {
    /// Every built-in role.
    pub const ALL: [BuiltinRole; 6] = [
        BuiltinRole::OrgAdmin,
        BuiltinRole::SecurityAdmin,
        BuiltinRole::Approver,
        BuiltinRole::Builder,
        BuiltinRole::Viewer,
        BuiltinRole::Auditor,
    ];

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::OrgAdmin => "org-admin",
            Self::SecurityAdmin => "security-admin",
            Self::Approver => "approver",
            Self::Builder => "builder",
            Self::Viewer => "viewer",
            Self::Auditor => "auditor",
        }
    }

    /// The role by name.
    pub fn by_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// What the role is for.
    pub fn description(self) -> &'static str {
        match self {
            Self::OrgAdmin => "Everything, including roles, principals and the organization.",
            Self::SecurityAdmin => {
                "Policies, guardrails, suppressions, secrets, the vault key and the audit log, and read access."
            }
            Self::Approver => "Read access, and approve and deploy revisions.",
            Self::Builder => "Read access, and create folders and apps, push, rescan and write secrets.",
            Self::Viewer => "Read access to folders, apps, secrets' metadata, principals, groups and policies.",
            Self::Auditor => "Read, verify and export the audit log; nothing else.",
        }
    }

    /// The actions the role allows.
    pub fn actions(self) -> ActionSet {
        use Action::*;
        let viewer = [OrgRead, FolderRead, AppRead, PolicyRead, SecretRead, PrincipalRead, GroupRead, AuthzRead];
        match self {
            Self::OrgAdmin => ActionSet::all(),
            Self::SecurityAdmin => viewer
                .into_iter()
                .chain([
                    PolicyManage,
                    SuppressionManage,
                    SecretWrite,
                    VaultKeyRead,
                    VaultKeyManage,
                    GuardrailManage,
                    AuditRead,
                    AuditMatch,
                ])
                .collect(),
            Self::Approver => viewer.into_iter().chain([AppApprove, AppDeploy]).collect(),
            Self::Builder => viewer
                .into_iter()
                .chain([FolderCreate, AppCreate, AppUpdate, AppPush, AppRescan, SecretWrite, AuditAppend])
                .collect(),
            Self::Viewer => viewer.into_iter().collect(),
            Self::Auditor => [AuditRead, AuditMatch].into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_fit_the_bit_set() {
        assert!(Action::ALL.len() < 64);
        for a in Action::ALL {
            assert_eq!(a.name().parse::<Action>().unwrap(), *a);
            assert!(ActionSet::all().contains(*a));
        }
        assert!("app.nuke".parse::<Action>().unwrap_err().to_string().contains("unknown action"));
    }

    #[test]
    fn roles_nest_as_documented() {
        let viewer = BuiltinRole::Viewer.actions();
        for r in [BuiltinRole::Builder, BuiltinRole::Approver, BuiltinRole::SecurityAdmin, BuiltinRole::OrgAdmin] {
            assert!(viewer.iter().all(|a| r.actions().contains(a)), "{} lacks viewer's actions", r.name());
        }
        assert!(!BuiltinRole::Auditor.actions().contains(Action::AppRead));
        assert!(!viewer.contains(Action::AuditRead));
        assert!(!BuiltinRole::Builder.actions().contains(Action::AppDeploy), "builders do not deploy their own work");
        assert!(!BuiltinRole::SecurityAdmin.actions().contains(Action::RoleManage));
    }
}
