//! The agent lifecycle: `provisioning → active ⇄ suspended → retired`.
//!
//! `retired` is terminal. Retirement is allowed from every other state so an
//! administrator can decommission a compromised agent at once (as Okta and
//! Vault allow deleting/deactivating from any state); the record is kept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where an agent is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Registered, not yet allowed to act.
    Provisioning,
    /// Allowed to act.
    Active,
    /// Temporarily stopped; may be resumed.
    Suspended,
    /// Permanently stopped. Terminal.
    Retired,
}

/// A requested change of [`Status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// `provisioning → active`.
    Activate,
    /// `active → suspended`.
    Suspend,
    /// `suspended → active`.
    Resume,
    /// any non-retired state `→ retired`.
    Retire,
}

/// A transition that the current state does not allow.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot {transition} an agent that is {from}")]
pub struct InvalidTransition {
    /// The state the agent is in.
    pub from: Status,
    /// What was asked.
    pub transition: Transition,
}

impl Status {
    /// Every status, in lifecycle order.
    pub const ALL: [Status; 4] = [Status::Provisioning, Status::Active, Status::Suspended, Status::Retired];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Provisioning => "provisioning",
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Retired => "retired",
        }
    }

    /// Whether no transition can leave this state.
    pub fn is_terminal(self) -> bool {
        self == Status::Retired
    }

    /// The state after `transition`, or why it is not allowed.
    pub fn apply(self, transition: Transition) -> Result<Status, InvalidTransition> {
        use Status::*;
        use Transition::*;
        match (self, transition) {
            (Provisioning, Activate) => Ok(Active),
            (Active, Suspend) => Ok(Suspended),
            (Suspended, Resume) => Ok(Active),
            (Provisioning | Active | Suspended, Retire) => Ok(Retired),
            (from, transition) => Err(InvalidTransition { from, transition }),
        }
    }
}

/// What a lifecycle transition does besides changing the status: the rule
/// of what suspending and retiring an agent cascade to. Decided here; the
/// store carries it out in the transaction of the transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransitionPlan {
    /// The state it leaves.
    pub from: Status,
    /// The state it leads to.
    pub to: Status,
    /// Tokens issued until now stop being accepted (`tokens_not_before`
    /// moves to now). Suspension is for investigations: the tokens issued
    /// until then must not come back with a resumption. Cut at both ends,
    /// so a token issued while the suspension was being committed dies at
    /// the resumption.
    pub cut_tokens: bool,
    /// Nothing scheduled for the agent may run any more (its TTL expiry
    /// job is dropped): retirement is terminal.
    pub cancel_jobs: bool,
    /// Every credential is revoked (retirement, DESIGN C1); suspension only
    /// makes them unusable while it lasts (checked at authentication).
    pub revoke_credentials: bool,
    /// Its database leases start their revocation: neither a suspended nor
    /// a retired agent may use a database role.
    pub revoke_leases: bool,
}

impl TransitionPlan {
    /// Plans `transition` from `from`, or says why it is not allowed.
    pub fn new(from: Status, transition: Transition) -> Result<Self, InvalidTransition> {
        let to = from.apply(transition)?;
        Ok(TransitionPlan {
            from,
            to,
            cut_tokens: matches!(transition, Transition::Suspend | Transition::Resume),
            cancel_jobs: to == Status::Retired,
            revoke_credentials: to == Status::Retired,
            revoke_leases: matches!(to, Status::Suspended | Status::Retired),
        })
    }
}

/// What a due TTL expiry job does to its agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// The agent is gone or retired already: nothing is left to do.
    Nothing,
    /// Retire it (reason "time to live ended", cause `ttl`).
    Retire,
}

impl Expiry {
    /// The work left for an expiry job whose agent is in `status` (`None`:
    /// the agent no longer exists).
    pub fn due(status: Option<Status>) -> Self {
        match status {
            None | Some(Status::Retired) => Expiry::Nothing,
            Some(_) => Expiry::Retire,
        }
    }
}

impl Transition {
    /// Every transition.
    pub const ALL: [Transition; 4] = [
        Transition::Activate,
        Transition::Suspend,
        Transition::Resume,
        Transition::Retire,
    ];

    /// The wire name (also the URL verb).
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Activate => "activate",
            Transition::Suspend => "suspend",
            Transition::Resume => "resume",
            Transition::Retire => "retire",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a status (provisioning, active, suspended, retired)")]
pub struct UnknownStatus(pub String);

impl FromStr for Status {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn retirement_revokes_everything_and_cancels_what_was_scheduled() {
        for from in [Status::Provisioning, Status::Active, Status::Suspended] {
            let p = TransitionPlan::new(from, Transition::Retire).unwrap();
            assert_eq!(p.to, Status::Retired);
            assert!(p.revoke_credentials && p.revoke_leases && p.cancel_jobs, "{from}");
            assert!(!p.cut_tokens, "{from}");
        }
    }

