//! `idv-bench`: loads a real `idv serve` process (release build) with agents
//! over HTTP and measures creation throughput, get/list latency, resident
//! memory and `idv audit verify` time. See `docs/benchmarks.md`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng as _;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::Mutex;

/// Benchmark IdentityVault's agent registry.
#[derive(Debug, Parser)]
struct Args {
    /// Agents to load.
    #[arg(long, default_value_t = 1_000_000)]
    agents: usize,
    /// Agents per bulk request.
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Concurrent clients for the concurrent phases.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Requests per latency phase.
    #[arg(long, default_value_t = 20_000)]
    requests: usize,
    /// The `idv` binary (build it with `cargo build --release -p idv`).
    #[arg(long, default_value = "target/release/idv")]
    idv: PathBuf,
    /// Use this PostgreSQL instead of a fresh SQLite data directory.
    #[arg(long)]
    database_url: Option<String>,
    /// Keep the SQLite data directory here (default: a temporary one, removed).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print the results as JSON.
    #[arg(long)]
    json: bool,
}

/// Latency summary in microseconds.
#[derive(Debug, Serialize)]
struct Latency {
    requests: usize,
    per_sec: f64,
    p50_us: u128,
    p99_us: u128,
    p999_us: u128,
    max_us: u128,
}

impl Latency {
    fn from(mut samples: Vec<Duration>, wall: Duration) -> Self {
        samples.sort_unstable();
        let pick = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).saturating_sub(1);
            samples
                .get(i.min(samples.len().saturating_sub(1)))
                .map_or(0, Duration::as_micros)
        };
        Latency {
            requests: samples.len(),
            per_sec: samples.len() as f64 / wall.as_secs_f64(),
            p50_us: pick(0.50),
            p99_us: pick(0.99),
            p999_us: pick(0.999),
            max_us: samples.last().map_or(0, Duration::as_micros),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    store: String,
    agents: usize,
    bulk_create_agents_per_sec: f64,
    bulk_create_secs: f64,
    single_create: Latency,
    get_sequential: Latency,
    get_concurrent: Latency,
    list_first_page: Latency,
    list_deep_page: Latency,
    list_filtered_owner: Latency,
    list_filtered_label: Latency,
    server_rss_mib: f64,
    server_peak_rss_mib: f64,
    audit_events: i64,
    audit_verify_secs: f64,
    database_mib: Option<f64>,
}

struct Server {
    child: Child,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Server {
    async fn start(args: &Args, data_dir: &std::path::Path) -> anyhow::Result<Self> {
        let token = idv_core::admin_token::generate();
        let mut cmd = Command::new(&args.idv);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("IDV_BOOTSTRAP_TOKEN", &token)
            .env("IDV_LOG", "warn")
            .stdout(Stdio::piped())
            .kill_on_drop(true);
        if let Some(url) = &args.database_url {
            cmd.env("IDV_DATABASE_URL", url);
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {}", args.idv.display()))?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut lines = BufReader::new(stdout).lines();
        let mut base = None;
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix("IdentityVault listening on ") {
                base = Some(rest.trim().to_owned());
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let base = base.ok_or_else(|| anyhow!("idv serve exited before listening"))?;
        let http = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
        Ok(Server {
            child,
            base,
            token,
            http,
        })
    }

    fn rss_mib(&self) -> (f64, f64) {
        let Some(pid) = self.child.id() else { return (0.0, 0.0) };
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(0.0, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("GET {path}: {}", res.status());
        }
        Ok(res.json().await?)
    }

    async fn post_raw(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("POST {path}: {} {}", res.status(), res.text().await.unwrap_or_default());
        }
        Ok(res.json().await?)
    }

    async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        if !res.status().is_success() {
            bail!("POST {path}: {} {}", res.status(), res.text().await.unwrap_or_default());
        }
        Ok(res.json().await?)
    }
}

fn agent(i: usize) -> Value {
    let environment = ["dev", "test", "prod"].get(i % 3).copied().unwrap_or("dev");
    json!({
        "name": format!("agent-{i:08}"),
        "owner": format!("team-{}", i % 1000),
        "purpose": "benchmark load",
        "environment": environment,
        "class": format!("class-{}", i % 50),
        "labels": {"shard": (i % 100).to_string()},
    })
}

fn bar(len: usize, what: &str, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(len as u64);
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>14} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

/// Runs `total` requests from `concurrency` clients; returns per-request latencies and wall time.
async fn drive<F, Fut>(total: usize, concurrency: usize, progress: ProgressBar, f: F) -> anyhow::Result<Latency>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (f, next, samples, progress) = (f.clone(), next.clone(), samples.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let t = Instant::now();
                f(i).await?;
                mine.push(t.elapsed());
                progress.inc(1);
            }
            samples.lock().await.extend(mine);
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    progress.finish_and_clear();
    let wall = started.elapsed();
    let samples = std::mem::take(&mut *samples.lock().await);
    Ok(Latency::from(samples, wall))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.idv.is_file() {
        bail!(
            "{} not found: run `cargo build --release -p idv` first (or pass --idv)",
            args.idv.display()
        );
    }
    let temp = tempfile::tempdir()?;
    let dir = args.data_dir.clone().unwrap_or_else(|| temp.path().to_path_buf());
    let server = Arc::new(Server::start(&args, &dir).await?);
    let quiet = args.json;

