//! Scanning pushed revisions in the background, and the verdict a release must respect.
//!
//! A push queues its revision's scan in the same transaction that stores the revision; workers
//! claim queued scans with a lease, so a scan survives restarts and crashes and is never lost.
//! Findings are stored per revision; whether they block is decided when the verdict is asked
//! for, from the current policy and suppressions, so changing either takes effect at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use gatehouse_bundle::{Bundle, Limits, Node};
use gatehouse_core::{App, FolderId, OrgId, Revision, ScanFinding, ScanRecord, ScanStatus, SuppressionId, Timestamp};
use gatehouse_scan::{AdvisoryDb, Detector, Patterns, RuleSet, Scan, Severity};
use gatehouse_store::{AuditCtx, ScanJob, ScanResult, Store, StoreError};
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::audit::AuditKeys;
use crate::config::ScanSettings;

/// Findings at or above this severity block when no policy is set.
pub const DEFAULT_BLOCK_AT: Severity = Severity::High;

/// The background scanner: compiled rules, and a bell that pushes ring.
pub struct Scanner {
    store: Store,
    detector: Detector,
    advisories: Option<Arc<AdvisoryDb>>,
    patterns: Arc<Patterns>,
    description: String,
    keys: Arc<AuditKeys>,
    bundle_limits: Limits,
    settings: ScanSettings,
    wake: Notify,
}

impl Scanner {
    /// Compiles the rules (the configured file, or the built-in pack).
    pub fn new(
        store: Store,
        keys: Arc<AuditKeys>,
        bundle_limits: Limits,
        settings: ScanSettings,
    ) -> Result<Self, gatehouse_scan::ScanError> {
        let (rules, origin) = match &settings.rules_file {
            Some(path) => (RuleSet::load(path)?, path.display().to_string()),
            None => (RuleSet::builtin()?, "built-in rules".to_owned()),
        };
        let advisories = match &settings.advisories {
            Some(path) => Some(Arc::new(
                AdvisoryDb::load(path).map_err(|e| gatehouse_scan::ScanError::Advisories(e.to_string()))?,
            )),
            None => None,
        };
        let mut patterns = Patterns::builtin().map_err(|e| gatehouse_scan::ScanError::Patterns(e.to_string()))?;
        if let Some(path) = &settings.pattern_rules {
            let text = std::fs::read_to_string(path)
                .map_err(|e| gatehouse_scan::ScanError::Patterns(format!("cannot read {}: {e}", path.display())))?;
            patterns.extend(
                Patterns::parse(&text, &path.display().to_string())
                    .map_err(|e| gatehouse_scan::ScanError::Patterns(e.to_string()))?,
            );
        }
        let description = format!(
            "gatehouse-scan {} ({} secret rules, {origin}; {} code rules; {})",
            env!("CARGO_PKG_VERSION"),
            rules.rules.len(),
            patterns.ids().len(),
            advisories.as_ref().map_or("no advisory index".to_owned(), |a| format!("{} advisories", a.len()))
        );
        // The key is replaced per org before any scan; this one is never used to fingerprint.
        let detector = Detector::new(rules, [0; 32])?;
        Ok(Self {
            store,
            detector,
            advisories,
            patterns: Arc::new(patterns),
            description,
            keys,
            bundle_limits,
            settings,
            wake: Notify::new(),
        })
    }

    /// Tells the worker a scan was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The compiled rules, for rendering reports.
    pub fn detector(&self) -> &Detector {
        &self.detector
    }

