//! The audit log through the HTTP API, on SQLite and on PostgreSQL: every change and refusal
//! recorded, auditors confined to the log, tampering named, exports verified offline, retention,
//! and refusal of changes when the log cannot be written.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Backend, TestApp, app, assert_problem, bundle, manifest};
use gatehouse_server::audit::AuditKeys;
use gatehouse_store::Engine;
use serde_json::{Value, json};

both_backends!(
    every_mutating_route_leaves_a_record,
    refusals_are_recorded_with_a_keyed_token_hash,
    auditors_read_the_log_and_nothing_else,
    search_filters_and_pages,
    tamper_matrix_names_the_first_bad_record,
    exports_verify_offline_and_show_edits,
    retention_keeps_the_chain_verifiable,
    changes_are_refused_when_the_log_cannot_be_written,
    app_events_keep_sensitive_values_as_hmacs,
);

#[tokio::test]
async fn postgres_retention_drops_whole_partitions() {
    let t = signed_log(Backend::Postgres, 25).await;
    // Move the records 100 days back, into that month's partition (as time would).
    let month: String = {
        let days_ago =
            gatehouse_core::Timestamp::from_millis(gatehouse_core::Timestamp::now().as_millis() - 100 * 86_400_000);
        days_ago.to_string()[..7].to_owned()
    };
    sql(&t, &format!("SELECT gatehouse_audit_partition(date '{month}-01')")).await;
    unguard(&t).await;
    sql(&t, "UPDATE audit_events SET time = time - 100 * 86400000::bigint").await;
    sql(&t, "CREATE TRIGGER audit_events_guard BEFORE UPDATE OR DELETE ON audit_events FOR EACH ROW EXECUTE FUNCTION gatehouse_audit_guard()").await;
    let partition = format!("audit_events_p{}", month.replace('-', ""));
    let count = |t: &TestApp, p: String| {
        let store = t.store.clone();
        async move { store.raw_sql_for_test(&format!("SELECT 1 FROM pg_class WHERE relname = '{p}'")).await.unwrap() }
    };
    assert_eq!(count(&t, partition.clone()).await, 1);
    let removed = gatehouse_server::audit::prune_once(&t.store, Duration::from_secs(30 * 86_400)).await.unwrap();
    assert_eq!(removed, 25);
    assert_eq!(count(&t, partition).await, 0, "the partition was dropped whole");
    let head = t.store.audit_head(&t.boot.org.id).await.unwrap();
    assert_eq!(head.anchor_seq, 25);
    t.post("/api/v1/folders", t.admin(), json!({"name": "after"})).await;
    let v = verify(&t).await;
    assert_eq!((v["ok"].as_bool(), v["first_seq"].as_u64()), (Some(true), Some(26)), "{v}");
}

fn keys(t: &TestApp) -> AuditKeys {
    AuditKeys::open_or_create(t.config.audit.key_file.as_ref().unwrap()).unwrap()
}

async fn all_records(t: &TestApp, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let (s, page) = t.get(&format!("/api/v1/audit/events?limit=1000&after={after}"), token).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            return out;
        }
        after = page.last().unwrap()["seq"].as_u64().unwrap();
        out.extend(page);
    }
}

