//! AuthZEN 1.0 completeness (issue 21 item 13): subject and action
//! properties reach the policies, and the Search APIs (§8) with paging and
//! their metadata. The cases follow the specification's text and the
//! certification scenario of the `openid/authzen` repository
//! (`certification/authorization-api-1_0-scenario.md`: the fixture of §C.1,
//! the rules of §C.1.4, the searches of §C.4). The scenario's action names
//! `read` and `write` are IdentityVault's built-in actions (for agents and
//! humans), so the fixture's actions are `can_read`, `can_write` and
//! `can_delete` here, the names the specification's own examples use.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delegation::agent;
use crate::{all_events, json_ok, problem, tenant_token};

backend_tests!(
    subject_and_action_properties_reach_the_policies,
    searches_find_what_an_evaluation_would_allow,
    searches_page_through_every_result_once,
    searches_refuse_what_the_spec_calls_malformed,
    agents_are_searched_from_the_registry,
);

const SCHEMA: &str = r#"
entity user { role?: String };
entity record { status?: String };
action can_read, can_write appliesTo { principal: [user], resource: [record] };
action can_delete appliesTo {
  principal: [user], resource: [record],
  context: { action?: { soft?: Bool } },
};
action can_sign appliesTo {
  principal: [Agent], resource: [record],
  context: { subject?: { device?: String } },
};
"#;

/// §C.1.4: rules 1–8 (with a role from the directory for `bob`).
const POLICIES: &str = r#"
@id("read-all") permit(principal is user, action == Action::"can_read", resource is record);
@id("write-active") permit(principal is user, action == Action::"can_write", resource is record)
  when { resource has status && resource.status == "active" && !(principal has role && principal.role == "admin") };
@id("admin-write-archived") permit(principal is user, action == Action::"can_write", resource is record)
  when { principal has role && principal.role == "admin" && resource has status && resource.status == "archived" };
@id("soft-delete") permit(principal is user, action == Action::"can_delete", resource is record)
  when { context has action && context.action has soft && context.action.soft };
@id("sign-from-hsm") permit(principal is Agent, action == Action::"can_sign", resource is record)
  when { context has subject && context.subject has device && context.subject.device == "hsm-1" };
"#;

