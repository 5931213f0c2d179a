//! `/v1/approvals`: human approval of actions a policy marked.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use idv_api::{ApprovalDecision, ApprovalView, Page};
use idv_core::Timestamp;
use idv_core::approval::{Approval, ApprovalStatus};
use idv_store::ApprovalFilter;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::{self, Caller};

fn view(a: &Approval) -> ApprovalView {
    ApprovalView {
        id: a.id,
        status: a.status.as_str().to_owned(),
        assignee: a.assignee.clone(),
        agent_id: a.agent_id,
        subject: json!(a.subject),
        action: a.action.clone(),
        resource: json!(a.resource),
        context: a.context.clone(),
        reasons: a.reasons.clone(),
        created_at: a.created_at.to_rfc3339(),
        expires_at: a.expires_at.to_rfc3339(),
        decided_at: a.decided_at.map(Timestamp::to_rfc3339),
        decided_by: a.decided_by.clone(),
        comment: a.comment.clone(),
        approvers: a.rule.approvers.iter().map(|x| x.as_string()).collect(),
        required: a.rule.required,
        approved_by: a.approvals.iter().map(|g| g.by.clone()).collect(),
    }
}

/// Approval requests, newest first (`status`, `assignee`), a page at a time
/// (`limit`, `cursor`: the `next_cursor` of the page before).
#[utoipa::path(get, path = "/v1/approvals", tag = "approvals",
    params(("status" = Option<String>, Query), ("assignee" = Option<String>, Query), ("limit" = Option<i64>, Query),
        ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<ApprovalView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Page<ApprovalView>>, ApiError> {
    let q = QueryPairs::parse(raw.as_deref());
    q.only(&["status", "assignee", "limit", "cursor"])?;
    let status = match q.one("status")? {
        None => None,
        Some(s) => Some(ApprovalStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid-parameter",
                format!("`status` is pending, approved, rejected or used, not `{s}`"),
            )
            .with_field("status")
        })?),
    };
    let f = ApprovalFilter {
        status,
        assignee: q.one("assignee")?.map(str::to_owned),
        limit: page_size(q.parsed("limit", "a number")?)?,
        before: q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?,
    };
    let items = app::decisions::approvals(&state, &caller, &f).await?;
    Ok(axum::Json(keyset_page(&items, f.limit, |a| a.id, view)))
}

/// One approval request.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "approvals", params(("id" = String, Path)),
    responses((status = 200, body = ApprovalView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<ApprovalView>, ApiError> {
    let a = app::decisions::approval(&state, &caller, parse_id(&id, "approval")?).await?;
    Ok(axum::Json(view(&a)))
}

async fn decide(
    state: AppState,
    caller: Caller,
    id: String,
    body: &[u8],
    approve: bool,
) -> Result<axum::Json<ApprovalView>, ApiError> {
    let id = parse_id(&id, "approval")?;
    // The body is optional: `{}` or nothing at all.
    let comment = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        serde_json::from_slice::<ApprovalDecision>(body)
            .map_err(|e| ApiError::bad_request("invalid-body", format!("the body is not `{{\"comment\": …}}`: {e}")))?
            .comment
    };
    let a = app::decisions::decide_approval(&state, &caller, id, approve, comment).await?;
    Ok(axum::Json(view(&a)))
}

/// Approve: the same request, repeated within 15 minutes, is allowed once.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "approvals", params(("id" = String, Path)),
    request_body = ApprovalDecision,
    responses((status = 200, body = ApprovalView), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<ApprovalView>, ApiError> {
    decide(state, caller, id, &body, true).await
}

/// Reject.
#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "approvals", params(("id" = String, Path)),
    request_body = ApprovalDecision,
    responses((status = 200, body = ApprovalView), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<axum::Json<ApprovalView>, ApiError> {
    decide(state, caller, id, &body, false).await
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
        .routes(routes!(approve))
        .routes(routes!(reject))
}
