//! `/v1/db/targets`: the PostgreSQL databases dynamic credentials are made
//! in, and sweeping a target of roles no lease holds.

use axum::extract::State;
use axum::http::StatusCode;
use idv_api::{DbSweepView, DbTargetPut, DbTargetView, Page};
use idv_core::db_template::DbTarget;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path};
use crate::AppState;
use crate::app::{self, Caller};

fn target_view(t: &DbTarget) -> DbTargetView {
    DbTargetView {
        name: t.name.clone(),
        host: t.host.clone(),
        port: t.port,
        database: t.database.clone(),
        admin_user: t.admin_user.clone(),
        role_prefix: t.role_prefix.clone(),
        updated_at: t.updated_at.to_rfc3339(),
        updated_by: t.updated_by.clone(),
    }
}

/// Register or replace a target database. The server connects with the
/// given URL first and checks that the role there may create roles.
#[utoipa::path(put, path = "/v1/db/targets/{name}", tag = "leases", params(("name" = String, Path)),
    request_body = DbTargetPut,
    responses((status = 200, body = DbTargetView), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put_target(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<DbTargetPut>,
) -> Result<axum::Json<DbTargetView>, ApiError> {
    let t = app::leases::put_target(&state, &caller, &name, &body.connection_url, body.role_prefix).await?;
    Ok(axum::Json(target_view(&t)))
}

/// The tenant's target databases.
#[utoipa::path(get, path = "/v1/db/targets", tag = "leases",
    responses((status = 200, body = Page<DbTargetView>)), security(("bearer" = [])))]
pub async fn targets(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Page<DbTargetView>>, ApiError> {
    let items = app::leases::targets(&state, &caller).await?;
    Ok(axum::Json(Page {
        items: items.iter().map(target_view).collect(),
        next_cursor: None,
    }))
}

/// One target database.
#[utoipa::path(get, path = "/v1/db/targets/{name}", tag = "leases", params(("name" = String, Path)),
    responses((status = 200, body = DbTargetView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn target(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<DbTargetView>, ApiError> {
    Ok(axum::Json(target_view(
        &app::leases::target(&state, &caller, &name).await?,
    )))
}

/// Remove a target no template or live lease uses (409 otherwise).
#[utoipa::path(delete, path = "/v1/db/targets/{name}", tag = "leases", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_target(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app::leases::delete_target(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Drop, now, the roles on a target that carry our mark but have no live
/// lease (the server also sweeps every target periodically).
#[utoipa::path(post, path = "/v1/db/targets/{name}/sweep", tag = "leases", params(("name" = String, Path)),
    responses((status = 200, body = DbSweepView), (status = 404, body = idv_api::Problem),
        (status = 502, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn sweep(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<DbSweepView>, ApiError> {
    let s = app::leases::sweep_now(&state, &caller, &name).await?;
    Ok(axum::Json(DbSweepView {
        found: s.found,
        dropped: s.dropped,
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(targets))
        .routes(routes!(put_target, target, delete_target))
        .routes(routes!(sweep))
}
