//! Authorization data: policy versions, roles, grants, directory entities,
//! approvals, and what decisions leave behind (permission usage and the
//! agent communication graph). Every change to what decisions depend on
//! bumps the tenant's policy revision, so each node rebuilds its engine.

use std::collections::HashMap;

use idv_core::Timestamp;
use idv_core::approval::{Approval, ApprovalError, ApprovalStatus, Approver};
use idv_core::audit::{Action, Draft, TargetType};
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_core::policy_version::PolicyVersion;
use idv_core::role::{GrantSubject, Permission, Role, RoleGrant};
use serde::Serialize;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::row::{self, to_json};
use crate::{Dialect, Store, StoreError};

/// What one decision leaves behind besides its audit event.
#[derive(Clone, Debug)]
pub struct DecisionRecord {
    /// The decision's audit event.
    pub event: Draft,
    /// When allowed and the actor is an agent: the permission it used.
    pub usage: Option<Usage>,
    /// For `invoke` on an agent: the edge caller → callee.
    pub edge: Option<EdgeUse>,
    /// An approval step, if the decision needed one.
    pub approval: Option<ApprovalStep>,
}

/// One use of a permission.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Usage {
    /// Tenant.
    pub tenant_id: Uuid,
    /// The agent.
    pub agent_id: Uuid,
    /// The action.
    pub action: String,
    /// The resource type.
    pub resource_type: String,
}

/// One call (or attempted call) from agent to agent.
#[derive(Clone, Debug)]
pub struct EdgeUse {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Who calls.
    pub caller: Uuid,
    /// Who is called.
    pub callee: Uuid,
    /// For what.
    pub action: String,
    /// Whether it was allowed.
    pub allowed: bool,
}

/// What a decision does about approval.
#[derive(Clone, Debug)]
pub enum ApprovalStep {
    /// Ask for one (or return the pending one for the same request).
    Request(Box<Approval>),
    /// Use the approved one with this fingerprint (once); the decision fails
    /// with a conflict if it was used meanwhile.
    Consume {
        /// Tenant.
        tenant_id: Uuid,
        /// The approval.
        id: Uuid,
    },
}

/// A communication edge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    /// Who calls.
    pub caller: Uuid,
    /// Who is called.
    pub callee: Uuid,
    /// For what.
    pub action: String,
    /// Calls allowed.
    pub allowed: i64,
    /// Calls denied.
    pub denied: i64,
    /// First seen.
    pub first_seen: Timestamp,
    /// Last seen.
    pub last_seen: Timestamp,
}

/// Usage of one permission by one agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UsageRow {
    /// The action.
    pub action: String,
    /// The resource type.
    pub resource_type: String,
    /// How often it was allowed.
    pub count: i64,
    /// First use.
    pub first_used: Timestamp,
    /// Last use.
    pub last_used: Timestamp,
}

