//! The operations pages: rotation (credentials due and overdue, the
//! signing key ring), database leases, and webhook subscriptions with their
//! health. Read-only views over the same use cases as the API; leases and
//! webhooks span the tenant, so not for owners.

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

/// A credential due or overdue for rotation.
pub struct Due {
    /// The agent.
    pub agent_id: String,
    /// The credential.
    pub id: String,
    /// Its kind.
    pub kind: &'static str,
    /// When it expires (or expired).
    pub expires: String,
}

#[derive(Template)]
#[template(path = "console/rotation.html")]
struct RotationPage {
    layout: Layout,
    due: Vec<Due>,
    overdue: Vec<Due>,
    due_days: i64,
    keys: Vec<Row>,
    limit: usize,
}

/// Most credentials each list shows.
const DUE_MAX: i64 = 500;

/// `GET /console/rotation`: credentials due and overdue for rotation
/// (an owner's: their agents'), and for the tenant's readers the signing
/// key ring.
pub async fn rotation(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let (due, overdue) = app::figures::rotations(&state, &v.caller, DUE_MAX).await?;
    let keys = if v.caller.owner_scope.is_some() {
        Vec::new()
    } else {
        v.caller.require_unscoped(&state, Action::SigningKeyList).await?;
        app::keys::list(&state, &v.caller)
            .await?
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
            .collect()
    };
    let rows = |cs: Vec<idv_core::credential::Credential>| {
        cs.into_iter()
            .map(|c| Due {
                agent_id: c.agent_id.to_string(),
                id: c.id.to_string(),
                kind: c.kind.as_str(),
                expires: opt(c.expires_at),
            })
            .collect()
    };
    Ok(render(&RotationPage {
        layout: Layout::new(&v, "Rotation and keys", "/console/rotation"),
        due: rows(due),
        overdue: rows(overdue),
        due_days: app::figures::ROTATION_DUE_DAYS,
        keys,
        limit: usize::try_from(DUE_MAX).unwrap_or(usize::MAX),
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

#[derive(Template)]
#[template(path = "console/webhooks.html")]
struct WebhooksPage {
    layout: Layout,
    hooks: Vec<idv_core::webhook::Webhook>,
}

/// `GET /console/webhooks`: the subscriptions and their health, each
/// linking to its deliveries.
pub async fn webhooks(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let hooks = app::webhooks::list(&state, &v.caller, None, 500).await?;
    Ok(render(&WebhooksPage {
        layout: Layout::new(&v, "Webhooks", "/console/webhooks"),
        hooks,
    }))
}

#[derive(Template)]
#[template(path = "console/webhook.html")]
struct WebhookPage {
    layout: Layout,
    hook: idv_core::webhook::Webhook,
    events: String,
    deliveries: Vec<idv_core::webhook::Delivery>,
    can_manage: bool,
    notice: Option<String>,
}

/// Deliveries shown on a subscription's page.
const DELIVERIES: i64 = 100;

/// `GET /console/webhooks/{id}`: a subscription and its latest
/// deliveries, newest first, each of which can be sent again.
pub async fn webhook(
    State(state): State<AppState>,
    v: Viewer,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response, ConsoleError> {
    let id = super::path_id(&id, "webhook")?;
    let hook = app::webhooks::get(&state, &v.caller, id).await?;
    let deliveries = app::webhooks::deliveries(
        &state,
        &v.caller,
        id,
        &idv_store::DeliveryFilter {
            newest_first: true,
            limit: DELIVERIES,
            ..idv_store::DeliveryFilter::default()
        },
    )
    .await?;
    Ok(render(&WebhookPage {
        layout: Layout::new(&v, "Webhook", "/console/webhooks"),
        events: hook
            .events
            .patterns()
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect::<Vec<_>>()
            .join(" "),
        hook,
        deliveries,
        can_manage: v
            .caller
            .principal
            .may(idv_core::admin_token::Permission::ManageWebhooks),
        notice: super::query_pairs(raw.as_deref())
            .into_iter()
            .find(|(k, _)| k == "done")
            .map(|(_, d)| d),
    }))
}

/// The re-send form.
#[derive(serde::Deserialize)]
pub struct RedeliverForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /console/webhooks/{id}/deliveries/{delivery}/redeliver`.
pub async fn redeliver(
    State(state): State<AppState>,
    v: Viewer,
    axum::extract::Path((id, delivery)): axum::extract::Path<(String, String)>,
    axum::Form(f): axum::Form<RedeliverForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let id = super::path_id(&id, "webhook")?;
    let delivery = super::path_id(&delivery, "delivery")?;
    let d = app::webhooks::redeliver(&state, &v.caller, id, delivery).await?;
    let done = format!("{} queued again as delivery {}", d.event_type, d.id);
    Ok(axum::response::IntoResponse::into_response(
        axum::response::Redirect::to(&format!("/console/webhooks/{id}?done={}", super::urlencode(&done))),
    ))
}
