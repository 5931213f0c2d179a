//! `/v1/trusted-issuers`: outside issuers whose tokens a delegation may name.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{Page, TrustedIssuerCreate, TrustedIssuerView};
use idv_core::trusted_issuer::TrustedIssuer;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, parse_id};
use crate::AppState;
use crate::app::{self, Caller};

fn issuer_view(t: &TrustedIssuer) -> TrustedIssuerView {
    TrustedIssuerView {
        id: t.id,
        issuer: t.issuer.clone(),
        jwks: json!({ "keys": t.keys }),
        audience: t.audience.clone(),
        created_at: t.created_at.to_rfc3339(),
        created_by: t.created_by.clone(),
    }
}

/// Trust an external issuer (e.g. the enterprise IdP) whose tokens can start
/// delegations; its keys are given here and never fetched.
#[utoipa::path(post, path = "/v1/trusted-issuers", tag = "delegations", request_body = TrustedIssuerCreate,
    responses((status = 201, body = TrustedIssuerView), (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn trust(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<TrustedIssuerCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let keys = match body.jwks.get("keys") {
        Some(Value::Array(k)) => k.clone(),
        _ => {
            return Err(ApiError::invalid_field(
                "jwks",
                "`jwks` must be a JWK set: `{\"keys\": [...]}`",
            ));
        }
    };
    let t = app::delegations::trust(&state, &caller, body.issuer, keys, body.audience).await?;
    Ok((StatusCode::CREATED, axum::Json(issuer_view(&t))))
}

/// The tenant's trusted issuers.
#[utoipa::path(get, path = "/v1/trusted-issuers", tag = "delegations",
    responses((status = 200, body = Page<TrustedIssuerView>)), security(("bearer" = [])))]
pub async fn issuers(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Page<TrustedIssuerView>>, ApiError> {
    let items = app::delegations::issuers(&state, &caller).await?;
    Ok(axum::Json(Page {
        items: items.iter().map(issuer_view).collect(),
        next_cursor: None,
    }))
}

/// Stop trusting an issuer.
#[utoipa::path(delete, path = "/v1/trusted-issuers/{id}", tag = "delegations", params(("id" = String, Path)),
    responses((status = 200, body = TrustedIssuerView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn distrust(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<TrustedIssuerView>, ApiError> {
    let id = parse_id(&id, "trusted issuer")?;
    let t = app::delegations::distrust(&state, &caller, id).await?;
    Ok(axum::Json(issuer_view(&t)))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(trust, issuers))
        .routes(routes!(distrust))
}
