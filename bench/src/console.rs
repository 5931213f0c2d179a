//! The console at scale: a registry of N agents (default 1,000,000), then
//! the server time of the overview and the inventory pages, beside the JSON
//! API's first page of the same agents (the baseline: the same store read
//! without HTML), and the communication graph's data for a neighbourhood of
//! G agents (default 5,000) that call each other.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::json;

use crate::latency::{Budget, Latency, drive};
use crate::load;
use crate::server::Server;

/// `idv-bench console`.
#[derive(Debug, clap::Args)]
pub struct ConsoleArgs {
    /// Agents in the registry.
    #[arg(long, default_value_t = 1_000_000)]
    pub agents: usize,
    /// Agents in the communication graph (each calls the next two).
    #[arg(long, default_value_t = 5_000)]
    pub graph_agents: usize,
    /// Requests per measured page (one at a time: server time, not
    /// throughput).
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct ConsoleReport {
    /// Agents loaded.
    pub agents: usize,
    /// Seconds the load took.
    pub load_secs: f64,
    /// `GET /console` (the overview).
    pub overview: Latency,
    /// `GET /console/agents` (the inventory's first page).
    pub inventory: Latency,
    /// `GET /console/agents?status=active&name=agent-9` (filtered).
    pub inventory_filtered: Latency,
    /// `GET /v1/agents?limit=50` (the baseline: the same first page as JSON).
    pub api_first_page: Latency,
    /// `GET /console/graph/data`.
    pub graph_data: Latency,
    /// Nodes and edges the graph answered.
    pub graph_nodes: usize,
    /// Edges.
    pub graph_edges: usize,
}

impl ConsoleReport {
    /// Prints the figures.
    pub fn print_table(&self) {
        println!("registry: {} agents loaded in {:.1} s", self.agents, self.load_secs);
        println!(
            "{:<46}{:>10}{:>10}{:>10}",
            "page (one request at a time)", "p50 µs", "p99 µs", "max µs"
        );
        for (name, l) in [
            ("GET /console (overview)", &self.overview),
            ("GET /console/agents (inventory)", &self.inventory),
            ("GET /console/agents?status=…&name=…", &self.inventory_filtered),
            ("GET /v1/agents?limit=50 (baseline)", &self.api_first_page),
            ("GET /console/graph/data", &self.graph_data),
        ] {
            println!("{name:<46}{:>10}{:>10}{:>10}", l.p50_us, l.p99_us, l.max_us);
        }
        println!(
            "graph: {} agents, {} caller → callee pairs; inventory / API first page p99: {:.2}",
            self.graph_nodes,
            self.graph_edges,
            self.inventory.p99_us as f64 / self.api_first_page.p99_us.max(1) as f64
        );
    }
}

/// Times `path` (with the console session `cookie`) one request at a time.
async fn page(server: &Arc<Server>, cookie: &str, path: &str, requests: usize) -> anyhow::Result<Latency> {
    let (server, cookie, path) = (server.clone(), cookie.to_owned(), path.to_owned());
    drive(
        Budget {
            requests,
            time: Some(Duration::from_secs(120)),
        },
        1,
        ProgressBar::hidden(),
        move |_| {
            let (server, cookie, path) = (server.clone(), cookie.clone(), path.clone());
            async move {
                let res = server
                    .http()
                    .get(format!("{}{path}", server.base))
                    .header("cookie", cookie)
                    .send()
                    .await?;
                if !res.status().is_success() {
                    bail!("{path}: {}", res.status());
                }
                res.bytes().await?;
                Ok(())
            }
        },
    )
    .await
}

/// POSTs `body` to `path` with the bootstrap token; any success will do.
async fn call(server: &Server, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let res = server
        .http()
        .post(format!("{}{path}", server.base))
        .bearer_auth(server.token())
        .json(&body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("POST {path}: {}", res.status());
    }
    Ok(())
}

/// Runs the console phase.
pub async fn run(args: &ConsoleArgs, server: &Arc<Server>) -> anyhow::Result<ConsoleReport> {
    crate::say(&format!("loading {} agents", args.agents));
    let (loaded, ids) = load::bulk(server, args.agents, 50_000, 2, ProgressBar::hidden()).await?;
    // A console session, signed in with the bootstrap token.
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let res = no_redirects
        .post(format!("{}/console/login", server.base))
        .form(&[("token", server.token())])
        .send()
        .await?;
    let cookie = res
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow!("the console sign-in set no cookie ({})", res.status()))?
        .to_owned();
    // The graph: G agents, active, each calling the next two.
    let graph: Vec<uuid::Uuid> = ids.iter().take(args.graph_agents).copied().collect();
    let g = graph.len();
    crate::say(&format!("building a communication graph of {g} agents"));
    call(
        server,
        "/v1/policies",
        json!({"policies": r#"permit(principal is Agent, action == Action::"invoke", resource is Agent);"#, "activate": true}),
    )
    .await?;
    for id in &graph {
        call(server, &format!("/v1/agents/{id}/activate"), json!({"reason": "bench"})).await?;
    }
    for (i, from) in graph.iter().enumerate() {
        for step in [1, 2] {
            let Some(to) = graph.get((i + step) % g) else { continue };
            call(
                server,
                "/access/v1/evaluation",
                json!({"subject": {"type": "agent", "id": from}, "action": {"name": "invoke"},
                       "resource": {"type": "agent", "id": to}}),
            )
            .await?;
        }
    }
    crate::say("measuring the console's pages");
    let n = args.requests;
    let overview = page(server, &cookie, "/console", n).await?;
    let inventory = page(server, &cookie, "/console/agents", n).await?;
    let inventory_filtered = page(server, &cookie, "/console/agents?status=active&name=agent-9", n).await?;
    let api = {
        let s = server.clone();
        drive(
            Budget {
                requests: n,
                time: Some(Duration::from_secs(120)),
            },
            1,
            ProgressBar::hidden(),
            move |_| {
                let s = s.clone();
                async move {
                    s.get("/v1/agents?limit=50").await?;
                    Ok(())
                }
            },
        )
        .await?
    };
    let graph_data = page(server, &cookie, "/console/graph/data", n.min(50)).await?;
    let shape: serde_json::Value = serde_json::from_slice(
        &server
            .http()
            .get(format!("{}/console/graph/data", server.base))
            .header("cookie", &cookie)
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    Ok(ConsoleReport {
        agents: loaded.agents,
        load_secs: loaded.secs,
        overview,
        inventory,
        inventory_filtered,
        api_first_page: api,
        graph_data,
        graph_nodes: shape.get("nodes").and_then(|v| v.as_array()).map_or(0, Vec::len),
        graph_edges: shape.get("edges").and_then(|v| v.as_array()).map_or(0, Vec::len),
    })
}
