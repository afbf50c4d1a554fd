//! Extractors that reject with our problem documents, and the authenticated principal.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use gatehouse_authz::{Action, Explanation, Resource};
use gatehouse_core::{Principal, Scope};

use crate::AppState;
use crate::audit::{RequestMeta, Slot};
use crate::error::ApiError;
use gatehouse_store::AuditCtx;

/// A JSON body; malformed or mis-shaped bodies get a problem naming what is wrong.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    let text = r.body_text();
    match r {
        JsonRejection::JsonDataError(_) => ApiError::Unprocessable(strip_axum_prefix(&text)),
        JsonRejection::JsonSyntaxError(_) => ApiError::InvalidJson(strip_axum_prefix(&text)),
        JsonRejection::MissingJsonContentType(_) => {
            ApiError::UnsupportedMediaType("expected `Content-Type: application/json`".to_owned())
        }
        JsonRejection::BytesRejection(b) => bytes_rejection(b),
        _ => ApiError::BadRequest(text),
    }
}

fn bytes_rejection(b: BytesRejection) -> ApiError {
    if b.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("the request body is larger than this endpoint accepts".to_owned())
    } else {
        ApiError::BadRequest("the request body could not be read".to_owned())
    }
}

/// axum prefixes serde's message with a sentence of its own; keep serde's precise part.
fn strip_axum_prefix(text: &str) -> String {
    for prefix in
        ["Failed to deserialize the JSON body into the target type: ", "Failed to parse the request body as JSON: "]
    {
        if let Some(rest) = text.strip_prefix(prefix) {
            return format!("invalid request body: {rest}");
        }
    }
    text.to_owned()
}

/// Query parameters, rejected with a problem naming the parameter.
pub struct ApiQuery<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state).await.map(|q| ApiQuery(q.0)).map_err(|r| {
            let text = r.body_text();
            ApiError::BadRequest(
                text.strip_prefix("Failed to deserialize query string: ")
                    .map(|rest| format!("invalid query string: {rest}"))
                    .unwrap_or(text),
            )
        })
    }
}

/// Path parameters, rejected with a problem naming the parameter.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| ApiPath(p.0))
            .map_err(|r| ApiError::NotFound(format!("invalid path parameter: {}", r.body_text())))
    }
}

/// A scope a route demands, as a type, so the demand is visible in the handler's signature.
pub trait Need: Send + Sync + 'static {
    /// The scope.
    const SCOPE: Scope;

    /// Whether a token of scope `held` may call the route.
    fn allows(held: Scope) -> bool {
        held.grants(Self::SCOPE)
    }
}

/// Any valid token, whatever its scope (for `whoami`).
pub struct Anyone;

impl Need for Anyone {
    const SCOPE: Scope = Scope::Read;
    fn allows(_: Scope) -> bool {
        true
    }
}

macro_rules! need {
    ($($name:ident => $scope:ident),*) => {$(
        #[doc = concat!("Demands the `", stringify!($scope), "` scope.")]
        pub struct $name;
        impl Need for $name {
            const SCOPE: Scope = Scope::$scope;
        }
    )*};
}

need!(Read => Read, Push => Push, Write => Write, Admin => Admin, AuditRead => Audit);

/// The authenticated caller, holding at least scope `N`. A handler that takes `Auth<N>` cannot
/// run for an anonymous caller or one without `N`; both are refused before the path or body is
/// even parsed. Further, conditional demands use [`Auth::require`].
pub struct Auth<N: Need>(Principal, RequestMeta, Option<Slot>, std::marker::PhantomData<N>);

impl<N: Need> Auth<N> {
    /// The caller.
    pub fn principal(&self) -> &Principal {
        &self.0
    }

    /// The audit context of this caller making this request, for the store to record changes.
    pub fn audit(&self) -> AuditCtx {
        self.1.ctx(&self.0)
    }

