//! The scanner: keyword prefilter, rule regexes, checks, allowlists and finding locations.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::DetectError;
use crate::rules::{Allowlist, RegexTarget, Rule, RuleSet, Severity, Validator};

/// Comments that silence a finding on their line (ours and gitleaks', so existing annotations work).
const INLINE_ALLOW: [&[u8]; 2] = [b"gatehouse:allow", b"gitleaks:allow"];

/// One detected credential. Holds no part of the secret beyond [`Finding::preview`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub rule_id: String,
    pub description: String,
    pub severity: Severity,
    pub path: String,
    /// 1-based line of the secret's first byte.
    pub line: usize,
    /// 1-based line of the secret's last byte.
    pub end_line: usize,
    /// 1-based column (in characters) where the secret starts.
    pub column: usize,
    /// 1-based column just past the secret on `end_line` (SARIF's exclusive end).
    pub end_column: usize,
    /// Byte offsets of the secret in the scanned input.
    pub start: usize,
    pub end: usize,
    /// `hmac-sha256:` and 32 hex digits: the same secret gives the same fingerprint under one key.
    pub fingerprint: String,
    /// At most a few leading characters, then a mask and the length.
    pub preview: String,
    pub entropy: f64,
}

/// A match before it is located: byte ranges in the scanned buffer.
#[derive(Debug, Clone, Copy)]
struct Hit {
    rule: usize,
    match_start: usize,
    match_end: usize,
    start: usize,
    end: usize,
}

/// Compiled rules ready to scan; cheap to share between threads.
pub struct Detector {
    rules: Vec<Rule>,
    global: Vec<Allowlist>,
    prefilter: Option<AhoCorasick>,
    /// For each prefilter pattern, the rules that keyword enables.
    keyword_rules: Vec<Vec<usize>>,
    /// Rules without keywords: they run on every input.
    always: Vec<usize>,
    key: [u8; 32],
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector").field("rules", &self.rules.len()).finish_non_exhaustive()
    }
}

