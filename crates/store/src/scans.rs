//! Scans of revisions: a durable queue (one row per revision, claimed by workers with a lease),
//! the findings of finished scans, the blocking policy, and suppressions.

use gatehouse_core::{
    AppId, FolderId, OrgId, PrincipalId, ReviewRecord, ScanFinding, ScanRecord, ScanStatus, Suppression, SuppressionId,
    Timestamp,
};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col};

/// A scan a worker has claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanJob {
    pub org_id: OrgId,
    pub app_id: AppId,
    pub digest: String,
    /// Which attempt this is (1 for the first); completing checks it so a job whose lease
    /// expired and was claimed again cannot be completed twice.
    pub attempt: i64,
}

/// What a finished scan stores.
#[derive(Debug, Clone)]
pub struct ScanResult {
    pub findings: Vec<ScanFinding>,
    pub scanner: String,
    pub files_scanned: i64,
    pub bytes_scanned: i64,
    pub duration_ms: i64,
    /// The independent review, stored with the findings.
    pub review: Option<ReviewRecord>,
}

/// A blocking-policy row: org-wide (`folder_id` `None`) or a folder's override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanPolicyRow {
    pub folder_id: Option<FolderId>,
    pub block_at: String,
    pub updated_at: Timestamp,
    pub updated_by: PrincipalId,
}

/// A suppression to create.
#[derive(Debug, Clone)]
pub struct NewSuppression {
    pub fingerprint: Option<String>,
    pub rule_id: Option<String>,
    pub path: Option<String>,
    pub reason: String,
    pub expires_at: Timestamp,
    pub created_by: PrincipalId,
}

#[derive(sqlx::FromRow)]
struct ScanRow {
    app_id: String,
    digest: String,
    status: String,
    queued_at: i64,
    started_at: Option<i64>,
    finished_at: Option<i64>,
    attempts: i64,
    error: Option<String>,
    scanner: Option<String>,
    files_scanned: Option<i64>,
    bytes_scanned: Option<i64>,
    duration_ms: Option<i64>,
}

impl ScanRow {
    fn into_record(self) -> Result<ScanRecord, StoreError> {
        Ok(ScanRecord {
            app_id: parse_col("scans.app_id", &self.app_id)?,
            digest: self.digest,
            status: ScanStatus::parse(&self.status)
                .ok_or_else(|| StoreError::Corrupt(format!("column `scans.status` holds `{}`", self.status)))?,
            queued_at: Timestamp::from_millis(self.queued_at),
            started_at: self.started_at.map(Timestamp::from_millis),
            finished_at: self.finished_at.map(Timestamp::from_millis),
            attempts: self.attempts,
            error: self.error,
            scanner: self.scanner,
            files_scanned: self.files_scanned,
            bytes_scanned: self.bytes_scanned,
            duration_ms: self.duration_ms,
        })
    }
}

#[derive(sqlx::FromRow)]
struct FindingRow {
    kind: String,
    rule_id: String,
    title: String,
    severity: String,
    path: String,
    line: i64,
    col: i64,
    end_line: i64,
    end_col: i64,
    fingerprint: Option<String>,
    preview: Option<String>,
}

#[derive(sqlx::FromRow)]
struct SuppressionRow {
    id: String,
    app_id: String,
    fingerprint: Option<String>,
    rule_id: Option<String>,
    path: Option<String>,
    reason: String,
    expires_at: i64,
    created_by: String,
    created_at: i64,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
}

impl SuppressionRow {
    fn into_suppression(self) -> Result<Suppression, StoreError> {
        Ok(Suppression {
            id: parse_col("scan_suppressions.id", &self.id)?,
            app_id: parse_col("scan_suppressions.app_id", &self.app_id)?,
            fingerprint: self.fingerprint,
            rule_id: self.rule_id,
            path: self.path,
            reason: self.reason,
            expires_at: Timestamp::from_millis(self.expires_at),
            created_by: parse_col("scan_suppressions.created_by", &self.created_by)?,
            created_at: Timestamp::from_millis(self.created_at),
            revoked_at: self.revoked_at.map(Timestamp::from_millis),
            revoked_by: self.revoked_by.as_deref().map(|p| parse_col("scan_suppressions.revoked_by", p)).transpose()?,
        })
    }
}

