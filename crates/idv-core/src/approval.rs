//! Human approval of a permitted action that a policy marked as needing it:
//! requested by a decision, approved or rejected by the agent's owner, and
//! consumed once by the same request within a short window.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::Timestamp;
use crate::directory::EntityRef;

/// How long a request waits for its approver.
pub const PENDING_SECS: i64 = 24 * 3600;
/// How long an approval may be used, once given.
pub const GRANT_SECS: i64 = 15 * 60;

/// Where an approval stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    /// Waiting for the approver.
    Pending,
    /// Approved, not yet used.
    Approved,
    /// Rejected.
    Rejected,
    /// Approved and used by the request it was for.
    Used,
}

impl ApprovalStatus {
    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalStatus::Pending => "pending",
            ApprovalStatus::Approved => "approved",
            ApprovalStatus::Rejected => "rejected",
            ApprovalStatus::Used => "used",
        }
    }

    /// From the storage name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(ApprovalStatus::Pending),
            "approved" => Some(ApprovalStatus::Approved),
            "rejected" => Some(ApprovalStatus::Rejected),
            "used" => Some(ApprovalStatus::Used),
            _ => None,
        }
    }
}

/// An approval request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Id.
    pub id: Uuid,
    /// Tenant.
    pub tenant_id: Uuid,
    /// The acting agent, when the subject was one.
    pub agent_id: Option<Uuid>,
    /// The subject as asked (`type` and `id`).
    pub subject: EntityRef,
    /// The action.
    pub action: String,
    /// The resource.
    pub resource: EntityRef,
    /// What the caller supplied as context (the request it approves).
    pub context: Value,
    /// SHA-256 (hex) of the canonical request: only an identical request
    /// may use the approval.
    pub fingerprint: String,
    /// Why approval is needed (from the policies' annotations).
    pub reasons: Vec<String>,
    /// Who must decide: the agent's owner.
    pub assignee: String,
    /// Where it stands.
    pub status: ApprovalStatus,
    /// When it was requested.
    pub created_at: Timestamp,
    /// Until when it is pending, or (once approved) usable.
    pub expires_at: Timestamp,
    /// When it was approved or rejected.
    pub decided_at: Option<Timestamp>,
    /// Who approved or rejected it.
    pub decided_by: Option<String>,
    /// Why (the approver's comment).
    pub comment: Option<String>,
}

/// Why an approval cannot move.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalError {
    /// It is not pending.
    #[error("the approval is {0}, not pending")]
    NotPending(&'static str),
    /// It ran out.
    #[error("the approval expired")]
    Expired,
    /// It cannot be used.
    #[error("the approval is not usable")]
    NotUsable,
}

impl Approval {
    /// Approve (`true`) or reject: only while pending and unexpired. An
    /// approval is usable for [`GRANT_SECS`] after it is given.
    pub fn decide(
        &mut self,
        approve: bool,
        by: &str,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(), ApprovalError> {
        if self.status != ApprovalStatus::Pending {
            return Err(ApprovalError::NotPending(self.status.as_str()));
        }
        if now >= self.expires_at {
            return Err(ApprovalError::Expired);
        }
        self.status = if approve {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        self.decided_at = Some(now);
        self.decided_by = Some(by.to_owned());
        self.comment = comment;
        if approve {
            self.expires_at = now.plus_secs(GRANT_SECS);
        }
        Ok(())
    }

    /// Whether the request it was made for may go ahead now, once.
    pub fn usable(&self, now: Timestamp) -> bool {
        self.status == ApprovalStatus::Approved && now < self.expires_at
    }

    /// Marks it used: only an approved, unexpired approval.
    pub fn consume(&mut self, now: Timestamp) -> Result<(), ApprovalError> {
        if !self.usable(now) {
            return Err(ApprovalError::NotUsable);
        }
        self.status = ApprovalStatus::Used;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn pending(now: Timestamp) -> Approval {
        Approval {
            id: Uuid::nil(),
            tenant_id: Uuid::nil(),
            agent_id: None,
            subject: EntityRef {
                type_name: "Agent".into(),
                id: "a".into(),
            },
            action: "transfer".into(),
            resource: EntityRef {
                type_name: "Resource".into(),
                id: "r".into(),
            },
            context: Value::Null,
            fingerprint: String::new(),
            reasons: vec![],
            assignee: "o".into(),
            status: ApprovalStatus::Pending,
            created_at: now,
            expires_at: now.plus_secs(PENDING_SECS),
            decided_at: None,
            decided_by: None,
            comment: None,
        }
    }

    #[test]
    fn approve_then_use_once() {
        let t = Timestamp::from_micros(0);
        let mut a = pending(t);
        a.decide(true, "owner", None, t).unwrap();
        assert!(a.usable(t));
        a.consume(t).unwrap();
        assert_eq!(a.consume(t), Err(ApprovalError::NotUsable));
        assert_eq!(a.decide(true, "x", None, t), Err(ApprovalError::NotPending("used")));
    }

    #[test]
    fn rejected_and_expired_are_never_usable() {
        let t = Timestamp::from_micros(0);
        let mut a = pending(t);
        a.decide(false, "owner", None, t).unwrap();
        assert!(!a.usable(t));
        let mut b = pending(t);
        assert_eq!(
            b.decide(true, "o", None, t.plus_secs(PENDING_SECS)),
            Err(ApprovalError::Expired)
        );
        b.decide(true, "o", None, t).unwrap();
        assert!(!b.usable(t.plus_secs(GRANT_SECS)));
    }

    proptest! {
        /// Whatever happens, an approval is used at most once, and only
        /// after an approval that was given while it was pending.
        #[test]
        fn used_at_most_once(steps in proptest::collection::vec((0u8..3, 0i64..100_000), 0..20)) {
            let t0 = Timestamp::from_micros(0);
            let mut a = pending(t0);
            let mut uses = 0;
            let mut approved = false;
            for (op, secs) in steps {
                let now = t0.plus_secs(secs);
                match op {
                    0 => { if a.decide(true, "o", None, now).is_ok() { approved = true; } }
                    1 => { let _ = a.decide(false, "o", None, now); }
                    _ => { if a.consume(now).is_ok() { uses += 1; } }
                }
            }
            prop_assert!(uses <= 1);
            prop_assert!(uses == 0 || approved);
        }
    }
}
