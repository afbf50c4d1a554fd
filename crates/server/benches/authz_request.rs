//! What authorization adds to an API request (report, not a test): `GET /api/v1/apps/{app}`
//! through the whole router on SQLite, against the authorization decision it contains, made
//! the same way the handler makes it (snapshot lookup with the version check, then the decision).
//!
//! `cargo bench -p gatehouse-server --bench authz_request`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use gatehouse_authz::Action;
use gatehouse_server::authz::{explain, resource};
use serde_json::json;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let t = common::app(common::Backend::Sqlite).await;
    let admin = t.admin().to_owned();
    // A realistic shape: a few levels of folders, groups with grants, a guardrail.
    let mut parent: Option<String> = None;
    for depth in 0..5 {
        let (_, f) =
            t.post("/api/v1/folders", &admin, json!({"name": format!("level{depth}"), "parent": parent})).await;
        parent = Some(f["id"].as_str().unwrap().to_owned());
    }
    let (s, _) = t.post("/api/v1/apps", &admin, json!({"name": "ledger", "folder": parent})).await;
    assert!(s.is_success());
    for g in 0..20 {
        let (_, grp) = t.post("/api/v1/groups", &admin, json!({"name": format!("group-{g}")})).await;
        t.post("/api/v1/role-bindings", &admin, json!({"role": "viewer", "folder": "/level0", "group_id": grp["id"]}))
            .await;
    }
    t.call(
        axum::http::Method::PUT,
        "/api/v1/guardrails/high-needs-mfa",
        Some(&admin),
        Some(json!({"policy": "forbid(principal, action == Gatehouse::Action::\"app.push\", resource) when { resource.sensitivity == \"high\" && !context.mfa };"})),
    )
    .await;

    let n = 3000;
    let mut requests = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let (s, _) = t.get("/api/v1/apps/ledger", &admin).await;
        requests.push(start.elapsed());
        assert!(s.is_success());
    }
    let principal = t.store.authenticate(&admin).await.unwrap().unwrap();
    let app = t.store.app_by_name(&principal.org_id, "ledger").await.unwrap();
    let res = resource::app(&app);
    let mut decisions = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        let e =
            explain(&t.state.authz, &t.store, &principal, Action::AppRead, &res, Some("127.0.0.1:5000")).await.unwrap();
        decisions.push(start.elapsed());
        assert!(e.allowed());
    }
    requests.sort();
    decisions.sort();
    println!(
        "GET /api/v1/apps/ledger (SQLite, in-process router): p50 {:.1} µs  p99 {:.1} µs",
        pct(&requests, 0.5),
        pct(&requests, 0.99)
    );
    println!(
        "its authorization (snapshot check + decision):     p50 {:.1} µs  p99 {:.1} µs  ({:.1}% of the request at p50)",
        pct(&decisions, 0.5),
        pct(&decisions, 0.99),
        100.0 * pct(&decisions, 0.5) / pct(&requests, 0.5)
    );
}
