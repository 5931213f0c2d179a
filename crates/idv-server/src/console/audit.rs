//! The audit log: search by actor, action, target, outcome and time range,
//! newest first and paged; an event's detail with its hash and the hash it
//! chains to, recomputed here; the result exported as CSV.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use idv_core::Timestamp;
use idv_core::audit::{Event, Outcome};
use idv_store::AuditFilter;

use super::{ConsoleError, Layout, Viewer, export, query_pairs, query_string, render};
use crate::AppState;
use crate::app;

/// Events per page.
const PAGE: i64 = 50;

/// Most events one export holds.
const EXPORT_MAX: i64 = 10_000;

/// The search, as in the query string.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// Actor name (a token's name, an agent id, …).
    pub actor: String,
    /// Action, e.g. `agent.suspend`.
    pub action: String,
    /// Target id.
    pub target: String,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    /// From (RFC 3339).
    pub since: String,
    /// Until (RFC 3339).
    pub until: String,
}

impl Search {
    fn parse(raw: Option<&str>) -> (Self, Option<String>) {
        let mut s = Search::default();
        let mut before = None;
        for (k, v) in query_pairs(raw) {
            match k.as_str() {
                "actor" => s.actor = v,
                "action" => s.action = v,
                "target" => s.target = v,
                "outcome" => s.outcome = v,
                "since" => s.since = v,
                "until" => s.until = v,
                "before" => before = Some(v),
                _ => {}
            }
        }
        (s, before)
    }

    /// The query string of this search (without a cursor).
    pub fn query(&self) -> String {
        query_string(&[
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ])
    }

    fn filter(&self, before: Option<i64>, limit: i64) -> Result<AuditFilter, ConsoleError> {
        let bad =
            |what: &str, detail: &str| ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("{what}: {detail}"));
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let time = |s: &str, what: &str| match s {
            "" => Ok(None),
            t => Timestamp::parse(t)
                .map(Some)
                .map_err(|_| bad(what, "write it as RFC 3339, e.g. 2026-12-01T00:00:00Z")),
        };
        Ok(AuditFilter {
            actor_name: nonempty(&self.actor),
            action: nonempty(&self.action),
            target_id: nonempty(&self.target),
            outcome: match self.outcome.as_str() {
                "" => None,
                o => Some(Outcome::parse(o).ok_or_else(|| bad("outcome", "success, failure or denied"))?),
            },
            since: time(&self.since, "from")?,
            until: time(&self.until, "until")?,
            before_seq: before,
            newest_first: true,
            limit,
            ..AuditFilter::default()
        })
    }
}

/// One row of the list.
pub struct Row {
    /// Sequence number.
    pub seq: i64,
    /// RFC 3339.
    pub time: String,
    /// `kind:name`.
    pub actor: String,
    /// Action.
    pub action: String,
    /// `type/id`.
    pub target: String,
    /// Outcome.
    pub outcome: &'static str,
}

