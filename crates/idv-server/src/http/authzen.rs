//! The OpenID AuthZEN Authorization API 1.0 (PDP): metadata (§9), one
//! evaluation (§6), many (§7), and the subject, resource and action
//! searches (§8). The tenant is the caller's (a `pep`, `operator` or
//! `admin` token), never a field of the request. Bodies must be sent as
//! `application/json`: any other content type is refused with 415 (RFC 9110
//! §15.5.16), before the body is read.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use idv_api::{
    ActionSearchResponse, AuthzenConfiguration, AzActionName, AzFound, AzSearchEntity, EntitySearchResponse,
    EvaluationItem, EvaluationRequest, EvaluationResponse, EvaluationsAnswer, EvaluationsRequest, EvaluationsResponse,
    SearchPageResponse, SearchRequest,
};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::Json;
use super::policies::ask;
use crate::AppState;
use crate::app::decisions::{Answer, Ask, ItemError, Semantic, Thing};
use crate::app::search::{Found, Kind, PAGE_DEFAULT, PAGE_MAX, Search};
use crate::app::{self, Caller};

/// AuthZEN 1.0 §9: where the PDP's endpoints are.
#[utoipa::path(get, path = "/.well-known/authzen-configuration", tag = "authzen",
    responses((status = 200, body = AuthzenConfiguration)))]
pub async fn configuration(State(state): State<AppState>) -> axum::Json<AuthzenConfiguration> {
    let base = &*state.public_url;
    axum::Json(AuthzenConfiguration {
        policy_decision_point: base.to_owned(),
        access_evaluation_endpoint: format!("{base}/access/v1/evaluation"),
        access_evaluations_endpoint: format!("{base}/access/v1/evaluations"),
        search_subject_endpoint: format!("{base}/access/v1/search/subject"),
        search_resource_endpoint: format!("{base}/access/v1/search/resource"),
        search_action_endpoint: format!("{base}/access/v1/search/action"),
    })
}

fn response(a: Answer) -> EvaluationResponse {
    EvaluationResponse {
        decision: a.allowed,
        context: Some(a.context),
    }
}

