//! The filter language of RFC 7644 §3.4.2.2 and the PATCH path of §3.5.2, parsed and evaluated
//! against resources.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::{ScimError, ScimType};
use crate::schema::{Attr, AttrType, Kind, find_attr, find_sub};

/// Longest filter accepted; identity providers send short ones, and the parser recurses.
const MAX_FILTER_LEN: usize = 4096;
/// Deepest nesting of parentheses, `not` and value paths.
const MAX_DEPTH: usize = 32;

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// Equal.
    Eq,
    /// Not equal.
    Ne,
    /// Contains.
    Co,
    /// Starts with.
    Sw,
    /// Ends with.
    Ew,
    /// Greater than.
    Gt,
    /// Greater or equal.
    Ge,
    /// Less than.
    Lt,
    /// Less or equal.
    Le,
}

/// An attribute, resolved against the schema: `name`, `name.sub`, or `meta.created`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrPath {
    /// The attribute.
    pub attr: &'static Attr,
    /// A sub-attribute of it.
    pub sub: Option<&'static Attr>,
}

impl AttrPath {
    /// The definition that decides comparison (the sub-attribute's when there is one).
    fn leaf(&self) -> &'static Attr {
        self.sub.unwrap_or(self.attr)
    }
}

/// A parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// `attr op value`.
    Compare(AttrPath, CompareOp, Value),
    /// `attr pr`.
    Present(AttrPath),
    /// `a and b`.
    And(Box<Filter>, Box<Filter>),
    /// `a or b`.
    Or(Box<Filter>, Box<Filter>),
    /// `not (a)`.
    Not(Box<Filter>),
    /// `attr[filter]`: some value of the multi-valued `attr` matches `filter`.
    ValuePath(&'static Attr, Box<Filter>),
}

/// The target of a PATCH operation: `attr`, `attr.sub`, `attr[filter]` or `attr[filter].sub`.
#[derive(Debug, Clone, PartialEq)]
pub struct PatchPath {
    /// The attribute.
    pub attr: &'static Attr,
    /// Which of its values, for a multi-valued attribute.
    pub filter: Option<Filter>,
    /// A sub-attribute.
    pub sub: Option<&'static Attr>,
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Str(String),
    Open,
    Close,
    LBracket,
    RBracket,
}

fn invalid(kind: ScimType, detail: impl Into<String>) -> ScimError {
    ScimError::new(kind, detail)
}

fn tokenize(input: &str, kind: ScimType) -> Result<Vec<Token>, ScimError> {
    if input.len() > MAX_FILTER_LEN {
        return Err(invalid(kind, format!("longer than {MAX_FILTER_LEN} bytes")));
    }
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | '[' | ']' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    '[' => Token::LBracket,
                    _ => Token::RBracket,
                });
            }
            '"' => {
                // A JSON string, escapes and all.
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (j, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or_else(|| invalid(kind, "unterminated string"))?;
                let s: String = serde_json::from_str(&input[i..=end])
                    .map_err(|_| invalid(kind, format!("invalid string literal at byte {i}")))?;
                out.push(Token::Str(s));
            }
            _ => {
                let mut end = input.len();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_whitespace() || matches!(d, '(' | ')' | '[' | ']' | '"') {
                        end = j;
                        break;
                    }
                    chars.next();
                }
                out.push(Token::Word(input[i..end].to_owned()));
            }
        }
    }
    Ok(out)
}

