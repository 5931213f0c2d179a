//! Delegation: a human or an agent lends part of its authority to an agent,
//! for a task and a time. Chains of such hops are recorded in tokens as
//! nested `act` claims (RFC 8693 §4.1); every hop can only narrow.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::Timestamp;
use crate::grant::{is_resource, is_scope_token};

/// Longest chain of actors a token may carry, whatever a delegation allows.
pub const MAX_CHAIN_DEPTH: u32 = 8;

/// Most scopes one delegation may list.
pub const MAX_SCOPES: usize = 256;

/// Who lends authority.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Delegator {
    /// An agent of the tenant.
    Agent {
        /// Agent id.
        id: Uuid,
    },
    /// A human, as identified by a trusted external issuer (`iss` + `sub`).
    Human {
        /// The issuer that authenticates them.
        issuer: String,
        /// Their subject identifier at that issuer.
        sub: String,
    },
}

impl Delegator {
    /// The subject as it appears in tokens: an agent id, or the human's `sub`.
    pub fn subject(&self) -> String {
        match self {
            Delegator::Agent { id } => id.to_string(),
            Delegator::Human { sub, .. } => sub.clone(),
        }
    }
}

/// A stored delegation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delegation {
    /// Immutable id (carried in every token issued through it).
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Who lends.
    pub delegator: Delegator,
    /// The agent that may act for the delegator.
    pub delegate: Uuid,
    /// The most it lends (a subset of what the delegator holds at exchange time).
    pub scopes: BTreeSet<String>,
    /// Audiences the delegate may address under it (empty: any it is granted).
    pub audiences: BTreeSet<String>,
    /// What it is for (free-form; carried into tokens as `task`).
    pub task: Option<Value>,
    /// Longest actor chain a token issued through it may have.
    pub max_depth: u32,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// When it ends.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
}

impl Delegation {
    /// Whether tokens may be issued (and stay active) through it at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && now < self.expires_at
    }
}

/// Limits on a delegation request.
pub mod limits {
    /// Longest delegation.
    pub const MAX_TTL_SECS: u64 = 30 * 24 * 3600;
    /// Largest `task` document, in bytes of JSON.
    pub const TASK_BYTES: usize = 4096;
}

/// Why a delegation or an exchange was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DelegationError {
    /// A field broke a rule.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> DelegationError {
    DelegationError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// Checks a delegation's own fields.
pub fn validate(d: &Delegation) -> Result<(), DelegationError> {
    if d.scopes.is_empty() || d.scopes.len() > MAX_SCOPES {
        return Err(invalid("scopes", format!("list 1 to {MAX_SCOPES} scopes")));
    }
    if let Some(bad) = d.scopes.iter().find(|s| !is_scope_token(s)) {
        return Err(invalid(
            "scopes",
            format!("`{bad}` is not a scope token (RFC 6749 §3.3)"),
        ));
    }
    if let Some(bad) = d.audiences.iter().find(|a| !is_resource(a)) {
        return Err(invalid(
            "audience",
            format!("`{bad}` is not an absolute URI without a fragment"),
        ));
    }
    if d.max_depth == 0 || d.max_depth > MAX_CHAIN_DEPTH {
        return Err(invalid("max_depth", format!("must be 1 to {MAX_CHAIN_DEPTH}")));
    }
    if let Some(t) = &d.task
        && serde_json::to_vec(t).map_or(usize::MAX, |b| b.len()) > limits::TASK_BYTES
    {
        return Err(invalid(
            "task",
            format!("must be at most {} bytes of JSON", limits::TASK_BYTES),
        ));
    }
    if let Delegator::Agent { id } = &d.delegator
        && *id == d.delegate
    {
        return Err(invalid("delegate", "an agent cannot delegate to itself"));
    }
    if let Delegator::Human { issuer, sub } = &d.delegator
        && (issuer.is_empty() || sub.is_empty())
    {
        return Err(invalid("delegator", "a human delegator needs `issuer` and `sub`"));
    }
    Ok(())
}

