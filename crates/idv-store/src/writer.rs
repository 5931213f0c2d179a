//! The group-commit writer: the one task per node that writes.
//!
//! It takes every queued unit of work, runs them in one transaction (each in
//! a savepoint, so one refused unit does not sink the others), appends their
//! audit events to the hash chain in order, commits once, and only then
//! answers every waiting caller. On PostgreSQL each batch first takes the
//! chain-head advisory lock, so several nodes append to one chain safely.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use idv_core::Clock;
use idv_core::audit::{Event, Head};
use sqlx::{AnyConnection, Connection, Executor, Row};
use tokio::sync::{mpsc, oneshot};

use crate::authz::Tally;
use crate::command::{self, Applied, Command, Context};
use crate::row::{self, EVENT_COLS, EVENT_NCOLS, chunk_rows, placeholders};
use crate::{Changes, Dialect, StoreError};

/// Queue depth before callers wait.
pub(crate) const QUEUE: usize = 16_384;
/// Most units in one transaction.
const MAX_BATCH: usize = 2_048;

/// One caller's unit of work.
pub(crate) struct Unit {
    pub cmd: Command,
    pub ctx: Context,
    pub reply: oneshot::Sender<Result<Applied, StoreError>>,
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: AtomicU64,
    /// Units of work committed or refused.
    pub units: AtomicU64,
    /// Audit events appended.
    pub events: AtomicU64,
    /// Batches that failed as a whole (nothing changed).
    pub failed_batches: AtomicU64,
}

/// Advisory lock that serialises the chain head across PostgreSQL nodes.
const PG_CHAIN_LOCK: &str =
    "DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '/audit-chain')); END $$";

pub(crate) async fn run(
    mut conn: AnyConnection,
    url: String,
    dialect: Dialect,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    changes: Arc<Changes>,
    mut rx: mpsc::Receiver<Unit>,
) {
    let mut units = Vec::with_capacity(MAX_BATCH);
    // SQLite: this task is the only writer, so the chain head after a commit
    // is known without reading it back. Forgotten after any failed batch.
    let mut known_head: Option<Head> = None;
    while let Some(first) = rx.recv().await {
        units.push(first);
        while units.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(u) => units.push(u),
                Err(_) => break,
            }
        }
        let mut replies = Vec::with_capacity(units.len());
        let mut work = Vec::with_capacity(units.len());
        for u in units.drain(..) {
            replies.push(u.reply);
            work.push((u.cmd, u.ctx));
        }
        let n = work.len();
        match run_batch(&mut conn, dialect, clock.as_ref(), work, &mut known_head).await {
            Ok((results, events, changed)) => {
                // Before anyone hears of the change: caches must not serve
                // what it replaced.
                if changed.any {
                    changes.bump();
                }
                if changed.keys {
                    changes.bump_keys();
                }
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.units.fetch_add(n as u64, Ordering::Relaxed);
                stats.events.fetch_add(events as u64, Ordering::Relaxed);
                for (reply, res) in replies.into_iter().zip(results) {
                    // The caller may have gone away; the change is durable either way.
                    let _ = reply.send(res);
                }
            }
            Err(e) => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, units = n, "write batch failed; nothing in it was committed");
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(
                        "the change and its audit event could not be committed; nothing was changed".into(),
                    )));
                }
                if conn.ping().await.is_err() {
                    match crate::connect_one(&url, dialect).await {
                        Ok(c) => conn = c,
                        Err(e) => tracing::error!(error = %e, "writer could not reconnect"),
                    }
                }
            }
        }
    }
    let _ = conn.close().await;
}

/// What a committed batch changed, for caches.
#[derive(Clone, Copy, Debug, Default)]
struct Changed {
    /// Any state.
    any: bool,
    /// Signing keys (cached rings).
    keys: bool,
}

/// Results, events appended, and what changed.
type BatchResult = (Vec<Result<Applied, StoreError>>, usize, Changed);