/// Records a change to what decisions depend on.
async fn bump_rev(conn: &mut AnyConnection, tenant_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO policy_state (tenant_id, active_version, rev) VALUES ($1, NULL, 1) \
         ON CONFLICT (tenant_id) DO UPDATE SET rev = policy_state.rev + 1",
    )
    .bind(tenant_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const VERSION_COLS: &str = "v.tenant_id, v.version, v.policies, v.schema_text, v.policy_ids, v.description, \
     v.created_at, v.created_by, v.activated_at, s.active_version";
const VERSION_FROM: &str = "policy_versions v LEFT JOIN policy_state s ON s.tenant_id = v.tenant_id";

fn version(r: &AnyRow) -> Result<PolicyVersion, StoreError> {
    let v: i64 = r.try_get("version")?;
    let active: Option<i64> = r.try_get("active_version")?;
    Ok(PolicyVersion {
        tenant_id: row::uuid(r, "tenant_id")?,
        version: v,
        policies: r.try_get("policies")?,
        schema: r.try_get("schema_text")?,
        policy_ids: row::json(r, "policy_ids")?,
        description: r.try_get("description")?,
        created_at: row::ts(r, "created_at")?,
        created_by: r.try_get("created_by")?,
        activated_at: row::opt_ts(r, "activated_at")?,
        active: active == Some(v),
    })
}

async fn load_version(conn: &mut AnyConnection, tenant_id: Uuid, v: i64) -> Result<PolicyVersion, StoreError> {
    let sql = format!("SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE v.tenant_id = $1 AND v.version = $2");
    match sqlx::query(&sql)
        .bind(tenant_id.to_string())
        .bind(v)
        .fetch_optional(&mut *conn)
        .await?
    {
        Some(r) => version(&r),
        None => Err(StoreError::NotFound {
            what: "policy version",
            id: v.to_string(),
        }),
    }
}

pub(crate) async fn create_version(
    conn: &mut AnyConnection,
    mut v: PolicyVersion,
    activate: bool,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS n FROM policy_versions WHERE tenant_id = $1")
        .bind(v.tenant_id.to_string())
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
    v.version = next;
    sqlx::query(
        "INSERT INTO policy_versions (tenant_id, version, policies, schema_text, policy_ids, description, \
         created_at, created_by, activated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
    )
    .bind(v.tenant_id.to_string())
    .bind(v.version)
    .bind(v.policies.clone())
    .bind(v.schema.clone())
    .bind(to_json(&v.policy_ids))
    .bind(v.description.clone())
    .bind(v.created_at.as_micros())
    .bind(v.created_by.clone())
    .execute(&mut *conn)
    .await?;
    let mut events = vec![with_details(
        draft(
            ctx,
            v.tenant_id,
            Action::PolicyVersionCreate,
            TargetType::PolicyVersion,
            v.version.to_string(),
        ),
        json!({ "policies": v.policy_ids, "description": v.description, "schema": v.schema.is_some() }),
    )];
    if activate {
        let (activated, more) = activate_version(conn, v.tenant_id, Some(v.version), now, ctx).await?;
        events.extend(more);
        return Ok((activated, events));
    }
    Ok((Applied::PolicyVersion(Box::new(v)), events))
}

/// Makes `version` active, or (`None`) rolls back to the version active
/// before the current one.
pub(crate) async fn activate_version(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    version: Option<i64>,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let current: Option<i64> = sqlx::query("SELECT active_version FROM policy_state WHERE tenant_id = $1")
        .bind(tenant_id.to_string())
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<Option<i64>, _>("active_version"))
        .transpose()?
        .flatten();
    let (target, action) = match version {
        Some(v) => (v, Action::PolicyVersionActivate),
        None => {
            let prev = sqlx::query(
                "SELECT version FROM policy_versions WHERE tenant_id = $1 AND activated_at IS NOT NULL \
                 AND version <> $2 ORDER BY activated_at DESC, version DESC LIMIT 1",
            )
            .bind(tenant_id.to_string())
            .bind(current.unwrap_or(0))
            .fetch_optional(&mut *conn)
            .await?;
            match prev {
                Some(r) => (r.try_get::<i64, _>("version")?, Action::PolicyVersionRollback),
                None => {
                    return Err(StoreError::Conflict("no earlier active version to roll back to".into()));
                }
            }
        }
    };
    // Existence (and tenant) check.
    load_version(conn, tenant_id, target).await?;
    if current == Some(target) {
        return Err(StoreError::Conflict(format!("version {target} is already active")));
    }
    sqlx::query("UPDATE policy_versions SET activated_at = $1 WHERE tenant_id = $2 AND version = $3")
        .bind(now.as_micros())
        .bind(tenant_id.to_string())
        .bind(target)
        .execute(&mut *conn)
        .await?;
    bump_rev(conn, tenant_id).await?;
    sqlx::query("UPDATE policy_state SET active_version = $1 WHERE tenant_id = $2")
        .bind(target)
        .bind(tenant_id.to_string())
        .execute(&mut *conn)
        .await?;
    let v = load_version(conn, tenant_id, target).await?;
    let ev = with_details(
        draft(ctx, tenant_id, action, TargetType::PolicyVersion, target.to_string()),
        json!({ "previous": current, "policies": v.policy_ids }),
    );
    Ok((Applied::PolicyVersion(Box::new(v)), vec![ev]))
}

pub(crate) async fn put_role(conn: &mut AnyConnection, r: Role, ctx: &Context) -> Result<Effect, StoreError> {
    let existed = sqlx::query("SELECT 1 FROM roles WHERE tenant_id = $1 AND name = $2")
        .bind(r.tenant_id.to_string())
        .bind(r.name.clone())
        .fetch_optional(&mut *conn)
        .await?
        .is_some();
    sqlx::query(
        "INSERT INTO roles (tenant_id, name, description, actions, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET description = excluded.description, \
         actions = excluded.actions, updated_at = excluded.updated_at",
    )
    .bind(r.tenant_id.to_string())
    .bind(r.name.clone())
    .bind(r.description.clone())
    .bind(to_json(&r.actions))
    .bind(r.updated_at.as_micros())
    .execute(&mut *conn)
    .await?;
    bump_rev(conn, r.tenant_id).await?;
    let ev = with_details(
        draft(
            ctx,
            r.tenant_id,
            if existed {
                Action::RoleUpdate
            } else {
                Action::RoleCreate
            },
            TargetType::Role,
            r.name.clone(),
        ),
        json!({ "actions": r.actions }),
    );
    Ok((Applied::Role(Box::new(r)), vec![ev]))
}

pub(crate) async fn delete_role(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    name: String,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let used: i64 = sqlx::query("SELECT COUNT(*) AS n FROM role_grants WHERE tenant_id = $1 AND role = $2")
        .bind(tenant_id.to_string())
        .bind(name.clone())
        .fetch_one(&mut *conn)
        .await?
        .try_get("n")?;
    if used > 0 {
        return Err(StoreError::Conflict(format!(
            "role `{name}` is held through {used} grant(s); delete them first"
        )));
    }
    let done = sqlx::query("DELETE FROM roles WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id.to_string())
        .bind(name.clone())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound { what: "role", id: name });
    }
    bump_rev(conn, tenant_id).await?;
    Ok((
        Applied::Done,
        vec![draft(ctx, tenant_id, Action::RoleDelete, TargetType::Role, name)],
    ))
}

