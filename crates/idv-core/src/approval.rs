//! Human approval of a permitted action that a policy marked as needing it:
//! requested by a decision, approved or rejected by people the policy names
//! (separation of duties: never the requester, never the agent itself),
//! and consumed once by the same request within a short window.

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

/// Who may approve, as a policy's `@approvers` annotation says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Approvers {
    /// Any person whose token may approve (`admin`, `operator`).
    #[default]
    Any,
    /// The agent's owner (`@approvers("owner")`).
    Owner,
    /// A member of a directory group (`@approvers("group:<name>")`):
    /// `Human::"<approver>"` is in `Group::"<name>"`.
    Group(String),
}

impl Approvers {
    /// Parses `any`, `owner` or `group:<name>`.
    pub fn parse(s: &str) -> Option<Approvers> {
        match s.trim() {
            "any" => Some(Approvers::Any),
            "owner" => Some(Approvers::Owner),
            other => other
                .strip_prefix("group:")
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(|g| Approvers::Group(g.to_owned())),
        }
    }

    /// The annotation form.
    pub fn as_string(&self) -> String {
        match self {
            Approvers::Any => "any".into(),
            Approvers::Owner => "owner".into(),
            Approvers::Group(g) => format!("group:{g}"),
        }
    }
}

/// Most distinct approvals a rule may require.
pub const MAX_REQUIRED: u8 = 2;

/// What an approval needs: who may give it and how many distinct people
/// must (`@approvers`, `@approvals` beside `@requires_approval`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApprovalRule {
    /// Who. Several policies requiring approval for one request: each
    /// approver must satisfy every one.
    pub approvers: Vec<Approvers>,
    /// How many distinct people (1 or 2).
    pub required: u8,
}

impl Default for ApprovalRule {
    fn default() -> Self {
        ApprovalRule {
            approvers: vec![Approvers::Any],
            required: 1,
        }
    }
}

impl ApprovalRule {
    /// The rule of several policies at once: every approver constraint, and
    /// the largest count.
    pub fn combine<'a>(rules: impl IntoIterator<Item = &'a ApprovalRule>) -> ApprovalRule {
        let mut out = ApprovalRule {
            approvers: vec![],
            required: 1,
        };
        for r in rules {
            for a in &r.approvers {
                if *a != Approvers::Any && !out.approvers.contains(a) {
                    out.approvers.push(a.clone());
                }
            }
            out.required = out.required.max(r.required);
        }
        if out.approvers.is_empty() {
            out.approvers.push(Approvers::Any);
        }
        out.approvers.sort();
        out
    }
}

/// The person asking to approve or reject, as the server knows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approver {
    /// Whether the credential is an agent's (never allowed to decide).
    pub is_agent: bool,
    /// The person: the admin token's name (e.g. `alice@bank.example`).
    pub name: String,
    /// The credential: `admin_token:<id>`.
    pub credential: String,
    /// The directory groups `Human::"<name>"` is in (transitively).
    pub groups: Vec<String>,
}

/// One approval given (of the [`ApprovalRule::required`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Given {
    /// The person.
    pub by: String,
    /// With which credential.
    pub credential: String,
    /// When.
    pub at: Timestamp,
    /// Their comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Why a person may not decide an approval (separation of duties).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The approver made the request (or is its agent).
    #[error("the requester of an approval may not decide it")]
    Requester,
    /// An agent's own credential.
    #[error("an agent's credential may not decide an approval")]
    AgentCredential,
    /// The policy requires the agent's owner.
    #[error("only the agent's owner `{0}` may decide this approval")]
    NotOwner(String),
    /// The policy requires a group.
    #[error("only members of the group `{0}` may decide this approval")]
    NotInGroup(String),
    /// The same person approved already.
    #[error("`{0}` already approved: a second approval must come from someone else")]
    AlreadyApproved(String),
}

impl Refusal {
    /// The audit reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Requester => "requester",
            Refusal::AgentCredential => "agent_credential",
            Refusal::NotOwner(_) => "not_owner",
            Refusal::NotInGroup(_) => "not_in_group",
            Refusal::AlreadyApproved(_) => "already_approved",
        }
    }
}

