//! The files of a bundle, their safe unpacking and their canonical archive.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::BundleError;

/// Limits applied while unpacking, so a hostile archive cannot exhaust memory or disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted upload (the compressed archive), in bytes.
    pub max_archive_bytes: u64,
    /// Largest total size after decompression (headers included), in bytes; guards against bombs.
    pub max_unpacked_bytes: u64,
    /// Most entries in one bundle.
    pub max_files: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_archive_bytes: 50 * 1024 * 1024, max_unpacked_bytes: 256 * 1024 * 1024, max_files: 20_000 }
    }
}

/// One entry of a bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file.
    File {
        /// Its content.
        data: Vec<u8>,
        /// Whether any execute bit was set.
        executable: bool,
    },
    /// A symbolic link to another path inside the bundle.
    Symlink {
        /// The relative target, as written in the link.
        target: String,
    },
}

/// SHA-256 of a bundle's canonical archive: a revision's content address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// Lowercase hex, as used in ids and URLs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The files of a bundle keyed by normalized relative path (`/`-separated, no `.` or `..`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Node>,
}

const MAX_PATH_LEN: usize = 1024;

impl Tree {
    /// The entries in canonical (byte-wise path) order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &Node)> {
        self.entries.iter().map(|(p, n)| (p.as_str(), n))
    }

    /// The entry at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.entries.get(path)
    }

    /// The content of the regular file at `path`, if there is one.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.entries.get(path) {
            Some(Node::File { data, .. }) => Some(data),
            _ => None,
        }
    }

    /// Paths of entries directly or indirectly under directory `dir`.
    pub fn paths_under<'a>(&'a self, dir: &str) -> impl Iterator<Item = &'a str> + 'a {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        self.entries.range(prefix.clone()..).take_while(move |(p, _)| p.starts_with(&prefix)).map(|(p, _)| p.as_str())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the tree has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Total bytes of file content.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .values()
            .map(|n| match n {
                Node::File { data, .. } => data.len() as u64,
                Node::Symlink { target } => target.len() as u64,
            })
            .sum()
    }

    /// Adds an entry after checking its path; used by unpacking and by packing a folder.
    pub fn insert(&mut self, raw_path: &str, node: Node) -> Result<(), BundleError> {
        let path = normalize_path(raw_path)?;
        if let Node::Symlink { target } = &node {
            check_symlink(&path, target)?;
        }
        if self.entries.contains_key(&path) {
            return Err(BundleError::Duplicate(path));
        }
        self.entries.insert(path, node);
        Ok(())
    }

    /// Rejects trees where a path is both a file and a directory, or where an entry lives under
    /// a symlink (which would let a later extraction write through the link).
    fn check_structure(&self) -> Result<(), BundleError> {
        for path in self.entries.keys() {
            let mut end = 0;
            while let Some(pos) = path[end..].find('/') {
                let parent = &path[..end + pos];
                match self.entries.get(parent) {
                    Some(Node::File { .. }) => return Err(BundleError::Duplicate(parent.to_owned())),
                    Some(Node::Symlink { .. }) => {
                        return Err(BundleError::BadPath { path: path.clone(), reason: "it lies under a symlink" });
                    }
                    None => {}
                }
                end += pos + 1;
            }
        }
        Ok(())
    }

    /// The canonical archive: an uncompressed tar of the entries in path order, with fixed
    /// modes (0644, 0755 for executables), zero owners and times. Its SHA-256 is the digest.
    pub fn canonical_tar(&self) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::with_capacity(self.content_bytes() as usize + 1024));
        for (path, node) in &self.entries {
            let mut header = tar::Header::new_gnu();
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            // Writing into a Vec cannot fail, and paths were validated on insert, so the tar
            // writer has no error to report here; a failure would be a bug, not bad input.
            let written = match node {
                Node::File { data, executable } => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(if *executable { 0o755 } else { 0o644 });
                    header.set_size(data.len() as u64);
                    builder.append_data(&mut header, path, data.as_slice())
                }
                Node::Symlink { target } => {
                    header.set_entry_type(tar::EntryType::Symlink);
                    header.set_mode(0o777);
                    header.set_size(0);
                    builder.append_link(&mut header, path, target)
                }
            };
            debug_assert!(written.is_ok(), "writing a validated entry to memory failed");
        }
        builder.into_inner().unwrap_or_default()
    }

    /// The content address of this tree.
    pub fn digest(&self) -> Digest {
        Digest(Sha256::digest(self.canonical_tar()).into())
    }

    /// The canonical archive, gzip-compressed, as stored and as uploaded by the CLI.
    pub fn to_tar_gz(&self) -> Vec<u8> {
        gzip(&self.canonical_tar())
    }

    /// Packs an app folder, honouring `.gatehouseignore` files (gitignore syntax) and always
    /// leaving out `.git/`.
    pub fn from_dir(dir: &Path, limits: &Limits) -> Result<Self, BundleError> {
        let io_err = |path: &Path, e: &dyn fmt::Display| BundleError::Io {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        let mut tree = Tree::default();
        let mut total: u64 = 0;
        let walker = ignore::WalkBuilder::new(dir)
            .standard_filters(false)
            .hidden(false)
            .parents(false)
            .follow_links(false)
            .add_custom_ignore_filename(".gatehouseignore")
            .filter_entry(|e| e.file_name() != ".git")
            .sort_by_file_name(|a, b| a.cmp(b))
            .build();
        for entry in walker {
            let entry = entry.map_err(|e| io_err(dir, &e))?;
            let path = entry.path();
            let Some(file_type) = entry.file_type() else { continue };
            if file_type.is_dir() {
                continue;
            }
            let rel = path
                .strip_prefix(dir)
                .map_err(|e| io_err(path, &e))?
                .to_str()
                .ok_or_else(|| BundleError::BadPath {
                    path: path.display().to_string(),
                    reason: "its name is not valid UTF-8",
                })?
                .to_owned();
            let node = if file_type.is_symlink() {
                let target = std::fs::read_link(path).map_err(|e| io_err(path, &e))?;
                let target = target.to_str().ok_or_else(|| BundleError::BadPath {
                    path: rel.clone(),
                    reason: "its link target is not valid UTF-8",
                })?;
                Node::Symlink { target: target.to_owned() }
            } else if file_type.is_file() {
                let meta = entry.metadata().map_err(|e| io_err(path, &e))?;
                total += meta.len();
                if total > limits.max_unpacked_bytes {
                    return Err(BundleError::TooLarge(format!(
                        "the files add up to more than {} bytes",
                        limits.max_unpacked_bytes
                    )));
                }
                let data = std::fs::read(path).map_err(|e| io_err(path, &e))?;
                Node::File { data, executable: is_executable(&meta) }
            } else {
                return Err(BundleError::ForbiddenEntry { path: rel, kind: "special file" });
            };
            tree.insert(&rel, node)?;
            if tree.len() > limits.max_files {
                return Err(BundleError::TooManyFiles(limits.max_files));
            }
        }
        tree.check_structure()?;
        Ok(tree)
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Turns an archive path into the canonical relative form, refusing anything that could
/// escape the bundle or be read differently on another system.
fn normalize_path(raw: &str) -> Result<String, BundleError> {
    let bad = |reason| BundleError::BadPath { path: raw.chars().take(200).collect(), reason };
    if raw.len() > MAX_PATH_LEN {
        return Err(bad("the path is longer than 1024 bytes"));
    }
    if raw.starts_with('/') {
        return Err(bad("absolute paths are not allowed"));
    }
    if raw.contains('\\') {
        return Err(bad("backslashes are not allowed in paths"));
    }
    if raw.chars().any(|c| c.is_control()) {
        return Err(bad("control characters are not allowed in paths"));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("`..` is not allowed in paths")),
            p if p.len() > 255 => return Err(bad("a path component is longer than 255 bytes")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad("the path is empty"));
    }
    Ok(parts.join("/"))
}

/// A symlink may only point, lexically, at a place inside the bundle.
fn check_symlink(path: &str, target: &str) -> Result<(), BundleError> {
    let escape = || BundleError::SymlinkEscape { path: path.to_owned() };
    if target.is_empty() || target.starts_with('/') || target.contains('\\') || target.len() > MAX_PATH_LEN {
        return Err(escape());
    }
    // Depth of the directory holding the link.
    let mut depth: i64 = path.matches('/').count() as i64;
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                if depth < 0 {
                    return Err(escape());
                }
            }
            _ => depth += 1,
        }
    }
    Ok(())
}

