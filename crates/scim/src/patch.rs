//! PATCH (RFC 7644 §3.5.2) applied to a stored resource, accepting what Okta and Microsoft Entra
//! actually send: operation names in any case, booleans as strings, `replace` without a path
//! whose value is an object (also with `name.givenName`-style keys), and `remove` of members
//! listed in `value`.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::filter::{PatchPath, parse_patch_path};
use crate::resource::{check_primary, check_required, coerce};
use crate::schema::{Attr, AttrType, Kind, Mutability, PATCH_SCHEMA, find_attr};

/// Most operations in one PATCH; identity providers send a handful.
const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

fn syntax(detail: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidSyntax, detail)
}

/// Applies the PatchOp `body` to `doc` (a resource's stored attributes, for groups including
/// `members`). Either every operation applies or `doc` is left as it was. Returns whether
/// anything changed.
pub fn apply_patch(kind: Kind, doc: &mut Map<String, Value>, body: &Value) -> Result<bool, ScimError> {
    let Value::Object(body) = body else { return Err(syntax("the body must be a PatchOp object")) };
    if let Some(schemas) = body.get("schemas") {
        let ok = schemas
            .as_array()
            .is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(PATCH_SCHEMA))));
        if !ok {
            return Err(syntax(format!("`schemas` must list {PATCH_SCHEMA}")));
        }
    }
    let ops = body
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("Operations"))
        .and_then(|(_, v)| v.as_array())
        .ok_or_else(|| syntax("`Operations` must be a list"))?;
    if ops.is_empty() {
        return Err(syntax("`Operations` is empty"));
    }
    if ops.len() > MAX_OPERATIONS {
        return Err(ScimError::new(ScimType::TooMany, format!("more than {MAX_OPERATIONS} operations")));
    }
    let mut work = doc.clone();
    for (i, op) in ops.iter().enumerate() {
        apply_one(kind, &mut work, op)
            .map_err(|e| ScimError::new(e.scim_type, format!("operation {i}: {}", e.detail)))?;
    }
    check_required(kind, &work)?;
    for attr in kind.attrs().iter().filter(|a| a.multi) {
        if let Some(Value::Array(values)) = work.get(attr.name) {
            check_primary(attr, values)?;
        }
    }
    let changed = work != *doc;
    *doc = work;
    Ok(changed)
}

fn apply_one(kind: Kind, doc: &mut Map<String, Value>, op: &Value) -> Result<(), ScimError> {
    let Value::Object(op) = op else { return Err(syntax("an operation must be an object")) };
    let field = |name: &str| op.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v);
    let verb = match field("op").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
        Some("add") => Op::Add,
        Some("replace") => Op::Replace,
        Some("remove") => Op::Remove,
        Some(other) => return Err(syntax(format!("unknown op `{}`", other.chars().take(32).collect::<String>()))),
        None => return Err(syntax("`op` is missing")),
    };
    let value = field("value");
    let path = match field("path") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if p.trim().is_empty() => None,
        Some(Value::String(p)) => Some(parse_patch_path(kind, p)?),
        Some(_) => return Err(ScimError::new(ScimType::InvalidPath, "`path` must be a string")),
    };
    match (verb, path) {
        (Op::Remove, None) => Err(ScimError::new(ScimType::NoTarget, "remove needs a `path`")),
        (Op::Remove, Some(path)) => remove(doc, &path, value),
        (verb, None) => {
            // The value names the attributes to add or replace.
            let Some(Value::Object(attrs)) = value else {
                return Err(ScimError::new(ScimType::InvalidValue, "without a `path`, `value` must be an object"));
            };
            for (key, v) in attrs {
                let path = if key.contains('.') && find_attr(kind, key).is_none() {
                    match parse_patch_path(kind, key) {
                        Ok(p) => p,
                        Err(_) => continue,
                    }
                } else {
                    let Some(attr) = find_attr(kind, key) else { continue };
                    PatchPath { attr, filter: None, sub: None }
                };
                // Okta repeats `id` and the like in whole-resource replaces.
                if path.attr.mutability == Mutability::ReadOnly {
                    continue;
                }
                set(doc, &path, v, verb)?;
            }
            Ok(())
        }
        (verb, Some(path)) => {
            let Some(v) = value else {
                return Err(ScimError::new(ScimType::InvalidValue, format!("`{}` needs a `value`", path.attr.name)));
            };
            set(doc, &path, v, verb)
        }
    }
}

fn writable(attr: &Attr) -> Result<(), ScimError> {
    if attr.mutability == Mutability::ReadOnly {
        return Err(ScimError::new(ScimType::Mutability, format!("`{}` is read-only", attr.name)));
    }
    Ok(())
}