    // 1. Bulk load. Request bodies are built before the clock starts, so the
    // figure is the server's, not the benchmark's JSON encoder's.
    let batches = args.agents.div_ceil(args.batch);
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..batches)
            .map(|b| {
                let agents: Vec<Value> = (b * args.batch..((b + 1) * args.batch).min(args.agents))
                    .map(agent)
                    .collect();
                serde_json::to_vec(&json!({"agents": agents}))
            })
            .collect::<Result<_, _>>()?,
    );
    let ids: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::with_capacity(args.agents)));
    let started = Instant::now();
    let load_bar = bar(args.agents, "bulk create", quiet);
    {
        let (server, ids, bodies, load_bar) = (server.clone(), ids.clone(), bodies.clone(), load_bar.clone());
        drive(batches, 2, ProgressBar::hidden(), move |b| {
            let (server, ids, bodies, load_bar) = (server.clone(), ids.clone(), bodies.clone(), load_bar.clone());
            async move {
                let body = bodies.get(b).cloned().ok_or_else(|| anyhow!("no body {b}"))?;
                let res = server.post_raw("/v1/agents/bulk", body).await?;
                let mut got: Vec<String> = res
                    .get("agents")
                    .and_then(Value::as_array)
                    .ok_or_else(|| anyhow!("bulk answer has no agents"))?
                    .iter()
                    .filter_map(|a| a.get("id").and_then(Value::as_str).map(str::to_owned))
                    .collect();
                load_bar.inc(got.len() as u64);
                ids.lock().await.append(&mut got);
                Ok(())
            }
        })
        .await?;
    }
    load_bar.finish_and_clear();
    let bulk_secs = started.elapsed().as_secs_f64();
    let ids = Arc::new(std::mem::take(&mut *ids.lock().await));

    // 2. Single creates.
    let single = {
        let s = server.clone();
        drive(
            args.requests / 4,
            args.concurrency,
            bar(args.requests / 4, "single create", quiet),
            move |i| {
                let s = s.clone();
                async move {
                    let body = json!({"name": format!("single-{i:08}"), "owner": "team-s", "purpose": "benchmark"});
                    s.post("/v1/agents", &body).await.map(|_| ())
                }
            },
        )
        .await?
    };

    // 3. Gets by id.
    let get_phase = |concurrency: usize, label: &'static str| {
        let (s, ids) = (server.clone(), ids.clone());
        drive(
            args.requests,
            concurrency,
            bar(args.requests, label, quiet),
            move |_| {
                let (s, ids) = (s.clone(), ids.clone());
                async move {
                    let i = rand::rng().random_range(0..ids.len());
                    let id = ids.get(i).ok_or_else(|| anyhow!("no ids"))?;
                    s.get(&format!("/v1/agents/{id}")).await.map(|_| ())
                }
            },
        )
    };
    let get_sequential = get_phase(1, "get (1 client)").await?;
    let get_concurrent = get_phase(args.concurrency, "get (N clients)").await?;

    // 4. List pages.
    let list_phase = |path: String, n: usize, label: &'static str| {
        let s = server.clone();
        drive(n, 1, bar(n, label, quiet), move |_| {
            let (s, path) = (s.clone(), path.clone());
            async move { s.get(&path).await.map(|_| ()) }
        })
    };
    let mid = ids.get(ids.len() / 2).cloned().unwrap_or_default();
    let list_first_page = list_phase("/v1/agents?limit=100".into(), 500, "list first").await?;
    let list_deep_page = list_phase(format!("/v1/agents?limit=100&cursor={mid}"), 500, "list deep").await?;
    let list_filtered_owner = list_phase("/v1/agents?limit=100&owner=team-7".into(), 500, "list owner").await?;
    let list_filtered_label = list_phase("/v1/agents?limit=100&label=shard%3D42".into(), 500, "list label").await?;

    let (rss, peak) = server.rss_mib();
    let head = server.get("/v1/audit/head").await?;
    let audit_events = head.get("seq").and_then(Value::as_i64).unwrap_or(0);

    // 5. Stop the server and verify the whole chain offline, as an operator would.
    let Server { mut child, .. } = Arc::try_unwrap(server).map_err(|_| anyhow!("server still in use"))?;
    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status();
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait()).await??;
    let mut verify = std::process::Command::new(&args.idv);
    verify.args(["audit", "verify", "--json"]);
    match &args.database_url {
        Some(url) => verify.args(["--database-url", url]),
        None => verify.arg("--data-dir").arg(&dir),
    };
    let started = Instant::now();
    let out = verify.output()?;
    let audit_verify_secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("audit verify failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let database_mib = args.database_url.is_none().then(|| {
        ["idv.db", "idv.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len() as f64 / (1024.0 * 1024.0))
            .sum()
    });

    let report = Report {
        store: if args.database_url.is_some() {
            "postgresql".into()
        } else {
            "sqlite".into()
        },
        agents: args.agents,
        bulk_create_agents_per_sec: args.agents as f64 / bulk_secs,
        bulk_create_secs: bulk_secs,
        single_create: single,
        get_sequential,
        get_concurrent,
        list_first_page,
        list_deep_page,
        list_filtered_owner,
        list_filtered_label,
        server_rss_mib: rss,
        server_peak_rss_mib: peak,
        audit_events,
        audit_verify_secs,
        database_mib,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!("IdentityVault benchmark: {} agents on {}", r.agents, r.store);
    println!(
        "  bulk create        {:>10.0} agents/s ({:.1} s)   target >= 50,000/s",
        r.bulk_create_agents_per_sec, r.bulk_create_secs
    );
    let row = |name: &str, l: &Latency| {
        println!(
            "  {name:<18} {:>10.0} req/s   p50 {:>6} us  p99 {:>6} us  p99.9 {:>6} us  max {:>7} us  (n={})",
            l.per_sec, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.requests
        );
    };
    row("single create", &r.single_create);
    row("get (1 client)", &r.get_sequential);
    row("get (N clients)", &r.get_concurrent);
    row("list first page", &r.list_first_page);
    row("list deep page", &r.list_deep_page);
    row("list by owner", &r.list_filtered_owner);
    row("list by label", &r.list_filtered_label);
    println!(
        "  server RSS         {:>10.1} MiB (peak {:.1} MiB)",
        r.server_rss_mib, r.server_peak_rss_mib
    );
    if let Some(db) = r.database_mib {
        println!("  database size      {db:>10.1} MiB");
    }
    println!(
        "  audit verify       {:>10.2} s for {} events   target < 5 s for 1M",
        r.audit_verify_secs, r.audit_events
    );
}
