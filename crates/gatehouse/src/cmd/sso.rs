//! `gatehouse login --sso`: the browser sign-in for the CLI (RFC 8252, a loopback redirect).
//!
//! The CLI listens on 127.0.0.1, sends the browser to Gatehouse's sign-in with that address and
//! the hash of a secret verifier, and receives a one-time code on the loopback address when the
//! identity provider is done. It exchanges code and verifier for a session token; a code seen by
//! anyone else is useless without the verifier, and the session secret never appears in a URL.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use rand::RngCore;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the CLI waits for the browser to come back.
const WAIT: Duration = Duration::from_secs(300);

/// Runs the sign-in and returns the session token.
pub async fn sign_in(server: &str, org: &str, open_browser: bool) -> Result<String> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let verifier = hex::encode(raw);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot listen on loopback")?;
    let redirect = format!("http://{}/callback", listener.local_addr()?);
    let mut url = url::Url::parse(&format!("{server}/auth/login")).context("invalid --url")?;
    url.query_pairs_mut()
        .append_pair("org", org)
        .append_pair("cli_redirect", &redirect)
        .append_pair("cli_challenge", &challenge);
    eprintln!("Sign in to `{org}` in your browser:\n\n    {url}\n");
    if open_browser {
        for opener in ["xdg-open", "open"] {
            if std::process::Command::new(opener)
                .arg(url.as_str())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .is_ok()
            {
                break;
            }
        }
    }
    let code = tokio::time::timeout(WAIT, wait_for_code(&listener)).await.context("no sign-in within 5 minutes")??;
    let res = reqwest::Client::new()
        .post(format!("{server}/auth/cli/token"))
        .json(&serde_json::json!({"code": code, "verifier": verifier}))
        .send()
        .await
        .context("cannot reach the server")?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("sign-in failed: {}", body["detail"].as_str().unwrap_or("no detail"));
    }
    body["session_token"].as_str().map(str::to_owned).context("the server sent no session token")
}

/// Signs in with the provider's device flow (RFC 8628) through Gatehouse, which holds the client
/// credentials: shows where to enter the code, then polls until the person is done.
pub async fn device_sign_in(server: &str, org: &str) -> Result<String> {
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{server}/auth/device"))
        .json(&serde_json::json!({"org": org}))
        .send()
        .await
        .context("cannot reach the server")?;
    let status = res.status();
    let start: Value = res.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("cannot start the device sign-in: {}", start["detail"].as_str().unwrap_or("no detail"));
    }
    let device_id = start["device_id"].as_str().context("the server sent no device id")?.to_owned();
    let interval = Duration::from_secs(start["interval"].as_u64().unwrap_or(5).max(1));
    match start["verification_uri_complete"].as_str() {
        Some(complete) => eprintln!(
            "On any device, open\n\n    {complete}\n\nor go to {} and enter the code {}\n",
            start["verification_uri"].as_str().unwrap_or_default(),
            start["user_code"].as_str().unwrap_or_default()
        ),
        None => eprintln!(
            "On any device, go to {} and enter the code {}\n",
            start["verification_uri"].as_str().unwrap_or_default(),
            start["user_code"].as_str().unwrap_or_default()
        ),
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(start["expires_in"].as_u64().unwrap_or(600));
    loop {
        if std::time::Instant::now() > deadline {
            bail!("the code expired before the sign-in was finished");
        }
        let res = http
            .post(format!("{server}/auth/device/token"))
            .json(&serde_json::json!({"device_id": device_id}))
            .send()
            .await
            .context("cannot reach the server")?;
        match res.status().as_u16() {
            202 => tokio::time::sleep(interval).await,
            200 => {
                let body: Value = res.json().await?;
                return body["session_token"].as_str().map(str::to_owned).context("the server sent no session token");
            }
            _ => {
                let body: Value = res.json().await.unwrap_or(Value::Null);
                bail!("sign-in failed: {}", body["detail"].as_str().unwrap_or("no detail"));
            }
        }
    }
}

/// Serves the loopback address until a request brings `code` (or the provider's error).
async fn wait_for_code(listener: &tokio::net::TcpListener) -> Result<String> {
    loop {
        let (mut stream, _) = listener.accept().await?;
        let mut buf = vec![0u8; 8192];
        let mut len = 0;
        while len < buf.len() {
            let n = stream.read(&mut buf[len..]).await?;
            if n == 0 {
                break;
            }
            len += n;
            if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
        let found = callback_result(&String::from_utf8_lossy(&buf[..len]));
        let page = match found {
            Some(Ok(_)) => "Signed in to Gatehouse. You can close this window.",
            Some(Err(_)) => "Sign-in failed; see the terminal.",
            None => "Waiting for the sign-in.",
        };
        let body = format!("<!DOCTYPE html><html><body><p>{page}</p></body></html>");
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = stream.write_all(reply.as_bytes()).await;
        match found {
            Some(Ok(code)) => return Ok(code),
            Some(Err(e)) => bail!("the sign-in was refused: {}", e.chars().take(200).collect::<String>()),
            None => continue,
        }
    }
}

/// What a request to the loopback listener brings: the code, the provider's error, or neither
/// (a browser's favicon request, say). `head` is the request as received; anything may arrive.
fn callback_result(head: &str) -> Option<Result<String, String>> {
    let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or_default();
    let parsed = url::Url::parse(&format!("http://127.0.0.1{target}")).ok()?;
    let param = |name: &str| parsed.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    match (param("code"), param("error")) {
        (Some(code), _) => Some(Ok(code)),
        (None, Some(e)) => Some(Err(e)),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_the_code_or_the_error() {
        assert_eq!(
            callback_result("GET /callback?code=abc&x=1 HTTP/1.1\r\nHost: x\r\n\r\n"),
            Some(Ok("abc".to_owned()))
        );
        assert_eq!(
            callback_result("GET /callback?error=access_denied HTTP/1.1\r\n\r\n"),
            Some(Err("access_denied".to_owned()))
        );
        assert_eq!(callback_result("GET /favicon.ico HTTP/1.1\r\n\r\n"), None);
        assert_eq!(callback_result(""), None);
    }

    proptest! {
        #[test]
        fn any_request_head_is_answered(head in "\\PC{0,200}", target in "[ -~]{0,80}") {
            let _ = callback_result(&head);
            let _ = callback_result(&format!("GET {target} HTTP/1.1\r\n\r\n"));
        }
    }
}
