//! `/v1/token-ttls`: access token lifetimes per tenant and agent class.

use axum::extract::State;
use axum::http::StatusCode;
use idv_api::{DurationValue, TokenTtlSet, TokenTtlView, TokenTtls};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path};
use crate::AppState;
use crate::app::{self, Caller};
use crate::config::MAX_TOKEN_TTL;

/// The tenant's token lifetimes (`*` is its default), the server default and
/// the hard maximum.
#[utoipa::path(get, path = "/v1/token-ttls", tag = "oauth",
    responses((status = 200, body = TokenTtls)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<TokenTtls>, ApiError> {
    let items = app::lifetimes::list(&state, &caller).await?;
    Ok(axum::Json(TokenTtls {
        server_default_secs: state.token_ttl_secs,
        max_secs: i64::try_from(MAX_TOKEN_TTL.as_secs()).unwrap_or(3600),
        items: items
            .into_iter()
            .map(|(class, ttl_secs)| TokenTtlView { class, ttl_secs })
            .collect(),
    }))
}

/// Set the token lifetime of agents of `class` (`*`: the tenant's default).
#[utoipa::path(put, path = "/v1/token-ttls/{class}", tag = "oauth", params(("class" = String, Path)),
    request_body = TokenTtlSet,
    responses((status = 200, body = TokenTtlView), (status = 422, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn set(
    State(state): State<AppState>,
    caller: Caller,
    Path(class): Path<String>,
    Json(body): Json<TokenTtlSet>,
) -> Result<axum::Json<TokenTtlView>, ApiError> {
    let secs = match body.ttl {
        DurationValue::Seconds(s) => s,
        DurationValue::Text(t) => {
            idv_core::duration::parse_seconds(&t).map_err(|e| ApiError::invalid_field("ttl", format!("`ttl`: {e}")))?
        }
    };
    app::lifetimes::set(&state, &caller, &class, Some(secs)).await?;
    Ok(axum::Json(TokenTtlView {
        class,
        ttl_secs: i64::try_from(secs).unwrap_or(i64::MAX),
    }))
}

/// Remove the setting for `class` (`*`: the tenant's default).
#[utoipa::path(delete, path = "/v1/token-ttls/{class}", tag = "oauth", params(("class" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(class): Path<String>,
) -> Result<StatusCode, ApiError> {
    app::lifetimes::set(&state, &caller, &class, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(set, remove))
}
