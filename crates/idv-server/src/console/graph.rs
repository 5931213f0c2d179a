//! The agent communication graph (who calls whom, weighted by volume,
//! denied calls marked) and the access heat map (agents × actions). Both
//! pages render with ECharts from a JSON endpoint of their own, and show the
//! same data as a table for keyboards and screen readers.

use std::collections::BTreeSet;

use askama::Template;
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;
use uuid::Uuid;

use super::{ConsoleError, Layout, Viewer, query_pairs, render};
use crate::AppState;
use crate::app;

/// Most edges the graph shows (the busiest); enough for 5,000 agents.
const MAX_EDGES: i64 = 20_000;

/// Agents the heat map shows (the busiest).
const HEAT_AGENTS: usize = 40;

#[derive(Serialize)]
struct Node {
    id: Uuid,
    name: String,
    status: String,
    environment: Option<String>,
    owner: String,
}

#[derive(Serialize)]
struct Link {
    source: Uuid,
    target: Uuid,
    allowed: i64,
    denied: i64,
}

/// `GET /console/graph/data` (filters: `environment`, `owner`, `status`).
#[derive(Serialize)]
pub struct GraphData {
    nodes: Vec<Node>,
    edges: Vec<Link>,
    truncated: bool,
}

/// `GET /console/graph/data`.
pub async fn data(
    State(state): State<AppState>,
    v: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Json<GraphData>, ConsoleError> {
    let g = app::figures::graph(&state, &v.caller, MAX_EDGES).await?;
    let q = query_pairs(raw.as_deref());
    let want = |k: &str| q.iter().find(|(n, v)| n == k && !v.is_empty()).map(|(_, v)| v.clone());
    let (env, owner, status) = (want("environment"), want("owner"), want("status"));
    let keep: BTreeSet<Uuid> = g
        .nodes
        .iter()
        .filter(|n| env.as_ref().is_none_or(|e| n.environment.as_ref() == Some(e)))
        .filter(|n| owner.as_ref().is_none_or(|o| &n.owner == o))
        .filter(|n| status.as_ref().is_none_or(|s| &n.status == s))
        .map(|n| n.id)
        .collect();
    let edges: Vec<Link> = g
        .edges
        .into_iter()
        .filter(|e| keep.contains(&e.caller) && keep.contains(&e.callee))
        .map(|e| Link {
            source: e.caller,
            target: e.callee,
            allowed: e.allowed,
            denied: e.denied,
        })
        .collect();
    let used: BTreeSet<Uuid> = edges.iter().flat_map(|e| [e.source, e.target]).collect();
    Ok(Json(GraphData {
        nodes: g
            .nodes
            .into_iter()
            .filter(|n| used.contains(&n.id))
            .map(|n| Node {
                id: n.id,
                name: n.name,
                status: n.status,
                environment: n.environment,
                owner: n.owner,
            })
            .collect(),
        edges,
        truncated: g.truncated,
    }))
}

#[derive(Template)]
#[template(path = "console/graph.html")]
struct GraphPage {
    layout: Layout,
    query: String,
    environment: String,
    owner: String,
    status: String,
}

/// `GET /console/graph`.
pub async fn page(v: Viewer, RawQuery(raw): RawQuery) -> Result<Response, ConsoleError> {
    let q = query_pairs(raw.as_deref());
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    Ok(render(&GraphPage {
        layout: Layout::new(&v, "Communication graph", "/console/graph"),
        query: raw.unwrap_or_default(),
        environment: get("environment"),
        owner: get("owner"),
        status: get("status"),
    }))
}

/// One cell of the heat map.
#[derive(Serialize)]
pub struct Cell {
    agent: usize,
    action: usize,
    count: i64,
}

/// Decisions in one hour of the week (UTC), summed over the weeks shown.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct WeekCell {
    /// 0 Monday … 6 Sunday.
    day: usize,
    /// 0 … 23.
    hour: usize,
    /// Allowed.
    allowed: i64,
    /// Denied.
    denied: i64,
    /// The most recent such hour with decisions (RFC 3339): where a click
    /// looks for them.
    last: String,
}

/// Weeks the hour-of-week view sums.
const HEAT_WEEKS: i64 = 4;

