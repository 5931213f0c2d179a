//! What an agent may ask for in a token: scopes, audiences (RFC 8707
//! resources) and RFC 9396 `authorization_details` types.
//!
//! This is the one place that decides what a token request is granted. The
//! authorization issue replaces the stored grants with policy; callers only
//! ever go through [`decide`].

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::agent::AgentError;

/// Limits on grant lists.
pub mod limits {
    /// Most entries in each grant list.
    pub const ENTRIES: usize = 256;
    /// Longest scope, resource or type.
    pub const ENTRY: usize = 512;
    /// Most `authorization_details` objects in one request.
    pub const DETAILS: usize = 32;
}

/// An agent's grants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    /// Scopes it may request.
    #[serde(default)]
    pub scopes: BTreeSet<String>,
    /// Audiences (RFC 8707 `resource` values) it may address.
    #[serde(default)]
    pub resources: BTreeSet<String>,
    /// RFC 9396 `authorization_details` types it may request.
    #[serde(default)]
    pub authorization_details_types: BTreeSet<String>,
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
pub fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// RFC 8707 §2: a resource is an absolute URI without a fragment. We accept
/// `scheme:rest` with an RFC 3986 scheme and no whitespace, controls or `#`.
pub fn is_resource(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let scheme_ok = scheme.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    scheme_ok && !rest.is_empty() && s.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
}

fn type_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= limits::ENTRY && s.bytes().all(|b| b.is_ascii_graphic())
}

impl Grants {
    /// Checks every entry (`field` prefixes error field names).
    pub fn validate(&self) -> Result<(), AgentError> {
        let lists: [(&str, &BTreeSet<String>, EntryRule, &str); 3] = [
            (
                "allowed_scopes",
                &self.scopes,
                is_scope_token,
                "a scope token (RFC 6749 §3.3: printable ASCII without spaces, `\"` or `\\`)",
            ),
            (
                "allowed_resources",
                &self.resources,
                is_resource,
                "an absolute URI without a fragment (RFC 8707 §2)",
            ),
            (
                "authorization_details_types",
                &self.authorization_details_types,
                type_name,
                "printable ASCII without spaces",
            ),
        ];
        for (field, list, ok, rule) in lists {
            if list.len() > limits::ENTRIES {
                return Err(AgentError::invalid(
                    field,
                    format!("at most {} entries", limits::ENTRIES),
                ));
            }
            if let Some(bad) = list.iter().find(|e| e.len() > limits::ENTRY || !ok(e)) {
                return Err(AgentError::invalid(
                    field,
                    format!("`{bad}` must be {rule}, at most {} characters", limits::ENTRY),
                ));
            }
        }
        Ok(())
    }
}

/// Checks one grant entry.
type EntryRule = fn(&str) -> bool;

/// What a token request asks for, parsed from the wire.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Request {
    /// Requested scopes (`None`: the parameter was absent).
    pub scope: Option<BTreeSet<String>>,
    /// Requested audiences (RFC 8707 `resource`, repeatable).
    pub resources: Vec<String>,
    /// RFC 9396 `authorization_details` (a JSON array of objects).
    pub authorization_details: Option<Vec<Value>>,
}

/// What the token will carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Granted {
    /// Granted scopes.
    pub scopes: BTreeSet<String>,
    /// Audiences (`aud`).
    pub audiences: Vec<String>,
    /// Authorization details, as requested (each of an allowed type).
    pub authorization_details: Option<Vec<Value>>,
}

/// Why a request cannot be granted (each maps to one RFC error code).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// RFC 6749 §5.2 `invalid_scope`.
    #[error("{0}")]
    Scope(String),
    /// RFC 8707 §2 `invalid_target`.
    #[error("{0}")]
    Target(String),
    /// RFC 9396 §5 `invalid_authorization_details`.
    #[error("{0}")]
    AuthorizationDetails(String),
}

/// Parses the `scope` parameter (RFC 6749 §3.3: space-delimited scope
/// tokens). Empty or doubled spaces and forbidden characters are refused.
pub fn parse_scope(s: &str) -> Result<BTreeSet<String>, Refusal> {
    let mut out = BTreeSet::new();
    for t in s.split(' ') {
        if !is_scope_token(t) {
            return Err(Refusal::Scope(
                "`scope` must be scope tokens separated by single spaces (RFC 6749 §3.3)".into(),
            ));
        }
        out.insert(t.to_owned());
    }
    Ok(out)
}

/// Parses the `authorization_details` parameter (RFC 9396 §2: a JSON array
/// of objects, each with a string `type`).
pub fn parse_authorization_details(s: &str) -> Result<Vec<Value>, Refusal> {
    let bad = |why: &str| Refusal::AuthorizationDetails(format!("`authorization_details` {why} (RFC 9396 §2)"));
    let v: Value = serde_json::from_str(s).map_err(|_| bad("is not valid JSON"))?;
    let Value::Array(items) = v else {
        return Err(bad("must be a JSON array"));
    };
    if items.is_empty() || items.len() > limits::DETAILS {
        return Err(bad(&format!("must hold 1 to {} objects", limits::DETAILS)));
    }
    for item in &items {
        match item.get("type") {
            Some(Value::String(t)) if type_name(t) => {}
            _ if !item.is_object() => return Err(bad("must hold only objects")),
            _ => return Err(bad("objects must each have a string `type`")),
        }
    }
    Ok(items)
}