async fn verify(t: &TestApp) -> Value {
    let (s, v) = t.get("/api/v1/audit/verify", t.admin()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

fn mutating_operations() -> BTreeSet<(String, String)> {
    let doc = gatehouse_server::openapi();
    let mut ops = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (m, op) in [("POST", &item.post), ("PUT", &item.put), ("PATCH", &item.patch), ("DELETE", &item.delete)] {
            if op.is_some() {
                ops.insert((m.to_owned(), path.clone()));
            }
        }
    }
    ops
}

async fn every_mutating_route_leaves_a_record(b: Backend) {
    let t = app(b).await;
    let admin = t.admin().to_owned();
    // Each mutating operation done once, successfully, with the action its record must carry.
    let mut done: BTreeMap<(String, String), &str> = BTreeMap::new();
    let mut ok = |m: &str, p: &str, action: &'static str, s: StatusCode, v: &Value| {
        assert!(s.is_success(), "{m} {p}: {s} {v}");
        done.insert((m.to_owned(), p.to_owned()), action);
    };
    let (s, v) = t.post("/api/v1/orgs", &admin, json!({"name": "tenant", "admin_email": "boss@tenant.example"})).await;
    ok("POST", "/api/v1/orgs", "org.create", s, &v);
    let (s, f) = t.post("/api/v1/folders", &admin, json!({"name": "finance"})).await;
    ok("POST", "/api/v1/folders", "folder.create", s, &f);
    let fid = f["id"].as_str().unwrap().to_owned();
    let (s, v) =
        t.call(Method::PATCH, &format!("/api/v1/folders/{fid}"), Some(&admin), Some(json!({"name": "fin"}))).await;
    ok("PATCH", "/api/v1/folders/{id}", "folder.update", s, &v);
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/folders/{fid}"), Some(&admin), None).await;
    ok("DELETE", "/api/v1/folders/{id}", "folder.delete", s, &v);
    let (s, v) = t.post("/api/v1/apps", &admin, json!({"name": "ledger"})).await;
    ok("POST", "/api/v1/apps", "app.create", s, &v);
    let (s, v) = t.call(Method::PATCH, "/api/v1/apps/ledger", Some(&admin), Some(json!({"description": "d"}))).await;
    ok("PATCH", "/api/v1/apps/{app}", "app.update", s, &v);
    let (s, v) = t.push("ledger", &admin, bundle(&[("gatehouse.toml", &manifest("ledger")), ("server.js", "1")])).await;
    ok("POST", "/api/v1/apps/{app}/revisions", "app.revision.push", s, &v);
    let (s, v) = t.post("/api/v1/apps/ledger/revisions/head/scan", &admin, json!({})).await;
    ok("POST", "/api/v1/apps/{app}/revisions/{rev}/scan", "app.revision.rescan", s, &v);
    let (s, v) = t.call(Method::PUT, "/api/v1/scan-policy", Some(&admin), Some(json!({"block_at": "medium"}))).await;
    ok("PUT", "/api/v1/scan-policy", "scan.policy.set", s, &v);
    let (_, f2) = t.post("/api/v1/folders", &admin, json!({"name": "ops"})).await;
    let f2 = f2["id"].as_str().unwrap().to_owned();
    let (s, v) = t
        .call(Method::PUT, &format!("/api/v1/folders/{f2}/scan-policy"), Some(&admin), Some(json!({"block_at": "low"})))
        .await;
    ok("PUT", "/api/v1/folders/{folder}/scan-policy", "scan.policy.set", s, &v);
    let (s, sup) = t
        .post(
            "/api/v1/apps/ledger/suppressions",
            &admin,
            json!({"fingerprint": "hmac-sha256:0123", "reason": "test fixture, not a credential", "expires_in_days": 7}),
        )
        .await;
    ok("POST", "/api/v1/apps/{app}/suppressions", "app.suppression.create", s, &sup);
    let (s, v) = t
        .call(
            Method::DELETE,
            &format!("/api/v1/apps/ledger/suppressions/{}", sup["id"].as_str().unwrap()),
            Some(&admin),
            None,
        )
        .await;
    ok("DELETE", "/api/v1/apps/{app}/suppressions/{id}", "app.suppression.revoke", s, &v);
    let (s, v) = t
        .call(
            Method::PUT,
            "/api/v1/review-policy",
            Some(&admin),
            Some(json!({"policy": "No PII leaves declared integrations."})),
        )
        .await;
    ok("PUT", "/api/v1/review-policy", "review.policy.set", s, &v);
    let (s, p) =
        t.post("/api/v1/principals", &admin, json!({"kind": "service", "name": "etl", "max_scope": "push"})).await;
    ok("POST", "/api/v1/principals", "principal.create", s, &p);
    let pid = p["id"].as_str().unwrap().to_owned();
    let (s, tok) = t.post("/api/v1/tokens", &admin, json!({"name": "ci", "scope": "push", "principal_id": pid})).await;
    ok("POST", "/api/v1/tokens", "token.create", s, &tok);
    let (s, v) = t.call(Method::POST, &format!("/api/v1/principals/{pid}/client-secrets"), Some(&admin), None).await;
    ok("POST", "/api/v1/principals/{id}/client-secrets", "principal.client_secret.create", s, &v);
    let client_secret = v["client_secret"].as_str().unwrap().to_owned();
    let (s, v) = t
        .post(
            "/api/v1/audit/events",
            tok["secret"].as_str().unwrap(),
            json!({"events": [{"action": "integration.call", "resource": {"kind": "integration", "id": "salesforce", "path": null}, "outcome": "success"}]}),
        )
        .await;
    ok("POST", "/api/v1/audit/events", "integration.call", s, &v);
    let (s, v) =
        t.call(Method::DELETE, &format!("/api/v1/tokens/{}", tok["id"].as_str().unwrap()), Some(&admin), None).await;
    ok("DELETE", "/api/v1/tokens/{id}", "token.revoke", s, &v);
    // Access control: a custom role granted to a group the new service identity joins.
    let (s, v) = t
        .call(Method::PUT, "/api/v1/roles/releaser", Some(&admin), Some(json!({"actions": ["app.read", "app.deploy"]})))
        .await;
    ok("PUT", "/api/v1/roles/{name}", "role.define", s, &v);
    let (s, g) = t.post("/api/v1/groups", &admin, json!({"name": "release-managers"})).await;
    ok("POST", "/api/v1/groups", "group.create", s, &g);
    let gid = g["id"].as_str().unwrap().to_owned();
    let (s, v) = t.call(Method::PUT, &format!("/api/v1/groups/{gid}/members/{pid}"), Some(&admin), None).await;
    ok("PUT", "/api/v1/groups/{id}/members/{principal}", "group.member.add", s, &v);
    let (s, b) =
        t.post("/api/v1/role-bindings", &admin, json!({"role": "releaser", "folder": "/", "group_id": gid})).await;
    ok("POST", "/api/v1/role-bindings", "role.grant", s, &b);
    let (s, v) = t
        .call(Method::DELETE, &format!("/api/v1/role-bindings/{}", b["id"].as_str().unwrap()), Some(&admin), None)
        .await;
    ok("DELETE", "/api/v1/role-bindings/{id}", "role.revoke", s, &v);
    let (s, v) = t.call(Method::DELETE, "/api/v1/roles/releaser", Some(&admin), None).await;
    ok("DELETE", "/api/v1/roles/{name}", "role.delete", s, &v);
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/groups/{gid}/members/{pid}"), Some(&admin), None).await;
    ok("DELETE", "/api/v1/groups/{id}/members/{principal}", "group.member.remove", s, &v);
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/groups/{gid}"), Some(&admin), None).await;
    ok("DELETE", "/api/v1/groups/{id}", "group.delete", s, &v);
    let (s, v) = t
        .call(
            Method::PUT,
            "/api/v1/guardrails/prod-mfa",
            Some(&admin),
            Some(json!({"policy": "forbid(principal, action == Gatehouse::Action::\"app.deploy\", resource) when { resource.sensitivity == \"high\" && !context.mfa };"})),
        )
        .await;
    ok("PUT", "/api/v1/guardrails/{name}", "guardrail.set", s, &v);
    let (s, v) = t.call(Method::DELETE, "/api/v1/guardrails/prod-mfa", Some(&admin), None).await;
    ok("DELETE", "/api/v1/guardrails/{name}", "guardrail.delete", s, &v);
    let (s, st) = t.post("/api/v1/scim-tokens", &admin, json!({})).await;
    ok("POST", "/api/v1/scim-tokens", "scim.token.create", s, &st);
    let (s, v) = t
        .call(Method::DELETE, &format!("/api/v1/scim-tokens/{}", st["id"].as_str().unwrap()), Some(&admin), None)
        .await;
    ok("DELETE", "/api/v1/scim-tokens/{id}", "scim.token.revoke", s, &v);
    let session = t.session_for(&t.boot.admin.id).await;
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/sessions/{}", session.id), Some(&admin), None).await;
    ok("DELETE", "/api/v1/sessions/{id}", "session.revoke", s, &v);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
    let (s, v) = t.call(Method::PUT, "/api/v1/client-ca", Some(&admin), Some(json!({"pem": ca_pem}))).await;
    ok("PUT", "/api/v1/client-ca", "mtls.ca.set", s, &v);
    let (s, v) = t.call(Method::DELETE, "/api/v1/client-ca", Some(&admin), None).await;
    ok("DELETE", "/api/v1/client-ca", "mtls.ca.remove", s, &v);
    let (s, v) =
        t.call(Method::PATCH, &format!("/api/v1/principals/{pid}"), Some(&admin), Some(json!({"active": false}))).await;
    ok("PATCH", "/api/v1/principals/{id}", "principal.deactivate", s, &v);
    let (s, sec) =
        t.post("/api/v1/secrets", &admin, json!({"name": "API_KEY", "value": "canary-audit-secret-1"})).await;
    ok("POST", "/api/v1/secrets", "secret.create", s, &sec);
    let (s, v) =
        t.call(Method::DELETE, &format!("/api/v1/secrets/{}", sec["id"].as_str().unwrap()), Some(&admin), None).await;
    ok("DELETE", "/api/v1/secrets/{id}", "secret.delete", s, &v);
    let (s, v) = t.post("/api/v1/vault/key/rotate", &admin, json!({})).await;
    ok("POST", "/api/v1/vault/key/rotate", "vault.key.rotate", s, &v);
    let (s, v) = t.post("/api/v1/vault/key/destroy", &admin, json!({"confirm": "operator"})).await;
    ok("POST", "/api/v1/vault/key/destroy", "vault.key.destroy", s, &v);
    // A refused request leaves a record with a keyed hash of the token, which match can test.
    let (s, _) = t.get("/api/v1/apps", "gat_wrong").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let denied = all_records(&t, &admin).await.into_iter().rfind(|r| r["action"] == "auth.token.reject").unwrap();
    let (s, v) = t
        .post(
            "/api/v1/audit/match",
            &admin,
            json!({"seq": denied["seq"], "field": "/token_hmac", "value": "gat_wrong"}),
        )
        .await;
    ok("POST", "/api/v1/audit/match", "audit.match", s, &v);
    assert_eq!(v["matches"], true);

    // The scenario covers every mutating operation there is: a new route fails this test until
    // it is added here, with the record it must leave.
    let covered: BTreeSet<(String, String)> = done.keys().cloned().collect();
    assert_eq!(covered, mutating_operations(), "mutating operations without an audit scenario");
    let records = all_records(&t, &admin).await;
    for ((m, p), action) in &done {
        assert!(
            records.iter().any(|r| r["action"] == *action && r["outcome"] == "success"),
            "{m} {p}: no successful `{action}` record"
        );
    }
    let secret_json = serde_json::to_string(&records).unwrap();
    assert!(!secret_json.contains("canary-audit-secret-1"), "a secret value reached the audit log");
    assert!(!secret_json.contains(&client_secret), "a client secret reached the audit log");
    assert!(!secret_json.contains("\"gat_wrong\""), "a presented token reached the audit log");

    // The same operations, failing (bad ids, empty bodies): each leaves a `failed` or `denied`
    // record naming the route.
    for (m, p) in mutating_operations() {
        let uri = p
            .replace("{id}", "x")
            .replace("{app}", "no-such-app")
            .replace("{rev}", "1")
            .replace("{folder}", "no-such-folder")
            .replace("{name}", "no-such-name")
            .replace("{principal}", "x");
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let (s, _) = t.call(method, &uri, Some(&admin), Some(json!({"bogus": true}))).await;
        assert!(s.is_client_error(), "{m} {p} with a bad body: {s}");
        let records = all_records(&t, &admin).await;
        assert!(
            records.iter().any(|r| r["details"]["route"] == p.as_str()
                && r["details"]["method"] == m.as_str()
                && r["outcome"] != "success"),
            "{m} {p}: the failed request left no record"
        );
    }
    let v = verify(&t).await;
    assert_eq!(v["ok"], true, "{v}");
}

