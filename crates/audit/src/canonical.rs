//! Canonical JSON: object keys sorted, no insignificant whitespace. Hashes must not depend on
//! how a map happened to be ordered in memory (serde_json's `preserve_order` may be enabled by
//! any crate in the build), so the encoding is written out here.

use serde_json::Value;

/// Appends the canonical encoding of `v` to `out`.
pub fn write(v: &Value, out: &mut Vec<u8>) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push(b'{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(&Value::String(k.clone()), out);
                out.push(b':');
                if let Some(inner) = map.get(k) {
                    write(inner, out);
                }
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out);
            }
            out.push(b']');
        }
        // Scalars have one serde_json rendering; writing into a Vec cannot fail.
        other => {
            let _ = serde_json::to_writer(&mut *out, other);
        }
    }
}

/// The canonical encoding of `v`.
pub fn to_vec(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write(v, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"b": 1, "a": {"d": [1, {"z": 0, "y": null}], "c": "x"}});
        let b: Value = serde_json::from_str(r#"{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}"#).unwrap();
        assert_eq!(to_vec(&a), to_vec(&b));
        assert_eq!(to_vec(&a), br#"{"a":{"c":"x","d":[1,{"y":null,"z":0}]},"b":1}"#.to_vec());
    }
}
