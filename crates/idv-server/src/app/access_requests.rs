//! Just-in-time access requests: an owner (or an operator) asks for a role
//! or action for an agent they may manage; an approver who is not the
//! requester approves or denies; an approval makes a grant that ends on its
//! own. The same use cases serve the API, the CLI and the console.

use idv_core::access_request::{AccessRequest, NewAccessRequest};
use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::lifecycle::Status;
use idv_core::role::Permission as Granted;
use idv_store::{AccessRequestFilter, AccessRequestOutcome, Decision, StoreError, Verdict};
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

fn refused(e: idv_core::access_request::AccessRequestError) -> AppError {
    match e {
        idv_core::access_request::AccessRequestError::Invalid { field, detail } => AppError::BadParameter {
            field: field.into(),
            detail: format!("`{field}`: {detail}"),
        },
        other => AppError::Store(StoreError::Conflict(other.to_string())),
    }
}

/// Asks for access for an agent the caller may manage (an owner: one of
/// theirs), which must not be retired; the role must exist and the action
/// be in the active policy schema.
pub async fn create(state: &AppState, caller: &Caller, new: NewAccessRequest) -> Result<AccessRequest, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AccessRequestCreate)
        .await?;
    // The request's own fields first, then what it names.
    let r = AccessRequest::new(
        state.clock.new_id(),
        caller.tenant.id,
        new,
        &caller.principal.token_name,
        state.clock.now(),
    )
    .map_err(refused)?;
    let agent = super::agents::existing(state, caller, r.agent_id).await?;
    if agent.status == Status::Retired {
        return Err(AppError::Store(StoreError::Conflict(
            "the agent is retired: it can be given no access".into(),
        )));
    }
    match &r.permission {
        Granted::Role(name) => {
            if !state
                .store
                .roles(caller.tenant.id)
                .await?
                .iter()
                .any(|r| &r.name == name)
            {
                return Err(AppError::BadParameter {
                    field: "role".into(),
                    detail: format!("`role`: no role `{name}` in the tenant"),
                });
            }
        }
        Granted::Action(a) => {
            if !super::policies::active(state, caller.tenant.id).await?.has_action(a) {
                return Err(AppError::BadParameter {
                    field: "action".into(),
                    detail: format!("`action`: `{a}` is not an action of the active policy schema"),
                });
            }
        }
    }
    Ok(state.store.create_access_request(r, caller.context()).await?)
}

/// The tenant's requests (an owner's: those for their agents), newest
/// first.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    mut filter: AccessRequestFilter,
) -> Result<Vec<AccessRequest>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AccessRequestList)
        .await?;
    if let Some(o) = &caller.owner_scope {
        filter.owner = Some(o.clone());
    }
    Ok(state.store.access_requests(caller.tenant.id, &filter).await?)
}

/// One request (an owner's: only one for their agents).
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<AccessRequest, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AccessRequestList)
        .await?;
    let missing = || {
        AppError::Store(StoreError::NotFound {
            what: "access request",
            id: id.to_string(),
        })
    };
    let r = state
        .store
        .access_request(caller.tenant.id, id)
        .await?
        .ok_or_else(missing)?;
    if caller.owner_scope.is_some() {
        super::agents::existing(state, caller, r.agent_id)
            .await
            .map_err(|_| missing())?;
    }
    Ok(r)
}

/// Approves or denies (approvers: `admin`, never the requester), or
/// withdraws (the requester). A refusal by separation of
/// duties is recorded as denied and answered 403.
pub async fn decide(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    verdict: Verdict,
    comment: Option<String>,
) -> Result<AccessRequest, AppError> {
    let action = verdict.action();
    match verdict {
        // An approval makes a grant: those who may grant (`admin`) decide,
        // as `POST /v1/grants` needs.
        Verdict::Approve | Verdict::Deny => {
            caller.require(state, Permission::ManagePolicy, action).await?;
            caller.require_unscoped(state, action).await?;
        }
        Verdict::Withdraw => {
            caller.require(state, Permission::WriteRegistry, action).await?;
        }
    }
    get(state, caller, id).await?;
    let outcome = state
        .store
        .decide_access_request(
            caller.tenant.id,
            id,
            Decision {
                verdict,
                by: caller.principal.token_name.clone(),
                comment: comment.filter(|c| !c.trim().is_empty()),
                grant_id: state.clock.new_id(),
            },
            caller.context(),
        )
        .await?;
    match outcome {
        AccessRequestOutcome::Done(r) => Ok(*r),
        AccessRequestOutcome::Refused(why) => Err(AppError::Forbidden(why)),
    }
}
