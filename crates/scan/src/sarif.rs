//! SARIF 2.1.0 output, for code-scanning dashboards and CI annotations.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::report::{Policy, Report};
use crate::{Detector, Severity};

/// GitHub's `security-severity` scale (0–10) for each of our severities.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Low => "3.0",
        Severity::Medium => "5.5",
        Severity::High => "8.0",
        Severity::Critical => "9.5",
    }
}

/// Renders a report as a SARIF 2.1.0 log: one run, the rules that fired, one result per
/// finding. Blocking findings are `error`, the rest `warning`.
pub fn to_sarif(report: &Report, detector: &Detector, policy: &Policy) -> Value {
    let fired: BTreeMap<&str, usize> = {
        let mut ids: Vec<&str> = report.findings.iter().map(|f| f.rule_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect()
    };
    let rules: Vec<Value> = fired
        .keys()
        .map(|id| {
            let rule = detector.rules().iter().find(|r| r.id == *id);
            let first = report.findings.iter().find(|f| f.rule_id == *id);
            let kind = first.map_or("secret", |f| f.kind.as_str());
            let description = rule.map_or_else(
                || match (kind, first) {
                    ("code", Some(f)) => f.title.clone(),
                    _ => format!("Dependency check {id}"),
                },
                |r| r.description.clone(),
            );
            let severity = rule.map(|r| r.severity).or(first.map(|f| f.severity)).unwrap_or(Severity::High);
            let help = if kind == "dependency" {
                "Upgrade to a fixed version, pin the dependency in a lockfile, or remove it."
            } else if kind == "code" {
                "Rewrite the code without the dangerous pattern; the rule's note in gatehouse says how."
            } else {
                "Rotate the credential at its provider, then keep it in the Gatehouse vault and reach it through an integration instead of the code."
            };
            json!({
                "id": id,
                "name": camel(id),
                "shortDescription": {"text": format!("{description}.")},
                "fullDescription": {"text": format!("{description}.")},
                "help": {"text": help},
                "defaultConfiguration": {"level": if severity >= policy.block_at { "error" } else { "warning" }},
                "properties": {"tags": ["security", kind], "security-severity": security_severity(severity)},
            })
        })
        .collect();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|f| {
            let mut result = json!({
                "ruleId": f.rule_id,
                "ruleIndex": fired[f.rule_id.as_str()],
                "level": if policy.blocks(f) { "error" } else { "warning" },
                "message": {"text": match &f.preview {
                    Some(p) => format!("{} ({}): {p}.", f.title, f.severity.as_str()),
                    None => format!("{} ({}).", f.title, f.severity.as_str()),
                }},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri(&f.path), "uriBaseId": "%SRCROOT%"},
                        "region": {"startLine": f.line.max(1), "startColumn": f.column.max(1), "endLine": f.end_line.max(1), "endColumn": f.end_column.max(1)},
                    }
                }],
            });
            if let Some(fp) = &f.fingerprint {
                result["partialFingerprints"] = json!({"secretFingerprint/v1": fp});
            }
            result
        })
        .collect();
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "gatehouse",
                "informationUri": "https://github.com/gatehouse-dev/gatehouse",
                "semanticVersion": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            }},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": "file:///", "description": {"text": "The scanned directory."}}},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    })
}

/// `aws-access-key-id` → `AwsAccessKeyId` (SARIF rule names are identifiers).
fn camel(id: &str) -> String {
    id.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// A relative URI reference for a path (percent-encoding what URIs do not allow).
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert_eq!(camel("aws-access-key-id"), "AwsAccessKeyId");
        assert_eq!(uri("src/my file#1.py"), "src/my%20file%231.py");
        assert_eq!(uri("café"), "caf%C3%A9");
    }
}
