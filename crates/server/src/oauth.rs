//! OAuth 2.0 client credentials for service identities (RFC 6749 §4.4): short-lived EdDSA-signed
//! JWT access tokens (RFC 9068 shape), the JWKS that verifies them, and their verification on
//! every request.

use std::path::Path;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use gatehouse_core::{OrgId, Principal, PrincipalId, Scope, TokenId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::AppState;
use crate::audit::{KeyFileError, RequestMeta, check_permissions, write_private};

/// The audience every access token is for.
pub const AUDIENCE: &str = "gatehouse-api";

/// The access-token signing key.
pub struct TokenKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
    issuer: String,
    ttl: Duration,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    ed25519_seed: String,
}

/// The claims of an access token.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// The service identity.
    pub sub: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// The token's id.
    pub jti: String,
    /// The identity's organization.
    pub org: String,
    /// The granted scope.
    pub scope: String,
    /// The OAuth client (the same identity).
    pub client_id: String,
    /// The client secret the token was issued against.
    pub csid: String,
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl TokenKeys {
    /// Loads the key file, creating it (mode 0600) on first start.
    pub fn open_or_create(path: &Path, issuer: &str, ttl: Duration) -> Result<Self, KeyFileError> {
        let err = |m: String| KeyFileError { path: path.display().to_string(), message: m };
        let seed: Zeroizing<[u8; 32]> = match std::fs::read_to_string(path) {
            Ok(text) => {
                let text = Zeroizing::new(text);
                check_permissions(path).map_err(err)?;
                let file: KeyFile = serde_json::from_str(&text).map_err(|_| err("not a valid key file".to_owned()))?;
                if file.version != 1 {
                    return Err(err(format!("unsupported version {}", file.version)));
                }
                let raw =
                    Zeroizing::new(hex::decode(&file.ed25519_seed).map_err(|_| err("the key is not hex".to_owned()))?);
                Zeroizing::new(raw.as_slice().try_into().map_err(|_| err("the key is not 256 bits".to_owned()))?)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = Zeroizing::new([0u8; 32]);
                rand::rng().fill_bytes(seed.as_mut_slice());
                let file = KeyFile { version: 1, ed25519_seed: hex::encode(seed.as_slice()) };
                let text = Zeroizing::new(serde_json::to_string_pretty(&file).map_err(|e| err(e.to_string()))?);
                write_private(path, text.as_bytes()).map_err(|e| err(e.to_string()))?;
                seed
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let signing = SigningKey::from_bytes(&seed);
        let der = signing.to_pkcs8_der().map_err(|e| err(format!("cannot encode the key: {e}")))?;
        let public = signing.verifying_key().to_bytes();
        Ok(Self {
            kid: gatehouse_audit::checkpoint::key_id(&signing.verifying_key()),
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            public_x: b64url(&public),
            issuer: issuer.to_owned(),
            ttl,
        })
    }

    /// Signs an access token for `p` (its `token_id` is the token's `jti`).
    fn issue(&self, p: &Principal, secret_id: &str) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: p.id.to_string(),
            aud: AUDIENCE.to_owned(),
            exp: now + self.ttl.as_secs(),
            iat: now,
            jti: p.token_id.to_string(),
            org: p.org_id.to_string(),
            scope: p.scope.to_string(),
            client_id: p.id.to_string(),
            csid: secret_id.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".to_owned());
        Ok((jsonwebtoken::encode(&header, &claims, &self.encoding)?, self.ttl.as_secs()))
    }

    /// Verifies an access token's signature, issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the access token is malformed".to_owned())?;
        if header.alg != Algorithm::EdDSA || header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err("the access token was not signed by this server's current key".to_owned());
        }
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[AUDIENCE]);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v).map(|d| d.claims).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the access token has expired",
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "the access token is for another audience",
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => "the access token is from another issuer",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "the access token's signature is invalid",
                _ => "the access token is not valid",
            }
            .to_owned()
        })
    }

    /// The JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": self.public_x, "kid": self.kid, "alg": "EdDSA", "use": "sig"
        }]})
    }
}

/// The principal behind a verified access token, re-read from the database.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Principal, crate::ApiError> {
    let claims = state.tokens.verify(token).map_err(crate::ApiError::Unauthenticated)?;
    let bad = || crate::ApiError::Unauthenticated("the access token is not valid".to_owned());
    let org: OrgId = claims.org.parse().map_err(|_| bad())?;
    let id: PrincipalId = claims.sub.parse().map_err(|_| bad())?;
    let jti: TokenId = claims.jti.parse().map_err(|_| bad())?;
    let scope: Scope = claims.scope.parse().map_err(|_| bad())?;
    Ok(state.store.access_token_principal(&org, &id, &claims.csid, jti, scope).await??)
}

