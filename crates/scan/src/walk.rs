//! Scanning files on disk (a tree, in parallel) or in memory (a pushed bundle).

use std::path::Path;
use std::sync::mpsc;

use gatehouse_deps::AdvisoryDb;
use gatehouse_detect::Detector;

use crate::ScanError;
use crate::report::{Finding, Report, Skipped};

/// What a scan runs: the secret rules, the advisory index (dependency checks run without one,
/// minus vulnerability matching), and the limits.
#[derive(Debug, Clone, Copy)]
pub struct Scan<'a> {
    pub detector: &'a Detector,
    pub advisories: Option<&'a AdvisoryDb>,
    /// Code-pattern rules; `None` skips pattern analysis.
    pub patterns: Option<&'a gatehouse_patterns::Patterns>,
    /// Run secret detection (off only for benchmarks and focused runs).
    pub secrets: bool,
    /// Run dependency checks.
    pub dependencies: bool,
    pub limits: &'a Limits,
}

/// Largest source file parsed for code patterns: bigger ones are generated bundles.
const MAX_PATTERN_BYTES: usize = 1024 * 1024;

/// Third-party code inside a tree: its patterns are not the builder's to fix.
fn is_vendored(path: &str) -> bool {
    path.split('/').any(|c| c == "node_modules" || c == "site-packages" || c == "bower_components")
}

/// Whether dependency analysis wants this file.
fn is_dependency_file(path: &str) -> bool {
    // (Dependency checks are switched per scan in the callers.)
    gatehouse_deps::Format::detect(path).is_some() || path.rsplit('/').next() == Some("package.json")
}

/// Runs dependency analysis over the collected files and adds its findings and errors.
fn add_dependencies<D: AsRef<[u8]>>(report: &mut Report, files: &[(String, D)], advisories: Option<&AdvisoryDb>) {
    if files.is_empty() {
        return;
    }
    let analysis = gatehouse_deps::analyze(files.iter().map(|(p, d)| (p.as_str(), d.as_ref())), advisories);
    report.findings.extend(analysis.findings.into_iter().map(Finding::from_dependency));
    report.skipped.extend(analysis.errors.into_iter().map(|e| Skipped { path: e.file, reason: e.reason }));
}

/// Bounds on what a scan reads.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Larger files are skipped (and listed as skipped): generated bundles, data dumps.
    pub max_file_bytes: u64,
    /// Worker threads for tree scans.
    pub threads: usize,
    /// Honour `.gitignore`/`.ignore` files (a pre-commit hook wants this; an audit of a
    /// dependency tree does not).
    pub respect_ignore: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: 10 * 1024 * 1024,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
            respect_ignore: true,
        }
    }
}

/// What one file contributed.
enum Outcome {
    Scanned { bytes: u64, findings: Vec<Finding> },
    Skipped(Skipped),
}

/// Scans `data` as the file `path`: binary content (a NUL in the first 8 KiB, as git decides) is skipped.
fn scan_blob(scan: &Scan<'_>, path: &str, data: &[u8]) -> Outcome {
    let limits = scan.limits;
    if data.len() as u64 > limits.max_file_bytes {
        return Outcome::Skipped(Skipped {
            path: path.to_string(),
            reason: format!("larger than {} bytes", limits.max_file_bytes),
        });
    }
    if data[..data.len().min(8192)].contains(&0) {
        return Outcome::Skipped(Skipped { path: path.to_string(), reason: "binary".into() });
    }
    let mut findings: Vec<Finding> = if scan.secrets {
        scan.detector.scan(path, data).into_iter().map(Finding::from_secret).collect()
    } else {
        Vec::new()
    };
    if let Some(patterns) = scan.patterns
        && data.len() <= MAX_PATTERN_BYTES
        && !is_vendored(path)
        && gatehouse_patterns::language_of(path).is_some()
        && let Ok(source) = std::str::from_utf8(data)
    {
        findings.extend(patterns.scan(path, source).into_iter().map(Finding::from_pattern));
    }
    Outcome::Scanned { bytes: data.len() as u64, findings }
}

