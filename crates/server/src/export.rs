//! SIEM export of the audit log: OCSF (or native) records delivered at least once, in order, to
//! NDJSON files, a Splunk HTTP Event Collector, or a syslog receiver over TLS. Each export keeps
//! a cursor per org in the database and advances it only after the sink accepted a batch, so a
//! crash or an outage means redelivery, never a gap.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_core::OrgId;
use gatehouse_core::audit::{ActorKind, AuditRecord, Outcome};
use gatehouse_store::Store;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::config::{ExportFormat, ExportSettings, SinkSettings};

/// The OCSF version the mapping follows.
pub const OCSF_VERSION: &str = "1.3.0";

/// Records per delivery.
const BATCH: i64 = 500;

/// Why a delivery failed; the text is stored as the export's last error.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The sink refused or could not be reached; retried with back-off.
    #[error("{0}")]
    Sink(String),
    /// The export is misconfigured (unreadable token or CA file, bad URL).
    #[error("configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] gatehouse_store::StoreError),
}

/// The OCSF class, activity and category of an action.
fn ocsf_class(action: &str) -> (u32, u32) {
    let verb = action.rsplit('.').next().unwrap_or("");
    match action {
        a if a.starts_with("auth.") => {
            let activity = if verb == "signout" || verb == "logout" { 2 } else { 1 };
            (3002, activity)
        }
        "principal.create" => (3001, 1),
        "principal.activate" => (3001, 2),
        "principal.deactivate" => (3001, 5),
        "principal.delete" => (3001, 6),
        "token.create" => (3005, 1),
        "token.revoke" => (3005, 2),
        a if a.starts_with("role.") => (3005, if verb == "grant" { 3 } else { 4 }),
        _ => {
            let activity = match verb {
                "create" | "push" | "append" | "bootstrap" => 1,
                "read" | "match" | "call" => 2,
                "update" | "rotate" | "activate" | "set" => 3,
                "delete" | "destroy" | "revoke" => 4,
                _ => 99,
            };
            (6003, activity)
        }
    }
}

/// A record as an OCSF event. The chain fields travel as record-integrity attributes
/// (`metadata.sequence`, `unmapped.integrity`), so a SIEM can check order and completeness.
pub fn to_ocsf(r: &AuditRecord) -> Value {
    let d = &r.draft;
    let (class_uid, activity_id) = ocsf_class(&d.action);
    let user = |name: &str, id: &str, kind: ActorKind| {
        json!({
            "name": name,
            "uid": id,
            "type": match kind { ActorKind::User => "User", ActorKind::Service | ActorKind::App => "System", ActorKind::Anonymous => "Unknown" },
            "type_id": match kind { ActorKind::User => 1, ActorKind::Service | ActorKind::App => 3, ActorKind::Anonymous => 0 },
        })
    };
    let actor_user = user(&d.actor.who.name, &d.actor.who.id, d.actor.who.kind);
    let mut actor = json!({ "user": actor_user });
    if let Some(first) = d.actor.on_behalf_of.first() {
        // The app acting for a person: the person is the user, the app the application.
        actor = json!({ "user": user(&first.name, &first.id, first.kind), "app_name": d.actor.who.name });
    }
    let src_endpoint = match &d.source {
        Some(ip) => json!({ "ip": ip }),
        None => json!({ "name": "gatehouse" }),
    };
    let (status_id, status, severity_id) = match d.outcome {
        Outcome::Success => (1, "Success", 1),
        Outcome::Failed => (2, "Failure", 2),
        Outcome::Denied => (2, "Failure", 3),
    };
    let mut e = json!({
        "class_uid": class_uid,
        "category_uid": class_uid / 1000,
        "activity_id": activity_id,
        "type_uid": class_uid * 100 + activity_id,
        "severity_id": severity_id,
        "status_id": status_id,
        "status": status,
        "time": r.time.as_millis(),
        "message": format!("{} {} {}", d.action, d.resource.kind, d.resource.id),
        "metadata": {
            "version": OCSF_VERSION,
            "product": { "name": "Gatehouse", "vendor_name": "Gatehouse", "version": env!("CARGO_PKG_VERSION") },
            "uid": format!("{}:{}", d.org_id, r.seq),
            "sequence": r.seq,
            "event_code": d.action,
            "log_name": "audit",
        },
        "actor": actor,
        "src_endpoint": src_endpoint,
        "unmapped": {
            "org_id": d.org_id,
            "details": d.details,
            "integrity": { "seq": r.seq, "prev_hash": r.prev_hash, "hash": r.hash, "algorithm": "sha256-chain-v1" },
        },
    });
    if let Some(reason) = &d.reason {
        e["status_detail"] = json!(reason);
    }
    if let Some(ua) = &d.user_agent {
        e["http_request"] = json!({ "user_agent": ua, "uid": d.request_id });
    }
    let resource = json!({ "type": d.resource.kind, "uid": d.resource.id, "name": d.resource.path });
    match class_uid {
        3002 => {
            // The subject of a refused sign-in is whoever presented the credential.
            e["user"] = e["actor"]["user"].clone();
            e["service"] = json!({ "name": "gatehouse-api" });
            e["is_remote"] = json!(d.source.is_some());
        }
        3001 => {
            e["user"] = json!({ "uid": d.resource.id, "name": d.details.get("name").cloned().unwrap_or(Value::Null) });
        }
        3005 => {
            e["user"] = json!({ "uid": d.details.get("principal").cloned().unwrap_or(json!(d.resource.id)) });
            e["privileges"] = json!([d.details.get("scope").and_then(|s| s.as_str()).unwrap_or("token")]);
            e["resources"] = json!([resource]);
        }
        _ => {
            e["api"] = json!({ "operation": d.action, "service": { "name": "gatehouse" }, "request": { "uid": d.request_id } });
            e["resources"] = json!([resource]);
        }
    }
    e
}

