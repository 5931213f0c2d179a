//! Agents: registration (all or nothing), metadata changes, lifecycle
//! transitions and what they cascade to, TTL expiry, and the registry reads.

use std::collections::HashSet;

use idv_core::agent::{Agent, AgentChanges, AgentError, Environment, OwnerReassignment, Parent};
use idv_core::audit::{Action, TargetType};
use idv_core::lifecycle::{Expiry, Status, Transition, TransitionPlan};
use idv_core::rotation::Scope;
use idv_core::{Clock, Timestamp};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::jobs::{Job, take_job};
use crate::read::{Arg, Sql};
use crate::row::{
    self, AnyQuery, chunk_rows, corrupt, in_list, json, load_one, marker, opt_ts, placeholders, to_json, ts, uuid,
};
use crate::{Dialect, Store, StoreError, credentials, leases, rotation};

/// Retire an ephemeral agent whose TTL has ended.
pub const JOB_EXPIRE_AGENT: &str = "agent.expire";

/// Filters for listing agents; every field narrows the result.
#[derive(Clone, Debug, Default)]
pub struct AgentFilter {
    /// Only in this status.
    pub status: Option<Status>,
    /// Only with this owner.
    pub owner: Option<String>,
    /// Only in this environment.
    pub environment: Option<Environment>,
    /// Only of this class.
    pub class: Option<String>,
    /// Only with every one of these labels.
    pub labels: Vec<(String, String)>,
    /// Only whose name starts with this.
    pub name_prefix: Option<String>,
    /// Only agents past their time to live at this instant, not retired.
    pub expired_before: Option<Timestamp>,
    /// The order, and what the cursor below means.
    pub order: AgentOrder,
    /// Keyset cursor for the creation orders: only ids after this one (in
    /// the order's direction).
    pub after: Option<Uuid>,
    /// Keyset cursor for the name orders: only names after this one (in the
    /// order's direction; names are unique in a tenant).
    pub after_name: Option<String>,
    /// At most this many.
    pub limit: i64,
}

/// The orders an agent list comes in; each is an index walk, so a page
/// costs the same at any depth.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AgentOrder {
    /// Oldest first (ids are time-ordered).
    #[default]
    Created,
    /// Newest first.
    CreatedDesc,
    /// By name, A to Z.
    Name,
    /// By name, Z to A.
    NameDesc,
}

impl AgentOrder {
    /// The query-string name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentOrder::Created => "created",
            AgentOrder::CreatedDesc => "-created",
            AgentOrder::Name => "name",
            AgentOrder::NameDesc => "-name",
        }
    }

    /// Parses [`AgentOrder::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Created, Self::CreatedDesc, Self::Name, Self::NameDesc]
            .into_iter()
            .find(|o| o.as_str() == s)
    }

    /// Whether the order is by name (the cursor is a name).
    pub fn by_name(self) -> bool {
        matches!(self, AgentOrder::Name | AgentOrder::NameDesc)
    }
}

pub(crate) const AGENT_COLS: &str = "id, tenant_id, name, owner, purpose, environment, team, labels, \
     capabilities, class, parent_type, parent_id, depends_on, status, status_reason, \
     status_changed_at, status_changed_by, expires_at, created_at, created_by, updated_at, version, grants, \
     tokens_not_before";

pub(crate) const AGENT_NCOLS: usize = 24;

pub(crate) fn agent(row: &AnyRow) -> Result<Agent, StoreError> {
    let environment: Option<String> = row.try_get("environment")?;
    let parent_type: Option<String> = row.try_get("parent_type")?;
    let parent_id: Option<String> = row.try_get("parent_id")?;
    let parent = match (parent_type.as_deref(), parent_id) {
        (Some("agent"), Some(id)) => Some(Parent::Agent(
            Uuid::parse_str(&id).map_err(|e| corrupt("parent_id", e))?,
        )),
        (Some("human"), Some(id)) => Some(Parent::Human(id)),
        (None, None) => None,
        _ => return Err(corrupt("parent", "inconsistent parent columns")),
    };
    let status: String = row.try_get("status")?;
    Ok(Agent {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        purpose: row.try_get("purpose")?,
        environment: environment
            .map(|e| e.parse::<Environment>().map_err(|e| corrupt("environment", e)))
            .transpose()?,
        team: row.try_get("team")?,
        labels: json(row, "labels")?,
        capabilities: json(row, "capabilities")?,
        class: row.try_get("class")?,
        parent,
        depends_on: json(row, "depends_on")?,
        status: status.parse::<Status>().map_err(|e| corrupt("status", e))?,
        status_reason: row.try_get("status_reason")?,
        status_changed_at: ts(row, "status_changed_at")?,
        status_changed_by: row.try_get("status_changed_by")?,
        expires_at: opt_ts(row, "expires_at")?,
        tokens_not_before: opt_ts(row, "tokens_not_before")?,
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: ts(row, "updated_at")?,
        version: row.try_get("version")?,
        grants: json(row, "grants")?,
    })
}