    /// Decides whether the caller may do `action` on `resource`: its roles on the resource's
    /// folder and above, and the org's guardrails. Refuses with 403 `access-denied` saying why.
    pub async fn authorize(&self, state: &AppState, action: Action, resource: &Resource) -> Result<(), ApiError> {
        let e = self.decide(state, action, resource).await?;
        if e.allowed() {
            return Ok(());
        }
        Err(ApiError::AccessDenied(format!(
            "{} may not `{action}` on {} `{}`: {}",
            self.0.name,
            resource.kind.cedar_type(),
            resource.name,
            e.reason
        )))
    }

    /// Declares that this route authorizes each item it returns (with [`Auth::allows`]), so an
    /// empty listing, which decided nothing, still counts as authorized.
    pub fn filters_each_item(&self) {
        if let Some(slot) = &self.2 {
            slot.0.lock().unwrap_or_else(|p| p.into_inner()).authorized = true;
        }
    }

    /// Whether the caller may do `action` on `resource`, without refusing (to filter listings).
    pub async fn allows(&self, state: &AppState, action: Action, resource: &Resource) -> Result<bool, ApiError> {
        Ok(self.decide(state, action, resource).await?.allowed())
    }

    async fn decide(&self, state: &AppState, action: Action, resource: &Resource) -> Result<Explanation, ApiError> {
        let e = crate::authz::explain(&state.authz, &state.store, &self.0, action, resource, self.1.source.as_deref())
            .await?;
        if let Some(slot) = &self.2 {
            let mut seen = slot.0.lock().unwrap_or_else(|p| p.into_inner());
            seen.authorized = true;
            if !e.allowed() {
                seen.denial = Some(serde_json::json!({
                    "action": action.name(),
                    "resource": {"kind": resource.kind, "id": resource.id, "name": resource.name},
                    "policies": e.policies,
                    "errors": e.errors,
                    "reason": e.reason,
                }));
            }
        }
        if !e.allowed() {
            tracing::info!(principal = %self.0.id, action = %action, resource = %resource.name, reason = %e.reason, "access denied");
        }
        Ok(e)
    }

    /// Refuses with 403 unless the caller's token grants `needed`.
    pub fn require(&self, needed: Scope) -> Result<&Principal, ApiError> {
        if self.0.has(needed) {
            Ok(&self.0)
        } else {
            tracing::info!(principal = %self.0.id, scope = %self.0.scope, needed = %needed, "denied");
            Err(ApiError::Forbidden(format!("this requires the `{needed}` scope; the token has `{}`", self.0.scope)))
        }
    }
}

impl<N: Need> FromRequestParts<AppState> for Auth<N> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let slot = parts.extensions.get::<Slot>().cloned();
        let meta = parts.extensions.get::<RequestMeta>().cloned().unwrap_or_else(|| RequestMeta::from_parts(parts));
        let (secret, authenticated) = match authenticate(parts, state).await? {
            Some(found) => found,
            None => {
                return Err(ApiError::Unauthenticated(
                    "send `Authorization: Bearer <token>` or sign in (`gatehouse login --sso`)".to_owned(),
                ));
            }
        };
        let principal = match authenticated {
            Ok(p) => p,
            Err(rejection) => {
                if let Some(slot) = &slot {
                    slot.0.lock().unwrap_or_else(|p| p.into_inner()).rejected_token = Some(secret.into_bytes());
                }
                return Err(rejection);
            }
        };
        if let Some(slot) = &slot {
            slot.0.lock().unwrap_or_else(|p| p.into_inner()).principal = Some(principal.clone());
        }
        let auth = Auth(principal, meta, slot, std::marker::PhantomData);
        if !N::allows(auth.0.scope) {
            auth.require(N::SCOPE)?;
        }
        Ok(auth)
    }
}

