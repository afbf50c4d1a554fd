//! Property tests: no source text panics the parsers or matchers, and no rule text panics the
//! rule loader.

// Tests fail loudly: unwrap, expect and panic are how they report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use gatehouse_patterns::Patterns;
use proptest::prelude::*;

fn patterns() -> &'static Patterns {
    static P: std::sync::OnceLock<Patterns> = std::sync::OnceLock::new();
    P.get_or_init(|| Patterns::builtin().unwrap())
}

/// Source-like text: fragments of the constructs the rules look for, and noise.
fn sourceish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("eval(".to_owned()),
        Just("req.query.x".to_owned()),
        Just("`SELECT ${".to_owned()),
        Just("subprocess.run(x, shell=True)".to_owned()),
        Just("f\"SELECT {a}\"".to_owned()),
        Just("cors({ origin: '*', credentials: true })".to_owned()),
        Just(")".to_owned()),
        Just("}\n".to_owned()),
        "[ -~\n]{0,30}".prop_map(String::from),
        "\\PC{0,10}".prop_map(String::from),
    ];
    proptest::collection::vec(piece, 0..20).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn scanning_never_panics(src in sourceish(), ext in "(js|ts|tsx|py|mjs)") {
        for f in patterns().scan(&format!("f.{ext}"), &src) {
            prop_assert!(f.line >= 1 && f.column >= 1 && f.end_line >= f.line);
        }
    }

    #[test]
    fn rule_loader_never_panics(pattern in "[ -~]{0,40}", lang in "(JavaScript|Python|TypeScript|Nope)") {
        let yaml = format!("id: x\nlanguage: {lang}\nrule:\n  pattern: {pattern:?}\n");
        let _ = Patterns::parse(&yaml, "fuzz.yml");
    }
}
