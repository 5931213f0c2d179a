//! Dynamic PostgreSQL credentials: targets, role templates, and leases on
//! the roles made from them.
//!
//! Issuing is three steps, in an order that survives a crash at any point:
//! the lease is recorded `pending` (with a revocation job at the issue
//! deadline), the role is created on the target in one transaction, and the
//! lease is activated (its job moved to the lease's end). Revoking marks the
//! lease `revocation_pending`, drops the role, and only then records it
//! `revoked`; a target that cannot be reached leaves the lease pending and its
//! job retries with backoff until the drop succeeds.

use idv_core::admin_token::Permission;
use idv_core::audit::{Action, Draft, Outcome, TargetType};
use idv_core::db_template::{self, DbTarget, DbTemplate};
use idv_core::lease::{self, EndReason, Lease, LeaseState};
use idv_core::secret::random_base62;
use idv_store::{Context, Job, LeaseFilter};
use rand::RngCore as _;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::credentials::{Presented, agent_context, authenticate_self};
use super::decisions::{self, Ask, Thing};
use super::{AppError, Caller};
use crate::AppState;
use crate::connectors::postgres::{self as target_db, TargetError};

/// The Cedar action an agent needs on a template (docs/policies.md).
pub const CONNECT_ACTION: &str = "connect";
/// The Cedar entity type of a template.
pub const TEMPLATE_TYPE: &str = "DatabaseTemplate";
/// Length of the random part of a role name.
const ROLE_RANDOM: usize = 12;
/// Length of a generated password (base62, ~190 bits).
const PASSWORD_LEN: usize = 32;

impl From<TargetError> for AppError {
    /// The target's own message may name its schema, tables and roles: it
    /// is logged (and kept on a pending lease for administrators), and the
    /// caller gets a generic answer.
    fn from(e: TargetError) -> Self {
        tracing::warn!(error = %e, "target database failed");
        AppError::Upstream("the target database could not be reached or refused the change; retry later".into())
    }
}

fn url_aad(tenant_id: Uuid, name: &str) -> Vec<u8> {
    format!("db_targets/{tenant_id}/{name}/connection_url").into_bytes()
}

/// Registers (or replaces) a target database after checking that we can
/// connect and create roles there. The connection string is sealed under
/// the master key; nothing shows it again.
pub async fn put_target(
    state: &AppState,
    caller: &Caller,
    name: &str,
    connection_url: &str,
    role_prefix: Option<String>,
) -> Result<DbTarget, AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::DbTargetPut)
        .await?;
    db_template::check_name("name", name).map_err(bad)?;
    let role_prefix = role_prefix.unwrap_or_else(|| db_template::DEFAULT_PREFIX.to_owned());
    db_template::check_prefix(&role_prefix).map_err(bad)?;
    let parsed = target_db::parse(connection_url).map_err(|e| AppError::BadParameter {
        field: "connection_url".into(),
        detail: format!("`connection_url`: {e}"),
    })?;
    target_db::check(connection_url)
        .await
        .map_err(|e| AppError::BadParameter {
            field: "connection_url".into(),
            detail: format!("`connection_url`: {e}"),
        })?;
    let t = DbTarget {
        tenant_id: caller.tenant.id,
        name: name.to_owned(),
        host: parsed.host,
        port: parsed.port,
        database: parsed.database,
        admin_user: parsed.user,
        role_prefix,
        updated_at: state.clock.now(),
        updated_by: caller.actor().reference(),
    };
    // Roles of live leases exist where the target points now: moving it
    // elsewhere would leave them behind (revocations would find nothing to
    // drop at the new place). Only the credentials may change meanwhile.
    if let Some((old, _)) = state.store.db_target(t.tenant_id, name).await?
        && (old.host, old.port, &old.database, &old.role_prefix)
            != (t.host.clone(), t.port, &t.database, &t.role_prefix)
        && !state.store.live_lease_roles(t.tenant_id, name).await?.is_empty()
    {
        return Err(AppError::Store(idv_store::StoreError::Conflict(format!(
            "target `{name}` has live leases: its host, port, database and role prefix cannot change until they end"
        ))));
    }
    let sealed_url = state
        .secret_sealer
        .seal(connection_url.as_bytes(), &url_aad(t.tenant_id, name));
    let previous = target_with_url(state, caller.tenant.id, name).await.ok();
    let stored = state.store.put_db_target(t, sealed_url, caller.context()).await?;
    if let Some((_, url)) = previous
        && url.as_str() != connection_url
    {
        state.target_pools.forget(&url);
    }
    Ok(stored)
}

