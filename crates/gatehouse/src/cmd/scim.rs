use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use super::s;
use crate::cli::ScimCommand;
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
