//! Webhook delivery attempts are fenced by their job's claim count: a
//! worker whose lease ran out records nothing over the one that took the
//! job after it.

use idv_core::Clock as _;
use idv_core::audit::Actor;
use idv_core::webhook::{AttemptResult, Delivery, Filter, Status, TEST_EVENT, Webhook};
use idv_store::{Applied, Command, Context, Job, Store};
use idv_testkit::{Backend, backend_tests};

use crate::Fixture;

backend_tests!(an_attempt_from_a_lapsed_claim_is_not_recorded);

fn ctx(name: &str) -> Context {
    Context {
        actor: Actor::system(name),
        request_id: None,
        note: None,
    }
}

/// Claims due jobs and returns the one that sends `delivery`.
async fn claim_delivery(store: &Store, delivery: &Delivery) -> Job {
    let jobs = match store
        .execute(
            Command::ClaimJobs {
                lease_secs: 30,
                limit: 100,
                kinds: idv_store::JobKinds::All,
            },
            ctx("jobs"),
        )
        .await
        .unwrap()
    {
        Applied::Jobs(j) => j,
        other => panic!("{other:?}"),
    };
    jobs.into_iter()
        .find(|j| j.target_id == delivery.id.to_string())
        .expect("the delivery's job is due")
}

async fn an_attempt_from_a_lapsed_claim_is_not_recorded(backend: Backend) {
    let f = Fixture::new(backend).await;
    let now = f.clock.now();
    let w = Webhook {
        id: f.clock.new_id(),
        tenant_id: f.tenant.id,
        url: "https://hooks.example.com/idv".into(),
        events: Filter::parse(&["agent.*"]).unwrap(),
        description: None,
        status: Status::Enabled,
        disabled_reason: None,
        disabled_at: None,
        consecutive_failures: 0,
        failing_since: None,
        last_success_at: None,
        created_at: now,
        created_by: "test".into(),
        updated_at: now,
    };
    let create = Command::CreateWebhook {
        webhook: Box::new(w.clone()),
        sealed_secret: vec![7; 60],
    };
    f.store.execute(create, ctx("test")).await.unwrap();
    let d = Delivery::pending(
        (f.clock.new_id(), f.tenant.id, w.id),
        TEST_EVENT,
        None,
        "{}".into(),
        now,
    );
    f.store
        .execute(Command::TestWebhook(Box::new(d.clone())), ctx("test"))
        .await
        .unwrap();

    // One worker claims it, and its lease runs out while it sends; another
    // worker claims it again.
    let lapsed = claim_delivery(&f.store, &d).await;
    f.clock.advance_secs(31);
    let current = claim_delivery(&f.store, &d).await;
    assert_eq!(current.id, lapsed.id);
    assert_eq!(current.attempts, lapsed.attempts + 1);

    let failed = AttemptResult {
        at: f.clock.now(),
        status_code: Some(503),
        error: Some("HTTP 503".into()),
        duration_ms: 12,
    };
    let record = |job: Job| Command::RecordWebhookAttempt {
        job,
        result: failed.clone(),
        jitter: 0.5,
    };
    let head = f.head().await;
    f.store.execute(record(lapsed), ctx("webhooks")).await.unwrap();
    let after = f.store.webhook_delivery(f.tenant.id, d.id).await.unwrap().unwrap();
    assert_eq!(after.attempts, 0, "the lapsed claim's attempt was recorded");
    assert_eq!(f.head().await, head, "the lapsed claim's attempt was audited");
    let webhook = f.store.webhook(f.tenant.id, w.id).await.unwrap().unwrap();
    assert_eq!(webhook.consecutive_failures, 0);

    // The current claim's attempt counts, and its retry keeps the job.
    f.store.execute(record(current), ctx("webhooks")).await.unwrap();
    let after = f.store.webhook_delivery(f.tenant.id, d.id).await.unwrap().unwrap();
    assert_eq!(after.attempts, 1);
    assert_eq!(after.last_status_code, Some(503));
    let events = f.events_after(head).await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["webhook.delivery.failed"]);
    let webhook = f.store.webhook(f.tenant.id, w.id).await.unwrap().unwrap();
    assert_eq!(webhook.consecutive_failures, 1);
}
