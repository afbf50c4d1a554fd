use anyhow::Result;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::s;
use crate::cli::AppCommand;
use crate::client::{Client, seg};
use crate::output;

fn print_app(a: &Value, as_json: bool) -> Result<()> {
    if as_json {
        return output::json(a);
    }
    println!("{} ({})", s(a, "name"), s(a, "id"));
    println!("folder       {}", s(a, "folder_id"));
    println!("owner        {}", s(a, "owner_id"));
    println!("sensitivity  {}", s(a, "sensitivity"));
    println!("status       {}", s(a, "status"));
    println!("head         {}", s(a, "head_revision"));
    if a.get("description").is_some_and(|d| !d.is_null()) {
        println!("description  {}", s(a, "description"));
    }
    Ok(())
}

fn short(digest: &str) -> String {
    digest.chars().take(12).collect()
}

pub async fn run(cmd: AppCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        AppCommand::Scan { app, rev, wait, rescan } => {
            return super::scan::show(client, &app, &rev, wait, rescan, as_json).await;
        }
        AppCommand::Suppress { app, fingerprint, rule, path, reason, days } => {
            let body = json!({"fingerprint": fingerprint, "rule_id": rule, "path": path, "reason": reason, "expires_in_days": days});
            let v: Value = client
                .send(client.request(Method::POST, &format!("api/v1/apps/{}/suppressions", seg(&app)))?.json(&body))
                .await?;
            if as_json {
                return output::json(&v);
            }
            println!("suppression {} until {}", s(&v, "id"), s(&v, "expires_at"));
        }
        AppCommand::Suppressions { app } => {
            let list: Vec<Value> = client.get(&format!("api/v1/apps/{}/suppressions", seg(&app))).await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["ID", "MATCHES", "EXPIRES", "REVOKED", "REASON"],
                list.iter()
                    .map(|v| {
                        let matches = match v["fingerprint"].as_str() {
                            Some(fp) => fp.to_owned(),
                            None => format!("{} in {}", s(v, "rule_id"), s(v, "path")),
                        };
                        vec![s(v, "id"), matches, s(v, "expires_at"), s(v, "revoked_at"), s(v, "reason")]
                    })
                    .collect(),
            );
        }
        AppCommand::Unsuppress { app, id } => {
            let v: Value = client
                .send(client.request(Method::DELETE, &format!("api/v1/apps/{}/suppressions/{}", seg(&app), seg(&id)))?)
                .await?;
            if as_json {
                return output::json(&v);
            }
            println!("suppression {} revoked", s(&v, "id"));
        }
        AppCommand::List { folder } => {
            let mut req = client.request(Method::GET, "api/v1/apps")?;
            if let Some(f) = folder {
                req = req.query(&[("folder", f)]);
            }
            let apps: Vec<Value> = client.get_all(req).await?;
            if as_json {
                return output::json(&apps);
            }
            output::table(
                &["NAME", "ID", "SENSITIVITY", "STATUS", "HEAD"],
                apps.iter()
                    .map(|a| {
                        vec![
                            s(a, "name"),
                            s(a, "id"),
                            s(a, "sensitivity"),
                            s(a, "status"),
                            short(&s(a, "head_revision")),
                        ]
                    })
                    .collect(),
            );
        }
        AppCommand::Create { name, folder, sensitivity, description } => {
            let body =
                json!({ "name": name, "folder": folder, "sensitivity": sensitivity, "description": description });
            let a: Value = client.json(Method::POST, "api/v1/apps", &body).await?;
            if as_json {
                return output::json(&a);
            }
            println!("created app {} ({})", s(&a, "name"), s(&a, "id"));
        }
        AppCommand::Show { app } => {
            let a: Value = client.get(&format!("api/v1/apps/{}", seg(&app))).await?;
            print_app(&a, as_json)?;
        }
        AppCommand::Update { app, folder, sensitivity, status, description } => {
            let mut body = Map::new();
            for (k, v) in
                [("folder", folder), ("sensitivity", sensitivity), ("status", status), ("description", description)]
            {
                if let Some(v) = v {
                    body.insert(k.to_owned(), Value::String(v));
                }
            }
            let a: Value = client.json(Method::PATCH, &format!("api/v1/apps/{}", seg(&app)), &body).await?;
            print_app(&a, as_json)?;
        }
        AppCommand::History { app, limit } => {
            let req = client
                .request(Method::GET, &format!("api/v1/apps/{}/revisions", seg(&app)))?
                .query(&[("limit", limit)]);
            let revs: Vec<Value> = client.send(req).await?;
            if as_json {
                return output::json(&revs);
            }
            output::table(
                &["#", "REVISION", "PUSHED", "AUTHOR", "AI", "MESSAGE"],
                revs.iter()
                    .map(|r| {
                        let p = &r["provenance"];
                        let ai = match (p.get("agent").and_then(Value::as_str), p.get("model").and_then(Value::as_str))
                        {
                            (Some(a), Some(m)) => format!("{a}/{m}"),
                            (Some(a), None) => a.to_owned(),
                            (None, Some(m)) => m.to_owned(),
                            (None, None) => "-".to_owned(),
                        };
                        vec![
                            s(r, "number"),
                            short(&s(r, "digest")),
                            s(r, "created_at"),
                            s(r, "author_name"),
                            ai,
                            s(r, "message"),
                        ]
                    })
                    .collect(),
            );
        }
        AppCommand::Download { app, rev, output } => {
            let res = client
                .execute(
                    client
                        .request(Method::GET, &format!("api/v1/apps/{}/revisions/{}/archive", seg(&app), seg(&rev)))?,
                )
                .await?;
            let digest = res
                .headers()
                .get(reqwest::header::ETAG)
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim_matches('"').to_owned())
                .unwrap_or_default();
            let bytes = res.bytes().await?;
            // Check the content address before keeping the file.
            let tree = gatehouse_bundle::unpack(&bytes, &gatehouse_bundle::Limits::default())?;
            if tree.digest().to_hex() != digest {
                anyhow::bail!("the downloaded archive does not match its digest `{digest}`");
            }
            let short: String = digest.chars().take(12).collect();
            let path = output.unwrap_or_else(|| std::path::PathBuf::from(format!("{app}-{short}.tar.gz")));
            std::fs::write(&path, &bytes).map_err(|e| anyhow::anyhow!("cannot write `{}`: {e}", path.display()))?;
            if as_json {
                return output::json(&json!({ "path": path, "digest": digest, "bytes": bytes.len() }));
            }
            println!("wrote {} ({} bytes, digest {digest} verified)", path.display(), bytes.len());
        }
        AppCommand::Diff { app, from, to } => {
            let req = client
                .request(Method::GET, &format!("api/v1/apps/{}/diff", seg(&app)))?
                .query(&[("from", from), ("to", to)]);
            let d: Value = client.send(req).await?;
            if as_json {
                return output::json(&d);
            }
            print_diff(&d);
        }
    }
    Ok(())
}

