//! The HTTP edge: routing, request ids, metrics, and the problem+json
//! fallbacks. Handlers are thin: parse, call a use case, render.

pub mod access_requests;
pub mod admin_tokens;
pub mod agents;
pub mod approvals;
pub mod audit;
pub mod authzen;
pub mod connections;
pub mod credentials;
pub mod db_targets;
pub mod db_templates;
pub mod delegations;
pub mod entities;
pub mod error;
pub mod extract;
pub mod grants;
pub mod graph;
pub mod keys;
pub mod leases;
pub mod oauth;
pub mod ops;
pub mod permissions;
pub mod policies;
pub mod roles;
pub mod rotation_policies;
pub mod sso;
pub mod tenants;
pub mod token_ttls;
pub mod trusted_issuers;
pub mod views;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::{Extension, Router};
use tracing::Instrument as _;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

use self::error::ApiError;
use crate::AppState;
use crate::app::request::RequestContext;

/// Default largest request body.
pub const BODY_LIMIT: usize = 1 << 20;
/// Largest bulk-create body (50,000 agents).
pub const BULK_BODY_LIMIT: usize = 64 << 20;

/// The OpenAPI document's frame: its info and the shared schemas. The
/// operations come from the routes themselves (see [`router`]); the
/// security schemes and the common problem responses are added after.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "IdentityVault admin API",
        description = "Identity and access management for AI agents."
    ),
    components(schemas(idv_api::Problem))
)]
#[derive(Debug)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Agents on their self-service endpoints: `client_id` and client secret.
        components.add_security_scheme(
            "agent_basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// Documents the problem responses every `/v1` operation can give (so
/// clients and contract testers know them), as `application/problem+json`.
struct Problems;

impl Modify for Problems {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let problem = |description: &str| {
            RefOr::T(
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        idv_api::PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    )
                    .build(),
            )
        };
        let common: &[(&str, &str)] = &[
            ("400", "Malformed request (bad id, query parameter or JSON)"),
            ("401", "Missing, unknown, expired or revoked admin token"),
            ("403", "The token may not do this"),
            ("404", "No such record in this tenant, or no such tenant"),
            ("503", "The store failed; nothing changed"),
        ];
        let with_body: &[(&str, &str)] = &[
            ("409", "Conflict with the current state"),
            ("413", "Body too large"),
            ("415", "Body is not JSON"),
            ("422", "A field breaks a rule"),
        ];
        for (path, item) in openapi.paths.paths.iter_mut() {
            let admin_api = path.starts_with("/v1/") || path.starts_with("/access/");
            let ops = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ];
            for op in ops.into_iter().flatten() {
                if admin_api {
                    let extra = if op.request_body.is_some() { with_body } else { &[] };
                    for (code, description) in common.iter().chain(extra) {
                        op.responses
                            .responses
                            .entry((*code).to_owned())
                            .or_insert_with(|| problem(description));
                    }
                }
                // Problems documented by a handler get the problem media type
                // (OAuth errors stay `application/json`, RFC 6749 §5.2).
                for (code, r) in op.responses.responses.iter_mut() {
                    let is_problem = |c: &utoipa::openapi::Content| matches!(&c.schema, Some(RefOr::Ref(r)) if r.ref_location.ends_with("/Problem"));
                    if (code.starts_with('4') || code.starts_with('5'))
                        && let RefOr::T(r) = r
                        && r.content.get("application/json").is_some_and(is_problem)
                        && let Some(content) = r.content.shift_remove("application/json")
                    {
                        r.content.insert(idv_api::PROBLEM_JSON.to_owned(), content);
                    }
                }
            }
        }
    }
}

/// The whole application. Each route is declared once, by its handler's
/// `#[utoipa::path]`, and registered in its module's `routes()` beside it:
/// `routes!` takes the path and method from the attribute and adds the
/// operation to the OpenAPI document as it adds the route, so a route
/// cannot be served undocumented or documented unserved.
pub fn router(state: AppState) -> Router {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(ops::routes())
        .merge(tenants::routes())
        .merge(admin_tokens::routes())
        .merge(agents::routes())
        .merge(credentials::routes())
        .merge(rotation_policies::routes())
        .merge(delegations::routes())
        .merge(trusted_issuers::routes())
        .merge(token_ttls::routes())
        .merge(keys::routes())
        .merge(oauth::routes())
        .merge(policies::routes())
        .merge(roles::routes())
        .merge(grants::routes())
        .merge(access_requests::routes())
        .merge(entities::routes())
        .merge(permissions::routes())
        .merge(graph::routes())
        .merge(approvals::routes())
        .merge(authzen::routes())
        .merge(db_targets::routes())
        .merge(db_templates::routes())
        .merge(leases::routes())
        .merge(webhooks::routes())
        .merge(audit::routes())
        .merge(sso::routes())
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .split_for_parts();
    BearerAuth.modify(&mut api);
    Problems.modify(&mut api);
    router
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(Arc::new(api)))
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

/// Assigns the request id (or keeps a sane one the client sent), builds the
/// request context once (id and peer, read by the use cases through
/// [`crate::app::request`]) inside a `request` tracing span carrying the id,
/// echoes the id in `X-Request-Id`, and counts the response.
async fn edge(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| state.clock.new_id().to_string());
    let peer = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let span = tracing::info_span!("request", request_id = %id);
    let ctx = RequestContext { id: id.clone(), peer };
    let mut res = ctx.scope(next.run(req)).instrument(span).await;
    error::stamp(&mut res, &id);
    state.metrics.response(res.status().as_u16());
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert("x-request-id", v);
    }
    res
}
