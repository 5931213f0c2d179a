//! `/v1/agents/{id}/credentials`, `/v1/credentials/{id}` (rotation and its
//! lineage), `/v1/agents/{id}/compromised`, and the agents' own
//! `/v1/self/credential/…` endpoints.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use idv_api::{
    CompromiseAnswer, CredentialCreate, CredentialCreated, CredentialRotate, CredentialRotated, CredentialView,
    DurationValue, Page, TransitionRequest,
};
use idv_core::Timestamp;
use idv_core::credential::{Credential, Kind, NewCredential, Retire, Rotation};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, parse_id};
use super::oauth::{HeaderAuth, header_auth};
use super::views;
use crate::AppState;
use crate::app::credentials::{Presented, RotateRequest};
use crate::app::{self, Caller};

/// A duration field in seconds (a number, or text like `90d`).
pub(super) fn seconds(v: Option<DurationValue>, field: &str) -> Result<Option<u64>, ApiError> {
    match v {
        None => Ok(None),
        Some(DurationValue::Seconds(s)) => Ok(Some(s)),
        Some(DurationValue::Text(t)) => idv_core::duration::parse_seconds(&t)
            .map(Some)
            .map_err(|e| ApiError::invalid_field(field, format!("`{field}`: {e}"))),
    }
}

/// A rotation's `overlap` and `retire` fields, checked.
pub(super) fn rotation(overlap: Option<DurationValue>, retire: Option<&str>) -> Result<Rotation, ApiError> {
    let retire = match retire {
        None => Retire::OverlapEnd,
        Some(r) => r
            .parse()
            .map_err(|e: idv_core::credential::CredentialError| ApiError::invalid_field("retire", e.to_string()))?,
    };
    // `0` is allowed here: no overlap, the predecessor is revoked at once.
    let overlap = match overlap {
        None => None,
        Some(DurationValue::Seconds(s)) => Some(s),
        Some(DurationValue::Text(t)) => Some(
            idv_core::duration::parse_seconds_or_zero(&t)
                .map_err(|e| ApiError::invalid_field("overlap", format!("`overlap`: {e}")))?,
        ),
    };
    Rotation::new(overlap, retire).map_err(|e| ApiError::invalid_field("overlap", e.to_string()))
}

fn rotate_request(body: CredentialRotate) -> Result<RotateRequest, ApiError> {
    Ok(RotateRequest {
        rotation: rotation(body.overlap, body.retire.as_deref())?,
        jwk: body.jwk,
        pickup: body.pickup,
    })
}

/// A credential and its secret, as answered once.
fn created(c: &Credential, secret: Option<String>, now: Timestamp) -> CredentialCreated {
    let (client_secret, api_key) = match c.kind {
        Kind::ClientSecret => (secret, None),
        Kind::ApiKey => (None, secret),
        Kind::PrivateKeyJwt => (None, None),
    };
    CredentialCreated {
        client_id: c.agent_id.to_string(),
        credential: views::credential(c, now),
        client_secret,
        api_key,
    }
}

fn rotated(r: app::credentials::Rotated, now: Timestamp) -> CredentialRotated {
    CredentialRotated {
        predecessor: views::credential(&r.predecessor, now),
        successor: created(&r.successor, r.secret, now),
    }
}

