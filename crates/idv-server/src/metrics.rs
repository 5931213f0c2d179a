//! Prometheus text exposition of a few counters (no registry crate needed).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use idv_store::WriterStats;

/// Request and job counters.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Responses by status class 1xx..5xx (index 0..4).
    pub responses: [AtomicU64; 5],
    /// Admin API authentication failures.
    pub auth_failures: AtomicU64,
    /// Background jobs completed.
    pub jobs_run: AtomicU64,
    /// Background jobs that failed (retried later).
    pub jobs_failed: AtomicU64,
    /// Client connections open now.
    pub connections_open: AtomicU64,
    /// Client connections accepted and served.
    pub connections_accepted: AtomicU64,
    /// Connections closed at once: their address had too many open.
    pub connections_refused_per_ip: AtomicU64,
    /// Connections closed at once: the server had too many open.
    pub connections_refused_capacity: AtomicU64,
    /// Connections closed because a request's headers (or the next request
    /// on a kept-alive connection) did not arrive in time.
    pub connections_timed_out: AtomicU64,
}

impl Metrics {
    /// Counts a response with `status`.
    pub fn response(&self, status: u16) {
        let class = usize::from(status / 100).saturating_sub(1).min(4);
        if let Some(c) = self.responses.get(class) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The exposition text.
    pub fn render(&self, writer: &WriterStats) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(s, "# HELP idv_http_responses_total HTTP responses by status class.");
        let _ = writeln!(s, "# TYPE idv_http_responses_total counter");
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(
                s,
                "idv_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            s,
            "# HELP idv_http_connections_refused_total Connections closed at once by a connection bound."
        );
        let _ = writeln!(s, "# TYPE idv_http_connections_refused_total counter");
        for (limit, c) in [
            ("per_ip", &self.connections_refused_per_ip),
            ("total", &self.connections_refused_capacity),
        ] {
            let _ = writeln!(
                s,
                "idv_http_connections_refused_total{{limit=\"{limit}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(s, "# HELP idv_http_connections_open Client connections open now.");
        let _ = writeln!(s, "# TYPE idv_http_connections_open gauge");
        let _ = writeln!(
            s,
            "idv_http_connections_open {}",
            self.connections_open.load(Ordering::Relaxed)
        );
        let counters = [
            (
                "idv_http_connections_accepted_total",
                "Client connections accepted.",
                &self.connections_accepted,
            ),
            (
                "idv_http_connections_timed_out_total",
                "Connections closed because headers or the next request did not arrive in time.",
                &self.connections_timed_out,
            ),
            (
                "idv_auth_failures_total",
                "Admin API authentication failures.",
                &self.auth_failures,
            ),
            ("idv_jobs_run_total", "Background jobs completed.", &self.jobs_run),
            (
                "idv_jobs_failed_total",
                "Background job runs that failed.",
                &self.jobs_failed,
            ),
            (
                "idv_audit_batches_total",
                "Group commits (one durable transaction each).",
                &writer.batches,
            ),
            (
                "idv_audit_units_total",
                "Units of work committed or refused.",
                &writer.units,
            ),
            (
                "idv_audit_events_total",
                "Audit events appended to the chain.",
                &writer.events,
            ),
            (
                "idv_audit_failed_batches_total",
                "Group commits that failed as a whole.",
                &writer.failed_batches,
            ),
        ];
        let seconds = [
            (
                "idv_audit_batch_seconds_total",
                "Wall time the writer spent running group commits.",
                &writer.busy_micros,
            ),
            (
                "idv_audit_commit_seconds_total",
                "Of that, wall time spent in the durable commit itself.",
                &writer.commit_micros,
            ),
        ];
        let values = counters
            .iter()
            .map(|(name, help, v)| (*name, *help, v.load(Ordering::Relaxed).to_string()))
            .chain(seconds.iter().map(|(name, help, v)| {
                // Microsecond counters, shown in seconds.
                (*name, *help, format!("{:.6}", v.load(Ordering::Relaxed) as f64 / 1e6))
            }));
        let values = values.chain(std::iter::once((
            "idv_writer_reconnects_total",
            "Times the writer replaced its database connections after a failure.",
            writer.reconnects.load(Ordering::Relaxed).to_string(),
        )));
        for (name, help, value) in values {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} counter");
            let _ = writeln!(s, "{name} {value}");
        }
        let _ = writeln!(
            s,
            "# HELP idv_writer_healthy 1 while writes commit; 0 from a failed write until one commits again."
        );
        let _ = writeln!(s, "# TYPE idv_writer_healthy gauge");
        let _ = writeln!(s, "idv_writer_healthy {}", u8::from(writer.healthy()));
        s
    }
}

/// The change listener's state (PostgreSQL): while it is down this node
/// serves nothing from its caches, and each reconnect empties them.
pub fn render_listener(changes: &idv_store::Changes) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# HELP idv_change_listener_up Whether this node hears other nodes' changes (1; always on SQLite); caches are off while 0."
    );
    let _ = writeln!(s, "# TYPE idv_change_listener_up gauge");
    let _ = writeln!(s, "idv_change_listener_up {}", u8::from(changes.listening()));
    let _ = writeln!(
        s,
        "# HELP idv_change_listener_reconnects_total Reconnects of the change listener (each empties every cache)."
    );
    let _ = writeln!(s, "# TYPE idv_change_listener_reconnects_total counter");
    let _ = writeln!(s, "idv_change_listener_reconnects_total {}", changes.reconnects());
    s
}
