//! Verification of a range of records and the checkpoints over it: from the database, or from
//! an exported file with only the public key.

use ed25519_dalek::VerifyingKey;
use gatehouse_core::audit::AuditRecord;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::record::{decode, record_hash};
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

/// Verifies `records` (ascending, contiguous, of one org) whose first record follows a record
/// with hash `anchor` (use [`crate::GENESIS`] from the start of the chain, or the head of the
/// retained checkpoint after pruning), and every checkpoint falling inside the range.
pub fn verify(
    records: &[AuditRecord],
    checkpoints: &[Checkpoint],
    key: &VerifyingKey,
    anchor: &Hash,
) -> Result<VerifyReport, Tamper> {
    let Some(first) = records.first() else {
        return Ok(VerifyReport { first_seq: 0, last_seq: 0, records: 0, checkpoints: 0, unsigned_tail: 0 });
    };
    let mut prev = *anchor;
    let mut hashes: Vec<Hash> = Vec::with_capacity(records.len());
    for (i, r) in records.iter().enumerate() {
        let expected_seq = first.seq + i as u64;
        if r.seq != expected_seq {
            return Err(tamper(
                expected_seq,
                TamperKind::Gap,
                format!("expected sequence {expected_seq}, found {}", r.seq),
            ));
        }
        if r.draft.org_id != first.draft.org_id {
            return Err(tamper(r.seq, TamperKind::BrokenLink, "record belongs to another organization"));
        }
        if decode(&r.prev_hash) != Some(prev) {
            return Err(tamper(r.seq, TamperKind::BrokenLink, "prev_hash does not match the previous record"));
        }
        let computed = record_hash(r, &prev);
        if decode(&r.hash) != Some(computed) {
            return Err(tamper(r.seq, TamperKind::Altered, "content does not match the record's hash"));
        }
        hashes.push(computed);
        prev = computed;
    }
    let last_seq = first.seq + records.len() as u64 - 1;
    let mut checked = 0;
    let mut signed_up_to = first.seq.saturating_sub(1);
    for cp in checkpoints {
        if cp.last_seq < first.seq || cp.first_seq > last_seq {
            continue;
        }
        if !cp.signature_valid(key) {
            return Err(tamper(
                cp.first_seq.max(first.seq),
                TamperKind::ForgedCheckpoint,
                format!(
                    "checkpoint {}..={} is not signed by key {}",
                    cp.first_seq,
                    cp.last_seq,
                    crate::checkpoint::key_id(key)
                ),
            ));
        }
        if cp.first_seq < first.seq || cp.last_seq > last_seq || cp.first_seq > cp.last_seq {
            // Partly outside the range given: its signature was checked; its root cannot be.
            continue;
        }
        let lo = (cp.first_seq - first.seq) as usize;
        let hi = (cp.last_seq - first.seq) as usize;
        let covered = &hashes[lo..=hi];
        if hex::encode(merkle::root(covered)) != cp.merkle_root {
            // The root cannot say which leaf changed; the fault lies within this checkpoint.
            return Err(tamper(
                cp.first_seq,
                TamperKind::CheckpointMismatch,
                format!("records {}..={} differ from the signed Merkle root", cp.first_seq, cp.last_seq),
            ));
        }
        if hex::encode(covered[covered.len() - 1]) != cp.head_hash {
            return Err(tamper(cp.last_seq, TamperKind::CheckpointMismatch, "chain head differs from the signed head"));
        }
        checked += 1;
        signed_up_to = signed_up_to.max(cp.last_seq);
    }
    Ok(VerifyReport {
        first_seq: first.seq,
        last_seq,
        records: records.len() as u64,
        checkpoints: checked,
        unsigned_tail: last_seq - signed_up_to,
    })
}

#[cfg(test)]
mod tests;
