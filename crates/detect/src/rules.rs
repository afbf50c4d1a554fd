//! Rule files: our own pack and gitleaks-format TOML, parsed into compiled rules.
//!
//! One format serves both. Our pack is a gitleaks rule file with a few extra keys that gitleaks
//! ignores (`severity`, `minCharClasses`, `validate`, `[rules.tests]`), so a company's existing
//! `gitleaks.toml` loads unchanged and our own rules stay readable by gitleaks users.

use std::collections::HashSet;
use std::path::Path;

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use crate::DetectError;

/// How bad a leaked credential of this kind is; policy decides which severities block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The lowercase name used in rule files, reports and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "low" => Ok(Severity::Low),
            "medium" => Ok(Severity::Medium),
            "high" => Ok(Severity::High),
            "critical" => Ok(Severity::Critical),
            other => Err(format!("unknown severity {other:?} (expected low, medium, high or critical)")),
        }
    }
}

/// A structural check a regex cannot express, applied to the candidate secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Validator {
    /// Base64 that decodes to printable `user:password` text (HTTP Basic credentials).
    BasicAuth,
    /// A JWS compact token whose header decodes to a JSON object naming an `alg`.
    Jwt,
    /// `user:password` (quotes allowed) where the password, or the user when the password is
    /// empty, is not a placeholder, variable or template.
    UserPassword,
}

/// What an allowlist regex is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegexTarget {
    /// The extracted secret (gitleaks' default).
    Secret,
    /// The whole regex match, including context around the secret.
    Match,
    /// The full line or lines the match sits on.
    Line,
}

/// A compiled allowlist: a finding it covers is dropped.
#[derive(Debug, Clone)]
pub struct Allowlist {
    pub description: Option<String>,
    /// `true` when every criterion present must hold (gitleaks `condition = "AND"`).
    pub all: bool,
    pub paths: Vec<Regex>,
    pub regexes: Vec<Regex>,
    pub regex_target: RegexTarget,
    /// Lowercased; a secret containing any of them is allowed.
    pub stopwords: Vec<String>,
    /// For global allowlists: the rule ids it applies to (empty: all rules).
    pub target_rules: Vec<String>,
}

/// A compiled detection rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    /// `None` for path-only rules (the file itself is the finding, e.g. a keystore).
    pub regex: Option<Regex>,
    /// Capture group holding the secret; 0 means the first non-empty group, or the whole match.
    pub secret_group: usize,
    pub entropy: Option<f64>,
    /// Lowercased; the rule runs only on text containing one of them (empty: always runs).
    pub keywords: Vec<String>,
    pub path: Option<Regex>,
    pub tags: Vec<String>,
    pub min_char_classes: u8,
    pub validate: Option<Validator>,
    pub allowlists: Vec<Allowlist>,
    /// Texts the rule must report (our packs carry them so every rule is tested).
    pub positive: Vec<String>,
    /// Texts the rule must not report.
    pub negative: Vec<String>,
}