async fn refusals_are_recorded_with_a_keyed_token_hash(b: Backend) {
    let t = app(b).await;
    let (_, reader) = t
        .post(
            "/api/v1/principals",
            t.admin(),
            json!({"kind": "user", "name": "rita@operator.example", "max_scope": "read"}),
        )
        .await;
    let (_, tok) =
        t.post("/api/v1/tokens", t.admin(), json!({"name": "r", "scope": "read", "principal_id": reader["id"]})).await;
    let read = tok["secret"].as_str().unwrap();
    let (s, _) = t.post("/api/v1/apps", read, json!({"name": "nope"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = t.get("/api/v1/apps", "gat_0000leaked0000").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = t.call(Method::GET, "/api/v1/apps", None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let records = all_records(&t, t.admin()).await;
    let forbidden = records.iter().find(|r| r["outcome"] == "denied" && r["action"] == "app.create").unwrap();
    assert_eq!(forbidden["actor"]["name"], "rita@operator.example");
    assert_eq!(forbidden["reason"], "forbidden");
    let rejected: Vec<&Value> = records.iter().filter(|r| r["action"] == "auth.token.reject").collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0]["actor"]["kind"], "anonymous");
    let hmac = rejected[0]["details"]["token_hmac"].as_str().unwrap();
    assert!(hmac.starts_with("hmac-sha256:"));
    assert!(rejected[1]["details"].get("token_hmac").is_none(), "no token, no hash");
    assert!(!serde_json::to_string(&records).unwrap().contains("leaked"));
    // Investigators ask whether a candidate is the token that was tried.
    let seq = rejected[0]["seq"].clone();
    for (candidate, expected) in [("gat_0000leaked0000", true), ("gat_0000other00000", false)] {
        let (s, v) = t
            .post("/api/v1/audit/match", t.admin(), json!({"seq": seq, "field": "/token_hmac", "value": candidate}))
            .await;
        assert_eq!((s, v["matches"].as_bool()), (StatusCode::OK, Some(expected)), "{v}");
    }
    let (s, v) = t.post("/api/v1/audit/match", t.admin(), json!({"seq": seq, "field": "/route", "value": "x"})).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

async fn auditors_read_the_log_and_nothing_else(b: Backend) {
    let t = app(b).await;
    let (s, aud) = t
        .post(
            "/api/v1/principals",
            t.admin(),
            json!({"kind": "user", "name": "audrey@operator.example", "max_scope": "audit"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{aud}");
    let (s, tok) =
        t.post("/api/v1/tokens", t.admin(), json!({"name": "a", "scope": "audit", "principal_id": aud["id"]})).await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let auditor = tok["secret"].as_str().unwrap();
    // An audit principal cannot be given a broader token.
    let (s, _) =
        t.post("/api/v1/tokens", t.admin(), json!({"name": "b", "scope": "read", "principal_id": aud["id"]})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    for path in [
        "/api/v1/audit/events",
        "/api/v1/audit/verify",
        "/api/v1/audit/head",
        "/api/v1/audit/public-key",
        "/api/v1/audit/export",
        "/api/v1/whoami",
    ] {
        let (s, _) = t.call(Method::GET, path, Some(auditor), None).await;
        assert_eq!(s, StatusCode::OK, "auditor GET {path}");
    }
    for path in
        ["/api/v1/apps", "/api/v1/folders", "/api/v1/principals", "/api/v1/secrets", "/api/v1/tokens", "/api/v1/orgs"]
    {
        let (s, v) = t.get(path, auditor).await;
        assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
    }
    let (s, v) = t.post("/api/v1/apps", auditor, json!({"name": "x"})).await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
    // And readers, writers cannot read the log.
    let (_, w) = t
        .post(
            "/api/v1/principals",
            t.admin(),
            json!({"kind": "user", "name": "w@operator.example", "max_scope": "write"}),
        )
        .await;
    let (_, wt) =
        t.post("/api/v1/tokens", t.admin(), json!({"name": "w", "scope": "write", "principal_id": w["id"]})).await;
    let (s, v) = t.get("/api/v1/audit/events", wt["secret"].as_str().unwrap()).await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
}

async fn search_filters_and_pages(b: Backend) {
    let t = app(b).await;
    for name in ["a", "b", "c"] {
        t.post("/api/v1/folders", t.admin(), json!({"name": name})).await;
    }
    let app = t.create_app("tool").await;
    let (_, all) = t.get("/api/v1/audit/events", t.admin()).await;
    let all = all.as_array().unwrap().clone();
    let q = |query: &str| format!("/api/v1/audit/events?{query}");
    let (_, folders) = t.get(&q("action=folder."), t.admin()).await;
    assert_eq!(folders.as_array().unwrap().len(), 3);
    let (_, exact) = t.get(&q("action=app.create"), t.admin()).await;
    assert_eq!(exact.as_array().unwrap().len(), 1);
    let (_, by_resource) = t.get(&q(&format!("resource={}", app["id"].as_str().unwrap())), t.admin()).await;
    assert_eq!(by_resource[0]["action"], "app.create");
    let (_, by_actor) = t.get(&q("actor=admin@operator.example&outcome=success"), t.admin()).await;
    assert_eq!(by_actor.as_array().unwrap().len(), 4);
    let mid = all[2]["time"].as_str().unwrap().to_owned();
    let (_, since) = t.get(&q(&format!("since={mid}")), t.admin()).await;
    assert!(since.as_array().unwrap().iter().all(|r| r["time"].as_str().unwrap() >= mid.as_str()));
    let (_, until) = t.get(&q("until=2000-01-01T00:00:00Z"), t.admin()).await;
    assert_eq!(until.as_array().unwrap().len(), 0);
    // Pages follow Link headers, by sequence number.
    let mut uri = q("limit=2");
    let mut seqs = Vec::new();
    for _ in 0..10 {
        let req = Request::builder()
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
            .body(Body::empty())
            .unwrap();
        let res = tower::ServiceExt::oneshot(t.router.clone(), req).await.unwrap();
        let link = res.headers().get(header::LINK).map(|v| v.to_str().unwrap().to_owned());
        let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
        let page: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        seqs.extend(page.iter().map(|r| r["seq"].as_u64().unwrap()));
        match link {
            Some(l) => uri = l.trim_start_matches('<').split('>').next().unwrap().to_owned(),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(seqs.len() >= 5);
    for bad in ["since=yesterday", "after=abc", "outcome=maybe", "limit=0"] {
        let (s, v) = t.get(&q(bad), t.admin()).await;
        assert_problem(s, &v, StatusCode::BAD_REQUEST, "bad-request");
    }
}

/// A log of `n` records with checkpoints every 10, on a fresh app.
async fn signed_log(b: Backend, n: usize) -> TestApp {
    let t = app(b).await;
    while t.store.audit_head(&t.boot.org.id).await.unwrap().seq < n as u64 {
        t.post("/api/v1/folders", t.admin(), json!({"name": format!("f{}", rand_suffix())})).await;
    }
    let mut waiting = Default::default();
    gatehouse_server::audit::checkpoint_once(&t.store, &keys(&t), 10, Duration::ZERO, &mut waiting).await.unwrap();
    t
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed).to_string()
}

/// Drops the append-only guard, as an attacker with database access would.
async fn unguard(t: &TestApp) {
    let sql = match t.store.engine() {
        Engine::Sqlite => "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;",
        Engine::Postgres => "DROP TRIGGER audit_events_guard ON audit_events;",
    };
    t.store.raw_sql_for_test(sql).await.unwrap();
}

async fn sql(t: &TestApp, s: &str) {
    t.store.raw_sql_for_test(s).await.unwrap();
}

fn expect_tamper(v: &Value, seq: u64, problem: &str) {
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!((v["bad_seq"].as_u64(), v["problem"].as_str()), (Some(seq), Some(problem)), "{v}");
}

async fn tamper_matrix_names_the_first_bad_record(b: Backend) {
    let org = |t: &TestApp| t.boot.org.id.to_string();
    // Untouched: verifies, with checkpoints.
    let t = signed_log(b, 25).await;
    let v = verify(&t).await;
    assert_eq!((v["ok"].as_bool(), v["records"].as_u64()), (Some(true), Some(25)), "{v}");
    assert!(v["checkpoints"].as_u64().unwrap() >= 2, "{v}");
    // The guard refuses edits.
    assert!(t.store.raw_sql_for_test("UPDATE audit_events SET action = 'x'").await.is_err());

    // A changed byte.
    let t = signed_log(b, 25).await;
    unguard(&t).await;
    sql(&t, &format!("UPDATE audit_events SET record = replace(record, 'folder.create', 'folder.delete') WHERE org_id = '{}' AND seq = 7", org(&t))).await;
    expect_tamper(&verify(&t).await, 7, "altered");

    // A deleted record.
    let t = signed_log(b, 25).await;
    unguard(&t).await;
    sql(&t, &format!("DELETE FROM audit_events WHERE org_id = '{}' AND seq = 12", org(&t))).await;
    expect_tamper(&verify(&t).await, 12, "gap");

    // Two records reordered.
    let t = signed_log(b, 25).await;
    unguard(&t).await;
    let o = org(&t);
    sql(&t, &format!("UPDATE audit_events SET seq = -1 WHERE org_id = '{o}' AND seq = 15")).await;
    sql(&t, &format!("UPDATE audit_events SET seq = 15 WHERE org_id = '{o}' AND seq = 16")).await;
    sql(&t, &format!("UPDATE audit_events SET seq = 16 WHERE org_id = '{o}' AND seq = -1")).await;
    expect_tamper(&verify(&t).await, 15, "gap");

    // The middle cut out.
    let t = signed_log(b, 25).await;
    unguard(&t).await;
    sql(&t, &format!("DELETE FROM audit_events WHERE org_id = '{}' AND seq BETWEEN 9 AND 18", org(&t))).await;
    expect_tamper(&verify(&t).await, 9, "gap");

    // The newest records removed: the head (and the signed checkpoint) still know they existed.
    let t = signed_log(b, 25).await;
    unguard(&t).await;
    sql(&t, &format!("DELETE FROM audit_events WHERE org_id = '{}' AND seq > 22", org(&t))).await;
    expect_tamper(&verify(&t).await, 23, "gap");

    // A forged checkpoint.
    let t = signed_log(b, 25).await;
    sql(&t, &format!("UPDATE audit_checkpoints SET signature = replace(signature, substr(signature, 1, 2), 'ff') WHERE org_id = '{}' AND last_seq = 20", org(&t))).await;
    expect_tamper(&verify(&t).await, 11, "forged_checkpoint");

    // Everything from record 14 rewritten and re-chained by someone without the signing key.
    let t = signed_log(b, 25).await;
    unguard(&t).await;
    let records = t.store.audit_range(&t.boot.org.id, 1, 100, 100).await.unwrap();
    let mut prev: [u8; 32] = hex::decode(&records[12].hash).unwrap().try_into().unwrap();
    for r in &records[13..] {
        let mut d = r.draft.clone();
        d.outcome = gatehouse_core::audit::Outcome::Denied;
        let nr = gatehouse_audit::chain(d, r.seq, r.time, &prev);
        prev = hex::decode(&nr.hash).unwrap().try_into().unwrap();
        let json = serde_json::to_string(&nr).unwrap().replace('\'', "''");
        sql(&t, &format!("UPDATE audit_events SET record = '{json}' WHERE org_id = '{}' AND seq = {}", org(&t), r.seq))
            .await;
    }
    sql(&t, &format!("UPDATE audit_heads SET hash = '{}' WHERE org_id = '{}'", hex::encode(prev), org(&t))).await;
    expect_tamper(&verify(&t).await, 11, "checkpoint_mismatch");

    // A range verifies on its own.
    let t = signed_log(b, 25).await;
    let (s, v) = t.get("/api/v1/audit/verify?from=11&to=20", t.admin()).await;
    assert_eq!((s, v["ok"].as_bool(), v["records"].as_u64()), (StatusCode::OK, Some(true), Some(10)), "{v}");
}

async fn export_text(t: &TestApp, query: &str) -> String {
    let req = Request::builder()
        .uri(format!("/api/v1/audit/export{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(t.router.clone(), req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/x-ndjson");
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn exports_verify_offline_and_show_edits(b: Backend) {
    let t = signed_log(b, 30).await;
    let (_, key) = t.get("/api/v1/audit/public-key", t.admin()).await;
    let key = key["public_key"].as_str().unwrap();
    let text = export_text(&t, "").await;
    let r = gatehouse_server::audit::verify_export_hex(&text, key).unwrap().unwrap();
    assert_eq!((r.records, r.checkpoints), (30, 3));
    let part = export_text(&t, "?from=11&to=25").await;
    let r = gatehouse_server::audit::verify_export_hex(&part, key).unwrap().unwrap();
    assert_eq!((r.first_seq, r.last_seq, r.checkpoints), (11, 25, 1));
    // One changed byte in the file.
    let edited = text.replacen("\"folder.create\"", "\"folder.delete\"", 3);
    let bad = gatehouse_server::audit::verify_export_hex(&edited, key).unwrap().unwrap_err();
    assert_eq!(bad.seq, 2, "{bad}");
    // A line removed.
    let lines: Vec<&str> = text.lines().collect();
    let cut = [&lines[..5], &lines[6..]].concat().join("\n");
    assert_eq!(gatehouse_server::audit::verify_export_hex(&cut, key).unwrap().unwrap_err().seq, 5);
    // The file's end cut off: the header says where it must end.
    let short = lines[..lines.len() - 3].join("\n");
    let t = gatehouse_server::audit::verify_export_hex(&short, key).unwrap().unwrap_err();
    assert_eq!((t.seq, t.kind), (29, gatehouse_audit::TamperKind::Gap), "{t}");
    // Another key does not vouch for these checkpoints.
    let other = hex::encode(gatehouse_audit::CheckpointSigner::from_seed(&[9; 32]).verifying_key().as_bytes());
    let forged = gatehouse_server::audit::verify_export_hex(&text, &other).unwrap().unwrap_err();
    assert_eq!(forged.kind, gatehouse_audit::TamperKind::ForgedCheckpoint);
    assert!(gatehouse_server::audit::verify_export_hex("not json", key).is_err());
}

async fn retention_keeps_the_chain_verifiable(b: Backend) {
    let t = signed_log(b, 25).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    // Everything is older than "now": pruning removes whole checkpoint ranges, up to the newest
    // checkpoint, and keeps that checkpoint as the anchor.
    let removed = gatehouse_server::audit::prune_once(&t.store, Duration::ZERO).await.unwrap();
    let head = t.store.audit_head(&t.boot.org.id).await.unwrap();
    assert_eq!(removed, head.anchor_seq);
    assert_eq!(head.anchor_seq, head.checkpointed_seq, "{head:?}");
    assert!(head.anchor_seq >= 20, "{head:?}");
    assert!(t.store.audit_range(&t.boot.org.id, 1, head.anchor_seq, 100).await.unwrap().is_empty());
    assert_eq!(verify(&t).await["ok"], true);
    // New records chain on from the retained anchor.
    t.post("/api/v1/folders", t.admin(), json!({"name": "after"})).await;
    let v = verify(&t).await;
    assert_eq!((v["ok"].as_bool(), v["first_seq"].as_u64()), (Some(true), Some(head.anchor_seq + 1)), "{v}");
    // A forged anchor does not verify.
    sql(&t, &format!("UPDATE audit_heads SET anchor_hash = '{}' WHERE org_id = '{}'", "ab".repeat(32), t.boot.org.id))
        .await;
    assert_eq!(verify(&t).await["ok"], false);
}

async fn changes_are_refused_when_the_log_cannot_be_written(b: Backend) {
    let t = app(b).await;
    let (install, remove) = match t.store.engine() {
        Engine::Sqlite => (
            "CREATE TRIGGER audit_full BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'disk full'); END;",
            "DROP TRIGGER audit_full;",
        ),
        Engine::Postgres => (
            "CREATE FUNCTION audit_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'disk full'; END $$; \
             CREATE TRIGGER audit_full BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION audit_full();",
            "DROP TRIGGER audit_full ON audit_events; DROP FUNCTION audit_full();",
        ),
    };
    sql(&t, install).await;
    let (s, v) = t.post("/api/v1/apps", t.admin(), json!({"name": "ghost"})).await;
    assert_problem(s, &v, StatusCode::SERVICE_UNAVAILABLE, "audit-unavailable");
    let (s, v) = t.post("/api/v1/secrets", t.admin(), json!({"name": "K", "value": "canary-unlogged-1"})).await;
    assert_problem(s, &v, StatusCode::SERVICE_UNAVAILABLE, "audit-unavailable");
    let (s, v) = t.push("ghost", t.admin(), bundle(&[("gatehouse.toml", &manifest("ghost"))])).await;
    assert!(s.is_client_error() || s == StatusCode::SERVICE_UNAVAILABLE, "{s} {v}");
    // Reads go on; nothing was made.
    let (s, apps) = t.get("/api/v1/apps", t.admin()).await;
    assert_eq!((s, apps.as_array().unwrap().len()), (StatusCode::OK, 0));
    let (_, secrets) = t.get("/api/v1/secrets", t.admin()).await;
    assert_eq!(secrets.as_array().unwrap().len(), 0);
    sql(&t, remove).await;
    let (s, _) = t.post("/api/v1/apps", t.admin(), json!({"name": "ghost"})).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(verify(&t).await["ok"], true);
}

async fn app_events_keep_sensitive_values_as_hmacs(b: Backend) {
    let t = app(b).await;
    let event = json!({
        "action": "integration.call",
        "resource": {"kind": "integration", "id": "workday", "path": "/hr/payroll"},
        "outcome": "success",
        "on_behalf_of": [{"kind": "user", "id": "prn_x", "name": "pat@acme.example"}],
        "details": {"operation": "GET /workers"},
        "sensitive": {"employee_email": "jane.doe@acme.example"}
    });
    // A value the vault handled, echoed by a data plane in its details, is masked.
    let (s, _) =
        t.post("/api/v1/secrets", t.admin(), json!({"name": "CRM_KEY", "value": "canary-echoed-secret-9"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let mut echoed = event.clone();
    echoed["details"]["header"] = json!("Bearer canary-echoed-secret-9");
    let (s, v) = t.post("/api/v1/audit/events", t.admin(), json!({"events": [event.clone(), echoed]})).await;
    assert_eq!((s, v["recorded"].as_u64()), (StatusCode::CREATED, Some(2)), "{v}");
    let records = all_records(&t, t.admin()).await;
    let calls: Vec<&Value> = records.iter().filter(|r| r["action"] == "integration.call").collect();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["actor"]["on_behalf_of"][0]["name"], "pat@acme.example");
    assert_eq!(calls[0]["actor"]["kind"], "user", "an admin user reporting stays a user");
    let stored = calls[0]["details"]["hmac"]["employee_email"].as_str().unwrap();
    assert!(stored.starts_with("hmac-sha256:"));
    assert!(!serde_json::to_string(&records).unwrap().contains("jane.doe"));
    assert!(!serde_json::to_string(&records).unwrap().contains("canary-echoed-secret-9"));
    let (_, m) = t
        .post(
            "/api/v1/audit/match",
            t.admin(),
            json!({"seq": calls[0]["seq"], "field": "/hmac/employee_email", "value": "jane.doe@acme.example"}),
        )
        .await;
    assert_eq!(m["matches"], true);
    for bad in [
        json!({"events": []}),
        json!({"events": [{"action": "org.create", "resource": {"kind": "org", "id": "x", "path": null}, "outcome": "success"}]}),
        json!({"events": [{"action": "app.Bad Verb", "resource": {"kind": "app", "id": "x", "path": null}, "outcome": "success"}]}),
        json!({"events": [{"action": "app.ok", "resource": {"kind": "", "id": "x", "path": null}, "outcome": "success"}]}),
    ] {
        let (s, v) = t.post("/api/v1/audit/events", t.admin(), bad).await;
        assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    }
    assert_eq!(verify(&t).await["ok"], true);
}
