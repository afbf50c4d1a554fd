//! Commit-time scanning through the HTTP API, on SQLite and PostgreSQL: every push is scanned in
//! the background, a planted secret blocks the release and its removal unblocks it, policy
//! levels follow the folder tree, suppressions need a reason, an expiry and the admin scope, and
//! no response or audit record ever carries the secret's value.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp, app, app_with, assert_problem, bundle, manifest};
use serde_json::{Value, json};

both_backends!(
    a_planted_secret_blocks_release_until_removed,
    policy_follows_the_folder_tree,
    suppressions_need_reason_expiry_and_admin,
    rescans_and_old_revisions,
    vulnerable_dependencies_block_with_an_advisory_index,
    dangerous_code_patterns_block,
    several_workers_scan_each_revision_once,
);

/// Canaries: credential-shaped values whose bytes must never come back from the API.
const STRIPE: &str = "sk_live_Q7vN3kPw2XrT5mYb7LcD4hFa";
const DB_PASSWORD: &str = "Zq8vN3kPw2XrT5mYb7";

/// Waits for the background worker to finish the revision's scan.
async fn scanned(t: &TestApp, app: &str, rev: &str) -> Value {
    for _ in 0..200 {
        let (s, v) = t.get(&format!("/api/v1/apps/{app}/revisions/{rev}/scan"), t.admin()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["verdict"] != "pending" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the scan of {app}@{rev} did not finish");
}

fn assert_no_canary(v: &Value) {
    let text = v.to_string();
    for canary in [STRIPE, &STRIPE[8..], DB_PASSWORD] {
        assert!(!text.contains(canary), "a secret value came back: {text}");
    }
}

async fn push(t: &TestApp, app: &str, files: &[(&str, &str)]) -> Value {
    let mut all = vec![("gatehouse.toml", manifest(app))];
    all.extend(files.iter().map(|(p, c)| (*p, (*c).to_owned())));
    if !files.iter().any(|(p, _)| *p == "server.js") {
        all.push(("server.js", "require('./app');\n".to_owned()));
    }
    let refs: Vec<(&str, &str)> = all.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let (s, v) = t.push(app, t.admin(), bundle(&refs)).await;
    assert!(s.is_success(), "{s} {v}");
    v
}

async fn a_planted_secret_blocks_release_until_removed(b: Backend) {
    let t = app(b).await;
    t.create_app("payouts").await;
    let leaked = format!("const stripe = require('stripe')('{STRIPE}');\nmodule.exports = stripe;\n");
    let v = push(
        &t,
        "payouts",
        &[("server.js", &leaked), ("lib/db.py", &format!("URL = 'postgres://svc:{DB_PASSWORD}@db/pay'\n"))],
    )
    .await;
    assert_no_canary(&v);
    let report = scanned(&t, "payouts", "head").await;
    assert_no_canary(&report);
    assert_eq!(report["verdict"], "blocked", "{report}");
    assert_eq!(report["scan"]["status"], "done");
    assert_eq!(report["block_at"], "high");
    assert_eq!(report["blocking"], 2);
    let f = report["findings"].as_array().unwrap();
    let stripe = f.iter().find(|f| f["rule_id"] == "stripe-live-key").unwrap();
    assert_eq!((stripe["path"].as_str(), stripe["line"].as_i64()), (Some("server.js"), Some(1)));
    assert_eq!((stripe["severity"].as_str(), stripe["blocking"].as_bool()), (Some("critical"), Some(true)));
    assert!(stripe["fingerprint"].as_str().unwrap().starts_with("hmac-sha256:"));
    assert!(f.iter().any(|f| f["rule_id"] == "database-url-password" && f["path"] == "lib/db.py"));
    assert!(report["scan"]["files_scanned"].as_i64().unwrap() >= 3);

    // The same app with the secrets moved out of the code: the new revision passes.
    let fixed = "const stripe = require('stripe')(process.env.STRIPE_KEY);\nmodule.exports = stripe;\n";
    push(&t, "payouts", &[("server.js", fixed), ("lib/db.py", "import os\nURL = os.environ['DATABASE_URL']\n")]).await;
    let report = scanned(&t, "payouts", "head").await;
    assert_eq!(report["verdict"], "pass", "{report}");
    assert_eq!(report["findings"], json!([]));
    // The old revision is still blocked: verdicts are per revision.
    assert_eq!(scanned(&t, "payouts", "1").await["verdict"], "blocked");

    // The scans are in the audit log, by the scanner, with counts and no values.
    let (_, records) = t.get("/api/v1/audit/events?action=app.revision.scan&limit=100", t.admin()).await;
    assert_no_canary(&records);
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(
        (records[0]["actor"]["id"].as_str(), records[0]["actor"]["name"].as_str()),
        (Some("gatehouse"), Some("scanner"))
    );
    let counts: Vec<i64> = records.iter().map(|r| r["details"]["findings"].as_i64().unwrap()).collect();
    assert!(counts.contains(&2) && counts.contains(&0), "{counts:?}");
}

async fn policy_follows_the_folder_tree(b: Backend) {
    let t = app(b).await;
    let (_, finance) = t.post("/api/v1/folders", t.admin(), json!({"name": "finance"})).await;
    let (_, sandbox) = t.post("/api/v1/folders", t.admin(), json!({"name": "sandbox", "parent": finance["id"]})).await;
    let (s, v) = t.post("/api/v1/apps", t.admin(), json!({"name": "forecast", "folder": sandbox["id"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A medium finding (a generic password assignment): a warning under the default policy.
    push(&t, "forecast", &[("settings.py", "SMTP_PASSWORD = \"Correct-Horse-Battery-9\"\n")]).await;
    let r = scanned(&t, "forecast", "head").await;
    assert_eq!(
        (r["verdict"].as_str(), r["warnings"].as_i64(), r["policy_source"].as_str()),
        (Some("pass"), Some(1), Some("default"))
    );

    let set = |path: String, level: Value| {
        let t = &t;
        async move { t.call(Method::PUT, &path, Some(t.admin()), Some(json!({ "block_at": level }))).await }
    };
    // The org blocks at medium: now it blocks.
    let (s, v) = set("/api/v1/scan-policy".into(), json!("medium")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = scanned(&t, "forecast", "head").await;
    assert_eq!((r["verdict"].as_str(), r["policy_source"].as_str()), (Some("blocked"), Some("org")));
    // finance relaxes to critical: inherited by sandbox below it.
    let fin = finance["id"].as_str().unwrap();
    set(format!("/api/v1/folders/{fin}/scan-policy"), json!("critical")).await;
    let r = scanned(&t, "forecast", "head").await;
    assert_eq!((r["verdict"].as_str(), r["policy_source"].as_str()), (Some("pass"), Some("/finance")));
    // sandbox itself tightens to low: the nearest folder wins.
    let sb = sandbox["id"].as_str().unwrap();
    set(format!("/api/v1/folders/{sb}/scan-policy"), json!("low")).await;
    let r = scanned(&t, "forecast", "head").await;
    assert_eq!((r["verdict"].as_str(), r["policy_source"].as_str()), (Some("blocked"), Some("/finance/sandbox")));
    let (_, p) = t.get("/api/v1/scan-policy", t.admin()).await;
    assert_eq!(p["org_block_at"], "medium");
    assert_eq!(p["folders"].as_array().unwrap().len(), 2, "{p}");
    // Clearing the override falls back to finance's.
    set(format!("/api/v1/folders/{sb}/scan-policy"), Value::Null).await;
    assert_eq!(scanned(&t, "forecast", "head").await["verdict"], "pass");

    // Bad levels and non-admins are refused.
    let (s, v) = set("/api/v1/scan-policy".into(), json!("severe")).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let writer = token(&t, "writer@operator.example", "write").await;
    let (s, v) = t.call(Method::PUT, "/api/v1/scan-policy", Some(&writer), Some(json!({"block_at": "critical"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
}

async fn token(t: &TestApp, email: &str, scope: &str) -> String {
    let (_, p) =
        t.post("/api/v1/principals", t.admin(), json!({"kind": "user", "name": email, "max_scope": scope})).await;
    let (_, tok) =
        t.post("/api/v1/tokens", t.admin(), json!({"name": "t", "scope": scope, "principal_id": p["id"]})).await;
    tok["secret"].as_str().unwrap().to_owned()
}

async fn suppressions_need_reason_expiry_and_admin(b: Backend) {
    let t = app(b).await;
    t.create_app("ledger").await;
    push(&t, "ledger", &[("server.js", &format!("const key = '{STRIPE}';\n"))]).await;
    let r = scanned(&t, "ledger", "head").await;
    assert_eq!(r["verdict"], "blocked");
    let fp = r["findings"][0]["fingerprint"].as_str().unwrap().to_owned();

    let url = "/api/v1/apps/ledger/suppressions";
    let writer = token(&t, "dev@operator.example", "write").await;
    let good = json!({"fingerprint": fp, "reason": "test-mode key in a fixture; rotated", "expires_in_days": 14});
    let (s, _) = t.post(url, &writer, good.clone()).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a builder cannot waive their own finding");
    for bad in [
        json!({"fingerprint": fp, "reason": "ok", "expires_in_days": 14}),
        json!({"fingerprint": fp, "reason": "a long enough reason", "expires_in_days": 0}),
        json!({"fingerprint": fp, "reason": "a long enough reason", "expires_in_days": 91}),
        json!({"reason": "a long enough reason", "expires_in_days": 5}),
        json!({"fingerprint": fp, "rule_id": "x", "reason": "a long enough reason", "expires_in_days": 5}),
        json!({"fingerprint": fp, "reason": "a long enough reason"}),
    ] {
        let (s, v) = t.post(url, t.admin(), bad.clone()).await;
        assert!(s == StatusCode::UNPROCESSABLE_ENTITY || s == StatusCode::BAD_REQUEST, "{bad}: {s} {v}");
    }
    let (s, sup) = t.post(url, t.admin(), good).await;
    assert_eq!(s, StatusCode::CREATED, "{sup}");
    let r = scanned(&t, "ledger", "head").await;
    assert_eq!((r["verdict"].as_str(), r["suppressed"].as_i64()), (Some("pass"), Some(1)), "{r}");
    assert_eq!(r["findings"][0]["suppressed_by"], sup["id"]);

    // The same secret pushed again in another file stays suppressed (the fingerprint is the value's).
    push(&t, "ledger", &[("server.js", "x"), ("jobs/sync.js", &format!("\n\nconst k = \"{STRIPE}\";\n"))]).await;
    assert_eq!(scanned(&t, "ledger", "head").await["verdict"], "pass");

    // Revoked: blocks again at once, and the decision and its reversal are audited.
    let id = sup["id"].as_str().unwrap();
    let (s, v) = t.call(Method::DELETE, &format!("{url}/{id}"), Some(t.admin()), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["revoked_at"].is_number() || v["revoked_at"].is_string(), "{v}");
    assert_eq!(scanned(&t, "ledger", "head").await["verdict"], "blocked");
    let (s, v) = t.call(Method::DELETE, &format!("{url}/{id}"), Some(t.admin()), None).await;
    assert_problem(s, &v, StatusCode::CONFLICT, "conflict");
    let (_, records) = t.get("/api/v1/audit/events?limit=200", t.admin()).await;
    let actions: Vec<&str> = records.as_array().unwrap().iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"app.suppression.create") && actions.contains(&"app.suppression.revoke"));
    let created = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "app.suppression.create" && r["outcome"] == "success")
        .unwrap();
    // The builder's attempt to waive it was refused and recorded as such.
    assert!(records.as_array().unwrap().iter().any(|r| r["action"] == "app.suppression.create"
        && r["outcome"] == "denied"
        && r["actor"]["name"] == "dev@operator.example"));
    assert_eq!(created["details"]["reason"], "test-mode key in a fixture; rotated", "{created}");
    assert_no_canary(&records);

    // An expired suppression no longer applies.
    let (_, sup2) =
        t.post(url, t.admin(), json!({"fingerprint": fp, "reason": "short-lived waiver", "expires_in_days": 1})).await;
    assert_eq!(scanned(&t, "ledger", "head").await["verdict"], "pass");
    let expire =
        format!("UPDATE scan_suppressions SET expires_at = 1000 WHERE id = '{}'", sup2["id"].as_str().unwrap());
    t.store.raw_sql_for_test(&expire).await.unwrap();
    assert_eq!(scanned(&t, "ledger", "head").await["verdict"], "blocked");
    let (_, list) = t.get(url, t.admin()).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
}

async fn rescans_and_old_revisions(b: Backend) {
    let t = app(b).await;
    t.create_app("hr").await;
    push(&t, "hr", &[("a.py", "print('hello')\n")]).await;
    assert_eq!(scanned(&t, "hr", "head").await["verdict"], "pass");
    // A scan that failed (simulated: the worker gave up) is an error verdict, never a pass.
    t.store.raw_sql_for_test("UPDATE scans SET status = 'failed', error = 'boom'").await.unwrap();
    let r = scanned(&t, "hr", "head").await;
    assert_eq!((r["verdict"].as_str(), r["scan"]["error"].as_str()), (Some("error"), Some("boom")));
    // A rescan queues it again and the worker finishes it.
    let (s, v) = t.post("/api/v1/apps/hr/revisions/head/scan", t.admin(), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let r = scanned(&t, "hr", "head").await;
    assert_eq!((r["verdict"].as_str(), r["scan"]["attempts"].as_i64()), (Some("pass"), Some(1)), "{r}");
    let (s, v) = t.get("/api/v1/apps/hr/revisions/99/scan", t.admin()).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");

    // A scan that failed an attempt and went back to the queue waits before it is retried
    // (30 s per attempt), instead of being retried at once in a loop.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    t.store
        .raw_sql_for_test(&format!("UPDATE scans SET status = 'queued', attempts = 1, started_at = {now}"))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let (_, r) = t.get("/api/v1/apps/hr/revisions/head/scan", t.admin()).await;
    assert_eq!(r["verdict"], "pending", "retried inside its back-off: {r}");
    t.store.raw_sql_for_test("UPDATE scans SET started_at = 0").await.unwrap();
    let r = scanned(&t, "hr", "head").await;
    assert_eq!((r["verdict"].as_str(), r["scan"]["attempts"].as_i64()), (Some("pass"), Some(2)), "{r}");
}

async fn vulnerable_dependencies_block_with_an_advisory_index(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("GHSA-p6mc-m468-83gw.json"),
        r#"{"id":"GHSA-p6mc-m468-83gw","summary":"Prototype Pollution in lodash","database_specific":{"severity":"HIGH"},
            "affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.20"}]}]}]}"#,
    )
    .unwrap();
    let index = dir.path().join("osv.jsonl.gz");
    gatehouse_scan::AdvisoryDb::import(&index, &[dir.path().join("GHSA-p6mc-m468-83gw.json")]).unwrap();
    let mut config = TestApp::config_default();
    config.scan.advisories = Some(index);
    let t = app_with(b, config).await;
    t.create_app("web").await;
    let lock = |v: &str| format!(r#"{{"lockfileVersion":3,"packages":{{"node_modules/lodash":{{"version":"{v}"}}}}}}"#);
    let pkg = r#"{"dependencies":{"lodash":"^4.17.0"}}"#;
    push(&t, "web", &[("package.json", pkg), ("package-lock.json", &lock("4.17.15"))]).await;
    let r = scanned(&t, "web", "head").await;
    assert_eq!(r["verdict"], "blocked", "{r}");
    let f = &r["findings"][0];
    assert_eq!(
        (f["kind"].as_str(), f["rule_id"].as_str(), f["path"].as_str()),
        (Some("dependency"), Some("GHSA-p6mc-m468-83gw"), Some("package-lock.json"))
    );
    assert!(r["scan"]["scanner"].as_str().unwrap().contains("1 advisories"), "{r}");
    push(&t, "web", &[("package.json", pkg), ("package-lock.json", &lock("4.17.21"))]).await;
    assert_eq!(scanned(&t, "web", "head").await["verdict"], "pass");

    // A new advisory imported while the server runs is used at the next scan, without a restart.
    std::fs::write(
        dir.path().join("GHSA-new.json"),
        r#"{"id":"GHSA-new","summary":"newly found","database_specific":{"severity":"CRITICAL"},
            "affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"4.17.21"},{"fixed":"4.17.22"}]}]}]}"#,
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    gatehouse_scan::AdvisoryDb::import(&dir.path().join("osv.jsonl.gz"), &[dir.path().join("GHSA-new.json")]).unwrap();
    let (s, _) = t.post("/api/v1/apps/web/revisions/head/scan", t.admin(), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let r = scanned(&t, "web", "head").await;
    assert_eq!(
        (r["verdict"].as_str(), r["findings"][0]["rule_id"].as_str()),
        (Some("blocked"), Some("GHSA-new")),
        "{r}"
    );
    assert!(r["scan"]["scanner"].as_str().unwrap().contains("2 advisories"), "{r}");
}

async fn dangerous_code_patterns_block(b: Backend) {
    let t = app(b).await;
    t.create_app("calc").await;
    let code = "const express = require('express');\n// eval(x) in a comment is fine\n\
                app.post('/calc', (req, res) => res.json(eval(req.body.expr)));\n";
    push(&t, "calc", &[("server.js", code)]).await;
    let r = scanned(&t, "calc", "head").await;
    assert_eq!(r["verdict"], "blocked", "{r}");
    let f = &r["findings"][0];
    assert_eq!(
        (f["kind"].as_str(), f["rule_id"].as_str(), f["line"].as_i64()),
        (Some("code"), Some("js-eval"), Some(3))
    );
    push(&t, "calc", &[("server.js", "app.post('/calc', (req, res) => res.json(evaluate(req.body.expr)));\n")]).await;
    assert_eq!(scanned(&t, "calc", "head").await["verdict"], "pass");
}

async fn several_workers_scan_each_revision_once(b: Backend) {
    let mut config = TestApp::config_default();
    config.scan.workers = 4;
    let t = app_with(b, config).await;
    for app in ["w1", "w2", "w3"] {
        t.create_app(app).await;
        for n in 0..3 {
            push(&t, app, &[("lib.py", &format!("VALUE = {n}\n"))]).await;
        }
    }
    for app in ["w1", "w2", "w3"] {
        for rev in ["1", "2", "3"] {
            let r = scanned(&t, app, rev).await;
            assert_eq!(
                (r["verdict"].as_str(), r["scan"]["attempts"].as_i64()),
                (Some("pass"), Some(1)),
                "{app}@{rev}: {r}"
            );
        }
    }
    let (_, records) = t.get("/api/v1/audit/events?action=app.revision.scan&limit=100", t.admin()).await;
    assert_eq!(records.as_array().unwrap().len(), 9, "each revision scanned exactly once");
}
