//! Rotation policies: when credentials are rotated without anyone asking.
//!
//! A policy applies to the whole tenant, to a class of agents, or to one
//! agent; the most specific one wins. It rotates each client secret and API
//! key `every` so long after it was made, and in any case early enough that
//! no credential works for longer than `max_age` (the predecessor of a
//! rotation lives through the overlap). The successor's secret is sealed for
//! the agent to collect with its current credential.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::agent::Agent;
use crate::credential::{Credential, Kind, MAX_OVERLAP_SECS, Retire, Rotation};

/// Shortest `every` (or `max_age` less the overlap): one minute.
pub const MIN_PERIOD_SECS: u64 = 60;

/// Longest period: ten years.
pub const MAX_PERIOD_SECS: u64 = 10 * 365 * 24 * 3600;

/// What a policy applies to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Scope {
    /// Every agent of the tenant.
    Tenant,
    /// Agents of one class.
    Class(String),
    /// One agent.
    Agent(Uuid),
}

impl Scope {
    /// Stored type name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Class(_) => "class",
            Scope::Agent(_) => "agent",
        }
    }

    /// Stored id (empty for the tenant).
    pub fn id(&self) -> String {
        match self {
            Scope::Tenant => String::new(),
            Scope::Class(c) => c.clone(),
            Scope::Agent(a) => a.to_string(),
        }
    }

    /// From the stored (or path) pair.
    pub fn parse(type_name: &str, id: &str) -> Result<Scope, PolicyError> {
        match (type_name, id) {
            ("tenant", "") => Ok(Scope::Tenant),
            ("tenant", _) => Err(PolicyError::Scope("the tenant scope takes no id".into())),
            ("class", c) if !c.trim().is_empty() && c.len() <= 200 => Ok(Scope::Class(c.to_owned())),
            ("class", _) => Err(PolicyError::Scope("a class name is 1 to 200 characters".into())),
            ("agent", a) => Uuid::parse_str(a)
                .map(Scope::Agent)
                .map_err(|_| PolicyError::Scope(format!("`{a}` is not an agent id"))),
            (other, _) => Err(PolicyError::Scope(format!(
                "`{other}` is not a scope (tenant, class or agent)"
            ))),
        }
    }

    /// More specific scopes win: agent, then class, then tenant.
    fn rank(&self) -> u8 {
        match self {
            Scope::Agent(_) => 0,
            Scope::Class(_) => 1,
            Scope::Tenant => 2,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Tenant => f.write_str("tenant"),
            other => write!(f, "{}:{}", other.type_name(), other.id()),
        }
    }
}

/// A stored rotation policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationPolicy {
    /// Tenant.
    pub tenant_id: Uuid,
    /// What it applies to.
    pub scope: Scope,
    /// Rotate this long after a credential was made.
    pub every_secs: Option<u64>,
    /// No credential works longer than this (overlap included).
    pub max_age_secs: Option<u64>,
    /// Overlap of each rotation.
    pub overlap_secs: u64,
    /// When the predecessor stops within the overlap.
    pub retire: Retire,
    /// Last change.
    pub updated_at: Timestamp,
    /// Who changed it.
    pub updated_by: String,
}

/// Why a policy is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A bad scope.
    #[error("scope: {0}")]
    Scope(String),
    /// A field broke a rule.
    #[error("`{field}`: {reason}")]
    Invalid {
        /// The field, as named on the wire.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> PolicyError {
    PolicyError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl RotationPolicy {
    /// Checks the periods: at least one of `every` and `max_age`, each
    /// between a minute and ten years, the overlap at most 30 days and
    /// shorter than `max_age` by at least a minute.
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.every_secs.is_none() && self.max_age_secs.is_none() {
            return Err(invalid("every", "give `every`, `max_age` or both"));
        }
        if self.overlap_secs > MAX_OVERLAP_SECS {
            return Err(invalid("overlap", "must be at most 30 days"));
        }
        for (field, v) in [("every", self.every_secs), ("max_age", self.max_age_secs)] {
            if let Some(v) = v
                && !(MIN_PERIOD_SECS..=MAX_PERIOD_SECS).contains(&v)
            {
                return Err(invalid(field, "must be between 1 minute and 10 years"));
            }
        }
        if let Some(m) = self.max_age_secs
            && m < self.overlap_secs.saturating_add(MIN_PERIOD_SECS)
        {
            return Err(invalid(
                "max_age",
                "must exceed the overlap by at least a minute (the predecessor works through the overlap)",
            ));
        }
        Ok(())
    }

    /// When a credential made at `created` is to be rotated: `every` after
    /// it was made, or early enough that its overlap ends by `max_age`.
    pub fn due(&self, created: Timestamp) -> Timestamp {
        let every = self.every_secs.unwrap_or(u64::MAX);
        let by_age = self
            .max_age_secs
            .map_or(u64::MAX, |m| m.saturating_sub(self.overlap_secs));
        let secs = i64::try_from(every.min(by_age)).unwrap_or(i64::MAX);
        created.plus_secs(secs)
    }

    /// The rotation it asks for.
    pub fn rotation(&self) -> Rotation {
        Rotation {
            overlap_secs: self.overlap_secs,
            retire: self.retire,
        }
    }
}

