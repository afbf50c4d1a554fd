//! Known answers from the public OSV data in `../shared/data/osv`: the advisories the issue
//! names and the npm set's README table, through import, lockfile parsing and matching.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use gatehouse_deps::{AdvisoryDb, analyze};

fn osv_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("GATEHOUSE_SHARED_DATA") {
        return PathBuf::from(dir).join("osv");
    }
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for anc in here.ancestors() {
        for cand in [anc.join("shared/data/osv"), anc.join("../shared/data/osv")] {
            if cand.join("rustsec").is_dir() {
                return cand;
            }
        }
    }
    let fixed = PathBuf::from("/work/shared/data/osv");
    assert!(fixed.is_dir(), "OSV test data not found: set GATEHOUSE_SHARED_DATA to the shared/data directory");
    fixed
}

/// All three databases imported once into a temporary index, then loaded back from it.
fn db() -> &'static AdvisoryDb {
    static DB: OnceLock<(AdvisoryDb, tempfile::TempDir)> = OnceLock::new();
    &DB.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let index = dir.path().join("osv.jsonl.gz");
        let osv = osv_dir();
        let report =
            AdvisoryDb::import(&index, &[osv.join("rustsec"), osv.join("pypa/vulns"), osv.join("npm")]).unwrap();
        println!("imported: {report:?}");
        assert!(report.kept > 3000, "{report:?}");
        assert!(report.withdrawn > 0, "the RustSec set has withdrawn advisories");
        (AdvisoryDb::load(&index).unwrap(), dir)
    })
    .0
}

fn ids(files: Vec<(&str, String)>) -> Vec<String> {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
    let a = analyze(refs, Some(db()));
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    a.findings.into_iter().map(|f| f.rule_id).collect()
}

fn cargo_lock(name: &str, version: &str) -> String {
    format!(
        "version = 3\n\n[[package]]\nname = \"{name}\"\nversion = \"{version}\"\nsource = \"registry+https://github.com/rust-lang/crates.io-index\"\n"
    )
}

#[test]
fn rustsec_2020_0071_time() {
    assert!(ids(vec![("Cargo.lock", cargo_lock("time", "0.1.45"))]).contains(&"RUSTSEC-2020-0071".to_owned()));
    assert!(!ids(vec![("Cargo.lock", cargo_lock("time", "0.2.23"))]).contains(&"RUSTSEC-2020-0071".to_owned()));
}

#[test]
fn pysec_2023_74_requests() {
    let req = |v: &str| ids(vec![("requirements.txt", format!("requests=={v}\n"))]);
    assert!(req("2.30.0").contains(&"PYSEC-2023-74".to_owned()));
    assert!(req("2.3.0").contains(&"PYSEC-2023-74".to_owned()));
    assert!(!req("2.31.0").contains(&"PYSEC-2023-74".to_owned()));
    assert!(!req("2.2.1").contains(&"PYSEC-2023-74".to_owned()));
    // The same answer through poetry.lock and Pipfile.lock.
    let poetry = "[[package]]\nname = \"requests\"\nversion = \"2.30.0\"\n".to_owned();
    assert!(ids(vec![("poetry.lock", poetry)]).contains(&"PYSEC-2023-74".to_owned()));
    let pipfile = r#"{"default":{"requests":{"version":"==2.30.0"}},"develop":{}}"#.to_owned();
    assert!(ids(vec![("Pipfile.lock", pipfile)]).contains(&"PYSEC-2023-74".to_owned()));
    // Unpinned: unresolved, never silently safe.
    assert_eq!(ids(vec![("requirements.txt", "requests>=2\n".to_owned())]), vec!["unpinned-dependency".to_owned()]);
}

#[test]
fn withdrawn_advisories_never_match() {
    // RUSTSEC-2020-0053 (dirs, every version) was withdrawn.
    assert!(!ids(vec![("Cargo.lock", cargo_lock("dirs", "1.0.5"))]).contains(&"RUSTSEC-2020-0053".to_owned()));
}

/// Every row of the npm set's README table: the known vulnerable version is reported with the
/// advisory, the known fixed version is not — through package-lock v3, yarn.lock and pnpm-lock.
#[test]
fn npm_readme_table() {
    let readme = std::fs::read_to_string(osv_dir().join("npm/README.md")).unwrap();
    let mut rows = 0;
    for line in readme.lines().filter(|l| l.starts_with("| GHSA-")) {
        // The range column escapes its own `|` as `\|`.
        let line = line.replace("\\|", "/");
        let cols: Vec<&str> = line.split('|').map(str::trim).collect();
        let (id, vulnerable, fixed) = (cols[1], cols[4], cols[5]);
        for (spec, expect) in [(vulnerable, true), (fixed, false)] {
            let (name, version) = spec.rsplit_once('@').unwrap();
            let lock = format!(
                "{{\"lockfileVersion\":3,\"packages\":{{\"node_modules/{name}\":{{\"version\":\"{version}\"}}}}}}"
            );
            let yarn = format!("{name}@^{version}:\n  version \"{version}\"\n");
            let pnpm = format!("lockfileVersion: '9.0'\npackages:\n  {name}@{version}:\n    resolution: {{}}\n");
            for (file, text) in [("package-lock.json", lock), ("yarn.lock", yarn), ("pnpm-lock.yaml", pnpm)] {
                let found = ids(vec![(file, text)]).contains(&id.to_owned());
                assert_eq!(found, expect, "{id} {spec} via {file}");
            }
        }
        rows += 1;
    }
    assert_eq!(rows, 23);
}
