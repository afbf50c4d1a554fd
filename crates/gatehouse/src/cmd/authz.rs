//! `gatehouse authz`: roles on folders, guardrails and explanations.

use anyhow::{Context, Result};
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::AuthzCommand;
use crate::client::{Client, seg};
use crate::cmd::s;

/// Runs an `authz` subcommand.
pub async fn run(cmd: AuthzCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        AuthzCommand::Explain { principal, action, resource } => {
            let mut query = vec![("action", action), ("resource", resource)];
            if let Some(p) = principal {
                query.push(("principal", p));
            }
            let v: Value = client.send(client.request(Method::GET, "api/v1/authz/explain")?.query(&query)).await?;
            if as_json {
                return crate::output::json(&v);
            }
            println!(
                "{}: {} may {} {}",
                s(&v, "decision").to_uppercase(),
                s(&v, "principal"),
                s(&v, "action"),
                s(&v, "resource")
            );
            println!("reason    {}", s(&v, "reason"));
            let policies: Vec<&str> =
                v["policies"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            if !policies.is_empty() {
                println!("policies  {}", policies.join(", "));
            }
            for g in v["grants"].as_array().into_iter().flatten() {
                let via = g["via_group"].as_str().map(|n| format!(" (via group {n})")).unwrap_or_default();
                println!("grant     {} on {}{via}  [{}]", s(g, "role"), s(g, "folder"), s(g, "binding"));
            }
            for e in v["errors"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                println!("error     {e}");
            }
            Ok(())
        }
        AuthzCommand::Grant { role, folder, principal, group } => {
            let body = json!({"role": role, "folder": folder, "principal_id": principal, "group_id": group});
            let b: Value = client.json(Method::POST, "api/v1/role-bindings", &body).await?;
            if as_json {
                return crate::output::json(&b);
            }
            println!(
                "granted {} on {} to {} ({})",
                s(&b, "role"),
                s(&b, "folder_path"),
                s(&b["subject"], "name"),
                s(&b, "id")
            );
            Ok(())
        }
        AuthzCommand::Revoke { id } => {
            client.execute(client.request(Method::DELETE, &format!("api/v1/role-bindings/{}", seg(&id)))?).await?;
            if !as_json {
                println!("revoked {id}");
            }
            Ok(())
        }
        AuthzCommand::Bindings { subject } => {
            let mut req = client.request(Method::GET, "api/v1/role-bindings")?;
            if let Some(sub) = subject {
                req = req.query(&[("subject", sub)]);
            }
            let list: Vec<Value> = client.send(req).await?;
            if as_json {
                return crate::output::json(&list);
            }
            for b in &list {
                println!(
                    "{}  {:<16} {:<28} {} {}",
                    s(b, "id"),
                    s(b, "role"),
                    s(b, "folder_path"),
                    s(&b["subject"], "kind"),
                    s(&b["subject"], "name")
                );
            }
            Ok(())
        }
        AuthzCommand::Roles => {
            let list: Vec<Value> = client.get("api/v1/roles").await?;
            if as_json {
                return crate::output::json(&list);
            }
            for r in &list {
                let kind = if r["builtin"] == true { "built-in" } else { "custom" };
                let actions: Vec<&str> =
                    r["actions"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                println!("{} ({kind}): {}\n  {}", s(r, "name"), s(r, "description"), actions.join(", "));
            }
            Ok(())
        }
        AuthzCommand::DefineRole { name, actions, description } => {
            let body = json!({"actions": actions, "description": description});
            let r: Value = client.json(Method::PUT, &format!("api/v1/roles/{}", seg(&name)), &body).await?;
            if as_json {
                return crate::output::json(&r);
            }
            println!("role {} defined", s(&r, "name"));
            Ok(())
        }
        AuthzCommand::Guardrail { name, file, description } => {
            let policy = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let body = json!({"policy": policy, "description": description});
            let g: Value = client.json(Method::PUT, &format!("api/v1/guardrails/{}", seg(&name)), &body).await?;
            if as_json {
                return crate::output::json(&g);
            }
            println!("guardrail {} in force", s(&g, "name"));
            Ok(())
        }
        AuthzCommand::Guardrails => {
            let list: Vec<Value> = client.get("api/v1/guardrails").await?;
            if as_json {
                return crate::output::json(&list);
            }
            for g in &list {
                println!("{}: {}\n{}\n", s(g, "name"), s(g, "description"), s(g, "policy"));
            }
            Ok(())
        }
        AuthzCommand::RemoveGuardrail { name } => {
            client.execute(client.request(Method::DELETE, &format!("api/v1/guardrails/{}", seg(&name)))?).await?;
            if !as_json {
                println!("guardrail {name} removed");
            }
            Ok(())
        }
        AuthzCommand::Schema => {
            let text = client.execute(client.request(Method::GET, "api/v1/authz/schema")?).await?.text().await?;
            print!("{text}");
            Ok(())
        }
    }
}
