//! `/v1/tenants`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{Page, TenantCreate, TenantView};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use super::views;
use crate::AppState;
use crate::app::{self, Caller};

/// Create a tenant (platform operator admins only).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = TenantCreate,
    responses((status = 201, body = TenantView), (status = 403, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<TenantCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let t = app::tenants::create(&state, &caller, body.name, body.display_name).await?;
    Ok((StatusCode::CREATED, axum::Json(views::tenant(&t))))
}

/// List tenants (all for platform operators; otherwise the caller's own).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    params(("cursor" = Option<String>, Query, description = "from `next_cursor`"), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<TenantView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<TenantView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["cursor", "limit"])?;
    let after = q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?;
    let limit = page_size(q.parsed("limit", "a number")?)?;
    let items = app::tenants::list(&state, &caller, after, limit).await?;
    Ok(axum::Json(keyset_page(&items, limit, |t| t.id, views::tenant)))
}

/// One tenant by name.
#[utoipa::path(get, path = "/v1/tenants/{name}", tag = "tenants", params(("name" = String, Path)),
    responses((status = 200, body = TenantView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<axum::Json<TenantView>, ApiError> {
    let t = app::tenants::get(&state, &caller, &name).await?;
    Ok(axum::Json(views::tenant(&t)))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create, list)).routes(routes!(get))
}
