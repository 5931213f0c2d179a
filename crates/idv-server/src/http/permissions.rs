//! An agent's `/v1/agents/{id}/permissions`: what it may do and has used.

use axum::extract::State;
use idv_api::{AgentPermissions, UsageView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Path, parse_id};
use super::grants::grant_view;
use crate::AppState;
use crate::app::{self, Caller};

/// What an agent may do (its roles, and the actions its roles, grants and
/// the policies naming it or its roles, groups or class give), its own
/// grants, and what it has used.
#[utoipa::path(get, path = "/v1/agents/{id}/permissions", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = AgentPermissions), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentPermissions>, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let p = app::decisions::permissions(&state, &caller, agent_id).await?;
    let now = state.clock.now();
    Ok(axum::Json(AgentPermissions {
        agent_id,
        roles: p.roles,
        actions: p.permitted.actions,
        conditional_actions: p.permitted.conditional,
        policies: p.permitted.policies,
        grants: p.grants.into_iter().map(|g| grant_view(g, now)).collect(),
        usage: p
            .usage
            .into_iter()
            .map(|u| UsageView {
                action: u.action,
                resource_type: u.resource_type,
                count: u.count,
                first_used: u.first_used.to_rfc3339(),
                last_used: u.last_used.to_rfc3339(),
            })
            .collect(),
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(permissions))
}
