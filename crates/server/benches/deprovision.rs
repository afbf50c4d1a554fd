//! How long from an identity provider's SCIM deactivation to the user's refusal (report, not a
//! test): over real HTTP on loopback, for each of N users holding an API token and a session,
//! the time of the SCIM PATCH (`active=false`, Entra's shape) and of the next request with the
//! user's token (refused). On SQLite, and on PostgreSQL when GATEHOUSE_TEST_POSTGRES_URL is set.
//!
//! `cargo bench -p gatehouse-server --bench deprovision`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

#[path = "../tests/common/mod.rs"]
mod common;

use serde_json::json;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1e3
}

async fn run(backend: common::Backend, n: usize) {
    let t = common::app(backend).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = t.router.clone();
    tokio::spawn(async move { gatehouse_server::serve(listener, router, std::future::pending()).await.unwrap() });
    let http = reqwest::Client::new();
    let (_, st) = t.post("/api/v1/scim-tokens", t.admin(), json!({})).await;
    let st = st["token"].as_str().unwrap().to_owned();
    let limits =
        gatehouse_store::SessionLimits { idle: Duration::from_secs(3600), absolute: Duration::from_secs(7200) };
    let mut users = Vec::with_capacity(n);
    for i in 0..n {
        let res = http
            .post(format!("{base}/scim/v2/Users"))
            .bearer_auth(&st)
            .json(&json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": format!("u{i}@example.com")}))
            .send()
            .await
            .unwrap();
        let u: serde_json::Value = res.json().await.unwrap();
        let id = u["id"].as_str().unwrap().to_owned();
        let (_, tok) =
            t.post("/api/v1/tokens", t.admin(), json!({"name": "laptop", "scope": "read", "principal_id": id})).await;
        let record = t.store.get_principal(&t.boot.org.id, &id.parse().unwrap()).await.unwrap();
        let session = t
            .store
            .create_session(
                &record,
                "browser",
                &gatehouse_store::Claims::default(),
                limits,
                &gatehouse_store::testing::ctx(&t.boot.org.id),
            )
            .await
            .unwrap();
        users.push((id, tok["secret"].as_str().unwrap().to_owned(), session.secret));
    }
    let (mut scim, mut refused, mut total) = (Vec::new(), Vec::new(), Vec::new());
    for (id, token, session) in &users {
        let ok = http.get(format!("{base}/api/v1/whoami")).bearer_auth(token).send().await.unwrap();
        assert_eq!(ok.status().as_u16(), 200);
        let start = Instant::now();
        let res = http
            .patch(format!("{base}/scim/v2/Users/{id}"))
            .bearer_auth(&st)
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                          "Operations": [{"op": "Replace", "value": {"active": "False"}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let scim_done = start.elapsed();
        let next = http.get(format!("{base}/api/v1/whoami")).bearer_auth(token).send().await.unwrap();
        let end = start.elapsed();
        assert_eq!(next.status().as_u16(), 401, "the token outlived deprovisioning");
        let cookie = http
            .get(format!("{base}/api/v1/whoami"))
            .header("cookie", format!("gatehouse_session={session}"))
            .send()
            .await
            .unwrap();
        assert_eq!(cookie.status().as_u16(), 401, "the session outlived deprovisioning");
        scim.push(scim_done);
        refused.push(end - scim_done);
        total.push(end);
    }
    for v in [&mut scim, &mut refused, &mut total] {
        v.sort();
    }
    println!(
        "{backend:?}, {n} users: SCIM PATCH active=false p50 {:.2} ms p99 {:.2} ms; next request refused p50 {:.2} ms p99 {:.2} ms; \
         from sending the SCIM call to the refusal p50 {:.2} ms p99 {:.2} ms",
        pct(&scim, 0.5),
        pct(&scim, 0.99),
        pct(&refused, 0.5),
        pct(&refused, 0.99),
        pct(&total, 0.5),
        pct(&total, 0.99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    run(common::Backend::Sqlite, 200).await;
    if std::env::var_os("GATEHOUSE_TEST_POSTGRES_URL").is_some() {
        run(common::Backend::Postgres, 200).await;
    }
}
