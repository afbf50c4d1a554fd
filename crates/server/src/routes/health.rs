//! Liveness and readiness, unauthenticated so load balancers and orchestrators can probe them.

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::get;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::ApiError;

/// `/healthz` and `/readyz`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The database answers and every migration is applied.
async fn readyz(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    match state.store.ready().await {
        Ok(()) => Ok(Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            Err(ApiError::Unavailable)
        }
    }
}
