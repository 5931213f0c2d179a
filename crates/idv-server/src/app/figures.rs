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
    Ok(state.store.figures(caller.tenant.id).await?)
}