impl From<&Event> for Row {
    fn from(e: &Event) -> Self {
        Row {
            seq: e.seq,
            time: e.time.to_rfc3339(),
            actor: format!("{}:{}", e.actor.kind.as_str(), e.actor.name),
            action: e.action.clone(),
            target: format!("{}/{}", e.target_type, e.target_id),
            outcome: e.outcome.as_str(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct ListPage {
    layout: Layout,
    search: Search,
    rows: Vec<Row>,
    next: Option<i64>,
    check: Option<app::audit::ChainCheck>,
    /// Whether the viewer may verify the whole chain (platform operators).
    whole_chain: bool,
}

fn before_cursor(before: Option<String>) -> Result<Option<i64>, ConsoleError> {
    before
        .filter(|b| !b.is_empty())
        .map(|b| {
            b.parse::<i64>()
                .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "the page cursor is not valid".into()))
        })
        .transpose()
}

/// `GET /console/audit`.
pub async fn list(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> Result<Response, ConsoleError> {
    let (search, before) = Search::parse(raw.as_deref());
    let filter = search.filter(before_cursor(before)?, PAGE)?;
    let events = app::audit::events(&state, &v.caller, filter, false).await?;
    let next = (events.len() as i64 == PAGE)
        .then(|| events.last().map(|e| e.seq))
        .flatten();
    Ok(render(&ListPage {
        layout: Layout::new(&v, "Audit", "/console/audit"),
        rows: events.iter().map(Row::from).collect(),
        search,
        next,
        check: app::audit::last_chain_check(&state, &v.caller),
        whole_chain: v.caller.principal.may(idv_core::admin_token::Permission::ReadAllAudit),
    }))
}

#[derive(Template)]
#[template(path = "console/audit_event.html")]
struct EventPage {
    layout: Layout,
    row: Row,
    reason: String,
    request_id: String,
    details: String,
    hash: String,
    prev_hash: String,
    intact: bool,
}

/// `GET /console/audit/{seq}`.
pub async fn event(
    State(state): State<AppState>,
    v: Viewer,
    Path(seq): Path<String>,
) -> Result<Response, ConsoleError> {
    let seq = seq
        .parse::<i64>()
        .map_err(|_| ConsoleError::Refused(StatusCode::NOT_FOUND, "no such event".into()))?;
    let filter = AuditFilter {
        after_seq: seq - 1,
        limit: 1,
        ..AuditFilter::default()
    };
    let e = app::audit::events(&state, &v.caller, filter, false)
        .await?
        .into_iter()
        .find(|e| e.seq == seq)
        .ok_or_else(|| ConsoleError::Refused(StatusCode::NOT_FOUND, "no such event in this tenant".into()))?;
    Ok(render(&EventPage {
        layout: Layout::new(&v, format!("Event {seq}"), "/console/audit"),
        reason: e.reason.clone().unwrap_or_default(),
        request_id: e.request_id.clone().unwrap_or_default(),
        details: serde_json::to_string_pretty(&e.details).unwrap_or_default(),
        hash: idv_core::hex::encode(&e.hash),
        prev_hash: idv_core::hex::encode(&e.prev_hash),
        intact: e.compute_hash() == e.hash,
        row: Row::from(&e),
    }))
}

/// `GET /console/audit/export`: the search's events (newest first, at most
/// 10,000) as CSV, or XLSX with `format=xlsx`.
pub async fn export(
    State(state): State<AppState>,
    v: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let (search, _) = Search::parse(raw.as_deref());
    let events = app::audit::events(&state, &v.caller, search.filter(None, EXPORT_MAX)?, false).await?;
    let table = export::Table {
        name: "audit-events",
        headings: &[
            "seq",
            "time",
            "actor_kind",
            "actor_name",
            "action",
            "target_type",
            "target_id",
            "outcome",
            "reason",
            "request_id",
            "hash",
        ],
        rows: events
            .iter()
            .map(|e| {
                vec![
                    e.seq.to_string(),
                    e.time.to_rfc3339(),
                    e.actor.kind.as_str().to_owned(),
                    e.actor.name.clone(),
                    e.action.clone(),
                    e.target_type.clone(),
                    e.target_id.clone(),
                    e.outcome.as_str().to_owned(),
                    e.reason.clone().unwrap_or_default(),
                    e.request_id.clone().unwrap_or_default(),
                    idv_core::hex::encode(&e.hash),
                ]
            })
            .collect(),
    };
    export::respond(raw.as_deref(), &table)
}

/// The form of the chain verification.
#[derive(serde::Deserialize)]
pub struct VerifyForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
}

/// `POST /console/audit/verify`: walks the whole chain now; the audit page
/// then shows the result.
pub async fn verify(
    State(state): State<AppState>,
    v: Viewer,
    axum::Form(f): axum::Form<VerifyForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    app::audit::verify_chain(&state, &v.caller).await?;
    Ok(axum::response::Redirect::to("/console/audit#chain").into_response())
}
