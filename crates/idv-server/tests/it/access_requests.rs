//! Just-in-time access requests end to end over HTTP: asked by one person,
//! refused to the requester, approved by another, the grant made in the
//! same commit and honoured by decisions, ended on its own; every step
//! audited; bad requests answered with the field at fault.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{create_agent, events_after, head, json_ok, named_token, start_manual, transition};

backend_tests!(
    a_request_is_approved_by_someone_else_and_ends_on_its_own,
    bad_requests_are_refused_with_the_field,
);

/// A console page, signed in with the bootstrap token.
async fn console_page(s: &TestServer, path: &str) -> String {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = client
        .post(s.url("/console/login"))
        .form(&[("token", s.token.as_str())])
        .send()
        .await
        .unwrap();
    let cookie = res.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = client.get(s.url(path)).header("cookie", cookie).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    page.text().await.unwrap()
}

async fn ask(s: &TestServer, token: &str, body: Value) -> reqwest::Response {
    s.req_as(token, Method::POST, "/v1/access-requests")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn verb(s: &TestServer, token: &str, id: &str, verb: &str) -> reqwest::Response {
    s.req_as(token, Method::POST, &format!("/v1/access-requests/{id}/{verb}"))
        .json(&json!({"comment": "checked the ticket"}))
        .send()
        .await
        .unwrap()
}

async fn decision(s: &TestServer, pep: &str, agent: &str) -> bool {
    let res = s
        .req_as(pep, Method::POST, "/access/v1/evaluation")
        .json(&json!({
            "subject": {"type": "agent", "id": agent},
            "action": {"name": "read"},
            "resource": {"type": "Resource", "id": "ledger-2026"},
        }))
        .send()
        .await
        .unwrap();
    json_ok(res, StatusCode::OK).await["decision"].as_bool().unwrap()
}

async fn a_request_is_approved_by_someone_else_and_ends_on_its_own(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let role = s
        .req(Method::PUT, "/v1/roles/ledger-reader")
        .json(&json!({"actions": ["read"]}))
        .send()
        .await
        .unwrap();
    json_ok(role, StatusCode::OK).await;
    let agent = create_agent(&s, &s.token, "jit-bot").await;
    let id = agent["id"].as_str().unwrap();
    transition(&s, &s.token, id, "activate", "go").await;
    let (dev, _) = named_token(&s, "default", "admin", "dev").await;
    let (lead, _) = named_token(&s, "default", "admin", "lead").await;
    let (ops, _) = named_token(&s, "default", "operator", "ops").await;
    let (pep, _) = named_token(&s, "default", "pep", "gateway").await;
    assert!(!decision(&s, &pep, id).await, "nothing granted yet");

    let seq = head(&s).await;
    let r = json_ok(
        ask(
            &s,
            &dev,
            json!({"agent_id": id, "role": "ledger-reader", "justification": "month-end close", "duration": "1h"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let rid = r["id"].as_str().unwrap().to_owned();
    assert_eq!(
        (r["state"].as_str(), r["requested_by"].as_str()),
        (Some("pending"), Some("dev"))
    );

    // Separation of duties: the requester cannot approve, and it is recorded.
    let own = verb(&s, &dev, &rid, "approve").await;
    assert_eq!(own.status(), StatusCode::FORBIDDEN);
    assert!(!decision(&s, &pep, id).await);
    // An operator may not approve (an approval is a grant: admins only).
    assert_eq!(verb(&s, &ops, &rid, "approve").await.status(), StatusCode::FORBIDDEN);
    // Nor can someone else withdraw it.
    assert_eq!(verb(&s, &lead, &rid, "withdraw").await.status(), StatusCode::FORBIDDEN);

    let done = json_ok(verb(&s, &lead, &rid, "approve").await, StatusCode::OK).await;
    assert_eq!(done["state"], "approved");
    assert_eq!(done["decided_by"], "lead");
    let grant_id = done["grant_id"].as_str().unwrap().to_owned();
    assert!(decision(&s, &pep, id).await, "the grant is honoured at once");
    assert_eq!(
        verb(&s, &lead, &rid, "deny").await.status(),
        StatusCode::CONFLICT,
        "decided once"
    );

    let events: Vec<(String, String)> = events_after(&s, seq)
        .await
        .iter()
        .filter(|e| {
            e["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("access_request.") || a == "grant.create")
        })
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = events.iter().map(|(a, o)| (a.as_str(), o.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("access_request.create", "success"),
            ("access_request.approve", "denied"),
            ("access_request.approve", "denied"),
            ("access_request.withdraw", "denied"),
            ("access_request.approve", "success"),
            ("grant.create", "success"),
            ("access_request.deny", "failure"),
        ]
    );
    let grants = json_ok(
        s.req(Method::GET, &format!("/v1/grants?subject_type=agent&subject_id={id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(grants["items"][0]["id"], grant_id.as_str());
    assert_eq!(grants["items"][0]["created_by"], "lead");

    // The agent's page shows the grant, a delegation each way, its
    // decisions and its edits.
    let other = create_agent(&s, &s.token, "jit-peer").await;
    let other_id = other["id"].as_str().unwrap();
    for (from, to) in [(id, other_id), (other_id, id)] {
        let res = s
            .req(Method::POST, "/v1/delegations")
            .json(
                &json!({"delegator": {"type": "agent", "id": from}, "delegate": to, "scopes": ["ledger"], "ttl": "1h"}),
            )
            .send()
            .await
            .unwrap();
        json_ok(res, StatusCode::CREATED).await;
    }
    let res = s
        .req(Method::PATCH, &format!("/v1/agents/{id}"))
        .json(&json!({"purpose": "closes the books"}))
        .send()
        .await
        .unwrap();
    json_ok(res, StatusCode::OK).await;
    let html = console_page(&s, &format!("/console/agents/{id}")).await;
    let section = |h: &str| {
        let at = html
            .find(&format!(r#"id="{h}""#))
            .unwrap_or_else(|| panic!("no {h}: {html}"));
        html[at..at + html[at..].find("</table>").unwrap()].to_owned()
    };
    let access = section("access");
    assert!(
        access.contains("<td>role</td><td class=\"wrap\">ledger-reader</td>"),
        "{access}"
    );
    assert!(
        access.contains("delegated to it") && access.contains("delegated by it"),
        "{access}"
    );
    assert!(section("decisions").contains("<td>read</td>"), "{html}");
    assert!(section("edits").contains("<td>purpose</td>"), "{html}");
    assert!(section("agent-leases").contains("No database leases"));

    // An hour later the grant has ended on its own.
    clock.advance_secs(3_601);
    let later = json_ok(
        s.req(Method::GET, &format!("/v1/access-requests/{rid}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(later["state"], "expired");
    assert!(!decision(&s, &pep, id).await, "the access ended with its grant");

    // A second request, withdrawn by its requester.
    let r2 = json_ok(
        ask(
            &s,
            &dev,
            json!({"agent_id": id, "action": "read", "justification": "audit", "duration": "30m"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let w = json_ok(
        verb(&s, &dev, r2["id"].as_str().unwrap(), "withdraw").await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(w["state"], "withdrawn");
    let pending = json_ok(
        s.req(Method::GET, "/v1/access-requests?status=pending")
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 0);
    let all = json_ok(
        s.req(Method::GET, "/v1/access-requests").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2, "newest first: {all}");
    assert_eq!(all["items"][0]["id"], r2["id"]);
}

async fn bad_requests_are_refused_with_the_field(backend: Backend) {
    let s = TestServer::start(backend).await;
    let agent = create_agent(&s, &s.token, "jit-bad").await;
    let id = agent["id"].as_str().unwrap();
    let ok = |extra: Value| {
        let mut b = json!({"agent_id": id, "role": "nope", "justification": "why", "duration": "1h"});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b
    };
    for (body, field) in [
        (ok(json!({})), "role"),
        (ok(json!({"duration": "90d"})), "duration"),
        (ok(json!({"duration": "soon"})), "duration"),
        (ok(json!({"justification": "  "})), "justification"),
        (ok(json!({"action": "x"})), "role"),
    ] {
        let res = ask(&s, &s.token, body.clone()).await;
        let p = json_ok(res, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let ghost = ask(&s, &s.token, ok(json!({"agent_id": crate::ghost_id()}))).await;
    assert_eq!(ghost.status(), StatusCode::NOT_FOUND);
    let (auditor, _) = named_token(&s, "default", "auditor", "aud").await;
    let res = ask(&s, &auditor, ok(json!({}))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    transition(&s, &s.token, id, "retire", "done").await;
    let role = s
        .req(Method::PUT, "/v1/roles/any")
        .json(&json!({"actions": ["read"]}))
        .send()
        .await
        .unwrap();
    json_ok(role, StatusCode::OK).await;
    let retired = ask(&s, &s.token, ok(json!({"role": "any"}))).await;
    assert_eq!(retired.status(), StatusCode::CONFLICT);
}
