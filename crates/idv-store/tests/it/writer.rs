//! The group-commit writer: batching, savepoint isolation inside a batch,
//! and failing closed when the audit event cannot be written.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use idv_core::agent::AgentChanges;
use idv_core::audit::{Action, Actor, Draft, Outcome, TargetKind};
use idv_core::lifecycle::Transition;
use idv_store::{Applied, Command, DecisionRecord, Store, StoreError, Usage, WriterStats};
use idv_testkit::{Backend, backend_tests};
use serde_json::json;

use crate::{Fixture, assert_gapless, ctx, exec};

backend_tests!(
    concurrent_commands_are_group_committed,
    refusals_in_a_batch_do_not_sink_it,
    a_failing_audit_insert_changes_nothing,
    a_failing_command_is_isolated_in_its_batch,
    the_writer_reconnects_after_losing_its_connection,
    decisions_are_summed_per_batch_and_fail_whole,
);

fn stats(s: &WriterStats) -> [u64; 4] {
    [
        s.batches.load(Ordering::Relaxed),
        s.units.load(Ordering::Relaxed),
        s.events.load(Ordering::Relaxed),
        s.failed_batches.load(Ordering::Relaxed),
    ]
}

fn record(f: &Fixture, i: usize) -> Command {
    Command::Record(Draft {
        tenant_id: f.tenant.id,
        actor: Actor::system("test"),
        action: Action::AuthzDecision,
        target_type: TargetKind::Entity("test".into()),
        target_id: format!("r{i}"),
        outcome: Outcome::Success,
        reason: None,
        request_id: None,
        details: json!({ "i": i }),
    })
}

async fn concurrent_commands_are_group_committed(backend: Backend) {
    let f = Fixture::new(backend).await;
    let before = stats(f.store.writer_stats());
    let tasks: Vec<_> = (0..500)
        .map(|i| {
            let store = f.store.clone();
            let cmd = if i % 10 == 9 {
                record(&f, i)
            } else {
                Command::CreateAgents {
                    tenant_id: f.tenant.id,
                    agents: vec![f.new_agent(&format!("g{i}"))],
                }
            };
            tokio::spawn(async move { (i, store.execute(cmd, ctx()).await) })
        })
        .collect();
    let mut created = Vec::new();
    for t in tasks {
        match t.await.unwrap() {
            (i, Ok(Applied::Agents(a))) => {
                assert_eq!(a[0].name, format!("g{i}"));
                created.push(a.into_iter().next().unwrap());
            }
            (_, Ok(Applied::Done)) => {}
            (i, other) => panic!("task {i}: {other:?}"),
        }
    }
    let after = stats(f.store.writer_stats());
    let [batches, units, events, failed] = [0, 1, 2, 3].map(|k| after[k] - before[k]);
    eprintln!("500 concurrent commands committed in {batches} transactions");
    assert_eq!((units, events, failed), (500, 500, 0));
    assert!(
        batches < units,
        "no group commit happened: {batches} transactions for {units} units"
    );

    let events = f.chain().await;
    assert_eq!(events.len(), 501);
    assert_gapless(&events);
    let create_targets: HashSet<String> = events
        .iter()
        .filter(|e| e.action == "agent.create")
        .map(|e| e.target_id.clone())
        .collect();
    assert_eq!(create_targets.len(), 450);
    for a in &created {
        assert!(create_targets.contains(&a.id.to_string()));
        assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().as_ref(), Some(a));
    }
    assert_eq!(events.iter().filter(|e| e.action == "authz.decision").count(), 50);
}

async fn refusals_in_a_batch_do_not_sink_it(backend: Backend) {
    let f = Fixture::new(backend).await;
    // Pairs of requests for the same name, all at once: one of each pair wins.
    let tasks: Vec<_> = (0..400)
        .map(|i| {
            let store = f.store.clone();
            let cmd = Command::CreateAgents {
                tenant_id: f.tenant.id,
                agents: vec![f.new_agent(&format!("n{}", i / 2))],
            };
            tokio::spawn(async move { store.execute(cmd, ctx()).await })
        })
        .collect();
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!((ok, conflicts), (200, 200));
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 200);
    let events = f.chain().await;
    assert_gapless(&events);
    let of = |o: Outcome| {
        events
            .iter()
            .filter(|e| e.action == "agent.create" && e.outcome == o)
            .count()
    };
    assert_eq!((of(Outcome::Success), of(Outcome::Failure)), (200, 200));
}

/// SQL that makes every audit insert fail, and SQL that undoes it.
fn audit_trigger(backend: Backend) -> (&'static [&'static str], &'static [&'static str]) {
    match backend {
        Backend::Sqlite => (
            &["CREATE TRIGGER boom BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'boom'); END;"],
            &["DROP TRIGGER boom"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'boom'; END $$",
                "CREATE TRIGGER boom BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION boom()",
            ],
            &["DROP TRIGGER boom ON audit_events", "DROP FUNCTION boom()"],
        ),
    }
}

