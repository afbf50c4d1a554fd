//! SCIM errors (RFC 7644 §3.12).

/// The `scimType` of a 400 or 409, telling the client what kind of problem it sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    /// The filter syntax was invalid or named an unsupported attribute.
    InvalidFilter,
    /// The request body was not valid SCIM.
    InvalidSyntax,
    /// A PATCH path was invalid.
    InvalidPath,
    /// A PATCH path matched nothing where something was required.
    NoTarget,
    /// A value had the wrong type or was missing.
    InvalidValue,
    /// A read-only or immutable attribute was changed.
    Mutability,
    /// A value that must be unique is taken.
    Uniqueness,
    /// More results than the server will return.
    TooMany,
}

impl ScimType {
    /// The string RFC 7644 gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidFilter => "invalidFilter",
            Self::InvalidSyntax => "invalidSyntax",
            Self::InvalidPath => "invalidPath",
            Self::NoTarget => "noTarget",
            Self::InvalidValue => "invalidValue",
            Self::Mutability => "mutability",
            Self::Uniqueness => "uniqueness",
            Self::TooMany => "tooMany",
        }
    }
}

/// A problem with what a SCIM client sent, answered with status 400 (or 409 for uniqueness).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    /// What kind of problem.
    pub scim_type: ScimType,
    /// What was wrong, for the person reading the IdP's provisioning log.
    pub detail: String,
}

impl ScimError {
    /// A problem of kind `scim_type`.
    pub fn new(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self { scim_type, detail: detail.into() }
    }

    /// The HTTP status it is answered with.
    pub fn status(&self) -> u16 {
        match self.scim_type {
            ScimType::Uniqueness => 409,
            _ => 400,
        }
    }
}
