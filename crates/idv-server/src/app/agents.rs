//! The agent registry and lifecycle.

use idv_core::admin_token::Permission;
use idv_core::agent::{Agent, AgentChanges, NewAgent, OwnerReassignment};
use idv_core::audit::Action;
use idv_core::lifecycle::Transition;
use idv_store::{AgentFilter, StoreError};
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// Most agents in one bulk request.
pub const MAX_BULK: usize = 50_000;

/// Registers agents, all or nothing: if any is refused, none is created.
/// For `bulk` requests, field errors name the item (`agents[3].name`).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    specs: Vec<NewAgent>,
    bulk: bool,
) -> Result<Vec<Agent>, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AgentCreate)
        .await?;
    if specs.is_empty() || specs.len() > MAX_BULK {
        return Err(AppError::BadParameter {
            field: "agents".into(),
            detail: format!("send between 1 and {MAX_BULK} agents per request, not {}", specs.len()),
        });
    }
    if let Some(owner) = &caller.owner_scope
        && specs.iter().any(|s| &s.owner != owner)
    {
        return Err(AppError::Forbidden("an owner registers agents they own".into()));
    }
    let now = state.clock.now();
    let by = caller.actor().reference();
    let agents = specs
        .into_iter()
        .enumerate()
        .map(|(i, spec)| {
            spec.into_agent(state.clock.new_id(), caller.tenant.id, now, &by)
                .map_err(|e| match e {
                    idv_core::agent::AgentError::Invalid { field, reason } if bulk => {
                        idv_core::agent::AgentError::Invalid {
                            field: format!("agents[{i}].{field}"),
                            reason,
                        }
                    }
                    other => other,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(state
        .store
        .create_agents(caller.tenant.id, agents, caller.context())
        .await?)
}

/// One agent of the caller's tenant.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Agent, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentRead)
        .await?;
    existing(state, caller, id).await
}

/// Agent `id` of the caller's tenant, or 404 — also when the caller is
/// scoped to their own agents and it is someone else's (no permission
/// check: for use cases that checked their own).
pub async fn existing(state: &AppState, caller: &Caller, id: Uuid) -> Result<Agent, AppError> {
    let agent = state.store.agent(caller.tenant.id, id).await?.ok_or_else(|| {
        AppError::from(StoreError::NotFound {
            what: "agent",
            id: id.to_string(),
        })
    })?;
    caller.owns(&agent)?;
    Ok(agent)
}

/// Agents of the caller's tenant matching `filter`.
pub async fn list(state: &AppState, caller: &Caller, filter: &AgentFilter) -> Result<Vec<Agent>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::AgentList)
        .await?;
    match &caller.owner_scope {
        Some(owner) => {
            let mine = AgentFilter {
                owner: Some(owner.clone()),
                ..filter.clone()
            };
            Ok(state.store.agents(caller.tenant.id, &mine).await?)
        }
        None => Ok(state.store.agents(caller.tenant.id, filter).await?),
    }
}

/// Changes metadata; `if_match` guards against lost updates.
pub async fn update(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    if_match: Option<i64>,
    changes: AgentChanges,
) -> Result<Agent, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AgentUpdate)
        .await?;
    if caller.owner_scope.is_some() {
        existing(state, caller, id).await?;
        // An owner may not give their agent away (or take someone else's).
        if changes
            .owner
            .as_ref()
            .is_some_and(|o| Some(o) != caller.owner_scope.as_ref())
        {
            return Err(AppError::Forbidden(
                "an owner cannot hand an agent to someone else".into(),
            ));
        }
    }
    Ok(state
        .store
        .update_agent(caller.tenant.id, id, if_match, changes, caller.context())
        .await?)
}

/// Moves every live agent of `from` to `to` (a person left or changed
/// role); answers the agents moved.
pub async fn reassign_owner(
    state: &AppState,
    caller: &Caller,
    from: String,
    to: String,
) -> Result<Vec<Agent>, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AgentReassignOwner)
        .await?;
    caller.require_unscoped(state, Action::AgentReassignOwner).await?;
    let r = OwnerReassignment::new(from, to)?;
    Ok(state
        .store
        .reassign_owner(caller.tenant.id, r, caller.context())
        .await?)
}

/// Moves an agent through its lifecycle; the reason is required.
pub async fn transition(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    transition: Transition,
    reason: String,
) -> Result<Agent, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AgentTransition)
        .await?;
    if caller.owner_scope.is_some() {
        existing(state, caller, id).await?;
    }
    idv_core::agent::validate_reason(&reason)?;
    Ok(state
        .store
        .transition_agent(caller.tenant.id, id, transition, reason, caller.context())
        .await?)
}
