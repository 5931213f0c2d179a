//! `idv-bench`: starts the real IdentityVault server in this process (on a
//! runtime of its own, over a fresh SQLite data directory or PostgreSQL
//! schema), loads it with agents over HTTP, and measures creation throughput
//! (bulk and single), get-by-id and list latency, resident memory and the time
//! to verify the whole audit chain. See `docs/benchmarks.md`.
//!
//! ```text
//! cargo run --release -p idv-bench -- --agents 1000000 [--database-url postgres://…] [--json]
//! ```

mod console;
mod cpu;
mod dbcreds;
mod decisions;
mod latency;
mod load;
mod memory;
mod report;
mod rotation;
mod server;
mod tokens;
mod verify;
mod webhooks;
mod wire;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng as _;
use uuid::Uuid;

use crate::latency::{Budget, Latency, drive};
use crate::report::{Machine, Memory, PathResult, Report};
use crate::server::{Database, Server};

// The allocator `idv serve` runs with (crates/idv/src/main.rs), so the
// in-process server allocates as the shipped binary does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Benchmark IdentityVault's agent registry and audit chain.
#[derive(Debug, Parser)]
#[command(name = "idv-bench", version)]
struct Args {
    /// Agents to load in bulk.
    #[arg(long, default_value_t = 1_000_000)]
    agents: usize,
    /// Agents per bulk request (the server takes up to 50,000).
    #[arg(long, default_value_t = 10_000)]
    batch: usize,
    /// Bulk requests in flight at once.
    #[arg(long, default_value_t = 4)]
    bulk_concurrency: usize,
    /// Clients of the concurrent phases (single creates, concurrent gets).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Single creates: at most this many requests…
    #[arg(long, default_value_t = 20_000)]
    single_requests: usize,
    /// …and at most this many seconds.
    #[arg(long, default_value_t = 10)]
    single_secs: u64,
    /// Requests of each get-by-id phase.
    #[arg(long, default_value_t = 20_000)]
    get_requests: usize,
    /// Requests of each list phase (each phase also stops after 10 s).
    #[arg(long, default_value_t = 500)]
    list_requests: usize,
    /// Run on PostgreSQL (a fresh schema in this database, dropped at the
    /// end) instead of SQLite.
    #[arg(long)]
    database_url: Option<String>,
    /// Keep the PostgreSQL schema after the run.
    #[arg(long)]
    keep: bool,
    /// SQLite data directory (must not hold a database; default: a temporary
    /// one, removed at the end). Also holds the master key.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Worker threads of the server's runtime (default: one per core, as `idv serve`).
    #[arg(long)]
    server_threads: Option<usize>,
    /// Worker threads of the load generator's runtime.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// Print the report as JSON instead of a table (progress bars still go to stderr).
    #[arg(long)]
    json: bool,
    /// Another benchmark instead of the registry one.
    #[command(subcommand)]
    mode: Option<Mode>,
}

/// Benchmarks other than the registry load.
#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// OAuth: token issuance, introspection and exchange, against the
    /// oidc-provider baseline.
    Tokens(tokens::TokensArgs),
    /// Authorization decisions: in process against plain cedar-policy, and
    /// AuthZEN over HTTP with every decision audited.
    Decisions(decisions::DecisionsArgs),
    /// Scheduled credential rotation of many agents, and token issuance
    /// while it runs.
    Rotation(rotation::RotationArgs),
    /// Dynamic PostgreSQL credentials: issue + revoke cycles against a
    /// real PostgreSQL target.
    Dbcreds(dbcreds::DbCredsArgs),
    /// Webhook delivery throughput and lag to a local receiver, sustained
    /// and in a burst.
    Webhooks(webhooks::WebhooksArgs),
    /// The console at scale: overview and inventory pages over a large
    /// registry, beside the JSON API's first page, and the graph's data.
    Console(console::ConsoleArgs),
}

