//! Outbound webhooks against a real HTTP receiver on loopback that checks
//! every Standard Webhooks signature with the secret shown once: events
//! arrive signed and filtered, a failing endpoint is retried by schedule and
//! then disabled (and an event says so), tenants never see each other's
//! events, and the secret is never shown again or recorded.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use idv_core::webhook::RETRY_SCHEDULE_SECS;
use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    all_events, create_agent, eventually, get, get_as, json_ok, problem, start_manual, tenant_token, transition,
};

backend_tests!(
    events_arrive_signed_and_filtered,
    a_failing_endpoint_is_retried_then_disabled,
    tenants_are_isolated_and_input_is_checked,
    subscriptions_change_and_secrets_rotate,
    settled_deliveries_are_pruned_after_their_retention,
    concurrent_rotations_return_only_secrets_in_effect,
    a_burst_of_events_is_delivered_within_seconds,
    role_changes_are_published,
);

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    ts: String,
    sig: String,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
    fn kind(&self) -> String {
        self.json()["type"].as_str().unwrap().to_owned()
    }
}

/// A webhook receiver on 127.0.0.1: records every request, answers
/// `status`.
#[derive(Clone, Debug)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Got>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let r = Receiver {
            url: String::new(),
            got: Arc::default(),
            status: Arc::new(AtomicU16::new(status)),
        };
        async fn hook(State(r): State<Receiver>, headers: HeaderMap, body: String) -> axum::http::StatusCode {
            let h = |n: &str| {
                headers
                    .get(n)
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default()
            };
            assert_eq!(h("content-type"), "application/json");
            r.got.lock().unwrap().push(Got {
                id: h("webhook-id"),
                ts: h("webhook-timestamp"),
                sig: h("webhook-signature"),
                body,
            });
            axum::http::StatusCode::from_u16(r.status.load(Ordering::SeqCst)).unwrap()
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook?token=receiver-own", listener.local_addr().unwrap());
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { url, ..r }
    }

    fn all(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    fn of(&self, kind: &str) -> Vec<Got> {
        self.all().into_iter().filter(|g| g.kind() == kind).collect()
    }

    fn kinds(&self) -> Vec<String> {
        self.all().iter().map(Got::kind).collect()
    }
}

/// Whether one `v1` signature of the request verifies with `secret`,
/// computed here independently of the server's code.
fn signed_by(secret: &str, g: &Got) -> bool {
    let key = B64.decode(secret.strip_prefix("whsec_").unwrap()).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", g.id, g.ts, g.body).as_bytes());
    let want = format!("v1,{}", B64.encode(mac.finalize().into_bytes()));
    g.sig.split(' ').any(|s| s == want)
}

/// Subscribes `url` to `events` as `token`; the answer (secret included).
async fn subscribe(s: &TestServer, token: &str, url: &str, events: &[&str]) -> Value {
    let res = s
        .req_as(token, Method::POST, "/v1/webhooks")
        .json(&json!({ "url": url, "events": events, "description": "test receiver" }))
        .send()
        .await
        .unwrap();
    json_ok(res, StatusCode::CREATED).await
}

