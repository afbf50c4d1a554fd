//! Single sign-on with OpenID Connect: the authorization code flow with PKCE and a nonce,
//! id tokens verified against the provider's keys (re-fetched when it rotates them), users
//! mapped from the claims, and server-side sessions in a `Secure; HttpOnly; SameSite=Lax` cookie
//! (or, for the CLI, a session token) with idle and absolute timeouts.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use base64::Engine;
use gatehouse_core::OrgId;
use gatehouse_store::{AuditCtx, Claims, PendingLogin, SessionLimits, StoreError};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient, CoreClientAuthMethod,
    CoreDeviceAuthorizationResponse, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthorizationCode, ClientId, ClientSecret, CsrfToken, DeviceAuthorizationUrl,
    EndSessionUrl, IssuerUrl, JsonWebKeySet, LogoutRequest, Nonce, NonceVerifier, PkceCodeChallenge, PkceCodeVerifier,
    PostLogoutRedirectUrl, ProviderMetadata, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::audit::RequestMeta;
use crate::config::SsoSettings;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};

/// The session cookie's name.
pub const COOKIE: &str = "gatehouse_session";
/// How long a sign-in may take at the provider.
const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Provider metadata (and keys) are re-read at least this often.
const METADATA_TTL: Duration = Duration::from_secs(3600);
/// Keys are re-fetched for an unknown key id at most this often.
const MIN_KEY_REFRESH: Duration = Duration::from_secs(1);

/// What Gatehouse reads from a provider's discovery document beyond the core fields.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct ExtraMetadata {
    /// RP-initiated logout.
    end_session_endpoint: Option<EndSessionUrl>,
    /// The device flow (RFC 8628), for the CLI where no browser can reach a loopback address.
    device_authorization_endpoint: Option<DeviceAuthorizationUrl>,
}

impl AdditionalProviderMetadata for ExtraMetadata {}

/// A provider's discovery document.
type Metadata = ProviderMetadata<
    ExtraMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Why single sign-on could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    #[error("[[identity.sso]] for org `{org}`: cannot read the client secret: {reason}")]
    Secret { org: String, reason: String },
}

/// The configured providers, by org name.
#[derive(Default)]
pub struct Sso {
    providers: HashMap<String, Provider>,
    public_url: Option<String>,
}

/// One org's provider.
pub struct Provider {
    settings: SsoSettings,
    secret: ClientSecret,
    http: reqwest::Client,
    cached: tokio::sync::RwLock<Option<(Metadata, Instant)>>,
    refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl Sso {
    /// Providers from the configuration, with their client secrets read from files or `env`.
    pub fn from_config(config: &crate::Config, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, SsoError> {
        let mut providers = HashMap::new();
        for s in &config.identity.sso {
            let secret_err = |reason: String| SsoError::Secret { org: s.org.clone(), reason };
            let secret = match (&s.client_secret_file, &s.client_secret_env) {
                (Some(path), _) => std::fs::read_to_string(path)
                    .map_err(|e| secret_err(format!("{}: {e}", path.display())))?
                    .trim()
                    .to_owned(),
                (None, Some(var)) => env(var).ok_or_else(|| secret_err(format!("`{var}` is not set")))?,
                (None, None) => String::new(),
            };
            if secret.is_empty() {
                return Err(secret_err("it is empty".to_owned()));
            }
            gatehouse_vault::redact::Redactor::global().register(secret.as_bytes());
            let http = reqwest::Client::builder()
                // The token endpoint must not redirect us (RFC 6749 §3.2 / SSRF hardening).
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| secret_err(format!("HTTP client: {e}")))?;
            providers.insert(
                s.org.clone(),
                Provider {
                    settings: s.clone(),
                    secret: ClientSecret::new(secret),
                    http,
                    cached: tokio::sync::RwLock::new(None),
                    refresh: tokio::sync::Mutex::new(None),
                },
            );
        }
        Ok(Self { providers, public_url: config.identity.public_url.clone() })
    }

    /// The provider of org `name`.
    pub fn provider(&self, name: &str) -> Option<&Provider> {
        self.providers.get(name)
    }

    /// The names of the orgs that sign in through a provider.
    pub fn orgs(&self) -> impl Iterator<Item = &str> {
        self.providers.keys().map(String::as_str)
    }

    fn base(&self) -> String {
        self.public_url.clone().unwrap_or_default().trim_end_matches('/').to_owned()
    }
}

/// What went wrong talking to the provider.
fn provider_error(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "identity provider");
    ApiError::SignInFailed("the identity provider could not be reached or answered unexpectedly".to_owned())
}

