//! The operations pages: signing keys (the key ring's state and what is
//! due), database leases, and webhook subscriptions with their health.
//! Read-only views over the same use cases as the API; tenant-wide, so not
//! for owners.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use idv_core::audit::Action;
use idv_store::LeaseFilter;

use super::{ConsoleError, Layout, Viewer, render};
use crate::AppState;
use crate::app;

/// One row of a simple table.
pub struct Row(pub Vec<String>);

#[derive(Template)]
#[template(path = "console/table.html")]
struct TablePage {
    layout: Layout,
    intro: &'static str,
    id: &'static str,
    headings: &'static [&'static str],
    rows: Vec<Row>,
    empty: &'static str,
}

fn opt(t: Option<idv_core::Timestamp>) -> String {
    t.map(|t| t.to_rfc3339()).unwrap_or_default()
}

/// `GET /console/keys`.
pub async fn keys(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    v.caller.require_unscoped(&state, Action::SigningKeyList).await?;
    let keys = app::keys::list(&state, &v.caller).await?;
    Ok(render(&TablePage {
        layout: Layout::new(&v, "Signing keys", "/console/keys"),
        intro: "The tenant's token signing keys: the next key is published before it signs, the current one signs, \
                retired ones stay published until every token they signed has expired. Rotate with `idv key rotate`.",
        id: "keys",
        headings: &[
            "Key id",
            "Algorithm",
            "State",
            "Created",
            "Signs from",
            "Retired",
            "Published until",
        ],
        rows: keys
            .iter()
            .map(|(k, s)| {
                Row(vec![
                    k.kid.clone(),
                    k.alg.clone(),
                    s.as_str().to_owned(),
                    k.created_at.to_rfc3339(),
                    k.activates_at.to_rfc3339(),
                    opt(k.retired_at),
                    opt(k.publish_until),
                ])
            })
            .collect(),
        empty: "No signing key yet: the first is made with the first token.",
    }))
}

/// `GET /console/leases`.
pub async fn leases(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    v.caller.require_unscoped(&state, Action::LeaseList).await?;
    let filter = LeaseFilter {
        limit: 500,
        ..LeaseFilter::default()
    };
    let leases = app::leases::list(&state, &v.caller, &filter).await?;
    Ok(render(&TablePage {
        layout: Layout::new(&v, "Database leases", "/console/leases"),
        intro: "Dynamic database roles issued to agents, newest first: each is dropped when its lease ends.",
        id: "leases",
        headings: &[
            "Lease", "Agent", "Template", "Target", "Role", "State", "Issued", "Expires",
        ],
        rows: leases
            .iter()
            .map(|l| {
                Row(vec![
                    l.id.to_string(),
                    l.agent_id.to_string(),
                    l.template.clone(),
                    l.target.clone(),
                    l.username.clone(),
                    l.state.as_str().to_owned(),
                    l.issued_at.to_rfc3339(),
                    l.expires_at.to_rfc3339(),
                ])
            })
            .collect(),
        empty: "No leases.",
    }))
}

/// `GET /console/webhooks`.
pub async fn webhooks(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let hooks = app::webhooks::list(&state, &v.caller, None, 500).await?;
    Ok(render(&TablePage {
        layout: Layout::new(&v, "Webhooks", "/console/webhooks"),
        intro: "Subscriptions to the tenant's events, signed per Standard Webhooks. A subscription that keeps failing \
                is disabled and says why.",
        id: "webhooks",
        headings: &[
            "URL",
            "Events",
            "Status",
            "Failures in a row",
            "Failing since",
            "Last success",
        ],
        rows: hooks
            .iter()
            .map(|w| {
                Row(vec![
                    w.url.clone(),
                    w.events
                        .patterns()
                        .iter()
                        .map(|p| p.as_str().to_owned())
                        .collect::<Vec<_>>()
                        .join(" "),
                    match &w.disabled_reason {
                        Some(r) => format!("{} ({r})", w.status.as_str()),
                        None => w.status.as_str().to_owned(),
                    },
                    w.consecutive_failures.to_string(),
                    opt(w.failing_since),
                    opt(w.last_success_at),
                ])
            })
            .collect(),
        empty: "No subscriptions.",
    }))
}
