//! Authorization decisions (the AuthZEN PDP): resolve who asks, what and on
//! what; decide with the tenant's engine; record the decision with its usage,
//! communication edge and approval step in one group commit; answer why.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::admin_token::Permission;
use idv_core::agent::Agent;
use idv_core::approval::{self, Approval, ApprovalStatus};
use idv_core::audit::{Action, Draft, Outcome as AuditOutcome, TargetKind, TargetType, canonical_json};
use idv_core::delegation;
use idv_core::directory::EntityRef;
use idv_policy::{Decision, Engine, Outcome, Party, Query, Target, TokenFacts};
use idv_store::{
    ApprovalDecision, ApprovalFilter, ApprovalStep, Context, DecisionRecord, Edge, EdgeUse, StoreError, Usage, UsageRow,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{AppError, Caller, cache, oauth};
use crate::AppState;

/// A subject or resource as asked.
#[derive(Clone, Debug)]
pub struct Thing {
    /// Its type (`agent`, `token`, or a schema type).
    pub type_name: String,
    /// Its id.
    pub id: String,
    /// Caller-supplied attributes.
    pub properties: Option<Map<String, Value>>,
}

/// One question.
#[derive(Clone, Debug)]
pub struct Ask {
    /// Who.
    pub subject: Thing,
    /// Does what.
    pub action: String,
    /// The action's caller-supplied attributes (`context.action`).
    pub action_properties: Option<Map<String, Value>>,
    /// On what.
    pub resource: Thing,
    /// Circumstances.
    pub context: Map<String, Value>,
}

/// One answer.
#[derive(Clone, Debug)]
pub struct Answer {
    /// Allowed or not.
    pub allowed: bool,
    /// `allow`, `deny` or `requires_approval`.
    pub outcome: &'static str,
    /// Why, for the caller.
    pub context: Value,
}

/// The subject and resource, loaded.
pub(super) struct Resolved {
    pub(super) actor: Option<Agent>,
    /// When the subject is not an agent.
    entity: Option<EntityRef>,
    delegators: Vec<Delegator>,
    callee: Option<Agent>,
    pub(super) token: Option<(TokenFacts, String)>,
    /// A reason to deny before any policy runs.
    refused: Option<&'static str>,
}

enum Delegator {
    Agent(Box<Agent>),
    Entity(EntityRef),
}

pub(super) fn is_agent_type(t: &str) -> bool {
    t == "agent" || t == "Agent"
}

async fn load_agent(state: &AppState, tenant_id: Uuid, id: &str) -> Result<Option<Agent>, AppError> {
    match Uuid::parse_str(id) {
        Ok(u) => cache::agent(state, tenant_id, u).await,
        Err(_) => Ok(None),
    }
}

pub(super) async fn resolve(
    state: &AppState,
    tenant: &idv_core::tenant::Tenant,
    ask: &Ask,
) -> Result<Resolved, AppError> {
    let mut r = Resolved {
        actor: None,
        entity: None,
        delegators: vec![],
        callee: None,
        token: None,
        refused: None,
    };
    let s = &ask.subject;
    if is_agent_type(&s.type_name) {
        r.actor = load_agent(state, tenant.id, &s.id).await?;
        if r.actor.is_none() {
            r.refused = Some("unknown_subject");
        }
    } else if s.type_name == "token" {
        match oauth::active_token(state, tenant, &s.id).await? {
            None => r.refused = Some("token_inactive"),
            Some(t) => {
                // RFC 9449 §7: a DPoP-bound token counts only with proof of its
                // key; the PEP checked the proof and passes its thumbprint.
                let presented = s.properties.as_ref().and_then(|p| p.get("jkt")).and_then(Value::as_str);
                if t.cnf_jkt.is_some() && t.cnf_jkt.as_deref() != presented {
                    r.refused = Some("dpop_binding");
                }
                r.actor = load_agent(state, tenant.id, &t.checked.client_id).await?;
                // RFC 8693 §4.1: the outermost `act` is the actor (the client);
                // nested ones are prior actors; `sub` started the chain.
                let actors = delegation::actors(t.checked.act.as_ref()).unwrap_or_default();
                for prior in actors.iter().skip(1) {
                    match load_agent(state, tenant.id, prior).await? {
                        Some(a) => r.delegators.push(Delegator::Agent(Box::new(a))),
                        None => r.refused = Some("unknown_delegator"),
                    }
                }
                if t.checked.sub != t.checked.client_id {
                    match load_agent(state, tenant.id, &t.checked.sub).await? {
                        Some(a) => r.delegators.push(Delegator::Agent(Box::new(a))),
                        None => r.delegators.push(Delegator::Entity(EntityRef {
                            type_name: "Human".into(),
                            id: t.checked.sub.clone(),
                        })),
                    }
                }
                let facts = TokenFacts {
                    scopes: t.checked.scopes.clone(),
                    task_types: t.task_types,
                    delegators: i64::try_from(r.delegators.len()).unwrap_or(i64::MAX),
                };
                r.token = Some((facts, t.checked.jti.clone()));
                if r.actor.is_none() {
                    r.refused = Some("unknown_subject");
                }
            }
        }
    } else {
        r.entity = Some(EntityRef {
            type_name: s.type_name.clone(),
            id: s.id.clone(),
        });
    }
    if is_agent_type(&ask.resource.type_name) {
        r.callee = load_agent(state, tenant.id, &ask.resource.id).await?;
        if r.callee.is_none() && r.refused.is_none() {
            r.refused = Some("unknown_resource");
        }
    }
    Ok(r)
}

pub(super) fn run(
    engine: &Engine,
    r: &Resolved,
    ask: &Ask,
    now: Timestamp,
    source_ip: Option<IpAddr>,
) -> Result<Decision, AppError> {
    if let Some(reason) = r.refused {
        return Ok(refusal(reason));
    }
    let actor = match (&r.actor, &r.entity) {
        (Some(a), _) => Party::Agent(a),
        (None, Some(e)) => Party::Entity(e),
        (None, None) => return Ok(refusal("unknown_subject")),
    };
    let resource_ref = EntityRef {
        type_name: ask.resource.type_name.clone(),
        id: ask.resource.id.clone(),
    };
    let resource = match &r.callee {
        Some(a) => Target::Agent(a),
        None => Target::Entity {
            uid: &resource_ref,
            properties: ask.resource.properties.as_ref(),
        },
    };
    let q = Query {
        actor,
        delegators: r
            .delegators
            .iter()
            .map(|d| match d {
                Delegator::Agent(a) => Party::Agent(a),
                Delegator::Entity(e) => Party::Entity(e),
            })
            .collect(),
        action: &ask.action,
        action_properties: ask.action_properties.as_ref(),
        subject_properties: ask.subject.properties.as_ref(),
        resource,
        context: &ask.context,
        now,
        source_ip,
        token: r.token.as_ref().map(|(f, _)| f),
    };
    engine.decide(&q).map_err(|e| AppError::BadParameter {
        field: e.field(),
        detail: e.to_string(),
    })
}

fn refusal(reason: &str) -> Decision {
    Decision {
        outcome: Outcome::Deny,
        parties: vec![idv_policy::engine::PartyDecision {
            party: String::new(),
            outcome: Outcome::Deny,
            determining: vec![],
            errors: vec![],
            reason: Some(reason.to_owned()),
        }],
    }
}

fn outcome_name(o: &Outcome) -> &'static str {
    match o {
        Outcome::Allow => "allow",
        Outcome::Deny => "deny",
        Outcome::RequiresApproval(_) => "requires_approval",
    }
}