/// Binds an agent's columns in [`AGENT_COLS`] order.
pub(crate) fn bind_agent<'q>(q: AnyQuery<'q>, a: &Agent) -> AnyQuery<'q> {
    let (parent_type, parent_id) = match &a.parent {
        Some(Parent::Agent(id)) => (Some("agent"), Some(id.to_string())),
        Some(Parent::Human(h)) => (Some("human"), Some(h.clone())),
        None => (None, None),
    };
    q.bind(a.id.to_string())
        .bind(a.tenant_id.to_string())
        .bind(a.name.clone())
        .bind(a.owner.clone())
        .bind(a.purpose.clone())
        .bind(a.environment.map(|e| e.as_str().to_owned()))
        .bind(a.team.clone())
        .bind(to_json(&a.labels))
        .bind(to_json(&a.capabilities))
        .bind(a.class.clone())
        .bind(parent_type.map(str::to_owned))
        .bind(parent_id)
        .bind(to_json(&a.depends_on))
        .bind(a.status.as_str().to_owned())
        .bind(a.status_reason.clone())
        .bind(a.status_changed_at.as_micros())
        .bind(a.status_changed_by.clone())
        .bind(a.expires_at.map(Timestamp::as_micros))
        .bind(a.created_at.as_micros())
        .bind(a.created_by.clone())
        .bind(a.updated_at.as_micros())
        .bind(a.version)
        .bind(to_json(&a.grants))
        .bind(a.tokens_not_before.map(Timestamp::as_micros))
}

