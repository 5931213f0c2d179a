//! `/v1/delegations`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{DelegationCreate, DelegationView, DelegatorRef, DurationValue, Page};
use idv_core::delegation::{Delegation, Delegator};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::delegations::NewDelegation;
use crate::app::{self, Caller};

fn delegator(r: DelegatorRef) -> Result<Delegator, ApiError> {
    match (r.type_.as_str(), r.id, r.issuer, r.sub) {
        ("agent", Some(id), None, None) => Ok(Delegator::Agent {
            id: Uuid::parse_str(&id)
                .map_err(|_| ApiError::invalid_field("delegator.id", format!("`{id}` is not an agent id")))?,
        }),
        ("human", None, Some(issuer), Some(sub)) => Ok(Delegator::Human { issuer, sub }),
        _ => Err(ApiError::invalid_field(
            "delegator",
            "`delegator` is `{\"type\":\"agent\",\"id\":…}` or `{\"type\":\"human\",\"issuer\":…,\"sub\":…}`",
        )),
    }
}

fn delegator_ref(d: &Delegator) -> DelegatorRef {
    match d {
        Delegator::Agent { id } => DelegatorRef {
            type_: "agent".into(),
            id: Some(id.to_string()),
            issuer: None,
            sub: None,
        },
        Delegator::Human { issuer, sub } => DelegatorRef {
            type_: "human".into(),
            id: None,
            issuer: Some(issuer.clone()),
            sub: Some(sub.clone()),
        },
    }
}

fn view(d: &Delegation, state: &AppState) -> DelegationView {
    let now = state.clock.now();
    DelegationView {
        id: d.id,
        delegator: delegator_ref(&d.delegator),
        delegate: d.delegate,
        scopes: d.scopes.clone(),
        audience: d.audiences.clone(),
        task: d.task.clone(),
        max_depth: d.max_depth,
        status: if d.revoked_at.is_some() {
            "revoked"
        } else if d.is_live(now) {
            "active"
        } else {
            "expired"
        }
        .into(),
        created_at: d.created_at.to_rfc3339(),
        created_by: d.created_by.clone(),
        expires_at: d.expires_at.to_rfc3339(),
        revoked_at: d.revoked_at.map(|t| t.to_rfc3339()),
    }
}

/// Record a delegation: `delegator` lends at most `scopes` to agent `delegate`.
#[utoipa::path(post, path = "/v1/delegations", tag = "delegations", request_body = DelegationCreate,
    responses((status = 201, body = DelegationView), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<DelegationCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let ttl_seconds = match body.ttl {
        DurationValue::Seconds(s) => s,
        DurationValue::Text(t) => {
            idv_core::duration::parse_seconds(&t).map_err(|e| ApiError::invalid_field("ttl", format!("`ttl`: {e}")))?
        }
    };
    let req = NewDelegation {
        delegator: delegator(body.delegator)?,
        delegate: body.delegate,
        scopes: body.scopes,
        audiences: body.audience,
        task: body.task,
        max_depth: body.max_depth.unwrap_or(1),
        ttl_seconds,
    };
    let d = app::delegations::create(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, axum::Json(view(&d, &state))))
}

/// List the tenant's delegations (`delegate` narrows to one agent).
#[utoipa::path(get, path = "/v1/delegations", tag = "delegations",
    params(("delegate" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<DelegationView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<DelegationView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["delegate", "cursor", "limit"])?;
    let delegate = q.one("delegate")?.map(|c| parse_id(c, "delegate")).transpose()?;
    let after = q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?;
    let limit = page_size(q.parsed("limit", "a number")?)?;
    let items = app::delegations::list(&state, &caller, delegate, after, limit).await?;
    Ok(axum::Json(keyset_page(&items, limit, |d| d.id, |d| view(d, &state))))
}

/// One delegation.
#[utoipa::path(get, path = "/v1/delegations/{id}", tag = "delegations", params(("id" = String, Path)),
    responses((status = 200, body = DelegationView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<DelegationView>, ApiError> {
    let id = parse_id(&id, "delegation")?;
    let d = app::delegations::get(&state, &caller, id).await?;
    Ok(axum::Json(view(&d, &state)))
}

/// Revoke a delegation: every token issued through it, at any depth, is
/// inactive at once.
#[utoipa::path(delete, path = "/v1/delegations/{id}", tag = "delegations", params(("id" = String, Path)),
    responses((status = 200, body = DelegationView), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<DelegationView>, ApiError> {
    let id = parse_id(&id, "delegation")?;
    let d = app::delegations::revoke(&state, &caller, id).await?;
    Ok(axum::Json(view(&d, &state)))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, revoke))
}
