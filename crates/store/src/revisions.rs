//! Immutable, content-addressed revisions of apps and the archives behind them.

use gatehouse_core::{AppId, AppStatus, OrgId, PrincipalId, Provenance, Revision, Timestamp};

use crate::{AuditCtx, Store, StoreError, append_audit, on_read, on_write, parse_col};

/// A revision to store.
#[derive(Debug, Clone)]
pub struct NewRevision {
    /// SHA-256 (hex) of the canonical archive.
    pub digest: String,
    /// The canonical archive, gzip-compressed.
    pub archive: Vec<u8>,
    /// The parent the client names; the app's latest revision when `None`.
    pub parent: Option<String>,
    /// Who pushes it.
    pub author_id: PrincipalId,
    /// AI provenance as reported by the client.
    pub provenance: Provenance,
    /// Message from the pusher.
    pub message: Option<String>,
    /// Number of entries.
    pub file_count: i64,
    /// Bytes of content.
    pub content_bytes: i64,
    /// The validated manifest.
    pub manifest: serde_json::Value,
}

/// The result of a push: the revision, and whether it was new.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The stored revision.
    pub revision: Revision,
    /// False when identical content had been pushed to this app before.
    pub created: bool,
}

#[derive(sqlx::FromRow)]
struct RevisionRow {
    app_id: String,
    digest: String,
    number: i64,
    parent_digest: Option<String>,
    author_id: String,
    author_name: Option<String>,
    created_at: i64,
    ai_agent: Option<String>,
    ai_model: Option<String>,
    ai_prompt_ids: String,
    message: Option<String>,
    file_count: i64,
    content_bytes: i64,
    archive_bytes: i64,
    manifest: String,
}

impl RevisionRow {
    fn into_revision(self) -> Result<Revision, StoreError> {
        fn json<T: serde::de::DeserializeOwned>(col: &'static str, s: &str) -> Result<T, StoreError> {
            serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("column `{col}`: {e}")))
        }
        Ok(Revision {
            app_id: parse_col("revisions.app_id", &self.app_id)?,
            digest: self.digest,
            number: self.number,
            parent: self.parent_digest,
            author_id: parse_col("revisions.author_id", &self.author_id)?,
            author_name: self.author_name.unwrap_or_default(),
            created_at: Timestamp::from_millis(self.created_at),
            provenance: Provenance {
                agent: self.ai_agent,
                model: self.ai_model,
                prompt_ids: json("revisions.ai_prompt_ids", &self.ai_prompt_ids)?,
            },
            message: self.message,
            file_count: self.file_count,
            content_bytes: self.content_bytes,
            archive_bytes: self.archive_bytes,
            manifest: json("revisions.manifest", &self.manifest)?,
        })
    }
}

const REVISION_COLUMNS: &str = "app_id, digest, number, parent_digest, author_id, created_at, ai_agent, ai_model, \
                                ai_prompt_ids, message, file_count, content_bytes, archive_bytes, manifest, \
                                (SELECT p.name FROM principals p WHERE p.org_id = revisions.org_id AND p.id = revisions.author_id) AS author_name";

/// Shortest digest prefix accepted as a revision reference.
pub const MIN_PREFIX: usize = 7;

