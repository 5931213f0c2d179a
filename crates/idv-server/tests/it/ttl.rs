//! Ephemeral agents: a durable job retires them when their TTL ends.

use std::time::Duration;

use idv_testkit::{Backend, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{agent_body, eventually, get, json_ok, problem, start_manual, transition};

backend_tests!(
    an_agent_retires_when_its_ttl_ends,
    ttl_retirement_survives_a_restart,
    ttl_retires_suspended_agents_and_skips_retired_ones,
    many_ttl_agents_expire_in_one_sweep,
    ttl_values_are_checked,
);

async fn create_with_ttl(s: &idv_testkit::TestServer, name: &str, ttl: Value) -> Value {
    let mut body = agent_body(name);
    body["ttl"] = ttl;
    json_ok(
        s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await
}

async fn status(s: &idv_testkit::TestServer, id: &str) -> Value {
    get(s, &format!("/v1/agents/{id}")).await
}

/// Waits until agent `id` is retired; returns it.
async fn wait_retired(s: &idv_testkit::TestServer, id: &str) -> Value {
    eventually(&format!("agent {id} to retire"), || async {
        status(s, id).await["status"] == "retired"
    })
    .await;
    status(s, id).await
}

/// The agent expiry events about `id`.
async fn expiry_events(s: &idv_testkit::TestServer, id: &str) -> Vec<Value> {
    crate::all_events(s)
        .await
        .into_iter()
        .filter(|e| e["target_id"] == id && e["actor"]["kind"] == "system")
        .collect()
}

async fn an_agent_retires_when_its_ttl_ends(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let a = create_with_ttl(&s, "jit", json!("60s")).await;
    let id = a["id"].as_str().unwrap();
    let created = idv_core::Timestamp::parse(a["created_at"].as_str().unwrap()).unwrap();
    let expires = idv_core::Timestamp::parse(a["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.as_micros() - created.as_micros(), 60_000_000);
    assert_eq!(transition(&s, &s.token, id, "activate", "go").await.status(), 200);

    // Not yet: one second early, through several job polls (every 50 ms).
    clock.advance_secs(59);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(status(&s, id).await["status"], "active");

    clock.advance_secs(2);
    let v = wait_retired(&s, id).await;
    assert_eq!(v["status_changed_by"], "system:jobs");
    assert_eq!(v["status_reason"], "time to live ended");
    assert_eq!(v["version"], 3);
    let events = expiry_events(&s, id).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let ev = &events[0];
    assert_eq!(ev["action"], "agent.retire");
    assert_eq!(ev["outcome"], "success");
    assert_eq!(ev["actor"]["name"], "jobs");
    assert!(ev["actor"]["token_id"].is_null());
    assert_eq!(ev["details"]["cause"], "ttl");
    assert_eq!(ev["details"]["from"], "active");
    assert!(ev["request_id"].is_null());
    // It stays retired; the job does not run again.
    clock.advance_secs(3600);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(expiry_events(&s, id).await.len(), 1);
    let metrics = crate::metrics_text(&s).await;
    assert!(metrics.contains("idv_jobs_run_total 1\n"), "{metrics}");
    assert!(metrics.contains("idv_jobs_failed_total 0\n"), "{metrics}");
}

async fn ttl_retirement_survives_a_restart(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let short = create_with_ttl(&s, "short", json!("60s")).await;
    let long = create_with_ttl(&s, "long", json!(3600)).await;
    // Restart before it is due: the job is a row, not a timer.
    let s = s.restart(backend).await.unwrap();
    clock.advance_secs(61);
    let v = wait_retired(&s, short["id"].as_str().unwrap()).await;
    assert_eq!(v["status_changed_by"], "system:jobs");
    assert_eq!(status(&s, long["id"].as_str().unwrap()).await["status"], "provisioning");
    // And once more: stop, move past the second expiry while down, start.
    let s = s.restart(backend).await.unwrap();
    clock.advance_secs(3600);
    wait_retired(&s, long["id"].as_str().unwrap()).await;
    assert_eq!(expiry_events(&s, short["id"].as_str().unwrap()).await.len(), 1);
    assert_eq!(expiry_events(&s, long["id"].as_str().unwrap()).await.len(), 1);
}

async fn ttl_retires_suspended_agents_and_skips_retired_ones(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let suspended = create_with_ttl(&s, "suspended", json!("10m")).await;
    let sid = suspended["id"].as_str().unwrap();
    for verb in ["activate", "suspend"] {
        assert_eq!(transition(&s, &s.token, sid, verb, verb).await.status(), 200);
    }
    let early = create_with_ttl(&s, "early", json!("10m")).await;
    let eid = early["id"].as_str().unwrap();
    assert_eq!(
        transition(&s, &s.token, eid, "retire", "done early").await.status(),
        200
    );
    let before = crate::head(&s).await;
    clock.advance_secs(601);
    let v = wait_retired(&s, sid).await;
    assert_eq!(v["status_changed_by"], "system:jobs");
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The agent retired by hand keeps its own reason and gets no second event.
    let e = status(&s, eid).await;
    assert_eq!(e["status_reason"], "done early");
    assert_eq!(expiry_events(&s, eid).await.len(), 0);
    assert_eq!(crate::head(&s).await, before + 1);
}

async fn many_ttl_agents_expire_in_one_sweep(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    // More than one job batch (500).
    let agents: Vec<Value> = (0..520)
        .map(|i| json!({"name": format!("eph-{i:03}"), "owner": "o", "purpose": "p", "ttl": "5m"}))
        .collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": agents}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    create_with_ttl(&s, "later", json!("1h")).await;
    clock.advance_secs(301);
    // One retirement per job: allow for a slow, shared machine.
    crate::eventually_within("520 agents to retire", 30, || async {
        crate::all_agents_as(&s, &s.token, "status=retired").await.len() == 520
    })
    .await;
    assert_eq!(crate::all_agents_as(&s, &s.token, "status=provisioning").await.len(), 1);
    let events = crate::events_as(&s, &s.token, "action=agent.retire").await;
    assert_eq!(events.len(), 520);
    assert!(events.iter().all(|e| e["actor"]["kind"] == "system"));
    assert_eq!(
        crate::verify(&crate::all_events(&s).await).unwrap(),
        crate::head(&s).await
    );
}

async fn ttl_values_are_checked(backend: Backend) {
    let s = start_manual(backend).await;
    for (ttl, secs) in [
        (json!("90"), 90),
        (json!("1h30m"), 5400),
        (json!("7d"), 7 * 86400),
        (json!(1), 1),
        (json!(365 * 86400), 365 * 86400),
    ] {
        let a = create_with_ttl(&s, &format!("ok-{secs}"), ttl).await;
        let created = idv_core::Timestamp::parse(a["created_at"].as_str().unwrap()).unwrap();
        let expires = idv_core::Timestamp::parse(a["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(expires.as_micros() - created.as_micros(), secs * 1_000_000);
    }
    for bad in [
        json!("soon"),
        json!("0"),
        json!(0),
        json!("-5m"),
        json!("30m1h"),
        json!(""),
        json!(365 * 86400 + 1),
        json!("366d"),
    ] {
        let mut body = agent_body("bad");
        body["ttl"] = bad.clone();
        let p = problem(
            s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["field"], "ttl", "{bad}: {p}");
    }
    // Not a string or a whole number: the wrong shape.
    for bad in [json!(-5), json!(1.5), json!(true), json!(["1h"])] {
        let mut body = agent_body("bad");
        body["ttl"] = bad.clone();
        let p = problem(
            s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{bad}");
    }
}
