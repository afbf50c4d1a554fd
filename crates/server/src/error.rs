//! The API's error contract: every failure becomes an RFC 9457 problem+json document with a
//! stable `type`, here and nowhere else.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gatehouse_bundle::{BundleError, ManifestError};
use gatehouse_store::{StoreError, TokenRejection};
use serde::Serialize;

/// Base of every problem `type` URI; the last segment is the stable code.
pub const PROBLEM_BASE: &str = "https://gatehouse.dev/problems/";

/// An RFC 9457 problem document.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// Stable URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong this time, for a person.
    pub detail: String,
    /// For invalid manifests: where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<ManifestError>,
}

/// The problem code of an error response, for the audit layer to record as the reason.
#[derive(Debug, Clone, Copy)]
pub struct ProblemCode(pub &'static str);

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (bad query, path or header).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not valid JSON.
    #[error("{0}")]
    InvalidJson(String),
    /// The body is JSON but not of the expected shape, or breaks a rule.
    #[error("{0}")]
    Unprocessable(String),
    /// The body's media type is not accepted.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The body is over the limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// No valid credential.
    #[error("{0}")]
    Unauthenticated(String),
    /// Single sign-on did not complete (the provider refused, the id token failed a check, no
    /// such user).
    #[error("{0}")]
    SignInFailed(String),
    /// The credential is valid but does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The principal's roles or a guardrail do not allow this (403 `access-denied`).
    #[error("{0}")]
    AccessDenied(String),
    /// A route answered without deciding authorization: a bug, refused rather than served.
    #[error("this route made no authorization decision; the response was withheld")]
    AuthorizationMissing,
    /// Nothing there (or not visible to the caller).
    #[error("{0}")]
    NotFound(String),
    /// The route exists, the method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The request took longer than the configured limit.
    #[error("the request took longer than {0} seconds")]
    Timeout(u64),
    /// Clashes with existing state.
    #[error("{0}")]
    Conflict(String),
    /// The uploaded bundle was refused.
    #[error("{0}")]
    InvalidBundle(String),
    /// The bundle's manifest was refused.
    #[error("{0}")]
    InvalidManifest(ManifestError),
    /// The database is unreachable.
    #[error("service unavailable")]
    Unavailable,
    /// The key management service is unreachable: secrets fail closed.
    #[error("{0}")]
    KmsUnavailable(String),
    /// The org's key was destroyed; its secrets are gone.
    #[error("{0}")]
    KeyDestroyed(String),
    /// The audit record could not be written, so the change was not made.
    #[error("the audit log cannot be written; the change was not made")]
    AuditUnavailable,
    /// A bug; details are logged, never sent.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use ApiError::*;
        match self {
            BadRequest(_) => (StatusCode::BAD_REQUEST, "bad-request", "Bad request"),
            InvalidJson(_) => (StatusCode::BAD_REQUEST, "invalid-json", "Invalid JSON"),
            Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation", "Validation failed"),
            UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
            }
            PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large"),
            Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated", "Authentication required"),
            SignInFailed(_) => (StatusCode::UNAUTHORIZED, "sign-in-failed", "Sign-in failed"),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", "Forbidden"),
            AccessDenied(_) => (StatusCode::FORBIDDEN, "access-denied", "Access denied"),
            AuthorizationMissing => {
                (StatusCode::INTERNAL_SERVER_ERROR, "authorization-missing", "Authorization missing")
            }
            NotFound(_) => (StatusCode::NOT_FOUND, "not-found", "Not found"),
            MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed", "Method not allowed"),
            Conflict(_) => (StatusCode::CONFLICT, "conflict", "Conflict"),
            Timeout(_) => (StatusCode::REQUEST_TIMEOUT, "timeout", "Request timeout"),
            InvalidBundle(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-bundle", "Invalid bundle"),
            InvalidManifest(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid-manifest", "Invalid manifest"),
            Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable"),
            KmsUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "kms-unavailable", "Key management unavailable"),
            KeyDestroyed(_) => (StatusCode::GONE, "key-destroyed", "Key destroyed"),
            AuditUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "audit-unavailable", "Audit log unavailable"),
            Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error"),
        }
    }

    /// The stable problem code, such as `not-found`.
    pub fn code(&self) -> &'static str {
        self.parts().1
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, title) = self.parts();
        let location = match &self {
            ApiError::InvalidManifest(loc) => Some(loc.clone()),
            _ => None,
        };
        let problem = Problem {
            kind: format!("{PROBLEM_BASE}{code}"),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            location,
        };
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut res = (status, body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res.extensions_mut().insert(ProblemCode(code));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"gatehouse\""));
        }
        res
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Invalid(m) => ApiError::Unprocessable(m),
            StoreError::AuditUnavailable(_) => ApiError::AuditUnavailable,
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "database unavailable");
                ApiError::Unavailable
            }
            e => {
                tracing::error!(error = %e, "store error");
                ApiError::Internal
            }
        }
    }
}

impl From<BundleError> for ApiError {
    fn from(e: BundleError) -> Self {
        match e {
            BundleError::Manifest(m) => ApiError::InvalidManifest(m),
            BundleError::TooLarge(_) => ApiError::PayloadTooLarge(e.to_string()),
            other => ApiError::InvalidBundle(other.to_string()),
        }
    }
}

impl From<gatehouse_vault::VaultError> for ApiError {
    fn from(e: gatehouse_vault::VaultError) -> Self {
        use gatehouse_vault::VaultError;
        match e {
            VaultError::Invalid(m) => ApiError::Unprocessable(m),
            VaultError::Unavailable(_) => {
                tracing::error!(error = %e, "key management unavailable");
                ApiError::KmsUnavailable(
                    "secrets are unavailable: the key management service cannot be reached".to_owned(),
                )
            }
            VaultError::KeyDestroyed => ApiError::KeyDestroyed(e.to_string()),
            VaultError::Integrity => {
                tracing::error!("a stored secret failed its integrity check");
                ApiError::Internal
            }
            VaultError::Store(s) => s.into(),
        }
    }
}

impl From<TokenRejection> for ApiError {
    fn from(r: TokenRejection) -> Self {
        ApiError::Unauthenticated(
            match r {
                TokenRejection::Unknown => "the bearer token is not valid",
                TokenRejection::Expired => "the bearer token has expired",
                TokenRejection::Revoked => "the bearer token has been revoked",
                TokenRejection::Inactive => "the token's principal is deactivated",
            }
            .to_owned(),
        )
    }
}

/// The result type of handlers.
pub type ApiResult<T> = Result<T, ApiError>;
