//! Admin tokens: created by tenant admins, shown once, stored as keyed hashes.

use idv_core::admin_token::{self, AdminToken, Permission, Role};
use idv_core::audit::Action;
use idv_core::duration;
use idv_core::tenant::Tenant;
use idv_store::StoreError;
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// Creates an admin token in the caller's tenant; returns the secret once.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    name: String,
    role: &str,
    expires_in: Option<String>,
    platform: bool,
) -> Result<(String, AdminToken), AppError> {
    caller
        .require(state, Permission::ManageTokens, Action::AdminTokenCreate)
        .await?;
    let role: Role = role
        .parse()
        .map_err(|e: admin_token::UnknownRole| AppError::BadParameter {
            field: "role".into(),
            detail: e.to_string(),
        })?;
    if role == Role::Owner {
        return Err(AppError::BadParameter {
            field: "role".into(),
            detail: "`owner` is a role for people signed in with single sign-on, not for tokens".into(),
        });
    }
    if platform {
        caller
            .require(state, Permission::ManagePlatform, Action::AdminTokenCreatePlatform)
            .await?;
    }
    if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(AppError::BadParameter {
            field: "name".into(),
            detail: "`name` must be 1 to 128 printable characters".into(),
        });
    }
    let now = state.clock.now();
    let expires_at = match expires_in {
        None => None,
        Some(text) => {
            let secs = duration::parse_seconds(&text).map_err(|e| AppError::BadParameter {
                field: "expires_in".into(),
                detail: e.to_string(),
            })?;
            Some(now.plus_secs(i64::try_from(secs).unwrap_or(i64::MAX)))
        }
    };
    let secret = admin_token::generate();
    let token = AdminToken {
        id: state.clock.new_id(),
        tenant_id: caller.tenant.id,
        name,
        role,
        platform,
        hint: admin_token::hint(&secret),
        created_at: now,
        created_by: caller.actor().reference(),
        expires_at,
        revoked_at: None,
    };
    let secret_hash = state.token_hasher.hash(&secret);
    let t = state
        .store
        .create_admin_token(token, secret_hash, caller.context())
        .await?;
    Ok((secret, t))
}

/// The tenant's admin tokens.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AdminToken>, AppError> {
    caller
        .require(state, Permission::ManageTokens, Action::AdminTokenList)
        .await?;
    Ok(state.store.admin_tokens(caller.tenant.id, after, limit).await?)
}

/// One admin token of the tenant.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<AdminToken, AppError> {
    caller
        .require(state, Permission::ManageTokens, Action::AdminTokenGet)
        .await?;
    state.store.admin_token(caller.tenant.id, id).await?.ok_or_else(|| {
        StoreError::NotFound {
            what: "admin token",
            id: id.to_string(),
        }
        .into()
    })
}

/// The caller's own token and the tenant it belongs to (which may differ
/// from the tenant the request acts in, for platform tokens).
pub async fn current(state: &AppState, caller: &Caller) -> Result<(AdminToken, Tenant), AppError> {
    let gone = || AppError::Unauthenticated("the admin token no longer exists".into());
    let token = state
        .store
        .admin_token(caller.principal.home_tenant, caller.principal.token_id)
        .await?
        .ok_or_else(gone)?;
    let home = state.store.tenant(token.tenant_id).await?.ok_or_else(gone)?;
    Ok((token, home))
}

/// Revokes an admin token of the tenant; it stops working at once.
pub async fn revoke(state: &AppState, caller: &Caller, id: Uuid) -> Result<AdminToken, AppError> {
    caller
        .require(state, Permission::ManageTokens, Action::AdminTokenRevoke)
        .await?;
    // Revoking a platform token is a platform operation, like creating one:
    // a tenant admin must not be able to lock the platform operators out.
    let target = state.store.admin_token(caller.tenant.id, id).await?;
    if target.is_some_and(|t| t.platform) {
        caller
            .require(state, Permission::ManagePlatform, Action::AdminTokenRevokePlatform)
            .await?;
    }
    Ok(state
        .store
        .revoke_admin_token(caller.tenant.id, id, caller.context())
        .await?)
}
