//! `/v1/audit`.

use axum::extract::{RawQuery, State};
use idv_api::{AuditEventView, Page};
use idv_core::Timestamp;
use idv_core::audit::Outcome;
use idv_store::AuditFilter;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{QueryPairs, keyset_page, page_size, parse_id};
use super::views;
use crate::AppState;
use crate::app::{self, Caller};

fn time(q: &QueryPairs, key: &str) -> Result<Option<Timestamp>, ApiError> {
    q.one(key)?
        .map(|v| {
            Timestamp::parse(v)
                .map_err(|e| ApiError::bad_request("invalid-parameter", format!("`{key}`: {e}")).with_field(key))
        })
        .transpose()
}

/// Audit events of the tenant (or, for platform operators with
/// `all_tenants=true`, the whole chain) in chain order.
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit",
    params(("action" = Option<String>, Query), ("target_id" = Option<String>, Query), ("actor_token_id" = Option<String>, Query),
        ("outcome" = Option<String>, Query), ("since" = Option<String>, Query, description = "RFC 3339"),
        ("until" = Option<String>, Query, description = "RFC 3339"), ("all_tenants" = Option<bool>, Query),
        ("cursor" = Option<String>, Query, description = "last `seq` seen"), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<AuditEventView>), (status = 403, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<AuditEventView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&[
        "action",
        "target_id",
        "actor_token_id",
        "outcome",
        "since",
        "until",
        "all_tenants",
        "cursor",
        "limit",
    ])?;
    let outcome = q
        .one("outcome")?
        .map(|o| {
            Outcome::parse(o).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid-parameter",
                    format!("`outcome`: `{o}` is not success, failure or denied"),
                )
                .with_field("outcome")
            })
        })
        .transpose()?;
    let filter = AuditFilter {
        tenant_id: None,
        action: q.one("action")?.map(str::to_owned),
        target_id: q.one("target_id")?.map(str::to_owned),
        actor_token_id: q.one("actor_token_id")?.map(|t| parse_id(t, "token")).transpose()?,
        actor_name: None,
        outcome,
        since: time(&q, "since")?,
        until: time(&q, "until")?,
        after_seq: q.parsed::<i64>("cursor", "an event sequence number")?.unwrap_or(0),
        before_seq: None,
        newest_first: false,
        limit: page_size(q.parsed("limit", "a number")?)?,
    };
    let all = q.parsed::<bool>("all_tenants", "`true` or `false`")?.unwrap_or(false);
    let limit = filter.limit;
    let items = app::audit::events(&state, &caller, filter, all).await?;
    Ok(axum::Json(keyset_page(&items, limit, |e| e.seq, views::event)))
}

/// The head of the whole chain.
#[derive(Debug, Serialize, ToSchema)]
pub struct HeadView {
    /// The last event's sequence number (0 when empty).
    pub seq: i64,
    /// The last event's hash (hex).
    pub hash: String,
}

/// The chain head (platform operators: the chain spans every tenant).
#[utoipa::path(get, path = "/v1/audit/head", tag = "audit",
    responses((status = 200, body = HeadView), (status = 403, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn head(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<HeadView>, ApiError> {
    let h = app::audit::head(&state, &caller).await?;
    Ok(axum::Json(HeadView {
        seq: h.seq,
        hash: idv_core::hex::encode(&h.hash),
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(events)).routes(routes!(head))
}