fn new_credential(body: CredentialCreate) -> Result<NewCredential, ApiError> {
    let kind: Kind = body
        .type_
        .parse()
        .map_err(|e: idv_core::credential::UnknownKind| ApiError::invalid_field("type", e.to_string()))?;
    Ok(NewCredential {
        kind,
        jwk: body.jwk,
        scopes: body.scopes,
        ttl_seconds: seconds(body.ttl, "ttl")?,
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
    Ok((StatusCode::CREATED, axum::Json(created(&c, secret, state.clock.now()))))
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

/// Rotate a credential: the successor works at once, the predecessor until
/// the end of the overlap (or its successor's first use); the successor's
/// secret is in the answer, once, unless `pickup` seals it for the agent.
#[utoipa::path(post, path = "/v1/credentials/{id}/rotate", tag = "credentials", params(("id" = String, Path)),
    request_body = CredentialRotate,
    responses((status = 201, body = CredentialRotated), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn rotate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<CredentialRotate>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id, "credential")?;
    let req = rotate_request(body)?;
    let r = app::credentials::rotate(&state, &caller, id, req).await?;
    Ok((StatusCode::CREATED, axum::Json(rotated(r, state.clock.now()))))
}

/// The rotation lineage of a credential, oldest first.
#[utoipa::path(get, path = "/v1/credentials/{id}/history", tag = "credentials", params(("id" = String, Path)),
    responses((status = 200, body = Page<CredentialView>), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<Page<CredentialView>>, ApiError> {
    let id = parse_id(&id, "credential")?;
    let items = app::credentials::history(&state, &caller, id).await?;
    let now = state.clock.now();
    Ok(axum::Json(Page {
        items: items.iter().map(|c| views::credential(c, now)).collect(),
        next_cursor: None,
    }))
}

/// A security event: every live credential of the agent is revoked at once
/// (no overlap); client secrets and API keys get successors, whose secrets
/// are in this answer only.
#[utoipa::path(post, path = "/v1/agents/{id}/compromised", tag = "credentials", params(("id" = String, Path)),
    request_body = TransitionRequest,
    responses((status = 200, body = CompromiseAnswer), (status = 404, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn compromised(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<TransitionRequest>,
) -> Result<axum::Json<CompromiseAnswer>, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let (revoked, successors) = app::credentials::compromised(&state, &caller, agent_id, body.reason).await?;
    let now = state.clock.now();
    Ok(axum::Json(CompromiseAnswer {
        revoked: revoked.iter().map(|c| views::credential(c, now)).collect(),
        successors: successors.into_iter().map(|(c, s)| created(&c, s, now)).collect(),
    }))
}

/// What an agent's self-service endpoint accepts (RFC 9110 §11.6.1).
pub(super) const AGENT_CHALLENGE: &str = "Basic realm=\"idv-agent\", Bearer realm=\"idv-agent\"";

/// The agent's own credential from `Authorization`: `Basic` with its
/// `client_id` and client secret, or `Bearer` with an API key.
pub(super) fn presented(headers: &HeaderMap) -> Result<Presented, ApiError> {
    let unauthorized = |detail: &str| {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail).with_challenge(AGENT_CHALLENGE)
    };
    match header_auth(headers) {
        Ok(HeaderAuth::Basic(client_id, secret)) => Ok(Presented::ClientSecret { client_id, secret }),
        Ok(HeaderAuth::Bearer(key)) => Ok(Presented::ApiKey(key)),
        Ok(HeaderAuth::None) => Err(unauthorized(
            "authenticate as the agent: HTTP Basic with its client_id and client secret, or Bearer with an API key",
        )),
        Err(_) => Err(unauthorized("the Authorization header is malformed")),
    }
}

/// The agent collects the successor of the credential it authenticates
/// with (after a rotation with `pickup`): the secret is answered once and
/// its sealed copy erased.
#[utoipa::path(post, path = "/v1/self/credential/successor", tag = "credentials",
    responses((status = 200, body = CredentialCreated), (status = 401, body = idv_api::Problem),
        (status = 404, body = idv_api::Problem)),
    security(("agent_basic" = []), ("bearer" = [])))]
pub async fn collect(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<axum::Json<CredentialCreated>, ApiError> {
    let p = presented(&headers)?;
    let (c, secret) = app::credentials::collect(&state, &p)
        .await
        .map_err(|e| ApiError::from(e).with_challenge(AGENT_CHALLENGE))?;
    Ok(axum::Json(created(&c, Some(secret), state.clock.now())))
}

/// The agent rotates the credential it authenticates with; the new secret
/// is in the answer, once.
#[utoipa::path(post, path = "/v1/self/credential/rotate", tag = "credentials",
    request_body = CredentialRotate,
    responses((status = 201, body = CredentialRotated), (status = 401, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("agent_basic" = []), ("bearer" = [])))]
pub async fn self_rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(body): Json<CredentialRotate>,
) -> Result<impl IntoResponse, ApiError> {
    let p = presented(&headers)?;
    let req = rotate_request(body)?;
    let r = app::credentials::self_rotate(&state, &p, req)
        .await
        .map_err(|e| ApiError::from(e).with_challenge(AGENT_CHALLENGE))?;
    Ok((StatusCode::CREATED, axum::Json(rotated(r, state.clock.now()))))
}

/// Rotate every client secret and API key of an agent now (its rotation
/// policy's overlap, or the default), the new secrets sealed for the agent
/// to collect: for signals that call for fresh credentials without cutting
/// the agent off. `private_key_jwt` keys are left to the agent.
#[utoipa::path(post, path = "/v1/agents/{id}/rotate-credentials", tag = "credentials", params(("id" = String, Path)),
    request_body = TransitionRequest,
    responses((status = 200, body = Page<CredentialRotated>), (status = 404, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn rotate_agent(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<TransitionRequest>,
) -> Result<axum::Json<Page<CredentialRotated>>, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let done = app::rotation::rotate_agent(&state, &caller, agent_id, body.reason).await?;
    let now = state.clock.now();
    Ok(axum::Json(Page {
        items: done.into_iter().map(|r| rotated(r, now)).collect(),
        next_cursor: None,
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, revoke))
        .routes(routes!(rotate))
        .routes(routes!(history))
        .routes(routes!(compromised))
        .routes(routes!(rotate_agent))
        .routes(routes!(collect))
        .routes(routes!(self_rotate))
}