/// The token endpoint's request (form-encoded).
#[derive(Default)]
struct TokenRequest {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    scope: Option<String>,
}

impl TokenRequest {
    /// Parses the form; a repeated parameter is an error (RFC 6749 §3.2).
    fn parse(body: &[u8]) -> Result<Self, String> {
        let mut req = Self::default();
        for (k, v) in url::form_urlencoded::parse(body) {
            let slot = match k.as_ref() {
                "grant_type" => &mut req.grant_type,
                "client_id" => &mut req.client_id,
                "client_secret" => &mut req.client_secret,
                "scope" => &mut req.scope,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err(format!("`{k}` is given more than once"));
            }
        }
        Ok(req)
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut res = (status, Json(serde_json::json!({"error": error, "error_description": description}))).into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"gatehouse\""));
    }
    res
}

/// `POST /oauth/token`: the client-credentials grant. Client authentication by HTTP Basic
/// (`client_secret_basic`) or form fields (`client_secret_post`).
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    meta: Option<axum::Extension<RequestMeta>>,
    body: axum::body::Bytes,
) -> Response {
    let form = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| {
        v.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
    });
    if !form {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "send an application/x-www-form-urlencoded body",
        );
    }
    let req = match TokenRequest::parse(&body) {
        Ok(r) => r,
        Err(m) => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", &m),
    };
    if req.grant_type.as_deref() != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials is supported");
    }
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
        .and_then(|b| base64_decode(b.trim()))
        .and_then(|raw| String::from_utf8(raw).ok());
    let (client_id, secret) = match (&basic, &req.client_id, &req.client_secret) {
        (Some(pair), _, None) => match pair.split_once(':') {
            Some((id, secret)) => (percent_decode(id), Zeroizing::new(percent_decode(secret))),
            None => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "malformed Basic credentials"),
        },
        (None, Some(id), Some(secret)) => (id.clone(), Zeroizing::new(secret.clone())),
        _ => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "authenticate with HTTP Basic or client_id and client_secret, one way only",
            );
        }
    };
    let scope = match req.scope.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match s.parse::<Scope>() {
            Ok(scope) => Some(scope),
            Err(_) => {
                return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "scope is read, push, write or admin");
            }
        },
    };
    let (principal, secret_id) =
        match state.store.client_credentials(&client_id, &secret, TokenId::generate(), scope).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => {
                return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "the client credentials are not valid");
            }
            Err(e) => return crate::ApiError::from(e).into_response(),
        };
    let (token, expires_in) = match state.tokens.issue(&principal, &secret_id) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign an access token");
            return crate::ApiError::Internal.into_response();
        }
    };
    // The issue is on record before the token is handed out.
    let meta = meta.map(|m| m.0).unwrap_or_default();
    let draft = meta.ctx(&principal).event(
        "auth.token.issue",
        gatehouse_store::resource("principal", principal.id.as_str()),
        serde_json::json!({"grant": "client_credentials", "jti": principal.token_id, "client_secret_id": secret_id,
            "scope": principal.scope, "expires_in": expires_in}),
    );
    if state.batcher.append(vec![draft]).await.is_err() {
        return crate::ApiError::AuditUnavailable.into_response();
    }
    let mut res = Json(serde_json::json!({
        "access_token": token, "token_type": "Bearer", "expires_in": expires_in, "scope": principal.scope,
    }))
    .into_response();
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `GET /.well-known/jwks.json`: the keys that verify access tokens.
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.tokens.jwks())
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64.
fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(base64_decode("cHJuX2E6Z2NzX2I=").unwrap(), b"prn_a:gcs_b");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
        assert!(base64_decode("***").is_none());
    }

    #[test]
    fn token_requests_parse_and_refuse_repeats() {
        let r = TokenRequest::parse(b"grant_type=client_credentials&client_id=prn_a&scope=read&extra=1").unwrap();
        assert_eq!(r.grant_type.as_deref(), Some("client_credentials"));
        assert_eq!(r.client_id.as_deref(), Some("prn_a"));
        assert_eq!(r.scope.as_deref(), Some("read"));
        assert!(r.client_secret.is_none());
        let err = TokenRequest::parse(b"scope=read&scope=admin").err().unwrap();
        assert!(err.contains("`scope` is given more than once"), "{err}");
        assert_eq!(percent_decode("a%3Ab+c"), "a:b c");
    }

    proptest! {
        #[test]
        fn basic_credentials_never_panic(s in ".{0,200}") {
            let _ = base64_decode(&s);
            let _ = percent_decode(&s);
        }

        #[test]
        fn token_request_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = TokenRequest::parse(&body);
        }
    }
}
