//! Property tests: no input panics a lockfile parser, the analyzer or version matching.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_deps::osv::{Advisory, Ecosystem};
use gatehouse_deps::{AdvisoryDb, Format, analyze, lockfile};
use proptest::prelude::*;

const FORMATS: [(Format, &str); 7] = [
    (Format::PackageLock, "package-lock.json"),
    (Format::YarnLock, "yarn.lock"),
    (Format::PnpmLock, "pnpm-lock.yaml"),
    (Format::Requirements, "requirements.txt"),
    (Format::PoetryLock, "poetry.lock"),
    (Format::PipfileLock, "Pipfile.lock"),
    (Format::CargoLock, "Cargo.lock"),
];

/// Text shaped like lockfiles, so parsers get past their first line.
fn lockish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just(r#"{"lockfileVersion":3,"packages":{"node_modules/a":{"version":"1.0.0"}}}"#.to_owned()),
        Just("packages:\n  /a@1.0.0(b@2):\n    requiresBuild: true\n".to_owned()),
        Just("\"a@^1\", b@2:\n  version \"1.2.3\"\n".to_owned()),
        Just("[[package]]\nname = \"a\"\nversion = \"1\"\nsource = \"x\"\n".to_owned()),
        Just("requests[socks]==2.0 ; python_version<'3' \\\n --hash=x\n".to_owned()),
        Just("\n".to_owned()),
        "[ -~]{0,40}".prop_map(String::from),
        "\\PC{0,20}".prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn parsers_never_panic(text in lockish()) {
        for (format, name) in FORMATS {
            if let Ok(locked) = lockfile::parse(format, name, &text) {
                for l in locked {
                    prop_assert!(l.line >= 1);
                }
            }
        }
        let _ = lockfile::package_json_dependencies(&text);
    }

    #[test]
    fn analysis_never_panics(text in lockish(), name in "(package-lock.json|yarn.lock|pnpm-lock.yaml|requirements.txt|poetry.lock|Pipfile.lock|Cargo.lock|package.json)") {
        let db = AdvisoryDb::from_advisories(std::iter::empty());
        let _ = analyze([(name.as_str(), text.as_bytes())], Some(&db));
    }

    #[test]
    fn version_matching_never_panics(a in "[0-9a-z.+!-]{0,12}", b in "[0-9a-z.+!-]{0,12}", v in "[0-9a-z.+!-]{0,12}") {
        for eco in [Ecosystem::Npm, Ecosystem::PyPI, Ecosystem::CratesIo] {
            let _ = eco.compare(&a, &b);
            let doc = format!(
                r#"{{"id":"X","affected":[{{"package":{{"name":"p","ecosystem":"{}"}},"ranges":[{{"type":"ECOSYSTEM","events":[{{"introduced":"{a}"}},{{"fixed":"{b}"}}]}}],"versions":["{a}"]}}]}}"#,
                eco.as_str()
            );
            let adv: Advisory = serde_json::from_str(&doc).unwrap();
            let _ = adv.affected[0].affects(eco, &v);
            let _ = adv.severity();
        }
    }
}