pub(crate) const GRANT_COLS: &str =
    "id, tenant_id, subject_type, subject_id, role, action, condition, expires_at, created_at, created_by";

pub(crate) fn grant(r: &AnyRow) -> Result<RoleGrant, StoreError> {
    let kind: String = r.try_get("subject_type")?;
    let id: String = r.try_get("subject_id")?;
    let subject = GrantSubject::from_parts(&kind, &id)
        .ok_or_else(|| StoreError::Corrupt(format!("grant subject `{kind}` `{id}`")))?;
    let role: Option<String> = r.try_get("role")?;
    let action: Option<String> = r.try_get("action")?;
    let permission = match (role, action) {
        (Some(role), None) => Permission::Role(role),
        (None, Some(action)) => Permission::Action(action),
        _ => {
            return Err(StoreError::Corrupt(
                "a grant needs exactly one of role and action".into(),
            ));
        }
    };
    Ok(RoleGrant {
        id: row::uuid(r, "id")?,
        tenant_id: row::uuid(r, "tenant_id")?,
        subject,
        permission,
        condition: r.try_get("condition")?,
        expires_at: row::opt_ts(r, "expires_at")?,
        created_at: row::ts(r, "created_at")?,
        created_by: r.try_get("created_by")?,
    })
}

pub(crate) async fn create_grant(conn: &mut AnyConnection, g: RoleGrant, ctx: &Context) -> Result<Effect, StoreError> {
    if let Permission::Role(name) = &g.permission {
        let known = sqlx::query("SELECT 1 FROM roles WHERE tenant_id = $1 AND name = $2")
            .bind(g.tenant_id.to_string())
            .bind(name.clone())
            .fetch_optional(&mut *conn)
            .await?;
        if known.is_none() {
            return Err(StoreError::NotFound {
                what: "role",
                id: name.clone(),
            });
        }
    }
    if let GrantSubject::Agent(id) = g.subject {
        crate::agents::load_agent(conn, g.tenant_id, id).await?;
    }
    let (role, action) = match &g.permission {
        Permission::Role(r) => (Some(r.clone()), None),
        Permission::Action(a) => (None, Some(a.clone())),
    };
    sqlx::query(
        "INSERT INTO role_grants (id, tenant_id, subject_type, subject_id, role, action, condition, expires_at, \
         created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(g.id.to_string())
    .bind(g.tenant_id.to_string())
    .bind(g.subject.kind())
    .bind(g.subject.id())
    .bind(role)
    .bind(action)
    .bind(g.condition.clone())
    .bind(g.expires_at.map(Timestamp::as_micros))
    .bind(g.created_at.as_micros())
    .bind(g.created_by.clone())
    .execute(&mut *conn)
    .await?;
    bump_rev(conn, g.tenant_id).await?;
    let ev = with_details(
        draft(
            ctx,
            g.tenant_id,
            Action::GrantCreate,
            TargetType::Grant,
            g.id.to_string(),
        ),
        json!({
            "subject": g.subject, "permission": g.permission, "condition": g.condition,
            "expires_at": g.expires_at.map(Timestamp::to_rfc3339),
        }),
    );
    Ok((Applied::Grant(Box::new(g)), vec![ev]))
}

pub(crate) async fn delete_grant(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let g = crate::row::load_one(conn, ("role_grants", GRANT_COLS, "grant"), tenant_id, id, grant).await?;
    sqlx::query("DELETE FROM role_grants WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    bump_rev(conn, tenant_id).await?;
    let ev = with_details(
        draft(ctx, tenant_id, Action::GrantDelete, TargetType::Grant, id.to_string()),
        json!({ "subject": g.subject, "permission": g.permission }),
    );
    Ok((Applied::Done, vec![ev]))
}

pub(crate) async fn put_entities(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    entities: Vec<DirectoryEntity>,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    for e in &entities {
        sqlx::query(
            "INSERT INTO directory_entities (tenant_id, entity_type, entity_id, attrs, parents, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, entity_type, entity_id) DO UPDATE SET \
             attrs = excluded.attrs, parents = excluded.parents, updated_at = excluded.updated_at",
        )
        .bind(tenant_id.to_string())
        .bind(e.uid.type_name.clone())
        .bind(e.uid.id.clone())
        .bind(to_json(&e.attrs))
        .bind(to_json(&e.parents))
        .bind(now.as_micros())
        .execute(&mut *conn)
        .await?;
    }
    bump_rev(conn, tenant_id).await?;
    let uids: Vec<&EntityRef> = entities.iter().take(100).map(|e| &e.uid).collect();
    let ev = with_details(
        draft(
            ctx,
            tenant_id,
            Action::DirectoryPut,
            TargetType::Directory,
            format!("{} entities", entities.len()),
        ),
        json!({ "count": entities.len(), "entities": uids }),
    );
    Ok((Applied::Done, vec![ev]))
}

pub(crate) async fn delete_entity(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    uid: EntityRef,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let done =
        sqlx::query("DELETE FROM directory_entities WHERE tenant_id = $1 AND entity_type = $2 AND entity_id = $3")
            .bind(tenant_id.to_string())
            .bind(uid.type_name.clone())
            .bind(uid.id.clone())
            .execute(&mut *conn)
            .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "entity",
            id: format!("{}::{}", uid.type_name, uid.id),
        });
    }
    bump_rev(conn, tenant_id).await?;
    Ok((
        Applied::Done,
        vec![draft(
            ctx,
            tenant_id,
            Action::DirectoryDelete,
            TargetType::Directory,
            format!("{}::{}", uid.type_name, uid.id),
        )],
    ))
}

