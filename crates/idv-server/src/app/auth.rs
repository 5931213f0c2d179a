//! Authenticating admin tokens and choosing the tenant a request acts in.

use idv_core::admin_token::{self, Principal};
use idv_core::audit::{Action, Actor, ActorKind, Draft, Outcome, TargetType};
use idv_core::tenant::DEFAULT_TENANT;
use serde_json::json;

use super::{AppError, Caller};
use crate::AppState;

/// Authenticates a bearer token and resolves the tenant. `tenant_name` is the
/// tenant a platform operator asked to act in (`X-IDV-Tenant`); any other
/// token may only name its own tenant.
pub async fn authenticate(state: &AppState, bearer: &str, tenant_name: Option<&str>) -> Result<Caller, AppError> {
    let request_id = super::request::id();
    // A token with our prefix but a bad checksum is a typo or truncation:
    // refuse it without touching the database.
    if bearer.starts_with(admin_token::PREFIX) {
        admin_token::check_format(bearer).map_err(|e| AppError::Unauthenticated(e.to_string()))?;
    }
    let hash = state.token_hasher.hash(bearer);
    let token = super::cache::admin_token(state, &hash)
        .await?
        .filter(|t| t.is_usable(state.clock.now()))
        .ok_or_else(|| AppError::Unauthenticated("the admin token is unknown, expired or revoked".into()))?;
    let home = super::tenants::by_id(state, token.tenant_id)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the admin token's tenant no longer exists".into()))?;
    let principal = Principal {
        token_id: token.id,
        token_name: token.name,
        home_tenant: token.tenant_id,
        role: token.role,
        platform: token.platform,
    };
    let (tenant, cross_tenant) = match tenant_name {
        None => (home, false),
        Some(name) if name == home.name => (home, false),
        Some(name) => {
            if !principal.platform {
                // An authorization decision like any other: on the record
                // (in the token's own tenant) before the refusal is sent.
                let caller = Caller {
                    principal,
                    tenant: home,
                    cross_tenant: false,
                    request_id,
                    session: None,
                    person: None,
                    owner_scope: None,
                };
                let ctx = caller.context();
                let draft = Draft {
                    tenant_id: caller.tenant.id,
                    actor: ctx.actor.clone(),
                    action: Action::TenantActIn,
                    target_type: TargetType::Tenant.into(),
                    target_id: name.to_owned(),
                    outcome: Outcome::Denied,
                    reason: None,
                    request_id: ctx.request_id.clone(),
                    details: json!({ "platform": false }),
                };
                state.store.record(draft, ctx).await?;
                return Err(AppError::Forbidden(format!(
                    "this token belongs to tenant `{}` and cannot act in `{name}`",
                    caller.tenant.name
                )));
            }
            let t = super::tenants::by_name(state, name).await?.ok_or_else(|| {
                AppError::Store(idv_store::StoreError::NotFound {
                    what: "tenant",
                    id: name.to_owned(),
                })
            })?;
            (t, true)
        }
    };
    Ok(Caller {
        principal,
        tenant,
        cross_tenant,
        request_id,
        session: None,
        person: None,
        owner_scope: None,
    })
}

/// After a failed admin token check: `None` within the budgets of the
/// caller's address and of the token's first characters (answered 401 as
/// usual); past them, the refusal is counted on the record (in the default
/// tenant: an unknown token names none) and `Some(seconds)` to wait, for a
/// 429 ([`super::throttle`]).
pub async fn failed(state: &AppState, bearer: &str) -> Option<u64> {
    let (source, now) = (super::request::peer(), state.clock.now());
    // The format's prefix and a few characters, as in token hints: never
    // enough of a secret to matter.
    let hint: String = bearer.chars().take(10).collect();
    let tenant = super::tenants::by_name(state, DEFAULT_TENANT).await.ok().flatten()?;
    let wait = state.failed_auth.spend(tenant.id, Some(&hint), source, now)?;
    let draft = Draft {
        tenant_id: tenant.id,
        actor: Actor {
            kind: ActorKind::Anonymous,
            name: hint.clone(),
            token_id: None,
        },
        action: Action::AdminTokenAuthenticate,
        target_type: TargetType::AdminToken.into(),
        target_id: hint,
        outcome: Outcome::Denied,
        reason: None,
        request_id: Some(super::request::id()),
        details: json!({ "error": "unauthorized" }),
    };
    state.failed_auth.count(&draft, source, now);
    Some(wait)
}
