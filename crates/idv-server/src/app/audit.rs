//! Reading the audit log.

use idv_core::Timestamp;
use idv_core::admin_token::Permission;
use idv_core::audit::{Action, Break, ChainWalk, Draft, Event, Head, Outcome, TargetType};
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

/// Events read per page while verifying the chain.
const VERIFY_PAGE: i64 = 10_000;

/// What a verification of the whole chain found.
#[derive(Clone, Debug)]
pub struct ChainCheck {
    /// When it ran.
    pub at: Timestamp,
    /// Who ran it.
    pub by: String,
    /// The head it verified up to (the chain's head when it started).
    pub head: i64,
    /// The last event that verified.
    pub verified: i64,
    /// The first broken link, if any.
    pub broken: Option<Break>,
    /// How long it took.
    pub elapsed_ms: u128,
}

/// Walks the whole chain (every tenant's events: a break anywhere breaks
/// every later link) as `idv audit verify` does, records the result as an
/// `audit.verify` event, and keeps it as this node's last check. Platform
/// operators only, as for every whole-chain read; one walk at a time per
/// node.
pub async fn verify_chain(state: &AppState, caller: &Caller) -> Result<ChainCheck, AppError> {
    caller
        .require(state, Permission::ReadAllAudit, Action::AuditVerify)
        .await?;
    let Ok(mut last) = state.chain_check.try_lock() else {
        return Err(AppError::Store(idv_store::StoreError::Conflict(
            "a verification of the chain is running on this node; its result will show when it ends".into(),
        )));
    };
    let started = std::time::Instant::now();
    let head = state.store.audit_head().await?;
    let mut walk = ChainWalk::new(head);
    let mut after = 0;
    while after < head.seq {
        let page = state.store.audit_chain_page(after, VERIFY_PAGE).await?;
        let Some(end) = page.last().map(|e| e.seq) else { break };
        after = end;
        if !walk.push(&page) {
            break;
        }
    }
    let (end, broken) = walk.finish();
    let check = ChainCheck {
        at: state.clock.now(),
        by: caller.principal.token_name.clone(),
        head: head.seq,
        verified: end.seq,
        broken,
        elapsed_ms: started.elapsed().as_millis(),
    };
    let ctx = caller.context();
    let draft = Draft {
        tenant_id: caller.tenant.id,
        actor: ctx.actor.clone(),
        action: Action::AuditVerify,
        target_type: TargetType::AuditChain.into(),
        target_id: head.seq.to_string(),
        outcome: Outcome::Success,
        reason: check.broken.as_ref().map(ToString::to_string),
        request_id: ctx.request_id.clone(),
        details: serde_json::json!({
            "head": check.head, "verified": check.verified, "intact": check.broken.is_none(),
            "broken": check.broken, "elapsed_ms": check.elapsed_ms,
        }),
    };
    state.store.record(draft, ctx).await?;
    *last = Some(check.clone());
    Ok(check)
}

/// This node's last verification of the chain, unless one is running;
/// for platform operators only (it spans tenants).
pub fn last_chain_check(state: &AppState, caller: &Caller) -> Option<ChainCheck> {
    if !caller.principal.may(Permission::ReadAllAudit) {
        return None;
    }
    state.chain_check.try_lock().ok().and_then(|g| g.clone())
}