impl Provider {
    fn redirect_url(&self, base: &str) -> String {
        self.settings.redirect_url.clone().unwrap_or_else(|| format!("{base}/auth/callback"))
    }

    fn issuer(&self) -> Result<IssuerUrl, ApiError> {
        let issuer = self.settings.discovery_url.trim_end_matches("/.well-known/openid-configuration");
        IssuerUrl::new(issuer.to_owned()).map_err(provider_error)
    }

    /// The provider's metadata, fetched on first use and re-read hourly.
    async fn metadata(&self) -> Result<Metadata, ApiError> {
        if let Some((m, at)) = &*self.cached.read().await
            && at.elapsed() < METADATA_TTL
        {
            return Ok(m.clone());
        }
        let m = Metadata::discover_async(self.issuer()?, &self.http).await.map_err(provider_error)?;
        *self.cached.write().await = Some((m.clone(), Instant::now()));
        Ok(m)
    }

    /// Re-fetches the provider's keys after an id token named one we do not have: providers
    /// rotate keys and publish the new one before signing with it.
    async fn refresh_keys(&self) -> Result<bool, ApiError> {
        let mut last = self.refresh.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_KEY_REFRESH) {
            return Ok(false);
        }
        *last = Some(Instant::now());
        let mut m = self.metadata().await?;
        let keys = JsonWebKeySet::fetch_async(m.jwks_uri(), &self.http).await.map_err(provider_error)?;
        m = m.set_jwks(keys);
        *self.cached.write().await = Some((m, Instant::now()));
        Ok(true)
    }

    fn client(
        &self,
        m: Metadata,
        base: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
        ApiError,
    > {
        let redirect = RedirectUrl::new(self.redirect_url(base)).map_err(provider_error)?;
        Ok(CoreClient::from_provider_metadata(
            m,
            ClientId::new(self.settings.client_id.clone()),
            Some(self.secret.clone()),
        )
        .set_redirect_uri(redirect))
    }

    fn is_mfa(&self, amr: &[String], acr: Option<&str>) -> bool {
        amr.iter().any(|a| self.settings.mfa_amr.contains(a))
            || acr.is_some_and(|a| self.settings.mfa_acr.iter().any(|m| m == a))
    }

    fn limits(&self) -> SessionLimits {
        SessionLimits { idle: self.settings.session_idle, absolute: self.settings.session_absolute }
    }
}

/// The routes of the sign-in flow (outside `/api`: they are not called with a token).
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", get(login))
        .route("/auth/callback", get(callback))
        .route("/auth/logout", post(logout))
        .route("/auth/logged-out", get(logged_out))
        .route("/auth/cli/token", post(cli_token))
        .route("/auth/device", post(device_start))
        .route("/auth/device/token", post(device_token))
}

#[derive(Debug, Deserialize)]
struct LoginParams {
    org: String,
    return_to: Option<String>,
    cli_redirect: Option<String>,
    cli_challenge: Option<String>,
}

/// A path on this server (not `//host`, not a URL), so sign-in cannot be used as an open redirect.
fn safe_return(path: Option<String>) -> Result<Option<String>, ApiError> {
    match path {
        None => Ok(None),
        Some(p)
            if p.starts_with('/') && !p.starts_with("//") && !p.contains('\\') && !p.chars().any(char::is_control) =>
        {
            Ok(Some(p))
        }
        Some(_) => Err(ApiError::BadRequest("`return_to` must be a path on this server".to_owned())),
    }
}

