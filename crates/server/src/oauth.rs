//! OAuth 2.0 client credentials for service identities (RFC 6749 §4.4): short-lived EdDSA-signed
//! JWT access tokens (RFC 9068 shape), the JWKS that verifies them, and their verification on
//! every request.

use std::path::{Path, PathBuf};
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

/// How often the key file is checked for a rotation done by `gatehouse admin rotate-token-key`.
const RELOAD_EVERY: Duration = Duration::from_secs(1);

/// The access-token signing keys: the newest signs; every key in the file verifies and is
/// published, so tokens signed before a rotation stay valid until they expire.
pub struct TokenKeys {
    path: PathBuf,
    issuer: String,
    ttl: Duration,
    loaded: std::sync::RwLock<Loaded>,
}

struct Loaded {
    keys: std::sync::Arc<Vec<Key>>,
    modified: Option<std::time::SystemTime>,
    checked: std::time::Instant,
}

struct Key {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    public_x: String,
}

/// Version 1 held one seed; version 2 holds several, newest first, each with when it began
/// signing.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ed25519_seed: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    keys: Vec<FileKey>,
}

#[derive(Serialize, Deserialize)]
struct FileKey {
    ed25519_seed: String,
    created_at: u64,
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The keys of a key file, newest first.
fn read_key_file(path: &Path) -> Result<Vec<FileKey>, String> {
    let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| e.to_string())?);
    check_permissions(path)?;
    let file: KeyFile = serde_json::from_str(&text).map_err(|_| "not a valid key file".to_owned())?;
    let keys = match (file.version, file.ed25519_seed) {
        (1, Some(seed)) => vec![FileKey { ed25519_seed: seed, created_at: 0 }],
        (2, None) if !file.keys.is_empty() => file.keys,
        (v, _) => return Err(format!("unsupported or empty key file (version {v})")),
    };
    Ok(keys)
}

fn write_key_file(path: &Path, keys: Vec<FileKey>) -> Result<(), String> {
    let text = Zeroizing::new(
        serde_json::to_string_pretty(&KeyFile { version: 2, ed25519_seed: None, keys }).map_err(|e| e.to_string())?,
    );
    // Written beside and renamed over, so a server reading it never sees half a file.
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, text.as_bytes()).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

fn new_seed() -> String {
    let mut seed = Zeroizing::new([0u8; 32]);
    rand::rng().fill_bytes(seed.as_mut_slice());
    hex::encode(seed.as_slice())
}

fn load_key(k: &FileKey) -> Result<Key, String> {
    let raw = Zeroizing::new(hex::decode(&k.ed25519_seed).map_err(|_| "the key is not hex".to_owned())?);
    let seed: Zeroizing<[u8; 32]> =
        Zeroizing::new(raw.as_slice().try_into().map_err(|_| "the key is not 256 bits".to_owned())?);
    let signing = SigningKey::from_bytes(&seed);
    let der = signing.to_pkcs8_der().map_err(|e| format!("cannot encode the key: {e}"))?;
    let public = signing.verifying_key().to_bytes();
    Ok(Key {
        kid: gatehouse_audit::checkpoint::key_id(&signing.verifying_key()),
        encoding: EncodingKey::from_ed_der(der.as_bytes()),
        decoding: DecodingKey::from_ed_der(&public),
        public_x: b64url(&public),
    })
}

