//! A tenant's single sign-on: the OpenID Connect provider its people sign
//! in to the console with, and which of their groups get which role.

use std::collections::BTreeMap;

use uuid::Uuid;

use crate::Timestamp;
use crate::admin_token::Role;

/// A tenant's OpenID Connect provider (the client secret is kept apart,
/// sealed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoConfig {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The provider's issuer identifier (its discovery document lives at
    /// `{issuer}/.well-known/openid-configuration`).
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Scopes asked for (`openid` always among them).
    pub scopes: Vec<String>,
    /// The ID token claim that carries the person's groups.
    pub groups_claim: String,
    /// Provider group → role. A person with no mapped group is refused.
    pub role_map: BTreeMap<String, Role>,
    /// When it was last set.
    pub updated_at: Timestamp,
    /// By whom.
    pub updated_by: String,
}

/// Why a configuration was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct SsoError {
    /// Which field.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> SsoError {
    SsoError {
        field,
        reason: reason.into(),
    }
}

/// Whether `url`'s host is this machine (the only place plain http is
/// allowed, for a provider run beside the server in tests and trials).
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

impl SsoConfig {
    /// Checks every field: the issuer is an https URL without query or
    /// fragment (OpenID Connect Discovery §3; plain http only on loopback),
    /// the client id and groups claim are set, `openid` is asked for, and
    /// every group maps to a role people can hold (`admin`, `operator`,
    /// `auditor` or `owner`; not `pep`).
    pub fn check(&self) -> Result<(), SsoError> {
        let url = url::Url::parse(&self.issuer).map_err(|_| bad("issuer", "must be an absolute URL"))?;
        if url.scheme() != "https" && !(url.scheme() == "http" && is_loopback(&url)) {
            return Err(bad("issuer", "must be an https URL (plain http only on this machine)"));
        }
        if url.query().is_some() || url.fragment().is_some() || self.issuer.len() > 512 {
            return Err(bad(
                "issuer",
                "must have no query or fragment and be at most 512 characters",
            ));
        }
        if self.client_id.trim().is_empty() || self.client_id.len() > 255 {
            return Err(bad("client_id", "must be 1 to 255 characters"));
        }
        if !self.scopes.iter().any(|s| s == "openid") {
            return Err(bad("scopes", "must include `openid`"));
        }
        if self.scopes.len() > 20
            || self
                .scopes
                .iter()
                .any(|s| s.is_empty() || s.len() > 100 || s.contains(' '))
        {
            return Err(bad(
                "scopes",
                "at most 20 scopes of 1 to 100 characters, without spaces",
            ));
        }
        if self.groups_claim.trim().is_empty() || self.groups_claim.len() > 100 {
            return Err(bad("groups_claim", "must be 1 to 100 characters"));
        }
        if self.role_map.is_empty() {
            return Err(bad(
                "role_map",
                "map at least one group to a role, or nobody can sign in",
            ));
        }
        for (group, role) in &self.role_map {
            if group.is_empty() || group.len() > 256 {
                return Err(bad("role_map", "group names are 1 to 256 characters"));
            }
            if *role == Role::Pep {
                return Err(bad("role_map", format!("`{group}`: `pep` is not a role for people")));
            }
        }
        Ok(())
    }

    /// The role a person in `groups` gets: the most powerful one any of
    /// their mapped groups gives (`admin` over `operator` over `auditor`
    /// over `owner`), or `None` when no group is mapped.
    pub fn role_for(&self, groups: &[String]) -> Option<Role> {
        let rank = |r: &Role| match r {
            Role::Admin => 4,
            Role::Operator => 3,
            Role::Auditor => 2,
            Role::Owner => 1,
            Role::Pep => 0,
        };
        groups
            .iter()
            .filter_map(|g| self.role_map.get(g))
            .filter(|r| **r != Role::Pep)
            .max_by_key(|r| rank(r))
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SsoConfig {
        SsoConfig {
            tenant_id: Uuid::nil(),
            issuer: "https://bank.okta.com".into(),
            client_id: "0oa1abcd".into(),
            scopes: vec!["openid".into(), "email".into(), "groups".into()],
            groups_claim: "groups".into(),
            role_map: BTreeMap::from([
                ("iam-admins".to_owned(), Role::Admin),
                ("ops".to_owned(), Role::Operator),
                ("audit".to_owned(), Role::Auditor),
            ]),
            updated_at: Timestamp::from_micros(0),
            updated_by: "test".into(),
        }
    }

    #[test]
    fn the_strongest_mapped_group_wins() {
        let c = config();
        let g = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(c.role_for(&g(&["audit", "ops"])), Some(Role::Operator));
        assert_eq!(c.role_for(&g(&["staff", "iam-admins"])), Some(Role::Admin));
        assert_eq!(c.role_for(&g(&["staff"])), None);
        assert_eq!(c.role_for(&[]), None);
    }

    #[test]
    fn configurations_are_checked() {
        assert!(config().check().is_ok());
        let field = |f: fn(&mut SsoConfig)| {
            let mut c = config();
            f(&mut c);
            c.check().unwrap_err().field
        };
        assert_eq!(field(|c| c.issuer = "http://bank.okta.com".into()), "issuer");
        assert_eq!(field(|c| c.issuer = "https://idp/?x=1".into()), "issuer");
        assert_eq!(field(|c| c.issuer = "not a url".into()), "issuer");
        assert_eq!(field(|c| c.client_id = " ".into()), "client_id");
        assert_eq!(field(|c| c.scopes = vec!["email".into()]), "scopes");
        assert_eq!(field(|c| c.groups_claim = String::new()), "groups_claim");
        assert_eq!(field(|c| c.role_map.clear()), "role_map");
        assert_eq!(
            field(|c| {
                c.role_map.insert("x".into(), Role::Pep);
            }),
            "role_map"
        );
        let mut local = config();
        local.issuer = "http://127.0.0.1:4000".into();
        assert!(
            local.check().is_ok(),
            "plain http on loopback, for a provider run beside the server"
        );
    }
}
