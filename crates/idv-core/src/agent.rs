//! Agents: non-human identities with an accountable owner and a purpose.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::grant::Grants;
use crate::lifecycle::Status;

/// Limits on agent metadata, chosen so one row stays small at a million agents.
pub mod limits {
    /// Longest agent or class name.
    pub const NAME: usize = 128;
    /// Longest owner.
    pub const OWNER: usize = 256;
    /// Longest purpose.
    pub const PURPOSE: usize = 1024;
    /// Longest team.
    pub const TEAM: usize = 128;
    /// Most labels on one agent.
    pub const LABELS: usize = 64;
    /// Longest label key.
    pub const LABEL_KEY: usize = 63;
    /// Longest label value.
    pub const LABEL_VALUE: usize = 256;
    /// Most capabilities on one agent.
    pub const CAPABILITIES: usize = 128;
    /// Longest capability.
    pub const CAPABILITY: usize = 128;
    /// Most dependencies on one agent.
    pub const DEPENDS_ON: usize = 64;
    /// Longest time to live of an ephemeral agent: one year.
    pub const TTL_SECONDS: u64 = 365 * 24 * 3600;
    /// Longest lifecycle reason.
    pub const REASON: usize = 1024;
}

/// The deployment environment an agent runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Development.
    Dev,
    /// Test / staging.
    Test,
    /// Production.
    Prod,
}

impl Environment {
    /// Every environment.
    pub const ALL: [Environment; 3] = [Environment::Dev, Environment::Test, Environment::Prod];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Dev => "dev",
            Environment::Test => "test",
            Environment::Prod => "prod",
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Environment {
    type Err = AgentError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dev" => Ok(Environment::Dev),
            "test" => Ok(Environment::Test),
            "prod" => Ok(Environment::Prod),
            _ => Err(AgentError::invalid(
                "environment",
                format!("`{s}` is not one of dev, test, prod"),
            )),
        }
    }
}

/// Who created an agent: another agent of the same tenant, or a human.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Parent {
    /// An agent, by id.
    Agent(Uuid),
    /// A human, by their identifier at the enterprise IdP (e.g. an email).
    Human(String),
}

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Immutable UUIDv7; never reused.
    pub id: Uuid,
    /// The tenant it belongs to.
    pub tenant_id: Uuid,
    /// Unique within the tenant.
    pub name: String,
    /// The accountable human or team.
    pub owner: String,
    /// Why it exists.
    pub purpose: String,
    /// Where it runs.
    pub environment: Option<Environment>,
    /// The team that runs it.
    pub team: Option<String>,
    /// Free key/value labels for selection.
    pub labels: BTreeMap<String, String>,
    /// Declared capabilities (tools, skills).
    pub capabilities: Vec<String>,
    /// The class (template) it belongs to.
    pub class: Option<String>,
    /// Who created it.
    pub parent: Option<Parent>,
    /// Agents it depends on (same tenant).
    pub depends_on: Vec<Uuid>,
    /// What it may ask for in tokens.
    pub grants: Grants,
    /// Where it is in its lifecycle.
    pub status: Status,
    /// Reason given for the last status change.
    pub status_reason: Option<String>,
    /// When the status last changed.
    pub status_changed_at: Timestamp,
    /// Who changed the status last.
    pub status_changed_by: String,
    /// For ephemeral agents: when they retire themselves.
    pub expires_at: Option<Timestamp>,
    /// Access tokens naming this agent (as client, actor or subject) that
    /// were issued at or before this instant are dead for good: set when it
    /// is suspended, resumed or reported compromised, so resuming never
    /// revives a token an attacker may hold.
    #[serde(default)]
    pub tokens_not_before: Option<Timestamp>,
    /// When it was registered.
    pub created_at: Timestamp,
    /// Who registered it.
    pub created_by: String,
    /// When anything about it last changed.
    pub updated_at: Timestamp,
    /// Incremented on every change; the HTTP `ETag`.
    pub version: i64,
}

