//! The control plane's HTTP API: `/healthz`, `/readyz`, and the JSON API under `/api/v1` with its
//! OpenAPI document, generated from the handlers so the two cannot drift.

pub mod audit;
pub mod authz;
pub mod config;
pub mod error;
pub mod export;
mod extract;
pub mod oauth;
mod routes;
pub mod scan;
mod scim;
pub mod sso;
pub mod tls;
pub mod vault;

use std::future::Future;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use gatehouse_bundle::Limits;
use gatehouse_store::Store;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use config::Config;
pub use error::{ApiError, Problem};
pub use routes::audit::VerifyResult;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub store: Store,
    /// Secrets.
    pub vault: gatehouse_vault::Vault,
    /// Bundle limits.
    pub limits: Limits,
    /// Largest JSON body.
    pub max_json_bytes: usize,
    /// Longest a request may take.
    pub request_timeout: std::time::Duration,
    /// Checkpoint signing and detail HMAC keys.
    pub audit: std::sync::Arc<audit::AuditKeys>,
    /// Group commit for records that accompany no change.
    pub batcher: audit::Batcher,
    /// The configured SIEM exports.
    pub exports: std::sync::Arc<Vec<config::ExportSettings>>,
    /// Scans pushed revisions (its worker is started by whoever runs the server).
    pub scanner: std::sync::Arc<scan::Scanner>,
    /// Each org's roles, bindings and guardrails, ready for decisions.
    pub authz: std::sync::Arc<authz::AuthzCache>,
    /// Signs and verifies service identities' access tokens.
    pub tokens: std::sync::Arc<oauth::TokenKeys>,
    /// The server's external URL, for SCIM locations and sign-in redirects.
    pub public_url: Option<String>,
    /// Single sign-on providers, by org name.
    pub sso: std::sync::Arc<sso::Sso>,
}

/// Why the server's state could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    KeyFile(#[from] audit::KeyFileError),
    #[error("scan rules: {0}")]
    Rules(#[from] gatehouse_scan::ScanError),
    #[error("review: {0}")]
    Reviewer(String),
    #[error(transparent)]
    Sso(#[from] sso::SsoError),
}

impl AppState {
    /// State over `store` and `vault` with limits and the audit key file from `config`.
    pub fn new(store: Store, vault: gatehouse_vault::Vault, config: &Config) -> Result<Self, StateError> {
        let audit = std::sync::Arc::new(audit::AuditKeys::open_or_create(&config.audit_key_file())?);
        let scanner = scan::Scanner::new(
            store.clone(),
            audit.clone(),
            config.limits.bundle(),
            config.scan.clone(),
            config.review.clone(),
        )?;
        Ok(Self {
            vault,
            limits: config.limits.bundle(),
            max_json_bytes: config.limits.max_json_bytes,
            request_timeout: config.limits.request_timeout,
            scanner: std::sync::Arc::new(scanner),
            authz: std::sync::Arc::new(authz::AuthzCache::default()),
            tokens: std::sync::Arc::new(oauth::TokenKeys::open_or_create(
                &config.token_key_file(),
                &config.identity.issuer,
                config.identity.access_token_ttl,
            )?),
            audit,
            batcher: audit::Batcher::start(store.clone()),
            exports: std::sync::Arc::new(config.audit.exports.clone()),
            public_url: config.identity.public_url.clone(),
            sso: std::sync::Arc::new(sso::Sso::from_config(config, &|v| std::env::var(v).ok())?),
            store,
        })
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatehouse control plane API",
        description = "Governance control plane for AI-built business apps. Errors are RFC 9457 problem+json documents whose `type` is stable.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(Problem))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("gat_…").build()),
        );
    }
}

/// Every operation can answer these with a problem document; documenting them once here keeps
/// the handlers' annotations about what is specific to them.
const COMMON_PROBLEMS: [(&str, &str); 10] = [
    ("400", "malformed request (query, path, header)"),
    ("401", "missing, invalid, expired or revoked token"),
    ("403", "the token lacks the scope this operation needs"),
    ("404", "no such object in the caller's organization"),
    ("408", "the request took longer than the configured limit"),
    ("413", "the body is larger than this operation accepts"),
    ("415", "the body's media type is not accepted"),
    ("422", "the body is not of the expected shape, or breaks a rule"),
    ("500", "internal error; details are in the server log, not here"),
    ("503", "the database, the key management service or the audit log is unavailable"),
];

struct ProblemResponses;

impl utoipa::Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = || ContentBuilder::new().schema(Some(RefOr::Ref(Ref::from_schema_name("Problem")))).build();
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                // Error bodies are problem documents, not plain JSON.
                for (code, response) in op.responses.responses.iter_mut() {
                    if let (true, RefOr::T(r)) = (code.starts_with('4') || code.starts_with('5'), response)
                        && r.content.shift_remove("application/json").is_some()
                    {
                        r.content.insert("application/problem+json".to_owned(), problem());
                    }
                }
                for (code, description) in COMMON_PROBLEMS {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| {
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(description)
                                .content("application/problem+json", problem())
                                .build(),
                        )
                    });
                }
            }
        }
    }
}

/// The API routes and their OpenAPI document, from one definition.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi()).merge(routes::api()).split_for_parts();
    // Runs after the routes are merged in, so it sees every operation.
    utoipa::Modify::modify(&ProblemResponses, &mut doc);
    (router, doc)
}

/// The OpenAPI document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The whole HTTP service, as `serve` runs it and as tests drive it.
pub fn build_router(state: AppState) -> Router {
    let (api, doc) = api();
    // Serialized once: the document is fixed for the life of the process.
    let doc = axum::body::Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
    let json_limit = state.max_json_bytes;
    let timeout = state.request_timeout;
    Router::new()
        .merge(routes::health::routes())
        .merge(api)
        .route("/oauth/token", axum::routing::post(oauth::token))
        .route("/.well-known/jwks.json", axum::routing::get(oauth::jwks))
        .merge(scim::routes())
        .merge(sso::routes())
        .route(
            "/api/v1/openapi.json",
            axum::routing::get(move || {
                let doc = doc.clone();
                async move {
                    ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Bytes::from(doc.to_vec()))
                }
            }),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(axum::middleware::from_fn(move |req, next: axum::middleware::Next| async move {
            // Bounded time per request, body reading included, so slow clients cannot hold
            // connections and handlers forever.
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(res) => res,
                Err(_) => axum::response::IntoResponse::into_response(ApiError::Timeout(timeout.as_secs())),
            }
        }))
        .layer(axum::middleware::from_fn_with_state(state.clone(), audit::record_outcomes))
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            tracing::error!("handler panicked");
            axum::response::IntoResponse::into_response(ApiError::Internal)
        }))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("-");
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
}

/// Serves `router` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<std::net::SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves `router` over HTTPS on `listener` until `shutdown` completes. Clients may present a
/// certificate: a service identity's, issued by its org's client CA, authenticates it (mTLS).
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    config: std::sync::Arc<rustls::ServerConfig>,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, config)?;
    axum::serve(listener, router.into_make_service_with_connect_info::<tls::Peer>())
        .with_graceful_shutdown(shutdown)
        .await
}
