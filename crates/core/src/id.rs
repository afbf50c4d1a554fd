//! Typed, prefixed identifiers (`org_…`, `app_…`) so an id of one kind is never taken for another.

use std::fmt;
use std::str::FromStr;

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a valid {kind} id (expected `{prefix}_` followed by 32 hex digits)")]
pub struct IdError {
    /// The kind of id expected, such as `app`.
    pub kind: &'static str,
    /// The expected prefix.
    pub prefix: &'static str,
    /// The offending input, truncated to keep errors short.
    pub value: String,
}

macro_rules! define_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new, time-ordered random id.
            pub fn generate() -> Self {
                Self(format!("{}_{}", $prefix, uuid::Uuid::now_v7().simple()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Whether `s` looks like an id of this kind (used to tell ids from names).
            pub fn looks_like(s: &str) -> bool {
                s.strip_prefix(concat!($prefix, "_"))
                    .is_some_and(|rest| rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                if Self::looks_like(s) {
                    Ok(Self(s.to_ascii_lowercase()))
                } else {
                    Err(IdError {
                        kind: $kind,
                        prefix: $prefix,
                        value: s.chars().take(80).collect(),
                    })
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "_[0-9a-f]{32}$")))
                    .examples([serde_json::json!(concat!($prefix, "_0192f5c3a1b27d3e9c4b5a6f7e8d9c0b"))])
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

define_id!(
    /// Identifies an organization (a tenant).
    OrgId, "org", "organization"
);
define_id!(
    /// Identifies a folder in an organization's tree.
    FolderId, "fld", "folder"
);
define_id!(
    /// Identifies an app.
    AppId, "app", "app"
);
define_id!(
    /// Identifies a principal: a user or a service identity.
    PrincipalId, "prn", "principal"
);
define_id!(
    /// Identifies an API token (never the token's secret).
    TokenId, "tok", "token"
);

define_id!(
    /// Identifies a named secret in the vault.
    SecretId, "sec", "secret"
);
define_id!(
    /// Identifies a suppression of a scan finding.
    SuppressionId, "sup", "suppression"
);
define_id!(
    /// Identifies a group of principals.
    GroupId, "grp", "group"
);
define_id!(
    /// Identifies a role granted on a folder.
    RoleBindingId, "rb", "role binding"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip() {
        let id = AppId::generate();
        assert!(AppId::looks_like(id.as_str()));
        let parsed: AppId = id.as_str().parse().unwrap();
        assert_eq!(parsed, id);
    }

    #[test]
    fn ids_of_other_kinds_are_rejected() {
        let org = OrgId::generate();
        let err = org.as_str().parse::<AppId>().unwrap_err();
        assert_eq!(err.kind, "app");
        assert!(err.to_string().contains("not a valid app id"));
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in
            ["", "app_", "app_xyz", "app_0192f5c3a1b27d3e9c4b5a6f7e8d9c0", "APP_0192f5c3a1b27d3e9c4b5a6f7e8d9c0b"]
        {
            assert!(bad.parse::<AppId>().is_err(), "{bad} accepted");
        }
    }
}