/// The actors of a token's `act` claim, newest first (RFC 8693 §4.1: the
/// outermost `act` is the current actor; nested ones are prior actors).
pub fn actors(act: Option<&Value>) -> Result<Vec<String>, DelegationError> {
    let mut out = Vec::new();
    let mut cur = act;
    while let Some(a) = cur {
        let sub = a
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("act", "every `act` needs a string `sub`"))?;
        out.push(sub.to_owned());
        if out.len() > MAX_CHAIN_DEPTH as usize {
            return Err(invalid(
                "act",
                format!("the actor chain is longer than {MAX_CHAIN_DEPTH}"),
            ));
        }
        cur = a.get("act");
    }
    Ok(out)
}

/// The `act` claim with `actor` as the new current actor and the prior chain
/// nested inside it (RFC 8693 §4.1).
pub fn push_actor(actor: &str, prior: Option<&Value>) -> Value {
    let mut a = json!({ "sub": actor });
    if let (Value::Object(m), Some(p)) = (&mut a, prior) {
        m.insert("act".into(), p.clone());
    }
    a
}

/// The scopes an exchange may grant: what was asked (or, if nothing was,
/// everything possible) within the subject token's scopes, the acting
/// agent's own grants and the delegation. Asking for more is an error.
pub fn narrow(
    requested: Option<&BTreeSet<String>>,
    subject: &BTreeSet<String>,
    agent: &BTreeSet<String>,
    delegation: &BTreeSet<String>,
) -> Result<BTreeSet<String>, BTreeSet<String>> {
    let allowed: BTreeSet<String> = subject
        .iter()
        .filter(|s| agent.contains(*s) && delegation.contains(*s))
        .cloned()
        .collect();
    match requested {
        None => Ok(allowed),
        Some(r) => {
            let beyond: BTreeSet<String> = r.difference(&allowed).cloned().collect();
            if beyond.is_empty() { Ok(r.clone()) } else { Err(beyond) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set(s: &[&str]) -> BTreeSet<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn narrowing() {
        let subject = set(&["a", "b", "c"]);
        let agent = set(&["a", "b", "d"]);
        let dlg = set(&["a", "c", "d"]);
        assert_eq!(narrow(None, &subject, &agent, &dlg), Ok(set(&["a"])));
        assert_eq!(narrow(Some(&set(&["a"])), &subject, &agent, &dlg), Ok(set(&["a"])));
        assert_eq!(
            narrow(Some(&set(&["a", "b"])), &subject, &agent, &dlg),
            Err(set(&["b"]))
        );
    }

    #[test]
    fn act_chains_nest() {
        let one = push_actor("agent-a", None);
        let two = push_actor("agent-b", Some(&one));
        assert_eq!(two, json!({"sub": "agent-b", "act": {"sub": "agent-a"}}));
        assert_eq!(actors(Some(&two)).unwrap(), vec!["agent-b", "agent-a"]);
        assert_eq!(actors(None).unwrap(), Vec::<String>::new());
        assert!(actors(Some(&json!({"act": {"sub": "x"}}))).is_err());
        let mut deep = None;
        for i in 0..=MAX_CHAIN_DEPTH {
            deep = Some(push_actor(&format!("a{i}"), deep.as_ref()));
        }
        assert!(actors(deep.as_ref()).is_err());
    }

    proptest! {
        /// Across any chain of exchanges, each hop's scopes are a subset of
        /// the previous hop's: authority never widens.
        #[test]
        fn scope_narrowing_never_widens(
            root in prop::collection::btree_set("[a-e]", 0..6),
            hops in prop::collection::vec((
                prop::collection::btree_set("[a-e]", 0..6),
                prop::collection::btree_set("[a-e]", 0..6),
                prop::option::of(prop::collection::btree_set("[a-e]", 0..6)),
            ), 1..8),
        ) {
            let mut current = root.clone();
            for (agent, dlg, asked) in hops {
                match narrow(asked.as_ref(), &current, &agent, &dlg) {
                    Ok(next) => {
                        prop_assert!(next.is_subset(&current));
                        prop_assert!(next.is_subset(&agent));
                        prop_assert!(next.is_subset(&dlg));
                        prop_assert!(next.is_subset(&root));
                        current = next;
                    }
                    Err(beyond) => prop_assert!(!beyond.is_empty()),
                }
            }
        }
    }
}
