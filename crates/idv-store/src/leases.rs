//! Dynamic database credentials: target databases, role templates and
//! leases. What happens on the target itself is the server's (it holds the
//! connection); here is what we remember about it, each change with its
//! audit event, and the [`JOB_REVOKE_LEASE`] job every live lease has: due
//! at the lease's end (or at once when revoked), run until the target
//! confirms the role is gone.

use idv_core::Clock;
use idv_core::Timestamp;
use idv_core::audit::{Action, Draft, TargetType};
use idv_core::db_template::{DbTarget, DbTemplate};
use idv_core::lease::{EndReason, ISSUE_DEADLINE_SECS, Lease, LeaseState};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::row;
use crate::{Store, StoreError};

/// Job kind: drop a lease's role (at its end, or at once when revoked).
pub const JOB_REVOKE_LEASE: &str = "lease.revoke";
/// Job kind: drop the orphaned roles on a target (recurring; `target_id` is
/// the target's name).
pub const JOB_SWEEP_TARGET: &str = "db.sweep";
/// How long a revocation's starter has to drop the role before the job
/// tries (and retries, with backoff, while the target is down).
pub const REVOKE_GRACE_SECS: i64 = 30;
/// How often each target is swept.
pub const SWEEP_EVERY_SECS: i64 = 600;

const TARGET_COLS: &str = "tenant_id, name, host, port, database, admin_user, role_prefix, updated_at, updated_by";
const TEMPLATE_COLS: &str =
    "tenant_id, name, target, statements, default_ttl_secs, max_ttl_secs, updated_at, updated_by";
const LEASE_COLS: &str = "l.id, l.tenant_id, l.agent_id, l.template, l.target, l.username, l.state, l.issued_at, \
     l.expires_at, l.max_expires_at, l.revoked_at, l.end_reason, j.last_error";
const LEASE_FROM: &str =
    "leases l LEFT JOIN jobs j ON j.target_id = l.id AND j.kind = 'lease.revoke' AND l.state = 'revocation_pending'";