struct Parser<'a> {
    kind: Kind,
    tokens: &'a [Token],
    pos: usize,
    err: ScimType,
    /// Inside `attr[...]`, names are sub-attributes of `attr`.
    within: Option<&'static Attr>,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word))
    }

    fn error(&self, detail: impl Into<String>) -> ScimError {
        invalid(self.err, detail)
    }

    fn or(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut left = self.and(depth)?;
        while self.peek_word("or") {
            self.pos += 1;
            let right = self.and(depth)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, depth: usize) -> Result<Filter, ScimError> {
        let mut left = self.unary(depth)?;
        while self.peek_word("and") {
            self.pos += 1;
            let right = self.unary(depth)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, depth: usize) -> Result<Filter, ScimError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH}")));
        }
        if self.peek_word("not") && matches!(self.tokens.get(self.pos + 1), Some(Token::Open)) {
            self.pos += 2;
            let inner = self.or(depth + 1)?;
            self.expect(&Token::Close, "`)`")?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Open) {
            self.pos += 1;
            let inner = self.or(depth + 1)?;
            self.expect(&Token::Close, "`)`")?;
            return Ok(inner);
        }
        let name = match self.next() {
            Some(Token::Word(w)) => w,
            Some(other) => return Err(self.error(format!("expected an attribute name, found {}", describe(&other)))),
            None => return Err(self.error("expected an attribute name, found the end")),
        };
        if let Some(parent) = self.within {
            let sub = find_sub(parent, &name)
                .ok_or_else(|| self.error(format!("`{}` has no sub-attribute `{}`", parent.name, truncate(&name))))?;
            // Inside brackets a name is relative to the element: the element's sub-attribute is
            // compared as if it were an attribute.
            return self.comparison(AttrPath { attr: sub, sub: None });
        }
        if self.peek() == Some(&Token::LBracket) {
            self.pos += 1;
            let attr = resolve_attr(self.kind, &name, self.err)?;
            if attr.ty != AttrType::Complex {
                return Err(self.error(format!("`{}` has no sub-attributes to filter on", attr.name)));
            }
            let inner = self.value_filter(attr, depth + 1)?;
            self.expect(&Token::RBracket, "`]`")?;
            return Ok(Filter::ValuePath(attr, Box::new(inner)));
        }
        let path = resolve_path(self.kind, &name, self.err)?;
        self.comparison(path)
    }

    /// A filter inside `attr[...]`, whose names are sub-attributes of `attr`.
    fn value_filter(&mut self, parent: &'static Attr, depth: usize) -> Result<Filter, ScimError> {
        let outer = self.within.replace(parent);
        let inner = self.or(depth);
        self.within = outer;
        inner
    }

    fn comparison(&mut self, path: AttrPath) -> Result<Filter, ScimError> {
        let op = match self.next() {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            _ => return Err(self.error(format!("expected an operator after `{}`", path.leaf().name))),
        };
        let op = match op.as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            other => return Err(self.error(format!("unknown operator `{}`", truncate(other)))),
        };
        let value = match self.next() {
            Some(Token::Str(s)) => Value::String(s),
            Some(Token::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(&w)
                    .map(Value::Number)
                    .map_err(|_| self.error(format!("`{}` is not a value (strings are quoted)", truncate(&w))))?,
            },
            _ => return Err(self.error("expected a value after the operator")),
        };
        let leaf = path.leaf();
        if leaf.ty == AttrType::Complex && path.sub.is_none() && leaf.sub.iter().all(|s| s.name != "value") {
            return Err(self.error(format!("`{}` is complex; compare one of its sub-attributes", leaf.name)));
        }
        if leaf.ty == AttrType::Boolean && !matches!(op, CompareOp::Eq | CompareOp::Ne) {
            return Err(self.error(format!("`{}` is a boolean; only eq and ne apply", leaf.name)));
        }
        Ok(Filter::Compare(path, op, value))
    }

    fn expect(&mut self, want: &Token, what: &str) -> Result<(), ScimError> {
        match self.next() {
            Some(ref t) if t == want => Ok(()),
            Some(t) => Err(self.error(format!("expected {what}, found {}", describe(&t)))),
            None => Err(self.error(format!("expected {what}, found the end"))),
        }
    }
}

fn describe(t: &Token) -> String {
    match t {
        Token::Word(w) => format!("`{}`", truncate(w)),
        Token::Str(_) => "a string".to_owned(),
        Token::Open => "`(`".to_owned(),
        Token::Close => "`)`".to_owned(),
        Token::LBracket => "`[`".to_owned(),
        Token::RBracket => "`]`".to_owned(),
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// Splits `name` or `name.sub` (after an optional schema URN, which itself contains dots and
/// colons) and resolves it.
fn resolve_path(kind: Kind, text: &str, err: ScimType) -> Result<AttrPath, ScimError> {
    let rest = crate::schema::strip_urn(kind, text);
    let (name, sub) = match rest.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (rest, None),
    };
    let attr = resolve_attr(kind, name, err)?;
    let sub = match sub {
        None => None,
        Some(s) => Some(
            find_sub(attr, s)
                .ok_or_else(|| invalid(err, format!("`{}` has no sub-attribute `{}`", attr.name, truncate(s))))?,
        ),
    };
    Ok(AttrPath { attr, sub })
}

fn resolve_attr(kind: Kind, name: &str, err: ScimType) -> Result<&'static Attr, ScimError> {
    find_attr(kind, name).ok_or_else(|| invalid(err, format!("{} has no attribute `{}`", kind.name(), truncate(name))))
}

