//! Durable jobs: TTL expiry, leases, exactly-once claiming across nodes.

use std::collections::HashSet;

use idv_core::agent::NewAgent;
use idv_core::lifecycle::{Status, Transition};
use idv_store::{Applied, Command, JOB_EXPIRE_AGENT, Job, Store};
use idv_testkit::{Backend, backend_tests};

use crate::{Fixture, agent_in, ctx};

backend_tests!(ttl_jobs_are_leased_and_retire_agents, nodes_never_claim_the_same_job);

async fn claim(store: &Store, limit: i64) -> Vec<Job> {
    match store
        .execute(Command::ClaimJobs { lease_secs: 60, limit }, ctx())
        .await
        .unwrap()
    {
        Applied::Jobs(j) => j,
        other => panic!("{other:?}"),
    }
}

fn ephemeral(f: &Fixture, name: &str, ttl: u64) -> idv_core::agent::Agent {
    agent_in(
        &f.store,
        f.tenant.id,
        name,
        NewAgent {
            ttl_seconds: Some(ttl),
            ..NewAgent::default()
        },
    )
}

async fn ttl_jobs_are_leased_and_retire_agents(backend: Backend) {
    let f = Fixture::new(backend).await;
    let a = f.create(vec![ephemeral(&f, "jit", 60)]).await.unwrap().remove(0);
    let b = f
        .create(vec![ephemeral(&f, "jit-retired-early", 60)])
        .await
        .unwrap()
        .remove(0);
    f.store
        .execute(
            Command::TransitionAgent {
                tenant_id: f.tenant.id,
                id: b.id,
                transition: Transition::Retire,
                reason: "done".into(),
            },
            ctx(),
        )
        .await
        .unwrap();
    assert!(claim(&f.store, 10).await.is_empty(), "not due yet");
    f.clock.advance_secs(61);
    let jobs = claim(&f.store, 10).await;
    assert_eq!(jobs.len(), 1, "the manually retired agent's job is gone: {jobs:?}");
    assert_eq!(jobs[0].kind, JOB_EXPIRE_AGENT);
    assert_eq!(jobs[0].target_id, a.id.to_string());
    // Leased: not claimed again until the lease ends.
    assert!(claim(&f.store, 10).await.is_empty());
    f.clock.advance_secs(61);
    let again = claim(&f.store, 10).await;
    assert_eq!(again.len(), 1);
    assert!(again[0].attempts > jobs[0].attempts);
    f.store
        .execute(Command::ExpireAgent(again.into_iter().next().unwrap()), ctx())
        .await
        .unwrap();
    let now = f.store.agent(f.tenant.id, a.id).await.unwrap().unwrap();
    assert_eq!(now.status, Status::Retired);
    assert!(now.status_changed_by.starts_with("system"), "{}", now.status_changed_by);
    f.clock.advance_secs(3600);
    assert!(claim(&f.store, 10).await.is_empty(), "a finished job is not run again");
    let events = f.chain().await;
    let expiry: Vec<_> = events
        .iter()
        .filter(|e| e.target_id == a.id.to_string() && e.action.contains("retire"))
        .collect();
    assert_eq!(expiry.len(), 1, "{expiry:?}");
}

async fn nodes_never_claim_the_same_job(backend: Backend) {
    let f = Fixture::new(backend).await;
    let agents: Vec<_> = (0..300).map(|i| ephemeral(&f, &format!("e{i}"), 10)).collect();
    f.create(agents).await.unwrap();
    f.clock.advance_secs(11);
    let other = if backend == Backend::Postgres {
        f.second_node().await
    } else {
        f.store.clone()
    };
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = if i % 2 == 0 { f.store.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let jobs = claim(&store, 25).await;
                if jobs.is_empty() {
                    return mine;
                }
                mine.extend(jobs.into_iter().map(|j| j.id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(all.len(), 300, "every job claimed exactly once");
    assert_eq!(unique.len(), 300);
}
