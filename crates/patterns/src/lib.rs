//! Code-pattern analysis for JavaScript, TypeScript and Python with real parsers.
//!
//! Files are parsed with tree-sitter grammars and matched structurally by ast-grep, so a rule
//! about `eval(...)` matches the call and not the word in a comment or a string. Rules are
//! ast-grep's documented YAML format (`rules/*.yml`), with two metadata keys of ours:
//! `severity` and `languages` (further languages a rule also runs on — TypeScript and TSX parse
//! JavaScript patterns). Every rule has positive and negative examples in `rule-tests/`, in
//! ast-grep's test format, which the test suite runs.

use std::collections::BTreeMap;

use ast_grep_config::{GlobalRules, RuleConfig};
use ast_grep_language::{LanguageExt, SupportLang};

/// One match of a rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternFinding {
    pub rule_id: String,
    /// The rule's message.
    pub title: String,
    /// `low`, `medium`, `high` or `critical`.
    pub severity: &'static str,
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// The text bound to `$URL` when the rule names one (the host a network call reaches).
    pub url: Option<String>,
}

/// Why rules could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("pattern rules {origin}: {reason}")]
pub struct PatternError {
    pub origin: String,
    pub reason: String,
}

/// A compiled rule for one language.
pub struct Rule {
    pub id: String,
    pub message: String,
    pub note: Option<String>,
    pub severity: &'static str,
    pub language: SupportLang,
    config: RuleConfig<SupportLang>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule").field("id", &self.id).field("language", &self.language).finish_non_exhaustive()
    }
}

/// Compiled rules, grouped by language.
#[derive(Debug, Default)]
pub struct Patterns {
    rules: Vec<Rule>,
}

/// Our built-in rule files.
pub const BUILTIN: [(&str, &str); 2] =
    [("javascript.yml", include_str!("../rules/javascript.yml")), ("python.yml", include_str!("../rules/python.yml"))];

/// Their examples, in ast-grep's test format.
pub const BUILTIN_TESTS: [(&str, &str); 2] = [
    ("javascript-test.yml", include_str!("../rule-tests/javascript-test.yml")),
    ("python-test.yml", include_str!("../rule-tests/python-test.yml")),
];

/// The language a file is parsed as, by its extension.
pub fn language_of(path: &str) -> Option<SupportLang> {
    let ext = path.rsplit_once('.').map(|(_, e)| e)?;
    Some(match ext {
        "js" | "mjs" | "cjs" | "jsx" => SupportLang::JavaScript,
        "ts" | "mts" | "cts" => SupportLang::TypeScript,
        "tsx" => SupportLang::Tsx,
        "py" => SupportLang::Python,
        _ => return None,
    })
}

fn severity_of(doc: &serde_yaml_ng::Value) -> Result<&'static str, String> {
    if let Some(s) = doc.get("metadata").and_then(|m| m.get("severity")) {
        return match s.as_str() {
            Some("low") => Ok("low"),
            Some("medium") => Ok("medium"),
            Some("high") => Ok("high"),
            Some("critical") => Ok("critical"),
            _ => Err(format!("metadata.severity {s:?} (expected low, medium, high or critical)")),
        };
    }
    Ok(match doc.get("severity").and_then(serde_yaml_ng::Value::as_str) {
        Some("error") => "high",
        Some("warning") => "medium",
        _ => "low",
    })
}

impl Patterns {
    /// The built-in rules.
    pub fn builtin() -> Result<Patterns, PatternError> {
        let mut all = Patterns::default();
        for (name, text) in BUILTIN {
            all.rules.extend(Patterns::parse(text, name)?.rules);
        }
        Ok(all)
    }

