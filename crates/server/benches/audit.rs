//! Audit log figures, on SQLite and on PostgreSQL (report, not a test):
//!
//! 1. durable events per second through the real HTTP intake (`POST /api/v1/audit/events`,
//!    group commit), 16 clients sending batches of 50, with request latency p50/p99;
//! 2. the latency an audited change adds: p50/p99 of a one-event durable append against a
//!    same-shaped transaction without an audit record (an export-cursor upsert), sequentially;
//! 3. verification speed: records per second through `verify_org` from the database, and
//!    through the pure verifier over 1,000,000 records in memory.
//!
//! `cargo bench -p gatehouse-server --bench audit` (PostgreSQL from GATEHOUSE_TEST_POSTGRES_URL, in a fresh
//! schema).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

// The API tests' setup (fresh store, bootstrapped operator org, vault and audit keys).
#[path = "../tests/common/mod.rs"]
mod common;

use gatehouse_server::audit::{AuditKeys, checkpoint_once, verify_org};
use gatehouse_store::Store;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

async fn http_intake(t: &common::TestApp) -> (f64, f64, f64, f64, f64) {
    let (store, boot) = (t.store.clone(), &t.boot);
    let router = t.router.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { gatehouse_server::serve(listener, router, std::future::pending()).await.unwrap() });
    let client = reqwest::Client::new();
    let token = boot.token.secret.clone();
    let events: Vec<serde_json::Value> = (0..50)
        .map(|i| {
            serde_json::json!({"action": "integration.call", "resource": {"kind": "integration", "id": "crm", "path": null},
                "outcome": "success", "details": {"i": i, "operation": "GET /accounts"}})
        })
        .collect();
    let body = serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap();
    let run = |path: &'static str, post: bool| {
        let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
        async move {
            let deadline = Instant::now() + Duration::from_secs(5);
            let mut tasks = Vec::new();
            for _ in 0..16 {
                let (client, url, token, body) = (client.clone(), url.clone(), token.clone(), body.clone());
                tasks.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    while Instant::now() < deadline {
                        let t = Instant::now();
                        let req = if post {
                            client
                                .post(format!("{url}{path}"))
                                .bearer_auth(&token)
                                .header("content-type", "application/json")
                                .body(body.clone())
                        } else {
                            client.get(format!("{url}{path}"))
                        };
                        let res = req.send().await.unwrap();
                        assert!(res.status().is_success(), "{}", res.status());
                        lat.push(t.elapsed());
                    }
                    lat
                }));
            }
            let mut lat = Vec::new();
            for t in tasks {
                lat.extend(t.await.unwrap());
            }
            lat.sort();
            lat
        }
    };
    let floor = run("/healthz", false).await;
    let before = store.audit_head(&boot.org.id).await.unwrap().seq;
    let start = Instant::now();
    let lat = run("/api/v1/audit/events", true).await;
    let secs = start.elapsed().as_secs_f64();
    let after = store.audit_head(&boot.org.id).await.unwrap().seq;
    ((after - before) as f64 / secs, pct(&lat, 0.5), pct(&lat, 0.99), pct(&floor, 0.5), pct(&floor, 0.99))
}

async fn added_latency(store: &Store) -> (f64, f64, f64, f64) {
    let org = store.operator_org().await.unwrap().id;
    let ctx = gatehouse_store::AuditCtx::system(&org, "bench");
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for i in 0..2000 {
        let e = ctx.event("app.update", gatehouse_store::resource("app", "app_bench"), serde_json::json!({"i": i}));
        let t = Instant::now();
        store.append_audit(vec![e]).await.unwrap();
        with.push(t.elapsed());
        let t = Instant::now();
        store.export_delivered(&org, "bench-baseline", i).await.unwrap();
        without.push(t.elapsed());
    }
    with.sort();
    without.sort();
    (pct(&with, 0.5), pct(&with, 0.99), pct(&without, 0.5), pct(&without, 0.99))
}

async fn verification(store: &Store, keys: &AuditKeys) -> (u64, f64) {
    let org = store.operator_org().await.unwrap().id;
    let mut waiting = Default::default();
    checkpoint_once(store, keys, 1000, Duration::ZERO, &mut waiting).await.unwrap();
    let t = Instant::now();
    let report = verify_org(store, &keys.verifying_key(), &org, None, None).await.unwrap().unwrap();
    (report.records, report.records as f64 / t.elapsed().as_secs_f64())
}

fn pure_verification() -> f64 {
    use gatehouse_core::audit::*;
    let signer = gatehouse_audit::CheckpointSigner::from_seed(&[3; 32]);
    let org = gatehouse_core::OrgId::generate();
    let mut prev = gatehouse_audit::GENESIS;
    let mut records = Vec::with_capacity(1_000_000);
    let mut cps = Vec::new();
    let mut pending = Vec::new();
    for i in 1..=1_000_000u64 {
        let d = AuditDraft {
            org_id: org.clone(),
            actor: Actor {
                who: ActorRef { kind: ActorKind::Service, id: "prn_x".into(), name: "etl".into() },
                on_behalf_of: vec![],
            },
            action: "integration.call".into(),
            resource: ResourceRef { kind: "integration".into(), id: "crm".into(), path: None },
            outcome: Outcome::Success,
            reason: None,
            request_id: Some("r".into()),
            source: Some("10.0.0.1".into()),
            user_agent: None,
            details: serde_json::json!({"i": i}),
        };
        let r =
            gatehouse_audit::chain(d, i, gatehouse_core::Timestamp::from_millis(1_700_000_000_000 + i as i64), &prev);
        prev = hex::decode(&r.hash).unwrap().try_into().unwrap();
        pending.push(prev);
        if i % 1000 == 0 {
            cps.push(signer.sign(&org, i - 999, &pending, gatehouse_core::Timestamp::now()).unwrap());
            pending.clear();
        }
        records.push(r);
    }
    let t = Instant::now();
    let report = gatehouse_audit::verify(&records, &cps, &signer.verifying_key(), &gatehouse_audit::GENESIS).unwrap();
    assert_eq!(report.records, 1_000_000);
    1_000_000.0 / t.elapsed().as_secs_f64()
}

async fn engine(name: &str, backend: common::Backend) {
    let t = common::app(backend).await;
    let (rate, p50, p99, f50, f99) = http_intake(&t).await;
    println!(
        "{name}: HTTP intake, 16 clients × 50-event batches: {rate:.0} durable events/s; request p50 {p50:.2} ms p99 {p99:.2} ms (GET /healthz floor p50 {f50:.2} ms p99 {f99:.2} ms)"
    );
    let (w50, w99, o50, o99) = added_latency(&t.store).await;
    println!(
        "{name}: one-event durable append p50 {w50:.3} ms p99 {w99:.3} ms vs same-shaped commit without audit p50 {o50:.3} ms p99 {o99:.3} ms → added p50 {:.3} ms p99 {:.3} ms",
        w50 - o50,
        w99 - o99
    );
    let keys = AuditKeys::open_or_create(t.config.audit.key_file.as_ref().unwrap()).unwrap();
    let (n, vrate) = verification(&t.store, &keys).await;
    println!("{name}: verify_org over {n} stored records: {vrate:.0} records/s");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        engine("sqlite", common::Backend::Sqlite).await;
        assert!(
            std::env::var("GATEHOUSE_TEST_POSTGRES_URL").is_ok(),
            "set GATEHOUSE_TEST_POSTGRES_URL (bench/run.sh does)"
        );
        engine("postgres", common::Backend::Postgres).await;
    });
    println!("pure verifier, 1,000,000 records with a checkpoint every 1000: {:.0} records/s", pure_verification());
}