/// The request an approval is for, as a stable digest: only an identical
/// request may use it.
fn fingerprint(ask: &Ask) -> String {
    // Subject and action properties enter only when given, so a request
    // without them keeps the digest it had before they counted.
    let mut subject = json!({ "type": ask.subject.type_name, "id": ask.subject.id });
    if let (Some(p), Value::Object(m)) = (&ask.subject.properties, &mut subject) {
        m.insert("properties".into(), Value::Object(p.clone()));
    }
    let action = match &ask.action_properties {
        Some(p) => json!({ "name": ask.action, "properties": p }),
        None => json!(ask.action),
    };
    let v = json!({
        "subject": subject,
        "action": action,
        "resource": { "type": ask.resource.type_name, "id": ask.resource.id, "properties": ask.resource.properties },
        "context": ask.context,
    });
    idv_core::hex::encode(&Sha256::digest(canonical_json(&v).as_bytes()))
}

/// A decision made but not yet recorded.
struct Pending {
    answer: Answer,
    record: DecisionRecord,
}

async fn prepare(
    state: &AppState,
    tenant: &idv_core::tenant::Tenant,
    ctx: &Context,
    engine: &Engine,
    ask: &Ask,
    source_ip: Option<IpAddr>,
) -> Result<Pending, AppError> {
    let now = state.clock.now();
    let r = resolve(state, tenant, ask).await?;
    let decision = run(engine, &r, ask, now, source_ip)?;
    let mut outcome = decision.outcome.clone();
    let mut step = None;
    let mut approval_note = Value::Null;
    if let Outcome::RequiresApproval(reasons) = &decision.outcome {
        let fp = fingerprint(ask);
        match state.store.usable_approval(tenant.id, &fp, now).await? {
            Some(a) => {
                outcome = Outcome::Allow;
                approval_note = json!({ "id": a.id, "status": "used" });
                step = Some(ApprovalStep::Consume {
                    tenant_id: tenant.id,
                    id: a.id,
                });
            }
            None => {
                let policies = decision.parties.iter().flat_map(|p| &p.determining);
                let rule = engine.approval_rule(policies);
                let group = rule.approvers.iter().find_map(|a| match a {
                    approval::Approvers::Group(g) => Some(format!("group:{g}")),
                    _ => None,
                });
                let assignee = group.unwrap_or_else(|| {
                    r.actor
                        .as_ref()
                        .map_or_else(|| ask.subject.id.clone(), |a| a.owner.clone())
                });
                // Who asked: never allowed to approve it (separation of duties).
                let requested_by = match ctx.actor.kind {
                    idv_core::audit::ActorKind::System | idv_core::audit::ActorKind::Anonymous => {
                        approval::Requester::default()
                    }
                    _ => approval::Requester {
                        credential: Some(ctx.actor.reference()),
                        name: Some(ctx.actor.name.clone()),
                    },
                };
                step = Some(ApprovalStep::Request(Box::new(Approval {
                    id: state.clock.new_id(),
                    tenant_id: tenant.id,
                    agent_id: r.actor.as_ref().map(|a| a.id),
                    subject: EntityRef {
                        type_name: ask.subject.type_name.clone(),
                        // Never store a bearer token: the agent stands for it.
                        id: match &r.actor {
                            Some(a) if ask.subject.type_name == "token" => a.id.to_string(),
                            _ => ask.subject.id.clone(),
                        },
                    },
                    action: ask.action.clone(),
                    resource: EntityRef {
                        type_name: ask.resource.type_name.clone(),
                        id: ask.resource.id.clone(),
                    },
                    context: Value::Object(ask.context.clone()),
                    fingerprint: fp,
                    reasons: reasons.clone(),
                    assignee,
                    requested_by,
                    rule,
                    approvals: vec![],
                    status: ApprovalStatus::Pending,
                    created_at: now,
                    expires_at: now.plus_secs(approval::PENDING_SECS),
                    decided_at: None,
                    decided_by: None,
                    comment: None,
                })));
            }
        }
    }
    let allowed = outcome == Outcome::Allow;
    let reason = decision.parties.iter().find_map(|p| p.reason.clone());
    let policies: Vec<&String> = decision.parties.iter().flat_map(|p| &p.determining).collect();
    let errors: Vec<&String> = decision.parties.iter().flat_map(|p| &p.errors).collect();
    let (target_type, target_id) = match &r.actor {
        Some(a) => (TargetType::Agent.into(), a.id.to_string()),
        None => (
            TargetKind::Entity(ask.subject.type_name.clone()),
            ask.subject.id.clone(),
        ),
    };
    let ctx = ctx.clone();
    let event = Draft {
        tenant_id: tenant.id,
        actor: ctx.actor,
        action: Action::AuthzDecision,
        target_type,
        target_id,
        outcome: if allowed {
            AuditOutcome::Success
        } else {
            AuditOutcome::Denied
        },
        reason: reason.clone(),
        request_id: ctx.request_id,
        details: json!({
            "action": ask.action,
            "resource": { "type": ask.resource.type_name, "id": ask.resource.id },
            "context": ask.context,
            "subject_properties": ask.subject.properties,
            "action_properties": ask.action_properties,
            "decision": outcome_name(&outcome),
            "policy_version": engine.version(),
            "parties": decision.parties,
            "token": r.token.as_ref().map(|(_, jti)| json!({ "jti": jti })),
            "approval": approval_note,
        }),
    };
    let usage = match (&r.actor, allowed) {
        (Some(a), true) => Some(Usage {
            tenant_id: tenant.id,
            agent_id: a.id,
            action: ask.action.clone(),
            // `agent` and `Agent` name one type: one usage row.
            resource_type: if is_agent_type(&ask.resource.type_name) {
                "Agent".to_owned()
            } else {
                ask.resource.type_name.clone()
            },
        }),
        _ => None,
    };
    let invoke = engine
        .compiled()
        .action_and_groups(&ask.action)
        .iter()
        .any(|a| a == "invoke");
    let edge = match (&r.actor, &r.callee) {
        (Some(a), Some(b)) if invoke => Some(EdgeUse {
            tenant_id: tenant.id,
            caller: a.id,
            callee: b.id,
            action: ask.action.clone(),
            allowed,
        }),
        _ => None,
    };
    let mut why = json!({
        "decision": outcome_name(&outcome),
        "policies": policies,
        "policy_version": engine.version(),
    });
    if let Value::Object(m) = &mut why {
        if let Some(reason) = &reason {
            m.insert("reason".into(), json!(reason));
        }
        if !errors.is_empty() {
            m.insert("errors".into(), json!(errors));
        }
        if decision.parties.len() > 1 {
            m.insert("parties".into(), json!(decision.parties));
        }
        if let Outcome::RequiresApproval(reasons) = &outcome {
            m.insert("reasons".into(), json!(reasons));
        }
    }
    Ok(Pending {
        answer: Answer {
            allowed,
            outcome: outcome_name(&outcome),
            context: why,
        },
        record: DecisionRecord {
            event,
            usage,
            edge,
            approval: step,
        },
    })
}

