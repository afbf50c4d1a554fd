//! Shared helpers: a router over a fresh store on either backend, requests, and bundles.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use gatehouse_bundle::{Node, Tree};
use gatehouse_server::{AppState, Config, build_router};
use gatehouse_store::{Bootstrap, NewOrg, Store};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A router over a fresh store with a bootstrapped operator org.
pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub store: Store,
    pub boot: Bootstrap,
    pub config: Config,
    _dir: Option<tempfile::TempDir>,
    _keys: tempfile::TempDir,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub async fn app(backend: Backend) -> TestApp {
    app_with(backend, Config::default()).await
}

pub async fn app_with(backend: Backend, config: Config) -> TestApp {
    let (store, dir) = match backend {
        Backend::Sqlite => {
            let (s, d) = gatehouse_store::testing::sqlite().await;
            (s, Some(d))
        }
        Backend::Postgres => (gatehouse_store::testing::postgres().await, None),
    };
    let boot = store
        .bootstrap_if_empty(NewOrg {
            name: "operator".into(),
            display_name: "Operator".into(),
            admin_email: "admin@operator.example".into(),
            admin_token_ttl: None,
        })
        .await
        .unwrap()
        .unwrap();
    let keys = tempfile::tempdir().unwrap();
    let mut config = config;
    config.vault.key_file = Some(keys.path().join("keys.json"));
    config.audit.key_file = Some(keys.path().join("audit-keys.json"));
    config.identity.token_key_file = Some(keys.path().join("token-keys.json"));
    let vault = gatehouse_server::vault::open_vault(
        store.clone(),
        &config,
        &std::collections::HashMap::<String, String>::new(),
    )
    .unwrap();
    let state = AppState::new(store.clone(), vault, &config).unwrap();
    state.scanner.clone().spawn_workers(config.scan.workers, std::time::Duration::from_millis(200));
    let router = build_router(state.clone());
    TestApp { router, state, store, boot, config, _dir: dir, _keys: keys }
}

impl TestApp {
    pub fn admin(&self) -> &str {
        &self.boot.token.secret
    }

    /// Sends a request and returns status, headers' content type and the body as JSON (or
    /// `Value::Null` when empty or not JSON).
    pub async fn raw(&self, req: Request<Body>) -> (StatusCode, String, Value) {
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let ct = res.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, ct, json)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(serde_json::to_vec(&b).unwrap()))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let (s, _, v) = self.raw(req).await;
        (s, v)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn push(&self, app: &str, token: &str, archive: Vec<u8>) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/apps/{app}/revisions"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/gzip")
            .body(Body::from(archive))
            .unwrap();
        let (s, _, v) = self.raw(req).await;
        (s, v)
    }

    /// A sign-in session for principal `id` of the operator org, made in the store (the sign-in
    /// flow itself is tested in sso.rs against a real provider).
    pub async fn session_for(&self, id: &gatehouse_core::PrincipalId) -> gatehouse_store::NewSession {
        let who = self.store.get_principal(&self.boot.org.id, id).await.unwrap();
        let limits = gatehouse_store::SessionLimits {
            idle: std::time::Duration::from_secs(3600),
            absolute: std::time::Duration::from_secs(7200),
        };
        let ctx = gatehouse_store::testing::ctx(&self.boot.org.id);
        self.store.create_session(&who, "browser", &gatehouse_store::Claims::default(), limits, &ctx).await.unwrap()
    }

    /// Creates an app at the root and returns its JSON.
    pub async fn create_app(&self, name: &str) -> Value {
        let (s, v) = self.post("/api/v1/apps", self.admin(), serde_json::json!({ "name": name })).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }
}

pub fn manifest(name: &str) -> String {
    format!("[app]\nname = \"{name}\"\nruntime = \"node20\"\nentry = \"server.js\"\n")
}

/// A tar.gz bundle of `files`.
pub fn bundle(files: &[(&str, &str)]) -> Vec<u8> {
    let mut t = Tree::default();
    for (p, c) in files {
        t.insert(p, Node::File { data: c.as_bytes().to_vec(), executable: false }).unwrap();
    }
    t.to_tar_gz()
}

/// Asserts a problem+json answer with `status` and `code`, returning its detail.
pub fn assert_problem(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], format!("https://gatehouse.dev/problems/{code}"), "{body}");
    assert_eq!(body["status"], want_status.as_u16(), "{body}");
    body["detail"].as_str().unwrap().to_owned()
}

/// Runs each listed async test fn against SQLite and PostgreSQL.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Sqlite).await; } )*
        }
        mod postgres {
            $( #[tokio::test] async fn $name() { super::$name($crate::common::Backend::Postgres).await; } )*
        }
    };
}

impl TestApp {
    pub fn config_default() -> Config {
        Config::default()
    }
}
