//! The audit log's evidence: every record carries the SHA-256 of the record before it, and signed
//! checkpoints commit to the chain head and to an RFC 6962 Merkle root of the records since the
//! previous checkpoint. [`verify`] checks a range of records and checkpoints — from the database
//! or from an exported file, with only the public key — and names the first bad sequence number.
//!
//! This crate is pure: no I/O. Storing records atomically with the actions they describe, and
//! exporting them, belong to the store and the server.

mod canonical;
pub mod checkpoint;
pub mod merkle;
pub mod record;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointSigner, key_id, verify_statement};
pub use gatehouse_core::audit::{Actor, ActorKind, ActorRef, AuditDraft, AuditRecord, Outcome, ResourceRef};
pub use record::{chain, parse_hash, record_hash};
pub use verify::{Tamper, TamperKind, Verifier, VerifyReport, verify};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The `prev_hash` of an org's first record.
pub const GENESIS: Hash = [0u8; 32];
