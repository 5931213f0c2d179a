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
        PhaseCpu {
            phase: phase.to_owned(),
            wall_secs: wall,
            percent_of_a_core,
        }
    }
}
