//! The HTTP client the CLI commands use: bearer auth, problem+json errors as one-line reasons.

use anyhow::{Context, Result, anyhow};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::credentials::Credential;

/// A client bound to one server and token.
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    token: String,
}

impl Client {
    /// A client for `cred`.
    pub fn new(cred: &Credential) -> Result<Self> {
        let mut base = url::Url::parse(&cred.url).with_context(|| format!("`{}` is not a valid URL", cred.url))?;
        if !matches!(base.scheme(), "http" | "https") {
            anyhow::bail!("the server URL must start with http:// or https://");
        }
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("gatehouse-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(std::time::Duration::from_secs(10))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { http, base, token: cred.token.clone() })
    }

    /// The server's URL.
    pub fn base(&self) -> &url::Url {
        &self.base
    }

    /// A request to `path` (relative to the server root, such as `api/v1/apps`).
    pub fn request(&self, method: Method, path: &str) -> Result<RequestBuilder> {
        let url = self.base.join(path).with_context(|| format!("bad request path `{path}`"))?;
        Ok(self.http.request(method, url).bearer_auth(&self.token))
    }

    /// Sends `req` and decodes a JSON answer, turning problem documents into errors.
    pub async fn send<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<T> {
        let res = self.execute(req).await?;
        res.json().await.context("the server's answer is not the JSON expected")
    }

    /// Sends `req`, returning the response if it succeeded.
    pub async fn execute(&self, req: RequestBuilder) -> Result<Response> {
        let res = req.send().await.map_err(|e| {
            let what = if e.is_connect() {
                "cannot connect to"
            } else if e.is_timeout() {
                "timed out talking to"
            } else {
                "request failed to"
            };
            anyhow!("{what} {}: {}", self.base, root_cause(&e))
        })?;
        if res.status().is_success() {
            return Ok(res);
        }
        Err(problem(res).await)
    }

    /// GET a JSON resource.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.send(self.request(Method::GET, path)?).await
    }

    /// GET every page of a list, following `Link: <…>; rel="next"` headers.
    /// `GATEHOUSE_PAGE_SIZE` sets the page size asked for (the server's default otherwise).
    pub async fn get_all<T: DeserializeOwned>(&self, req: RequestBuilder) -> Result<Vec<T>> {
        let req = match std::env::var("GATEHOUSE_PAGE_SIZE").ok().and_then(|v| v.parse::<u32>().ok()) {
            Some(n) => req.query(&[("limit", n)]),
            None => req,
        };
        let mut out = Vec::new();
        let mut res = self.execute(req).await?;
        loop {
            let next = next_link(res.headers());
            let page: Vec<T> = res.json().await.context("the server's answer is not the JSON expected")?;
            out.extend(page);
            let Some(next) = next else { return Ok(out) };
            let path = next.trim_start_matches('/').to_owned();
            res = self.execute(self.request(Method::GET, &path)?).await?;
        }
    }

    /// Send a JSON body with `method`.
    pub async fn json<B: Serialize, T: DeserializeOwned>(&self, method: Method, path: &str, body: &B) -> Result<T> {
        self.send(self.request(method, path)?.json(body)).await
    }
}

/// The target of a `rel="next"` link, if the response has one.
fn next_link(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get(reqwest::header::LINK)?.to_str().ok()?;
    value.split(',').find_map(|part| {
        let (target, params) = part.trim().split_once(';')?;
        params.contains("rel=\"next\"").then(|| target.trim().trim_start_matches('<').trim_end_matches('>').to_owned())
    })
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Turns an error response into a one-line error.
async fn problem(res: Response) -> anyhow::Error {
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    let detail = body.get("detail").and_then(|d| d.as_str()).unwrap_or("");
    if let Some(loc) = body.get("location").filter(|l| l.is_object()) {
        let file = loc.get("file").and_then(|v| v.as_str()).unwrap_or("gatehouse.toml");
        let line = loc.get("line").and_then(|v| v.as_u64()).unwrap_or(0);
        let col = loc.get("column").and_then(|v| v.as_u64()).unwrap_or(0);
        let msg = loc.get("message").and_then(|v| v.as_str()).unwrap_or(detail);
        return anyhow!("{file}:{line}:{col}: {msg}");
    }
    let hint = match status {
        StatusCode::UNAUTHORIZED => " (log in again with `gatehouse login`)",
        _ => "",
    };
    if detail.is_empty() { anyhow!("server answered {status}{hint}") } else { anyhow!("{detail}{hint}") }
}

/// Percent-encodes one path segment (app names are slugs, but references may not be).
pub fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