fn format(r: &AuditRecord, f: ExportFormat) -> Value {
    match f {
        ExportFormat::Ocsf => to_ocsf(r),
        ExportFormat::Native => serde_json::to_value(r).unwrap_or(Value::Null),
    }
}

/// A sink ready to take batches.
enum Sink {
    Ndjson { dir: PathBuf, rotate_bytes: u64 },
    Hec { client: reqwest::Client, url: String, token: zeroize::Zeroizing<String> },
    Syslog { address: String, server_name: String, tls: tokio_rustls::TlsConnector },
}

impl Sink {
    fn open(s: &SinkSettings) -> Result<Self, ExportError> {
        match s {
            SinkSettings::Ndjson { dir, rotate_bytes } => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| ExportError::Config(format!("cannot create `{}`: {e}", dir.display())))?;
                Ok(Sink::Ndjson { dir: dir.clone(), rotate_bytes: *rotate_bytes })
            }
            SinkSettings::SplunkHec { url, token_file, ca_file } => {
                let token = std::fs::read_to_string(token_file)
                    .map_err(|e| ExportError::Config(format!("cannot read the HEC token file: {e}")))?;
                let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
                if let Some(ca) = ca_file {
                    let pem = std::fs::read(ca)
                        .map_err(|e| ExportError::Config(format!("cannot read `{}`: {e}", ca.display())))?;
                    let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| ExportError::Config(e.to_string()))?;
                    builder = builder.add_root_certificate(cert);
                }
                let client = builder.build().map_err(|e| ExportError::Config(e.to_string()))?;
                let url = format!("{}/services/collector/event", url.trim_end_matches('/'));
                Ok(Sink::Hec { client, url, token: zeroize::Zeroizing::new(token.trim().to_owned()) })
            }
            SinkSettings::Syslog { address, ca_file, server_name } => {
                let pem = std::fs::read(ca_file)
                    .map_err(|e| ExportError::Config(format!("cannot read `{}`: {e}", ca_file.display())))?;
                use rustls::pki_types::pem::PemObject;
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| ExportError::Config(format!("bad CA file: {e:?}")))?;
                    roots.add(cert).map_err(|e| ExportError::Config(format!("bad CA certificate: {e}")))?;
                }
                let config =
                    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                        .with_safe_default_protocol_versions()
                        .map_err(|e| ExportError::Config(e.to_string()))?
                        .with_root_certificates(roots)
                        .with_no_client_auth();
                let host = address.rsplit_once(':').map(|(h, _)| h).unwrap_or(address).to_owned();
                Ok(Sink::Syslog {
                    address: address.clone(),
                    server_name: server_name.clone().unwrap_or(host),
                    tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
                })
            }
        }
    }

    async fn deliver(
        &self,
        org: &OrgId,
        name: &str,
        records: &[AuditRecord],
        f: ExportFormat,
    ) -> Result<(), ExportError> {
        match self {
            Sink::Ndjson { dir, rotate_bytes } => {
                let mut text = Vec::with_capacity(records.len());
                for r in records {
                    let mut line = serde_json::to_vec(&format(r, f)).map_err(|e| ExportError::Sink(e.to_string()))?;
                    line.push(b'\n');
                    text.push(line);
                }
                let (dir, rotate, org, name) = (dir.clone(), *rotate_bytes, org.clone(), name.to_owned());
                tokio::task::spawn_blocking(move || append_rotating(&dir, &name, &org, &text, rotate))
                    .await
                    .map_err(|_| ExportError::Sink("file writer stopped".to_owned()))?
                    .map_err(|e| ExportError::Sink(format!("cannot write the export file: {e}")))
            }
            Sink::Hec { client, url, token } => {
                // HEC takes concatenated event objects in one body.
                let mut body = Vec::new();
                for r in records {
                    let event = json!({
                        "time": r.time.as_millis() as f64 / 1000.0,
                        "host": "gatehouse",
                        "source": "gatehouse:audit",
                        "sourcetype": match f { ExportFormat::Ocsf => "ocsf:gatehouse", ExportFormat::Native => "gatehouse:audit" },
                        "event": format(r, f),
                    });
                    serde_json::to_writer(&mut body, &event).map_err(|e| ExportError::Sink(e.to_string()))?;
                    body.push(b'\n');
                }
                let res = client
                    .post(url)
                    .header("Authorization", format!("Splunk {}", token.as_str()))
                    .header("Content-Type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| ExportError::Sink(format!("HEC unreachable: {}", e.without_url())))?;
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                let code = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["code"].as_i64());
                if status.is_success() && code.is_none_or(|c| c == 0) {
                    Ok(())
                } else {
                    Err(ExportError::Sink(format!(
                        "HEC answered {status}: {}",
                        text.chars().take(200).collect::<String>()
                    )))
                }
            }
            Sink::Syslog { address, server_name, tls } => {
                let name = rustls::pki_types::ServerName::try_from(server_name.clone())
                    .map_err(|_| ExportError::Config(format!("`{server_name}` is not a valid server name")))?;
                let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(address))
                    .await
                    .map_err(|_| ExportError::Sink(format!("syslog connect to {address} timed out")))?
                    .map_err(|e| ExportError::Sink(format!("syslog connect to {address}: {e}")))?;
                let mut stream = tls
                    .connect(name, tcp)
                    .await
                    .map_err(|e| ExportError::Sink(format!("syslog TLS handshake: {e}")))?;
                let mut out = Vec::new();
                for r in records {
                    let msg = syslog_message(r, f);
                    // RFC 5425 octet counting: MSG-LEN SP SYSLOG-MSG.
                    out.extend(format!("{} ", msg.len()).as_bytes());
                    out.extend(msg);
                }
                stream.write_all(&out).await.map_err(|e| ExportError::Sink(format!("syslog write: {e}")))?;
                stream.flush().await.map_err(|e| ExportError::Sink(format!("syslog write: {e}")))?;
                // A clean TLS close, so the receiver has read everything before the cursor moves.
                stream.shutdown().await.map_err(|e| ExportError::Sink(format!("syslog close: {e}")))?;
                Ok(())
            }
        }
    }
}

