//! Commit-time scanning: runs the detectors over a tree, a bundle or staged git changes, and
//! turns what they find into one report that a policy can block on and CI tools can read.

mod git;
mod manifest;
mod report;
mod sarif;
mod walk;

pub use gatehouse_deps::AdvisoryDb;
pub use gatehouse_detect::{Detector, RuleSet, Severity};
pub use gatehouse_patterns::Patterns;
pub use git::staged;
pub use report::{Finding, Kind, Policy, Report, Skipped};
pub use sarif::to_sarif;
pub use walk::{Limits, Scan, scan_files, scan_path};

/// Why a scan could not run (as opposed to what it found).
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("git: {0}")]
    Git(String),
    #[error(transparent)]
    Rules(#[from] gatehouse_detect::DetectError),
    #[error("advisory index: {0}")]
    Advisories(#[from] gatehouse_deps::DbError),
    #[error(transparent)]
    Patterns(#[from] gatehouse_patterns::PatternError),
}