pub(crate) const APPROVAL_COLS: &str = "id, tenant_id, agent_id, subject_type, subject_id, action, resource_type, \
     resource_id, context, fingerprint, reasons, assignee, status, created_at, expires_at, decided_at, decided_by, comment, \
     requested_by, rule, approvals";

pub(crate) fn approval(r: &AnyRow) -> Result<Approval, StoreError> {
    let status: String = r.try_get("status")?;
    let agent: Option<String> = r.try_get("agent_id")?;
    Ok(Approval {
        id: row::uuid(r, "id")?,
        tenant_id: row::uuid(r, "tenant_id")?,
        agent_id: agent
            .map(|a| Uuid::parse_str(&a).map_err(|e| StoreError::Corrupt(format!("agent_id: {e}"))))
            .transpose()?,
        subject: EntityRef {
            type_name: r.try_get("subject_type")?,
            id: r.try_get("subject_id")?,
        },
        action: r.try_get("action")?,
        resource: EntityRef {
            type_name: r.try_get("resource_type")?,
            id: r.try_get("resource_id")?,
        },
        context: row::json(r, "context")?,
        fingerprint: r.try_get("fingerprint")?,
        reasons: row::json(r, "reasons")?,
        assignee: r.try_get("assignee")?,
        requested_by: row::json(r, "requested_by")?,
        rule: row::json(r, "rule")?,
        approvals: row::json(r, "approvals")?,
        status: ApprovalStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("approval status `{status}`")))?,
        created_at: row::ts(r, "created_at")?,
        expires_at: row::ts(r, "expires_at")?,
        decided_at: row::opt_ts(r, "decided_at")?,
        decided_by: r.try_get("decided_by")?,
        comment: r.try_get("comment")?,
    })
}

async fn save_approval(conn: &mut AnyConnection, a: &Approval) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE approvals SET status = $1, expires_at = $2, decided_at = $3, decided_by = $4, comment = $5, \
         approvals = $6 WHERE id = $7",
    )
    .bind(a.status.as_str())
    .bind(a.expires_at.as_micros())
    .bind(a.decided_at.map(Timestamp::as_micros))
    .bind(a.decided_by.clone())
    .bind(a.comment.clone())
    .bind(to_json(&a.approvals))
    .bind(a.id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn load_approval(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Approval, StoreError> {
    crate::row::load_one(conn, ("approvals", APPROVAL_COLS, "approval"), tenant_id, id, approval).await
}

/// A decision: its event, and any approval step (in a savepoint; usage and
/// edges of plain decisions are folded into the batch by the writer).
pub(crate) async fn decide(
    conn: &mut AnyConnection,
    rec: DecisionRecord,
    now: Timestamp,
) -> Result<Effect, StoreError> {
    let mut event = rec.event;
    let applied = match rec.approval {
        None => Applied::Done,
        Some(ApprovalStep::Consume { tenant_id, id }) => {
            let mut a = load_approval(conn, tenant_id, id).await?;
            a.consume(now)
                .map_err(|_| StoreError::Conflict(format!("approval `{id}` was already used or has expired")))?;
            save_approval(conn, &a).await?;
            event = with_details(event, json!({ "approval": { "id": id, "status": "used" } }));
            Applied::Approval(Box::new(a))
        }
        Some(ApprovalStep::Request(a)) => {
            let pending = sqlx::query(&format!(
                "SELECT {APPROVAL_COLS} FROM approvals WHERE tenant_id = $1 AND fingerprint = $2 \
                 AND status = 'pending' AND expires_at > $3 LIMIT 1"
            ))
            .bind(a.tenant_id.to_string())
            .bind(a.fingerprint.clone())
            .bind(now.as_micros())
            .fetch_optional(&mut *conn)
            .await?;
            let a = match pending {
                Some(r) => approval(&r)?,
                None => {
                    insert_approval(conn, &a).await?;
                    *a
                }
            };
            event = with_details(
                event,
                json!({ "approval": { "id": a.id, "status": a.status.as_str(), "assignee": a.assignee } }),
            );
            Applied::Approval(Box::new(a))
        }
    };
    Ok((applied, vec![event]))
}

async fn insert_approval(conn: &mut AnyConnection, a: &Approval) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO approvals ({APPROVAL_COLS}) VALUES \
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
    ))
    .bind(a.id.to_string())
    .bind(a.tenant_id.to_string())
    .bind(a.agent_id.map(|x| x.to_string()))
    .bind(a.subject.type_name.clone())
    .bind(a.subject.id.clone())
    .bind(a.action.clone())
    .bind(a.resource.type_name.clone())
    .bind(a.resource.id.clone())
    .bind(to_json(&a.context))
    .bind(a.fingerprint.clone())
    .bind(to_json(&a.reasons))
    .bind(a.assignee.clone())
    .bind(a.status.as_str())
    .bind(a.created_at.as_micros())
    .bind(a.expires_at.as_micros())
    .bind(a.decided_at.map(Timestamp::as_micros))
    .bind(a.decided_by.clone())
    .bind(a.comment.clone())
    .bind(to_json(&a.requested_by))
    .bind(to_json(&a.rule))
    .bind(to_json(&a.approvals))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub(crate) async fn decide_approval(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    approve: bool,
    decider: &DecidingApprover,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut a = load_approval(conn, tenant_id, id).await?;
    let action = if approve {
        Action::ApprovalApprove
    } else {
        Action::ApprovalReject
    };
    let ev = |a: &Approval| {
        with_details(
            draft(ctx, tenant_id, action, TargetType::Approval, id.to_string()),
            json!({
                "subject": a.subject, "action": a.action, "resource": a.resource, "assignee": a.assignee,
                "comment": decider.comment, "rule": a.rule, "approvals": a.approvals, "status": a.status.as_str(),
            }),
        )
    };
    // Checked against the approval as it stands in this transaction, so two
    // approvals by one person cannot both count.
    match a.decide(
        approve,
        &decider.approver,
        decider.owner.as_deref(),
        decider.comment.clone(),
        now,
    ) {
        Ok(()) => {}
        // Separation of duties: the refusal is recorded (denied, with its
        // reason) in this commit, and nothing else changes.
        Err(ApprovalError::Refused(r)) => {
            let mut denied = ev(&a);
            denied.outcome = idv_core::audit::Outcome::Denied;
            denied.reason = Some(r.reason().to_owned());
            let detail = r.to_string();
            return Ok((Applied::ApprovalRefused(detail), vec![denied]));
        }
        Err(e) => return Err(StoreError::Conflict(e.to_string())),
    }
    save_approval(conn, &a).await?;
    let done = ev(&a);
    Ok((Applied::Approval(Box::new(a)), vec![done]))
}

