//! Health, readiness, metrics and the OpenAPI document.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use idv_api::Health;
use utoipa::openapi::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health { status: "ok".into() })
}

/// Readiness: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    // Ready means both: reads answer, and the writer's last write (or probe)
    // committed. A node whose storage fails takes no writes, so a load
    // balancer should send none to it until it recovers by itself.
    let checked = match state.store.ping().await {
        Ok(()) if state.store.writer_stats().healthy() => Ok(()),
        Ok(()) => Err("the last write could not be committed".to_owned()),
        Err(e) => Err(e.to_string()),
    };
    match checked {
        Ok(()) => (StatusCode::OK, axum::Json(Health { status: "ok".into() })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(Health {
                    status: "unavailable".into(),
                }),
            )
        }
    }
}

/// Prometheus metrics (text exposition format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(state.store.writer_stats()) + &crate::metrics::render_listener(state.store.changes()),
    )
}

/// This API's OpenAPI 3.1 document, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses((status = 200, description = "OpenAPI document")))]
pub async fn openapi(Extension(doc): Extension<Arc<OpenApi>>) -> impl IntoResponse {
    // The document `router` built from the routes as it added them.
    axum::Json(OpenApi::clone(&doc))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi))
}