pub(crate) async fn create(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    agents: Vec<Agent>,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut seen = HashSet::new();
    for a in &agents {
        if !seen.insert(a.name.as_str()) {
            return Err(StoreError::Conflict(format!(
                "the name `{}` appears more than once in the request",
                a.name
            )));
        }
    }
    let names: Vec<&str> = agents.iter().map(|a| a.name.as_str()).collect();
    if let Some(name) = taken_names(conn, dialect, tenant_id, &names).await?.first() {
        return Err(StoreError::Conflict(format!(
            "an agent named `{name}` already exists in this tenant (names of retired agents stay reserved)"
        )));
    }
    let ids: HashSet<Uuid> = agents.iter().map(|a| a.id).collect();
    check_references(conn, dialect, tenant_id, agents.iter(), &ids).await?;
    for chunk in agents.chunks(chunk_rows(AGENT_NCOLS)) {
        let sql = format!(
            "INSERT INTO agents ({AGENT_COLS}) VALUES {}",
            placeholders(dialect, chunk.len(), AGENT_NCOLS, 1)
        );
        let mut q = sqlx::query(&sql);
        for a in chunk {
            q = bind_agent(q, a);
        }
        q.execute(&mut *conn).await?;
    }
    insert_labels(conn, dialect, &agents).await?;
    let expiring: Vec<&Agent> = agents.iter().filter(|a| a.expires_at.is_some()).collect();
    for chunk in expiring.chunks(chunk_rows(5)) {
        let sql = format!(
            "INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES {}",
            placeholders(dialect, chunk.len(), 5, 1)
        );
        let mut q = sqlx::query(&sql);
        for a in chunk {
            q = q
                .bind(clock.new_id().to_string())
                .bind(tenant_id.to_string())
                .bind(JOB_EXPIRE_AGENT)
                .bind(a.id.to_string())
                .bind(a.expires_at.map(Timestamp::as_micros).unwrap_or_default());
        }
        q.execute(&mut *conn).await?;
    }
    let drafts = agents
        .iter()
        .map(|a| {
            with_details(
                draft(ctx, tenant_id, Action::AgentCreate, TargetType::Agent, a.id.to_string()),
                json!({
                    "name": a.name, "owner": a.owner, "environment": a.environment.map(|e| e.as_str()),
                    "class": a.class, "expires_at": a.expires_at.map(|e| e.to_rfc3339()),
                }),
            )
        })
        .collect();
    Ok((Applied::Agents(agents), drafts))
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per command; a struct would only rename them"
)]
pub(crate) async fn update(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    id: Uuid,
    if_match: Option<i64>,
    changes: AgentChanges,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut agent = load_agent(conn, tenant_id, id).await?;
    let old_class = agent.class.clone();
    if let Some(v) = if_match
        && v != agent.version
    {
        return Err(StoreError::PreconditionFailed { current: agent.version });
    }
    if agent.status == Status::Retired {
        return Err(StoreError::Conflict(
            "the agent is retired; its record is kept read-only for forensics".into(),
        ));
    }
    let old_version = agent.version;
    let old_name = agent.name.clone();
    let changed = changed_fields(&changes);
    let labels_changed = changes.labels.is_some();
    changes.apply(&mut agent, now)?;
    if agent.name != old_name
        && !taken_names(conn, dialect, tenant_id, &[agent.name.as_str()])
            .await?
            .is_empty()
    {
        return Err(StoreError::Conflict(format!(
            "an agent named `{}` already exists in this tenant",
            agent.name
        )));
    }
    check_references(conn, dialect, tenant_id, std::iter::once(&agent), &HashSet::new()).await?;
    save_agent(conn, &agent, old_version).await?;
    if labels_changed {
        sqlx::query("DELETE FROM agent_labels WHERE agent_id = $1")
            .bind(id.to_string())
            .execute(&mut *conn)
            .await?;
        insert_labels(conn, dialect, std::slice::from_ref(&agent)).await?;
    }
    if agent.class != old_class {
        // Another class may mean another rotation policy.
        rotation::reschedule(conn, dialect, tenant_id, &Scope::Agent(id), clock).await?;
    }
    let d = with_details(
        draft(ctx, tenant_id, Action::AgentUpdate, TargetType::Agent, id.to_string()),
        json!({ "changed": changed, "version": agent.version }),
    );
    Ok((Applied::Agent(Box::new(agent)), vec![d]))
}

/// Moves every agent [`OwnerReassignment::applies_to`] to the new owner:
/// one event per agent moved, none when nothing was the old owner's.
pub(crate) async fn reassign_owner(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    r: OwnerReassignment,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND owner = $2 ORDER BY id");
    let rows = sqlx::query(&sql)
        .bind(tenant_id.to_string())
        .bind(r.from.clone())
        .fetch_all(&mut *conn)
        .await?;
    let (mut moved, mut drafts) = (Vec::new(), Vec::new());
    for row in &rows {
        let mut a = agent(row)?;
        if !r.applies_to(&a) {
            continue;
        }
        let old_version = a.version;
        r.apply(&mut a, now);
        save_agent(conn, &a, old_version).await?;
        drafts.push(with_details(
            draft(
                ctx,
                tenant_id,
                Action::AgentReassignOwner,
                TargetType::Agent,
                a.id.to_string(),
            ),
            json!({ "from": r.from, "to": r.to, "version": a.version }),
        ));
        moved.push(a);
    }
    Ok((Applied::Agents(moved), drafts))
}

