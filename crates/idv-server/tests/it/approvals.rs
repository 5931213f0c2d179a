//! Separation of duties for approvals (issue 21 item 16): the approver is
//! never the requester nor the agent, a policy can require the agent's
//! owner or a directory group and two distinct people, and every refusal is
//! audited.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delegation::{agent, own_token};
use crate::{all_events, json_ok, named_token, problem};

backend_tests!(
    the_requester_and_the_agent_never_approve_and_the_owner_rule_holds,
    a_group_rule_needs_two_distinct_members,
    approval_annotations_are_validated,
);

async fn upload(s: &TestServer, policies: &str) {
    json_ok(
        s.req(Method::POST, "/v1/policies")
            .json(&json!({"policies": policies, "activate": true}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
}

async fn evaluate(s: &TestServer, token: &str, agent_id: &str, action: &str, context: Value) -> Value {
    json_ok(
        s.req_as(token, Method::POST, "/access/v1/evaluation")
            .json(
                &json!({"subject": {"type": "agent", "id": agent_id}, "action": {"name": action},
                          "resource": {"type": "Resource", "id": "acct-1"}, "context": context}),
            )
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

async fn approve(s: &TestServer, token: &str, id: &str) -> reqwest::Response {
    s.req_as(token, Method::POST, &format!("/v1/approvals/{id}/approve"))
        .json(&json!({"comment": "ok"}))
        .send()
        .await
        .unwrap()
}

/// The refusals audited for approval `id`: their reasons, in order.
async fn refusals(s: &TestServer, id: &str) -> Vec<String> {
    all_events(s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "approval.approve" && e["target_id"] == id && e["outcome"] == "denied")
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_requester_and_the_agent_never_approve_and_the_owner_rule_holds(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(
        &s,
        r#"@id("large") @requires_approval("large transfers need the owner") @approvers("owner")
permit(principal is Agent, action == Action::"transfer", resource) when { context has amount && context.amount > 10000 };"#,
    )
    .await;
    let a = agent(&s, "trader", &[]).await;
    // An operator asks (as a PEP would) and is the requester.
    let (requester, _) = named_token(&s, "default", "operator", "gateway-ops").await;
    let big = json!({"amount": 250000});
    let d = evaluate(&s, &requester, &a.id, "transfer", big.clone()).await;
    assert_eq!(d["context"]["decision"], "requires_approval", "{d}");
    assert_eq!(d["context"]["approval"]["assignee"], "alice@bank.example");
    let id = d["context"]["approval"]["id"].as_str().unwrap().to_owned();
    let view = json_ok(
        s.req(Method::GET, &format!("/v1/approvals/{id}")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["approvers"], json!(["owner"]), "{view}");
    assert_eq!(view["required"], 1, "{view}");
    // The requester may not approve its own request.
    let p = problem(approve(&s, &requester, &id).await, StatusCode::FORBIDDEN).await;
    assert!(p["detail"].as_str().unwrap().contains("requester"), "{p}");
    // Someone who is not the owner may not either.
    let (mallory, _) = named_token(&s, "default", "admin", "mallory@bank.example").await;
    let p = problem(approve(&s, &mallory, &id).await, StatusCode::FORBIDDEN).await;
    assert!(p["detail"].as_str().unwrap().contains("alice@bank.example"), "{p}");
    // The agent's own credentials never reach the approval API.
    let token = own_token(&s, &a).await;
    assert_eq!(approve(&s, &token, &id).await.status(), StatusCode::UNAUTHORIZED);
    let r = s
        .http
        .post(s.url(&format!("/v1/approvals/{id}/approve")))
        .basic_auth(&a.id, Some(&a.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Still pending, and each refusal is in the audit log with its reason.
    let view = json_ok(
        s.req(Method::GET, &format!("/v1/approvals/{id}")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(view["status"], "pending", "{view}");
    assert_eq!(refusals(&s, &id).await, ["requester", "not_owner"]);
    // The owner approves; the request goes through once.
    let (owner, _) = named_token(&s, "default", "operator", "alice@bank.example").await;
    let ok = json_ok(approve(&s, &owner, &id).await, StatusCode::OK).await;
    assert_eq!(ok["status"], "approved", "{ok}");
    assert_eq!(ok["approved_by"], json!(["alice@bank.example"]), "{ok}");
    let d = evaluate(&s, &requester, &a.id, "transfer", big.clone()).await;
    assert_eq!(d["decision"], true, "{d}");
    // The requester may still withdraw a request of its own.
    let d = evaluate(&s, &requester, &a.id, "transfer", big).await;
    let next = d["context"]["approval"]["id"].as_str().unwrap().to_owned();
    let r = s
        .req_as(&requester, Method::POST, &format!("/v1/approvals/{next}/reject"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(r, StatusCode::OK).await["status"], "rejected");
}

async fn a_group_rule_needs_two_distinct_members(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(
        &s,
        r#"@id("two-treasurers") @requires_approval("writes need two treasurers")
@approvers("group:treasury") @approvals("2")
permit(principal is Agent, action == Action::"write", resource);"#,
    )
    .await;
    let r = s
        .req(Method::POST, "/v1/entities")
        .json(&json!({"entities": [
            {"uid": {"type": "Group", "id": "treasury"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Human", "id": "tom"}, "attrs": {}, "parents": [{"type": "Group", "id": "treasury"}]},
            {"uid": {"type": "Human", "id": "tina"}, "attrs": {}, "parents": [{"type": "Group", "id": "treasury"}]},
            {"uid": {"type": "Human", "id": "ursula"}, "attrs": {}, "parents": []},
        ]}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    let a = agent(&s, "writer", &[]).await;
    let d = evaluate(&s, &s.token, &a.id, "write", json!({})).await;
    assert_eq!(d["context"]["approval"]["assignee"], "group:treasury", "{d}");
    let id = d["context"]["approval"]["id"].as_str().unwrap().to_owned();
    let (ursula, _) = named_token(&s, "default", "operator", "ursula").await;
    let (tom, _) = named_token(&s, "default", "operator", "tom").await;
    let (tom_again, _) = named_token(&s, "default", "admin", "tom").await;
    let (tina, _) = named_token(&s, "default", "operator", "tina").await;
    problem(approve(&s, &ursula, &id).await, StatusCode::FORBIDDEN).await;
    let first = json_ok(approve(&s, &tom, &id).await, StatusCode::OK).await;
    assert_eq!(first["status"], "pending", "one of two: {first}");
    assert_eq!(first["required"], 2);
    // Not yet: the request is still waiting.
    let d = evaluate(&s, &s.token, &a.id, "write", json!({})).await;
    assert_eq!(d["decision"], false, "{d}");
    // The same person with another token does not count twice.
    problem(approve(&s, &tom, &id).await, StatusCode::FORBIDDEN).await;
    problem(approve(&s, &tom_again, &id).await, StatusCode::FORBIDDEN).await;
    let second = json_ok(approve(&s, &tina, &id).await, StatusCode::OK).await;
    assert_eq!(second["status"], "approved", "{second}");
    assert_eq!(second["approved_by"], json!(["tom", "tina"]));
    let d = evaluate(&s, &s.token, &a.id, "write", json!({})).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(
        refusals(&s, &id).await,
        ["not_in_group", "already_approved", "already_approved"]
    );
}

async fn approval_annotations_are_validated(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (text, needle) in [
        (
            r#"@requires_approval("x") @approvals("3") permit(principal, action, resource);"#,
            "approvals",
        ),
        (
            r#"@requires_approval("x") @approvers("boss") permit(principal, action, resource);"#,
            "approvers",
        ),
        (
            r#"@approvers("owner") permit(principal, action, resource);"#,
            "requires_approval",
        ),
    ] {
        let r = s
            .req(Method::POST, "/v1/policies/validate")
            .json(&json!({"policies": text}))
            .send()
            .await
            .unwrap();
        let v = json_ok(r, StatusCode::OK).await;
        assert_eq!(v["valid"], false, "{text}: {v}");
        assert!(v["errors"][0]["message"].as_str().unwrap().contains(needle), "{v}");
    }
}
