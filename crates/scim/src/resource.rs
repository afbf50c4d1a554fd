//! Input checked and coerced against the schema, and responses cut to the attributes asked for.

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimType};
use crate::schema::{Attr, AttrType, Kind, Mutability, Returned, find_attr, find_sub};

fn bad(detail: impl Into<String>) -> ScimError {
    ScimError::new(ScimType::InvalidValue, detail)
}

/// Checks a POST or PUT body for `kind` and returns the attributes to store, under their canonical
/// names. `id`, `meta` and read-only attributes are ignored (RFC 7643 §2.2); so are attributes
/// Gatehouse does not keep (identity providers send many, e.g. addresses), which is why every
/// response returns the resource as stored. Booleans sent as the strings `"True"`/`"False"` (as
/// Microsoft Entra does) are accepted.
pub fn normalize(kind: Kind, body: &Value) -> Result<Map<String, Value>, ScimError> {
    let Value::Object(body) = body else {
        return Err(ScimError::new(ScimType::InvalidSyntax, "the body must be a JSON object"));
    };
    let schemas_ok = body
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|u| u.as_str().is_some_and(|u| u.eq_ignore_ascii_case(kind.schema()))));
    if !schemas_ok {
        return Err(ScimError::new(ScimType::InvalidSyntax, format!("`schemas` must list {}", kind.schema())));
    }
    let mut out = Map::new();
    for (key, value) in body {
        let Some(attr) = find_attr(kind, key) else { continue };
        if attr.mutability == Mutability::ReadOnly {
            continue;
        }
        if let Some(v) = coerce(attr, value)? {
            out.insert(attr.name.to_owned(), v);
        }
    }
    check_required(kind, &out)?;
    Ok(out)
}

/// Fails unless `doc` has every required attribute.
pub(crate) fn check_required(kind: Kind, doc: &Map<String, Value>) -> Result<(), ScimError> {
    for attr in kind.attrs().iter().filter(|a| a.required) {
        match doc.get(attr.name) {
            Some(Value::String(s)) if !s.trim().is_empty() => {}
            Some(Value::String(_)) => return Err(bad(format!("`{}` must not be empty", attr.name))),
            Some(_) => {}
            None => return Err(bad(format!("`{}` is required", attr.name))),
        }
    }
    Ok(())
}

