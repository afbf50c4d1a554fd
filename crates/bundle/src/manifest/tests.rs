use proptest::prelude::*;

use super::*;

const GOOD: &str = r#"
[app]
name = "refund-dashboard"
runtime = "node20"
entry = "server.js"
sensitivity = "high"

[[integrations]]
name = "salesforce"
scopes = ["GET /services/data/*/query"]

[[integrations]]
name = "warehouse"
data_scope = "refunds_readonly"

[egress]
allow = ["api.example.com", "*.stripe.com:443"]

[migrations]
dir = "migrations"
"#;

fn tree(files: &[(&str, &str)]) -> Tree {
    let mut t = Tree::default();
    for (p, c) in files {
        t.insert(p, Node::File { data: c.as_bytes().to_vec(), executable: false }).unwrap();
    }
    t
}

fn good_tree(manifest: &str) -> Tree {
    tree(&[
        (MANIFEST_FILE, manifest),
        ("server.js", "console.log(1)"),
        ("migrations/0001_init.up.sql", "-- gatehouse: expand\ncreate table t (id int);"),
        ("migrations/0001_init.down.sql", "drop table t;"),
    ])
}

fn err(manifest: &str) -> ManifestError {
    Manifest::from_tree(&good_tree(manifest)).unwrap_err()
}

#[test]
fn parses_the_documented_example() {
    let m = Manifest::from_tree(&good_tree(GOOD)).unwrap();
    assert_eq!(m.app.name, "refund-dashboard");
    assert_eq!(m.app.runtime, Runtime::Node20);
    assert_eq!(m.app.sensitivity, Sensitivity::High);
    assert_eq!(m.integrations.len(), 2);
    assert_eq!(m.integrations[1].data_scope.as_deref(), Some("refunds_readonly"));
    assert_eq!(m.egress.allow, ["api.example.com", "*.stripe.com:443"]);
    let steps = &m.migrations.unwrap().steps;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].kind, MigrationKind::Expand);
}

#[test]
fn minimal_manifest_defaults_to_normal_sensitivity() {
    let m = Manifest::parse("[app]\nname = \"a\"\nruntime = \"python3\"\nentry = \"main.py\"\n", None).unwrap();
    assert_eq!(m.app.sensitivity, Sensitivity::Normal);
    assert!(m.integrations.is_empty() && m.egress.allow.is_empty() && m.migrations.is_none());
}

#[test]
fn syntax_errors_name_line_and_column() {
    let e = err("[app]\nname = \"x\"\nruntime = node20\n");
    assert_eq!((e.file.as_str(), e.line), (MANIFEST_FILE, 3));
    assert!(e.column >= 11, "{e}");
}

#[test]
fn unknown_fields_are_rejected_where_they_stand() {
    let e = err(&GOOD.replace("sensitivity = \"high\"", "sensitivity = \"high\"\nshell = true"));
    assert_eq!(e.line, 7, "{e}");
    assert!(e.message.contains("unknown field `shell`"), "{e}");
}

#[test]
fn semantic_errors_point_at_the_value() {
    let cases = [
        ("runtime = \"node20\"", "runtime = \"ruby\"", 4, "unknown runtime `ruby`"),
        ("name = \"refund-dashboard\"", "name = \"Refund\"", 3, "invalid app name"),
        ("entry = \"server.js\"", "entry = \"missing.js\"", 5, "not in the bundle"),
        ("entry = \"server.js\"", "entry = \"../server.js\"", 5, "must not contain `..`"),
        ("sensitivity = \"high\"", "sensitivity = \"secret\"", 6, "unknown sensitivity"),
        ("GET /services", "FETCH /services", 10, "the method must be one of"),
        ("\"GET /services/data/*/query\"", "\"GET services\"", 10, "must start with `/`"),
        ("refunds_readonly", "Refunds-RO", 14, "invalid data_scope"),
        ("\"api.example.com\"", "\"https://api.example.com\"", 17, "not a URL"),
        ("*.stripe.com:443", "*.stripe.com:99999", 17, "port"),
        ("dir = \"migrations\"", "dir = \"nowhere\"", 20, "has no files"),
    ];
    for (from, to, line, needle) in cases {
        let text = GOOD.replace(from, to);
        assert_ne!(text, GOOD, "replacement {from} did not apply");
        let e = err(&text);
        assert_eq!(e.line, line, "{to}: {e}");
        assert!(e.message.contains(needle), "{to}: {e}");
    }
}

#[test]
fn duplicate_integrations_and_empty_grants_are_rejected() {
    let dup = err(&GOOD.replace("name = \"warehouse\"", "name = \"salesforce\""));
    assert!(dup.message.contains("declared twice"), "{dup}");
    let empty = err(&format!("{GOOD}\n[[integrations]]\nname = \"slack\"\n"));
    assert!(empty.message.contains("grant nothing"), "{empty}");
}

#[test]
fn missing_app_table_is_named() {
    let e = err("[[integrations]]\nname = \"x\"\nscopes = [\"GET /\"]\n");
    assert!(e.message.contains("missing field `app`"), "{e}");
}

#[test]
fn missing_manifest_is_named() {
    let e = Manifest::from_tree(&tree(&[("server.js", "")])).unwrap_err();
    assert!(e.message.contains("no `gatehouse.toml`"), "{e}");
}

#[test]
fn migration_files_are_checked() {
    let mut t = good_tree(GOOD);
    t.insert("migrations/0002_drop.up.sql", Node::File { data: b"drop table t;".to_vec(), executable: false }).unwrap();
    let e = Manifest::from_tree(&t).unwrap_err();
    assert_eq!(e.file, "migrations/0002_drop.up.sql");
    assert!(e.message.contains("gatehouse: expand"), "{e}");

    let mut t = good_tree(GOOD);
    t.insert(
        "migrations/0002_drop.up.sql",
        Node::File { data: b"-- gatehouse: contract\ndrop table t;".to_vec(), executable: false },
    )
    .unwrap();
    let e = Manifest::from_tree(&t).unwrap_err();
    assert!(e.message.contains("rollback"), "{e}");

    let mut t = good_tree(GOOD);
    t.insert("migrations/readme.md", Node::File { data: vec![], executable: false }).unwrap();
    assert!(Manifest::from_tree(&t).unwrap_err().message.contains("NNNN_name"));
}

#[test]
fn non_utf8_manifest_is_reported() {
    let mut t = Tree::default();
    t.insert(MANIFEST_FILE, Node::File { data: b"[app]\nname = \"\xff\"".to_vec(), executable: false }).unwrap();
    let e = Manifest::from_tree(&t).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("UTF-8"));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
        let _ = Manifest::parse(&s, None);
    }

    #[test]
    fn mutated_manifests_never_panic(pos in 0usize..400, junk in "[\\[\\]\"=\n a-z*/.:-]{0,8}") {
        let mut text = GOOD.to_owned();
        let pos = pos.min(text.len());
        if text.is_char_boundary(pos) {
            text.insert_str(pos, &junk);
        }
        if let Err(e) = Manifest::from_tree(&good_tree(&text)) {
            prop_assert!(e.line <= text.lines().count() + 1);
        }
    }
}
