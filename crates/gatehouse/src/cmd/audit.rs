//! `gatehouse audit`: search, verify (online and offline), export.

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::Value;

use super::s;
use crate::cli::AuditCommand;
use crate::client::Client;
use crate::output;

pub async fn run(cmd: AuditCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        AuditCommand::Search { since, until, actor, action, resource, outcome, limit } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            for (k, v) in [
                ("since", since),
                ("until", until),
                ("actor", actor),
                ("action", action),
                ("resource", resource),
                ("outcome", outcome),
            ] {
                if let Some(v) = v {
                    query.push((k, v));
                }
            }
            query.push(("limit", limit.clamp(1, 1000).to_string()));
            let req = client.request(Method::GET, "api/v1/audit/events")?.query(&query);
            let records: Vec<Value> = client.send(req).await?;
            if as_json {
                return output::json(&records);
            }
            output::table(
                &["SEQ", "TIME", "ACTOR", "ACTION", "RESOURCE", "OUTCOME", "SOURCE"],
                records
                    .iter()
                    .map(|r| {
                        vec![
                            r["seq"].to_string(),
                            s(r, "time"),
                            r["actor"]["name"].as_str().unwrap_or("").to_owned(),
                            s(r, "action"),
                            format!(
                                "{} {}",
                                r["resource"]["kind"].as_str().unwrap_or(""),
                                r["resource"]["id"].as_str().unwrap_or("")
                            ),
                            match s(r, "reason").as_str() {
                                "" => s(r, "outcome"),
                                reason => format!("{} ({reason})", s(r, "outcome")),
                            },
                            s(r, "source"),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
        AuditCommand::Verify { from, to, .. } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(f) = from {
                query.push(("from", f.to_string()));
            }
            if let Some(t) = to {
                query.push(("to", t.to_string()));
            }
            let req = client.request(Method::GET, "api/v1/audit/verify")?.query(&query);
            let result: Value = client.send(req).await?;
            report(&result, as_json)
        }
        AuditCommand::Export { from, to, output } => {
            let mut query: Vec<(&str, String)> = Vec::new();
            if let Some(f) = from {
                query.push(("from", f.to_string()));
            }
            if let Some(t) = to {
                query.push(("to", t.to_string()));
            }
            let req = client.request(Method::GET, "api/v1/audit/export")?.query(&query);
            let mut res = client.execute(req).await?;
            let mut out: Box<dyn std::io::Write> = match &output {
                Some(p) => Box::new(std::io::BufWriter::new(
                    std::fs::File::create(p).with_context(|| format!("cannot create `{}`", p.display()))?,
                )),
                None => Box::new(std::io::stdout().lock()),
            };
            while let Some(chunk) = res.chunk().await.context("the export was interrupted")? {
                out.write_all(&chunk)?;
            }
            out.flush()?;
            Ok(())
        }
        AuditCommand::Head => {
            let head: Value = client.get("api/v1/audit/head").await?;
            if as_json {
                return output::json(&head);
            }
            println!(
                "head {} ({}), checkpointed through {}, retained from {}",
                head["seq"],
                s(&head, "hash"),
                head["checkpointed_seq"],
                head["anchor_seq"].as_u64().unwrap_or(0) + 1
            );
            Ok(())
        }
        AuditCommand::PublicKey => {
            let key: Value = client.get("api/v1/audit/public-key").await?;
            if as_json {
                return output::json(&key);
            }
            println!("{}", s(&key, "public_key"));
            Ok(())
        }
        AuditCommand::Exports => {
            let list: Vec<Value> = client.get("api/v1/audit/exports").await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["NAME", "DELIVERED", "LAG", "LAST SUCCESS", "LAST ERROR"],
                list.iter()
                    .map(|e| {
                        vec![
                            s(e, "name"),
                            e["delivered_seq"].to_string(),
                            e["lag"].to_string(),
                            s(e, "last_success_at"),
                            s(e, "last_error"),
                        ]
                    })
                    .collect(),
            );
            Ok(())
        }
    }
}

/// Verifies an exported file with only the public key, without a server or credential.
pub fn verify_file(file: &std::path::Path, public_key: &str, as_json: bool) -> Result<()> {
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let result = gatehouse_server::audit::verify_export_hex(&text, public_key.trim()).map_err(anyhow::Error::msg)?;
    let value = serde_json::to_value(gatehouse_server::VerifyResult::from(result))?;
    report(&value, as_json)
}

fn report(result: &Value, as_json: bool) -> Result<()> {
    let ok = result["ok"].as_bool().unwrap_or(false);
    if as_json {
        output::json(result)?;
    } else if ok {
        println!(
            "verified records {}..{} ({} records, {} signed checkpoints, {} not yet signed)",
            result["first_seq"], result["last_seq"], result["records"], result["checkpoints"], result["unsigned_tail"]
        );
    }
    if !ok {
        bail!(
            "audit chain broken at sequence {}: {}: {}",
            result["bad_seq"],
            s(result, "problem"),
            s(result, "detail")
        );
    }
    Ok(())
}
