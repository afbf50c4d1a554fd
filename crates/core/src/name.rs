//! Names people give to things (apps, folders, orgs): short, lowercase slugs that are safe in
//! paths, URLs and command lines, and can never be mistaken for an id.

/// Why a name is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} name `{value}`: {reason}")]
pub struct NameError {
    /// What was being named (`app`, `folder`, …).
    pub what: &'static str,
    /// The offending input, truncated.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// The longest name accepted.
pub const MAX_NAME_LEN: usize = 63;

/// Checks that `value` is a slug: 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter
/// and not ending with `-`.
pub fn validate_slug(what: &'static str, value: &str) -> Result<(), NameError> {
    let err = |reason| NameError { what, value: value.chars().take(80).collect(), reason };
    if value.is_empty() {
        return Err(err("it must not be empty"));
    }
    if value.len() > MAX_NAME_LEN {
        return Err(err("it must be at most 63 characters"));
    }
    if !value.bytes().next().is_some_and(|b| b.is_ascii_lowercase()) {
        return Err(err("it must start with a lowercase letter"));
    }
    if !value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
        return Err(err("only lowercase letters, digits and `-` are allowed"));
    }
    if value.ends_with('-') {
        return Err(err("it must not end with `-`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_slugs() {
        for ok in ["a", "refund-dashboard", "app2", "x-1-y"] {
            validate_slug("app", ok).unwrap();
        }
    }

    #[test]
    fn rejects_non_slugs() {
        for bad in ["", "1app", "App", "a_b", "a-", "-a", "a b", "../x", &"a".repeat(64)] {
            assert!(validate_slug("app", bad).is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_accepted_names_are_safe(s in ".{0,80}") {
            if validate_slug("app", &s).is_ok() {
                prop_assert!(!s.contains('/') && !s.contains('_') && !s.contains('.'));
            }
        }
    }
}
