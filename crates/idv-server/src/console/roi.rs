//! The ROI calculator: the product sheet's defaults, figures pre-filled from
//! the live system, the result as a table and a chart, and a link (the
//! page's own URL) that reproduces the same inputs.

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use idv_core::roi::{Inputs, Outcome};

use super::{ConsoleError, Layout, Viewer, query_pairs, render};
use crate::AppState;
use crate::app;

#[derive(Template)]
#[template(path = "console/roi.html")]
struct Page {
    layout: Layout,
    inputs: Inputs,
    outcome: Outcome,
    rotations_90d: i64,
    live_agents: i64,
}

impl Page {
    /// A sum of money, rounded to the dollar with thousands separators.
    fn money(&self, v: &f64) -> String {
        let whole = v.round() as i64;
        let digits = whole.unsigned_abs().to_string();
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        format!("{}${out}", if whole < 0 { "-" } else { "" })
    }
}

/// `GET /console/roi`: every input is a query parameter, so the URL is the
/// link that reproduces the calculation.
pub async fn page(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> Result<Response, ConsoleError> {
    let (live_agents, rotations_90d) = app::figures::roi_facts(&state, &v.caller).await?;
    let mut inputs = Inputs {
        agents: live_agents as f64,
        ..Inputs::default()
    };
    for (k, val) in query_pairs(raw.as_deref()) {
        if val.is_empty() {
            continue;
        }
        let slot = match k.as_str() {
            "agents" => &mut inputs.agents,
            "review_cost_manual" => &mut inputs.review_cost_manual,
            "review_cost_automated" => &mut inputs.review_cost_automated,
            "credential_hours_per_week" => &mut inputs.credential_hours_per_week,
            "hourly_cost" => &mut inputs.hourly_cost,
            "credential_time_saved" => &mut inputs.credential_time_saved,
            "incidents_avoided" => &mut inputs.incidents_avoided,
            "incident_cost" => &mut inputs.incident_cost,
            "annual_cost" => &mut inputs.annual_cost,
            _ => continue,
        };
        *slot = val
            .replace(',', "")
            .parse::<f64>()
            .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("`{k}`: `{val}` is not a number")))?;
    }
    inputs
        .check()
        .map_err(|e| ConsoleError::Refused(StatusCode::BAD_REQUEST, e.to_string()))?;
    Ok(render(&Page {
        layout: Layout::new(&v, "ROI calculator", "/console/roi"),
        outcome: inputs.outcome(),
        inputs,
        rotations_90d,
        live_agents,
    }))
}
