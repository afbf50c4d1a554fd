//! OSV advisories: the schema subset we use, each ecosystem's version order, and whether a
//! version is affected (OSV's event algorithm over SEMVER and ECOSYSTEM ranges, plus the
//! explicit `versions` list; GIT ranges name commits and cannot be evaluated against a version).

use std::cmp::Ordering;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The package ecosystems we read lockfiles for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Ecosystem {
    #[serde(rename = "npm")]
    Npm,
    #[serde(rename = "PyPI")]
    PyPI,
    #[serde(rename = "crates.io")]
    CratesIo,
}

impl Ecosystem {
    /// OSV's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Ecosystem::Npm => "npm",
            Ecosystem::PyPI => "PyPI",
            Ecosystem::CratesIo => "crates.io",
        }
    }

    /// Parses OSV's name (other ecosystems are not ours: `None`).
    pub fn parse(s: &str) -> Option<Ecosystem> {
        match s {
            "npm" => Some(Ecosystem::Npm),
            "PyPI" => Some(Ecosystem::PyPI),
            "crates.io" => Some(Ecosystem::CratesIo),
            _ => None,
        }
    }

    /// The name under which a package is looked up: PyPI names are normalized (PEP 503), npm and
    /// crates.io names compare exactly (crates.io also treats `-` and `_` alike).
    pub fn normalize(self, name: &str) -> String {
        match self {
            Ecosystem::PyPI => {
                let mut out = String::with_capacity(name.len());
                let mut sep = false;
                for c in name.trim().chars() {
                    if matches!(c, '-' | '_' | '.') {
                        sep = true;
                    } else {
                        if sep && !out.is_empty() {
                            out.push('-');
                        }
                        sep = false;
                        out.push(c.to_ascii_lowercase());
                    }
                }
                out
            }
            Ecosystem::CratesIo => name.trim().to_ascii_lowercase().replace('_', "-"),
            Ecosystem::Npm => name.trim().to_owned(),
        }
    }

    /// Compares two versions in this ecosystem's order; `None` when either does not parse.
    pub fn compare(self, a: &str, b: &str) -> Option<Ordering> {
        match self {
            Ecosystem::Npm | Ecosystem::CratesIo => {
                let (a, b) = (semver_lenient(a)?, semver_lenient(b)?);
                Some(a.cmp_precedence(&b))
            }
            Ecosystem::PyPI => {
                let (a, b) = (pep440_rs::Version::from_str(a).ok()?, pep440_rs::Version::from_str(b).ok()?);
                Some(a.cmp(&b))
            }
        }
    }
}

/// Semantic versions as registries write them: a leading `v` or `=` is tolerated, and `0` (OSV's
/// "since the beginning") is `0.0.0`.
fn semver_lenient(v: &str) -> Option<semver::Version> {
    let v = v.trim().trim_start_matches(['v', '=']);
    if v == "0" {
        return Some(semver::Version::new(0, 0, 0));
    }
    semver::Version::parse(v).ok()
}

/// One OSV advisory (the fields we use).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advisory {
    pub id: String,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub withdrawn: Option<String>,
    #[serde(default)]
    pub affected: Vec<Affected>,
    #[serde(default)]
    pub severity: Vec<SeverityScore>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

/// A package an advisory affects, and in which versions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Affected {
    #[serde(default)]
    pub package: Option<Package>,
    #[serde(default)]
    pub ranges: Vec<Range>,
    #[serde(default)]
    pub versions: Vec<String>,
    #[serde(default)]
    pub database_specific: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Package {
    pub name: String,
    pub ecosystem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Range {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// One event of a range: exactly one field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Event {
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "version_string")]
    pub introduced: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "version_string")]
    pub fixed: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "version_string")]
    pub last_affected: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "version_string")]
    pub limit: Option<String>,
}