const SCAN_COLUMNS: &str = "app_id, digest, status, queued_at, started_at, finished_at, attempts, error, scanner, \
                            files_scanned, bytes_scanned, duration_ms";
const SUPPRESSION_COLUMNS: &str =
    "id, app_id, fingerprint, rule_id, path, reason, expires_at, created_by, created_at, revoked_at, revoked_by";
/// Rows per multi-row insert: 15 binds each stays far below SQLite's parameter limit.
const FINDING_CHUNK: usize = 500;

impl Store {
    /// The audit resource for an app: its id and folder path (checks the app exists).
    async fn app_resource(&self, org: &OrgId, app: &AppId) -> Result<gatehouse_core::audit::ResourceRef, StoreError> {
        let current = self.get_app(org, app).await?;
        let folder = self.get_folder(org, &current.folder_id).await?;
        Ok(crate::apps::app_ref(&current, &folder.path))
    }

    /// Claims the oldest queued scan, or one whose worker's lease (`lease_ms`) ran out. A scan
    /// that failed and went back to the queue waits `retry_ms` times its attempts since its last
    /// start, so an outage is not retried in a tight loop. A scan already started
    /// `max_attempts` times is marked failed instead of being handed out again.
    pub async fn claim_scan(
        &self,
        lease_ms: i64,
        retry_ms: i64,
        max_attempts: i64,
    ) -> Result<Option<ScanJob>, StoreError> {
        loop {
            let now = Timestamp::now().as_millis();
            let candidate: Option<(String, String, String, String, i64)> = on_read!(self, |pool| sqlx::query_as(
                "SELECT org_id, app_id, digest, status, attempts FROM scans \
                 WHERE (status = 'queued' AND (started_at IS NULL OR started_at + attempts * $2 <= $3)) \
                    OR (status = 'running' AND started_at < $1) \
                 ORDER BY queued_at LIMIT 1"
            )
            .bind(now - lease_ms)
            .bind(retry_ms)
            .bind(now)
            .fetch_optional(pool)
            .await?);
            let Some((org, app, digest, status, attempts)) = candidate else { return Ok(None) };
            let org_id: OrgId = parse_col("scans.org_id", &org)?;
            let app_id: AppId = parse_col("scans.app_id", &app)?;
            if attempts >= max_attempts {
                let job = ScanJob { org_id: org_id.clone(), app_id, digest, attempt: attempts };
                let reason = format!("gave up after {attempts} attempts (the worker stopped or timed out each time)");
                self.finish_failed(&job, &reason, &AuditCtx::system(&org_id, "scanner")).await?;
                continue;
            }
            let claimed = on_write!(self, |pool| sqlx::query(
                "UPDATE scans SET status = 'running', started_at = $1, attempts = attempts + 1 \
                 WHERE org_id = $2 AND app_id = $3 AND digest = $4 AND status = $5 AND attempts = $6"
            )
            .bind(now)
            .bind(&org)
            .bind(&app)
            .bind(&digest)
            .bind(&status)
            .bind(attempts)
            .execute(pool)
            .await?
            .rows_affected());
            if claimed == 1 {
                return Ok(Some(ScanJob { org_id, app_id, digest, attempt: attempts + 1 }));
            }
        }
    }

