//! The benchmark's result: the machine it ran on, every figure, the targets
//! they are held against, as a table for people or JSON for tools.

use serde::Serialize;

use crate::cpu::PhaseCpu;
use crate::latency::Latency;
use crate::load::BulkResult;
use crate::memory::Resident;
use crate::verify::VerifyResult;

/// Target: get-by-id p99 at 1M agents.
pub const TARGET_GET_P99_US: u64 = 1_000;
/// Target: bulk creation throughput.
pub const TARGET_BULK_PER_SEC: f64 = 50_000.0;
/// Target: verifying a chain of 1M events.
pub const TARGET_VERIFY_1M_SECS: f64 = 5.0;

/// The machine and how busy it was.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// CPU model.
    pub cpu: String,
    /// Cores available to this process.
    pub cores: usize,
    /// Physical memory, GiB.
    pub memory_gib: f64,
    /// 1-minute load average when the run started (other work on the machine).
    pub load_at_start: f64,
    /// 1-minute load average when it ended (includes this run).
    pub load_at_end: f64,
    /// Worker threads of the server's runtime.
    pub server_threads: usize,
    /// Worker threads of the load generator's runtime (same process).
    pub client_threads: usize,
}

impl Machine {
    /// Reads `/proc` (best effort).
    pub fn probe(server_threads: usize, client_threads: usize) -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_gib = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
        Machine {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            memory_gib,
            load_at_start: load_average(),
            load_at_end: 0.0,
            server_threads,
            client_threads,
        }
    }
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|l| l.parse().ok()))
        .unwrap_or(0.0)
}

/// One request path and its latency from one client.
#[derive(Clone, Debug, Serialize)]
pub struct PathResult {
    /// What it asks.
    pub name: String,
    /// The request path.
    pub path: String,
    /// Items on the page, for lists.
    pub items: Option<usize>,
    /// Latency.
    pub latency: Latency,
}

/// Memory at the points of the run where it matters.
#[derive(Clone, Debug, Serialize)]
pub struct Memory {
    /// What is measured.
    pub note: &'static str,
    /// Before the server started (the benchmark alone).
    pub before_start: Resident,
    /// The server started, registry empty.
    pub started: Resident,
    /// After the bulk load (peak: during it).
    pub after_load: Resident,
    /// After the latency phases (peak: during them).
    pub after_queries: Resident,
}

/// Everything measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// `sqlite` or `postgresql`.
    pub store: String,
    /// The machine.
    pub machine: Machine,
    /// Agents loaded in bulk.
    pub agents: usize,
    /// Bulk creation.
    pub bulk: BulkResult,
    /// Single creates.
    pub single_create: Latency,
    /// Get by id, one client.
    pub get_sequential: Latency,
    /// Get by id, many clients.
    pub get_concurrent: Latency,
    /// What a request costs below a get: the HTTP round trip, one query.
    pub get_breakdown: Vec<PathResult>,
    /// List pages.
    pub lists: Vec<PathResult>,
    /// CPU use by thread group during the load and get phases.
    pub cpu: Vec<PhaseCpu>,
    /// Resident memory.
    pub memory: Memory,
    /// Database size on disk, MiB.
    pub database_mib: f64,
    /// Audit chain verification.
    pub verify: VerifyResult,
    /// The targets and whether they were met.
    pub targets: Vec<Target>,
}

/// A target and the figure held against it.
#[derive(Clone, Debug, Serialize)]
pub struct Target {
    /// The target.
    pub what: String,
    /// The figure measured.
    pub measured: String,
    /// Met or not.
    pub met: bool,
}