/// Records a prepared decision; the answer goes out only once it is durable.
async fn commit(state: &AppState, ctx: Context, p: Pending) -> Result<Answer, AppError> {
    let Pending { mut answer, record } = p;
    match state.store.decide(record, ctx).await {
        Ok(Some(a)) => {
            if a.status == ApprovalStatus::Pending
                && let Value::Object(m) = &mut answer.context
            {
                m.insert(
                    "approval".into(),
                    json!({ "id": a.id, "status": "pending", "assignee": a.assignee,
                            "expires_at": a.expires_at.to_rfc3339() }),
                );
            }
            if a.status == ApprovalStatus::Used
                && let Value::Object(m) = &mut answer.context
            {
                m.insert("approval".into(), json!({ "id": a.id, "status": "used" }));
            }
            Ok(answer)
        }
        Ok(None) => Ok(answer),
        // Someone used the approval first: this request is not approved.
        Err(StoreError::Conflict(d)) => Ok(Answer {
            allowed: false,
            outcome: "deny",
            context: json!({ "decision": "deny", "reason": "approval_used", "detail": d }),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Decides one request (AuthZEN evaluation) and records it.
pub async fn evaluate(
    state: &AppState,
    caller: &Caller,
    ask: &Ask,
    source_ip: Option<IpAddr>,
) -> Result<Answer, AppError> {
    caller.require(state, Permission::Decide, Action::AuthzDecision).await?;
    let engine = super::policies::engine(state, caller.tenant.id).await?;
    let p = prepare(state, &caller.tenant, &caller.context(), &engine, ask, source_ip).await?;
    commit(state, caller.context(), p).await
}

/// Decides a request the server asks itself on an agent's behalf (e.g.
/// whether it may have a database credential), recorded like any decision.
pub(crate) async fn decide_for(
    state: &AppState,
    tenant: &idv_core::tenant::Tenant,
    ctx: &Context,
    ask: &Ask,
    source_ip: Option<IpAddr>,
) -> Result<Answer, AppError> {
    let engine = super::policies::engine(state, tenant.id).await?;
    let p = prepare(state, tenant, ctx, &engine, ask, source_ip).await?;
    commit(state, ctx.clone(), p).await
}

/// AuthZEN 1.0 §7.1.2.1 evaluation semantics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Semantic {
    /// Every evaluation.
    ExecuteAll,
    /// Stop after the first deny.
    DenyOnFirstDeny,
    /// Stop after the first permit.
    PermitOnFirstPermit,
}

/// Why one item of a batch could not be decided, with the HTTP status the
/// same request alone would have had (AuthZEN 1.0 §7.2.1: answered in place).
#[derive(Clone, Debug)]
pub struct ItemError {
    /// 400 (malformed) or 422 (a value with no Cedar form).
    pub status: u16,
    /// What is wrong.
    pub message: String,
}

/// Decides many requests; `Err` items are malformed ones, answered in place
/// and not recorded (they decided nothing). All decisions are recorded in
/// one group commit.
pub async fn evaluate_many(
    state: &AppState,
    caller: &Caller,
    asks: Vec<Result<Ask, ItemError>>,
    semantic: Semantic,
    source_ip: Option<IpAddr>,
) -> Result<Vec<Result<Answer, ItemError>>, AppError> {
    caller.require(state, Permission::Decide, Action::AuthzDecision).await?;
    let engine = super::policies::engine(state, caller.tenant.id).await?;
    let mut prepared: Vec<Result<Pending, ItemError>> = Vec::with_capacity(asks.len());
    for ask in asks {
        let p = match ask {
            Err(e) => Err(e),
            Ok(a) => match prepare(state, &caller.tenant, &caller.context(), &engine, &a, source_ip).await {
                Ok(p) => Ok(p),
                Err(AppError::BadParameter { detail, .. }) => Err(ItemError {
                    status: 422,
                    message: detail,
                }),
                Err(e) => return Err(e),
            },
        };
        let stop = match (&p, semantic) {
            (_, Semantic::ExecuteAll) => false,
            (Ok(p), Semantic::DenyOnFirstDeny) => !p.answer.allowed,
            (Err(_), Semantic::DenyOnFirstDeny) => true,
            (Ok(p), Semantic::PermitOnFirstPermit) => p.answer.allowed,
            (Err(_), Semantic::PermitOnFirstPermit) => false,
        };
        prepared.push(p);
        if stop {
            break;
        }
    }
    let commits = prepared.into_iter().map(|p| async move {
        match p {
            Err(e) => Ok(Err(e)),
            Ok(p) => commit(state, caller.context(), p).await.map(Ok),
        }
    });
    futures_util::future::join_all(commits).await.into_iter().collect()
}

/// One request's outcome under the active and a candidate engine.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// Under the active version.
    pub active: &'static str,
    /// Under the candidate.
    pub candidate: &'static str,
    /// The candidate's determining policies.
    pub candidate_policies: Vec<String>,
}

/// Runs requests against a candidate engine and the active one, recording
/// nothing (a what-if, not a decision).
pub async fn compare(
    state: &AppState,
    caller: &Caller,
    candidate: Arc<Engine>,
    asks: &[Ask],
) -> Result<(i64, Vec<Comparison>), AppError> {
    let active = super::policies::engine(state, caller.tenant.id).await?;
    let now = state.clock.now();
    let mut out = Vec::with_capacity(asks.len());
    for (i, ask) in asks.iter().enumerate() {
        // A request that cannot be decided is named by its place in the list.
        let at = |e: AppError| match e {
            AppError::BadParameter { field, detail } => AppError::BadParameter {
                field: format!("requests[{i}].{field}"),
                detail: format!("`requests[{i}]`: {detail}"),
            },
            other => other,
        };
        let r = resolve(state, &caller.tenant, ask).await?;
        let a = run(&active, &r, ask, now, None).map_err(at)?;
        let c = run(&candidate, &r, ask, now, None).map_err(at)?;
        out.push(Comparison {
            active: outcome_name(&a.outcome),
            candidate: outcome_name(&c.outcome),
            candidate_policies: c.parties.iter().flat_map(|p| p.determining.clone()).collect(),
        });
    }
    Ok((active.version(), out))
}

/// The tenant's approvals (`status`, `assignee` filters), newest first.
pub async fn approvals(state: &AppState, caller: &Caller, f: &ApprovalFilter) -> Result<Vec<Approval>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::ApprovalList)
        .await?;
    match &caller.owner_scope {
        // An owner sees the approvals assigned to them.
        Some(owner) => {
            let mine = ApprovalFilter {
                assignee: Some(owner.clone()),
                ..f.clone()
            };
            Ok(state.store.approvals(caller.tenant.id, &mine).await?)
        }
        None => Ok(state.store.approvals(caller.tenant.id, f).await?),
    }
}