/// A parsed rule file: rules plus global allowlists.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub title: Option<String>,
    pub rules: Vec<Rule>,
    pub allowlists: Vec<Allowlist>,
    /// Keys present in the file that we read but do not act on (reported, never silently dropped).
    pub ignored: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawConfig {
    title: Option<String>,
    extend: Option<RawExtend>,
    #[serde(default)]
    rules: Vec<RawRule>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawExtend {
    #[serde(default)]
    use_default: bool,
    path: Option<String>,
    #[serde(default)]
    disabled_rules: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRule {
    id: String,
    description: Option<String>,
    regex: Option<String>,
    secret_group: Option<usize>,
    entropy: Option<f64>,
    #[serde(default)]
    keywords: Vec<String>,
    path: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    allowlist: Option<RawAllowlist>,
    #[serde(default)]
    allowlists: Vec<RawAllowlist>,
    severity: Option<Severity>,
    min_char_classes: Option<u8>,
    validate: Option<Validator>,
    tests: Option<RawTests>,
}

#[derive(Deserialize)]
struct RawTests {
    #[serde(default)]
    positive: Vec<String>,
    #[serde(default)]
    negative: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawAllowlist {
    description: Option<String>,
    condition: Option<String>,
    #[serde(default)]
    commits: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    regex_target: Option<String>,
    #[serde(default)]
    regexes: Vec<String>,
    #[serde(default)]
    stopwords: Vec<String>,
    #[serde(default)]
    target_rules: Vec<String>,
}

/// Our built-in rule pack, compiled into the binary.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

impl RuleSet {
    /// The built-in pack.
    pub fn builtin() -> Result<RuleSet, DetectError> {
        RuleSet::parse(DEFAULT_RULES, "builtin")
    }

    /// Parses rule-file text; `origin` names it in errors. `[extend]` is refused here (no base directory).
    pub fn parse(text: &str, origin: &str) -> Result<RuleSet, DetectError> {
        Self::parse_inner(text, origin, None, 0)
    }

    /// Loads a rule file, following `[extend] path` relative to it and `useDefault` (our pack).
    pub fn load(path: &Path) -> Result<RuleSet, DetectError> {
        Self::load_depth(path, 0)
    }

    fn load_depth(path: &Path, depth: u8) -> Result<RuleSet, DetectError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| DetectError::Read { path: path.display().to_string(), reason: e.to_string() })?;
        Self::parse_inner(&text, &path.display().to_string(), path.parent(), depth)
    }

    fn parse_inner(text: &str, origin: &str, base: Option<&Path>, depth: u8) -> Result<RuleSet, DetectError> {
        let raw: RawConfig = toml::from_str(text)
            .map_err(|e| DetectError::Config { origin: origin.to_string(), reason: e.message().to_string() })?;
        let config_err = |reason: String| DetectError::Config { origin: origin.to_string(), reason };
        let mut set = RuleSet { title: raw.title, ..RuleSet::default() };

        let mut parent = None;
        let mut disabled = HashSet::new();
        if let Some(extend) = raw.extend {
            if depth >= 2 {
                return Err(config_err("[extend] nests deeper than two files".into()));
            }
            disabled.extend(extend.disabled_rules);
            parent = match (extend.use_default, extend.path) {
                (true, Some(_)) => return Err(config_err("[extend] sets both useDefault and path".into())),
                (true, None) => Some(RuleSet::builtin()?),
                (false, Some(p)) => {
                    let base = base.ok_or_else(|| config_err("[extend] path needs a rule file on disk".into()))?;
                    Some(Self::load_depth(&base.join(p), depth + 1)?)
                }
                (false, None) => None,
            };
        }

        for raw_allow in raw.allowlist.into_iter().chain(raw.allowlists) {
            set.allowlists.push(compile_allowlist(raw_allow, origin, "global allowlist", &mut set.ignored)?);
        }
        let mut seen = HashSet::new();
        for raw_rule in raw.rules {
            if raw_rule.id.trim().is_empty() {
                return Err(config_err("a rule has an empty id".into()));
            }
            if !seen.insert(raw_rule.id.clone()) {
                return Err(config_err(format!("rule {:?} is defined twice", raw_rule.id)));
            }
            set.rules.push(compile_rule(raw_rule, origin, &mut set.ignored)?);
        }

        if let Some(parent) = parent {
            // Rules in the extending file replace same-id parent rules (gitleaks merges them; replacing
            // is simpler to reason about and is what a company overriding one of our rules means).
            let own: HashSet<String> = set.rules.iter().map(|r| r.id.clone()).collect();
            let mut merged: Vec<Rule> = parent.rules.into_iter().filter(|r| !own.contains(&r.id)).collect();
            merged.append(&mut set.rules);
            set.rules = merged;
            set.allowlists.extend(parent.allowlists);
            set.ignored.extend(parent.ignored);
        }
        set.rules.retain(|r| !disabled.contains(&r.id));
        Ok(set)
    }
}

fn compile_regex(pattern: &str, origin: &str, what: &str) -> Result<Regex, DetectError> {
    // Byte-oriented (ASCII `\w`, `\b`, `.`) first: it keeps the DFA fast on any input and bounded
    // repetitions small; patterns that need Unicode classes (`\p{L}`) fall back to Unicode mode.
    let build =
        |unicode: bool| regex::bytes::RegexBuilder::new(pattern).unicode(unicode).size_limit(32 * 1024 * 1024).build();
    build(false).or_else(|_| build(true)).map_err(|e| DetectError::Config {
        origin: origin.to_string(),
        reason: format!("{what}: invalid regex: {}", first_line(&e.to_string())),
    })
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

fn compile_rule(raw: RawRule, origin: &str, ignored: &mut Vec<String>) -> Result<Rule, DetectError> {
    let what = format!("rule {:?}", raw.id);
    let regex = raw.regex.as_deref().map(|p| compile_regex(p, origin, &what)).transpose()?;
    let path = raw.path.as_deref().map(|p| compile_regex(p, origin, &format!("{what} path"))).transpose()?;
    if regex.is_none() && path.is_none() {
        return Err(DetectError::Config {
            origin: origin.to_string(),
            reason: format!("{what} has neither regex nor path"),
        });
    }
    if let (Some(re), Some(group)) = (&regex, raw.secret_group)
        && group >= re.captures_len()
    {
        return Err(DetectError::Config {
            origin: origin.to_string(),
            reason: format!("{what}: secretGroup {group} but the regex has {} groups", re.captures_len() - 1),
        });
    }
    let mut allowlists = Vec::new();
    for a in raw.allowlist.into_iter().chain(raw.allowlists) {
        allowlists.push(compile_allowlist(a, origin, &what, ignored)?);
    }
    let (positive, negative) = raw.tests.map(|t| (t.positive, t.negative)).unwrap_or_default();
    Ok(Rule {
        description: raw.description.unwrap_or_else(|| raw.id.clone()),
        severity: raw.severity.unwrap_or(Severity::High),
        regex,
        secret_group: raw.secret_group.unwrap_or(0),
        entropy: raw.entropy,
        keywords: raw.keywords.iter().map(|k| k.to_lowercase()).filter(|k| !k.is_empty()).collect(),
        path,
        tags: raw.tags,
        min_char_classes: raw.min_char_classes.unwrap_or(0),
        validate: raw.validate,
        allowlists,
        positive,
        negative,
        id: raw.id,
    })
}

fn compile_allowlist(
    raw: RawAllowlist,
    origin: &str,
    what: &str,
    ignored: &mut Vec<String>,
) -> Result<Allowlist, DetectError> {
    let err = |reason: String| DetectError::Config { origin: origin.to_string(), reason: format!("{what}: {reason}") };
    let all = match raw.condition.as_deref().map(str::to_ascii_uppercase).as_deref() {
        None | Some("OR") => false,
        Some("AND") => true,
        Some(other) => return Err(err(format!("allowlist condition {other:?} (expected OR or AND)"))),
    };
    let regex_target = match raw.regex_target.as_deref() {
        None | Some("secret") => RegexTarget::Secret,
        Some("match") => RegexTarget::Match,
        Some("line") => RegexTarget::Line,
        Some(other) => return Err(err(format!("regexTarget {other:?} (expected secret, match or line)"))),
    };
    if !raw.commits.is_empty() {
        // We scan trees and diffs, not history; a commit allowlist has nothing to match.
        ignored.push(format!("{what}: allowlist commits"));
    }
    let paths = raw.paths.iter().map(|p| compile_regex(p, origin, what)).collect::<Result<Vec<_>, _>>()?;
    let regexes = raw.regexes.iter().map(|p| compile_regex(p, origin, what)).collect::<Result<Vec<_>, _>>()?;
    if paths.is_empty() && regexes.is_empty() && raw.stopwords.is_empty() && raw.commits.is_empty() {
        return Err(err("allowlist has no paths, regexes or stopwords".into()));
    }
    Ok(Allowlist {
        description: raw.description,
        all,
        paths,
        regexes,
        regex_target,
        stopwords: raw.stopwords.iter().map(|s| s.to_lowercase()).filter(|s| !s.is_empty()).collect(),
        target_rules: raw.target_rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_pack_parses() {
        let set = RuleSet::builtin().unwrap();
        assert!(set.rules.len() >= 40, "{} rules", set.rules.len());
        assert!(set.ignored.is_empty());
    }

    #[test]
    fn errors_name_the_problem() {
        let cases = [
            ("[[rules]]\nid = 'a'\nregex = '('", "invalid regex"),
            ("[[rules]]\nid = 'a'", "neither regex nor path"),
            ("[[rules]]\nid = 'a'\nregex = 'x'\n[[rules]]\nid = 'a'\nregex = 'y'", "defined twice"),
            ("[[rules]]\nid = 'a'\nregex = 'x'\nsecretGroup = 2", "secretGroup 2"),
            ("[[rules]]\nid = 'a'\nregex = 'x'\n[[rules.allowlists]]\ncondition = 'XOR'\nstopwords=['a']", "XOR"),
            ("[[rules]]\nid = 'a'\nregex = 'x'\nseverity = 'dire'", "unknown variant"),
            ("[extend]\nuseDefault = true\npath = 'x.toml'", "both useDefault and path"),
            ("[extend]\npath = 'x.toml'", "needs a rule file on disk"),
            ("rules = 3", "invalid type"),
        ];
        for (text, want) in cases {
            let err = RuleSet::parse(text, "t.toml").unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("t.toml"), "{err}");
        }
    }

    #[test]
    fn extend_default_overrides_and_disables() {
        let text = "[extend]\nuseDefault = true\ndisabledRules = ['jwt']\n\
                    [[rules]]\nid = 'github-pat'\nregex = 'ghp_custom'\nseverity = 'low'\n";
        let set = RuleSet::parse_inner(text, "t", None, 0).unwrap();
        assert!(!set.rules.iter().any(|r| r.id == "jwt"));
        let gh: Vec<_> = set.rules.iter().filter(|r| r.id == "github-pat").collect();
        assert_eq!(gh.len(), 1);
        assert_eq!(gh[0].severity, Severity::Low);
        assert!(set.rules.len() > 30);
    }

    #[test]
    fn commit_allowlists_are_reported_as_ignored() {
        let text = "[[rules]]\nid = 'a'\nregex = 'x'\n[rules.allowlist]\ncommits = ['abc']\n";
        let set = RuleSet::parse(text, "t").unwrap();
        assert_eq!(set.ignored, vec!["rule \"a\": allowlist commits".to_string()]);
    }
}