impl Agent {
    /// Whether an access token that names this agent (as its client, an
    /// actor of its `act` chain, or its subject) and was issued at
    /// `issued_at` may be honoured: only while the agent is active, and
    /// only if it was issued after [`Agent::tokens_not_before`]. A token
    /// issued in the same instant is refused (we cannot tell which came
    /// first, and refusing is the safe side).
    pub fn honours_token(&self, issued_at: Timestamp) -> bool {
        self.status == Status::Active && self.tokens_not_before.is_none_or(|cut| issued_at > cut)
    }
}

/// A request to register an agent, before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewAgent {
    /// See [`Agent::name`].
    pub name: String,
    /// See [`Agent::owner`].
    pub owner: String,
    /// See [`Agent::purpose`].
    pub purpose: String,
    /// See [`Agent::environment`].
    pub environment: Option<Environment>,
    /// See [`Agent::team`].
    pub team: Option<String>,
    /// See [`Agent::labels`].
    pub labels: BTreeMap<String, String>,
    /// See [`Agent::capabilities`].
    pub capabilities: Vec<String>,
    /// See [`Agent::class`].
    pub class: Option<String>,
    /// See [`Agent::parent`].
    pub parent: Option<Parent>,
    /// See [`Agent::depends_on`].
    pub depends_on: Vec<Uuid>,
    /// See [`Agent::grants`].
    pub grants: Grants,
    /// Time to live in seconds, for ephemeral agents.
    pub ttl_seconds: Option<u64>,
}

/// Changes to an agent's metadata (JSON merge patch semantics: `Some(None)`
/// clears an optional field, `None` leaves it alone).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AgentChanges {
    /// New name.
    pub name: Option<String>,
    /// New owner.
    pub owner: Option<String>,
    /// New purpose.
    pub purpose: Option<String>,
    /// New or cleared environment.
    pub environment: Option<Option<Environment>>,
    /// New or cleared team.
    pub team: Option<Option<String>>,
    /// Replacement labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Replacement capabilities.
    pub capabilities: Option<Vec<String>>,
    /// New or cleared class.
    pub class: Option<Option<String>>,
    /// Replacement dependencies.
    pub depends_on: Option<Vec<Uuid>>,
    /// Replacement allowed scopes.
    pub allowed_scopes: Option<BTreeSet<String>>,
    /// Replacement allowed resources.
    pub allowed_resources: Option<BTreeSet<String>>,
    /// Replacement allowed `authorization_details` types.
    pub authorization_details_types: Option<BTreeSet<String>>,
}

/// Why agent data was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// A field broke a rule.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field, as named on the wire.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl AgentError {
    pub(crate) fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        AgentError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The SPIFFE-style URI of an agent: `spiffe://<trust-domain>/t/<tenant>/agent/<id>`.
pub fn spiffe_id(trust_domain: &str, tenant_name: &str, id: Uuid) -> String {
    format!("spiffe://{trust_domain}/t/{tenant_name}/agent/{id}")
}

/// Checks a SPIFFE trust domain name (SPIFFE-ID §2.1: lowercase letters,
/// digits, `.`, `-`, `_`).
pub fn validate_trust_domain(td: &str) -> Result<(), AgentError> {
    let ok = !td.is_empty()
        && td.len() <= 255
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(AgentError::invalid(
            "trust_domain",
            format!("`{td}` may hold only lowercase letters, digits, `.`, `-` and `_`"),
        ))
    }
}

fn name_like(field: &str, v: &str, max: usize) -> Result<(), AgentError> {
    let ok = !v.is_empty()
        && v.len() <= max
        && v.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AgentError::invalid(
            field,
            format!("must be 1 to {max} letters, digits, `.`, `_` or `-`, starting with a letter or digit"),
        ))
    }
}

