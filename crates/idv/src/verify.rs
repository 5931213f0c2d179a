//! `idv audit verify`: walks the whole hash chain, from the database directly
//! or through the API, and reports the first broken link.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use idv_core::audit::{Break, ChainWalk, Event, Head};
use idv_core::clock::SystemClock;
use idv_core::hex;
use idv_store::Store;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::client::Client;

/// Events read per page.
const PAGE: i64 = 10_000;
/// Pages read at once.
const READERS: usize = 3;

/// What a walk of the chain found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// True when every event verified and the chain reaches its recorded head.
    pub ok: bool,
    /// Events that verified.
    pub verified: i64,
    /// The last verified event's hash (hex).
    pub head_hash: String,
    /// The first broken link, if any.
    pub broken: Option<Break>,
    /// How long the walk took.
    pub elapsed_ms: u128,
}

/// Where the events come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// The database itself (no server needed).
    Store(Store),
    /// The admin API (needs a platform operator token).
    Api(Client),
}

#[derive(Deserialize)]
struct HeadView {
    seq: i64,
    hash: String,
}

#[derive(Deserialize)]
struct EventPage {
    items: Vec<Event>,
}

impl Source {
    /// Opens the database at `url` read-only for an offline walk.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let store = Store::open_read_only(url, Arc::new(SystemClock::default()))
            .await
            .context("cannot open the database")?;
        Ok(Source::Store(store))
    }

    /// The chain head when the walk starts: `(seq, hash)`.
    async fn head(&self) -> anyhow::Result<(i64, [u8; 32])> {
        match self {
            Source::Store(s) => {
                let h = s.audit_head().await?;
                Ok((h.seq, h.hash))
            }
            Source::Api(c) => {
                let h: HeadView = c.get("/v1/audit/head").await?;
                let hash = hex::decode::<32>(&h.hash).context("the server's chain head hash is not 32 bytes of hex")?;
                Ok((h.seq, hash))
            }
        }
    }

    /// The events after `after`, in chain order.
    async fn page(&self, after: i64) -> anyhow::Result<Vec<Event>> {
        match self {
            Source::Store(s) => Ok(s.audit_chain_page(after, PAGE).await?),
            Source::Api(c) => {
                let p: EventPage = c
                    .get(&format!(
                        "/v1/audit/events?all_tenants=true&limit={PAGE}&cursor={after}"
                    ))
                    .await?;
                Ok(p.items)
            }
        }
    }
}

/// Walks the chain from the first event, reading the next page while the
/// current one is checked; `bar` shows progress (pass a hidden bar for none).
pub async fn walk(source: Source, bar: &ProgressBar) -> anyhow::Result<Report> {
    let started = Instant::now();
    let (head_seq, head_hash) = source.head().await?;
    bar.set_length(head_seq.max(0) as u64);
    bar.set_style(
        ProgressStyle::with_template("verifying {bar:40} {pos}/{len} events ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    // Read pages of the chain up to the head concurrently (in order), and
    // check each as it arrives.
    let (tx, mut rx) = mpsc::channel::<anyhow::Result<Vec<Event>>>(READERS);
    let pages = (head_seq.max(0) + PAGE - 1) / PAGE;
    let reader = tokio::spawn(async move {
        let mut stream = futures_util::stream::iter(0..pages)
            .map(|k| {
                let source = source.clone();
                async move { source.page(k * PAGE).await }
            })
            .buffered(READERS);
        while let Some(page) = stream.next().await {
            if tx.send(page).await.is_err() {
                return;
            }
        }
    });
    let mut walk = ChainWalk::new(Head {
        seq: head_seq,
        hash: head_hash,
    });
    while let Some(page) = rx.recv().await {
        if !walk.push(&page?) {
            break;
        }
        bar.set_position(walk.verified().seq.max(0) as u64);
    }
    drop(rx);
    reader.abort();
    let (end, broken) = walk.finish();
    bar.finish_and_clear();
    Ok(Report {
        ok: broken.is_none(),
        verified: end.seq,
        head_hash: hex::encode(&end.hash),
        broken,
        elapsed_ms: started.elapsed().as_millis(),
    })
}