async fn load_fixture(s: &TestServer) {
    json_ok(
        s.req(Method::POST, "/v1/policies")
            .json(&json!({"policies": POLICIES, "schema": SCHEMA, "activate": true}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let mut entities = vec![
        json!({"uid": {"type": "user", "id": "alice"}, "attrs": {}, "parents": []}),
        json!({"uid": {"type": "user", "id": "bob"}, "attrs": {"role": "admin"}, "parents": []}),
        json!({"uid": {"type": "user", "id": "carol"}, "attrs": {"role": "guest"}, "parents": []}),
        json!({"uid": {"type": "record", "id": "record-1"}, "attrs": {"status": "active"}, "parents": []}),
        json!({"uid": {"type": "record", "id": "record-2"}, "attrs": {"status": "archived"}, "parents": []}),
    ];
    for i in 3..=7 {
        entities.push(json!({"uid": {"type": "record", "id": format!("record-{i}")}, "attrs": {"status": "active"}, "parents": []}));
    }
    let r = s
        .req(Method::POST, "/v1/entities")
        .json(&json!({ "entities": entities }))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
}

async fn post(s: &TestServer, token: &str, path: &str, body: Value) -> Value {
    json_ok(
        s.req_as(token, Method::POST, path).json(&body).send().await.unwrap(),
        StatusCode::OK,
    )
    .await
}

async fn decision(s: &TestServer, token: &str, body: Value) -> bool {
    let d = post(s, token, "/access/v1/evaluation", body).await;
    d["decision"].as_bool().unwrap()
}

fn ids(page: &Value) -> Vec<String> {
    page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().or(r["name"].as_str()).unwrap().to_owned())
        .collect()
}

async fn subject_and_action_properties_reach_the_policies(backend: Backend) {
    let s = TestServer::start(backend).await;
    load_fixture(&s).await;
    let (pep, _) = tenant_token(&s, "default", "pep").await;
    let user = |id: &str| json!({"type": "user", "id": id});
    let rec = |id: &str| json!({"type": "record", "id": id});
    let ask = |subject: Value, action: Value, resource: Value| json!({"subject": subject, "action": action, "resource": resource});
    // Rules 1–4: identifiers only.
    assert!(
        decision(
            &s,
            &pep,
            ask(user("alice"), json!({"name": "can_read"}), rec("record-1"))
        )
        .await
    );
    assert!(
        decision(
            &s,
            &pep,
            ask(user("alice"), json!({"name": "can_write"}), rec("record-1"))
        )
        .await
    );
    assert!(decision(&s, &pep, ask(user("bob"), json!({"name": "can_read"}), rec("record-1"))).await);
    assert!(
        !decision(
            &s,
            &pep,
            ask(user("bob"), json!({"name": "can_write"}), rec("record-1"))
        )
        .await
    );
    // Rule 5: resource properties.
    let archived = json!({"type": "record", "id": "record-2", "properties": {"status": "archived"}});
    assert!(
        !decision(
            &s,
            &pep,
            ask(user("alice"), json!({"name": "can_write"}), archived.clone())
        )
        .await
    );
    // Rule 6: a role the PEP asserts for a subject the directory gives none.
    let admin = json!({"type": "user", "id": "alice", "properties": {"role": "admin"}});
    assert!(decision(&s, &pep, ask(admin, json!({"name": "can_write"}), archived.clone())).await);
    // The directory is authoritative for who a subject is: an asserted
    // property does not replace a stored attribute.
    let carol = json!({"type": "user", "id": "carol", "properties": {"role": "admin"}});
    assert!(!decision(&s, &pep, ask(carol, json!({"name": "can_write"}), archived.clone())).await);
    // Rules 7 and 8: action properties (`context.action`).
    let delete = |soft: bool| json!({"name": "can_delete", "properties": {"soft": soft}});
    assert!(decision(&s, &pep, ask(user("alice"), delete(true), rec("record-1"))).await);
    assert!(!decision(&s, &pep, ask(user("alice"), delete(false), rec("record-1"))).await);
    assert!(
        !decision(
            &s,
            &pep,
            ask(user("alice"), json!({"name": "can_delete"}), rec("record-1"))
        )
        .await
    );
    // §C.2.2.8: extra properties are accepted and change nothing.
    let extra = json!({
        "subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
        "action": {"name": "can_read", "properties": {"method": "GET"}},
        "resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}},
    });
    assert!(decision(&s, &pep, extra).await);
    // An agent subject's properties are `context.subject`, beside the
    // registry's attributes.
    let a = agent(&s, "signer", &[]).await;
    let signer = |device: &str| json!({"type": "agent", "id": a.id, "properties": {"device": device}});
    assert!(
        decision(
            &s,
            &pep,
            ask(signer("hsm-1"), json!({"name": "can_sign"}), rec("record-1"))
        )
        .await
    );
    assert!(
        !decision(
            &s,
            &pep,
            ask(signer("laptop"), json!({"name": "can_sign"}), rec("record-1"))
        )
        .await
    );
    // `context.action` and `context.subject` are the server's to fill.
    let r = s
        .req_as(&pep, Method::POST, "/access/v1/evaluation")
        .json(
            &json!({"subject": user("alice"), "action": {"name": "can_delete"}, "resource": rec("record-1"),
                      "context": {"action": {"soft": true}}}),
        )
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["field"], "context.action", "{p}");
    // The properties are in the decision's audit event.
    let events = all_events(&s).await;
    let last = events.iter().rev().find(|e| e["action"] == "authz.decision").unwrap();
    assert_eq!(last["details"]["subject_properties"]["device"], "laptop", "{last}");
}

async fn searches_find_what_an_evaluation_would_allow(backend: Backend) {
    let s = TestServer::start(backend).await;
    let meta = json_ok(
        s.http
            .get(s.url("/.well-known/authzen-configuration"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    for kind in ["subject", "resource", "action"] {
        assert_eq!(
            meta[format!("search_{kind}_endpoint")],
            format!("{}/access/v1/search/{kind}", s.base),
            "{meta}"
        );
    }
    load_fixture(&s).await;
    let (pep, _) = tenant_token(&s, "default", "pep").await;
    let before = all_events(&s).await.len();
    // §C.4.2.1 (with context, §C.4.2.2): who may read record-1.
    let found = post(
        &s,
        &pep,
        "/access/v1/search/subject",
        json!({"subject": {"type": "user"}, "action": {"name": "can_read"},
               "resource": {"type": "record", "id": "record-1"}, "context": {"time": "2025-06-27T18:03-07:00"}}),
    )
    .await;
    assert_eq!(ids(&found), ["alice", "bob", "carol"], "{found}");
    assert!(found["results"].as_array().unwrap().iter().all(|r| r["type"] == "user"));
    assert_eq!(found["page"]["next_token"], "", "{found}");
    assert_eq!(found["page"]["count"], 3, "{found}");
    // One audit event for the search, naming what it returned.
    let events = all_events(&s).await;
    let new: Vec<&Value> = events.get(before..).unwrap().iter().collect();
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["action"], "authz.search");
    assert_eq!(new[0]["details"]["search"], "subject");
    assert_eq!(new[0]["details"]["results"], json!(["alice", "bob", "carol"]));
    assert_eq!(new[0]["details"]["examined"], 3);
    // §C.4.2.4: who may write an archived record: the directory's admin.
    let found = post(
        &s,
        &pep,
        "/access/v1/search/subject",
        json!({"subject": {"type": "user"}, "action": {"name": "can_write"},
               "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}),
    )
    .await;
    assert_eq!(ids(&found), ["bob"], "{found}");
    // §C.4.3.1: what alice may read.
    let found = post(
        &s,
        &pep,
        "/access/v1/search/resource",
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "can_read"}, "resource": {"type": "record"}}),
    )
    .await;
    assert_eq!(ids(&found).len(), 7, "{found}");
    assert!(ids(&found).contains(&"record-1".to_owned()));
    // §C.4.3.3: what an admin may write: the archived record only.
    let found = post(
        &s,
        &pep,
        "/access/v1/search/resource",
        json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
               "action": {"name": "can_write"}, "resource": {"type": "record"}}),
    )
    .await;
    assert_eq!(ids(&found), ["record-2"], "{found}");
    // §C.4.4.1: what alice may do on record-1 (no soft delete without the
    // action's properties, and `can_sign` is for agents).
    let found = post(
        &s,
        &pep,
        "/access/v1/search/action",
        json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}),
    )
    .await;
    assert_eq!(ids(&found), ["can_read", "can_write"], "{found}");
    // §C.4.4.3: an admin on an archived record.
    let found = post(
        &s,
        &pep,
        "/access/v1/search/action",
        json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
               "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}}),
    )
    .await;
    assert_eq!(ids(&found), ["can_read", "can_write"], "{found}");
    // Every result, fed back as an evaluation, is allowed (§8 semantics).
    for name in ids(&found) {
        assert!(
            decision(
                &s,
                &pep,
                json!({"subject": {"type": "user", "id": "bob", "properties": {"role": "admin"}},
                       "action": {"name": name},
                       "resource": {"type": "record", "id": "record-2", "properties": {"status": "archived"}}})
            )
            .await
        );
    }
    // §C.4.6: an unknown id or type is an empty result, not an error.
    let none = post(
        &s,
        &pep,
        "/access/v1/search/action",
        json!({"subject": {"type": "user", "id": "nonexistent-user"}, "resource": {"type": "record", "id": "record-1"}}),
    )
    .await;
    assert_eq!(none["results"], json!([]), "{none}");
    let none = post(
        &s,
        &pep,
        "/access/v1/search/subject",
        json!({"subject": {"type": "spaceship"}, "action": {"name": "can_read"},
               "resource": {"type": "record", "id": "record-1"}}),
    )
    .await;
    assert_eq!(none["results"], json!([]), "{none}");
}

