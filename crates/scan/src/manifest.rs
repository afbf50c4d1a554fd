//! Manifest checks: what the code does, compared with what `gatehouse.toml` declares.
//!
//! Today that is network egress: a direct call to a host the manifest's `[egress] allow` list
//! names is declared and not reported; a direct call to any other host becomes an
//! `undeclared-egress` finding. (Checking the code's use of integrations against
//! `[[integrations]]` needs the gateway SDK the data plane will provide; see the architecture
//! document.)

use gatehouse_bundle::Manifest;

use crate::Severity;
use crate::report::{Finding, Kind, Report, Skipped};

/// The host (and port) of a URL literal as written in code: quotes, string prefixes and the
/// path are removed; `None` when the host is not literal (`https://${host}/`).
pub(crate) fn literal_host(url: &str) -> Option<String> {
    let s = url.trim_start_matches(['r', 'b', 'u', 'f', 'R', 'B', 'U', 'F']).trim_matches(['\'', '"', '`']);
    let rest = s.split_once("://")?.1;
    let end = rest.find(['/', '?', '#', '\'', '"', '`']).unwrap_or(rest.len());
    let host = &rest[..end];
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.contains(['$', '{', '}', ' ']) {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Whether `[egress] allow` covers `host` (`host`, `host:port`, or `*.domain`).
fn allowed(allow: &[String], host: &str) -> bool {
    let bare = host.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())).map_or(host, |(h, _)| h);
    allow.iter().any(|pattern| {
        let pattern = pattern.to_ascii_lowercase();
        pattern == host
            || pattern == bare
            || pattern.strip_prefix("*.").is_some_and(|domain| bare.ends_with(&format!(".{domain}")))
    })
}

/// Applies the manifest's declarations to a report's findings.
pub(crate) fn apply(report: &mut Report, manifest_text: &str) {
    let manifest = match Manifest::parse(manifest_text, None) {
        Ok(m) => m,
        Err(e) => {
            report.skipped.push(Skipped {
                path: "gatehouse.toml".into(),
                reason: format!("manifest not checked against the code: {e}"),
            });
            return;
        }
    };
    let mut kept = Vec::with_capacity(report.findings.len());
    for f in std::mem::take(&mut report.findings) {
        let direct = f.kind == Kind::Code && f.rule_id.ends_with("direct-network-call");
        let host = f.url.as_deref().and_then(literal_host);
        match (direct, host) {
            (true, Some(host)) if allowed(&manifest.egress.allow, &host) => {}
            (true, Some(host)) => kept.push(Finding {
                kind: Kind::Manifest,
                rule_id: "undeclared-egress".into(),
                title: format!(
                    "calls {host} directly, which gatehouse.toml does not declare: use an integration through the \
                     gateway, or add the host to [egress] allow"
                ),
                severity: Severity::High,
                ..f
            }),
            _ => kept.push(f),
        }
    }
    report.findings = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_from_literals() {
        assert_eq!(literal_host("'https://api.example.com/v1?x=1'").as_deref(), Some("api.example.com"));
        assert_eq!(literal_host("f\"https://Hooks.Slack.com/x\"").as_deref(), Some("hooks.slack.com"));
        assert_eq!(literal_host("`wss://stream.example.com:8443`").as_deref(), Some("stream.example.com:8443"));
        assert_eq!(literal_host("`https://${host}/x`"), None);
        assert_eq!(literal_host("'/relative'"), None);
    }

    #[test]
    fn egress_patterns() {
        let allow = vec!["api.example.com".to_owned(), "*.corp.example".to_owned(), "db.example:5432".to_owned()];
        assert!(allowed(&allow, "api.example.com"));
        assert!(allowed(&allow, "api.example.com:443"));
        assert!(allowed(&allow, "eu.corp.example"));
        assert!(!allowed(&allow, "corp.example.evil.com"));
        assert!(allowed(&allow, "db.example:5432"));
        assert!(!allowed(&allow, "other.example.com"));
    }
}
