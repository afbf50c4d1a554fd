//! Single sign-on against a real OpenID provider (`oidc-provider` on Node.js, started per test on
//! loopback): sign-in with PKCE and nonce, MFA from `amr` into guardrails, groups from the id
//! token, refused id tokens (expired, tampered, wrong audience or issuer, replayed nonce, foreign
//! key), provider key rotation, sessions' idle and absolute ends, sign-out with RP-initiated
//! logout, the CLI's loopback sign-in, SCIM deprovisioning ending sessions, and the bootstrap
//! token disabled once SSO is configured.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{Backend, TestApp};
use gatehouse_server::config::SsoSettings;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::AsyncBufReadExt;

const ORG: &str = "operator";

/// The provider process; killed when dropped.
struct Idp {
    issuer: String,
    _child: tokio::process::Child,
}

fn provider_modules() -> String {
    std::env::var("GATEHOUSE_TEST_OIDC_MODULES").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/gatehouse-tools/oidc-provider/node_modules")
    })
}

async fn start_idp(gatehouse: &str) -> Idp {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs");
    let modules = provider_modules();
    assert!(
        std::path::Path::new(&modules).join("oidc-provider").exists(),
        "oidc-provider is not installed at {modules}; run the tests with scripts/test (scripts/setup installs it)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg(script)
        .arg(&modules)
        .arg(format!("{gatehouse}/auth/callback"))
        .arg(format!("{gatehouse}/auth/logged-out"))
        .stdout(std::process::Stdio::piped())
        .stderr(if std::env::var_os("GATEHOUSE_TEST_OIDC_DEBUG").is_some() {
            std::process::Stdio::inherit()
        } else {
            std::process::Stdio::null()
        })
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(i) = line.strip_prefix("listening ") {
                return i.to_owned();
            }
        }
        panic!("the provider exited before listening")
    })
    .await
    .expect("the provider did not start");
    // Keep reading what it prints, or its next write fails on a closed pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Idp { issuer, _child: child }
}

/// Gatehouse serving on a loopback port with `org` signing in through a fresh provider.
struct Env {
    t: TestApp,
    idp: Idp,
    base: String,
    _secret: tempfile::TempDir,
}

async fn env_with(b: Backend, tweak: impl FnOnce(&mut SsoSettings)) -> Env {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let idp = start_idp(&base).await;
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("oidc-secret");
    std::fs::write(&secret_file, "gatehouse-test-secret\n").unwrap();
    let mut sso = SsoSettings {
        org: ORG.to_owned(),
        discovery_url: format!("{}/.well-known/openid-configuration", idp.issuer),
        client_id: "gatehouse".to_owned(),
        client_secret_file: Some(secret_file),
        client_secret_env: None,
        redirect_url: None,
        post_logout_redirect_url: None,
        scopes: ["openid", "email", "profile", "groups"].map(str::to_owned).to_vec(),
        jit_users: true,
        groups_claim: Some("groups".to_owned()),
        mfa_amr: vec!["mfa".to_owned()],
        mfa_acr: Vec::new(),
        session_idle: Duration::from_secs(3600),
        session_absolute: Duration::from_secs(12 * 3600),
    };
    tweak(&mut sso);
    let mut config = TestApp::config_default();
    config.identity.public_url = Some(base.clone());
    config.identity.sso = vec![sso];
    config.validate().unwrap();
    let t = common::app_with(b, config).await;
    let router = t.router.clone();
    tokio::spawn(async move {
        gatehouse_server::serve(listener, router, std::future::pending()).await.unwrap();
    });
    Env { t, idp, base, _secret: dir }
}

async fn env(b: Backend) -> Env {
    env_with(b, |_| {}).await
}

/// A browser: keeps the provider's cookies, follows no redirects by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn location(res: &reqwest::Response, from: &str) -> String {
    let loc = res.headers().get("location").unwrap_or_else(|| panic!("no redirect from {from}")).to_str().unwrap();
    url::Url::parse(from).unwrap().join(loc).unwrap().to_string()
}

/// Who signs in and what the provider says about it.
struct Person<'a> {
    login: &'a str,
    amr: &'a str,
    groups: &'a str,
}

