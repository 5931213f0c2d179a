//! Roles (named permission sets) and role grants: who holds which role or
//! single permission, for how long, under what condition. The policy engine
//! turns them into Cedar entity membership (and, for conditional grants,
//! generated policies), so "what may agent X do" is answerable from data.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;

/// Limits.
pub mod limits {
    /// Longest role, class, group or action name.
    pub const NAME: usize = 128;
    /// Most actions in one role.
    pub const ACTIONS: usize = 256;
    /// Longest grant condition.
    pub const CONDITION: usize = 4096;
    /// Longest role description, in characters.
    pub const DESCRIPTION: usize = 1024;
}

/// Why a role or grant is invalid.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {reason}")]
pub struct RoleError {
    /// Which field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> RoleError {
    RoleError {
        field,
        reason: reason.into(),
    }
}

/// Role, class and group names: `[A-Za-z0-9_.-]`, 1–128 characters.
pub fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= limits::NAME
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Action names: printable ASCII without spaces or quotes, 1–128 characters.
pub fn is_action(s: &str) -> bool {
    !s.is_empty() && s.len() <= limits::NAME && s.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
}

/// A named set of actions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Unique within the tenant.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Actions (or action groups, e.g. `read`) it permits on any resource.
    pub actions: BTreeSet<String>,
    /// When it was created or last replaced.
    pub updated_at: Timestamp,
}

impl Role {
    /// Checks the name and actions.
    pub fn validate(&self) -> Result<(), RoleError> {
        if !is_name(&self.name) {
            return Err(invalid("name", "1 to 128 of A-Z a-z 0-9 _ . -"));
        }
        if self.actions.len() > limits::ACTIONS {
            return Err(invalid("actions", format!("at most {} actions", limits::ACTIONS)));
        }
        if let Some(a) = self.actions.iter().find(|a| !is_action(a)) {
            return Err(invalid("actions", format!("`{a}` is not an action name")));
        }
        if self.description.chars().count() > limits::DESCRIPTION {
            return Err(invalid(
                "description",
                format!("at most {} characters", limits::DESCRIPTION),
            ));
        }
        Ok(())
    }
}

/// Who a grant is to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum GrantSubject {
    /// One agent.
    Agent(Uuid),
    /// Every agent of a class.
    Class(String),
    /// Every member of a group.
    Group(String),
}

impl GrantSubject {
    /// The storage kind.
    pub fn kind(&self) -> &'static str {
        match self {
            GrantSubject::Agent(_) => "agent",
            GrantSubject::Class(_) => "class",
            GrantSubject::Group(_) => "group",
        }
    }

    /// The storage id.
    pub fn id(&self) -> String {
        match self {
            GrantSubject::Agent(id) => id.to_string(),
            GrantSubject::Class(s) | GrantSubject::Group(s) => s.clone(),
        }
    }

    /// From the storage kind and id.
    pub fn from_parts(kind: &str, id: &str) -> Option<Self> {
        match kind {
            "agent" => Uuid::parse_str(id).ok().map(GrantSubject::Agent),
            "class" => Some(GrantSubject::Class(id.to_owned())),
            "group" => Some(GrantSubject::Group(id.to_owned())),
            _ => None,
        }
    }
}

/// What a grant gives.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// A role, by name.
    Role(String),
    /// A single action.
    Action(String),
}

/// A role or single permission held by an agent, class or group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleGrant {
    /// Grant id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// Who holds it.
    pub subject: GrantSubject,
    /// What it gives.
    pub permission: Permission,
    /// A Cedar condition (the body of a `when { … }`) that must also hold.
    pub condition: Option<String>,
    /// When it stops applying.
    pub expires_at: Option<Timestamp>,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
}

impl RoleGrant {
    /// Checks names and the condition's size (the policy engine checks the
    /// condition itself against the tenant's schema).
    pub fn validate(&self) -> Result<(), RoleError> {
        match &self.subject {
            GrantSubject::Agent(_) => {}
            GrantSubject::Class(n) | GrantSubject::Group(n) if is_name(n) => {}
            GrantSubject::Class(_) | GrantSubject::Group(_) => {
                return Err(invalid(
                    "subject",
                    "class and group names are 1 to 128 of A-Z a-z 0-9 _ . -",
                ));
            }
        }
        match &self.permission {
            Permission::Role(r) if !is_name(r) => return Err(invalid("role", format!("`{r}` is not a role name"))),
            Permission::Action(a) if !is_action(a) => {
                return Err(invalid("action", format!("`{a}` is not an action name")));
            }
            _ => {}
        }
        if let Some(c) = &self.condition
            && (c.trim().is_empty() || c.len() > limits::CONDITION)
        {
            return Err(invalid(
                "condition",
                format!("a Cedar expression of 1 to {} characters", limits::CONDITION),
            ));
        }
        if let Some(e) = self.expires_at
            && e <= self.created_at
        {
            return Err(invalid("expires_at", "must be in the future"));
        }
        Ok(())
    }

    /// Whether it applies at `now`.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|e| now < e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_actions() {
        assert!(is_name("payments-reader.v2"));
        assert!(!is_name("a b"));
        assert!(!is_name(""));
        assert!(is_action("payments:send"));
        assert!(!is_action("a\"b"));
    }

    #[test]
    fn grant_validation() {
        let now = Timestamp::from_micros(1_000);
        let mut g = RoleGrant {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            subject: GrantSubject::Class("payments".into()),
            permission: Permission::Role("reader".into()),
            condition: None,
            expires_at: Some(Timestamp::from_micros(2_000)),
            created_at: now,
            created_by: "t".into(),
        };
        assert!(g.validate().is_ok());
        assert!(g.is_live(now));
        assert!(!g.is_live(Timestamp::from_micros(2_000)));
        g.expires_at = Some(now);
        assert_eq!(g.validate().unwrap_err().field, "expires_at");
        g.expires_at = None;
        g.condition = Some(" ".into());
        assert_eq!(g.validate().unwrap_err().field, "condition");
        g.condition = None;
        g.subject = GrantSubject::Group("no spaces".into());
        assert_eq!(g.validate().unwrap_err().field, "subject");
        assert_eq!(
            GrantSubject::from_parts("class", "x"),
            Some(GrantSubject::Class("x".into()))
        );
        assert_eq!(GrantSubject::from_parts("agent", "nope"), None);
    }
}
