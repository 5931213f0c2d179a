//! The lifecycle `provisioning → active ⇄ suspended → retired` over HTTP.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{create_agent, events_after, get, head, json_ok, problem, start_manual, transition};

backend_tests!(
    every_transition_from_every_state,
    the_reason_is_required_and_checked,
    retired_is_terminal_and_stays_readable,
    transitions_record_who_when_and_why,
    unknown_verbs_and_agents,
);

const VERBS: [&str; 4] = ["activate", "suspend", "resume", "retire"];

/// The documented state machine: the state after `verb` from `state`.
fn next(state: &str, verb: &str) -> Option<&'static str> {
    match (state, verb) {
        ("provisioning", "activate") => Some("active"),
        ("active", "suspend") => Some("suspended"),
        ("suspended", "resume") => Some("active"),
        ("provisioning" | "active" | "suspended", "retire") => Some("retired"),
        _ => None,
    }
}

/// Verbs that take a new agent to `state`.
fn path_to(state: &str) -> &'static [&'static str] {
    match state {
        "provisioning" => &[],
        "active" => &["activate"],
        "suspended" => &["activate", "suspend"],
        "retired" => &["retire"],
        _ => unreachable!(),
    }
}

async fn every_transition_from_every_state(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut n = 0;
    for state in ["provisioning", "active", "suspended", "retired"] {
        for verb in VERBS {
            n += 1;
            let a = create_agent(&s, &s.token, &format!("a-{n}")).await;
            let id = a["id"].as_str().unwrap();
            for step in path_to(state) {
                assert_eq!(transition(&s, &s.token, id, step, "setup").await.status(), 200);
            }
            let before = get(&s, &format!("/v1/agents/{id}")).await;
            assert_eq!(before["status"], state);
            let seq = head(&s).await;
            let res = s
                .req(Method::POST, &format!("/v1/agents/{id}/{verb}"))
                .header("x-request-id", format!("req-{n}"))
                .json(&json!({"reason": format!("{verb} from {state}")}))
                .send()
                .await
                .unwrap();
            let events = events_after(&s, seq).await;
            assert_eq!(events.len(), 1, "{state} --{verb}--> wrote {events:?}");
            let ev = &events[0];
            assert_eq!(ev["action"], format!("agent.{verb}"));
            assert_eq!(ev["target_type"], "agent");
            assert_eq!(ev["target_id"], id);
            assert_eq!(ev["reason"], format!("{verb} from {state}"));
            assert_eq!(ev["request_id"], format!("req-{n}"));
            match next(state, verb) {
                Some(to) => {
                    assert_eq!(res.status(), StatusCode::OK, "{state} --{verb}-->");
                    let version = before["version"].as_i64().unwrap() + 1;
                    assert_eq!(res.headers()["etag"], format!("\"{version}\"").as_str());
                    let v: Value = res.json().await.unwrap();
                    assert_eq!(v["status"], to);
                    assert_eq!(v["version"], version);
                    assert_eq!(v["status_reason"], format!("{verb} from {state}"));
                    assert_eq!(v, get(&s, &format!("/v1/agents/{id}")).await);
                    assert_eq!(ev["outcome"], "success");
                    assert_eq!(ev["details"]["from"], state);
                    assert_eq!(ev["details"]["to"], to);
                }
                None => {
                    let p = problem(res, StatusCode::CONFLICT).await;
                    assert_eq!(p["type"], "urn:idv:problem:invalid-transition", "{state} --{verb}-->");
                    assert_eq!(p["current_state"], state);
                    assert!(p["detail"].as_str().unwrap().contains(state), "{p}");
                    // Refused: nothing changed, and the attempt is on the record.
                    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await, before);
                    assert_eq!(ev["outcome"], "failure");
                }
            }
        }
    }
}

