//! The real binary, as a user runs it: `gatehouse serve` on a free port, then the CLI against it.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The server child is waited on in `Server`'s `Drop`, which clippy cannot see.
#![allow(clippy::zombie_processes)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

struct Server {
    child: Child,
    url: String,
    bootstrap: Option<String>,
    lines: mpsc::Receiver<String>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl Server {
    fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        Self::start_logging(data_dir, database_url, "warn")
    }

    fn start_logging(data_dir: &Path, database_url: Option<&str>, log: &str) -> Server {
        Self::start_with(data_dir, database_url, log, None)
    }

    fn start_with(data_dir: &Path, database_url: Option<&str>, log: &str, config: Option<&Path>) -> Server {
        let mut cmd = Command::new(BIN);
        if let Some(c) = config {
            cmd.arg("serve").arg("--config").arg(c).args(["--listen", "127.0.0.1:0", "--data-dir"]);
        } else {
            cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"]);
        }
        cmd.arg(data_dir)
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_LOG", log)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().expect("start gatehouse serve");
        let stdout = child.stdout.take().unwrap();
        let mut err_pipe = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            while let Ok(n) = std::io::Read::read(&mut err_pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                // Shown too, so a failing test still prints the server's log.
                eprint!("{}", String::from_utf8_lossy(&buf[..n]));
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut bootstrap = None;
        loop {
            let line = rx.recv_timeout(Duration::from_secs(60)).expect("server printed its address in time");
            let trimmed = line.trim();
            if trimmed.starts_with("gat_") {
                bootstrap = Some(trimmed.to_owned());
            }
            if let Some(url) = trimmed.strip_prefix("gatehouse listening on ") {
                return Server { child, url: url.to_owned(), bootstrap, lines: rx, stderr };
            }
        }
    }

    /// SIGTERM, then the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
        for _ in 0..200 {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child.kill().ok();
        panic!("server did not stop within 10 s of SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        while self.lines.try_recv().is_ok() {}
    }
}

/// A user of the CLI with their own config directory.
struct User {
    config: tempfile::TempDir,
}

impl User {
    fn new() -> Self {
        Self { config: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("GATEHOUSE_CONFIG_DIR", self.config.path())
            .env_remove("GATEHOUSE_URL")
            .env_remove("GATEHOUSE_TOKEN")
            .stdin(Stdio::null())
            .output()
            .expect("run gatehouse")
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(BIN)
            .args(args)
            .env("GATEHOUSE_CONFIG_DIR", self.config.path())
            .env_remove("GATEHOUSE_URL")
            .env_remove("GATEHOUSE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs a command that must succeed, returning its standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "gatehouse {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).expect("--json prints JSON")
    }

    /// Runs a command that must fail with one line on standard error, returning that line.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "gatehouse {args:?} should have failed");
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "one-line reason expected, got: {err}");
        assert!(err.starts_with("error: "), "{err}");
        err.trim_end().to_owned()
    }
}

fn write_app(dir: &Path, extra_manifest: &str, code: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("gatehouse.toml"),
        format!(
            "[app]\nname = \"refund-dashboard\"\nruntime = \"node20\"\nentry = \"server.js\"\n\n\
             [[integrations]]\nname = \"salesforce\"\nscopes = [\"GET /services/data/*/query\"]\n{extra_manifest}"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("server.js"), code).unwrap();
    std::fs::write(dir.join(".gatehouseignore"), "node_modules/\n").unwrap();
    std::fs::create_dir_all(dir.join("node_modules/left-pad")).unwrap();
    std::fs::write(dir.join("node_modules/left-pad/index.js"), "ignored").unwrap();
}

fn walkthrough(database_url: Option<&str>) {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), database_url);
    let token = server.bootstrap.clone().expect("first start prints a bootstrap token");
    let ana = User::new();

    // Not logged in yet: a clear one-line error.
    assert!(ana.fails(&["app", "list"]).contains("not logged in"));
    // A wrong token is refused and nothing is saved.
    assert!(ana.fails(&["login", "--url", &server.url, "--token", "gat_wrong"]).contains("not valid"));
    assert!(!ana.config.path().join("credentials.toml").exists());

