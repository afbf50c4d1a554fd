//! The HTTP API driven in-process, on SQLite and on PostgreSQL.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Backend, app, app_with, assert_problem, bundle, manifest};
use serde_json::{Value, json};

both_backends!(
    health_and_openapi,
    every_route_demands_a_token_and_its_scope,
    malformed_requests_get_named_4xx,
    orgs_cannot_see_each_other,
    push_history_and_diff,
    bad_bundles_are_refused_and_nothing_is_stored,
    oversized_bundles_are_refused,
    token_rules,
    deactivation_locks_out_at_once,
    folders_over_http,
    secrets_never_appear_after_creation,
    vault_secrets_are_write_only,
    vault_key_rotation_and_destruction,
    slow_requests_time_out,
    lists_page_with_link_headers,
);

async fn health_and_openapi(b: Backend) {
    let t = app(b).await;
    let (s, v) = t.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ok")));
    let (s, v) = t.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((s, v["status"].as_str()), (StatusCode::OK, Some("ready")));
    let (s, doc) = t.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"), "{}", doc["openapi"]);
    for path in ["/api/v1/apps/{app}/revisions", "/api/v1/apps/{app}/diff", "/api/v1/folders/{id}", "/api/v1/tokens"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from the OpenAPI document");
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

/// A value to put in each kind of path parameter.
fn fill(path: &str) -> String {
    path.replace("{id}", "x").replace("{app}", "some-app").replace("{rev}", "head")
}

/// Mutations a `read` token may make on its own behalf, with the reason.
const READ_MAY: [(&str, &str); 3] = [
    ("POST /api/v1/tokens", "a principal may mint tokens up to its own scope"),
    ("DELETE /api/v1/tokens/{id}", "a principal may revoke its own tokens"),
    ("DELETE /api/v1/sessions/{id}", "a principal may end its own sessions"),
];

async fn every_route_demands_a_token_and_its_scope(b: Backend) {
    let t = app(b).await;
    let (_, reader) = t
        .post(
            "/api/v1/principals",
            t.admin(),
            json!({ "kind": "user", "name": "reader@operator.example", "max_scope": "read" }),
        )
        .await;
    let (_, tok) = t
        .post("/api/v1/tokens", t.admin(), json!({ "name": "r", "scope": "read", "principal_id": reader["id"] }))
        .await;
    let read_token = tok["secret"].as_str().unwrap().to_owned();
    let doc = gatehouse_server::openapi();
    let mut checked = 0;
    for (path, item) in &doc.paths.paths {
        for (method, op) in [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_none() {
                continue;
            }
            let uri = fill(path);
            // No credential: 401, whatever the route.
            let (s, body) = t.call(method.clone(), &uri, None, Some(json!({}))).await;
            assert_problem(s, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
            // A garbage credential: 401 too.
            let (s, body) = t.call(method.clone(), &uri, Some("gat_not-a-real-token"), Some(json!({}))).await;
            assert_problem(s, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
            // A read token may not mutate, except where listed.
            let key = format!("{method} {path}");
            if method != Method::GET && !READ_MAY.iter().any(|(k, _)| *k == key) {
                let (s, body) = t.call(method.clone(), &uri, Some(&read_token), Some(json!({}))).await;
                assert_problem(s, &body, StatusCode::FORBIDDEN, "forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} operations found");
}

async fn malformed_requests_get_named_4xx(b: Backend) {
    let t = app(b).await;
    let send = |body: &'static str, ct: Option<&'static str>| {
        let mut r = Request::builder()
            .method(Method::POST)
            .uri("/api/v1/folders")
            .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()));
        if let Some(ct) = ct {
            r = r.header(header::CONTENT_TYPE, ct);
        }
        r.body(Body::from(body)).unwrap()
    };
    let (s, ct, v) = t.raw(send("{\"name\": ", Some("application/json"))).await;
    assert_eq!(ct, "application/problem+json");
    assert_problem(s, &v, StatusCode::BAD_REQUEST, "invalid-json");
    let (s, _, v) = t.raw(send("{\"name\": \"a\", \"colour\": 1}", Some("application/json"))).await;
    let d = assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(d.contains("unknown field `colour`"), "{d}");
    let (s, _, v) = t.raw(send("{\"name\": 42}", Some("application/json"))).await;
    let d = assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(d.contains("name") && d.contains("invalid type"), "{d}");
    let (s, _, v) = t.raw(send("{\"name\": \"a\"}", None)).await;
    assert_problem(s, &v, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    let (s, _, v) = t.raw(send("{\"name\": \"Not A Slug\"}", Some("application/json"))).await;
    let d = assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(d.contains("invalid folder name"), "{d}");

    // Oversized JSON.
    let mut small = common::TestApp::config_default();
    small.limits.max_json_bytes = 64;
    let t2 = app_with(b, small).await;
    let big = json!({ "name": "a".repeat(200) });
    let (s, v) = t2.post("/api/v1/folders", t2.admin(), big).await;
    assert_problem(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");

    let (s, v) = t.get("/api/v1/nowhere", t.admin()).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    let (s, v) = t.call(Method::PUT, "/api/v1/folders", Some(t.admin()), None).await;
    assert_problem(s, &v, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    let (s, v) = t.get("/api/v1/folders/not-an-id", t.admin()).await;
    let d = assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    assert!(d.contains("not a valid folder id"), "{d}");
    let (s, v) = t.get("/api/v1/apps?colour=red", t.admin()).await;
    assert_problem(s, &v, StatusCode::BAD_REQUEST, "bad-request");
    let (s, v) = t.call(Method::GET, "/api/v1/apps", Some(t.admin()), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Authorization headers of the wrong shape.
    for bad in ["Basic abc", "Bearer", "gat_x"] {
        let req =
            Request::builder().uri("/api/v1/apps").header(header::AUTHORIZATION, bad).body(Body::empty()).unwrap();
        let (s, _, v) = t.raw(req).await;
        assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
}

async fn orgs_cannot_see_each_other(b: Backend) {
    let t = app(b).await;
    let (s, created) =
        t.post("/api/v1/orgs", t.admin(), json!({ "name": "tenant", "admin_email": "boss@tenant.example" })).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let tenant = created["token"]["secret"].as_str().unwrap().to_owned();
    // A tenant admin is not an operator: it cannot create orgs or list others.
    let (s, v) = t.post("/api/v1/orgs", &tenant, json!({ "name": "other", "admin_email": "a@b.example" })).await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let (_, orgs) = t.get("/api/v1/orgs", &tenant).await;
    assert_eq!(orgs.as_array().unwrap().len(), 1);
    let op_org = t.boot.org.id.to_string();
    let (s, v) = t.get(&format!("/api/v1/orgs/{op_org}"), &tenant).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");

    // Objects of the operator org, addressed by id from the tenant.
    let app = t.create_app("ledger").await;
    let (s, _) =
        t.push("ledger", t.admin(), bundle(&[("gatehouse.toml", &manifest("ledger")), ("server.js", "1")])).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, folder) = t.post("/api/v1/folders", t.admin(), json!({ "name": "hr" })).await;
    let app_id = app["id"].as_str().unwrap();
    let folder_id = folder["id"].as_str().unwrap();
    let principal = t.boot.admin.id.to_string();
    let token = t.boot.token.token.id.to_string();
    for path in [
        format!("/api/v1/apps/{app_id}"),
        format!("/api/v1/apps/{app_id}/revisions"),
        format!("/api/v1/apps/{app_id}/revisions/head"),
        format!("/api/v1/apps/{app_id}/revisions/head/archive"),
        "/api/v1/apps/ledger".to_owned(),
        format!("/api/v1/folders/{folder_id}"),
        format!("/api/v1/principals/{principal}"),
    ] {
        let (s, v) = t.get(&path, &tenant).await;
        assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    }
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/tokens/{token}"), Some(&tenant), None).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/folders/{folder_id}"), Some(&tenant), None).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    let (s, v) = t.push(app_id, &tenant, bundle(&[("gatehouse.toml", &manifest("ledger")), ("server.js", "2")])).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    let (s, v) = t.post("/api/v1/apps", &tenant, json!({ "name": "sneaky", "folder": folder_id })).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
    let (_, apps) = t.get("/api/v1/apps", &tenant).await;
    assert_eq!(apps, json!([]));
    // The operator's data is untouched.
    let (_, revs) = t.get("/api/v1/apps/ledger/revisions", t.admin()).await;
    assert_eq!(revs.as_array().unwrap().len(), 1);
}

async fn push_history_and_diff(b: Backend) {
    let t = app(b).await;
    t.create_app("refunds").await;
    let v1 = bundle(&[("gatehouse.toml", &manifest("refunds")), ("server.js", "console.log(1)\n")]);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/apps/refunds/revisions?message=first&ai_agent=claude-code&ai_model=sonnet&ai_prompt_ids=p1,p2")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
        .header(header::CONTENT_TYPE, "application/gzip")
        .body(Body::from(v1.clone()))
        .unwrap();
    let (s, _, first) = t.raw(req).await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!(first["created"], true);
    let rev = &first["revision"];
    assert_eq!(rev["provenance"], json!({ "agent": "claude-code", "model": "sonnet", "prompt_ids": ["p1", "p2"] }));
    assert_eq!(rev["author_name"], "admin@operator.example");
    assert_eq!(rev["digest"].as_str().unwrap().len(), 64);
    // Same content again: idempotent.
    let (s, again) = t.push("refunds", t.admin(), v1).await;
    assert_eq!((s, &again["created"]), (StatusCode::OK, &json!(false)));
    assert_eq!(again["revision"]["digest"], rev["digest"]);

    let m2 = format!(
        "{}sensitivity = \"high\"\n[[integrations]]\nname = \"salesforce\"\nscopes = [\"GET /query\"]\n[egress]\nallow = [\"api.stripe.com\"]\n",
        manifest("refunds")
    );
    let (s, second) = t
        .push(
            "refunds",
            t.admin(),
            bundle(&[("gatehouse.toml", &m2), ("server.js", "console.log(2)\n"), ("new.js", "x")]),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{second}");
    assert_eq!(second["revision"]["parent"], rev["digest"]);
    let (_, app) = t.get("/api/v1/apps/refunds", t.admin()).await;
    assert_eq!(app["sensitivity"], "high", "a manifest raises sensitivity");
    assert_eq!(app["head_revision"], second["revision"]["digest"]);

    let (_, history) = t.get("/api/v1/apps/refunds/revisions", t.admin()).await;
    let numbers: Vec<i64> = history.as_array().unwrap().iter().map(|r| r["number"].as_i64().unwrap()).collect();
    assert_eq!(numbers, [2, 1]);

    let (s, d) = t.get("/api/v1/apps/refunds/diff?from=1&to=head", t.admin()).await;
    assert_eq!(s, StatusCode::OK, "{d}");
    let files: Vec<(&str, &str)> = d["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["path"].as_str().unwrap(), f["change"].as_str().unwrap()))
        .collect();
    assert_eq!(files, [("gatehouse.toml", "modified"), ("new.js", "added"), ("server.js", "modified")]);
    assert_eq!(
        d["capabilities"]["added"],
        json!([
            { "kind": "integration", "integration": "salesforce" },
            { "kind": "scope", "integration": "salesforce", "scope": "GET /query" },
            { "kind": "egress", "host": "api.stripe.com" }
        ])
    );
    assert_eq!(d["capabilities"]["sensitivity"], json!(["normal", "high"]));

    // The archive downloads as the canonical tar.gz whose digest is the revision id.
    let req = Request::builder()
        .uri("/api/v1/apps/refunds/revisions/1/archive")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
        .body(Body::empty())
        .unwrap();
    let res = tower::ServiceExt::oneshot(t.router.clone(), req).await.unwrap();
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/gzip");
    let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
    let tree = gatehouse_bundle::unpack(&bytes, &Default::default()).unwrap();
    assert_eq!(tree.digest().to_hex(), rev["digest"].as_str().unwrap());

    let (s, v) = t.get("/api/v1/apps/refunds/diff?from=1", t.admin()).await;
    let d = assert_problem(s, &v, StatusCode::BAD_REQUEST, "bad-request");
    assert!(d.contains("`to`"), "{d}");
    let (s, v) = t.get("/api/v1/apps/refunds/revisions/99", t.admin()).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
}

async fn history_len(t: &common::TestApp, app: &str) -> usize {
    let (_, h) = t.get(&format!("/api/v1/apps/{app}/revisions"), t.admin()).await;
    h.as_array().unwrap().len()
}

/// A tar with one entry whose name is written raw, as an attacker would.
fn raw_tar(name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_entry_type(kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    let m = manifest("victim");
    add("gatehouse.toml", tar::EntryType::Regular, None, m.as_bytes());
    add("server.js", tar::EntryType::Regular, None, b"1");
    add(name, kind, link, b"");
    b.into_inner().unwrap()
}

async fn bad_bundles_are_refused_and_nothing_is_stored(b: Backend) {
    let t = app(b).await;
    t.create_app("victim").await;
    let cases: Vec<(Vec<u8>, StatusCode, &str, &str)> = vec![
        (
            raw_tar("../../etc/cron.d/x", tar::EntryType::Regular, None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-bundle",
            "`..`",
        ),
        (
            raw_tar("/etc/passwd", tar::EntryType::Regular, None),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-bundle",
            "absolute",
        ),
        (
            raw_tar("evil", tar::EntryType::Symlink, Some("../../../etc")),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-bundle",
            "outside",
        ),
        (raw_tar("dev", tar::EntryType::Char, None), StatusCode::UNPROCESSABLE_ENTITY, "invalid-bundle", "device"),
        (
            b"this is not an archive at all, just some text padded out to more than a block".repeat(8),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-bundle",
            "not a valid tar",
        ),
        (bundle(&[("server.js", "1")]), StatusCode::UNPROCESSABLE_ENTITY, "invalid-manifest", "no `gatehouse.toml`"),
        (
            bundle(&[
                ("gatehouse.toml", "[app]\nname = \"victim\"\nruntime = \"cobol\"\nentry = \"server.js\"\n"),
                ("server.js", "1"),
            ]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-manifest",
            "unknown runtime",
        ),
        (
            bundle(&[("gatehouse.toml", &manifest("other-app")), ("server.js", "1")]),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-manifest",
            "names app `other-app`",
        ),
    ];
    for (archive, status, code, needle) in cases {
        let (s, v) = t.push("victim", t.admin(), archive).await;
        let d = assert_problem(s, &v, status, code);
        assert!(d.contains(needle), "{code}: {d}");
    }
    // Manifest errors carry file, line and column.
    let bad = "[app]\nname = \"victim\"\nruntime = \"node20\"\nentry = \"server.js\"\nsensitivity = \"extreme\"\n";
    let (s, v) = t.push("victim", t.admin(), bundle(&[("gatehouse.toml", bad), ("server.js", "1")])).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "invalid-manifest");
    assert_eq!(
        (v["location"]["file"].as_str(), v["location"]["line"].as_u64()),
        (Some("gatehouse.toml"), Some(5)),
        "{v}"
    );
    // Wrong media type.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/apps/victim/revisions")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (s, _, v) = t.raw(req).await;
    assert_problem(s, &v, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type");
    assert_eq!(history_len(&t, "victim").await, 0, "nothing was stored");
    let (_, app) = t.get("/api/v1/apps/victim", t.admin()).await;
    assert!(app["head_revision"].is_null());
}

async fn oversized_bundles_are_refused(b: Backend) {
    let mut config = common::TestApp::config_default();
    config.limits.max_bundle_bytes = 4096;
    config.limits.max_unpacked_bytes = 64 * 1024;
    let t = app_with(b, config).await;
    t.create_app("big").await;
    // Incompressible content larger than the upload limit.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: String = (0..20_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect();
    let (s, v) = t.push("big", t.admin(), bundle(&[("gatehouse.toml", &manifest("big")), ("server.js", &noise)])).await;
    assert_problem(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    // Small uploads that unpack past the limit: decompression bombs, one declaring a huge
    // entry, one made of many entries each under the limit.
    let zeros = "\0".repeat(1024 * 1024);
    let bomb = bundle(&[("gatehouse.toml", &manifest("big")), ("server.js", &zeros)]);
    assert!(bomb.len() < 4096, "bomb is {} bytes", bomb.len());
    let (s, v) = t.push("big", t.admin(), bomb).await;
    let d = assert_problem(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert!(d.contains("unpacks to more than"), "{d}");
    let chunk = "\0".repeat(60 * 1024);
    let names: Vec<String> = (0..16).map(|i| format!("pad{i}.bin")).collect();
    let mut files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), chunk.as_str())).collect();
    let m = manifest("big");
    files.push(("gatehouse.toml", &m));
    files.push(("server.js", "1"));
    let bomb = bundle(&files);
    assert!(bomb.len() < 4096, "bomb is {} bytes", bomb.len());
    let (s, v) = t.push("big", t.admin(), bomb).await;
    let d = assert_problem(s, &v, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    assert!(d.contains("unpacks to more than"), "{d}");
    assert_eq!(history_len(&t, "big").await, 0, "nothing was stored");
}

async fn token_rules(b: Backend) {
    let t = app(b).await;
    let (_, dev) = t
        .post(
            "/api/v1/principals",
            t.admin(),
            json!({ "kind": "user", "name": "dev@operator.example", "max_scope": "write" }),
        )
        .await;
    let (s, tok) = t
        .post(
            "/api/v1/tokens",
            t.admin(),
            json!({ "name": "dev", "scope": "push", "principal_id": dev["id"], "ttl_seconds": 3600 }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{tok}");
    let push_token = tok["secret"].as_str().unwrap().to_owned();
    // A push token cannot mint a write token for itself, nor act for others.
    let (s, v) = t.post("/api/v1/tokens", &push_token, json!({ "name": "up", "scope": "write" })).await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
    let (s, v) = t
        .post("/api/v1/tokens", &push_token, json!({ "name": "x", "scope": "read", "principal_id": t.boot.admin.id }))
        .await;
    assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
    // It can push but not create folders.
    let (s, v) = t.post("/api/v1/folders", &push_token, json!({ "name": "x" })).await;
    let d = assert_problem(s, &v, StatusCode::FORBIDDEN, "forbidden");
    assert!(d.contains("`write`"), "{d}");
    t.create_app("pushable").await;
    let (s, _) =
        t.push("pushable", &push_token, bundle(&[("gatehouse.toml", &manifest("pushable")), ("server.js", "1")])).await;
    assert_eq!(s, StatusCode::CREATED);
    // Expiry limits.
    let (s, v) = t
        .post("/api/v1/tokens", t.admin(), json!({ "name": "forever", "scope": "read", "ttl_seconds": 100_000_000 }))
        .await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    // Revocation takes effect on the next request.
    let id = tok["id"].as_str().unwrap();
    let (s, _) = t.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&push_token), None).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t.get("/api/v1/whoami", &push_token).await;
    let d = assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(d.contains("revoked"), "{d}");
    // Expired tokens are refused with a reason.
    let (_, short) =
        t.post("/api/v1/tokens", t.admin(), json!({ "name": "short", "scope": "read", "ttl_seconds": 1 })).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, v) = t.get("/api/v1/whoami", short["secret"].as_str().unwrap()).await;
    let d = assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated");
    assert!(d.contains("expired"), "{d}");
    // A max_scope caps what a token carries.
    let (s, v) =
        t.post("/api/v1/tokens", t.admin(), json!({ "name": "x", "scope": "admin", "principal_id": dev["id"] })).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

async fn deactivation_locks_out_at_once(b: Backend) {
    let t = app(b).await;
    let (_, user) = t
        .post(
            "/api/v1/principals",
            t.admin(),
            json!({ "kind": "user", "name": "leaver@operator.example", "max_scope": "write" }),
        )
        .await;
    let (_, tok) =
        t.post("/api/v1/tokens", t.admin(), json!({ "name": "l", "scope": "write", "principal_id": user["id"] })).await;
    let secret = tok["secret"].as_str().unwrap().to_owned();
    assert_eq!(t.get("/api/v1/whoami", &secret).await.0, StatusCode::OK);
    let id = user["id"].as_str().unwrap();
    let (s, v) = t
        .call(Method::PATCH, &format!("/api/v1/principals/{id}"), Some(t.admin()), Some(json!({ "active": false })))
        .await;
    assert_eq!((s, &v["active"]), (StatusCode::OK, &json!(false)));
    let (s, v) = t.get("/api/v1/whoami", &secret).await;
    assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated");
    // Admins cannot lock themselves out.
    let me = t.boot.admin.id.to_string();
    let (s, v) = t
        .call(Method::PATCH, &format!("/api/v1/principals/{me}"), Some(t.admin()), Some(json!({ "active": false })))
        .await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
}

async fn folders_over_http(b: Backend) {
    let t = app(b).await;
    let (s, fin) = t.post("/api/v1/folders", t.admin(), json!({ "name": "finance" })).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, sub) = t.post("/api/v1/folders", t.admin(), json!({ "name": "refunds", "parent": "/finance" })).await;
    assert_eq!(sub["path"], "/finance/refunds");
    let (s, v) = t.post("/api/v1/folders", t.admin(), json!({ "name": "finance" })).await;
    assert_problem(s, &v, StatusCode::CONFLICT, "conflict");
    let fin_id = fin["id"].as_str().unwrap();
    let (s, v) = t
        .call(
            Method::PATCH,
            &format!("/api/v1/folders/{fin_id}"),
            Some(t.admin()),
            Some(json!({ "parent": "/finance/refunds" })),
        )
        .await;
    let d = assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(d.contains("into itself"), "{d}");
    let (s, v) = t.call(Method::DELETE, &format!("/api/v1/folders/{fin_id}"), Some(t.admin()), None).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let sub_id = sub["id"].as_str().unwrap();
    let (s, _) = t.call(Method::DELETE, &format!("/api/v1/folders/{sub_id}"), Some(t.admin()), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t.post("/api/v1/folders", t.admin(), json!({ "name": "x", "parent": "/nope" })).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
}

async fn secrets_never_appear_after_creation(b: Backend) {
    let t = app(b).await;
    let (_, tok) = t.post("/api/v1/tokens", t.admin(), json!({ "name": "canary", "scope": "read" })).await;
    let secret = tok["secret"].as_str().unwrap().to_owned();
    let hex_part = &secret[4..];
    for path in ["/api/v1/tokens", "/api/v1/whoami", "/api/v1/principals", "/api/v1/orgs"] {
        let (_, v) = t.get(path, t.admin()).await;
        let text = v.to_string();
        assert!(!text.contains(hex_part) && !text.contains(&t.boot.token.secret[4..]), "{path} leaks a secret");
        assert!(!text.contains("secret_hash"), "{path} leaks a hash");
    }
    let _: Value = tok;
}

/// Random requests against every route never get a 5xx: bad input is always a 4xx.
#[test]
fn random_requests_never_get_a_server_error() {
    use proptest::prelude::*;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let t = rt.block_on(app(Backend::Sqlite));
    rt.block_on(async {
        t.create_app("target").await;
        let (s, _) =
            t.push("target", t.admin(), bundle(&[("gatehouse.toml", &manifest("target")), ("server.js", "1")])).await;
        assert_eq!(s, StatusCode::CREATED);
    });
    let templates: Vec<String> = gatehouse_server::openapi().paths.paths.keys().cloned().collect();
    let segment = prop_oneof![
        Just("target".to_owned()),
        Just("head".to_owned()),
        Just("1".to_owned()),
        "[a-z0-9_%.-]{0,40}",
        "\\PC{0,20}".prop_map(|s| s.replace(['/', '?', '#', ' '], "")),
    ];
    let body = prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..300),
        "\\PC{0,200}".prop_map(String::into_bytes),
        Just(br#"{"name": "x", "parent": null, "scope": "admin", "active": false, "kind": "user"}"#.to_vec()),
        Just(br#"{"name": ["x"], "ttl_seconds": -1, "sensitivity": "secret"}"#.to_vec()),
    ];
    let method = prop_oneof![
        Just(Method::GET),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::PUT)
    ];
    let content_type = prop_oneof![Just("application/json"), Just("application/gzip"), Just("text/plain")];
    let query = prop_oneof![Just(String::new()), "[a-z_=&0-9%]{0,40}".prop_map(|q| format!("?{q}"))];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig { cases: 400, ..ProptestConfig::default() });
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    runner
        .run(
            &(0..templates.len(), segment.clone(), segment, body, method, content_type, query),
            |(i, a, b, body, method, ct, query)| {
                let filled = fill_random(&templates[i], &a, &b);
                let uri = format!("{filled}{query}");
                let Ok(req) = Request::builder()
                    .method(method)
                    .uri(&uri)
                    .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
                    .header(header::CONTENT_TYPE, ct)
                    .body(Body::from(body))
                else {
                    return Ok(()); // not a valid URI at all; axum never sees it
                };
                let (status, _, v) = rt.block_on(t.raw(req));
                prop_assert!(!status.is_server_error(), "{uri} answered {status}: {v}");
                *seen.borrow_mut().entry(status.as_u16()).or_default() += 1;
                Ok(())
            },
        )
        .unwrap();
    // The generator reaches handlers, not only the router's edges.
    let seen = seen.into_inner();
    assert!(seen.get(&200).copied().unwrap_or(0) > 5, "{seen:?}");
    assert!(seen.keys().filter(|s| (400..500).contains(*s)).count() >= 4, "{seen:?}");
}

fn fill_random(template: &str, a: &str, b: &str) -> String {
    let mut out = String::new();
    let mut n = 0;
    for part in template.split('/') {
        if part.starts_with('{') {
            out.push_str(if n == 0 { a } else { b });
            n += 1;
        } else {
            out.push_str(part);
        }
        out.push('/');
    }
    out.pop();
    out
}

const CANARY: &str = "canary-vault-7f3a9c1e5d";

async fn vault_secrets_are_write_only(b: Backend) {
    let t = app(b).await;
    t.create_app("payments").await;
    let (_, folder) = t.post("/api/v1/folders", t.admin(), json!({ "name": "finance" })).await;
    let mut bodies = Vec::new();
    let (s, first) = t
        .post("/api/v1/secrets", t.admin(), json!({ "name": "STRIPE_KEY", "value": CANARY, "rotate_every_days": 30 }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{first}");
    assert_eq!((first["current_version"].as_i64(), first["scope_kind"].as_str()), (Some(1), Some("org")));
    bodies.push(first.to_string());
    let (s, second) =
        t.post("/api/v1/secrets", t.admin(), json!({ "name": "STRIPE_KEY", "value": format!("{CANARY}-v2") })).await;
    assert_eq!((s, second["current_version"].as_i64()), (StatusCode::OK, Some(2)));
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["rotate_every_days"], 30);
    bodies.push(second.to_string());
    let (s, scoped) = t
        .post("/api/v1/secrets", t.admin(), json!({ "name": "STRIPE_KEY", "value": CANARY, "folder": "/finance" }))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{scoped}");
    assert_eq!(scoped["scope_id"], folder["id"]);
    let (s, app_scoped) =
        t.post("/api/v1/secrets", t.admin(), json!({ "name": "DB_URL", "value": CANARY, "app": "payments" })).await;
    assert_eq!((s, app_scoped["scope_kind"].as_str()), (StatusCode::CREATED, Some("app")));
    bodies.push(scoped.to_string());
    bodies.push(app_scoped.to_string());

    let (s, v) = t
        .post(
            "/api/v1/secrets",
            t.admin(),
            json!({ "name": "X", "value": CANARY, "folder": "/finance", "app": "payments" }),
        )
        .await;
    bodies.push(v.to_string());
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let (s, v) = t.post("/api/v1/secrets", t.admin(), json!({ "name": "bad name!", "value": CANARY })).await;
    bodies.push(v.to_string());
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let (s, v) = t.post("/api/v1/secrets", t.admin(), json!({ "name": "NOVALUE" })).await;
    let d = assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(d.contains("missing field `value`"), "{d}");

    let (_, list) = t.get("/api/v1/secrets", t.admin()).await;
    assert_eq!(list.as_array().unwrap().len(), 3);
    bodies.push(list.to_string());
    let id = first["id"].as_str().unwrap();
    let (_, shown) = t.get(&format!("/api/v1/secrets/{id}"), t.admin()).await;
    bodies.push(shown.to_string());
    // There is no route that returns a value; the OpenAPI document says so too.
    let doc = serde_json::to_string(&gatehouse_server::openapi()).unwrap();
    assert!(!doc.contains("/secrets/{id}/value"));
    for body in &bodies {
        assert!(!body.contains(CANARY), "a response leaked the value: {body}");
    }
    let (s, _) = t.call(Method::DELETE, &format!("/api/v1/secrets/{id}"), Some(t.admin()), None).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = t.get(&format!("/api/v1/secrets/{id}"), t.admin()).await;
    assert_problem(s, &v, StatusCode::NOT_FOUND, "not-found");
}

async fn vault_key_rotation_and_destruction(b: Backend) {
    let t = app(b).await;
    t.post("/api/v1/secrets", t.admin(), json!({ "name": "K", "value": CANARY })).await;
    let (s, k) = t.get("/api/v1/vault/key", t.admin()).await;
    assert_eq!(
        (s, k["kek_ref"].as_str(), k["own_key"].as_bool()),
        (StatusCode::OK, Some("local:default"), Some(false))
    );
    let (s, v) = t.post("/api/v1/vault/key/destroy", t.admin(), json!({ "confirm": "operator" })).await;
    let d = assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    assert!(d.contains("default key"), "{d}");
    let (s, k) = t.post("/api/v1/vault/key/rotate", t.admin(), json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{k}");
    assert!(k["kek_ref"].as_str().unwrap().starts_with("local:org-"));
    // The background re-wrap finishes.
    for _ in 0..100 {
        let (_, k) = t.get("/api/v1/vault/key", t.admin()).await;
        if k["pending_rewrap"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, k) = t.get("/api/v1/vault/key", t.admin()).await;
    assert_eq!(k["pending_rewrap"], 0);
    let (s, v) = t.post("/api/v1/vault/key/rotate", t.admin(), json!({ "kek_ref": "nosuch:key" })).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let (s, v) = t.post("/api/v1/vault/key/destroy", t.admin(), json!({ "confirm": "wrong" })).await;
    assert_problem(s, &v, StatusCode::UNPROCESSABLE_ENTITY, "validation");
    let (s, k) = t.post("/api/v1/vault/key/destroy", t.admin(), json!({ "confirm": "operator" })).await;
    assert_eq!((s, k["destroyed"].as_bool()), (StatusCode::OK, Some(true)));
    let (s, v) = t.post("/api/v1/secrets", t.admin(), json!({ "name": "K", "value": "new-value-after-shred" })).await;
    assert_problem(s, &v, StatusCode::GONE, "key-destroyed");
}

async fn slow_requests_time_out(b: Backend) {
    let mut config = common::TestApp::config_default();
    config.limits.request_timeout = std::time::Duration::from_millis(300);
    let t = app_with(b, config).await;
    t.create_app("slow").await;
    // A client that sends a first chunk of its bundle and then nothing.
    let first = futures_util::stream::iter([Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"\x1f\x8b"))]);
    let stalled = futures_util::StreamExt::chain(first, futures_util::stream::pending());
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/apps/slow/revisions")
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
        .header(header::CONTENT_TYPE, "application/gzip")
        .body(Body::from_stream(stalled))
        .unwrap();
    let (s, ct, v) = t.raw(req).await;
    assert_eq!(ct, "application/problem+json");
    assert_problem(s, &v, StatusCode::REQUEST_TIMEOUT, "timeout");
    assert_eq!(history_len(&t, "slow").await, 0);
}

async fn lists_page_with_link_headers(b: Backend) {
    let t = app(b).await;
    for name in ["e-app", "a-app", "d-app", "b-app", "c-app"] {
        t.create_app(name).await;
    }
    let mut seen = Vec::new();
    let mut uri = "/api/v1/apps?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let req = Request::builder()
            .uri(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
            .body(Body::empty())
            .unwrap();
        let res = tower::ServiceExt::oneshot(t.router.clone(), req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let link = res.headers().get(header::LINK).map(|v| v.to_str().unwrap().to_owned());
        let bytes = http_body_util::BodyExt::collect(res.into_body()).await.unwrap().to_bytes();
        let page: Vec<Value> = serde_json::from_slice(&bytes).unwrap();
        seen.extend(page.iter().map(|a| a["name"].as_str().unwrap().to_owned()));
        pages += 1;
        match link {
            Some(l) => {
                assert!(l.ends_with("; rel=\"next\""), "{l}");
                uri = l.trim_start_matches('<').split('>').next().unwrap().to_owned();
                assert!(uri.contains("limit=2"), "the next link keeps the other parameters: {uri}");
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, ["a-app", "b-app", "c-app", "d-app", "e-app"]);
    assert_eq!(pages, 3);
    for bad in
        ["/api/v1/apps?limit=0", "/api/v1/apps?limit=1001", "/api/v1/tokens?limit=-1", "/api/v1/secrets?limit=abc"]
    {
        let (s, v) = t.get(bad, t.admin()).await;
        assert_problem(s, &v, StatusCode::BAD_REQUEST, "bad-request");
    }
    // Tokens page newest first; every token appears exactly once.
    for i in 0..3 {
        t.post("/api/v1/tokens", t.admin(), json!({ "name": format!("t{i}"), "scope": "read" })).await;
    }
    let (_, first) = t.get("/api/v1/tokens?limit=2", t.admin()).await;
    let (_, all) = t.get("/api/v1/tokens", t.admin()).await;
    assert_eq!(all.as_array().unwrap().len(), 4);
    assert_eq!(first.as_array().unwrap()[..], all.as_array().unwrap()[..2]);
    let last = first[1]["id"].as_str().unwrap();
    let (_, rest) = t.get(&format!("/api/v1/tokens?after={last}"), t.admin()).await;
    assert_eq!(rest.as_array().unwrap()[..], all.as_array().unwrap()[2..]);
}
