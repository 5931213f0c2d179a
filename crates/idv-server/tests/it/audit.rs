//! The audit log over HTTP: one event per change, in the same transaction,
//! never a secret, an unbroken chain; fail closed when it cannot be written.

use idv_core::audit::{Event, Verifier};
use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::{agent_count, all_events, create_agent, head, problem};

backend_tests!(
    every_change_is_audited_without_secrets,
    a_failing_audit_write_fails_the_operation,
    concurrent_writes_share_commits_and_chain,
);

/// Verifies the whole chain as served by the API.
fn verify(events: &[Value]) -> i64 {
    let mut v = Verifier::default();
    for e in events {
        let ev: Event = serde_json::from_value(e.clone()).unwrap();
        v.push(&ev).unwrap();
    }
    v.head().seq
}

async fn every_change_is_audited_without_secrets(backend: Backend) {
    let s = TestServer::start(backend).await;
    let start = head(&s).await;
    let res = s
        .req(Method::POST, "/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let res = s
        .req(Method::POST, "/v1/admin-tokens")
        .header("x-request-id", "req-token-1")
        .json(&json!({"name": "ci", "role": "operator"}))
        .send()
        .await
        .unwrap();
    let created: Value = res.json().await.unwrap();
    let secret = created["token"].as_str().unwrap().to_owned();
    let a = create_agent(&s, &s.token, "audited").await;
    let id = a["id"].as_str().unwrap();
    let res = s
        .req(Method::POST, &format!("/v1/agents/{id}/activate"))
        .header("x-request-id", "req-activate-1")
        .json(&json!({"reason": "CHG-7"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = s
        .req(Method::PATCH, &format!("/v1/agents/{id}"))
        .json(&json!({"team": "t"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let token_id = created["admin_token"]["id"].as_str().unwrap();
    assert_eq!(
        s.req(Method::DELETE, &format!("/v1/admin-tokens/{token_id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A refused transition is recorded as a failure.
    let res = s
        .req(Method::POST, &format!("/v1/agents/{id}/resume"))
        .json(&json!({"reason": "no"}))
        .send()
        .await;
    assert_eq!(res.unwrap().status(), 409);

    let events = all_events(&s).await;
    let new: Vec<&Value> = events.iter().filter(|e| e["seq"].as_i64().unwrap() > start).collect();
    let actions: Vec<(&str, &str)> = new
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        actions,
        [
            ("tenant.create", "success"),
            ("admin_token.create", "success"),
            ("agent.create", "success"),
            ("agent.activate", "success"),
            ("agent.update", "success"),
            ("admin_token.revoke", "success"),
            ("agent.resume", "failure"),
        ]
    );
    let activate = new[3];
    assert_eq!(activate["target_id"], id);
    assert_eq!(activate["reason"], "CHG-7");
    assert_eq!(activate["request_id"], "req-activate-1");
    assert_eq!(activate["actor"]["kind"], "admin_token");
    assert_eq!(activate["actor"]["name"], "bootstrap");
    assert_eq!(new[1]["request_id"], "req-token-1");
    assert!(events.iter().all(|e| e["time"].as_str().unwrap().ends_with('Z')));
    // Never a secret: neither the new token nor the bootstrap token.
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&secret));
    assert!(!all.contains(&s.token));
    assert!(!all.contains(&secret[6..20]));
    assert_eq!(verify(&events), head(&s).await);
}

async fn a_failing_audit_write_fails_the_operation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "kept").await;
    let id = a["id"].as_str().unwrap().to_owned();
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&s.database.url).await.unwrap();
    let (install, remove): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit disk full'); END",
            ],
            &["DROP TRIGGER no_audit"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit disk full'; END $$",
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION no_audit()",
            ],
            &["DROP TRIGGER no_audit ON audit_events", "DROP FUNCTION no_audit()"],
        ),
    };
    for sql in install {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let head_before = head(&s).await;

    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "lost", "owner": "o", "purpose": "p"}))
        .send();
    let p = problem(res.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(p["type"], "urn:idv:problem:unavailable");
    assert!(
        !p["detail"].as_str().unwrap().contains("audit disk full"),
        "internals leaked: {p}"
    );
    let res = s
        .req(Method::POST, &format!("/v1/agents/{id}/activate"))
        .json(&json!({"reason": "r"}))
        .send();
    problem(res.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE).await;
    let res = s
        .req(Method::POST, "/v1/tenants")
        .json(&json!({"name": "ghost"}))
        .send();
    problem(res.await.unwrap(), StatusCode::SERVICE_UNAVAILABLE).await;

    for sql in remove {
        sqlx::query(sql).execute(&mut conn).await.unwrap();
    }
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE name = 'lost'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the agent was created without its audit event");
    let tenants: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE name = 'ghost'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(tenants, 0);
    conn.close().await.unwrap();
    let v: Value = s
        .req(Method::GET, &format!("/v1/agents/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "provisioning");
    assert_eq!(v["version"], 1);
    assert_eq!(head(&s).await, head_before);
    // And the store recovers once the audit log can be written again.
    create_agent(&s, &s.token, "after").await;
    assert_eq!(agent_count(&s).await, 2);
    assert_eq!(verify(&all_events(&s).await), head(&s).await);
}

async fn concurrent_writes_share_commits_and_chain(backend: Backend) {
    let s = TestServer::start(backend).await;
    let before = head(&s).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let req = s
            .req(Method::POST, "/v1/agents")
            .json(&json!({"name": format!("c-{i}"), "owner": "o", "purpose": "p"}));
        tasks.push(tokio::spawn(async move { req.send().await.unwrap().status() }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(agent_count(&s).await, 200);
    let events = all_events(&s).await;
    assert_eq!(head(&s).await, before + 200);
    assert_eq!(verify(&events), before + 200);
    let metrics = s
        .http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .parse()
            .unwrap()
    };
    let (batches, units) = (value("idv_audit_batches_total"), value("idv_audit_units_total"));
    eprintln!("group commit: {units} units in {batches} commits");
    assert!(batches < units, "no group commit: {batches} batches for {units} units");
}