async fn patch(s: &TestServer, id: &str, body: Value) -> Value {
    let res = s
        .req(Method::PATCH, &format!("/v1/webhooks/{id}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    json_ok(res, StatusCode::OK).await
}

async fn deliveries(s: &TestServer, id: &str) -> Vec<Value> {
    get(s, &format!("/v1/webhooks/{id}/deliveries")).await["items"]
        .as_array()
        .unwrap()
        .clone()
}

fn now_secs(s: &TestServer) -> i64 {
    s.running.state.clock.now().as_micros() / 1_000_000
}

async fn events_arrive_signed_and_filtered(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = Receiver::start(200).await;
    let sub = subscribe(&s, &s.token, &r.url, &["agent.*", "credential.rotated"]).await;
    let secret = sub["secret"].as_str().unwrap().to_owned();
    let hook = sub["webhook"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 44, "{secret}");
    assert_eq!(sub["webhook"]["status"], "enabled");
    assert_eq!(sub["webhook"]["events"], json!(["agent.*", "credential.rotated"]));

    let agent = create_agent(&s, &s.token, "hooked").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(transition(&s, &s.token, &agent, "activate", "go").await.status(), 200);
    assert_eq!(
        transition(&s, &s.token, &agent, "suspend", "incident INC-1")
            .await
            .status(),
        200
    );
    let c = json_ok(
        s.req(Method::POST, &format!("/v1/agents/{agent}/credentials"))
            .json(&json!({ "type": "client_secret" }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let cred = c["credential"]["id"].as_str().unwrap().to_owned();
    let rotated = s
        .req(Method::POST, &format!("/v1/credentials/{cred}/rotate"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(rotated.status(), StatusCode::CREATED);

    let want = [
        "agent.created",
        "agent.activated",
        "agent.suspended",
        "credential.rotated",
    ];
    eventually("every selected event at the receiver", || async {
        want.iter().all(|k| r.of(k).len() == 1)
    })
    .await;
    // Not selected by the filter: the credential's issuance (twice: the
    // first and the successor), nor the subscription's own creation.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut kinds = r.kinds();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "agent.activated",
            "agent.created",
            "agent.suspended",
            "credential.rotated"
        ]
    );
    let tenant = get(&s, "/v1/tenants/default").await["id"].as_str().unwrap().to_owned();
    let mut ids = std::collections::BTreeSet::new();
    for g in r.all() {
        assert!(signed_by(&secret, &g), "bad signature on {g:?}");
        assert!(g.id.starts_with("msg_") && !g.id.contains('.'), "{}", g.id);
        assert!(ids.insert(g.id.clone()), "webhook-id repeated: {}", g.id);
        let ts: i64 = g.ts.parse().unwrap();
        assert!((now_secs(&s) - ts).abs() < 60, "timestamp {ts}");
        let body = g.json();
        assert_eq!(body["data"]["tenant_id"], tenant.as_str());
        assert!(idv_core::Timestamp::parse(body["timestamp"].as_str().unwrap()).is_ok());
        // The verifier in idv-core agrees.
        let sec = idv_core::webhook::Secret::parse(&secret).unwrap();
        idv_core::webhook::verify(&sec, &g.id, &g.ts, &g.sig, &g.body, s.running.state.clock.now()).unwrap();
    }
    let suspended = &r.of("agent.suspended")[0].json();
    assert_eq!(suspended["data"]["target"], json!({ "type": "agent", "id": agent }));
    assert_eq!(suspended["data"]["reason"], "incident INC-1");
    assert_eq!(suspended["data"]["details"]["to"], "suspended");
    let rot = &r.of("credential.rotated")[0].json();
    assert_eq!(rot["data"]["target"]["id"], cred.as_str());

    // The delivery log: each delivered on the first attempt.
    eventually("the log shows every delivery delivered", || async {
        let log = deliveries(&s, &hook).await;
        log.len() == 4 && log.iter().all(|d| d["status"] == "delivered")
    })
    .await;
    for d in deliveries(&s, &hook).await {
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["last_status_code"], 200);
        assert!(r.all().iter().any(|g| g.id == d["message_id"].as_str().unwrap()));
    }
    let filtered = get(&s, &format!("/v1/webhooks/{hook}/deliveries?status=pending")).await;
    assert_eq!(filtered["items"], json!([]));

    // A test event, on demand.
    let res = s
        .req(Method::POST, &format!("/v1/webhooks/{hook}/test"))
        .send()
        .await
        .unwrap();
    let t = json_ok(res, StatusCode::ACCEPTED).await;
    assert_eq!(t["event_type"], "webhook.test");
    eventually("the test event", || async { r.of("webhook.test").len() == 1 }).await;
    assert!(signed_by(&secret, &r.of("webhook.test")[0]));

    // Sent again: a new delivery (its own webhook-id) of the same payload.
    let res = s
        .req(
            Method::POST,
            &format!("/v1/webhooks/{hook}/deliveries/{}/redeliver", t["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    let again = json_ok(res, StatusCode::ACCEPTED).await;
    assert_ne!(again["id"], t["id"]);
    assert_eq!(again["event_type"], "webhook.test");
    eventually("the event sent again", || async { r.of("webhook.test").len() == 2 }).await;
    let both = r.of("webhook.test");
    assert_ne!(both[0].id, both[1].id);
    assert_eq!(
        both[0].body, both[1].body,
        "the same payload, de-duplicable by its event id"
    );
    assert!(signed_by(&secret, &both[1]));
    let redelivered = all_events(&s).await;
    let ev = redelivered.iter().find(|e| e["action"] == "webhook.redeliver").unwrap();
    assert_eq!(ev["details"]["of"], t["id"]);
    // A delivery of another subscription, or none, is not found.
    let res = s
        .req(
            Method::POST,
            &format!("/v1/webhooks/{hook}/deliveries/{}/redeliver", crate::ghost_id()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);

    // The secret is never shown again, and never recorded.
    let b64 = secret.trim_start_matches("whsec_");
    let one = get(&s, &format!("/v1/webhooks/{hook}")).await;
    let list = get(&s, "/v1/webhooks").await;
    assert_eq!(list["items"][0]["id"], hook.as_str());
    let events = all_events(&s).await;
    for text in [
        one.to_string(),
        list.to_string(),
        serde_json::to_string(&events).unwrap(),
    ] {
        assert!(!text.contains(b64), "the secret leaked: {text}");
    }
    // Nor is the endpoint's query (which may hold the receiver's token).
    let created = events.iter().find(|e| e["action"] == "webhook.create").unwrap();
    assert!(!created.to_string().contains("receiver-own"), "{created}");
    eventually("every delivery audited", || async {
        let n = all_events(&s)
            .await
            .iter()
            .filter(|e| e["action"] == "webhook.delivery.succeeded")
            .count();
        n == 6
    })
    .await;
}

async fn a_failing_endpoint_is_retried_then_disabled(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let bad = Receiver::start(500).await;
    let watch = Receiver::start(200).await;
    let failing = subscribe(&s, &s.token, &bad.url, &["agent.created"]).await;
    let secret = failing["secret"].as_str().unwrap().to_owned();
    let hook = failing["webhook"]["id"].as_str().unwrap().to_owned();
    let watcher = subscribe(&s, &s.token, &watch.url, &["webhook.*"]).await;

    create_agent(&s, &s.token, "unheard").await;
    eventually("the first attempt", || async { bad.all().len() == 1 }).await;
    eventually("the first failure on the log", || async {
        deliveries(&s, &hook).await.first().is_some_and(|d| d["attempts"] == 1)
    })
    .await;
    let d = &deliveries(&s, &hook).await[0];
    assert_eq!(d["status"], "pending");
    assert_eq!(d["last_status_code"], 500);
    assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
    let at = |k: &str| idv_core::Timestamp::parse(d[k].as_str().unwrap()).unwrap().as_micros();
    let wait = (at("next_attempt_at") - at("last_attempt_at")) / 1_000_000;
    assert!((5..=6).contains(&wait), "first retry after {wait} s");

    // Not before its time.
    clock.advance_secs(3);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(bad.all().len(), 1);
    clock.advance_secs(-3);
    // Every retry of the schedule (delay plus at most 10 % jitter), then
    // no more.
    for (i, delay) in RETRY_SCHEDULE_SECS.iter().enumerate() {
        let recorded = i64::try_from(i + 1).unwrap();
        eventually(&format!("attempt {} recorded", i + 1), || async {
            deliveries(&s, &hook).await[0]["attempts"] == recorded
        })
        .await;
        clock.advance_secs(delay + delay / 10 + 1);
        eventually(&format!("attempt {}", i + 2), || async { bad.all().len() == i + 2 }).await;
    }
    eventually("the subscription disabled", || async {
        get(&s, &format!("/v1/webhooks/{hook}")).await["status"] == "disabled"
    })
    .await;
    let w = get(&s, &format!("/v1/webhooks/{hook}")).await;
    assert!(w["disabled_reason"].as_str().unwrap().contains("attempts"), "{w}");
    assert_eq!(w["consecutive_failures"], 10);
    let d = &deliveries(&s, &hook).await[0];
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempts"], 10);
    // The same message every time, each attempt freshly signed.
    let attempts = bad.all();
    assert_eq!(attempts.len(), 10);
    assert!(
        attempts
            .iter()
            .all(|g| g.id == attempts[0].id && g.body == attempts[0].body)
    );
    assert!(attempts.iter().all(|g| signed_by(&secret, g)));
    assert!(attempts.windows(2).all(|p| p[0].ts < p[1].ts));

    let events = all_events(&s).await;
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "webhook.delivery.failed")
        .collect();
    assert_eq!(failed.len(), 10);
    assert!(failed.iter().all(|e| e["outcome"] == "failure"));
    assert_eq!(failed[9]["details"]["gave_up"], true);
    let disabled: Vec<&Value> = events.iter().filter(|e| e["action"] == "webhook.disabled").collect();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["target_id"], hook.as_str());
    assert_eq!(disabled[0]["actor"]["kind"], "system");
    // Another subscription hears of it.
    eventually("webhook.disabled at the other receiver", || async {
        watch.of("webhook.disabled").len() == 1
    })
    .await;
    let told = &watch.of("webhook.disabled")[0];
    assert!(signed_by(watcher["secret"].as_str().unwrap(), told));
    assert_eq!(told.json()["data"]["target"]["id"], hook.as_str());

    // While disabled nothing is sent; enabled again it resumes where it
    // stopped: what happened meanwhile arrives.
    create_agent(&s, &s.token, "while-disabled").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(bad.all().len(), 10);
    bad.status.store(204, Ordering::SeqCst);
    let w = patch(&s, &hook, json!({ "enabled": true })).await;
    assert_eq!(w["status"], "enabled");
    assert_eq!(w["consecutive_failures"], 0);
    assert_eq!(w["disabled_reason"], Value::Null);
    eventually("the event from while it was disabled", || async {
        bad.all().len() == 11
    })
    .await;
    let last = bad.all().pop().unwrap();
    assert_eq!(last.json()["data"]["details"]["name"], "while-disabled");
    assert!(signed_by(&secret, &last));
    eventually("recorded as delivered", || async {
        get(&s, &format!("/v1/webhooks/{hook}")).await["last_success_at"].is_string()
    })
    .await;
}

async fn tenants_are_isolated_and_input_is_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (acme, _) = tenant_token(&s, "acme", "admin").await;
    let (operator, _) = tenant_token(&s, "acme", "operator").await;
    let (auditor, _) = tenant_token(&s, "acme", "auditor").await;
    let ra = Receiver::start(200).await;
    let rd = Receiver::start(200).await;
    let a_hook = subscribe(&s, &acme, &ra.url, &["*"]).await["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d_hook = subscribe(&s, &s.token, &rd.url, &["agent.created"]).await["webhook"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let a_agent = create_agent(&s, &acme, "acme-bot").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d_agent = create_agent(&s, &s.token, "default-bot").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    eventually("each tenant's agent at its own receiver", || async {
        !ra.of("agent.created").is_empty() && !rd.of("agent.created").is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let acme_id = get_as(&s, &acme, "/v1/tenants/acme").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for g in ra.all() {
        assert_eq!(g.json()["data"]["tenant_id"], acme_id.as_str(), "{}", g.body);
        assert!(!g.body.contains(&d_agent), "{}", g.body);
    }
    assert!(ra.kinds().contains(&"webhook.created".to_owned()), "{:?}", ra.kinds());
    assert_eq!(rd.kinds(), vec!["agent.created"]);
    assert!(!rd.all()[0].body.contains(&a_agent));

    // Another tenant's subscription does not exist here.
    let res = s
        .req_as(&acme, Method::GET, &format!("/v1/webhooks/{d_hook}"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    let res = s
        .req_as(&acme, Method::GET, &format!("/v1/webhooks/{d_hook}/deliveries"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    let listed = get_as(&s, &acme, "/v1/webhooks").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert_eq!(listed["items"][0]["id"], a_hook.as_str());
    // Only admins manage subscriptions; auditors may read them.
    let res = s
        .req_as(&operator, Method::POST, "/v1/webhooks")
        .json(&json!({ "url": ra.url, "events": ["*"] }))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN).await;
    // …seeing only the URL's origin (a path can hold the receiver's token).
    let seen = get_as(&s, &auditor, "/v1/webhooks").await;
    let url = seen["items"][0]["url"].as_str().unwrap();
    assert!(ra.url.starts_with(url.trim_end_matches('…')), "{url} vs {}", ra.url);
    assert!(url.ends_with("/…"), "{url}");
    assert_eq!(
        get_as(&s, &acme, "/v1/webhooks").await["items"][0]["url"],
        ra.url.as_str()
    );
    let res = s
        .req_as(&auditor, Method::DELETE, &format!("/v1/webhooks/{a_hook}"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN).await;

    // Input that breaks a rule: 422 naming the field.
    for (body, field) in [
        (json!({ "url": ra.url, "events": [] }), "events"),
        (json!({ "url": ra.url, "events": ["Agent.*"] }), "events"),
        (json!({ "url": ra.url, "events": ["agent.*.x"] }), "events"),
        (json!({ "url": ra.url, "events": ["credential.rotatd"] }), "events"),
        (json!({ "url": "ftp://example.com/x", "events": ["*"] }), "url"),
        (json!({ "url": "http://192.0.2.1/x", "events": ["*"] }), "url"),
        (
            json!({ "url": "https://user:pw@example.com/x", "events": ["*"] }),
            "url",
        ),
        (json!({ "url": "not a url", "events": ["*"] }), "url"),
        (
            json!({ "url": ra.url, "events": ["*"], "description": "x".repeat(501) }),
            "description",
        ),
    ] {
        let res = s.req(Method::POST, "/v1/webhooks").json(&body).send().await.unwrap();
        let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["field"], field, "{body}: {p}");
        assert_eq!(p["type"], "urn:idv:problem:invalid-field");
    }
    let res = s
        .req(Method::POST, "/v1/webhooks")
        .json(&json!({ "url": ra.url, "events": ["*"], "secret": "mine" }))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST).await;
    let res = s.req(Method::GET, "/v1/webhooks/not-an-id").send().await.unwrap();
    problem(res, StatusCode::BAD_REQUEST).await;
    let res = s
        .req(Method::GET, &format!("/v1/webhooks/{d_hook}/deliveries?status=lost"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::BAD_REQUEST).await;
    let res = s
        .req(Method::GET, &format!("/v1/webhooks/{}", crate::ghost_id()))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
}

async fn subscriptions_change_and_secrets_rotate(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = Receiver::start(200).await;
    let sub = subscribe(&s, &s.token, &r.url, &["agent.created"]).await;
    let old = sub["secret"].as_str().unwrap().to_owned();
    let hook = sub["webhook"]["id"].as_str().unwrap().to_owned();

    // A new filter and description; `null` clears the description.
    let w = patch(
        &s,
        &hook,
        json!({ "events": ["agent.retired", "agent.created"], "description": null }),
    )
    .await;
    assert_eq!(w["events"], json!(["agent.retired", "agent.created"]));
    assert_eq!(w["description"], Value::Null);
    let res = s
        .req(Method::PATCH, &format!("/v1/webhooks/{hook}"))
        .json(&json!({ "url": "gopher://x" }))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let res = s
        .req(Method::PATCH, &format!("/v1/webhooks/{hook}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(res, StatusCode::BAD_REQUEST).await["type"],
        "urn:idv:problem:empty-patch"
    );
    // Disabled by hand: nothing is sent.
    let w = patch(&s, &hook, json!({ "enabled": false })).await;
    assert_eq!(w["status"], "disabled");
    create_agent(&s, &s.token, "quiet").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(r.all().is_empty());
    let w = patch(&s, &hook, json!({ "enabled": true })).await;
    assert_eq!(w["status"], "enabled");
    eventually("the event from while it was disabled", || async { r.all().len() == 1 }).await;
    assert!(signed_by(&old, &r.all()[0]));

    // A new secret: both sign during the overlap.
    let res = s
        .req(Method::POST, &format!("/v1/webhooks/{hook}/rotate-secret"))
        .send()
        .await
        .unwrap();
    let rotated = json_ok(res, StatusCode::OK).await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    create_agent(&s, &s.token, "after-rotation").await;
    eventually("the next event", || async { r.all().len() == 2 }).await;
    let g = &r.all()[1];
    assert!(signed_by(&new, g) && signed_by(&old, g), "{}", g.sig);
    assert_eq!(g.sig.split(' ').count(), 2);
    let events = all_events(&s).await;
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(new.trim_start_matches("whsec_")));
    assert!(events.iter().any(|e| e["action"] == "webhook.rotate_secret"));

    // Deleted: gone with its log.
    let res = s
        .req(Method::DELETE, &format!("/v1/webhooks/{hook}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let res = s
        .req(Method::GET, &format!("/v1/webhooks/{hook}"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    let res = s
        .req(Method::DELETE, &format!("/v1/webhooks/{hook}"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    create_agent(&s, &s.token, "after-delete").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(r.all().len(), 2);
}

async fn settled_deliveries_are_pruned_after_their_retention(backend: Backend) {
    let s = start_manual(backend).await;
    let r = Receiver::start(200).await;
    let sub = subscribe(&s, &s.token, &r.url, &["agent.created"]).await;
    let hook = sub["webhook"]["id"].as_str().unwrap().to_owned();
    create_agent(&s, &s.token, "kept-a-month").await;
    eventually("the delivery is made and delivered", || async {
        deliveries(&s, &hook)
            .await
            .first()
            .is_some_and(|d| d["status"] == "delivered")
    })
    .await;
    // A month on, the node prunes the log when its job runner starts (and
    // hourly after): the delivery goes, with an event saying how many.
    s.clock
        .as_ref()
        .unwrap()
        .advance_secs(idv_store::DELIVERY_RETENTION_SECS + 60);
    let s = s.restart(backend).await.unwrap();
    eventually("the settled delivery is pruned", || async {
        deliveries(&s, &hook).await.is_empty()
    })
    .await;
    let pruned: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "webhook.deliveries.prune")
        .collect();
    assert_eq!(pruned.len(), 1, "{pruned:?}");
    assert_eq!(pruned[0]["details"]["deleted"], 1);
}

/// Twenty rotations sent at once: each success returns a secret that signs
/// deliveries (only one can, the compare-and-swap and the running overlap
/// refuse the rest with 409); after the overlap a rotation succeeds again.
async fn concurrent_rotations_return_only_secrets_in_effect(backend: Backend) {
    let s = start_manual(backend).await;
    let r = Receiver::start(204).await;
    let sub = subscribe(&s, &s.token, &r.url, &["agent.created"]).await;
    let first = sub["secret"].as_str().unwrap().to_owned();
    let hook = sub["webhook"]["id"].as_str().unwrap().to_owned();
    let rotate = || async {
        let res = s
            .req(Method::POST, &format!("/v1/webhooks/{hook}/rotate-secret"))
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json::<Value>().await.unwrap())
    };
    let answers = futures_util::future::join_all((0..20).map(|_| rotate())).await;
    let mut won = Vec::new();
    for (status, body) in &answers {
        match *status {
            StatusCode::OK => won.push(body["secret"].as_str().unwrap().to_owned()),
            StatusCode::CONFLICT => assert_eq!(body["status"], 409, "{body}"),
            other => panic!("a rotation answered {other}: {body}"),
        }
    }
    assert!(!won.is_empty(), "no rotation succeeded: {answers:?}");
    create_agent(&s, &s.token, "after-the-race").await;
    eventually("a delivery after the race", || async { r.all().len() == 1 }).await;
    let g = &r.all()[0];
    for secret in &won {
        assert!(
            signed_by(secret, g),
            "a rotation returned a secret that signs nothing ({} won)",
            won.len()
        );
    }
    // The receiver's old secret co-signs, and nothing else does.
    assert!(signed_by(&first, g));
    assert_eq!(g.sig.split(' ').count(), 2, "{}", g.sig);
    assert_eq!(won.len(), 1);

    // Once the overlap has ended, a rotation succeeds again.
    let clock = s.clock.clone().unwrap();
    clock.advance_secs(idv_server::app::webhooks::SECRET_OVERLAP_SECS - 60);
    let (status, body) = rotate().await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("co-signs until"), "{body}");
    clock.advance_secs(61);
    let (status, body) = rotate().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let newest = body["secret"].as_str().unwrap().to_owned();
    create_agent(&s, &s.token, "after-the-overlap").await;
    eventually("a delivery after the second rotation", || async { r.all().len() == 2 }).await;
    let g = &r.all()[1];
    assert!(
        signed_by(&newest, g) && signed_by(&won[0], g) && !signed_by(&first, g),
        "{}",
        g.sig
    );
}

/// A hundred events at once to a receiver that answers at once: all of them
/// arrive within seconds (a node leases no more deliveries than it can run,
/// so none waits out a lease behind a full set of slots).
async fn a_burst_of_events_is_delivered_within_seconds(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = Receiver::start(204).await;
    let sub = subscribe(&s, &s.token, &r.url, &["agent.created"]).await;
    let hook = sub["webhook"]["id"].as_str().unwrap().to_owned();
    let names: Vec<String> = (0..100).map(|i| format!("burst-{i}")).collect();
    futures_util::future::join_all(names.iter().map(|n| create_agent(&s, &s.token, n))).await;
    let created = std::time::Instant::now();
    crate::eventually_within("all 100 deliveries at the receiver", 5, || async {
        r.of("agent.created").len() == 100
    })
    .await;
    let took = created.elapsed();
    let mut ids: Vec<String> = r.all().into_iter().map(|g| g.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 100, "each event once");
    eventually("the log shows all 100 delivered", || async {
        let f = "?status=delivered&limit=1000";
        get(&s, &format!("/v1/webhooks/{hook}/deliveries{f}")).await["items"]
            .as_array()
            .unwrap()
            .len()
            == 100
    })
    .await;
    eprintln!("100 deliveries in {took:?}");
}

/// A role's creation and replacement are published as
/// `policy.role_changed`, its deletion as `policy.role_deleted` (they were
/// recorded as `role.create` / `role.update` while only the refused attempt,
/// `role.put`, was mapped to the event, so subscribers heard nothing).
async fn role_changes_are_published(backend: Backend) {
    let s = TestServer::start(backend).await;
    let r = Receiver::start(200).await;
    subscribe(&s, &s.token, &r.url, &["policy.role_changed", "policy.role_deleted"]).await;
    for body in [
        json!({ "actions": ["read"] }),
        json!({ "description": "reads", "actions": ["read"] }),
    ] {
        let res = s.req(Method::PUT, "/v1/roles/reader").json(&body).send().await.unwrap();
        json_ok(res, StatusCode::OK).await;
    }
    let res = s.req(Method::DELETE, "/v1/roles/reader").send().await.unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    eventually("the role's three events at the receiver", || async {
        r.of("policy.role_changed").len() == 2 && r.of("policy.role_deleted").len() == 1
    })
    .await;
    let changed = r.of("policy.role_changed");
    assert_eq!(
        changed[0].json()["data"]["target"],
        json!({ "type": "role", "id": "reader" })
    );
}