impl Detector {
    /// Compiles `set`; `fingerprint_key` keys the fingerprints so they cannot be brute-forced offline.
    pub fn new(set: RuleSet, fingerprint_key: [u8; 32]) -> Result<Detector, DetectError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in set.rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                always.push(i);
            }
            for kw in &rule.keywords {
                match patterns.iter().position(|p| p == kw) {
                    Some(at) => keyword_rules[at].push(i),
                    None => {
                        patterns.push(kw.clone());
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let prefilter = if patterns.is_empty() {
            None
        } else {
            Some(
                AhoCorasickBuilder::new()
                    .ascii_case_insensitive(true)
                    .match_kind(MatchKind::Standard)
                    .build(&patterns)
                    .map_err(|e| DetectError::Config { origin: "keywords".into(), reason: e.to_string() })?,
            )
        };
        Ok(Detector {
            rules: set.rules,
            global: set.allowlists,
            prefilter,
            keyword_rules,
            always,
            key: fingerprint_key,
        })
    }

    /// The built-in pack under `fingerprint_key`.
    pub fn builtin(fingerprint_key: [u8; 32]) -> Result<Detector, DetectError> {
        Detector::new(RuleSet::builtin()?, fingerprint_key)
    }

    /// The same compiled rules under another fingerprint key (cheap: the automata are shared).
    pub fn with_fingerprint_key(&self, key: [u8; 32]) -> Detector {
        Detector {
            rules: self.rules.clone(),
            global: self.global.clone(),
            prefilter: self.prefilter.clone(),
            keyword_rules: self.keyword_rules.clone(),
            always: self.always.clone(),
            key,
        }
    }

    /// The compiled rules, in file order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Scans one whole input (a file's bytes) named `path`.
    pub fn scan(&self, path: &str, data: &[u8]) -> Vec<Finding> {
        let hits = self.hits(path, data, &[]);
        let mut lines = LineIndex::default();
        hits.into_iter().map(|h| self.finding(path, data, h, 0, 0, &mut lines)).collect()
    }

    /// `text` with every detected secret replaced by `[REDACTED:rule]` (for prompts and other
    /// text that leaves the process). Overlapping findings (a password inside a private key
    /// block) are merged first, so no part of the outer secret survives around the inner one.
    pub fn redact(&self, text: &str) -> String {
        let mut spans: Vec<(usize, usize, String)> =
            self.scan("redact", text.as_bytes()).into_iter().map(|f| (f.start, f.end, f.rule_id)).collect();
        spans.sort_by_key(|s| s.0);
        let mut merged: Vec<(usize, usize, String)> = Vec::with_capacity(spans.len());
        for (start, end, rule) in spans {
            match merged.last_mut() {
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end, rule)),
            }
        }
        let mut out = text.to_owned();
        for (start, end, rule) in merged.into_iter().rev() {
            // Byte regexes can in principle end inside a character; widen rather than skip.
            let start = (0..=start).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
            let end = (end..=out.len()).find(|&i| out.is_char_boundary(i)).unwrap_or(out.len());
            out.replace_range(start..end, &format!("[REDACTED:{rule}]"));
        }
        out
    }

    /// Starts a streaming scan of one input delivered in chunks.
    pub fn stream(&self, path: &str) -> StreamScanner<'_> {
        StreamScanner {
            det: self,
            path: path.to_string(),
            buf: Vec::new(),
            base: 0,
            base_line: 0,
            emitted_until: vec![0; self.rules.len()],
        }
    }

    /// The keyed fingerprint of a secret value (for matching suppressions across scans).
    pub fn fingerprint(&self, secret: &[u8]) -> String {
        fingerprint(&self.key, secret)
    }

    fn path_allowed(&self, path: &str) -> bool {
        // Global allowlists that are only about paths skip the file outright.
        self.global.iter().any(|a| {
            a.target_rules.is_empty()
                && !a.paths.is_empty()
                && (!a.all || (a.regexes.is_empty() && a.stopwords.is_empty()))
                && a.paths.iter().any(|p| p.is_match(path.as_bytes()))
        })
    }

    /// Matches in `data`; rule `i` starts searching at `resume[i]` (where its last match in the
    /// stream ended), as one pass over the whole input would.
    fn hits(&self, path: &str, data: &[u8], resume: &[usize]) -> Vec<Hit> {
        if self.path_allowed(path) {
            return Vec::new();
        }
        let mut active = vec![false; self.rules.len()];
        for &i in &self.always {
            active[i] = true;
        }
        if let Some(ac) = &self.prefilter {
            let mut left = self.keyword_rules.len();
            let mut seen = vec![false; self.keyword_rules.len()];
            for m in ac.find_overlapping_iter(data) {
                let p = m.pattern().as_usize();
                if !seen[p] {
                    seen[p] = true;
                    for &r in &self.keyword_rules[p] {
                        active[r] = true;
                    }
                    left -= 1;
                    if left == 0 {
                        break;
                    }
                }
            }
        }
        let mut hits = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            if !active[i] {
                continue;
            }
            if let Some(p) = &rule.path
                && !p.is_match(path.as_bytes())
            {
                continue;
            }
            let Some(re) = &rule.regex else {
                // A path-only rule: the file itself is the finding.
                hits.push(Hit { rule: i, match_start: 0, match_end: 0, start: 0, end: 0 });
                continue;
            };
            let mut at = resume.get(i).copied().unwrap_or(0);
            while at <= data.len() {
                let Some(caps) = re.captures_at(data, at) else { break };
                let Some(whole) = caps.get(0) else { break };
                at = if whole.is_empty() { whole.end() + 1 } else { whole.end() };
                let secret = if rule.secret_group > 0 {
                    caps.get(rule.secret_group)
                } else {
                    (1..caps.len()).find_map(|g| caps.get(g).filter(|m| !m.is_empty())).or(Some(whole))
                };
                let Some(secret) = secret else { continue };
                if secret.is_empty() {
                    continue;
                }
                let hit = Hit {
                    rule: i,
                    match_start: whole.start(),
                    match_end: whole.end(),
                    start: secret.start(),
                    end: secret.end(),
                };
                if self.keep(rule, path, data, hit) {
                    hits.push(hit);
                }
            }
        }
        hits.sort_by_key(|h| (h.start, h.rule));
        hits
    }

    fn keep(&self, rule: &Rule, path: &str, data: &[u8], hit: Hit) -> bool {
        let match_end = hit.match_end;
        let secret = &data[hit.start..hit.end];
        if let Some(min) = rule.entropy
            && shannon_entropy(secret) < min
        {
            return false;
        }
        if rule.min_char_classes > 0 && char_classes(secret) < rule.min_char_classes {
            return false;
        }
        if let Some(v) = rule.validate
            && !validate(v, secret)
        {
            return false;
        }
        let line_start = data[..hit.match_start].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        let line_end = data[match_end..].iter().position(|&b| b == b'\n').map_or(data.len(), |p| match_end + p);
        let line = &data[line_start..line_end];
        if INLINE_ALLOW.iter().any(|m| contains(line, m)) {
            return false;
        }
        let target = Target { path, secret, whole: &data[hit.match_start..match_end], line };
        let covered = |a: &Allowlist| allowlist_covers(a, &target);
        if rule.allowlists.iter().any(covered) {
            return false;
        }
        !self.global.iter().filter(|a| a.target_rules.is_empty() || a.target_rules.contains(&rule.id)).any(covered)
    }

    fn finding(
        &self,
        path: &str,
        data: &[u8],
        h: Hit,
        base: usize,
        base_line: usize,
        lines: &mut LineIndex,
    ) -> Finding {
        let rule = &self.rules[h.rule];
        let secret = &data[h.start..h.end];
        let (line, column) = lines.locate(data, h.start);
        let (end_line, end_col) = lines.locate(data, h.end);
        Finding {
            rule_id: rule.id.clone(),
            description: rule.description.clone(),
            severity: rule.severity,
            path: path.to_string(),
            line: base_line + line,
            end_line: base_line + end_line,
            column,
            end_column: end_col,
            start: base + h.start,
            end: base + h.end,
            fingerprint: if secret.is_empty() {
                fingerprint(&self.key, path.as_bytes())
            } else {
                fingerprint(&self.key, secret)
            },
            preview: preview(secret),
            entropy: (shannon_entropy(secret) * 1000.0).round() / 1000.0,
        }
    }
}

