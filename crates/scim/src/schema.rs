//! The User and Group schemas Gatehouse serves, and the discovery documents rendered from them.

use serde_json::{Value, json};

/// The core User schema's URN.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The core Group schema's URN.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The ListResponse message's URN.
pub const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The PatchOp message's URN.
pub const PATCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// The SearchRequest message's URN.
pub const SEARCH_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";

/// A SCIM attribute's data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    /// A string.
    String,
    /// `true` or `false`.
    Boolean,
    /// Sub-attributes.
    Complex,
    /// A URI.
    Reference,
    /// An RFC 3339 timestamp.
    DateTime,
}

impl AttrType {
    fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Boolean => "boolean",
            Self::Complex => "complex",
            Self::Reference => "reference",
            Self::DateTime => "dateTime",
        }
    }
}

/// Who may change an attribute (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Only the server sets it.
    ReadOnly,
    /// Clients set and change it.
    ReadWrite,
    /// Set once, then fixed.
    Immutable,
}

/// When an attribute is returned (RFC 7643 §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returned {
    /// Always, even when not asked for.
    Always,
    /// Unless excluded.
    Default,
}

/// One attribute of a schema.
#[derive(Debug)]
pub struct Attr {
    /// Its canonical name.
    pub name: &'static str,
    /// Its type.
    pub ty: AttrType,
    /// Whether it holds a list.
    pub multi: bool,
    /// Whether a resource must have it.
    pub required: bool,
    /// Whether string comparisons respect case.
    pub case_exact: bool,
    /// Who may change it.
    pub mutability: Mutability,
    /// When it is returned.
    pub returned: Returned,
    /// Whether the server keeps it unique.
    pub unique: bool,
    /// Values the server knows the meaning of (others are accepted).
    pub canonical: &'static [&'static str],
    /// For references, what they may point at.
    pub reference_types: &'static [&'static str],
    /// Sub-attributes of a complex attribute.
    pub sub: &'static [Attr],
    /// What it means.
    pub description: &'static str,
}

// Attributes are told apart by name: names are unique among siblings, and paths compare the
// whole chain.
impl PartialEq for Attr {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Attr {}

const fn string(name: &'static str, description: &'static str) -> Attr {
    Attr {
        name,
        ty: AttrType::String,
        multi: false,
        required: false,
        case_exact: false,
        mutability: Mutability::ReadWrite,
        returned: Returned::Default,
        unique: false,
        canonical: &[],
        reference_types: &[],
        sub: &[],
        description,
    }
}

const fn with_canonical(mut a: Attr, canonical: &'static [&'static str]) -> Attr {
    a.canonical = canonical;
    a
}

const fn read_only(mut a: Attr) -> Attr {
    a.mutability = Mutability::ReadOnly;
    a
}

const fn immutable(mut a: Attr) -> Attr {
    a.mutability = Mutability::Immutable;
    a
}

