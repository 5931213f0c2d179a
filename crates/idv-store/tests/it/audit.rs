//! The audit chain: one event per change in the same transaction, filters,
//! tamper evidence, group commit, fail closed, several writers.

use idv_core::Clock as _;
use idv_core::audit::{Outcome, Verifier};
use idv_core::lifecycle::Transition;
use idv_store::{AuditFilter, Command, StoreError};
use idv_testkit::{Backend, backend_tests};

use crate::{Fixture, chain, ctx, raw};

backend_tests!(
    events_are_filtered_and_chained,
    tampering_and_deletion_are_detected,
    concurrent_commands_are_group_committed,
    a_failing_audit_insert_changes_nothing,
    two_nodes_write_one_chain,
);

async fn events_are_filtered_and_chained(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![f.new_agent("x")]).await.unwrap().remove(0);
    f.clock.advance_secs(10);
    let mid = f.clock.now();
    f.store
        .execute(
            Command::TransitionAgent {
                tenant_id: f.tenant.id,
                id: a.id,
                transition: Transition::Activate,
                reason: "go".into(),
            },
            ctx(),
        )
        .await
        .unwrap();
    let _ = f
        .store
        .execute(
            Command::TransitionAgent {
                tenant_id: f.tenant.id,
                id: a.id,
                transition: Transition::Resume,
                reason: "no".into(),
            },
            ctx(),
        )
        .await
        .unwrap_err();
    let events = f.chain().await;
    assert_eq!(events.len(), 4); // tenant, create, activate, refused resume
    let q = |filter: AuditFilter| {
        let store = f.store.clone();
        async move { store.audit_events(&AuditFilter { limit: 100, ..filter }).await.unwrap() }
    };
    let e = q(AuditFilter {
        action: Some("agent.activate".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason.as_deref(), Some("go"));
    assert_eq!(e[0].request_id.as_deref(), Some("req-1"));
    assert_eq!(e[0].target_id, a.id.to_string());
    assert_eq!(
        q(AuditFilter {
            target_id: Some(a.id.to_string()),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        q(AuditFilter {
            outcome: Some(Outcome::Failure),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        q(AuditFilter {
            since: Some(mid),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        q(AuditFilter {
            until: Some(mid),
            ..Default::default()
        })
        .await
        .len(),
        2
    );
    assert_eq!(
        q(AuditFilter {
            tenant_id: Some(f.clock.new_id()),
            ..Default::default()
        })
        .await
        .len(),
        0
    );
    assert_eq!(
        q(AuditFilter {
            after_seq: 3,
            ..Default::default()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        f.store
            .audit_events(&AuditFilter {
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn tampering_and_deletion_are_detected(backend: Backend) {
    let f = Fixture::new(backend).await;
    let agents: Vec<_> = (0..9).map(|i| f.new_agent(&format!("a{i}"))).collect();
    for a in agents {
        f.create(vec![a]).await.unwrap();
    }
    let events = f.chain().await;
    assert_eq!(events.len(), 10);
    let walk = |events: Vec<idv_core::audit::Event>| {
        let mut v = Verifier::default();
        events.iter().try_for_each(|e| v.push(e))
    };
    let mut conn = raw(&f.db).await;
    sqlx::query("UPDATE audit_events SET target_id = 'someone-else' WHERE seq = 4")
        .execute(&mut conn)
        .await
        .unwrap();
    let b = walk(read_all(&f.store).await).unwrap_err();
    assert_eq!(b.seq, 4);
    assert!(b.problem.contains("altered"), "{b}");
    sqlx::query("UPDATE audit_events SET target_id = $1 WHERE seq = 4")
        .bind(events[3].target_id.clone())
        .execute(&mut conn)
        .await
        .unwrap();
    walk(read_all(&f.store).await).unwrap();
    sqlx::query("DELETE FROM audit_events WHERE seq = 7")
        .execute(&mut conn)
        .await
        .unwrap();
    let b = walk(read_all(&f.store).await).unwrap_err();
    assert_eq!(b.seq, 7);
    assert!(b.problem.contains("missing"), "{b}");
}

async fn concurrent_commands_are_group_committed(backend: Backend) {
    let f = Fixture::new(backend).await;
    let before = f
        .store
        .writer_stats()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut tasks = Vec::new();
    for i in 0..500 {
        let store = f.store.clone();
        let agent = f.new_agent(&format!("g{i}"));
        let tenant_id = f.tenant.id;
        tasks.push(tokio::spawn(async move {
            store
                .execute(
                    Command::CreateAgents {
                        tenant_id,
                        agents: vec![agent],
                    },
                    ctx(),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let batches = f
        .store
        .writer_stats()
        .batches
        .load(std::sync::atomic::Ordering::Relaxed)
        - before;
    eprintln!("500 concurrent commands committed in {batches} transactions");
    assert!(batches < 500, "no group commit: {batches}");
    let events = f.chain().await;
    assert_eq!(events.len(), 501);
    assert!(events.iter().enumerate().all(|(i, e)| e.seq == i as i64 + 1));
}

async fn a_failing_audit_insert_changes_nothing(backend: Backend) {
    let f = Fixture::new(backend).await;
    let mut conn = raw(&f.db).await;
    let (install, remove): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &["CREATE TRIGGER boom BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'boom'); END"],
            &["DROP TRIGGER boom"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
                "CREATE TRIGGER boom BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION boom()",
            ],
            &["DROP TRIGGER boom ON audit_events", "DROP FUNCTION boom()"],
        ),
    };
    for sql in install {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let err = f.create(vec![f.new_agent("never")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    for sql in remove {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    assert_eq!(f.store.count_agents(None).await.unwrap(), 0);
    // The writer recovers.
    f.create(vec![f.new_agent("later")]).await.unwrap();
    assert_eq!(f.chain().await.len(), 2);
}

async fn two_nodes_write_one_chain(backend: Backend) {
    if backend == Backend::Sqlite {
        // One SQLite file has one writer process; several nodes is a PostgreSQL setup.
        return;
    }
    let f = Fixture::new(backend).await;
    let other = f.second_node().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let store = if i % 2 == 0 { f.store.clone() } else { other.clone() };
        let agent = f.new_agent(&format!("n{i}"));
        let tenant_id = f.tenant.id;
        tasks.push(tokio::spawn(async move {
            store
                .execute(
                    Command::CreateAgents {
                        tenant_id,
                        agents: vec![agent],
                    },
                    ctx(),
                )
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(chain(&other).await.len(), 201);
}

async fn read_all(store: &idv_store::Store) -> Vec<idv_core::audit::Event> {
    store
        .audit_events(&AuditFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}
