use std::time::Duration;

use anyhow::{Context, Result};
use futures_util::stream;
use gatehouse_bundle::{Bundle, Limits, Tree};
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::Value;

use super::s;
use crate::cli::PushArgs;
use crate::client::{Client, seg};
use crate::output;

const CHUNK: usize = 64 * 1024;

pub async fn run(args: PushArgs, client: &Client, as_json: bool) -> Result<()> {
    let dir = args.dir.clone();
    if !dir.is_dir() {
        anyhow::bail!("`{}` is not a folder", dir.display());
    }
    // Pack and validate locally first: a manifest error is reported before anything is sent,
    // in the same words the server would use.
    let (bundle, archive) = tokio::task::spawn_blocking(move || -> Result<(Bundle, Vec<u8>)> {
        let tree = Tree::from_dir(&dir, &Limits::default())?;
        let bundle = Bundle::from_tree(tree)?;
        let archive = bundle.tree.to_tar_gz();
        Ok((bundle, archive))
    })
    .await
    .context("packing failed")??;
    let app = bundle.manifest.app.name.clone();

    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(m) = &args.message {
        query.push(("message", m.clone()));
    }
    if let Some(p) = &args.parent {
        query.push(("parent", p.clone()));
    }
    if let Some(a) = &args.ai_agent {
        query.push(("ai_agent", a.clone()));
    }
    if let Some(m) = &args.ai_model {
        query.push(("ai_model", m.clone()));
    }
    if !args.prompt_ids.is_empty() {
        query.push(("ai_prompt_ids", args.prompt_ids.join(",")));
    }

    let total = archive.len() as u64;
    let bar = if as_json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(total)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("pushing {app}"));
    bar.enable_steady_tick(Duration::from_millis(200));
    let progress = bar.clone();
    let chunks: Vec<Vec<u8>> = archive.chunks(CHUNK).map(<[u8]>::to_vec).collect();
    let body = reqwest::Body::wrap_stream(stream::iter(chunks.into_iter().map(move |c| {
        progress.inc(c.len() as u64);
        Ok::<_, std::io::Error>(c)
    })));
    let req = client
        .request(Method::POST, &format!("api/v1/apps/{}/revisions", seg(&app)))?
        .query(&query)
        .header(reqwest::header::CONTENT_TYPE, "application/gzip")
        .header(reqwest::header::CONTENT_LENGTH, total)
        .body(body);
    let result: Result<Value> = client.send(req).await;
    bar.finish_and_clear();
    let result = result?;
    if as_json {
        return output::json(&result);
    }
    let rev = &result["revision"];
    let verb = if result["created"].as_bool() == Some(true) { "pushed" } else { "unchanged: already at" };
    println!(
        "{verb} {app} revision #{} {} ({} files, {} bytes)",
        s(rev, "number"),
        s(rev, "digest"),
        s(rev, "file_count"),
        s(rev, "archive_bytes")
    );
    Ok(())
}
