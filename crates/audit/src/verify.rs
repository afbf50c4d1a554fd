//! Verification of a range of records and the checkpoints over it: from the database, or from
//! an exported file with only the public key.

use ed25519_dalek::VerifyingKey;
use gatehouse_core::audit::AuditRecord;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::record::{parse_hash as decode, record_hash};
use crate::{Hash, merkle};

/// What is wrong at the first bad place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TamperKind {
    /// A record's content does not match its hash (a changed byte).
    Altered,
    /// A record's `prev_hash` does not match the record before it (inserted, replaced or reordered).
    BrokenLink,
    /// A sequence number is missing (deleted records, truncated middle) or out of order.
    Gap,
    /// A checkpoint's signature is not valid under the given key.
    ForgedCheckpoint,
    /// A validly signed checkpoint disagrees with the records it covers.
    CheckpointMismatch,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("audit chain broken at sequence {seq}: {kind:?}: {detail}")]
pub struct Tamper {
    /// The first bad sequence number.
    pub seq: u64,
    /// What is wrong there.
    pub kind: TamperKind,
    /// Details for the investigator.
    pub detail: String,
}

/// What a successful verification covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// First sequence number checked.
    pub first_seq: u64,
    /// Last sequence number checked.
    pub last_seq: u64,
    /// Records checked.
    pub records: u64,
    /// Checkpoints whose signature and Merkle root were checked.
    pub checkpoints: u64,
    /// Records after the last checkpoint: chained, but not yet signed.
    pub unsigned_tail: u64,
}

fn tamper(seq: u64, kind: TamperKind, detail: impl Into<String>) -> Tamper {
    Tamper { seq, kind, detail: detail.into() }
}

/// Verifies a chain as it streams past, in bounded memory: feed records in sequence order and
/// each checkpoint after the record it ends at. Used for the database (page by page) and for
/// exported files alike.
pub struct Verifier<'k> {
    key: &'k VerifyingKey,
    prev: Hash,
    /// The sequence number the next record must carry (`None` until the first record).
    next_seq: Option<u64>,
    first_seq: u64,
    records: u64,
    checkpoints: u64,
    signed_up_to: u64,
    /// Hashes of records since `base_seq`, kept until a checkpoint covers them.
    pending: Vec<Hash>,
    base_seq: u64,
    org: Option<gatehouse_core::OrgId>,
}

impl<'k> Verifier<'k> {
    /// A verifier whose first record follows a record with hash `anchor` ([`crate::GENESIS`]
    /// from the start of the chain, or the retained anchor after pruning).
    pub fn new(key: &'k VerifyingKey, anchor: &Hash) -> Self {
        Self {
            key,
            prev: *anchor,
            next_seq: None,
            first_seq: 0,
            records: 0,
            checkpoints: 0,
            signed_up_to: 0,
            pending: Vec::new(),
            base_seq: 0,
            org: None,
        }
    }

    /// Demands that the first record be `seq` (so a deleted first record is a gap, not a new start).
    pub fn expect_first(&mut self, seq: u64) {
        if self.next_seq.is_none() {
            self.next_seq = Some(seq);
            self.first_seq = seq;
            self.base_seq = seq;
            self.signed_up_to = seq.saturating_sub(1);
        }
    }

    /// The sequence number the next record must carry, once known.
    pub fn next_seq(&self) -> Option<u64> {
        self.next_seq
    }

    /// Checks the next record.
    pub fn record(&mut self, r: &AuditRecord) -> Result<(), Tamper> {
        let expected = match self.next_seq {
            Some(n) => n,
            None => {
                self.expect_first(r.seq);
                r.seq
            }
        };
        if r.seq != expected {
            return Err(tamper(expected, TamperKind::Gap, format!("expected sequence {expected}, found {}", r.seq)));
        }
        match &self.org {
            Some(o) if *o != r.draft.org_id => {
                return Err(tamper(r.seq, TamperKind::BrokenLink, "record belongs to another organization"));
            }
            Some(_) => {}
            None => self.org = Some(r.draft.org_id.clone()),
        }
        if decode(&r.prev_hash) != Some(self.prev) {
            return Err(tamper(r.seq, TamperKind::BrokenLink, "prev_hash does not match the previous record"));
        }
        let computed = record_hash(r, &self.prev);
        if decode(&r.hash) != Some(computed) {
            return Err(tamper(r.seq, TamperKind::Altered, "content does not match the record's hash"));
        }
        self.pending.push(computed);
        self.prev = computed;
        self.records += 1;
        self.next_seq = Some(expected.saturating_add(1));
        Ok(())
    }

