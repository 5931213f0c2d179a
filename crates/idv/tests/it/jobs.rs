//! Durable jobs across processes: two `idv serve` processes on one
//! PostgreSQL database share the job table, and every due job runs exactly
//! once (`FOR UPDATE SKIP LOCKED` leases), whichever node takes it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use idv_testkit::{Backend, Database};
use serde_json::{Value, json};

use crate::support::serve;

const AGENTS: usize = 2_000;

/// `idv_jobs_run_total` of the node at `base`.
async fn jobs_run(http: &reqwest::Client, base: &str) -> u64 {
    crate::support::metric(http, base, "idv_jobs_run_total").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_run_each_job_once() {
    // Two processes need a shared PostgreSQL (SQLite is single-node).
    idv_testkit::require_postgres("two_processes_run_each_job_once");
    let db = Database::fresh(Backend::Postgres).await.unwrap();
    let token = idv_core::admin_token::generate();
    let (_a, base_a) = serve(&db, &token).await;
    let (_b, base_b) = serve(&db, &token).await;
    let http = reqwest::Client::new();

    // Ephemeral agents: each has a job that retires it when its TTL ends.
    let mut ids = Vec::with_capacity(AGENTS);
    for chunk in 0..AGENTS / 500 {
        let agents: Vec<Value> = (0..500)
            .map(|i| json!({"name": format!("eph-{chunk}-{i}"), "owner": "o", "purpose": "jobs", "ttl": "3s"}))
            .collect();
        let res = http
            .post(format!("{base_a}/v1/agents/bulk"))
            .bearer_auth(&token)
            .json(&json!({ "agents": agents }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        ids.extend(
            body["agents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["id"].as_str().unwrap().to_owned()),
        );
    }

    // Both nodes poll the same table; wait until every job has run.
    let started = Instant::now();
    loop {
        let done = jobs_run(&http, &base_a).await + jobs_run(&http, &base_b).await;
        if done >= AGENTS as u64 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {done} of {AGENTS} jobs ran in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Settle, then count: no job ran twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ran_a, ran_b) = (jobs_run(&http, &base_a).await, jobs_run(&http, &base_b).await);
    assert_eq!(ran_a + ran_b, AGENTS as u64, "node A ran {ran_a}, node B {ran_b}");

    let mut retired: BTreeMap<String, usize> = BTreeMap::new();
    let mut url = format!("{base_b}/v1/audit/events?action=agent.retire&limit=1000");
    loop {
        let page: Value = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for e in page["items"].as_array().unwrap() {
            assert_eq!(e["outcome"], "success");
            *retired.entry(e["target_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("{base_b}/v1/audit/events?action=agent.retire&limit=1000&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(retired.len(), AGENTS, "every agent retired");
    assert!(retired.values().all(|n| *n == 1), "an agent was retired twice");
    assert!(ids.iter().all(|id| retired.contains_key(id)));
    let left: Value = http
        .get(format!("{base_a}/v1/agents?status=provisioning&limit=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(left["items"].as_array().unwrap().is_empty());
    eprintln!("two processes: node A ran {ran_a} jobs, node B {ran_b}; each of {AGENTS} agents retired once");
}
