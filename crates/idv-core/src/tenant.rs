//! Tenants (organizations): fully isolated namespaces, each its own issuer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// The tenant that exists on every installation.
pub const DEFAULT_TENANT: &str = "default";

/// An organization. Every record belongs to exactly one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// Immutable UUIDv7.
    pub id: Uuid,
    /// Unique slug, used in URLs and SPIFFE ids.
    pub name: String,
    /// Free text for people.
    pub display_name: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A tenant name that is not a valid slug.
#[derive(Debug, thiserror::Error)]
#[error("tenant name `{0}` must be 1 to 63 characters of lowercase letters, digits and `-`, starting with a letter")]
pub struct InvalidTenantName(pub String);

/// Checks a tenant slug: DNS-label-like so it is safe in paths and SPIFFE ids.
pub fn validate_name(name: &str) -> Result<(), InvalidTenantName> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(InvalidTenantName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("acme-bank").is_ok());
        assert!(validate_name("a1").is_ok());
        for bad in ["", "Acme", "1abc", "a_b", "a-", &"a".repeat(64), "a/b"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
