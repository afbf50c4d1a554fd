//! App bundles: what `gatehouse push` sends and what a revision stores.
//!
//! A bundle arrives as a (gzipped) tar archive. [`unpack`] reads it defensively — no absolute
//! paths, no `..`, no links out of the tree, no device files, bounded size and file count — into a
//! [`Tree`]. A tree has one canonical tar encoding whose SHA-256 is the revision's content address,
//! so the same files always give the same digest whatever tool packed them. [`Bundle::open`] also
//! reads and validates the `gatehouse.toml` [`manifest`], and [`diff`] compares two revisions,
//! both file by file and by the capabilities their manifests declare.

pub mod diff;
mod error;
pub mod manifest;
mod tree;

pub use diff::{Capability, CapabilityDiff, FileChange, FileDiff, RevisionDiff};
pub use error::BundleError;
pub use manifest::{MANIFEST_FILE, Manifest, ManifestError};
pub use tree::{Digest, Limits, Node, Tree, unpack};

use sha2::Digest as _;

/// A validated bundle: its files, its manifest and its content address.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The files.
    pub tree: Tree,
    /// The parsed, validated manifest.
    pub manifest: Manifest,
    /// SHA-256 of the canonical archive.
    pub digest: Digest,
}

impl Bundle {
    /// Unpacks an uploaded archive within `limits` and validates its manifest.
    pub fn open(archive: &[u8], limits: &Limits) -> Result<Self, BundleError> {
        Self::from_tree(unpack(archive, limits)?)
    }

    /// Unpacks and validates an upload, and returns with it the archive to store: the canonical
    /// tar, gzip-compressed. When the upload already is exactly that (as `gatehouse push` sends),
    /// it is kept as it came instead of being compressed again.
    pub fn open_for_storage(archive: Vec<u8>, limits: &Limits) -> Result<(Self, Vec<u8>), BundleError> {
        let (raw, plain_gzip) = tree::decompress(&archive, limits)?;
        let tree = tree::parse_tar(&raw, limits)?;
        let manifest = Manifest::from_tree(&tree)?;
        let canonical = tree.canonical_tar();
        let digest = Digest(sha2::Sha256::digest(&canonical).into());
        let stored = if plain_gzip && raw == canonical { archive } else { tree::gzip(&canonical) };
        Ok((Self { tree, manifest, digest }, stored))
    }

    /// Validates the manifest of an already unpacked tree.
    pub fn from_tree(tree: Tree) -> Result<Self, BundleError> {
        let manifest = Manifest::from_tree(&tree)?;
        let digest = tree.digest();
        Ok(Self { tree, manifest, digest })
    }
}