/// One approval.
pub async fn approval(state: &AppState, caller: &Caller, id: Uuid) -> Result<Approval, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::ApprovalGet)
        .await?;
    state.store.approval(caller.tenant.id, id).await?.ok_or_else(|| {
        AppError::Store(StoreError::NotFound {
            what: "approval",
            id: id.to_string(),
        })
    })
}

/// Approves or rejects a pending approval (audited with the approver).
pub async fn decide_approval(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    approve: bool,
    comment: Option<String>,
) -> Result<Approval, AppError> {
    let action = if approve {
        Action::ApprovalApprove
    } else {
        Action::ApprovalReject
    };
    caller.require(state, Permission::Approve, action).await?;
    if comment.as_ref().is_some_and(|c| c.len() > 1024) {
        return Err(AppError::BadParameter {
            field: "comment".into(),
            detail: "`comment`: at most 1024 characters".into(),
        });
    }
    // What separation of duties needs to know, gathered before the
    // command; the check itself runs in the commit against the approval as
    // it stands there.
    let current = approval(state, caller, id).await?;
    if caller.owner_scope.as_ref().is_some_and(|o| o != &current.assignee) {
        return Err(AppError::Store(StoreError::NotFound {
            what: "approval",
            id: id.to_string(),
        }));
    }
    let owner = match current.agent_id {
        Some(a) => state.store.agent(caller.tenant.id, a).await?.map(|a| a.owner),
        None => None,
    };
    let engine = super::policies::engine(state, caller.tenant.id).await?;
    let name = caller.principal.token_name.clone();
    let approver = approval::Approver {
        // The admin API takes admin tokens only: an agent's credential never
        // reaches this point (kept explicit should that ever change).
        is_agent: caller.actor().kind == idv_core::audit::ActorKind::Agent,
        groups: engine.groups_of("Human", &name),
        credential: caller.actor().reference(),
        name,
    };
    let decider = idv_store::DecidingApprover {
        approver,
        owner,
        comment,
    };
    match state
        .store
        .decide_approval(caller.tenant.id, id, approve, decider, caller.context())
        .await?
    {
        ApprovalDecision::Decided(a) => Ok(*a),
        ApprovalDecision::Refused(why) => Err(AppError::Forbidden(why)),
    }
}

