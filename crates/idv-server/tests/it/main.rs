//! HTTP integration tests: the real server in-process on 127.0.0.1:0, over
//! SQLite always and PostgreSQL when `IDV_TEST_POSTGRES_URL` is set. Every
//! test is an `async fn name(Backend)` listed in its module's
//! `backend_tests!`, so it runs once per backend.
//!
//! Tests marked `#[ignore = "bug: …"]` pin down a server bug: they assert the
//! documented behaviour and fail today.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests: a failed expectation is a failed test"
)]

mod access_requests;
mod agents;
mod approvals;
mod audit;
mod authz;
mod authzen;
mod concurrency;
mod connections;
mod console;
mod delegation;
mod documents;
mod durability;
mod errors;
mod isolation;
mod jobs;
mod keys;
mod leases;
mod lifecycle;
mod oauth;
mod ops;
mod rotation;
mod tenants;
mod throttle;
mod tokens;
mod ttl;
mod webhooks;

use std::time::Duration;

use idv_core::audit::{Break, Event, Verifier};
use idv_testkit::{Backend, TestServer};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection as _;

/// Asserts `res` is an RFC 9457 problem with `status` and returns the body:
/// `application/problem+json`, a `type` under `urn:idv:problem:`, a
/// non-empty `detail`, and `status` repeated in the body.
pub async fn problem(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let ctype = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    assert_eq!(ctype, "application/problem+json", "body: {text}");
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    assert!(body["type"].as_str().unwrap().starts_with("urn:idv:problem:"), "{body}");
    assert!(!body["detail"].as_str().unwrap().trim().is_empty(), "{body}");
    assert!(!body["title"].as_str().unwrap().is_empty(), "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

/// Asserts `res` has `status` and returns its JSON body.
pub async fn json_ok(res: Response, status: StatusCode) -> Value {
    let got = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// GET `path` with `token`, expecting 200; the JSON body.
pub async fn get_as(s: &TestServer, token: &str, path: &str) -> Value {
    json_ok(s.req_as(token, Method::GET, path).send().await.unwrap(), StatusCode::OK).await
}

/// GET `path` with the bootstrap token, expecting 200; the JSON body.
pub async fn get(s: &TestServer, path: &str) -> Value {
    get_as(s, &s.token, path).await
}

/// A random id that names no record.
pub fn ghost_id() -> String {
    uuid::Uuid::from_u128(rand::random::<u128>()).to_string()
}

/// A minimal valid agent body.
pub fn agent_body(name: &str) -> Value {
    json!({"name": name, "owner": "alice@bank.example", "purpose": "testing"})
}

/// Creates an agent with `token` and returns it.
pub async fn create_agent(s: &TestServer, token: &str, name: &str) -> Value {
    let res = s
        .req_as(token, Method::POST, "/v1/agents")
        .json(&agent_body(name))
        .send()
        .await
        .unwrap();
    json_ok(res, StatusCode::CREATED).await
}

/// POSTs a lifecycle transition as `token`.
pub async fn transition(s: &TestServer, token: &str, id: &str, verb: &str, reason: &str) -> Response {
    s.req_as(token, Method::POST, &format!("/v1/agents/{id}/{verb}"))
        .json(&json!({"reason": reason}))
        .send()
        .await
        .unwrap()
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
    assert!(
        res.status() == StatusCode::CREATED || res.status() == StatusCode::CONFLICT,
        "{}",
        res.status()
    );
    named_token(s, tenant, role, &format!("{role}-{}", rand::random::<u32>())).await
}

/// Creates a token called `name` with `role` in existing tenant `tenant`
/// (bootstrap platform token acting there); returns `(token, token id)`.
pub async fn named_token(s: &TestServer, tenant: &str, role: &str, name: &str) -> (String, String) {
    let res = s
        .req(Method::POST, "/v1/admin-tokens")
        .header("x-idv-tenant", tenant)
        .json(&json!({"name": name, "role": role}))
        .send()
        .await
        .unwrap();
    let body = json_ok(res, StatusCode::CREATED).await;
    (
        body["token"].as_str().unwrap().to_owned(),
        body["admin_token"]["id"].as_str().unwrap().to_owned(),
    )
}

/// The chain head seq (platform token).
pub async fn head(s: &TestServer) -> i64 {
    get(s, "/v1/audit/head").await["seq"].as_i64().unwrap()
}

/// Every audit event of the whole chain (platform token, `all_tenants`).
pub async fn all_events(s: &TestServer) -> Vec<Value> {
    events_as(s, &s.token, "all_tenants=true").await
}

/// Every audit event `token` sees with query `q`, following `next_cursor`.
pub async fn events_as(s: &TestServer, token: &str, q: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor = 0;
    loop {
        let sep = if q.is_empty() { "" } else { "&" };
        let page = get_as(
            s,
            token,
            &format!("/v1/audit/events?{q}{sep}limit=1000&cursor={cursor}"),
        )
        .await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = c.parse().unwrap(),
            None => return out,
        }
    }
}

/// Events after `seq` (whole chain).
pub async fn events_after(s: &TestServer, seq: i64) -> Vec<Value> {
    all_events(s)
        .await
        .into_iter()
        .filter(|e| e["seq"].as_i64().unwrap() > seq)
        .collect()
}

/// Every agent `token` can list, following `next_cursor`.
pub async fn all_agents_as(s: &TestServer, token: &str, q: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/v1/agents?limit=1000{}{q}", if q.is_empty() { "" } else { "&" });
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let page = get_as(s, token, &path).await;
        out.extend(page["items"].as_array().unwrap().iter().cloned());
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_owned()),
            None => return out,
        }
    }
}

/// Number of agents in the default tenant (all pages).
pub async fn agent_count(s: &TestServer) -> usize {
    all_agents_as(s, &s.token, "").await.len()
}

/// Verifies a chain as served by the API, from seq 1: the head seq, or the
/// first break.
pub fn verify(events: &[Value]) -> Result<i64, Break> {
    let mut v = Verifier::default();
    for e in events {
        let ev: Event = serde_json::from_value(e.clone()).unwrap();
        v.push(&ev)?;
    }
    Ok(v.head().seq)
}

/// A direct database connection (same URL as the server's).
pub async fn db(url: &str) -> sqlx::AnyConnection {
    sqlx::any::install_default_drivers();
    sqlx::AnyConnection::connect(url).await.unwrap()
}

/// Runs one statement directly on the database.
pub async fn exec(conn: &mut sqlx::AnyConnection, sql: &str) -> u64 {
    sqlx::query(sql)
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .rows_affected()
}

/// One `COUNT(*)`-like scalar straight from the database.
pub async fn scalar(conn: &mut sqlx::AnyConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Polls `check` every 20 ms for up to 5 s of real time.
pub async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_within(what, 5, check).await;
}

/// Polls `check` every 20 ms for up to `secs` seconds of real time.
pub async fn eventually_within<F, Fut>(what: &str, secs: u64, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..secs * 50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A server with a manual clock.
pub async fn start_manual(backend: Backend) -> TestServer {
    TestServer::start_with(
        backend,
        idv_testkit::Options {
            clock: Some(TestServer::manual_clock()),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// Sends a raw HTTP/1.1 request (for what `reqwest` will not send, such as a
/// chunked body) and returns the status, the lower-cased headers and the body.
pub async fn raw(s: &TestServer, request: &[u8]) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = s.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer before it has read the whole body; ignore write errors.
    let _ = stream.write_all(request).await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The server's `/metrics` text.
pub async fn metrics_text(s: &TestServer) -> String {
    s.http
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}
