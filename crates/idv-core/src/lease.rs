//! Leases on dynamic database credentials: the state machine, renewal limits
//! and the names of the roles we create.
//!
//! A lease is written (`pending`) before its role exists on the target, so a
//! crash between `CREATE ROLE` and the lease's activation leaves a record that
//! the revocation job cleans up; it is never forgotten. Revocation first marks
//! the lease `revocation_pending`, and only a confirmed `DROP ROLE` makes it
//! `revoked`.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::Timestamp;
use crate::db_template::DbTemplate;

/// How long a `pending` lease may wait for its role before the revocation
/// job treats the issuance as failed and drops whatever it left behind.
pub const ISSUE_DEADLINE_SECS: i64 = 120;

/// Longest role name PostgreSQL keeps (`NAMEDATALEN - 1`).
pub const MAX_ROLE_NAME: usize = 63;

/// Where a lease is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Recorded; its role is being created.
    Pending,
    /// Its role exists and may log in until `expires_at`.
    Active,
    /// Its role is to be dropped; retried until the target confirms.
    RevocationPending,
    /// Its role is gone.
    Revoked,
}

impl LeaseState {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::RevocationPending => "revocation_pending",
            Self::Revoked => "revoked",
        }
    }

    /// Whether a role for the lease may exist on the target.
    pub const fn is_live(self) -> bool {
        !matches!(self, Self::Revoked)
    }
}

impl fmt::Display for LeaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LeaseState {
    type Err = LeaseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pending" => Ok(Self::Pending),
            "active" => Ok(Self::Active),
            "revocation_pending" => Ok(Self::RevocationPending),
            "revoked" => Ok(Self::Revoked),
            other => Err(LeaseError::UnknownState(other.to_owned())),
        }
    }
}

/// Why a lease ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The agent or an administrator revoked it.
    Revoked,
    /// Its time ran out.
    Expired,
    /// Its agent was suspended, retired or reported compromised.
    AgentDisabled,
    /// The role could not be created, or the server stopped before the lease
    /// was activated.
    Incomplete,
}

impl EndReason {
    /// The stored and wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::AgentDisabled => "agent_disabled",
            Self::Incomplete => "incomplete",
        }
    }
}

impl FromStr for EndReason {
    type Err = LeaseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "revoked" => Ok(Self::Revoked),
            "expired" => Ok(Self::Expired),
            "agent_disabled" => Ok(Self::AgentDisabled),
            "incomplete" => Ok(Self::Incomplete),
            other => Err(LeaseError::UnknownState(other.to_owned())),
        }
    }
}

/// A refused lease operation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// Only an active, unexpired lease can be renewed.
    #[error("the lease is {0} and cannot be renewed")]
    NotRenewable(LeaseState),
    /// The lease ran out before the renewal.
    #[error("the lease has expired")]
    Expired,
    /// The lease already ended or is ending.
    #[error("the lease is already {0}")]
    Ended(LeaseState),
    /// A stored value is not one we write.
    #[error("unknown lease state `{0}`")]
    UnknownState(String),
}

/// A time-limited database role issued to an agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// Lease id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// The agent it was issued to.
    pub agent_id: Uuid,
    /// Role template name.
    pub template: String,
    /// Target database name.
    pub target: String,
    /// The role's name on the target.
    pub username: String,
    /// Where it is in its life.
    pub state: LeaseState,
    /// When it was requested.
    pub issued_at: Timestamp,
    /// When it ends unless renewed (the role's `VALID UNTIL`).
    pub expires_at: Timestamp,
    /// Renewals never go past this.
    pub max_expires_at: Timestamp,
    /// When it was revoked (confirmed on the target).
    pub revoked_at: Option<Timestamp>,
    /// Why it ended or is ending.
    pub end_reason: Option<EndReason>,
    /// The last failure to revoke, while `revocation_pending`.
    pub last_error: Option<String>,
}

impl Lease {
    /// A new lease for `template`, `pending` until its role exists; its
    /// time is `ttl_secs` (the template's default when `None`), never more
    /// than the template's maximum.
    pub fn new(
        id: Uuid,
        tenant_id: Uuid,
        agent_id: Uuid,
        template: &DbTemplate,
        username: String,
        now: Timestamp,
        ttl_secs: Option<i64>,
    ) -> Self {
        let max = template.max_ttl_secs;
        let ttl = ttl_secs.unwrap_or(template.default_ttl_secs).clamp(1, max.max(1));
        Self {
            id,
            tenant_id,
            agent_id,
            template: template.name.clone(),
            target: template.target.clone(),
            username,
            state: LeaseState::Pending,
            issued_at: now,
            expires_at: now.plus_secs(ttl),
            max_expires_at: now.plus_secs(max.max(ttl)),
            revoked_at: None,
            end_reason: None,
            last_error: None,
        }
    }