/// `value` as attribute `attr` holds it, or `None` when it is null or empty (unassigned).
pub(crate) fn coerce(attr: &'static Attr, value: &Value) -> Result<Option<Value>, ScimError> {
    if value.is_null() {
        return Ok(None);
    }
    if attr.multi {
        let items: Vec<&Value> = match value {
            Value::Array(a) => a.iter().collect(),
            single => vec![single],
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            if let Some(v) = coerce_single(attr, item)? {
                out.push(v);
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        check_primary(attr, &out)?;
        return Ok(Some(Value::Array(out)));
    }
    if value.is_array() {
        return Err(bad(format!("`{}` takes a single value, not a list", attr.name)));
    }
    coerce_single(attr, value)
}

/// RFC 7643 §2.4: `primary` is true for at most one value.
pub(crate) fn check_primary(attr: &Attr, values: &[Value]) -> Result<(), ScimError> {
    let primaries = values.iter().filter(|v| v.get("primary") == Some(&Value::Bool(true))).count();
    if primaries > 1 {
        return Err(bad(format!("at most one of `{}` may be primary", attr.name)));
    }
    Ok(())
}

fn coerce_single(attr: &'static Attr, value: &Value) -> Result<Option<Value>, ScimError> {
    match (attr.ty, value) {
        (_, Value::Null) => Ok(None),
        (AttrType::Complex, Value::Object(o)) => {
            let mut out = Map::new();
            for (k, v) in o {
                let Some(sub) = find_sub(attr, k) else { continue };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                if let Some(v) = coerce_single(sub, v)? {
                    out.insert(sub.name.to_owned(), v);
                }
            }
            Ok((!out.is_empty()).then_some(Value::Object(out)))
        }
        (AttrType::Complex, _) => Err(bad(format!("`{}` must be an object of sub-attributes", attr.name))),
        (AttrType::Boolean, Value::Bool(b)) => Ok(Some(Value::Bool(*b))),
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
        (AttrType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(Value::Bool(false))),
        (AttrType::Boolean, _) => Err(bad(format!("`{}` must be true or false", attr.name))),
        (AttrType::String | AttrType::Reference | AttrType::DateTime, Value::String(s)) => {
            if s.len() > 2048 {
                return Err(bad(format!("`{}` is longer than 2048 bytes", attr.name)));
            }
            if s.chars().any(|c| c.is_control()) {
                return Err(bad(format!("`{}` contains control characters", attr.name)));
            }
            Ok(Some(Value::String(s.clone())))
        }
        (_, _) => Err(bad(format!("`{}` must be a string", attr.name))),
    }
}

/// Which attributes a response carries (`attributes` / `excludedAttributes`, RFC 7644 §3.9).
#[derive(Debug, Clone, Default)]
pub struct Selection {
    only: Vec<(&'static Attr, Option<&'static Attr>)>,
    except: Vec<(&'static Attr, Option<&'static Attr>)>,
}

impl Selection {
    /// From the comma-separated query parameters. Names Gatehouse does not know are ignored,
    /// as they would select nothing.
    pub fn parse(kind: Kind, attributes: Option<&str>, excluded: Option<&str>) -> Self {
        let list = |s: Option<&str>| {
            s.unwrap_or_default()
                .split(',')
                .filter_map(|name| {
                    let name = crate::schema::strip_urn(kind, name.trim());
                    let (a, sub) = match name.split_once('.') {
                        Some((a, s)) => (a, Some(s)),
                        None => (name, None),
                    };
                    let attr = find_attr(kind, a)?;
                    match sub {
                        None => Some((attr, None)),
                        Some(s) => Some((attr, Some(find_sub(attr, s)?))),
                    }
                })
                .collect::<Vec<_>>()
        };
        Self { only: list(attributes), except: list(excluded) }
    }
}

/// `resource` cut to `selection`. `schemas` and attributes returned `always` stay.
pub fn select(kind: Kind, mut resource: Map<String, Value>, selection: &Selection) -> Map<String, Value> {
    let always =
        |name: &str| name == "schemas" || find_attr(kind, name).is_some_and(|a| a.returned == Returned::Always);
    if !selection.only.is_empty() {
        let keys: Vec<String> = resource.keys().cloned().collect();
        for key in keys {
            if always(&key) {
                continue;
            }
            let wanted: Vec<_> = selection.only.iter().filter(|(a, _)| a.name == key).collect();
            if wanted.is_empty() {
                resource.remove(&key);
            } else if wanted.iter().all(|(_, s)| s.is_some()) {
                let subs: Vec<&str> = wanted.iter().filter_map(|(_, s)| s.map(|s| s.name)).collect();
                if let Some(v) = resource.get_mut(&key) {
                    keep_subs(v, &subs);
                }
            }
        }
    }
    for (attr, sub) in &selection.except {
        if always(attr.name) {
            continue;
        }
        match sub {
            None => {
                resource.remove(attr.name);
            }
            Some(sub) => {
                if let Some(v) = resource.get_mut(attr.name) {
                    drop_sub(v, sub.name);
                }
            }
        }
    }
    resource
}

fn keep_subs(v: &mut Value, subs: &[&str]) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| keep_subs(i, subs)),
        Value::Object(o) => o.retain(|k, _| subs.contains(&k.as_str())),
        _ => {}
    }
}

