//! Several nodes on one PostgreSQL schema: the chain-head advisory lock
//! serialises their batches, so they append to one unbroken chain and
//! uniqueness and versions hold across nodes. (One SQLite file is served by
//! one node; there these tests only note that they do not apply.)

use idv_core::agent::AgentChanges;
use idv_core::audit::{Action, Actor, Draft, Outcome, TargetKind};
use idv_store::{Applied, Command, StoreError};
use idv_testkit::{Backend, Database, backend_tests};
use serde_json::json;

use crate::{Fixture, assert_gapless, chain, ctx, update};

backend_tests!(
    two_nodes_write_one_chain,
    uniqueness_and_versions_hold_across_nodes,
    a_lost_listener_empties_caches
);

async fn two_nodes_write_one_chain(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: one SQLite file is served by one node");
        return;
    }
    let f = Fixture::new(backend).await;
    let nodes = [f.store.clone(), f.second_node().await, f.second_node().await];
    let shared = f.create_one("shared").await;
    let tasks: Vec<_> = (0..600)
        .map(|i| {
            let store = nodes[i % nodes.len()].clone();
            let cmd = match i % 6 {
                0 => Command::CreateAgents {
                    tenant_id: f.tenant.id,
                    agents: (0..5).map(|k| f.new_agent(&format!("bulk-{i}-{k}"))).collect(),
                },
                1 => Command::UpdateAgent {
                    tenant_id: f.tenant.id,
                    id: shared.id,
                    if_match: None,
                    changes: AgentChanges {
                        purpose: Some(format!("purpose {i}")),
                        ..Default::default()
                    },
                },
                2 => Command::Record(Draft {
                    tenant_id: f.tenant.id,
                    actor: Actor::system("test"),
                    action: Action::AuthzDecision,
                    target_type: TargetKind::Entity("test".into()),
                    target_id: i.to_string(),
                    outcome: Outcome::Success,
                    reason: None,
                    request_id: None,
                    details: json!({ "node": i % 3 }),
                }),
                _ => Command::CreateAgents {
                    tenant_id: f.tenant.id,
                    agents: vec![f.new_agent(&format!("one-{i}"))],
                },
            };
            tokio::spawn(async move { store.execute(cmd, ctx()).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // 2 + 100 bulk × 5 + 100 updates + 100 records + 300 singles.
    let want = 2 + 500 + 100 + 100 + 300;
    for node in &nodes {
        let events = chain(node).await;
        assert_eq!(events.len(), want);
        assert_gapless(&events);
    }
    let last = f.store.agent(f.tenant.id, shared.id).await.unwrap().unwrap();
    assert_eq!(last.version, 101, "every update applied on top of the previous one");
    assert_eq!(f.store.count_agents(Some(f.tenant.id)).await.unwrap(), 801);
}

async fn uniqueness_and_versions_hold_across_nodes(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: one SQLite file is served by one node");
        return;
    }
    let f = Fixture::new(backend).await;
    let nodes = [f.store.clone(), f.second_node().await];
    let a = f.create_one("contended").await;
    for round in 0..10 {
        // The same new name from both nodes: one wins.
        let name = format!("name-{round}");
        let creates: Vec<_> = nodes
            .iter()
            .map(|node| {
                let node = node.clone();
                let agent = f.new_agent(&name);
                let tenant_id = f.tenant.id;
                tokio::spawn(async move {
                    node.execute(
                        Command::CreateAgents {
                            tenant_id,
                            agents: vec![agent],
                        },
                        ctx(),
                    )
                    .await
                })
            })
            .collect();
        // The same If-Match from both nodes: one wins.
        let version = round + 1;
        let updates: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| {
                let node = node.clone();
                let (t, id) = (f.tenant.id, a.id);
                tokio::spawn(async move {
                    let changes = AgentChanges {
                        team: Some(Some(format!("team-{i}"))),
                        ..Default::default()
                    };
                    update(&node, t, id, Some(version), changes).await
                })
            })
            .collect();
        let mut created = 0;
        for c in creates {
            match c.await.unwrap() {
                Ok(Applied::Agents(_)) => created += 1,
                Err(StoreError::Conflict(_)) => {}
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(created, 1, "round {round}: one agent named {name}");
        let mut won = 0;
        for u in updates {
            match u.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::PreconditionFailed { current }) => assert_eq!(current, version + 1),
                Err(e) => panic!("{e:?}"),
            }
        }
        assert_eq!(won, 1, "round {round}: one update with If-Match {version}");
    }
    assert_eq!(f.store.agent(f.tenant.id, a.id).await.unwrap().unwrap().version, 11);
    let events = chain(&nodes[1]).await;
    assert_gapless(&events);
}

/// Notifications sent while a node's `LISTEN` connection is gone are lost,
/// so losing it must turn caching off and reconnecting must start from an
/// empty cache (a new generation), counted (issue 21 item 9: sqlx's `recv`
/// reconnected silently and the caches stayed on their old generation).
async fn a_lost_listener_empties_caches(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: SQLite has no change listener");
        return;
    }
    let db = Database::fresh(backend).await.unwrap();
    // Name this store's connections, to find its listener's backend.
    let schema = db.url.rsplit("search_path%3D").next().unwrap().to_owned();
    let url = format!("{}&application_name={schema}", db.url);
    let store = idv_store::Store::open(&url, crate::manual_clock()).await.unwrap();
    let changes = store.changes();
    wait_until("the listener connects", || changes.current().is_some()).await;
    let before = changes.current();
    assert_eq!(changes.reconnects(), 0);

    let mut admin: sqlx::PgConnection = sqlx::Connection::connect(&idv_testkit::postgres_url().unwrap())
        .await
        .unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE application_name = $1 AND query ILIKE 'listen%'",
    )
    .bind(&schema)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(cut, 1, "one listener backend terminated");
    wait_until("the listener reconnects", || {
        changes.reconnects() == 1 && changes.current().is_some()
    })
    .await;
    assert_ne!(
        changes.current(),
        before,
        "what was cached before the connection was lost is stale"
    );
    assert!(changes.listening());
}

async fn wait_until(what: &str, ok: impl Fn() -> bool) {
    let started = std::time::Instant::now();
    while !ok() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{what} within 10 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}
