//! `gatehouse scan`: offline secret scanning for pre-commit hooks and any CI.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use gatehouse_scan::{AdvisoryDb, Detector, Limits, Patterns, Policy, Report, RuleSet, Scan, Severity};

use crate::cli::{CheckArg, ScanArgs, ScanFormat, SeverityArg};
use crate::cmd::Exit;

/// Runs a scan; exit 1 when something blocks, 2 when the scan cannot run.
pub fn run(args: ScanArgs, json: bool) -> Result<()> {
    match scan(&args, json) {
        Ok(blocking) if blocking > 0 => Err(Exit(1).into()),
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            Err(Exit(2).into())
        }
    }
}

fn scan(args: &ScanArgs, json: bool) -> Result<usize> {
    let key = fingerprint_key(args.fingerprint_key_file.as_deref())?;
    let rules = match &args.rules {
        Some(path) => RuleSet::load(path)?,
        None => RuleSet::builtin()?,
    };
    for ignored in &rules.ignored {
        eprintln!("note: {ignored} is not used by gatehouse scan (it scans files, not history)");
    }
    let detector = Detector::new(rules, key)?;
    let limits = Limits { max_file_bytes: args.max_file_bytes, respect_ignore: !args.no_ignore, ..Limits::default() };
    let advisories = match &args.advisories {
        Some(path) => Some(AdvisoryDb::load(path)?),
        None => {
            let default = default_index()?;
            if default.exists() { Some(AdvisoryDb::load(&default)?) } else { None }
        }
    };
    let patterns = if args.checks.contains(&CheckArg::Code) {
        let mut p = Patterns::builtin()?;
        if let Some(path) = &args.pattern_rules {
            p.extend(Patterns::load(path)?);
        }
        Some(p)
    } else {
        None
    };
    let scan = Scan {
        detector: &detector,
        advisories: advisories.as_ref(),
        patterns: patterns.as_ref(),
        secrets: args.checks.contains(&CheckArg::Secrets),
        dependencies: args.checks.contains(&CheckArg::Dependencies),
        limits: &limits,
    };
    let report = if args.staged {
        gatehouse_scan::staged(&scan, &args.path)?
    } else {
        gatehouse_scan::scan_path(&scan, &args.path)?
    };
    if scan.dependencies
        && advisories.is_none()
        && (report.findings.iter().any(|f| f.kind == gatehouse_scan::Kind::Dependency) || has_lockfile(&args.path))
    {
        eprintln!(
            "note: no advisory index; dependencies were not checked for known vulnerabilities (see `gatehouse advisories import`)"
        );
    }
    let policy = Policy { block_at: severity(args.block_on) };
    let format = if json && args.format == ScanFormat::Text { ScanFormat::Json } else { args.format };
    let rendered = match format {
        ScanFormat::Text => text(&report, &policy),
        ScanFormat::Json => {
            let body = serde_json::json!({
                "findings": report.findings.iter().map(|f| {
                    let mut v = serde_json::to_value(f).unwrap_or_default();
                    v["blocking"] = serde_json::Value::Bool(policy.blocks(f));
                    v
                }).collect::<Vec<_>>(),
                "blocking": policy.blocking(&report),
                "block_on": policy.block_at,
                "files_scanned": report.files_scanned,
                "bytes_scanned": report.bytes_scanned,
                "skipped": report.skipped,
            });
            serde_json::to_string_pretty(&body)? + "\n"
        }
        ScanFormat::Sarif => {
            serde_json::to_string_pretty(&gatehouse_scan::to_sarif(&report, &detector, &policy))? + "\n"
        }
    };
    match &args.output {
        Some(path) => std::fs::write(path, rendered).with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(rendered.as_bytes())?,
    }
    if args.output.is_some() || format != ScanFormat::Text {
        // The summary goes to stderr so machine-readable output stays clean.
        eprintln!("{}", summary(&report, &policy));
    }
    Ok(policy.blocking(&report))
}

fn severity(s: SeverityArg) -> Severity {
    match s {
        SeverityArg::Low => Severity::Low,
        SeverityArg::Medium => Severity::Medium,
        SeverityArg::High => Severity::High,
        SeverityArg::Critical => Severity::Critical,
    }
}

fn text(report: &Report, policy: &Policy) -> String {
    let mut out = String::new();
    for f in &report.findings {
        out.push_str(&format!(
            "{}:{}:{}: {} {} {}: {}{}\n",
            f.path,
            f.line,
            f.column,
            f.severity.as_str(),
            f.rule_id,
            f.title,
            f.preview.as_deref().unwrap_or(""),
            if policy.blocks(f) { " [blocks]" } else { "" }
        ));
    }
    for s in &report.skipped {
        out.push_str(&format!("skipped {}: {}\n", if s.path.is_empty() { "(walk)" } else { &s.path }, s.reason));
    }
    out.push_str(&summary(report, policy));
    out.push('\n');
    out
}