/// The CLI listens on loopback only (RFC 8252 §7.3).
fn safe_cli_redirect(url: &str) -> Result<(), ApiError> {
    let ok = url::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("127.0.0.1" | "[::1]" | "localhost")) && u.port().is_some()
    });
    if ok { Ok(()) } else { Err(ApiError::BadRequest("`cli_redirect` must be http://127.0.0.1:<port>/…".to_owned())) }
}

/// Starts a sign-in: remembers state, nonce and PKCE verifier, and sends the browser to the
/// provider.
async fn login(State(state): State<AppState>, ApiQuery(p): ApiQuery<LoginParams>) -> Result<Response, ApiError> {
    let provider = state
        .sso
        .provider(&p.org)
        .ok_or_else(|| ApiError::NotFound(format!("organization `{}` has no single sign-on", short(&p.org))))?;
    let org = state.store.org_by_name(&p.org).await?;
    let return_to = safe_return(p.return_to)?;
    match (&p.cli_redirect, &p.cli_challenge) {
        (Some(r), Some(c)) if c.len() == 43 => safe_cli_redirect(r)?,
        (None, None) => {}
        _ => {
            return Err(ApiError::BadRequest(
                "`cli_redirect` and `cli_challenge` (S256, 43 characters) go together".to_owned(),
            ));
        }
    }
    let base = state.sso.base();
    let client = provider.client(provider.metadata().await?, &base)?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .set_pkce_challenge(challenge);
    for s in provider.settings.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let (url, csrf, nonce) = request.url();
    state
        .store
        .create_login(
            csrf.secret(),
            &PendingLogin {
                org_id: org.id,
                nonce: nonce.secret().clone(),
                pkce_verifier: verifier.secret().clone(),
                return_to,
                cli_redirect: p.cli_redirect,
                cli_challenge: p.cli_challenge,
            },
            LOGIN_TTL,
        )
        .await?;
    Ok(Redirect::to(url.as_str()).into_response())
}