/// AuthZEN 1.0 §6: may `subject` do `action` on `resource` in `context`?
/// The subject is an agent (`{"type": "agent", "id": …}`), an access token
/// we issued (`{"type": "token", "id": <JWT>}`: its agent, delegation chain,
/// scopes and task count), or an entity of the tenant's directory. Every
/// decision is audited before it is answered.
#[utoipa::path(post, path = "/access/v1/evaluation", tag = "authzen", request_body = EvaluationRequest,
    responses((status = 200, body = EvaluationResponse), (status = 400, body = idv_api::Problem),
        (status = 401, body = idv_api::Problem), (status = 403, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn evaluation(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Json(body): Json<EvaluationRequest>,
) -> Result<axum::Json<EvaluationResponse>, ApiError> {
    let ask = ask(body)?;
    let a = app::decisions::evaluate(&state, &caller, &ask, Some(peer.ip())).await?;
    Ok(axum::Json(response(a)))
}

/// Fills an item's missing parts from the request's defaults (§7.1.1).
fn merge(defaults: &EvaluationsRequest, item: EvaluationItem) -> Result<Ask, ItemError> {
    let malformed = |message: String| ItemError { status: 400, message };
    let subject = item.subject.or_else(|| defaults.subject.clone());
    let action = item.action.or_else(|| defaults.action.clone());
    let resource = item.resource.or_else(|| defaults.resource.clone());
    let context = item.context.or_else(|| defaults.context.clone());
    match (subject, action, resource) {
        (Some(subject), Some(action), Some(resource)) => ask(EvaluationRequest {
            subject,
            action,
            resource,
            context,
        })
        .map_err(|e| malformed(e.to_string())),
        (s, a, _) => Err(malformed(format!(
            "the evaluation has no `{}`, and the request gives no default",
            if s.is_none() {
                "subject"
            } else if a.is_none() {
                "action"
            } else {
                "resource"
            }
        ))),
    }
}

/// AuthZEN 1.0 §7: many evaluations with shared defaults, answered in
/// order; `options.evaluations_semantic` may stop at the first deny or
/// permit. Without `evaluations`, the defaults are one evaluation and the
/// answer is a single decision (§7.1).
#[utoipa::path(post, path = "/access/v1/evaluations", tag = "authzen", request_body = EvaluationsRequest,
    responses((status = 200, body = EvaluationsAnswer), (status = 400, body = idv_api::Problem),
        (status = 401, body = idv_api::Problem), (status = 403, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn evaluations(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Json(mut body): Json<EvaluationsRequest>,
) -> Result<axum::Json<EvaluationsAnswer>, ApiError> {
    let semantic = match body.options.as_ref().and_then(|o| o.evaluations_semantic.as_deref()) {
        None | Some("execute_all") => Semantic::ExecuteAll,
        Some("deny_on_first_deny") => Semantic::DenyOnFirstDeny,
        Some("permit_on_first_permit") => Semantic::PermitOnFirstPermit,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid-body",
                format!(
                    "`options.evaluations_semantic` `{other}` is not execute_all, deny_on_first_deny or permit_on_first_permit"
                ),
            ));
        }
    };
    let items = body.evaluations.take().unwrap_or_default();
    if items.is_empty() {
        let one =
            merge(&body, EvaluationItem::default()).map_err(|e| ApiError::bad_request("invalid-body", e.message))?;
        let a = app::decisions::evaluate(&state, &caller, &one, Some(peer.ip())).await?;
        return Ok(axum::Json(EvaluationsAnswer::One(response(a))));
    }
    if items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(
            "invalid-body",
            format!("at most {MAX_BATCH} evaluations per request"),
        ));
    }
    let asks = items.into_iter().map(|i| merge(&body, i)).collect();
    let answers = app::decisions::evaluate_many(&state, &caller, asks, semantic, Some(peer.ip())).await?;
    let evaluations = answers
        .into_iter()
        .map(|a| match a {
            Ok(a) => response(a),
            // §7.2.1: an item that cannot be evaluated is a deny with the error.
            Err(ItemError { status, message }) => EvaluationResponse {
                decision: false,
                context: Some(json!({ "error": { "status": status, "message": message } })),
            },
        })
        .collect();
    Ok(axum::Json(EvaluationsAnswer::Many(EvaluationsResponse { evaluations })))
}

/// Most evaluations in one request.
pub const MAX_BATCH: usize = 1_000;

/// A search request as a [`Search`], or 400 naming the first missing part.
fn search_of(kind: Kind, body: SearchRequest) -> Result<Search, ApiError> {
    let missing = |what: &str| {
        ApiError::bad_request("invalid-body", format!("a {} search needs `{what}`", kind.as_str()))
            .with_field(what.to_owned())
    };
    // The searched part names a type only; the others name an entity.
    let thing = |e: Option<AzSearchEntity>, part: &'static str, searched: bool| -> Result<Thing, ApiError> {
        let e = e.ok_or_else(|| missing(part))?;
        if e.type_.is_empty() {
            return Err(missing(&format!("{part}.type")));
        }
        let id = match (searched, e.id) {
            (true, _) => String::new(),
            (false, Some(id)) if !id.is_empty() => id,
            (false, _) => return Err(missing(&format!("{part}.id"))),
        };
        Ok(Thing {
            type_name: e.type_,
            id,
            properties: e.properties,
        })
    };
    let subject = thing(body.subject, "subject", kind == Kind::Subject)?;
    let resource = thing(body.resource, "resource", kind == Kind::Resource)?;
    let (action, action_properties) = match (kind, body.action) {
        // §8.6: an action search has no action (one sent is ignored).
        (Kind::Action, _) => (String::new(), None),
        (_, Some(a)) if !a.name.is_empty() => (a.name, a.properties),
        (_, Some(_)) => return Err(missing("action.name")),
        (_, None) => return Err(missing("action")),
    };
    let page = body.page.unwrap_or_default();
    let limit = match page.limit {
        None => PAGE_DEFAULT,
        Some(0) => {
            return Err(ApiError::bad_request("invalid-body", "`page.limit` must be at least 1")
                .with_field("page.limit".to_owned()));
        }
        Some(n) => usize::try_from(n).unwrap_or(PAGE_MAX).min(PAGE_MAX),
    };
    Ok(Search {
        kind,
        ask: Ask {
            subject,
            action,
            action_properties,
            resource,
            context: body.context.unwrap_or_default(),
        },
        token: page.token,
        limit,
    })
}

