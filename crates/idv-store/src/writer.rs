//! The group-commit writer: the one task per node that writes.
//!
//! It takes every queued unit of work, runs them in one transaction (each in
//! a savepoint, so one refused unit does not sink the others), appends their
//! audit events to the hash chain in order, commits once, and only then
//! answers every waiting caller. On PostgreSQL each batch first takes the
//! chain-head advisory lock, so several nodes append to one chain safely.
//! On SQLite a batch of nothing but appends (the hot path) is written
//! through the writer's own connection instead ([`crate::append`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use idv_core::audit::{Event, Head};
use idv_core::{Clock, Timestamp};
use sqlx::{AnyConnection, Connection, Executor, Row};
use tokio::sync::{mpsc, oneshot};

use crate::append::Appender;
use crate::audit::{self, EVENT_COLS, EVENT_NCOLS};
use crate::authz::{DecisionRecord, Tally};
use crate::checkpoint::Nudge;
use crate::command::{self, Applied, Command, Context};
use crate::row::{chunk_rows, placeholders};
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
    /// Wall time spent running batches, first statement to commit, in µs.
    pub busy_micros: AtomicU64,
    /// Of that, wall time spent in the final commit (the durable write), in µs.
    pub commit_micros: AtomicU64,
    /// Set when a batch fails; cleared by the next durable commit (a batch or
    /// a probe). While set, `/readyz` reports the node not ready.
    pub failing: AtomicBool,
    /// Times the writer replaced its connections after a failure.
    pub reconnects: AtomicU64,
}

impl WriterStats {
    /// Whether the last write (or probe) committed.
    pub fn healthy(&self) -> bool {
        !self.failing.load(Ordering::Relaxed)
    }
}

/// Advisory lock that serialises the chain head across PostgreSQL nodes.
const PG_CHAIN_LOCK: &str =
    "DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '/audit-chain')); END $$";

/// A batch smaller than this, while callers are concurrent, waits
/// [`GATHER_WAIT`] once for more before it runs.
const GATHER: usize = 8;
/// What a small batch waits for company: a fraction of one commit. Each
/// commit costs a WAL `fdatasync`, and on a virtual disk that is CPU too
/// (~50–85 µs per commit here, the same for one event or twenty); under load
/// the wait roughly doubles the events per commit, halving that cost per
/// decision, for ~0.1 ms more latency. A lone caller never waits. The same
/// idea as PostgreSQL's `commit_delay` and MySQL's
/// `binlog_group_commit_sync_delay` ([measured](../../../docs/benchmarks.md)).
const GATHER_WAIT: Duration = Duration::from_micros(100);
/// How often a failed writer with nothing to do checks whether storage works
/// again (a small durable write), so an idle node becomes ready by itself.
const PROBE_EVERY: Duration = Duration::from_millis(500);

/// Moves what is queued into `units`, up to [`MAX_BATCH`], without waiting.
fn take_queued(rx: &mut mpsc::Receiver<Unit>, units: &mut Vec<Unit>) {
    while units.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(u) => units.push(u),
            Err(_) => break,
        }
    }
}

/// What the writer owns.
pub(crate) struct Writer {
    /// To connect (and reconnect) with.
    pub url: String,
    pub dialect: Dialect,
    pub clock: Arc<dyn Clock>,
    pub stats: Arc<WriterStats>,
    pub changes: Arc<Changes>,
    /// SQLite: the checkpointer to nudge after each commit.
    pub checkpoints: Option<Nudge>,
}

/// The writer's connections: the sqlx one, and on SQLite the [`Appender`].
struct Conns {
    conn: AnyConnection,
    appender: Option<Appender>,
}

impl Conns {
    async fn open(url: &str, dialect: Dialect) -> Result<Conns, StoreError> {
        let conn = connect(url, dialect).await?;
        let appender = match dialect {
            Dialect::Sqlite => Some(Appender::open(url)?),
            Dialect::Postgres => None,
        };
        Ok(Conns { conn, appender })
    }

    /// Closes both; closing rolls back whatever a failure left open.
    async fn close(self) {
        let _ = self.conn.close().await;
    }
}

