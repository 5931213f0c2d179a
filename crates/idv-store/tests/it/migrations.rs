//! Migrations: idempotent on reopen, applied on upgrade, safe when several
//! nodes start at once (on a fresh PostgreSQL schema, or on one a release
//! behind).

use idv_store::{Store, StoreError};
use idv_testkit::{Backend, Database, backend_tests};

use crate::{Fixture, chain, count, exec, manual_clock, raw, tenant};

backend_tests!(
    reopening_is_idempotent,
    a_missing_migration_is_applied_on_open,
    racing_opens_on_an_outdated_schema_apply_each_migration_once,
    the_master_key_check_is_recorded_once,
    racing_opens_on_a_fresh_schema_all_succeed,
    the_audit_table_rebuild_keeps_the_chain,
    a_changed_applied_migration_is_refused,
    a_database_without_checksums_upgrades,
);

/// Every migration the store knows, as recorded in `idv_migrations`.
const VERSIONS: [i64; 18] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];

async fn versions(db: &Database) -> Vec<i64> {
    let mut conn = raw(db).await;
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT version FROM idv_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    rows.into_iter().map(|r| r.0).collect()
}

async fn reopening_is_idempotent(backend: Backend) {
    let err = Store::open("mysql://localhost/idv", manual_clock()).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    let f = Fixture::new(backend).await;
    let a = f.create_one("survivor").await;
    assert_eq!(versions(&f.db).await, VERSIONS);
    f.store.close().await;
    for _ in 0..3 {
        let again = Store::open(&f.db.url, f.clock.clone()).await.unwrap();
        assert_eq!(versions(&f.db).await, VERSIONS, "reopening records nothing twice");
        assert_eq!(again.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&a));
        assert_eq!(again.tenant_by_name("acme").await.unwrap().as_ref(), Some(&f.tenant));
        again.close().await;
    }
    // The reopened store writes on after the existing chain.
    let again = Store::open(&f.db.url, f.clock.clone()).await.unwrap();
    tenant(&again, "after-reopen").await;
    let events = chain(&again).await;
    assert_eq!(events.len(), 3, "tenant, agent, tenant");
}

async fn a_missing_migration_is_applied_on_open(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create_one("kept").await;
    // Roll the schema back to version 1, as a database made by the previous release.
    exec(
        &f.db,
        &[
            "DROP INDEX agents_owner",
            "DELETE FROM idv_migrations WHERE version = 2",
        ],
    )
    .await;
    let without_2: Vec<i64> = VERSIONS.into_iter().filter(|v| *v != 2).collect();
    assert_eq!(versions(&f.db).await, without_2);
    let index_sql = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'agents_owner'",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'agents_owner'"
        }
    };
    assert_eq!(count(&f.db, index_sql).await, 0);
    let upgraded = Store::open(&f.db.url, f.clock.clone()).await.unwrap();
    assert_eq!(versions(&f.db).await, VERSIONS);
    assert_eq!(count(&f.db, index_sql).await, 1);
    assert_eq!(upgraded.agent(f.tenant.id, a.id).await.unwrap(), Some(a));
}

/// Four stores opened at once on `db`; every open must succeed.
async fn open_together(db: &Database, round: usize) -> Vec<Store> {
    let clock = manual_clock();
    // `Store::open` cannot be spawned (its future is not `Send` for every
    // lifetime), so the four opens race as futures of one task; each
    // waits on the database, so their statements interleave there.
    let open = || Store::open(&db.url, clock.clone());
    let (a, b, c, d) = tokio::join!(open(), open(), open(), open());
    let mut stores = Vec::new();
    for (i, res) in [a, b, c, d].into_iter().enumerate() {
        match res {
            Ok(s) => stores.push(s),
            Err(e) => panic!("round {round}: open {i} of 4 racing failed: {e}"),
        }
    }
    stores
}

async fn racing_opens_on_an_outdated_schema_apply_each_migration_once(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: one SQLite file is opened by one node");
        return;
    }
    let f = Fixture::new(backend).await;
    let a = f.create_one("kept").await;
    for round in 0..5 {
        // A schema one release behind, as during a rolling upgrade.
        exec(
            &f.db,
            &[
                "DROP INDEX agents_owner",
                "DELETE FROM idv_migrations WHERE version = 2",
            ],
        )
        .await;
        let stores = open_together(&f.db, round).await;
        assert_eq!(versions(&f.db).await, VERSIONS, "round {round}");
        for s in &stores {
            assert_eq!(s.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(&a));
        }
    }
    chain(&f.store).await;
}

async fn racing_opens_on_a_fresh_schema_all_succeed(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: one SQLite file is opened by one node");
        return;
    }
    // Several rounds: the window for a race is small.
    for round in 0..8 {
        let db = Database::fresh(backend).await.unwrap();
        let stores = open_together(&db, round).await;
        assert_eq!(versions(&db).await, VERSIONS, "round {round}");
        for (i, s) in stores.iter().enumerate() {
            tenant(s, &format!("t{i}")).await;
        }
        assert_eq!(chain(&stores[0]).await.len(), 4);
    }
}

