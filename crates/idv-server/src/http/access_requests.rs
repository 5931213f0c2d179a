//! `/v1/access-requests`: just-in-time access requests for agents.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use idv_api::{AccessRequestCreate, AccessRequestDecision, AccessRequestView, Page};
use idv_core::Timestamp;
use idv_core::access_request::{AccessRequest, NewAccessRequest, Status};
use idv_core::role::Permission;
use idv_store::{AccessRequestFilter, Verdict};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::{self, Caller};

/// A request as the API shows it.
pub fn view(r: AccessRequest, now: Timestamp) -> AccessRequestView {
    let state = r.state(now).to_owned();
    let (role, action) = match r.permission {
        Permission::Role(n) => (Some(n), None),
        Permission::Action(n) => (None, Some(n)),
    };
    AccessRequestView {
        id: r.id,
        agent_id: r.agent_id,
        role,
        action,
        justification: r.justification,
        duration_secs: r.duration_secs,
        requested_by: r.requested_by,
        status: r.status.as_str().to_owned(),
        state,
        created_at: r.created_at.to_rfc3339(),
        expires_at: r.expires_at.to_rfc3339(),
        decided_by: r.decided_by,
        decided_at: r.decided_at.map(Timestamp::to_rfc3339),
        comment: r.comment,
        grant_id: r.grant_id,
        grant_expires_at: r.grant_expires_at.map(Timestamp::to_rfc3339),
    }
}

/// The request a body asks for: exactly one of `role` and `action`, and a
/// duration (`30m`, `8h`, `7d`).
pub fn new_request(body: AccessRequestCreate) -> Result<NewAccessRequest, ApiError> {
    let permission = match (body.role, body.action) {
        (Some(r), None) => Permission::Role(r),
        (None, Some(a)) => Permission::Action(a),
        _ => {
            return Err(ApiError::invalid_field(
                "role",
                "give exactly one of `role` and `action`",
            ));
        }
    };
    let secs = idv_core::duration::parse_seconds(&body.duration)
        .map_err(|e| ApiError::invalid_field("duration", format!("`duration`: `{}`: {e}", body.duration)))?;
    Ok(NewAccessRequest {
        agent_id: body.agent_id,
        permission,
        justification: body.justification,
        duration_secs: i64::try_from(secs).unwrap_or(i64::MAX),
    })
}

/// Ask for a role or an action for an agent, for a while, saying why. An
/// owner asks for their own agents.
#[utoipa::path(post, path = "/v1/access-requests", tag = "access-requests", request_body = AccessRequestCreate,
    responses((status = 201, body = AccessRequestView), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<AccessRequestCreate>,
) -> Result<(StatusCode, axum::Json<AccessRequestView>), ApiError> {
    let r = app::access_requests::create(&state, &caller, new_request(body)?).await?;
    Ok((StatusCode::CREATED, axum::Json(view(r, state.clock.now()))))
}

/// The tenant's access requests, newest first (`status`, `agent_id`
/// filter), a page at a time.
#[utoipa::path(get, path = "/v1/access-requests", tag = "access-requests",
    params(("status" = Option<String>, Query), ("agent_id" = Option<String>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<AccessRequestView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Page<AccessRequestView>>, ApiError> {
    let q = QueryPairs::parse(raw.as_deref());
    q.only(&["status", "agent_id", "limit", "cursor"])?;
    let status = match q.one("status")? {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid-parameter",
                "`status` is pending, approved, denied or withdrawn",
            )
            .with_field("status")
        })?),
    };
    let limit = page_size(q.parsed("limit", "a number")?)?;
    let filter = AccessRequestFilter {
        status,
        agent_id: q.one("agent_id")?.map(|a| parse_id(a, "agent_id")).transpose()?,
        owner: None,
        before: q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?,
        limit,
    };
    let items = app::access_requests::list(&state, &caller, filter).await?;
    let now = state.clock.now();
    Ok(axum::Json(keyset_page(
        &items,
        limit,
        |r| r.id,
        |r| view(r.clone(), now),
    )))
}

/// One access request.
#[utoipa::path(get, path = "/v1/access-requests/{id}", tag = "access-requests", params(("id" = String, Path)),
    responses((status = 200, body = AccessRequestView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AccessRequestView>, ApiError> {
    let r = app::access_requests::get(&state, &caller, parse_id(&id, "access request")?).await?;
    Ok(axum::Json(view(r, state.clock.now())))
}

async fn decide(
    state: AppState,
    caller: Caller,
    id: &str,
    verdict: Verdict,
    body: AccessRequestDecision,
) -> Result<axum::Json<AccessRequestView>, ApiError> {
    let id = parse_id(id, "access request")?;
    let r = app::access_requests::decide(&state, &caller, id, verdict, body.comment).await?;
    Ok(axum::Json(view(r, state.clock.now())))
}

/// Approve a pending request (`admin`, who may grant; never its requester):
/// the grant is made in the same commit and ends after the duration asked.
#[utoipa::path(post, path = "/v1/access-requests/{id}/approve", tag = "access-requests",
    params(("id" = String, Path)), request_body = AccessRequestDecision,
    responses((status = 200, body = AccessRequestView), (status = 403, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<AccessRequestDecision>,
) -> Result<axum::Json<AccessRequestView>, ApiError> {
    decide(state, caller, &id, Verdict::Approve, body).await
}

/// Deny a pending request (`admin`; never its requester).
#[utoipa::path(post, path = "/v1/access-requests/{id}/deny", tag = "access-requests",
    params(("id" = String, Path)), request_body = AccessRequestDecision,
    responses((status = 200, body = AccessRequestView), (status = 403, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn deny(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<AccessRequestDecision>,
) -> Result<axum::Json<AccessRequestView>, ApiError> {
    decide(state, caller, &id, Verdict::Deny, body).await
}

/// Withdraw a pending request (its requester only).
#[utoipa::path(post, path = "/v1/access-requests/{id}/withdraw", tag = "access-requests",
    params(("id" = String, Path)), request_body = AccessRequestDecision,
    responses((status = 200, body = AccessRequestView), (status = 403, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn withdraw(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<AccessRequestDecision>,
) -> Result<axum::Json<AccessRequestView>, ApiError> {
    decide(state, caller, &id, Verdict::Withdraw, body).await
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get))
        .routes(routes!(approve))
        .routes(routes!(deny))
        .routes(routes!(withdraw))
}