fn add(report: &mut Report, outcome: Outcome) {
    match outcome {
        Outcome::Scanned { bytes, findings } => {
            report.files_scanned += 1;
            report.bytes_scanned += bytes;
            report.findings.extend(findings);
        }
        Outcome::Skipped(s) => report.skipped.push(s),
    }
}

/// Scans in-memory files, such as the contents of a pushed bundle.
pub fn scan_files<'a>(scan: &Scan<'_>, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Report {
    let mut report = Report::default();
    let mut dependency_files = Vec::new();
    let mut manifest_text = None;
    for (path, data) in files {
        if path == gatehouse_bundle::MANIFEST_FILE {
            manifest_text = Some(data);
        }
        if scan.dependencies && is_dependency_file(path) {
            dependency_files.push((path.to_owned(), data));
        }
        add(&mut report, scan_blob(scan, path, data));
    }
    add_dependencies(&mut report, &dependency_files, scan.advisories);
    if let Some(text) = manifest_text.and_then(|d| std::str::from_utf8(d).ok()) {
        crate::manifest::apply(&mut report, text);
    }
    report.normalize();
    report
}

/// Scans a file or a directory tree (in parallel, skipping `.git`).
pub fn scan_path(scan: &Scan<'_>, root: &Path) -> Result<Report, ScanError> {
    let limits = scan.limits;
    let meta = std::fs::metadata(root)
        .map_err(|e| ScanError::Read { path: root.display().to_string(), reason: e.to_string() })?;
    if meta.is_file() {
        let data = std::fs::read(root)
            .map_err(|e| ScanError::Read { path: root.display().to_string(), reason: e.to_string() })?;
        let name = root.file_name().map_or_else(|| root.display().to_string(), |n| n.to_string_lossy().into_owned());
        let mut report = Report::default();
        add(&mut report, scan_blob(scan, &name, &data));
        if scan.dependencies && is_dependency_file(&name) {
            add_dependencies(&mut report, &[(name, data)], scan.advisories);
        }
        return Ok(report);
    }
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .git_ignore(limits.respect_ignore)
        .git_global(false)
        .git_exclude(limits.respect_ignore)
        .ignore(limits.respect_ignore)
        .parents(limits.respect_ignore)
        .require_git(false)
        .threads(limits.threads.max(1))
        .filter_entry(|e| e.file_name() != ".git")
        .build_parallel();
    let (tx, rx) = mpsc::channel::<(Outcome, Option<(String, Vec<u8>)>)>();
    walker.run(|| {
        let tx = tx.clone();
        Box::new(move |entry| {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let _ = tx.send((Outcome::Skipped(Skipped { path: String::new(), reason: e.to_string() }), None));
                    return ignore::WalkState::Continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return ignore::WalkState::Continue;
            }
            let rel = relative(root, entry.path());
            let mut dependency = None;
            let outcome = match entry.metadata() {
                Ok(m) if m.len() > limits.max_file_bytes => Outcome::Skipped(Skipped {
                    path: rel,
                    reason: format!("larger than {} bytes", limits.max_file_bytes),
                }),
                _ => match std::fs::read(entry.path()) {
                    Ok(data) => {
                        let outcome = scan_blob(scan, &rel, &data);
                        if scan.dependencies && is_dependency_file(&rel) {
                            dependency = Some((rel, data));
                        }
                        outcome
                    }
                    Err(e) => Outcome::Skipped(Skipped { path: rel, reason: e.to_string() }),
                },
            };
            let _ = tx.send((outcome, dependency));
            ignore::WalkState::Continue
        })
    });
    drop(tx);
    let mut report = Report::default();
    let mut dependency_files = Vec::new();
    for (outcome, dependency) in rx {
        add(&mut report, outcome);
        dependency_files.extend(dependency);
    }
    dependency_files.sort();
    add_dependencies(&mut report, &dependency_files, scan.advisories);
    if let Ok(text) = std::fs::read_to_string(root.join(gatehouse_bundle::MANIFEST_FILE)) {
        crate::manifest::apply(&mut report, &text);
    }
    report.normalize();
    Ok(report)
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}
