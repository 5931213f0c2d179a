//! Just-in-time access requests: stored, decided in one commit with the
//! grant an approval makes, and listed.

use idv_core::Timestamp;
use idv_core::access_request::{AccessRequest, AccessRequestError, Status};
use idv_core::audit::{Action, Draft, Outcome, TargetType};
use idv_core::role::Permission;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::read::{Arg, Sql};
use crate::row::{corrupt, load_one, opt_ts, opt_uuid, ts, uuid};
use crate::{Store, StoreError};

const COLS: &str = "id, tenant_id, agent_id, permission_type, permission, justification, duration_secs, \
     requested_by, status, created_at, expires_at, decided_by, decided_at, comment, grant_id, grant_expires_at";

fn access_request(row: &AnyRow) -> Result<AccessRequest, StoreError> {
    let name: String = row.try_get("permission")?;
    let kind: String = row.try_get("permission_type")?;
    let permission = match kind.as_str() {
        "role" => Permission::Role(name),
        "action" => Permission::Action(name),
        other => return Err(corrupt("permission_type", other)),
    };
    let status: String = row.try_get("status")?;
    Ok(AccessRequest {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        agent_id: uuid(row, "agent_id")?,
        permission,
        justification: row.try_get("justification")?,
        duration_secs: row.try_get("duration_secs")?,
        requested_by: row.try_get("requested_by")?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        created_at: ts(row, "created_at")?,
        expires_at: ts(row, "expires_at")?,
        decided_by: row.try_get("decided_by")?,
        decided_at: opt_ts(row, "decided_at")?,
        comment: row.try_get("comment")?,
        grant_id: opt_uuid(row, "grant_id")?,
        grant_expires_at: opt_ts(row, "grant_expires_at")?,
    })
}

fn permission_parts(p: &Permission) -> (&'static str, String) {
    match p {
        Permission::Role(n) => ("role", n.clone()),
        Permission::Action(n) => ("action", n.clone()),
    }
}

fn event(ctx: &Context, r: &AccessRequest, action: Action) -> Draft {
    with_details(
        draft(ctx, r.tenant_id, action, TargetType::AccessRequest, r.id.to_string()),
        json!({
            "agent_id": r.agent_id, "permission": r.permission, "justification": r.justification,
            "duration_secs": r.duration_secs, "requested_by": r.requested_by, "status": r.status.as_str(),
            "comment": r.comment, "grant_id": r.grant_id,
            "grant_expires_at": r.grant_expires_at.map(Timestamp::to_rfc3339),
        }),
    )
}

pub(crate) async fn create(conn: &mut AnyConnection, r: AccessRequest, ctx: &Context) -> Result<Effect, StoreError> {
    // The agent exists in the tenant (and is not retired: checked by the
    // use case, which read it under the caller's scope).
    crate::agents::load_agent(conn, r.tenant_id, r.agent_id).await?;
    let (kind, name) = permission_parts(&r.permission);
    sqlx::query(&format!(
        "INSERT INTO access_requests ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
         $15, $16)"
    ))
    .bind(r.id.to_string())
    .bind(r.tenant_id.to_string())
    .bind(r.agent_id.to_string())
    .bind(kind)
    .bind(name)
    .bind(r.justification.clone())
    .bind(r.duration_secs)
    .bind(r.requested_by.clone())
    .bind(r.status.as_str())
    .bind(r.created_at.as_micros())
    .bind(r.expires_at.as_micros())
    .bind(r.decided_by.clone())
    .bind(r.decided_at.map(Timestamp::as_micros))
    .bind(r.comment.clone())
    .bind(r.grant_id.map(|g| g.to_string()))
    .bind(r.grant_expires_at.map(Timestamp::as_micros))
    .execute(&mut *conn)
    .await?;
    let ev = event(ctx, &r, Action::AccessRequestCreate);
    Ok((Applied::AccessRequest(Box::new(r)), vec![ev]))
}

async fn save(conn: &mut AnyConnection, r: &AccessRequest) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE access_requests SET status = $1, decided_by = $2, decided_at = $3, comment = $4, grant_id = $5, \
         grant_expires_at = $6 WHERE id = $7",
    )
    .bind(r.status.as_str())
    .bind(r.decided_by.clone())
    .bind(r.decided_at.map(Timestamp::as_micros))
    .bind(r.comment.clone())
    .bind(r.grant_id.map(|g| g.to_string()))
    .bind(r.grant_expires_at.map(Timestamp::as_micros))
    .bind(r.id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// What a decision or withdrawal is: approve, deny or withdraw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Approve: the grant is made.
    Approve,
    /// Deny.
    Deny,
    /// Withdraw (the requester).
    Withdraw,
}

impl Verdict {
    /// The audit action.
    pub fn action(self) -> Action {
        match self {
            Verdict::Approve => Action::AccessRequestApprove,
            Verdict::Deny => Action::AccessRequestDeny,
            Verdict::Withdraw => Action::AccessRequestWithdraw,
        }
    }
}