fn page(f: &Found) -> SearchPageResponse {
    SearchPageResponse {
        next_token: f.next_token.clone(),
        count: u64::try_from(f.results.len()).unwrap_or(u64::MAX),
    }
}

async fn entity_search(
    state: &AppState,
    caller: &Caller,
    peer: SocketAddr,
    kind: Kind,
    body: SearchRequest,
) -> Result<axum::Json<EntitySearchResponse>, ApiError> {
    let s = search_of(kind, body)?;
    let type_name = match kind {
        Kind::Subject => s.ask.subject.type_name.clone(),
        _ => s.ask.resource.type_name.clone(),
    };
    let found = app::search::search(state, caller, &s, Some(peer.ip())).await?;
    Ok(axum::Json(EntitySearchResponse {
        page: page(&found),
        results: found
            .results
            .into_iter()
            .map(|id| AzFound {
                type_: type_name.clone(),
                id,
            })
            .collect(),
    }))
}

/// AuthZEN 1.0 §8.4: which subjects of `subject.type` may do `action` on
/// `resource`? Candidates are the tenant's active agents (type `agent`) or
/// its directory entities of that type; each is decided as an evaluation
/// would be. Paged (`page.limit`, `page.token`); one audit event per page.
#[utoipa::path(post, path = "/access/v1/search/subject", tag = "authzen", request_body = SearchRequest,
    responses((status = 200, body = EntitySearchResponse), (status = 400, body = idv_api::Problem),
        (status = 401, body = idv_api::Problem), (status = 403, body = idv_api::Problem),
        (status = 415, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn search_subject(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Json(body): Json<SearchRequest>,
) -> Result<axum::Json<EntitySearchResponse>, ApiError> {
    entity_search(&state, &caller, peer, Kind::Subject, body).await
}

/// AuthZEN 1.0 §8.5: on which resources of `resource.type` may `subject`
/// do `action`? Candidates are the directory's entities of that type (or
/// the active agents, for `agent`). Paged; one audit event per page.
#[utoipa::path(post, path = "/access/v1/search/resource", tag = "authzen", request_body = SearchRequest,
    responses((status = 200, body = EntitySearchResponse), (status = 400, body = idv_api::Problem),
        (status = 401, body = idv_api::Problem), (status = 403, body = idv_api::Problem),
        (status = 415, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn search_resource(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Json(body): Json<SearchRequest>,
) -> Result<axum::Json<EntitySearchResponse>, ApiError> {
    entity_search(&state, &caller, peer, Kind::Resource, body).await
}

/// AuthZEN 1.0 §8.6: which actions may `subject` take on `resource`?
/// Candidates are the actions of the active schema. Paged; one audit event
/// per page.
#[utoipa::path(post, path = "/access/v1/search/action", tag = "authzen", request_body = SearchRequest,
    responses((status = 200, body = ActionSearchResponse), (status = 400, body = idv_api::Problem),
        (status = 401, body = idv_api::Problem), (status = 403, body = idv_api::Problem),
        (status = 415, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn search_action(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    Json(body): Json<SearchRequest>,
) -> Result<axum::Json<ActionSearchResponse>, ApiError> {
    let s = search_of(Kind::Action, body)?;
    let found = app::search::search(&state, &caller, &s, Some(peer.ip())).await?;
    Ok(axum::Json(ActionSearchResponse {
        page: page(&found),
        results: found.results.into_iter().map(|name| AzActionName { name }).collect(),
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(configuration))
        .routes(routes!(evaluation))
        .routes(routes!(evaluations))
        .routes(routes!(search_subject))
        .routes(routes!(search_resource))
        .routes(routes!(search_action))
}
