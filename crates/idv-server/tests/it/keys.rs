//! Signing key rotation over real HTTP, with the test clock: the next key is
//! published in the JWKS before any token carries its `kid`, takes over at
//! its activation, and the retired key stays published (and its tokens
//! active) until every token it signed has expired; manual and emergency
//! rotation; a compromised key leaves at once; two nodes agree.

use std::time::Duration;

use idv_core::Timestamp;
use idv_core::jose;
use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::oauth::{Client, access_token, active, client, verify_with_jwks};
use crate::{all_events, db, eventually, get, get_as, json_ok, problem, scalar, start_manual, tenant_token};

backend_tests!(
    scheduled_rotation_publishes_ahead_and_retires_after_the_last_token,
    manual_emergency_and_compromise_rotation,
    two_nodes_follow_one_ring_and_one_job,
);

const DAY: i64 = 24 * 3600;
/// A retired key stays published this long: the longest token lifetime
/// (1 h), the verification leeway (30 s) and the ring's max age (30 s).
const PUBLISH_AFTER: i64 = 3600 + 30 + 30;

fn kid(t: &str) -> String {
    jose::decode(t).unwrap().header.kid.unwrap()
}

async fn jwks_kids(s: &TestServer) -> Vec<String> {
    let res = s.http.get(s.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A tenth of the one-hour publication lead, at most five minutes.
    assert_eq!(res.headers()["cache-control"], "public, max-age=300");
    let body: Value = res.json().await.unwrap();
    body["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "no private material: {k}");
            k["kid"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// The tenant's keys as `(kid, state)`, and the whole list.
async fn keys(s: &TestServer) -> (Vec<(String, String)>, Vec<Value>) {
    let body = get(s, "/v1/keys").await;
    let items = body["items"].as_array().unwrap().clone();
    let text = serde_json::to_string(&items).unwrap();
    assert!(!text.contains("sealed") && !text.contains("\"d\""), "{text}");
    let pairs = items
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().unwrap().to_owned(),
                k["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    (pairs, items)
}

fn ts(v: &Value) -> Timestamp {
    Timestamp::parse(v.as_str().unwrap()).unwrap()
}

fn key_events(events: &[Value], action: &str) -> Vec<Value> {
    events.iter().filter(|e| e["action"] == action).cloned().collect()
}

async fn rotate(s: &TestServer, token: &str, body: Value) -> reqwest::Response {
    s.req_as(token, Method::POST, "/v1/keys/rotate")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn scheduled_rotation_publishes_ahead_and_retires_after_the_last_token(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let c: Client = client(&s, &s.token, "rotating").await;
    // The longest lifetime there is, to see the retired key outlive it.
    json_ok(
        s.req(Method::PUT, "/v1/token-ttls/*")
            .json(&json!({"ttl": "1h"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let t1 = access_token(&s, &c).await;
    let k1 = kid(&t1);
    assert_eq!(jwks_kids(&s).await, vec![k1.clone()]);
    let (list, items) = keys(&s).await;
    assert_eq!(list, vec![(k1.clone(), "current".to_owned())]);
    let activated = ts(&items[0]["activates_at"]);

    // Nothing before the publication is due (30 days less the 1 h lead).
    clock.advance_secs(30 * DAY - 3600 - 10);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(jwks_kids(&s).await, vec![k1.clone()]);

    // Then the next key is published, and does not sign yet.
    clock.advance_secs(10);
    eventually("the next key is published", || async { jwks_kids(&s).await.len() == 2 }).await;
    let (list, items) = keys(&s).await;
    let k2 = list[1].0.clone();
    assert_eq!(list, vec![(k1.clone(), "current".into()), (k2.clone(), "next".into())]);
    let takes_over = ts(&items[1]["activates_at"]);
    assert_eq!(takes_over, activated.plus_secs(30 * DAY));
    assert_eq!(
        jwks_kids(&s).await,
        vec![k1.clone(), k2.clone()],
        "published before any token carries its kid"
    );
    let created = key_events(&all_events(&s).await, "signing_key.create");
    assert_eq!(created.len(), 2);
    assert_eq!(created[1]["target_id"], k2.as_str());
    assert_eq!(created[1]["actor"]["name"], "jobs");
    assert_eq!(created[1]["details"]["cause"], "schedule");

    // A minute before the takeover the old key still signs (an hour-long token).
    let until_takeover = (takes_over.as_micros() - clock_now(&s).as_micros()) / 1_000_000;
    clock.advance_secs(until_takeover - 60);
    let t2 = access_token(&s, &c).await;
    assert_eq!(kid(&t2), k1);

    // At the takeover the new key signs on this node at once (by time).
    clock.advance_secs(60);
    let t3 = access_token(&s, &c).await;
    assert_eq!(kid(&t3), k2, "the next key signs from its activation");
    verify_with_jwks(&s, "/.well-known/jwks.json", &t3).await;
    // The job records it: k2 activated, k1 retired until its last token expires.
    eventually("the takeover is recorded", || async {
        key_events(&all_events(&s).await, "signing_key.retire").len() == 1
    })
    .await;
    let events = all_events(&s).await;
    let retire = &key_events(&events, "signing_key.retire")[0];
    assert_eq!(retire["target_id"], k1.as_str());
    assert_eq!(ts(&retire["details"]["retired_at"]), takes_over);
    let publish_until = takes_over.plus_secs(PUBLISH_AFTER);
    assert_eq!(ts(&retire["details"]["publish_until"]), publish_until);
    let activate = &key_events(&events, "signing_key.activate")[0];
    assert_eq!(activate["target_id"], k2.as_str());
    assert_eq!(activate["details"]["predecessor"], k1.as_str());
    let (list, _) = keys(&s).await;
    assert_eq!(
        list,
        vec![(k1.clone(), "retired".into()), (k2.clone(), "current".into())]
    );

    // The old key's hour-long token verifies until it expires.
    clock.advance_secs(3600 - 120);
    assert!(active(&s, &t2).await, "a token of the retired key stays active");
    verify_with_jwks(&s, "/.well-known/jwks.json", &t2).await;
    clock.advance_secs(120);
    assert!(!active(&s, &t2).await, "expired");

    // The retired key leaves the JWKS at `publish_until`, not before.
    let left = (publish_until.as_micros() - clock_now(&s).as_micros()) / 1_000_000;
    clock.advance_secs(left - 1);
    assert_eq!(jwks_kids(&s).await, vec![k1.clone(), k2.clone()]);
    clock.advance_secs(1);
    assert_eq!(jwks_kids(&s).await, vec![k2.clone()]);
    eventually("the removal is recorded", || async {
        key_events(&all_events(&s).await, "signing_key.remove").len() == 1
    })
    .await;
    let (list, items) = keys(&s).await;
    assert_eq!(
        list,
        vec![(k1.clone(), "removed".into()), (k2.clone(), "current".into())]
    );
    assert_eq!(ts(&items[0]["removed_at"]), publish_until);
    // The row stays for audit; its private half is gone.
    let mut conn = db(&s.database.url).await;
    let sealed = scalar(
        &mut conn,
        &format!("SELECT COUNT(*) FROM signing_keys WHERE id = '{k1}' AND LENGTH(sealed_private) = 0"),
    )
    .await;
    assert_eq!(sealed, 1);
    // No private material in any event.
    let text = serde_json::to_string(&all_events(&s).await).unwrap();
    assert!(!text.contains("sealed") && !text.contains("\"d\":"), "{text}");
    // Exactly one job for the tenant, due at the next publication.
    let jobs = scalar(&mut conn, "SELECT COUNT(*) FROM jobs WHERE kind = 'keys.rotate'").await;
    assert_eq!(jobs, 1);
}

fn clock_now(s: &TestServer) -> Timestamp {
    use idv_core::Clock as _;
    s.clock.as_ref().unwrap().now()
}

async fn manual_emergency_and_compromise_rotation(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let c = client(&s, &s.token, "manual").await;
    let t1 = access_token(&s, &c).await;
    let k1 = kid(&t1);

    // Roles: an operator may neither rotate nor…; an auditor may list.
    let (operator, _) = tenant_token(&s, "default", "operator").await;
    problem(rotate(&s, &operator, json!({})).await, StatusCode::FORBIDDEN).await;
    let (auditor, _) = tenant_token(&s, "default", "auditor").await;
    assert_eq!(
        get_as(&s, &auditor, "/v1/keys").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Bad requests.
    let p = problem(
        rotate(&s, &s.token, json!({"publish_ahead": "10s"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["field"], "publish_ahead");
    let p = problem(
        rotate(&s, &s.token, json!({"publish_ahead": "1h", "immediate": true})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["field"], "publish_ahead");
    problem(rotate(&s, &s.token, json!({"bogus": 1})).await, StatusCode::BAD_REQUEST).await;

    // Ahead (the server's 1 h lead by default): published now, signs later.
    let r = json_ok(
        rotate(&s, &s.token, json!({"reason": "quarterly"})).await,
        StatusCode::CREATED,
    )
    .await;
    let k2 = r["created"].as_str().unwrap().to_owned();
    let k2_view = r["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == k2.as_str())
        .unwrap()
        .clone();
    assert_eq!(k2_view["state"], "next");
    assert_eq!(ts(&k2_view["activates_at"]), ts(&k2_view["created_at"]).plus_secs(3600));
    assert_eq!(jwks_kids(&s).await, vec![k1.clone(), k2.clone()]);
    assert_eq!(kid(&access_token(&s, &c).await), k1);
    // A second one while it waits is a conflict (audited).
    let p = problem(rotate(&s, &s.token, json!({})).await, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().unwrap().contains(&k2), "{p}");

    // Emergency: a new key signs at once; the old one stays published for
    // its tokens; the waiting one, which never signed, leaves at once.
    clock.advance_secs(60);
    let r = json_ok(
        rotate(&s, &s.token, json!({"immediate": true, "reason": "drill"})).await,
        StatusCode::CREATED,
    )
    .await;
    let k3 = r["created"].as_str().unwrap().to_owned();
    let (list, _) = keys(&s).await;
    assert_eq!(
        list,
        vec![
            (k1.clone(), "retired".into()),
            (k2.clone(), "removed".into()),
            (k3.clone(), "current".into())
        ]
    );
    let t3 = access_token(&s, &c).await;
    assert_eq!(kid(&t3), k3);
    assert!(active(&s, &t1).await, "the retired key's token still verifies");
    assert_eq!(jwks_kids(&s).await, vec![k1.clone(), k3.clone()]);

    // Compromise: k3 leaves the JWKS now and its tokens stop verifying;
    // k1 (retired before) is kept until its tokens expire.
    let r = json_ok(
        rotate(&s, &s.token, json!({"revoke_old": true, "reason": "key leaked"})).await,
        StatusCode::CREATED,
    )
    .await;
    let k4 = r["created"].as_str().unwrap().to_owned();
    assert_eq!(jwks_kids(&s).await, vec![k1.clone(), k4.clone()]);
    assert!(!active(&s, &t3).await, "a revoked key's tokens are not active");
    assert!(active(&s, &t1).await);
    assert_eq!(kid(&access_token(&s, &c).await), k4);

    let events = all_events(&s).await;
    let removes = key_events(&events, "signing_key.remove");
    assert_eq!(removes.len(), 2);
    assert_eq!(removes[0]["target_id"], k2.as_str());
    assert_eq!(removes[0]["details"]["revoked"], false);
    assert_eq!(removes[1]["target_id"], k3.as_str());
    assert_eq!(removes[1]["details"]["revoked"], true);
    assert_eq!(removes[1]["details"]["reason"], "key leaked");
    assert_eq!(removes[1]["details"]["cause"], "compromise");
    assert_eq!(removes[1]["actor"]["kind"], "admin_token");
    let refused: Vec<&Value> = events.iter().filter(|e| e["action"] == "signing_key.rotate").collect();
    assert_eq!(refused.len(), 2, "the 403 and the 409");
    assert!(refused.iter().any(|e| e["outcome"] == "denied"));
    assert!(refused.iter().any(|e| e["outcome"] == "failure"));
}

async fn two_nodes_follow_one_ring_and_one_job(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: one SQLite file is served by one node");
        return;
    }
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let n2 = s.second_node().await.unwrap();
    let c = client(&s, &s.token, "two-nodes").await;
    let k1 = kid(&access_token(&s, &c).await);
    assert_eq!(kid(&access_token(&n2, &c).await), k1);

    // An emergency rotation on node 1 reaches node 2 through LISTEN/NOTIFY,
    // without time passing (the ring's max age is not what brings it).
    let r = json_ok(
        rotate(&s, &s.token, json!({"immediate": true})).await,
        StatusCode::CREATED,
    )
    .await;
    let k2 = r["created"].as_str().unwrap().to_owned();
    eventually("node 2 signs with the new key", || async {
        kid(&access_token(&n2, &c).await) == k2
    })
    .await;

    // The scheduled publication: both nodes run jobs; it happens once, and
    // both nodes publish the next key before it signs, then sign with it.
    // (k1, retired by the emergency rotation, has left the JWKS by then.)
    clock.advance_secs(30 * DAY - 3600);
    eventually("both nodes publish the next key", || async {
        let (a, b) = (jwks_kids(&s).await, jwks_kids(&n2).await);
        a.len() == 2 && a.first() == Some(&k2) && a == b
    })
    .await;
    let (list, _) = keys(&n2).await;
    let k3 = list.last().unwrap().0.clone();
    assert_eq!(list.last().unwrap().1, "next");
    assert_eq!(kid(&access_token(&n2, &c).await), k2);
    clock.advance_secs(3600);
    assert_eq!(kid(&access_token(&s, &c).await), k3);
    assert_eq!(kid(&access_token(&n2, &c).await), k3);
    eventually("the takeover is recorded once", || async {
        key_events(&all_events(&s).await, "signing_key.activate")
            .iter()
            .any(|e| e["target_id"] == k3.as_str())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = all_events(&s).await;
    let scheduled: Vec<Value> = key_events(&events, "signing_key.create")
        .into_iter()
        .filter(|e| e["details"]["cause"] == "schedule")
        .collect();
    assert_eq!(scheduled.len(), 1, "one node published the next key");
    let activations = key_events(&events, "signing_key.activate")
        .into_iter()
        .filter(|e| e["target_id"] == k3.as_str())
        .count();
    assert_eq!(activations, 1, "one node recorded the takeover");
    let mut conn = db(&s.database.url).await;
    assert_eq!(scalar(&mut conn, "SELECT COUNT(*) FROM signing_keys").await, 3);
    assert_eq!(
        scalar(&mut conn, "SELECT COUNT(*) FROM jobs WHERE kind = 'keys.rotate'").await,
        1
    );
    n2.stop().await;
}
