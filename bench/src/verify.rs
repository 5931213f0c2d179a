//! Verifying the whole audit chain offline (server stopped), two ways: the
//! store's generic `audit_events` read with `Verifier`, timing reading and
//! hashing apart; and `idv audit verify`'s own walk (`idv::verify::walk`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use idv_core::audit::Verifier;
use idv_core::clock::SystemClock;
use idv_store::{AuditFilter, Store};
use indicatif::ProgressBar;
use serde::Serialize;

/// Events read per query.
const PAGE: i64 = 10_000;

/// What verifying the chain measured.
#[derive(Clone, Debug, Serialize)]
pub struct VerifyResult {
    /// Events in the chain.
    pub events: i64,
    /// Opening the store (connections, migration check).
    pub open_secs: f64,
    /// Reading every event with `Store::audit_events`, pages of 10,000.
    pub read_secs: f64,
    /// `Verifier::push` over every event (hashing only, single thread).
    pub verify_secs: f64,
    /// Open + read + verify, one page after another.
    pub total_secs: f64,
    /// `idv audit verify`'s walk (`idv::verify::walk` on the database),
    /// end to end including opening the store.
    pub cli_walk_secs: f64,
}

/// Verifies the chain in the database at `url`; fails if it is broken.
pub async fn run(url: &str, bar: ProgressBar) -> anyhow::Result<VerifyResult> {
    let started = Instant::now();
    let store = Store::open(url, Arc::new(SystemClock::default())).await?;
    let open_secs = started.elapsed().as_secs_f64();
    let head = store.audit_head().await?;
    bar.set_length(u64::try_from(head.seq).unwrap_or(0));
    let mut verifier = Verifier::default();
    let (mut read, mut hashing) = (Duration::ZERO, Duration::ZERO);
    loop {
        let t = Instant::now();
        let page = store
            .audit_events(&AuditFilter {
                after_seq: verifier.head().seq,
                limit: PAGE,
                ..AuditFilter::default()
            })
            .await?;
        read += t.elapsed();
        if page.is_empty() {
            break;
        }
        let t = Instant::now();
        for ev in &page {
            verifier.push(ev)?;
        }
        hashing += t.elapsed();
        bar.set_position(u64::try_from(verifier.head().seq).unwrap_or(0));
    }
    let total_secs = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    store.close().await;
    if verifier.head() != head {
        bail!(
            "the chain ends at event {} but the head is event {}",
            verifier.head().seq,
            head.seq
        );
    }

    let started = Instant::now();
    let source = idv::verify::Source::open(url).await?;
    let report = idv::verify::walk(source, &ProgressBar::hidden()).await?;
    let cli_walk_secs = started.elapsed().as_secs_f64();
    if !report.ok || report.verified != head.seq {
        bail!("idv audit verify's walk failed: {:?}", report.broken);
    }
    Ok(VerifyResult {
        events: head.seq,
        open_secs,
        read_secs: read.as_secs_f64(),
        verify_secs: hashing.as_secs_f64(),
        total_secs,
        cli_walk_secs,
    })
}