fn bad(e: db_template::TemplateError) -> AppError {
    AppError::BadParameter {
        field: e.field.to_owned(),
        detail: e.to_string(),
    }
}

/// A tenant's targets.
pub async fn targets(state: &AppState, caller: &Caller) -> Result<Vec<DbTarget>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DbTargetList)
        .await?;
    Ok(state.store.db_targets(caller.tenant.id).await?)
}

/// One target.
pub async fn target(state: &AppState, caller: &Caller, name: &str) -> Result<DbTarget, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DbTargetGet)
        .await?;
    Ok(target_with_url(state, caller.tenant.id, name).await?.0)
}

/// Removes a target that no template or live lease uses.
pub async fn delete_target(state: &AppState, caller: &Caller, name: &str) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::DbTargetDelete)
        .await?;
    let previous = target_with_url(state, caller.tenant.id, name).await.ok();
    state
        .store
        .delete_db_target(caller.tenant.id, name.to_owned(), caller.context())
        .await?;
    if let Some((_, url)) = previous {
        state.target_pools.forget(&url);
    }
    Ok(())
}

async fn target_with_url(
    state: &AppState,
    tenant_id: Uuid,
    name: &str,
) -> Result<(DbTarget, zeroize::Zeroizing<String>), AppError> {
    let (t, sealed) = state
        .store
        .db_target(tenant_id, name)
        .await?
        .ok_or_else(|| idv_store::StoreError::NotFound {
            what: "database target",
            id: name.to_owned(),
        })?;
    let opened = state
        .secret_sealer
        .open(&sealed, &url_aad(tenant_id, name))
        .map_err(|e| AppError::Internal(format!("a target connection string does not open: {e}")))?;
    let url = String::from_utf8(opened.to_vec())
        .map_err(|_| AppError::Internal("a target connection string is not text".into()))?;
    Ok((t, zeroize::Zeroizing::new(url)))
}

/// A target with the pool of connections to it.
async fn target_with_pool(
    state: &AppState,
    tenant_id: Uuid,
    name: &str,
) -> Result<(DbTarget, target_db::Target), AppError> {
    let (t, url) = target_with_url(state, tenant_id, name).await?;
    let pool = state.target_pools.get(&url)?;
    Ok((t, pool))
}

/// What an administrator sends for a template.
#[derive(Debug)]
pub struct TemplateInput {
    /// The target it issues roles on.
    pub target: String,
    /// Its grants (the allow-list in `idv_core::db_template`).
    pub statements: Vec<String>,
    /// Lease time when a request names none.
    pub default_ttl_secs: i64,
    /// Longest lease, renewals included.
    pub max_ttl_secs: i64,
}

/// Creates or replaces a role template after checking its statements.
pub async fn put_template(
    state: &AppState,
    caller: &Caller,
    name: &str,
    input: TemplateInput,
) -> Result<DbTemplate, AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::DbTemplatePut)
        .await?;
    let mut t = DbTemplate {
        tenant_id: caller.tenant.id,
        name: name.to_owned(),
        target: input.target,
        statements: input.statements,
        default_ttl_secs: input.default_ttl_secs,
        max_ttl_secs: input.max_ttl_secs,
        updated_at: state.clock.now(),
        updated_by: caller.actor().reference(),
    };
    t.check().map_err(bad)?;
    if state.store.db_target(t.tenant_id, &t.target).await?.is_none() {
        return Err(AppError::BadParameter {
            field: "target".into(),
            detail: format!("`target`: no database target `{}` in this tenant", t.target),
        });
    }
    Ok(state.store.put_db_template(t, caller.context()).await?)
}

/// A tenant's templates.
pub async fn templates(state: &AppState, caller: &Caller) -> Result<Vec<DbTemplate>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DbTemplateList)
        .await?;
    Ok(state.store.db_templates(caller.tenant.id).await?)
}