/// Runs `measure` against a fresh database and (if `start`) a server on
/// it, in process; stops the server and removes the database (unless
/// `--keep`) whatever the outcome.
fn with_server<R>(
    args: &Args,
    server_rt: &tokio::runtime::Runtime,
    client_rt: &tokio::runtime::Runtime,
    start: bool,
    measure: impl AsyncFnOnce(Option<&Arc<Server>>) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    let db = client_rt.block_on(Database::fresh(args.database_url.as_deref(), args.data_dir.as_deref()))?;
    let server = if start {
        say(&format!("starting the server in-process over {}", db.kind()));
        Some(Arc::new(server_rt.block_on(Server::start(&db))?))
    } else {
        None
    };
    let measured = client_rt.block_on(measure(server.as_ref()));
    if let Some(server) = server {
        let server = Arc::try_unwrap(server).map_err(|_| anyhow!("the server is still in use"))?;
        server_rt.block_on(server.stop())?;
    }
    if !args.keep {
        client_rt.block_on(db.remove())?;
    }
    measured
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let server_threads = args.server_threads.unwrap_or(cores).max(1);
    let client_threads = args.client_threads.max(1);
    // The server gets a runtime of its own, as under `idv serve`; the load
    // generator another. Each phase runs on the runtime it belongs to.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("idv-server")
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_threads)
        .thread_name("idv-bench")
        .enable_all()
        .build()?;
    let mut machine = Machine::probe(server_threads, client_threads);

    if let Some(mode) = &args.mode {
        let out = match mode {
            Mode::Decisions(d) => {
                let report = with_server(&args, &server_rt, &client_rt, !d.no_http, async |s| {
                    decisions::run(d, s).await
                })?;
                machine.load_at_end = report::load_average();
                if !args.json {
                    report.print_table();
                }
                serde_json::json!({ "machine": machine, "decisions": report })
            }
            Mode::Rotation(r) => {
                let report = with_server(&args, &server_rt, &client_rt, true, async |s| {
                    rotation::run(r, s.ok_or_else(|| anyhow!("no server"))?).await
                })?;
                machine.load_at_end = report::load_average();
                if !args.json {
                    report.print_table();
                }
                serde_json::json!({ "machine": machine, "rotation": report })
            }
            Mode::Dbcreds(d) => {
                let report = with_server(&args, &server_rt, &client_rt, true, async |s| {
                    dbcreds::run(d, s.ok_or_else(|| anyhow!("no server"))?).await
                })?;
                machine.load_at_end = report::load_average();
                if !args.json {
                    report.print_table();
                }
                serde_json::json!({ "machine": machine, "dbcreds": report })
            }
            Mode::Console(c) => {
                let report = with_server(&args, &server_rt, &client_rt, true, async |s| {
                    console::run(c, s.ok_or_else(|| anyhow!("no server"))?).await
                })?;
                machine.load_at_end = report::load_average();
                if !args.json {
                    report.print_table();
                }
                serde_json::json!({ "machine": machine, "console": report })
            }
            Mode::Webhooks(w) => {
                let report = with_server(&args, &server_rt, &client_rt, true, async |s| {
                    webhooks::run(w, s.ok_or_else(|| anyhow!("no server"))?).await
                })?;
                machine.load_at_end = report::load_average();
                if !args.json {
                    report.print_table();
                }
                serde_json::json!({ "machine": machine, "webhooks": report })
            }
            Mode::Tokens(t) => {
                let report = with_server(&args, &server_rt, &client_rt, true, async |s| {
                    tokens::run(t, s.ok_or_else(|| anyhow!("no server"))?).await
                })?;
                machine.load_at_end = report::load_average();
                if !args.json {
                    report.print_table();
                }
                json_report(&machine, &report)
            }
        };
        if args.json {
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        client_rt.shutdown_timeout(Duration::from_secs(5));
        server_rt.shutdown_timeout(Duration::from_secs(5));
        return Ok(());
    }
    let before_start = memory::resident();
    let db = client_rt.block_on(Database::fresh(args.database_url.as_deref(), args.data_dir.as_deref()))?;
    say(&format!("starting the server in-process over {}", db.kind()));
    let server = Arc::new(server_rt.block_on(Server::start(&db))?);
    let started = memory::resident();
    say(&format!("listening on {}", server.base));
    let measured = client_rt.block_on(measure(&args, &server, &db));
    say("stopping the server");
    let server = Arc::try_unwrap(server).map_err(|_| anyhow!("the server is still in use"))?;
    server_rt.block_on(server.stop())?;
    let measured = measured?;
    // Verify the chain offline, as an operator would with the server stopped.
    say("verifying the audit chain");
    let verify = client_rt.block_on(verify::run(&db.url, bar(0, "audit verify")))?;
    if !args.keep {
        client_rt.block_on(db.remove())?;
    }
    client_rt.shutdown_timeout(Duration::from_secs(5));
    server_rt.shutdown_timeout(Duration::from_secs(5));

    machine.load_at_end = report::load_average();
    let mut report = Report {
        store: if args.database_url.is_some() {
            "postgresql"
        } else {
            "sqlite"
        }
        .to_owned(),
        machine,
        agents: args.agents,
        bulk: measured.bulk,
        single_create: measured.single_create,
        get_sequential: measured.get_sequential,
        get_concurrent: measured.get_concurrent,
        get_breakdown: measured.get_breakdown,
        lists: measured.lists,
        cpu: measured.cpu,
        memory: Memory {
            note: "VmRSS/VmHWM of the benchmark process, which runs the server in-process; \
                   includes the load generator (its id lists: 32 bytes per agent)",
            before_start,
            started,
            after_load: measured.after_load,
            after_queries: measured.after_queries,
        },
        database_mib: measured.database_mib,
        verify,
        targets: Vec::new(),
    };
    report.judge();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    Ok(())
}