async fn the_master_key_check_is_recorded_once(backend: Backend) {
    let f = Fixture::new(backend).await;
    // Two first starts at once with different keys: exactly one key wins.
    let (a, b) = tokio::join!(f.store.check_master_key("kcv-a"), f.store.check_master_key("kcv-b"));
    let winner = match (a, b) {
        (Ok(()), Err(StoreError::Config(_))) => "kcv-a",
        (Err(StoreError::Config(_)), Ok(())) => "kcv-b",
        other => panic!("exactly one master key must be recorded: {other:?}"),
    };
    f.store.check_master_key(winner).await.unwrap();
    let err = f.store.check_master_key("kcv-other").await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    assert!(!err.to_string().contains("kcv"), "the check value is not echoed: {err}");
    // It survives a restart.
    f.store.close().await;
    let again = Store::open(&f.db.url, f.clock.clone()).await.unwrap();
    again.check_master_key(winner).await.unwrap();
    assert!(again.check_master_key("kcv-other").await.is_err());
}

/// Migration 11 rebuilds SQLite's audit table without the unique index on
/// `id`: a database of the previous release keeps every event exactly (the
/// chain still verifies and reads the same), keeps the tenant index, and
/// appends on after it. PostgreSQL keeps the constraint.
async fn the_audit_table_rebuild_keeps_the_chain(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.create_one("before").await;
    let unique_on_id = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) FROM pragma_index_list('audit_events') WHERE \"unique\" = 1 AND origin = 'u'"
        }
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = 'audit_events' AND indexdef LIKE 'CREATE UNIQUE INDEX%(id)'"
        }
    };
    let tenant_index = match backend {
        Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'audit_events_tenant'",
        Backend::Postgres => {
            "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = current_schema() AND indexname = 'audit_events_tenant'"
        }
    };
    if backend == Backend::Sqlite {
        // The table as releases before 11 made it.
        exec(
            &f.db,
            &[
                "CREATE TABLE audit_old (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, time INTEGER NOT NULL, \
                 tenant_id TEXT NOT NULL, actor_kind TEXT NOT NULL, actor_name TEXT NOT NULL, actor_token_id TEXT, \
                 action TEXT NOT NULL, target_type TEXT NOT NULL, target_id TEXT NOT NULL, outcome TEXT NOT NULL, \
                 reason TEXT, request_id TEXT, details TEXT NOT NULL, prev_hash BLOB NOT NULL, hash BLOB NOT NULL)",
                "INSERT INTO audit_old SELECT * FROM audit_events",
                "DROP TABLE audit_events",
                "ALTER TABLE audit_old RENAME TO audit_events",
                "CREATE INDEX audit_events_tenant ON audit_events (tenant_id, seq)",
                "DELETE FROM idv_migrations WHERE version = 11",
            ],
        )
        .await;
        assert_eq!(count(&f.db, unique_on_id).await, 1, "the old table has the index");
    }
    let before = chain(&f.store).await;
    assert_eq!(before.len(), 2, "tenant, agent");
    f.store.close().await;
    let upgraded = Store::open(&f.db.url, f.clock.clone()).await.unwrap();
    assert_eq!(versions(&f.db).await, VERSIONS);
    let expected = match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => 1,
    };
    assert_eq!(count(&f.db, unique_on_id).await, expected, "unique index on id");
    assert_eq!(count(&f.db, tenant_index).await, 1, "the tenant index stays");
    assert_eq!(
        chain(&upgraded).await,
        before,
        "every event as it was, and the chain verifies"
    );
    tenant(&upgraded, "after-upgrade").await;
    assert_eq!(chain(&upgraded).await.len(), 3);
}

/// A migration already applied whose SQL differs from this binary's file is
/// refused by name, and nothing is applied after it.
async fn a_changed_applied_migration_is_refused(backend: Backend) {
    let f = Fixture::new(backend).await;
    f.store.close().await;
    exec(
        &f.db,
        &[
            "UPDATE idv_migrations SET checksum = 'edited' WHERE version = 3",
            "DELETE FROM idv_migrations WHERE version = 16",
        ],
    )
    .await;
    let err = Store::open(&f.db.url, f.clock.clone()).await.unwrap_err();
    assert!(matches!(err, StoreError::Config(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.starts_with("migration 3 (`0003_credentials.sql`) was applied with other contents"),
        "{msg}"
    );
    let applied: Vec<i64> = VERSIONS.into_iter().filter(|v| *v != 16).collect();
    assert_eq!(versions(&f.db).await, applied, "nothing applied past the refusal");
}

/// A database made before checksums were recorded (no `checksum` column)
/// opens as before and gets this binary's checksums, checked from then on.
async fn a_database_without_checksums_upgrades(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create_one("kept").await;
    f.store.close().await;
    exec(&f.db, &["ALTER TABLE idv_migrations DROP COLUMN checksum"]).await;
    let again = Store::open(&f.db.url, f.clock.clone()).await.unwrap();
    assert_eq!(versions(&f.db).await, VERSIONS);
    assert_eq!(
        count(&f.db, "SELECT COUNT(*) FROM idv_migrations WHERE checksum IS NOT NULL").await,
        18,
        "every migration's checksum recorded"
    );
    assert_eq!(again.agent(f.tenant.id, a.id).await.unwrap(), Some(a));
    again.close().await;
    exec(
        &f.db,
        &["UPDATE idv_migrations SET checksum = 'edited' WHERE version = 1"],
    )
    .await;
    let err = Store::open(&f.db.url, f.clock.clone()).await.unwrap_err();
    assert!(err.to_string().starts_with("migration 1 (`0001_init.sql`)"), "{err}");
}
