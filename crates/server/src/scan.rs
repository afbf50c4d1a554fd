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
use gatehouse_core::{
    App, FolderId, OrgId, ReviewRecord, Revision, ScanFinding, ScanRecord, ScanStatus, SuppressionId, Timestamp,
};
use gatehouse_review::{InputFinding, ModelReviewer, ReviewError, ReviewInput};
use gatehouse_scan::{AdvisoryDb, Detector, Patterns, RuleSet, Scan, Severity};
use gatehouse_store::{AuditCtx, ScanJob, ScanResult, Store, StoreError};
use serde::Serialize;
use tokio::sync::Notify;
use utoipa::ToSchema;

use crate::audit::AuditKeys;
use crate::config::{ReviewSettings, ScanSettings};

/// How long a failed scan waits per attempt made before it is tried again.
const RETRY_BACKOFF: Duration = Duration::from_secs(30);

/// Findings at or above this severity block when no policy is set.
pub const DEFAULT_BLOCK_AT: Severity = Severity::High;

/// The background scanner: compiled rules, and a bell that pushes ring.
pub struct Scanner {
    store: Store,
    detector: Detector,
    /// The advisory index as last loaded, with the file's modification time: reloaded when the
    /// file changes (after `gatehouse advisories import`), without a restart.
    advisories: std::sync::Mutex<Option<(Option<std::time::SystemTime>, Arc<AdvisoryDb>)>>,
    patterns: Arc<Patterns>,
    reviewer: Option<ModelReviewer>,
    review: ReviewSettings,
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
        review: ReviewSettings,
    ) -> Result<Self, crate::StateError> {
        let reviewer = match (&review.url, &review.model) {
            (Some(url), Some(model)) => {
                let key = match &review.api_key_file {
                    Some(path) => {
                        let key = std::fs::read_to_string(path).map_err(|e| {
                            crate::StateError::Reviewer(format!("cannot read api_key_file {}: {e}", path.display()))
                        })?;
                        Some(zeroize::Zeroizing::new(key.trim().to_owned()))
                    }
                    None => None,
                };
                Some(
                    ModelReviewer::new(url, model, key, review.timeout)
                        .map_err(|e| crate::StateError::Reviewer(e.to_string()))?,
                )
            }
            _ => None,
        };
        let (rules, origin) = match &settings.rules_file {
            Some(path) => (RuleSet::load(path).map_err(gatehouse_scan::ScanError::from)?, path.display().to_string()),
            None => (RuleSet::builtin().map_err(gatehouse_scan::ScanError::from)?, "built-in rules".to_owned()),
        };
        let advisories = match &settings.advisories {
            Some(path) => {
                let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
                let db = AdvisoryDb::load(path).map_err(gatehouse_scan::ScanError::from)?;
                Some((modified, Arc::new(db)))
            }
            None => None,
        };
        let mut patterns = Patterns::builtin().map_err(gatehouse_scan::ScanError::from)?;
        if let Some(path) = &settings.pattern_rules {
            patterns.extend(Patterns::load(path).map_err(gatehouse_scan::ScanError::from)?);
        }
        let description = format!(
            "gatehouse-scan {} ({} secret rules, {origin}; {} code rules",
            env!("CARGO_PKG_VERSION"),
            rules.rules.len(),
            patterns.ids().len(),
        );
        // The key is replaced per org before any scan; this one is never used to fingerprint.
        let detector = Detector::new(rules, [0; 32]).map_err(gatehouse_scan::ScanError::from)?;
        Ok(Self {
            store,
            detector,
            advisories: std::sync::Mutex::new(advisories),
            patterns: Arc::new(patterns),
            reviewer,
            review,
            description,
            keys,
            bundle_limits,
            settings,
            wake: Notify::new(),
        })
    }

    /// The advisory index, reloaded first if its file changed since it was read. Loading runs
    /// off the async threads and without the lock held; a file that fails to load keeps the
    /// previous index in use (and says so in the log).
    async fn current_advisories(&self) -> Option<Arc<AdvisoryDb>> {
        let path = self.settings.advisories.clone()?;
        let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let loaded = {
            let slot = self.advisories.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some((at, db)) if *at == modified => return Some(db.clone()),
                other => other.map(|(_, db)| db.clone()),
            }
        };
        let shown = path.display().to_string();
        match tokio::task::spawn_blocking(move || AdvisoryDb::load(&path)).await {
            Ok(Ok(db)) => {
                tracing::info!(advisories = db.len(), path = %shown, "advisory index loaded");
                let db = Arc::new(db);
                *self.advisories.lock().unwrap_or_else(|p| p.into_inner()) = Some((modified, db.clone()));
                Some(db)
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "advisory index changed but cannot be read; keeping the previous one");
                loaded
            }
            Err(e) => {
                tracing::warn!(error = %e, "advisory index reload stopped; keeping the previous one");
                loaded
            }
        }
    }

    /// Tells the worker a scan was queued.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The server's default review policy (used by orgs that set none).
    pub fn default_review(&self) -> &ReviewSettings {
        &self.review
    }

    /// Claims and runs one scan; false when none was waiting.
    pub async fn run_once(&self) -> Result<bool, StoreError> {
        let lease = i64::try_from(self.settings.lease.as_millis()).unwrap_or(i64::MAX);
        let max = i64::from(self.settings.max_attempts);
        let retry = i64::try_from(RETRY_BACKOFF.as_millis()).unwrap_or(i64::MAX);
        let Some(job) = self.store.claim_scan(lease, retry, max).await? else { return Ok(false) };
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
        let (org, app_id) = (&job.org_id, &job.app_id);
        let archive = self.store.get_archive(org, &job.digest).await.map_err(|e| e.to_string())?;
        let revision = self.store.get_revision(org, app_id, &job.digest).await.map_err(|e| e.to_string())?;
        let app = self.store.get_app(org, app_id).await.map_err(|e| e.to_string())?;
        let parent_archive = match &revision.parent {
            Some(p) => Some(self.store.get_archive(org, p).await.map_err(|e| e.to_string())?),
            None => None,
        };
        let detector = self.detector.with_fingerprint_key(self.keys.scan_fingerprint_key(org));
        let limits = self.bundle_limits;
        let scan_limits =
            gatehouse_scan::Limits { max_file_bytes: self.settings.max_file_bytes, threads: 1, respect_ignore: false };
        let advisories = self.current_advisories().await;
        let scanner = format!(
            "{}; {})",
            self.description,
            advisories.as_ref().map_or("no advisory index".to_owned(), |a| format!("{} advisories", a.len()))
        );
        let patterns = self.patterns.clone();
        // The org's own review policy, else the server's.
        let org_policy = self.store.review_policy(org).await.map_err(|e| e.to_string())?;
        let (policy, require_different) = match org_policy {
            Some(p) => (p.policy, p.require_different_model),
            None => (self.review.policy.clone(), self.review.require_different_model),
        };
        let (app_name, digest) = (app.name.clone(), job.digest.clone());
        // Unpacking, matching and diffing are CPU work: off the async threads.
        let (mut result, input) = tokio::task::spawn_blocking(move || {
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
            let findings: Vec<ScanFinding> = report.findings.into_iter().map(stored).collect();
            let parent = match parent_archive {
                Some(a) => gatehouse_bundle::unpack(&a, &limits).map_err(|e| format!("cannot open the parent: {e}"))?,
                None => gatehouse_bundle::Tree::default(),
            };
            let input = review_input(&detector, &parent, &bundle, app_name, digest, policy, &findings);
            let result = ScanResult {
                findings,
                scanner,
                files_scanned: report.files_scanned as i64,
                bytes_scanned: report.bytes_scanned as i64,
                duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                review: None,
            };
            Ok::<_, String>((result, input))
        })
        .await
        .map_err(|e| format!("the scan task stopped: {e}"))??;
        result.review = Some(self.review(job, revision.provenance.model.as_deref(), &input, require_different).await?);
        Ok(result)
    }

    /// Reviews a scanned revision and signs the outcome. An unreachable model is an error the
    /// scan is retried for; output the model should not have given is recorded as a failed
    /// review (never releasable).
    async fn review(
        &self,
        job: &ScanJob,
        generating: Option<&str>,
        input: &ReviewInput,
        require_different_model: bool,
    ) -> Result<ReviewRecord, String> {
        let (reviewer, model, decision, summary, findings) = match &self.reviewer {
            Some(r) => match r.review(input, generating, require_different_model).await {
                Ok(rv) => (
                    "model",
                    rv.model,
                    rv.decision.as_str(),
                    rv.summary,
                    serde_json::to_value(&rv.findings).unwrap_or_default(),
                ),
                Err(ReviewError::Unavailable(e)) => return Err(format!("reviewer unavailable: {e}")),
                Err(e) => ("model", Some(r.model().to_owned()), "error", e.to_string(), serde_json::json!([])),
            },
            None => {
                let rv = gatehouse_review::deterministic(input);
                ("deterministic", None, rv.decision.as_str(), rv.summary, serde_json::json!([]))
            }
        };
        let created_at = Timestamp::now();
        let statement = serde_json::json!({
            "type": "gatehouse.review/v1",
            "org": job.org_id,
            "app": job.app_id,
            "revision": job.digest,
            "reviewer": reviewer,
            "model": model,
            "generating_model": generating,
            "decision": decision,
            "summary": summary,
            "findings": findings,
            "reviewed_at": created_at,
        })
        .to_string();
        let signature = self.keys.signer().sign_statement(REVIEW_DOMAIN, statement.as_bytes());
        Ok(ReviewRecord {
            reviewer: reviewer.to_owned(),
            model,
            generating_model: generating.map(str::to_owned),
            decision: decision.to_owned(),
            summary,
            findings,
            attestation: statement,
            signature,
            key_id: gatehouse_audit::key_id(&self.keys.verifying_key()),
            created_at,
        })
    }

    /// Runs the worker until the process ends: scans whatever is queued, then waits for a push
    /// (or polls, for scans queued by other instances or left behind by a crash).
    /// `n` of them share the queue (claims are compare-and-set, so they never take the same scan).
    pub fn spawn_workers(self: Arc<Self>, n: u32, poll: Duration) -> Vec<tokio::task::JoinHandle<()>> {
        (0..n.max(1)).map(|_| self.clone().worker(poll)).collect()
    }

    fn worker(self: Arc<Self>, poll: Duration) -> tokio::task::JoinHandle<()> {
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

/// The domain review attestations are signed under (see `gatehouse_audit::verify_statement`).
pub const REVIEW_DOMAIN: &str = "gatehouse-review-v1";

/// What the reviewer reads: the diff against the parent (secrets replaced by `[REDACTED:rule]`),
/// the manifest, the policy and the scanners' findings.
fn review_input(
    detector: &Detector,
    parent: &gatehouse_bundle::Tree,
    bundle: &Bundle,
    app: String,
    revision: String,
    policy: String,
    findings: &[ScanFinding],
) -> ReviewInput {
    let mut diff = String::new();
    let mut files = Vec::new();
    for d in gatehouse_bundle::diff::files(parent, &bundle.tree) {
        diff.push_str(&format!("--- a/{0}\n+++ b/{0}\n", d.path));
        match &d.unified {
            Some(u) => diff.push_str(u),
            None if d.binary => diff.push_str("(binary file)\n"),
            None => diff.push_str("(file too large to show)\n"),
        }
        files.push(d.path);
    }
    let manifest = bundle.tree.file(gatehouse_bundle::MANIFEST_FILE).map(String::from_utf8_lossy).unwrap_or_default();
    ReviewInput {
        app,
        revision,
        diff: detector.redact(&diff),
        files,
        manifest: detector.redact(&manifest),
        policy,
        findings: findings
            .iter()
            .map(|f| InputFinding {
                rule_id: f.rule_id.clone(),
                severity: f.severity.clone(),
                path: f.path.clone(),
                line: f.line,
                title: f.title.clone(),
            })
            .collect(),
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
    /// The independent review and its signed attestation (once scanned).
    pub review: Option<ReviewRecord>,
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
            // An unreadable severity blocks: the gate fails closed.
            let at_level = finding.severity.parse::<Severity>().map_or(true, |s| s >= block_at);
            ReportedFinding { blocking: at_level && suppressed_by.is_none(), suppressed_by, finding }
        })
        .collect();
    let blocking = findings.iter().filter(|f| f.blocking).count();
    let suppressed = findings.iter().filter(|f| f.suppressed_by.is_some()).count();
    let review = store.get_review(org, &app.id, &revision.digest).await?;
    // A model's rejection blocks and a failed model review is an error; the deterministic
    // reviewer is the scanners' rules, whose findings the policy above already weighed.
    let model_review = review.as_ref().filter(|r| r.reviewer == "model").map(|r| r.decision.as_str());
    let verdict = match (scan.status, model_review) {
        (ScanStatus::Queued | ScanStatus::Running, _) => Verdict::Pending,
        (ScanStatus::Failed, _) | (ScanStatus::Done, Some("error")) => Verdict::Error,
        (ScanStatus::Done, _) if blocking > 0 => Verdict::Blocked,
        (ScanStatus::Done, Some("reject")) => Verdict::Blocked,
        (ScanStatus::Done, _) => Verdict::Pass,
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
        review,
        findings,
    })
}
