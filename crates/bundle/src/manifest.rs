//! The app manifest, `gatehouse.toml`: an app's declaration of what it is and what it may reach.
//!
//! Approvals compare manifests, so every field is validated strictly and every error names the
//! file, line and column and says what was expected. The accepted format is documented in the
//! README ("The app manifest").

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use gatehouse_core::Sensitivity;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::tree::{Node, Tree};

/// The manifest's file name at the root of a bundle.
pub const MANIFEST_FILE: &str = "gatehouse.toml";

/// An invalid manifest (or a file it points to): where, and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ManifestError {
    /// The file at fault, relative to the bundle root.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

/// The runtimes an app may declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Node.js 20.
    Node20,
    /// Node.js 22.
    Node22,
    /// CPython 3.
    Python3,
}

impl Runtime {
    const NAMES: &'static str = "node20, node22 or python3";

    fn parse(s: &str) -> Option<Self> {
        match s {
            "node20" => Some(Self::Node20),
            "node22" => Some(Self::Node22),
            "python3" => Some(Self::Python3),
            _ => None,
        }
    }
}

/// A validated manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Manifest {
    /// The `[app]` table.
    pub app: AppSection,
    /// The `[[integrations]]` the app uses, in file order.
    pub integrations: Vec<Integration>,
    /// Hosts the app may reach directly, besides the gateway.
    pub egress: Egress,
    /// Database migrations shipped with the app, if any.
    pub migrations: Option<Migrations>,
}

/// `[app]`: identity and runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AppSection {
    /// The app's name; it must match the app being pushed to.
    pub name: String,
    /// The runtime.
    pub runtime: Runtime,
    /// The entry file, relative to the bundle root.
    pub entry: String,
    /// Declared sensitivity; `high` gates every deploy.
    pub sensitivity: Sensitivity,
    /// Free text for the console.
    pub description: Option<String>,
    /// Where `name` stands in `gatehouse.toml` (line, column), for errors about it.
    #[serde(skip)]
    #[schema(ignore)]
    pub name_at: (usize, usize),
}

/// One `[[integrations]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Integration {
    /// The integration's name, as defined by IT in the control plane.
    pub name: String,
    /// HTTP scopes as `METHOD /path`, `*` allowed as a path segment or as the method.
    pub scopes: Vec<String>,
    /// For database integrations: the data scope (row filters, column masks) to use.
    pub data_scope: Option<String>,
}

/// `[egress]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Egress {
    /// Extra hosts (`host` or `host:port`, `*.domain` wildcards); empty means gateway only.
    pub allow: Vec<String>,
}

/// `[migrations]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Migrations {
    /// The folder holding `NNNN_name.up.sql` / `NNNN_name.down.sql` pairs.
    pub dir: String,
    /// The migrations found there, in order.
    pub steps: Vec<MigrationStep>,
}

/// Whether a migration only adds (safe while the old release runs) or removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MigrationKind {
    /// Adds schema; the previous release keeps working.
    Expand,
    /// Removes schema the previous release may still use.
    Contract,
}

/// One migration pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MigrationStep {
    /// The `NNNN` number.
    pub version: u32,
    /// The name part of the file names.
    pub name: String,
    /// Expand or contract, from the up file's first line.
    pub kind: MigrationKind,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    app: Spanned<RawApp>,
    #[serde(default)]
    integrations: Vec<Spanned<RawIntegration>>,
    #[serde(default)]
    egress: Option<RawEgress>,
    #[serde(default)]
    migrations: Option<Spanned<RawMigrations>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Spanned<String>,
    runtime: Spanned<String>,
    entry: Spanned<String>,
    #[serde(default)]
    sensitivity: Option<Spanned<String>>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntegration {
    name: Spanned<String>,
    #[serde(default)]
    scopes: Vec<Spanned<String>>,
    #[serde(default)]
    data_scope: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEgress {
    #[serde(default)]
    allow: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMigrations {
    dir: Spanned<String>,
}

/// Builds errors that point into one file's text.
struct Locator<'a> {
    file: &'a str,
    text: &'a str,
}

impl Locator<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> ManifestError {
        let offset = span.start.min(self.text.len());
        let before = &self.text.as_bytes()[..offset];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        ManifestError { file: self.file.to_owned(), line, column, message: message.into() }
    }
}

