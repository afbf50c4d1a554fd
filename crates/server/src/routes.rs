//! The API's areas, each offering its routes.

pub mod access;
pub mod apps;
pub mod audit;
pub mod folders;
pub mod health;
pub mod identity;
pub mod orgs;
pub mod paging;
pub mod principals;
pub mod revisions;
pub mod scans;
pub mod secrets;

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;
use crate::error::ApiError;

/// Every `/api/v1` route.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(orgs::routes())
        .merge(principals::routes())
        .merge(folders::routes())
        .merge(apps::routes())
        .merge(revisions::routes())
        .merge(secrets::routes())
        .merge(scans::routes())
        .merge(audit::routes())
        .merge(access::routes())
        .merge(identity::routes())
}

/// Answer for paths that match no route.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::NotFound(format!("no route for `{}`", uri.path()))
}

/// Answer for a known path with the wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