/// Who decides an approval, and what the decision needs to know of the
/// agent (its owner), gathered before the command runs.
#[derive(Clone, Debug)]
pub struct DecidingApprover {
    /// The person and credential.
    pub approver: Approver,
    /// The agent's owner, when the approval is for an agent.
    pub owner: Option<String>,
    /// Their comment.
    pub comment: Option<String>,
}

/// Columns of one `agent_usage` row as [`Tally::usage_sql`] writes it.
pub(crate) const USAGE_NCOLS: usize = 7;

/// Adds `rows` usage sums (markers numbered from `first`) to what is
/// recorded: the count grows, the first use stays.
fn usage_upsert(dialect: Dialect, rows: usize, first: usize) -> String {
    format!(
        "INSERT INTO agent_usage (tenant_id, agent_id, action, resource_type, count, first_used, last_used) \
         VALUES {} ON CONFLICT (tenant_id, agent_id, action, resource_type) \
         DO UPDATE SET count = agent_usage.count + excluded.count, last_used = excluded.last_used",
        row::placeholders(dialect, rows, USAGE_NCOLS, first)
    )
}

/// Usage and edges of a batch's plain decisions, summed, written once per
/// key at the end of the batch.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    usage: HashMap<Usage, i64>,
    edges: HashMap<(Uuid, Uuid, Uuid, String), (i64, i64)>,
    /// Decisions per tenant and action: (allowed, denied), written to the
    /// hour of the batch.
    hours: HashMap<(Uuid, String), (i64, i64)>,
}

/// Adds a batch's decisions to their tenant's, action's and hour's sums.
const HOURS_UPSERT: &str = "INSERT INTO decision_hours (tenant_id, hour, action, allowed, denied) \
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, hour, action) \
     DO UPDATE SET allowed = decision_hours.allowed + excluded.allowed, \
     denied = decision_hours.denied + excluded.denied";

const HOUR_MICROS: i64 = 3_600_000_000;

impl Tally {
    pub(crate) fn add(&mut self, rec: &DecisionRecord) {
        self.add_parts(rec.usage.as_ref(), rec.edge.as_ref());
        let e = &rec.event;
        if let Some(action) = e.details.get("action").and_then(serde_json::Value::as_str) {
            let n = self.hours.entry((e.tenant_id, action.to_owned())).or_default();
            if e.outcome == idv_core::audit::Outcome::Denied {
                n.1 += 1;
            } else {
                n.0 += 1;
            }
        }
    }

