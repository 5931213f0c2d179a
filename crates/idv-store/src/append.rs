//! SQLite's hot path: a batch of units that only append (decisions, token
//! issuance, refusals) written by the writer thread itself.
//!
//! sqlx runs every SQLite connection on a worker thread of its own and
//! hands each call to it over a channel; for the group commit that was two
//! thread wake-ups, a contended channel lock and a conversion of every bound
//! value per batch, on the one serial step every audited request waits for.
//! The writer therefore keeps a second connection to the same file, opened
//! here with the same settings, and runs these batches on it directly:
//! `BEGIN IMMEDIATE`, one cached insert per event, one cached upsert per
//! usage sum, `COMMIT` (with `synchronous=FULL`, durable when it returns).
//! Everything else still goes through sqlx. Both connections belong to the
//! writer thread and are used one batch at a time, so they never contend
//! for the write lock.

use idv_core::Timestamp;
use idv_core::audit::Event;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::audit::{self, EVENT_COLS, EVENT_NCOLS};
use crate::authz::Tally;
use crate::row;
use crate::{SQLITE_PRAGMAS, StoreError};

/// Cached statements: one insert, one upsert, and the few others a
/// connection prepares.
const CACHED_STATEMENTS: usize = 16;

/// The writer's own SQLite connection for append-only batches.
pub(crate) struct Appender {
    conn: Connection,
    insert_event: String,
}

impl Appender {
    /// Opens the database file behind `url` (already migrated).
    pub(crate) fn open(url: &str) -> Result<Self, StoreError> {
        let opts: sqlx::sqlite::SqliteConnectOptions = url.parse()?;
        let conn = Connection::open_with_flags(
            opts.get_filename(),
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // `journal_mode` answers with a row; the batch runner steps past it.
        conn.execute_batch(SQLITE_PRAGMAS)?;
        // Checkpoints run beside the writer ([`crate::checkpoint`]).
        conn.execute_batch("PRAGMA wal_autocheckpoint=0")?;
        conn.set_prepared_statement_cache_capacity(CACHED_STATEMENTS);
        Ok(Appender {
            conn,
            insert_event: format!(
                "INSERT INTO audit_events ({EVENT_COLS}) VALUES {}",
                row::placeholders(crate::Dialect::Sqlite, 1, EVENT_NCOLS, 1)
            ),
        })
    }

    /// Writes a batch's events (already linked into the chain) and its
    /// usage sums in one transaction, all or nothing; durable when it
    /// returns.
    pub(crate) fn write(&mut self, events: &[Event], tally: &Tally, now: Timestamp) -> Result<(), StoreError> {
        // Dropped without `commit` (any error below), it rolls back.
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(&self.insert_event)?;
            for e in events {
                audit::insert_event(&mut insert, e)?;
            }
        }
        tally.write_usage(&tx, now)?;
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hot path's commits must be exactly as durable as the others:
    /// the same settings as sqlx's connections, and no checkpoint inside.
    #[test]
    fn the_appender_connection_is_set_up_like_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("idv.db");
        drop(Connection::open(&path).unwrap());
        let a = Appender::open(&format!("sqlite://{}?mode=rwc", path.display())).unwrap();
        let pragma = |name: &str| -> String {
            a.conn
                .query_row(&format!("PRAGMA {name}"), [], |r| r.get::<_, rusqlite::types::Value>(0))
                .map(|v| match v {
                    rusqlite::types::Value::Integer(i) => i.to_string(),
                    rusqlite::types::Value::Text(t) => t,
                    other => format!("{other:?}"),
                })
                .unwrap()
        };
        assert_eq!(pragma("journal_mode"), "wal");
        assert_eq!(pragma("synchronous"), "2", "FULL: the WAL is synced at every commit");
        assert_eq!(pragma("foreign_keys"), "1");
        assert_eq!(pragma("busy_timeout"), "10000");
        assert_eq!(pragma("wal_autocheckpoint"), "0");
    }
}
