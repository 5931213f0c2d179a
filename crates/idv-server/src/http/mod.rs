//! The HTTP edge: routing, request ids, metrics, and the problem+json
//! fallbacks. Handlers are thin: parse, call a use case, render.

pub mod agents;
pub mod audit;
pub mod error;
pub mod extract;
pub mod ops;
pub mod tenants;
pub mod tokens;
pub mod views;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use self::error::ApiError;
use self::extract::RequestId;
use crate::AppState;

/// Default largest request body.
pub const BODY_LIMIT: usize = 1 << 20;
/// Largest bulk-create body (50,000 agents).
pub const BULK_BODY_LIMIT: usize = 64 << 20;

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(title = "IdentityVault admin API", description = "Identity and access management for AI agents."),
    paths(
        ops::healthz, ops::readyz, ops::metrics, ops::openapi,
        tenants::create, tenants::list, tenants::get,
        tokens::create, tokens::list, tokens::current, tokens::get, tokens::revoke,
        agents::create, agents::bulk_create, agents::list, agents::export, agents::get, agents::update, agents::transition,
        audit::events, audit::head,
    ),
    components(schemas(idv_api::Problem)),
    modifiers(&BearerAuth),
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The whole application.
pub fn router(state: AppState) -> Router {
    let bulk = Router::new()
        .route("/v1/agents/bulk", post(agents::bulk_create))
        .layer(DefaultBodyLimit::max(BULK_BODY_LIMIT));
    Router::new()
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .route("/v1/tenants", post(tenants::create).get(tenants::list))
        .route("/v1/tenants/{name}", get(tenants::get))
        .route("/v1/admin-tokens", post(tokens::create).get(tokens::list))
        .route("/v1/admin-tokens/self", get(tokens::current))
        .route("/v1/admin-tokens/{id}", get(tokens::get).delete(tokens::revoke))
        .route("/v1/agents", post(agents::create).get(agents::list))
        .route("/v1/agents/export", get(agents::export))
        .route("/v1/agents/{id}", get(agents::get).patch(agents::update))
        .route("/v1/agents/{id}/{transition}", post(agents::transition))
        .route("/v1/audit/events", get(audit::events))
        .route("/v1/audit/head", get(audit::head))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(bulk)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), edge))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        "this endpoint does not accept that method",
    )
}

/// Assigns the request id (or keeps a sane one the client sent), echoes it in
/// `X-Request-Id`, and counts the response.
async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| state.clock.new_id().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let mut res = next.run(req).await;
    error::stamp(&mut res, &id);
    state.metrics.response(res.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}
