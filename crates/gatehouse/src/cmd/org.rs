use anyhow::Result;
use reqwest::Method;
use serde_json::{Value, json};

use super::s;
use crate::cli::OrgCommand;
use crate::client::Client;
use crate::output;

pub async fn run(cmd: OrgCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        OrgCommand::Show => {
            let me: Value = client.get("api/v1/whoami").await?;
            if as_json {
                return output::json(&me["org"]);
            }
            let org = &me["org"];
            println!("{} ({})", s(org, "name"), s(org, "id"));
            println!("display name  {}", s(org, "display_name"));
            println!("operator      {}", s(org, "operator"));
            println!("created       {}", s(org, "created_at"));
        }
        OrgCommand::List => {
            let orgs: Vec<Value> = client.get("api/v1/orgs").await?;
            if as_json {
                return output::json(&orgs);
            }
            output::table(
                &["NAME", "ID", "OPERATOR", "CREATED"],
                orgs.iter().map(|o| vec![s(o, "name"), s(o, "id"), s(o, "operator"), s(o, "created_at")]).collect(),
            );
        }
        OrgCommand::Create { name, admin_email, display_name } => {
            let body = json!({ "name": name, "admin_email": admin_email, "display_name": display_name });
            let created: Value = client.json(Method::POST, "api/v1/orgs", &body).await?;
            if as_json {
                return output::json(&created);
            }
            println!("created organization {} ({})", s(&created["org"], "name"), s(&created["org"], "id"));
            println!("first admin {}; their token (valid 7 days, shown only now):", s(&created["admin"], "name"));
            println!("\n    {}\n", s(&created["token"], "secret"));
        }
    }
    Ok(())
}