/// Scans an input that arrives in chunks, carrying the tail of each chunk into the next so a
/// secret split across chunks is still found, once.
pub struct StreamScanner<'d> {
    det: &'d Detector,
    path: String,
    buf: Vec<u8>,
    /// Offset of `buf[0]` in the whole input.
    base: usize,
    /// Newlines before `buf[0]`.
    base_line: usize,
    /// Per rule: findings ending before this offset were already reported.
    emitted_until: Vec<usize>,
}

impl StreamScanner<'_> {
    /// How much of each chunk is kept and rescanned with the next: longer than any rule's longest
    /// match in our pack (a private key block, at most 16 KiB of body).
    pub const OVERLAP: usize = 32 * 1024;

    /// Adds a chunk; returns findings that can no longer change.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Finding> {
        self.buf.extend_from_slice(chunk);
        if self.buf.len() < 2 * Self::OVERLAP {
            return Vec::new();
        }
        let mut cut = self.buf.len() - Self::OVERLAP;
        // Prefer to cut after a newline so line-anchored context stays whole.
        if let Some(nl) = self.buf[..cut].iter().rposition(|&b| b == b'\n')
            && cut - nl < Self::OVERLAP
        {
            cut = nl + 1;
        }
        let out = self.emit(|h| h.match_start < cut);
        let newlines = self.buf[..cut].iter().filter(|&&b| b == b'\n').count();
        self.buf.drain(..cut);
        self.base += cut;
        self.base_line += newlines;
        out
    }

    /// Ends the input; returns the remaining findings.
    pub fn finish(mut self) -> Vec<Finding> {
        self.emit(|_| true)
    }

    fn emit(&mut self, take: impl Fn(&Hit) -> bool) -> Vec<Finding> {
        let mut lines = LineIndex::default();
        let mut out = Vec::new();
        // The carried tail is rescanned; each rule resumes where its last reported match ended.
        let resume: Vec<usize> = self.emitted_until.iter().map(|&e| e.saturating_sub(self.base)).collect();
        for h in self.det.hits(&self.path, &self.buf, &resume) {
            if !take(&h) {
                continue;
            }
            self.emitted_until[h.rule] = self.base + h.match_end;
            out.push(self.det.finding(&self.path, &self.buf, h, self.base, self.base_line, &mut lines));
        }
        out
    }
}

struct Target<'a> {
    path: &'a str,
    secret: &'a [u8],
    whole: &'a [u8],
    line: &'a [u8],
}

