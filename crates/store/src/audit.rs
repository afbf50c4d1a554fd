//! The audit log's storage: per-org hash chains appended inside the transactions of the changes
//! they record, signed checkpoints, search, retention and export cursors.
//!
//! A mutating store method takes an [`AuditCtx`] and appends its record with `append_audit!`
//! before committing, so the change and its record commit together or not at all: a database
//! that refuses the record refuses the change (fail closed), and a change acknowledged to the
//! caller has its record on disk (durable before acknowledged).

use gatehouse_audit::{Checkpoint, GENESIS, chain};
use gatehouse_core::audit::{Actor, ActorKind, ActorRef, AuditDraft, AuditRecord, Outcome, ResourceRef};
use gatehouse_core::{OrgId, Timestamp};

use crate::{Store, StoreError, on_read, on_write};

/// Who is acting and from where: what the store records with every change it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditCtx {
    /// The org whose chain records the events (the actor's org).
    pub org_id: OrgId,
    /// Who.
    pub actor: Actor,
    /// The request's id.
    pub request_id: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    /// The caller's user agent.
    pub user_agent: Option<String>,
}

impl AuditCtx {
    /// Gatehouse itself acting in `org` (bootstrap, background jobs, break-glass on the host).
    pub fn system(org: &OrgId, name: &str) -> Self {
        Self {
            org_id: org.clone(),
            actor: Actor {
                who: ActorRef { kind: ActorKind::Service, id: "gatehouse".to_owned(), name: name.to_owned() },
                on_behalf_of: Vec::new(),
            },
            request_id: None,
            source: None,
            user_agent: None,
        }
    }

    /// A successful event by this actor.
    pub fn event(&self, action: &str, resource: ResourceRef, details: serde_json::Value) -> AuditDraft {
        AuditDraft {
            org_id: self.org_id.clone(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            resource,
            outcome: Outcome::Success,
            reason: None,
            request_id: self.request_id.clone(),
            source: self.source.clone(),
            user_agent: self.user_agent.clone(),
            details,
        }
    }
}

/// A resource reference with no folder path.
pub fn resource(kind: &str, id: impl Into<String>) -> ResourceRef {
    ResourceRef { kind: kind.to_owned(), id: id.into(), path: None }
}

pub(crate) const GENESIS_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Reserves `n` sequence numbers in the head row (locking it until commit) and returns the new
/// last sequence number and the previous head hash. On insert the head starts at genesis.
pub(crate) const RESERVE_SQL: &str = "INSERT INTO audit_heads (org_id, seq, hash) VALUES ($1, $2, $3) \
     ON CONFLICT (org_id) DO UPDATE SET seq = audit_heads.seq + $2 RETURNING seq, hash";

/// Rows per multi-row INSERT: 11 parameters each, well under both engines' limits.
pub(crate) const INSERT_CHUNK: usize = 500;

/// Chains `drafts` (all of one org) after `prev`, starting at `first_seq`.
pub(crate) fn prepare(drafts: Vec<AuditDraft>, first_seq: i64, prev: &str) -> Result<Vec<AuditRecord>, StoreError> {
    let mut prev = gatehouse_audit::parse_hash(prev)
        .ok_or_else(|| StoreError::Corrupt("audit head hash is not 32 hex bytes".to_owned()))?;
    let now = Timestamp::now();
    let mut out = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.into_iter().enumerate() {
        let record = chain(draft, first_seq as u64 + i as u64, now, &prev);
        prev = gatehouse_audit::parse_hash(&record.hash).unwrap_or(GENESIS);
        out.push(record);
    }
    Ok(out)
}

/// Appends the drafts (of one org, at least one) to its chain inside transaction `$tx`, and
/// evaluates to the chained records. Any failure is `StoreError::AuditUnavailable`, which the
/// caller's `?` turns into a rollback of the whole transaction.
macro_rules! append_audit {
    ($tx:ident, $drafts:expr) => {{
        let drafts: Vec<gatehouse_core::audit::AuditDraft> = $drafts;
        async {
            let Some(first) = drafts.first() else { return Ok(Vec::new()) };
            let org = first.org_id.clone();
            let n = drafts.len() as i64;
            let (last, prev): (i64, String) = sqlx::query_as($crate::audit::RESERVE_SQL)
                .bind(org.as_str())
                .bind(n)
                .bind($crate::audit::GENESIS_HEX)
                .fetch_one(&mut *$tx)
                .await
                .map_err($crate::StoreError::audit)?;
            let records = $crate::audit::prepare(drafts, last - n + 1, &prev)?;
            for chunk in records.chunks($crate::audit::INSERT_CHUNK) {
                let mut qb = sqlx::QueryBuilder::new(
                    "INSERT INTO audit_events (org_id, seq, time, action, outcome, actor_id, actor_name, \
                     resource_kind, resource_id, record, hash) ",
                );
                qb.push_values(chunk, |mut b, r| {
                    b.push_bind(r.draft.org_id.as_str().to_owned())
                        .push_bind(r.seq as i64)
                        .push_bind(r.time.as_millis())
                        .push_bind(r.draft.action.clone())
                        .push_bind(r.draft.outcome.as_str())
                        .push_bind(r.draft.actor.who.id.clone())
                        .push_bind(r.draft.actor.who.name.clone())
                        .push_bind(r.draft.resource.kind.clone())
                        .push_bind(r.draft.resource.id.clone())
                        .push_bind(serde_json::to_string(r).unwrap_or_default())
                        .push_bind(r.hash.clone());
                });
                qb.build().execute(&mut *$tx).await.map_err($crate::StoreError::audit)?;
            }
            let head = records.last().map(|r| r.hash.clone()).unwrap_or_default();
            sqlx::query("UPDATE audit_heads SET hash = $1 WHERE org_id = $2")
                .bind(head)
                .bind(org.as_str())
                .execute(&mut *$tx)
                .await
                .map_err($crate::StoreError::audit)?;
            Ok::<_, $crate::StoreError>(records)
        }
        .await
    }};
}

pub(crate) use append_audit;

/// Where an org's chain stands.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChainHead {
    /// The last sequence number (0 when empty).
    pub seq: u64,
    /// Its hash (zeros when empty).
    pub hash: String,
    /// Records up to this were removed by retention.
    pub anchor_seq: u64,
    /// The hash of record `anchor_seq` (zeros when nothing was removed).
    pub anchor_hash: String,
    /// The last record covered by a checkpoint.
    pub checkpointed_seq: u64,
}

