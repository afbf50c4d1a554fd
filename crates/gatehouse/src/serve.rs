//! `gatehouse serve` and `gatehouse config show`.

use anyhow::{Context, Result};
use gatehouse_server::config::{Config, LogFormat, ProcessEnv};
use gatehouse_server::{AppState, build_router};
use gatehouse_store::{NewOrg, Store};

use crate::cli::{LogFormatArg, ServerArgs};

/// The effective configuration: defaults, then the file, then `GATEHOUSE_*`, then flags.
pub fn effective_config(args: &ServerArgs) -> Result<Config> {
    let file = args.config.clone().or_else(|| std::env::var_os("GATEHOUSE_CONFIG").map(Into::into));
    let mut config = match &file {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    config.apply_env(&ProcessEnv)?;
    if let Some(v) = args.listen {
        config.listen = v;
    }
    if let Some(v) = &args.data_dir {
        config.data_dir = v.clone();
    }
    if let Some(v) = &args.database_url {
        config.database_url = Some(v.clone());
    }
    if let Some(v) = args.log_format {
        config.log_format = match v {
            LogFormatArg::Text => LogFormat::Text,
            LogFormatArg::Json => LogFormat::Json,
        };
    }
    config.validate()?;
    Ok(config)
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    // Every line passes the redactor, which masks any secret value this process has handled.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(gatehouse_vault::redact::RedactingMakeWriter::new(std::io::stderr));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Opens the configured database.
pub async fn open_store(config: &Config) -> Result<Store> {
    Ok(match &config.database_url {
        Some(url) => Store::open_postgres(url, config.database_max_connections).await?,
        None => Store::open_sqlite(&config.data_dir).await?,
    })
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(args: ServerArgs) -> Result<()> {
    let config = effective_config(&args)?;
    init_tracing(config.log_format);
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let addr = listener.local_addr()?;

    let bootstrap = store
        .bootstrap_if_empty(NewOrg {
            name: config.bootstrap.org.clone(),
            display_name: config.bootstrap.org.clone(),
            admin_email: config.bootstrap.admin_email.clone(),
            admin_token_ttl: Some(config.bootstrap.token_ttl),
        })
        .await
        .context("bootstrap of the first organization failed")?;
    if let Some(b) = &bootstrap {
        tracing::info!(org = %b.org.id, admin = %b.admin.id, "bootstrapped the operator organization");
        if config.identity.sso.iter().any(|s| s.org == b.org.name) {
            // The bootstrap token is revoked below; the admin signs in through the provider.
            println!(
                "\nGatehouse created organization `{}` with admin `{}`.\n\
                 Single sign-on is configured for it, so there is no bootstrap token: sign in as `{}`\n\
                 through the identity provider:\n\n    gatehouse login --sso --url http://{addr} --org {}\n",
                b.org.name, b.admin.name, b.admin.name, b.org.name,
            );
        } else {
            // Printed, not logged: this is the one moment the secret exists outside the database.
            println!(
                "\nGatehouse created organization `{}` with admin `{}`.\n\
                 One-time bootstrap token (valid {}, shown only now):\n\n    {}\n\n\
                 Sign in with:\n\n    gatehouse login --url http://{addr} --token {}\n",
                b.org.name,
                b.admin.name,
                humantime::format_duration(config.bootstrap.token_ttl),
                b.token.secret,
                b.token.secret,
            );
        }
    }

    let shutdown = shutdown_signal()?;
    let engine = match &config.database_url {
        Some(url) => format!("postgres {}", gatehouse_server::config::mask_url(url)),
        None => format!("sqlite {}", config.data_dir.display()),
    };
    let tls = match &config.tls {
        Some(t) => Some(gatehouse_server::tls::server_config(&t.cert_file, &t.key_file)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, database = %engine, "gatehouse listening");
    println!("gatehouse listening on {scheme}://{addr}");
    let vault = gatehouse_server::vault::open_vault(store.clone(), &config, &ProcessEnv)?;
    let resume = vault.clone();
    tokio::spawn(async move {
        if let Err(e) = resume.resume_rewraps().await {
            tracing::error!(error = %e, "could not resume key re-wraps; they resume at next start");
        }
    });
    let state = AppState::new(store.clone(), vault, &config)?;
    gatehouse_server::sso::disable_bootstrap_tokens(&state).await?;
    let maintenance =
        gatehouse_server::audit::spawn_maintenance(store.clone(), state.audit.clone(), config.audit.clone());
    let exports = gatehouse_server::export::spawn_exports(
        store.clone(),
        config.audit.exports.clone(),
        std::time::Duration::from_secs(1),
    );
    let scanners = state.scanner.clone().spawn_workers(config.scan.workers, std::time::Duration::from_secs(2));
    let router = build_router(state);
    match &tls {
        Some(tls) => gatehouse_server::serve_tls(listener, tls.clone(), router, shutdown).await?,
        None => gatehouse_server::serve(listener, router, shutdown).await?,
    }
    maintenance.abort();
    for s in scanners {
        s.abort();
    }
    for e in exports {
        e.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGINT and SIGTERM handlers now — before the server announces itself, so a signal
/// sent right after start cannot hit the default action — and resolves when one arrives.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested; finishing in-flight requests");
    })
}

/// Prints the effective configuration with secrets masked.
pub fn show_config(args: ServerArgs, json: bool) -> Result<()> {
    let config = effective_config(&args)?;
    if json {
        crate::output::json(&config.masked())
    } else {
        print!("{}", config.to_masked_toml());
        Ok(())
    }
}
