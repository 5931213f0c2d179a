//! `/v1/agents/{id}/credentials` and `/v1/credentials/{id}`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{CredentialCreate, CredentialCreated, CredentialView, DurationValue, Page};
use idv_core::credential::{Kind, NewCredential};

use super::error::ApiError;
use super::extract::{Json, Path, parse_id};
use super::views;
use crate::AppState;
use crate::app::{self, Caller};

fn new_credential(body: CredentialCreate) -> Result<NewCredential, ApiError> {
    let invalid = |field: &str, detail: String| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            detail,
        )
        .with_field(field)
    };
    let kind: Kind = body
        .type_
        .parse()
        .map_err(|e: idv_core::credential::UnknownKind| invalid("type", e.to_string()))?;
    let ttl_seconds = match body.ttl {
        None => None,
        Some(DurationValue::Seconds(s)) => Some(s),
        Some(DurationValue::Text(t)) => {
            Some(idv_core::duration::parse_seconds(&t).map_err(|e| invalid("ttl", format!("`ttl`: {e}")))?)
        }
    };
    Ok(NewCredential {
        kind,
        jwk: body.jwk,
        scopes: body.scopes,
        ttl_seconds,
    })
}

/// Issue a credential to an agent; a secret or API key is in the answer, once.
#[utoipa::path(post, path = "/v1/agents/{id}/credentials", tag = "credentials", params(("id" = String, Path)),
    request_body = CredentialCreate,
    responses((status = 201, body = CredentialCreated), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<CredentialCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let req = new_credential(body)?;
    let (c, secret) = app::credentials::create(&state, &caller, agent_id, req).await?;
    let (client_secret, api_key) = match c.kind {
        Kind::ClientSecret => (secret, None),
        Kind::ApiKey => (None, secret),
        Kind::PrivateKeyJwt => (None, None),
    };
    Ok((
        StatusCode::CREATED,
        axum::Json(CredentialCreated {
            client_id: c.agent_id.to_string(),
            credential: views::credential(&c, state.clock.now()),
            client_secret,
            api_key,
        }),
    ))
}

/// An agent's credentials (revoked and expired ones included).
#[utoipa::path(get, path = "/v1/agents/{id}/credentials", tag = "credentials", params(("id" = String, Path)),
    responses((status = 200, body = Page<CredentialView>), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Page<CredentialView>>, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let items = app::credentials::list(&state, &caller, agent_id).await?;
    let now = state.clock.now();
    Ok(axum::Json(Page {
        items: items.iter().map(|c| views::credential(c, now)).collect(),
        next_cursor: None,
    }))
}

/// One credential.
#[utoipa::path(get, path = "/v1/credentials/{id}", tag = "credentials", params(("id" = String, Path)),
    responses((status = 200, body = CredentialView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CredentialView>, ApiError> {
    let id = parse_id(&id, "credential")?;
    let c = app::credentials::get(&state, &caller, id).await?;
    Ok(axum::Json(views::credential(&c, state.clock.now())))
}

/// Revoke a credential; it stops working at once.
#[utoipa::path(delete, path = "/v1/credentials/{id}", tag = "credentials", params(("id" = String, Path)),
    responses((status = 200, body = CredentialView), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<CredentialView>, ApiError> {
    let id = parse_id(&id, "credential")?;
    let c = app::credentials::revoke(&state, &caller, id).await?;
    Ok(axum::Json(views::credential(&c, state.clock.now())))
}
