//! `gatehouse scan` through the real binary: exit codes, formats (SARIF checked by Microsoft's
//! SARIF validator when available), staged changes, custom gitleaks rules, and that no output
//! ever carries a secret's value.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");
/// Canary values: formatted like real credentials, planted, then searched for in every output.
const GH_TOKEN: &str = "ghp_Q7vN3kPw2XrT5mYb7LcD4hFaB1cD2eF3gH4k";
const DB_PASSWORD: &str = "Zq8vN3kPw2XrT5mYb7";
const WEAK: &str = "s3cretValue-Correct-Horse";

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn path(&self) -> &Path {
        self.0.path()
    }
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }
}

fn scan(dir: &Path, args: &[&str]) -> Output {
    let key = dir.join("..").join(format!("{}.key", dir.file_name().unwrap().to_string_lossy()));
    if !key.exists() {
        std::fs::write(&key, "11".repeat(32)).unwrap();
    }
    // No user-level advisory index leaks in: XDG_DATA_HOME points at an empty directory.
    let data_home = dir.join("..").join(format!("{}.data", dir.file_name().unwrap().to_string_lossy()));
    let out = Command::new(BIN)
        .arg("scan")
        .args(args)
        .arg("--fingerprint-key-file")
        .arg(&key)
        .env("XDG_DATA_HOME", &data_home)
        .current_dir(dir)
        .output()
        .unwrap();
    assert_no_canary(&out);
    out
}

fn assert_no_canary(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        for canary in [GH_TOKEN, &GH_TOKEN[4..], DB_PASSWORD, WEAK] {
            assert!(!text.contains(canary), "a secret value leaked into the output:\n{text}");
        }
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn planted() -> Dir {
    let d = Dir::new();
    d.write("app/pure.py", "def add(a, b):\n    return a + b\n");
    d.write("app/config.py", &format!("import os\nDB = \"postgres://app:{DB_PASSWORD}@db.internal/app\"\n"));
    d.write("app/client.js", &format!("const octo = new Octokit({{ auth: \"{GH_TOKEN}\" }});\n"));
    d.write("app/settings.yaml", &format!("smtp:\n  password: \"{WEAK}\"\n"));
    d.write("README.md", "Set DATABASE_URL to postgres://user:password@localhost/db\n");
    d.write("assets/logo.bin", "\0\0binary ghp_ not scanned");
    d
}

#[test]
fn finds_blocks_and_reports_in_every_format() {
    let d = planted();
    let out = scan(d.path(), &["."]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("app/config.py:2:"), "{text}");
    assert!(text.contains("app/client.js:1:") && text.contains("github-pat"), "{text}");
    assert!(text.contains("app/settings.yaml:2:") && text.contains("generic-password"), "{text}");
    assert!(!text.contains("README.md"), "placeholder URL reported: {text}");
    assert!(text.contains("skipped assets/logo.bin: binary"), "{text}");
    assert!(text.contains("3 finding(s), 2 blocking"), "{text}");

    // JSON: the same findings, with blocking flags and fingerprints.
    let out = scan(d.path(), &["--format", "json", "."]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["blocking"], 2);
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 3);
    let medium = findings.iter().find(|f| f["rule_id"] == "generic-password").unwrap();
    assert_eq!((medium["severity"].as_str(), medium["blocking"].as_bool()), (Some("medium"), Some(false)));
    assert!(findings.iter().all(|f| f["fingerprint"].as_str().unwrap().starts_with("hmac-sha256:")));

    // The fingerprint is stable for the same key and value (suppressions depend on it).
    let again: serde_json::Value = serde_json::from_slice(&scan(d.path(), &["--format", "json", "."]).stdout).unwrap();
    assert_eq!(again["findings"], v["findings"]);

    // Raising the bar: nothing at critical except the DB URL and token, so exit 1; medium only: exit 0.
    assert_eq!(scan(d.path(), &["--block-on", "critical", "."]).status.code(), Some(1));
    assert_eq!(scan(d.path(), &["--block-on", "critical", "app/settings.yaml"]).status.code(), Some(0));
    assert_eq!(scan(d.path(), &["app/settings.yaml"]).status.code(), Some(0), "medium warns by default");
}

