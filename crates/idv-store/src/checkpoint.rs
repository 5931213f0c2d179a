//! SQLite WAL checkpoints off the commit path.
//!
//! By default SQLite checkpoints inside whichever commit takes the WAL past
//! 1,000 pages: that commit copies megabytes back into the database file and
//! fsyncs it while every caller in its group waits. The writer's connection
//! turns that off (`wal_autocheckpoint=0`); this task, on a connection (and
//! so a thread) of its own, runs a `PASSIVE` checkpoint after writes instead.
//! A passive checkpoint never blocks the writer or readers: it copies what no
//! reader still needs, and SQLite starts the WAL over from the beginning once
//! everything in it has been copied (<https://sqlite.org/wal.html#ckpt>).

use std::time::Duration;

use sqlx::{AnyConnection, Connection, Row};
use tokio::sync::mpsc;

/// At most one checkpoint in this long: writes in between are copied together.
const EVERY: Duration = Duration::from_millis(100);

/// The writer's side: a nudge after each commit.
#[derive(Debug)]
pub(crate) struct Nudge(mpsc::Sender<()>);

impl Nudge {
    /// Something was committed; never waits (a full queue means a
    /// checkpoint is already due).
    pub(crate) fn wrote(&self) {
        let _ = self.0.try_send(());
    }
}

/// Starts the checkpointer on `conn`; it stops when the [`Nudge`] is dropped
/// (the writer has stopped), after a last checkpoint.
pub(crate) fn start(mut conn: AnyConnection) -> Nudge {
    let (tx, mut rx) = mpsc::channel(1);
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(EVERY).await;
            match sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(&mut conn).await {
                // (busy, frames in the WAL, frames copied).
                Ok(row) => {
                    let log: i64 = row.try_get(1).unwrap_or(0);
                    let done: i64 = row.try_get(2).unwrap_or(0);
                    tracing::trace!(log, done, "wal checkpoint");
                }
                Err(e) => tracing::warn!(error = %e, "wal checkpoint failed; the next write retries it"),
            }
        }
        let _ = conn.close().await;
    });
    Nudge(tx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::{ConnectOptions, Executor};

    async fn open(url: &str) -> AnyConnection {
        let opts: sqlx::any::AnyConnectOptions = url.parse().expect("url");
        opts.connect().await.expect("connect")
    }

    fn wal_len(dir: &std::path::Path) -> u64 {
        std::fs::metadata(dir.join("t.db-wal")).map_or(0, |m| m.len())
    }

    #[tokio::test]
    async fn writes_reach_the_database_file_without_autocheckpoint() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let mut writer = open(&url).await;
        writer
            .execute("PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0; CREATE TABLE t (x BLOB)")
            .await
            .expect("setup");
        let nudge = start(open(&url).await);
        for _ in 0..200 {
            sqlx::query("INSERT INTO t VALUES (randomblob(8192))")
                .execute(&mut writer)
                .await
                .expect("insert");
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
}
