//! The HTTP edge: routing, request ids, metrics, and the problem+json
//! fallbacks. Handlers are thin: parse, call a use case, render.

pub mod agents;
pub mod approvals;
pub mod audit;
pub mod authzen;
pub mod connections;
pub mod credentials;
pub mod delegations;
pub mod error;
pub mod extract;
pub mod keys;
pub mod leases;
pub mod lifetimes;
pub mod oauth;
pub mod ops;
pub mod policies;
pub mod rotation;
pub mod tenants;
pub mod tokens;
pub mod views;
pub mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post, put};
use tracing::Instrument as _;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use self::error::ApiError;
use self::extract::RequestId;
use crate::AppState;
use crate::app::request::RequestContext;

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
        credentials::create, credentials::list, credentials::get, credentials::revoke, credentials::rotate,
        credentials::history, credentials::compromised, credentials::rotate_agent, credentials::collect,
        credentials::self_rotate,
        rotation::list, rotation::put_tenant, rotation::put_scoped, rotation::get_tenant, rotation::get_scoped,
        rotation::delete_tenant, rotation::delete_scoped,
        delegations::create, delegations::list, delegations::get, delegations::revoke,
        delegations::trust, delegations::issuers, delegations::distrust,
        lifetimes::list, lifetimes::set, lifetimes::remove, keys::list, keys::rotate,
        oauth::token, oauth::tenant_token, oauth::introspect, oauth::tenant_introspect, oauth::revoke,
        oauth::tenant_revoke, oauth::root_metadata, oauth::tenant_metadata, oauth::root_jwks, oauth::tenant_jwks,
        audit::events, audit::head,
        policies::upload, policies::validate, policies::list, policies::get, policies::activate, policies::rollback,
        policies::test, policies::put_role, policies::roles, policies::delete_role, policies::grant, policies::grants,
        policies::revoke_grant, policies::put_entities, policies::entities, policies::delete_entity,
        policies::permissions, approvals::list, approvals::get, approvals::approve, approvals::reject, approvals::graph,
        authzen::configuration, authzen::evaluation, authzen::evaluations, authzen::search_subject,
        authzen::search_resource, authzen::search_action,
        leases::put_target, leases::targets, leases::target, leases::delete_target, leases::sweep,
        leases::put_template, leases::templates, leases::template, leases::delete_template,
        leases::list, leases::get, leases::renew, leases::revoke, leases::issue, leases::own, leases::self_renew,
        leases::self_revoke,
        webhooks::create, webhooks::list, webhooks::get, webhooks::update, webhooks::delete, webhooks::deliveries,
        webhooks::test, webhooks::rotate_secret,
    ),
    components(schemas(idv_api::Problem)),
    modifiers(&BearerAuth, &Problems),
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

