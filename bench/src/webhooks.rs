//! Webhook delivery under sustained load: a local receiver (answering 204 at
//! once, as a healthy endpoint does) subscribes to `agent.created`, agents
//! are created at a steady rate, and every delivery's lag (from the audit
//! event's time to its arrival at the receiver) is recorded; then a burst of
//! agents created at once, timed until the last delivery arrives.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use idv_core::Clock as _;
use idv_core::Timestamp;
use idv_core::clock::SystemClock;
use serde::Serialize;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::load::write_agent;
use crate::server::Server;

/// `idv-bench webhooks`.
#[derive(Debug, clap::Args)]
pub struct WebhooksArgs {
    /// Events per second during the sustained phase.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Seconds of the sustained phase.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// Agents created at once in the burst phase.
    #[arg(long, default_value_t = 500)]
    pub burst: usize,
    /// Seconds to wait for the last deliveries after each phase.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
}

/// Delivery lag of one phase.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// Events made.
    pub events: usize,
    /// Deliveries that arrived (within the drain time).
    pub delivered: usize,
    /// Deliveries per second, from the first event to the last arrival.
    pub per_sec: f64,
    /// Lag from the event to its arrival: median, ms.
    pub lag_p50_ms: f64,
    /// 99th percentile, ms.
    pub lag_p99_ms: f64,
    /// Largest, ms.
    pub lag_max_ms: f64,
    /// From the first event to the last arrival, s.
    pub wall_secs: f64,
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct WebhooksReport {
    /// Events at `--rate` for `--secs`.
    pub sustained: Phase,
    /// `--burst` events at once.
    pub burst: Phase,
    /// The rate asked for.
    pub rate: u32,
}

/// Arrivals at the receiver: (arrival, event time), both wall clock.
type Arrivals = Arc<Mutex<Vec<(Timestamp, Timestamp)>>>;

/// A minimal HTTP/1.1 receiver on 127.0.0.1 (keep-alive, `Content-Length`
/// bodies), answering 204 at once and recording each arrival.
async fn receiver(arrivals: Arrivals) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(serve(conn, arrivals.clone()));
        }
    });
    Ok(url)
}

async fn serve(mut conn: tokio::net::TcpStream, arrivals: Arrivals) -> anyhow::Result<()> {
    let clock = SystemClock::default();
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    loop {
        // Headers, then the body.
        let (head, length) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            if let httparse::Status::Complete(n) = req.parse(&buf)? {
                let length = req
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (n, length);
            }
            if conn.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        };
        while buf.len() < head + length {
            if conn.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        let at = clock.now();
        let body: serde_json::Value = serde_json::from_slice(buf.get(head..head + length).unwrap_or_default())?;
        let event_time = body
            .get("timestamp")
            .and_then(serde_json::Value::as_str)
            .and_then(|t| Timestamp::parse(t).ok());
        if let (Some(t), Ok(mut a)) = (event_time, arrivals.lock()) {
            a.push((at, t));
        }
        buf.drain(..head + length);
        conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await?;
    }
}

/// Waits until `want` arrivals or `drain` passes; summarises those since
/// `from` (the index where the phase's arrivals start).
async fn settle(arrivals: &Arrivals, from: usize, events: usize, started: Timestamp, drain: Duration) -> Phase {
    let deadline = Instant::now() + drain;
    let count = || arrivals.lock().map_or(0, |a| a.len().saturating_sub(from));
    while count() < events && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let got: Vec<(Timestamp, Timestamp)> = arrivals
        .lock()
        .map(|a| a.get(from..).unwrap_or_default().to_vec())
        .unwrap_or_default();
    let mut lags: Vec<f64> = got
        .iter()
        .map(|(at, t)| (at.as_micros() - t.as_micros()) as f64 / 1000.0)
        .collect();
    lags.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let i = ((lags.len() as f64 * p).ceil() as usize).saturating_sub(1);
        lags.get(i.min(lags.len().saturating_sub(1))).copied().unwrap_or(0.0)
    };
    let last = got
        .iter()
        .map(|(at, _)| at.as_micros())
        .max()
        .unwrap_or(started.as_micros());
    let wall_secs = (last - started.as_micros()) as f64 / 1e6;
    Phase {
        events,
        delivered: got.len(),
        per_sec: got.len() as f64 / wall_secs.max(1e-9),
        lag_p50_ms: q(0.50),
        lag_p99_ms: q(0.99),
        lag_max_ms: lags.last().copied().unwrap_or(0.0),
        wall_secs,
    }
}

async fn create(server: &Server, i: usize) -> anyhow::Result<()> {
    let mut body = String::with_capacity(256);
    write_agent(&mut body, i);
    let body = body.replacen("\"agent-", "\"hooked-", 1);
    server.post("/v1/agents", body.into_bytes()).await.map(drop)
}

/// Runs the benchmark.
pub async fn run(args: &WebhooksArgs, server: &Arc<Server>) -> anyhow::Result<WebhooksReport> {
    if args.rate == 0 {
        bail!("--rate must be at least 1");
    }
    let arrivals: Arrivals = Arc::default();
    let url = receiver(arrivals.clone()).await?;
    let sub = serde_json::json!({ "url": url, "events": ["agent.created"] });
    server.post("/v1/webhooks", serde_json::to_vec(&sub)?).await?;
    let clock = SystemClock::default();
    let drain = Duration::from_secs(args.drain_secs);

    // Sustained: one agent every 1/rate s, each request on its own task so
    // a slow answer does not slow the pace.
    crate::say(&format!(
        "sustained: {} agent.created events/s for {} s",
        args.rate, args.secs
    ));
    let events = usize::try_from(u64::from(args.rate) * args.secs)?;
    let started = clock.now();
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut sent = Vec::with_capacity(events);
    for i in 0..events {
        tick.tick().await;
        let server = server.clone();
        sent.push(tokio::spawn(async move { create(&server, i).await }));
    }
    for s in sent {
        s.await??;
    }
    let sustained = settle(&arrivals, 0, events, started, drain).await;

    // Burst: all at once (16 clients' worth of requests in flight).
    crate::say(&format!("burst: {} agents created at once", args.burst));
    let from = arrivals.lock().map_or(0, |a| a.len());
    let started = clock.now();
    let mut sent = Vec::with_capacity(args.burst);
    for i in 0..args.burst {
        let server = server.clone();
        sent.push(tokio::spawn(async move { create(&server, events + i).await }));
    }
    for s in sent {
        s.await??;
    }
    let burst = settle(&arrivals, from, args.burst, started, drain).await;
    Ok(WebhooksReport {
        sustained,
        burst,
        rate: args.rate,
    })
}

impl WebhooksReport {
    /// The human-readable table.
    pub fn print_table(&self) {
        for (what, p) in [
            (format!("sustained ({}/s)", self.rate), &self.sustained),
            ("burst".to_owned(), &self.burst),
        ] {
            println!(
                "{what}: {}/{} delivered in {:.2} s ({:.0}/s); lag p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                p.delivered, p.events, p.wall_secs, p.per_sec, p.lag_p50_ms, p.lag_p99_ms, p.lag_max_ms
            );
        }
    }
}
