//! Dependency scanning: lockfiles, an offline OSV advisory index, and risky-package checks.
//!
//! [`analyze`] takes the files of a tree (lockfiles and `package.json` matter; the rest is
//! ignored) and returns findings: known vulnerabilities (matched in each ecosystem's own version
//! order, withdrawn advisories never), requirements that pin nothing (reported as unresolved,
//! never as safe), packages that run install scripts, direct dependencies the lockfile does not
//! pin, and names one edit away from a popular package.

pub mod db;
pub mod lockfile;
pub mod osv;

use std::collections::{BTreeMap, BTreeSet, HashSet};

pub use db::{AdvisoryDb, DbError, ImportReport};
pub use lockfile::{Format, Locked, LockfileError};
pub use osv::Ecosystem;

/// One dependency finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepFinding {
    /// An advisory id for vulnerabilities, else one of our rule ids.
    pub rule_id: String,
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
    /// The lockfile (or manifest) it was found in.
    pub path: String,
    pub line: usize,
}

/// What [`analyze`] produced.
#[derive(Debug, Default, Clone)]
pub struct Analysis {
    pub findings: Vec<DepFinding>,
    /// Lockfiles that could not be read (reported; the rest are still analyzed).
    pub errors: Vec<LockfileError>,
    /// Packages checked against advisories.
    pub packages: usize,
}

const POPULAR_NPM: &str = include_str!("../data/popular-npm.txt");
const POPULAR_PYPI: &str = include_str!("../data/popular-pypi.txt");

fn parse_list(list: &str, eco: Ecosystem) -> HashSet<String> {
    list.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| eco.normalize(l)).collect()
}

/// The popular names of an ecosystem, parsed once per process.
fn popular(eco: Ecosystem) -> &'static HashSet<String> {
    static NPM: std::sync::LazyLock<HashSet<String>> =
        std::sync::LazyLock::new(|| parse_list(POPULAR_NPM, Ecosystem::Npm));
    static PYPI: std::sync::LazyLock<HashSet<String>> =
        std::sync::LazyLock::new(|| parse_list(POPULAR_PYPI, Ecosystem::PyPI));
    static NONE: std::sync::LazyLock<HashSet<String>> = std::sync::LazyLock::new(HashSet::new);
    match eco {
        Ecosystem::Npm => &NPM,
        Ecosystem::PyPI => &PYPI,
        Ecosystem::CratesIo => &NONE,
    }
}

/// Whether `a` and `b` differ by exactly one insertion, deletion, substitution or swap of
/// neighbours (Damerau-Levenshtein distance 1).
fn one_edit(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match ra.len().cmp(&rb.len()) {
        std::cmp::Ordering::Equal => {
            ra[1..] == rb[1..] || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        }
        std::cmp::Ordering::Greater => ra[1..] == *rb,
        std::cmp::Ordering::Less => *ra == rb[1..],
    }
}

/// The popular package `name` may be imitating.
fn typosquat_of<'a>(name: &str, popular: &'a HashSet<String>) -> Option<&'a str> {
    // Short names are one edit from too much to say anything useful.
    if name.chars().count() < 5 || popular.contains(name) {
        return None;
    }
    let mut near: Vec<&str> = popular.iter().filter(|p| one_edit(name, p)).map(String::as_str).collect();
    near.sort_unstable();
    near.first().copied()
}

/// Analyzes the dependency files among `files` (path, content).
pub fn analyze<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>, db: Option<&AdvisoryDb>) -> Analysis {
    let mut analysis = Analysis::default();
    let mut locked_by_dir: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut manifests: Vec<(&str, &[u8])> = Vec::new();
    for (path, data) in files {
        let name = path.rsplit('/').next().unwrap_or(path);
        if name == "package.json" && !path.contains("node_modules/") {
            manifests.push((path, data));
            continue;
        }
        let Some(format) = Format::detect(path) else { continue };
        let Ok(text) = std::str::from_utf8(data) else {
            analysis.errors.push(LockfileError { file: path.to_owned(), reason: "not UTF-8 text".into() });
            continue;
        };
        let locked = match lockfile::parse(format, path, text) {
            Ok(l) => l,
            Err(e) => {
                analysis.errors.push(e);
                continue;
            }
        };
        if matches!(format, Format::PackageLock | Format::YarnLock | Format::PnpmLock) {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d).to_owned();
            locked_by_dir.entry(dir).or_default().extend(locked.iter().map(|l| l.name.clone()));
        }
        for l in &locked {
            check_package(l, path, db, &mut analysis);
            if let Some(target) = typosquat_of(&l.ecosystem.normalize(&l.name), popular(l.ecosystem)) {
                analysis.findings.push(DepFinding {
                    rule_id: "typosquat-suspect".into(),
                    title: format!(
                        "`{}` is one edit away from the popular package `{target}`: check it is the one meant",
                        l.name
                    ),
                    severity: "high",
                    path: path.to_owned(),
                    line: l.line,
                });
            }
        }
    }
    for (path, data) in manifests {
        let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
        let Ok(text) = std::str::from_utf8(data) else { continue };
        let deps = match lockfile::package_json_dependencies(text) {
            Ok(d) => d,
            Err(reason) => {
                analysis.errors.push(LockfileError { file: path.to_owned(), reason });
                continue;
            }
        };
        let locked = locked_by_dir.get(dir);
        for (name, line) in deps {
            if locked.is_some_and(|l| l.contains(&name)) {
                continue;
            }
            let why = if locked.is_some() { "is missing from the lockfile" } else { "has no lockfile pinning it" };
            analysis.findings.push(DepFinding {
                rule_id: "unlocked-dependency".into(),
                title: format!("`{name}` {why}: what gets installed is decided at install time"),
                severity: "medium",
                path: path.to_owned(),
                line,
            });
        }
    }
    analysis.findings.sort_by(|a, b| (&a.path, a.line, &a.rule_id).cmp(&(&b.path, b.line, &b.rule_id)));
    analysis
}