async fn searches_page_through_every_result_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    load_fixture(&s).await;
    let (pep, _) = tenant_token(&s, "default", "pep").await;
    let body = |page: Value| {
        json!({"subject": {"type": "user", "id": "alice"}, "action": {"name": "can_read"},
               "resource": {"type": "record"}, "page": page})
    };
    let mut seen = Vec::new();
    let mut page = json!({"limit": 2});
    let mut pages = 0;
    loop {
        let found = post(&s, &pep, "/access/v1/search/resource", body(page.clone())).await;
        pages += 1;
        let got = ids(&found);
        assert!(got.len() <= 2, "{found}");
        assert_eq!(found["page"]["count"], got.len(), "{found}");
        seen.extend(got);
        let next = found["page"]["next_token"].as_str().unwrap().to_owned();
        if next.is_empty() {
            break;
        }
        assert!(pages < 10, "paging does not end");
        page = json!({"limit": 2, "token": next});
    }
    let want: Vec<String> = (1..=7).map(|i| format!("record-{i}")).collect();
    assert_eq!(seen, want);
    assert_eq!(pages, 4);
    // A token belongs to the search it came from.
    let first = post(&s, &pep, "/access/v1/search/resource", body(json!({"limit": 1}))).await;
    let token = first["page"]["next_token"].as_str().unwrap().to_owned();
    assert!(!token.is_empty());
    let r = s
        .req_as(&pep, Method::POST, "/access/v1/search/resource")
        .json(
            &json!({"subject": {"type": "user", "id": "bob"}, "action": {"name": "can_read"},
                      "resource": {"type": "record"}, "page": {"token": token}}),
        )
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["field"], "page.token", "{p}");
    // §C.4.5.4-style: a page object is accepted on any search.
    let found = post(
        &s,
        &pep,
        "/access/v1/search/subject",
        json!({"subject": {"type": "user"}, "action": {"name": "can_read"},
               "resource": {"type": "record", "id": "record-1"}, "page": {"limit": 1}}),
    )
    .await;
    assert_eq!(ids(&found), ["alice"], "{found}");
    assert!(!found["page"]["next_token"].as_str().unwrap().is_empty());
}

