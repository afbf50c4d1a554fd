//! Secret detection shared by commit-time scanning and (later) prompt redaction.
//!
//! A [`Detector`] compiles a [`RuleSet`] once: an Aho-Corasick automaton over every rule's keywords
//! decides which rules can possibly match a text, and only those rules' regexes run. Findings
//! carry where the secret is and a keyed fingerprint of it; the secret itself never leaves this
//! crate except as a masked preview of a few leading characters.

mod engine;
pub mod rules;

pub use engine::{Detector, Finding, StreamScanner, shannon_entropy};
pub use rules::{RuleSet, Severity};

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error("rule file {origin}: {reason}")]
    Config { origin: String, reason: String },
    #[error("cannot read rule file {path}: {reason}")]
    Read { path: String, reason: String },
}