fn allowlist_covers(a: &Allowlist, t: &Target<'_>) -> bool {
    let mut checks: Vec<bool> = Vec::with_capacity(3);
    if !a.paths.is_empty() {
        checks.push(a.paths.iter().any(|p| p.is_match(t.path.as_bytes())));
    }
    if !a.regexes.is_empty() {
        let subject = match a.regex_target {
            RegexTarget::Secret => t.secret,
            RegexTarget::Match => t.whole,
            RegexTarget::Line => t.line,
        };
        checks.push(a.regexes.iter().any(|r| r.is_match(subject)));
    }
    if !a.stopwords.is_empty() {
        let lower = t.secret.to_ascii_lowercase();
        checks.push(a.stopwords.iter().any(|w| contains(&lower, w.as_bytes())));
    }
    if checks.is_empty() {
        return false;
    }
    if a.all { checks.iter().all(|&c| c) } else { checks.iter().any(|&c| c) }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Shannon entropy in bits per byte.
pub fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts.iter().filter(|&&c| c > 0).map(|&c| f64::from(c) / n).map(|p| -p * p.log2()).sum()
}

fn char_classes(s: &[u8]) -> u8 {
    u8::from(s.iter().any(u8::is_ascii_lowercase))
        + u8::from(s.iter().any(u8::is_ascii_uppercase))
        + u8::from(s.iter().any(u8::is_ascii_digit))
}

fn validate(v: Validator, secret: &[u8]) -> bool {
    match v {
        Validator::BasicAuth => {
            let trimmed: Vec<u8> = secret.iter().copied().filter(|&b| b != b'=').collect();
            let Ok(raw) = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&trimmed) else { return false };
            // Real credentials are not always UTF-8; require the separator and mostly printable text.
            let printable = raw.iter().filter(|b| b.is_ascii_graphic() || **b == b' ').count();
            raw.len() >= 2 && raw.contains(&b':') && printable * 10 >= raw.len() * 9
        }
        Validator::UserPassword => user_password(secret),
        Validator::Jwt => {
            let Some(header) = secret.split(|&b| b == b'.').next() else { return false };
            let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header) else { return false };
            serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&raw)
                .is_ok_and(|h| h.get("alg").is_some_and(serde_json::Value::is_string))
        }
    }
}

/// Values people write where a credential would go when they do not mean one.
const PLACEHOLDER_WORDS: [&str; 14] = [
    "pass", "password", "passwd", "pwd", "token", "secret", "test", "changeme", "example", "user", "username", "login",
    "apikey", "api_key",
];

fn user_password(secret: &[u8]) -> bool {
    let text = String::from_utf8_lossy(secret);
    let text = text.trim();
    if text.starts_with('<') && text.ends_with('>') {
        return false;
    }
    // `"user":"pass"` and `'user:pass'` and `user:'pass'`: split first, then drop quotes.
    let Some((user, pass)) = split_credential(text) else { return false };
    let (user, pass) = (unquote(user), unquote(pass));
    if user.is_empty() && pass.is_empty() {
        return false;
    }
    let checked = if pass.is_empty() { user } else { pass };
    !is_placeholder(checked)
}

fn split_credential(text: &str) -> Option<(&str, &str)> {
    let bytes = text.as_bytes();
    if let Some(q @ (b'"' | b'\'')) = bytes.first().copied()
        && let Some(close) = text[1..].find(q as char).map(|i| i + 1)
    {
        let rest = text[close + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(':') {
            return Some((&text[..=close], after.trim_start()));
        }
        return text[1..close].split_once(':');
    }
    text.split_once(':')
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    for q in ['"', '\''] {
        if let Some(inner) = s.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner;
        }
    }
    s.trim_matches(|c| c == '"' || c == '\'')
}

fn is_placeholder_word(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    PLACEHOLDER_WORDS.contains(&lower.as_str())
        || (lower.len() >= 3 && lower.chars().all(|c| c == 'x' || c == 'y' || c == '*' || c == '.'))
}

fn is_placeholder(s: &str) -> bool {
    is_placeholder_word(s)
        || s.starts_with('$')
        || s.contains("{{")
        || s.contains("${")
        || (s.starts_with('<') || s.ends_with('>'))
        || (s.starts_with('[') && s.ends_with(']'))
        || (s.starts_with('%') && s.len() <= 3)
}

fn fingerprint(key: &[u8; 32], secret: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(secret);
    let digest = mac.finalize().into_bytes();
    format!("hmac-sha256:{}", hex::encode(&digest[..16]))
}

