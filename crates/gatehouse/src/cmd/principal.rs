use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use super::s;
use crate::cli::{PrincipalCommand, TokenCommand};
use crate::client::{Client, seg};
use crate::output;

pub async fn run_principal(cmd: PrincipalCommand, client: &Client, as_json: bool) -> Result<()> {
    let p: Value = match cmd {
        PrincipalCommand::List => {
            let list: Vec<Value> = client.get_all(client.request(Method::GET, "api/v1/principals")?).await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["NAME", "KIND", "MAX SCOPE", "ACTIVE", "ID"],
                list.iter()
                    .map(|p| vec![s(p, "name"), s(p, "kind"), s(p, "max_scope"), s(p, "active"), s(p, "id")])
                    .collect(),
            );
            return Ok(());
        }
        PrincipalCommand::Create { name, kind, max_scope, display_name } => {
            let body = json!({ "kind": kind, "name": name, "max_scope": max_scope, "display_name": display_name });
            client.json(Method::POST, "api/v1/principals", &body).await?
        }
        PrincipalCommand::ClientSecret { id } => {
            let c: Value = client
                .json(Method::POST, &format!("api/v1/principals/{}/client-secrets", seg(&id)), &json!({}))
                .await?;
            if as_json {
                return output::json(&c);
            }
            println!("client_id     {}", s(&c, "client_id"));
            println!("client_secret {}", s(&c, "client_secret"));
            println!("(shown once; exchange it with grant_type=client_credentials at {}oauth/token)", client.base());
            return Ok(());
        }
        PrincipalCommand::Deactivate { id } => {
            client.json(Method::PATCH, &format!("api/v1/principals/{}", seg(&id)), &json!({ "active": false })).await?
        }
        PrincipalCommand::Activate { id } => {
            client.json(Method::PATCH, &format!("api/v1/principals/{}", seg(&id)), &json!({ "active": true })).await?
        }
    };
    if as_json {
        return output::json(&p);
    }
    println!(
        "{} {} ({}, max scope {}, {})",
        s(&p, "kind"),
        s(&p, "name"),
        s(&p, "id"),
        s(&p, "max_scope"),
        if p["active"].as_bool() == Some(true) { "active" } else { "deactivated" }
    );
    Ok(())
}

pub async fn run_token(cmd: TokenCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        TokenCommand::List => {
            let list: Vec<Value> = client.get_all(client.request(Method::GET, "api/v1/tokens")?).await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["ID", "NAME", "SCOPE", "PRINCIPAL", "EXPIRES", "REVOKED", "LAST USED"],
                list.iter()
                    .map(|t| {
                        vec![
                            s(t, "id"),
                            s(t, "name"),
                            s(t, "scope"),
                            s(t, "principal_id"),
                            s(t, "expires_at"),
                            s(t, "revoked_at"),
                            s(t, "last_used_at"),
                        ]
                    })
                    .collect(),
            );
        }
        TokenCommand::Create { name, scope, expires_in, principal } => {
            let ttl = expires_in
                .map(|e| {
                    humantime::parse_duration(&e).with_context(|| format!("`{e}` is not a duration such as 30d or 12h"))
                })
                .transpose()?
                .map(|d| d.as_secs());
            let body = json!({ "name": name, "scope": scope, "ttl_seconds": ttl, "principal_id": principal });
            let t: Value = client.json(Method::POST, "api/v1/tokens", &body).await?;
            if as_json {
                return output::json(&t);
            }
            println!(
                "created token {} ({}, scope {}, expires {})",
                s(&t, "name"),
                s(&t, "id"),
                s(&t, "scope"),
                s(&t, "expires_at")
            );
            println!("secret (shown only now):\n\n    {}\n", s(&t, "secret"));
        }
        TokenCommand::Revoke { id } => {
            let t: Value = client.send(client.request(Method::DELETE, &format!("api/v1/tokens/{}", seg(&id)))?).await?;
            if as_json {
                return output::json(&t);
            }
            println!("revoked token {} ({})", s(&t, "name"), s(&t, "id"));
        }
    }
    Ok(())
}