impl utoipa::Modify for Problems {
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
        .route(
            "/v1/agents/{id}/credentials",
            post(credentials::create).get(credentials::list),
        )
        .route(
            "/v1/credentials/{id}",
            get(credentials::get).delete(credentials::revoke),
        )
        .route("/v1/credentials/{id}/rotate", post(credentials::rotate))
        .route("/v1/credentials/{id}/history", get(credentials::history))
        .route("/v1/agents/{id}/compromised", post(credentials::compromised))
        .route("/v1/agents/{id}/rotate-credentials", post(credentials::rotate_agent))
        .route("/v1/self/credential/successor", post(credentials::collect))
        .route("/v1/self/credential/rotate", post(credentials::self_rotate))
        .route("/v1/rotation-policies", get(rotation::list))
        .route(
            "/v1/rotation-policies/{scope}",
            put(rotation::put_tenant)
                .get(rotation::get_tenant)
                .delete(rotation::delete_tenant),
        )
        .route(
            "/v1/rotation-policies/{scope}/{id}",
            put(rotation::put_scoped)
                .get(rotation::get_scoped)
                .delete(rotation::delete_scoped),
        )
        .route("/v1/delegations", post(delegations::create).get(delegations::list))
        .route(
            "/v1/delegations/{id}",
            get(delegations::get).delete(delegations::revoke),
        )
        .route(
            "/v1/trusted-issuers",
            post(delegations::trust).get(delegations::issuers),
        )
        .route("/v1/trusted-issuers/{id}", delete(delegations::distrust))
        .route("/v1/token-ttls", get(lifetimes::list))
        .route("/v1/token-ttls/{class}", put(lifetimes::set).delete(lifetimes::remove))
        .route("/v1/keys", get(keys::list))
        .route("/v1/keys/rotate", post(keys::rotate))
        .route("/oauth2/token", post(oauth::token))
        .route("/oauth2/introspect", post(oauth::introspect))
        .route("/oauth2/revoke", post(oauth::revoke))
        .route("/t/{tenant}/oauth2/token", post(oauth::tenant_token))
        .route("/t/{tenant}/oauth2/introspect", post(oauth::tenant_introspect))
        .route("/t/{tenant}/oauth2/revoke", post(oauth::tenant_revoke))
        .route("/.well-known/oauth-authorization-server", get(oauth::root_metadata))
        .route(
            "/.well-known/oauth-authorization-server/t/{tenant}",
            get(oauth::tenant_metadata),
        )
        .route("/.well-known/jwks.json", get(oauth::root_jwks))
        .route("/t/{tenant}/.well-known/jwks.json", get(oauth::tenant_jwks))
        .route("/v1/policies", post(policies::upload).get(policies::list))
        .route("/v1/policies/validate", post(policies::validate))
        .route("/v1/policies/test", post(policies::test))
        .route("/v1/policies/rollback", post(policies::rollback))
        .route("/v1/policies/{version}", get(policies::get))
        .route("/v1/policies/{version}/activate", post(policies::activate))
        .route("/v1/roles", get(policies::roles))
        .route(
            "/v1/roles/{name}",
            put(policies::put_role).delete(policies::delete_role),
        )
        .route("/v1/grants", post(policies::grant).get(policies::grants))
        .route("/v1/grants/{id}", delete(policies::revoke_grant))
        .route("/v1/entities", post(policies::put_entities).get(policies::entities))
        .route("/v1/entities/{type}/{id}", delete(policies::delete_entity))
        .route("/v1/agents/{id}/permissions", get(policies::permissions))
        .route("/v1/agents/{id}/graph", get(approvals::graph))
        .route("/v1/approvals", get(approvals::list))
        .route("/v1/approvals/{id}", get(approvals::get))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/reject", post(approvals::reject))
        .route("/.well-known/authzen-configuration", get(authzen::configuration))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/search/subject", post(authzen::search_subject))
        .route("/access/v1/search/resource", post(authzen::search_resource))
        .route("/access/v1/search/action", post(authzen::search_action))
        .route("/v1/db/targets", get(leases::targets))
        .route(
            "/v1/db/targets/{name}",
            put(leases::put_target)
                .get(leases::target)
                .delete(leases::delete_target),
        )
        .route("/v1/db/targets/{name}/sweep", post(leases::sweep))
        .route("/v1/db/templates", get(leases::templates))
        .route(
            "/v1/db/templates/{name}",
            put(leases::put_template)
                .get(leases::template)
                .delete(leases::delete_template),
        )
        .route("/v1/leases", get(leases::list))
        .route("/v1/leases/{id}", get(leases::get))
        .route("/v1/leases/{id}/renew", post(leases::renew))
        .route("/v1/leases/{id}/revoke", post(leases::revoke))
        .route("/v1/self/db/creds/{template}", post(leases::issue))
        .route("/v1/self/leases", get(leases::own))
        .route("/v1/self/leases/{id}/renew", post(leases::self_renew))
        .route("/v1/self/leases/{id}/revoke", post(leases::self_revoke))
        .route("/v1/webhooks", post(webhooks::create).get(webhooks::list))
        .route(
            "/v1/webhooks/{id}",
            get(webhooks::get).patch(webhooks::update).delete(webhooks::delete),
        )
        .route("/v1/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/v1/webhooks/{id}/test", post(webhooks::test))
        .route("/v1/webhooks/{id}/rotate-secret", post(webhooks::rotate_secret))
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

/// Assigns the request id (or keeps a sane one the client sent), builds the
/// request context once (id and peer, read by the use cases through
/// [`crate::app::request`]) inside a `request` tracing span carrying the id,
/// echoes the id in `X-Request-Id`, and counts the response.
async fn edge(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| state.clock.new_id().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
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