/// A few leading characters of long secrets (often a public prefix such as `ghp_`), never more
/// than a fifth of the secret, then a mask and the length.
fn preview(secret: &[u8]) -> String {
    let text = String::from_utf8_lossy(secret);
    let n = text.chars().count();
    let shown = if n >= 20 { (n / 5).min(4) } else { 0 };
    let head: String = text.chars().take(shown).filter(|c| !c.is_control()).collect();
    format!("{head}***** ({n} chars)")
}

/// Newline positions, built on first use: most inputs have no findings and never need it.
#[derive(Default)]
struct LineIndex {
    newlines: Option<Vec<usize>>,
}

impl LineIndex {
    /// 1-based (line, column in characters) of byte `at`.
    fn locate(&mut self, data: &[u8], at: usize) -> (usize, usize) {
        let nl = self
            .newlines
            .get_or_insert_with(|| data.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i).collect());
        let line = nl.partition_point(|&p| p < at);
        let start = if line == 0 { 0 } else { nl[line - 1] + 1 };
        let column = String::from_utf8_lossy(&data[start..at.min(data.len())]).chars().count() + 1;
        (line + 1, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(text: &str) -> Detector {
        Detector::new(RuleSet::parse(text, "t").unwrap(), [7; 32]).unwrap()
    }

    const TOKEN: &str = "tok_Zq8vN3kPw2XrT5mYb7LcD4hF";

    #[test]
    fn finds_locates_and_never_carries_the_secret() {
        let d = det("[[rules]]\nid='tok'\nregex='''\\b(tok_[A-Za-z0-9]{24})\\b'''\nkeywords=['tok_']\n");
        let text = format!("first line\n  é x = \"{TOKEN}\"\n");
        let found = d.scan("a.py", text.as_bytes());
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!((f.line, f.column, f.end_line, f.end_column), (2, 10, 2, 38));
        assert_eq!(&text.as_bytes()[f.start..f.end], TOKEN.as_bytes());
        assert_eq!(f.preview, "tok_***** (28 chars)");
        assert!(f.fingerprint.starts_with("hmac-sha256:") && f.fingerprint.len() == 12 + 32);
        assert_eq!(f.fingerprint, d.fingerprint(TOKEN.as_bytes()));
        let json = serde_json::to_string(&found).unwrap();
        assert!(!json.contains(&TOKEN[4..]), "{json}");
        // A different key gives a different fingerprint.
        let other = Detector::new(RuleSet::parse("[[rules]]\nid='t'\nregex='x'", "t").unwrap(), [8; 32]).unwrap();
        assert_ne!(other.fingerprint(TOKEN.as_bytes()), f.fingerprint);
    }

    #[test]
    fn keyword_prefilter_gates_rules() {
        let d = det("[[rules]]\nid='a'\nregex='[0-9]{6}'\nkeywords=['PIN']\n");
        assert!(d.scan("f", b"code 123456").is_empty());
        assert_eq!(d.scan("f", b"pin 123456").len(), 1, "keywords are case-insensitive");
    }

    #[test]
    fn entropy_classes_and_validators() {
        let d = det("[[rules]]\nid='a'\nregex='k=([A-Za-z0-9]{12})'\nentropy=3.0\nminCharClasses=3\n\
                     [[rules]]\nid='b'\nregex='Basic ([A-Za-z0-9+/=]{4,})'\nvalidate='basic-auth'\n");
        assert!(d.scan("f", b"k=aaaaaaaaaaaa").is_empty(), "low entropy");
        assert!(d.scan("f", b"k=abcdefghijkm").is_empty(), "one class");
        assert_eq!(d.scan("f", b"k=aB3dE5gH7jK9").len(), 1);
        assert_eq!(d.scan("f", b"Basic dXNlcjpwdw==").len(), 1, "user:pw");
        assert!(d.scan("f", b"Basic aGVsbG8gd29ybGQ=").is_empty(), "no colon");
        assert!(d.scan("f", b"Basic !!!!").is_empty());
    }

    #[test]
    fn allowlists_follow_gitleaks_semantics() {
        let rules = "[[rules]]\nid='a'\nregex='''secret=(\\w+)'''\n\
            [[rules.allowlists]]\nregexes=['^EXAMPLE']\n\
            [[rules.allowlists]]\nstopwords=['dummy']\n\
            [[rules.allowlists]]\ncondition='AND'\npaths=['''^test/''']\nregexTarget='line'\nregexes=['fixture']\n\
            [[allowlists]]\ntargetRules=['a']\nregexTarget='match'\nregexes=['secret=zz']\n\
            [[allowlists]]\npaths=['''\\.lock$''']\n";
        let d = det(rules);
        let n = |path: &str, text: &str| d.scan(path, text.as_bytes()).len();
        assert_eq!(n("src/a", "secret=Abc123"), 1);
        assert_eq!(n("src/a", "secret=EXAMPLEabc"), 0, "value regex");
        assert_eq!(n("src/a", "secret=myDUMMYvalue"), 0, "stopword, case-insensitive");
        assert_eq!(n("test/a", "secret=Abc123 # fixture"), 0, "AND: path and line");
        assert_eq!(n("src/a", "secret=Abc123 # fixture"), 1, "AND needs the path too");
        assert_eq!(n("test/a", "secret=Abc123"), 1, "AND needs the line too");
        assert_eq!(n("src/a", "secret=zzTop"), 0, "global, targeted, on the match");
        assert_eq!(n("yarn.lock", "secret=Abc123"), 0, "global path");
        assert_eq!(n("src/a", "secret=Abc123 // gatehouse:allow"), 0, "inline");
        assert_eq!(n("src/a", "secret=Abc123 // gitleaks:allow"), 0, "inline, gitleaks spelling");
    }

    #[test]
    fn stream_finds_secrets_split_across_chunks_once() {
        let d = det("[[rules]]\nid='tok'\nregex='''\\b(tok_[A-Za-z0-9]{24})\\b'''\nkeywords=['tok_']\n");
        let mut text = String::new();
        let mut expected = Vec::new();
        for i in 0..400 {
            text.push_str(&format!("line {i} padding padding padding padding padding padding padding padding\n"));
            if i % 37 == 0 {
                expected.push((text.len() + 4, text.matches('\n').count() + 1));
                text.push_str(&format!("k = {TOKEN}\n"));
            }
        }
        let whole = d.scan("f", text.as_bytes());
        assert_eq!(whole.len(), expected.len());
        for chunk in [1usize, 7, 1000, 4096, 40_000] {
            let mut s = d.stream("f");
            let mut got = Vec::new();
            for c in text.as_bytes().chunks(chunk) {
                got.extend(s.feed(c));
            }
            got.extend(s.finish());
            let spans: Vec<_> = got.iter().map(|f| (f.start, f.line)).collect();
            assert_eq!(spans, expected, "chunk {chunk}");
            assert_eq!(got, whole, "chunk {chunk}");
        }
    }

    #[test]
    fn redaction_leaves_no_part_of_a_secret() {
        let detector = Detector::builtin([0; 32]).unwrap();
        let key_body = "MIIEpAIBAAKCAQEAn6O8li4SX4m98LLYtPKSzEmQ9ZBD7Loh9P13f4yQ92EF3yxR5MsXFu9PRsrYQA7";
        let text = format!(
            "+const k = `-----BEGIN RSA PRIVATE KEY-----\n{key_body}\npassword = \"Zq8vN3kPw2XrT5mYb7!\"\n{key_body}\n-----END RSA PRIVATE KEY-----`;\n\
             +const gh = 'ghp_Q7vN3kPw2XrT5mYb7LcD4hFaB1cD2eF3gH4k'; // é\n"
        );
        let out = detector.redact(&text);
        for leaked in [key_body, "Zq8vN3kPw2XrT5mYb7", "Q7vN3kPw2XrT5mYb7LcD4hF"] {
            assert!(!out.contains(leaked), "{leaked} survived: {out}");
        }
        assert!(out.contains("[REDACTED:private-key]") && out.contains("[REDACTED:github-pat]"), "{out}");
        assert!(out.ends_with("// é\n"), "text around secrets is kept: {out}");
    }

    #[test]
    fn path_only_rules_report_the_file() {
        let d = det("[[rules]]\nid='p12'\npath='''\\.p12$'''\n");
        assert_eq!(d.scan("certs/a.p12", b"\x00\x01").len(), 1);
        assert!(d.scan("certs/a.pem", b"").is_empty());
    }

    #[test]
    fn entropy_values() {
        assert_eq!(shannon_entropy(b""), 0.0);
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