const fn reference(name: &'static str, types: &'static [&'static str], description: &'static str) -> Attr {
    let mut a = string(name, description);
    a.ty = AttrType::Reference;
    a.reference_types = types;
    a.case_exact = true;
    a
}

const fn boolean(name: &'static str, description: &'static str) -> Attr {
    let mut a = string(name, description);
    a.ty = AttrType::Boolean;
    a
}

const fn complex(name: &'static str, multi: bool, sub: &'static [Attr], description: &'static str) -> Attr {
    let mut a = string(name, description);
    a.ty = AttrType::Complex;
    a.multi = multi;
    a.sub = sub;
    a
}

const CONTACT_TYPES: &[&str] = &["work", "home", "other"];

const EMAIL_SUB: &[Attr] = &[
    string("value", "The address."),
    string("display", "How to show it."),
    with_canonical(string("type", "work, home or other."), CONTACT_TYPES),
    boolean("primary", "The preferred address; at most one is."),
];

const PHONE_SUB: &[Attr] = &[
    string("value", "The number."),
    string("display", "How to show it."),
    with_canonical(string("type", "work, home, mobile or other."), &["work", "home", "mobile", "other"]),
    boolean("primary", "The preferred number; at most one is."),
];

const NAME_SUB: &[Attr] = &[
    string("formatted", "The full name, for display."),
    string("familyName", "Family name."),
    string("givenName", "Given name."),
    string("middleName", "Middle name."),
    string("honorificPrefix", "Title before the name."),
    string("honorificSuffix", "Suffix after the name."),
];

const USER_GROUPS_SUB: &[Attr] = &[
    read_only(string("value", "The group's id.")),
    read_only(reference("$ref", &["Group"], "The group's URI.")),
    read_only(string("display", "The group's name.")),
    read_only(with_canonical(string("type", "direct (Gatehouse does not nest groups)."), &["direct", "indirect"])),
];

const MEMBER_SUB: &[Attr] = &[
    immutable(string("value", "The member's id.")),
    immutable(reference("$ref", &["User", "Group"], "The member's URI.")),
    immutable(with_canonical(string("type", "User (groups do not nest)."), &["User", "Group"])),
];

/// The User attributes Gatehouse keeps. `userName` is the login name the identity provider uses;
/// single sign-on finds users by it (and by `externalId`).
pub const USER_ATTRS: &[Attr] = &[
    Attr {
        required: true,
        unique: true,
        ..string("userName", "The identity provider's login name for the user, unique in the organization.")
    },
    complex("name", false, NAME_SUB, "The parts of the user's name."),
    string("displayName", "The name shown for the user."),
    string("nickName", "Casual name."),
    string("title", "Job title."),
    string("userType", "Employee, contractor, …"),
    string("preferredLanguage", "Preferred language."),
    string("locale", "Locale for formatting."),
    string("timezone", "Time zone."),
    boolean("active", "Whether the user may sign in. Setting it false revokes every session and token at once."),
    complex("emails", true, EMAIL_SUB, "Email addresses."),
    complex("phoneNumbers", true, PHONE_SUB, "Phone numbers."),
    read_only(complex("groups", true, USER_GROUPS_SUB, "The groups the user belongs to (change them on the group).")),
];

/// The Group attributes Gatehouse keeps. Groups drive authorization: roles granted to a group on
/// a folder hold for its members.
pub const GROUP_ATTRS: &[Attr] = &[
    Attr { required: true, unique: true, ..string("displayName", "The group's name, unique in the organization.") },
    complex("members", true, MEMBER_SUB, "The group's members (users)."),
];

/// Which resource type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/Users`.
    User,
    /// `/Groups`.
    Group,
}

impl Kind {
    /// Its schema URN.
    pub fn schema(self) -> &'static str {
        match self {
            Self::User => USER_SCHEMA,
            Self::Group => GROUP_SCHEMA,
        }
    }

    /// Its resource type name.
    pub fn name(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
        }
    }

    /// Its endpoint.
    pub fn endpoint(self) -> &'static str {
        match self {
            Self::User => "/Users",
            Self::Group => "/Groups",
        }
    }

    /// Its attributes.
    pub fn attrs(self) -> &'static [Attr] {
        match self {
            Self::User => USER_ATTRS,
            Self::Group => GROUP_ATTRS,
        }
    }
}

/// Attributes every resource has (RFC 7643 §3.1) that are not in its schema.
pub(crate) const COMMON_ATTRS: &[Attr] = &[
    Attr { case_exact: true, returned: Returned::Always, ..read_only(string("id", "Gatehouse's id.")) },
    Attr { case_exact: true, ..string("externalId", "The identity provider's id.") },
    read_only(complex(
        "meta",
        false,
        &[
            read_only(string("resourceType", "User or Group.")),
            Attr { ty: AttrType::DateTime, ..read_only(string("created", "When it was created.")) },
            Attr { ty: AttrType::DateTime, ..read_only(string("lastModified", "When it last changed.")) },
            read_only(reference("location", &["uri"], "Its URI.")),
            Attr { case_exact: true, ..read_only(string("version", "Its version.")) },
        ],
        "Metadata.",
    )),
];

