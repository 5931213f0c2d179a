//! Tenants: created by platform operators; everyone can see their own.

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::tenant::{self, Tenant};
use idv_store::StoreError;
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// Creates a tenant (platform operators only).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    name: String,
    display_name: Option<String>,
) -> Result<Tenant, AppError> {
    caller
        .require(state, Permission::ManagePlatform, Action::TenantCreate)
        .await?;
    tenant::validate_name(&name).map_err(|e| AppError::BadParameter {
        field: "name".into(),
        detail: e.to_string(),
    })?;
    let display_name = display_name.unwrap_or_else(|| name.clone());
    if display_name.trim().is_empty()
        || display_name.chars().count() > 256
        || display_name.chars().any(char::is_control)
    {
        return Err(AppError::BadParameter {
            field: "display_name".into(),
            detail: "`display_name` must be 1 to 256 printable characters".into(),
        });
    }
    let t = Tenant {
        id: state.clock.new_id(),
        name,
        display_name,
        created_at: state.clock.now(),
    };
    Ok(state.store.create_tenant(t, caller.context()).await?)
}

/// Lists tenants: every tenant for platform operators, else just the caller's.
pub async fn list(state: &AppState, caller: &Caller, after: Option<Uuid>, limit: i64) -> Result<Vec<Tenant>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::TenantList)
        .await?;
    if caller.principal.platform {
        Ok(state.store.tenants(after, limit).await?)
    } else {
        Ok(std::iter::once(caller.tenant.clone())
            .filter(|t| after.is_none_or(|a| t.id > a))
            .collect())
    }
}

/// One tenant by name: platform operators see any, others only their own.
pub async fn get(state: &AppState, caller: &Caller, name: &str) -> Result<Tenant, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::TenantGet)
        .await?;
    let not_found = || StoreError::NotFound {
        what: "tenant",
        id: name.to_owned(),
    };
    if caller.principal.platform {
        Ok(state.store.tenant_by_name(name).await?.ok_or_else(not_found)?)
    } else if caller.tenant.name == name {
        Ok(caller.tenant.clone())
    } else {
        Err(not_found().into())
    }
}

/// The tenant named `name`, from the cache or the store (tenants are
/// never renamed or deleted, so a cached one stays right on every node).
pub async fn by_name(state: &AppState, name: &str) -> Result<Option<Tenant>, AppError> {
    let t = (state.caches.tenants_by_name)
        .find(name.to_owned(), async {
            Ok::<_, AppError>(state.store.tenant_by_name(name).await?)
        })
        .await?;
    if let Some(t) = &t {
        state.caches.tenants_by_id.put(t.id, t.clone());
    }
    Ok(t)
}

/// The tenant with id `id`, from the cache or the store.
pub async fn by_id(state: &AppState, id: Uuid) -> Result<Option<Tenant>, AppError> {
    let t = (state.caches.tenants_by_id)
        .find(id, async { Ok::<_, AppError>(state.store.tenant(id).await?) })
        .await?;
    if let Some(t) = &t {
        state.caches.tenants_by_name.put(t.name.clone(), t.clone());
    }
    Ok(t)
}

pub(crate) fn unexpected() -> AppError {
    AppError::Store(StoreError::Corrupt(
        "the store answered with an unexpected result".into(),
    ))
}