impl Store {
    /// Stores a revision of `app`. Pushing content the app already has returns the existing
    /// revision unchanged.
    pub async fn push_revision(
        &self,
        org: &OrgId,
        app: &AppId,
        new: NewRevision,
        audit: &AuditCtx,
    ) -> Result<PushOutcome, StoreError> {
        let is_pg = self.is_postgres();
        let current = self.get_app(org, app).await?;
        let folder = self.get_folder(org, &current.folder_id).await?;
        let resource = crate::apps::app_ref(&current, &folder.path);
        let event = |created: bool, number: Option<i64>| {
            audit.event(
                "app.revision.push",
                resource.clone(),
                serde_json::json!({
                    "digest": new.digest,
                    "number": number,
                    "created": created,
                    "files": new.file_count,
                    "archive_bytes": new.archive.len(),
                    "ai_agent": new.provenance.agent,
                    "ai_model": new.provenance.model,
                }),
            )
        };
        let select_one =
            format!("SELECT {REVISION_COLUMNS} FROM revisions WHERE org_id = $1 AND app_id = $2 AND digest = $3");
        let prompt_ids = serde_json::to_string(&new.provenance.prompt_ids)
            .map_err(|e| StoreError::Invalid(format!("prompt ids: {e}")))?;
        let manifest =
            serde_json::to_string(&new.manifest).map_err(|e| StoreError::Invalid(format!("manifest: {e}")))?;
        let now = Timestamp::now();
        let created = on_write!(self, |pool| {
            let mut tx = pool.begin().await?;
            let lock = if is_pg {
                "SELECT status, head_revision FROM apps WHERE org_id = $1 AND id = $2 FOR UPDATE"
            } else {
                "SELECT status, head_revision FROM apps WHERE org_id = $1 AND id = $2"
            };
            let app_row: Option<(String, Option<String>)> =
                sqlx::query_as(lock).bind(org.as_str()).bind(app.as_str()).fetch_optional(&mut *tx).await?;
            let (status, head) = app_row.ok_or_else(|| StoreError::not_found("app", app.as_str()))?;
            if AppStatus::parse(&status) != Some(AppStatus::Active) {
                return Err(StoreError::Invalid("the app is archived; reactivate it before pushing".to_owned()));
            }
            let existing: Option<RevisionRow> = sqlx::query_as(&select_one)
                .bind(org.as_str())
                .bind(app.as_str())
                .bind(&new.digest)
                .fetch_optional(&mut *tx)
                .await?;
            if existing.is_some() {
                append_audit!(tx, vec![event(false, None)])?;
                tx.commit().await?;
                false
            } else {
                let parent = match &new.parent {
                    Some(p) => {
                        let found: Option<String> = sqlx::query_scalar(
                            "SELECT digest FROM revisions WHERE org_id = $1 AND app_id = $2 AND digest = $3",
                        )
                        .bind(org.as_str())
                        .bind(app.as_str())
                        .bind(p)
                        .fetch_optional(&mut *tx)
                        .await?;
                        Some(found.ok_or_else(|| {
                            StoreError::Invalid(format!("parent revision `{p}` is not a revision of this app"))
                        })?)
                    }
                    None => head,
                };
                let number: i64 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(number), 0) + 1 FROM revisions WHERE org_id = $1 AND app_id = $2",
                )
                .bind(org.as_str())
                .bind(app.as_str())
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO blobs (org_id, digest, size, data, created_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (org_id, digest) DO NOTHING",
                )
                .bind(org.as_str())
                .bind(&new.digest)
                .bind(new.archive.len() as i64)
                .bind(&new.archive)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO revisions (org_id, app_id, digest, number, parent_digest, author_id, created_at, ai_agent, ai_model, \
                     ai_prompt_ids, message, file_count, content_bytes, archive_bytes, manifest) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(org.as_str())
                .bind(app.as_str())
                .bind(&new.digest)
                .bind(number)
                .bind(&parent)
                .bind(new.author_id.as_str())
                .bind(now.as_millis())
                .bind(&new.provenance.agent)
                .bind(&new.provenance.model)
                .bind(&prompt_ids)
                .bind(&new.message)
                .bind(new.file_count)
                .bind(new.content_bytes)
                .bind(new.archive.len() as i64)
                .bind(&manifest)
                .execute(&mut *tx)
                .await?;
                // The revision's scan is queued in the same transaction: no revision without one.
                sqlx::query(
                    "INSERT INTO scans (org_id, app_id, digest, status, queued_at) VALUES ($1, $2, $3, 'queued', $4)",
                )
                .bind(org.as_str())
                .bind(app.as_str())
                .bind(&new.digest)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE apps SET head_revision = $1, updated_at = $2 WHERE org_id = $3 AND id = $4")
                    .bind(&new.digest)
                    .bind(now.as_millis())
                    .bind(org.as_str())
                    .bind(app.as_str())
                    .execute(&mut *tx)
                    .await?;
                append_audit!(tx, vec![event(true, Some(number))])?;
                tx.commit().await?;
                true
            }
        });
        let revision = self.get_revision(org, app, &new.digest).await?;
        Ok(PushOutcome { revision, created })
    }

    /// Revisions of `app`, newest first; `before` pages by revision number.
    pub async fn list_revisions(
        &self,
        org: &OrgId,
        app: &AppId,
        limit: i64,
        before: Option<i64>,
    ) -> Result<Vec<Revision>, StoreError> {
        let sql = format!(
            "SELECT {REVISION_COLUMNS} FROM revisions WHERE org_id = $1 AND app_id = $2 AND number < $3 \
             ORDER BY number DESC LIMIT $4"
        );
        let rows: Vec<RevisionRow> = on_read!(self, |pool| sqlx::query_as(&sql)
            .bind(org.as_str())
            .bind(app.as_str())
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(RevisionRow::into_revision).collect()
    }

    /// A revision of `app` by reference: a full digest, a unique digest prefix of at least
    /// seven hex digits, a revision number, or `head`.
    pub async fn get_revision(&self, org: &OrgId, app: &AppId, reference: &str) -> Result<Revision, StoreError> {
        let reference = reference.trim().to_ascii_lowercase();
        let base = format!("SELECT {REVISION_COLUMNS} FROM revisions WHERE org_id = $1 AND app_id = $2");
        let not_found = || StoreError::not_found("revision", reference.clone());
        let rows: Vec<RevisionRow> = if reference == "head" {
            let sql = format!("{base} ORDER BY number DESC LIMIT 1");
            on_read!(self, |pool| sqlx::query_as(&sql).bind(org.as_str()).bind(app.as_str()).fetch_all(pool).await?)
        } else if reference.len() < MIN_PREFIX && !reference.is_empty() && reference.bytes().all(|b| b.is_ascii_digit())
        {
            let number: i64 = reference.parse().map_err(|_| not_found())?;
            let sql = format!("{base} AND number = $3");
            on_read!(self, |pool| sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(app.as_str())
                .bind(number)
                .fetch_all(pool)
                .await?)
        } else if reference.len() >= MIN_PREFIX
            && reference.len() <= 64
            && reference.bytes().all(|b| b.is_ascii_hexdigit())
        {
            let sql = format!("{base} AND digest LIKE $3 ORDER BY number LIMIT 2");
            let pattern = format!("{reference}%");
            on_read!(self, |pool| sqlx::query_as(&sql)
                .bind(org.as_str())
                .bind(app.as_str())
                .bind(&pattern)
                .fetch_all(pool)
                .await?)
        } else {
            return Err(StoreError::Invalid(format!(
                "`{}` is not a revision reference: use a digest (or a prefix of at least {MIN_PREFIX} hex digits), a revision number, or `head`",
                reference.chars().take(80).collect::<String>()
            )));
        };
        let mut rows = rows.into_iter();
        match (rows.next(), rows.next()) {
            (Some(row), None) => row.into_revision(),
            (Some(_), Some(_)) => {
                Err(StoreError::Invalid(format!("revision prefix `{reference}` is ambiguous; give more digits")))
            }
            (None, _) => Err(not_found()),
        }
    }

    /// The stored archive (canonical tar, gzip-compressed) with `digest` in `org`.
    pub async fn get_archive(&self, org: &OrgId, digest: &str) -> Result<Vec<u8>, StoreError> {
        let data: Option<Vec<u8>> =
            on_read!(self, |pool| sqlx::query_scalar("SELECT data FROM blobs WHERE org_id = $1 AND digest = $2")
                .bind(org.as_str())
                .bind(digest)
                .fetch_optional(pool)
                .await?);
        data.ok_or_else(|| StoreError::not_found("archive", digest))
    }
}

#[cfg(feature = "testsuite")]
impl Store {
    /// Tries to rewrite a stored revision, which the schema must refuse.
    pub async fn tamper_with_revision_for_test(
        &self,
        org: &OrgId,
        app: &AppId,
        digest: &str,
    ) -> Result<(), StoreError> {
        on_write!(self, |pool| sqlx::query(
            "UPDATE revisions SET message = 'tampered' WHERE org_id = $1 AND app_id = $2 AND digest = $3"
        )
        .bind(org.as_str())
        .bind(app.as_str())
        .bind(digest)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