    /// Checks a checkpoint. Its signature is always checked; its head when its last record has
    /// been seen; its Merkle root when every record it covers has been seen.
    pub fn checkpoint(&mut self, cp: &Checkpoint) -> Result<(), Tamper> {
        if !cp.signature_valid(self.key) {
            return Err(tamper(
                cp.first_seq.max(self.first_seq),
                TamperKind::ForgedCheckpoint,
                format!(
                    "checkpoint {}..={} is not signed by key {}",
                    cp.first_seq,
                    cp.last_seq,
                    crate::checkpoint::key_id(self.key)
                ),
            ));
        }
        let Some(next) = self.next_seq else { return Ok(()) };
        if cp.last_seq >= next || cp.first_seq > cp.last_seq {
            // Covers records not seen (yet): only its signature could be checked.
            return Ok(());
        }
        if cp.last_seq < self.base_seq {
            return Ok(());
        }
        let hi = (cp.last_seq - self.base_seq) as usize;
        if cp.first_seq >= self.base_seq {
            let lo = (cp.first_seq - self.base_seq) as usize;
            if hex::encode(merkle::root(&self.pending[lo..=hi])) != cp.merkle_root {
                // The root cannot say which leaf changed; the fault lies within this checkpoint.
                return Err(tamper(
                    cp.first_seq,
                    TamperKind::CheckpointMismatch,
                    format!("records {}..={} differ from the signed Merkle root", cp.first_seq, cp.last_seq),
                ));
            }
        }
        if hex::encode(self.pending[hi]) != cp.head_hash {
            return Err(tamper(cp.last_seq, TamperKind::CheckpointMismatch, "chain head differs from the signed head"));
        }
        self.checkpoints += 1;
        self.signed_up_to = self.signed_up_to.max(cp.last_seq);
        // Records up to this checkpoint are settled; later checkpoints start after it.
        self.pending.drain(..=hi);
        self.base_seq = cp.last_seq + 1;
        Ok(())
    }

    /// What was verified.
    pub fn finish(self) -> VerifyReport {
        let last_seq = self.next_seq.map(|n| n.saturating_sub(1)).unwrap_or(0);
        VerifyReport {
            first_seq: if self.records == 0 { 0 } else { self.first_seq },
            last_seq: if self.records == 0 { 0 } else { last_seq },
            records: self.records,
            checkpoints: self.checkpoints,
            unsigned_tail: if self.records == 0 { 0 } else { last_seq.saturating_sub(self.signed_up_to) },
        }
    }
}

/// Verifies `records` (ascending, contiguous, of one org) whose first record follows a record
/// with hash `anchor` (use [`crate::GENESIS`] from the start of the chain, or the head of the
/// retained checkpoint after pruning), and every checkpoint touching the range.
pub fn verify(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
    anchor: &Hash,
) -> Result<VerifyReport, Tamper> {
    let mut v = Verifier::new(key, anchor);
    let mut cps: Vec<&Checkpoint> = checkpoints.iter().collect();
    cps.sort_by_key(|c| c.last_seq);
    let mut cps = cps.into_iter().peekable();
    // Checkpoints ending before the first record: signature only.
    let start = records.first().map(|r| r.seq).unwrap_or(0);
    while let Some(cp) = cps.next_if(|c| c.last_seq < start) {
        if cp.last_seq + 1 >= start {
            v.checkpoint(cp)?;
        }
    }
    for r in records {
        v.record(r)?;
        while let Some(cp) = cps.next_if(|c| c.last_seq <= r.seq) {
            v.checkpoint(cp)?;
        }
    }
    for cp in cps {
        if cp.first_seq <= v.next_seq().unwrap_or(0) {
            v.checkpoint(cp)?;
        }
    }
    Ok(v.finish())
}

#[cfg(test)]
mod tests;
