//! The only crate that knows SQL. One [`Store`] over SQLite or PostgreSQL,
//! chosen by URL; the backend is dispatched in one place (sqlx's `Any`
//! driver, with the few dialect differences in [`Dialect`]).
//!
//! Writes go through one writer (a thread of its own) per node that group-commits: many
//! requests' [`Command`]s run in one transaction, each in a savepoint, with
//! their audit events appended to the hash chain in the same transaction; every
//! caller is answered only after the commit is durable.
//!
//! Each concept (tenants, admin tokens, agents, jobs, credentials, leases,
//! webhooks, keys, rotation policies, delegations, authorization, the audit
//! log) has one module with its commands, its reads and its row decoding,
//! and declares one typed [`Store`] method per write.

mod access_requests;
mod admin_tokens;
mod agents;
mod append;
mod audit;
mod authz;
mod changes;
mod checkpoint;
mod command;
mod credentials;
mod delegations;
mod error;
mod figures;
mod jobs;
mod keys;
mod leases;
mod migrate;
mod read;
mod rotation;
mod row;
mod sessions;
mod sso;
mod tenants;
mod webhooks;
mod writer;

use std::sync::Arc;
use std::time::Duration;

use idv_core::Clock;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyConnection, AnyPool, ConnectOptions, Connection, Executor};
use tokio::sync::mpsc;

pub use access_requests::{AccessRequestFilter, AccessRequestOutcome, Decision, Verdict};
pub use agents::{AgentFilter, AgentOrder, JOB_EXPIRE_AGENT};
pub use audit::AuditFilter;
pub use authz::{
    ApprovalDecision, ApprovalFilter, ApprovalStep, DecidingApprover, DecisionRecord, Edge, EdgeUse, Usage, UsageRow,
};
pub use changes::Changes;
pub use command::{Applied, Command, Context};
pub use credentials::JOB_RETIRE_CREDENTIAL;
pub use error::StoreError;
pub use figures::{
    AgentGroup, DayCount, Figures, FiguresAsk, Graph, GraphEdge, GraphNode, HourCount, OVERDUE_DAYS, UsageCell,
};
pub use jobs::{Job, JobKinds};
pub use keys::{JOB_ROTATE_SIGNING_KEYS, KeyRequest};
pub use leases::{JOB_REVOKE_LEASE, JOB_SWEEP_TARGET, LeaseFilter, SWEEP_EVERY_SECS};
pub use rotation::JOB_ROTATE_CREDENTIAL;
pub use sessions::SIGN_OUT;
pub use webhooks::{
    DELIVERY_RETENTION_SECS, DISPATCH_WINDOW, DeliveryFilter, JOB_DELIVER_WEBHOOK, SealedSecrets, WebhookChanges,
};
pub use writer::WriterStats;

/// Which SQL dialect the store speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Embedded SQLite (one node).
    Sqlite,
    /// PostgreSQL (many nodes).
    Postgres,
}

impl Dialect {
    /// A page of the audit chain (`$1`: after this seq, `$2`: how many) as
    /// one JSON array of 16-element arrays in `EVENT_COLS` order, hashes in
    /// hex: one row a page instead of one a event, for verifying millions.
    pub(crate) fn packed_events_sql(self) -> &'static str {
        match self {
            Dialect::Sqlite => {
                "SELECT json_group_array(json_array(seq, id, time, tenant_id, actor_kind, actor_name, \
                 actor_token_id, action, target_type, target_id, outcome, reason, request_id, details, \
                 hex(prev_hash), hex(hash))) AS page \
                 FROM (SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2)"
            }
            Dialect::Postgres => {
                "SELECT COALESCE(json_agg(json_build_array(seq, id, time, tenant_id, actor_kind, actor_name, \
                 actor_token_id, action, target_type, target_id, outcome, reason, request_id, details, \
                 encode(prev_hash, 'hex'), encode(hash, 'hex')) ORDER BY seq), '[]')::text AS page \
                 FROM (SELECT * FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2) AS p"
            }
        }
    }

    /// The dialect a database URL names.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            // The writer, its hot-path connection, the readers and the
            // checkpointer are separate connections to one file; each
            // in-memory connection would be a database of its own, and all
            // of it would be gone at exit.
            if url.contains(":memory:") || url.contains("mode=memory") {
                return Err(StoreError::Config(
                    "an in-memory SQLite database cannot hold the store: give a file \
                     (`sqlite://path/idv.db?mode=rwc`) or leave the URL out for the data directory's"
                        .into(),
                ));
            }
            Ok(Dialect::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Dialect::Postgres)
        } else {
            Err(StoreError::Config(
                "database URL must start with `sqlite:` or `postgres://`".into(),
            ))
        }
    }
}

