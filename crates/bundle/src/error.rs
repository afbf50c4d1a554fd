use crate::manifest::ManifestError;

/// Why a bundle was refused. Every variant names what is wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The archive (compressed or unpacked) is over a configured limit.
    #[error("bundle is too large: {0}")]
    TooLarge(String),
    /// More entries than the configured limit.
    #[error("bundle has more than {0} files")]
    TooManyFiles(usize),
    /// An entry's path is not a plain relative path inside the bundle.
    #[error("entry `{path}` is not allowed: {reason}")]
    BadPath {
        /// The path as found in the archive (lossy, truncated).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An entry of a kind a bundle may not hold (hard link, device, fifo).
    #[error("entry `{path}` is a {kind}, which bundles may not contain")]
    ForbiddenEntry {
        /// The entry's path.
        path: String,
        /// What kind of entry it is.
        kind: &'static str,
    },
    /// A symbolic link that points outside the bundle or is absolute.
    #[error("symlink `{path}` points outside the bundle")]
    SymlinkEscape {
        /// The link's path.
        path: String,
    },
    /// The same path appears twice, or a path is both a file and a directory.
    #[error("entry `{0}` appears more than once or conflicts with a directory")]
    Duplicate(String),
    /// The bytes are not a readable tar or tar.gz archive.
    #[error("bundle is not a valid tar or tar.gz archive: {0}")]
    Corrupt(String),
    /// Reading the app folder failed (client side).
    #[error("cannot read `{path}`: {message}")]
    Io {
        /// The path that could not be read.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// The manifest is missing or invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}