    /// Stores a finished scan's findings. Returns false (and stores nothing) when the job is no
    /// longer this worker's: its lease ran out and another worker claimed it.
    pub async fn complete_scan(&self, job: &ScanJob, result: ScanResult, audit: &AuditCtx) -> Result<bool, StoreError> {
        let resource = self.app_resource(&job.org_id, &job.app_id).await?;
        let mut by_severity = serde_json::Map::new();
        for f in &result.findings {
            let n = by_severity.get(&f.severity).and_then(serde_json::Value::as_i64).unwrap_or(0);
            by_severity.insert(f.severity.clone(), (n + 1).into());
        }
        let event = audit.event(
            "app.revision.scan",
            resource,
            serde_json::json!({
                "digest": job.digest,
                "attempt": job.attempt,
                "findings": result.findings.len(),
                "by_severity": by_severity,
                "files": result.files_scanned,
                "duration_ms": result.duration_ms,
                "scanner": result.scanner,
                "review": result.review.as_ref().map(|r| serde_json::json!({
                    "reviewer": r.reviewer, "model": r.model, "decision": r.decision,
                })),
            }),
        );
        let now = Timestamp::now().as_millis();
        let (org, app_id) = (job.org_id.as_str(), job.app_id.as_str());
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mine = sqlx::query(
                "UPDATE scans SET status = 'done', finished_at = $1, error = NULL, scanner = $2, files_scanned = $3, \
                 bytes_scanned = $4, duration_ms = $5 \
                 WHERE org_id = $6 AND app_id = $7 AND digest = $8 AND status = 'running' AND attempts = $9",
            )
            .bind(now)
            .bind(&result.scanner)
            .bind(result.files_scanned)
            .bind(result.bytes_scanned)
            .bind(result.duration_ms)
            .bind(org)
            .bind(app_id)
            .bind(&job.digest)
            .bind(job.attempt)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if mine != 1 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM scan_findings WHERE org_id = $1 AND app_id = $2 AND digest = $3")
                .bind(org)
                .bind(app_id)
                .bind(&job.digest)
                .execute(&mut *tx)
                .await?;
            let numbered: Vec<(i64, &ScanFinding)> =
                result.findings.iter().enumerate().map(|(i, f)| (i as i64, f)).collect();
            for chunk in numbered.chunks(FINDING_CHUNK) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO scan_findings (org_id, app_id, digest, seq, kind, rule_id, title, severity, path, line, col, \
                     end_line, end_col, fingerprint, preview) ",
                );
                qb.push_values(chunk, |mut b, (seq, f)| {
                    b.push_bind(org)
                        .push_bind(app_id)
                        .push_bind(job.digest.as_str())
                        .push_bind(*seq)
                        .push_bind(f.kind.as_str())
                        .push_bind(f.rule_id.as_str())
                        .push_bind(f.title.as_str())
                        .push_bind(f.severity.as_str())
                        .push_bind(f.path.as_str())
                        .push_bind(f.line)
                        .push_bind(f.column)
                        .push_bind(f.end_line)
                        .push_bind(f.end_column)
                        .push_bind(f.fingerprint.as_deref())
                        .push_bind(f.preview.as_deref());
                });
                qb.build().execute(&mut *tx).await?;
            }
            sqlx::query("DELETE FROM reviews WHERE org_id = $1 AND app_id = $2 AND digest = $3")
                .bind(org)
                .bind(app_id)
                .bind(&job.digest)
                .execute(&mut *tx)
                .await?;
            if let Some(r) = &result.review {
                let findings = serde_json::to_string(&r.findings).map_err(|e| StoreError::Invalid(e.to_string()))?;
                sqlx::query(
                    "INSERT INTO reviews (org_id, app_id, digest, reviewer, model, generating_model, decision, summary, \
                     findings, error, attestation, signature, key_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $12, $13)",
                )
                .bind(org)
                .bind(app_id)
                .bind(&job.digest)
                .bind(&r.reviewer)
                .bind(&r.model)
                .bind(&r.generating_model)
                .bind(&r.decision)
                .bind(&r.summary)
                .bind(findings)
                .bind(&r.attestation)
                .bind(&r.signature)
                .bind(&r.key_id)
                .bind(r.created_at.as_millis())
                .execute(&mut *tx)
                .await?;
            }
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The stored review of a revision.
    pub async fn get_review(&self, org: &OrgId, app: &AppId, digest: &str) -> Result<Option<ReviewRecord>, StoreError> {
        type Row = (String, Option<String>, Option<String>, String, String, String, String, String, String, i64);
        let row: Option<Row> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT reviewer, model, generating_model, decision, summary, findings, attestation, signature, key_id, created_at \
             FROM reviews WHERE org_id = $1 AND app_id = $2 AND digest = $3"
        )
        .bind(org.as_str())
        .bind(app.as_str())
        .bind(digest)
        .fetch_optional(pool)
        .await?
        });
        row.map(
            |(reviewer, model, generating_model, decision, summary, findings, attestation, signature, key_id, at)| {
                Ok(ReviewRecord {
                    reviewer,
                    model,
                    generating_model,
                    decision,
                    summary,
                    findings: serde_json::from_str(&findings)
                        .map_err(|e| StoreError::Corrupt(format!("column `reviews.findings`: {e}")))?,
                    attestation,
                    signature,
                    key_id,
                    created_at: Timestamp::from_millis(at),
                })
            },
        )
        .transpose()
    }

    /// Records a failed attempt: queued again while attempts remain, failed (and audited) after.
    pub async fn fail_scan(
        &self,
        job: &ScanJob,
        error: &str,
        max_attempts: i64,
        audit: &AuditCtx,
    ) -> Result<(), StoreError> {
        if job.attempt >= max_attempts {
            return self.finish_failed(job, error, audit).await;
        }
        on_write!(self, |pool| sqlx::query(
            "UPDATE scans SET status = 'queued', error = $1 \
             WHERE org_id = $2 AND app_id = $3 AND digest = $4 AND status = 'running' AND attempts = $5"
        )
        .bind(error)
        .bind(job.org_id.as_str())
        .bind(job.app_id.as_str())
        .bind(&job.digest)
        .bind(job.attempt)
        .execute(pool)
        .await?
        .rows_affected());
        Ok(())
    }

    async fn finish_failed(&self, job: &ScanJob, error: &str, audit: &AuditCtx) -> Result<(), StoreError> {
        let resource = self.app_resource(&job.org_id, &job.app_id).await?;
        let mut event = audit.event(
            "app.revision.scan",
            resource,
            serde_json::json!({"digest": job.digest, "attempt": job.attempt, "error": error}),
        );
        event.outcome = gatehouse_core::audit::Outcome::Failed;
        event.reason = Some(error.to_string());
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE scans SET status = 'failed', finished_at = $1, error = $2 \
                 WHERE org_id = $3 AND app_id = $4 AND digest = $5 AND status IN ('queued', 'running')",
            )
            .bind(now)
            .bind(error)
            .bind(job.org_id.as_str())
            .bind(job.app_id.as_str())
            .bind(&job.digest)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Queues a revision's scan again (after a failure, or to apply new rules).
    pub async fn rescan(
        &self,
        org: &OrgId,
        app: &AppId,
        digest: &str,
        audit: &AuditCtx,
    ) -> Result<ScanRecord, StoreError> {
        let resource = self.app_resource(org, app).await?;
        let event = audit.event("app.revision.rescan", resource, serde_json::json!({"digest": digest}));
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE scans SET status = 'queued', queued_at = $1, attempts = 0, error = NULL, started_at = NULL, \
                 finished_at = NULL WHERE org_id = $2 AND app_id = $3 AND digest = $4",
            )
            .bind(now)
            .bind(org.as_str())
            .bind(app.as_str())
            .bind(digest)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::not_found("revision", digest));
            }
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_scan(org, app, digest).await?.ok_or_else(|| StoreError::not_found("revision", digest))
    }

    /// The scan of a revision (every revision has one once pushed).
    pub async fn get_scan(&self, org: &OrgId, app: &AppId, digest: &str) -> Result<Option<ScanRecord>, StoreError> {
        let sql = format!("SELECT {SCAN_COLUMNS} FROM scans WHERE org_id = $1 AND app_id = $2 AND digest = $3");
        let row: Option<ScanRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(app.as_str())
            .bind(digest)
            .fetch_optional(pool)
            .await?);
        row.map(ScanRow::into_record).transpose()
    }

    /// A finished scan's findings, in the order the scanner reported them.
    pub async fn scan_findings(&self, org: &OrgId, app: &AppId, digest: &str) -> Result<Vec<ScanFinding>, StoreError> {
        let rows: Vec<FindingRow> = on_read!(self, |pool| sqlx::query_as(
            "SELECT kind, rule_id, title, severity, path, line, col, end_line, end_col, fingerprint, preview \
             FROM scan_findings WHERE org_id = $1 AND app_id = $2 AND digest = $3 ORDER BY seq"
        )
        .bind(org.as_str())
        .bind(app.as_str())
        .bind(digest)
        .fetch_all(pool)
        .await?);
        Ok(rows
            .into_iter()
            .map(|r| ScanFinding {
                kind: r.kind,
                rule_id: r.rule_id,
                title: r.title,
                severity: r.severity,
                path: r.path,
                line: r.line,
                column: r.col,
                end_line: r.end_line,
                end_column: r.end_col,
                fingerprint: r.fingerprint,
                preview: r.preview,
            })
            .collect())
    }

    /// The org's blocking policy rows: the org-wide one (if set) and folder overrides.
    pub async fn scan_policies(&self, org: &OrgId) -> Result<Vec<ScanPolicyRow>, StoreError> {
        let rows: Vec<(String, String, i64, String)> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT folder_id, block_at, updated_at, updated_by FROM scan_policies WHERE org_id = $1 ORDER BY folder_id"
        )
        .bind(org.as_str())
        .fetch_all(pool)
        .await?
        });
        rows.into_iter()
            .map(|(folder, block_at, at, by)| {
                Ok(ScanPolicyRow {
                    folder_id: if folder.is_empty() {
                        None
                    } else {
                        Some(parse_col("scan_policies.folder_id", &folder)?)
                    },
                    block_at,
                    updated_at: Timestamp::from_millis(at),
                    updated_by: parse_col("scan_policies.updated_by", &by)?,
                })
            })
            .collect()
    }

    /// Sets (`Some`) or clears (`None`) the org-wide policy (`folder` `None`) or a folder's override.
    pub async fn set_scan_policy(
        &self,
        org: &OrgId,
        folder: Option<&FolderId>,
        block_at: Option<&str>,
        by: &PrincipalId,
        audit: &AuditCtx,
    ) -> Result<(), StoreError> {
        if let Some(level) = block_at
            && !matches!(level, "low" | "medium" | "high" | "critical")
        {
            return Err(StoreError::Invalid(format!("unknown severity `{level}`")));
        }
        let resource = match folder {
            Some(f) => {
                let folder = self.get_folder(org, f).await?;
                gatehouse_core::audit::ResourceRef { kind: "folder".into(), id: f.to_string(), path: Some(folder.path) }
            }
            None => crate::resource("org", org.as_str()),
        };
        let event = audit.event(
            if block_at.is_some() { "scan.policy.set" } else { "scan.policy.clear" },
            resource,
            serde_json::json!({"block_at": block_at}),
        );
        let folder_key = folder.map(|f| f.to_string()).unwrap_or_default();
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            match block_at {
                Some(level) => {
                    sqlx::query(
                        "INSERT INTO scan_policies (org_id, folder_id, block_at, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (org_id, folder_id) DO UPDATE SET block_at = $3, updated_at = $4, updated_by = $5",
                    )
                    .bind(org.as_str())
                    .bind(&folder_key)
                    .bind(level)
                    .bind(now)
                    .bind(by.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM scan_policies WHERE org_id = $1 AND folder_id = $2")
                        .bind(org.as_str())
                        .bind(&folder_key)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Records a suppression of findings in `app`.
    pub async fn create_suppression(
        &self,
        org: &OrgId,
        app: &AppId,
        new: NewSuppression,
        audit: &AuditCtx,
    ) -> Result<Suppression, StoreError> {
        let resource = self.app_resource(org, app).await?;
        let id = SuppressionId::generate();
        let event = audit.event(
            "app.suppression.create",
            resource,
            serde_json::json!({
                "suppression": id.to_string(),
                "fingerprint": new.fingerprint,
                "rule_id": new.rule_id,
                "path": new.path,
                "reason": new.reason,
                "expires_at": new.expires_at,
            }),
        );
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO scan_suppressions (org_id, id, app_id, fingerprint, rule_id, path, reason, expires_at, created_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(org.as_str())
            .bind(id.as_str())
            .bind(app.as_str())
            .bind(&new.fingerprint)
            .bind(&new.rule_id)
            .bind(&new.path)
            .bind(&new.reason)
            .bind(new.expires_at.as_millis())
            .bind(new.created_by.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_suppression(org, app, &id).await
    }

    /// One suppression.
    pub async fn get_suppression(
        &self,
        org: &OrgId,
        app: &AppId,
        id: &SuppressionId,
    ) -> Result<Suppression, StoreError> {
        let sql = format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM scan_suppressions WHERE org_id = $1 AND app_id = $2 AND id = $3"
        );
        let row: Option<SuppressionRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(app.as_str())
            .bind(id.as_str())
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::not_found("suppression", id.as_str()))?.into_suppression()
    }

    /// Every suppression of `app`, newest first, including expired and revoked ones.
    pub async fn list_suppressions(&self, org: &OrgId, app: &AppId) -> Result<Vec<Suppression>, StoreError> {
        let sql = format!(
            "SELECT {SUPPRESSION_COLUMNS} FROM scan_suppressions WHERE org_id = $1 AND app_id = $2 ORDER BY created_at DESC, id DESC"
        );
        let rows: Vec<SuppressionRow> =
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(app.as_str()).fetch_all(pool).await?);
        rows.into_iter().map(SuppressionRow::into_suppression).collect()
    }

    /// Ends a suppression before its expiry.
    pub async fn revoke_suppression(
        &self,
        org: &OrgId,
        app: &AppId,
        id: &SuppressionId,
        by: &PrincipalId,
        audit: &AuditCtx,
    ) -> Result<Suppression, StoreError> {
        let resource = self.app_resource(org, app).await?;
        let existing = self.get_suppression(org, app, id).await?;
        if existing.revoked_at.is_some() {
            return Err(StoreError::Conflict(format!("suppression `{id}` is already revoked")));
        }
        let event = audit.event(
            "app.suppression.revoke",
            resource,
            serde_json::json!({"suppression": id.to_string(), "fingerprint": existing.fingerprint, "rule_id": existing.rule_id}),
        );
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "UPDATE scan_suppressions SET revoked_at = $1, revoked_by = $2 \
                 WHERE org_id = $3 AND app_id = $4 AND id = $5 AND revoked_at IS NULL",
            )
            .bind(now)
            .bind(by.as_str())
            .bind(org.as_str())
            .bind(app.as_str())
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok::<(), StoreError>(())
        })?;
        self.get_suppression(org, app, id).await
    }
}

