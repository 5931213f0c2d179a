//! Reading the audit log.

use idv_core::admin_token::Permission;
use idv_core::audit::{Action, Event, Head};
use idv_store::AuditFilter;

use super::{AppError, Caller};
use crate::AppState;

/// Events of the caller's tenant, or of every tenant (the whole chain, for
/// verification) when a platform operator asks for `all_tenants`.
pub async fn events(
    state: &AppState,
    caller: &Caller,
    mut filter: AuditFilter,
    all_tenants: bool,
) -> Result<Vec<Event>, AppError> {
    caller.require(state, Permission::ReadAudit, Action::AuditRead).await?;
    if all_tenants {
        caller
            .require(state, Permission::ReadAllAudit, Action::AuditReadAllTenants)
            .await?;
        filter.tenant_id = None;
    } else {
        filter.tenant_id = Some(caller.tenant.id);
    }
    Ok(state.store.audit_events(&filter).await?)
}

/// The head of the whole chain (platform operators only: it spans tenants).
pub async fn head(state: &AppState, caller: &Caller) -> Result<Head, AppError> {
    caller
        .require(state, Permission::ReadAllAudit, Action::AuditReadAllTenants)
        .await?;
    Ok(state.store.audit_head().await?)
}