async fn run_batch(
    conn: &mut AnyConnection,
    dialect: Dialect,
    clock: &dyn Clock,
    work: Vec<(Command, Context)>,
    known_head: &mut Option<Head>,
) -> Result<BatchResult, StoreError> {
    // Until this batch commits, the cached head is not to be trusted.
    let cached = known_head.take();
    let mut tx = conn.begin().await?;
    if dialect == Dialect::Postgres {
        tx.execute(PG_CHAIN_LOCK).await?;
    }
    // PostgreSQL: other nodes append too; read the head under the lock.
    let mut head = match (dialect, cached) {
        (Dialect::Sqlite, Some(h)) => h,
        _ => read_head(&mut tx).await?,
    };
    let mut events: Vec<Event> = Vec::new();
    let mut results = Vec::with_capacity(work.len());
    let mut changed = Changed::default();
    let mut tally = Tally::default();
    for (cmd, ctx) in work {
        let now = clock.now();
        let attempt = cmd.attempt();
        // Units that only append events (refusals, token issuance without
        // one-time ids) change nothing that could need undoing: no savepoint.
        if let Command::Record(d) = cmd {
            events.push(head.append(d, clock.new_id(), now));
            results.push(Ok(Applied::Done));
            continue;
        }
        if let Command::IssueToken { event, once } = &cmd
            && once.is_empty()
        {
            events.push(head.append(event.clone(), clock.new_id(), now));
            results.push(Ok(Applied::Done));
            continue;
        }
        // Plain decisions: the event now, usage and edges summed for the batch.
        if let Command::Decide(rec) = &cmd
            && rec.approval.is_none()
        {
            tally.add(rec);
            events.push(head.append(rec.event.clone(), clock.new_id(), now));
            results.push(Ok(Applied::Done));
            continue;
        }
        // Decisions change what decisions see only through approvals, which
        // are read from the store, not from caches.
        let changes_state = !matches!(
            cmd,
            Command::ClaimJobs { .. }
                | Command::RetryJob { .. }
                | Command::FinishJob(_)
                | Command::IssueToken { .. }
                | Command::Decide(_)
                | Command::BeginLease(_)
                | Command::ActivateLease { .. }
                | Command::RenewLease { .. }
                | Command::RevokeLease { .. }
                | Command::FinishLeaseRevocation { .. }
                | Command::RescheduleJob { .. }
                // Nothing cached depends on webhooks.
                | Command::CreateWebhook { .. }
                | Command::UpdateWebhook { .. }
                | Command::DeleteWebhook { .. }
                | Command::RotateWebhookSecret { .. }
                | Command::TestWebhook(_)
                | Command::DispatchWebhooks
                | Command::PruneWebhookDeliveries
                | Command::RecordWebhookAttempt { .. }
        );
        let keys = matches!(cmd, Command::SigningKeys(_) | Command::ScheduleKeyRotations);
        let mut sp = tx.begin().await?;
        let res = command::apply(&mut sp, dialect, now, clock, cmd, &ctx).await;
        match res {
            Ok((applied, drafts)) => {
                sp.commit().await?;
                changed.any |= changes_state;
                // Every key change records an event; a run that changed
                // nothing must not make every node reload its rings.
                changed.keys |= keys && !drafts.is_empty();
                for d in drafts {
                    events.push(head.append(d, clock.new_id(), now));
                }
                results.push(Ok(applied));
            }
            Err(e) => {
                sp.rollback().await?;
                if e.is_domain()
                    && let Some(a) = attempt
                {
                    events.push(head.append(a.failure(&ctx, &e), clock.new_id(), now));
                }
                results.push(Err(e));
            }
        }
    }
    let now = clock.now();
    for d in tally.flush(&mut tx, now).await? {
        events.push(head.append(d, clock.new_id(), now));
    }
    insert_events(&mut tx, dialect, &events).await?;
    if changed.any && dialect == Dialect::Postgres {
        // Delivered to every listening node when (and only if) this commits.
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(crate::changes::CHANNEL)
            .bind(if changed.keys { crate::changes::KEYS } else { "" })
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    *known_head = Some(head);
    Ok((results, events.len(), changed))
}

pub(crate) async fn read_head(conn: &mut AnyConnection) -> Result<Head, StoreError> {
    let row = sqlx::query("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?;
    match row {
        None => Ok(Head::EMPTY),
        Some(r) => {
            let hash: Vec<u8> = r.try_get("hash")?;
            Ok(Head {
                seq: r.try_get("seq")?,
                hash: hash
                    .try_into()
                    .map_err(|_| StoreError::Corrupt("chain head hash is not 32 bytes".into()))?,
            })
        }
    }
}

async fn insert_events(conn: &mut AnyConnection, dialect: Dialect, events: &[Event]) -> Result<(), StoreError> {
    for chunk in events.chunks(chunk_rows(EVENT_NCOLS)) {
        let sql = format!(
            "INSERT INTO audit_events ({EVENT_COLS}) VALUES {}",
            placeholders(dialect, chunk.len(), EVENT_NCOLS, 1)
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = row::bind_event(q, e);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
