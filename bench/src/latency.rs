//! Client-observed latency: running a phase of requests from several clients
//! and summarising the samples as percentiles.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;

/// Latency percentiles of one phase, in microseconds, and its throughput.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    /// Requests completed.
    pub requests: usize,
    /// Clients sending at once.
    pub clients: usize,
    /// Requests per second over the phase's wall time.
    pub per_sec: f64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Slowest request.
    pub max_us: u64,
}

impl Latency {
    /// Summarises `samples` taken over `wall`.
    pub fn summarise(mut samples: Vec<Duration>, clients: usize, wall: Duration) -> Self {
        samples.sort_unstable();
        let micros = |d: Option<&Duration>| d.map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        Latency {
            requests: samples.len(),
            clients,
            per_sec: samples.len() as f64 / wall.as_secs_f64().max(1e-9),
            p50_us: micros(samples.get(rank(samples.len(), 0.50))),
            p99_us: micros(samples.get(rank(samples.len(), 0.99))),
            p999_us: micros(samples.get(rank(samples.len(), 0.999))),
            max_us: micros(samples.last()),
        }
    }
}

/// The index of quantile `q` in `n` sorted samples (nearest rank).
fn rank(n: usize, q: f64) -> usize {
    ((n as f64 * q).ceil() as usize)
        .saturating_sub(1)
        .min(n.saturating_sub(1))
}

/// When a phase stops.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// At most this many requests.
    pub requests: usize,
    /// At most this long (requests in flight still finish).
    pub time: Option<Duration>,
}

/// Runs `request(i)` for `i` in `0..budget.requests` from `clients` concurrent
/// clients (each waits for its answer before sending the next), until the
/// budget is spent; returns the latency summary.
pub async fn drive<F, Fut>(budget: Budget, clients: usize, bar: ProgressBar, request: F) -> anyhow::Result<Latency>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send,
{
    let request = Arc::new(request);
    drive_each(
        budget,
        clients,
        bar,
        || async { Ok(()) },
        move |(), i| {
            let request = request.clone();
            async move { request(i).await }
        },
    )
    .await
}

/// [`drive`] with state of each client's own (say, its connection): made by
/// `open` before the phase's clock starts, passed into every `request` and
/// handed back by it.
pub async fn drive_each<S, O, OFut, F, Fut>(
    budget: Budget,
    clients: usize,
    bar: ProgressBar,
    open: O,
    request: F,
) -> anyhow::Result<Latency>
where
    S: Send + 'static,
    O: Fn() -> OFut,
    OFut: Future<Output = anyhow::Result<S>>,
    F: Fn(S, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<S>> + Send,
{
    let mut states = Vec::with_capacity(clients.max(1));
    for _ in 0..clients.max(1) {
        states.push(open().await?);
    }
    let request = Arc::new(request);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for mut state in states {
        let (request, next, bar) = (request.clone(), next.clone(), bar.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::with_capacity(budget.requests / clients.max(1) + 1);
            loop {
                if budget.time.is_some_and(|t| started.elapsed() >= t) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= budget.requests {
                    break;
                }
                let t = Instant::now();
                state = request(state, i).await?;
                mine.push(t.elapsed());
                bar.inc(1);
            }
            anyhow::Ok(mine)
        }));
    }
    let mut samples = Vec::with_capacity(budget.requests);
    for t in tasks {
        samples.extend(t.await??);
    }
    let wall = started.elapsed();
    bar.finish_and_clear();
    Ok(Latency::summarise(samples, clients, wall))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let l = Latency::summarise(samples, 1, Duration::from_secs(1));
        assert_eq!((l.p50_us, l.p99_us, l.p999_us, l.max_us), (500, 990, 999, 1000));
        assert_eq!(Latency::summarise(Vec::new(), 1, Duration::from_secs(1)).p99_us, 0);
    }
}
