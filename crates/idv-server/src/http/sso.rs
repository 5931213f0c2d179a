//! `/v1/sso`: the tenant's single sign-on provider for the console.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{SsoPut, SsoView};
use idv_core::admin_token::Role;
use idv_core::sso::SsoConfig;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::Json;
use crate::AppState;
use crate::app::sso::{CALLBACK_PATH, SsoRequest};
use crate::app::{self, Caller};

fn view(state: &AppState, c: &SsoConfig) -> SsoView {
    SsoView {
        issuer: c.issuer.clone(),
        client_id: c.client_id.clone(),
        scopes: c.scopes.clone(),
        groups_claim: c.groups_claim.clone(),
        role_map: c
            .role_map
            .iter()
            .map(|(g, r)| (g.clone(), r.as_str().to_owned()))
            .collect(),
        redirect_uri: format!("{}{CALLBACK_PATH}", state.public_url),
        updated_at: c.updated_at.to_rfc3339(),
        updated_by: c.updated_by.clone(),
    }
}

/// Set (or replace) the tenant's OpenID Connect provider for console
/// sign-in, and which of its groups get which role. The client secret is
/// sealed at rest and never shown again.
#[utoipa::path(put, path = "/v1/sso", tag = "console", request_body = SsoPut,
    responses((status = 200, body = SsoView), (status = 403, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<SsoPut>,
) -> Result<axum::Json<SsoView>, ApiError> {
    let mut role_map = BTreeMap::new();
    for (group, role) in body.role_map {
        let r = role.parse::<Role>().map_err(|_| {
            ApiError::invalid_field("role_map", format!("`{role}` is not a role (admin, operator, auditor)"))
        })?;
        role_map.insert(group, r);
    }
    let c = app::sso::put(
        &state,
        &caller,
        SsoRequest {
            issuer: body.issuer,
            client_id: body.client_id,
            client_secret: body.client_secret,
            scopes: body.scopes,
            groups_claim: body.groups_claim,
            role_map,
        },
    )
    .await?;
    Ok(axum::Json(view(&state, &c)))
}

/// The tenant's single sign-on provider.
#[utoipa::path(get, path = "/v1/sso", tag = "console",
    responses((status = 200, body = SsoView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<SsoView>, ApiError> {
    let c = app::sso::get(&state, &caller).await?;
    Ok(axum::Json(view(&state, &c)))
}

/// Remove the tenant's single sign-on provider (open sessions stay until
/// they end; break-glass sign-in keeps working).
#[utoipa::path(delete, path = "/v1/sso", tag = "console",
    responses((status = 204), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn delete(State(state): State<AppState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    app::sso::delete(&state, &caller).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(put, get, delete))
}