/// Gzip at the level used for stored archives; the header carries no name or time.
pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::new(6));
    // Writes into a Vec do not fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Counts bytes read and fails once more than `limit` have come through.
struct LimitedReader<R> {
    inner: R,
    read: u64,
    limit: u64,
}

impl<R: Read> Read for LimitedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            return Err(io::Error::other(UnpackedTooLarge));
        }
        Ok(n)
    }
}

#[derive(Debug)]
struct UnpackedTooLarge;

impl fmt::Display for UnpackedTooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unpacked size over the limit")
    }
}

impl std::error::Error for UnpackedTooLarge {}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Unpacks a tar or tar.gz archive into a [`Tree`], refusing absolute paths, `..`, links out of
/// the tree, hard links, device files, and anything over `limits`.
pub fn unpack(archive: &[u8], limits: &Limits) -> Result<Tree, BundleError> {
    let (raw, _) = decompress(archive, limits)?;
    parse_tar(&raw, limits)
}

/// The uncompressed tar inside `archive`, and whether `archive` is a plain single-member gzip of
/// it (no name, comment, extra field or trailing bytes), which may then be stored as it came.
pub(crate) fn decompress(archive: &[u8], limits: &Limits) -> Result<(Vec<u8>, bool), BundleError> {
    if archive.len() as u64 > limits.max_archive_bytes {
        return Err(BundleError::TooLarge(format!(
            "the archive is {} bytes; the limit is {}",
            archive.len(),
            limits.max_archive_bytes
        )));
    }
    let map_io = |e: io::Error| {
        if e.get_ref().is_some_and(|inner| inner.is::<UnpackedTooLarge>()) {
            BundleError::TooLarge(format!("it unpacks to more than {} bytes", limits.max_unpacked_bytes))
        } else {
            BundleError::Corrupt(e.to_string())
        }
    };
    if !archive.starts_with(&GZIP_MAGIC) {
        if archive.len() as u64 > limits.max_unpacked_bytes {
            return Err(map_io(io::Error::other(UnpackedTooLarge)));
        }
        return Ok((archive.to_vec(), false));
    }
    let mut raw = Vec::with_capacity(archive.len().saturating_mul(2));
    let mut first =
        LimitedReader { inner: flate2::bufread::GzDecoder::new(archive), read: 0, limit: limits.max_unpacked_bytes };
    first.read_to_end(&mut raw).map_err(map_io)?;
    let clean =
        first.inner.header().is_some_and(|h| h.filename().is_none() && h.comment().is_none() && h.extra().is_none());
    if first.inner.into_inner().is_empty() {
        return Ok((raw, clean));
    }
    // More gzip members follow (as `cat a.tar.gz b.tar.gz` makes): read them all, and never keep
    // such an upload as it came.
    raw.clear();
    let mut all = LimitedReader {
        inner: flate2::bufread::MultiGzDecoder::new(archive),
        read: 0,
        limit: limits.max_unpacked_bytes,
    };
    all.read_to_end(&mut raw).map_err(map_io)?;
    Ok((raw, false))
}