    /// Claims and runs one scan; false when none was waiting.
    pub async fn run_once(&self) -> Result<bool, StoreError> {
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
        let max = i64::from(self.settings.max_attempts);
        let Some(job) = self.store.claim_scan(lease, max).await? else { return Ok(false) };
        let audit = AuditCtx::system(&job.org_id, "scanner");
        match self.scan(&job).await {
            Ok(result) => {
                let findings = result.findings.len();
                if self.store.complete_scan(&job, result, &audit).await? {
                    tracing::info!(app = %job.app_id, digest = %job.digest, findings, "revision scanned");
                } else {
                    tracing::warn!(app = %job.app_id, digest = %job.digest, "scan finished after its lease ran out; result dropped");
                }
            }
            Err(reason) => {
                tracing::warn!(app = %job.app_id, digest = %job.digest, %reason, "scan failed");
                self.store.fail_scan(&job, &reason, max, &audit).await?;
            }
        }
        Ok(true)
    }

    async fn scan(&self, job: &ScanJob) -> Result<ScanResult, String> {
        let archive = self.store.get_archive(&job.org_id, &job.digest).await.map_err(|e| e.to_string())?;
        let detector = self.detector.with_fingerprint_key(self.keys.scan_fingerprint_key(&job.org_id));
        let limits = self.bundle_limits;
        let scan_limits =
            gatehouse_scan::Limits { max_file_bytes: self.settings.max_file_bytes, threads: 1, respect_ignore: false };
        let scanner = self.description.clone();
        let advisories = self.advisories.clone();
        let patterns = self.patterns.clone();
        // Unpacking and matching are CPU work: off the async threads.
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let bundle =
                Bundle::open(&archive, &limits).map_err(|e| format!("cannot open the revision's bundle: {e}"))?;
            let files = bundle.tree.entries().filter_map(|(path, node)| match node {
                Node::File { data, .. } => Some((path, data.as_slice())),
                _ => None,
            });
            let scan = Scan {
                detector: &detector,
                advisories: advisories.as_deref(),
                patterns: Some(&patterns),
                secrets: true,
                dependencies: true,
                limits: &scan_limits,
            };
            let report = gatehouse_scan::scan_files(&scan, files);
            Ok(ScanResult {
                findings: report.findings.into_iter().map(stored).collect(),
                scanner,
                files_scanned: report.files_scanned as i64,
                bytes_scanned: report.bytes_scanned as i64,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            })
        })
        .await
        .map_err(|e| format!("the scan task stopped: {e}"))?
    }

    /// Runs the worker until the process ends: scans whatever is queued, then waits for a push
    /// (or polls, for scans queued by other instances or left behind by a crash).
    pub fn spawn(self: Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "scan queue unavailable"),
                }
                tokio::select! {
                    () = self.wake.notified() => {}
                    () = tokio::time::sleep(poll) => {}
                }
            }
        })
    }
}

fn stored(f: gatehouse_scan::Finding) -> ScanFinding {
    ScanFinding {
        kind: f.kind.as_str().to_owned(),
        rule_id: f.rule_id,
        title: f.title,
        severity: f.severity.as_str().to_owned(),
        path: f.path,
        line: f.line as i64,
        column: f.column as i64,
        end_line: f.end_line as i64,
        end_column: f.end_column as i64,
        fingerprint: f.fingerprint,
        preview: f.preview,
    }
}

/// Whether a revision may be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The scan has not finished: not releasable yet.
    Pending,
    /// Scanned; nothing blocks.
    Pass,
    /// Scanned; at least one unsuppressed finding blocks.
    Blocked,
    /// The scan failed: not releasable until a rescan succeeds.
    Error,
}

/// A stored finding with what the current policy and suppressions make of it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportedFinding {
    #[serde(flatten)]
    pub finding: ScanFinding,
    /// Blocks the release (at or above the policy's level and not suppressed).
    pub blocking: bool,
    /// The active suppression that covers it.
    pub suppressed_by: Option<SuppressionId>,
}