async fn a_failing_audit_insert_changes_nothing(backend: Backend) {
    let f = Fixture::new(backend).await;
    let live = f.create_one("live").await;
    let head = f.head().await;
    let before_rows = rows(&f.db).await;
    let before = stats(f.store.writer_stats());
    let (install, remove) = audit_trigger(backend);
    exec(&f.db, install).await;

    let never = f.agent_with(
        "never",
        idv_core::agent::NewAgent {
            ttl_seconds: Some(60),
            labels: [("k".to_owned(), "v".to_owned())].into(),
            ..Default::default()
        },
    );
    let err = f.create(vec![never.clone()]).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(!err.to_string().contains("boom"), "database internals leak: {err}");
    assert_eq!(f.store.agent(f.tenant.id, never.id).await.unwrap(), None);

    // Every kind of write fails the same way, concurrently too.
    let cmds: Vec<Command> = (0..40)
        .map(|i| match i % 4 {
            0 => Command::CreateAgents {
                tenant_id: f.tenant.id,
                agents: vec![f.new_agent(&format!("c{i}"))],
            },
            1 => Command::UpdateAgent {
                tenant_id: f.tenant.id,
                id: live.id,
                if_match: None,
                changes: AgentChanges {
                    purpose: Some(format!("p{i}")),
                    ..Default::default()
                },
            },
            2 => Command::TransitionAgent {
                tenant_id: f.tenant.id,
                id: live.id,
                transition: Transition::Activate,
                reason: "r".into(),
            },
            _ => record(&f, i),
        })
        .collect();
    for res in run_all(&f, cmds).await {
        assert!(matches!(res, Err(StoreError::Unavailable(_))), "{res:?}");
    }
    assert_eq!(rows(&f.db).await, before_rows, "nothing was written");
    assert_eq!(f.store.agent(f.tenant.id, live.id).await.unwrap().as_ref(), Some(&live));
    assert_eq!(f.head().await, head);
    let after = stats(f.store.writer_stats());
    assert!(after[3] > before[3], "failed batches are counted");
    assert_eq!(after[2], before[2], "no events counted");

    // The writer recovers once the database accepts events again.
    exec(&f.db, remove).await;
    f.create(vec![never.clone()]).await.unwrap();
    let activated = f.transition(live.id, Transition::Activate).await.unwrap();
    assert_eq!(activated.version, 2, "no failed update was applied");
    let events = f.chain().await;
    assert_gapless(&events);
    assert_eq!(events.len(), 4, "tenant, live, never, activate");
    assert_eq!(f.count("SELECT COUNT(*) FROM jobs").await, 1);
}

async fn a_failing_command_is_isolated_in_its_batch(backend: Backend) {
    let f = Fixture::new(backend).await;
    let (install, remove): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER poison BEFORE INSERT ON agents WHEN NEW.name = 'poison' \
               BEGIN SELECT RAISE(ABORT, 'poison'); END;",
            ],
            &["DROP TRIGGER poison"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'poison'; END $$",
                "CREATE TRIGGER poison BEFORE INSERT ON agents FOR EACH ROW WHEN (NEW.name = 'poison') \
                 EXECUTE FUNCTION poison()",
            ],
            &["DROP TRIGGER poison ON agents", "DROP FUNCTION poison()"],
        ),
    };
    exec(&f.db, install).await;
    let poison = f.new_agent("poison");
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = f.store.clone();
            let agent = if i == 50 {
                poison.clone()
            } else {
                f.new_agent(&format!("ok{i}"))
            };
            let cmd = Command::CreateAgents {
                tenant_id: f.tenant.id,
                agents: vec![agent],
            };
            tokio::spawn(async move { (i, store.execute(cmd, ctx()).await) })
        })
        .collect();
    for t in tasks {
        let (i, res) = t.await.unwrap();
        if i == 50 {
            assert!(res.is_err(), "{res:?}");
        } else {
            assert!(res.is_ok(), "{i}: {res:?}");
        }
    }
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 99);
    assert_eq!(f.store.agent(f.tenant.id, poison.id).await.unwrap(), None);
    let events = f.chain().await;
    assert_gapless(&events);
    assert!(events.iter().all(|e| e.target_id != poison.id.to_string()));
    exec(&f.db, remove).await;
    f.create(vec![poison]).await.unwrap();
}

/// Row counts of every table a write touches.
async fn rows(db: &idv_testkit::Database) -> [i64; 4] {
    let mut out = [0; 4];
    for (n, table) in out.iter_mut().zip(["agents", "jobs", "agent_labels", "tenants"]) {
        *n = crate::count(db, &format!("SELECT COUNT(*) FROM {table}")).await;
    }
    out
}