impl Manifest {
    /// An error unless the manifest names app `expected`, pointing at its `name`.
    pub fn expect_app(&self, expected: &str) -> Result<(), ManifestError> {
        if self.app.name == expected {
            return Ok(());
        }
        Err(ManifestError {
            file: MANIFEST_FILE.to_owned(),
            line: self.app.name_at.0,
            column: self.app.name_at.1,
            message: format!("the manifest names app `{}` but the push is to app `{expected}`", self.app.name),
        })
    }

    /// Reads and validates the manifest of a bundle, including the files it refers to.
    pub fn from_tree(tree: &Tree) -> Result<Self, ManifestError> {
        let missing = || ManifestError {
            file: MANIFEST_FILE.to_owned(),
            line: 0,
            column: 0,
            message: format!("the bundle has no `{MANIFEST_FILE}` at its root"),
        };
        let bytes = tree.file(MANIFEST_FILE).ok_or_else(missing)?;
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let prefix = &bytes[..e.valid_up_to()];
            let loc = Locator { file: MANIFEST_FILE, text: std::str::from_utf8(prefix).unwrap_or("") };
            loc.at(prefix.len()..prefix.len(), "the file is not valid UTF-8")
        })?;
        Self::parse(text, Some(tree))
    }

    /// Parses manifest text; with a tree, also checks that referenced files exist.
    pub fn parse(text: &str, tree: Option<&Tree>) -> Result<Self, ManifestError> {
        let loc = Locator { file: MANIFEST_FILE, text };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_owned();
            loc.at(e.span().unwrap_or(0..0), message)
        })?;
        let raw_app = raw.app.into_inner();

        let name = raw_app.name.get_ref();
        gatehouse_core::validate_slug("app", name).map_err(|e| loc.at(raw_app.name.span(), e.to_string()))?;

        let runtime = Runtime::parse(raw_app.runtime.get_ref()).ok_or_else(|| {
            loc.at(
                raw_app.runtime.span(),
                format!("unknown runtime `{}`: expected {}", raw_app.runtime.get_ref(), Runtime::NAMES),
            )
        })?;

        let entry = check_relative_path(raw_app.entry.get_ref())
            .map_err(|reason| loc.at(raw_app.entry.span(), format!("`entry` {reason}")))?;
        if let Some(tree) = tree
            && !matches!(tree.get(&entry), Some(Node::File { .. }))
        {
            return Err(loc.at(raw_app.entry.span(), format!("entry file `{entry}` is not in the bundle")));
        }

        let sensitivity = match &raw_app.sensitivity {
            None => Sensitivity::default(),
            Some(s) => s.get_ref().parse().map_err(|_| {
                loc.at(s.span(), format!("unknown sensitivity `{}`: expected low, normal or high", s.get_ref()))
            })?,
        };

        let mut integrations = Vec::new();
        let mut names = BTreeSet::new();
        for spanned in raw.integrations {
            let span = spanned.span();
            let raw_int = spanned.into_inner();
            let iname = raw_int.name.get_ref();
            gatehouse_core::validate_slug("integration", iname)
                .map_err(|e| loc.at(raw_int.name.span(), e.to_string()))?;
            if !names.insert(iname.clone()) {
                return Err(loc.at(raw_int.name.span(), format!("integration `{iname}` is declared twice")));
            }
            let mut scopes = Vec::new();
            for scope in &raw_int.scopes {
                let normalized = check_scope(scope.get_ref())
                    .map_err(|reason| loc.at(scope.span(), format!("invalid scope `{}`: {reason}", scope.get_ref())))?;
                if scopes.contains(&normalized) {
                    return Err(loc.at(scope.span(), format!("scope `{normalized}` is listed twice")));
                }
                scopes.push(normalized);
            }
            let data_scope = match &raw_int.data_scope {
                None => None,
                Some(ds) => {
                    check_identifier(ds.get_ref()).map_err(|reason| {
                        loc.at(ds.span(), format!("invalid data_scope `{}`: {reason}", ds.get_ref()))
                    })?;
                    Some(ds.get_ref().clone())
                }
            };
            if scopes.is_empty() && data_scope.is_none() {
                return Err(loc.at(
                    span,
                    format!(
                        "integration `{iname}` declares neither `scopes` nor `data_scope`, so it would grant nothing"
                    ),
                ));
            }
            integrations.push(Integration { name: iname.clone(), scopes, data_scope });
        }

        let mut allow = Vec::new();
        for host in raw.egress.map(|e| e.allow).unwrap_or_default() {
            let normalized = check_host(host.get_ref())
                .map_err(|reason| loc.at(host.span(), format!("invalid egress host `{}`: {reason}", host.get_ref())))?;
            if allow.contains(&normalized) {
                return Err(loc.at(host.span(), format!("egress host `{normalized}` is listed twice")));
            }
            allow.push(normalized);
        }

        let migrations = match raw.migrations {
            None => None,
            Some(m) => {
                let m = m.into_inner();
                let dir = check_relative_path(m.dir.get_ref())
                    .map_err(|reason| loc.at(m.dir.span(), format!("`dir` {reason}")))?;
                let steps = match tree {
                    Some(tree) => migration_steps(tree, &dir).map_err(|e| match e {
                        StepError::InManifest(msg) => loc.at(m.dir.span(), msg),
                        StepError::InFile(err) => err,
                    })?,
                    None => Vec::new(),
                };
                Some(Migrations { dir, steps })
            }
        };

        Ok(Manifest {
            app: AppSection {
                name: name.clone(),
                runtime,
                entry,
                sensitivity,
                description: raw_app.description,
                name_at: {
                    let at = loc.at(raw_app.name.span(), "");
                    (at.line, at.column)
                },
            },
            integrations,
            egress: Egress { allow },
            migrations,
        })
    }
}

