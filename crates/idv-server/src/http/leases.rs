//! Leases of dynamic PostgreSQL credentials: the administrators'
//! `/v1/leases`, and the agents' own `/v1/self/db/creds/{template}` and
//! `/v1/self/leases/…` (targets and templates: `db_targets`, `db_templates`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use idv_api::{DbCredsIssued, DbCredsRequest, LeaseRenew, LeaseView, Page};
use idv_core::lease::{Lease, LeaseState};
use idv_store::LeaseFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::credentials::{AGENT_CHALLENGE, presented, seconds};
use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::leases::Holder;
use crate::app::{self, AppError, Caller};

fn lease_view(l: &Lease, state: &AppState) -> LeaseView {
    let now = state.clock.now();
    LeaseView {
        id: l.id,
        agent_id: l.agent_id,
        template: l.template.clone(),
        target: l.target.clone(),
        username: l.username.clone(),
        state: l.state.as_str().to_owned(),
        issued_at: l.issued_at.to_rfc3339(),
        expires_at: l.expires_at.to_rfc3339(),
        max_expires_at: l.max_expires_at.to_rfc3339(),
        ttl_secs: l.ttl_secs(now),
        renewable: l.renewable(now),
        revoked_at: l.revoked_at.map(|t| t.to_rfc3339()),
        end_reason: l.end_reason.map(|r| r.as_str().to_owned()),
        last_error: l.last_error.clone(),
    }
}

/// Seconds as the store keeps them; a duration too long for that is out of
/// every range anyway.
pub(super) fn secs(v: Option<idv_api::DurationValue>, field: &str) -> Result<Option<i64>, ApiError> {
    seconds(v, field)?
        .map(|s| i64::try_from(s).map_err(|_| ApiError::invalid_field(field, format!("`{field}`: too long"))))
        .transpose()
}

/// An agent's own call: its errors carry the agent challenge (RFC 9110 §11.6.1).
fn as_agent(e: AppError) -> ApiError {
    ApiError::from(e).with_challenge(AGENT_CHALLENGE)
}

/// The filter of a lease list from its query.
fn filter(q: &QueryPairs, agent: Option<Uuid>) -> Result<LeaseFilter, ApiError> {
    let state = q
        .one("state")?
        .map(|s| {
            s.parse::<LeaseState>().map_err(|_| {
                ApiError::bad_request(
                    "invalid-parameter",
                    format!("`state` is `pending`, `active`, `revocation_pending` or `revoked`, not `{s}`"),
                )
                .with_field("state")
            })
        })
        .transpose()?;
    Ok(LeaseFilter {
        agent_id: agent,
        state,
        target: q.one("target")?.map(str::to_owned),
        after: q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?,
        limit: page_size(q.parsed("limit", "a number")?)?,
    })
}

fn page(items: &[Lease], limit: i64, state: &AppState) -> Page<LeaseView> {
    keyset_page(items, limit, |l| l.id, |l| lease_view(l, state))
}

/// The tenant's leases (`agent`, `state` and `target` narrow the list).
#[utoipa::path(get, path = "/v1/leases", tag = "leases",
    params(("agent" = Option<String>, Query), ("state" = Option<String>, Query), ("target" = Option<String>, Query),
        ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<LeaseView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<LeaseView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["agent", "state", "target", "cursor", "limit"])?;
    let agent = q.one("agent")?.map(|a| parse_id(a, "agent")).transpose()?;
    let f = filter(&q, agent)?;
    let items = app::leases::list(&state, &caller, &f).await?;
    Ok(axum::Json(page(&items, f.limit, &state)))
}