/// Decides what `req` is granted under `grants`. `default_audience` is the
/// audience of a request that names no resource (RFC 9068 §3: a default
/// resource indicator is used).
///
/// - scope = requested ∩ granted; a requested scope that is not granted is
///   an `invalid_scope` error rather than silently dropped; a request without
///   `scope` gets every granted scope (RFC 6749 §3.3 lets the server apply a
///   default).
/// - every `resource` must be one the agent may address.
/// - every `authorization_details` object must be of an allowed type.
pub fn decide(req: &Request, grants: &Grants, default_audience: &str) -> Result<Granted, Refusal> {
    let scopes = match &req.scope {
        None => grants.scopes.clone(),
        Some(asked) => {
            let missing: Vec<&str> = asked
                .iter()
                .filter(|s| !grants.scopes.contains(*s))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                return Err(Refusal::Scope(format!(
                    "scope not granted to this client: {}",
                    missing.join(" ")
                )));
            }
            asked.clone()
        }
    };
    let mut audiences = Vec::new();
    for r in &req.resources {
        if !is_resource(r) {
            return Err(Refusal::Target(format!(
                "`{r}` is not an absolute URI without a fragment (RFC 8707 §2)"
            )));
        }
        if !grants.resources.contains(r) {
            return Err(Refusal::Target(format!("this client may not address `{r}`")));
        }
        if !audiences.contains(r) {
            audiences.push(r.clone());
        }
    }
    if audiences.is_empty() {
        audiences.push(default_audience.to_owned());
    }
    if let Some(details) = &req.authorization_details {
        for d in details {
            let t = d.get("type").and_then(Value::as_str).unwrap_or_default();
            if !grants.authorization_details_types.contains(t) {
                return Err(Refusal::AuthorizationDetails(format!(
                    "this client may not request authorization details of type `{t}`"
                )));
            }
        }
    }
    Ok(Granted {
        scopes,
        audiences,
        authorization_details: req.authorization_details.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn grants() -> Grants {
        Grants {
            scopes: ["ledger:read", "ledger:write"].map(String::from).into(),
            resources: ["https://api.bank.example/ledger"].map(String::from).into(),
            authorization_details_types: ["task"].map(String::from).into(),
        }
    }

    #[test]
    fn scope_is_requested_intersect_granted() {
        let req = Request {
            scope: Some(parse_scope("ledger:read").unwrap()),
            ..Request::default()
        };
        let g = decide(&req, &grants(), "https://idv").unwrap();
        assert_eq!(g.scopes, ["ledger:read".to_owned()].into());
        assert_eq!(g.audiences, vec!["https://idv".to_owned()]);
        let all = decide(&Request::default(), &grants(), "x:y").unwrap();
        assert_eq!(all.scopes, grants().scopes);
    }

    #[test]
    fn ungranted_scope_is_an_error_not_dropped() {
        let req = Request {
            scope: Some(parse_scope("ledger:read payments:send").unwrap()),
            ..Request::default()
        };
        assert_eq!(
            decide(&req, &grants(), "x:y"),
            Err(Refusal::Scope("scope not granted to this client: payments:send".into()))
        );
    }

    #[test]
    fn scope_syntax() {
        assert!(parse_scope("a b").is_ok());
        assert!(parse_scope("a  b").is_err());
        assert!(parse_scope("").is_err());
        assert!(parse_scope("a\"b").is_err());
        assert!(parse_scope("a\\b").is_err());
    }

    #[test]
    fn resources_must_be_granted_absolute_uris() {
        let req = |r: &str| Request {
            resources: vec![r.to_owned()],
            ..Request::default()
        };
        let ok = decide(&req("https://api.bank.example/ledger"), &grants(), "x:y").unwrap();
        assert_eq!(ok.audiences, vec!["https://api.bank.example/ledger".to_owned()]);
        assert!(matches!(
            decide(&req("https://evil.example"), &grants(), "x:y"),
            Err(Refusal::Target(_))
        ));
        assert!(matches!(
            decide(&req("relative/path"), &grants(), "x:y"),
            Err(Refusal::Target(_))
        ));
        assert!(matches!(
            decide(&req("https://a.example/#frag"), &grants(), "x:y"),
            Err(Refusal::Target(_))
        ));
    }

    #[test]
    fn authorization_details() {
        let d = parse_authorization_details(r#"[{"type":"task","task_id":"T-1","actions":["reconcile"]}]"#).unwrap();
        let req = Request {
            authorization_details: Some(d.clone()),
            ..Request::default()
        };
        assert_eq!(decide(&req, &grants(), "x:y").unwrap().authorization_details, Some(d));
        let other = parse_authorization_details(r#"[{"type":"payment"}]"#).unwrap();
        let req = Request {
            authorization_details: Some(other),
            ..Request::default()
        };
        assert!(matches!(
            decide(&req, &grants(), "x:y"),
            Err(Refusal::AuthorizationDetails(_))
        ));
        for bad in ["{}", "[]", "[1]", r#"[{"x":1}]"#, r#"[{"type":7}]"#, "nope"] {
            assert!(parse_authorization_details(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn grants_validate() {
        assert!(grants().validate().is_ok());
        let mut g = grants();
        g.resources.insert("not a uri".into());
        assert!(g.validate().is_err());
        let mut g = grants();
        g.scopes.insert("has space".into());
        assert!(g.validate().is_err());
    }

    proptest! {
        /// Whatever is requested, the result never holds a scope the agent
        /// was not granted.
        #[test]
        fn never_widens(granted in prop::collection::btree_set("[a-c]{1,2}", 0..6),
                        asked in prop::option::of(prop::collection::btree_set("[a-c]{1,2}", 1..6))) {
            let g = Grants { scopes: granted.clone(), ..Grants::default() };
            let req = Request { scope: asked, ..Request::default() };
            if let Ok(out) = decide(&req, &g, "x:y") {
                prop_assert!(out.scopes.is_subset(&granted));
            }
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,80}") {
            let _ = parse_scope(&s);
            let _ = parse_authorization_details(&s);
            let _ = is_resource(&s);
        }
    }
}
