//! Authorization over the API: every route decides, roles are inherited down the folder tree,
//! groups and custom roles confer access, guardrails forbid, changes apply on the next request,
//! denials are recorded, and `explain` says why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::{Backend, TestApp, app, assert_problem, bundle, manifest};
use serde_json::{Value, json};

/// What a principal with no role anywhere gets from a route.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// 403 `access-denied`.
    Denied,
    /// 200 with an empty list: the route filters each item.
    Filtered,
    /// 200: the route is about the caller itself.
    OwnOk,
}

struct Fixture {
    folder: String,
    secret: String,
    group: String,
    binding: String,
    suppression: String,
    other: String,
    other_token: String,
    other_session: String,
}

async fn fixture(t: &TestApp) -> Fixture {
    let admin = t.admin();
    let (_, f) = t.post("/api/v1/folders", admin, json!({"name": "fin"})).await;
    let folder = f["id"].as_str().unwrap().to_owned();
    let (s, _) = t.post("/api/v1/apps", admin, json!({"name": "ledger", "folder": "/fin"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = t.push("ledger", admin, bundle(&[("gatehouse.toml", &manifest("ledger")), ("server.js", "1")])).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, sec) =
        t.post("/api/v1/secrets", admin, json!({"name": "K", "value": "v-authz-canary", "folder": "/fin"})).await;
    let (_, g) = t.post("/api/v1/groups", admin, json!({"name": "finance"})).await;
    let group = g["id"].as_str().unwrap().to_owned();
    let (_, p) = t.post("/api/v1/principals", admin, json!({"kind": "user", "name": "ann@example.com"})).await;
    let other = p["id"].as_str().unwrap().to_owned();
    let (_, tok) = t.post("/api/v1/tokens", admin, json!({"name": "t", "scope": "read", "principal_id": other})).await;
    let (_, b) =
        t.post("/api/v1/role-bindings", admin, json!({"role": "viewer", "folder": "/fin", "group_id": group})).await;
    let (_, sup) = t
        .post(
            "/api/v1/apps/ledger/suppressions",
            admin,
            json!({"fingerprint": "hmac-sha256:00", "reason": "a documented test value", "expires_in_days": 3}),
        )
        .await;
    let session = t.session_for(&other.parse().unwrap()).await;
    Fixture {
        other_session: session.id,
        folder,
        secret: sec["id"].as_str().unwrap().to_owned(),
        group,
        binding: b["id"].as_str().unwrap().to_owned(),
        suppression: sup["id"].as_str().unwrap().to_owned(),
        other,
        other_token: tok["id"].as_str().unwrap().to_owned(),
    }
}

/// A principal whose token has the `admin` scope but who holds no role anywhere: everything it
/// gets, it gets from a route that forgot to ask.
async fn nobody(t: &TestApp) -> (String, String) {
    let admin = t.admin();
    let (_, p) = t
        .post("/api/v1/principals", admin, json!({"kind": "user", "name": "nobody@example.com", "max_scope": "admin"}))
        .await;
    let id = p["id"].as_str().unwrap().to_owned();
    let (_, tok) = t.post("/api/v1/tokens", admin, json!({"name": "n", "scope": "admin", "principal_id": id})).await;
    let (_, bindings) = t.get(&format!("/api/v1/role-bindings?subject={id}"), admin).await;
    for b in bindings.as_array().unwrap() {
        let (s, _) = t
            .call(Method::DELETE, &format!("/api/v1/role-bindings/{}", b["id"].as_str().unwrap()), Some(admin), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
    }
    (id, tok["secret"].as_str().unwrap().to_owned())
}

fn operations() -> BTreeSet<(String, String)> {
    let doc = gatehouse_server::openapi();
    let mut ops = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (m, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                ops.insert((m.to_owned(), path.clone()));
            }
        }
    }
    ops
}

async fn every_route_decides_authorization(b: Backend) {
    let t = app(b).await;
    let f = fixture(&t).await;
    let (me, token) = nobody(&t).await;
    let operator = t.boot.org.id.to_string();
    let guardrail = "forbid(principal, action == Gatehouse::Action::\"app.deploy\", resource) when { !context.mfa };";
    use Expect::*;
    #[rustfmt::skip]
    let table: Vec<(&str, &str, String, Option<Value>, Expect)> = vec![
        ("GET", "/api/v1/apps", "/api/v1/apps".into(), None, Filtered),
        ("POST", "/api/v1/apps", "/api/v1/apps".into(), Some(json!({"name": "new-app", "folder": "/fin"})), Denied),
        ("GET", "/api/v1/apps/{app}", "/api/v1/apps/ledger".into(), None, Denied),
        ("PATCH", "/api/v1/apps/{app}", "/api/v1/apps/ledger".into(), Some(json!({"description": "x"})), Denied),
        ("GET", "/api/v1/apps/{app}/diff", "/api/v1/apps/ledger/diff?from=1&to=1".into(), None, Denied),
        ("GET", "/api/v1/apps/{app}/revisions", "/api/v1/apps/ledger/revisions".into(), None, Denied),
        ("POST", "/api/v1/apps/{app}/revisions", "push".into(), None, Denied),
        ("GET", "/api/v1/apps/{app}/revisions/{rev}", "/api/v1/apps/ledger/revisions/1".into(), None, Denied),
        ("GET", "/api/v1/apps/{app}/revisions/{rev}/archive", "/api/v1/apps/ledger/revisions/1/archive".into(), None, Denied),
        ("GET", "/api/v1/apps/{app}/revisions/{rev}/scan", "/api/v1/apps/ledger/revisions/1/scan".into(), None, Denied),
        ("POST", "/api/v1/apps/{app}/revisions/{rev}/scan", "/api/v1/apps/ledger/revisions/1/scan".into(), Some(json!({})), Denied),
        ("GET", "/api/v1/apps/{app}/suppressions", "/api/v1/apps/ledger/suppressions".into(), None, Denied),
        ("POST", "/api/v1/apps/{app}/suppressions", "/api/v1/apps/ledger/suppressions".into(),
            Some(json!({"fingerprint": "hmac-sha256:01", "reason": "a documented test value", "expires_in_days": 3})), Denied),
        ("DELETE", "/api/v1/apps/{app}/suppressions/{id}", format!("/api/v1/apps/ledger/suppressions/{}", f.suppression), None, Denied),
        ("GET", "/api/v1/audit/events", "/api/v1/audit/events".into(), None, Denied),
        ("POST", "/api/v1/audit/events", "/api/v1/audit/events".into(),
            Some(json!({"events": [{"action": "app.test", "resource": {"kind": "app", "id": "ledger", "path": null}, "outcome": "success"}]})), Denied),
        ("GET", "/api/v1/audit/export", "/api/v1/audit/export".into(), None, Denied),
        ("GET", "/api/v1/audit/exports", "/api/v1/audit/exports".into(), None, Denied),
        ("GET", "/api/v1/audit/head", "/api/v1/audit/head".into(), None, Denied),
        ("POST", "/api/v1/audit/match", "/api/v1/audit/match".into(), Some(json!({"seq": 1, "field": "/x", "value": "y"})), Denied),
        ("GET", "/api/v1/audit/public-key", "/api/v1/audit/public-key".into(), None, Denied),
        ("GET", "/api/v1/audit/verify", "/api/v1/audit/verify".into(), None, Denied),
        ("GET", "/api/v1/authz/explain", "/api/v1/authz/explain?action=app.read&resource=app:ledger".into(), None, OwnOk),
        ("GET", "/api/v1/authz/schema", "/api/v1/authz/schema".into(), None, Denied),
        ("GET", "/api/v1/folders", "/api/v1/folders".into(), None, Filtered),
        ("POST", "/api/v1/folders", "/api/v1/folders".into(), Some(json!({"name": "x", "parent": "/fin"})), Denied),
        ("GET", "/api/v1/folders/{id}", format!("/api/v1/folders/{}", f.folder), None, Denied),
        ("PATCH", "/api/v1/folders/{id}", format!("/api/v1/folders/{}", f.folder), Some(json!({"name": "finance"})), Denied),
        ("DELETE", "/api/v1/folders/{id}", format!("/api/v1/folders/{}", f.folder), None, Denied),
        ("PUT", "/api/v1/folders/{folder}/scan-policy", format!("/api/v1/folders/{}/scan-policy", f.folder), Some(json!({"block_at": "low"})), Denied),
        ("GET", "/api/v1/groups", "/api/v1/groups".into(), None, Denied),
        ("POST", "/api/v1/groups", "/api/v1/groups".into(), Some(json!({"name": "g2"})), Denied),
        ("GET", "/api/v1/groups/{id}", format!("/api/v1/groups/{}", f.group), None, Denied),
        ("DELETE", "/api/v1/groups/{id}", format!("/api/v1/groups/{}", f.group), None, Denied),
        ("PUT", "/api/v1/groups/{id}/members/{principal}", format!("/api/v1/groups/{}/members/{me}", f.group), None, Denied),
        ("DELETE", "/api/v1/groups/{id}/members/{principal}", format!("/api/v1/groups/{}/members/{}", f.group, f.other), None, Denied),
        ("GET", "/api/v1/guardrails", "/api/v1/guardrails".into(), None, Denied),
        ("PUT", "/api/v1/guardrails/{name}", "/api/v1/guardrails/mfa".into(), Some(json!({"policy": guardrail})), Denied),
        ("DELETE", "/api/v1/guardrails/{name}", "/api/v1/guardrails/mfa".into(), None, Denied),
        ("GET", "/api/v1/scim-tokens", "/api/v1/scim-tokens".into(), None, Denied),
        ("POST", "/api/v1/scim-tokens", "/api/v1/scim-tokens".into(), Some(json!({})), Denied),
        ("DELETE", "/api/v1/scim-tokens/{id}", "/api/v1/scim-tokens/tok_0".into(), None, Denied),
        ("GET", "/api/v1/sessions", "/api/v1/sessions".into(), None, OwnOk),
        ("GET", "/api/v1/client-ca", "/api/v1/client-ca".into(), None, Denied),
        ("PUT", "/api/v1/client-ca", "/api/v1/client-ca".into(), Some(json!({"pem": "x"})), Denied),
        ("DELETE", "/api/v1/client-ca", "/api/v1/client-ca".into(), None, Denied),
        ("DELETE", "/api/v1/sessions/{id}", format!("/api/v1/sessions/{}", f.other_session), None, Denied),
        ("GET", "/api/v1/orgs", "/api/v1/orgs".into(), None, Denied),
        ("POST", "/api/v1/orgs", "/api/v1/orgs".into(), Some(json!({"name": "t2", "admin_email": "a@t2.example"})), Denied),
        ("GET", "/api/v1/orgs/{id}", format!("/api/v1/orgs/{operator}"), None, Denied),
        ("GET", "/api/v1/principals", "/api/v1/principals".into(), None, Denied),
        ("POST", "/api/v1/principals", "/api/v1/principals".into(), Some(json!({"kind": "service", "name": "etl"})), Denied),
        ("GET", "/api/v1/principals/{id}", format!("/api/v1/principals/{}", f.other), None, Denied),
        ("PATCH", "/api/v1/principals/{id}", format!("/api/v1/principals/{}", f.other), Some(json!({"active": false})), Denied),
        ("POST", "/api/v1/principals/{id}/client-secrets", format!("/api/v1/principals/{}/client-secrets", f.other), None, Denied),
        ("GET", "/api/v1/review-policy", "/api/v1/review-policy".into(), None, Denied),
        ("PUT", "/api/v1/review-policy", "/api/v1/review-policy".into(), Some(json!({"policy": "be strict"})), Denied),
        ("GET", "/api/v1/role-bindings", "/api/v1/role-bindings".into(), None, Filtered),
        ("POST", "/api/v1/role-bindings", "/api/v1/role-bindings".into(), Some(json!({"role": "org-admin", "folder": "/", "principal_id": me})), Denied),
        ("DELETE", "/api/v1/role-bindings/{id}", format!("/api/v1/role-bindings/{}", f.binding), None, Denied),
        ("GET", "/api/v1/roles", "/api/v1/roles".into(), None, Denied),
        ("PUT", "/api/v1/roles/{name}", "/api/v1/roles/releaser".into(), Some(json!({"actions": ["app.deploy"]})), Denied),
        ("DELETE", "/api/v1/roles/{name}", "/api/v1/roles/releaser".into(), None, Denied),
        ("GET", "/api/v1/scan-policy", "/api/v1/scan-policy".into(), None, Denied),
        ("PUT", "/api/v1/scan-policy", "/api/v1/scan-policy".into(), Some(json!({"block_at": "low"})), Denied),
        ("GET", "/api/v1/secrets", "/api/v1/secrets".into(), None, Filtered),
        ("POST", "/api/v1/secrets", "/api/v1/secrets".into(), Some(json!({"name": "K2", "value": "v", "folder": "/fin"})), Denied),
        ("GET", "/api/v1/secrets/{id}", format!("/api/v1/secrets/{}", f.secret), None, Denied),
        ("DELETE", "/api/v1/secrets/{id}", format!("/api/v1/secrets/{}", f.secret), None, Denied),
        ("GET", "/api/v1/tokens", "/api/v1/tokens".into(), None, OwnOk),
        ("POST", "/api/v1/tokens", "/api/v1/tokens".into(), Some(json!({"name": "mine", "scope": "read"})), OwnOk),
        ("DELETE", "/api/v1/tokens/{id}", format!("/api/v1/tokens/{}", f.other_token), None, Denied),
        ("GET", "/api/v1/vault/key", "/api/v1/vault/key".into(), None, Denied),
        ("POST", "/api/v1/vault/key/destroy", "/api/v1/vault/key/destroy".into(), Some(json!({"confirm": "operator"})), Denied),
        ("POST", "/api/v1/vault/key/rotate", "/api/v1/vault/key/rotate".into(), Some(json!({})), Denied),
        ("GET", "/api/v1/whoami", "/api/v1/whoami".into(), None, OwnOk),
    ];
    let covered: BTreeSet<(String, String)> =
        table.iter().map(|(m, p, ..)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(covered, operations(), "routes without an authorization case: add them here");

    for (m, p, uri, body, expect) in &table {
        let (s, v) = if uri == "push" {
            t.push("ledger", &token, bundle(&[("gatehouse.toml", &manifest("ledger")), ("server.js", "2")])).await
        } else {
            t.call(Method::from_bytes(m.as_bytes()).unwrap(), uri, Some(&token), body.clone()).await
        };
        match expect {
            Denied => {
                let detail = assert_problem(s, &v, StatusCode::FORBIDDEN, "access-denied");
                assert!(detail.contains("nobody@example.com may not"), "{m} {p}: {detail}");
            }
            Filtered => {
                assert_eq!(s, StatusCode::OK, "{m} {p}: {v}");
                assert_eq!(v, json!([]), "{m} {p} showed items to a principal with no role");
            }
            OwnOk => assert!(s.is_success(), "{m} {p}: {s} {v}"),
        }
    }
    // Nothing the denied requests tried happened.
    let (_, v) = t.get("/api/v1/apps/ledger", t.admin()).await;
    assert_eq!(v["description"], Value::Null);
    let (s, _) = t.get(&format!("/api/v1/secrets/{}", f.secret), t.admin()).await;
    assert_eq!(s, StatusCode::OK);
}

async fn roles_are_inherited_and_changes_apply_at_once(b: Backend) {
    let t = app(b).await;
    let admin = t.admin().to_owned();
    for (name, parent) in [("fin", None), ("payroll", Some("/fin")), ("ops", None)] {
        let (s, v) = t.post("/api/v1/folders", &admin, json!({"name": name, "parent": parent})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    for (app, folder) in [("salaries", "/fin/payroll"), ("deploys", "/ops")] {
        let (s, _) = t.post("/api/v1/apps", &admin, json!({"name": app, "folder": folder})).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let (_, p) = t
        .post("/api/v1/principals", &admin, json!({"kind": "user", "name": "bea@example.com", "max_scope": "write"}))
        .await;
    let bea = p["id"].as_str().unwrap().to_owned();
    let (_, tok) = t.post("/api/v1/tokens", &admin, json!({"name": "b", "scope": "write", "principal_id": bea})).await;
    let tok = tok["secret"].as_str().unwrap().to_owned();
    // Replace her default org-wide grant with builder on /fin through a group.
    let (_, list) = t.get(&format!("/api/v1/role-bindings?subject={bea}"), &admin).await;
    let root_grant = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["folder_path"], "/");
    let (s, _) = t.call(Method::DELETE, &format!("/api/v1/role-bindings/{root_grant}"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.get("/api/v1/apps/salaries", &tok).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the revoked grant still worked");
    let (_, g) = t.post("/api/v1/groups", &admin, json!({"name": "finance-builders"})).await;
    let gid = g["id"].as_str().unwrap().to_owned();
    let (s, _) = t.call(Method::PUT, &format!("/api/v1/groups/{gid}/members/{bea}"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, grant) =
        t.post("/api/v1/role-bindings", &admin, json!({"role": "builder", "folder": "/fin", "group_id": gid})).await;
    assert_eq!(s, StatusCode::CREATED, "{grant}");

    // Granted on /fin, it holds in /fin/payroll; not in /ops; and builders do not deploy.
    let (s, v) = t.get("/api/v1/apps/salaries", &tok).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) =
        t.push("salaries", &tok, bundle(&[("gatehouse.toml", &manifest("salaries")), ("server.js", "1")])).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = t.get("/api/v1/apps/deploys", &tok).await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "access-denied");
    let (_, apps) = t.get("/api/v1/apps", &tok).await;
    let names: Vec<&str> = apps.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, vec!["salaries"]);
    let (s, v) = t.post("/api/v1/apps", &tok, json!({"name": "bonus", "folder": "/ops"})).await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "access-denied");
    // Secrets are seen where their app is: two on salaries (one app lookup), one on deploys.
    for (name, app) in [("A", "salaries"), ("B", "salaries"), ("C", "deploys")] {
        let (s, v) = t.post("/api/v1/secrets", &admin, json!({"name": name, "value": "v", "app": app})).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (_, secrets) = t.get("/api/v1/secrets", &tok).await;
    let mut names: Vec<&str> = secrets.as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, vec!["A", "B"]);

    // Explain names the binding, the group and the deciding policy.
    let (s, e) =
        t.get(&format!("/api/v1/authz/explain?principal={bea}&action=app.push&resource=app:salaries"), &admin).await;
    assert_eq!(s, StatusCode::OK, "{e}");
    assert_eq!(e["decision"], "allow");
    assert_eq!(e["policies"], json!(["role:builder"]));
    assert_eq!(e["grants"][0]["via_group"], "finance-builders");
    assert_eq!(e["grants"][0]["folder"], "/fin");
    let (_, e) =
        t.get("/api/v1/authz/explain?principal=bea@example.com&action=app.deploy&resource=app:salaries", &admin).await;
    assert_eq!(e["decision"], "deny");

    // A custom role adds exactly its actions.
    let (s, v) = t
        .call(Method::PUT, "/api/v1/roles/releaser", Some(&admin), Some(json!({"actions": ["app.read", "app.deploy"]})))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = t
        .post("/api/v1/role-bindings", &admin, json!({"role": "releaser", "folder": "/ops", "principal_id": bea}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = t.get("/api/v1/apps/deploys", &tok).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = t.push("deploys", &tok, bundle(&[("gatehouse.toml", &manifest("deploys")), ("server.js", "1")])).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A role in use cannot be deleted; unknown actions and built-in names are refused.
    let (s, _) = t.call(Method::DELETE, "/api/v1/roles/releaser", Some(&admin), None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, v) = t.call(Method::PUT, "/api/v1/roles/bad", Some(&admin), Some(json!({"actions": ["app.nuke"]}))).await;
    assert!(assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation").contains("unknown action"));
    let (s, _) =
        t.call(Method::PUT, "/api/v1/roles/viewer", Some(&admin), Some(json!({"actions": ["app.read"]}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    // Leaving the group takes the group's roles away on the next request.
    let (s, _) = t.call(Method::DELETE, &format!("/api/v1/groups/{gid}/members/{bea}"), Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = t.get("/api/v1/apps/salaries", &tok).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The denial is in the audit log with its reason.
    let (_, recs) = t.get("/api/v1/audit/events?outcome=denied&limit=1000", &admin).await;
    let denial = recs["events"]
        .as_array()
        .or_else(|| recs.as_array())
        .unwrap()
        .iter()
        .rev()
        .find(|r| r["details"]["authorization"]["action"] == "app.read")
        .cloned()
        .unwrap_or_else(|| panic!("no recorded denial: {recs}"));
    assert_eq!(denial["actor"]["name"], "bea@example.com", "{denial}");
    assert_eq!(denial["action"], "app.read", "{denial}");
    assert_eq!(denial["resource"]["kind"], "app", "{denial}");
    assert_eq!(denial["resource"]["path"], "salaries", "{denial}");
    assert_eq!(denial["details"]["route"], "/api/v1/apps/{app}", "{denial}");
    assert!(denial["details"]["authorization"]["reason"].as_str().unwrap().contains("no role"), "{denial}");
}

async fn guardrails_forbid_and_are_checked(b: Backend) {
    let t = app(b).await;
    let admin = t.admin().to_owned();
    let (s, _) = t.post("/api/v1/apps", &admin, json!({"name": "payments", "sensitivity": "high"})).await;
    assert_eq!(s, StatusCode::CREATED);
    // Pushing to high-sensitivity apps needs MFA in the session: token callers never have it.
    let policy = r#"forbid(principal, action == Gatehouse::Action::"app.push", resource)
        when { resource.sensitivity == "high" && !context.mfa };"#;
    let (s, v) = t
        .call(
            Method::PUT,
            "/api/v1/guardrails/high-needs-mfa",
            Some(&admin),
            Some(json!({"policy": policy, "description": "MFA for regulated apps"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) =
        t.push("payments", &admin, bundle(&[("gatehouse.toml", &manifest("payments")), ("server.js", "1")])).await;
    let detail = assert_problem(s, &v, StatusCode::FORBIDDEN, "access-denied");
    assert!(detail.contains("guardrail:high-needs-mfa"), "{detail}");
    // Reads are not affected.
    let (s, _) = t.get("/api/v1/apps/payments", &admin).await;
    assert_eq!(s, StatusCode::OK);
    // A typo is caught by the schema before it is stored; a permit is not a guardrail.
    let typo = r#"forbid(principal, action, resource) when { resource.sensitivty == "high" };"#;
    let (s, v) = t.call(Method::PUT, "/api/v1/guardrails/typo", Some(&admin), Some(json!({"policy": typo}))).await;
    assert!(assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation").contains("sensitivty"));
    let (s, v) = t
        .call(
            Method::PUT,
            "/api/v1/guardrails/open",
            Some(&admin),
            Some(json!({"policy": "permit(principal, action, resource);"})),
        )
        .await;
    assert!(assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation").contains("only forbid"));
    // Removing it lifts it on the next request.
    let (s, _) = t.call(Method::DELETE, "/api/v1/guardrails/high-needs-mfa", Some(&admin), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) =
        t.push("payments", &admin, bundle(&[("gatehouse.toml", &manifest("payments")), ("server.js", "1")])).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

async fn tenants_grant_nothing_across_orgs(b: Backend) {
    let t = app(b).await;
    let admin = t.admin().to_owned();
    let (s, created) =
        t.post("/api/v1/orgs", &admin, json!({"name": "tenant", "admin_email": "boss@tenant.example"})).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let tenant = created["token"]["secret"].as_str().unwrap().to_owned();
    let (s, _) = t.post("/api/v1/apps", &admin, json!({"name": "operator-app"})).await;
    assert_eq!(s, StatusCode::CREATED);
    // The tenant's admin holds org-admin on its own root, which reaches nothing of the operator's.
    let (s, _) = t.get("/api/v1/apps/operator-app", &tenant).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, groups) = t.get("/api/v1/groups", &tenant).await;
    assert_eq!(groups, json!([]));
    // Binding an operator principal in the tenant is refused: it does not exist there.
    let (s, _) = t
        .post(
            "/api/v1/role-bindings",
            &tenant,
            json!({"role": "viewer", "folder": "/", "principal_id": t.boot.admin.id}),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both_backends!(
    every_route_decides_authorization,
    roles_are_inherited_and_changes_apply_at_once,
    guardrails_forbid_and_are_checked,
    tenants_grant_nothing_across_orgs,
);