    #[test]
    fn suspension_cuts_tokens_and_leases_but_keeps_credentials() {
        let p = TransitionPlan::new(Status::Active, Transition::Suspend).unwrap();
        assert_eq!(p.to, Status::Suspended);
        assert!(p.cut_tokens && p.revoke_leases);
        assert!(!p.revoke_credentials && !p.cancel_jobs);
        let p = TransitionPlan::new(Status::Suspended, Transition::Resume).unwrap();
        assert_eq!(p.to, Status::Active);
        assert!(p.cut_tokens);
        assert!(!p.revoke_leases && !p.revoke_credentials && !p.cancel_jobs);
        let p = TransitionPlan::new(Status::Provisioning, Transition::Activate).unwrap();
        assert!(!p.cut_tokens && !p.revoke_leases && !p.revoke_credentials && !p.cancel_jobs);
    }

    #[test]
    fn an_expiry_has_work_only_for_a_live_agent() {
        assert_eq!(Expiry::due(None), Expiry::Nothing);
        assert_eq!(Expiry::due(Some(Status::Retired)), Expiry::Nothing);
        for s in [Status::Provisioning, Status::Active, Status::Suspended] {
            assert_eq!(Expiry::due(Some(s)), Expiry::Retire);
        }
    }

    proptest! {
        /// A plan exists exactly when the transition is allowed, and what it
        /// cascades to follows from where it leads: revoking credentials and
        /// cancelling jobs only into `retired`, leases whenever it leaves
        /// the agent unable to act, tokens cut only into or out of a
        /// suspension.
        #[test]
        fn plans_follow_the_state_machine(from in 0usize..4, t in 0usize..4) {
            let from = Status::ALL[from];
            let t = Transition::ALL[t];
            match (TransitionPlan::new(from, t), from.apply(t)) {
                (Ok(p), Ok(to)) => {
                    prop_assert_eq!((p.from, p.to), (from, to));
                    prop_assert_eq!(p.revoke_credentials, to.is_terminal());
                    prop_assert_eq!(p.cancel_jobs, to.is_terminal());
                    prop_assert_eq!(p.revoke_leases, to != Status::Active);
                    let around_suspension =
                        to == Status::Suspended || (from == Status::Suspended && to == Status::Active);
                    prop_assert_eq!(p.cut_tokens, around_suspension);
                }
                (Err(e), Err(f)) => prop_assert_eq!(e, f),
                (p, a) => prop_assert!(false, "plan {:?} but apply {:?}", p, a),
            }
        }
    }

    #[test]
    fn happy_path() {
        let s = Status::Provisioning;
        let s = s.apply(Transition::Activate).unwrap();
        let s = s.apply(Transition::Suspend).unwrap();
        let s = s.apply(Transition::Resume).unwrap();
        let s = s.apply(Transition::Retire).unwrap();
        assert_eq!(s, Status::Retired);
    }

    #[test]
    fn invalid_names_current_state() {
        let err = Status::Active.apply(Transition::Activate).unwrap_err();
        assert_eq!(err.to_string(), "cannot activate an agent that is active");
    }

    fn any_transition() -> impl Strategy<Value = Transition> {
        prop::sample::select(Transition::ALL.to_vec())
    }

    proptest! {
        /// Retired is terminal, whatever sequence of requests follows.
        #[test]
        fn retired_is_terminal(seq in prop::collection::vec(any_transition(), 0..40)) {
            let mut s = Status::Provisioning;
            let mut retired = false;
            for t in seq {
                match s.apply(t) {
                    Ok(next) => { prop_assert!(!retired); s = next; }
                    Err(e) => prop_assert_eq!(e.from, s),
                }
                retired |= s == Status::Retired;
            }
        }

        /// Nothing ever returns to provisioning, and only `activate` leaves it.
        #[test]
        fn provisioning_is_left_once(seq in prop::collection::vec(any_transition(), 0..40)) {
            let mut s = Status::Provisioning;
            let mut left = false;
            for t in seq {
                if let Ok(next) = s.apply(t) {
                    if s == Status::Provisioning && next != Status::Provisioning {
                        prop_assert!(matches!(t, Transition::Activate | Transition::Retire));
                        left = true;
                    }
                    s = next;
                }
                prop_assert!(!(left && s == Status::Provisioning));
            }
        }
    }
}
