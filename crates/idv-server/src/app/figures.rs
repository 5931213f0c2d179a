//! Dashboard figures: a tenant's key counts for the console's overview.

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::credential::Credential;
use idv_store::{Figures, FiguresAsk};

use super::{AppError, Caller};
use crate::AppState;

/// The key figures of the caller's tenant (anyone who may read the
/// registry).
pub async fn tenant(state: &AppState, caller: &Caller) -> Result<Figures, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentList)
        .await?;
    Ok(state
        .store
        .figures(ask(state, caller.tenant.id, caller.owner_scope.as_deref()))
        .await?)
}

/// The caller's tenant's (or, for an owner, their agents') credentials due
/// for rotation and overdue, at most `limit` of each.
pub async fn rotations(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> Result<(Vec<Credential>, Vec<Credential>), AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::CredentialList)
        .await?;
    let now = state.clock.now();
    let day = 86_400 * 1_000_000;
    let owner = caller.owner_scope.as_deref();
    let tenant = caller.tenant.id;
    let due = state
        .store
        .credentials_expiring(tenant, owner, now, now.plus_secs(ROTATION_DUE_DAYS * 86_400), limit)
        .await?;
    let from = idv_core::Timestamp::from_micros(now.as_micros() - idv_store::OVERDUE_DAYS * day);
    let overdue = state
        .store
        .credentials_expiring(tenant, owner, from, now, limit)
        .await?;
    Ok((due, overdue))
}

/// Credentials expiring within this many days are due for rotation.
pub const ROTATION_DUE_DAYS: i64 = 7;

/// Days of history the overview's trends cover (twelve weeks).
pub const TREND_DAYS: i64 = 84;

fn ask<'a>(state: &AppState, tenant_id: uuid::Uuid, owner: Option<&'a str>) -> FiguresAsk<'a> {
    FiguresAsk {
        tenant_id,
        owner,
        now: state.clock.now(),
        due_within_secs: ROTATION_DUE_DAYS * 86_400,
        trend_days: TREND_DAYS,
    }
}

/// The caller's tenant's agent-to-agent graph, at most `max_edges` edges.
pub async fn graph(state: &AppState, caller: &Caller, max_edges: i64) -> Result<idv_store::Graph, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentGraph)
        .await?;
    caller.require_unscoped(state, Action::AgentGraph).await?;
    Ok(state.store.graph(caller.tenant.id, max_edges).await?)
}

/// What the caller's tenant's busiest agents do: agents × actions.
pub async fn usage(
    state: &AppState,
    caller: &Caller,
    top_agents: usize,
) -> Result<Vec<idv_store::UsageCell>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentPermissions)
        .await?;
    caller.require_unscoped(state, Action::AgentPermissions).await?;
    Ok(state.store.usage_matrix(caller.tenant.id, top_agents).await?)
}

/// The caller's tenant's decisions per UTC hour over the last `weeks`
/// weeks (every action summed).
pub async fn decision_hours(
    state: &AppState,
    caller: &Caller,
    weeks: i64,
) -> Result<Vec<idv_store::HourCount>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentPermissions)
        .await?;
    caller.require_unscoped(state, Action::AgentPermissions).await?;
    let now_hour = state.clock.now().as_micros().div_euclid(3_600_000_000);
    Ok(state
        .store
        .decision_hours(caller.tenant.id, now_hour - weeks * 168 + 1)
        .await?)
}

/// What the live system knows for the ROI calculator: agents managed, and
/// credential rotations done in the last 90 days.
pub async fn roi_facts(state: &AppState, caller: &Caller) -> Result<(i64, i64), AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentList)
        .await?;
    caller.require_unscoped(state, Action::AgentList).await?;
    let agents = state.store.count_agents(Some(caller.tenant.id)).await?;
    let since = idv_core::Timestamp::from_micros(state.clock.now().as_micros() - 90 * 86_400 * 1_000_000);
    let rotations = state
        .store
        .count_events(caller.tenant.id, Action::CredentialRotate, since)
        .await?;
    Ok((agents, rotations))
}

/// The `limit` tenants with the most agents (platform operators): id,
/// display name, agents.
pub async fn largest_tenants(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> Result<Vec<(uuid::Uuid, String, i64)>, AppError> {
    caller
        .require(state, Permission::ManagePlatform, Action::TenantList)
        .await?;
    Ok(state.store.largest_tenants(limit).await?)
}

/// Every tenant with its key figures, for platform operators (a PE firm
/// runs one tenant per portfolio company). At most `limit` tenants.
pub async fn portfolio(
    state: &AppState,
    caller: &Caller,
    limit: i64,
) -> Result<Vec<(idv_core::tenant::Tenant, Figures)>, AppError> {
    caller
        .require(state, Permission::ManagePlatform, Action::TenantList)
        .await?;
    let mut out = Vec::new();
    for t in state.store.tenants(None, limit).await? {
        let f = state
            .store
            .figures(FiguresAsk {
                trend_days: 0,
                ..ask(state, t.id, None)
            })
            .await?;
        out.push((t, f));
    }
    Ok(out)
}