    /// [`Tally::add`] for a decision whose record went to its approval
    /// step: what it leaves behind, counted once that step held.
    pub(crate) fn add_parts(&mut self, usage: Option<&Usage>, edge: Option<&EdgeUse>) {
        if let Some(u) = usage {
            *self.usage.entry(u.clone()).or_default() += 1;
        }
        if let Some(e) = edge {
            let n = self
                .edges
                .entry((e.tenant_id, e.caller, e.callee, e.action.clone()))
                .or_default();
            if e.allowed {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
        }
    }

    /// One multi-row upsert of the usage sums, its markers numbered from
    /// `first`; `None` when no decision was allowed.
    pub(crate) fn usage_sql(&self, dialect: Dialect, first: usize) -> Option<String> {
        (!self.usage.is_empty()).then(|| usage_upsert(dialect, self.usage.len(), first))
    }

    /// The SQLite hot path's [`Tally::usage_sql`] and [`Tally::bind_usage`]:
    /// one cached one-row upsert per sum ([`crate::append`]).
    pub(crate) fn write_usage(&self, conn: &rusqlite::Connection, now: Timestamp) -> rusqlite::Result<()> {
        if !self.hours.is_empty() {
            let mut stmt = conn.prepare_cached(HOURS_UPSERT)?;
            let hour = now.as_micros().div_euclid(HOUR_MICROS);
            for ((tenant_id, action), (allowed, denied)) in &self.hours {
                stmt.execute(rusqlite::params![tenant_id.to_string(), hour, action, allowed, denied])?;
            }
        }
        if self.usage.is_empty() {
            return Ok(());
        }
        let mut stmt = conn.prepare_cached(&usage_upsert(Dialect::Sqlite, 1, 1))?;
        let t = now.as_micros();
        for (u, n) in &self.usage {
            stmt.execute(rusqlite::params![
                u.tenant_id.to_string(),
                u.agent_id.to_string(),
                u.action,
                u.resource_type,
                n,
                t,
                t
            ])?;
        }
        Ok(())
    }

    /// Binds what [`Tally::usage_sql`] asks for, in the same order.
    pub(crate) fn bind_usage<'q>(&self, mut q: row::AnyQuery<'q>, now: Timestamp) -> row::AnyQuery<'q> {
        let t = now.as_micros();
        for (u, n) in &self.usage {
            q = q
                .bind(u.tenant_id.to_string())
                .bind(u.agent_id.to_string())
                .bind(u.action.clone())
                .bind(u.resource_type.clone())
                .bind(*n)
                .bind(t)
                .bind(t);
        }
        q
    }

    /// Writes the sums; returns events for edges never seen before.
    pub(crate) async fn flush(
        self,
        conn: &mut AnyConnection,
        dialect: Dialect,
        now: Timestamp,
    ) -> Result<Vec<Draft>, StoreError> {
        let t = now.as_micros();
        if let Some(sql) = self.usage_sql(dialect, 1) {
            self.bind_usage(sqlx::query(&sql), now).execute(&mut *conn).await?;
        }
        let hour = t.div_euclid(HOUR_MICROS);
        for ((tenant_id, action), (allowed, denied)) in &self.hours {
            sqlx::query(HOURS_UPSERT)
                .bind(tenant_id.to_string())
                .bind(hour)
                .bind(action.clone())
                .bind(*allowed)
                .bind(*denied)
                .execute(&mut *conn)
                .await?;
        }
        let mut events = Vec::new();
        for ((tenant_id, caller, callee, action), (allowed, denied)) in self.edges {
            let inserted = sqlx::query(
                "INSERT INTO agent_edges (tenant_id, caller_id, callee_id, action, allowed, denied, first_seen, last_seen) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7) ON CONFLICT (tenant_id, caller_id, callee_id, action) DO NOTHING",
            )
            .bind(tenant_id.to_string())
            .bind(caller.to_string())
            .bind(callee.to_string())
            .bind(action.clone())
            .bind(allowed)
            .bind(denied)
            .bind(t)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if inserted == 1 {
                let mut d = draft(
                    &Context::system("pdp"),
                    tenant_id,
                    Action::AgentEdgeFirstSeen,
                    TargetType::Agent,
                    caller.to_string(),
                );
                d.details = json!({ "caller": caller, "callee": callee, "action": action });
                events.push(d);
                continue;
            }
            sqlx::query(
                "UPDATE agent_edges SET allowed = allowed + $1, denied = denied + $2, last_seen = $3 \
                 WHERE tenant_id = $4 AND caller_id = $5 AND callee_id = $6 AND action = $7",
            )
            .bind(allowed)
            .bind(denied)
            .bind(t)
            .bind(tenant_id.to_string())
            .bind(caller.to_string())
            .bind(callee.to_string())
            .bind(action)
            .execute(&mut *conn)
            .await?;
        }
        Ok(events)
    }
}

fn edge(r: &AnyRow) -> Result<Edge, StoreError> {
    Ok(Edge {
        caller: row::uuid(r, "caller_id")?,
        callee: row::uuid(r, "callee_id")?,
        action: r.try_get("action")?,
        allowed: r.try_get("allowed")?,
        denied: r.try_get("denied")?,
        first_seen: row::ts(r, "first_seen")?,
        last_seen: row::ts(r, "last_seen")?,
    })
}

/// Filter for [`Store::approvals`].
#[derive(Clone, Debug, Default)]
pub struct ApprovalFilter {
    /// Only this status.
    pub status: Option<ApprovalStatus>,
    /// Only those assigned to this owner.
    pub assignee: Option<String>,
    /// At most this many (newest first).
    pub limit: i64,
    /// Only those older than this one (keyset paging: the last id of the
    /// page before; ids are UUIDv7, so their order is creation order).
    pub before: Option<Uuid>,
}