fn target(r: &AnyRow) -> Result<DbTarget, StoreError> {
    let port: i64 = r.try_get("port")?;
    Ok(DbTarget {
        tenant_id: row::uuid(r, "tenant_id")?,
        name: r.try_get("name")?,
        host: r.try_get("host")?,
        port: u16::try_from(port).map_err(|_| StoreError::Corrupt(format!("port {port}")))?,
        database: r.try_get("database")?,
        admin_user: r.try_get("admin_user")?,
        role_prefix: r.try_get("role_prefix")?,
        updated_at: row::ts(r, "updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

fn template(r: &AnyRow) -> Result<DbTemplate, StoreError> {
    Ok(DbTemplate {
        tenant_id: row::uuid(r, "tenant_id")?,
        name: r.try_get("name")?,
        target: r.try_get("target")?,
        statements: row::json(r, "statements")?,
        default_ttl_secs: r.try_get("default_ttl_secs")?,
        max_ttl_secs: r.try_get("max_ttl_secs")?,
        updated_at: row::ts(r, "updated_at")?,
        updated_by: r.try_get("updated_by")?,
    })
}

fn lease(r: &AnyRow) -> Result<Lease, StoreError> {
    let state: String = r.try_get("state")?;
    let reason: Option<String> = r.try_get("end_reason")?;
    let corrupt = |e: idv_core::lease::LeaseError| StoreError::Corrupt(e.to_string());
    Ok(Lease {
        id: row::uuid(r, "id")?,
        tenant_id: row::uuid(r, "tenant_id")?,
        agent_id: row::uuid(r, "agent_id")?,
        template: r.try_get("template")?,
        target: r.try_get("target")?,
        username: r.try_get("username")?,
        state: state.parse().map_err(corrupt)?,
        issued_at: row::ts(r, "issued_at")?,
        expires_at: row::ts(r, "expires_at")?,
        max_expires_at: row::ts(r, "max_expires_at")?,
        revoked_at: row::opt_ts(r, "revoked_at")?,
        end_reason: reason.map(|s| s.parse()).transpose().map_err(corrupt)?,
        last_error: r.try_get("last_error")?,
    })
}

/// Which leases to list.
#[derive(Clone, Debug, Default)]
pub struct LeaseFilter {
    /// Only this agent's.
    pub agent_id: Option<Uuid>,
    /// Only in this state.
    pub state: Option<LeaseState>,
    /// Only on this target.
    pub target: Option<String>,
    /// Keyset: ids after this one.
    pub after: Option<Uuid>,
    /// At most this many.
    pub limit: i64,
}

impl Store {
    /// A target, with its sealed admin connection string.
    pub async fn db_target(&self, tenant_id: Uuid, name: &str) -> Result<Option<(DbTarget, Vec<u8>)>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {TARGET_COLS}, sealed_url FROM db_targets WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(name.to_owned())
        .fetch_optional(&self.inner.read)
        .await?;
        r.map(|r| Ok((target(&r)?, r.try_get("sealed_url")?))).transpose()
    }

    /// A tenant's targets, by name.
    pub async fn db_targets(&self, tenant_id: Uuid) -> Result<Vec<DbTarget>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TARGET_COLS} FROM db_targets WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter().map(target).collect()
    }

    /// A role template.
    pub async fn db_template(&self, tenant_id: Uuid, name: &str) -> Result<Option<DbTemplate>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLS} FROM db_templates WHERE tenant_id = $1 AND name = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(name.to_owned())
        .fetch_optional(&self.inner.read)
        .await?;
        r.as_ref().map(template).transpose()
    }

    /// A tenant's role templates, by name.
    pub async fn db_templates(&self, tenant_id: Uuid) -> Result<Vec<DbTemplate>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {TEMPLATE_COLS} FROM db_templates WHERE tenant_id = $1 ORDER BY name"
        ))
        .bind(tenant_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter().map(template).collect()
    }

    /// One lease.
    pub async fn lease(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Lease>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {LEASE_COLS} FROM {LEASE_FROM} WHERE l.tenant_id = $1 AND l.id = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.inner.read)
        .await?;
        r.as_ref().map(lease).transpose()
    }

    /// Leases, oldest first (ids are time-ordered), a page at a time.
    pub async fn leases(&self, tenant_id: Uuid, f: &LeaseFilter) -> Result<Vec<Lease>, StoreError> {
        let mut sql = format!("SELECT {LEASE_COLS} FROM {LEASE_FROM} WHERE l.tenant_id = $1");
        let mut args: Vec<String> = vec![tenant_id.to_string()];
        let mut add = |col: &str, v: String, sql: &mut String| {
            args.push(v);
            sql.push_str(&format!(" AND {col} ${}", args.len()));
        };
        if let Some(a) = f.agent_id {
            add("l.agent_id =", a.to_string(), &mut sql);
        }
        if let Some(s) = f.state {
            add("l.state =", s.as_str().to_owned(), &mut sql);
        }
        if let Some(t) = &f.target {
            add("l.target =", t.clone(), &mut sql);
        }
        if let Some(after) = f.after {
            add("l.id >", after.to_string(), &mut sql);
        }
        sql.push_str(&format!(" ORDER BY l.id LIMIT {}", f.limit.clamp(1, 1000)));
        let mut q = sqlx::query(&sql);
        for a in args {
            q = q.bind(a);
        }
        let rows = q.fetch_all(&self.inner.read).await?;
        rows.iter().map(lease).collect()
    }

    /// The role names of the live leases on a target (the orphan sweeper
    /// keeps these).
    pub async fn live_lease_roles(&self, tenant_id: Uuid, target: &str) -> Result<Vec<String>, StoreError> {
        let rows =
            sqlx::query("SELECT username FROM leases WHERE tenant_id = $1 AND target = $2 AND state <> 'revoked'")
                .bind(tenant_id.to_string())
                .bind(target.to_owned())
                .fetch_all(&self.inner.read)
                .await?;
        rows.iter().map(|r| Ok(r.try_get("username")?)).collect()
    }
}

