//! Decisions over small organizations: inheritance, groups, custom roles, guardrails, and the
//! property that nothing is allowed without a grant on the resource or an ancestor.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use gatehouse_authz::{
    Action, AuthMethod, BindingData, BuiltinRole, GuardrailData, PrincipalKind, RequestContext, Resource, ResourceKind,
    RoleData, Snapshot, SnapshotData, Subject, validate_guardrail, validate_role,
};
use proptest::prelude::*;

fn who(id: &str) -> gatehouse_authz::Who {
    gatehouse_authz::Who { id: id.into(), kind: PrincipalKind::User, name: format!("{id}@example.com"), active: true }
}

fn app(folder: &str, sensitivity: &str) -> Resource {
    Resource {
        kind: ResourceKind::App,
        id: "app_1".into(),
        name: "ledger".into(),
        folder: Some(folder.into()),
        app: None,
        sensitivity: Some(sensitivity.into()),
    }
}

fn bind(id: &str, role: &str, folder: &str, subject: Subject) -> BindingData {
    BindingData { id: id.into(), role: role.into(), folder: folder.into(), subject }
}

/// root ─ fld_1 (/f0) ─ fld_3 (/f0/f0) …; a 2-deep, 2-wide tree.
fn base() -> SnapshotData {
    SnapshotData {
        org_id: "org_1".into(),
        org_name: "acme".into(),
        version: 1,
        folders: support::tree(2, 2),
        groups: vec![("grp_fin".into(), "finance".into())],
        memberships: vec![("prn_bob".into(), "grp_fin".into())],
        ..Default::default()
    }
}

#[test]
fn roles_are_inherited_down_the_tree_and_not_up() {
    let mut d = base();
    // fld_1 is /f0; fld_3 is /f0/f0; fld_2 is /f1.
    d.bindings = vec![bind("rb_1", "builder", "fld_1", Subject::Principal("prn_ann".into()))];
    let s = Snapshot::build(d).unwrap();
    let ctx = RequestContext::default();
    let e = s.authorize(&who("prn_ann"), Action::AppPush, &app("fld_3", "normal"), &ctx);
    assert!(e.allowed(), "{e:?}");
    assert_eq!(e.policies, vec!["role:builder"]);
    assert_eq!(e.grants[0].binding, "rb_1");
    assert_eq!(e.grants[0].folder, "/f0");
    assert!(!s.authorize(&who("prn_ann"), Action::AppPush, &app("fld_2", "normal"), &ctx).allowed(), "sibling");
    assert!(!s.authorize(&who("prn_ann"), Action::AppPush, &app("fld_root", "normal"), &ctx).allowed(), "parent");
    // Builders do not deploy.
    let e = s.authorize(&who("prn_ann"), Action::AppDeploy, &app("fld_3", "normal"), &ctx);
    assert!(!e.allowed());
    assert!(e.reason.contains("no role"), "{}", e.reason);
}

#[test]
fn groups_confer_their_roles_and_explanations_name_the_group() {
    let mut d = base();
    d.bindings = vec![bind("rb_g", "viewer", "fld_root", Subject::Group("grp_fin".into()))];
    let s = Snapshot::build(d).unwrap();
    let e = s.authorize(&who("prn_bob"), Action::AppRead, &app("fld_4", "normal"), &RequestContext::default());
    assert!(e.allowed(), "{e:?}");
    assert_eq!(e.grants[0].via_group.as_deref(), Some("finance"));
    assert!(
        !s.authorize(&who("prn_eve"), Action::AppRead, &app("fld_4", "normal"), &RequestContext::default()).allowed()
    );
}

#[test]
fn custom_roles_allow_exactly_their_actions() {
    let mut d = base();
    d.roles = vec![RoleData { name: "releaser".into(), actions: vec!["app.read".into(), "app.deploy".into()] }];
    d.bindings = vec![bind("rb_1", "releaser", "fld_1", Subject::Principal("prn_ann".into()))];
    let s = Snapshot::build(d).unwrap();
    let ctx = RequestContext::default();
    let e = s.authorize(&who("prn_ann"), Action::AppDeploy, &app("fld_1", "normal"), &ctx);
    assert!(e.allowed(), "{e:?}");
    assert_eq!(e.policies, vec!["role:releaser"]);
    assert!(!s.authorize(&who("prn_ann"), Action::AppPush, &app("fld_1", "normal"), &ctx).allowed());
    assert!(validate_role("releaser", &["app.read".into()]).is_ok());
    assert!(validate_role("builder", &["app.read".into()]).unwrap_err().to_string().contains("built-in"));
    assert!(validate_role("x", &["app.nuke".into()]).unwrap_err().to_string().contains("unknown action"));
    assert!(validate_role("Bad Name", &["app.read".into()]).is_err());
    assert!(validate_role("empty", &[]).is_err());
}

