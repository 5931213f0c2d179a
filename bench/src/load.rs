//! Loading the registry: bulk creation of N agents, and single creates.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::anyhow;
use idv_api::AgentBulkCreated;
use indicatif::ProgressBar;
use serde::Serialize;
use uuid::Uuid;

use crate::latency::{Budget, Latency, drive};
use crate::server::Server;

/// Owners agents are spread over (`owner=team-7` selects 1 in this many).
pub const OWNERS: usize = 1_000;
/// Values of the `shard` label (`label=shard=42` selects 1 in this many).
pub const SHARDS: usize = 100;

/// The owner of the `i`th loaded agent.
pub fn owner(i: usize) -> String {
    format!("team-{}", i % OWNERS)
}

/// One agent of the load as JSON: every filterable field set, one label and
/// two capabilities, so rows and indexes are as large as a typical agent's.
pub fn write_agent(out: &mut String, i: usize) {
    let environment = match i % 3 {
        0 => "dev",
        1 => "test",
        _ => "prod",
    };
    let _ = write!(
        out,
        r#"{{"name":"agent-{i:08}","owner":"team-{owner}","purpose":"benchmark load: reconcile ledger batch {i}","environment":"{environment}","team":"payments","class":"class-{class}","labels":{{"shard":"{shard}"}},"capabilities":["ledger:read","ledger:reconcile"]}}"#,
        owner = i % OWNERS,
        class = i % 50,
        shard = i % SHARDS,
    );
}

/// The body of `POST /v1/agents/bulk` for agents `range`.
fn bulk_body(range: std::ops::Range<usize>) -> Vec<u8> {
    let mut out = String::with_capacity(range.len() * 240 + 16);
    out.push_str(r#"{"agents":["#);
    for (k, i) in range.enumerate() {
        if k > 0 {
            out.push(',');
        }
        write_agent(&mut out, i);
    }
    out.push_str("]}");
    out.into_bytes()
}

/// What loading the registry measured.
#[derive(Clone, Debug, Serialize)]
pub struct BulkResult {
    /// Agents created.
    pub agents: usize,
    /// Agents per request.
    pub batch: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Wall time of the whole load.
    pub secs: f64,
    /// `agents / secs`.
    pub agents_per_sec: f64,
    /// Throughput while the first half was loaded.
    pub first_half_per_sec: f64,
    /// Throughput while the second half was loaded (a larger registry).
    pub second_half_per_sec: f64,
    /// Latency of one bulk request.
    pub request: Latency,
}

/// Creates `n` agents with bulk requests of `batch` agents, `concurrency`
/// requests at a time. Returns the result and the created ids: the id of
/// agent `i` (named `agent-<i>`) at index `i`.
pub async fn bulk(
    server: &Arc<Server>,
    n: usize,
    batch: usize,
    concurrency: usize,
    bar: ProgressBar,
) -> anyhow::Result<(BulkResult, Vec<Uuid>)> {
    let batch = batch.max(1);
    let batches = n.div_ceil(batch);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (server, next, bar) = (server.clone(), next.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            // (agents, request latency, completed at) per batch, and the ids.
            let mut done: Vec<(usize, Duration, Duration)> = Vec::new();
            let mut ids = Vec::new();
            loop {
                let b = next.fetch_add(1, Ordering::Relaxed);
                if b >= batches {
                    break;
                }
                let range = b * batch..((b + 1) * batch).min(n);
                let count = range.len();
                let body = bulk_body(range);
                let t = Instant::now();
                let res = server.post("/v1/agents/bulk", body).await?;
                let took = t.elapsed();
                let created: AgentBulkCreated = serde_json::from_slice(&res)?;
                if created.created != count {
                    return Err(anyhow!("bulk request {b}: created {} of {count}", created.created));
                }
                ids.push((b, created.agents.into_iter().map(|a| a.id).collect::<Vec<_>>()));
                done.push((count, took, started.elapsed()));
                bar.inc(count as u64);
            }
            anyhow::Ok((done, ids))
        }));
    }
    let mut done = Vec::with_capacity(batches);
    let mut batches_ids = Vec::with_capacity(batches);
    for t in tasks {
        let (d, i) = t.await??;
        done.extend(d);
        batches_ids.extend(i);
    }
    let secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    batches_ids.sort_unstable_by_key(|b| b.0);
    let ids: Vec<Uuid> = batches_ids.into_iter().flat_map(|b| b.1).collect();
    // Throughput over each half of the load: up to the acknowledgement that
    // completed the first half, and from there to the end. (Halves, not
    // finer slices: the server group-commits several bulk requests at once,
    // so acknowledgements arrive in bursts.)
    done.sort_by_key(|d| d.2);
    let mut acked = 0;
    let mut half = None;
    for (count, _, at) in &done {
        acked += count;
        if acked * 2 >= n {
            half = Some((acked, at.as_secs_f64()));
            break;
        }
    }
    let (first_half_per_sec, second_half_per_sec) = match half {
        Some((acked, at)) => (acked as f64 / at.max(1e-9), (n - acked) as f64 / (secs - at).max(1e-9)),
        None => (0.0, 0.0),
    };
    let request = Latency::summarise(
        done.iter().map(|d| d.1).collect(),
        concurrency,
        Duration::from_secs_f64(secs),
    );
    Ok((
        BulkResult {
            agents: ids.len(),
            batch,
            concurrency,
            secs,
            agents_per_sec: ids.len() as f64 / secs.max(1e-9),
            first_half_per_sec,
            second_half_per_sec,
            request,
        },
        ids,
    ))
}

/// `POST /v1/agents` from `clients` clients until `budget` is spent.
pub async fn single(server: &Arc<Server>, budget: Budget, clients: usize, bar: ProgressBar) -> anyhow::Result<Latency> {
    let server = server.clone();
    drive(budget, clients, bar, move |i| {
        let server = server.clone();
        async move {
            let mut body = String::with_capacity(256);
            write_agent(&mut body, i);
            let body = body.replacen("\"agent-", "\"single-", 1);
            server.post("/v1/agents", body.into_bytes()).await.map(drop)
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_valid_requests() {
        let body = bulk_body(5..8);
        let parsed: idv_api::AgentBulkCreate = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed.agents.len(), 3);
        assert_eq!(parsed.agents[0].name, "agent-00000005");
        assert_eq!(parsed.agents[2].owner, owner(7));
    }
}