/// An RFC 5424 message: facility 13 (log audit), severity by outcome, the record's time,
/// structured data with the chain position, and the event as JSON.
pub fn syslog_message(r: &AuditRecord, f: ExportFormat) -> Vec<u8> {
    let severity = match r.draft.outcome {
        Outcome::Success => 6,
        Outcome::Failed => 5,
        Outcome::Denied => 4,
    };
    let pri = 13 * 8 + severity;
    let msgid: String = r.draft.action.chars().filter(|c| c.is_ascii_graphic()).take(32).collect();
    let sd = format!(
        "[gatehouse@32473 org=\"{}\" seq=\"{}\" hash=\"{}\" prev=\"{}\"]",
        r.draft.org_id, r.seq, r.hash, r.prev_hash
    );
    let body = serde_json::to_string(&format(r, f)).unwrap_or_default();
    format!("<{pri}>1 {} gatehouse gatehouse - {msgid} {sd} {body}", r.time).into_bytes()
}

/// Appends lines to `<dir>/<name>-<org>-<n>.ndjson`, moving to file `n + 1` once a file reaches
/// `rotate` bytes, and syncs before returning so the cursor never runs ahead of the disk.
fn append_rotating(dir: &Path, name: &str, org: &OrgId, lines: &[Vec<u8>], rotate: u64) -> std::io::Result<()> {
    let prefix = format!("{name}-{org}-");
    let mut n = 1u64;
    for entry in std::fs::read_dir(dir)? {
        let file = entry?.file_name().to_string_lossy().into_owned();
        if let Some(k) = file.strip_prefix(&prefix).and_then(|s| s.strip_suffix(".ndjson")).and_then(|s| s.parse().ok())
        {
            n = n.max(k);
        }
    }
    let path = |n: u64| dir.join(format!("{prefix}{n:06}.ndjson"));
    let open = |n: u64| std::fs::OpenOptions::new().create(true).append(true).open(path(n));
    let mut file = open(n)?;
    let mut size = file.metadata()?.len();
    for line in lines {
        if size > 0 && size + line.len() as u64 > rotate {
            file.sync_all()?;
            n += 1;
            file = open(n)?;
            size = 0;
        }
        file.write_all(line)?;
        size += line.len() as u64;
    }
    file.sync_all()
}

