//! The durable job runner: a job that fails is retried with a growing
//! backoff, its error kept and audited.

use std::time::Duration;

use idv_testkit::{Backend, backend_tests};

use crate::{all_events, db, eventually, exec, get, scalar, start_manual};

backend_tests!(failed_jobs_are_retried_with_backoff);

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
