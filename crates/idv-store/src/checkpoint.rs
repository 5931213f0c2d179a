//! SQLite WAL checkpoints off the commit path.
//!
//! By default SQLite checkpoints inside whichever commit takes the WAL past
//! 1,000 pages: that commit copies megabytes back into the database file and
//! fsyncs it while every caller in its group waits. The writer's connection
//! turns that off (`wal_autocheckpoint=0`); this task, on a connection (and
//! so a thread) of its own, runs a `PASSIVE` checkpoint after writes instead.
//! A passive checkpoint never blocks the writer or readers: it copies what no
//! reader still needs (<https://sqlite.org/wal.html#ckpt>).
//!
//! SQLite starts the WAL over only when a write begins with everything in it
//! copied, which a writer that never pauses never gives it: under sustained
//! load the WAL would grow without bound (~80 MB/s at 17,000 audited
//! decisions/s) and every commit would extend the file. So once a
//! checkpoint finds the WAL longer than [`RESTART_FRAMES`], it asks the
//! writer to finish the job between two batches: the writer's own passive
//! checkpoint copies only the frames committed since this one started, and
//! its next commit starts the WAL over. (A `RESTART` checkpoint here instead
//! holds the write lock while it waits for readers and syncs the database:
//! measured, it cost a third of the throughput.)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};
use tokio::sync::mpsc;

/// At most one checkpoint in this long: writes in between are copied together.
const EVERY: Duration = Duration::from_millis(100);
/// A WAL longer than this many frames (64 MiB of 4 KiB pages) is started over.
const RESTART_FRAMES: i64 = 16_384;

/// The writer's side: a nudge after each commit, and the request to finish
/// a checkpoint so that the WAL starts over.
#[derive(Debug)]
pub(crate) struct Nudge {
    tx: mpsc::Sender<()>,
    restart: Arc<AtomicBool>,
}

impl Nudge {
    /// Something was committed; never waits (a full queue means a
    /// checkpoint is already due).
    pub(crate) fn wrote(&self) {
        let _ = self.tx.try_send(());
    }

    /// Whether the writer should run a checkpoint itself now (asked once per
    /// long WAL).
    pub(crate) fn restart_due(&self) -> bool {
        self.restart.swap(false, Ordering::Relaxed)
    }
}

/// Starts the checkpointer on `conn`; it stops when the [`Nudge`] is dropped
/// (the writer has stopped), after a last checkpoint.
pub(crate) fn start(conn: AnyConnection) -> Nudge {
    start_with(conn, RESTART_FRAMES)
}

fn start_with(mut conn: AnyConnection, restart_frames: i64) -> Nudge {
    let (tx, mut rx) = mpsc::channel(1);
    let restart = Arc::new(AtomicBool::new(false));
    let ask = restart.clone();
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(EVERY).await;
            if passive(&mut conn).await.is_some_and(|frames| frames > restart_frames) {
                ask.store(true, Ordering::Relaxed);
            }
        }
        let _ = conn.close().await;
    });
    Nudge { tx, restart }
}

/// A passive checkpoint on `conn`; the frames in the WAL, if it ran.
pub(crate) async fn passive(conn: &mut AnyConnection) -> Option<i64> {
    match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await
    {
        // (busy, frames in the WAL, frames copied).
        Ok(row) => {
            let log: i64 = row.try_get(1).unwrap_or(0);
            let done: i64 = row.try_get(2).unwrap_or(0);
            tracing::trace!(log, done, "wal checkpoint");
            Some(log)
        }
        Err(e) => {
            tracing::warn!(error = %e, "wal checkpoint failed; the next write retries it");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{ConnectOptions, Executor};

    async fn open(url: &str) -> AnyConnection {
        let opts: sqlx::any::AnyConnectOptions = url.parse().expect("url");
        opts.connect().await.expect("connect")
    }

    /// A WAL database with a table, and the writer's connection to it.
    async fn database() -> (tempfile::TempDir, String, AnyConnection) {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut writer = open(&url).await;
        writer
            .execute("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x BLOB)")
            .await
            .expect("setup");
        (dir, url, writer)
    }

    /// One commit of 8 KiB (two or three WAL frames).
    async fn insert(writer: &mut AnyConnection) {
        sqlx::query("INSERT INTO t VALUES (randomblob(8192))")
            .execute(&mut *writer)
            .await
            .expect("insert");
    }

    fn wal_len(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn writes_reach_the_database_file_without_autocheckpoint() {
        let (dir, url, mut writer) = database().await;
        let nudge = start(open(&url).await);
        for _ in 0..200 {
            insert(&mut writer).await;
            nudge.wrote();
        }
        // 200 × 8 KiB went into the WAL; the checkpointer copies it back.
        let db = dir.path().join("t.db");
        let mut copied = false;
        for _ in 0..50 {
            tokio::time::sleep(EVERY).await;
            if std::fs::metadata(&db).map_or(0, |m| m.len()) > 1_000_000 {
                copied = true;
                break;
            }
        }
        assert!(
            copied,
            "the database file never grew; wal is {} bytes",
            wal_len(dir.path())
        );
        drop(nudge);
        writer.close().await.expect("close");
    }

    #[tokio::test]
    async fn a_writer_that_never_pauses_still_gets_its_wal_started_over() {
        let (dir, url, mut writer) = database().await;
        // Start over past 256 frames (1 MiB).
        let nudge = start_with(open(&url).await, 256);
        let mut restarts = 0;
        let mut longest = 0;
        // 32 MiB of commits, back to back, as the writer does under load.
        for _ in 0..4_000 {
            insert(&mut writer).await;
            nudge.wrote();
            if nudge.restart_due() {
                restarts += 1;
                passive(&mut writer).await;
            }
            longest = longest.max(wal_len(dir.path()));
        }
        assert!(restarts > 0, "the checkpointer never asked for a restart");
        // Without restarts the WAL holds every frame: over 32 MiB.
        assert!(
            longest < 16 << 20,
            "the WAL grew to {longest} bytes over {restarts} restarts"
        );
        drop(nudge);
        writer.close().await.expect("close");
    }
}
