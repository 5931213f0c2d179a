//! Just-in-time access requests: an agent's owner asks for a role or a single
//! action for their agent, for a while, saying why; someone else approves or
//! denies it; an approved request becomes a grant to the agent that ends on
//! its own. The rules here are pure: they check a request and say what a
//! decision changes; the store applies that in one commit with its events.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Timestamp;
use crate::role::{GrantSubject, Permission, RoleGrant};

/// How long a request waits for a decision before it lapses.
pub const PENDING_SECS: i64 = 7 * 86_400;
/// The shortest access a request may ask for.
pub const MIN_DURATION_SECS: i64 = 60;
/// The longest: just-in-time access is temporary by design; standing access
/// is a grant an administrator makes.
pub const MAX_DURATION_SECS: i64 = 30 * 86_400;
/// The longest justification or comment, in characters.
pub const MAX_TEXT: usize = 1_000;

/// Where a request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for a decision.
    Pending,
    /// Approved: the grant was made.
    Approved,
    /// Denied.
    Denied,
    /// Withdrawn by the requester.
    Withdrawn,
}

impl Status {
    /// Every status.
    pub const ALL: [Status; 4] = [Status::Pending, Status::Approved, Status::Denied, Status::Withdrawn];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Withdrawn => "withdrawn",
        }
    }

    /// Parses [`Status::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Status::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A request for access.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// The agent that would hold the access.
    pub agent_id: Uuid,
    /// What is asked for: a role or a single action.
    pub permission: Permission,
    /// Why.
    pub justification: String,
    /// For how long, once approved.
    pub duration_secs: i64,
    /// Who asked (the person's or admin token's name, as audited).
    pub requested_by: String,
    /// Where it stands.
    pub status: Status,
    /// When it was asked.
    pub created_at: Timestamp,
    /// When a pending request lapses.
    pub expires_at: Timestamp,
    /// Who decided (or withdrew) it.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<Timestamp>,
    /// The decider's comment.
    pub comment: Option<String>,
    /// The grant an approval made.
    pub grant_id: Option<Uuid>,
    /// When that grant ends.
    pub grant_expires_at: Option<Timestamp>,
}

/// Why a request or a decision is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AccessRequestError {
    /// A field is not acceptable.
    #[error("`{field}`: {detail}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// It was already decided or withdrawn.
    #[error("the request is {0}, not pending")]
    NotPending(&'static str),
    /// It waited too long.
    #[error("the request lapsed without a decision")]
    Lapsed,
    /// Separation of duties: the requester cannot decide their own request.
    #[error("the requester cannot decide their own request")]
    OwnRequest,
    /// Only the requester withdraws a request.
    #[error("only the requester can withdraw a request")]
    NotRequester,
}

impl AccessRequestError {
    /// Whether this is a refusal of the person (recorded as denied), rather
    /// than a request in the wrong state.
    pub fn is_refusal(&self) -> bool {
        matches!(self, AccessRequestError::OwnRequest | AccessRequestError::NotRequester)
    }
}

fn invalid(field: &'static str, detail: impl Into<String>) -> AccessRequestError {
    AccessRequestError::Invalid {
        field,
        detail: detail.into(),
    }
}

fn check_text(field: &'static str, s: &str, required: bool) -> Result<(), AccessRequestError> {
    let n = s.chars().count();
    if required && s.trim().is_empty() {
        return Err(invalid(field, "say why the agent needs it"));
    }
    if n > MAX_TEXT {
        return Err(invalid(field, format!("at most {MAX_TEXT} characters")));
    }
    if s.chars().any(|c| c.is_control() && c != '\n') {
        return Err(invalid(field, "no control characters"));
    }
    Ok(())
}

/// What a requester asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccessRequest {
    /// The agent.
    pub agent_id: Uuid,
    /// A role or an action.
    pub permission: Permission,
    /// Why.
    pub justification: String,
    /// For how long.
    pub duration_secs: i64,
}