/// Whether credentials of `kind` rotate by policy: those with a secret we
/// make. A `private_key_jwt` key is the agent's to replace.
pub fn rotates(kind: Kind) -> bool {
    kind != Kind::PrivateKeyJwt
}

/// What a due scheduled rotation (a `credential.rotate` job) does: the rule
/// of whether it still has work. Decided here; the job runner carries it out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueRotation<'a> {
    /// Nothing is left to do: the credential is gone, rotated or revoked
    /// meanwhile, no longer under a policy, or a key the agent holds. The
    /// job just finishes.
    Finish,
    /// Rotate it under this policy.
    Rotate(&'a RotationPolicy),
}

impl<'a> DueRotation<'a> {
    /// The work left for a rotation job of `credential` (`None`: it no
    /// longer exists) under `policy` (the one in effect for its agent, if
    /// any) at `now`.
    pub fn new(credential: Option<&Credential>, policy: Option<&'a RotationPolicy>, now: Timestamp) -> Self {
        match (credential, policy) {
            (Some(c), Some(p)) if rotates(c.kind) && c.check_rotatable(now).is_ok() => DueRotation::Rotate(p),
            _ => DueRotation::Finish,
        }
    }
}

/// The policy that applies to `agent`: its own, else its class's, else the
/// tenant's.
pub fn effective<'a>(policies: &'a [RotationPolicy], agent: &Agent) -> Option<&'a RotationPolicy> {
    effective_for(policies, agent.tenant_id, agent.id, agent.class.as_deref())
}

