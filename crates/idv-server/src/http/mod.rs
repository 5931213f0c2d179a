//! The HTTP edge: routing, request ids, metrics, and the problem+json
//! fallbacks. Handlers are thin: parse, call a use case, render.

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
use utoipa_axum::routes;

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
/// `#[utoipa::path]`: `routes!` takes the path and method from there and
/// adds the operation to the OpenAPI document as it adds the route, so a
/// route cannot be served undocumented or documented unserved.
pub fn router(state: AppState) -> Router {
    let bulk = OpenApiRouter::new()
        .routes(routes!(agents::bulk_create))
        .layer(DefaultBodyLimit::max(BULK_BODY_LIMIT));
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(tenants::create, tenants::list))
        .routes(routes!(tenants::get))
        .routes(routes!(admin_tokens::create, admin_tokens::list))
        .routes(routes!(admin_tokens::current))
        .routes(routes!(admin_tokens::get, admin_tokens::revoke))
        .routes(routes!(agents::create, agents::list))
        .routes(routes!(agents::export))
        .routes(routes!(agents::get, agents::update))
        .routes(routes!(agents::transition))
        .routes(routes!(agents::reassign_owner))
        .routes(routes!(credentials::create, credentials::list))
        .routes(routes!(credentials::get, credentials::revoke))
        .routes(routes!(credentials::rotate))
        .routes(routes!(credentials::history))
        .routes(routes!(credentials::compromised))
        .routes(routes!(credentials::rotate_agent))
        .routes(routes!(credentials::collect))
        .routes(routes!(credentials::self_rotate))
        .routes(routes!(rotation_policies::list))
        .routes(routes!(
            rotation_policies::put_tenant,
            rotation_policies::get_tenant,
            rotation_policies::delete_tenant
        ))
        .routes(routes!(
            rotation_policies::put_scoped,
            rotation_policies::get_scoped,
            rotation_policies::delete_scoped
        ))
        .routes(routes!(delegations::create, delegations::list))
        .routes(routes!(delegations::get, delegations::revoke))
        .routes(routes!(trusted_issuers::trust, trusted_issuers::issuers))
        .routes(routes!(trusted_issuers::distrust))
        .routes(routes!(token_ttls::list))
        .routes(routes!(token_ttls::set, token_ttls::remove))
        .routes(routes!(keys::list))
        .routes(routes!(keys::rotate))
        .routes(routes!(oauth::token))
        .routes(routes!(oauth::introspect))
        .routes(routes!(oauth::revoke))
        .routes(routes!(oauth::tenant_token))
        .routes(routes!(oauth::tenant_introspect))
        .routes(routes!(oauth::tenant_revoke))
        .routes(routes!(oauth::root_metadata))
        .routes(routes!(oauth::tenant_metadata))
        .routes(routes!(oauth::root_jwks))
        .routes(routes!(oauth::tenant_jwks))
        .routes(routes!(policies::upload, policies::list))
        .routes(routes!(policies::validate))
        .routes(routes!(policies::test))
        .routes(routes!(policies::rollback))
        .routes(routes!(policies::get))
        .routes(routes!(policies::activate))
        .routes(routes!(roles::roles))
        .routes(routes!(roles::put_role, roles::delete_role))
        .routes(routes!(grants::grant, grants::grants))
        .routes(routes!(grants::revoke_grant))
        .routes(routes!(entities::put_entities, entities::entities))
        .routes(routes!(entities::delete_entity))
        .routes(routes!(permissions::permissions))
        .routes(routes!(graph::graph))
        .routes(routes!(approvals::list))
        .routes(routes!(approvals::get))
        .routes(routes!(approvals::approve))
        .routes(routes!(approvals::reject))
        .routes(routes!(authzen::configuration))
        .routes(routes!(authzen::evaluation))
        .routes(routes!(authzen::evaluations))
        .routes(routes!(authzen::search_subject))
        .routes(routes!(authzen::search_resource))
        .routes(routes!(authzen::search_action))
        .routes(routes!(db_targets::targets))
        .routes(routes!(
            db_targets::put_target,
            db_targets::target,
            db_targets::delete_target
        ))
        .routes(routes!(db_targets::sweep))
        .routes(routes!(db_templates::templates))
        .routes(routes!(
            db_templates::put_template,
            db_templates::template,
            db_templates::delete_template
        ))
        .routes(routes!(leases::list))
        .routes(routes!(leases::get))
        .routes(routes!(leases::renew))
        .routes(routes!(leases::revoke))
        .routes(routes!(leases::issue))
        .routes(routes!(leases::own))
        .routes(routes!(leases::self_renew))
        .routes(routes!(leases::self_revoke))
        .routes(routes!(webhooks::create, webhooks::list))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::test))
        .routes(routes!(webhooks::rotate_secret))
        .routes(routes!(audit::events))
        .routes(routes!(audit::head))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .merge(bulk)
        .split_for_parts();
    BearerAuth.modify(&mut api);
    Problems.modify(&mut api);
    router
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