/// `add` or `replace` of `value` at `path`.
fn set(doc: &mut Map<String, Value>, path: &PatchPath, value: &Value, verb: Op) -> Result<(), ScimError> {
    let attr = path.attr;
    writable(attr)?;
    if let Some(sub) = path.sub {
        writable(sub)?;
    }
    match (&path.filter, path.sub) {
        (None, None) => {
            let Some(new) = coerce(attr, value)? else {
                if verb == Op::Replace {
                    doc.remove(attr.name);
                }
                return Ok(());
            };
            check_immutable(attr, doc.get(attr.name), &new)?;
            match (attr.multi, attr.ty, doc.get_mut(attr.name), verb) {
                (true, _, Some(Value::Array(existing)), Op::Add) => {
                    let Value::Array(new) = new else { return Ok(()) };
                    if new.iter().any(|v| v.get("primary") == Some(&Value::Bool(true))) {
                        existing.iter_mut().for_each(clear_primary);
                    }
                    for v in new {
                        if !existing.contains(&v) {
                            existing.push(v);
                        }
                    }
                }
                (false, AttrType::Complex, Some(Value::Object(existing)), _) => {
                    if let Value::Object(new) = new {
                        existing.extend(new);
                    }
                }
                _ => {
                    doc.insert(attr.name.to_owned(), new);
                }
            }
            Ok(())
        }
        (None, Some(sub)) => {
            if attr.multi {
                return Err(ScimError::new(
                    ScimType::InvalidPath,
                    format!("`{}` has several values; say which with `{}[...]`", attr.name, attr.name),
                ));
            }
            let new = coerce(sub, value)?;
            let entry = doc.entry(attr.name.to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = entry {
                match new {
                    Some(v) => {
                        o.insert(sub.name.to_owned(), v);
                    }
                    None => {
                        o.remove(sub.name);
                    }
                }
                if o.is_empty() {
                    doc.remove(attr.name);
                }
            }
            Ok(())
        }
        (Some(filter), sub) => {
            let targets = matching(doc, attr, filter);
            if targets.is_empty() {
                return Err(ScimError::new(
                    ScimType::NoTarget,
                    format!("no value of `{}` matches the filter", attr.name),
                ));
            }
            let Some(Value::Array(items)) = doc.get_mut(attr.name) else { return Ok(()) };
            let new = match sub {
                Some(sub) => coerce(sub, value)?,
                None => coerce_element(attr, value)?,
            };
            if let Some(n) = &new
                && sub.is_some_and(|s| s.name == "primary")
                && *n == Value::Bool(true)
            {
                items.iter_mut().for_each(clear_primary);
            }
            for i in targets {
                let Some(item) = items.get_mut(i) else { continue };
                match (sub, &new, item) {
                    (Some(sub), Some(v), Value::Object(o)) => {
                        o.insert(sub.name.to_owned(), v.clone());
                    }
                    (Some(sub), None, Value::Object(o)) => {
                        o.remove(sub.name);
                    }
                    (None, Some(Value::Object(v)), Value::Object(o)) => {
                        if verb == Op::Replace {
                            o.clear();
                        }
                        o.extend(v.clone());
                    }
                    _ => {}
                }
            }
            Ok(())
        }
    }
}

fn coerce_element(attr: &'static Attr, value: &Value) -> Result<Option<Value>, ScimError> {
    match coerce(attr, value)? {
        Some(Value::Array(mut items)) if items.len() == 1 => Ok(items.pop()),
        Some(Value::Array(_)) => {
            Err(ScimError::new(ScimType::InvalidValue, format!("a filtered `{}` path takes one value", attr.name)))
        }
        other => Ok(other),
    }
}

fn check_immutable(attr: &Attr, old: Option<&Value>, new: &Value) -> Result<(), ScimError> {
    if attr.mutability == Mutability::Immutable
        && let Some(old) = old
        && old != new
    {
        return Err(ScimError::new(ScimType::Mutability, format!("`{}` is immutable", attr.name)));
    }
    Ok(())
}

fn clear_primary(v: &mut Value) {
    if let Value::Object(o) = v
        && o.get("primary") == Some(&Value::Bool(true))
    {
        o.insert("primary".to_owned(), Value::Bool(false));
    }
}

/// Indexes of `attr`'s values that match `filter`.
fn matching(doc: &Map<String, Value>, attr: &Attr, filter: &crate::Filter) -> Vec<usize> {
    match doc.get(attr.name) {
        Some(Value::Array(items)) => {
            items.iter().enumerate().filter(|(_, v)| filter.matches(v)).map(|(i, _)| i).collect()
        }
        _ => Vec::new(),
    }
}

fn remove(doc: &mut Map<String, Value>, path: &PatchPath, value: Option<&Value>) -> Result<(), ScimError> {
    let attr = path.attr;
    writable(attr)?;
    if attr.required && path.sub.is_none() && path.filter.is_none() {
        return Err(ScimError::new(ScimType::Mutability, format!("`{}` is required and cannot be removed", attr.name)));
    }
    match (&path.filter, path.sub) {
        (None, None) => {
            // Entra removes members by listing them in `value` with a bare `members` path.
            if attr.multi
                && let Some(value) = value.filter(|v| !v.is_null())
            {
                let listed: Vec<Value> = match coerce(attr, value)? {
                    Some(Value::Array(v)) => v,
                    _ => Vec::new(),
                };
                if let Some(Value::Array(items)) = doc.get_mut(attr.name) {
                    items.retain(|item| {
                        !listed.iter().any(|l| match (l.get("value"), item.get("value")) {
                            (Some(a), Some(b)) => a == b,
                            _ => l == item,
                        })
                    });
                    if items.is_empty() {
                        doc.remove(attr.name);
                    }
                }
                return Ok(());
            }
            doc.remove(attr.name);
        }
        (None, Some(sub)) => {
            match doc.get_mut(attr.name) {
                Some(Value::Object(o)) => {
                    o.remove(sub.name);
                }
                Some(Value::Array(items)) => items.iter_mut().for_each(|i| {
                    if let Value::Object(o) = i {
                        o.remove(sub.name);
                    }
                }),
                _ => {}
            }
            prune(doc, attr.name);
        }
        (Some(filter), sub) => {
            let targets = matching(doc, attr, filter);
            if let Some(Value::Array(items)) = doc.get_mut(attr.name) {
                match sub {
                    None => {
                        let mut i = 0;
                        items.retain(|_| {
                            let keep = !targets.contains(&i);
                            i += 1;
                            keep
                        });
                    }
                    Some(sub) => {
                        for t in targets {
                            if let Some(Value::Object(o)) = items.get_mut(t) {
                                o.remove(sub.name);
                            }
                        }
                    }
                }
            }
            prune(doc, attr.name);
        }
    }
    Ok(())
}

/// Drops `name` when it holds nothing any more.
fn prune(doc: &mut Map<String, Value>, name: &str) {
    let empty = match doc.get_mut(name) {
        Some(Value::Array(items)) => {
            items.retain(|i| !matches!(i, Value::Object(o) if o.is_empty()));
            items.is_empty()
        }
        Some(Value::Object(o)) => o.is_empty(),
        _ => false,
    };
    if empty {
        doc.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn user() -> Map<String, Value> {
        json!({
            "userName": "bjensen@example.com",
            "active": true,
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "b@work.example", "type": "work", "primary": true}]
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn patch(ops: Value) -> Value {
        json!({"schemas": [PATCH_SCHEMA], "Operations": ops})
    }

    fn apply(kind: Kind, doc: &mut Map<String, Value>, ops: Value) -> Result<bool, ScimError> {
        apply_patch(kind, doc, &patch(ops))
    }

    #[test]
    fn entra_deactivation_shapes() {
        for ops in [
            json!([{"op": "Replace", "path": "active", "value": "False"}]),
            json!([{"op": "replace", "value": {"active": false}}]),
            json!([{"op": "REPLACE", "value": {"active": "False"}}]),
        ] {
            let mut u = user();
            assert!(apply(Kind::User, &mut u, ops.clone()).unwrap(), "{ops}");
            assert_eq!(u["active"], json!(false), "{ops}");
        }
        let mut u = user();
        assert!(!apply(Kind::User, &mut u, json!([{"op": "replace", "path": "active", "value": true}])).unwrap());
    }

    #[test]
    fn add_replace_remove_with_and_without_paths() {
        let mut u = user();
        apply(
            Kind::User,
            &mut u,
            json!([
                {"op": "add", "path": "emails", "value": [{"value": "b@home.example", "type": "home", "primary": true}]},
                {"op": "replace", "path": "name.givenName", "value": "Babs"},
                {"op": "add", "value": {"title": "Analyst", "name.familyName": "J"}},
                {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "new@work.example"},
                {"op": "remove", "path": "emails[type eq \"home\"]"},
            ]),
        )
        .unwrap();
        assert_eq!(
            Value::Object(u),
            json!({
                "userName": "bjensen@example.com",
                "active": true,
                "name": {"givenName": "Babs", "familyName": "J"},
                "title": "Analyst",
                "emails": [{"value": "new@work.example", "type": "work", "primary": false}]
            })
        );
    }

    #[test]
    fn group_members_the_ways_idps_send_them() {
        let mut g =
            json!({"displayName": "fin", "members": [{"value": "a"}, {"value": "b"}]}).as_object().unwrap().clone();
        apply(
            Kind::Group,
            &mut g,
            json!([{"op": "add", "path": "members", "value": [{"value": "c"}, {"value": "a"}]}]),
        )
        .unwrap();
        assert_eq!(g["members"], json!([{"value": "a"}, {"value": "b"}, {"value": "c"}]));
        apply(Kind::Group, &mut g, json!([{"op": "remove", "path": "members[value eq \"b\"]"}])).unwrap();
        assert_eq!(g["members"], json!([{"value": "a"}, {"value": "c"}]));
        apply(Kind::Group, &mut g, json!([{"op": "Remove", "path": "members", "value": [{"value": "a"}]}])).unwrap();
        assert_eq!(g["members"], json!([{"value": "c"}]));
        apply(Kind::Group, &mut g, json!([{"op": "replace", "path": "members", "value": [{"value": "z"}]}])).unwrap();
        assert_eq!(g["members"], json!([{"value": "z"}]));
        apply(Kind::Group, &mut g, json!([{"op": "remove", "path": "members"}])).unwrap();
        assert!(!g.contains_key("members"));
        // Okta's whole-group replace repeats the id.
        apply(Kind::Group, &mut g, json!([{"op": "replace", "value": {"id": "x", "displayName": "finance"}}])).unwrap();
        assert_eq!(g["displayName"], json!("finance"));
    }

    #[test]
    fn failures_leave_the_resource_unchanged() {
        let cases = [
            (json!([{"op": "remove"}]), ScimType::NoTarget),
            (json!([{"op": "remove", "path": "userName"}]), ScimType::Mutability),
            (json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]), ScimType::Mutability),
            (json!([{"op": "replace", "path": "emails[type eq \"home\"].value", "value": "x"}]), ScimType::NoTarget),
            (json!([{"op": "replace", "path": "nope", "value": "x"}]), ScimType::InvalidPath),
            (json!([{"op": "move", "path": "title", "value": "x"}]), ScimType::InvalidSyntax),
            (json!([{"op": "replace", "path": "active", "value": "maybe"}]), ScimType::InvalidValue),
            (json!([{"op": "replace", "path": "emails.value", "value": "x"}]), ScimType::InvalidPath),
            (json!([{"op": "replace", "path": "title"}]), ScimType::InvalidValue),
            (json!([]), ScimType::InvalidSyntax),
            (
                json!([{"op": "replace", "path": "title", "value": "ok"}, {"op": "replace", "path": "userName", "value": ""}]),
                ScimType::InvalidValue,
            ),
        ];
        for (ops, kind) in cases {
            let mut u = user();
            let e = apply(Kind::User, &mut u, ops.clone()).unwrap_err();
            assert_eq!(e.scim_type, kind, "{ops}: {}", e.detail);
            assert_eq!(u, user(), "{ops} changed the resource");
        }
        let mut u = user();
        assert!(apply_patch(Kind::User, &mut u, &json!({"schemas": ["x"], "Operations": []})).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_operations_never_panic(
            op in prop_oneof![Just("add"), Just("Replace"), Just("remove"), Just("x")],
            path in prop_oneof![
                Just(None::<String>), Just(Some("emails".to_owned())), Just(Some("name.givenName".to_owned())), Just(Some("emails[type eq \"work\"]".to_owned())),
                Just(Some("emails[type eq \"work\"].primary".to_owned())), Just(Some("active".to_owned())), Just(Some("userName".to_owned())),
                "\\PC{0,20}".prop_map(Some)
            ],
            value in prop_oneof![
                Just(json!(null)), Just(json!("True")), Just(json!(true)), Just(json!({"value": "v"})),
                Just(json!([{"value": "v", "primary": true}])), Just(json!({"active": "False", "name.givenName": 1})),
                Just(json!(7)), Just(json!([]))
            ],
        ) {
            let mut u = user();
            let mut o = json!({"op": op, "value": value});
            if let Some(p) = path { o["path"] = json!(p); }
            let before = u.clone();
            if apply(Kind::User, &mut u, json!([o])).is_err() {
                prop_assert_eq!(u, before);
            }
        }
    }
}
