//! The overview: a tenant's key figures, each linking to the list behind it.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::response::Response;

use super::{ConsoleError, Layout, Viewer, render, urlencode};
use crate::AppState;

/// One figure with the list it summarises.
pub struct Tile {
    /// What it counts.
    pub label: String,
    /// How many.
    pub value: i64,
    /// The filtered list behind it.
    pub href: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
struct Page {
    layout: Layout,
    total: i64,
    by_status: Vec<Tile>,
    by_environment: Vec<Tile>,
    by_class: Vec<Tile>,
    pending_approvals: i64,
    live_leases: i64,
    live_credentials: i64,
}

fn tiles(counts: BTreeMap<String, i64>, param: &str) -> Vec<Tile> {
    counts
        .into_iter()
        .map(|(k, n)| Tile {
            href: if k.is_empty() {
                "/console/agents".to_owned()
            } else {
                format!("/console/agents?{param}={}", urlencode(&k))
            },
            label: if k.is_empty() { "(none)".to_owned() } else { k },
            value: n,
        })
        .collect()
}

/// `GET /console`.
pub async fn page(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let f = crate::app::figures::tenant(&state, &v.caller).await?;
    let (mut status, mut env, mut class) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
    let mut total = 0;
    for g in &f.agents {
        total += g.count;
        *status.entry(g.status.clone()).or_insert(0) += g.count;
        *env.entry(g.environment.clone().unwrap_or_default()).or_insert(0) += g.count;
        *class.entry(g.class.clone().unwrap_or_default()).or_insert(0) += g.count;
    }
    Ok(render(&Page {
        layout: Layout::new(&v, "Overview", "/console"),
        total,
        by_status: tiles(status, "status"),
        by_environment: tiles(env, "environment"),
        by_class: tiles(class, "class"),
        pending_approvals: f.pending_approvals,
        live_leases: f.live_leases,
        live_credentials: f.live_credentials,
    }))
}