/// Held while this node bootstraps (see [`Store::bootstrap_lock`]).
#[derive(Debug)]
pub struct BootstrapLock(Option<sqlx::Transaction<'static, sqlx::Any>>);

impl BootstrapLock {
    /// Releases the lock.
    pub async fn release(self) -> Result<(), StoreError> {
        if let Some(tx) = self.0 {
            tx.rollback().await?;
        }
        Ok(())
    }
}

/// The store: a read pool plus the group-commit writer.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dialect: Dialect,
    read: AnyPool,
    writer: mpsc::Sender<writer::Unit>,
    clock: Arc<dyn Clock>,
    stats: Arc<WriterStats>,
    changes: Arc<Changes>,
    /// Opened with [`Store::open_read_only`]: no writer, no migrations.
    read_only: bool,
}

/// `url` with its `mode` parameter set to `ro` (SQLite opens the file
/// read-only and never creates it).
fn read_only_sqlite_url(url: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let params = query
        .split('&')
        .filter(|p| !p.is_empty() && !p.starts_with("mode="))
        .chain(std::iter::once("mode=ro"))
        .collect::<Vec<_>>()
        .join("&");
    format!("{base}?{params}")
}

/// Per-connection settings for SQLite: WAL so readers never block the writer,
/// `synchronous=FULL` so every commit (audit and credentials included) is
/// durable before it is acknowledged.
pub(crate) const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; \
     PRAGMA foreign_keys=ON; PRAGMA busy_timeout=10000; PRAGMA cache_size=-32768;";

async fn connect_one(url: &str, dialect: Dialect) -> Result<AnyConnection, StoreError> {
    let opts: AnyConnectOptions = url.parse().map_err(StoreError::from)?;
    let mut conn = opts.disable_statement_logging().connect().await?;
    if dialect == Dialect::Sqlite {
        conn.execute(SQLITE_PRAGMAS).await?;
    }
    Ok(conn)
}