enum StepError {
    InManifest(String),
    InFile(ManifestError),
}

fn migration_steps(tree: &Tree, dir: &str) -> Result<Vec<MigrationStep>, StepError> {
    let mut ups = std::collections::BTreeMap::new();
    let mut downs = BTreeSet::new();
    let mut any = false;
    for path in tree.paths_under(dir) {
        any = true;
        let file = &path[dir.len() + 1..];
        let bad_name = || {
            StepError::InFile(ManifestError {
                file: path.to_owned(),
                line: 0,
                column: 0,
                message: "migration files must be named `NNNN_name.up.sql` or `NNNN_name.down.sql` directly in the migrations folder".to_owned(),
            })
        };
        let (stem, up) = if let Some(s) = file.strip_suffix(".up.sql") {
            (s, true)
        } else if let Some(s) = file.strip_suffix(".down.sql") {
            (s, false)
        } else {
            return Err(bad_name());
        };
        let (num, name) = stem.split_once('_').ok_or_else(bad_name)?;
        if num.len() != 4 || !num.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() || name.contains('/') {
            return Err(bad_name());
        }
        let version: u32 = num.parse().map_err(|_| bad_name())?;
        if up {
            let text = tree.file(path).map(String::from_utf8_lossy).unwrap_or_default();
            let kind = migration_kind(&text).ok_or_else(|| {
                StepError::InFile(ManifestError {
                    file: path.to_owned(),
                    line: 1,
                    column: 1,
                    message:
                        "the first line of an up migration must be `-- gatehouse: expand` or `-- gatehouse: contract`"
                            .to_owned(),
                })
            })?;
            if ups.insert(version, (name.to_owned(), kind, path.to_owned())).is_some() {
                return Err(StepError::InFile(ManifestError {
                    file: path.to_owned(),
                    line: 0,
                    column: 0,
                    message: format!("more than one up migration is numbered {num}"),
                }));
            }
        } else {
            downs.insert((version, name.to_owned()));
        }
    }
    if !any {
        return Err(StepError::InManifest(format!("migrations folder `{dir}` has no files in the bundle")));
    }
    let mut steps = Vec::new();
    for (version, (name, kind, path)) in ups {
        if !downs.remove(&(version, name.clone())) {
            return Err(StepError::InFile(ManifestError {
                file: path,
                line: 0,
                column: 0,
                message: format!("no matching `{version:04}_{name}.down.sql`; every migration needs a rollback"),
            }));
        }
        steps.push(MigrationStep { version, name, kind });
    }
    if let Some((version, name)) = downs.into_iter().next() {
        return Err(StepError::InFile(ManifestError {
            file: format!("{dir}/{version:04}_{name}.down.sql"),
            line: 0,
            column: 0,
            message: format!("no matching `{version:04}_{name}.up.sql` for this down migration"),
        }));
    }
    Ok(steps)
}