/// The end of a sign-in: Gatehouse's answer to the provider's redirect back.
struct Outcome {
    status: StatusCode,
    cookie: Option<String>,
    location: Option<String>,
    body: Value,
}

/// Follows the sign-in as a browser would: Gatehouse → provider → login form → provider →
/// Gatehouse's callback (or the CLI's loopback URL, which is not followed).
async fn sign_in_at(e: &Env, browser: &reqwest::Client, start: &str, who: &Person<'_>) -> Outcome {
    let mut url = start.to_owned();
    for _ in 0..20 {
        let res = browser.get(&url).send().await.unwrap();
        if url.starts_with(&format!("{}/auth/callback", e.base)) {
            let status = res.status();
            let cookie = res.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_owned());
            let location = res.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
            let body = res.json().await.unwrap_or(Value::Null);
            return Outcome { status, cookie, location, body };
        }
        if res.status().is_redirection() {
            url = location(&res, &url);
            if !url.starts_with(&e.base) && !url.starts_with(&e.idp.issuer) {
                // The CLI's loopback listener.
                return Outcome { status: StatusCode::FOUND, cookie: None, location: Some(url), body: Value::Null };
            }
            continue;
        }
        assert_eq!(res.status(), StatusCode::OK, "{url}: {}", res.text().await.unwrap());
        assert!(url.contains("/interaction/"), "unexpected page {url}");
        // The login page: fill in the form.
        let res = browser
            .post(&url)
            .form(&[("login", who.login), ("amr", who.amr), ("groups", who.groups), ("name", "Test Person")])
            .send()
            .await
            .unwrap();
        url = location(&res, &url);
    }
    panic!("the sign-in did not finish")
}

async fn sign_in(e: &Env, who: &Person<'_>) -> Outcome {
    sign_in_at(e, &browser(), &format!("{}/auth/login?org={ORG}", e.base), who).await
}

/// The session cookie (`name=value`) out of a Set-Cookie header, checking its attributes.
fn session_cookie(set_cookie: &str) -> String {
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie} lacks {attr}");
    }
    set_cookie.split(';').next().unwrap().to_owned()
}

