//! Access requests: an owner asks for a role or action for their agent, for
//! a while; an approver (not the requester) approves or denies; the owner
//! follows the state of their requests. The same use cases as
//! `/v1/access-requests`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use idv_api::{AccessRequestCreate, AccessRequestView};
use idv_core::access_request::Status;
use idv_store::{AccessRequestFilter, Verdict};
use serde::Deserialize;
use uuid::Uuid;

use super::{ConsoleError, Layout, Viewer, query_pairs, render, urlencode};
use crate::AppState;
use crate::app;
use crate::http::access_requests::{new_request, view};

/// Durations offered in the form.
const DURATIONS: [(&str, &str); 5] = [
    ("1h", "1 hour"),
    ("8h", "8 hours"),
    ("1d", "1 day"),
    ("7d", "7 days"),
    ("30d", "30 days"),
];

#[derive(Template)]
#[template(path = "console/access_requests.html")]
struct Page {
    layout: Layout,
    status: String,
    requests: Vec<AccessRequestView>,
    agent: String,
    roles: Vec<String>,
    durations: [(&'static str, &'static str); 5],
    can_decide: bool,
    me: String,
    notice: Option<String>,
}

/// `GET /console/access-requests` (`status`: `pending`, … or all;
/// `agent`: prefills the form).
pub async fn page(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> Result<Response, ConsoleError> {
    let q = query_pairs(raw.as_deref());
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let status = get("status");
    let filter = AccessRequestFilter {
        status: match status.as_str() {
            "" | "all" => None,
            s => Some(
                Status::parse(s)
                    .ok_or_else(|| ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("`{s}` is not a status")))?,
            ),
        },
        limit: 200,
        ..AccessRequestFilter::default()
    };
    let now = state.clock.now();
    let requests = app::access_requests::list(&state, &v.caller, filter)
        .await?
        .into_iter()
        .map(|r| view(r, now))
        .collect();
    let roles = app::policies::roles(&state, &v.caller)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    Ok(render(&Page {
        layout: Layout::new(&v, "Access requests", "/console/access-requests"),
        can_decide: v.caller.owner_scope.is_none()
            && v.caller.principal.may(idv_core::admin_token::Permission::ManagePolicy),
        me: v.caller.principal.token_name.clone(),
        status,
        requests,
        agent: get("agent"),
        roles,
        durations: DURATIONS,
        notice: Some(get("done")).filter(|d| !d.is_empty()),
    }))
}

/// The request form.
#[derive(Deserialize)]
pub struct RequestForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    agent_id: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    action: String,
    justification: String,
    duration: String,
}

/// `POST /console/access-requests`.
pub async fn create(
    State(state): State<AppState>,
    v: Viewer,
    Form(f): Form<RequestForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let agent_id = f
        .agent_id
        .trim()
        .parse::<Uuid>()
        .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "the agent: give its id".into()))?;
    let nonempty = |s: String| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let body = AccessRequestCreate {
        agent_id,
        role: nonempty(f.role),
        action: nonempty(f.action),
        justification: f.justification,
        duration: f.duration,
    };
    let new = new_request(body)
        .map_err(|e| ConsoleError::Refused(StatusCode::UNPROCESSABLE_ENTITY, e.detail().to_owned()))?;
    let r = app::access_requests::create(&state, &v.caller, new).await?;
    let done = format!("request {} sent", r.id);
    Ok(Redirect::to(&format!("/console/access-requests?done={}", urlencode(&done))).into_response())
}

/// Approve, deny or withdraw, with a comment.
#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /console/access-requests/{id}`.
pub async fn decide(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let id = super::path_id(&id, "access request")?;
    let verdict = match form.decision.as_str() {
        "approve" => Verdict::Approve,
        "deny" => Verdict::Deny,
        "withdraw" => Verdict::Withdraw,
        _ => {
            return Err(ConsoleError::Refused(
                StatusCode::BAD_REQUEST,
                "approve, deny or withdraw".into(),
            ));
        }
    };
    let comment = Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty());
    let r = app::access_requests::decide(&state, &v.caller, id, verdict, comment).await?;
    let done = format!("request {} {}", r.id, r.status.as_str());
    Ok(Redirect::to(&format!("/console/access-requests?done={}", urlencode(&done))).into_response())
}
