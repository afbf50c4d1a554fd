//! The Cedar schema, generated from the action table so the two cannot drift apart.

use std::fmt::Write;
use std::sync::OnceLock;

use cedar_policy::Schema;

use crate::action::Action;
#[cfg(test)]
use crate::action::ResourceKind;

/// The Cedar schema Gatehouse's policies are written against, as text (`gatehouse authz schema`).
pub fn cedar_schema_text() -> String {
    let mut s = String::from(
        r#"// Gatehouse's authorization model. Guardrails are checked against this schema.
namespace Gatehouse {
  // Facts about the request, filled in by Gatehouse.
  type RequestContext = {
    // Roles the principal holds on the resource or an ancestor folder (directly or via a group)
    // that allow the action asked about.
    roles: Set<String>,
    // Whether the identity provider reported multi-factor authentication for this session.
    mfa: Bool,
    // The provider's authentication methods (`amr`) and context class (`acr`), when signed in by SSO.
    amr: Set<String>,
    acr?: String,
    // How the caller authenticated: token, session, client_credentials or mtls.
    authn: String,
    // The caller's address, when known. A guardrail that needs it denies when it is missing.
    source_ip?: ipaddr,
  };
  entity Org = { name: String };
  entity Folder in [Folder, Org] = { name: String, path: String };
  entity App in [Folder] = { name: String, sensitivity: String };
  entity Secret in [Folder, App] = { name: String };
  entity Integration in [Folder, App] = { name: String };
  entity Group = { name: String };
  entity User in [Group] = { name: String, active: Bool };
  entity ServiceIdentity in [Group] = { name: String, active: Bool };
"#,
    );
    for a in Action::ALL {
        let resources: Vec<&str> = a.resources().iter().map(|k| k.cedar_type()).collect();
        let _ = writeln!(
            s,
            "  action \"{}\" appliesTo {{ principal: [User, ServiceIdentity], resource: [{}], context: RequestContext }};",
            a.name(),
            resources.join(", ")
        );
    }
    s.push_str("}\n");
    s
}

/// The parsed schema (parsed once per process).
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| match Schema::from_cedarschema_str(&cedar_schema_text()) {
        Ok((schema, _warnings)) => schema,
        // The text is generated from a fixed table; a unit test parses it.
        Err(e) => unreachable!("the generated Cedar schema does not parse: {e}"),
    })
}

/// Every resource kind appears in some action, so the schema never declares an unused type by accident.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_parses_and_covers_every_kind() {
        let text = cedar_schema_text();
        let (_schema, warnings) = Schema::from_cedarschema_str(&text).unwrap();
        assert_eq!(warnings.count(), 0);
        for k in [
            ResourceKind::Org,
            ResourceKind::Folder,
            ResourceKind::App,
            ResourceKind::Secret,
            ResourceKind::User,
            ResourceKind::ServiceIdentity,
            ResourceKind::Group,
        ] {
            assert!(Action::ALL.iter().any(|a| a.resources().contains(&k)), "{k:?}");
        }
    }
}