pub(crate) async fn put_target(
    conn: &mut AnyConnection,
    t: DbTarget,
    sealed_url: Vec<u8>,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    sqlx::query(
        "INSERT INTO db_targets (tenant_id, name, host, port, database, admin_user, role_prefix, sealed_url, \
         updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET host = excluded.host, port = excluded.port, \
         database = excluded.database, admin_user = excluded.admin_user, role_prefix = excluded.role_prefix, \
         sealed_url = excluded.sealed_url, updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(t.tenant_id.to_string())
    .bind(t.name.clone())
    .bind(t.host.clone())
    .bind(i64::from(t.port))
    .bind(t.database.clone())
    .bind(t.admin_user.clone())
    .bind(t.role_prefix.clone())
    .bind(sealed_url)
    .bind(t.updated_at.as_micros())
    .bind(t.updated_by.clone())
    .execute(&mut *conn)
    .await?;
    let scheduled = sqlx::query("SELECT 1 FROM jobs WHERE tenant_id = $1 AND kind = $2 AND target_id = $3")
        .bind(t.tenant_id.to_string())
        .bind(JOB_SWEEP_TARGET)
        .bind(t.name.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if scheduled.is_none() {
        sqlx::query("INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(clock.new_id().to_string())
            .bind(t.tenant_id.to_string())
            .bind(JOB_SWEEP_TARGET)
            .bind(t.name.clone())
            .bind(t.updated_at.plus_secs(SWEEP_EVERY_SECS).as_micros())
            .execute(&mut *conn)
            .await?;
    }
    // The connection string is a secret: only its safe parts are recorded.
    let d = with_details(
        draft(
            ctx,
            t.tenant_id,
            Action::DbTargetPut,
            TargetType::DbTarget,
            t.name.clone(),
        ),
        json!({ "host": t.host, "port": t.port, "database": t.database, "admin_user": t.admin_user,
                "role_prefix": t.role_prefix }),
    );
    Ok((Applied::DbTarget(Box::new(t)), vec![d]))
}

async fn count(conn: &mut AnyConnection, sql: &str, tenant_id: Uuid, name: &str) -> Result<i64, StoreError> {
    let r = sqlx::query(sql)
        .bind(tenant_id.to_string())
        .bind(name.to_owned())
        .fetch_one(&mut *conn)
        .await?;
    Ok(r.try_get(0)?)
}

pub(crate) async fn delete_target(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    name: String,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let templates = count(
        conn,
        "SELECT COUNT(*) FROM db_templates WHERE tenant_id = $1 AND target = $2",
        tenant_id,
        &name,
    )
    .await?;
    let live = count(
        conn,
        "SELECT COUNT(*) FROM leases WHERE tenant_id = $1 AND target = $2 AND state <> 'revoked'",
        tenant_id,
        &name,
    )
    .await?;
    if templates > 0 || live > 0 {
        return Err(StoreError::Conflict(format!(
            "target `{name}` still has {templates} template(s) and {live} live lease(s); delete the templates and \
             revoke the leases first"
        )));
    }
    let done = sqlx::query("DELETE FROM db_targets WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id.to_string())
        .bind(name.clone())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "database target",
            id: name,
        });
    }
    sqlx::query("DELETE FROM jobs WHERE tenant_id = $1 AND kind = $2 AND target_id = $3")
        .bind(tenant_id.to_string())
        .bind(JOB_SWEEP_TARGET)
        .bind(name.clone())
        .execute(&mut *conn)
        .await?;
    Ok((
        Applied::Done,
        vec![draft(
            ctx,
            tenant_id,
            Action::DbTargetDelete,
            TargetType::DbTarget,
            name,
        )],
    ))
}

pub(crate) async fn put_template(conn: &mut AnyConnection, t: DbTemplate, ctx: &Context) -> Result<Effect, StoreError> {
    let exists = count(
        conn,
        "SELECT COUNT(*) FROM db_targets WHERE tenant_id = $1 AND name = $2",
        t.tenant_id,
        &t.target,
    )
    .await?;
    if exists == 0 {
        return Err(StoreError::NotFound {
            what: "database target",
            id: t.target,
        });
    }
    sqlx::query(
        "INSERT INTO db_templates (tenant_id, name, target, statements, default_ttl_secs, max_ttl_secs, \
         updated_at, updated_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (tenant_id, name) DO UPDATE SET target = excluded.target, statements = excluded.statements, \
         default_ttl_secs = excluded.default_ttl_secs, max_ttl_secs = excluded.max_ttl_secs, \
         updated_at = excluded.updated_at, updated_by = excluded.updated_by",
    )
    .bind(t.tenant_id.to_string())
    .bind(t.name.clone())
    .bind(t.target.clone())
    .bind(row::to_json(&t.statements))
    .bind(t.default_ttl_secs)
    .bind(t.max_ttl_secs)
    .bind(t.updated_at.as_micros())
    .bind(t.updated_by.clone())
    .execute(&mut *conn)
    .await?;
    let d = with_details(
        draft(
            ctx,
            t.tenant_id,
            Action::DbTemplatePut,
            TargetType::DbTemplate,
            t.name.clone(),
        ),
        json!({ "target": t.target, "statements": t.statements, "default_ttl_secs": t.default_ttl_secs,
                "max_ttl_secs": t.max_ttl_secs }),
    );
    Ok((Applied::DbTemplate(Box::new(t)), vec![d]))
}

pub(crate) async fn delete_template(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    name: String,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let live = count(
        conn,
        "SELECT COUNT(*) FROM leases WHERE tenant_id = $1 AND template = $2 AND state <> 'revoked'",
        tenant_id,
        &name,
    )
    .await?;
    if live > 0 {
        return Err(StoreError::Conflict(format!(
            "template `{name}` has {live} live lease(s); revoke them first"
        )));
    }
    let done = sqlx::query("DELETE FROM db_templates WHERE tenant_id = $1 AND name = $2")
        .bind(tenant_id.to_string())
        .bind(name.clone())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "role template",
            id: name,
        });
    }
    Ok((
        Applied::Done,
        vec![draft(
            ctx,
            tenant_id,
            Action::DbTemplateDelete,
            TargetType::DbTemplate,
            name,
        )],
    ))
}

