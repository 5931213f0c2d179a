//! Many requests at once: all answered correctly, one event each, group
//! commits, an unbroken chain, and no lost update.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{agent_count, all_events, create_agent, get, head, verify};

backend_tests!(
    concurrent_creates_all_succeed_with_one_event_each,
    concurrent_updates_with_the_same_etag_let_exactly_one_win,
    concurrent_creates_of_one_name_let_exactly_one_win,
    concurrent_transitions_apply_once,
    concurrent_writes_across_tenants_keep_one_chain,
);

/// Runs `n` copies of a request built by `make(i)` at once; their statuses.
async fn at_once<F>(n: usize, make: F) -> Vec<StatusCode>
where
    F: Fn(usize) -> reqwest::RequestBuilder,
{
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let req = make(i);
            tokio::spawn(async move { req.send().await.unwrap().status() })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

async fn concurrent_creates_all_succeed_with_one_event_each(backend: Backend) {
    let s = TestServer::start(backend).await;
    let before = head(&s).await;
    let statuses = at_once(200, |i| {
        s.req(Method::POST, "/v1/agents")
            .header("x-request-id", format!("c-{i}"))
            .json(&json!({"name": format!("c-{i:03}"), "owner": "o", "purpose": "p"}))
    })
    .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
    assert_eq!(agent_count(&s).await, 200);
    let events = all_events(&s).await;
    assert_eq!(head(&s).await, before + 200);
    assert_eq!(verify(&events).unwrap(), before + 200);
    // Exactly one event per request, naming the agent it created.
    let agents = crate::all_agents_as(&s, &s.token, "").await;
    for a in &agents {
        let n: usize = a["name"].as_str().unwrap()[2..].parse().unwrap();
        let evs: Vec<&Value> = events.iter().filter(|e| e["target_id"] == a["id"]).collect();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0]["request_id"], format!("c-{n}"));
    }
    let metrics = crate::metrics_text(&s).await;
    let (batches, units) = (
        metric(&metrics, "idv_audit_batches_total"),
        metric(&metrics, "idv_audit_units_total"),
    );
    eprintln!("group commit: {units} units in {batches} commits");
    assert!(units >= 200.0);
    assert!(batches < units, "no group commit: {batches} batches for {units} units");
}

async fn concurrent_updates_with_the_same_etag_let_exactly_one_win(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "contended").await;
    let path = format!("/v1/agents/{}", a["id"].as_str().unwrap());
    let statuses = at_once(30, |i| {
        s.req(Method::PATCH, &path)
            .header("if-match", "\"1\"")
            .json(&json!({"owner": format!("writer-{i}")}))
    })
    .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let stale = statuses
        .iter()
        .filter(|s| **s == StatusCode::PRECONDITION_FAILED)
        .count();
    assert_eq!((ok, stale), (1, 29), "{statuses:?}");
    let now = get(&s, &path).await;
    assert_eq!(now["version"], 2);
    let winner = statuses.iter().position(|s| *s == StatusCode::OK).unwrap();
    assert_eq!(now["owner"], format!("writer-{winner}"));
}

async fn concurrent_creates_of_one_name_let_exactly_one_win(backend: Backend) {
    let s = TestServer::start(backend).await;
    let statuses = at_once(30, |_| {
        s.req(Method::POST, "/v1/agents").json(&crate::agent_body("only-one"))
    })
    .await;
    let created = statuses.iter().filter(|s| **s == StatusCode::CREATED).count();
    let conflict = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((created, conflict), (1, 29), "{statuses:?}");
    assert_eq!(agent_count(&s).await, 1);
    // Also in bulk, racing single creates.
    let statuses = at_once(10, |i| {
        if i % 2 == 0 {
            s.req(Method::POST, "/v1/agents/bulk")
                .json(&json!({"agents": [crate::agent_body("race-a"), crate::agent_body(&format!("race-{i}"))]}))
        } else {
            s.req(Method::POST, "/v1/agents").json(&crate::agent_body("race-a"))
        }
    })
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::CREATED).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(crate::all_agents_as(&s, &s.token, "name_prefix=race-a").await.len(), 1);
    assert_eq!(verify(&all_events(&s).await).unwrap(), head(&s).await);
}

async fn concurrent_transitions_apply_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "flip").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let before = head(&s).await;
    let statuses = at_once(20, |_| {
        s.req(Method::POST, &format!("/v1/agents/{id}/activate"))
            .json(&json!({"reason": "race"}))
    })
    .await;
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
    assert_eq!((ok, refused), (1, 19), "{statuses:?}");
    let v = get(&s, &format!("/v1/agents/{id}")).await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["version"], 2);
    let events = crate::events_after(&s, before).await;
    assert_eq!(events.len(), 20);
    assert_eq!(events.iter().filter(|e| e["outcome"] == "success").count(), 1);
}

async fn concurrent_writes_across_tenants_keep_one_chain(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut tokens = Vec::new();
    for t in ["t1", "t2", "t3", "t4"] {
        tokens.push(crate::tenant_token(&s, t, "operator").await.0);
    }
    let before = head(&s).await;
    let statuses = at_once(120, |i| {
        let token = &tokens[i % 4];
        if i % 10 == 0 {
            let agents: Vec<Value> = (0..50).map(|j| crate::agent_body(&format!("b{i}-{j}"))).collect();
            s.req_as(token, Method::POST, "/v1/agents/bulk")
                .json(&json!({"agents": agents}))
        } else {
            s.req_as(token, Method::POST, "/v1/agents")
                .json(&crate::agent_body(&format!("a{i}")))
        }
    })
    .await;
    assert!(statuses.iter().all(|s| *s == StatusCode::CREATED), "{statuses:?}");
    // 12 bulks of 50 and 108 single creates, each in the tenant that sent it.
    let mut want = [0; 4];
    for i in 0..120 {
        want[i % 4] += if i % 10 == 0 { 50 } else { 1 };
    }
    assert_eq!(head(&s).await, before + 12 * 50 + 108);
    for (token, want) in tokens.iter().zip(want) {
        let agents = crate::all_agents_as(&s, token, "").await;
        assert_eq!(agents.len(), want);
    }
    assert_eq!(verify(&all_events(&s).await).unwrap(), before + 708);
}