const PROD_MFA: &str = r#"forbid(principal, action == Gatehouse::Action::"app.deploy", resource)
  when { resource.sensitivity == "high" && !context.mfa };"#;
/// Written the way the validator wants (`has` before reading an optional attribute).
const CORP_NET: &str = r#"forbid(principal, action, resource)
  unless { context has source_ip && context.source_ip.isInRange(ip("10.0.0.0/8")) };"#;
/// The same without the `has` test: stored before validation existed, it errors without an address.
const CORP_NET_UNGUARDED: &str = r#"forbid(principal, action, resource)
  unless { context.source_ip.isInRange(ip("10.0.0.0/8")) };"#;

#[test]
fn guardrails_forbid_what_roles_allow() {
    let mut d = base();
    d.bindings = vec![bind("rb_1", "org-admin", "fld_root", Subject::Principal("prn_ann".into()))];
    d.guardrails = vec![GuardrailData { name: "prod-mfa".into(), policy: PROD_MFA.into() }];
    let s = Snapshot::build(d).unwrap();
    let no_mfa = RequestContext::default();
    let mfa = RequestContext { mfa: true, amr: vec!["otp".into()], authn: AuthMethod::Session, ..Default::default() };
    let e = s.authorize(&who("prn_ann"), Action::AppDeploy, &app("fld_1", "high"), &no_mfa);
    assert!(!e.allowed());
    assert_eq!(e.policies, vec!["guardrail:prod-mfa"]);
    assert!(e.reason.contains("forbidden by guardrail:prod-mfa"), "{}", e.reason);
    assert!(s.authorize(&who("prn_ann"), Action::AppDeploy, &app("fld_1", "high"), &mfa).allowed());
    assert!(s.authorize(&who("prn_ann"), Action::AppDeploy, &app("fld_1", "normal"), &no_mfa).allowed());
}

#[test]
fn a_guardrail_that_cannot_be_evaluated_denies() {
    let mut d = base();
    d.bindings = vec![bind("rb_1", "org-admin", "fld_root", Subject::Principal("prn_ann".into()))];
    d.guardrails = vec![GuardrailData { name: "corp-net".into(), policy: CORP_NET_UNGUARDED.into() }];
    let s = Snapshot::build(d).unwrap();
    let inside = RequestContext { source_ip: Some("10.1.2.3".parse().unwrap()), ..Default::default() };
    let outside = RequestContext { source_ip: Some("192.0.2.7".parse().unwrap()), ..Default::default() };
    assert!(s.authorize(&who("prn_ann"), Action::AppRead, &app("fld_1", "normal"), &inside).allowed());
    assert!(!s.authorize(&who("prn_ann"), Action::AppRead, &app("fld_1", "normal"), &outside).allowed());
    // Unknown source address: the guardrail errors, and an error denies rather than skipping it.
    let e = s.authorize(&who("prn_ann"), Action::AppRead, &app("fld_1", "normal"), &RequestContext::default());
    assert!(!e.allowed(), "{e:?}");
    assert!(!e.errors.is_empty());
}

#[test]
fn deactivated_principals_are_denied_whatever_they_hold() {
    let mut d = base();
    d.bindings = vec![bind("rb_1", "org-admin", "fld_root", Subject::Principal("prn_ann".into()))];
    let s = Snapshot::build(d).unwrap();
    let mut ann = who("prn_ann");
    ann.active = false;
    let e = s.authorize(&ann, Action::AppRead, &app("fld_1", "normal"), &RequestContext::default());
    assert!(!e.allowed());
    assert_eq!(e.policies, vec!["builtin:deactivated"]);
}