/// An organization's review policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewPolicyRow {
    pub policy: String,
    pub require_different_model: bool,
    pub updated_at: Timestamp,
    pub updated_by: PrincipalId,
}

impl Store {
    /// The org's review policy, when it has set one.
    pub async fn review_policy(&self, org: &OrgId) -> Result<Option<ReviewPolicyRow>, StoreError> {
        let row: Option<(String, bool, i64, String)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT policy, require_different_model, updated_at, updated_by FROM review_policies WHERE org_id = $1"
        )
        .bind(org.as_str())
        .fetch_optional(pool)
        .await?);
        row.map(|(policy, require_different_model, at, by)| {
            Ok(ReviewPolicyRow {
                policy,
                require_different_model,
                updated_at: Timestamp::from_millis(at),
                updated_by: parse_col("review_policies.updated_by", &by)?,
            })
        })
        .transpose()
    }

    /// Sets the org's review policy (`None` returns to the server's defaults).
    pub async fn set_review_policy(
        &self,
        org: &OrgId,
        policy: Option<(&str, bool)>,
        by: &PrincipalId,
        audit: &AuditCtx,
    ) -> Result<(), StoreError> {
        let event = audit.event(
            if policy.is_some() { "review.policy.set" } else { "review.policy.clear" },
            crate::resource("org", org.as_str()),
            match policy {
                Some((text, different)) => serde_json::json!({"policy": text, "require_different_model": different}),
                None => serde_json::json!({}),
            },
        );
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            match policy {
                Some((text, different)) => {
                    sqlx::query(
                        "INSERT INTO review_policies (org_id, policy, require_different_model, updated_at, updated_by) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (org_id) DO UPDATE SET policy = $2, \
                         require_different_model = $3, updated_at = $4, updated_by = $5",
                    )
                    .bind(org.as_str())
                    .bind(text)
                    .bind(different)
                    .bind(now)
                    .bind(by.as_str())
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM review_policies WHERE org_id = $1")
                        .bind(org.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
            }
            append_audit!(tx, vec![event])?;
            tx.commit().await?;
            Ok(())
        })
    }
}
