//! What changed between two revisions: the files, and — separately — the capabilities their
//! manifests declare, which approval rules compare.

use std::collections::BTreeSet;

use gatehouse_core::Sensitivity;
use serde::Serialize;

use crate::manifest::Manifest;
use crate::tree::{Node, Tree};

/// Files larger than this are compared by content only, without a text diff.
const MAX_TEXT_DIFF_BYTES: usize = 1024 * 1024;

/// How one file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileChange {
    /// Only in the newer revision.
    Added,
    /// Only in the older revision.
    Removed,
    /// In both, with different content, mode or link target.
    Modified,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileDiff {
    /// The file's path in the bundle.
    pub path: String,
    /// How it changed.
    pub change: FileChange,
    /// A unified diff for text files, absent for binary or very large files.
    pub unified: Option<String>,
    /// Whether the content is binary (not UTF-8).
    pub binary: bool,
}

/// A capability a manifest grants an app; the unit approvals reason about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Capability {
    /// Use of an integration.
    Integration {
        /// The integration.
        integration: String,
    },
    /// An HTTP scope on an integration.
    Scope {
        /// The integration.
        integration: String,
        /// `METHOD /path`.
        scope: String,
    },
    /// A data scope on a database integration.
    DataScope {
        /// The integration.
        integration: String,
        /// The data scope's name.
        data_scope: String,
    },
    /// A host the app may reach directly.
    Egress {
        /// `host` or `host:port`.
        host: String,
    },
}

impl Capability {
    /// All capabilities a manifest declares.
    pub fn of(manifest: &Manifest) -> BTreeSet<Capability> {
        let mut caps = BTreeSet::new();
        for int in &manifest.integrations {
            caps.insert(Capability::Integration { integration: int.name.clone() });
            for scope in &int.scopes {
                caps.insert(Capability::Scope { integration: int.name.clone(), scope: scope.clone() });
            }
            if let Some(ds) = &int.data_scope {
                caps.insert(Capability::DataScope { integration: int.name.clone(), data_scope: ds.clone() });
            }
        }
        for host in &manifest.egress.allow {
            caps.insert(Capability::Egress { host: host.clone() });
        }
        caps
    }
}

/// How the declared capabilities changed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CapabilityDiff {
    /// Granted by the newer manifest only.
    pub added: Vec<Capability>,
    /// Granted by the older manifest only.
    pub removed: Vec<Capability>,
    /// Declared sensitivity before and after, when it changed.
    pub sensitivity: Option<[Sensitivity; 2]>,
}

impl CapabilityDiff {
    /// Compares two manifests.
    pub fn between(from: &Manifest, to: &Manifest) -> Self {
        let a = Capability::of(from);
        let b = Capability::of(to);
        Self {
            added: b.difference(&a).cloned().collect(),
            removed: a.difference(&b).cloned().collect(),
            sensitivity: (from.app.sensitivity != to.app.sensitivity)
                .then_some([from.app.sensitivity, to.app.sensitivity]),
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.sensitivity.is_none()
    }
}

/// The full difference between two revisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RevisionDiff {
    /// Changed files in path order.
    pub files: Vec<FileDiff>,
    /// Changed capabilities.
    pub capabilities: CapabilityDiff,
}

/// Compares the files of two trees.
pub fn files(from: &Tree, to: &Tree) -> Vec<FileDiff> {
    let mut out = Vec::new();
    let paths: BTreeSet<&str> = from.entries().map(|(p, _)| p).chain(to.entries().map(|(p, _)| p)).collect();
    for path in paths {
        let (a, b) = (from.get(path), to.get(path));
        let change = match (a, b) {
            (None, Some(_)) => FileChange::Added,
            (Some(_), None) => FileChange::Removed,
            (Some(x), Some(y)) if x != y => FileChange::Modified,
            _ => continue,
        };
        let (old, new) = (text_of(a), text_of(b));
        let binary = old.is_none() && a.is_some() || new.is_none() && b.is_some();
        let unified = if binary {
            None
        } else {
            let (old, new) = (old.unwrap_or(""), new.unwrap_or(""));
            let mode_only = old == new;
            if mode_only {
                Some(format!("mode or link change only: {}\n", describe(a, b)))
            } else {
                Some(
                    similar::TextDiff::from_lines(old, new)
                        .unified_diff()
                        .context_radius(3)
                        .header(&format!("a/{path}"), &format!("b/{path}"))
                        .to_string(),
                )
            }
        };
        out.push(FileDiff { path: path.to_owned(), change, unified, binary });
    }
    out
}