/// One lease.
#[utoipa::path(get, path = "/v1/leases/{id}", tag = "leases", params(("id" = String, Path)),
    responses((status = 200, body = LeaseView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<LeaseView>, ApiError> {
    let l = app::leases::get(&state, &caller, parse_id(&id, "lease")?).await?;
    Ok(axum::Json(lease_view(&l, &state)))
}

/// Extend a lease (never past its maximum; 409 once it is not renewable).
#[utoipa::path(post, path = "/v1/leases/{id}/renew", tag = "leases", params(("id" = String, Path)),
    request_body = LeaseRenew,
    responses((status = 200, body = LeaseView), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem),
        (status = 502, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn renew(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<LeaseRenew>,
) -> Result<axum::Json<LeaseView>, ApiError> {
    let id = parse_id(&id, "lease")?;
    let increment = secs(body.increment, "increment")?;
    let l = app::leases::renew(&state, Holder::Admin(&caller), id, increment).await?;
    Ok(axum::Json(lease_view(&l, &state)))
}

/// Revoke a lease: its role's sessions end and the role is dropped. If the
/// target cannot be reached the answer is 202 with the lease
/// `revocation_pending`, and the drop is retried until it succeeds.
#[utoipa::path(post, path = "/v1/leases/{id}/revoke", tag = "leases", params(("id" = String, Path)),
    responses((status = 200, body = LeaseView), (status = 202, body = LeaseView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id, "lease")?;
    let l = app::leases::revoke(&state, Holder::Admin(&caller), id).await?;
    Ok(revoked(&l, &state))
}

fn revoked(l: &Lease, state: &AppState) -> (StatusCode, axum::Json<LeaseView>) {
    let status = if l.state == LeaseState::Revoked {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    (status, axum::Json(lease_view(l, state)))
}

/// The agent (authenticated as itself) asks for a database credential from
/// a template: a new PostgreSQL role with a random name and password, valid
/// until the lease ends. Policy must allow the agent `connect` on
/// `DatabaseTemplate::"<template>"`; the password is in the answer, once.
#[utoipa::path(post, path = "/v1/self/db/creds/{template}", tag = "leases", params(("template" = String, Path)),
    request_body = DbCredsRequest,
    responses((status = 201, body = DbCredsIssued), (status = 401, body = idv_api::Problem),
        (status = 403, body = idv_api::Problem), (status = 404, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem), (status = 502, body = idv_api::Problem)),
    security(("agent_basic" = []), ("bearer" = [])))]
pub async fn issue(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(template): Path<String>,
    Json(body): Json<DbCredsRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let p = presented(&headers)?;
    let ttl = secs(body.ttl, "ttl")?;
    let i = app::leases::issue(&state, &p, &template, ttl).await.map_err(as_agent)?;
    let issued = DbCredsIssued {
        lease: lease_view(&i.lease, &state),
        username: i.lease.username.clone(),
        password: i.password.to_string(),
        host: i.target.host.clone(),
        port: i.target.port,
        database: i.target.database.clone(),
    };
    Ok((StatusCode::CREATED, axum::Json(issued)))
}

/// The agent's own leases.
#[utoipa::path(get, path = "/v1/self/leases", tag = "leases",
    params(("state" = Option<String>, Query), ("target" = Option<String>, Query),
        ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<LeaseView>), (status = 401, body = idv_api::Problem)),
    security(("agent_basic" = []), ("bearer" = [])))]
pub async fn own(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<LeaseView>>, ApiError> {
    let p = presented(&headers)?;
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["state", "target", "cursor", "limit"])?;
    let f = filter(&q, None)?;
    let items = app::leases::own(&state, &p, f.clone()).await.map_err(as_agent)?;
    Ok(axum::Json(page(&items, f.limit, &state)))
}

/// The agent extends one of its leases.
#[utoipa::path(post, path = "/v1/self/leases/{id}/renew", tag = "leases", params(("id" = String, Path)),
    request_body = LeaseRenew,
    responses((status = 200, body = LeaseView), (status = 401, body = idv_api::Problem),
        (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem), (status = 502, body = idv_api::Problem)),
    security(("agent_basic" = []), ("bearer" = [])))]
pub async fn self_renew(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(body): Json<LeaseRenew>,
) -> Result<axum::Json<LeaseView>, ApiError> {
    let p = presented(&headers)?;
    let id = parse_id(&id, "lease")?;
    let increment = secs(body.increment, "increment")?;
    let l = app::leases::renew(&state, Holder::Agent(&p), id, increment)
        .await
        .map_err(as_agent)?;
    Ok(axum::Json(lease_view(&l, &state)))
}

/// The agent gives one of its leases up (202 while the drop is pending).
#[utoipa::path(post, path = "/v1/self/leases/{id}/revoke", tag = "leases", params(("id" = String, Path)),
    responses((status = 200, body = LeaseView), (status = 202, body = LeaseView),
        (status = 401, body = idv_api::Problem), (status = 404, body = idv_api::Problem)),
    security(("agent_basic" = []), ("bearer" = [])))]
pub async fn self_revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let p = presented(&headers)?;
    let id = parse_id(&id, "lease")?;
    let l = app::leases::revoke(&state, Holder::Agent(&p), id)
        .await
        .map_err(as_agent)?;
    Ok(revoked(&l, &state))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(renew))
        .routes(routes!(revoke))
        .routes(routes!(issue))
        .routes(routes!(own))
        .routes(routes!(self_renew))
        .routes(routes!(self_revoke))
}
