//! Cursor paging for list operations: `?limit=N&after=CURSOR`, with the next page announced in a
//! `Link: <…>; rel="next"` header (as GitHub does) so the body stays a plain array.

use axum::Json;
use axum::http::{HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use gatehouse_store::Page;
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::error::{ApiError, ApiResult};

/// Items per page when `limit` is not given.
const DEFAULT_LIMIT: i64 = 100;

/// Paging parameters of list operations.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// Most items to return, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Cursor from the previous page's `Link: rel="next"` header.
    pub after: Option<String>,
}

/// The store page for `limit` and `after`.
pub fn page(limit: Option<i64>, after: Option<String>) -> ApiResult<Page> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::BadRequest("`limit` must be from 1 to 1000".to_owned()));
    }
    if after.as_ref().is_some_and(|a| a.len() > 300) {
        return Err(ApiError::BadRequest("`after` is not a cursor this server issued".to_owned()));
    }
    Ok(Page { after, limit })
}

/// `items` as JSON, with a link to the next page when this one is full.
pub fn respond<T: Serialize>(items: Vec<T>, page: &Page, uri: &Uri, key: impl Fn(&T) -> String) -> Response {
    let next = next_cursor(&items, page, key);
    respond_after(items, next, uri)
}

/// The cursor after a full page of `items` from the store; `None` when the page was the last.
pub fn next_cursor<T>(items: &[T], page: &Page, key: impl Fn(&T) -> String) -> Option<String> {
    (items.len() as i64 >= page.limit).then(|| items.last().map(&key)).flatten()
}

/// `items` (a page the store returned, less what the caller may not see) with a link to the page
/// after `next`.
pub fn respond_after<T: Serialize>(items: Vec<T>, next: Option<String>, uri: &Uri) -> Response {
    let mut res = Json(items).into_response();
    if let Some(cursor) = next {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            if k != "after" {
                query.append_pair(&k, &v);
            }
        }
        query.append_pair("after", &cursor);
        let link = format!("<{}?{}>; rel=\"next\"", uri.path(), query.finish());
        if let Ok(v) = HeaderValue::from_str(&link) {
            res.headers_mut().insert(header::LINK, v);
        }
    }
    res
}