#[test]
fn sarif_is_valid_sarif_2_1_0() {
    let d = planted();
    // One finding of every kind: secrets (above), a dependency and a code pattern.
    d.write("jobs/requirements.txt", "requests>=2\n");
    d.write("jobs/calc.py", "def calc(expr):\n    return eval(expr)\n");
    let out = scan(d.path(), &["--format", "sarif", "-o", "out.sarif", "."]);
    assert_eq!(out.status.code(), Some(1));
    let sarif: serde_json::Value = serde_json::from_slice(&std::fs::read(d.path().join("out.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 5);
    let rules: Vec<&str> = results.iter().map(|r| r["ruleId"].as_str().unwrap()).collect();
    assert!(rules.contains(&"unpinned-dependency") && rules.contains(&"py-eval-exec"), "{rules:?}");
    assert!(results.iter().any(|r| r["level"] == "warning") && results.iter().any(|r| r["level"] == "error"));
    let region = &results[0]["locations"][0]["physicalLocation"]["region"];
    assert!(region["startLine"].as_u64().unwrap() >= 1 && region["endColumn"].as_u64().unwrap() > 1);

    // Microsoft's SARIF multitool validates against the 2.1.0 schema and its authoring rules.
    // scripts/setup installs it and scripts/test exports its path; CI must not skip it.
    let Ok(tool) = std::env::var("GATEHOUSE_SARIF_MULTITOOL") else {
        assert!(std::env::var_os("CI").is_none(), "GATEHOUSE_SARIF_MULTITOOL must be set in CI");
        eprintln!("GATEHOUSE_SARIF_MULTITOOL not set: schema validation skipped");
        return;
    };
    let out = Command::new(tool)
        .args(["validate", "out.sarif", "-o", "validation.sarif", "--log", "ForceOverwrite"])
        .env("DOTNET_SYSTEM_GLOBALIZATION_INVARIANT", "1")
        .current_dir(d.path())
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "validator failed:\n{log}{}", String::from_utf8_lossy(&out.stderr));
    let validation: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.path().join("validation.sarif")).unwrap()).unwrap();
    let problems = validation["runs"][0]["results"].as_array().cloned().unwrap_or_default();
    assert!(problems.is_empty(), "SARIF validation reported problems:\n{log}");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.org", "-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn staged_scans_only_what_the_commit_adds() {
    let d = Dir::new();
    git(d.path(), &["init", "-q"]);
    d.write("old.py", &format!("DB = \"postgres://app:{DB_PASSWORD}@db/app\"\nx = 1\n"));
    git(d.path(), &["add", "."]);
    git(d.path(), &["commit", "-q", "-m", "old secret, already committed"]);

    // Nothing staged: clean.
    assert_eq!(scan(d.path(), &["--staged"]).status.code(), Some(0));
    // A harmless line added to the file with the old secret: not this commit's problem.
    d.write("old.py", &format!("DB = \"postgres://app:{DB_PASSWORD}@db/app\"\nx = 1\ny = 2\n"));
    git(d.path(), &["add", "old.py"]);
    assert_eq!(scan(d.path(), &["--staged"]).status.code(), Some(0));
    // A token staged, then removed from the working tree only: the staged content is what counts.
    d.write("new.js", &format!("const t = \"{GH_TOKEN}\";\n"));
    git(d.path(), &["add", "new.js"]);
    d.write("new.js", "const t = process.env.TOKEN;\n");
    let out = scan(d.path(), &["--staged", "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["new.js"]);
    // A staged file over the size limit is skipped and listed as skipped.
    d.write("big.js", &format!("const t = \"{GH_TOKEN}\";\n{}", "// padding\n".repeat(200)));
    git(d.path(), &["add", "big.js"]);
    let out = scan(d.path(), &["--staged", "--format", "json", "--max-file-bytes", "1000"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["findings"].as_array().unwrap().iter().all(|f| f["path"] != "big.js"), "{v}");
    assert_eq!(v["skipped"][0]["path"], "big.js", "{v}");
    // Outside a repository: a clear error, exit 2.
    let plain = Dir::new();
    let out = scan(plain.path(), &["--staged"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("git"), "{:?}", out);
}

#[test]
fn custom_gitleaks_rules_and_clear_errors() {
    let d = planted();
    // A company's gitleaks file: its own rule, extending ours, with a path allowlist.
    d.write(
        "gitleaks.toml",
        "title = \"acme\"\n[extend]\nuseDefault = true\n\n[[rules]]\nid = \"acme-internal-token\"\n\
         description = \"ACME internal service token\"\nregex = '''\\b(acme_[a-z0-9]{24})\\b'''\nkeywords = [\"acme_\"]\n\
         [[rules.allowlists]]\npaths = ['''^fixtures/''']\n",
    );
    d.write("svc/main.go", "tok := \"acme_q7v3kpw2xrt5myb7lcd4hfab\"\n");
    d.write("fixtures/sample.go", "tok := \"acme_q7v3kpw2xrt5myb7lcd4hfab\"\n");
    let out = scan(d.path(), &["--rules", "gitleaks.toml", "--format", "json", "."]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let acme: Vec<&str> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule_id"] == "acme-internal-token")
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert_eq!(acme, ["svc/main.go"]);
    assert!(v["findings"].as_array().unwrap().iter().any(|f| f["rule_id"] == "github-pat"), "built-in rules kept");
    assert_eq!(
        v["findings"].as_array().unwrap().iter().find(|f| f["rule_id"] == "acme-internal-token").unwrap()["severity"],
        "high"
    );

    // Broken inputs: exit 2 and a message naming the problem.
    d.write("bad.toml", "[[rules]]\nid = \"x\"\nregex = '''(unclosed'''\n");
    for (args, want) in [
        (vec!["--rules", "bad.toml", "."], "bad.toml: rule \"x\": invalid regex"),
        (vec!["--rules", "missing.toml", "."], "cannot read rule file missing.toml"),
        (vec!["no/such/dir"], "cannot read no/such/dir"),
    ] {
        let out = scan(d.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Dependency checks through the CLI: an advisory index imported from OSV files, then a lockfile
/// with a known-vulnerable version blocks, and unpinned requirements are reported, not passed.
#[test]
fn dependencies_against_an_imported_advisory_index() {
    let d = Dir::new();
    d.write(
        "advisories/GHSA-p6mc-m468-83gw.json",
        r#"{"id":"GHSA-p6mc-m468-83gw","summary":"Prototype Pollution in lodash","database_specific":{"severity":"HIGH"},
            "affected":[{"package":{"ecosystem":"npm","name":"lodash"},"ranges":[{"type":"SEMVER","events":[{"introduced":"0"},{"fixed":"4.17.20"}]}]}]}"#,
    );
    d.write("advisories/broken.json", "{ not json");
    let index = d.path().join("osv.jsonl.gz");
    let out = Command::new(BIN)
        .args(["advisories", "import", "advisories", "--index"])
        .arg(&index)
        .current_dir(d.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("kept 1") && String::from_utf8_lossy(&out.stderr).contains("broken.json"), "{text}");

    d.write("web/package.json", r#"{"dependencies":{"lodash":"^4.17.0","expresss":"^4"}}"#);
    d.write(
        "web/package-lock.json",
        r#"{"lockfileVersion":3,"packages":{"node_modules/lodash":{"version":"4.17.15"},"node_modules/expresss":{"version":"4.0.0","hasInstallScript":true}}}"#,
    );
    d.write("jobs/requirements.txt", "requests>=2.0\n");
    let out = scan(d.path(), &["--advisories", index.to_str().unwrap(), "--format", "json", "web", "--no-ignore"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["rule_id"].as_str().unwrap()).collect();
    assert!(rules.contains(&"GHSA-p6mc-m468-83gw"), "{rules:?}");
    assert!(rules.contains(&"typosquat-suspect") && rules.contains(&"install-script"), "{rules:?}");
    let vuln = v["findings"].as_array().unwrap().iter().find(|f| f["rule_id"] == "GHSA-p6mc-m468-83gw").unwrap();
    assert_eq!(
        (vuln["kind"].as_str(), vuln["severity"].as_str(), vuln["path"].as_str()),
        (Some("dependency"), Some("high"), Some("package-lock.json"))
    );
    assert!(vuln["title"].as_str().unwrap().contains("fixed in 4.17.20"));

    // Unpinned requirements are unresolved (a warning), never silently safe; no index: a note.
    let out = scan(d.path(), &["--format", "json", "jobs"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["findings"][0]["rule_id"], "unpinned-dependency");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no advisory index"));
}

/// Code patterns through the CLI: real parsers, so a call is found and a comment or string is not.
#[test]
fn code_patterns_in_javascript_typescript_and_python() {
    let d = Dir::new();
    d.write(
        "api/routes.js",
        "// never eval(req.body) here\nconst q = `SELECT * FROM users WHERE id = ${req.params.id}`;\n\
         app.get('/u', (req, res) => db.query(`SELECT * FROM users WHERE id = ${req.params.id}`));\n",
    );
    d.write("api/proxy.ts", "export const go = (req: any) => fetch(req.query.url as string);\n");
    d.write("jobs/load.py", "import pickle\n\ndef load(blob):\n    return pickle.loads(blob)\n");
    d.write("node_modules/lib/index.js", "eval(x);\n");
    let out = scan(d.path(), &["--format", "json", "--checks", "code", "--no-ignore", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let got: Vec<(String, String, u64)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["rule_id"].as_str().unwrap().to_owned(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("api/proxy.ts".to_owned(), "js-ssrf".to_owned(), 1),
            ("api/routes.js".to_owned(), "js-sql-injection".to_owned(), 3),
            ("jobs/load.py".to_owned(), "py-insecure-deserialization".to_owned(), 4),
        ],
        "comments, strings and vendored code are not findings"
    );
    assert!(v["findings"].as_array().unwrap().iter().all(|f| f["kind"] == "code"));
    // A custom rule file in ast-grep's format adds to the built-in rules.
    d.write(
        "rules.yml",
        "id: no-console-secrets\nlanguage: JavaScript\nmessage: console.log of a secret\nseverity: warning\n\
         rule:\n  pattern: console.log($$$A, secret)\n",
    );
    d.write("api/debug.js", "console.log('value', secret);\n");
    let out = scan(d.path(), &["--format", "json", "--checks", "code", "--pattern-rules", "rules.yml", "api/debug.js"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["findings"][0]["rule_id"], "no-console-secrets");
    assert_eq!(v["findings"][0]["severity"], "medium");
    assert_eq!(out.status.code(), Some(0), "medium warns");
}

/// Manifest checks: a direct call to a host `[egress] allow` declares is fine; to any other host
/// it is `undeclared-egress`, which blocks.
#[test]
fn undeclared_egress_against_the_manifest() {
    let d = Dir::new();
    d.write(
        "gatehouse.toml",
        "[app]\nname = \"forecast\"\nruntime = \"node20\"\nentry = \"server.js\"\n\n[egress]\nallow = [\"api.open-meteo.com\", \"*.corp.example\"]\n",
    );
    d.write(
        "server.js",
        "const a = await fetch('https://api.open-meteo.com/v1/forecast');\n\
         const b = await fetch('https://eu.corp.example/x');\n\
         const c = await axios.post('https://pastebin.com/api', data);\n",
    );
    let out = scan(d.path(), &["--format", "json", "."]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = v["findings"].as_array().unwrap();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0]["rule_id"].as_str(), f[0]["kind"].as_str(), f[0]["line"].as_u64()),
        (Some("undeclared-egress"), Some("manifest"), Some(3))
    );
    assert!(f[0]["title"].as_str().unwrap().contains("pastebin.com"));
}