#[derive(Debug, Deserialize)]
struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A JSON answer that caches must not keep (it carries a session or a sign-in in flight).
fn no_store(status: StatusCode, body: serde_json::Value) -> Response {
    let mut res = (status, axum::Json(body)).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn short(s: &str) -> String {
    s.chars().take(80).collect()
}

fn anonymous_ctx(org: &OrgId, meta: &RequestMeta) -> AuditCtx {
    AuditCtx {
        org_id: org.clone(),
        actor: gatehouse_core::audit::Actor {
            who: gatehouse_core::audit::ActorRef {
                kind: gatehouse_core::audit::ActorKind::Anonymous,
                id: "anonymous".to_owned(),
                name: "anonymous".to_owned(),
            },
            on_behalf_of: Vec::new(),
        },
        request_id: meta.request_id.clone(),
        source: meta.source.clone(),
        user_agent: meta.user_agent.clone(),
    }
}

/// The audit context of `user`, who has just signed in, from the anonymous one of the request.
fn user_ctx(user: &gatehouse_core::PrincipalRecord, anonymous: AuditCtx) -> AuditCtx {
    AuditCtx {
        actor: gatehouse_core::audit::Actor {
            who: gatehouse_core::audit::ActorRef {
                kind: gatehouse_core::audit::ActorKind::User,
                id: user.id.to_string(),
                name: user.name.clone(),
            },
            on_behalf_of: Vec::new(),
        },
        ..anonymous
    }
}

/// Records a failed sign-in and answers 401 with why (never with token contents).
async fn failed(state: &AppState, org: &OrgId, meta: &RequestMeta, reason: String) -> ApiError {
    let ctx = anonymous_ctx(org, meta);
    let mut draft = ctx.event("auth.login", gatehouse_store::resource("org", org.as_str()), json!({"reason": reason}));
    draft.outcome = gatehouse_core::audit::Outcome::Failed;
    if let Err(e) = state.batcher.append(vec![draft]).await {
        return e;
    }
    tracing::info!(org = %org, reason = %reason, "sign-in refused");
    ApiError::SignInFailed(reason)
}

/// The provider's answer: checks state, exchanges the code (with the PKCE verifier), verifies the
/// id token, finds the user and starts a session.
async fn callback(
    State(state): State<AppState>,
    ApiQuery(p): ApiQuery<CallbackParams>,
    axum::Extension(meta): axum::Extension<RequestMeta>,
) -> Result<Response, ApiError> {
    let login_state = p.state.ok_or_else(|| ApiError::BadRequest("`state` is missing".to_owned()))?;
    let login = state
        .store
        .take_login(&login_state)
        .await?
        .ok_or_else(|| ApiError::SignInFailed("unknown or expired sign-in; start again".to_owned()))?;
    let org = state.store.get_org(&login.org_id).await?;
    let Some(provider) = state.sso.provider(&org.name) else {
        return Err(ApiError::NotFound(format!("organization `{}` has no single sign-on", org.name)));
    };
    if let Some(error) = p.error {
        let why = format!(
            "the identity provider refused: {} {}",
            short(&error),
            short(&p.error_description.unwrap_or_default())
        );
        return Err(failed(&state, &org.id, &meta, why).await);
    }
    let code = p.code.ok_or_else(|| ApiError::BadRequest("`code` is missing".to_owned()))?;
    let claims = match exchange(&state, provider, &login, code).await {
        Ok(c) => c,
        Err(why) => return Err(failed(&state, &org.id, &meta, why).await),
    };
    let audit = anonymous_ctx(&org.id, &meta);
    let user = match state.store.sign_in_user(&org.id, &claims, provider.settings.jit_users, &audit).await? {
        Ok(u) => u,
        Err(why) => return Err(failed(&state, &org.id, &meta, why).await),
    };
    let ctx = user_ctx(&user, audit);
    if let (Some(redirect), Some(challenge)) = (&login.cli_redirect, &login.cli_challenge) {
        // The CLI gets a one-time code on its loopback listener and exchanges it, with its
        // verifier, at /auth/cli/token; the session secret never travels in a URL.
        let code = state.store.create_cli_code(&user, challenge, &claims).await?;
        let mut url = url::Url::parse(redirect).map_err(|_| ApiError::BadRequest("bad cli_redirect".to_owned()))?;
        url.query_pairs_mut().append_pair("code", &code);
        return Ok(Redirect::to(url.as_str()).into_response());
    }
    let session = state.store.create_session(&user, "browser", &claims, provider.limits(), &ctx).await?;
    // `Secure` always: browsers treat http://localhost as secure, and anything else must be TLS.
    let cookie = format!(
        "{COOKIE}={}; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age={}",
        session.secret,
        provider.settings.session_absolute.as_secs(),
    );
    let to = login.return_to.unwrap_or_else(|| "/api/v1/whoami".to_owned());
    let mut res = Redirect::to(&to).into_response();
    res.headers_mut().insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|_| ApiError::Internal)?);
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Exchanges the code and verifies the id token; `Err` is the reason, for the audit record.
async fn exchange(state: &AppState, provider: &Provider, login: &PendingLogin, code: String) -> Result<Claims, String> {
    let base = state.sso.base();
    let meta = provider.metadata().await.map_err(|e| e.to_string())?;
    let client = provider.client(meta, &base).map_err(|e| e.to_string())?;
    let response = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| format!("the provider has no token endpoint: {e}"))?
        .set_pkce_verifier(PkceCodeVerifier::new(login.pkce_verifier.clone()))
        .request_async(&provider.http)
        .await
        .map_err(|e| format!("the code exchange failed: {}", short(&e.to_string())))?;
    let id_token = response.id_token().ok_or("the provider returned no id token")?.clone();
    verify_id_token(provider, &base, &id_token, &Nonce::new(login.nonce.clone())).await
}

