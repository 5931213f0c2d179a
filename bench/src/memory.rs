//! Resident memory of this process (the server runs in it), from
//! `/proc/self/status`.

use serde::Serialize;

/// Resident set size now and its peak since the last [`reset_peak`], in MiB.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Resident {
    /// `VmRSS`.
    pub rss_mib: f64,
    /// `VmHWM`.
    pub peak_mib: f64,
}

/// Reads `VmRSS` and `VmHWM` (zero where `/proc` is not available).
pub fn resident() -> Resident {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Resident {
        rss_mib: field("VmRSS:"),
        peak_mib: field("VmHWM:"),
    }
}

/// Resets `VmHWM` to the current RSS (Linux `clear_refs` value 5), so the
/// next peak belongs to the next phase. Best effort.
pub fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
