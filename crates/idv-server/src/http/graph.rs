//! An agent's `/v1/agents/{id}/graph`: its neighbourhood in the
//! communication graph.

use axum::extract::State;
use idv_api::{AgentGraph, EdgeView};
use idv_store::Edge;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Path, parse_id};
use crate::AppState;
use crate::app::{self, Caller};

fn edge_view(e: Edge) -> EdgeView {
    EdgeView {
        caller: e.caller,
        callee: e.callee,
        action: e.action,
        allowed: e.allowed,
        denied: e.denied,
        first_seen: e.first_seen.to_rfc3339(),
        last_seen: e.last_seen.to_rfc3339(),
    }
}

/// The agent's neighbourhood in the communication graph: who it calls and
/// who calls it, with counts.
#[utoipa::path(get, path = "/v1/agents/{id}/graph", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentGraph), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn graph(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentGraph>, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let (calls, called_by) = app::decisions::graph(&state, &caller, agent_id).await?;
    Ok(axum::Json(AgentGraph {
        agent_id,
        calls: calls.into_iter().map(edge_view).collect(),
        called_by: called_by.into_iter().map(edge_view).collect(),
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(graph))
}