    /// Reads and parses a rule file.
    pub fn load(path: &std::path::Path) -> Result<Patterns, PatternError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| PatternError { origin: origin.clone(), reason: format!("cannot read it: {e}") })?;
        Patterns::parse(&text, &origin)
    }

    /// Parses a rule file (YAML documents separated by `---`).
    pub fn parse(text: &str, origin: &str) -> Result<Patterns, PatternError> {
        let err = |reason: String| PatternError { origin: origin.to_owned(), reason };
        let mut rules = Vec::new();
        for (n, doc) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let value = <serde_yaml_ng::Value as serde::Deserialize>::deserialize(doc)
                .map_err(|e| err(format!("document {}: {e}", n + 1)))?;
            if value.is_null() {
                continue;
            }
            let id = value.get("id").and_then(serde_yaml_ng::Value::as_str).unwrap_or("?").to_owned();
            let severity = severity_of(&value).map_err(|e| err(format!("rule {id}: {e}")))?;
            let base = value.get("language").and_then(serde_yaml_ng::Value::as_str).unwrap_or_default().to_owned();
            let mut langs = vec![base];
            if let Some(extra) = value.get("metadata").and_then(|m| m.get("languages")).and_then(|l| l.as_sequence()) {
                langs.extend(extra.iter().filter_map(|l| l.as_str().map(str::to_owned)));
            }
            for lang in langs {
                let mut doc = value.clone();
                if let Some(map) = doc.as_mapping_mut() {
                    map.insert("language".into(), lang.clone().into());
                    // Our metadata is ours; ast-grep only carries it.
                    map.remove("metadata");
                }
                let yaml = serde_yaml_ng::to_string(&doc).map_err(|e| err(format!("rule {id}: {e}")))?;
                let parsed = ast_grep_config::from_yaml_string::<SupportLang>(&yaml, &GlobalRules::default())
                    .map_err(|e| err(format!("rule {id} ({lang}): {e}")))?;
                for config in parsed {
                    rules.push(Rule {
                        id: config.id.clone(),
                        message: config.message.clone(),
                        note: config.note.clone(),
                        severity,
                        language: config.language,
                        config,
                    });
                }
            }
        }
        Ok(Patterns { rules })
    }

    /// Adds another file's rules.
    pub fn extend(&mut self, other: Patterns) {
        self.rules.extend(other.rules);
    }

    /// The compiled rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Distinct rule ids.
    pub fn ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.rules.iter().map(|r| r.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Scans one file's source; files of other languages give nothing.
    pub fn scan(&self, path: &str, source: &str) -> Vec<PatternFinding> {
        let Some(lang) = language_of(path) else { return Vec::new() };
        self.scan_as(lang, path, source, None)
    }

    /// Scans `source` as `lang`, with every rule or only `only`.
    pub fn scan_as(&self, lang: SupportLang, path: &str, source: &str, only: Option<&str>) -> Vec<PatternFinding> {
        let applicable: Vec<&Rule> =
            self.rules.iter().filter(|r| r.language == lang && only.is_none_or(|id| r.id == id)).collect();
        if applicable.is_empty() {
            return Vec::new();
        }
        let root = lang.ast_grep(source);
        let mut seen: BTreeMap<(usize, usize, &str), ()> = BTreeMap::new();
        let mut out = Vec::new();
        for rule in applicable {
            for m in root.root().find_all(&rule.config.matcher) {
                let (start, end) = (m.start_pos(), m.end_pos());
                let node = m.get_node();
                let key = (start.line(), start.column(node), rule.id.as_str());
                if seen.insert(key, ()).is_some() {
                    continue;
                }
                out.push(PatternFinding {
                    rule_id: rule.id.clone(),
                    title: rule.message.clone(),
                    severity: rule.severity,
                    path: path.to_owned(),
                    line: start.line() + 1,
                    column: start.column(node) + 1,
                    end_line: end.line() + 1,
                    end_column: end.column(node) + 1,
                    url: m.get_env().get_match("URL").map(|n| n.text().into_owned()),
                });
            }
        }
        out.sort_by(|a, b| (a.line, a.column, &a.rule_id).cmp(&(b.line, b.column, &b.rule_id)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct RuleTest {
        id: String,
        #[serde(default)]
        valid: Vec<String>,
        #[serde(default)]
        invalid: Vec<String>,
    }

    #[test]
    fn every_rule_has_examples_and_they_hold() {
        let patterns = Patterns::builtin().unwrap();
        let mut tests: BTreeMap<String, RuleTest> = BTreeMap::new();
        for (name, text) in BUILTIN_TESTS {
            for doc in serde_yaml_ng::Deserializer::from_str(text) {
                let t = <RuleTest as serde::Deserialize>::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
                tests.insert(t.id.clone(), t);
            }
        }
        let mut failures = Vec::new();
        for id in patterns.ids() {
            let Some(t) = tests.get(id) else {
                failures.push(format!("{id}: no examples in rule-tests/"));
                continue;
            };
            if t.valid.is_empty() || t.invalid.is_empty() {
                failures.push(format!("{id}: needs valid and invalid examples"));
            }
            let langs: Vec<SupportLang> = patterns.rules().iter().filter(|r| r.id == id).map(|r| r.language).collect();
            for lang in langs {
                for code in &t.invalid {
                    if patterns.scan_as(lang, "t", code, Some(id)).is_empty() {
                        failures.push(format!("{id} ({lang}): missed {code:?}"));
                    }
                }
                for code in &t.valid {
                    if !patterns.scan_as(lang, "t", code, Some(id)).is_empty() {
                        failures.push(format!("{id} ({lang}): reported {code:?}"));
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
        assert!(tests.keys().all(|k| patterns.ids().contains(&k.as_str())), "examples for a rule that does not exist");
    }

    #[test]
    fn findings_carry_positions_and_the_language_follows_the_extension() {
        let p = Patterns::builtin().unwrap();
        let src = "import os\n\n# eval(x) in a comment is not a call\nx = 'eval(y)'\nresult = eval(user_input)\n";
        let found = p.scan("app/calc.py", src);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].rule_id.as_str(), found[0].line, found[0].column), ("py-eval-exec", 5, 10));
        assert!(p.scan("app/calc.rb", src).is_empty());
        let ts = "const f = (s: string): number => eval(s);\n";
        assert_eq!(p.scan("a.ts", ts)[0].rule_id, "js-eval");
        let tsx = "export const C = () => <div onClick={() => eval(code)} />;\n";
        assert_eq!(p.scan("a.tsx", tsx)[0].rule_id, "js-eval");
    }

    #[test]
    fn bad_rule_files_are_named() {
        let e = Patterns::parse("id: x\nlanguage: Cobol\nrule: {pattern: a}\n", "custom.yml").unwrap_err();
        assert!(e.to_string().contains("custom.yml") && e.to_string().contains("rule x"), "{e}");
        let e = Patterns::parse("id: x\nlanguage: Python\nmetadata: {severity: dire}\nrule: {pattern: a}\n", "c.yml")
            .unwrap_err();
        assert!(e.to_string().contains("dire"), "{e}");
        assert!(Patterns::parse("id: [", "c.yml").is_err());
    }
}