impl Store {
    /// A tenant's active version (if any) and policy revision.
    pub async fn policy_state(&self, tenant_id: Uuid) -> Result<(Option<i64>, i64), StoreError> {
        let r = sqlx::query("SELECT active_version, rev FROM policy_state WHERE tenant_id = $1")
            .bind(tenant_id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        match r {
            None => Ok((None, 0)),
            Some(r) => Ok((r.try_get("active_version")?, r.try_get("rev")?)),
        }
    }

    /// One policy version.
    pub async fn policy_version(&self, tenant_id: Uuid, v: i64) -> Result<Option<PolicyVersion>, StoreError> {
        let sql = format!("SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE v.tenant_id = $1 AND v.version = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(v)
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(version).transpose()
    }

    /// A tenant's policy versions, newest first.
    pub async fn policy_versions(&self, tenant_id: Uuid) -> Result<Vec<PolicyVersion>, StoreError> {
        let sql = format!("SELECT {VERSION_COLS} FROM {VERSION_FROM} WHERE v.tenant_id = $1 ORDER BY v.version DESC");
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(version).collect()
    }

    /// A tenant's roles, by name.
    pub async fn roles(&self, tenant_id: Uuid) -> Result<Vec<Role>, StoreError> {
        let rows = sqlx::query(
            "SELECT tenant_id, name, description, actions, updated_at FROM roles WHERE tenant_id = $1 ORDER BY name",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Role {
                    tenant_id: row::uuid(r, "tenant_id")?,
                    name: r.try_get("name")?,
                    description: r.try_get("description")?,
                    actions: row::json(r, "actions")?,
                    updated_at: row::ts(r, "updated_at")?,
                })
            })
            .collect()
    }

    /// A tenant's grants (`subject`: only those to it), oldest first.
    pub async fn role_grants(
        &self,
        tenant_id: Uuid,
        subject: Option<&GrantSubject>,
    ) -> Result<Vec<RoleGrant>, StoreError> {
        self.select_grants(tenant_id, subject, None, None).await
    }

    /// A page of a tenant's grants (to `subject`, if given), oldest first:
    /// at most `limit`, after the grant `after` (keyset paging; ids are
    /// UUIDv7, so their order is creation order).
    pub async fn grants_page(
        &self,
        tenant_id: Uuid,
        subject: Option<&GrantSubject>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<RoleGrant>, StoreError> {
        self.select_grants(tenant_id, subject, after, Some(limit)).await
    }

    async fn select_grants(
        &self,
        tenant_id: Uuid,
        subject: Option<&GrantSubject>,
        after: Option<Uuid>,
        limit: Option<i64>,
    ) -> Result<Vec<RoleGrant>, StoreError> {
        let mut sql = format!("SELECT {GRANT_COLS} FROM role_grants WHERE tenant_id = $1");
        let mut n = 1;
        if subject.is_some() {
            sql.push_str(&format!(" AND subject_type = ${} AND subject_id = ${}", n + 1, n + 2));
            n += 2;
        }
        if after.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id > ${n}"));
        }
        sql.push_str(" ORDER BY id");
        if limit.is_some() {
            sql.push_str(&format!(" LIMIT ${}", n + 1));
        }
        let mut q = sqlx::query(&sql).bind(tenant_id.to_string());
        if let Some(s) = subject {
            q = q.bind(s.kind()).bind(s.id());
        }
        if let Some(a) = after {
            q = q.bind(a.to_string());
        }
        if let Some(l) = limit {
            q = q.bind(l);
        }
        let rows = q.fetch_all(&self.inner.read).await?;
        rows.iter().map(grant).collect()
    }

