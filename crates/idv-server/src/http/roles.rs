//! `/v1/roles`: named sets of actions a grant can give.

use axum::extract::State;
use axum::http::StatusCode;
use idv_api::{RolePut, RoleView};
use idv_core::role::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path};
use crate::AppState;
use crate::app::{self, Caller};

fn role_view(r: Role) -> RoleView {
    RoleView {
        name: r.name,
        description: r.description,
        actions: r.actions,
        updated_at: r.updated_at.to_rfc3339(),
    }
}

/// Create or replace a role (a named set of actions).
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "policies", params(("name" = String, Path)),
    request_body = RolePut, responses((status = 200, body = RoleView), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<RolePut>,
) -> Result<axum::Json<RoleView>, ApiError> {
    let r = app::policies::put_role(
        &state,
        &caller,
        &name,
        body.description.unwrap_or_default(),
        body.actions,
    )
    .await?;
    Ok(axum::Json(role_view(r)))
}

/// The tenant's roles.
#[utoipa::path(get, path = "/v1/roles", tag = "policies",
    responses((status = 200, body = Vec<RoleView>)), security(("bearer" = [])))]
pub async fn roles(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<RoleView>>, ApiError> {
    let roles = app::policies::roles(&state, &caller).await?;
    Ok(axum::Json(roles.into_iter().map(role_view).collect()))
}

/// Delete a role that no grant holds.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "policies", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app::policies::delete_role(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(roles))
        .routes(routes!(put_role, delete_role))
}