/// Days of the week as shown, Monday first.
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Folds hourly sums into the 168 hours of the week (the Unix epoch was a
/// Thursday).
fn by_hour_of_week(hours: &[idv_store::HourCount]) -> Vec<WeekCell> {
    let mut week: Vec<WeekCell> = (0..168)
        .map(|i| WeekCell {
            day: i / 24,
            hour: i % 24,
            ..WeekCell::default()
        })
        .collect();
    for h in hours {
        let day = usize::try_from((h.hour.div_euclid(24) + 3).rem_euclid(7)).unwrap_or(0);
        let hour = usize::try_from(h.hour.rem_euclid(24)).unwrap_or(0);
        if let Some(c) = week.get_mut(day * 24 + hour) {
            c.allowed += h.allowed;
            c.denied += h.denied;
            // Hours come in order: the last one seen is the most recent.
            c.last = idv_core::Timestamp::from_micros(h.hour * 3_600_000_000).to_rfc3339();
        }
    }
    week
}

/// `GET /console/heatmap/data`.
#[derive(Serialize)]
pub struct HeatData {
    agents: Vec<(Uuid, String)>,
    actions: Vec<String>,
    cells: Vec<Cell>,
    days: [&'static str; 7],
    week: Vec<WeekCell>,
}

async fn heat(state: &AppState, v: &Viewer) -> Result<HeatData, ConsoleError> {
    let cells = app::figures::usage(state, &v.caller, HEAT_AGENTS).await?;
    let agents: Vec<(Uuid, String)> = cells
        .iter()
        .map(|c| (c.agent_id, c.agent_name.clone()))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let actions: Vec<String> = cells
        .iter()
        .map(|c| c.action.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let cells = cells
        .iter()
        .filter_map(|c| {
            Some(Cell {
                agent: agents.iter().position(|(id, _)| *id == c.agent_id)?,
                action: actions.iter().position(|a| *a == c.action)?,
                count: c.count,
            })
        })
        .collect();
    let hours = app::figures::decision_hours(state, &v.caller, HEAT_WEEKS).await?;
    Ok(HeatData {
        agents,
        actions,
        cells,
        days: DAYS,
        week: by_hour_of_week(&hours),
    })
}

/// `GET /console/heatmap/data`.
pub async fn heat_data(State(state): State<AppState>, v: Viewer) -> Result<Json<HeatData>, ConsoleError> {
    Ok(Json(heat(&state, &v).await?))
}

#[derive(Template)]
#[template(path = "console/heatmap.html")]
struct HeatPage {
    layout: Layout,
    data: HeatData,
}

impl HeatPage {
    fn week_count(&self, day: &usize, hour: &usize) -> i64 {
        self.data.week.get(day * 24 + hour).map_or(0, |c| c.allowed + c.denied)
    }

    fn count(&self, agent: &usize, action: &usize) -> i64 {
        self.data
            .cells
            .iter()
            .find(|c| c.agent == *agent && c.action == *action)
            .map_or(0, |c| c.count)
    }
}

/// `GET /console/heatmap`.
pub async fn heat_page(State(state): State<AppState>, v: Viewer) -> Result<Response, ConsoleError> {
    let data = heat(&state, &v).await?;
    Ok(render(&HeatPage {
        layout: Layout::new(&v, "Access heat map", "/console/heatmap"),
        data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_fold_into_the_week_from_monday() {
        // 1970-01-05 was a Monday: hour 4 × 24 + 9 is Monday 09:00 UTC.
        let monday_9 = 4 * 24 + 9;
        let hours = [
            idv_store::HourCount {
                hour: monday_9,
                allowed: 2,
                denied: 1,
            },
            idv_store::HourCount {
                hour: monday_9 + 168,
                allowed: 3,
                denied: 0,
            },
            idv_store::HourCount {
                hour: 3 * 24,
                allowed: 5,
                denied: 5,
            },
        ];
        let week = by_hour_of_week(&hours);
        assert_eq!(week.len(), 168);
        let m = &week[9];
        assert_eq!((m.day, m.hour, m.allowed, m.denied), (0, 9, 5, 1));
        assert_eq!(
            m.last,
            idv_core::Timestamp::from_micros((monday_9 + 168) * 3_600_000_000).to_rfc3339()
        );
        // Hour 72 is Sunday 1970-01-04 00:00.
        assert_eq!((week[6 * 24].allowed, week[6 * 24].denied), (5, 5));
    }
}