/// One template.
pub async fn template(state: &AppState, caller: &Caller, name: &str) -> Result<DbTemplate, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DbTemplateGet)
        .await?;
    template_in(state, caller.tenant.id, name).await
}

async fn template_in(state: &AppState, tenant_id: Uuid, name: &str) -> Result<DbTemplate, AppError> {
    Ok(state
        .store
        .db_template(tenant_id, name)
        .await?
        .ok_or_else(|| idv_store::StoreError::NotFound {
            what: "role template",
            id: name.to_owned(),
        })?)
}

/// Removes a template no live lease uses.
pub async fn delete_template(state: &AppState, caller: &Caller, name: &str) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::DbTemplateDelete)
        .await?;
    Ok(state
        .store
        .delete_db_template(caller.tenant.id, name.to_owned(), caller.context())
        .await?)
}

/// A credential just issued: the lease and the password (shown once).
#[derive(Debug)]
pub struct Issued {
    /// The lease.
    pub lease: Lease,
    /// The role's password; we keep only its SCRAM verifier, on the target.
    pub password: zeroize::Zeroizing<String>,
    /// Where to connect.
    pub target: DbTarget,
}

/// An agent asks for a credential from `template`, for `ttl_secs` (the
/// template's default if `None`, never more than its maximum). The agent
/// must be allowed the `connect` action on the template by policy; the
/// decision is recorded like any other.
pub async fn issue(
    state: &AppState,
    p: &Presented,
    template_name: &str,
    ttl_secs: Option<i64>,
) -> Result<Issued, AppError> {
    let source_ip = super::request::peer();
    let (agent, c) = authenticate_self(state, p).await?;
    let ctx = agent_context(&agent, &c);
    let template = template_in(state, agent.tenant_id, template_name).await?;
    if let Some(t) = ttl_secs
        && t < 1
    {
        return Err(AppError::BadParameter {
            field: "ttl".into(),
            detail: "`ttl`: must be at least one second".into(),
        });
    }
    let tenant = super::tenants::by_id(state, agent.tenant_id)
        .await?
        .ok_or_else(|| AppError::Internal("an agent's tenant is missing".into()))?;
    let mut properties = Map::new();
    properties.insert("target".into(), Value::String(template.target.clone()));
    let ask = Ask {
        subject: Thing {
            type_name: "agent".into(),
            id: agent.id.to_string(),
            properties: None,
        },
        action: CONNECT_ACTION.into(),
        action_properties: None,
        resource: Thing {
            type_name: TEMPLATE_TYPE.into(),
            id: template.name.clone(),
            properties: Some(properties),
        },
        context: Map::new(),
    };
    let answer = decisions::decide_for(state, &tenant, &ctx, &ask, source_ip).await?;
    if !answer.allowed {
        return Err(AppError::Forbidden(format!(
            "policy does not allow this agent to `{CONNECT_ACTION}` with template `{template_name}` ({})",
            answer.outcome
        )));
    }
    let (target, pool) = target_with_pool(state, agent.tenant_id, &template.target).await?;
    let random = random_base62(ROLE_RANDOM).to_ascii_lowercase();
    let username = lease::role_name(&target.role_prefix, &template.name, &random);
    let now = state.clock.now();
    let l = Lease::new(
        state.clock.new_id(),
        agent.tenant_id,
        agent.id,
        &template,
        username,
        now,
        ttl_secs,
    );
    let l = state.store.begin_lease(l, ctx.clone()).await?;
    let password = zeroize::Zeroizing::new(random_base62(PASSWORD_LEN));
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let verifier = idv_core::scram::verifier(&password, &salt);
    let grants = template.render(&l.username).map_err(bad)?;
    let comment = target_db::tag(l.id, l.tenant_id, &target.name);
    if let Err(e) = target_db::create_role(&pool, &l.username, &verifier, l.expires_at, &comment, &grants).await {
        // Nothing was made (one transaction on the target); the lease ends
        // as incomplete and its job confirms the role is absent.
        if let Err(s) = state
            .store
            .revoke_lease(l.tenant_id, l.id, EndReason::Incomplete, ctx)
            .await
        {
            tracing::warn!(lease = %l.id, error = %s, "could not end a failed lease now; its deadline job will");
        }
        return Err(e.into());
    }
    match state.store.activate_lease(l.tenant_id, l.id, ctx).await {
        Ok(lease) => Ok(Issued {
            lease,
            password,
            target,
        }),
        Err(e) => {
            // Not recorded as active: the role must not outlive this answer.
            // If this drop fails too, the deadline job drops it.
            if let Err(d) = target_db::drop_role(&pool, &l.username).await {
                tracing::warn!(lease = %l.id, error = %d, "could not drop the role of a lease not activated");
            }
            Err(e.into())
        }
    }
}

