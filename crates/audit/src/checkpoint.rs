//! Signed checkpoints: every N records or T seconds, a signature over the chain head and the
//! Merkle root of the records since the previous checkpoint. The signing key lives outside the
//! database, so whoever can rewrite the database still cannot forge a checkpoint.

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use gatehouse_core::{OrgId, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Hash;

/// A signed commitment to a range of an org's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The org whose chain it covers.
    pub org_id: OrgId,
    /// First sequence number covered.
    pub first_seq: u64,
    /// Last sequence number covered; its record's hash is `head_hash`.
    pub last_seq: u64,
    /// Hex hash of record `last_seq`.
    pub head_hash: String,
    /// Hex RFC 6962 Merkle root over the record hashes `first_seq..=last_seq`.
    pub merkle_root: String,
    /// When it was made.
    pub time: Timestamp,
    /// Which key signed it: the first 16 hex digits of SHA-256 of the public key.
    pub key_id: String,
    /// Hex Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    /// The exact bytes signed.
    pub fn message(&self) -> Vec<u8> {
        format!(
            "gatehouse-audit-checkpoint-v1\n{}\n{}\n{}\n{}\n{}\n{}\n",
            self.org_id,
            self.first_seq,
            self.last_seq,
            self.head_hash,
            self.merkle_root,
            self.time.as_millis()
        )
        .into_bytes()
    }

    /// Whether `key` signed this checkpoint.
    pub fn signature_valid(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = hex::decode(&self.signature) else { return false };
        let Ok(sig) = Signature::from_slice(&bytes) else { return false };
        key_id(key) == self.key_id && key.verify(&self.message(), &sig).is_ok()
    }
}

/// The short id of a public key.
pub fn key_id(key: &VerifyingKey) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))[..16].to_owned()
}

fn statement_message(domain: &str, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(domain.len() + 1 + payload.len());
    m.extend_from_slice(domain.as_bytes());
    m.push(0);
    m.extend_from_slice(payload);
    m
}

/// Checks a signature made by [`CheckpointSigner::sign_statement`].
pub fn verify_statement(key: &VerifyingKey, domain: &str, payload: &[u8], signature_hex: &str) -> bool {
    let Ok(bytes) = hex::decode(signature_hex) else { return false };
    let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else { return false };
    key.verify_strict(&statement_message(domain, payload), &sig).is_ok()
}

/// Makes checkpoints with one Ed25519 key.
pub struct CheckpointSigner {
    key: SigningKey,
}

impl std::fmt::Debug for CheckpointSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckpointSigner").field("key_id", &key_id(&self.key.verifying_key())).finish()
    }
}

impl CheckpointSigner {
    /// A signer from a 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(seed) }
    }

    /// The public key verifiers need.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// Signs another statement with the same key: `domain` (such as `gatehouse-review-v1`)
    /// separates it from checkpoints and from other statement kinds. Returns the hex signature.
    pub fn sign_statement(&self, domain: &str, payload: &[u8]) -> String {
        hex::encode(self.key.sign(&statement_message(domain, payload)).to_bytes())
    }

    /// Signs a checkpoint over the records `first_seq..=last_seq` whose hashes are `hashes`.
    pub fn sign(&self, org_id: &OrgId, first_seq: u64, hashes: &[Hash], time: Timestamp) -> Option<Checkpoint> {
        let head = hashes.last()?;
        let mut cp = Checkpoint {
            org_id: org_id.clone(),
            first_seq,
            last_seq: first_seq + hashes.len() as u64 - 1,
            head_hash: hex::encode(head),
            merkle_root: hex::encode(crate::merkle::root(hashes)),
            time,
            key_id: key_id(&self.key.verifying_key()),
            signature: String::new(),
        };
        cp.signature = hex::encode(self.key.sign(&cp.message()).to_bytes());
        Some(cp)
    }
}