async fn the_reason_is_required_and_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "why").await;
    let id = a["id"].as_str().unwrap();
    let path = format!("/v1/agents/{id}/activate");
    let before = head(&s).await;
    let send = |body: Value| {
        let req = s.req(Method::POST, &path).json(&body);
        async move { req.send().await.unwrap() }
    };
    let p = problem(send(json!({})).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["type"], "urn:idv:problem:invalid-body");
    assert!(p["detail"].as_str().unwrap().contains("reason"), "{p}");
    let p = problem(send(json!({"reason": null})).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["type"], "urn:idv:problem:invalid-body");
    for bad in [json!(""), json!("   "), json!("line\nbreak"), json!("x".repeat(1025))] {
        let p = problem(send(json!({ "reason": bad })).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-field");
        assert_eq!(p["field"], "reason");
    }
    // No body at all.
    let res = s.req(Method::POST, &path).send().await.unwrap();
    problem(res, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await, a);
    assert_eq!(head(&s).await, before, "refused at the edge: nothing recorded");
    // The longest reason is fine, and kept whole.
    let long = "y".repeat(1024);
    let v = json_ok(send(json!({ "reason": long })).await, StatusCode::OK).await;
    assert_eq!(v["status_reason"], long);
}

async fn retired_is_terminal_and_stays_readable(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "old").await;
    let id = a["id"].as_str().unwrap();
    for verb in ["activate", "suspend", "retire"] {
        assert_eq!(transition(&s, &s.token, id, verb, verb).await.status(), 200);
    }
    let retired = get(&s, &format!("/v1/agents/{id}")).await;
    assert_eq!(retired["status"], "retired");
    assert_eq!(retired["status_reason"], "retire");
    // Every further transition is refused, naming the state.
    for verb in VERBS {
        let p = problem(transition(&s, &s.token, id, verb, "again").await, StatusCode::CONFLICT).await;
        assert_eq!(p["current_state"], "retired");
    }
    // Metadata is read-only too.
    let res = s
        .req(Method::PATCH, &format!("/v1/agents/{id}"))
        .json(&json!({"owner": "new"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT).await;
    // The record stays: by id, in lists, in exports.
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await, retired);
    let list = get(&s, "/v1/agents?status=retired").await;
    assert_eq!(list["items"], json!([retired]));
    let csv = s
        .req(Method::GET, "/v1/agents/export")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.contains(id));
}

async fn transitions_record_who_when_and_why(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let (op, op_id) = crate::named_token(&s, "default", "operator", "ops-alice").await;
    let a = create_agent(&s, &s.token, "tracked").await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(a["status_changed_at"], a["created_at"]);
    clock.advance_secs(30);
    let v = json_ok(
        transition(&s, &op, id, "activate", "CHG-1234 approved").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["status"], "active");
    assert_eq!(v["status_reason"], "CHG-1234 approved");
    // Who: the operator's token (by id; the audit event also carries its name).
    assert_eq!(v["status_changed_by"], format!("admin_token:{op_id}"));
    assert_eq!(v["created_by"], a["created_by"], "creation is not rewritten");
    let created = idv_core::Timestamp::parse(a["created_at"].as_str().unwrap()).unwrap();
    let changed = idv_core::Timestamp::parse(v["status_changed_at"].as_str().unwrap()).unwrap();
    assert_eq!(changed.as_micros() - created.as_micros(), 30_000_000);
    assert_eq!(v["updated_at"], v["status_changed_at"]);
    let events = crate::events_as(&s, &s.token, &format!("target_id={id}&action=agent.activate")).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["actor"]["kind"], "admin_token");
    assert_eq!(events[0]["actor"]["name"], "ops-alice");
    assert_eq!(events[0]["actor"]["token_id"], op_id);
    assert_eq!(events[0]["time"], v["status_changed_at"]);
    // A later change by another token moves `status_changed_by` on.
    let v = json_ok(
        transition(&s, &s.token, id, "suspend", "incident").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v["status_changed_by"], a["created_by"]);
}

async fn unknown_verbs_and_agents(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "x").await;
    let id = a["id"].as_str().unwrap();
    for verb in ["explode", "Activate", "delete", "reactivate"] {
        let p = problem(transition(&s, &s.token, id, verb, "r").await, StatusCode::NOT_FOUND).await;
        assert_eq!(p["type"], "urn:idv:problem:not-found");
    }
    let ghost = crate::ghost_id();
    let before = head(&s).await;
    let p = problem(
        transition(&s, &s.token, &ghost, "activate", "r").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:not-found");
    let events = events_after(&s, before).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"], "failure");
    assert_eq!(events[0]["target_id"], ghost);
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await, a);
}
