//! `/v1/db/templates`: how a lease's role is made in a target database, and
//! for how long it may live.

use axum::extract::State;
use axum::http::StatusCode;
use idv_api::{DbTemplatePut, DbTemplateView, Page};
use idv_core::db_template::DbTemplate;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path};
use super::leases::secs;
use crate::AppState;
use crate::app::leases::TemplateInput;
use crate::app::{self, Caller};

/// A template's lease time when it names none.
const DEFAULT_TTL_SECS: i64 = 3_600;
/// A template's longest lease when it names none.
const DEFAULT_MAX_TTL_SECS: i64 = 86_400;

fn template_view(t: &DbTemplate) -> DbTemplateView {
    DbTemplateView {
        name: t.name.clone(),
        target: t.target.clone(),
        statements: t.statements.clone(),
        default_ttl_secs: t.default_ttl_secs,
        max_ttl_secs: t.max_ttl_secs,
        updated_at: t.updated_at.to_rfc3339(),
        updated_by: t.updated_by.clone(),
    }
}

/// Create or replace a role template; its statements must all be on the
/// allow-list (422 names the first that is not).
#[utoipa::path(put, path = "/v1/db/templates/{name}", tag = "leases", params(("name" = String, Path)),
    request_body = DbTemplatePut,
    responses((status = 200, body = DbTemplateView), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<DbTemplatePut>,
) -> Result<axum::Json<DbTemplateView>, ApiError> {
    let max_ttl_secs = secs(body.max_ttl, "max_ttl")?.unwrap_or(DEFAULT_MAX_TTL_SECS);
    let default_ttl_secs = secs(body.default_ttl, "default_ttl")?.unwrap_or(DEFAULT_TTL_SECS.min(max_ttl_secs));
    let input = TemplateInput {
        target: body.target,
        statements: body.statements,
        default_ttl_secs,
        max_ttl_secs,
    };
    let t = app::leases::put_template(&state, &caller, &name, input).await?;
    Ok(axum::Json(template_view(&t)))
}

/// The tenant's role templates.
#[utoipa::path(get, path = "/v1/db/templates", tag = "leases",
    responses((status = 200, body = Page<DbTemplateView>)), security(("bearer" = [])))]
pub async fn templates(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Page<DbTemplateView>>, ApiError> {
    let items = app::leases::templates(&state, &caller).await?;
    Ok(axum::Json(Page {
        items: items.iter().map(template_view).collect(),
        next_cursor: None,
    }))
}

/// One role template.
#[utoipa::path(get, path = "/v1/db/templates/{name}", tag = "leases", params(("name" = String, Path)),
    responses((status = 200, body = DbTemplateView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn template(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<DbTemplateView>, ApiError> {
    Ok(axum::Json(template_view(
        &app::leases::template(&state, &caller, &name).await?,
    )))
}

/// Remove a template no live lease uses (409 otherwise).
#[utoipa::path(delete, path = "/v1/db/templates/{name}", tag = "leases", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_template(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app::leases::delete_template(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(templates))
        .routes(routes!(put_template, template, delete_template))
}