/// Starts the writer on a thread and runtime of its own, with its
/// connections made there (so a PostgreSQL socket is driven by that runtime
/// too; on SQLite, also the [`Appender`]). Woken
/// by its connection, the writer runs at once instead of waiting in the
/// shared runtime's queue behind request tasks, so the next batch starts as
/// soon as the last one is durable. It stops when every [`Unit`] sender is
/// gone.
pub(crate) async fn start(w: Writer, rx: mpsc::Receiver<Unit>) -> Result<(), StoreError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Config(format!("cannot start the writer's runtime: {e}")))?;
    let (ready, started) = oneshot::channel();
    std::thread::Builder::new()
        .name("idv-writer".into())
        .spawn(move || {
            rt.block_on(async move {
                match Conns::open(&w.url, w.dialect).await {
                    Ok(conns) => {
                        let _ = ready.send(Ok(()));
                        run(conns, w, rx).await;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| StoreError::Config(format!("cannot start the writer thread: {e}")))?;
    started
        .await
        .map_err(|_| StoreError::Config("the writer thread stopped while starting".into()))?
}

/// The writer's loop. After any failure the writer trusts nothing about its
/// connections' transaction state (SQLite may have rolled a transaction
/// back by itself after an I/O error or a full disk, while sqlx still
/// counts it open): it closes them and opens new ones before the next batch.
/// While failing, it answers 503 and, when idle, probes storage every
/// [`PROBE_EVERY`] so it recovers by itself once storage works again.
async fn run(conns: Conns, w: Writer, mut rx: mpsc::Receiver<Unit>) {
    let Writer {
        url,
        dialect,
        clock,
        stats,
        changes,
        checkpoints,
    } = w;
    let mut conns = Some(conns);
    let mut units = Vec::with_capacity(MAX_BATCH);
    // Units in the last batch: more than one means callers are concurrent.
    let mut last = 0;
    // SQLite: this task is the only writer, so the chain head after a commit
    // is known without reading it back. Forgotten after any failed batch.
    let mut known_head: Option<Head> = None;
    loop {
        let first = if stats.healthy() {
            rx.recv().await
        } else {
            match tokio::time::timeout(PROBE_EVERY, rx.recv()).await {
                Ok(u) => u,
                Err(_) => {
                    probe(&mut conns, &url, dialect, clock.as_ref(), &stats).await;
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        units.push(first);
        take_queued(&mut rx, &mut units);
        if units.len() < GATHER && last > 1 {
            // Blocks only this thread: nothing else runs on its runtime.
            std::thread::sleep(GATHER_WAIT);
            take_queued(&mut rx, &mut units);
        }
        last = units.len();
        let mut replies = Vec::with_capacity(units.len());
        let mut work = Vec::with_capacity(units.len());
        for u in units.drain(..) {
            replies.push(u.reply);
            work.push((u.cmd, u.ctx));
        }
        let n = work.len();
        let started = std::time::Instant::now();
        let outcome = match reopen_if_closed(&mut conns, &url, dialect, &stats).await {
            Ok(c) => {
                run_batch(
                    &mut c.conn,
                    c.appender.as_mut(),
                    dialect,
                    clock.as_ref(),
                    work,
                    &mut known_head,
                    &stats,
                )
                .await
            }
            Err(e) => Err(e),
        };
        stats.busy_micros.fetch_add(micros(started), Ordering::Relaxed);
        match outcome {
            Ok((results, events, changed)) => {
                // Before anyone hears of the change: caches must not serve
                // what it replaced.
                if changed.any {
                    changes.bump();
                }
                if changed.keys {
                    changes.bump_keys();
                }
                if let Some(c) = &checkpoints {
                    c.wrote();
                }
                recovered(&stats);
                stats.batches.fetch_add(1, Ordering::Relaxed);
                stats.units.fetch_add(n as u64, Ordering::Relaxed);
                stats.events.fetch_add(events as u64, Ordering::Relaxed);
                for (reply, res) in replies.into_iter().zip(results) {
                    // The caller may have gone away; the change is durable either way.
                    let _ = reply.send(res);
                }
                // Between two batches, so that the next commit can start a
                // long WAL over ([`crate::checkpoint`]).
                if checkpoints.as_ref().is_some_and(Nudge::restart_due)
                    && let Some(c) = conns.as_mut()
                {
                    crate::checkpoint::passive(&mut c.conn).await;
                }
            }
            Err(e) => {
                stats.failed_batches.fetch_add(1, Ordering::Relaxed);
                if !stats.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(error = %e, units = n, "write batch failed; nothing in it was committed; the node is not ready until a write commits again");
                } else {
                    tracing::warn!(error = %e, units = n, "write batch failed again; nothing in it was committed");
                }
                for reply in replies {
                    let _ = reply.send(Err(StoreError::Unavailable(
                        "the change and its audit event could not be committed; nothing was changed".into(),
                    )));
                }
                // Whatever state the failure left the connections in, it is
                // not carried into the next batch.
                if let Some(c) = conns.take() {
                    c.close().await;
                }
            }
        }
    }
    if let Some(c) = conns {
        c.close().await;
    }
}

/// The writer's connections, opened anew if a failure closed them.
async fn reopen_if_closed<'a>(
    conns: &'a mut Option<Conns>,
    url: &str,
    dialect: Dialect,
    stats: &WriterStats,
) -> Result<&'a mut Conns, StoreError> {
    if conns.is_none() {
        let fresh = Conns::open(url, dialect).await?;
        stats.reconnects.fetch_add(1, Ordering::Relaxed);
        tracing::info!("the writer opened new connections after a failure");
        *conns = Some(fresh);
    }
    conns
        .as_mut()
        .ok_or_else(|| StoreError::Unavailable("the writer has no connection".into()))
}

/// Marks the writer healthy after a durable commit, saying so once.
fn recovered(stats: &WriterStats) {
    if stats.failing.swap(false, Ordering::Relaxed) {
        tracing::info!("writes commit again; the node is ready");
    }
}

/// While failing and idle: a small durable write (a row in `idv_meta`), to
/// learn whether storage works again without waiting for a caller.
async fn probe(conns: &mut Option<Conns>, url: &str, dialect: Dialect, clock: &dyn Clock, stats: &WriterStats) {
    let attempt = async {
        let c = reopen_if_closed(conns, url, dialect, stats).await?;
        let mut tx = c.conn.begin().await?;
        sqlx::query(
            "INSERT INTO idv_meta (key, value) VALUES ('writer_probe', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(clock.now().to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, StoreError>(())
    };
    match attempt.await {
        Ok(()) => recovered(stats),
        Err(e) => {
            tracing::debug!(error = %e, "storage still failing");
            if let Some(c) = conns.take() {
                c.close().await;
            }
        }
    }
}

/// A connection for the writer: on SQLite, checkpoints run beside it
/// ([`crate::checkpoint`]), not inside its commits.
async fn connect(url: &str, dialect: Dialect) -> Result<AnyConnection, StoreError> {
    let mut conn = crate::connect_one(url, dialect).await?;
    if dialect == Dialect::Sqlite {
        conn.execute("PRAGMA wal_autocheckpoint=0").await?;
    }
    Ok(conn)
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
    appender: Option<&mut Appender>,
    dialect: Dialect,
    clock: &dyn Clock,
    work: Vec<(Command, Context)>,
    known_head: &mut Option<Head>,
    stats: &WriterStats,
) -> Result<BatchResult, StoreError> {
    // Until this batch commits, the cached head is not to be trusted.
    let cached = known_head.take();
    if let (Some(appender), Some(mut head)) = (appender, cached)
        && work.iter().all(|(cmd, _)| for_appender(cmd))
    {
        let n = work.len();
        let mut events = Vec::with_capacity(n);
        let mut tally = Tally::default();
        for (cmd, _) in work {
            match append_only(cmd, &mut head, &mut tally, clock, clock.now()) {
                Ok(ev) => events.push(ev),
                // Checked above; a unit that is not append-only would lose
                // its writes here, so the batch fails instead.
                Err(_) => return Err(StoreError::Unavailable("a unit of work was not append-only".into())),
            }
        }
        let committing = std::time::Instant::now();
        appender.write(&events, &tally, clock.now())?;
        stats.commit_micros.fetch_add(micros(committing), Ordering::Relaxed);
        *known_head = Some(head);
        let results = (0..n).map(|_| Ok(Applied::Done)).collect();
        return Ok((results, events.len(), Changed::default()));
    }
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
        let cmd = match append_only(cmd, &mut head, &mut tally, clock, now) {
            Ok(ev) => {
                events.push(ev);
                results.push(Ok(Applied::Done));
                continue;
            }
            Err(cmd) => *cmd,
        };
        // Decisions change what decisions see only through approvals, which
        // are read from the store, not from caches.
        let changes_state = !matches!(
            cmd,
            Command::ClaimJobs { .. }
                | Command::RenewJobLeases { .. }
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
                | Command::RedeliverWebhook { .. }
                // A request changes nothing until approved (which makes a grant).
                | Command::CreateAccessRequest(_)
                | Command::DispatchWebhooks
                | Command::PruneWebhookDeliveries
                | Command::PruneSeenJtis
                | Command::RecordWebhookAttempt { .. }
        );
        let keys = matches!(cmd, Command::SigningKeys(_) | Command::ScheduleKeyRotations);
        // A decision with an approval step leaves usage and an edge like
        // any other, once its step held (a used-up approval leaves none).
        let decided = match &cmd {
            Command::Decide(rec) => Some((rec.usage.clone(), rec.edge.clone())),
            _ => None,
        };
        let mut sp = tx.begin().await?;
        let res = command::apply(&mut sp, dialect, now, clock, cmd, &ctx).await;
        match res {
            Ok((applied, drafts)) => {
                sp.commit().await?;
                if let Some((usage, edge)) = &decided {
                    tally.add_parts(usage.as_ref(), edge.as_ref());
                }
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
                // SQLite may have rolled the whole transaction back by itself
                // (a full disk, an I/O error: "Response To Errors Within A
                // Transaction", https://sqlite.org/lang_transaction.html); the
                // savepoint is then gone, this fails, and so does the batch.
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
    for d in tally.flush(&mut tx, dialect, now).await? {
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
    let committing = std::time::Instant::now();
    tx.commit().await?;
    stats.commit_micros.fetch_add(micros(committing), Ordering::Relaxed);
    *known_head = Some(head);
    Ok((results, events.len(), changed))
}

/// Whether appending its event is all a unit does: refusals, token issuance
/// without one-time ids, and decisions without an approval step (with the
/// decision, for its usage and edge). Nothing in such a unit can be refused
/// or need undoing, so it needs no savepoint.
fn appended(cmd: &Command) -> Option<Option<&DecisionRecord>> {
    match cmd {
        Command::Record(_) => Some(None),
        Command::IssueToken { once, .. } if once.is_empty() => Some(None),
        Command::Decide(rec) if rec.approval.is_none() => Some(Some(rec)),
        _ => None,
    }
}

/// Appends an append-only unit's event to the chain (and a decision's usage
/// and edge to the tally); any other unit comes back untouched (boxed: it
/// is the rare, administrative kind).
fn append_only(
    cmd: Command,
    head: &mut Head,
    tally: &mut Tally,
    clock: &dyn Clock,
    now: Timestamp,
) -> Result<Event, Box<Command>> {
    if appended(&cmd).is_none() {
        return Err(Box::new(cmd));
    }
    // The event moves into the chain: nothing of it is copied.
    let draft = match cmd {
        Command::Record(d) => d,
        Command::IssueToken { event, .. } => event,
        Command::Decide(rec) => {
            tally.add(&rec);
            rec.event
        }
        other => return Err(Box::new(other)),
    };
    Ok(head.append(draft, clock.new_id(), now))
}

/// Whether a unit's writes fit [`Appender::write`]: it only appends, and if a
/// decision, it is not an `invoke` between agents (whether that edge is new
/// decides whether the batch records one more event).
fn for_appender(cmd: &Command) -> bool {
    appended(cmd).is_some_and(|rec| rec.is_none_or(|r| r.edge.is_none()))
}

fn micros(since: std::time::Instant) -> u64 {
    u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX)
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
            q = audit::bind_event(q, e);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}