/// An agent's communication edges (`calls`, `called_by`).
pub async fn graph(state: &AppState, caller: &Caller, agent_id: Uuid) -> Result<(Vec<Edge>, Vec<Edge>), AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentGraph)
        .await?;
    super::agents::existing(state, caller, agent_id).await?;
    let edges = state.store.agent_edges(caller.tenant.id, agent_id).await?;
    Ok(edges.into_iter().partition(|e| e.caller == agent_id))
}

/// What an agent may do: its roles, the actions they and the policies give
/// it, its own grants, and what it has used.
#[derive(Clone, Debug)]
pub struct AgentPermissions {
    /// Roles held directly, through its class or its groups.
    pub roles: BTreeSet<String>,
    /// What roles, grants and policies give it, by action.
    pub permitted: idv_policy::Permitted,
    /// Grants made to the agent itself.
    pub grants: Vec<idv_core::role::RoleGrant>,
    /// What it has used.
    pub usage: Vec<UsageRow>,
}

/// What an agent may do: roles and actions from the data, the actions of
/// the policies that name it or one of its roles, groups or its class, its
/// own grants, and what it has used.
pub async fn permissions(state: &AppState, caller: &Caller, agent_id: Uuid) -> Result<AgentPermissions, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentPermissions)
        .await?;
    let agent = super::agents::existing(state, caller, agent_id).await?;
    let engine = super::policies::engine(state, caller.tenant.id).await?;
    let (roles, actions) = engine.granted(&agent);
    let mut permitted = engine.permitted(&agent);
    // Roles' own actions are permits too (`role:<name>`); a role action the
    // active schema no longer declares is listed as granted all the same.
    for a in actions {
        permitted.conditional.remove(&a);
        permitted.actions.insert(a);
    }
    let grants = state
        .store
        .role_grants(caller.tenant.id, Some(&idv_core::role::GrantSubject::Agent(agent_id)))
        .await?;
    let usage = state.store.agent_usage(caller.tenant.id, agent_id).await?;
    Ok(AgentPermissions {
        roles,
        permitted,
        grants,
        usage,
    })
}
