//! Placing events in the chain and computing record hashes.

use gatehouse_core::Timestamp;
use gatehouse_core::audit::{AuditDraft, AuditRecord};
use sha2::{Digest, Sha256};

use crate::{Hash, canonical};

/// Domain separation for record hashes.
const DOMAIN: &[u8] = b"gatehouse-audit-v1\0";

/// Places `draft` after a record whose hash is `prev`.
pub fn chain(draft: AuditDraft, seq: u64, time: Timestamp, prev: &Hash) -> AuditRecord {
    let mut record = AuditRecord { seq, time, draft, prev_hash: hex::encode(prev), hash: String::new() };
    record.hash = hex::encode(record_hash(&record, prev));
    record
}

/// The hash `record` should carry, given the previous record's hash:
/// `SHA-256("gatehouse-audit-v1\0" ‖ prev ‖ canonical JSON of the record without its hashes)`.
pub fn record_hash(record: &AuditRecord, prev: &Hash) -> Hash {
    let mut body = serde_json::to_value(record).unwrap_or_default();
    if let Some(map) = body.as_object_mut() {
        map.remove("hash");
        map.remove("prev_hash");
    }
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(prev);
    h.update(canonical::to_vec(&body));
    h.finalize().into()
}

/// A 64-digit hex hash as bytes.
pub fn parse_hash(s: &str) -> Option<Hash> {
    hex::decode(s).ok()?.try_into().ok()
}