async fn api(e: &Env, method: reqwest::Method, path: &str, cookie: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new().request(method, format!("{}{path}", e.base)).header("cookie", cookie);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn audit_records(e: &Env, action: &str) -> Vec<Value> {
    let (_, v) = e.t.get(&format!("/api/v1/audit/events?action={action}&limit=200"), e.t.admin()).await;
    v.as_array().cloned().unwrap_or_default()
}

async fn sign_in_mfa_groups_and_guardrails(b: Backend) {
    let e = env(b).await;
    let t = &e.t;
    // The org's group `finance` holds builder on the root; a guardrail wants MFA to change apps.
    let (_, g) = t.post("/api/v1/groups", t.admin(), json!({"name": "finance"})).await;
    let (s, v) = t
        .post("/api/v1/role-bindings", t.admin(), json!({"role": "builder", "folder": "/", "group_id": g["id"]}))
        .await;
    assert_eq!(s, reqwest::StatusCode::CREATED.as_u16(), "{v}");
    t.create_app("ledger").await;
    let guardrail = r#"forbid(principal, action == Gatehouse::Action::"app.update", resource) unless { context.mfa };"#;
    let (s, v) = t
        .call(
            axum::http::Method::PUT,
            "/api/v1/guardrails/updates-need-mfa",
            Some(t.admin()),
            Some(json!({"policy": guardrail})),
        )
        .await;
    assert!(s.is_success(), "{v}");

    // Alice signs in with MFA, in finance: a user is created just in time, in the group.
    let alice = sign_in(&e, &Person { login: "alice", amr: "pwd,mfa", groups: "finance,unknown-group" }).await;
    assert_eq!(alice.status, StatusCode::SEE_OTHER, "{}", alice.body);
    assert_eq!(alice.location.as_deref(), Some("/api/v1/whoami"));
    let cookie = session_cookie(alice.cookie.as_deref().unwrap());
    let (s, me) = api(&e, reqwest::Method::GET, "/api/v1/whoami", &cookie, None).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["principal"]["name"], "alice@example.com");
    assert_eq!(me["credential"], "session");
    assert_eq!(me["sign_in"]["mfa"], true);
    assert_eq!(me["sign_in"]["amr"], json!(["pwd", "mfa"]));
    let (s, _) =
        api(&e, reqwest::Method::PATCH, "/api/v1/apps/ledger", &cookie, Some(json!({"description": "mfa"}))).await;
    assert_eq!(s, StatusCode::OK, "with MFA the guardrail lets the builder change the app");
    // An explicit token wins over a session cookie sent alongside it.
    let res = reqwest::Client::new()
        .get(format!("{}/api/v1/whoami", e.base))
        .header("cookie", &cookie)
        .bearer_auth(t.admin())
        .send()
        .await
        .unwrap();
    let both: Value = res.json().await.unwrap();
    assert_eq!(both["principal"]["name"], "admin@operator.example", "{both}");

    // Bob signs in with a password only: same role, refused by the guardrail.
    let bob = sign_in(&e, &Person { login: "bob", amr: "pwd", groups: "finance" }).await;
    let bob_cookie = session_cookie(bob.cookie.as_deref().unwrap());
    let (s, v) =
        api(&e, reqwest::Method::PATCH, "/api/v1/apps/ledger", &bob_cookie, Some(json!({"description": "x"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["detail"].as_str().unwrap().contains("guardrail:updates-need-mfa"), "{v}");
    let (s, _) = api(&e, reqwest::Method::GET, "/api/v1/apps/ledger", &bob_cookie, None).await;
    assert_eq!(s, StatusCode::OK, "reads are not guarded");

    // A cross-site form post with the cookie is refused.
    let res = reqwest::Client::new()
        .patch(format!("{}/api/v1/apps/ledger", e.base))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .json(&json!({"description": "csrf"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    // Group membership follows the claim at each sign-in: without `finance`, no builder role.
    let again = sign_in(&e, &Person { login: "bob", amr: "pwd", groups: "" }).await;
    let c = session_cookie(again.cookie.as_deref().unwrap());
    let (s, _) = api(&e, reqwest::Method::GET, "/api/v1/apps/ledger", &c, None).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Sign-ins are audited with the MFA facts; the session secret is in no record.
    let logins = audit_records(&e, "auth.login").await;
    assert!(
        logins.iter().any(|r| r["actor"]["name"] == "alice@example.com" && r["details"]["mfa"] == true),
        "{logins:?}"
    );
    let all = serde_json::to_string(&audit_records(&e, "").await).unwrap();
    assert!(!all.contains(cookie.split('=').nth(1).unwrap()));
    assert!(!all.contains("gatehouse-test-secret"), "the OIDC client secret reached the audit log");
}

async fn bad_id_tokens_are_refused(b: Backend) {
    let e = env(b).await;
    let http = reqwest::Client::new();
    for mode in ["expired", "wrong_audience", "wrong_issuer", "bad_nonce", "tampered", "foreign_key"] {
        http.post(format!("{}/__mode?m={mode}", e.idp.issuer)).send().await.unwrap();
        let out = sign_in(&e, &Person { login: "carol", amr: "pwd", groups: "" }).await;
        assert_eq!(out.status, StatusCode::UNAUTHORIZED, "{mode}: {}", out.body);
        assert_eq!(out.body["type"], "https://gatehouse.dev/problems/sign-in-failed", "{mode}");
        assert!(out.cookie.is_none(), "{mode}: a session was started");
        let detail = out.body["detail"].as_str().unwrap();
        assert!(detail.contains("id token was refused"), "{mode}: {detail}");
    }
    let failed = audit_records(&e, "auth.login").await;
    assert_eq!(failed.iter().filter(|r| r["outcome"] == "failed").count(), 6, "{failed:?}");
    assert!(failed.iter().all(|r| r["outcome"] == "failed"));
    // The same person signs in fine with an honest token; a replayed state is refused.
    let ok = sign_in(&e, &Person { login: "carol", amr: "pwd", groups: "" }).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    let res = reqwest::get(format!("{}/auth/callback?code=x&state=never-issued", e.base)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

async fn provider_key_rotation(b: Backend) {
    let e = env(b).await;
    let first = sign_in(&e, &Person { login: "dave", amr: "pwd", groups: "" }).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let rotated: Value =
        reqwest::Client::new().post(format!("{}/__rotate", e.idp.issuer)).send().await.unwrap().json().await.unwrap();
    // Gatehouse cached the provider's keys at the first sign-in; the new key is not among them.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = sign_in(&e, &Person { login: "dave", amr: "pwd", groups: "" }).await;
    assert_eq!(second.status, StatusCode::SEE_OTHER, "after rotation to {}: {}", rotated["kid"], second.body);
}

async fn sessions_end_by_logout_idle_and_absolute_time(b: Backend) {
    let e = env_with(b, |s| {
        s.session_idle = Duration::from_secs(2);
        s.session_absolute = Duration::from_secs(4);
    })
    .await;
    let who = Person { login: "erin", amr: "pwd", groups: "" };

    // Sign-out: the session is revoked and the provider's logout completes.
    let browser = browser();
    let out = sign_in_at(&e, &browser, &format!("{}/auth/login?org={ORG}", e.base), &who).await;
    let cookie = session_cookie(out.cookie.as_deref().unwrap());
    let (s, v) = api(&e, reqwest::Method::POST, "/auth/logout", &cookie, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let end = v["end_session_url"].as_str().unwrap().to_owned();
    assert!(end.starts_with(&format!("{}/session/end", e.idp.issuer)), "{end}");
    assert!(end.contains("client_id=gatehouse") && end.contains("post_logout_redirect_uri="), "{end}");
    let (s, _) = api(&e, reqwest::Method::GET, "/api/v1/whoami", &cookie, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a signed-out session still works");
    // The browser goes on to the provider, confirms, and comes back to Gatehouse.
    let page = browser.get(&end).send().await.unwrap().text().await.unwrap();
    let xsrf = page.split("name=\"xsrf\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let res = browser
        .post(format!("{}/session/end/confirm", e.idp.issuer))
        .form(&[("xsrf", xsrf.as_str()), ("logout", "yes")])
        .send()
        .await
        .unwrap();
    assert_eq!(location(&res, &e.idp.issuer), format!("{}/auth/logged-out", e.base));
    let logouts = audit_records(&e, "auth.logout").await;
    assert_eq!(logouts.len(), 1);

    // Idle: unused for longer than the idle timeout.
    let out = sign_in(&e, &who).await;
    let cookie = session_cookie(out.cookie.as_deref().unwrap());
    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (s, v) = api(&e, reqwest::Method::GET, "/api/v1/whoami", &cookie, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");

    // Absolute: used every second, still ends at its absolute limit.
    let out = sign_in(&e, &who).await;
    let cookie = session_cookie(out.cookie.as_deref().unwrap());
    let started = std::time::Instant::now();
    let mut refused_after = None;
    while started.elapsed() < Duration::from_secs(6) {
        let (s, _) = api(&e, reqwest::Method::GET, "/api/v1/whoami", &cookie, None).await;
        if s == StatusCode::UNAUTHORIZED {
            refused_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let after = refused_after.expect("the session outlived its absolute limit");
    assert!(after >= Duration::from_secs(3), "refused too early: {after:?}");
}

async fn who_may_sign_in(b: Backend) {
    let e = env_with(b, |s| s.jit_users = false).await;
    let t = &e.t;
    // Not provisioned, no just-in-time users: refused and audited.
    let out = sign_in(&e, &Person { login: "frank", amr: "pwd", groups: "" }).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert!(out.body["detail"].as_str().unwrap().contains("no Gatehouse user"), "{}", out.body);

    // Provisioned through SCIM (matched by email on first sign-in): signs in.
    let (_, st) = t.post("/api/v1/scim-tokens", t.admin(), json!({})).await;
    let st = st["token"].as_str().unwrap().to_owned();
    let req = axum::http::Request::builder()
        .method("POST")
        .uri("/scim/v2/Users")
        .header("authorization", format!("Bearer {st}"))
        .header("content-type", "application/scim+json")
        .body(axum::body::Body::from(
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "frank@example.com"})
                .to_string(),
        ))
        .unwrap();
    let (s, _, user) = t.raw(req).await;
    assert_eq!(s.as_u16(), 201);
    let out = sign_in(&e, &Person { login: "frank", amr: "pwd", groups: "" }).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER, "{}", out.body);
    let links = audit_records(&e, "principal.sso.link").await;
    assert_eq!(links.len(), 1, "linking the provider's subject to the user is audited");
    let cookie = session_cookie(out.cookie.as_deref().unwrap());
    let (s, me) = api(&e, reqwest::Method::GET, "/api/v1/whoami", &cookie, None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(me["principal"]["id"], user["id"]);

    // Deprovisioned through SCIM: the session ends on the very next request.
    let req = axum::http::Request::builder()
        .method("PATCH")
        .uri(format!("/scim/v2/Users/{}", user["id"].as_str().unwrap()))
        .header("authorization", format!("Bearer {st}"))
        .header("content-type", "application/scim+json")
        .body(axum::body::Body::from(
            json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                   "Operations": [{"op": "Replace", "value": {"active": "False"}}]})
            .to_string(),
        ))
        .unwrap();
    let (s, _, _) = t.raw(req).await;
    assert_eq!(s.as_u16(), 200);
    let (s, _) = api(&e, reqwest::Method::GET, "/api/v1/whoami", &cookie, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // And cannot sign in again while deactivated.
    let out = sign_in(&e, &Person { login: "frank", amr: "pwd", groups: "" }).await;
    assert_eq!(out.status, StatusCode::UNAUTHORIZED);
    assert!(out.body["detail"].as_str().unwrap().contains("deactivated"), "{}", out.body);

    // Once SSO is configured the bootstrap token stops working — that token, not any token
    // someone named "bootstrap".
    let (s, _) = t.get("/api/v1/whoami", t.admin()).await;
    assert_eq!(s.as_u16(), 200);
    let (_, named) = t.post("/api/v1/tokens", t.admin(), json!({"name": "bootstrap", "scope": "read"})).await;
    gatehouse_server::sso::disable_bootstrap_tokens(&t.state).await.unwrap();
    let (s, _) = t.get("/api/v1/whoami", t.admin()).await;
    assert_eq!(s.as_u16(), 401);
    let (s, _) = t.get("/api/v1/whoami", named["secret"].as_str().unwrap()).await;
    assert_eq!(s.as_u16(), 200, "a token merely named bootstrap was revoked");
}

async fn cli_signs_in_through_the_browser(b: Backend) {
    use base64::Engine;
    use sha2::Digest;
    let e = env(b).await;
    let verifier = "a-cli-verifier-that-is-long-enough-to-be-unguessable-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier));
    let start = format!(
        "{}/auth/login?org={ORG}&cli_redirect={}&cli_challenge={challenge}",
        e.base,
        url::form_urlencoded::byte_serialize(b"http://127.0.0.1:45678/callback").collect::<String>()
    );
    let out = sign_in_at(&e, &browser(), &start, &Person { login: "gina", amr: "pwd,mfa", groups: "" }).await;
    let loopback = out.location.unwrap();
    assert!(loopback.starts_with("http://127.0.0.1:45678/callback?code="), "{loopback}");
    let code = url::Url::parse(&loopback).unwrap().query_pairs().find(|(k, _)| k == "code").unwrap().1.to_string();
    let http = reqwest::Client::new();
    let exchange = |code: String, verifier: &'static str| {
        http.post(format!("{}/auth/cli/token", e.base)).json(&json!({"code": code, "verifier": verifier})).send()
    };
    let res = exchange(code.clone(), "wrong-verifier").await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "a wrong verifier was accepted");
    // The code was spent by the failed attempt too: one try only.
    let res = exchange(code, verifier).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let out = sign_in_at(&e, &browser(), &start, &Person { login: "gina", amr: "pwd,mfa", groups: "" }).await;
    let code = url::Url::parse(&out.location.unwrap())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();
    let tok: Value = exchange(code, verifier).await.unwrap().json().await.unwrap();
    let session = tok["session_token"].as_str().unwrap();
    assert!(session.starts_with("gss_"));
    let me: Value =
        http.get(format!("{}/api/v1/whoami", e.base)).bearer_auth(session).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["principal"]["name"], "gina@example.com");
    assert_eq!(me["sign_in"]["mfa"], true);

    // Only loopback redirects are accepted for the CLI.
    let res = browser()
        .get(format!(
            "{}/auth/login?org={ORG}&cli_redirect=https%3A%2F%2Fevil.example%2Fcb&cli_challenge={challenge}",
            e.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = browser().get(format!("{}/auth/login?org={ORG}&return_to=//evil.example", e.base)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Malformed sign-in requests are named problems, not bare text.
    for path in ["/auth/login", "/auth/login?org=nope", "/auth/callback?code=x"] {
        let res = browser().get(format!("{}{path}", e.base)).send().await.unwrap();
        assert!(res.status().is_client_error(), "{path}");
        assert_eq!(res.headers()["content-type"], "application/problem+json", "{path}");
    }
}

/// The hidden inputs and the action of the first form on an HTML page (the provider's pages).
fn form_of(page: &str) -> (String, Vec<(String, String)>) {
    let form = &page[page.find("<form").expect("a form")..];
    let action = form.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_owned();
    let mut fields = Vec::new();
    for tag in form.split("<input").skip(1) {
        let tag = tag.split('>').next().unwrap();
        let attr =
            |name: &str| tag.split(&format!("{name}=\"")).nth(1).map(|v| v.split('"').next().unwrap().to_owned());
        if let (Some(n), Some(v)) = (attr("name"), attr("value")) {
            fields.push((n, v));
        }
    }
    (action, fields)
}

async fn cli_signs_in_with_the_device_flow(b: Backend) {
    let e = env(b).await;
    let http = reqwest::Client::new();
    let start: Value = http
        .post(format!("{}/auth/device", e.base))
        .json(&json!({"org": ORG}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let device_id = start["device_id"].as_str().unwrap().to_owned();
    assert!(start["user_code"].as_str().is_some_and(|c| !c.is_empty()), "{start}");
    let poll = || http.post(format!("{}/auth/device/token", e.base)).json(&json!({"device_id": device_id})).send();
    let res = poll().await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED, "nobody has signed in yet");

    // On another device: the verification page, confirm the code, sign in.
    let browser = browser();
    let mut url = start["verification_uri_complete"].as_str().unwrap().to_owned();
    let page = browser.get(&url).send().await.unwrap().text().await.unwrap();
    let (action, mut fields) = form_of(&page);
    fields.push(("confirm".to_owned(), "yes".to_owned()));
    let res = browser.post(url::Url::parse(&url).unwrap().join(&action).unwrap()).form(&fields).send().await.unwrap();
    url = location(&res, &url);
    for _ in 0..10 {
        let res = browser.get(&url).send().await.unwrap();
        if res.status().is_redirection() {
            url = location(&res, &url);
            continue;
        }
        let text = res.text().await.unwrap();
        if text.contains("Signed in on your device") {
            break;
        }
        assert!(url.contains("/interaction/"), "{url}: {text}");
        let res =
            browser.post(&url).form(&[("login", "hana"), ("amr", "pwd,mfa"), ("groups", "")]).send().await.unwrap();
        url = location(&res, &url);
    }

    let res = poll().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let tok: Value = res.json().await.unwrap();
    let session = tok["session_token"].as_str().unwrap().to_owned();
    let me: Value =
        http.get(format!("{}/api/v1/whoami", e.base)).bearer_auth(&session).send().await.unwrap().json().await.unwrap();
    assert_eq!(me["principal"]["name"], "hana@example.com");
    assert_eq!(me["sign_in"]["mfa"], true);
    // Done once: the same device sign-in cannot start a second session.
    let res = poll().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res =
        http.post(format!("{}/auth/device/token", e.base)).json(&json!({"device_id": "nope"})).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

both_backends!(
    cli_signs_in_with_the_device_flow,
    sign_in_mfa_groups_and_guardrails,
    bad_id_tokens_are_refused,
    provider_key_rotation,
    sessions_end_by_logout_idle_and_absolute_time,
    who_may_sign_in,
    cli_signs_in_through_the_browser
);