fn migration_kind(text: &str) -> Option<MigrationKind> {
    let first = text.lines().next()?.trim();
    let tag = first.strip_prefix("--")?.trim().strip_prefix("gatehouse:")?.trim();
    match tag {
        "expand" => Some(MigrationKind::Expand),
        "contract" => Some(MigrationKind::Contract),
        _ => None,
    }
}

fn check_relative_path(p: &str) -> Result<String, &'static str> {
    if p.is_empty() {
        return Err("must not be empty");
    }
    if p.starts_with('/') || p.contains('\\') {
        return Err("must be a relative path inside the bundle");
    }
    let parts: Vec<&str> = p.split('/').filter(|s| !s.is_empty() && *s != ".").collect();
    if parts.contains(&"..") {
        return Err("must not contain `..`");
    }
    if parts.is_empty() {
        return Err("must name a path inside the bundle");
    }
    Ok(parts.join("/"))
}

const METHODS: [&str; 8] = ["*", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

fn check_scope(s: &str) -> Result<String, &'static str> {
    let (method, path) =
        s.split_once(' ').ok_or("expected `METHOD /path`, for example `GET /services/data/*/query`")?;
    let method = method.to_ascii_uppercase();
    if !METHODS.contains(&method.as_str()) {
        return Err("the method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or *");
    }
    if !path.starts_with('/') {
        return Err("the path must start with `/`");
    }
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("the path must not contain spaces");
    }
    if path.split('/').any(|seg| seg == ".." || seg == ".") {
        return Err("the path must not contain `.` or `..` segments");
    }
    Ok(format!("{method} {path}"))
}

fn check_identifier(s: &str) -> Result<(), &'static str> {
    let ok = s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err("expected lowercase letters, digits and `_`, starting with a letter, at most 63 characters")
    }
}

fn check_host(s: &str) -> Result<String, &'static str> {
    if s.contains("://") || s.contains('/') {
        return Err("expected a host name such as `api.example.com` or `api.example.com:8443`, not a URL");
    }
    let lower = s.to_ascii_lowercase();
    let (host, port) = match lower.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p.parse().map_err(|_| "the port must be a number from 1 to 65535")?;
            if port == 0 {
                return Err("the port must be a number from 1 to 65535");
            }
            (h, Some(port))
        }
        None => (lower.as_str(), None),
    };
    let name = host.strip_prefix("*.").unwrap_or(host);
    if name.is_empty() || name.len() > 253 {
        return Err("the host name must be 1 to 253 characters");
    }
    for label in name.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err("each label must be 1 to 63 letters, digits or `-`, not starting or ending with `-`");
        }
    }
    if host == "*" || !name.contains('.') && host.starts_with("*.") {
        return Err("a wildcard must cover a domain with at least two labels, such as `*.example.com`");
    }
    Ok(match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Node20 => "node20",
            Self::Node22 => "node22",
            Self::Python3 => "python3",
        })
    }
}

#[cfg(test)]
mod tests;
