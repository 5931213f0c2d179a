//! The OpenID AuthZEN Authorization API 1.0 (PDP): metadata (§9), one
//! evaluation (§6) and many (§7). The tenant is the caller's (a `pep`,
//! `operator` or `admin` token), never a field of the request.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use idv_api::{
    AuthzenConfiguration, EvaluationItem, EvaluationRequest, EvaluationResponse, EvaluationsAnswer, EvaluationsRequest,
    EvaluationsResponse,
};
use serde_json::json;

use super::error::ApiError;
use super::extract::Json;
use super::policies::ask;
use crate::AppState;
use crate::app::decisions::{Answer, Ask, ItemError, Semantic};
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
