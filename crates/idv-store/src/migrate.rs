//! Schema migrations: one folder per backend, the same numbering in both.

use sqlx::{AnyConnection, Connection, Executor};

use crate::{Dialect, StoreError};

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_init.sql"),
        postgres: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_agent_owner_index.sql"),
        postgres: include_str!("../migrations/postgres/0002_agent_owner_index.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_credentials.sql"),
        postgres: include_str!("../migrations/postgres/0003_credentials.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_delegations.sql"),
        postgres: include_str!("../migrations/postgres/0004_delegations.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_token_ttls.sql"),
        postgres: include_str!("../migrations/postgres/0005_token_ttls.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_authorization.sql"),
        postgres: include_str!("../migrations/postgres/0006_authorization.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_rotation.sql"),
        postgres: include_str!("../migrations/postgres/0007_rotation.sql"),
    },
    Migration {
        version: 8,
        sqlite: include_str!("../migrations/sqlite/0008_leases.sql"),
        postgres: include_str!("../migrations/postgres/0008_leases.sql"),
    },
    Migration {
        version: 9,
        sqlite: include_str!("../migrations/sqlite/0009_webhooks.sql"),
        postgres: include_str!("../migrations/postgres/0009_webhooks.sql"),
    },
    Migration {
        version: 10,
        sqlite: include_str!("../migrations/sqlite/0010_key_rotation.sql"),
        postgres: include_str!("../migrations/postgres/0010_key_rotation.sql"),
    },
    Migration {
        version: 11,
        sqlite: include_str!("../migrations/sqlite/0011_audit_id_unindexed.sql"),
        postgres: include_str!("../migrations/postgres/0011_audit_id_unindexed.sql"),
    },
    Migration {
        version: 12,
        sqlite: include_str!("../migrations/sqlite/0012_agent_tokens_not_before.sql"),
        postgres: include_str!("../migrations/postgres/0012_agent_tokens_not_before.sql"),
    },
    Migration {
        version: 13,
        sqlite: include_str!("../migrations/sqlite/0013_approval_duties.sql"),
        postgres: include_str!("../migrations/postgres/0013_approval_duties.sql"),
    },
];

/// Applies every migration not yet applied, each in its own transaction. On
/// PostgreSQL an advisory lock keeps concurrently starting nodes from racing.
pub(crate) async fn run(conn: &mut AnyConnection, dialect: Dialect) -> Result<(), StoreError> {
    // The bookkeeping table too is created under the lock: nodes starting
    // together on a fresh PostgreSQL schema would otherwise race on it.
    let mut tx = conn.begin().await?;
    lock(&mut tx, dialect).await?;
    tx.execute("CREATE TABLE IF NOT EXISTS idv_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)")
        .await?;
    tx.commit().await?;
    for m in MIGRATIONS {
        let mut tx = conn.begin().await?;
        lock(&mut tx, dialect).await?;
        let done: Option<(i64,)> = sqlx::query_as("SELECT version FROM idv_migrations WHERE version = $1")
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_none() {
            let sql = match dialect {
                Dialect::Sqlite => m.sqlite,
                Dialect::Postgres => m.postgres,
            };
            sqlx::raw_sql(sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO idv_migrations (version, applied_at) VALUES ($1, 'applied')")
                .bind(m.version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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
