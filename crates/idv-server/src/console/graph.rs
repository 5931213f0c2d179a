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

/// `GET /console/heatmap/data`.
#[derive(Serialize)]
pub struct HeatData {
    agents: Vec<(Uuid, String)>,
    actions: Vec<String>,
    cells: Vec<Cell>,
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
    Ok(HeatData { agents, actions, cells })
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
