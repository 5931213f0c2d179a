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