    let out = ana.ok(&["login", "--url", &server.url, "--token", &token]);
    assert!(out.contains("logged in"), "{out}");
    let cred = ana.config.path().join("credentials.toml");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&cred).unwrap().permissions().mode() & 0o777, 0o600);
    }
    assert!(!out.contains(&token), "login output must not echo the token");

    ana.ok(&["folder", "create", "/finance"]);
    ana.ok(&["folder", "create", "/finance/refunds"]);
    let app = ana.json(&["app", "create", "refund-dashboard", "--folder", "/finance/refunds"]);
    assert_eq!(app["name"], "refund-dashboard");

    let dir = data.path().join("refund-dashboard");
    write_app(&dir, "", "console.log('v1')\n");
    let d = dir.to_str().unwrap();
    let first = ana.json(&[
        "push",
        d,
        "-m",
        "first cut",
        "--ai-agent",
        "claude-code",
        "--ai-model",
        "claude-sonnet-4",
        "--prompt-id",
        "pr-1",
    ]);
    assert_eq!(first["created"], true);
    assert_eq!(first["revision"]["file_count"], 3, "node_modules is ignored: {first}");
    let again = ana.ok(&["push", d]);
    assert!(again.contains("unchanged"), "{again}");

    write_app(
        &dir,
        "\n[[integrations]]\nname = \"warehouse\"\ndata_scope = \"refunds_readonly\"\n\n[egress]\nallow = [\"api.stripe.com\"]\n",
        "console.log('v2')\n",
    );
    let second = ana.json(&["push", d, "-m", "add warehouse"]);
    assert_eq!(second["revision"]["number"], 2);
    assert_eq!(second["revision"]["parent"], first["revision"]["digest"]);

    let history = ana.json(&["app", "history", "refund-dashboard"]);
    let msgs: Vec<&str> = history.as_array().unwrap().iter().map(|r| r["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["add warehouse", "first cut"]);
    assert_eq!(history[1]["provenance"]["agent"], "claude-code");
    let text = ana.ok(&["app", "history", "refund-dashboard"]);
    assert!(text.contains("claude-code/claude-sonnet-4") && text.contains("admin@gatehouse.local"), "{text}");

    let diff = ana.json(&["app", "diff", "refund-dashboard", "1", "2"]);
    let added: Vec<String> = diff["capabilities"]["added"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(added, ["integration", "data_scope", "egress"]);
    let text = ana.ok(&["app", "diff", "refund-dashboard", "1", "2"]);
    assert!(text.contains("+ integration warehouse") && text.contains("+ egress to api.stripe.com"), "{text}");
    assert!(text.contains("-console.log('v1')") && text.contains("+console.log('v2')"), "{text}");

    // A broken manifest is refused before upload with file, line and reason.
    std::fs::write(
        dir.join("gatehouse.toml"),
        "[app]\nname = \"refund-dashboard\"\nruntime = \"perl\"\nentry = \"server.js\"\n",
    )
    .unwrap();
    let err = ana.fails(&["push", d]);
    assert!(err.contains("gatehouse.toml:3:") && err.contains("unknown runtime `perl`"), "{err}");
    assert_eq!(ana.json(&["app", "history", "refund-dashboard"]).as_array().unwrap().len(), 2);

    // Tokens: create, use, revoke.
    let tok = ana.json(&["token", "create", "ci", "--scope", "push", "--expires-in", "1h"]);
    let bob = User::new();
    bob.ok(&["login", "--url", &server.url, "--token", tok["secret"].as_str().unwrap()]);
    assert!(bob.fails(&["folder", "create", "/hr"]).contains("`write`"));
    ana.ok(&["token", "revoke", tok["id"].as_str().unwrap()]);
    assert!(bob.fails(&["app", "list"]).contains("revoked"));

    assert!(ana.fails(&["app", "show", "no-such-app"]).contains("not found"));
    // Lists follow the server's next-page links: a page size of 1 still lists every app.
    ana.ok(&["app", "create", "second-app"]);
    let paged = Command::new(BIN)
        .args(["--json", "app", "list"])
        .env("GATEHOUSE_CONFIG_DIR", ana.config.path())
        .env("GATEHOUSE_PAGE_SIZE", "1")
        .output()
        .unwrap();
    let apps: Value = serde_json::from_slice(&paged.stdout).unwrap();
    let names: Vec<&str> = apps.as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["refund-dashboard", "second-app"]);
    assert!(server.stop().success(), "graceful shutdown exits 0");
}

#[test]
fn walkthrough_on_sqlite() {
    walkthrough(None);
}

#[tokio::test(flavor = "multi_thread")]
async fn walkthrough_on_postgres() {
    let schema = gatehouse_store::testing::fresh_schema().await;
    let url = gatehouse_store::testing::postgres_url_for(&schema);
    tokio::task::spawn_blocking(move || walkthrough(Some(&url))).await.unwrap();
}

#[test]
fn bootstrap_token_is_printed_once() {
    let data = tempfile::tempdir().unwrap();
    let dir: PathBuf = data.path().join("data");
    let first = Server::start(&dir, None);
    let token = first.bootstrap.clone().unwrap();
    assert!(first.stop().success());
    // Break-glass: an operator on the host issues a fresh token from the database.
    let out = User::new().run(&[
        "admin",
        "token",
        "admin@gatehouse.local",
        "--ttl",
        "1h",
        "--data-dir",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let glass = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(glass.starts_with("gat_") && glass != token);
    assert!(String::from_utf8_lossy(&out.stderr).contains("break-glass"));
    let refused = User::new().run(&["admin", "token", "nobody@gatehouse.local", "--data-dir", dir.to_str().unwrap()]);
    assert!(!refused.status.success());
    let second = Server::start(&dir, None);
    assert!(second.bootstrap.is_none(), "the bootstrap token is shown on first start only");
    let user = User::new();
    user.ok(&["login", "--url", &second.url, "--token", &token]);
    User::new().ok(&["login", "--url", &second.url, "--token", &glass]);
    assert!(second.stop().success());
}

#[test]
fn config_show_masks_secrets_and_names_bad_files() {
    let user = User::new();
    let out = user.ok(&["config", "show", "--database-url", "postgres://gh:canary-pw-7731@db.example:5432/gh"]);
    assert!(!out.contains("canary-pw-7731"), "{out}");
    assert!(out.contains("postgres://gh:****@db.example:5432/gh"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gatehouse.toml");
    std::fs::write(&file, "version = 1\nlisten = \"127.0.0.1:9999\"\n[limits]\nmax_bundle_bytes = 1024\n").unwrap();
    let shown = user.ok(&["config", "show", "--config", file.to_str().unwrap(), "--listen", "127.0.0.1:7777"]);
    assert!(shown.contains("listen = \"127.0.0.1:7777\"") && shown.contains("max_bundle_bytes = 1024"), "{shown}");
    std::fs::write(&file, "version = 1\nport = 1\n").unwrap();
    let err = user.fails(&["config", "show", "--config", file.to_str().unwrap()]);
    assert!(err.contains("line 2") && err.contains("unknown field `port`"), "{err}");
}

/// Every byte anywhere under `dir`, for searching stored files.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().map_while(Result::ok) {
        let p = entry.path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else if let Ok(b) = std::fs::read(&p) {
            out.extend(b);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn secret_values_never_leak() {
    const CANARY: &str = "sk_live_canary_5e1d0c9b7a3f";
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    // Debug logging: the most a log could ever say.
    let server = Server::start_logging(&dir, None, "debug");
    let token = server.bootstrap.clone().unwrap();
    let user = User::new();
    user.ok(&["login", "--url", &server.url, "--token", &token]);
    user.ok(&["app", "create", "payments"]);
    let file = data.path().join("value.txt");
    std::fs::write(&file, format!("{CANARY}\n")).unwrap();

    let mut outputs: Vec<u8> = Vec::new();
    let mut keep = |o: Output| {
        outputs.extend(&o.stdout);
        outputs.extend(&o.stderr);
        o
    };
    let set = keep(user.run(&[
        "--json",
        "secret",
        "set",
        "STRIPE_KEY",
        "--from-file",
        file.to_str().unwrap(),
        "--rotate-every-days",
        "30",
    ]));
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let meta: Value = serde_json::from_slice(&set.stdout).unwrap();
    let id = meta["id"].as_str().unwrap().to_owned();
    let piped =
        keep(user.run_with_stdin(&["secret", "set", "DB_PASSWORD", "--app", "payments"], &format!("{CANARY}-db")));
    assert!(piped.status.success(), "{}", String::from_utf8_lossy(&piped.stderr));
    keep(user.run(&["secret", "list"]));
    keep(user.run(&["--json", "secret", "list"]));
    keep(user.run(&["secret", "show", &id]));
    // Failures that carry the value in their request still do not echo it.
    let bad = keep(user.run(&["secret", "set", "bad name", "--from-file", file.to_str().unwrap()]));
    assert!(!bad.status.success());
    let bad = keep(user.run_with_stdin(&["secret", "set", "X", "--folder", "/nope"], CANARY));
    assert!(!bad.status.success());
    keep(user.run(&["vault", "key"]));
    keep(user.run(&["vault", "rotate"]));
    // A value on the command line is not even accepted.
    let refused = keep(user.run(&["secret", "set", "Y", CANARY]));
    assert!(!refused.status.success());
    // Rotation re-wraps in the background; give it a moment, then read the whole store.
    std::thread::sleep(Duration::from_millis(300));
    let stderr = server.stderr.clone();
    assert!(server.stop().success());

    let log = stderr.lock().unwrap().clone();
    assert!(contains(&log, "secret written"), "the debug log was captured");
    assert!(!contains(&log, CANARY), "the server log contains the secret");
    assert!(!contains(&outputs, CANARY), "CLI output contains the secret");
    let stored = all_bytes(&dir);
    assert!(stored.len() > 10_000, "the database was read");
    assert!(!contains(&stored, CANARY), "the data directory holds the secret in plaintext");
}

/// The server with its KEKs in a real PKCS#11 token (SoftHSM2, from scripts/test): with the right
/// PIN secrets work end to end; with a wrong PIN the server still starts, metadata stays
/// readable, and every secret write fails closed with 503 `kms-unavailable`.
#[test]
fn hsm_backed_vault_and_wrong_pin() {
    let var = |n: &str| std::env::var(n).unwrap_or_else(|_| panic!("{n} is not set; run the tests with scripts/test"));
    let (lib, token, pin) =
        (var("GATEHOUSE_TEST_PKCS11_LIB"), var("GATEHOUSE_TEST_PKCS11_TOKEN"), var("GATEHOUSE_TEST_PKCS11_PIN"));
    let data = tempfile::tempdir().unwrap();
    let config_for = |pin_value: &str, name: &str| {
        let pin_file = data.path().join(format!("{name}.pin"));
        std::fs::write(&pin_file, pin_value).unwrap();
        let file = data.path().join(format!("{name}.toml"));
        std::fs::write(
            &file,
            format!(
                "version = 1\n[vault]\norg_key_backend = \"pkcs11\"\n[vault.pkcs11]\nlibrary = \"{lib}\"\ntoken_label = \"{token}\"\npin_file = \"{}\"\n",
                pin_file.display()
            ),
        )
        .unwrap();
        file
    };
    let dir = data.path().join("data");

    let good = Server::start_with(&dir, None, "warn", Some(&config_for(&pin, "good")));
    let admin = good.bootstrap.clone().unwrap();
    let user = User::new();
    user.ok(&["login", "--url", &good.url, "--token", &admin]);
    let key = user.json(&["vault", "rotate"]);
    assert!(key["kek_ref"].as_str().unwrap().starts_with("pkcs11:org-"), "{key}");
    let set = user.run_with_stdin(&["--json", "secret", "set", "HSM_GUARDED"], "hsm-value-canary-31");
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    assert!(good.stop().success());

    let bad = Server::start_with(&dir, None, "warn", Some(&config_for("9999", "bad")));
    user.ok(&["login", "--url", &bad.url, "--token", &admin]);
    assert_eq!(user.json(&["secret", "list"]).as_array().unwrap().len(), 1, "metadata needs no key");
    let out = user.run_with_stdin(&["secret", "set", "HSM_GUARDED"], "another-value-canary");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("secrets are unavailable"), "{err}");
    assert!(!err.contains("canary") && !err.contains("9999"), "{err}");
    assert!(bad.stop().success());
}

/// SIGKILL while revisions are being pushed, three times over, leaves no half-written state:
/// after a restart every listed revision's archive downloads and matches its digest, numbers are
/// dense, and the app's head is the newest revision.
#[test]
fn killed_mid_push_leaves_no_half_written_state() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let first = Server::start(&dir, None);
    let token = first.bootstrap.clone().unwrap();
    let user = User::new();
    user.ok(&["login", "--url", &first.url, "--token", &token]);
    user.ok(&["app", "create", "crashy"]);
    drop(first); // SIGKILL before any push: the first crash
    let app_dir = data.path().join("crashy");
    let counter = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    for round in 0..4u64 {
        let server = Server::start(&dir, None);
        user.ok(&["login", "--url", &server.url, "--token", &token]);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // Two clients push new content back to back until the server dies under them.
        let workers: Vec<_> = (0..2)
            .map(|_| {
                let (stop, counter, app_dir) = (stop.clone(), counter.clone(), app_dir.clone());
                let config = user.config.path().to_owned();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let d = app_dir.join(format!("v{n}"));
                        std::fs::create_dir_all(&d).unwrap();
                        std::fs::write(
                            d.join("gatehouse.toml"),
                            "[app]\nname = \"crashy\"\nruntime = \"node20\"\nentry = \"server.js\"\n",
                        )
                        .unwrap();
                        std::fs::write(d.join("server.js"), format!("// {n}\n{}", "x".repeat(300_000))).unwrap();
                        let _ = Command::new(BIN)
                            .args(["push", d.to_str().unwrap()])
                            .env("GATEHOUSE_CONFIG_DIR", &config)
                            .stdout(Stdio::null())
                            .stderr(Stdio::null())
                            .status();
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(150 + 70 * round));
        drop(server); // SIGKILL mid-flight
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for w in workers {
            w.join().unwrap();
        }
    }
    let n = counter.load(std::sync::atomic::Ordering::SeqCst);
    let server = Server::start(&dir, None);
    user.ok(&["login", "--url", &server.url, "--token", &token]);
    let history = user.json(&["app", "history", "crashy", "--limit", "1000"]);
    let revs = history.as_array().unwrap();
    eprintln!("{} of {n} pushes survived the kills", revs.len());
    let mut numbers: Vec<i64> = revs.iter().map(|r| r["number"].as_i64().unwrap()).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "revision numbers are dense");
    for r in revs {
        let digest = r["digest"].as_str().unwrap();
        let out = data.path().join(format!("{digest}.tar.gz"));
        user.ok(&["app", "download", "crashy", digest, "-o", out.to_str().unwrap()]);
    }
    let app = user.json(&["app", "show", "crashy"]);
    if let Some(newest) = revs.first() {
        assert_eq!(app["head_revision"], newest["digest"]);
    } else {
        assert!(app["head_revision"].is_null());
    }
    assert!(server.stop().success());
}

/// Load for the crash test: app-event batches and folder creations, each tagged with a unique
/// marker, sent until the server dies; returns the markers the server acknowledged.
async fn audit_load(
    url: String,
    token: String,
    round: u64,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for w in 0..4u64 {
        let (client, url, token, stop) = (client.clone(), url.clone(), token.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                n += 1;
                let result = if w == 0 {
                    // A change: its record is written in the change's own transaction.
                    let marker = format!("f-{round}-{n}");
                    let r = client
                        .post(format!("{url}/api/v1/folders"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({ "name": marker }))
                        .send()
                        .await;
                    r.map(|r| (r.status().as_u16() == 201).then(|| vec![marker]))
                } else {
                    let markers: Vec<String> = (0..50).map(|i| format!("e-{round}-{w}-{n}-{i}")).collect();
                    let events: Vec<Value> = markers
                        .iter()
                        .map(|m| {
                            serde_json::json!({
                                "action": "integration.call",
                                "resource": {"kind": "integration", "id": "crm", "path": null},
                                "outcome": "success",
                                "details": {"marker": m}
                            })
                        })
                        .collect();
                    let r = client
                        .post(format!("{url}/api/v1/audit/events"))
                        .bearer_auth(&token)
                        .json(&serde_json::json!({ "events": events }))
                        .send()
                        .await;
                    r.map(|r| (r.status().as_u16() == 201).then_some(markers))
                };
                match result {
                    Ok(Some(m)) => acked.extend(m),
                    Ok(None) => {}
                    Err(_) => break, // the server is gone
                }
            }
            acked
        }));
    }
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    acked
}

/// While clients write thousands of audit events a second, the server is SIGKILLed at varying
/// moments; after every restart each acknowledged event is present, sequence numbers have no
/// gaps and the chain (with its signed checkpoints) verifies.
fn audit_survives_sigkill(database_url: Option<&str>, rounds: u64) {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().join("data");
    let first = Server::start(&dir, database_url);
    let token = first.bootstrap.clone().unwrap();
    drop(first);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut acked: Vec<String> = Vec::new();
    let mut written_time = Duration::ZERO;
    for round in 0..rounds {
        let server = Server::start(&dir, database_url);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let load = rt.spawn(audit_load(server.url.clone(), token.clone(), round, stop.clone()));
        // Kill moments spread over 150..~650 ms without a random source, so a failure repeats.
        let wait = Duration::from_millis(150 + (round * 137) % 500);
        std::thread::sleep(wait);
        written_time += wait;
        drop(server); // SIGKILL
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        acked.extend(rt.block_on(load).unwrap());
    }
    let server = Server::start(&dir, database_url);
    let user = User::new();
    user.ok(&["login", "--url", &server.url, "--token", &token]);
    let export = data.path().join("audit.ndjson");
    user.ok(&["audit", "export", "-o", export.to_str().unwrap()]);
    let text = std::fs::read_to_string(&export).unwrap();
    let mut seen = std::collections::HashSet::new();
    let mut seqs = Vec::new();
    for line in text.lines().skip(1) {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["type"] == "record" {
            seqs.push(v["seq"].as_u64().unwrap());
            if let Some(m) = v["details"]["marker"].as_str() {
                seen.insert(m.to_owned());
            }
            if v["action"] == "folder.create" {
                seen.insert(v["resource"]["path"].as_str().unwrap().trim_start_matches('/').to_owned());
            }
        }
    }
    let missing: Vec<&String> = acked.iter().filter(|m| !seen.contains(*m)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "sequence numbers are contiguous");
    let verified = user.ok(&["audit", "verify"]);
    assert!(verified.starts_with("verified records 1.."), "{verified}");
    let key = user.ok(&["audit", "public-key"]);
    let offline = user.ok(&["audit", "verify", "--file", export.to_str().unwrap(), "--public-key", key.trim()]);
    assert!(offline.starts_with("verified records 1.."), "{offline}");
    eprintln!(
        "{rounds} SIGKILLs: {} acknowledged events all present of {} recorded ({:.0} acknowledged/s while up)",
        acked.len(),
        seqs.len(),
        acked.len() as f64 / written_time.as_secs_f64()
    );
    assert!(server.stop().success());
}

#[test]
fn audit_survives_sigkill_on_sqlite() {
    audit_survives_sigkill(None, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_survives_sigkill_on_postgres() {
    let schema = gatehouse_store::testing::fresh_schema().await;
    let url = gatehouse_store::testing::postgres_url_for(&schema);
    tokio::task::spawn_blocking(move || audit_survives_sigkill(Some(&url), 20)).await.unwrap();
}

/// The audit CLI as an investigator uses it: search, verify, export, offline verification, and
/// a tampered export named at its first bad record.
#[test]
fn audit_cli_search_verify_export() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None);
    let user = User::new();
    user.ok(&["login", "--url", &server.url, "--token", server.bootstrap.as_ref().unwrap()]);
    user.ok(&["folder", "create", "/finance"]);
    user.ok(&["app", "create", "ledger", "--folder", "/finance"]);
    let table = user.ok(&["audit", "search", "--action", "app."]);
    assert!(table.contains("app.create") && table.contains("admin@gatehouse.local"), "{table}");
    let records = user.json(&["audit", "search", "--actor", "admin@gatehouse.local"]);
    assert_eq!(records.as_array().unwrap().len(), 2, "{records}");
    let head = user.json(&["audit", "head"]);
    assert!(head["seq"].as_u64().unwrap() >= 3);
    assert!(user.ok(&["audit", "verify"]).starts_with("verified records 1.."));
    let export = data.path().join("a.ndjson");
    user.ok(&["audit", "export", "-o", export.to_str().unwrap()]);
    let key = user.ok(&["audit", "public-key"]);
    let key = key.trim();
    // Offline: no server, no credential.
    let offline = Command::new(BIN)
        .args(["audit", "verify", "--file", export.to_str().unwrap(), "--public-key", key])
        .env("GATEHOUSE_CONFIG_DIR", data.path().join("nowhere"))
        .output()
        .unwrap();
    assert!(offline.status.success(), "{}", String::from_utf8_lossy(&offline.stderr));
    let text = std::fs::read_to_string(&export).unwrap();
    std::fs::write(&export, text.replacen("\"folder.create\"", "\"folder.delete\"", 1)).unwrap();
    let err = user.fails(&["audit", "verify", "--file", export.to_str().unwrap(), "--public-key", key]);
    assert!(err.contains("audit chain broken at sequence 2: altered"), "{err}");
    let err = user.fails(&["audit", "verify", "--file", export.to_str().unwrap(), "--public-key", "zz"]);
    assert!(err.contains("64 hex digits"), "{err}");
    assert!(server.stop().success());
}

/// The commit-time control as a builder and a security admin see it: a pushed revision with a
/// planted key is scanned in the background and blocked; the same app with the key moved to the
/// vault passes; an admin's time-boxed suppression is possible but audited. Neither the server's
/// debug log nor any CLI output carries the key.
#[test]
fn pushed_secrets_block_release_through_the_cli() {
    const KEY: &str = "sk_live_Zq8vN3kPw2XrT5mYb7LcD4hF";
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_logging(&data.path().join("data"), None, "debug");
    let token = server.bootstrap.clone().unwrap();
    let user = User::new();
    user.ok(&["login", "--url", &server.url, "--token", &token]);
    user.ok(&["app", "create", "refund-dashboard"]);
    let app_dir = data.path().join("app");
    let mut outputs: Vec<u8> = Vec::new();
    let mut keep = |o: Output| {
        outputs.extend(&o.stdout);
        outputs.extend(&o.stderr);
        o
    };

    write_app(&app_dir, "", &format!("const stripe = require('stripe')('{KEY}');\n"));
    // The same rules run offline first: the pre-commit check already fails.
    let offline = keep(user.run(&["scan", app_dir.to_str().unwrap()]));
    assert_eq!(offline.status.code(), Some(1), "{}", String::from_utf8_lossy(&offline.stdout));
    keep(user.run(&["push", app_dir.to_str().unwrap(), "-m", "first cut"]));
    let blocked = keep(user.run(&["app", "scan", "refund-dashboard", "--wait", "30s"]));
    let text = String::from_utf8_lossy(&blocked.stdout).into_owned();
    assert_eq!(blocked.status.code(), Some(1), "{text}");
    assert!(text.contains(": blocked") && text.contains("server.js:1:") && text.contains("stripe-live-key"), "{text}");
    assert!(text.contains("review     reject by deterministic (signed, key "), "{text}");

    write_app(&app_dir, "", "const stripe = require('stripe')(process.env.STRIPE_KEY);\n");
    keep(user.run(&["push", app_dir.to_str().unwrap(), "-m", "key from the vault"]));
    let pass = keep(user.run(&["app", "scan", "refund-dashboard", "--wait", "30s"]));
    assert!(pass.status.success(), "{}", String::from_utf8_lossy(&pass.stdout));
    assert!(String::from_utf8_lossy(&pass.stdout).contains(": pass"));

    // The first revision stays blocked until an admin suppresses the finding, with a reason.
    let report: Value =
        serde_json::from_slice(&keep(user.run(&["--json", "app", "scan", "refund-dashboard", "1"])).stdout).unwrap();
    assert_eq!(report["verdict"], "blocked");
    let fp = report["findings"][0]["fingerprint"].as_str().unwrap().to_owned();
    let out = keep(user.run(&[
        "app",
        "suppress",
        "refund-dashboard",
        "--fingerprint",
        &fp,
        "--reason",
        "revoked at Stripe on 2026-11-26",
        "--days",
        "7",
    ]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(keep(user.run(&["app", "scan", "refund-dashboard", "1"])).status.success());
    let audit = keep(user.run(&["--json", "audit", "search", "--action", "app.suppression.create"]));
    assert!(String::from_utf8_lossy(&audit.stdout).contains("revoked at Stripe"));
    keep(user.run(&["scan-policy", "set", "critical", "--folder", "/"]));
    keep(user.run(&["scan-policy", "show"]));
    let policy_file = data.path().join("policy.txt");
    std::fs::write(&policy_file, "Refund data stays in Salesforce.\n").unwrap();
    let policy = keep(user.run(&["review-policy", "set", "--file", policy_file.to_str().unwrap()]));
    assert!(String::from_utf8_lossy(&policy.stdout).contains("Refund data stays in Salesforce."));
    assert!(String::from_utf8_lossy(&policy.stdout).contains("source     org"));

    let stderr = server.stderr.clone();
    assert!(server.stop().success());
    let log = stderr.lock().unwrap().clone();
    assert!(contains(&log, "revision scanned"), "the debug log was captured");
    assert!(!contains(&log, KEY) && !contains(&log, &KEY[8..]), "the server log contains the key");
    assert!(!contains(&outputs, KEY) && !contains(&outputs, &KEY[8..]), "CLI output contains the key");
}

/// Access control as an admin uses it from the CLI: a builder's org-wide default is narrowed to
/// one folder, the builder is refused elsewhere, and `authz explain` says why, naming the binding.
#[test]
fn authz_cli_grants_revokes_and_explains() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(&data.path().join("data"), None);
    let admin = User::new();
    admin.ok(&["login", "--url", &server.url, "--token", server.bootstrap.as_ref().unwrap()]);
    admin.ok(&["folder", "create", "/finance"]);
    admin.ok(&["folder", "create", "/ops"]);
    admin.ok(&["app", "create", "ledger", "--folder", "/finance"]);
    admin.ok(&["app", "create", "pager", "--folder", "/ops"]);
    let ana = admin.json(&["principal", "create", "ana@example.com", "--max-scope", "write"]);
    let ana_id = ana["id"].as_str().unwrap();
    let tok = admin.json(&["token", "create", "laptop", "--scope", "write", "--principal", ana_id]);
    let bindings = admin.json(&["authz", "bindings", "--subject", ana_id]);
    assert_eq!(bindings[0]["role"], "builder");
    assert_eq!(bindings[0]["folder_path"], "/");
    admin.ok(&["authz", "revoke", bindings[0]["id"].as_str().unwrap()]);
    let granted = admin.ok(&["authz", "grant", "builder", "--folder", "/finance", "--principal", ana_id]);
    assert!(granted.contains("granted builder on /finance to ana@example.com"), "{granted}");

    let user = User::new();
    user.ok(&["login", "--url", &server.url, "--token", tok["secret"].as_str().unwrap()]);
    user.ok(&["app", "show", "ledger"]);
    let err = user.fails(&["app", "show", "pager"]);
    assert!(err.contains("may not `app.read`"), "{err}");
    let apps = user.json(&["app", "list"]);
    assert_eq!(apps.as_array().unwrap().len(), 1, "{apps}");

    let why = admin.ok(&[
        "authz",
        "explain",
        "--principal",
        "ana@example.com",
        "--action",
        "app.push",
        "--resource",
        "app:ledger",
    ]);
    assert!(why.starts_with("ALLOW") && why.contains("role:builder") && why.contains("builder on /finance"), "{why}");
    let why = admin.ok(&["authz", "explain", "--principal", ana_id, "--action", "app.push", "--resource", "app:pager"]);
    assert!(why.starts_with("DENY") && why.contains("no role is granted"), "{why}");
    let policy = data.path().join("g.cedar");
    std::fs::write(&policy, "forbid(principal, action == Gatehouse::Action::\"app.push\", resource) when { resource.sensitivity == \"high\" };\n").unwrap();
    admin.ok(&["authz", "guardrail", "no-high-pushes", "--file", policy.to_str().unwrap()]);
    assert!(admin.ok(&["authz", "guardrails"]).contains("no-high-pushes"));
    std::fs::write(&policy, "forbid(principal, action, resource) when { resource.sensitivty == \"high\" };\n").unwrap();
    let err = admin.fails(&["authz", "guardrail", "typo", "--file", policy.to_str().unwrap()]);
    assert!(err.contains("sensitivty"), "{err}");
    assert!(admin.ok(&["authz", "schema"]).contains("namespace Gatehouse"));

    // A service identity gets a client secret and trades it for a short-lived access token.
    let etl = admin.json(&["principal", "create", "etl", "--kind", "service", "--max-scope", "read"]);
    let creds = admin.json(&["principal", "client-secret", etl["id"].as_str().unwrap()]);
    assert_eq!(creds["client_id"], etl["id"]);
    let secret = creds["client_secret"].as_str().unwrap();
    assert!(secret.starts_with("gcs_"));
    let tok: Value = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let res = reqwest::Client::new()
            .post(format!("{}/oauth/token", server.url))
            .basic_auth(etl["id"].as_str().unwrap(), Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success());
        res.json().await.unwrap()
    });
    let svc = User::new();
    svc.ok(&["login", "--url", &server.url, "--token", tok["access_token"].as_str().unwrap()]);
    assert_eq!(svc.json(&["whoami"])["principal"]["name"], "etl");
    assert!(admin.fails(&["principal", "client-secret", ana_id]).contains("service identities"));
    assert!(server.stop().success());
}

/// Runs `gatehouse login <args>` for `user` in the background and returns it with the first
/// line it prints to standard error that starts with `prefix` (the URL the person must open).
async fn start_sso_login(user: &User, args: &[&str], prefix: &str) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut login = tokio::process::Command::new(BIN)
        .arg("login")
        .args(args)
        .env("GATEHOUSE_CONFIG_DIR", user.config.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err = tokio::io::BufReader::new(login.stderr.take().unwrap()).lines();
    loop {
        let line = err.next_line().await.unwrap().expect("the CLI printed where to sign in");
        if line.trim().starts_with(prefix) {
            // Keep reading: the CLI's further writes must not meet a closed pipe.
            tokio::spawn(async move {
                while let Ok(Some(l)) = err.next_line().await {
                    eprintln!("login: {l}")
                }
            });
            return (login, line.trim().to_owned());
        }
    }
}

/// A browser with its own cookies that follows no redirects by itself.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Follows redirects from `url` as a browser would, filling in the provider's login form as
/// `login` with `amr`, until a page that is neither (the provider's or the CLI's last page).
async fn through_provider(browser: &reqwest::Client, mut url: String, login: &str, amr: &str) {
    let join = |base: &str, res: &reqwest::Response| {
        url::Url::parse(base).unwrap().join(res.headers()["location"].to_str().unwrap()).unwrap().to_string()
    };
    for _ in 0..20 {
        let res = browser.get(&url).send().await.unwrap();
        if res.status().is_redirection() {
            url = join(&url, &res);
            continue;
        }
        if !url.contains("/interaction/") {
            assert_eq!(res.status(), reqwest::StatusCode::OK, "{url}");
            return;
        }
        let res = browser.post(&url).form(&[("login", login), ("amr", amr)]).send().await.unwrap();
        url = join(&url, &res);
    }
    panic!("the sign-in did not finish")
}

/// Single sign-on as a person sees it: the server configured with a real OpenID provider
/// (`oidc-provider`) prints no bootstrap token; `gatehouse login --sso` prints a URL, the
/// "browser" (this test) signs in at the provider and lands on the CLI's loopback listener; the
/// CLI then works as the bootstrap admin matched by email, with MFA from the provider; and
/// `gatehouse logout` ends the session at the server.
#[tokio::test]
async fn cli_signs_in_with_sso() {
    use tokio::io::AsyncBufReadExt;
    let modules = std::env::var("GATEHOUSE_TEST_OIDC_MODULES").unwrap_or_else(|_| {
        format!("{}/.cache/gatehouse-tools/oidc-provider/node_modules", std::env::var("HOME").unwrap_or_default())
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let base = format!("http://127.0.0.1:{port}");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../server/tests/oidc/provider.mjs");
    let mut idp = tokio::process::Command::new("node")
        .args([script, &modules, &format!("{base}/auth/callback"), &format!("{base}/auth/logged-out")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let mut idp_out = tokio::io::BufReader::new(idp.stdout.take().unwrap()).lines();
    let issuer = loop {
        let line = idp_out.next_line().await.unwrap().expect("the provider started");
        if let Some(i) = line.strip_prefix("listening ") {
            break i.to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = idp_out.next_line().await {} });

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oidc-secret"), "gatehouse-test-secret").unwrap();
    let config = dir.path().join("gatehouse.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\nlisten = \"127.0.0.1:{port}\"\n[bootstrap]\norg = \"acme\"\nadmin_email = \"root@example.com\"\n\
             [identity]\npublic_url = \"{base}\"\n[[identity.sso]]\norg = \"acme\"\n\
             discovery_url = \"{issuer}/.well-known/openid-configuration\"\nclient_id = \"gatehouse\"\n\
             client_secret_file = \"{}\"\n",
            dir.path().join("oidc-secret").display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config"]).arg(&config).arg("--data-dir").arg(dir.path().join("data"));
    let server = {
        // `Server::start_with` listens on port 0; this server needs the port the provider knows.
        let mut child = cmd
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut printed = String::new();
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let line = line.unwrap();
            printed.push_str(&line);
            printed.push('\n');
            if line.starts_with("gatehouse listening on ") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        assert!(printed.contains("Single sign-on is configured"), "{printed}");
        assert!(!printed.contains("gat_"), "a bootstrap token was printed with SSO configured: {printed}");
        child
    };
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Kill(server);

    let user = User::new();
    let (login, start) = start_sso_login(
        &user,
        &["--sso", "--no-browser", "--url", &base, "--org", "acme"],
        &format!("{base}/auth/login"),
    )
    .await;
    // The browser: provider's login form, then back through Gatehouse to the CLI's listener.
    through_provider(&browser(), start, "root", "pwd,mfa").await;
    let out = login.wait_with_output().await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "login --sso failed: {stdout}");
    assert!(stdout.contains("as root@example.com"), "{stdout}");

    let me = user.json(&["whoami"]);
    assert_eq!(me["principal"]["name"], "root@example.com");
    assert_eq!(me["credential"], "session");
    assert_eq!(me["sign_in"]["mfa"], true);
    // The SSO admin administers: a SCIM token for the provider.
    let scim = user.json(&["scim", "create-token"]);
    assert!(scim["token"].as_str().unwrap().starts_with("gst_"));
    // Sign-out ends the session at the server, not only on this machine.
    let saved = std::fs::read_to_string(user.config.path().join("credentials.toml")).unwrap();
    let session = saved.split('"').find(|s| s.starts_with("gss_")).unwrap().to_owned();
    user.ok(&["logout"]);
    let res = reqwest::Client::new().get(format!("{base}/api/v1/whoami")).bearer_auth(&session).send().await.unwrap();
    assert_eq!(res.status(), reqwest::StatusCode::UNAUTHORIZED);

    // Where no browser can reach the CLI (a server over SSH): the device flow. The CLI prints a
    // URL with the code; the person opens it elsewhere, confirms, signs in.
    let (login, verify) =
        start_sso_login(&user, &["--sso", "--device", "--url", &base, "--org", "acme"], &format!("{issuer}/device"))
            .await;
    // Another device: a browser of its own, not signed in at the provider. It confirms the code
    // (the form's hidden fields and `confirm`), then signs in.
    let browser = browser();
    let page = browser.get(&verify).send().await.unwrap().text().await.unwrap();
    let form = &page[page.find("<form").unwrap()..];
    let mut fields: Vec<(String, String)> = form
        .split("<input")
        .skip(1)
        .filter_map(|tag| {
            let tag = tag.split('>').next().unwrap();
            let attr = |n: &str| tag.split(&format!("{n}=\"")).nth(1).map(|v| v.split('"').next().unwrap().to_owned());
            Some((attr("name")?, attr("value")?))
        })
        .collect();
    fields.push(("confirm".to_owned(), "yes".to_owned()));
    let res = browser.post(format!("{issuer}/device")).form(&fields).send().await.unwrap();
    let next = url::Url::parse(&verify).unwrap().join(res.headers()["location"].to_str().unwrap()).unwrap();
    through_provider(&browser, next.to_string(), "root", "pwd").await;
    let out = login.wait_with_output().await.unwrap();
    assert!(out.status.success(), "login --sso --device failed: {}", String::from_utf8_lossy(&out.stdout));
    let me = user.json(&["whoami"]);
    assert_eq!(me["principal"]["name"], "root@example.com");
    assert_eq!(me["sign_in"]["mfa"], false);
    drop(idp);
}