/// Who asked for the decision that needed approval.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// The caller's credential (`admin_token:<id>`), if a caller asked.
    pub credential: Option<String>,
    /// Its name (the person or PEP behind the token).
    pub name: Option<String>,
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
    /// Who is asked to decide: the agent's owner, or the group the rule names.
    pub assignee: String,
    /// Who asked for the decision that needed it.
    pub requested_by: Requester,
    /// Who may approve and how many must.
    pub rule: ApprovalRule,
    /// The approvals given so far (fewer than required while pending).
    pub approvals: Vec<Given>,
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
    /// This person may not decide it.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl Approval {
    /// Whether `who` may approve this approval: separation of duties. Never
    /// an agent's credential; never the requester (the credential or person
    /// that asked for the decision, or the agent the request is for); only
    /// the agent's `owner` or a member of the named group when the rule says
    /// so; and each approval from a different person. `owner` is the
    /// agent's owner, if the subject was an agent.
    pub fn may_decide(&self, who: &Approver, owner: Option<&str>) -> Result<(), Refusal> {
        if who.is_agent {
            return Err(Refusal::AgentCredential);
        }
        let r = &self.requested_by;
        let agent = self.agent_id.map(|a| a.to_string());
        if r.credential.as_deref() == Some(who.credential.as_str())
            || r.name.as_deref() == Some(who.name.as_str())
            || agent.as_deref() == Some(who.name.as_str())
        {
            return Err(Refusal::Requester);
        }
        for a in &self.rule.approvers {
            match a {
                Approvers::Any => {}
                Approvers::Owner => {
                    if owner != Some(who.name.as_str()) {
                        return Err(Refusal::NotOwner(owner.unwrap_or_default().to_owned()));
                    }
                }
                Approvers::Group(g) => {
                    if !who.groups.contains(g) {
                        return Err(Refusal::NotInGroup(g.clone()));
                    }
                }
            }
        }
        if self
            .approvals
            .iter()
            .any(|g| g.by == who.name || g.credential == who.credential)
        {
            return Err(Refusal::AlreadyApproved(who.name.clone()));
        }
        Ok(())
    }

    /// Approve (`true`) or reject: only while pending and unexpired. An
    /// approval only by someone who [`may_decide`](Self::may_decide); it
    /// counts toward [`ApprovalRule::required`], and the last one needed
    /// makes it usable for [`GRANT_SECS`]. A rejection only denies, so any
    /// person who may approve requests at all may reject (the requester
    /// too, withdrawing it), never an agent's credential; it ends it.
    pub fn decide(
        &mut self,
        approve: bool,
        who: &Approver,
        owner: Option<&str>,
        comment: Option<String>,
        now: Timestamp,
    ) -> Result<(), ApprovalError> {
        if self.status != ApprovalStatus::Pending {
            return Err(ApprovalError::NotPending(self.status.as_str()));
        }
        if now >= self.expires_at {
            return Err(ApprovalError::Expired);
        }
        if approve {
            self.may_decide(who, owner)?;
        } else if who.is_agent {
            return Err(Refusal::AgentCredential.into());
        }
        self.decided_at = Some(now);
        self.decided_by = Some(who.name.clone());
        self.comment.clone_from(&comment);
        if !approve {
            self.status = ApprovalStatus::Rejected;
            return Ok(());
        }
        self.approvals.push(Given {
            by: who.name.clone(),
            credential: who.credential.clone(),
            at: now,
            comment,
        });
        if self.approvals.len() >= usize::from(self.rule.required.max(1)) {
            self.status = ApprovalStatus::Approved;
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
            requested_by: Requester {
                credential: Some("admin_token:pep".into()),
                name: Some("pep".into()),
            },
            rule: ApprovalRule::default(),
            approvals: vec![],
            status: ApprovalStatus::Pending,
            created_at: now,
            expires_at: now.plus_secs(PENDING_SECS),
            decided_at: None,
            decided_by: None,
            comment: None,
        }
    }

    fn person(name: &str) -> Approver {
        Approver {
            is_agent: false,
            name: name.into(),
            credential: format!("admin_token:{name}"),
            groups: vec![],
        }
    }

    #[test]
    fn the_requester_and_agents_never_decide() {
        let t = Timestamp::from_micros(0);
        let mut a = pending(t);
        a.agent_id = Some(Uuid::from_u128(7));
        let mut pep = person("other-name");
        pep.credential = "admin_token:pep".into();
        assert_eq!(a.may_decide(&pep, None), Err(Refusal::Requester));
        assert_eq!(a.may_decide(&person("pep"), None), Err(Refusal::Requester));
        assert_eq!(
            a.may_decide(&person(&Uuid::from_u128(7).to_string()), None),
            Err(Refusal::Requester)
        );
        let mut agent = person("bot");
        agent.is_agent = true;
        assert_eq!(a.may_decide(&agent, None), Err(Refusal::AgentCredential));
        assert_eq!(
            a.decide(true, &pep, None, None, t),
            Err(ApprovalError::Refused(Refusal::Requester))
        );
        assert_eq!(
            a.decide(false, &agent, None, None, t),
            Err(ApprovalError::Refused(Refusal::AgentCredential))
        );
        assert_eq!(a.status, ApprovalStatus::Pending);
        assert_eq!(a.may_decide(&person("carol"), None), Ok(()));
        // The requester may withdraw it.
        a.decide(false, &pep, None, None, t).unwrap();
        assert_eq!(a.status, ApprovalStatus::Rejected);
    }

    #[test]
    fn owner_group_and_two_distinct_people() {
        let t = Timestamp::from_micros(0);
        let mut a = pending(t);
        a.rule = ApprovalRule::combine([
            &ApprovalRule {
                approvers: vec![Approvers::Owner],
                required: 1,
            },
            &ApprovalRule {
                approvers: vec![Approvers::Any],
                required: 2,
            },
        ]);
        assert_eq!(a.rule.required, 2);
        assert_eq!(
            a.may_decide(&person("mallory"), Some("alice")),
            Err(Refusal::NotOwner("alice".into()))
        );
        a.decide(true, &person("alice"), Some("alice"), None, t).unwrap();
        assert_eq!(a.status, ApprovalStatus::Pending, "one of two");
        let mut again = person("alice");
        again.credential = "admin_token:second".into();
        assert_eq!(
            a.decide(true, &again, Some("alice"), None, t),
            Err(ApprovalError::Refused(Refusal::AlreadyApproved("alice".into())))
        );
        let mut g = pending(t);
        g.rule.approvers = vec![Approvers::Group("treasury".into())];
        assert_eq!(
            g.may_decide(&person("bob"), None),
            Err(Refusal::NotInGroup("treasury".into()))
        );
        let mut bob = person("bob");
        bob.groups = vec!["treasury".into()];
        g.decide(true, &bob, None, None, t).unwrap();
        assert!(g.usable(t));
        assert_eq!(
            Approvers::parse("group: treasury"),
            Some(Approvers::Group("treasury".into()))
        );
        assert_eq!(Approvers::parse("group:"), None);
        assert_eq!(Approvers::parse("owner"), Some(Approvers::Owner));
    }

    #[test]
    fn approve_then_use_once() {
        let t = Timestamp::from_micros(0);
        let mut a = pending(t);
        a.decide(true, &person("owner"), None, None, t).unwrap();
        assert!(a.usable(t));
        a.consume(t).unwrap();
        assert_eq!(a.consume(t), Err(ApprovalError::NotUsable));
        assert_eq!(
            a.decide(true, &person("x"), None, None, t),
            Err(ApprovalError::NotPending("used"))
        );
    }

    #[test]
    fn rejected_and_expired_are_never_usable() {
        let t = Timestamp::from_micros(0);
        let mut a = pending(t);
        a.decide(false, &person("owner"), None, None, t).unwrap();
        assert!(!a.usable(t));
        let mut b = pending(t);
        assert_eq!(
            b.decide(true, &person("o"), None, None, t.plus_secs(PENDING_SECS)),
            Err(ApprovalError::Expired)
        );
        b.decide(true, &person("o"), None, None, t).unwrap();
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
                    0 => { if a.decide(true, &person("o"), None, None, now).is_ok() { approved = true; } }
                    1 => { let _ = a.decide(false, &person("o"), None, None, now); }
                    _ => { if a.consume(now).is_ok() { uses += 1; } }
                }
            }
            prop_assert!(uses <= 1);
            prop_assert!(uses == 0 || approved);
        }
    }
}