impl AccessRequest {
    /// A pending request from `requested_by`, checked.
    pub fn new(
        id: Uuid,
        tenant_id: Uuid,
        new: NewAccessRequest,
        requested_by: &str,
        now: Timestamp,
    ) -> Result<Self, AccessRequestError> {
        check_text("justification", &new.justification, true)?;
        if !(MIN_DURATION_SECS..=MAX_DURATION_SECS).contains(&new.duration_secs) {
            return Err(invalid(
                "duration",
                format!(
                    "from {} minute to {} days: just-in-time access is temporary",
                    MIN_DURATION_SECS / 60,
                    MAX_DURATION_SECS / 86_400
                ),
            ));
        }
        let name = match &new.permission {
            Permission::Role(n) | Permission::Action(n) => n,
        };
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(invalid("permission", "a role or action name of 1 to 128 characters"));
        }
        Ok(AccessRequest {
            id,
            tenant_id,
            agent_id: new.agent_id,
            permission: new.permission,
            justification: new.justification.trim().to_owned(),
            duration_secs: new.duration_secs,
            requested_by: requested_by.to_owned(),
            status: Status::Pending,
            created_at: now,
            expires_at: now.plus_secs(PENDING_SECS),
            decided_by: None,
            decided_at: None,
            comment: None,
            grant_id: None,
            grant_expires_at: None,
        })
    }

    /// The state as people read it: `lapsed` for a pending request past
    /// its wait, `expired` for an approved one whose grant has ended.
    pub fn state(&self, now: Timestamp) -> &'static str {
        match self.status {
            Status::Pending if now >= self.expires_at => "lapsed",
            Status::Approved if self.grant_expires_at.is_some_and(|t| now >= t) => "expired",
            s => s.as_str(),
        }
    }

    fn pending(&self, now: Timestamp) -> Result<(), AccessRequestError> {
        if self.status != Status::Pending {
            return Err(AccessRequestError::NotPending(self.status.as_str()));
        }
        if now >= self.expires_at {
            return Err(AccessRequestError::Lapsed);
        }
        Ok(())
    }

    /// Approves (answering the grant to make, id `grant_id`, ending after
    /// the requested duration) or denies, by `by`, who is not the requester.
    pub fn decide(
        &mut self,
        approve: bool,
        by: &str,
        comment: Option<String>,
        grant_id: Uuid,
        now: Timestamp,
    ) -> Result<Option<RoleGrant>, AccessRequestError> {
        self.pending(now)?;
        if by == self.requested_by {
            return Err(AccessRequestError::OwnRequest);
        }
        if let Some(c) = &comment {
            check_text("comment", c, false)?;
        }
        self.decided_by = Some(by.to_owned());
        self.decided_at = Some(now);
        self.comment = comment;
        if !approve {
            self.status = Status::Denied;
            return Ok(None);
        }
        let until = now.plus_secs(self.duration_secs);
        self.status = Status::Approved;
        self.grant_id = Some(grant_id);
        self.grant_expires_at = Some(until);
        Ok(Some(RoleGrant {
            id: grant_id,
            tenant_id: self.tenant_id,
            subject: GrantSubject::Agent(self.agent_id),
            permission: self.permission.clone(),
            condition: None,
            expires_at: Some(until),
            created_at: now,
            created_by: by.to_owned(),
        }))
    }

    /// Withdraws a pending request; only its requester may.
    pub fn withdraw(&mut self, by: &str, now: Timestamp) -> Result<(), AccessRequestError> {
        self.pending(now)?;
        if by != self.requested_by {
            return Err(AccessRequestError::NotRequester);
        }
        self.status = Status::Withdrawn;
        self.decided_by = Some(by.to_owned());
        self.decided_at = Some(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_micros(s * 1_000_000)
    }

    fn req(duration_secs: i64) -> Result<AccessRequest, AccessRequestError> {
        AccessRequest::new(
            Uuid::nil(),
            Uuid::nil(),
            NewAccessRequest {
                agent_id: Uuid::from_u128(7),
                permission: Permission::Role("payments-reader".into()),
                justification: "month-end close".into(),
                duration_secs,
            },
            "dev@bank.example",
            t(1_000),
        )
    }

    #[test]
    fn an_approval_makes_a_grant_that_ends_on_its_own() {
        let mut r = req(3_600).unwrap();
        let g = r.decide(
            true,
            "alice@bank.example",
            Some("ok".into()),
            Uuid::from_u128(9),
            t(2_000),
        );
        let g = g.unwrap().unwrap();
        assert_eq!(g.subject, GrantSubject::Agent(Uuid::from_u128(7)));
        assert_eq!(g.expires_at, Some(t(5_600)));
        assert_eq!(r.status, Status::Approved);
        assert_eq!(r.state(t(5_599)), "approved");
        assert_eq!(r.state(t(5_600)), "expired");
        assert_eq!(
            r.decide(false, "bob", None, Uuid::nil(), t(2_001)),
            Err(AccessRequestError::NotPending("approved"))
        );
    }

    #[test]
    fn the_requester_cannot_decide_and_only_they_withdraw() {
        let mut r = req(3_600).unwrap();
        let own = r
            .decide(true, "dev@bank.example", None, Uuid::nil(), t(1_001))
            .unwrap_err();
        assert!(own.is_refusal());
        assert_eq!(r.status, Status::Pending, "a refusal changes nothing");
        assert_eq!(r.withdraw("eve", t(1_001)), Err(AccessRequestError::NotRequester));
        r.withdraw("dev@bank.example", t(1_001)).unwrap();
        assert_eq!(r.status, Status::Withdrawn);
    }

    #[test]
    fn a_request_lapses_and_bad_ones_are_refused() {
        let mut r = req(3_600).unwrap();
        assert_eq!(r.state(t(1_000 + PENDING_SECS)), "lapsed");
        assert_eq!(
            r.decide(true, "alice", None, Uuid::nil(), t(1_000 + PENDING_SECS)),
            Err(AccessRequestError::Lapsed)
        );
        assert!(matches!(
            req(59),
            Err(AccessRequestError::Invalid { field: "duration", .. })
        ));
        assert!(matches!(
            req(MAX_DURATION_SECS + 1),
            Err(AccessRequestError::Invalid { field: "duration", .. })
        ));
    }

    proptest! {
        /// Whatever sequence of decisions and withdrawals by whomever: at
        /// most one of them takes effect, never by the requester deciding,
        /// and a grant exists exactly when the request is approved.
        #[test]
        fn one_decision_at_most(ops in proptest::collection::vec((0..3u8, 0..3u8, 0..20i64), 1..12)) {
            let people = ["dev@bank.example", "alice", "bob"];
            let mut r = req(600).unwrap();
            let mut effects = 0;
            for (op, who, dt) in ops {
                let now = t(1_000 + dt * 60_000);
                let by = people[usize::from(who)];
                let before = r.clone();
                let ok = match op {
                    0 => r.decide(true, by, None, Uuid::from_u128(1), now).is_ok(),
                    1 => r.decide(false, by, None, Uuid::nil(), now).is_ok(),
                    _ => r.withdraw(by, now).is_ok(),
                };
                if ok {
                    effects += 1;
                    prop_assert!(op == 2 || by != r.requested_by);
                } else {
                    prop_assert_eq!(&r, &before, "a refused step changes nothing");
                }
            }
            prop_assert!(effects <= 1);
            prop_assert_eq!(r.grant_id.is_some(), r.status == Status::Approved);
        }
    }
}