fn describe_capability(c: &Value) -> String {
    match s(c, "kind").as_str() {
        "integration" => format!("integration {}", s(c, "integration")),
        "scope" => format!("scope {} on {}", s(c, "scope"), s(c, "integration")),
        "data_scope" => format!("data scope {} on {}", s(c, "data_scope"), s(c, "integration")),
        "egress" => format!("egress to {}", s(c, "host")),
        other => other.to_owned(),
    }
}

fn print_diff(d: &Value) {
    println!(
        "revision #{} {} -> #{} {}",
        s(&d["from"], "number"),
        short(&s(&d["from"], "digest")),
        s(&d["to"], "number"),
        short(&s(&d["to"], "digest"))
    );
    let caps = &d["capabilities"];
    let added = caps["added"].as_array().cloned().unwrap_or_default();
    let removed = caps["removed"].as_array().cloned().unwrap_or_default();
    println!("\nCapability changes:");
    if added.is_empty() && removed.is_empty() && caps["sensitivity"].is_null() {
        println!("  none");
    }
    for c in &added {
        println!("  + {}", describe_capability(c));
    }
    for c in &removed {
        println!("  - {}", describe_capability(c));
    }
    if let Some([a, b]) = caps["sensitivity"].as_array().map(Vec::as_slice) {
        println!("  ~ sensitivity {} -> {}", a.as_str().unwrap_or("?"), b.as_str().unwrap_or("?"));
    }
    let files = d["files"].as_array().cloned().unwrap_or_default();
    println!("\nFile changes:");
    if files.is_empty() {
        println!("  none");
    }
    for f in &files {
        let mark = match s(f, "change").as_str() {
            "added" => "A",
            "removed" => "D",
            _ => "M",
        };
        let binary = if f["binary"].as_bool() == Some(true) { " (binary)" } else { "" };
        println!("  {mark} {}{binary}", s(f, "path"));
    }
    for f in &files {
        if let Some(u) = f["unified"].as_str() {
            println!();
            print!("{u}");
        }
    }
}
