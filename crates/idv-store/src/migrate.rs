//! Schema migrations: one folder per backend, the same numbering in both.

use sha2::{Digest as _, Sha256};
use sqlx::{AnyConnection, Connection, Executor};

use crate::{Dialect, StoreError};

/// One schema change, in both dialects.
struct Migration {
    version: i64,
    /// The file name both folders share (`0007_rotation.sql`).
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

impl Migration {
    fn sql(&self, dialect: Dialect) -> &'static str {
        match dialect {
            Dialect::Sqlite => self.sqlite,
            Dialect::Postgres => self.postgres,
        }
    }

    /// SHA-256 of the dialect's SQL, hex: recorded when the migration is
    /// applied, compared on every later start.
    fn checksum(&self, dialect: Dialect) -> String {
        Sha256::digest(self.sql(dialect).as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// `migration!(7, "0007_rotation")`: version 7 from
/// `migrations/{sqlite,postgres}/0007_rotation.sql`.
macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: concat!($name, ".sql"),
            sqlite: include_str!(concat!("../migrations/sqlite/", $name, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $name, ".sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_init"),
    migration!(2, "0002_agent_owner_index"),
    migration!(3, "0003_credentials"),
    migration!(4, "0004_delegations"),
    migration!(5, "0005_token_ttls"),
    migration!(6, "0006_authorization"),
    migration!(7, "0007_rotation"),
    migration!(8, "0008_leases"),
    migration!(9, "0009_webhooks"),
    migration!(10, "0010_key_rotation"),
    migration!(11, "0011_audit_id_unindexed"),
    migration!(12, "0012_agent_tokens_not_before"),
    migration!(13, "0013_approval_duties"),
    migration!(14, "0014_console_sessions"),
    migration!(15, "0015_sso"),
    migration!(16, "0016_agent_status_index"),
    migration!(17, "0017_dashboard_counters"),
    migration!(18, "0018_access_requests"),
];

/// Applies every migration not yet applied, each in its own transaction. On
/// PostgreSQL an advisory lock keeps concurrently starting nodes from racing.
///
/// Each applied migration's checksum is recorded; a migration already applied
/// whose SQL has changed since is refused, so a database never silently
/// differs from the schema its files describe. Databases made before
/// checksums were recorded get the checksums of this binary's files.
pub(crate) async fn run(conn: &mut AnyConnection, dialect: Dialect) -> Result<(), StoreError> {
    // The bookkeeping table too is created under the lock: nodes starting
    // together on a fresh PostgreSQL schema would otherwise race on it.
    let mut tx = conn.begin().await?;
    lock(&mut tx, dialect).await?;
    tx.execute(
        "CREATE TABLE IF NOT EXISTS idv_migrations \
         (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL, checksum TEXT)",
    )
    .await?;
    add_checksum_column(&mut tx, dialect).await?;
    tx.commit().await?;
    for m in MIGRATIONS {
        let mut tx = conn.begin().await?;
        lock(&mut tx, dialect).await?;
        let checksum = m.checksum(dialect);
        let done: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT version, checksum FROM idv_migrations WHERE version = $1")
                .bind(m.version)
                .fetch_optional(&mut *tx)
                .await?;
        match done {
            None => {
                sqlx::raw_sql(m.sql(dialect)).execute(&mut *tx).await?;
                sqlx::query("INSERT INTO idv_migrations (version, applied_at, checksum) VALUES ($1, 'applied', $2)")
                    .bind(m.version)
                    .bind(&checksum)
                    .execute(&mut *tx)
                    .await?;
            }
            // Applied before checksums were recorded: this binary's file is
            // taken as the one applied.
            Some((_, None)) => {
                sqlx::query("UPDATE idv_migrations SET checksum = $1 WHERE version = $2 AND checksum IS NULL")
                    .bind(&checksum)
                    .bind(m.version)
                    .execute(&mut *tx)
                    .await?;
            }
            Some((_, Some(recorded))) if recorded == checksum => {}
            Some((_, Some(recorded))) => {
                return Err(StoreError::Config(format!(
                    "migration {} (`{}`) was applied with other contents than this binary's \
                     (checksum `{recorded}`, now `{checksum}`): a migration must not change once \
                     released; restore the file or add a new migration",
                    m.version, m.name
                )));
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Adds the `checksum` column to a bookkeeping table made before it existed.
async fn add_checksum_column(tx: &mut AnyConnection, dialect: Dialect) -> Result<(), StoreError> {
    match dialect {
        Dialect::Postgres => {
            tx.execute("ALTER TABLE idv_migrations ADD COLUMN IF NOT EXISTS checksum TEXT")
                .await?;
        }
        Dialect::Sqlite => {
            let (has,): (i64,) =
                sqlx::query_as("SELECT COUNT(*) FROM pragma_table_info('idv_migrations') WHERE name = 'checksum'")
                    .fetch_one(&mut *tx)
                    .await?;
            if has == 0 {
                tx.execute("ALTER TABLE idv_migrations ADD COLUMN checksum TEXT")
                    .await?;
            }
        }
    }
    Ok(())
}

/// Checks, without changing anything, that the database's schema is this
/// binary's: every migration applied and none unknown.
pub(crate) async fn check(conn: &mut AnyConnection) -> Result<(), StoreError> {
    let applied: Vec<(i64,)> = sqlx::query_as("SELECT version FROM idv_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| StoreError::Config(format!("no IdentityVault schema found in this database ({e})")))?;
    let applied: Vec<i64> = applied.into_iter().map(|(v,)| v).collect();
    let ours = MIGRATIONS.last().map_or(0, |m| m.version);
    let theirs = applied.last().copied().unwrap_or(0);
    if theirs > ours {
        return Err(StoreError::Config(format!(
            "the database's schema (version {theirs}) is newer than this binary's (version {ours}): \
             use the `idv` of the server that wrote it"
        )));
    }
    if MIGRATIONS.iter().any(|m| !applied.contains(&m.version)) {
        return Err(StoreError::Config(format!(
            "the database's schema (version {theirs}) is older than this binary's (version {ours}): \
             read it with the `idv` of the server that wrote it, or start this version's server once \
             to migrate it"
        )));
    }
    Ok(())
}

/// On PostgreSQL, serialises migrations across nodes until the transaction ends.
async fn lock(tx: &mut AnyConnection, dialect: Dialect) -> Result<(), StoreError> {
    if dialect == Dialect::Postgres {
        tx.execute("DO $$ BEGIN PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '/migrate')); END $$")
            .await?;
    }
    Ok(())
}