#[test]
fn principals_manage_themselves_without_a_role() {
    let s = Snapshot::build(base()).unwrap();
    let me = Resource {
        kind: ResourceKind::User,
        id: "prn_ann".into(),
        name: "ann".into(),
        folder: None,
        app: None,
        sensitivity: None,
    };
    let e = s.authorize(&who("prn_ann"), Action::PrincipalSelf, &me, &RequestContext::default());
    assert!(e.allowed(), "{e:?}");
    assert_eq!(e.policies, vec!["builtin:self"]);
    assert!(!s.authorize(&who("prn_eve"), Action::PrincipalSelf, &me, &RequestContext::default()).allowed());
}

#[test]
fn guardrails_are_checked_before_they_are_stored() {
    assert!(validate_guardrail("ok", PROD_MFA).is_ok());
    assert!(validate_guardrail("ok", CORP_NET).is_ok());
    let unguarded = validate_guardrail("u", CORP_NET_UNGUARDED).unwrap_err().to_string();
    assert!(unguarded.contains("source_ip"), "{unguarded}");
    let permit = validate_guardrail("p", "permit(principal, action, resource);").unwrap_err().to_string();
    assert!(permit.contains("can only forbid"), "{permit}");
    let typo = validate_guardrail(
        "t",
        r#"forbid(principal, action == Gatehouse::Action::"app.deploy", resource) when { resource.sensitivty == "high" };"#,
    )
    .unwrap_err()
    .to_string();
    assert!(typo.contains("sensitivty"), "{typo}");
    assert!(validate_guardrail("x", "forbid(").is_err());
    let two = "forbid(principal, action, resource); forbid(principal, action, resource);";
    assert!(validate_guardrail("two", two).is_err());
}

// Property: with random bindings over a random tree, an allow is always backed by a binding to
// the principal or one of its groups on the resource's folder or an ancestor whose role allows
// the action; and such a binding always allows when no guardrail is present.
proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn no_access_without_a_grant_on_the_resource_or_an_ancestor(
        binds in proptest::collection::vec((0usize..4, 0usize..6, 0usize..15, any::<bool>()), 0..12),
        members in proptest::collection::vec((0usize..4, 0usize..3), 0..6),
        asker in 0usize..4,
        target in 0usize..15,
        action in 0usize..Action::ALL.len(),
    ) {
        let folders = support::tree(3, 2); // 15 folders
        let roles = ["org-admin", "security-admin", "approver", "builder", "viewer", "auditor"];
        let bindings: Vec<BindingData> = binds.iter().enumerate().map(|(i, &(p, r, f, group))| bind(
            &format!("rb_{i}"),
            roles[r],
            &folders[f].id,
            if group { Subject::Group(format!("grp_{}", p % 3)) } else { Subject::Principal(format!("prn_{p}")) },
        )).collect();
        let memberships: Vec<(String, String)> =
            members.iter().map(|&(p, g)| (format!("prn_{p}"), format!("grp_{g}"))).collect();
        let d = SnapshotData {
            org_id: "org_p".into(),
            org_name: "p".into(),
            version: 1,
            folders: folders.clone(),
            groups: (0..3).map(|g| (format!("grp_{g}"), format!("g{g}"))).collect(),
            memberships: memberships.clone(),
            bindings: bindings.clone(),
            ..Default::default()
        };
        let s = Snapshot::build(d).unwrap();
        let action = Action::ALL[action];
        let kind = if action.resources().contains(&ResourceKind::App) { ResourceKind::App } else { ResourceKind::Folder };
        let resource = Resource {
            kind,
            id: if kind == ResourceKind::Folder { folders[target].id.clone() } else { "app_x".into() },
            name: "x".into(),
            folder: Some(folders[target].id.clone()),
            app: None,
            sensitivity: None,
        };
        let principal = format!("prn_{asker}");
        let e = s.authorize(&who(&principal), action, &resource, &RequestContext::default());

        let mut chain = vec![folders[target].id.clone()];
        let mut at = folders[target].parent.clone();
        while let Some(p) = at {
            chain.push(p.clone());
            at = folders.iter().find(|f| f.id == p).unwrap().parent.clone();
        }
        let holds = |subject: &Subject| match subject {
            Subject::Principal(p) => *p == principal,
            Subject::Group(g) => memberships.iter().any(|(p, mg)| *p == principal && mg == g),
        };
        let granted = action.resources().contains(&kind) && bindings.iter().any(|b| {
            holds(&b.subject)
                && chain.contains(&b.folder)
                && BuiltinRole::by_name(&b.role).unwrap().actions().contains(action)
        });
        prop_assert_eq!(e.allowed(), granted, "{:?}", e);
    }
}
