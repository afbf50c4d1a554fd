use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use super::s;
use crate::cli::{MtlsCommand, ScimCommand, SessionCommand};
use crate::client::{Client, seg};
use crate::output;

pub async fn run(cmd: ScimCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        ScimCommand::CreateToken => {
            let t: Value = client.json(Method::POST, "api/v1/scim-tokens", &json!({})).await?;
            if as_json {
                return output::json(&t);
            }
            println!("SCIM base URL  {}scim/v2", client.base());
            println!("bearer token   {}", s(&t, "token"));
            println!("(shown once; token id {})", s(&t, "id"));
        }
        ScimCommand::Tokens => {
            let list: Vec<Value> = client.get_all(client.request(Method::GET, "api/v1/scim-tokens")?).await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["ID", "CREATED", "BY", "REVOKED"],
                list.iter()
                    .map(|t| vec![s(t, "id"), s(t, "created_at"), s(t, "created_by"), s(t, "revoked_at")])
                    .collect(),
            );
        }
        ScimCommand::RevokeToken { id } => {
            client.execute(client.request(Method::DELETE, &format!("api/v1/scim-tokens/{}", seg(&id)))?).await?;
            if !as_json {
                println!("revoked SCIM token {id}");
            }
        }
    }
    Ok(())
}

pub async fn run_mtls(cmd: MtlsCommand, client: &Client, as_json: bool) -> Result<()> {
    let ca: Value = match cmd {
        MtlsCommand::SetCa { file } => {
            let pem = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            client.json(Method::PUT, "api/v1/client-ca", &json!({ "pem": pem })).await?
        }
        MtlsCommand::Ca => client.get("api/v1/client-ca").await?,
        MtlsCommand::RemoveCa => {
            client.execute(client.request(Method::DELETE, "api/v1/client-ca")?).await?;
            if !as_json {
                println!("client certificates are no longer accepted");
            }
            return Ok(());
        }
    };
    if as_json {
        return output::json(&ca);
    }
    println!("client CA sha256:{} (set {} by {})", s(&ca, "fingerprint"), s(&ca, "created_at"), s(&ca, "created_by"));
    Ok(())
}

pub async fn run_session(cmd: SessionCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        SessionCommand::List { principal } => {
            let path = match principal {
                Some(p) => format!("api/v1/sessions?principal_id={}", seg(&p)),
                None => "api/v1/sessions".to_owned(),
            };
            let list: Vec<Value> = client.get(&path).await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["ID", "KIND", "STARTED", "LAST SEEN", "ENDS", "MFA", "REVOKED"],
                list.iter()
                    .map(|x| {
                        vec![
                            s(x, "id"),
                            s(x, "kind"),
                            s(x, "created_at"),
                            s(x, "last_seen_at"),
                            s(x, "expires_at"),
                            s(x, "mfa"),
                            s(x, "revoked_at"),
                        ]
                    })
                    .collect(),
            );
        }
        SessionCommand::Revoke { id } => {
            client.execute(client.request(Method::DELETE, &format!("api/v1/sessions/{}", seg(&id)))?).await?;
            if !as_json {
                println!("revoked session {id}");
            }
        }
    }
    Ok(())
}