fn changed_fields(c: &AgentChanges) -> Vec<&'static str> {
    let mut v = Vec::new();
    let mut add = |present: bool, name: &'static str| {
        if present {
            v.push(name);
        }
    };
    add(c.name.is_some(), "name");
    add(c.owner.is_some(), "owner");
    add(c.purpose.is_some(), "purpose");
    add(c.environment.is_some(), "environment");
    add(c.team.is_some(), "team");
    add(c.labels.is_some(), "labels");
    add(c.capabilities.is_some(), "capabilities");
    add(c.class.is_some(), "class");
    add(c.depends_on.is_some(), "depends_on");
    v
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site per command; a struct would only rename them"
)]
pub(crate) async fn transition(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    transition: Transition,
    reason: String,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
    cause: Option<&str>,
) -> Result<Effect, StoreError> {
    let mut agent = load_agent(conn, tenant_id, id).await?;
    // The rule (what the transition cascades to) is the core's; this
    // carries it out in the transaction.
    let plan = TransitionPlan::new(agent.status, transition)?;
    let (from, to) = (plan.from, plan.to);
    let old_version = agent.version;
    agent.status = to;
    agent.status_reason = Some(reason.clone());
    agent.status_changed_at = now;
    agent.status_changed_by = ctx.actor.reference();
    agent.updated_at = now;
    agent.version += 1;
    if plan.cut_tokens {
        agent.tokens_not_before = Some(now);
    }
    save_agent(conn, &agent, old_version).await?;
    if plan.cancel_jobs {
        sqlx::query("DELETE FROM jobs WHERE target_id = $1 AND kind = $2")
            .bind(id.to_string())
            .bind(JOB_EXPIRE_AGENT)
            .execute(&mut *conn)
            .await?;
    }
    let revoked = if plan.revoke_credentials {
        credentials::revoke_all(conn, tenant_id, id, now).await?
    } else {
        0
    };
    let leases = if plan.revoke_leases {
        leases::revoke_for_agent(conn, tenant_id, id, now, clock, ctx).await?
    } else {
        vec![]
    };
    let mut d = with_details(
        draft(
            ctx,
            tenant_id,
            transition_action(transition),
            TargetType::Agent,
            id.to_string(),
        ),
        json!({ "from": from.as_str(), "to": to.as_str(), "cause": cause, "credentials_revoked": revoked,
                "leases_revoked": leases.len() }),
    );
    d.reason = Some(reason);
    let mut drafts = vec![d];
    drafts.extend(leases);
    Ok((Applied::Agent(Box::new(agent)), drafts))
}

pub(crate) fn transition_action(t: Transition) -> Action {
    match t {
        Transition::Activate => Action::AgentActivate,
        Transition::Suspend => Action::AgentSuspend,
        Transition::Resume => Action::AgentResume,
        Transition::Retire => Action::AgentRetire,
    }
}

pub(crate) async fn expire(
    conn: &mut AnyConnection,
    job: Job,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let id = take_job(conn, &job).await?;
    let agent = match load_agent(conn, job.tenant_id, id).await {
        Ok(a) => Some(a),
        Err(StoreError::NotFound { .. }) => None,
        Err(e) => return Err(e),
    };
    match (Expiry::due(agent.as_ref().map(|a| a.status)), agent) {
        (Expiry::Retire, _) => {}
        (Expiry::Nothing, Some(a)) => return Ok((Applied::Agent(Box::new(a)), vec![])),
        (Expiry::Nothing, None) => return Ok((Applied::Done, vec![])),
    }
    transition(
        conn,
        job.tenant_id,
        id,
        Transition::Retire,
        "time to live ended".into(),
        now,
        clock,
        ctx,
        Some("ttl"),
    )
    .await
}

pub(crate) async fn load_agent(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Agent, StoreError> {
    load_one(conn, ("agents", AGENT_COLS, "agent"), tenant_id, id, agent).await
}

/// Writes every mutable column of `a`, if the stored version is still `old_version`.
pub(crate) async fn save_agent(conn: &mut AnyConnection, a: &Agent, old_version: i64) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE agents SET name = $1, owner = $2, purpose = $3, environment = $4, team = $5, \
         labels = $6, capabilities = $7, class = $8, depends_on = $9, status = $10, \
         status_reason = $11, status_changed_at = $12, status_changed_by = $13, updated_at = $14, \
         version = $15, tokens_not_before = $16, grants = $17 WHERE id = $18 AND tenant_id = $19 AND version = $20",
    )
    .bind(a.name.clone())
    .bind(a.owner.clone())
    .bind(a.purpose.clone())
    .bind(a.environment.map(|e| e.as_str().to_owned()))
    .bind(a.team.clone())
    .bind(to_json(&a.labels))
    .bind(to_json(&a.capabilities))
    .bind(a.class.clone())
    .bind(to_json(&a.depends_on))
    .bind(a.status.as_str().to_owned())
    .bind(a.status_reason.clone())
    .bind(a.status_changed_at.as_micros())
    .bind(a.status_changed_by.clone())
    .bind(a.updated_at.as_micros())
    .bind(a.version)
    .bind(a.tokens_not_before.map(Timestamp::as_micros))
    .bind(to_json(&a.grants))
    .bind(a.id.to_string())
    .bind(a.tenant_id.to_string())
    .bind(old_version)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(StoreError::PreconditionFailed { current: old_version })
    }
}

