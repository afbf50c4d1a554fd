//! Findings from every detector in one shape, the report, and the blocking policy.

use serde::Serialize;

use crate::Severity;

/// Which analysis produced a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A credential in the code.
    Secret,
    /// A dependency: known vulnerability, unpinned or unlocked package, install script, typosquat.
    Dependency,
    /// A dangerous code pattern (eval, shell or SQL injection, SSRF, disabled TLS checks, ...).
    Code,
    /// The code does something `gatehouse.toml` does not declare.
    Manifest,
}

impl Kind {
    /// The stored spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "secret",
            Kind::Dependency => "dependency",
            Kind::Code => "code",
            Kind::Manifest => "manifest",
        }
    }
}

/// One problem at one place. Carries no secret value: only a keyed fingerprint and a masked preview.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub kind: Kind,
    pub rule_id: String,
    pub title: String,
    pub severity: Severity,
    /// Path relative to the scanned root, with `/` separators.
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// Stable across scans for the same secret under the same key; suppressions match on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    /// For network calls: the URL the code reaches (manifest checks compare its host with `[egress]`).
    #[serde(skip)]
    pub url: Option<String>,
}

impl Finding {
    /// A finding from the secret detector.
    pub fn from_secret(f: gatehouse_detect::Finding) -> Finding {
        Finding {
            kind: Kind::Secret,
            rule_id: f.rule_id,
            title: f.description,
            severity: f.severity,
            path: f.path,
            line: f.line,
            column: f.column,
            end_line: f.end_line,
            end_column: f.end_column,
            fingerprint: Some(f.fingerprint),
            preview: Some(f.preview),
            url: None,
        }
    }
}

impl Finding {
    /// A finding from dependency analysis.
    pub fn from_dependency(f: gatehouse_deps::DepFinding) -> Finding {
        Finding {
            kind: Kind::Dependency,
            severity: f.severity.parse().unwrap_or(Severity::High),
            rule_id: f.rule_id,
            title: f.title,
            path: f.path,
            line: f.line,
            column: 1,
            end_line: f.line,
            end_column: 1,
            fingerprint: None,
            preview: None,
            url: None,
        }
    }
}

impl Finding {
    /// A finding from code-pattern analysis.
    pub fn from_pattern(f: gatehouse_patterns::PatternFinding) -> Finding {
        Finding {
            kind: Kind::Code,
            severity: f.severity.parse().unwrap_or(Severity::High),
            rule_id: f.rule_id,
            title: f.title,
            path: f.path,
            line: f.line,
            column: f.column,
            end_line: f.end_line,
            end_column: f.end_column,
            fingerprint: None,
            preview: None,
            url: f.url,
        }
    }
}

/// A file the scan did not read, and why (too large, binary, unreadable).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// Everything one scan found, sorted by path and position.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub files_scanned: usize,
    pub bytes_scanned: u64,
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// Sorts findings and skipped files so reports are reproducible.
    pub fn normalize(&mut self) {
        self.findings
            .sort_by(|a, b| (&a.path, a.line, a.column, &a.rule_id).cmp(&(&b.path, b.line, b.column, &b.rule_id)));
        self.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    }

    /// Merges another report's results into this one.
    pub fn absorb(&mut self, other: Report) {
        self.findings.extend(other.findings);
        self.files_scanned += other.files_scanned;
        self.bytes_scanned += other.bytes_scanned;
        self.skipped.extend(other.skipped);
    }
}

/// Which findings block a release (or fail `gatehouse scan`); the rest are warnings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Findings at or above this severity block.
    pub block_at: Severity,
}

impl Default for Policy {
    fn default() -> Self {
        Policy { block_at: Severity::High }
    }
}

impl Policy {
    /// Whether this finding blocks under the policy.
    pub fn blocks(&self, f: &Finding) -> bool {
        f.severity >= self.block_at
    }

    /// How many findings in the report block.
    pub fn blocking(&self, report: &Report) -> usize {
        report.findings.iter().filter(|f| self.blocks(f)).count()
    }
}
