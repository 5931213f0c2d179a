//! The portfolio: every tenant side by side with its key figures, for
//! platform operators.

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{ConsoleError, Layout, Viewer, render};
use crate::AppState;
use crate::app;

/// Most tenants shown.
const MAX_TENANTS: i64 = 500;

/// One tenant's row.
pub struct Row {
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Agents in total.
    pub agents: i64,
    /// Active agents.
    pub active: i64,
    /// Suspended agents.
    pub suspended: i64,
    /// Credentials in force.
    pub credentials: i64,
    /// Leases active.
    pub leases: i64,
    /// Approvals pending.
    pub approvals: i64,
}

#[derive(Template)]
#[template(path = "console/tenants.html")]
struct Page {
    layout: Layout,
    rows: Vec<Row>,
}

/// `GET /console/tenants`.
pub async fn page(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let all = app::figures::portfolio(&state, &v.caller, MAX_TENANTS).await?;
    let count = |f: &idv_store::Figures, status: Option<&str>| {
        f.agents
            .iter()
            .filter(|g| status.is_none_or(|s| g.status == s))
            .map(|g| g.count)
            .sum()
    };
    let rows = all
        .iter()
        .map(|(t, f)| Row {
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            agents: count(f, None),
            active: count(f, Some("active")),
            suspended: count(f, Some("suspended")),
            credentials: f.live_credentials,
            leases: f.live_leases,
            approvals: f.pending_approvals,
        })
        .collect();
    Ok(render(&Page {
        layout: Layout::new(&v, "Tenants", "/console/tenants"),
        rows,
    }))
}