/// A decision on a request, by whom.
#[derive(Clone, Debug)]
pub struct Decision {
    /// Approve, deny or withdraw.
    pub verdict: Verdict,
    /// Who (as audited).
    pub by: String,
    /// Their comment.
    pub comment: Option<String>,
    /// The id of the grant an approval makes.
    pub grant_id: Uuid,
}

/// Decides (or withdraws) a request as it stands in this transaction, so
/// two decisions cannot both take effect. An approval makes its grant in
/// the same commit (one `access_request.approve` and one `grant.create`
/// event). A refusal of the person (deciding their own request,
/// withdrawing someone else's) is recorded as denied and changes nothing.
pub(crate) async fn decide(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    d: Decision,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let what = ("access_requests", COLS, "access request");
    let mut r = load_one(conn, what, tenant_id, id, access_request).await?;
    let verdict = d.verdict;
    let done = match verdict {
        Verdict::Approve | Verdict::Deny => r.decide(verdict == Verdict::Approve, &d.by, d.comment, d.grant_id, now),
        Verdict::Withdraw => r.withdraw(&d.by, now).map(|()| None),
    };
    let grant = match done {
        Ok(g) => g,
        Err(e) if e.is_refusal() => {
            let mut denied = event(ctx, &r, verdict.action());
            denied.outcome = Outcome::Denied;
            denied.reason = Some(e.to_string());
            return Ok((Applied::AccessRequestRefused(e.to_string()), vec![denied]));
        }
        Err(AccessRequestError::Invalid { field, detail }) => {
            return Err(StoreError::Invalid(idv_core::agent::AgentError::Invalid {
                field: field.to_owned(),
                reason: detail,
            }));
        }
        Err(e) => return Err(StoreError::Conflict(e.to_string())),
    };
    if grant.is_some() {
        // What the request named may have changed since it was made.
        let agent = crate::agents::load_agent(conn, tenant_id, r.agent_id).await?;
        if agent.status == idv_core::lifecycle::Status::Retired {
            return Err(StoreError::Conflict(
                "the agent was retired since the request was made: deny it".into(),
            ));
        }
    }
    save(conn, &r).await?;
    let mut events = vec![event(ctx, &r, verdict.action())];
    if let Some(g) = grant {
        let (_, mut made) = match crate::authz::create_grant(conn, g, ctx).await {
            Err(StoreError::NotFound { what: "role", id }) => {
                return Err(StoreError::Conflict(format!(
                    "the role `{id}` was deleted since the request was made: deny it"
                )));
            }
            other => other?,
        };
        events.append(&mut made);
    }
    Ok((Applied::AccessRequest(Box::new(r)), events))
}

/// Filters for [`Store::access_requests`]; every field narrows.
#[derive(Clone, Debug, Default)]
pub struct AccessRequestFilter {
    /// Only in this status.
    pub status: Option<Status>,
    /// Only for this agent.
    pub agent_id: Option<Uuid>,
    /// Only for agents this person owns.
    pub owner: Option<String>,
    /// Keyset cursor: only ids before this one (newest first).
    pub before: Option<Uuid>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// One access request.
    pub async fn access_request(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<AccessRequest>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {COLS} FROM access_requests WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.inner.read)
        .await?;
        r.as_ref().map(access_request).transpose()
    }

    /// A tenant's access requests matching `f`, newest first.
    pub async fn access_requests(
        &self,
        tenant_id: Uuid,
        f: &AccessRequestFilter,
    ) -> Result<Vec<AccessRequest>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {COLS} FROM access_requests WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(s) = f.status {
            sql.and("status = ?", vec![Arg::Text(s.as_str().into())]);
        }
        if let Some(a) = f.agent_id {
            sql.and("agent_id = ?", vec![Arg::Text(a.to_string())]);
        }
        if let Some(o) = &f.owner {
            sql.and(
                "agent_id IN (SELECT id FROM agents WHERE tenant_id = ? AND owner = ?)",
                vec![Arg::Text(tenant_id.to_string()), Arg::Text(o.clone())],
            );
        }
        if let Some(b) = f.before {
            sql.and("id < ?", vec![Arg::Text(b.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(f.limit));
        sql.push(&format!(" ORDER BY id DESC LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(access_request).collect()
    }
}

/// How a decision came out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessRequestOutcome {
    /// Done: the request as it now stands.
    Done(Box<AccessRequest>),
    /// Refused (separation of duties), recorded as denied.
    Refused(String),
}

typed_writes! {
    /// Records a new request.
    fn create_access_request(request: AccessRequest) -> AccessRequest {
        Command::CreateAccessRequest(Box::new(request)) => Applied::AccessRequest(r) => *r
    }

    /// Approves, denies or withdraws a request (an approval makes its
    /// grant, `grant_id`, in the same commit).
    fn decide_access_request(tenant_id: Uuid, id: Uuid, decision: Decision) -> AccessRequestOutcome {
        Command::DecideAccessRequest { tenant_id, id, decision }
            => Applied::AccessRequest(r) => AccessRequestOutcome::Done(r),
            Applied::AccessRequestRefused(why) => AccessRequestOutcome::Refused(why)
    }
}