/// Parses a `filter` query parameter for resources of `kind`.
pub fn parse_filter(kind: Kind, input: &str) -> Result<Filter, ScimError> {
    let tokens = tokenize(input, ScimType::InvalidFilter)?;
    if tokens.is_empty() {
        return Err(invalid(ScimType::InvalidFilter, "the filter is empty"));
    }
    let mut p = Parser { kind, tokens: &tokens, pos: 0, err: ScimType::InvalidFilter, within: None };
    let f = p.or(0)?;
    if let Some(t) = p.peek() {
        return Err(p.error(format!("unexpected {} after the filter", describe(t))));
    }
    Ok(f)
}

/// Parses a PATCH operation's `path`.
pub fn parse_patch_path(kind: Kind, input: &str) -> Result<PatchPath, ScimError> {
    let err = ScimType::InvalidPath;
    let Some(open) = input.find('[') else {
        let p = resolve_path(kind, input.trim(), err)?;
        return Ok(PatchPath { attr: p.attr, filter: None, sub: p.sub });
    };
    let attr = resolve_attr(kind, input[..open].trim(), err)?;
    if !attr.multi || attr.ty != AttrType::Complex {
        return Err(invalid(err, format!("`{}` is not a multi-valued complex attribute", attr.name)));
    }
    let close = input.rfind(']').ok_or_else(|| invalid(err, "`[` without `]`"))?;
    if close < open {
        return Err(invalid(err, "`]` before `[`"));
    }
    let tokens = tokenize(&input[open + 1..close], err)?;
    let mut p = Parser { kind, tokens: &tokens, pos: 0, err, within: None };
    let filter = p.value_filter(attr, 1)?;
    if let Some(t) = p.peek() {
        return Err(p.error(format!("unexpected {} in the value filter", describe(t))));
    }
    let tail = input[close + 1..].trim();
    let sub = match tail.strip_prefix('.') {
        None if tail.is_empty() => None,
        None => return Err(invalid(err, format!("unexpected `{}` after `]`", truncate(tail)))),
        Some(s) => Some(
            find_sub(attr, s)
                .ok_or_else(|| invalid(err, format!("`{}` has no sub-attribute `{}`", attr.name, truncate(s))))?,
        ),
    };
    Ok(PatchPath { attr, filter: Some(filter), sub })
}

/// A resource's value of attribute `name` (resources hold canonical names).
fn get<'v>(resource: &'v Value, name: &str) -> Option<&'v Value> {
    resource.get(name).filter(|v| !v.is_null())
}

impl Filter {
    /// Whether `resource` (a whole resource, or one element of a multi-valued attribute inside a
    /// value path) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Self::And(a, b) => a.matches(resource) && b.matches(resource),
            Self::Or(a, b) => a.matches(resource) || b.matches(resource),
            Self::Not(a) => !a.matches(resource),
            Self::ValuePath(attr, inner) => match get(resource, attr.name) {
                Some(Value::Array(items)) => items.iter().any(|i| inner.matches(i)),
                Some(v @ Value::Object(_)) => inner.matches(v),
                _ => false,
            },
            Self::Present(path) => values_at(resource, path).iter().any(|v| present(v)),
            Self::Compare(path, op, want) => {
                let leaf = path.leaf();
                let found = values_at(resource, path);
                if *op == CompareOp::Ne {
                    return !found.iter().any(|v| compare(leaf, v, CompareOp::Eq, want));
                }
                found.iter().any(|v| compare(leaf, v, *op, want))
            }
        }
    }

    /// `Some((attribute, value))` when the filter is `userName eq "…"` or `externalId eq "…"`,
    /// which a store can answer from an index instead of evaluating every resource.
    pub fn simple_eq(&self) -> Option<(&'static str, &str)> {
        match self {
            Self::Compare(AttrPath { attr, sub: None }, CompareOp::Eq, Value::String(v))
                if matches!(attr.name, "userName" | "externalId" | "displayName" | "id") =>
            {
                Some((attr.name, v))
            }
            _ => None,
        }
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => o.values().any(present),
        _ => true,
    }
}

