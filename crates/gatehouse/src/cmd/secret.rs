use std::io::Read;

use anyhow::{Context, Result, bail};
use reqwest::Method;
use serde_json::{Value, json};
use zeroize::Zeroizing;

use super::s;
use crate::cli::{SecretCommand, VaultCommand};
use crate::client::{Client, seg};
use crate::output;

fn print_secret(m: &Value, verb: &str) {
    println!(
        "{verb} secret {} ({}) version {} in {} {}",
        s(m, "name"),
        s(m, "id"),
        s(m, "current_version"),
        s(m, "scope_kind"),
        s(m, "scope_id")
    );
}

/// The value from a file or standard input, without a trailing newline.
fn read_value(from_file: Option<&std::path::Path>) -> Result<Zeroizing<String>> {
    let mut value = Zeroizing::new(String::new());
    match from_file {
        Some(path) => {
            std::fs::File::open(path)
                .and_then(|mut f| f.read_to_string(&mut value))
                .with_context(|| format!("cannot read `{}`", path.display()))?;
        }
        None => {
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                eprintln!("enter the value, then Ctrl-D:");
            }
            std::io::stdin().read_to_string(&mut value).context("cannot read the value from standard input")?;
        }
    }
    while value.ends_with('\n') || value.ends_with('\r') {
        value.pop();
    }
    if value.is_empty() {
        bail!("the value is empty");
    }
    Ok(value)
}

pub async fn run_secret(cmd: SecretCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        SecretCommand::List => {
            let list: Vec<Value> = client.get_all(client.request(Method::GET, "api/v1/secrets")?).await?;
            if as_json {
                return output::json(&list);
            }
            output::table(
                &["NAME", "SCOPE", "VERSION", "ROTATED", "LAST USED", "ROTATION DUE", "ID"],
                list.iter()
                    .map(|m| {
                        vec![
                            s(m, "name"),
                            format!("{} {}", s(m, "scope_kind"), s(m, "scope_id")),
                            s(m, "current_version"),
                            s(m, "last_rotated_at"),
                            s(m, "last_used_at"),
                            s(m, "rotation_due"),
                            s(m, "id"),
                        ]
                    })
                    .collect(),
            );
        }
        SecretCommand::Set { name, from_file, folder, app, rotate_every_days } => {
            let value = read_value(from_file.as_deref())?;
            let body = Zeroizing::new(
                serde_json::to_vec(&json!({
                    "name": name,
                    "value": value.as_str(),
                    "folder": folder,
                    "app": app,
                    "rotate_every_days": rotate_every_days,
                }))
                .context("cannot encode the request")?,
            );
            let req = client
                .request(Method::POST, "api/v1/secrets")?
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec());
            let m: Value = client.send(req).await?;
            if as_json {
                return output::json(&m);
            }
            print_secret(&m, "stored");
        }
        SecretCommand::Show { id } => {
            let m: Value = client.get(&format!("api/v1/secrets/{}", seg(&id))).await?;
            if as_json {
                return output::json(&m);
            }
            print_secret(&m, "");
            println!("created {} by {}", s(&m, "created_at"), s(&m, "created_by"));
            println!("rotated {} by {}", s(&m, "last_rotated_at"), s(&m, "last_rotated_by"));
            println!("last used {}", s(&m, "last_used_at"));
            if m["rotation_due"].as_bool() == Some(true) {
                println!("rotation is due (every {} days)", s(&m, "rotate_every_days"));
            }
        }
        SecretCommand::Delete { id } => {
            client.execute(client.request(Method::DELETE, &format!("api/v1/secrets/{}", seg(&id)))?).await?;
            if as_json {
                return output::json(&json!({ "deleted": id }));
            }
            println!("deleted secret {id}");
        }
    }
    Ok(())
}

fn print_key(k: &Value) {
    println!("key            {}", s(k, "kek_ref"));
    println!("own key        {}", s(k, "own_key"));
    println!("pending rewrap {}", s(k, "pending_rewrap"));
    println!("destroyed      {}", s(k, "destroyed"));
}

pub async fn run_vault(cmd: VaultCommand, client: &Client, as_json: bool) -> Result<()> {
    let k: Value = match cmd {
        VaultCommand::Key => client.get("api/v1/vault/key").await?,
        VaultCommand::Rotate { kek } => {
            client.json(Method::POST, "api/v1/vault/key/rotate", &json!({ "kek_ref": kek })).await?
        }
        VaultCommand::Destroy { confirm } => {
            client.json(Method::POST, "api/v1/vault/key/destroy", &json!({ "confirm": confirm })).await?
        }
    };
    if as_json {
        return output::json(&k);
    }
    print_key(&k);
    Ok(())
}
