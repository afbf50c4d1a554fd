//! Service identities: client secrets, the client-credentials grant, access tokens verified by
//! the published JWKS, and their refusal when expired, altered, or the identity is deactivated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use common::{Backend, TestApp, app, app_with, assert_problem};
use serde_json::{Value, json};

async fn token_request(t: &TestApp, basic: Option<(&str, &str)>, form: &str) -> (StatusCode, Value) {
    use base64::Engine;
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/oauth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        let pair = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        req = req.header(header::AUTHORIZATION, format!("Basic {pair}"));
    }
    let (s, _, v) = t.raw(req.body(Body::from(form.to_owned())).unwrap()).await;
    (s, v)
}

/// A service identity with `builder` on the root and a client secret: (id, secret).
async fn service(t: &TestApp) -> (String, String) {
    let (s, p) =
        t.post("/api/v1/principals", t.admin(), json!({"kind": "service", "name": "etl", "max_scope": "write"})).await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    let id = p["id"].as_str().unwrap().to_owned();
    let (s, c) = t.call(Method::POST, &format!("/api/v1/principals/{id}/client-secrets"), Some(t.admin()), None).await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    assert_eq!(c["client_id"], id.as_str());
    (id, c["client_secret"].as_str().unwrap().to_owned())
}

async fn client_credentials_grant_and_jwks(b: Backend) {
    let t = app(b).await;
    let (id, secret) = service(&t).await;
    // client_secret_basic
    let (s, tok) = token_request(&t, Some((&id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::OK, "{tok}");
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok["expires_in"].as_u64().unwrap() <= 900);
    let access = tok["access_token"].as_str().unwrap().to_owned();
    // client_secret_post, with a narrower scope
    let (s, narrow) = token_request(
        &t,
        None,
        &format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope=read"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{narrow}");
    assert_eq!(narrow["scope"], "read");

    // The token is a JWT that the published JWKS verifies, independently of the server.
    let (s, jwks) = t.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    assert_eq!(s, StatusCode::OK);
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
    let header = jsonwebtoken::decode_header(&access).unwrap();
    assert_eq!(header.kid.as_deref(), jwk.common.key_id.as_deref());
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_audience(&["gatehouse-api"]);
    let claims =
        jsonwebtoken::decode::<Value>(&access, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap().claims;
    assert_eq!(claims["sub"], id.as_str());
    assert!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap() <= 900);

    // It authenticates API calls as the service identity, under its roles.
    let (s, me) = t.get("/api/v1/whoami", &access).await;
    assert_eq!(s, StatusCode::OK, "{me}");
    assert_eq!(me["principal"]["name"], "etl");
    let (s, v) = t.post("/api/v1/apps", &access, json!({"name": "etl-app"})).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = t.post("/api/v1/apps", narrow["access_token"].as_str().unwrap(), json!({"name": "nope"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a read-scoped access token wrote");

    // Altered: any change to payload or signature is refused.
    let mut parts: Vec<String> = access.split('.').map(str::to_owned).collect();
    let sig = parts[2].clone();
    parts[2] = format!("{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..]);
    let (s, v) = t.get("/api/v1/whoami", &parts.join(".")).await;
    assert!(assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated").contains("signature"));
    // A token signed by someone else's key, with the same claims, is refused.
    let other = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = header.kid.clone();
    let forged = jsonwebtoken::encode(
        &h,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(other.to_pkcs8_der().unwrap().as_bytes()),
    )
    .unwrap();
    let (s, _) = t.get("/api/v1/whoami", &forged).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Wrong secret, wrong grant, people: refused in OAuth's own error format.
    let (s, v) = token_request(&t, Some((&id, "gcs_wrong")), "grant_type=client_credentials").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_client")));
    let (s, v) = token_request(&t, Some((&id, &secret)), "grant_type=password").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("unsupported_grant_type")));
    let (s, v) = token_request(&t, Some((&id, &secret)), "grant_type=client_credentials&scope=root").await;
    assert_eq!((s, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some("invalid_scope")));
    let (s, _) = t
        .call(Method::POST, &format!("/api/v1/principals/{}/client-secrets", t.boot.admin.id), Some(t.admin()), None)
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "users get no client secrets");

    // Issues are audited; the secret and the token are in no record.
    let (_, events) = t.get("/api/v1/audit/events?action=auth.token.issue&limit=100", t.admin()).await;
    let text = events.to_string();
    assert!(text.contains("client_credentials"), "{text}");
    let all = t.get("/api/v1/audit/events?limit=1000", t.admin()).await.1.to_string();
    assert!(!all.contains(&secret) && !all.contains(&access), "a credential reached the audit log");
}

async fn deactivation_refuses_access_tokens_at_once(b: Backend) {
    let t = app(b).await;
    let (id, secret) = service(&t).await;
    let (_, tok) = token_request(&t, Some((&id, &secret)), "grant_type=client_credentials").await;
    let access = tok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(t.get("/api/v1/whoami", &access).await.0, StatusCode::OK);
    let (s, _) = t
        .call(Method::PATCH, &format!("/api/v1/principals/{id}"), Some(t.admin()), Some(json!({"active": false})))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = t.get("/api/v1/whoami", &access).await;
    assert!(assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated").contains("deactivated"));
    // Its secrets were revoked with it, so reactivation revives neither them nor the tokens
    // issued against them.
    t.call(Method::PATCH, &format!("/api/v1/principals/{id}"), Some(t.admin()), Some(json!({"active": true}))).await;
    let (s, _) = token_request(&t, Some((&id, &secret)), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = t.get("/api/v1/whoami", &access).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "an access token came back to life with its principal");
    // A new secret works again.
    let (_, c) = t.call(Method::POST, &format!("/api/v1/principals/{id}/client-secrets"), Some(t.admin()), None).await;
    let (s, _) =
        token_request(&t, Some((&id, c["client_secret"].as_str().unwrap())), "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::OK);
}

async fn access_tokens_expire(b: Backend) {
    let mut config = TestApp::config_default();
    config.identity.access_token_ttl = std::time::Duration::from_secs(1);
    let t = app_with(b, config).await;
    let (id, secret) = service(&t).await;
    let (_, tok) = token_request(&t, Some((&id, &secret)), "grant_type=client_credentials").await;
    let access = tok["access_token"].as_str().unwrap().to_owned();
    assert_eq!(tok["expires_in"], 1);
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (s, v) = t.get("/api/v1/whoami", &access).await;
    assert!(assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated").contains("expired"));
}

async fn signing_key_rotation(b: Backend) {
    let t = app(b).await;
    let (id, secret) = service(&t).await;
    let grant = || token_request(&t, Some((&id, &secret)), "grant_type=client_credentials");
    let kid = |jwt: &str| jsonwebtoken::decode_header(jwt).unwrap().kid.unwrap();
    let (_, a) = grant().await;
    let a = a["access_token"].as_str().unwrap().to_owned();
    let path = t.config.token_key_file();

    // Rotate as an operator would (`gatehouse admin rotate-token-key`); the server notices.
    let new_kid = gatehouse_server::oauth::rotate_key_file(&path, std::time::Duration::from_secs(900)).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, jwks) = t.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![new_kid.as_str(), kid(&a).as_str()], "both keys are published, the new one first");
    let (_, b) = grant().await;
    let b = b["access_token"].as_str().unwrap().to_owned();
    assert_eq!(kid(&b), new_kid, "new tokens are signed with the new key");
    for token in [&a, &b] {
        let (s, v) = t.get("/api/v1/whoami", token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    // Once the old key's tokens can no longer be live (here: a 0-second lifetime), a further
    // rotation drops it, and what it signed is refused.
    let newest = gatehouse_server::oauth::rotate_key_file(&path, std::time::Duration::ZERO).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, jwks) = t.call(Method::GET, "/.well-known/jwks.json", None, None).await;
    let kids: Vec<&str> = jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert_eq!(kids, vec![newest.as_str(), new_kid.as_str()]);
    let (s, v) = t.get("/api/v1/whoami", &a).await;
    assert!(assert_problem(s, &v, StatusCode::UNAUTHORIZED, "unauthenticated").contains("not signed by a key"));
    let (s, _) = t.get("/api/v1/whoami", &b).await;
    assert_eq!(s, StatusCode::OK);
}

both_backends!(
    client_credentials_grant_and_jwks,
    deactivation_refuses_access_tokens_at_once,
    access_tokens_expire,
    signing_key_rotation
);
