//! Property tests: no input panics the rule parser or the scanner, and streaming equals one pass.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_detect::{Detector, RuleSet};
use proptest::prelude::*;

fn detector() -> &'static Detector {
    static DET: std::sync::OnceLock<Detector> = std::sync::OnceLock::new();
    DET.get_or_init(|| Detector::builtin([3; 32]).unwrap())
}

/// Text that looks like code with credentials in it, so the rules actually fire.
fn codeish() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"password = \"".to_vec()),
        Just(b"ghp_".to_vec()),
        Just(b"curl -u ".to_vec()),
        Just(b"-----BEGIN RSA PRIVATE KEY-----\n".to_vec()),
        Just(b"-----END RSA PRIVATE KEY-----".to_vec()),
        Just(b"postgres://a:".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"eyJhbGciOiJIUzI1NiJ9.".to_vec()),
        "[A-Za-z0-9+/=_.:@'\" -]{1,60}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..20),
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rule_parser_never_panics(text in "\\PC{0,400}") {
        let _ = RuleSet::parse(&text, "fuzz.toml");
    }

    #[test]
    fn rule_parser_never_panics_on_rule_shaped_input(
        regex in "[\\PC]{0,30}", kw in "[a-z_]{0,5}", group in 0usize..4, cond in "(AND|OR|and|x)",
    ) {
        let text = format!(
            "[[rules]]\nid = 'x'\nregex = '''{regex}'''\nsecretGroup = {group}\nkeywords = ['{kw}']\n\
             [[rules.allowlists]]\ncondition = '{cond}'\nregexes = ['''{regex}''']\n"
        );
        if let Ok(set) = RuleSet::parse(&text, "fuzz.toml") {
            let det = Detector::new(set, [0; 32]).unwrap();
            let _ = det.scan("f", regex.as_bytes());
        }
    }

    #[test]
    fn scanning_never_panics_and_spans_are_in_bounds(data in codeish()) {
        for f in detector().scan("src/app.py", &data) {
            prop_assert!(f.start <= f.end && f.end <= data.len());
            prop_assert!(f.line >= 1 && f.line <= f.end_line && f.column >= 1);
        }
    }

    #[test]
    fn streaming_matches_a_single_pass(parts in proptest::collection::vec(codeish(), 1..6), chunk in 1usize..50_000) {
        // Pad so the stream actually cuts: findings must be the same however the input is split.
        let mut data = Vec::new();
        for p in parts {
            data.extend_from_slice(&p);
            data.extend(std::iter::repeat_n(b'.', 9000));
            data.push(b'\n');
        }
        let whole = detector().scan("f", &data);
        let mut stream = detector().stream("f");
        let mut got = Vec::new();
        for c in data.chunks(chunk) {
            got.extend(stream.feed(c));
        }
        got.extend(stream.finish());
        prop_assert_eq!(got, whole);
    }
}
