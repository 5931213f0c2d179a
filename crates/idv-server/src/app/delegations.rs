//! Delegations (who lends which authority to which agent) and the external
//! issuers whose tokens can start them.

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::delegation::{self, Delegation, Delegator};
use idv_core::trusted_issuer::TrustedIssuer;
use idv_store::StoreError;
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// A delegation request, before validation.
#[derive(Clone, Debug)]
pub struct NewDelegation {
    /// Who lends.
    pub delegator: Delegator,
    /// The agent that may act.
    pub delegate: Uuid,
    /// The most it lends.
    pub scopes: std::collections::BTreeSet<String>,
    /// Audiences allowed under it (empty: any the delegate is granted).
    pub audiences: std::collections::BTreeSet<String>,
    /// What it is for.
    pub task: Option<serde_json::Value>,
    /// Longest actor chain (default 1: no re-delegation).
    pub max_depth: u32,
    /// Lifetime in seconds.
    pub ttl_seconds: u64,
}

/// Records a delegation (roles `admin`, `operator`).
pub async fn create(state: &AppState, caller: &Caller, req: NewDelegation) -> Result<Delegation, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::DelegationCreate)
        .await?;
    if req.ttl_seconds == 0 || req.ttl_seconds > delegation::limits::MAX_TTL_SECS {
        return Err(AppError::BadParameter {
            field: "ttl".into(),
            detail: "`ttl`: must be between 1 second and 30 days".into(),
        });
    }
    let now = state.clock.now();
    let d = Delegation {
        id: state.clock.new_id(),
        tenant_id: caller.tenant.id,
        delegator: req.delegator,
        delegate: req.delegate,
        scopes: req.scopes,
        audiences: req.audiences,
        task: req.task,
        max_depth: req.max_depth,
        created_at: now,
        created_by: caller.actor().reference(),
        expires_at: now.plus_secs(i64::try_from(req.ttl_seconds).unwrap_or(i64::MAX)),
        revoked_at: None,
    };
    delegation::validate(&d)?;
    Ok(state.store.create_delegation(d, caller.context()).await?)
}

/// The tenant's delegations (optionally only those to one agent).
pub async fn list(
    state: &AppState,
    caller: &Caller,
    delegate: Option<Uuid>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delegation>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DelegationList)
        .await?;
    Ok(state
        .store
        .delegations(caller.tenant.id, delegate, after, limit)
        .await?)
}

/// The delegations an agent the caller may see gave to others, newest
/// first.
pub async fn given_by(
    state: &AppState,
    caller: &Caller,
    agent_id: Uuid,
    limit: i64,
) -> Result<Vec<Delegation>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DelegationList)
        .await?;
    super::agents::existing(state, caller, agent_id).await?;
    Ok(state.store.delegations_from(caller.tenant.id, agent_id, limit).await?)
}

/// One delegation.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Delegation, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::DelegationRead)
        .await?;
    state.store.delegation(caller.tenant.id, id).await?.ok_or_else(|| {
        StoreError::NotFound {
            what: "delegation",
            id: id.to_string(),
        }
        .into()
    })
}

/// Revokes a delegation: every token issued through it, however deep the
/// chain, is inactive from the commit on, on every node (introspection reads
/// the chain's delegations from the store).
pub async fn revoke(state: &AppState, caller: &Caller, id: Uuid) -> Result<Delegation, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::DelegationRevoke)
        .await?;
    Ok(state
        .store
        .revoke_delegation(caller.tenant.id, id, caller.context())
        .await?)
}

/// Trusts an external issuer (role `admin`).
pub async fn trust(
    state: &AppState,
    caller: &Caller,
    issuer: String,
    keys: Vec<serde_json::Value>,
    audience: Option<String>,
) -> Result<TrustedIssuer, AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::TrustedIssuerCreate)
        .await?;
    let t = TrustedIssuer {
        id: state.clock.new_id(),
        tenant_id: caller.tenant.id,
        issuer,
        keys,
        audience,
        created_at: state.clock.now(),
        created_by: caller.actor().reference(),
    };
    t.validate()?;
    Ok(state.store.create_trusted_issuer(t, caller.context()).await?)
}

/// The tenant's trusted issuers.
pub async fn issuers(state: &AppState, caller: &Caller) -> Result<Vec<TrustedIssuer>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::TrustedIssuerList)
        .await?;
    Ok(state.store.trusted_issuers(caller.tenant.id).await?)
}

/// Stops trusting an issuer (role `admin`).
pub async fn distrust(state: &AppState, caller: &Caller, id: Uuid) -> Result<TrustedIssuer, AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::TrustedIssuerDelete)
        .await?;
    Ok(state
        .store
        .delete_trusted_issuer(caller.tenant.id, id, caller.context())
        .await?)
}