/// One configured export with its sink opened (token read, TLS configured, HTTP client built)
/// once, not on every poll.
pub struct Exporter {
    settings: ExportSettings,
    sink: Sink,
}

impl Exporter {
    /// Opens the export's sink.
    pub fn open(settings: ExportSettings) -> Result<Self, ExportError> {
        let sink = Sink::open(&settings.sink)?;
        Ok(Self { settings, sink })
    }

    /// Delivers every record of every matching org not yet delivered; returns how many were
    /// delivered. Stops at the first failure, recording it, so order is kept.
    pub async fn run_once(&self, store: &Store) -> Result<u64, ExportError> {
        let export = &self.settings;
        let mut delivered = 0;
        for org in store.audit_orgs().await? {
            if let Some(wanted) = &export.org
                && store.get_org(&org).await.map(|o| o.name != *wanted).unwrap_or(true)
            {
                continue;
            }
            let mut cursor = store.export_state(&org, &export.name).await?.seq;
            let anchor = store.audit_head(&org).await?.anchor_seq;
            // Records pruned before they were exported cannot be sent; say so rather than stall.
            if cursor < anchor {
                let gap = format!("records {}..={anchor} were pruned before export", cursor + 1);
                store.export_failed(&org, &export.name, &gap).await?;
                cursor = anchor;
            }
            loop {
                let records = store.audit_range(&org, cursor + 1, u64::MAX, BATCH).await?;
                let Some(last) = records.last().map(|r| r.seq) else { break };
                if let Err(e) = self.sink.deliver(&org, &export.name, &records, export.format).await {
                    store.export_failed(&org, &export.name, &e.to_string()).await?;
                    return Err(e);
                }
                store.export_delivered(&org, &export.name, last).await?;
                delivered += records.len() as u64;
                cursor = last;
            }
        }
        Ok(delivered)
    }
}

/// Opens `export` and delivers what is pending once (for tests and one-off runs).
pub async fn export_once(store: &Store, export: &ExportSettings) -> Result<u64, ExportError> {
    Exporter::open(export.clone())?.run_once(store).await
}

/// Runs every configured export in the background, each retrying with exponential back-off
/// (1 s doubling to 60 s) after failures.
pub fn spawn_exports(store: Store, exports: Vec<ExportSettings>, poll: Duration) -> Vec<tokio::task::JoinHandle<()>> {
    exports
        .into_iter()
        .map(|export| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut backoff = Duration::from_secs(1);
                let pause = |e: &ExportError, backoff: &mut Duration| {
                    tracing::warn!(export = %export.name, error = %e, retry_in = ?*backoff, "audit export failed");
                    let wait = *backoff;
                    *backoff = (*backoff * 2).min(Duration::from_secs(60));
                    wait
                };
                // A sink that cannot be opened (unreadable token or CA file) is retried too, so
                // fixing the file is enough.
                let exporter = loop {
                    match Exporter::open(export.clone()) {
                        Ok(x) => break x,
                        Err(e) => tokio::time::sleep(pause(&e, &mut backoff)).await,
                    }
                };
                backoff = Duration::from_secs(1);
                loop {
                    match exporter.run_once(&store).await {
                        Ok(_) => {
                            backoff = Duration::from_secs(1);
                            tokio::time::sleep(poll).await;
                        }
                        Err(e) => tokio::time::sleep(pause(&e, &mut backoff)).await,
                    }
                }
            })
        })
        .collect()
}