/// Filters for searching an org's audit log; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Recorded at or after.
    pub since: Option<Timestamp>,
    /// Recorded before.
    pub until: Option<Timestamp>,
    /// Actor id or name.
    pub actor: Option<String>,
    /// Action, or a prefix ending in `.` (`app.` matches `app.create`).
    pub action: Option<String>,
    /// Resource id.
    pub resource: Option<String>,
    /// Outcome.
    pub outcome: Option<Outcome>,
    /// Only records after this sequence number.
    pub after_seq: Option<u64>,
    /// Most records to return (clamped to 1..=1000).
    pub limit: i64,
}

/// One SIEM export's position and health.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExportState {
    /// The sink's name.
    pub sink: String,
    /// The last sequence number delivered.
    pub seq: u64,
    /// When a delivery last succeeded.
    pub last_success_at: Option<Timestamp>,
    /// The last delivery error, cleared by the next success.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<Timestamp>,
}

fn parse_record(json: &str) -> Result<AuditRecord, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("audit record is not readable: {e}")))
}

#[derive(sqlx::FromRow)]
struct ExportRow {
    seq: i64,
    last_success_at: Option<i64>,
    last_error: Option<String>,
    last_error_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct CheckpointRow {
    org_id: String,
    first_seq: i64,
    last_seq: i64,
    head_hash: String,
    merkle_root: String,
    time: i64,
    key_id: String,
    signature: String,
}

impl CheckpointRow {
    fn into_checkpoint(self) -> Result<Checkpoint, StoreError> {
        Ok(Checkpoint {
            org_id: crate::parse_col("audit_checkpoints.org_id", &self.org_id)?,
            first_seq: self.first_seq as u64,
            last_seq: self.last_seq as u64,
            head_hash: self.head_hash,
            merkle_root: self.merkle_root,
            time: Timestamp::from_millis(self.time),
            key_id: self.key_id,
            signature: self.signature,
        })
    }
}

impl Store {
    /// Appends events that accompany no change of their own (denials, failures, app events),
    /// in one transaction per org; returns once they are durable.
    pub async fn append_audit(&self, drafts: Vec<AuditDraft>) -> Result<Vec<AuditRecord>, StoreError> {
        let mut by_org: Vec<(OrgId, Vec<AuditDraft>)> = Vec::new();
        for d in drafts {
            match by_org.iter_mut().find(|(o, _)| *o == d.org_id) {
                Some((_, v)) => v.push(d),
                None => by_org.push((d.org_id.clone(), vec![d])),
            }
        }
        let mut out = Vec::new();
        for (_, drafts) in by_org {
            let records = on_write!(self, |pool| {
                let mut tx = pool.begin().await.map_err(StoreError::audit)?;
                let records = append_audit!(tx, drafts)?;
                tx.commit().await.map_err(StoreError::audit)?;
                records
            });
            out.extend(records);
        }
        Ok(out)
    }