/// The credential a request carries and what it authenticates as: a session (cookie or `gss_`
/// bearer), a client-credentials access token (a JWT), or an API token. `None` when the request
/// carries none.
async fn authenticate(
    parts: &Parts,
    state: &AppState,
) -> Result<Option<(String, Result<Principal, ApiError>)>, ApiError> {
    use axum::http::header;
    if let Some(secret) = crate::sso::session_secret(&parts.headers) {
        let from_cookie = parts.headers.get(header::AUTHORIZATION).is_none();
        if from_cookie && !parts.method.is_safe() && cross_site(parts) {
            return Err(ApiError::Forbidden(
                "a cross-site request may not change anything with a session cookie".to_owned(),
            ));
        }
        let found = state.store.session_principal(&secret).await?.map_err(ApiError::from);
        return Ok(Some((secret, found)));
    }
    let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
        // No token and no session: a client certificate, if the connection (HTTPS) carried one.
        let peer = parts.extensions.get::<axum::extract::ConnectInfo<crate::tls::Peer>>();
        if let Some(certs) = peer.and_then(|p| p.0.certs.clone()) {
            let id = certs.first().map(crate::tls::cert_token_id).unwrap_or_else(gatehouse_core::TokenId::generate);
            return Ok(Some((id.to_string(), mtls(state, &certs).await?)));
        }
        return Ok(None);
    };
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not valid text".to_owned()))?;
    let (scheme, secret) = value
        .split_once(' ')
        .ok_or_else(|| ApiError::Unauthenticated("expected `Authorization: Bearer <token>`".to_owned()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::Unauthenticated("only the Bearer scheme is accepted".to_owned()));
    }
    let secret = secret.trim();
    // A JWT (three base64url parts) is a client-credentials access token; anything else is
    // looked up as an API token.
    let looks_like_jwt = secret.starts_with("eyJ") && secret.matches('.').count() == 2;
    let found = if looks_like_jwt {
        match crate::oauth::authenticate(state, secret).await {
            Ok(p) => Ok(p),
            Err(ApiError::Unauthenticated(m)) => Err(ApiError::Unauthenticated(m)),
            Err(other) => return Err(other),
        }
    } else {
        state.store.authenticate(secret).await?.map_err(ApiError::from)
    };
    Ok(Some((secret.to_owned(), found)))
}

/// Whether the browser says the request comes from another site. `SameSite=Lax` already keeps
/// the cookie off cross-site POSTs in current browsers; this also covers older ones.
fn cross_site(parts: &Parts) -> bool {
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if header("sec-fetch-site").is_some_and(|s| s == "cross-site") {
        return true;
    }
    match (header("origin"), header("host")) {
        (Some(origin), Some(host)) => url::Url::parse(origin).ok().is_none_or(|o| {
            let origin_host = match o.port() {
                Some(p) => format!("{}:{p}", o.host_str().unwrap_or_default()),
                None => o.host_str().unwrap_or_default().to_owned(),
            };
            origin_host != host
        }),
        _ => false,
    }
}

/// The service identity a verified client certificate names.
async fn mtls(
    state: &AppState,
    certs: &[rustls::pki_types::CertificateDer<'static>],
) -> Result<Result<Principal, ApiError>, ApiError> {
    let refuse = |m: String| Ok(Err(ApiError::Unauthenticated(m)));
    let Some(end) = certs.first() else { return refuse("no client certificate".to_owned()) };
    let claimed = match crate::tls::claimed_identity(end) {
        Ok(c) => c,
        Err(m) => return refuse(m),
    };
    let org = match state.store.org_by_name(&claimed.org).await {
        Ok(o) => o,
        Err(gatehouse_store::StoreError::NotFound { .. }) => {
            return refuse("the client certificate names an unknown organization".to_owned());
        }
        Err(e) => return Err(e.into()),
    };
    let Some(ca) = state.store.client_ca(&org.id).await? else {
        return refuse("the organization accepts no client certificates (no client CA is set)".to_owned());
    };
    if let Err(m) = crate::tls::verify_chain(&ca.pem, certs) {
        return refuse(m);
    }
    Ok(state.store.mtls_principal(&org, &claimed.service, crate::tls::cert_token_id(end)).await?.map_err(|r| match r {
        gatehouse_store::TokenRejection::Inactive => ApiError::from(r),
        _ => ApiError::Unauthenticated(format!(
            "the client certificate names `{}`, which is not a service identity of the organization",
            claimed.service
        )),
    }))
}