/// Names among `names` already used in the tenant.
async fn taken_names(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    names: &[&str],
) -> Result<Vec<String>, StoreError> {
    let mut taken = Vec::new();
    for chunk in names.chunks(chunk_rows(1)) {
        let sql = format!(
            "SELECT name FROM agents WHERE tenant_id = {} AND name IN {}",
            marker(dialect, 1),
            in_list(dialect, chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(tenant_id.to_string());
        for n in chunk {
            q = q.bind((*n).to_owned());
        }
        for r in q.fetch_all(&mut *conn).await? {
            taken.push(r.try_get::<String, _>("name")?);
        }
    }
    Ok(taken)
}

/// Ids among `ids` that are agents of the tenant.
async fn existing_agents(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, StoreError> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(chunk_rows(1)) {
        let sql = format!(
            "SELECT id FROM agents WHERE tenant_id = {} AND id IN {}",
            marker(dialect, 1),
            in_list(dialect, chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(tenant_id.to_string());
        for id in chunk {
            q = q.bind(id.to_string());
        }
        for r in q.fetch_all(&mut *conn).await? {
            found.insert(row::uuid(&r, "id")?);
        }
    }
    Ok(found)
}

/// Checks that every agent referenced as parent or dependency exists in the
/// tenant (or in the same request).
async fn check_references<'a>(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    agents: impl Iterator<Item = &'a Agent> + Clone,
    in_request: &HashSet<Uuid>,
) -> Result<(), StoreError> {
    let mut wanted: Vec<Uuid> = Vec::new();
    for a in agents.clone() {
        if let Some(Parent::Agent(p)) = &a.parent {
            wanted.push(*p);
        }
        wanted.extend(a.depends_on.iter().copied());
    }
    wanted.retain(|id| !in_request.contains(id));
    wanted.sort_unstable();
    wanted.dedup();
    if wanted.is_empty() {
        return Ok(());
    }
    let found = existing_agents(conn, dialect, tenant_id, &wanted).await?;
    let many = agents.clone().nth(1).is_some();
    // In a bulk request, name the item: `agents[7].parent`.
    let field = |i: usize, name: &str| {
        if many {
            format!("agents[{i}].{name}")
        } else {
            name.to_owned()
        }
    };
    for (i, a) in agents.enumerate() {
        if let Some(Parent::Agent(p)) = &a.parent
            && !found.contains(p)
            && !in_request.contains(p)
        {
            return Err(AgentError::Invalid {
                field: field(i, "parent"),
                reason: format!("agent `{p}` does not exist in this tenant"),
            }
            .into());
        }
        for d in &a.depends_on {
            if !found.contains(d) && !in_request.contains(d) {
                return Err(AgentError::Invalid {
                    field: field(i, "depends_on"),
                    reason: format!("agent `{d}` does not exist in this tenant"),
                }
                .into());
            }
        }
    }
    Ok(())
}

async fn insert_labels(conn: &mut AnyConnection, dialect: Dialect, agents: &[Agent]) -> Result<(), StoreError> {
    let rows: Vec<(String, String, &String, &String)> = agents
        .iter()
        .flat_map(|a| {
            a.labels
                .iter()
                .map(move |(k, v)| (a.id.to_string(), a.tenant_id.to_string(), k, v))
        })
        .collect();
    for chunk in rows.chunks(chunk_rows(4)) {
        let sql = format!(
            "INSERT INTO agent_labels (agent_id, tenant_id, key, value) VALUES {}",
            placeholders(dialect, chunk.len(), 4, 1)
        );
        let mut q = sqlx::query(&sql);
        for (id, t, k, v) in chunk {
            q = q.bind(id.clone()).bind(t.clone()).bind((*k).clone()).bind((*v).clone());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

impl Store {
    /// One agent of a tenant.
    pub async fn agent(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Agent>, StoreError> {
        let sql = format!("SELECT {AGENT_COLS} FROM agents WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(agent).transpose()
    }

    /// A tenant's agents matching `f`, in id (creation) order.
    pub async fn agents(&self, tenant_id: Uuid, f: &AgentFilter) -> Result<Vec<Agent>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {AGENT_COLS} FROM agents WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        let desc = matches!(f.order, AgentOrder::CreatedDesc | AgentOrder::NameDesc);
        let cmp = if desc { "<" } else { ">" };
        match (f.order.by_name(), &f.after, &f.after_name) {
            (false, Some(a), _) => {
                sql.and(&format!("id {cmp} ?"), vec![Arg::Text(a.to_string())]);
            }
            (true, _, Some(n)) => {
                sql.and(&format!("name {cmp} ?"), vec![Arg::Text(n.clone())]);
            }
            _ => {}
        }
        if let Some(t) = f.expired_before {
            // The partial index `agents_expiry` (migration 17).
            sql.and(
                "expires_at IS NOT NULL AND status <> 'retired' AND expires_at < ?",
                vec![Arg::Int(t.as_micros())],
            );
        }
        if let Some(s) = f.status {
            sql.and("status = ?", vec![Arg::Text(s.as_str().into())]);
        }
        if let Some(o) = &f.owner {
            sql.and("owner = ?", vec![Arg::Text(o.clone())]);
        }
        if let Some(e) = f.environment {
            sql.and("environment = ?", vec![Arg::Text(e.as_str().into())]);
        }
        if let Some(c) = &f.class {
            sql.and("class = ?", vec![Arg::Text(c.clone())]);
        }
        if let Some(p) = &f.name_prefix {
            let len = i64::try_from(p.chars().count()).unwrap_or(i64::MAX);
            // PostgreSQL's substr takes an integer, and parameters arrive as bigint.
            sql.and(
                "substr(name, 1, CAST(? AS INTEGER)) = ?",
                vec![Arg::Int(len), Arg::Text(p.clone())],
            );
        }
        for (k, v) in &f.labels {
            sql.and(
                // Driven by the label index rather than probing it per agent.
                "id IN (SELECT agent_id FROM agent_labels WHERE tenant_id = ? AND key = ? AND value = ?)",
                vec![
                    Arg::Text(tenant_id.to_string()),
                    Arg::Text(k.clone()),
                    Arg::Text(v.clone()),
                ],
            );
        }
        let lim = sql.bind_next(Arg::Int(f.limit));
        let order = match f.order {
            AgentOrder::Created => "id",
            AgentOrder::CreatedDesc => "id DESC",
            AgentOrder::Name => "name",
            AgentOrder::NameDesc => "name DESC",
        };
        sql.push(&format!(" ORDER BY {order} LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(agent).collect()
    }

    /// Number of agents in a tenant (for metrics and export progress).
    pub async fn count_agents(&self, tenant_id: Option<Uuid>) -> Result<i64, StoreError> {
        let r = match tenant_id {
            Some(t) => {
                // The counters the triggers of migration 17 keep with every
                // agent write: no scan of the tenant.
                sqlx::query("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) AS n FROM agent_counts WHERE tenant_id = $1")
                    .bind(t.to_string())
                    .fetch_one(&self.inner.read)
                    .await?
            }
            None => {
                sqlx::query("SELECT COUNT(*) AS n FROM agents")
                    .fetch_one(&self.inner.read)
                    .await?
            }
        };
        Ok(r.try_get::<i64, _>("n")?)
    }
}

typed_writes! {
    /// Registers agents, all or nothing; answers them in request order.
    fn create_agents(tenant_id: Uuid, agents: Vec<Agent>) -> Vec<Agent> {
        Command::CreateAgents { tenant_id, agents } => Applied::Agents(a) => a
    }

    /// Changes an agent's metadata, if it is still at version `if_match`.
    fn update_agent(tenant_id: Uuid, id: Uuid, if_match: Option<i64>, changes: AgentChanges) -> Agent {
        Command::UpdateAgent { tenant_id, id, if_match, changes } => Applied::Agent(a) => *a
    }

    /// Moves every live agent of one owner to another; answers the agents
    /// moved, in id order.
    fn reassign_owner(tenant_id: Uuid, reassignment: OwnerReassignment) -> Vec<Agent> {
        Command::ReassignOwner { tenant_id, reassignment } => Applied::Agents(a) => a
    }

    /// Moves an agent through its lifecycle, with what the transition
    /// cascades to, for `reason`.
    fn transition_agent(tenant_id: Uuid, id: Uuid, transition: Transition, reason: String) -> Agent {
        Command::TransitionAgent { tenant_id, id, transition, reason } => Applied::Agent(a) => *a
    }

    /// Runs a due [`JOB_EXPIRE_AGENT`] job.
    fn expire_agent(job: Job) {
        Command::ExpireAgent(job)
    }
}
