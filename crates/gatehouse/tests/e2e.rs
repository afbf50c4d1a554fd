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
}

impl Server {
    fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env_remove("GATEHOUSE_CONFIG")
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = cmd.spawn().expect("start gatehouse serve");
        let stdout = child.stdout.take().unwrap();
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
                return Server { child, url: url.to_owned(), bootstrap, lines: rx };
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
    let second = Server::start(&dir, None);
    assert!(second.bootstrap.is_none(), "the bootstrap token is shown on first start only");
    let user = User::new();
    user.ok(&["login", "--url", &second.url, "--token", &token]);
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
