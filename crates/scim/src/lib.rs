//! SCIM 2.0 (RFC 7643/7644) without I/O: the schemas Gatehouse publishes, the filter and PATCH
//! path language, PATCH applied to a resource, and attribute selection for responses.
//!
//! Resources are `serde_json` objects holding canonical attribute names. The schema tables are the
//! single source: `/Schemas` is rendered from them, input is checked and coerced against them, and
//! filters and PATCH resolve attribute names (case-insensitively, as RFC 7643 §2.1 says) through
//! them.

mod error;
mod filter;
mod patch;
mod resource;
mod schema;

pub use error::{ScimError, ScimType};
pub use filter::{AttrPath, CompareOp, Filter, PatchPath, parse_filter, parse_patch_path};
pub use patch::apply_patch;
pub use resource::{Selection, normalize, select};
pub use schema::{
    Attr, AttrType, GROUP_SCHEMA, Kind, LIST_SCHEMA, Mutability, PATCH_SCHEMA, Returned, SEARCH_SCHEMA, USER_SCHEMA,
    resource_types, schemas, service_provider_config,
};