impl Report {
    /// Holds the figures against the targets (verify time scaled to 1M events).
    pub fn judge(&mut self) {
        let get = &self.get_sequential;
        let verify_1m = |secs: f64| secs * 1_000_000.0 / (self.verify.events.max(1) as f64);
        let cli = verify_1m(self.verify.cli_walk_secs);
        self.targets = vec![
            Target {
                what: format!("get p99 < 1 ms at 1M agents (1 client; {} agents loaded)", self.agents),
                measured: format!("{} us", get.p99_us),
                met: get.p99_us < TARGET_GET_P99_US,
            },
            Target {
                what: "bulk create >= 50,000 agents/s".into(),
                measured: format!("{:.0} agents/s", self.bulk.agents_per_sec),
                met: self.bulk.agents_per_sec >= TARGET_BULK_PER_SEC,
            },
            Target {
                what: format!(
                    "verify 1M events < 5 s (idv audit verify walk; {} events, scaled to 1M)",
                    self.verify.events
                ),
                measured: format!("{cli:.2} s"),
                met: cli < TARGET_VERIFY_1M_SECS,
            },
        ];
    }

    /// The human table.
    pub fn print_table(&self) {
        let m = &self.machine;
        println!("IdentityVault benchmark: {} agents on {}", self.agents, self.store);
        println!(
            "machine: {} x{} cores, {:.0} GiB; load average {:.2} at start, {:.2} at end; server runtime {} threads, load generator {} threads, same process",
            m.cpu, m.cores, m.memory_gib, m.load_at_start, m.load_at_end, m.server_threads, m.client_threads
        );
        println!();
        let b = &self.bulk;
        println!(
            "{:<34} {:>10.0} agents/s   ({:.1} s; first half {:.0}/s, second half {:.0}/s; {} per request, {} in flight; request p50 {} ms, p99 {} ms)",
            "bulk create",
            b.agents_per_sec,
            b.secs,
            b.first_half_per_sec,
            b.second_half_per_sec,
            b.batch,
            b.concurrency,
            b.request.p50_us / 1000,
            b.request.p99_us / 1000
        );
        println!(
            "{:<34} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "", "req/s", "p50 us", "p99 us", "p99.9 us", "max us", "n"
        );
        let row = |name: &str, l: &Latency| {
            println!(
                "{name:<34} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>8}",
                l.per_sec, l.p50_us, l.p99_us, l.p999_us, l.max_us, l.requests
            );
        };
        row(
            &format!("single create ({} clients)", self.single_create.clients),
            &self.single_create,
        );
        row("get by id (1 client)", &self.get_sequential);
        row(
            &format!("get by id ({} clients)", self.get_concurrent.clients),
            &self.get_concurrent,
        );
        for p in &self.get_breakdown {
            row(&format!("  {}", p.name), &p.latency);
        }
        for l in &self.lists {
            row(&format!("{} ({} items)", l.name, l.items.unwrap_or(0)), &l.latency);
        }
        println!();
        println!("CPU by thread group, % of one core (the machine has {} cores)", m.cores);
        for c in &self.cpu {
            let groups: Vec<String> = c
                .percent_of_a_core
                .iter()
                .map(|(g, p)| format!("{g} {p:.0}%"))
                .collect();
            println!("  {:<32} {:>6.1} s   {}", c.phase, c.wall_secs, groups.join(", "));
        }
        println!();
        let mem = &self.memory;
        println!("resident memory ({})", mem.note);
        for (name, r) in [
            ("before server start", mem.before_start),
            ("server started", mem.started),
            ("after bulk load", mem.after_load),
            ("after queries", mem.after_queries),
        ] {
            println!("  {name:<32} {:>8.1} MiB  (peak {:.1} MiB)", r.rss_mib, r.peak_mib);
        }
        println!("database on disk                   {:>8.1} MiB", self.database_mib);
        println!();
        let v = &self.verify;
        println!(
            "audit verify, {} events: idv audit verify walk {:.2} s; Store::audit_events + Verifier {:.2} s (open {:.2} s, read {:.2} s, hash/verify {:.2} s = {:.0} events/s)",
            v.events,
            v.cli_walk_secs,
            v.total_secs,
            v.open_secs,
            v.read_secs,
            v.verify_secs,
            v.events as f64 / v.verify_secs.max(1e-9)
        );
        println!();
        println!("targets");
        for t in &self.targets {
            println!(
                "  [{}] {:<76} {}",
                if t.met { "met" } else { "MISSED" },
                t.what,
                t.measured
            );
        }
    }
}