fn summary(report: &Report, policy: &Policy) -> String {
    format!(
        "{} finding(s), {} blocking (at {} or above); {} file(s), {} bytes scanned; {} skipped",
        report.findings.len(),
        policy.blocking(report),
        policy.block_at.as_str(),
        report.files_scanned,
        report.bytes_scanned,
        report.skipped.len()
    )
}

/// The fingerprint key: from `path`, or from the user's config directory (made on first use, 0600).
fn fingerprint_key(path: Option<&Path>) -> Result<[u8; 32]> {
    let path: PathBuf = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let dir = dirs::config_dir().ok_or_else(|| anyhow!("no config directory; pass --fingerprint-key-file"))?;
            let path = dir.join("gatehouse").join("scan-fingerprint.key");
            if !path.exists() {
                create_key(&path)?;
            }
            path
        }
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let bytes = hex::decode(text.trim()).map_err(|_| anyhow!("{}: expected 64 hex digits", path.display()))?;
    bytes.try_into().map_err(|_| anyhow!("{}: expected 64 hex digits (32 bytes)", path.display()))
}

fn create_key(path: &Path) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let key: [u8; 32] = rand::random();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(hex::encode(key).as_bytes())?;
    Ok(())
}

/// `gatehouse app scan`: a revision's server-side scan and verdict; exit 1 unless it passes.
pub async fn show(
    client: &crate::client::Client,
    app: &str,
    rev: &str,
    wait: Option<String>,
    rescan: bool,
    as_json: bool,
) -> Result<()> {
    use crate::client::seg;
    let path = format!("api/v1/apps/{}/revisions/{}/scan", seg(app), seg(rev));
    if rescan {
        let _: serde_json::Value = client.send(client.request(reqwest::Method::POST, &path)?).await?;
    }
    let deadline = match &wait {
        Some(w) => Some(
            std::time::Instant::now()
                + humantime::parse_duration(w)
                    .map_err(|e| anyhow!("--wait {w:?}: {e} (use a duration such as 60s)"))?,
        ),
        None => None,
    };
    let report: serde_json::Value = loop {
        let report: serde_json::Value = client.get(&path).await?;
        let pending = report["verdict"] == "pending";
        match deadline {
            Some(d) if pending && std::time::Instant::now() < d => {
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            _ => break report,
        }
    };
    let verdict = report["verdict"].as_str().unwrap_or("unknown").to_owned();
    if as_json {
        crate::output::json(&report)?;
    } else {
        let s = |k: &str| crate::cmd::s(&report, k);
        println!(
            "revision {} ({}): {}",
            s("revision"),
            report["digest"].as_str().unwrap_or("").chars().take(12).collect::<String>(),
            verdict
        );
        println!(
            "scan       {} (attempts {})",
            report["scan"]["status"].as_str().unwrap_or(""),
            report["scan"]["attempts"]
        );
        if let Some(e) = report["scan"]["error"].as_str() {
            println!("error      {e}");
        }
        println!("policy     blocks at {} ({})", s("block_at"), s("policy_source"));
        println!("findings   {} blocking, {} warnings, {} suppressed", s("blocking"), s("warnings"), s("suppressed"));
        let review = &report["review"];
        if review.is_object() {
            let by = match review["model"].as_str() {
                Some(m) => format!("model {m}"),
                None => review["reviewer"].as_str().unwrap_or("?").to_owned(),
            };
            println!(
                "review     {} by {by} (signed, key {}): {}",
                review["decision"].as_str().unwrap_or("?"),
                review["key_id"].as_str().unwrap_or("?"),
                review["summary"].as_str().unwrap_or("")
            );
            for f in review["findings"].as_array().into_iter().flatten() {
                let fs = |k: &str| crate::cmd::s(f, k);
                println!("  {}:{}: {} {} (reviewer)", fs("path"), fs("line"), fs("severity"), fs("title"));
            }
        }
        for f in report["findings"].as_array().into_iter().flatten() {
            let fs = |k: &str| crate::cmd::s(f, k);
            let state = if f["blocking"] == true {
                "blocks".to_owned()
            } else if let Some(id) = f["suppressed_by"].as_str() {
                format!("suppressed by {id}")
            } else {
                "warning".to_owned()
            };
            println!(
                "  {}:{}:{}: {} {} {} [{}] fingerprint {}",
                fs("path"),
                fs("line"),
                fs("column"),
                fs("severity"),
                fs("rule_id"),
                fs("preview"),
                state,
                fs("fingerprint")
            );
        }
    }
    if verdict == "pass" { Ok(()) } else { Err(Exit(1).into()) }
}

/// `gatehouse scan-policy`.
pub async fn run_policy(
    cmd: crate::cli::ScanPolicyCommand,
    client: &crate::client::Client,
    as_json: bool,
) -> Result<()> {
    use crate::cli::ScanPolicyCommand;
    use crate::client::seg;
    let (path, level) = match cmd {
        ScanPolicyCommand::Show => (None, None),
        ScanPolicyCommand::Set { block_at, folder } => (Some(folder), Some(severity(block_at).as_str())),
        ScanPolicyCommand::Clear { folder } => (Some(folder), None),
    };
    let policy: serde_json::Value = match path {
        None => client.get("api/v1/scan-policy").await?,
        Some(folder) => {
            let url = match folder {
                Some(f) => format!("api/v1/folders/{}/scan-policy", seg(&f)),
                None => "api/v1/scan-policy".to_owned(),
            };
            client
                .send(client.request(reqwest::Method::PUT, &url)?.json(&serde_json::json!({ "block_at": level })))
                .await?
        }
    };
    if as_json {
        return crate::output::json(&policy);
    }
    println!("default    {}", crate::cmd::s(&policy, "default_block_at"));
    println!("org        {}", policy["org_block_at"].as_str().unwrap_or("(not set)"));
    for f in policy["folders"].as_array().into_iter().flatten() {
        println!(
            "{:<10} {} ({})",
            crate::cmd::s(f, "block_at"),
            crate::cmd::s(f, "path"),
            crate::cmd::s(f, "folder_id")
        );
    }
    Ok(())
}

/// Whether a lockfile sits at the top of `path` (to say when vulnerability checks were skipped).
fn has_lockfile(path: &Path) -> bool {
    [
        "package-lock.json",
        "yarn.lock",
        "pnpm-lock.yaml",
        "requirements.txt",
        "poetry.lock",
        "Pipfile.lock",
        "Cargo.lock",
    ]
    .iter()
    .any(|f| path.join(f).exists())
}

/// Where `gatehouse advisories import` keeps the index by default.
fn default_index() -> Result<PathBuf> {
    let dir = dirs::data_dir().ok_or_else(|| anyhow!("no data directory; pass --index"))?;
    Ok(dir.join("gatehouse").join("advisories.jsonl.gz"))
}

/// `gatehouse advisories import|status`.
pub fn run_advisories(cmd: crate::cli::AdvisoriesCommand, as_json: bool) -> Result<()> {
    use crate::cli::AdvisoriesCommand;
    match cmd {
        AdvisoriesCommand::Import { paths, index } => {
            let index = match index {
                Some(i) => i,
                None => default_index()?,
            };
            let report = AdvisoryDb::import(&index, &paths)?;
            if as_json {
                return crate::output::json(&serde_json::json!({"index": index, "report": report}));
            }
            println!(
                "read {} advisories: kept {} for npm, PyPI and crates.io ({} withdrawn, never matched), {} for other ecosystems",
                report.read, report.kept, report.withdrawn, report.other_ecosystems
            );
            for (file, reason) in report.errors.iter().take(20) {
                eprintln!("skipped {file}: {reason}");
            }
            if report.errors.len() > 20 {
                eprintln!("... and {} more files that are not advisories", report.errors.len() - 20);
            }
            println!("{} now holds {} advisories", index.display(), report.total);
            Ok(())
        }
        AdvisoriesCommand::Status { index } => {
            let index = match index {
                Some(i) => i,
                None => default_index()?,
            };
            let db = AdvisoryDb::load(&index)?;
            if as_json {
                return crate::output::json(&serde_json::json!({"index": index, "advisories": db.len()}));
            }
            println!("{}: {} advisories", index.display(), db.len());
            Ok(())
        }
    }
}

/// `gatehouse review-policy`.
pub async fn run_review_policy(
    cmd: crate::cli::ReviewPolicyCommand,
    client: &crate::client::Client,
    as_json: bool,
) -> Result<()> {
    use crate::cli::ReviewPolicyCommand;
    let body = match cmd {
        ReviewPolicyCommand::Show => None,
        ReviewPolicyCommand::Set { file, allow_self_review } => {
            let text = std::fs::read_to_string(&file).with_context(|| format!("cannot read {}", file.display()))?;
            Some(serde_json::json!({"policy": text, "require_different_model": !allow_self_review}))
        }
        ReviewPolicyCommand::Clear => Some(serde_json::json!({"policy": null})),
    };
    let policy: serde_json::Value = match body {
        None => client.get("api/v1/review-policy").await?,
        Some(b) => client.send(client.request(reqwest::Method::PUT, "api/v1/review-policy")?.json(&b)).await?,
    };
    if as_json {
        return crate::output::json(&policy);
    }
    println!("source     {}", crate::cmd::s(&policy, "source"));
    println!(
        "reviewer   {}",
        policy["model"].as_str().map_or("deterministic (no model configured)".to_owned(), |m| format!("model {m}"))
    );
    println!("self-review {}", if policy["require_different_model"] == true { "refused" } else { "allowed" });
    println!("\n{}", crate::cmd::s(&policy, "policy"));
    Ok(())
}
