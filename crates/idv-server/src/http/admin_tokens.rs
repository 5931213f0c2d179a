//! `/v1/admin-tokens`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{AdminTokenCreate, AdminTokenCreated, AdminTokenView, DurationValue, Page, WhoAmI};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use super::views;
use crate::AppState;
use crate::app::{self, Caller};

/// Create an admin token; the secret is in the answer, once.
#[utoipa::path(post, path = "/v1/admin-tokens", tag = "admin-tokens", request_body = AdminTokenCreate,
    responses((status = 201, body = AdminTokenCreated), (status = 403, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<AdminTokenCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let expires_in = body.expires_in.map(|d| match d {
        DurationValue::Seconds(s) => s.to_string(),
        DurationValue::Text(t) => t,
    });
    let (secret, t) = app::tokens::create(&state, &caller, body.name, &body.role, expires_in, body.platform).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(AdminTokenCreated {
            token: secret,
            admin_token: views::admin_token(&t, &caller.tenant.name),
        }),
    ))
}

/// List the tenant's admin tokens.
#[utoipa::path(get, path = "/v1/admin-tokens", tag = "admin-tokens",
    params(("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<AdminTokenView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<AdminTokenView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["cursor", "limit"])?;
    let after = q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?;
    let limit = page_size(q.parsed("limit", "a number")?)?;
    let items = app::tokens::list(&state, &caller, after, limit).await?;
    Ok(axum::Json(keyset_page(
        &items,
        limit,
        |t| t.id,
        |t| views::admin_token(t, &caller.tenant.name),
    )))
}

/// The caller's own token and the tenant it acts in.
#[utoipa::path(get, path = "/v1/admin-tokens/self", tag = "admin-tokens",
    responses((status = 200, body = WhoAmI), (status = 401, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn current(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<WhoAmI>, ApiError> {
    let (t, home) = app::tokens::current(&state, &caller).await?;
    Ok(axum::Json(WhoAmI {
        admin_token: views::admin_token(&t, &home.name),
        tenant: views::tenant(&caller.tenant),
    }))
}

/// One admin token.
#[utoipa::path(get, path = "/v1/admin-tokens/{id}", tag = "admin-tokens", params(("id" = String, Path)),
    responses((status = 200, body = AdminTokenView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AdminTokenView>, ApiError> {
    let id = parse_id(&id, "admin token")?;
    let t = app::tokens::get(&state, &caller, id).await?;
    Ok(axum::Json(views::admin_token(&t, &caller.tenant.name)))
}

/// Revoke an admin token; it stops working at once.
#[utoipa::path(delete, path = "/v1/admin-tokens/{id}", tag = "admin-tokens", params(("id" = String, Path)),
    responses((status = 200, body = AdminTokenView), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AdminTokenView>, ApiError> {
    let id = parse_id(&id, "admin token")?;
    let t = app::tokens::revoke(&state, &caller, id).await?;
    Ok(axum::Json(views::admin_token(&t, &caller.tenant.name)))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(current))
        .routes(routes!(get, revoke))
}