async fn searches_refuse_what_the_spec_calls_malformed(backend: Backend) {
    let s = TestServer::start(backend).await;
    load_fixture(&s).await;
    let (pep, _) = tenant_token(&s, "default", "pep").await;
    // §C.4.7.1 and §C.4.7.2.
    let cases = [
        (
            "subject",
            json!({"subject": {"type": "user"}, "resource": {"type": "record", "id": "record-1"}}),
        ),
        (
            "resource",
            json!({"action": {"name": "can_read"}, "resource": {"type": "record"}}),
        ),
        ("action", json!({"subject": {"type": "user", "id": "alice"}})),
        (
            "subject",
            json!({"subject": {"type": "user"}, "action": {"name": "can_read"}, "resource": {"type": "record"}}),
        ),
        (
            "resource",
            json!({"subject": {"type": "user"}, "action": {"name": "can_read"}, "resource": {"type": "record"}}),
        ),
        (
            "subject",
            json!({"subject": "user", "action": {"name": "can_read"}, "resource": {"type": "record", "id": "record-1"}}),
        ),
    ];
    for (kind, body) in cases {
        let r = s
            .req_as(&pep, Method::POST, &format!("/access/v1/search/{kind}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::BAD_REQUEST).await;
    }
    // A JSON body under another content type is refused before it is read.
    let r = s
        .req_as(&pep, Method::POST, "/access/v1/search/action")
        .header("content-type", "text/plain")
        .body(r#"{"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}"#)
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
    // A token that may not decide may not search either.
    let (reader, _) = tenant_token(&s, "default", "auditor").await;
    let r = s
        .req_as(&reader, Method::POST, "/access/v1/search/action")
        .json(&json!({"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "record-1"}}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
}

async fn agents_are_searched_from_the_registry(backend: Backend) {
    let s = TestServer::start(backend).await;
    let reader = agent(&s, "reader", &[]).await;
    let _other = agent(&s, "other", &[]).await;
    json_ok(
        s.req(Method::POST, "/v1/grants")
            .json(&json!({"subject": {"type": "agent", "id": reader.id}, "action": "read"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let found = post(
        &s,
        &s.token,
        "/access/v1/search/subject",
        json!({"subject": {"type": "agent"}, "action": {"name": "read"},
               "resource": {"type": "Resource", "id": "acct-1"}}),
    )
    .await;
    assert_eq!(ids(&found), std::slice::from_ref(&reader.id), "{found}");
    assert_eq!(found["results"][0]["type"], "agent");
    let found = post(
        &s,
        &s.token,
        "/access/v1/search/action",
        json!({"subject": {"type": "agent", "id": reader.id}, "resource": {"type": "Resource", "id": "acct-1"}}),
    )
    .await;
    assert_eq!(ids(&found), ["read"], "{found}");
}