/// Adds a new signing key to the key file at `path` and drops keys that stopped signing more
/// than `ttl` (the longest an access token lives) ago, since no live token can need them.
/// Running servers pick the change up within a second. Returns the new key's id.
pub fn rotate_key_file(path: &Path, ttl: Duration) -> Result<String, KeyFileError> {
    let err = |m: String| KeyFileError { path: path.display().to_string(), message: m };
    let old = read_key_file(path).map_err(err)?;
    let now = now_secs();
    let mut keys = vec![FileKey { ed25519_seed: new_seed(), created_at: now }];
    // A key stopped signing when the next newer one started.
    let mut retired_at = now;
    for k in old {
        if now.saturating_sub(retired_at) <= ttl.as_secs() {
            retired_at = k.created_at;
            keys.push(k);
        }
    }
    let kid = load_key(&keys[0]).map_err(err)?.kid;
    write_key_file(path, keys).map_err(err)?;
    Ok(kid)
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
        if !path.exists() {
            write_key_file(path, vec![FileKey { ed25519_seed: new_seed(), created_at: now_secs() }]).map_err(err)?;
        }
        let keys =
            read_key_file(path).map_err(err)?.iter().map(load_key).collect::<Result<Vec<_>, _>>().map_err(err)?;
        Ok(Self {
            path: path.to_owned(),
            issuer: issuer.to_owned(),
            ttl,
            loaded: std::sync::RwLock::new(Loaded {
                keys: std::sync::Arc::new(keys),
                modified: std::fs::metadata(path).and_then(|m| m.modified()).ok(),
                checked: std::time::Instant::now(),
            }),
        })
    }

    /// The keys, newest first, re-read when the file changed (checked at most once a second).
    fn keys(&self) -> std::sync::Arc<Vec<Key>> {
        {
            let loaded = self.loaded.read().unwrap_or_else(|p| p.into_inner());
            if loaded.checked.elapsed() < RELOAD_EVERY {
                return loaded.keys.clone();
            }
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|p| p.into_inner());
        loaded.checked = std::time::Instant::now();
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        if modified != loaded.modified {
            match read_key_file(&self.path).and_then(|ks| ks.iter().map(load_key).collect::<Result<Vec<_>, _>>()) {
                Ok(keys) => {
                    tracing::info!(kid = %keys.first().map(|k| k.kid.as_str()).unwrap_or("-"), "access-token keys reloaded");
                    loaded.keys = std::sync::Arc::new(keys);
                    loaded.modified = modified;
                }
                // A broken edit must not lock everyone out: keep signing with what we had.
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot reload the access-token keys")
                }
            }
        }
        loaded.keys.clone()
    }

    /// Signs an access token for `p` (its `token_id` is the token's `jti`).
    fn issue(&self, p: &Principal, secret_id: &str) -> Result<(String, u64), jsonwebtoken::errors::Error> {
        let keys = self.keys();
        let Some(key) = keys.first() else {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into());
        };
        let now = now_secs();
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
        header.kid = Some(key.kid.clone());
        header.typ = Some("at+jwt".to_owned());
        Ok((jsonwebtoken::encode(&header, &claims, &key.encoding)?, self.ttl.as_secs()))
    }

    /// Verifies an access token's signature (by any published key), issuer, audience and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the access token is malformed".to_owned())?;
        let keys = self.keys();
        let key = keys
            .iter()
            .find(|k| header.alg == Algorithm::EdDSA && header.kid.as_deref() == Some(k.kid.as_str()))
            .ok_or_else(|| "the access token was not signed by a key of this server".to_owned())?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[AUDIENCE]);
        v.leeway = 0;
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key.decoding, &v).map(|d| d.claims).map_err(|e| {
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

    /// The JWKS document: every key that may have signed a live token.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .keys()
            .iter()
            .map(|k| {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": k.public_x, "kid": k.kid, "alg": "EdDSA", "use": "sig"})
            })
            .collect();
        serde_json::json!({ "keys": keys })
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
    fn version_one_key_files_still_load_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token-keys.json");
        let v1 = serde_json::json!({"version": 1, "ed25519_seed": "11".repeat(32)}).to_string();
        write_private(&path, v1.as_bytes()).unwrap();
        let keys = TokenKeys::open_or_create(&path, "gatehouse", Duration::from_secs(900)).unwrap();
        let old_kid = keys.jwks()["keys"][0]["kid"].as_str().unwrap().to_owned();
        let new_kid = rotate_key_file(&path, Duration::from_secs(900)).unwrap();
        assert_ne!(old_kid, new_kid);
        let reopened = TokenKeys::open_or_create(&path, "gatehouse", Duration::from_secs(900)).unwrap();
        let kids: Vec<String> =
            reopened.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        assert_eq!(kids, vec![new_kid, old_kid]);
        // A damaged file is refused, not replaced.
        std::fs::write(&path, "{}").unwrap();
        assert!(TokenKeys::open_or_create(&path, "gatehouse", Duration::from_secs(900)).is_err());
    }

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
