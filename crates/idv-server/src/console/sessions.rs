//! Console sessions: a person's own, or (for those who manage admin
//! tokens) everyone's in the tenant; any of them can be ended here.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use idv_core::session::Session;
use uuid::Uuid;

use super::session::CsrfForm;
use super::{ConsoleError, Layout, Viewer, render};
use crate::AppState;
use crate::app;

#[derive(Template)]
#[template(path = "console/sessions.html")]
struct Page {
    layout: Layout,
    sessions: Vec<Session>,
    current: Uuid,
}

/// `GET /console/sessions`.
pub async fn page(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let sessions = app::sessions::list(&state, &v.caller, &v.session).await?;
    Ok(render(&Page {
        layout: Layout::new(&v, "Sessions", "/console/sessions"),
        current: v.session.id,
        sessions,
    }))
}

/// `POST /console/sessions/{id}/end`.
pub async fn end(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(form.token())?;
    let id = super::path_id(&id, "session")?;
    app::sessions::end(&state, &v.caller, &v.session, id).await?;
    Ok(Redirect::to("/console/sessions").into_response())
}