    /// Seconds left at `now` (0 once expired).
    pub fn ttl_secs(&self, now: Timestamp) -> i64 {
        ((self.expires_at.as_micros() - now.as_micros()) / 1_000_000).max(0)
    }

    /// Whether a renewal at `now` could extend it.
    pub fn renewable(&self, now: Timestamp) -> bool {
        self.state == LeaseState::Active && self.expires_at > now && self.expires_at < self.max_expires_at
    }

    /// The new end of the lease after renewing by `increment_secs` at `now`:
    /// `now + increment`, never past `max_expires_at`, and never earlier than
    /// the current end (a renewal does not shorten a lease).
    pub fn renew(&self, now: Timestamp, increment_secs: i64) -> Result<Timestamp, LeaseError> {
        if self.state != LeaseState::Active {
            return Err(LeaseError::NotRenewable(self.state));
        }
        if self.expires_at <= now {
            return Err(LeaseError::Expired);
        }
        let wanted = now.plus_secs(increment_secs.max(0));
        Ok(wanted.min(self.max_expires_at).max(self.expires_at))
    }

    /// What a renewal by `increment_secs` at `now` does: the new end
    /// ([`Lease::renew`]), or `None` when it would not move the end (at the
    /// maximum): then nothing is changed, on the target or in the store, and
    /// nothing is recorded.
    pub fn renewal(&self, now: Timestamp, increment_secs: i64) -> Result<Option<Timestamp>, LeaseError> {
        let until = self.renew(now, increment_secs)?;
        Ok((until != self.expires_at).then_some(until))
    }

    /// The end to record for a renewal that moved the role's `VALID UNTIL`
    /// to `until` (computed by [`Lease::renewal`] before the target was
    /// changed): exactly `until`, so the record equals the target, checked
    /// again at `now` (the lease may have ended meanwhile) and never past
    /// the maximum nor shortening the lease; `None` when it changes nothing
    /// (a concurrent renewal went as far or further).
    pub fn extend_to(&self, now: Timestamp, until: Timestamp) -> Result<Option<Timestamp>, LeaseError> {
        if self.state != LeaseState::Active {
            return Err(LeaseError::NotRenewable(self.state));
        }
        if self.expires_at <= now {
            return Err(LeaseError::Expired);
        }
        let until = until.min(self.max_expires_at);
        Ok((until > self.expires_at).then_some(until))
    }

    /// Checks that revocation can start: a lease already ending or ended
    /// cannot be revoked again.
    pub fn check_revocable(&self) -> Result<(), LeaseError> {
        match self.state {
            LeaseState::Pending | LeaseState::Active => Ok(()),
            s => Err(LeaseError::Ended(s)),
        }
    }
}