/// The attribute `name` of `kind` (case-insensitive), including the common ones. A name
/// prefixed with the resource's schema URN is accepted.
pub(crate) fn find_attr(kind: Kind, name: &str) -> Option<&'static Attr> {
    let name = strip_urn(kind, name);
    kind.attrs().iter().chain(COMMON_ATTRS).find(|a| a.name.eq_ignore_ascii_case(name))
}

/// `name` without a leading `<schema URN>:`.
pub(crate) fn strip_urn(kind: Kind, name: &str) -> &str {
    let urn = kind.schema();
    if name.len() > urn.len()
        && name.is_char_boundary(urn.len())
        && name[..urn.len()].eq_ignore_ascii_case(urn)
        && name.as_bytes()[urn.len()] == b':'
    {
        &name[urn.len() + 1..]
    } else {
        name
    }
}

/// Sub-attribute `name` of `parent` (case-insensitive).
pub(crate) fn find_sub(parent: &'static Attr, name: &str) -> Option<&'static Attr> {
    parent.sub.iter().find(|a| a.name.eq_ignore_ascii_case(name))
}

fn attr_json(a: &Attr) -> Value {
    let mut v = json!({
        "name": a.name,
        "type": a.ty.as_str(),
        "multiValued": a.multi,
        "description": a.description,
        "required": a.required,
        "caseExact": a.case_exact,
        "mutability": match a.mutability {
            Mutability::ReadOnly => "readOnly",
            Mutability::ReadWrite => "readWrite",
            Mutability::Immutable => "immutable",
        },
        "returned": match a.returned { Returned::Always => "always", Returned::Default => "default" },
        "uniqueness": if a.unique { "server" } else { "none" },
    });
    if !a.canonical.is_empty() {
        v["canonicalValues"] = json!(a.canonical);
    }
    if a.ty == AttrType::Reference {
        v["referenceTypes"] = json!(a.reference_types);
    }
    if a.ty == AttrType::Complex {
        v["subAttributes"] = a.sub.iter().map(attr_json).collect();
    }
    v
}

fn schema_json(kind: Kind, base: &str) -> Value {
    let (name, description) = match kind {
        Kind::User => ("User", "A person who signs in to Gatehouse."),
        Kind::Group => ("Group", "A group of users; roles granted to it hold for its members."),
    };
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": kind.schema(),
        "name": name,
        "description": description,
        "attributes": kind.attrs().iter().map(attr_json).collect::<Vec<_>>(),
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{}", kind.schema())},
    })
}

/// `/Schemas` resources, with locations under `base` (the `/scim/v2` URL).
pub fn schemas(base: &str) -> Vec<Value> {
    vec![schema_json(Kind::User, base), schema_json(Kind::Group, base)]
}

/// `/ResourceTypes` resources.
pub fn resource_types(base: &str) -> Vec<Value> {
    [Kind::User, Kind::Group]
        .into_iter()
        .map(|k| {
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
                "id": k.name(),
                "name": k.name(),
                "endpoint": k.endpoint(),
                "description": format!("{}s", k.name()),
                "schema": k.schema(),
                "schemaExtensions": [],
                "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{}", k.name())},
            })
        })
        .collect()
}

/// The `/ServiceProviderConfig` resource; `max_results` is the largest page.
pub fn service_provider_config(base: &str, max_results: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/gatehouse-dev/gatehouse/blob/main/README.md#scim-provisioning",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "SCIM bearer token",
            "description": "A per-organization token created with `gatehouse scim token create`, sent as `Authorization: Bearer`.",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
            "primary": true,
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")},
    })
}