    /// A tenant's directory entities.
    pub async fn directory(&self, tenant_id: Uuid) -> Result<Vec<DirectoryEntity>, StoreError> {
        let rows = sqlx::query(
            "SELECT entity_type, entity_id, attrs, parents FROM directory_entities WHERE tenant_id = $1 \
             ORDER BY entity_type, entity_id",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DirectoryEntity {
                    tenant_id,
                    uid: EntityRef {
                        type_name: r.try_get("entity_type")?,
                        id: r.try_get("entity_id")?,
                    },
                    attrs: row::json(r, "attrs")?,
                    parents: row::json(r, "parents")?,
                })
            })
            .collect()
    }

    /// One approval.
    pub async fn approval(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Approval>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.inner.read)
        .await?;
        r.as_ref().map(approval).transpose()
    }

    /// The approved, unexpired approval for a request, if any.
    pub async fn usable_approval(
        &self,
        tenant_id: Uuid,
        fingerprint: &str,
        now: Timestamp,
    ) -> Result<Option<Approval>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {APPROVAL_COLS} FROM approvals WHERE tenant_id = $1 AND fingerprint = $2 \
             AND status = 'approved' AND expires_at > $3 ORDER BY created_at LIMIT 1"
        ))
        .bind(tenant_id.to_string())
        .bind(fingerprint)
        .bind(now.as_micros())
        .fetch_optional(&self.inner.read)
        .await?;
        r.as_ref().map(approval).transpose()
    }

    /// A tenant's approvals, newest first.
    pub async fn approvals(&self, tenant_id: Uuid, f: &ApprovalFilter) -> Result<Vec<Approval>, StoreError> {
        let mut sql = format!("SELECT {APPROVAL_COLS} FROM approvals WHERE tenant_id = $1");
        let mut n = 1;
        if f.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if f.assignee.is_some() {
            n += 1;
            sql.push_str(&format!(" AND assignee = ${n}"));
        }
        if f.before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND id < ${n}"));
        }
        sql.push_str(&format!(" ORDER BY id DESC LIMIT ${}", n + 1));
        let mut q = sqlx::query(&sql).bind(tenant_id.to_string());
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some(a) = &f.assignee {
            q = q.bind(a.clone());
        }
        if let Some(b) = f.before {
            q = q.bind(b.to_string());
        }
        let rows = q.bind(f.limit).fetch_all(&self.inner.read).await?;
        rows.iter().map(approval).collect()
    }

    /// The communication edges an agent is on (as caller or callee).
    pub async fn agent_edges(&self, tenant_id: Uuid, agent_id: Uuid) -> Result<Vec<Edge>, StoreError> {
        let rows = sqlx::query(
            "SELECT caller_id, callee_id, action, allowed, denied, first_seen, last_seen FROM agent_edges \
             WHERE tenant_id = $1 AND (caller_id = $2 OR callee_id = $2) ORDER BY last_seen DESC",
        )
        .bind(tenant_id.to_string())
        .bind(agent_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter().map(edge).collect()
    }

    /// What an agent has used, most recent first.
    pub async fn agent_usage(&self, tenant_id: Uuid, agent_id: Uuid) -> Result<Vec<UsageRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT action, resource_type, count, first_used, last_used FROM agent_usage \
             WHERE tenant_id = $1 AND agent_id = $2 ORDER BY last_used DESC, action",
        )
        .bind(tenant_id.to_string())
        .bind(agent_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    action: r.try_get("action")?,
                    resource_type: r.try_get("resource_type")?,
                    count: r.try_get("count")?,
                    first_used: row::ts(r, "first_used")?,
                    last_used: row::ts(r, "last_used")?,
                })
            })
            .collect()
    }
}

/// What deciding an approval came to.
#[derive(Clone, Debug)]
pub enum ApprovalDecision {
    /// Approved or rejected: the approval after the change.
    Decided(Box<Approval>),
    /// This approver may not decide it (separation of duties): the refusal
    /// was audited; why.
    Refused(String),
}

typed_writes! {
    /// Stores a policy version (numbered by the store), made active at once
    /// if `activate`.
    fn create_policy_version(version: PolicyVersion, activate: bool) -> PolicyVersion {
        Command::CreatePolicyVersion { version: Box::new(version), activate } => Applied::PolicyVersion(v) => *v
    }

    /// Makes a version active (`Some`), or rolls back (`None`) to the one
    /// active before the current one.
    fn activate_policy_version(tenant_id: Uuid, version: Option<i64>) -> PolicyVersion {
        Command::ActivatePolicyVersion { tenant_id, version } => Applied::PolicyVersion(v) => *v
    }

    /// Creates or replaces a role.
    fn put_role(role: Role) -> Role {
        Command::PutRole(role) => Applied::Role(r) => *r
    }

    /// Deletes a role no grant uses.
    fn delete_role(tenant_id: Uuid, name: String) {
        Command::DeleteRole { tenant_id, name }
    }

    /// Grants a role or a single permission.
    fn create_grant(grant: RoleGrant) -> RoleGrant {
        Command::CreateGrant(grant) => Applied::Grant(g) => *g
    }

    /// Removes a grant.
    fn delete_grant(tenant_id: Uuid, id: Uuid) {
        Command::DeleteGrant { tenant_id, id }
    }

    /// Creates or replaces directory entities, all or nothing.
    fn put_entities(tenant_id: Uuid, entities: Vec<DirectoryEntity>) {
        Command::PutEntities { tenant_id, entities }
    }

    /// Removes a directory entity.
    fn delete_entity(tenant_id: Uuid, uid: EntityRef) {
        Command::DeleteEntity { tenant_id, uid }
    }

    /// Records an authorization decision; answers its approval, if the
    /// decision asked for one or used one.
    fn decide(record: DecisionRecord) -> Option<Approval> {
        Command::Decide(Box::new(record)) =>
            Applied::Approval(a) => Some(*a),
            Applied::Done => None,
    }

    /// Approves (`approve`) or rejects a pending approval as `decider`.
    fn decide_approval(tenant_id: Uuid, id: Uuid, approve: bool, decider: DecidingApprover) -> ApprovalDecision {
        Command::DecideApproval { tenant_id, id, approve, decider: Box::new(decider) } =>
            Applied::Approval(a) => ApprovalDecision::Decided(a),
            Applied::ApprovalRefused(why) => ApprovalDecision::Refused(why),
    }
}