    /// Where `org`'s chain stands.
    pub async fn audit_head(&self, org: &OrgId) -> Result<ChainHead, StoreError> {
        let row: Option<(i64, String, i64, String)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT seq, hash, anchor_seq, anchor_hash FROM audit_heads WHERE org_id = $1"
        )
        .bind(org.as_str())
        .fetch_optional(pool)
        .await?);
        let checkpointed: Option<i64> =
            on_read!(self, |pool| sqlx::query_scalar("SELECT MAX(last_seq) FROM audit_checkpoints WHERE org_id = $1")
                .bind(org.as_str())
                .fetch_one(pool)
                .await?);
        let (seq, hash, anchor_seq, anchor_hash) =
            row.unwrap_or((0, GENESIS_HEX.to_owned(), 0, GENESIS_HEX.to_owned()));
        Ok(ChainHead {
            seq: seq as u64,
            hash,
            anchor_seq: anchor_seq as u64,
            anchor_hash,
            checkpointed_seq: checkpointed.unwrap_or(0) as u64,
        })
    }

    /// Records `from..=to` of `org`'s chain, ascending, at most `limit`.
    pub async fn audit_range(
        &self,
        org: &OrgId,
        from: u64,
        to: u64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows: Vec<String> = on_read!(self, |pool| sqlx::query_scalar(
            "SELECT record FROM audit_events WHERE org_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq LIMIT $4"
        )
        .bind(org.as_str())
        .bind(from as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        rows.iter().map(|r| parse_record(r)).collect()
    }

    /// The record hashes `from..=to` of `org`, ascending, as stored (for checkpointing).
    pub async fn audit_hashes(&self, org: &OrgId, from: u64, to: u64) -> Result<Vec<(u64, String)>, StoreError> {
        let rows: Vec<(i64, String)> = on_read!(self, |pool| sqlx::query_as(
            "SELECT seq, hash FROM audit_events WHERE org_id = $1 AND seq >= $2 AND seq <= $3 ORDER BY seq"
        )
        .bind(org.as_str())
        .bind(from as i64)
        .bind(to as i64)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|(seq, h)| (seq as u64, h)).collect())
    }

    /// Searches `org`'s log, oldest first.
    pub async fn search_audit(&self, org: &OrgId, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let (prefix, exact) = match &f.action {
            Some(a) if a.ends_with('.') => (Some(format!("{}%", a.replace('%', "").replace('_', "\\_"))), None),
            Some(a) => (None, Some(a.clone())),
            None => (None, None),
        };
        let sql = "SELECT record FROM audit_events WHERE org_id = $1 \
             AND ($2 IS NULL OR time >= $2) AND ($3 IS NULL OR time < $3) \
             AND ($4 IS NULL OR actor_id = $4 OR actor_name = $4) \
             AND ($5 IS NULL OR action LIKE $5 ESCAPE '\\') AND ($6 IS NULL OR action = $6) \
             AND ($7 IS NULL OR resource_id = $7) AND ($8 IS NULL OR outcome = $8) \
             AND seq > $9 ORDER BY seq LIMIT $10";
        let rows: Vec<String> = on_read!(self, |pool| sqlx::query_scalar(sql)
            .bind(org.as_str())
            .bind(f.since.map(|t| t.as_millis()))
            .bind(f.until.map(|t| t.as_millis()))
            .bind(f.actor.clone())
            .bind(prefix.clone())
            .bind(exact.clone())
            .bind(f.resource.clone())
            .bind(f.outcome.map(Outcome::as_str))
            .bind(f.after_seq.unwrap_or(0) as i64)
            .bind(f.limit.clamp(1, 1000))
            .fetch_all(pool)
            .await?);
        rows.iter().map(|r| parse_record(r)).collect()
    }

    /// Stores a checkpoint.
    pub async fn insert_checkpoint(&self, cp: &Checkpoint) -> Result<(), StoreError> {
        on_write!(self, |pool| {
            sqlx::query(
            "INSERT INTO audit_checkpoints (org_id, first_seq, last_seq, head_hash, merkle_root, time, key_id, signature) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (org_id, last_seq) DO NOTHING"
        )
        .bind(cp.org_id.as_str())
        .bind(cp.first_seq as i64)
        .bind(cp.last_seq as i64)
        .bind(&cp.head_hash)
        .bind(&cp.merkle_root)
        .bind(cp.time.as_millis())
        .bind(&cp.key_id)
        .bind(&cp.signature)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Checkpoints of `org` ending at or after `from`, ascending.
    pub async fn audit_checkpoints(&self, org: &OrgId, from: u64, to: u64) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<CheckpointRow> = on_read!(self, |pool| sqlx::query_as(
            "SELECT org_id, first_seq, last_seq, head_hash, merkle_root, time, key_id, signature \
             FROM audit_checkpoints WHERE org_id = $1 AND last_seq >= $2 AND first_seq <= $3 ORDER BY last_seq"
        )
        .bind(org.as_str())
        .bind(from as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(pool)
        .await?);
        rows.into_iter().map(CheckpointRow::into_checkpoint).collect()
    }

    /// Orgs whose chain has records past their last checkpoint: (org, first unsigned seq, head seq).
    pub async fn audit_unsigned(&self) -> Result<Vec<(OrgId, u64, u64)>, StoreError> {
        let rows: Vec<(String, i64, Option<i64>, i64)> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT h.org_id, h.seq, (SELECT MAX(last_seq) FROM audit_checkpoints c WHERE c.org_id = h.org_id), h.anchor_seq \
             FROM audit_heads h"
        )
        .fetch_all(pool)
        .await?
        });
        let mut out = Vec::new();
        for (org, seq, cp, anchor) in rows {
            let signed = cp.unwrap_or(0).max(anchor);
            if seq > signed {
                out.push((crate::parse_col("audit_heads.org_id", &org)?, signed as u64 + 1, seq as u64));
            }
        }
        Ok(out)
    }

    /// Removes every org's records older than `cutoff`, up to the newest checkpoint that lies
    /// wholly before it; that checkpoint stays as the anchor the retained chain is verified from.
    /// On PostgreSQL, monthly partitions holding only removable records are dropped whole; the
    /// rest is deleted row by row. Returns how many records were removed.
    pub async fn prune_audit(&self, cutoff: Timestamp) -> Result<u64, StoreError> {
        // First move every org's anchor, so the partitions below it can go in one step.
        for org in self.audit_orgs().await? {
            let anchor: Option<(i64, String)> = on_read!(self, |pool| sqlx::query_as(
                "SELECT c.last_seq, c.head_hash FROM audit_checkpoints c JOIN audit_events e \
                 ON e.org_id = c.org_id AND e.seq = c.last_seq \
                 WHERE c.org_id = $1 AND e.time < $2 ORDER BY c.last_seq DESC LIMIT 1"
            )
            .bind(org.as_str())
            .bind(cutoff.as_millis())
            .fetch_optional(pool)
            .await?);
            if let Some((seq, hash)) = anchor {
                on_write!(self, |pool| sqlx::query(
                    "UPDATE audit_heads SET anchor_seq = $1, anchor_hash = $2 WHERE org_id = $3 AND anchor_seq < $1"
                )
                .bind(seq)
                .bind(&hash)
                .bind(org.as_str())
                .execute(pool)
                .await
                .map(|_| ()))?;
            }
        }
        let mut removed = 0u64;
        if let crate::Backend::Postgres(pool) = &*self.backend {
            let dropped: i64 = sqlx::query_scalar("SELECT gatehouse_audit_drop_pruned($1)")
                .bind(cutoff.as_millis())
                .fetch_one(pool)
                .await?;
            removed += dropped as u64;
        }
        let heads: Vec<(String, i64)> =
            on_read!(self, |pool| sqlx::query_as("SELECT org_id, anchor_seq FROM audit_heads WHERE anchor_seq > 0")
                .fetch_all(pool)
                .await?);
        for (org, anchor) in heads {
            removed += on_write!(self, |pool| {
                let mut tx = pool.begin().await?;
                let n = sqlx::query("DELETE FROM audit_events WHERE org_id = $1 AND seq <= $2")
                    .bind(&org)
                    .bind(anchor)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("DELETE FROM audit_checkpoints WHERE org_id = $1 AND last_seq < $2")
                    .bind(&org)
                    .bind(anchor)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                n
            });
        }
        Ok(removed)
    }

    /// Keeps the audit table's monthly partitions created `months` ahead (PostgreSQL; SQLite has
    /// no partitions).
    pub async fn audit_partitions_ahead(&self, months: i32) -> Result<(), StoreError> {
        if let crate::Backend::Postgres(pool) = &*self.backend {
            sqlx::query("SELECT gatehouse_audit_partitions_ahead($1)").bind(months).execute(pool).await?;
        }
        Ok(())
    }

    /// Orgs that have an audit chain.
    pub async fn audit_orgs(&self) -> Result<Vec<OrgId>, StoreError> {
        let rows: Vec<String> =
            on_read!(self, |pool| sqlx::query_scalar("SELECT org_id FROM audit_heads ORDER BY org_id")
                .fetch_all(pool)
                .await?);
        rows.iter().map(|o| crate::parse_col("audit_heads.org_id", o)).collect()
    }

    /// Where export `sink` of `org` stands (sequence 0 when it never ran).
    pub async fn export_state(&self, org: &OrgId, sink: &str) -> Result<ExportState, StoreError> {
        let row: Option<ExportRow> = on_read!(self, |pool| {
            sqlx::query_as(
            "SELECT seq, last_success_at, last_error, last_error_at FROM audit_exports WHERE org_id = $1 AND sink = $2"
        )
        .bind(org.as_str())
        .bind(sink)
        .fetch_optional(pool)
        .await?
        });
        let row = row.unwrap_or(ExportRow { seq: 0, last_success_at: None, last_error: None, last_error_at: None });
        Ok(ExportState {
            sink: sink.to_owned(),
            seq: row.seq as u64,
            last_success_at: row.last_success_at.map(Timestamp::from_millis),
            last_error: row.last_error,
            last_error_at: row.last_error_at.map(Timestamp::from_millis),
        })
    }

    /// Records that `sink` delivered `org`'s records up to `seq`; the cursor never moves back.
    pub async fn export_delivered(&self, org: &OrgId, sink: &str, seq: u64) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| {
            sqlx::query(
            "INSERT INTO audit_exports (org_id, sink, seq, last_success_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (org_id, sink) DO UPDATE SET seq = CASE WHEN audit_exports.seq > $3 THEN audit_exports.seq ELSE $3 END, \
             last_success_at = $4, last_error = NULL"
        )
        .bind(org.as_str())
        .bind(sink)
        .bind(seq as i64)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
        })?;
        Ok(())
    }

    /// Records a failed delivery attempt of `sink`.
    pub async fn export_failed(&self, org: &OrgId, sink: &str, error: &str) -> Result<(), StoreError> {
        let now = Timestamp::now().as_millis();
        on_write!(self, |pool| sqlx::query(
            "INSERT INTO audit_exports (org_id, sink, seq, last_error, last_error_at) VALUES ($1, $2, 0, $3, $4) \
             ON CONFLICT (org_id, sink) DO UPDATE SET last_error = $3, last_error_at = $4"
        )
        .bind(org.as_str())
        .bind(sink)
        .bind(error)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}

#[cfg(feature = "testsuite")]
impl Store {
    /// Runs raw SQL as an attacker with database access would (triggers can be dropped first).
    pub async fn raw_sql_for_test(&self, sql: &str) -> Result<u64, StoreError> {
        Ok(on_write!(self, |pool| sqlx::raw_sql(sql).execute(pool).await?.rows_affected()))
    }
}
