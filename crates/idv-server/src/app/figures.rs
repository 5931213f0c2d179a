//! Dashboard figures: a tenant's key counts for the console's overview.

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_store::Figures;

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
        .figures(caller.tenant.id, caller.owner_scope.as_deref())
        .await?)
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
        let f = state.store.figures(t.id, None).await?;
        out.push((t, f));
    }
    Ok(out)
}