/// Reads the entries of an uncompressed tar.
pub(crate) fn parse_tar(raw: &[u8], limits: &Limits) -> Result<Tree, BundleError> {
    let mut ar = tar::Archive::new(raw);
    let map_io = |e: io::Error| BundleError::Corrupt(e.to_string());
    let mut tree = Tree::default();
    let mut seen = 0usize;
    for entry in ar.entries().map_err(map_io)? {
        let mut entry = entry.map_err(map_io)?;
        seen += 1;
        if seen > limits.max_files {
            return Err(BundleError::TooManyFiles(limits.max_files));
        }
        let path_bytes = entry.path_bytes().into_owned();
        let path = String::from_utf8(path_bytes.clone()).map_err(|_| BundleError::BadPath {
            path: String::from_utf8_lossy(&path_bytes).chars().take(200).collect(),
            reason: "the path is not valid UTF-8",
        })?;
        let kind = entry.header().entry_type();
        let node = match kind {
            tar::EntryType::Directory => {
                // Directories are implied by their files; still refuse hostile directory paths.
                if path.split('/').any(|p| !p.is_empty() && p != ".") {
                    normalize_path(&path)?;
                }
                continue;
            }
            tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                if size > limits.max_unpacked_bytes {
                    return Err(BundleError::TooLarge(format!(
                        "entry `{}` declares {size} bytes",
                        path.chars().take(200).collect::<String>()
                    )));
                }
                let mut data = Vec::with_capacity(size.min(16 * 1024 * 1024) as usize);
                entry.read_to_end(&mut data).map_err(map_io)?;
                let mode = entry.header().mode().unwrap_or(0o644);
                Node::File { data, executable: mode & 0o111 != 0 }
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name_bytes().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
                Node::Symlink { target }
            }
            tar::EntryType::Link => return Err(forbidden(&path, "hard link")),
            tar::EntryType::Char | tar::EntryType::Block => return Err(forbidden(&path, "device file")),
            tar::EntryType::Fifo => return Err(forbidden(&path, "named pipe")),
            _ => return Err(forbidden(&path, "special entry")),
        };
        tree.insert(&path, node)?;
    }
    tree.check_structure()?;
    Ok(tree)
}

fn forbidden(path: &str, kind: &'static str) -> BundleError {
    BundleError::ForbiddenEntry { path: path.chars().take(200).collect(), kind }
}

#[cfg(test)]
mod tests;
