//! The approvals queue: requests a policy marked as needing a person's
//! approval, approved or rejected here with a comment (separation of duties
//! is enforced by the same rule as the API's).

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use idv_core::approval::{Approval, ApprovalStatus};
use idv_store::ApprovalFilter;
use serde::Deserialize;

use super::{ConsoleError, Layout, Viewer, query_pairs, render};
use crate::AppState;
use crate::app;

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct Page {
    layout: Layout,
    status: String,
    approvals: Vec<Approval>,
    can_approve: bool,
}

/// `GET /console/approvals` (`status`: pending by default, or `all`).
pub async fn page(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> Result<Response, ConsoleError> {
    let status = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "status")
        .map_or_else(|| "pending".to_owned(), |(_, s)| s);
    let filter = ApprovalFilter {
        status: match status.as_str() {
            "all" => None,
            s => Some(
                ApprovalStatus::parse(s)
                    .ok_or_else(|| ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("`{s}` is not a status")))?,
            ),
        },
        assignee: None,
        limit: 200,
        before: None,
    };
    let approvals = app::decisions::approvals(&state, &v.caller, &filter).await?;
    Ok(render(&Page {
        layout: Layout::new(&v, "Approvals", "/console/approvals"),
        can_approve: v.caller.principal.may(idv_core::admin_token::Permission::Approve),
        status,
        approvals,
    }))
}

/// Approve or reject, with a comment.
#[derive(Deserialize)]
pub struct DecisionForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    decision: String,
    #[serde(default)]
    comment: String,
}

/// `POST /console/approvals/{id}`.
pub async fn decide(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let id = super::path_id(&id, "approval")?;
    let approve = match form.decision.as_str() {
        "approve" => true,
        "reject" => false,
        _ => {
            return Err(ConsoleError::Refused(
                StatusCode::BAD_REQUEST,
                "approve or reject".into(),
            ));
        }
    };
    let comment = Some(form.comment.trim().to_owned()).filter(|c| !c.is_empty());
    app::decisions::decide_approval(&state, &v.caller, id, approve, comment).await?;
    Ok(Redirect::to("/console/approvals").into_response())
}
