//! HTTP integration tests: the real server in-process on 127.0.0.1:0, over
//! SQLite always and PostgreSQL when `IDV_TEST_POSTGRES_URL` is set.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod agents;
mod audit;
mod errors;
mod isolation;
mod ops;

use idv_testkit::TestServer;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

/// Asserts `res` is problem+json with `status` and returns the body.
pub async fn problem(res: Response, status: StatusCode) -> Value {
    assert_eq!(res.status(), status, "unexpected status");
    let ctype = res.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
    assert_eq!(ctype, "application/problem+json");
    let body: Value = res.json().await.unwrap();
    assert!(body["type"].as_str().unwrap().starts_with("urn:idv:problem:"), "{body}");
    assert!(!body["detail"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(body["status"], status.as_u16());
    body
}

/// Creates an agent with `token` and returns it.
pub async fn create_agent(s: &TestServer, token: &str, name: &str) -> Value {
    let res = s
        .req_as(token, Method::POST, "/v1/agents")
        .json(&json!({"name": name, "owner": "alice@bank.example", "purpose": "testing"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    res.json().await.unwrap()
}

/// Creates tenant `tenant` (if needed) and a token with `role` in it; returns
/// `(token, token id)`.
pub async fn tenant_token(s: &TestServer, tenant: &str, role: &str) -> (String, String) {
    let res = s
        .req(Method::POST, "/v1/tenants")
        .json(&json!({"name": tenant}))
        .send()
        .await
        .unwrap();
    assert!(res.status() == 201 || res.status() == 409, "{}", res.status());
    let res = s
        .req(Method::POST, "/v1/admin-tokens")
        .header("x-idv-tenant", tenant)
        .json(&json!({"name": format!("{role}-{}", rand_suffix()), "role": role}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["admin_token"]["id"].as_str().unwrap().to_owned(),
    )
}

fn rand_suffix() -> u32 {
    rand::random::<u32>()
}

/// The chain head seq (platform token).
pub async fn head(s: &TestServer) -> i64 {
    let v: Value = s
        .req(Method::GET, "/v1/audit/head")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["seq"].as_i64().unwrap()
}

/// Every audit event of the whole chain (platform token).
pub async fn all_events(s: &TestServer) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let page: Value = s
            .req(
                Method::GET,
                &format!("/v1/audit/events?all_tenants=true&limit=1000&cursor={cursor}"),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = page["items"].as_array().unwrap().clone();
        out.extend(items);
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = c.parse().unwrap(),
            None => return out,
        }
    }
}

/// Number of agents in the default tenant.
pub async fn agent_count(s: &TestServer) -> usize {
    let page: Value = s
        .req(Method::GET, "/v1/agents?limit=10000")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"].as_array().unwrap().len()
}