/// Who acts on a lease: an administrator, or the agent it was issued to.
#[derive(Debug)]
pub enum Holder<'a> {
    /// An admin token (any lease of its tenant).
    Admin(&'a Caller),
    /// The agent itself (its own leases only).
    Agent(&'a Presented),
}

async fn load_for(
    state: &AppState,
    who: &Holder<'_>,
    id: Uuid,
    permission: Permission,
    action: Action,
) -> Result<(Lease, Context), AppError> {
    let not_found = || {
        AppError::from(idv_store::StoreError::NotFound {
            what: "lease",
            id: id.to_string(),
        })
    };
    match who {
        Holder::Admin(caller) => {
            caller.require(state, permission, action).await?;
            let l = state.store.lease(caller.tenant.id, id).await?.ok_or_else(not_found)?;
            Ok((l, caller.context()))
        }
        Holder::Agent(p) => {
            let (agent, c) = authenticate_self(state, p).await?;
            let l = state
                .store
                .lease(agent.tenant_id, id)
                .await?
                .filter(|l| l.agent_id == agent.id)
                .ok_or_else(not_found)?;
            Ok((l, agent_context(&agent, &c)))
        }
    }
}

/// Extends a lease by `increment_secs` from now (never past its maximum):
/// the role's `VALID UNTIL` moves first, then the lease.
pub async fn renew(
    state: &AppState,
    who: Holder<'_>,
    id: Uuid,
    increment_secs: Option<i64>,
) -> Result<Lease, AppError> {
    let (l, ctx) = load_for(state, &who, id, Permission::WriteRegistry, Action::LeaseRenew).await?;
    let now = state.clock.now();
    let increment = match increment_secs {
        Some(i) if i < 1 => {
            return Err(AppError::BadParameter {
                field: "increment".into(),
                detail: "`increment`: must be at least one second".into(),
            });
        }
        Some(i) => i,
        None => template_in(state, l.tenant_id, &l.template)
            .await
            .map_or(l.ttl_secs(l.issued_at), |t| t.default_ttl_secs),
    };
    let Some(until) = l
        .renewal(now, increment)
        .map_err(|e| AppError::Store(idv_store::StoreError::Conflict(e.to_string())))?
    else {
        // At the maximum: the role and the record stay as they are.
        return Ok(l);
    };
    let (_, pool) = target_with_pool(state, l.tenant_id, &l.target).await?;
    target_db::set_valid_until(&pool, &l.username, until).await?;
    Ok(state.store.renew_lease(l.tenant_id, id, until, ctx).await?)
}

/// Revokes a lease: recorded `revocation_pending`, then the role is dropped
/// at once; if the target cannot be reached the lease stays pending and its
/// job retries (the answer says which).
pub async fn revoke(state: &AppState, who: Holder<'_>, id: Uuid) -> Result<Lease, AppError> {
    let (l, ctx) = load_for(state, &who, id, Permission::WriteRegistry, Action::LeaseRevoke).await?;
    let l = state
        .store
        .revoke_lease(l.tenant_id, id, EndReason::Revoked, ctx)
        .await?;
    match drop_and_finish(state, &l).await {
        Ok(done) => Ok(done),
        Err(e) => {
            tracing::warn!(lease = %l.id, error = %e, "lease revocation pending; its job retries");
            Ok(state.store.lease(l.tenant_id, id).await?.unwrap_or(l))
        }
    }
}

async fn drop_and_finish(state: &AppState, l: &Lease) -> Result<Lease, AppError> {
    let (_, pool) = target_with_pool(state, l.tenant_id, &l.target).await?;
    target_db::drop_role(&pool, &l.username).await?;
    Ok(state
        .store
        .finish_lease_revocation(l.tenant_id, l.id, jobs_context())
        .await?)
}

fn jobs_context() -> Context {
    Context::system("jobs")
}

/// Runs a due [`idv_store::JOB_REVOKE_LEASE`] job: a lease at its end (or
/// past its issue deadline) starts its revocation, and a lease being revoked
/// has its role dropped. Errors leave the job for a retry.
pub async fn revoke_due(state: &AppState, job: Job) -> Result<(), AppError> {
    let id = Uuid::parse_str(&job.target_id).map_err(|e| AppError::Internal(format!("lease job target: {e}")))?;
    let Some(mut l) = state.store.lease(job.tenant_id, id).await? else {
        state.store.finish_job(job, jobs_context()).await?;
        return Ok(());
    };
    let now = state.clock.now();
    let reason = match l.state {
        LeaseState::Revoked => {
            state.store.finish_job(job, jobs_context()).await?;
            return Ok(());
        }
        LeaseState::Active if l.expires_at > now => {
            // Renewed after this run was claimed: come back at the new end.
            let error = "not due: the lease was renewed".to_owned();
            state.store.retry_job(job, l.expires_at, error, jobs_context()).await?;
            return Ok(());
        }
        LeaseState::Active => Some(EndReason::Expired),
        LeaseState::Pending => Some(EndReason::Incomplete),
        LeaseState::RevocationPending => None,
    };
    if let Some(reason) = reason {
        l = state
            .store
            .revoke_lease(l.tenant_id, id, reason, jobs_context())
            .await?;
    }
    drop_and_finish(state, &l).await.map(drop)
}

/// Leases, filtered, a page at a time.
pub async fn list(state: &AppState, caller: &Caller, f: &LeaseFilter) -> Result<Vec<Lease>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::LeaseList)
        .await?;
    Ok(state.store.leases(caller.tenant.id, f).await?)
}

