//! Failed authentication is bounded: past a budget per source address and
//! per claimed client id the caller gets 429 with `Retry-After`, refusals
//! are counted into one audit event per window instead of one each, and a
//! legitimate client keeps getting tokens all along.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::oauth::client;
use crate::{all_events, head};

backend_tests!(
    a_flood_of_failed_client_authentications_is_bounded,
    failed_admin_token_checks_are_bounded,
);

/// The serialized size of every event after `seq`.
async fn bytes_after(s: &TestServer, seq: i64) -> (usize, Vec<Value>) {
    let events: Vec<Value> = all_events(s)
        .await
        .into_iter()
        .filter(|e| e["seq"].as_i64().unwrap() > seq)
        .collect();
    let size = events.iter().map(|e| e.to_string().len()).sum();
    (size, events)
}

async fn a_flood_of_failed_client_authentications_is_bounded(backend: Backend) {
    let s = TestServer::start(backend).await;
    let good = client(&s, &s.token, "legit-bot").await;
    let before = head(&s).await;
    const FLOOD: usize = 10_000;
    let (too_many, unauthorized, good_ok) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (http, url) = (s.http.clone(), s.url("/oauth2/token"));
        let (too_many, unauthorized) = (too_many.clone(), unauthorized.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..FLOOD / 16 {
                let id = uuid::Uuid::from_u128(rand::random()).to_string();
                let res = http
                    .post(&url)
                    .basic_auth(&id, Some(idv_core::credential::CLIENT_SECRET.generate()))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                match res.status() {
                    StatusCode::TOO_MANY_REQUESTS => {
                        let wait: u64 = res.headers()["retry-after"].to_str().unwrap().parse().unwrap();
                        assert!((1..=3600).contains(&wait), "{wait}");
                        let body: Value = res.json().await.unwrap();
                        assert_eq!(body["error"], "invalid_client", "{body}");
                        too_many.fetch_add(1, Ordering::Relaxed);
                    }
                    StatusCode::UNAUTHORIZED => {
                        unauthorized.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("task {t}: unexpected {other}"),
                }
            }
        }));
    }
    // Meanwhile, from the same address, the legitimate client is served.
    let legit = {
        let (http, url, good_ok) = (s.http.clone(), s.url("/oauth2/token"), good_ok.clone());
        let (id, secret) = (good.id.clone(), good.secret.clone());
        tokio::spawn(async move {
            for _ in 0..50 {
                let res = http
                    .post(&url)
                    .basic_auth(&id, Some(&secret))
                    .form(&[("grant_type", "client_credentials")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), StatusCode::OK);
                good_ok.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    for t in tasks {
        t.await.unwrap();
    }
    legit.await.unwrap();
    let (too_many, unauthorized) = (too_many.load(Ordering::Relaxed), unauthorized.load(Ordering::Relaxed));
    assert_eq!(too_many + unauthorized, FLOOD);
    assert!(too_many > FLOOD * 9 / 10, "mostly 429: {too_many} of {FLOOD}");
    assert_eq!(good_ok.load(Ordering::Relaxed), 50);

    // Counted refusals are written at least at shutdown: after a restart
    // every failure is on the record, one by one or counted.
    let s = s.restart(backend).await.unwrap();
    let (size, events) = bytes_after(&s, before).await;
    assert!(size < 1_000_000, "the flood grew the audit trail by {size} bytes");
    let failures: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "token.issue" && e["outcome"] == "denied")
        .collect();
    let counted: u64 = failures
        .iter()
        .map(|e| e["details"]["count"].as_u64().unwrap_or(1))
        .sum();
    assert_eq!(counted, FLOOD as u64, "every failure is on the record");
    let aggregated: Vec<&&Value> = failures.iter().filter(|e| e["details"]["aggregated"] == true).collect();
    assert!(!aggregated.is_empty());
    for e in aggregated {
        assert_eq!(e["details"]["source"], "127.0.0.1", "{e}");
        assert_eq!(e["details"]["error"], "invalid_client", "{e}");
        assert!(e["details"]["claimed_ids"].as_array().unwrap().len() <= 5);
    }
    assert!(events.len() < 500, "{} events for {FLOOD} failures", events.len());
}

async fn failed_admin_token_checks_are_bounded(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut codes = Vec::new();
    for _ in 0..40 {
        let bad = idv_core::admin_token::generate();
        let res = s.req_as(&bad, Method::GET, "/v1/agents").send().await.unwrap();
        let status = res.status();
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert!(res.headers().contains_key("retry-after"));
            let p = crate::problem(res, StatusCode::TOO_MANY_REQUESTS).await;
            assert_eq!(p["type"], "urn:idv:problem:too-many-failures");
        }
        codes.push(status);
    }
    // The budget of one address: 20, then 429.
    assert!(codes[..20].iter().all(|c| *c == StatusCode::UNAUTHORIZED), "{codes:?}");
    assert!(
        codes[20..].iter().all(|c| *c == StatusCode::TOO_MANY_REQUESTS),
        "{codes:?}"
    );
    // The right token is still served from the same address.
    let res = s.req(Method::GET, "/v1/agents").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let before = head(&s).await;
    let s = s.restart(backend).await.unwrap();
    let (_, events) = bytes_after(&s, before).await;
    let counted: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "admin_token.authenticate")
        .collect();
    assert_eq!(counted.len(), 1, "{counted:?}");
    assert_eq!(counted[0]["details"]["count"], 20);
    assert_eq!(counted[0]["outcome"], "denied");
}
