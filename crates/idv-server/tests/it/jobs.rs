//! The durable job runner: a job that fails is retried with a growing
//! backoff, its error kept and audited; a job that runs longer than its
//! lease keeps it (the heartbeat renews it) and runs once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use idv_testkit::{Backend, Options, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::{all_events, create_agent, db, eventually, exec, get, json_ok, scalar, start_manual};

backend_tests!(
    failed_jobs_are_retried_with_backoff,
    a_job_longer_than_its_lease_runs_once
);

/// A webhook receiver that answers after 5 s holds its delivery job for
/// longer than the 3 s lease: the node renews the lease while it waits, so
/// no poll claims the job again and the event is delivered once (issue 21
/// item 11: leases were never renewed).
async fn a_job_longer_than_its_lease_runs_once(backend: Backend) {
    let lease = Duration::from_secs(3);
    let opts = Options {
        job_lease: Some(lease),
        ..Options::default()
    };
    let s = TestServer::start_with(backend, opts).await.unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(5)).await;
                StatusCode::NO_CONTENT
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let hook = json_ok(
        s.req(Method::POST, "/v1/webhooks")
            .json(&json!({ "url": url, "events": ["agent.created"], "description": "slow receiver" }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = hook["webhook"]["id"].as_str().unwrap().to_owned();
    create_agent(&s, &s.token, "slow-delivery").await;
    eventually("the delivery starts", || async { hits.load(Ordering::SeqCst) == 1 }).await;
    // Two and a half leases: without renewal the job would be claimed
    // (and delivered) again after one.
    tokio::time::sleep(lease * 5 / 2).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "delivered once");
    eventually("the delivery is recorded", || async {
        let d = get(&s, &format!("/v1/webhooks/{id}/deliveries")).await;
        d["items"].as_array().is_some_and(|i| !i.is_empty())
    })
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "delivered once");
}

async fn failed_jobs_are_retried_with_backoff(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let tenant = get(&s, "/v1/tenants/default").await["id"].as_str().unwrap().to_owned();
    let mut conn = db(&s.database.url).await;
    // A job no node knows how to run: it must fail, be kept, and come back.
    exec(
        &mut conn,
        &format!(
            "INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) \
             VALUES ('00000000-0000-7000-8000-00000000000a', '{tenant}', 'mystery', 'x', 0)"
        ),
    )
    .await;
    let retries = || async {
        all_events(&s)
            .await
            .into_iter()
            .filter(|e| e["action"] == "job.retry")
            .collect::<Vec<_>>()
    };
    eventually("the first retry", || async { retries().await.len() == 1 }).await;
    let first = retries().await.remove(0);
    assert_eq!(first["outcome"], "failure");
    assert_eq!(first["details"]["kind"], "mystery");
    assert_eq!(first["details"]["attempts"], 1);
    assert!(first["details"]["error"].as_str().unwrap().contains("unknown job kind"));
    let next = idv_core::Timestamp::parse(first["details"]["next_run_at"].as_str().unwrap()).unwrap();
    let at = idv_core::Timestamp::parse(first["time"].as_str().unwrap()).unwrap();
    assert_eq!((next.as_micros() - at.as_micros()) / 1_000_000, 5);
    let error: String = sqlx::query_scalar("SELECT last_error FROM jobs WHERE kind = 'mystery'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(error.contains("mystery"), "{error}");

    // Not before its time…
    clock.advance_secs(4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(retries().await.len(), 1);
    // …then again, with the backoff doubled.
    clock.advance_secs(2);
    eventually("the second retry", || async { retries().await.len() == 2 }).await;
    let second = retries().await.remove(1);
    assert_eq!(second["details"]["attempts"], 2);
    let next = idv_core::Timestamp::parse(second["details"]["next_run_at"].as_str().unwrap()).unwrap();
    let at = idv_core::Timestamp::parse(second["time"].as_str().unwrap()).unwrap();
    assert_eq!((next.as_micros() - at.as_micros()) / 1_000_000, 10);
    // Still one job: retried, never duplicated or lost.
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM jobs WHERE kind = 'mystery'").await,
        1
    );
    let metrics = crate::metrics_text(&s).await;
    assert!(metrics.contains("idv_jobs_failed_total 2\n"), "{metrics}");
}
