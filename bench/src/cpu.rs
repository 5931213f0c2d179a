//! Where the CPU went during a phase: CPU time of this process's threads,
//! grouped by thread name (`/proc/self/task/*/stat`), so a phase shows
//! whether SQLite's worker threads, the writer, the server's runtime or the
//! load generator was the busy one.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Cumulative CPU seconds per thread group at one instant.
#[derive(Clone, Debug)]
pub struct Snapshot {
    at: Instant,
    by_group: BTreeMap<&'static str, f64>,
    machine: Machine,
}

/// The machine's CPU ticks (`/proc/stat`, all CPUs): all of them, and those
/// the hypervisor gave to someone else while this guest wanted to run.
#[derive(Clone, Copy, Debug, Default)]
struct Machine {
    total: f64,
    steal: f64,
}

fn machine() -> Machine {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return Machine::default();
    };
    // `cpu user nice system idle iowait irq softirq steal guest guest_nice`;
    // guest time is already counted in user.
    let ticks: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|f| f.parse().ok())
        .collect();
    Machine {
        total: ticks.iter().sum(),
        steal: ticks.get(7).copied().unwrap_or(0.0),
    }
}

/// The group a thread belongs to, by its name.
fn group(comm: &str) -> &'static str {
    if comm.starts_with("sqlx-sqlite") {
        "sqlite workers"
    } else if comm.starts_with("idv-writer") {
        "writer"
    } else if comm.starts_with("idv-server") {
        "server runtime"
    } else if comm.starts_with("idv-bench") {
        "load generator"
    } else {
        "other"
    }
}

/// Reads every thread's CPU time now.
pub fn snapshot() -> Snapshot {
    let mut by_group = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid … utime stime …`: comm may hold spaces.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            let comm = stat.get(open + 1..close).unwrap_or("");
            let fields: Vec<&str> = stat.get(close + 1..).unwrap_or("").split_whitespace().collect();
            // After the comm: state is field 3, utime 14, stime 15 (1-based).
            let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
            *by_group.entry(group(comm)).or_insert(0.0) += (ticks(11) + ticks(12)) / TICKS_PER_SEC;
        }
    }
    Snapshot {
        at: Instant::now(),
        by_group,
        machine: machine(),
    }
}

/// CPU use of one phase.
#[derive(Clone, Debug, Serialize)]
pub struct PhaseCpu {
    /// The phase.
    pub phase: String,
    /// Its wall time, seconds.
    pub wall_secs: f64,
    /// Per thread group: CPU time as a percentage of one core over the
    /// phase (200% = both cores of a 2-core machine).
    pub percent_of_a_core: BTreeMap<&'static str, f64>,
    /// Of the machine's CPU time over the phase, the share the hypervisor
    /// ran other guests on while this one was ready (`steal`), in percent:
    /// a noisy neighbour, not our code.
    pub steal_percent: f64,
}

impl PhaseCpu {
    /// CPU seconds per group (all groups: `total`) per unit of work done in
    /// the phase, in µs.
    pub fn micros_per(&self, units: f64) -> BTreeMap<&'static str, f64> {
        let per = |pct: f64| pct / 100.0 * self.wall_secs * 1e6 / units.max(1.0);
        let mut m: BTreeMap<&'static str, f64> = self.percent_of_a_core.iter().map(|(g, p)| (*g, per(*p))).collect();
        m.insert("total", per(self.percent_of_a_core.values().sum()));
        m
    }
}

impl Snapshot {
    /// CPU use from this snapshot until now.
    pub fn until_now(&self, phase: &str) -> PhaseCpu {
        let now = snapshot();
        let wall = now.at.duration_since(self.at).as_secs_f64().max(1e-9);
        let percent_of_a_core = now
            .by_group
            .iter()
            .map(|(g, secs)| {
                let before = self.by_group.get(g).copied().unwrap_or(0.0);
                (*g, ((secs - before) / wall * 100.0).max(0.0))
            })
            .collect();
        let (total, steal) = (
            now.machine.total - self.machine.total,
            now.machine.steal - self.machine.steal,
        );
        PhaseCpu {
            phase: phase.to_owned(),
            wall_secs: wall,
            percent_of_a_core,
            steal_percent: if total > 0.0 { steal / total * 100.0 } else { 0.0 },
        }
    }
}