fn json_report(machine: &Machine, r: &tokens::TokensReport) -> serde_json::Value {
    serde_json::json!({ "machine": machine, "tokens": r })
}

/// What the phases against the running server measured.
struct Measured {
    bulk: load::BulkResult,
    single_create: Latency,
    get_sequential: Latency,
    get_concurrent: Latency,
    get_breakdown: Vec<PathResult>,
    lists: Vec<PathResult>,
    cpu: Vec<cpu::PhaseCpu>,
    after_load: memory::Resident,
    after_queries: memory::Resident,
    database_mib: f64,
}

fn bar(len: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(&format!(
            "{what:>22} {{bar:40}} {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b
}

fn say(what: &str) {
    eprintln!("idv-bench: {what}");
}

async fn measure(args: &Args, server: &Arc<Server>, db: &Database) -> anyhow::Result<Measured> {
    let mut cpu = Vec::new();
    memory::reset_peak();

    // 1. Bulk load.
    let t = cpu::snapshot();
    let (bulk, ids) = load::bulk(
        server,
        args.agents,
        args.batch,
        args.bulk_concurrency,
        bar(args.agents, "bulk create"),
    )
    .await?;
    cpu.push(t.until_now("bulk create"));
    let after_load = memory::resident();
    memory::reset_peak();
    say(&format!(
        "loaded {} agents in {:.1} s ({:.0}/s)",
        bulk.agents, bulk.secs, bulk.agents_per_sec
    ));
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    let ids = Arc::new(ids);

    // 2. Single creates.
    let t = cpu::snapshot();
    let single_create = load::single(
        server,
        Budget {
            requests: args.single_requests,
            time: Some(Duration::from_secs(args.single_secs)),
        },
        args.clients,
        bar(args.single_requests, "single create"),
    )
    .await?;
    cpu.push(t.until_now("single create"));

    // 3. Get by id, random ids of the loaded set; then what one get costs:
    // the HTTP round trip alone (`/healthz`), plus one database query
    // (`/readyz`), against a get (token, tenant and agent queries).
    let t = cpu::snapshot();
    let get_sequential = get_by_id(server, &ids, args.get_requests, 1).await?;
    cpu.push(t.until_now("get by id (1 client)"));
    let t = cpu::snapshot();
    let get_concurrent = get_by_id(server, &ids, args.get_requests, args.clients).await?;
    cpu.push(t.until_now(&format!("get by id ({} clients)", args.clients)));
    let mut get_breakdown = Vec::new();
    for (name, path) in [("HTTP only (/healthz)", "/healthz"), ("one query (/readyz)", "/readyz")] {
        get_breakdown.push(path_latency(server, name, path, args.get_requests / 2, None).await?);
    }

    // 4. List pages.
    let lists = list_pages(server, &ids, &sorted, args.list_requests).await?;
    let after_queries = memory::resident();
    let database_mib = db.size_mib().await.unwrap_or(0.0);
    Ok(Measured {
        bulk,
        single_create,
        get_sequential,
        get_concurrent,
        get_breakdown,
        lists,
        cpu,
        after_load,
        after_queries,
        database_mib,
    })
}

/// `GET path` from one client, `requests` times or for 10 s at most.
async fn path_latency(
    server: &Arc<Server>,
    name: &str,
    path: &str,
    requests: usize,
    items: Option<usize>,
) -> anyhow::Result<PathResult> {
    let (s, p) = (server.clone(), path.to_owned());
    let latency = drive(
        Budget {
            requests,
            time: Some(Duration::from_secs(10)),
        },
        1,
        bar(requests, name),
        move |_| {
            let (s, p) = (s.clone(), p.clone());
            async move { s.get(&p).await.map(drop) }
        },
    )
    .await?;
    Ok(PathResult {
        name: name.to_owned(),
        path: path.to_owned(),
        items,
        latency,
    })
}

async fn get_by_id(
    server: &Arc<Server>,
    ids: &Arc<Vec<Uuid>>,
    requests: usize,
    clients: usize,
) -> anyhow::Result<Latency> {
    let (server, ids) = (server.clone(), ids.clone());
    let label = if clients == 1 {
        "get (1 client)".to_owned()
    } else {
        format!("get ({clients} clients)")
    };
    drive(
        Budget { requests, time: None },
        clients,
        bar(requests, &label),
        move |_| {
            let (server, ids) = (server.clone(), ids.clone());
            async move {
                let i = rand::rng().random_range(0..ids.len().max(1));
                let id = ids.get(i).ok_or_else(|| anyhow!("no agents loaded"))?;
                server.get(&format!("/v1/agents/{id}")).await.map(drop)
            }
        },
    )
    .await
}

async fn list_pages(
    server: &Arc<Server>,
    by_index: &[Uuid],
    sorted: &[Uuid],
    requests: usize,
) -> anyhow::Result<Vec<PathResult>> {
    let n = by_index.len();
    let id_at = |v: &[Uuid], i: usize| v.get(i.min(n.saturating_sub(1))).copied().unwrap_or_default();
    // The agent of owner team-7 half way through the load: a deep page of a filtered list.
    let owner_mid = (n / 2) / load::OWNERS * load::OWNERS + 7;
    let queries = [
        ("first page", "/v1/agents?limit=100".to_owned()),
        (
            "deep page (cursor at 90%)",
            format!("/v1/agents?limit=100&cursor={}", id_at(sorted, n * 9 / 10)),
        ),
        (
            "owner= first page",
            format!("/v1/agents?limit=100&owner={}", load::owner(7)),
        ),
        (
            "owner= deep page",
            format!(
                "/v1/agents?limit=100&owner={}&cursor={}",
                load::owner(7),
                id_at(by_index, owner_mid)
            ),
        ),
        ("label=shard=42", "/v1/agents?limit=100&label=shard%3D42".to_owned()),
        (
            "class= & environment=",
            "/v1/agents?limit=100&class=class-7&environment=test".to_owned(),
        ),
        (
            "name_prefix= (100 names)",
            format!(
                "/v1/agents?limit=100&name_prefix={}",
                format!("agent-{:08}", n / 2).get(..12).unwrap_or("agent-")
            ),
        ),
        (
            "status=active (no match)",
            "/v1/agents?limit=100&status=active".to_owned(),
        ),
    ];
    let mut out = Vec::new();
    for (name, path) in queries {
        let page: idv_api::Page<serde_json::Value> = serde_json::from_slice(&server.get(&path).await?)?;
        out.push(path_latency(server, &format!("list {name}"), &path, requests, Some(page.items.len())).await?);
    }
    Ok(out)
}
