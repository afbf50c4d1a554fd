//! The subcommands.

mod app;
mod audit;
mod authz;
mod folder;
mod org;
mod principal;
mod push;
mod scan;
mod scim;
mod secret;
mod sso;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::cli::{Cli, Command, ConfigCommand};
use crate::client::Client;
use crate::credentials::{self, Credential};
use crate::output;

/// Ends the process with this exit code and no further message (the command already reported).
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

/// Runs one command line.
pub async fn run(cli: Cli) -> Result<()> {
    let json = cli.json;
    match cli.command {
        Command::Serve(args) => crate::serve::serve(args).await,
        Command::Config(ConfigCommand::Show(args)) => crate::serve::show_config(args, json),
        Command::Login(args) => login(args, json).await,
        Command::Logout => {
            // A single sign-on session is ended at the server too, not only forgotten here.
            if let Ok(cred) = credentials::load()
                && cred.token.starts_with("gss_")
            {
                let client = Client::new(&cred)?;
                let req = client.request(reqwest::Method::POST, "auth/logout")?;
                if let Err(e) = client.execute(req).await {
                    eprintln!("warning: the server did not end the session: {e:#}");
                }
            }
            let removed = credentials::remove()?;
            if json {
                output::json(&serde_json::json!({ "logged_out": removed }))
            } else {
                println!("{}", if removed { "logged out" } else { "was not logged in" });
                Ok(())
            }
        }
        Command::Whoami => {
            let client = client()?;
            let me: Value = client.get("api/v1/whoami").await?;
            print_whoami(&me, json)
        }
        Command::Org(c) => org::run(c, &client()?, json).await,
        Command::Folder(c) => folder::run(c, &client()?, json).await,
        Command::App(c) => app::run(c, &client()?, json).await,
        Command::Push(args) => push::run(args, &client()?, json).await,
        Command::Principal(c) => principal::run_principal(c, &client()?, json).await,
        Command::Token(c) => principal::run_token(c, &client()?, json).await,
        Command::Secret(c) => secret::run_secret(c, &client()?, json).await,
        Command::Vault(c) => secret::run_vault(c, &client()?, json).await,
        Command::Audit(crate::cli::AuditCommand::Verify { file: Some(file), public_key, .. }) => {
            audit::verify_file(&file, public_key.as_deref().unwrap_or_default(), json)
        }
        Command::Audit(c) => audit::run(c, &client()?, json).await,
        Command::Scan(args) => scan::run(args, json),
        Command::ScanPolicy(c) => scan::run_policy(c, &client()?, json).await,
        Command::ReviewPolicy(c) => scan::run_review_policy(c, &client()?, json).await,
        Command::Authz(c) => authz::run(c, &client()?, json).await,
        Command::Scim(c) => scim::run(c, &client()?, json).await,
        Command::Mtls(c) => scim::run_mtls(c, &client()?, json).await,
        Command::Session(c) => scim::run_session(c, &client()?, json).await,
        Command::Advisories(c) => scan::run_advisories(c, json),
        Command::Admin(crate::cli::AdminCommand::Token { principal, org, ttl, server }) => {
            admin_token(&principal, org.as_deref(), &ttl, server, json).await
        }
        Command::Admin(crate::cli::AdminCommand::RotateTokenKey { server }) => {
            let config = crate::serve::effective_config(&server)?;
            let path = config.token_key_file();
            let kid = gatehouse_server::oauth::rotate_key_file(&path, config.identity.access_token_ttl)?;
            if json {
                output::json(&serde_json::json!({ "kid": kid, "key_file": path }))
            } else {
                println!("access tokens are now signed with key {kid} ({})", path.display());
                Ok(())
            }
        }
    }
}

fn client() -> Result<Client> {
    Client::new(&credentials::load()?)
}

async fn login(args: crate::cli::LoginArgs, json: bool) -> Result<()> {
    let url = args.url.trim_end_matches('/').to_owned();
    let token = match (&args.token, &args.org) {
        (_, Some(org)) if args.sso && args.device => sso::device_sign_in(&url, org).await?,
        (_, Some(org)) if args.sso => sso::sign_in(&url, org, !args.no_browser).await?,
        (Some(t), _) if t == "-" => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line).context("cannot read the token from standard input")?;
            line.trim().to_owned()
        }
        (Some(t), _) => t.clone(),
        _ => anyhow::bail!("give --token, or --sso with --org"),
    };
    let cred = Credential { url, token };
    // Check the credential before saving it, so a typo is caught now rather than later.
    let me: Value = Client::new(&cred)?.get("api/v1/whoami").await?;
    let path = credentials::save(&cred)?;
    if json {
        output::json(&me)
    } else {
        println!(
            "logged in to {} as {} ({}, scope {}); credential saved in {}",
            cred.url,
            s(&me["principal"], "name"),
            s(&me["org"], "name"),
            s(&me, "scope"),
            path.display()
        );
        Ok(())
    }
}

fn print_whoami(me: &Value, json: bool) -> Result<()> {
    if json {
        return output::json(me);
    }
    println!(
        "principal  {} ({}, {})",
        s(&me["principal"], "name"),
        s(&me["principal"], "kind"),
        s(&me["principal"], "id")
    );
    println!("org        {} ({})", s(&me["org"], "name"), s(&me["org"], "id"));
    println!("scope      {}", s(me, "scope"));
    Ok(())
}

/// A string field of a JSON object, or `-`.
pub fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

/// Issues a break-glass token straight from the database.
async fn admin_token(
    principal: &str,
    org: Option<&str>,
    ttl: &str,
    server: crate::cli::ServerArgs,
    json: bool,
) -> Result<()> {
    let ttl = humantime::parse_duration(ttl).with_context(|| format!("`{ttl}` is not a duration such as 1h"))?;
    if ttl > std::time::Duration::from_secs(7 * 24 * 3600) {
        anyhow::bail!("a break-glass token lives at most 7 days");
    }
    let config = crate::serve::effective_config(&server)?;
    let store = crate::serve::open_store(&config).await?;
    let org = match org {
        Some(name) => store.org_by_name(name).await?,
        None => store
            .list_orgs()
            .await?
            .into_iter()
            .find(|o| o.operator)
            .context("the database has no operator organization; start the server once to bootstrap it")?,
    };
    let who = store.principal_by_name(&org.id, principal).await?;
    if !who.active {
        anyhow::bail!("principal `{}` is deactivated", who.name);
    }
    // Recorded as Gatehouse acting on the host operator's instruction, for the named principal.
    let mut audit = gatehouse_store::AuditCtx::system(&org.id, "break-glass");
    audit.actor.on_behalf_of.push(gatehouse_core::audit::ActorRef {
        kind: gatehouse_core::audit::ActorKind::User,
        id: who.id.to_string(),
        name: who.name.clone(),
    });
    let token = store.create_token(&org.id, &who.id, &who.id, "break-glass", who.max_scope, Some(ttl), &audit).await?;
    store.close().await;
    eprintln!(
        "issued break-glass token {} for {} in {} (scope {}, expires {}); record this in your change log",
        token.token.id,
        who.name,
        org.name,
        token.token.scope,
        token.token.expires_at.map(|t| t.to_string()).unwrap_or_default()
    );
    if json {
        return output::json(&token);
    }
    println!("{}", token.secret);
    Ok(())
}