fn drop_sub(v: &mut Value, sub: &str) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(|i| drop_sub(i, sub)),
        Value::Object(o) => {
            o.remove(sub);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::schema::USER_SCHEMA;

    #[test]
    fn normalize_keeps_known_attributes_and_coerces() {
        let body = json!({
            "schemas": [USER_SCHEMA],
            "id": "ignored",
            "UserName": "bjensen@example.com",
            "active": "False",
            "emails": {"value": "b@example.com", "Primary": "True", "unknownSub": 1},
            "groups": [{"value": "g"}],
            "addresses": [{"locality": "x"}],
            "name": {"givenName": "Barbara", "familyName": null},
            "phoneNumbers": [],
        });
        let out = normalize(Kind::User, &body).unwrap();
        assert_eq!(
            Value::Object(out),
            json!({
                "userName": "bjensen@example.com",
                "active": false,
                "emails": [{"value": "b@example.com", "primary": true}],
                "name": {"givenName": "Barbara"},
            })
        );
    }

    #[test]
    fn normalize_refuses_what_it_cannot_keep() {
        let user = |extra: Value| {
            let mut b = json!({"schemas": [USER_SCHEMA], "userName": "a@b.c"});
            b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            normalize(Kind::User, &b)
        };
        assert!(user(json!({})).is_ok());
        assert!(user(json!({"active": "yes"})).unwrap_err().detail.contains("true or false"));
        assert!(user(json!({"userName": ""})).unwrap_err().detail.contains("empty"));
        assert!(user(json!({"displayName": 3})).unwrap_err().detail.contains("string"));
        assert!(user(json!({"name": "x"})).unwrap_err().detail.contains("object"));
        assert!(user(json!({"displayName": ["a"]})).unwrap_err().detail.contains("single"));
        let two = json!({"emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]});
        assert!(user(two).unwrap_err().detail.contains("primary"));
        let e = normalize(Kind::User, &json!({"schemas": [USER_SCHEMA]})).unwrap_err();
        assert!(e.detail.contains("`userName` is required"));
        let e = normalize(Kind::User, &json!({"userName": "a"})).unwrap_err();
        assert_eq!(e.scim_type, ScimType::InvalidSyntax);
        assert!(normalize(Kind::User, &json!([])).is_err());
    }

    fn any_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            "\\PC{0,12}".prop_map(Value::String),
            Just(json!("True")),
            Just(json!(USER_SCHEMA)),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::vec(
                    (
                        prop_oneof![
                            Just("schemas".to_owned()),
                            Just("userName".to_owned()),
                            Just("emails".to_owned()),
                            Just("name".to_owned()),
                            Just("active".to_owned()),
                            Just("value".to_owned()),
                            Just("primary".to_owned()),
                            "[a-zA-Z]{1,8}",
                        ],
                        inner
                    ),
                    0..5
                )
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn any_body_normalizes_or_errors(body in any_json(), attrs in "\\PC{0,40}", excluded in "\\PC{0,40}") {
            if let Ok(doc) = normalize(Kind::User, &body) {
                // What is kept always passes its own checks again.
                let mut again = doc.clone();
                again.insert("schemas".to_owned(), json!([USER_SCHEMA]));
                proptest::prop_assert_eq!(normalize(Kind::User, &Value::Object(again)).unwrap(), doc.clone());
                let sel = Selection::parse(Kind::User, Some(&attrs), Some(&excluded));
                let _ = select(Kind::User, doc, &sel);
            }
            let _ = normalize(Kind::Group, &body);
        }
    }

    #[test]
    fn selection() {
        let r = json!({
            "schemas": [USER_SCHEMA], "id": "1", "userName": "a", "displayName": "A",
            "emails": [{"value": "a@b", "type": "work"}], "meta": {"resourceType": "User"}
        });
        let r = r.as_object().unwrap().clone();
        let s = Selection::parse(Kind::User, Some("userName,emails.value"), None);
        assert_eq!(
            Value::Object(select(Kind::User, r.clone(), &s)),
            json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "emails": [{"value": "a@b"}]})
        );
        let s = Selection::parse(Kind::User, None, Some("displayName,emails.type,id,nope"));
        assert_eq!(
            Value::Object(select(Kind::User, r, &s)),
            json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "a", "emails": [{"value": "a@b"}],
                   "meta": {"resourceType": "User"}})
        );
    }
}