/// Verifies an id token (signature, issuer, audience, expiry, and the nonce with `nonce`),
/// fetching the provider's keys once more if it names one we do not have, and reads the claims.
async fn verify_id_token<N: NonceVerifier + Copy>(
    provider: &Provider,
    base: &str,
    id_token: &openidconnect::core::CoreIdToken,
    nonce: N,
) -> Result<Claims, String> {
    let meta = provider.metadata().await.map_err(|e| e.to_string())?;
    let client = provider.client(meta, base).map_err(|e| e.to_string())?;
    let verified = id_token.claims(&client.id_token_verifier(), nonce).cloned();
    let claims = match verified {
        Ok(c) => c,
        Err(openidconnect::ClaimsVerificationError::SignatureVerification(
            openidconnect::SignatureVerificationError::NoMatchingKey,
        )) => {
            // A key we have not seen: the provider may have rotated. Fetch its keys once more.
            provider.refresh_keys().await.map_err(|e| e.to_string())?;
            let meta = provider.metadata().await.map_err(|e| e.to_string())?;
            let client = provider.client(meta, base).map_err(|e| e.to_string())?;
            id_token
                .claims(&client.id_token_verifier(), nonce)
                .map_err(|e| format!("the id token was refused: {e}"))?
                .clone()
        }
        Err(e) => return Err(format!("the id token was refused: {e}")),
    };
    let email = match (claims.email(), claims.email_verified()) {
        (Some(e), Some(true) | None) => Some(e.as_str().to_owned()),
        _ => None,
    };
    let amr: Vec<String> =
        claims.auth_method_refs().map(|v| v.iter().map(|a| a.as_str().to_owned()).collect()).unwrap_or_default();
    let acr = claims.auth_context_ref().map(|a| a.as_str().to_owned());
    let groups = provider.settings.groups_claim.as_ref().map(|claim| claim_strings(&id_token.to_string(), claim));
    Ok(Claims {
        subject: claims.subject().as_str().to_owned(),
        email,
        username: claims.preferred_username().map(|u| u.as_str().to_owned()),
        name: claims.name().and_then(|n| n.get(None)).map(|n| n.as_str().to_owned()),
        mfa: provider.is_mfa(&amr, acr.as_deref()),
        amr,
        acr,
        groups,
    })
}

/// The strings in claim `name` of a verified id token's payload (the library's claim types do
/// not carry provider-specific claims such as groups).
fn claim_strings(jwt: &str, name: &str) -> Vec<String> {
    let payload = jwt.split('.').nth(1).unwrap_or_default();
    let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload) else { return Vec::new() };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) else { return Vec::new() };
    match v.get(name) {
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect(),
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The session secret a request carries: a `gss_` bearer token, or, only when the request has
/// no `Authorization` header at all, the cookie (an explicit credential always wins).
pub(crate) fn session_secret(headers: &HeaderMap) -> Option<String> {
    let Some(auth) = headers.get(header::AUTHORIZATION) else { return cookie(headers) };
    let (scheme, token) = auth.to_str().ok()?.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && token.starts_with(gatehouse_store::SESSION_PREFIX))
        .then(|| token.to_owned())
}

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE && v.starts_with(gatehouse_store::SESSION_PREFIX)).then(|| v.to_owned())
    })
}

/// Signs out: revokes the session, clears the cookie, and points at the provider's logout
/// (RP-initiated logout) when it offers one.
async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    axum::Extension(meta): axum::Extension<RequestMeta>,
) -> Result<Response, ApiError> {
    let secret =
        session_secret(&headers).ok_or_else(|| ApiError::Unauthenticated("no session to sign out of".to_owned()))?;
    let principal = match state.store.session_principal(&secret).await? {
        Ok(p) => p,
        Err(r) => return Err(ApiError::from(r)),
    };
    state
        .store
        .revoke_session(&principal.org_id, principal.token_id.as_str(), "auth.logout", &meta.ctx(&principal))
        .await?;
    let org = state.store.get_org(&principal.org_id).await?;
    let mut end_session = None;
    if let Some(provider) = state.sso.provider(&org.name)
        && let Ok(m) = provider.metadata().await
        && let Some(endpoint) = m.additional_metadata().end_session_endpoint.clone()
    {
        let after = provider
            .settings
            .post_logout_redirect_url
            .clone()
            .unwrap_or_else(|| format!("{}/auth/logged-out", state.sso.base()));
        let mut req = LogoutRequest::from(endpoint).set_client_id(ClientId::new(provider.settings.client_id.clone()));
        if let Ok(u) = PostLogoutRedirectUrl::new(after) {
            req = req.set_post_logout_redirect_uri(u);
        }
        end_session = Some(req.http_get_url().to_string());
    }
    let mut res =
        (StatusCode::OK, axum::Json(json!({"signed_out": true, "end_session_url": end_session}))).into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Secure; Max-Age=0"))
            .map_err(|_| ApiError::Internal)?,
    );
    Ok(res)
}