/// The values `path` names in `resource`: for a multi-valued attribute, one per element; for a
/// complex attribute compared whole, its `value` sub-attribute.
fn values_at<'v>(resource: &'v Value, path: &AttrPath) -> Vec<&'v Value> {
    let Some(v) = get(resource, path.attr.name) else { return Vec::new() };
    let elements: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let sub_name = match (path.sub, path.attr.ty) {
        (Some(s), _) => Some(s.name),
        (None, AttrType::Complex) => Some("value"),
        (None, _) => None,
    };
    match sub_name {
        None => elements,
        Some(s) => elements.into_iter().filter_map(|e| get(e, s)).collect(),
    }
}

fn compare(attr: &Attr, have: &Value, op: CompareOp, want: &Value) -> bool {
    match (have, want) {
        (Value::String(h), Value::String(w)) => {
            let (h, w) = if attr.case_exact { (h.clone(), w.clone()) } else { (h.to_lowercase(), w.to_lowercase()) };
            match op {
                CompareOp::Eq => h == w,
                CompareOp::Ne => h != w,
                CompareOp::Co => h.contains(&w),
                CompareOp::Sw => h.starts_with(&w),
                CompareOp::Ew => h.ends_with(&w),
                // Timestamps are stored in one RFC 3339 format, so text order is time order.
                CompareOp::Gt => h.cmp(&w) == Ordering::Greater,
                CompareOp::Ge => h.cmp(&w) != Ordering::Less,
                CompareOp::Lt => h.cmp(&w) == Ordering::Less,
                CompareOp::Le => h.cmp(&w) != Ordering::Greater,
            }
        }
        (Value::Bool(h), Value::Bool(w)) => match op {
            CompareOp::Eq => h == w,
            CompareOp::Ne => h != w,
            _ => false,
        },
        // A boolean sent as a string, as Entra does.
        (Value::Bool(h), Value::String(w)) => match w.to_ascii_lowercase().as_str() {
            "true" => compare(attr, &Value::Bool(*h), op, &Value::Bool(true)),
            "false" => compare(attr, &Value::Bool(*h), op, &Value::Bool(false)),
            _ => false,
        },
        (Value::Number(h), Value::Number(w)) => {
            let (Some(h), Some(w)) = (h.as_f64(), w.as_f64()) else { return false };
            match op {
                CompareOp::Eq => h == w,
                CompareOp::Ne => h != w,
                CompareOp::Gt => h > w,
                CompareOp::Ge => h >= w,
                CompareOp::Lt => h < w,
                CompareOp::Le => h <= w,
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn user() -> Value {
        json!({
            "id": "u1",
            "userName": "Alice@Example.com",
            "displayName": "Alice Liddell",
            "externalId": "00u1",
            "active": true,
            "name": {"givenName": "Alice", "familyName": "Liddell"},
            "emails": [
                {"value": "alice@example.com", "type": "work", "primary": true},
                {"value": "al@home.example", "type": "home"}
            ],
            "meta": {"created": "2026-01-01T00:00:00Z", "lastModified": "2026-02-01T00:00:00Z"}
        })
    }

    fn m(f: &str) -> bool {
        parse_filter(Kind::User, f).unwrap().matches(&user())
    }

    #[test]
    fn comparisons_follow_case_rules() {
        assert!(m(r#"userName eq "alice@example.com""#), "userName is case-insensitive");
        assert!(!m(r#"externalId eq "00U1""#), "externalId is case-exact");
        assert!(m(r#"externalId eq "00u1""#));
        assert!(m(r#"displayName co "lid""#));
        assert!(m(r#"displayName sw "ALICE""#));
        assert!(m(r#"displayName ew "dell""#));
        assert!(m(r#"name.givenName eq "alice""#));
        assert!(m("active eq true"));
        assert!(!m("active eq false"));
        assert!(m(r#"active eq "True""#));
        assert!(m(r#"meta.created lt "2026-01-02T00:00:00Z""#));
        assert!(!m(r#"meta.lastModified gt "2026-03-01T00:00:00Z""#));
        assert!(m(r#"userName ne "bob@example.com""#));
    }

    #[test]
    fn multi_valued_and_logic() {
        assert!(m(r#"emails eq "al@home.example""#), "a complex attribute compares its value");
        assert!(m(r#"emails.value co "home""#));
        assert!(m(r#"emails[type eq "work" and value co "example.com"]"#));
        assert!(!m(r#"emails[type eq "home" and primary eq true]"#));
        assert!(m(r#"userName eq "x" or emails[type eq "home"]"#));
        assert!(!m(r#"userName eq "x" and emails pr"#));
        assert!(m(r#"not (userName eq "x") and (title pr or emails pr)"#));
        assert!(!m("title pr"));
        assert!(m(r#"USERNAME EQ "alice@example.com" AND ACTIVE EQ TRUE"#), "keywords are case-insensitive");
        assert!(m(r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "alice""#));
    }

    #[test]
    fn precedence_is_not_and_or() {
        // a or b and c  ==  a or (b and c)
        assert!(m(r#"active eq true or userName eq "x" and displayName eq "y""#));
        assert!(!m(r#"(active eq true or userName eq "x") and displayName eq "y""#));
    }

    #[test]
    fn malformed_filters_name_the_problem() {
        for (f, needle) in [
            ("", "empty"),
            ("userName", "operator"),
            ("userName eq", "value"),
            (r#"userName xx "a""#, "unknown operator"),
            (r#"nope eq "a""#, "no attribute `nope`"),
            (r#"name.nope eq "a""#, "no sub-attribute"),
            (r#"userName eq "a" and"#, "attribute name"),
            (r#"(userName eq "a""#, "`)`"),
            (r#"userName eq "a"#, "unterminated"),
            (r#"userName eq alice"#, "quoted"),
            (r#"emails[type eq "work""#, "`]`"),
            ("active gt true", "boolean"),
            (r#"name eq "x""#, "complex"),
        ] {
            let e = parse_filter(Kind::User, f).unwrap_err();
            assert_eq!(e.scim_type, ScimType::InvalidFilter);
            assert!(e.detail.contains(needle), "{f:?}: {}", e.detail);
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(parse_filter(Kind::User, &deep).unwrap_err().detail.contains("deeper"));
    }

    #[test]
    fn patch_paths() {
        let p = parse_patch_path(Kind::Group, r#"members[value eq "2819c223"]"#).unwrap();
        assert_eq!(p.attr.name, "members");
        assert!(p.filter.unwrap().matches(&json!({"value": "2819c223"})));
        let p = parse_patch_path(Kind::User, r#"emails[type eq "work"].value"#).unwrap();
        assert_eq!(p.sub.unwrap().name, "value");
        let p = parse_patch_path(Kind::User, "name.givenName").unwrap();
        assert_eq!((p.attr.name, p.sub.unwrap().name), ("name", "givenName"));
        let p = parse_patch_path(Kind::User, "urn:ietf:params:scim:schemas:core:2.0:User:Active").unwrap();
        assert_eq!(p.attr.name, "active");
        for bad in
            ["nope", "userName[value eq \"x\"]", "emails[type eq \"w\"", "emails[type eq \"w\"]x", "emails[x eq 1]"]
        {
            assert_eq!(parse_patch_path(Kind::User, bad).unwrap_err().scim_type, ScimType::InvalidPath, "{bad}");
        }
    }

    #[test]
    fn simple_eq_is_recognised() {
        let f = parse_filter(Kind::User, r#"userName eq "a@b.c""#).unwrap();
        assert_eq!(f.simple_eq(), Some(("userName", "a@b.c")));
        assert_eq!(parse_filter(Kind::User, r#"userName co "a""#).unwrap().simple_eq(), None);
    }

    proptest! {
        #[test]
        fn any_input_parses_or_errors(s in "\\PC{0,80}") {
            let _ = parse_filter(Kind::User, &s);
            let _ = parse_patch_path(Kind::Group, &s);
        }

        #[test]
        fn filter_like_input_parses_or_errors(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("userName"), Just("emails"), Just("emails.value"), Just("name.givenName"), Just("active"),
                    Just("eq"), Just("co"), Just("pr"), Just("and"), Just("or"), Just("not"), Just("("), Just(")"),
                    Just("["), Just("]"), Just("\"x\""), Just("true"), Just("12"), Just("type")
                ],
                0..16
            )
        ) {
            let s = parts.join(" ");
            if let Ok(f) = parse_filter(Kind::User, &s) {
                let _ = f.matches(&user());
            }
        }
    }
}