/// The role name for a lease: `prefix`, the template name reduced to
/// `[a-z0-9_]`, and `random`, cut so the whole fits PostgreSQL's 63 bytes
/// (the random part is kept whole).
pub fn role_name(prefix: &str, template: &str, random: &str) -> String {
    let middle: String = template
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }
        })
        .collect();
    let room = MAX_ROLE_NAME.saturating_sub(prefix.len() + random.len() + 1);
    let middle: String = middle.chars().take(room).collect();
    format!("{prefix}{middle}_{random}")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn template(default_ttl_secs: i64, max_ttl_secs: i64) -> DbTemplate {
        DbTemplate {
            tenant_id: Uuid::nil(),
            name: "readonly".into(),
            target: "reporting".into(),
            statements: vec![],
            default_ttl_secs,
            max_ttl_secs,
            updated_at: Timestamp::from_micros(0),
            updated_by: "test".into(),
        }
    }

    fn lease(now: Timestamp) -> Lease {
        let mut l = Lease::new(
            Uuid::nil(),
            Uuid::nil(),
            Uuid::nil(),
            &template(600, 3600),
            "u".into(),
            now,
            None,
        );
        l.state = LeaseState::Active;
        l
    }

    #[test]
    fn a_renewal_at_the_maximum_changes_nothing_and_records_what_was_set() {
        let t0 = Timestamp::from_micros(1_000_000_123_456);
        let mut l = Lease::new(
            Uuid::nil(),
            Uuid::nil(),
            Uuid::nil(),
            &template(600, 3600),
            "r".into(),
            t0,
            None,
        );
        l.state = LeaseState::Active;
        let now = Timestamp::from_micros(t0.as_micros() + 60_700_000);
        let until = l.renewal(now, 100_000).unwrap().unwrap();
        assert_eq!(until, l.max_expires_at);
        // Recorded a moment later: exactly what was set, not recomputed.
        let later = Timestamp::from_micros(now.as_micros() + 400_000);
        assert_eq!(l.extend_to(later, until), Ok(Some(until)));
        l.expires_at = until;
        assert!(!l.renewable(later));
        assert_eq!(l.renewal(later, 100_000), Ok(None));
        assert_eq!(l.extend_to(later, until), Ok(None));
        assert_eq!(l.extend_to(until, until), Err(LeaseError::Expired));
    }

    #[test]
    fn renewal_is_capped_and_never_shortens() {
        let t0 = Timestamp::from_micros(1_000_000_000_000);
        let l = lease(t0);
        assert_eq!(l.expires_at, t0.plus_secs(600));
        assert_eq!(l.renew(t0.plus_secs(60), 1200), Ok(t0.plus_secs(1260)));
        assert_eq!(l.renew(t0.plus_secs(60), 100_000), Ok(t0.plus_secs(3600)));
        assert_eq!(l.renew(t0.plus_secs(60), 10), Ok(t0.plus_secs(600)));
        assert_eq!(l.renew(t0.plus_secs(600), 10), Err(LeaseError::Expired));
        let mut ended = l.clone();
        ended.state = LeaseState::RevocationPending;
        assert_eq!(
            ended.renew(t0, 10),
            Err(LeaseError::NotRenewable(LeaseState::RevocationPending))
        );
        assert_eq!(
            ended.check_revocable(),
            Err(LeaseError::Ended(LeaseState::RevocationPending))
        );
    }

    #[test]
    fn ttl_is_capped_by_the_maximum() {
        let t0 = Timestamp::from_micros(0);
        let l = Lease::new(
            Uuid::nil(),
            Uuid::nil(),
            Uuid::nil(),
            &template(30, 60),
            "u".into(),
            t0,
            Some(9_000),
        );
        assert_eq!(l.expires_at, t0.plus_secs(60));
        assert_eq!(l.ttl_secs(t0.plus_secs(30)), 30);
        assert_eq!(l.ttl_secs(t0.plus_secs(90)), 0);
    }

    #[test]
    fn role_names_fit_postgres() {
        assert_eq!(role_name("idv_", "read-only", "ab12"), "idv_read_only_ab12");
        let long = role_name("idv_", &"x".repeat(200), "r".repeat(16).as_str());
        assert_eq!(long.len(), MAX_ROLE_NAME);
        assert!(long.ends_with(&"r".repeat(16)));
    }

    #[test]
    fn states_round_trip() {
        for s in [
            LeaseState::Pending,
            LeaseState::Active,
            LeaseState::RevocationPending,
            LeaseState::Revoked,
        ] {
            assert_eq!(s.as_str().parse::<LeaseState>(), Ok(s));
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Activate,
        Renew(i64),
        Revoke,
        Confirm,
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            Just(Op::Activate),
            (0..10_000i64).prop_map(Op::Renew),
            Just(Op::Revoke),
            Just(Op::Confirm),
            (0..2_000i64).prop_map(Op::Wait),
        ]
    }

    proptest! {
        /// Whatever happens, a lease never runs past its maximum, never goes
        /// back to life once revocation started, and only a confirmed
        /// revocation makes it `revoked`.
        #[test]
        fn lease_state_machine(ops in proptest::collection::vec(op(), 0..40)) {
            let t0 = Timestamp::from_micros(0);
            let mut now = t0;
            let mut l = Lease::new(Uuid::nil(), Uuid::nil(), Uuid::nil(), &template(600, 3600), "u".into(), now, None);
            let mut ending = false;
            for o in ops {
                match o {
                    Op::Activate => if l.state == LeaseState::Pending { l.state = LeaseState::Active },
                    Op::Renew(inc) => {
                        let before = l.expires_at;
                        match l.renew(now, inc) {
                            Ok(until) => {
                                prop_assert!(until <= l.max_expires_at);
                                prop_assert!(until >= before);
                                l.expires_at = until;
                            }
                            Err(_) => prop_assert!(l.state != LeaseState::Active || l.expires_at <= now),
                        }
                    }
                    Op::Revoke => if l.check_revocable().is_ok() {
                        l.state = LeaseState::RevocationPending;
                        ending = true;
                    },
                    Op::Confirm => if l.state == LeaseState::RevocationPending { l.state = LeaseState::Revoked },
                    Op::Wait(s) => now = now.plus_secs(s),
                }
                prop_assert!(l.expires_at <= l.max_expires_at);
                if ending {
                    prop_assert!(matches!(l.state, LeaseState::RevocationPending | LeaseState::Revoked));
                }
            }
        }
    }
}