fn text(field: &str, v: &str, max: usize) -> Result<(), AgentError> {
    if v.trim().is_empty() {
        return Err(AgentError::invalid(field, "must not be empty"));
    }
    if v.chars().count() > max {
        return Err(AgentError::invalid(field, format!("must be at most {max} characters")));
    }
    if v.chars().any(char::is_control) {
        return Err(AgentError::invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Validates a reason given for a lifecycle change.
pub fn validate_reason(reason: &str) -> Result<(), AgentError> {
    text("reason", reason, limits::REASON)
}

fn labels(l: &BTreeMap<String, String>) -> Result<(), AgentError> {
    if l.len() > limits::LABELS {
        return Err(AgentError::invalid(
            "labels",
            format!("at most {} labels", limits::LABELS),
        ));
    }
    for (k, v) in l {
        let key_ok = !k.is_empty()
            && k.len() <= limits::LABEL_KEY
            && k.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && k.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-' | b'/'));
        if !key_ok {
            return Err(AgentError::invalid(
                "labels",
                format!(
                    "key `{k}` must be 1 to {} lowercase letters, digits, `.`, `_`, `-` or `/`",
                    limits::LABEL_KEY
                ),
            ));
        }
        if v.chars().count() > limits::LABEL_VALUE || v.chars().any(char::is_control) {
            return Err(AgentError::invalid(
                "labels",
                format!(
                    "value of `{k}` must be at most {} characters without control characters",
                    limits::LABEL_VALUE
                ),
            ));
        }
    }
    Ok(())
}

fn capabilities(c: &[String]) -> Result<(), AgentError> {
    if c.len() > limits::CAPABILITIES {
        return Err(AgentError::invalid(
            "capabilities",
            format!("at most {}", limits::CAPABILITIES),
        ));
    }
    for cap in c {
        let ok = !cap.is_empty()
            && cap.len() <= limits::CAPABILITY
            && cap
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':' | b'/'));
        if !ok {
            return Err(AgentError::invalid(
                "capabilities",
                format!(
                    "`{cap}` must be 1 to {} letters, digits, `.`, `_`, `-`, `:` or `/`",
                    limits::CAPABILITY
                ),
            ));
        }
    }
    Ok(())
}

fn depends_on(self_id: Option<Uuid>, d: &[Uuid]) -> Result<(), AgentError> {
    if d.len() > limits::DEPENDS_ON {
        return Err(AgentError::invalid(
            "depends_on",
            format!("at most {} agents", limits::DEPENDS_ON),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for id in d {
        if Some(*id) == self_id {
            return Err(AgentError::invalid("depends_on", "an agent cannot depend on itself"));
        }
        if !seen.insert(id) {
            return Err(AgentError::invalid("depends_on", format!("`{id}` is listed twice")));
        }
    }
    Ok(())
}

fn parent(p: &Parent) -> Result<(), AgentError> {
    match p {
        Parent::Agent(_) => Ok(()),
        Parent::Human(h) => text("parent", h, limits::OWNER),
    }
}

impl NewAgent {
    /// Checks every field and builds the agent, in `provisioning`.
    pub fn into_agent(self, id: Uuid, tenant_id: Uuid, now: Timestamp, created_by: &str) -> Result<Agent, AgentError> {
        name_like("name", &self.name, limits::NAME)?;
        text("owner", &self.owner, limits::OWNER)?;
        text("purpose", &self.purpose, limits::PURPOSE)?;
        if let Some(team) = &self.team {
            text("team", team, limits::TEAM)?;
        }
        labels(&self.labels)?;
        capabilities(&self.capabilities)?;
        if let Some(class) = &self.class {
            name_like("class", class, limits::NAME)?;
        }
        if let Some(p) = &self.parent {
            parent(p)?;
            if *p == Parent::Agent(id) {
                return Err(AgentError::invalid("parent", "an agent cannot be its own parent"));
            }
        }
        depends_on(Some(id), &self.depends_on)?;
        self.grants.validate()?;
        let expires_at = match self.ttl_seconds {
            None => None,
            Some(ttl) if (1..=limits::TTL_SECONDS).contains(&ttl) => {
                Some(now.plus_secs(i64::try_from(ttl).unwrap_or(i64::MAX)))
            }
            Some(_) => {
                return Err(AgentError::invalid("ttl", "must be between 1 second and 365 days"));
            }
        };
        Ok(Agent {
            id,
            tenant_id,
            name: self.name,
            owner: self.owner,
            purpose: self.purpose,
            environment: self.environment,
            team: self.team,
            labels: self.labels,
            capabilities: self.capabilities,
            class: self.class,
            parent: self.parent,
            depends_on: self.depends_on,
            grants: self.grants,
            status: Status::Provisioning,
            status_reason: None,
            status_changed_at: now,
            status_changed_by: created_by.to_owned(),
            expires_at,
            tokens_not_before: None,
            created_at: now,
            created_by: created_by.to_owned(),
            updated_at: now,
            version: 1,
        })
    }
}

impl AgentChanges {
    /// Whether nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == AgentChanges::default()
    }

    /// Checks the changes and applies them to `agent`, bumping its version.
    pub fn apply(self, agent: &mut Agent, now: Timestamp) -> Result<(), AgentError> {
        if let Some(name) = self.name {
            name_like("name", &name, limits::NAME)?;
            agent.name = name;
        }
        if let Some(owner) = self.owner {
            text("owner", &owner, limits::OWNER)?;
            agent.owner = owner;
        }
        if let Some(purpose) = self.purpose {
            text("purpose", &purpose, limits::PURPOSE)?;
            agent.purpose = purpose;
        }
        if let Some(env) = self.environment {
            agent.environment = env;
        }
        if let Some(team) = self.team {
            if let Some(t) = &team {
                text("team", t, limits::TEAM)?;
            }
            agent.team = team;
        }
        if let Some(l) = self.labels {
            labels(&l)?;
            agent.labels = l;
        }
        if let Some(c) = self.capabilities {
            capabilities(&c)?;
            agent.capabilities = c;
        }
        if let Some(class) = self.class {
            if let Some(c) = &class {
                name_like("class", c, limits::NAME)?;
            }
            agent.class = class;
        }
        if let Some(d) = self.depends_on {
            depends_on(Some(agent.id), &d)?;
            agent.depends_on = d;
        }
        let mut grants = agent.grants.clone();
        if let Some(s) = self.allowed_scopes {
            grants.scopes = s;
        }
        if let Some(r) = self.allowed_resources {
            grants.resources = r;
        }
        if let Some(t) = self.authorization_details_types {
            grants.authorization_details_types = t;
        }
        grants.validate()?;
        agent.grants = grants;
        agent.updated_at = now;
        agent.version += 1;
        Ok(())
    }
}

/// Moving every agent of one owner to another, as when a person leaves or
/// changes role: the accountable owner changes, nothing else does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnerReassignment {
    /// The current owner, exactly as recorded.
    pub from: String,
    /// The new owner.
    pub to: String,
}

impl OwnerReassignment {
    /// Checks both owners as an agent's owner is checked, and that they
    /// differ.
    pub fn new(from: String, to: String) -> Result<Self, AgentError> {
        text("from", &from, limits::OWNER)?;
        text("to", &to, limits::OWNER)?;
        if from == to {
            return Err(AgentError::invalid("to", "must differ from `from`"));
        }
        Ok(Self { from, to })
    }

    /// Whether `agent` moves: it is the old owner's and not retired (a
    /// retired agent's record is kept read-only, owner included, for
    /// forensics).
    pub fn applies_to(&self, agent: &Agent) -> bool {
        agent.owner == self.from && agent.status != Status::Retired
    }

    /// Moves `agent` to the new owner (a new version, like any change).
    pub fn apply(&self, agent: &mut Agent, now: Timestamp) {
        agent.owner.clone_from(&self.to);
        agent.updated_at = now;
        agent.version += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_reassignment_moves_live_agents_of_the_old_owner() {
        let t = Timestamp::from_micros(1_000_000);
        let r = OwnerReassignment::new("alice@bank.example".into(), "bob@bank.example".into()).unwrap();
        let mut a = spec().into_agent(Uuid::nil(), Uuid::nil(), t, "op").unwrap();
        assert!(r.applies_to(&a));
        let v = a.version;
        r.apply(&mut a, t);
        assert_eq!((a.owner.as_str(), a.version), ("bob@bank.example", v + 1));
        assert!(!r.applies_to(&a), "now someone else's");
        let mut retired = spec().into_agent(Uuid::nil(), Uuid::nil(), t, "op").unwrap();
        retired.status = Status::Retired;
        assert!(!r.applies_to(&retired));
        assert!(OwnerReassignment::new("a".into(), "a".into()).is_err());
        assert!(OwnerReassignment::new("a".into(), " ".into()).is_err());
        assert!(OwnerReassignment::new("a".into(), "b\n".into()).is_err());
    }

    #[test]
    fn tokens_issued_up_to_the_cut_stay_dead() {
        let t = |s: i64| Timestamp::from_micros(s * 1_000_000);
        let mut a = spec().into_agent(Uuid::nil(), Uuid::nil(), t(100), "op").unwrap();
        assert!(!a.honours_token(t(101)), "not active yet");
        a.status = Status::Active;
        assert!(a.honours_token(t(101)));
        a.tokens_not_before = Some(t(200));
        assert!(!a.honours_token(t(150)));
        assert!(!a.honours_token(t(200)), "the same instant is refused");
        assert!(a.honours_token(Timestamp::from_micros(200_000_001)));
        a.status = Status::Suspended;
        assert!(!a.honours_token(t(300)));
    }

    fn spec() -> NewAgent {
        NewAgent {
            name: "payments-bot".into(),
            owner: "alice@bank.example".into(),
            purpose: "reconcile payments".into(),
            ..NewAgent::default()
        }
    }

    #[test]
    fn builds_in_provisioning() {
        let a = spec()
            .into_agent(Uuid::nil(), Uuid::nil(), Timestamp::from_micros(0), "t")
            .unwrap();
        assert_eq!(a.status, Status::Provisioning);
        assert_eq!(a.version, 1);
        assert!(a.expires_at.is_none());
    }

    #[test]
    fn rejects_bad_fields() {
        let cases: Vec<(&str, NewAgent)> = vec![
            (
                "name",
                NewAgent {
                    name: "".into(),
                    ..spec()
                },
            ),
            (
                "name",
                NewAgent {
                    name: "a b".into(),
                    ..spec()
                },
            ),
            (
                "owner",
                NewAgent {
                    owner: " ".into(),
                    ..spec()
                },
            ),
            (
                "purpose",
                NewAgent {
                    purpose: "x\u{0}".into(),
                    ..spec()
                },
            ),
            (
                "ttl",
                NewAgent {
                    ttl_seconds: Some(0),
                    ..spec()
                },
            ),
            (
                "labels",
                NewAgent {
                    labels: [("Bad Key".to_owned(), "v".to_owned())].into(),
                    ..spec()
                },
            ),
            (
                "depends_on",
                NewAgent {
                    depends_on: vec![Uuid::nil()],
                    ..spec()
                },
            ),
        ];
        for (field, case) in cases {
            let err = case
                .into_agent(Uuid::nil(), Uuid::nil(), Timestamp::from_micros(0), "t")
                .unwrap_err();
            let AgentError::Invalid { field: f, .. } = err;
            assert_eq!(f, field);
        }
    }

    #[test]
    fn spiffe() {
        assert_eq!(
            spiffe_id("idv.local", "acme", Uuid::nil()),
            "spiffe://idv.local/t/acme/agent/00000000-0000-0000-0000-000000000000"
        );
        assert!(validate_trust_domain("Bad").is_err());
    }

    #[test]
    fn changes_bump_version() {
        let mut a = spec()
            .into_agent(Uuid::nil(), Uuid::nil(), Timestamp::from_micros(0), "t")
            .unwrap();
        AgentChanges {
            team: Some(Some("risk".into())),
            ..Default::default()
        }
        .apply(&mut a, Timestamp::from_micros(5))
        .unwrap();
        assert_eq!(a.team.as_deref(), Some("risk"));
        assert_eq!(a.version, 2);
    }
}