/// A revision's scan and verdict.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScanReport {
    /// The revision's number in its app.
    pub revision: i64,
    /// The revision's digest.
    pub digest: String,
    /// Whether it may be released.
    pub verdict: Verdict,
    /// Findings at or above this severity (`low`, `medium`, `high`, `critical`) block.
    pub block_at: String,
    /// Where `block_at` comes from: `default`, `org`, or the folder path whose override applies.
    pub policy_source: String,
    /// Counts over `findings`.
    pub blocking: usize,
    pub warnings: usize,
    pub suppressed: usize,
    /// The scan's state.
    pub scan: ScanRecord,
    /// Every finding, in scan order.
    pub findings: Vec<ReportedFinding>,
}

/// The blocking level for an app in `folder`: the nearest folder override up the tree, then the
/// org's policy, then [`DEFAULT_BLOCK_AT`].
pub async fn effective_policy(store: &Store, org: &OrgId, folder: &FolderId) -> Result<(Severity, String), StoreError> {
    let rows = store.scan_policies(org).await?;
    if rows.is_empty() {
        return Ok((DEFAULT_BLOCK_AT, "default".to_owned()));
    }
    let overrides: HashMap<&FolderId, &str> =
        rows.iter().filter_map(|r| r.folder_id.as_ref().map(|f| (f, r.block_at.as_str()))).collect();
    if !overrides.is_empty() {
        let folders = store.list_folders(org).await?;
        let by_id: HashMap<&FolderId, &gatehouse_core::Folder> = folders.iter().map(|f| (&f.id, f)).collect();
        let mut at = by_id.get(folder).copied();
        while let Some(f) = at {
            if let Some(level) = overrides.get(&f.id) {
                return Ok((parse_severity(level)?, f.path.clone()));
            }
            at = f.parent_id.as_ref().and_then(|p| by_id.get(p).copied());
        }
    }
    match rows.iter().find(|r| r.folder_id.is_none()) {
        Some(org_row) => Ok((parse_severity(&org_row.block_at)?, "org".to_owned())),
        None => Ok((DEFAULT_BLOCK_AT, "default".to_owned())),
    }
}

fn parse_severity(s: &str) -> Result<Severity, StoreError> {
    s.parse().map_err(|e: String| StoreError::Corrupt(e))
}

/// The scan report and release verdict of `revision` under the current policy and suppressions.
/// This is the gate a deploy must pass: only [`Verdict::Pass`] may be released.
pub async fn scan_report(store: &Store, org: &OrgId, app: &App, revision: &Revision) -> Result<ScanReport, StoreError> {
    let scan = store
        .get_scan(org, &app.id, &revision.digest)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("revision {} has no scan", revision.digest)))?;
    let (block_at, policy_source) = effective_policy(store, org, &app.folder_id).await?;
    let findings = if scan.status == ScanStatus::Done {
        store.scan_findings(org, &app.id, &revision.digest).await?
    } else {
        Vec::new()
    };
    let suppressions = store.list_suppressions(org, &app.id).await?;
    let now = Timestamp::now();
    let findings: Vec<ReportedFinding> = findings
        .into_iter()
        .map(|finding| {
            let suppressed_by = suppressions.iter().find(|s| s.covers(&finding, now)).map(|s| s.id.clone());
            let at_level = finding.severity.parse::<Severity>().is_ok_and(|s| s >= block_at);
            ReportedFinding { blocking: at_level && suppressed_by.is_none(), suppressed_by, finding }
        })
        .collect();
    let blocking = findings.iter().filter(|f| f.blocking).count();
    let suppressed = findings.iter().filter(|f| f.suppressed_by.is_some()).count();
    let verdict = match scan.status {
        ScanStatus::Queued | ScanStatus::Running => Verdict::Pending,
        ScanStatus::Failed => Verdict::Error,
        ScanStatus::Done if blocking > 0 => Verdict::Blocked,
        ScanStatus::Done => Verdict::Pass,
    };
    Ok(ScanReport {
        revision: revision.number,
        digest: revision.digest.clone(),
        verdict,
        block_at: block_at.as_str().to_owned(),
        policy_source,
        warnings: findings.len() - blocking - suppressed,
        blocking,
        suppressed,
        scan,
        findings,
    })
}