/// The leases of the agent that authenticates (its own only).
pub async fn own(state: &AppState, p: &Presented, mut f: LeaseFilter) -> Result<Vec<Lease>, AppError> {
    let (agent, _) = authenticate_self(state, p).await?;
    f.agent_id = Some(agent.id);
    Ok(state.store.leases(agent.tenant_id, &f).await?)
}

/// One lease.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Lease, AppError> {
    Ok(load_for(
        state,
        &Holder::Admin(caller),
        id,
        Permission::ReadRegistry,
        Action::LeaseGet,
    )
    .await?
    .0)
}

/// What a sweep found and dropped.
#[derive(Debug)]
pub struct Swept {
    /// Roles of ours on the target.
    pub found: usize,
    /// Orphans dropped: ours, with no live lease.
    pub dropped: Vec<String>,
}

/// Drops the roles on a target that carry our mark for it but have no live
/// lease (e.g. left by a restored backup of the store). Roles that merely
/// share the prefix are never touched.
pub async fn sweep(state: &AppState, tenant_id: Uuid, name: &str, ctx: Context) -> Result<Swept, AppError> {
    let (t, pool) = target_with_pool(state, tenant_id, name).await?;
    let ours = target_db::tagged_roles(&pool, &t.role_prefix, tenant_id, name).await?;
    // Read after listing: a lease begun meanwhile is `pending` in the store
    // before its role exists, so it is never taken for an orphan.
    let live = state.store.live_lease_roles(tenant_id, name).await?;
    let orphans: Vec<String> = ours.iter().filter(|r| !live.contains(r)).cloned().collect();
    target_db::drop_roles(&pool, &orphans).await?;
    let d = Draft {
        tenant_id,
        actor: ctx.actor.clone(),
        action: Action::DbTargetSweep,
        target_type: TargetType::DbTarget.into(),
        target_id: name.to_owned(),
        outcome: Outcome::Success,
        reason: None,
        request_id: ctx.request_id.clone(),
        details: json!({ "found": ours.len(), "dropped": orphans }),
    };
    state.store.record(d, ctx).await?;
    Ok(Swept {
        found: ours.len(),
        dropped: orphans,
    })
}

/// An administrator sweeps a target now.
pub async fn sweep_now(state: &AppState, caller: &Caller, name: &str) -> Result<Swept, AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::DbTargetSweep)
        .await?;
    sweep(state, caller.tenant.id, name, caller.context()).await
}
