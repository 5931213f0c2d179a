//! Access token lifetimes per tenant and per agent class, bounded by the
//! server's hard maximum. Resolution for an agent: its class's setting, else
//! the tenant's default, else the server's `--token-ttl`.

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;
use crate::config::MAX_TOKEN_TTL;

/// The tenant-wide setting's name on the wire.
pub const TENANT_DEFAULT: &str = "*";

fn class_ok(c: &str) -> bool {
    !c.is_empty()
        && c.len() <= 128
        && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The stored key of `class` (`*`: the tenant default, stored as empty).
fn key(class: &str) -> Result<String, AppError> {
    if class == TENANT_DEFAULT {
        return Ok(String::new());
    }
    if !class_ok(class) {
        return Err(AppError::BadParameter {
            field: "class".into(),
            detail: format!("`{class}` is neither `*` nor a class name (letters, digits, `.`, `_`, `-`)"),
        });
    }
    Ok(class.to_owned())
}

/// Sets (or with `None` removes) a lifetime; role `admin`, audited.
pub async fn set(state: &AppState, caller: &Caller, class: &str, ttl_secs: Option<u64>) -> Result<(), AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::TokenTtlSet)
        .await?;
    let class = key(class)?;
    let max = MAX_TOKEN_TTL.as_secs();
    if let Some(t) = ttl_secs
        && !(1..=max).contains(&t)
    {
        return Err(AppError::BadParameter {
            field: "ttl".into(),
            detail: format!("`ttl`: must be between 1 second and {max} seconds (the server's hard maximum)"),
        });
    }
    let ttl_secs = ttl_secs.map(|t| i64::try_from(t).unwrap_or(i64::MAX));
    Ok(state
        .store
        .set_token_ttl(caller.tenant.id, class, ttl_secs, caller.context())
        .await?)
}

/// The tenant's settings as `(class or "*", seconds)`.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<(String, i64)>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::TokenTtlList)
        .await?;
    Ok(state
        .store
        .token_ttls(caller.tenant.id)
        .await?
        .into_iter()
        .map(|(c, t)| (if c.is_empty() { TENANT_DEFAULT.to_owned() } else { c }, t))
        .collect())
}

/// The lifetime of a token for an agent of `class` in `tenant_id`, in seconds.
pub async fn lifetime(state: &AppState, tenant_id: Uuid, class: Option<&str>) -> Result<i64, AppError> {
    let generation = state.store.changes().current();
    let settings = (state.caches.token_ttls)
        .get_or_load(tenant_id, generation, async {
            Ok::<_, AppError>(state.store.token_ttls(tenant_id).await?)
        })
        .await?;
    let find = |c: &str| settings.iter().find(|(k, _)| k == c).map(|(_, t)| *t);
    let chosen = class
        .and_then(find)
        .or_else(|| find(""))
        .unwrap_or(state.token_ttl_secs);
    let max = i64::try_from(MAX_TOKEN_TTL.as_secs()).unwrap_or(3600);
    Ok(chosen.clamp(1, max))
}
