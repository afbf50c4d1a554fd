use anyhow::{Result, bail};
use reqwest::Method;
use serde_json::{Value, json};

use super::s;
use crate::cli::FolderCommand;
use crate::client::{Client, seg};
use crate::output;

/// Resolves a folder path or id to its id.
pub async fn folder_id(client: &Client, reference: &str) -> Result<String> {
    if reference.starts_with("fld_") {
        return Ok(reference.to_owned());
    }
    let wanted = normalize(reference);
    let folders: Vec<Value> = client.get("api/v1/folders").await?;
    match folders.iter().find(|f| s(f, "path") == wanted) {
        Some(f) => Ok(s(f, "id")),
        None => bail!("folder `{wanted}` not found"),
    }
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    format!("/{}", parts.join("/"))
}

fn print_folder(f: &Value, as_json: bool, verb: &str) -> Result<()> {
    if as_json {
        return output::json(f);
    }
    println!("{verb} folder {} ({})", s(f, "path"), s(f, "id"));
    Ok(())
}

pub async fn run(cmd: FolderCommand, client: &Client, as_json: bool) -> Result<()> {
    match cmd {
        FolderCommand::List => {
            let folders: Vec<Value> = client.get("api/v1/folders").await?;
            if as_json {
                return output::json(&folders);
            }
            output::table(&["PATH", "ID"], folders.iter().map(|f| vec![s(f, "path"), s(f, "id")]).collect());
        }
        FolderCommand::Create { path } => {
            let path = normalize(&path);
            let Some((parent, name)) = path.rsplit_once('/') else { bail!("give a path such as /finance") };
            if name.is_empty() {
                bail!("the root folder already exists");
            }
            let parent = if parent.is_empty() { "/" } else { parent };
            let body = json!({ "name": name, "parent": parent });
            let f: Value = client.json(Method::POST, "api/v1/folders", &body).await?;
            print_folder(&f, as_json, "created")?;
        }
        FolderCommand::Rename { folder, name } => {
            let id = folder_id(client, &folder).await?;
            let f: Value =
                client.json(Method::PATCH, &format!("api/v1/folders/{}", seg(&id)), &json!({ "name": name })).await?;
            print_folder(&f, as_json, "renamed")?;
        }
        FolderCommand::Move { folder, parent } => {
            let id = folder_id(client, &folder).await?;
            let parent = if parent.starts_with("fld_") { parent } else { normalize(&parent) };
            let f: Value = client
                .json(Method::PATCH, &format!("api/v1/folders/{}", seg(&id)), &json!({ "parent": parent }))
                .await?;
            print_folder(&f, as_json, "moved")?;
        }
        FolderCommand::Delete { folder } => {
            let id = folder_id(client, &folder).await?;
            client.execute(client.request(Method::DELETE, &format!("api/v1/folders/{}", seg(&id)))?).await?;
            if as_json {
                return output::json(&json!({ "deleted": id }));
            }
            println!("deleted folder {folder}");
        }
    }
    Ok(())
}