/// [`effective`] from an agent's tenant, id and class alone.
pub fn effective_for<'a>(
    policies: &'a [RotationPolicy],
    tenant_id: Uuid,
    agent_id: Uuid,
    class: Option<&str>,
) -> Option<&'a RotationPolicy> {
    policies
        .iter()
        .filter(|p| {
            p.tenant_id == tenant_id
                && match &p.scope {
                    Scope::Tenant => true,
                    Scope::Class(c) => class == Some(c.as_str()),
                    Scope::Agent(a) => *a == agent_id,
                }
        })
        .min_by_key(|p| p.scope.rank())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::NewAgent;
    use proptest::prelude::*;

    fn credential(kind: Kind) -> Credential {
        Credential {
            id: Uuid::from_u128(1),
            tenant_id: Uuid::nil(),
            agent_id: Uuid::from_u128(7),
            kind,
            hint: None,
            jwk: None,
            scopes: Default::default(),
            created_at: Timestamp::from_micros(0),
            created_by: "t".into(),
            expires_at: None,
            revoked_at: None,
            last_used_at: None,
            revoked_reason: None,
            predecessor_id: None,
            successor_id: None,
            retire_on_use: false,
            awaiting_pickup: false,
        }
    }

    #[test]
    fn a_due_rotation_rotates_a_live_secret_under_a_policy() {
        let now = Timestamp::from_micros(10);
        let p = policy(Scope::Tenant, Some(60), None, 0);
        let c = credential(Kind::ClientSecret);
        assert_eq!(DueRotation::new(Some(&c), Some(&p), now), DueRotation::Rotate(&p));
        assert_eq!(DueRotation::new(Some(&c), None, now), DueRotation::Finish);
        assert_eq!(DueRotation::new(None, Some(&p), now), DueRotation::Finish);
        let key = credential(Kind::PrivateKeyJwt);
        assert_eq!(DueRotation::new(Some(&key), Some(&p), now), DueRotation::Finish);
        let rotated = Credential {
            successor_id: Some(Uuid::from_u128(2)),
            ..c.clone()
        };
        assert_eq!(DueRotation::new(Some(&rotated), Some(&p), now), DueRotation::Finish);
        let revoked = Credential {
            revoked_at: Some(now),
            ..c
        };
        assert_eq!(DueRotation::new(Some(&revoked), Some(&p), now), DueRotation::Finish);
    }

    proptest! {
        /// A job has work exactly when there is a credential of a kind we
        /// make secrets for, under a policy, still rotatable now.
        #[test]
        fn a_due_rotation_has_work_only_when_every_condition_holds(
            exists in any::<bool>(), under_policy in any::<bool>(), kind in 0usize..3,
            rotated in any::<bool>(), revoked in any::<bool>(), expires in proptest::option::of(0i64..20),
            now in 0i64..20,
        ) {
            let kind = [Kind::ClientSecret, Kind::ApiKey, Kind::PrivateKeyJwt][kind];
            let c = Credential {
                successor_id: rotated.then(|| Uuid::from_u128(2)),
                revoked_at: revoked.then(|| Timestamp::from_micros(0)),
                expires_at: expires.map(Timestamp::from_micros),
                ..credential(kind)
            };
            let p = policy(Scope::Tenant, Some(60), None, 0);
            let now = Timestamp::from_micros(now);
            let plan = DueRotation::new(exists.then_some(&c), under_policy.then_some(&p), now);
            let work = exists && under_policy && rotates(kind) && c.check_rotatable(now).is_ok();
            prop_assert_eq!(plan == DueRotation::Rotate(&p), work);
            prop_assert_eq!(plan == DueRotation::Finish, !work);
        }
    }

    fn policy(scope: Scope, every: Option<u64>, max_age: Option<u64>, overlap: u64) -> RotationPolicy {
        RotationPolicy {
            tenant_id: Uuid::nil(),
            scope,
            every_secs: every,
            max_age_secs: max_age,
            overlap_secs: overlap,
            retire: Retire::OverlapEnd,
            updated_at: Timestamp::from_micros(0),
            updated_by: "t".into(),
        }
    }

    fn agent(class: Option<&str>) -> Agent {
        let spec = NewAgent {
            name: "a".into(),
            owner: "o".into(),
            purpose: "p".into(),
            class: class.map(str::to_owned),
            ..NewAgent::default()
        };
        spec.into_agent(Uuid::from_u128(7), Uuid::nil(), Timestamp::from_micros(0), "t")
            .unwrap()
    }

    #[test]
    fn due_is_the_earlier_of_every_and_max_age_less_overlap() {
        let t0 = Timestamp::from_micros(1_000_000);
        assert_eq!(policy(Scope::Tenant, Some(3600), None, 60).due(t0), t0.plus_secs(3600));
        assert_eq!(policy(Scope::Tenant, None, Some(3600), 600).due(t0), t0.plus_secs(3000));
        assert_eq!(
            policy(Scope::Tenant, Some(600), Some(3600), 600).due(t0),
            t0.plus_secs(600)
        );
        assert_eq!(
            policy(Scope::Tenant, Some(3600), Some(1200), 600).due(t0),
            t0.plus_secs(600)
        );
    }

    #[test]
    fn checks_periods() {
        assert!(policy(Scope::Tenant, None, None, 0).check().is_err());
        assert!(policy(Scope::Tenant, Some(59), None, 0).check().is_err());
        assert!(policy(Scope::Tenant, Some(60), None, 0).check().is_ok());
        assert!(policy(Scope::Tenant, None, Some(600), 600).check().is_err());
        assert!(policy(Scope::Tenant, None, Some(660), 600).check().is_ok());
        assert!(
            policy(Scope::Tenant, Some(3600), None, MAX_OVERLAP_SECS + 1)
                .check()
                .is_err()
        );
    }

    #[test]
    fn the_most_specific_policy_wins() {
        let a = agent(Some("payments"));
        let all = vec![
            policy(Scope::Tenant, Some(100), None, 0),
            policy(Scope::Class("payments".into()), Some(200), None, 0),
            policy(Scope::Class("other".into()), Some(300), None, 0),
        ];
        assert_eq!(effective(&all, &a).unwrap().every_secs, Some(200));
        let mut with_own = all.clone();
        with_own.push(policy(Scope::Agent(a.id), Some(400), None, 0));
        assert_eq!(effective(&with_own, &a).unwrap().every_secs, Some(400));
        assert_eq!(effective(&all, &agent(None)).unwrap().every_secs, Some(100));
        assert!(effective(&all[1..], &agent(None)).is_none());
    }

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(Scope::parse("tenant", ""), Ok(Scope::Tenant));
        assert_eq!(Scope::parse("class", "payments").unwrap().to_string(), "class:payments");
        assert!(Scope::parse("class", "").is_err());
        assert!(Scope::parse("agent", "x").is_err());
        assert!(Scope::parse("team", "x").is_err());
        assert!(Scope::parse("tenant", "x").is_err());
    }
}