async fn logged_out() -> axum::Json<serde_json::Value> {
    axum::Json(json!({"signed_out": true}))
}

#[derive(Debug, Deserialize)]
struct CliToken {
    code: String,
    verifier: String,
}

/// The CLI's exchange of its one-time code and PKCE-style verifier for a session token.
async fn cli_token(
    State(state): State<AppState>,
    axum::Extension(meta): axum::Extension<RequestMeta>,
    ApiJson(body): ApiJson<CliToken>,
) -> Result<Response, ApiError> {
    let refused = || ApiError::SignInFailed("unknown, used or expired code".to_owned());
    let (user, challenge, claims) = state.store.take_cli_code(&body.code).await?.ok_or_else(refused)?;
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(body.verifier.as_bytes()));
    if computed != challenge {
        return Err(refused());
    }
    let org = state.store.get_org(&user.org_id).await?;
    let provider = state.sso.provider(&org.name).ok_or_else(refused)?;
    let ctx = user_ctx(&user, anonymous_ctx(&user.org_id, &meta));
    cli_session(&state, provider, &user, &claims, &ctx).await
}

/// A session of kind `cli` for `user`, answered as the CLI expects it.
async fn cli_session(
    state: &AppState,
    provider: &Provider,
    user: &gatehouse_core::PrincipalRecord,
    claims: &Claims,
    ctx: &AuditCtx,
) -> Result<Response, ApiError> {
    let session = state.store.create_session(user, "cli", claims, provider.limits(), ctx).await?;
    Ok(no_store(
        StatusCode::OK,
        json!({
            "session_token": session.secret,
            "expires_at": session.expires_at,
            "idle_timeout_seconds": provider.settings.session_idle.as_secs(),
            "principal": user.name,
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct DeviceStart {
    org: String,
}

/// Starts a device-flow sign-in for the CLI (RFC 8628) where the provider offers one: Gatehouse
/// asks the provider for a user code (with its own client credentials, which the CLI never
/// holds) and answers where the person should enter it; the CLI then polls `/auth/device/token`.
async fn device_start(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<DeviceStart>,
) -> Result<Response, ApiError> {
    let provider = state
        .sso
        .provider(&body.org)
        .ok_or_else(|| ApiError::NotFound(format!("organization `{}` has no single sign-on", short(&body.org))))?;
    let org = state.store.org_by_name(&body.org).await?;
    let meta = provider.metadata().await?;
    let Some(device_url) = meta.additional_metadata().device_authorization_endpoint.clone() else {
        return Err(ApiError::NotFound(
            "the identity provider offers no device flow; sign in through the browser instead".to_owned(),
        ));
    };
    let client = provider.client(meta, &state.sso.base())?.set_device_authorization_url(device_url);
    let mut request = client.exchange_device_code();
    for s in provider.settings.scopes.iter().filter(|s| *s != "openid") {
        request = request.add_scope(Scope::new(s.clone()));
    }
    let details: CoreDeviceAuthorizationResponse =
        request.request_async(&provider.http).await.map_err(provider_error)?;
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let id = hex::encode(raw);
    let expires_at = gatehouse_core::Timestamp::now().plus(details.expires_in());
    let stored = serde_json::to_string(&details).map_err(|_| ApiError::Internal)?;
    state.store.create_device_login(&id, &org.id, &stored, expires_at).await?;
    Ok(no_store(
        StatusCode::OK,
        json!({
            "device_id": id,
            "user_code": details.user_code().secret(),
            "verification_uri": details.verification_uri().as_str(),
            "verification_uri_complete": details.verification_uri_complete().map(|u| u.secret().clone()),
            "interval": details.interval().as_secs(),
            "expires_in": details.expires_in().as_secs(),
        }),
    ))
}

#[derive(Debug, Deserialize)]
struct DeviceToken {
    device_id: String,
}

/// One poll of a device-flow sign-in: 202 while the person has not finished at the provider,
/// a session once they have, 401 when they declined or the code expired.
async fn device_token(
    State(state): State<AppState>,
    axum::Extension(meta): axum::Extension<RequestMeta>,
    ApiJson(body): ApiJson<DeviceToken>,
) -> Result<Response, ApiError> {
    use openidconnect::{DeviceCodeErrorResponseType, RequestTokenError};
    let (org_id, stored, expires_at) = state
        .store
        .device_login(&body.device_id)
        .await?
        .ok_or_else(|| ApiError::SignInFailed("unknown or expired device sign-in; start again".to_owned()))?;
    let details: CoreDeviceAuthorizationResponse = serde_json::from_str(&stored).map_err(|_| ApiError::Internal)?;
    let org = state.store.get_org(&org_id).await?;
    let provider = state
        .sso
        .provider(&org.name)
        .ok_or_else(|| ApiError::NotFound(format!("organization `{}` has no single sign-on", org.name)))?;
    let base = state.sso.base();
    let client = provider.client(provider.metadata().await?, &base)?;
    // Exactly one request to the provider per poll: the library's loop is given a deadline that
    // has passed by the time the first answer is in, and no sleep.
    let result = client
        .exchange_device_access_token(&details)
        .map_err(provider_error)?
        .request_async(&provider.http, |_| std::future::ready(()), Some(Duration::from_millis(1)))
        .await;
    let pending = || no_store(StatusCode::ACCEPTED, json!({"status": "authorization_pending"}));
    let response = match result {
        Ok(r) => r,
        Err(RequestTokenError::ServerResponse(e)) => match e.error() {
            DeviceCodeErrorResponseType::AuthorizationPending | DeviceCodeErrorResponseType::SlowDown => {
                return Ok(pending());
            }
            // The library's own deadline, not the provider's verdict, while ours runs.
            DeviceCodeErrorResponseType::ExpiredToken if gatehouse_core::Timestamp::now() < expires_at => {
                return Ok(pending());
            }
            other => {
                state.store.delete_device_login(&body.device_id).await?;
                let why = format!("the identity provider refused: {}", short(other.as_ref()));
                return Err(failed(&state, &org.id, &meta, why).await);
            }
        },
        Err(e) => return Err(provider_error(e)),
    };
    if !state.store.delete_device_login(&body.device_id).await? {
        return Err(ApiError::SignInFailed("this device sign-in was already completed".to_owned()));
    }
    let id_token = match response.id_token() {
        Some(t) => t.clone(),
        None => return Err(failed(&state, &org.id, &meta, "the provider returned no id token".to_owned()).await),
    };
    // The device flow carries no nonce (RFC 8628); the id token is bound to this exchange by the
    // device code, which only Gatehouse held.
    let claims = match verify_id_token(provider, &base, &id_token, |_: Option<&Nonce>| Ok(())).await {
        Ok(c) => c,
        Err(why) => return Err(failed(&state, &org.id, &meta, why).await),
    };
    let audit = anonymous_ctx(&org.id, &meta);
    let user = match state.store.sign_in_user(&org.id, &claims, provider.settings.jit_users, &audit).await? {
        Ok(u) => u,
        Err(why) => return Err(failed(&state, &org.id, &meta, why).await),
    };
    cli_session(&state, provider, &user, &claims, &user_ctx(&user, audit)).await
}

/// Once an org signs in through a provider, its bootstrap token stops working: revoke it.
pub async fn disable_bootstrap_tokens(state: &AppState) -> Result<(), StoreError> {
    for name in state.sso.orgs() {
        let org = match state.store.org_by_name(name).await {
            Ok(o) => o,
            Err(StoreError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let n = state
            .store
            .revoke_bootstrap_token(&org.id, &AuditCtx::system(&org.id, "single sign-on configured"))
            .await?;
        if n > 0 {
            tracing::info!(org = %org.name, "single sign-on is configured: the bootstrap token is revoked");
        }
    }
    Ok(())
}