/// YAML advisories sometimes carry versions as numbers (`fixed: 2.0`); read them as text.
fn version_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(v.and_then(|v| match v {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeverityScore {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

impl Affected {
    /// Whether `version` of the package is affected, in `eco`'s order. `None` when no range of
    /// a type we can evaluate says yes or no and the list does not name it (GIT-only data, or an
    /// unparsable version): the caller reports that as unknown, never as safe.
    pub fn affects(&self, eco: Ecosystem, version: &str) -> Option<bool> {
        if self.versions.iter().any(|v| v == version || eco.compare(v, version) == Some(Ordering::Equal)) {
            return Some(true);
        }
        let mut evaluable = false;
        for range in &self.ranges {
            if !matches!(range.kind.as_str(), "SEMVER" | "ECOSYSTEM") {
                continue;
            }
            match range_affects(eco, &range.events, version) {
                Some(true) => return Some(true),
                Some(false) => evaluable = true,
                None => {}
            }
        }
        if evaluable || !self.versions.is_empty() { Some(false) } else { None }
    }
}

/// OSV's algorithm: walk events in version order; `introduced` at or below the version turns
/// "affected" on, `fixed` at or below turns it off, `last_affected` below it turns it off.
fn range_affects(eco: Ecosystem, events: &[Event], version: &str) -> Option<bool> {
    // Every event version must parse, or the range is not evaluable.
    let mut keyed: Vec<(&str, &Event)> = Vec::with_capacity(events.len());
    for e in events {
        let v = e.introduced.as_deref().or(e.fixed.as_deref()).or(e.last_affected.as_deref()).or(e.limit.as_deref())?;
        eco.compare(v, v)?;
        keyed.push((v, e));
    }
    eco.compare(version, version)?;
    keyed.sort_by(|a, b| eco.compare(a.0, b.0).unwrap_or(Ordering::Equal));
    let mut affected = false;
    for (v, e) in keyed {
        let ord = eco.compare(v, version)?;
        if e.introduced.is_some() && ord != Ordering::Greater {
            affected = true;
        } else if (e.fixed.is_some() && ord != Ordering::Greater)
            || (e.last_affected.is_some() && ord == Ordering::Less)
        {
            affected = false;
        }
    }
    Some(affected)
}

impl Advisory {
    /// Our severity for it: the database's own label when it has one (GitHub: LOW, MODERATE,
    /// HIGH, CRITICAL), else from a CVSS v3 base score's band when one is given, else `high`
    /// (a known vulnerability without a rating is treated as serious until someone rates it).
    pub fn severity(&self) -> &'static str {
        let db = self.database_specific.as_ref();
        // RustSec's informational advisories (unmaintained, unsound) are not vulnerabilities.
        if db.and_then(|d| d.get("informational")).is_some_and(serde_json::Value::is_string) {
            return "low";
        }
        if let Some(band) = db.and_then(|d| d.get("cvss")).and_then(serde_json::Value::as_str).and_then(cvss3_impact) {
            return band;
        }
        let label = self
            .database_specific
            .as_ref()
            .and_then(|d| d.get("severity"))
            .and_then(serde_json::Value::as_str)
            .map(str::to_ascii_uppercase);
        match label.as_deref() {
            Some("LOW") => return "low",
            Some("MODERATE" | "MEDIUM") => return "medium",
            Some("HIGH") => return "high",
            Some("CRITICAL") => return "critical",
            _ => {}
        }
        if let Some(score) =
            self.severity.iter().find(|s| s.kind.starts_with("CVSS_V3")).and_then(|s| cvss3_impact(&s.score))
        {
            return score;
        }
        "high"
    }

    /// The lowest fixed version named for the package, for the finding's message.
    pub fn fixed_in(&self, eco: Ecosystem, name: &str) -> Option<String> {
        let mut fixed: Vec<&str> = self
            .affected
            .iter()
            .filter(|a| a.package.as_ref().is_some_and(|p| eco.normalize(&p.name) == eco.normalize(name)))
            .flat_map(|a| a.ranges.iter().flat_map(|r| r.events.iter().filter_map(|e| e.fixed.as_deref())))
            .filter(|v| eco.compare(v, v).is_some())
            .collect();
        fixed.sort_by(|a, b| eco.compare(a, b).unwrap_or(Ordering::Equal));
        fixed.first().map(|s| (*s).to_owned())
    }
}

/// A coarse band from a CVSS v3 vector's impact metrics (C/I/A) and attack vector, without
/// computing the full base score: enough to rank findings.
fn cvss3_impact(vector: &str) -> Option<&'static str> {
    let metric =
        |name: &str| vector.split('/').find_map(|part| part.strip_prefix(name).and_then(|v| v.strip_prefix(':')));
    let highs = ["C", "I", "A"].iter().filter(|m| metric(m) == Some("H")).count();
    let lows = ["C", "I", "A"].iter().filter(|m| metric(m) == Some("L")).count();
    let network = metric("AV") == Some("N");
    Some(match (highs, lows, network) {
        (h, _, true) if h >= 2 => "critical",
        (h, _, _) if h >= 1 => "high",
        (0, l, _) if l >= 1 => "medium",
        _ => "low",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, v: &str) -> Event {
        let mut e = Event::default();
        match kind {
            "i" => e.introduced = Some(v.into()),
            "f" => e.fixed = Some(v.into()),
            "l" => e.last_affected = Some(v.into()),
            _ => e.limit = Some(v.into()),
        }
        e
    }

    fn affected(kind: &str, events: Vec<Event>, versions: &[&str]) -> Affected {
        Affected {
            package: None,
            ranges: vec![Range { kind: kind.into(), events }],
            versions: versions.iter().map(|s| (*s).to_owned()).collect(),
            database_specific: None,
        }
    }

    #[test]
    fn semver_ranges_follow_the_event_algorithm() {
        let a = affected("SEMVER", vec![ev("i", "0"), ev("f", "0.2.23")], &[]);
        assert_eq!(a.affects(Ecosystem::CratesIo, "0.1.45"), Some(true));
        assert_eq!(a.affects(Ecosystem::CratesIo, "0.2.23"), Some(false));
        assert_eq!(a.affects(Ecosystem::CratesIo, "0.3.0"), Some(false));
        // Several introduced/fixed pairs, out of order.
        let a = affected("SEMVER", vec![ev("i", "6.0.0"), ev("f", "6.3.1"), ev("i", "0"), ev("f", "5.7.2")], &[]);
        assert_eq!(a.affects(Ecosystem::Npm, "5.7.1"), Some(true));
        assert_eq!(a.affects(Ecosystem::Npm, "5.7.2"), Some(false));
        assert_eq!(a.affects(Ecosystem::Npm, "6.1.0"), Some(true));
        assert_eq!(a.affects(Ecosystem::Npm, "6.3.1"), Some(false));
        // last_affected is inclusive; prereleases order before their release.
        let a = affected("SEMVER", vec![ev("i", "1.0.0"), ev("l", "1.4.0")], &[]);
        assert_eq!(a.affects(Ecosystem::Npm, "1.4.0"), Some(true));
        assert_eq!(a.affects(Ecosystem::Npm, "1.4.1"), Some(false));
        assert_eq!(a.affects(Ecosystem::Npm, "1.0.0-rc.1"), Some(false));
    }

    #[test]
    fn pep440_orders_python_versions() {
        let a = affected("ECOSYSTEM", vec![ev("i", "2.3.0"), ev("f", "2.31.0")], &[]);
        assert_eq!(a.affects(Ecosystem::PyPI, "2.30.0"), Some(true));
        assert_eq!(a.affects(Ecosystem::PyPI, "2.31.0"), Some(false));
        assert_eq!(a.affects(Ecosystem::PyPI, "2.2.1"), Some(false));
        assert_eq!(a.affects(Ecosystem::PyPI, "2.31.0rc1"), Some(true), "a pre-release of the fix is before it");
        assert_eq!(a.affects(Ecosystem::PyPI, "2.4"), Some(true), "2.4 == 2.4.0");
    }

    #[test]
    fn unevaluable_data_is_unknown_not_safe() {
        let git = affected("GIT", vec![ev("i", "0"), ev("f", "74ea7cf7")], &[]);
        assert_eq!(git.affects(Ecosystem::PyPI, "1.0"), None);
        let listed = affected("GIT", vec![ev("i", "0")], &["1.0", "1.1"]);
        assert_eq!(listed.affects(Ecosystem::PyPI, "1.1"), Some(true));
        assert_eq!(listed.affects(Ecosystem::PyPI, "1.2"), Some(false));
        let a = affected("SEMVER", vec![ev("i", "0"), ev("f", "1.0.0")], &[]);
        assert_eq!(a.affects(Ecosystem::Npm, "not-a-version"), None);
    }

    #[test]
    fn names_normalize_per_ecosystem() {
        assert_eq!(Ecosystem::PyPI.normalize("Django_REST.framework"), "django-rest-framework");
        assert_eq!(Ecosystem::CratesIo.normalize("serde_json"), "serde-json");
        assert_eq!(Ecosystem::Npm.normalize("@babel/core"), "@babel/core");
    }
}
