//! `/v1/keys`: the tenant's token signing keys and their rotation.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{Page, SigningKeyRotate, SigningKeyRotated, SigningKeyView};
use idv_core::keyring::{KeyState, SigningKey};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::credentials::seconds;
use super::error::ApiError;
use super::extract::Json;
use crate::AppState;
use crate::app::keys::RotateRequest;
use crate::app::{self, Caller};

fn view((k, state): (SigningKey, KeyState)) -> SigningKeyView {
    SigningKeyView {
        kid: k.kid,
        alg: k.alg,
        state: state.as_str().to_owned(),
        created_at: k.created_at.to_rfc3339(),
        activates_at: k.activates_at.to_rfc3339(),
        retired_at: k.retired_at.map(|t| t.to_rfc3339()),
        publish_until: k.publish_until.map(|t| t.to_rfc3339()),
        removed_at: k.removed_at.map(|t| t.to_rfc3339()),
        public_jwk: k.public_jwk,
    }
}

/// The tenant's signing keys with their state, oldest first (removed keys
/// included: their rows are kept for audit).
#[utoipa::path(get, path = "/v1/keys", tag = "oauth",
    responses((status = 200, body = Page<SigningKeyView>)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Page<SigningKeyView>>, ApiError> {
    let keys = app::keys::list(&state, &caller).await?;
    Ok(axum::Json(Page {
        items: keys.into_iter().map(view).collect(),
        next_cursor: None,
    }))
}

/// Rotate the tenant's signing key now: publish a next key ahead (default),
/// or in an emergency sign with a new key at once (`immediate`), removing
/// a compromised key from the JWKS at once (`revoke_old`).
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "oauth",
    request_body = SigningKeyRotate,
    responses((status = 201, body = SigningKeyRotated), (status = 409, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SigningKeyRotate>,
) -> Result<impl IntoResponse, ApiError> {
    let req = RotateRequest {
        publish_ahead_secs: seconds(body.publish_ahead, "publish_ahead")?,
        immediate: body.immediate,
        revoke_old: body.revoke_old,
        reason: body.reason,
    };
    let (created, keys) = app::keys::rotate(&state, &caller, req).await?;
    let answer = SigningKeyRotated {
        created,
        keys: keys.into_iter().map(view).collect(),
    };
    Ok((StatusCode::CREATED, axum::Json(answer)))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list)).routes(routes!(rotate))
}