/// A fresh PostgreSQL database of its own (not a schema): every backend
/// connected to it belongs to this test, so the test may terminate them.
/// Dropped by [`drop_database`].
async fn own_database(name: &str) -> String {
    use sqlx::Connection as _;
    let base = idv_testkit::postgres_url().unwrap();
    let (head, query) = base
        .split_once('?')
        .map_or((base.as_str(), None), |(h, q)| (h, Some(q)));
    let (server, _) = head.rsplit_once('/').unwrap();
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

async fn drop_database(name: &str) {
    use sqlx::Connection as _;
    let mut admin = sqlx::PgConnection::connect(&idv_testkit::postgres_url().unwrap())
        .await
        .unwrap();
    sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

async fn the_writer_reconnects_after_losing_its_connection(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: an embedded SQLite connection cannot be cut from outside");
        return;
    }
    let clock = crate::manual_clock();
    let name = format!("idv_it_{}", idv_core::Clock::new_id(clock.as_ref()).simple());
    let url = own_database(&name).await;
    let store = Store::open(&url, clock.clone()).await.unwrap();
    let t = crate::tenant(&store, "acme").await;
    let agent = |n: &str| crate::agent_in(&store, t.id, n, idv_core::agent::NewAgent::default());

    // Cut every connection the store has (writer and readers).
    {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let (cut,): (i64,) = sqlx::query_as(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap();
        assert!(cut >= 2, "the writer and a reader were connected: {cut}");
    }
    // The batch that finds the connection dead fails as a whole; the writer
    // reconnects, and the next one succeeds.
    let mut outcomes = Vec::new();
    for i in 0..3 {
        let res = crate::create_in(&store, t.id, vec![agent(&format!("after-{i}"))]).await;
        outcomes.push(res.is_ok());
        if let Err(e) = res {
            assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        }
    }
    eprintln!("commands after the cut succeeded: {outcomes:?}");
    assert!(
        outcomes[1..].iter().all(|ok| *ok),
        "the writer did not recover: {outcomes:?}"
    );
    let events = crate::chain(&store).await;
    assert_gapless(&events);
    let created = outcomes.iter().filter(|ok| **ok).count();
    assert_eq!(events.len(), 1 + created);
    store.close().await;
    drop(store);
    drop_database(&name).await;
}

fn decision(f: &Fixture, agent: uuid::Uuid, action: &str) -> Command {
    let Command::Record(event) = record(f, 0) else {
        unreachable!("record() makes a Record")
    };
    Command::Decide(Box::new(DecisionRecord {
        event,
        usage: Some(Usage {
            tenant_id: f.tenant.id,
            agent_id: agent,
            action: action.into(),
            resource_type: "Doc".into(),
        }),
        edge: None,
        approval: None,
    }))
}

async fn usage_counts(f: &Fixture, agent: uuid::Uuid) -> Vec<(String, i64)> {
    let mut rows: Vec<_> = f
        .store
        .agent_usage(f.tenant.id, agent)
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.action, u.count))
        .collect();
    rows.sort();
    rows
}

/// Runs every command at once, each from its own task; their results in order.
async fn run_all(f: &Fixture, cmds: Vec<Command>) -> Vec<Result<Applied, StoreError>> {
    let tasks: Vec<_> = cmds
        .into_iter()
        .map(|cmd| {
            let store: Store = f.store.clone();
            tokio::spawn(async move { store.execute(cmd, ctx()).await })
        })
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Batches of nothing but decisions and records (on SQLite, written by the
/// writer thread's own connection, `append.rs`): usage summed per key across batches, the chain gapless, and a
/// failing audit insert leaves neither events nor usage behind, nor an open
/// transaction on the writer's connection.
async fn decisions_are_summed_per_batch_and_fail_whole(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create_one("user").await;
    let head = f.head().await;
    let cmds = (0..300)
        .map(|i| match i % 3 {
            0 => decision(&f, a.id, "read"),
            1 => decision(&f, a.id, "write"),
            _ => record(&f, i),
        })
        .collect();
    for res in run_all(&f, cmds).await {
        assert!(matches!(res, Ok(Applied::Done)), "{res:?}");
    }
    assert_eq!(
        usage_counts(&f, a.id).await,
        [("read".into(), 100), ("write".into(), 100)]
    );
    assert_eq!(f.head().await, head + 300);
    let events = f.chain().await;
    assert_gapless(&events);
    crate::verify(&events).unwrap();

    let (install, remove) = audit_trigger(backend);
    exec(&f.db, install).await;
    let before = stats(f.store.writer_stats());
    let cmds = (0..40)
        .map(|i| {
            if i % 2 == 0 {
                decision(&f, a.id, "read")
            } else {
                record(&f, i)
            }
        })
        .collect();
    for res in run_all(&f, cmds).await {
        assert!(matches!(res, Err(StoreError::Unavailable(_))), "{res:?}");
    }
    assert_eq!(
        usage_counts(&f, a.id).await,
        [("read".into(), 100), ("write".into(), 100)],
        "no usage without its event"
    );
    assert_eq!(f.head().await, head + 300);
    assert!(
        stats(f.store.writer_stats())[3] > before[3],
        "failed batches are counted"
    );

    // The connection is usable again: nothing was left open.
    exec(&f.db, remove).await;
    f.store.execute(decision(&f, a.id, "read"), ctx()).await.unwrap();
    f.create_one("after").await;
    assert_eq!(
        usage_counts(&f, a.id).await,
        [("read".into(), 101), ("write".into(), 100)]
    );
    let events = f.chain().await;
    assert_gapless(&events);
    crate::verify(&events).unwrap();
}