impl Store {
    /// Opens the database at `url` (`sqlite://path?mode=rwc` or
    /// `postgres://…`), applies migrations and starts the writer.
    pub async fn open(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let mut conn = connect_one(url, dialect).await?;
        migrate::run(&mut conn, dialect).await?;
        let _ = conn.close().await;
        let checkpoints = match dialect {
            Dialect::Sqlite => Some(checkpoint::start(connect_one(url, dialect).await?)),
            Dialect::Postgres => None,
        };
        let opts: AnyConnectOptions = url.parse().map_err(StoreError::from)?;
        let read = AnyPoolOptions::new()
            .max_connections(match dialect {
                Dialect::Sqlite => 8,
                Dialect::Postgres => 16,
            })
            .min_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            // SQLite: no ping before every acquire (a round trip to the
            // connection's worker thread per query; an embedded connection
            // cannot be cut). PostgreSQL keeps it: a server restart or a
            // terminated backend must not fail queries.
            .test_before_acquire(dialect == Dialect::Postgres)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if dialect == Dialect::Sqlite {
                        conn.execute(SQLITE_PRAGMAS).await?;
                    }
                    Ok(())
                })
            })
            .connect_with(opts.disable_statement_logging())
            .await?;
        let (tx, rx) = mpsc::channel(writer::QUEUE);
        let stats = Arc::new(WriterStats::default());
        let changes = Arc::new(Changes::new(dialect == Dialect::Postgres));
        if dialect == Dialect::Postgres {
            tokio::spawn(changes::listen(url.to_owned(), changes.clone()));
        }
        let w = writer::Writer {
            url: url.to_owned(),
            dialect,
            clock: clock.clone(),
            stats: stats.clone(),
            changes: changes.clone(),
            checkpoints,
        };
        writer::start(w, rx).await?;
        Ok(Self {
            inner: Arc::new(Inner {
                dialect,
                read,
                writer: tx,
                clock,
                stats,
                changes,
                read_only: false,
            }),
        })
    }

    /// Opens the database at `url` for reading only, as offline tools need
    /// (`idv audit verify --offline`): SQLite in `mode=ro`, PostgreSQL
    /// sessions with read-only transactions; no migrations, no writer (every
    /// [`Store::execute`] is refused), no change listener. Refuses a database
    /// whose schema is older or newer than this binary's.
    pub async fn open_read_only(url: &str, clock: Arc<dyn Clock>) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let dialect = Dialect::from_url(url)?;
        let url = match dialect {
            Dialect::Sqlite => read_only_sqlite_url(url),
            Dialect::Postgres => url.to_owned(),
        };
        let opts: AnyConnectOptions = url.parse().map_err(StoreError::from)?;
        let read = AnyPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // A second guard besides the open mode: any write fails.
                    conn.execute(match dialect {
                        Dialect::Sqlite => "PRAGMA busy_timeout=10000; PRAGMA query_only=ON;",
                        Dialect::Postgres => "SET default_transaction_read_only = on",
                    })
                    .await?;
                    Ok(())
                })
            })
            .connect_with(opts.disable_statement_logging())
            .await?;
        {
            let mut conn = read.acquire().await?;
            migrate::check(&mut conn).await?;
        }
        // No receiver: nothing is ever written (`execute` refuses first).
        let (writer, _) = mpsc::channel(1);
        Ok(Self {
            inner: Arc::new(Inner {
                dialect,
                read,
                writer,
                clock,
                stats: Arc::new(WriterStats::default()),
                changes: Arc::new(Changes::new(false)),
                read_only: true,
            }),
        })
    }

    /// Change generations, for caches of what the store holds.
    pub fn changes(&self) -> &Changes {
        &self.inner.changes
    }

    /// The dialect in use.
    pub fn dialect(&self) -> Dialect {
        self.inner.dialect
    }

    /// The clock the store stamps events with.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Runs `cmd` with its audit events in the next group commit and waits
    /// until that commit is durable. The untyped form, public for the
    /// store's own conformance tests (which run any command); callers use
    /// the typed write of each command instead (`create_agents`, …), which
    /// answers that command's own result.
    pub async fn execute(&self, cmd: Command, ctx: Context) -> Result<Applied, StoreError> {
        if self.inner.read_only {
            return Err(StoreError::Config("the database is open read-only".into()));
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        self.inner
            .writer
            .send(writer::Unit { cmd, ctx, reply })
            .await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?;
        rx.await
            .map_err(|_| StoreError::Unavailable("the writer has stopped".into()))?
    }

    /// Group-commit counters.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.inner.stats
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.inner.read.acquire().await?;
        conn.ping().await?;
        Ok(())
    }

    /// Stops accepting reads and closes the pool. The writer stops once
    /// every clone of the store is dropped.
    pub async fn close(&self) {
        self.inner.read.close().await;
    }

    /// Serialises first-start bootstrapping across nodes starting at once on
    /// one PostgreSQL database: a transaction-scoped advisory lock (like the
    /// migrations'), held until the guard is released or dropped (a dropped
    /// transaction rolls back, which releases it). SQLite serves one node.
    pub async fn bootstrap_lock(&self) -> Result<BootstrapLock, StoreError> {
        match self.inner.dialect {
            Dialect::Sqlite => Ok(BootstrapLock(None)),
            Dialect::Postgres => {
                let mut tx = self.inner.read.begin().await?;
                tx.execute(
                    "DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '/bootstrap')); END $$",
                )
                .await?;
                Ok(BootstrapLock(Some(tx)))
            }
        }
    }

    /// Records the master key's check value on first start; afterwards refuses
    /// to run with a different master key.
    pub async fn check_master_key(&self, check_value: &str) -> Result<(), StoreError> {
        let mut conn = self.inner.read.acquire().await?;
        let inserted = sqlx::query(
            "INSERT INTO idv_meta (key, value) VALUES ('master_key_check', $1) ON CONFLICT (key) DO NOTHING",
        )
        .bind(check_value)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        let row: (String,) = sqlx::query_as("SELECT value FROM idv_meta WHERE key = 'master_key_check'")
            .fetch_one(&mut *conn)
            .await?;
        if row.0 == check_value {
            Ok(())
        } else {
            Err(StoreError::Config(
                "the master key does not match the one this database was created with".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_urls_open_sqlite_in_mode_ro() {
        assert_eq!(
            read_only_sqlite_url("sqlite://d/idv.db?mode=rwc"),
            "sqlite://d/idv.db?mode=ro"
        );
        assert_eq!(read_only_sqlite_url("sqlite://d/idv.db"), "sqlite://d/idv.db?mode=ro");
        assert_eq!(
            read_only_sqlite_url("sqlite:d.db?cache=shared&mode=rw"),
            "sqlite:d.db?cache=shared&mode=ro"
        );
    }

    #[test]
    fn urls_name_their_dialect() {
        assert_eq!(
            Dialect::from_url("sqlite://d/idv.db?mode=rwc").ok(),
            Some(Dialect::Sqlite)
        );
        assert_eq!(Dialect::from_url("postgres://u@h/db").ok(), Some(Dialect::Postgres));
        assert_eq!(Dialect::from_url("postgresql://u@h/db").ok(), Some(Dialect::Postgres));
        assert!(matches!(Dialect::from_url("mysql://h/db"), Err(StoreError::Config(_))));
    }

    #[test]
    fn an_in_memory_sqlite_database_is_refused_with_a_reason() {
        for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://x.db?mode=memory"] {
            match Dialect::from_url(url) {
                Err(StoreError::Config(m)) => assert!(m.contains("in-memory"), "{url}: {m}"),
                other => panic!("{url}: {other:?}"),
            }
        }
    }
}