fn text_of(node: Option<&Node>) -> Option<&str> {
    match node? {
        Node::File { data, .. } if data.len() <= MAX_TEXT_DIFF_BYTES => std::str::from_utf8(data).ok(),
        Node::File { .. } => None,
        Node::Symlink { target } => Some(target),
    }
}

fn describe(a: Option<&Node>, b: Option<&Node>) -> String {
    let d = |n: Option<&Node>| match n {
        Some(Node::File { executable: true, .. }) => "file 0755",
        Some(Node::File { .. }) => "file 0644",
        Some(Node::Symlink { .. }) => "symlink",
        None => "absent",
    };
    format!("{} -> {}", d(a), d(b))
}

/// Compares two revisions: files and capabilities.
pub fn revisions(from: (&Tree, &Manifest), to: (&Tree, &Manifest)) -> RevisionDiff {
    RevisionDiff { files: files(from.0, to.0), capabilities: CapabilityDiff::between(from.1, to.1) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(extra: &str) -> Manifest {
        Manifest::parse(&format!("[app]\nname = \"a\"\nruntime = \"node20\"\nentry = \"s.js\"\n{extra}"), None).unwrap()
    }

    #[test]
    fn capability_diff_names_added_and_removed_grants() {
        let old = manifest(
            "[[integrations]]\nname = \"crm\"\nscopes = [\"GET /a\"]\n[egress]\nallow = [\"x.example.com\"]\n",
        );
        let new = manifest(
            "sensitivity = \"high\"\n[[integrations]]\nname = \"crm\"\nscopes = [\"GET /a\", \"POST /b\"]\n[[integrations]]\nname = \"db\"\ndata_scope = \"ro\"\n",
        );
        let d = CapabilityDiff::between(&old, &new);
        assert_eq!(
            d.added,
            vec![
                Capability::Integration { integration: "db".into() },
                Capability::Scope { integration: "crm".into(), scope: "POST /b".into() },
                Capability::DataScope { integration: "db".into(), data_scope: "ro".into() },
            ]
        );
        assert_eq!(d.removed, vec![Capability::Egress { host: "x.example.com".into() }]);
        assert_eq!(d.sensitivity, Some([Sensitivity::Normal, Sensitivity::High]));
        assert!(CapabilityDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn file_diff_shows_text_changes_and_flags_binaries() {
        let mut a = Tree::default();
        let mut b = Tree::default();
        let file = |s: &[u8]| Node::File { data: s.to_vec(), executable: false };
        a.insert("same.txt", file(b"x\n")).unwrap();
        b.insert("same.txt", file(b"x\n")).unwrap();
        a.insert("gone.txt", file(b"bye\n")).unwrap();
        a.insert("code.js", file(b"one\ntwo\n")).unwrap();
        b.insert("code.js", file(b"one\nthree\n")).unwrap();
        b.insert("img.bin", file(&[0xff, 0xfe, 0])).unwrap();
        let d = files(&a, &b);
        let summary: Vec<(&str, FileChange, bool)> = d.iter().map(|f| (f.path.as_str(), f.change, f.binary)).collect();
        assert_eq!(
            summary,
            [
                ("code.js", FileChange::Modified, false),
                ("gone.txt", FileChange::Removed, false),
                ("img.bin", FileChange::Added, true),
            ]
        );
        let unified = d[0].unified.as_deref().unwrap();
        assert!(unified.contains("-two") && unified.contains("+three") && unified.contains("a/code.js"), "{unified}");
        assert!(d[2].unified.is_none());
    }
}