fn check_package(l: &Locked, path: &str, db: Option<&AdvisoryDb>, analysis: &mut Analysis) {
    if l.install_script {
        analysis.findings.push(DepFinding {
            rule_id: "install-script".into(),
            title: format!("`{}` runs a script when installed", l.name),
            severity: "low",
            path: path.to_owned(),
            line: l.line,
        });
    }
    let Some(version) = &l.version else {
        analysis.findings.push(DepFinding {
            rule_id: "unpinned-dependency".into(),
            title: format!(
                "`{}` is not pinned to one version; its advisories cannot be checked",
                l.spec.as_deref().unwrap_or(&l.name)
            ),
            severity: "medium",
            path: path.to_owned(),
            line: l.line,
        });
        return;
    };
    analysis.packages += 1;
    let Some(db) = db else { return };
    for adv in db.for_package(l.ecosystem, &l.name) {
        let verdicts: Vec<Option<bool>> = adv
            .affected
            .iter()
            .filter(|a| {
                a.package.as_ref().is_some_and(|p| {
                    Ecosystem::parse(&p.ecosystem) == Some(l.ecosystem)
                        && l.ecosystem.normalize(&p.name) == l.ecosystem.normalize(&l.name)
                })
            })
            .map(|a| a.affects(l.ecosystem, version))
            .collect();
        let summary = adv.summary.as_deref().unwrap_or("known vulnerability");
        if verdicts.contains(&Some(true)) {
            let fix = adv.fixed_in(l.ecosystem, &l.name).map(|f| format!(" (fixed in {f})")).unwrap_or_default();
            analysis.findings.push(DepFinding {
                rule_id: adv.id.clone(),
                title: format!("{} {version}: {summary}{fix}", l.name),
                severity: adv.severity(),
                path: path.to_owned(),
                line: l.line,
            });
        } else if !verdicts.is_empty() && verdicts.iter().all(Option::is_none) {
            analysis.findings.push(DepFinding {
                rule_id: "unknown-vulnerability-status".into(),
                title: format!("cannot tell whether {} {version} is affected by {} ({summary})", l.name, adv.id),
                severity: "medium",
                path: path.to_owned(),
                line: l.line,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_edit_distance() {
        assert!(one_edit("lodahs", "lodash"), "swap");
        assert!(one_edit("lodas", "lodash"), "deletion");
        assert!(one_edit("lodashh", "lodash"), "insertion");
        assert!(one_edit("lodesh", "lodash"), "substitution");
        assert!(!one_edit("lodash", "lodash"));
        assert!(!one_edit("ldoahs", "lodash"));
        assert!(!one_edit("express", "expresso-x"));
    }

    #[test]
    fn typosquats_are_flagged_and_popular_names_are_not() {
        let npm = popular(Ecosystem::Npm);
        assert_eq!(typosquat_of("expresss", npm), Some("express"));
        assert_eq!(typosquat_of("reqeust", npm), Some("request"));
        assert_eq!(typosquat_of("preact", npm), None, "itself popular");
        assert_eq!(typosquat_of("left-pad", npm), None);
        let py = popular(Ecosystem::PyPI);
        assert_eq!(typosquat_of(&Ecosystem::PyPI.normalize("reqests"), py), Some("requests"));
        assert_eq!(typosquat_of("urllib4", py), Some("urllib3"));
    }

    #[test]
    fn unlocked_and_unpinned_dependencies() {
        let files: Vec<(&str, &[u8])> = vec![
            ("web/package.json", br#"{"dependencies":{"lodash":"^4","left-pad":"1"},"devDependencies":{"jest":"^29"}}"#),
            ("web/package-lock.json", br#"{"lockfileVersion":3,"packages":{"node_modules/lodash":{"version":"4.17.21"},"node_modules/jest":{"version":"29.0.0"}}}"#),
            ("api/package.json", br#"{"dependencies":{"express":"^4"}}"#),
            ("py/requirements.txt", b"requests>=2\nflask==3.0.0\n"),
            ("bad/Cargo.lock", b"[[package]\n"),
        ];
        let a = analyze(files, None);
        let got: Vec<(&str, &str)> = a.findings.iter().map(|f| (f.rule_id.as_str(), f.path.as_str())).collect();
        assert_eq!(
            got,
            vec![
                ("unlocked-dependency", "api/package.json"),
                ("unpinned-dependency", "py/requirements.txt"),
                ("unlocked-dependency", "web/package.json"),
            ],
            "{:?}",
            a.findings
        );
        assert!(a.findings[2].title.contains("left-pad"));
        assert_eq!(a.errors.len(), 1);
        assert!(a.errors[0].to_string().starts_with("bad/Cargo.lock: invalid TOML"));
    }
}