async fn load(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Lease, StoreError> {
    let r = sqlx::query(&format!(
        "SELECT {LEASE_COLS} FROM {LEASE_FROM} WHERE l.tenant_id = $1 AND l.id = $2"
    ))
    .bind(tenant_id.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::NotFound {
        what: "lease",
        id: id.to_string(),
    })?;
    lease(&r)
}

async fn set_state(conn: &mut AnyConnection, l: &Lease, from: &[LeaseState]) -> Result<(), StoreError> {
    let from: Vec<String> = from.iter().map(|s| format!("'{}'", s.as_str())).collect();
    let done = sqlx::query(&format!(
        "UPDATE leases SET state = $1, expires_at = $2, revoked_at = $3, end_reason = $4 \
         WHERE id = $5 AND state IN ({})",
        from.join(", ")
    ))
    .bind(l.state.as_str())
    .bind(l.expires_at.as_micros())
    .bind(l.revoked_at.map(Timestamp::as_micros))
    .bind(l.end_reason.map(|r| r.as_str()))
    .bind(l.id.to_string())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(format!("lease `{}` changed meanwhile", l.id)));
    }
    Ok(())
}

/// Moves the lease's revocation job to `run_at`, making one if it has none.
async fn schedule(conn: &mut AnyConnection, l: &Lease, run_at: Timestamp, clock: &dyn Clock) -> Result<(), StoreError> {
    let moved = sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = $2 AND target_id = $3")
        .bind(run_at.as_micros())
        .bind(JOB_REVOKE_LEASE)
        .bind(l.id.to_string())
        .execute(&mut *conn)
        .await?;
    if moved.rows_affected() == 0 {
        sqlx::query("INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(clock.new_id().to_string())
            .bind(l.tenant_id.to_string())
            .bind(JOB_REVOKE_LEASE)
            .bind(l.id.to_string())
            .bind(run_at.as_micros())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn lease_draft(ctx: &Context, l: &Lease, action: Action) -> Draft {
    with_details(
        draft(ctx, l.tenant_id, action, TargetType::Lease, l.id.to_string()),
        json!({ "agent_id": l.agent_id, "template": l.template, "target": l.target, "username": l.username,
                "state": l.state.as_str(), "expires_at": l.expires_at.to_rfc3339(),
                "end_reason": l.end_reason.map(|r| r.as_str()) }),
    )
}

/// Records a lease before its role is made, with a revocation job at the
/// issue deadline: if the server stops before [`activate`], the job drops
/// whatever was made.
pub(crate) async fn begin(
    conn: &mut AnyConnection,
    l: Lease,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let agent = crate::agents::load_agent(conn, l.tenant_id, l.agent_id).await?;
    if agent.status != idv_core::lifecycle::Status::Active {
        return Err(StoreError::Conflict(format!(
            "agent `{}` is {}; only active agents get database credentials",
            agent.id, agent.status
        )));
    }
    sqlx::query(
        "INSERT INTO leases (id, tenant_id, agent_id, template, target, username, state, issued_at, expires_at, \
         max_expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(l.id.to_string())
    .bind(l.tenant_id.to_string())
    .bind(l.agent_id.to_string())
    .bind(l.template.clone())
    .bind(l.target.clone())
    .bind(l.username.clone())
    .bind(l.state.as_str())
    .bind(l.issued_at.as_micros())
    .bind(l.expires_at.as_micros())
    .bind(l.max_expires_at.as_micros())
    .execute(&mut *conn)
    .await?;
    schedule(conn, &l, l.issued_at.plus_secs(ISSUE_DEADLINE_SECS), clock).await?;
    let d = lease_draft(ctx, &l, Action::LeaseRequest);
    Ok((Applied::Lease(Box::new(l)), vec![d]))
}

/// The role exists: the lease is active until `expires_at`, when its job
/// revokes it.
pub(crate) async fn activate(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut l = load(conn, tenant_id, id).await?;
    if l.state != LeaseState::Pending {
        return Err(StoreError::Conflict(format!(
            "lease `{id}` is {}, not pending",
            l.state
        )));
    }
    l.state = LeaseState::Active;
    set_state(conn, &l, &[LeaseState::Pending]).await?;
    schedule(conn, &l, l.expires_at, clock).await?;
    let d = lease_draft(ctx, &l, Action::LeaseIssue);
    Ok((Applied::Lease(Box::new(l)), vec![d]))
}

/// Extends an active lease to `expires_at` (the role's `VALID UNTIL` was
/// moved to exactly that first).
pub(crate) async fn renew(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    expires_at: Timestamp,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut l = load(conn, tenant_id, id).await?;
    // Exactly the end the target was given (not recomputed from this later
    // `now`, which would fall short of it); nothing recorded if it moves
    // nothing.
    let Some(until) = l
        .extend_to(now, expires_at)
        .map_err(|e| StoreError::Conflict(e.to_string()))?
    else {
        return Ok((Applied::Lease(Box::new(l)), vec![]));
    };
    let before = l.expires_at;
    l.expires_at = until;
    set_state(conn, &l, &[LeaseState::Active]).await?;
    schedule(conn, &l, l.expires_at, clock).await?;
    let d = with_details(
        lease_draft(ctx, &l, Action::LeaseRenew),
        json!({ "previous_expires_at": before.to_rfc3339() }),
    );
    Ok((Applied::Lease(Box::new(l)), vec![d]))
}

/// Starts a revocation: the lease is `revocation_pending`, and its job comes
/// due after [`REVOKE_GRACE_SECS`]: whoever starts a revocation drops the
/// role right after, and a job due at once would race it for the same
/// role. Only [`finish_revocation`] (after the target confirms) ends it.
pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    reason: EndReason,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    revoke_with_job_at(
        conn,
        tenant_id,
        id,
        reason,
        now.plus_secs(REVOKE_GRACE_SECS),
        clock,
        ctx,
    )
    .await
}

/// Starts a revocation whose role the job drops at `job_at`.
async fn revoke_with_job_at(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    reason: EndReason,
    job_at: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut l = load(conn, tenant_id, id).await?;
    l.check_revocable().map_err(|e| StoreError::Conflict(e.to_string()))?;
    let from = l.state;
    l.state = LeaseState::RevocationPending;
    l.end_reason = Some(reason);
    set_state(conn, &l, &[from]).await?;
    schedule(conn, &l, job_at, clock).await?;
    let d = lease_draft(ctx, &l, Action::LeaseRevoke);
    Ok((Applied::Lease(Box::new(l)), vec![d]))
}

/// The target confirmed the role is gone: the lease is revoked and its job
/// finished.
pub(crate) async fn finish_revocation(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    sqlx::query("DELETE FROM jobs WHERE kind = $1 AND target_id = $2")
        .bind(JOB_REVOKE_LEASE)
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let mut l = load(conn, tenant_id, id).await?;
    if l.state == LeaseState::Revoked {
        return Ok((Applied::Lease(Box::new(l)), vec![]));
    }
    let from = l.state;
    l.state = LeaseState::Revoked;
    l.revoked_at = Some(now);
    l.end_reason = l.end_reason.or(Some(EndReason::Revoked));
    set_state(conn, &l, &[from]).await?;
    let d = lease_draft(ctx, &l, Action::LeaseRevoked);
    Ok((Applied::Lease(Box::new(l)), vec![d]))
}

/// An agent was suspended, retired or reported compromised: each of its
/// live leases starts its revocation now, in the same commit, and the jobs
/// (the only ones to drop these roles) are due at once.
pub(crate) async fn revoke_for_agent(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    agent_id: Uuid,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Vec<Draft>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {LEASE_COLS} FROM {LEASE_FROM} WHERE l.tenant_id = $1 AND l.agent_id = $2 \
         AND l.state IN ('pending', 'active')"
    ))
    .bind(tenant_id.to_string())
    .bind(agent_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let mut drafts = Vec::with_capacity(rows.len());
    for r in &rows {
        let l = lease(r)?;
        let (_, mut d) = revoke_with_job_at(conn, tenant_id, l.id, EndReason::AgentDisabled, now, clock, ctx).await?;
        drafts.append(&mut d);
    }
    Ok(drafts)
}

typed_writes! {
    /// Registers or replaces a target database, its admin connection
    /// string sealed under the master key.
    fn put_db_target(target: DbTarget, sealed_url: Vec<u8>) -> DbTarget {
        Command::PutDbTarget { target, sealed_url } => Applied::DbTarget(t) => *t
    }

    /// Removes a target no template or live lease uses.
    fn delete_db_target(tenant_id: Uuid, name: String) {
        Command::DeleteDbTarget { tenant_id, name }
    }

    /// Creates or replaces a role template.
    fn put_db_template(template: DbTemplate) -> DbTemplate {
        Command::PutDbTemplate(template) => Applied::DbTemplate(t) => *t
    }

    /// Removes a role template no live lease uses.
    fn delete_db_template(tenant_id: Uuid, name: String) {
        Command::DeleteDbTemplate { tenant_id, name }
    }

    /// Records a lease, `pending`, before its role is made.
    fn begin_lease(lease: Lease) -> Lease {
        Command::BeginLease(Box::new(lease)) => Applied::Lease(l) => *l
    }

    /// The lease's role exists: makes it active.
    fn activate_lease(tenant_id: Uuid, id: Uuid) -> Lease {
        Command::ActivateLease { tenant_id, id } => Applied::Lease(l) => *l
    }

    /// Extends an active lease towards `expires_at` (capped by its maximum).
    fn renew_lease(tenant_id: Uuid, id: Uuid, expires_at: Timestamp) -> Lease {
        Command::RenewLease { tenant_id, id, expires_at } => Applied::Lease(l) => *l
    }

    /// Starts revoking a lease for `reason` (its job due now).
    fn revoke_lease(tenant_id: Uuid, id: Uuid, reason: EndReason) -> Lease {
        Command::RevokeLease { tenant_id, id, reason } => Applied::Lease(l) => *l
    }

    /// The target confirmed a lease's role is gone.
    fn finish_lease_revocation(tenant_id: Uuid, id: Uuid) -> Lease {
        Command::FinishLeaseRevocation { tenant_id, id } => Applied::Lease(l) => *l
    }
}
