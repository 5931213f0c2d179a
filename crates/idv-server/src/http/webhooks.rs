//! `/v1/webhooks`: subscriptions of endpoints to the tenant's events, their
//! delivery log, test events and secret rotation.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use idv_api::{Page, WebhookCreate, WebhookCreated, WebhookDeliveryView, WebhookPatch, WebhookView};
use idv_core::webhook::{self, Delivery, DeliveryStatus, Secret, Webhook};
use idv_store::DeliveryFilter;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::webhooks::{NewWebhook, Patch};
use crate::app::{self, Caller};

fn view(w: &Webhook) -> WebhookView {
    WebhookView {
        id: w.id,
        url: w.url.clone(),
        events: w.events.to_strings(),
        description: w.description.clone(),
        status: w.status.as_str().to_owned(),
        disabled_reason: w.disabled_reason.clone(),
        disabled_at: w.disabled_at.map(|t| t.to_rfc3339()),
        consecutive_failures: w.consecutive_failures,
        failing_since: w.failing_since.map(|t| t.to_rfc3339()),
        last_success_at: w.last_success_at.map(|t| t.to_rfc3339()),
        created_at: w.created_at.to_rfc3339(),
        created_by: w.created_by.clone(),
        updated_at: w.updated_at.to_rfc3339(),
    }
}

fn created(w: &Webhook, secret: &Secret) -> WebhookCreated {
    WebhookCreated {
        webhook: view(w),
        secret: secret.expose(),
    }
}

fn delivery_view(d: &Delivery) -> WebhookDeliveryView {
    WebhookDeliveryView {
        id: d.id,
        message_id: webhook::message_id(d.id),
        webhook_id: d.webhook_id,
        event_type: d.event_type.clone(),
        event_id: d.event_id,
        status: d.status.as_str().to_owned(),
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at.map(|t| t.to_rfc3339()),
        created_at: d.created_at.to_rfc3339(),
        last_attempt_at: d.last_attempt_at.map(|t| t.to_rfc3339()),
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        last_duration_ms: d.last_duration_ms,
        delivered_at: d.delivered_at.map(|t| t.to_rfc3339()),
        payload: serde_json::from_str(&d.payload).unwrap_or_else(|_| d.payload.clone().into()),
    }
}

/// Subscribe an endpoint to events; the answer carries its signing secret,
/// shown only this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookCreate,
    responses((status = 201, body = WebhookCreated), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<WebhookCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let req = NewWebhook {
        url: body.url,
        events: body.events,
        description: body.description,
    };
    let (w, secret) = app::webhooks::create(&state, &caller, req).await?;
    Ok((StatusCode::CREATED, axum::Json(created(&w, &secret))))
}

/// The tenant's subscriptions.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    params(("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<WebhookView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<WebhookView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["cursor", "limit"])?;
    let after = q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?;
    let limit = page_size(q.parsed("limit", "a number")?)?;
    let items = app::webhooks::list(&state, &caller, after, limit).await?;
    Ok(axum::Json(keyset_page(&items, limit, |w| w.id, view)))
}

/// One subscription.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let id = parse_id(&id, "webhook")?;
    Ok(axum::Json(view(&app::webhooks::get(&state, &caller, id).await?)))
}

/// Change a subscription: its endpoint, events, description, or whether it
/// is enabled (enabling resumes it where it stopped).
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    request_body = WebhookPatch,
    responses((status = 200, body = WebhookView), (status = 404, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(body): Json<WebhookPatch>,
) -> Result<axum::Json<WebhookView>, ApiError> {
    let id = parse_id(&id, "webhook")?;
    if body.url.is_none() && body.events.is_none() && body.description.is_none() && body.enabled.is_none() {
        return Err(ApiError::bad_request(
            "empty-patch",
            "the patch names no field to change (`url`, `events`, `description`, `enabled`)",
        ));
    }
    let p = Patch {
        url: body.url,
        events: body.events,
        description: body.description,
        enabled: body.enabled,
    };
    Ok(axum::Json(view(&app::webhooks::update(&state, &caller, id, p).await?)))
}

/// Remove a subscription and its delivery log.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "webhook")?;
    app::webhooks::delete(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The delivery log of a subscription, oldest first (`status` narrows it).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), ("status" = Option<String>, Query, description = "`pending`, `delivered` or `failed`"),
        ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<WebhookDeliveryView>), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<WebhookDeliveryView>>, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["status", "cursor", "limit"])?;
    let status = q
        .one("status")?
        .map(|s| {
            DeliveryStatus::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid-parameter",
                    format!("`status`: `{s}` is not `pending`, `delivered` or `failed`"),
                )
                .with_field("status")
            })
        })
        .transpose()?;
    let f = DeliveryFilter {
        status,
        after: q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?,
        newest_first: false,
        limit: page_size(q.parsed("limit", "a number")?)?,
    };
    let items = app::webhooks::deliveries(&state, &caller, id, &f).await?;
    Ok(axum::Json(keyset_page(&items, f.limit, |d| d.id, delivery_view)))
}

/// Send a `webhook.test` event to the subscription now (also while it is
/// disabled, to check an endpoint before enabling it again).
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 202, body = WebhookDeliveryView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let d = app::webhooks::test(&state, &caller, id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery_view(&d))))
}

/// Send a delivery's event again: a new delivery of the same event type,
/// event id and payload (its own `webhook-id`, signed with the current
/// secret), sent at once; receivers de-duplicate by the payload's
/// `event_id`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = String, Path), ("delivery_id" = String, Path)),
    responses((status = 202, body = WebhookDeliveryView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, delivery_id)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let delivery_id = parse_id(&delivery_id, "webhook delivery")?;
    let d = app::webhooks::redeliver(&state, &caller, id, delivery_id).await?;
    Ok((StatusCode::ACCEPTED, axum::Json(delivery_view(&d))))
}

/// Replace the signing secret (shown only in this answer); the previous one
/// keeps signing alongside for 24 hours, so the receiver can switch without
/// losing a delivery.
#[utoipa::path(post, path = "/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookCreated), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<WebhookCreated>, ApiError> {
    let id = parse_id(&id, "webhook")?;
    let (w, secret) = app::webhooks::rotate_secret(&state, &caller, id).await?;
    Ok(axum::Json(created(&w, &secret)))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(get, update, delete))
        .routes(routes!(deliveries))
        .routes(routes!(redeliver))
        .routes(routes!(test))
        .routes(routes!(rotate_secret))
}
