//! Authorization decision latency (report, not a test): 10,000 role bindings, 1,000 groups and
//! 100,000 apps in a 6-deep folder tree, with three guardrails.
//!
//! `cargo bench -p gatehouse-authz --bench decide`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use gatehouse_authz::{
    Action, AuthMethod, GuardrailData, PrincipalKind, RequestContext, Resource, ResourceKind, Snapshot, Who,
};
use support::Lcg;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

fn main() {
    let users = 20_000;
    let mut data = support::large_org(users, 1_000, 50, 10_000);
    data.guardrails = vec![
        GuardrailData {
            name: "prod-deploy-needs-mfa".into(),
            policy: r#"forbid(principal, action == Gatehouse::Action::"app.deploy", resource) when { resource.sensitivity == "high" && !context.mfa };"#.into(),
        },
        GuardrailData {
            name: "corp-network".into(),
            policy: r#"forbid(principal, action, resource) when { context has source_ip && !context.source_ip.isInRange(ip("10.0.0.0/8")) && !context.source_ip.isLoopback() };"#.into(),
        },
        GuardrailData {
            name: "contractors-no-secrets".into(),
            policy: r#"forbid(principal in Gatehouse::Group::"grp_7", action == Gatehouse::Action::"secret.write", resource);"#.into(),
        },
    ];
    let leaves: Vec<String> =
        data.folders.iter().filter(|f| f.path.matches('/').count() == 6).map(|f| f.id.clone()).collect();
    let t = Instant::now();
    let snap = Snapshot::build(data).unwrap();
    println!(
        "snapshot build: {:.1} ms (19,531 folders, 10,000 bindings, 1,000 groups, 50,000 memberships)",
        t.elapsed().as_secs_f64() * 1e3
    );

    let apps: Vec<Resource> = (0..100_000)
        .map(|i| Resource {
            kind: ResourceKind::App,
            id: format!("app_{i}"),
            name: format!("app-{i}"),
            folder: Some(leaves[i % leaves.len()].clone()),
            app: None,
            sensitivity: Some(if i % 10 == 0 { "high" } else { "normal" }.into()),
        })
        .collect();
    let actions = [Action::AppRead, Action::AppPush, Action::AppDeploy, Action::AppUpdate];
    let ctx = RequestContext {
        mfa: true,
        amr: vec!["pwd".into(), "otp".into()],
        acr: None,
        authn: AuthMethod::Session,
        source_ip: Some("10.1.2.3".parse().unwrap()),
    };
    // Principals that hold at least one binding, so most decisions reach Cedar.
    let mut rng = Lcg(7);
    let n = 200_000;
    let mut all = Vec::with_capacity(n);
    let mut allowed = Vec::new();
    let mut cedar = Vec::new();
    for _ in 0..n {
        let who =
            Who { id: format!("prn_{}", rng.next(users)), kind: PrincipalKind::User, name: "u".into(), active: true };
        let app = &apps[rng.next(apps.len())];
        let action = actions[rng.next(actions.len())];
        let t = Instant::now();
        let e = snap.authorize(&who, action, app, &ctx);
        let d = t.elapsed();
        std::hint::black_box(&e);
        all.push(d);
        if e.allowed() {
            allowed.push(d);
        }
        if !e.policies.is_empty() || e.allowed() {
            cedar.push(d);
        }
    }
    for (label, v) in [("all decisions", &mut all), ("allowed", &mut allowed), ("evaluated by Cedar", &mut cedar)] {
        v.sort();
        println!(
            "{label:>20}: n={:>6}  p50 {:>6.2} µs  p99 {:>6.2} µs  max {:>8.1} µs",
            v.len(),
            pct(v, 0.5),
            pct(v, 0.99),
            v.last().map(|d| d.as_secs_f64() * 1e6).unwrap_or(0.0)
        );
    }
}
