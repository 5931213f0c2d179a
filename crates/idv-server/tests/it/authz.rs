//! Authorization over real HTTP: the AuthZEN Todo interop scenario, policy
//! versions (validate, activate, roll back, what-if), roles and grants,
//! human approval, delegation chains, the agent communication graph, tenant
//! isolation, and two PostgreSQL nodes picking up a new version.

use std::path::PathBuf;

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delegation::{ACCESS, agent, by_agent, delegate, exchanged, own_token};
use crate::{all_events, eventually_within, get, get_as, json_ok, problem, start_manual, tenant_token, transition};

backend_tests!(
    the_authzen_todo_scenario_gives_every_expected_decision,
    versions_validate_activate_roll_back_and_compare,
    roles_and_grants_decide_for_agents_and_are_visible_as_data,
    approval_is_requested_given_once_and_audited,
    a_delegated_token_is_allowed_only_if_every_party_is,
    agent_to_agent_calls_build_the_graph,
    tenants_do_not_see_each_others_policies_or_agents,
    bad_requests_get_clear_errors,
    a_second_postgres_node_uses_a_new_version_within_a_second,
    permissions_include_what_policies_naming_its_roles_and_groups_permit,
);

fn example(name: &str) -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../policies/examples/authzen-todo")
        .join(name);
    std::fs::read_to_string(p).unwrap()
}

/// The AuthZEN interop decisions, vendored in `tests/conformance` (a test
/// whose data is missing fails: it is never counted as passed).
fn conformance() -> Value {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/authzen/todo-decisions-1_0-02.json");
    let s = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&s).unwrap()
}

async fn upload(s: &TestServer, policies: &str, schema: Option<&str>, activate: bool) -> Value {
    json_ok(
        s.req(Method::POST, "/v1/policies")
            .json(&json!({"policies": policies, "schema": schema, "activate": activate}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await
}

async fn evaluate(s: &TestServer, token: &str, body: &Value) -> Value {
    json_ok(
        s.req_as(token, Method::POST, "/access/v1/evaluation")
            .json(body)
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

async fn decide(s: &TestServer, subject: Value, action: &str, resource: Value, context: Value) -> Value {
    evaluate(
        s,
        &s.token,
        &json!({"subject": subject, "action": {"name": action}, "resource": resource, "context": context}),
    )
    .await
}

fn agent_ref(id: &str) -> Value {
    json!({"type": "agent", "id": id})
}

fn account() -> Value {
    json!({"type": "Resource", "id": "acct-1"})
}

async fn load_todo(s: &TestServer) {
    upload(
        s,
        &example("policies.cedar"),
        Some(&example("schema.cedarschema")),
        true,
    )
    .await;
    let entities: Value = serde_json::from_str(&example("entities.json")).unwrap();
    let r = s
        .req(Method::POST, "/v1/entities")
        .json(&json!({ "entities": entities }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(r, StatusCode::OK).await["stored"], 5);
}

async fn the_authzen_todo_scenario_gives_every_expected_decision(backend: Backend) {
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
    assert_eq!(meta["policy_decision_point"], s.base.as_str());
    assert_eq!(
        meta["access_evaluation_endpoint"],
        format!("{}/access/v1/evaluation", s.base)
    );
    assert_eq!(
        meta["access_evaluations_endpoint"],
        format!("{}/access/v1/evaluations", s.base)
    );
    let data = conformance();
    load_todo(&s).await;
    // The PEP (the Todo backend) holds a `pep` token: decisions only.
    let (pep, _) = tenant_token(&s, "default", "pep").await;
    let single = data["evaluation"].as_array().unwrap();
    assert_eq!(single.len(), 40);
    for case in single {
        let got = evaluate(&s, &pep, &case["request"]).await;
        assert_eq!(got["decision"], case["expected"], "{} -> {got}", case["request"]);
    }
    for case in data["evaluations"].as_array().unwrap() {
        let got = json_ok(
            s.req_as(&pep, Method::POST, "/access/v1/evaluations")
                .json(&case["request"])
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
        let decisions: Vec<&Value> = got["evaluations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["decision"])
            .collect();
        let expected: Vec<&Value> = case["expected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| &e["decision"])
            .collect();
        assert_eq!(decisions, expected, "{}", case["request"]);
    }
    // Each decision is audited, with the determining policies.
    let decisions: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "authz.decision")
        .collect();
    assert_eq!(decisions.len(), 40 + 6);
    let rick_create = decisions
        .iter()
        .find(|e| e["details"]["action"] == "can_create_todo" && e["outcome"] == "success")
        .unwrap();
    assert_eq!(
        rick_create["details"]["parties"][0]["determining"],
        json!(["todo-create"])
    );
    // The PEP token may not change policies.
    let r = s
        .req_as(&pep, Method::POST, "/v1/policies")
        .json(&json!({"policies": ""}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    // Short-circuit semantics (AuthZEN §7.1.2.1).
    let batch = |semantic: &str| {
        json!({
            "subject": {"type": "user", "id": "CiRmZDQ2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"},
            "resource": {"type": "todo", "id": "t1"},
            "options": {"evaluations_semantic": semantic},
            "evaluations": [
                {"action": {"name": "can_read_todos"}},
                {"action": {"name": "can_create_todo"}},
                {"action": {"name": "can_read_todos"}},
                {}
            ]
        })
    };
    let run = |b: Value| {
        let s = &s;
        let pep = pep.clone();
        async move {
            json_ok(
                s.req_as(&pep, Method::POST, "/access/v1/evaluations")
                    .json(&b)
                    .send()
                    .await
                    .unwrap(),
                StatusCode::OK,
            )
            .await["evaluations"]
                .as_array()
                .unwrap()
                .clone()
        }
    };
    let all = run(batch("execute_all")).await;
    assert_eq!(all.len(), 4);
    assert_eq!(all[3]["decision"], false);
    assert_eq!(all[3]["context"]["error"]["status"], 400, "{}", all[3]);
    assert_eq!(run(batch("deny_on_first_deny")).await.len(), 2);
    assert_eq!(run(batch("permit_on_first_permit")).await.len(), 1);
}

async fn versions_validate_activate_roll_back_and_compare(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Errors come with positions.
    let bad = "@id(\"ok\") permit(principal, action, resource);\n@id(\"typo\")\npermit(principal is Agent, action == Action::\"read\", resource) when { principal.nmae == \"x\" };";
    let r = s
        .req(Method::POST, "/v1/policies")
        .json(&json!({"policies": bad}))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["type"], "urn:idv:problem:invalid-policy");
    let e = &p["errors"][0];
    assert_eq!(e["policy_id"], "typo", "{p}");
    assert_eq!(e["line"], 3, "{p}");
    assert!(e["column"].as_u64().unwrap() > 1, "{p}");
    let r = s
        .req(Method::POST, "/v1/policies/validate")
        .json(&json!({"policies": "permit(principal action, resource);"}))
        .send()
        .await
        .unwrap();
    let v = json_ok(r, StatusCode::OK).await;
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 1);
    // Nothing active: default deny for an active agent.
    let a = agent(&s, "reader", &[]).await;
    let d = decide(&s, agent_ref(&a.id), "read", account(), json!({})).await;
    assert_eq!(d["decision"], false);
    let v1 = upload(
        &s,
        r#"@id("agents-read") permit(principal is Agent, action == Action::"read", resource);"#,
        None,
        true,
    )
    .await;
    assert_eq!(v1["version"], 1);
    let d = decide(&s, agent_ref(&a.id), "read", account(), json!({})).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(d["context"]["policies"], json!(["agents-read"]));
    assert_eq!(d["context"]["policy_version"], 1);
    // v2, stored but not active; what-if shows what would change.
    let v2 = upload(
        &s,
        r#"@id("agents-read") permit(principal is Agent, action == Action::"read", resource) when { context.hour >= 25 };"#,
        None,
        false,
    )
    .await;
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["active"], false);
    let report = json_ok(
        s.req(Method::POST, "/v1/policies/test")
            .json(&json!({"version": 2, "requests": [
                {"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account()},
                {"subject": agent_ref(&a.id), "action": {"name": "write"}, "resource": account()},
            ]}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(report["active_version"], 1);
    assert_eq!(report["changed"], 1, "{report}");
    assert_eq!(report["results"][0]["active"], "allow");
    assert_eq!(report["results"][0]["candidate"], "deny");
    assert_eq!(report["results"][1]["changed"], false);
    let r = s.req(Method::POST, "/v1/policies/2/activate").send().await.unwrap();
    assert_eq!(json_ok(r, StatusCode::OK).await["active"], true);
    let list = get(&s, "/v1/policies").await;
    assert_eq!(list["active"], 2);
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        decide(&s, agent_ref(&a.id), "read", account(), json!({})).await["decision"],
        false
    );
    let r = s.req(Method::POST, "/v1/policies/2/activate").send().await.unwrap();
    problem(r, StatusCode::CONFLICT).await;
    let r = s.req(Method::POST, "/v1/policies/rollback").send().await.unwrap();
    assert_eq!(json_ok(r, StatusCode::OK).await["version"], 1);
    assert_eq!(
        decide(&s, agent_ref(&a.id), "read", account(), json!({})).await["decision"],
        true
    );
    let one = get(&s, "/v1/policies/1").await;
    assert!(one["policies"].as_str().unwrap().contains("agents-read"));
    problem(
        s.req(Method::GET, "/v1/policies/9").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let actions: Vec<String> = all_events(&s)
        .await
        .iter()
        .filter_map(|e| {
            e["action"]
                .as_str()
                .filter(|a| a.starts_with("policy."))
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        actions,
        [
            "policy.version.create",
            "policy.version.activate",
            "policy.version.create",
            "policy.version.activate",
            "policy.version.activate",
            "policy.version.rollback"
        ],
        "the second activation of v2 was refused and audited as a failure"
    );
    // A version whose schema drops an action a role gives says so when it
    // becomes active.
    let schema = r#"action "payments:send" in [Action::"transfer"]
        appliesTo { principal: [Agent], resource: [Resource], context: { limit: Long } };"#;
    let v3 = upload(&s, "", Some(schema), true).await;
    assert!(v3.get("warnings").is_none(), "{v3}");
    let r = s
        .req(Method::PUT, "/v1/roles/sender")
        .json(&json!({"actions": ["payments:send"]}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": agent_ref(&a.id), "action": "payments:send", "condition": "context.limit < 100"}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::CREATED).await;
    let v4 = upload(&s, "", None, true).await;
    let warnings: Vec<&str> = v4["warnings"]
        .as_array()
        .expect("warnings")
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert!(warnings.iter().any(|w| w.contains("role `sender`")), "{v4}");
    assert!(warnings.iter().any(|w| w.contains("no longer validates")), "{v4}");
    let r = s.req(Method::POST, "/v1/policies/rollback").send().await.unwrap();
    let back = json_ok(r, StatusCode::OK).await;
    assert_eq!(back["version"], 3);
    assert!(back.get("warnings").is_none(), "{back}");
}

async fn roles_and_grants_decide_for_agents_and_are_visible_as_data(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let a = agent(&s, "payer", &[]).await;
    let r = s
        .req(Method::PATCH, &format!("/v1/agents/{}", a.id))
        .json(&json!({"class": "payments"}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    // A role of actions; granted to the class; a single action to the agent for 1h.
    let r = s
        .req(Method::PUT, "/v1/roles/payer")
        .json(&json!({"description": "moves money", "actions": ["transfer", "read"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(r, StatusCode::OK).await["actions"], json!(["read", "transfer"]));
    let r = s
        .req(Method::PUT, "/v1/roles/bad")
        .json(&json!({"actions": ["fly"]}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        decide(&s, agent_ref(&a.id), "transfer", account(), json!({})).await["decision"],
        false
    );
    let g = json_ok(
        s.req(Method::POST, "/v1/grants")
            .json(&json!({"subject": {"type": "class", "id": "payments"}, "role": "payer"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    json_ok(
        s.req(Method::POST, "/v1/grants")
            .json(&json!({"subject": {"type": "agent", "id": a.id}, "action": "write", "expires": "1h"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    // A conditional grant: invoke only agents in prod.
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": {"type": "agent", "id": a.id}, "action": "invoke",
                      "condition": "resource.nosuch == 1"}))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["errors"][0]["message"].as_str().unwrap().contains("nosuch"), "{p}");
    // Placed in the condition the caller wrote, not the policy around it.
    assert_eq!(p["errors"][0]["source"], "condition", "{p}");
    assert_eq!(
        (&p["errors"][0]["line"], &p["errors"][0]["column"]),
        (&json!(1), &json!(1)),
        "{p}"
    );
    let d = decide(&s, agent_ref(&a.id), "transfer", account(), json!({"amount": 10})).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(d["context"]["policies"], json!(["role:payer"]));
    assert_eq!(
        decide(&s, agent_ref(&a.id), "write", account(), json!({})).await["decision"],
        true
    );
    // What it may do, as data; and what it used.
    let perms = get(&s, &format!("/v1/agents/{}/permissions", a.id)).await;
    assert_eq!(perms["roles"], json!(["payer"]));
    assert_eq!(perms["actions"], json!(["read", "transfer", "write"]));
    assert_eq!(perms["grants"].as_array().unwrap().len(), 1);
    let used: Vec<&str> = perms["usage"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["action"].as_str().unwrap())
        .collect();
    assert!(used.contains(&"transfer") && used.contains(&"write"), "{perms}");
    // Scopes are a view of the same grants: the agent may ask for the
    // actions its roles give, and nothing else.
    let token = |scope: &'static str| {
        let (s, a) = (&s, &a);
        async move {
            s.http
                .post(s.url("/oauth2/token"))
                .basic_auth(&a.id, Some(&a.secret))
                .form(&[("grant_type", "client_credentials"), ("scope", scope)])
                .send()
                .await
                .unwrap()
        }
    };
    let t = json_ok(token("transfer write").await, StatusCode::OK).await;
    assert_eq!(t["scope"], "transfer write");
    assert_eq!(token("invoke").await.status(), StatusCode::BAD_REQUEST);
    // The single-action grant lapses, and says so where it is listed.
    let expired = |perms: &Value| -> Vec<bool> {
        perms["grants"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["expired"].as_bool().unwrap())
            .collect()
    };
    assert_eq!(
        expired(&get(&s, &format!("/v1/agents/{}/permissions", a.id)).await),
        [false]
    );
    clock.advance_secs(3601);
    assert_eq!(
        decide(&s, agent_ref(&a.id), "write", account(), json!({})).await["decision"],
        false
    );
    assert_eq!(
        expired(&get(&s, &format!("/v1/agents/{}/permissions", a.id)).await),
        [true]
    );
    assert_eq!(
        decide(&s, agent_ref(&a.id), "transfer", account(), json!({})).await["decision"],
        true
    );
    // Suspended: denied whatever the grants say.
    assert_eq!(
        transition(&s, &s.token, &a.id, "suspend", "inv").await.status(),
        StatusCode::OK
    );
    let d = decide(&s, agent_ref(&a.id), "transfer", account(), json!({})).await;
    assert_eq!(d["decision"], false);
    assert_eq!(d["context"]["reason"], "agent_not_active");
    // A role held through a grant cannot be deleted; the grant can.
    problem(
        s.req(Method::DELETE, "/v1/roles/payer").send().await.unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    let gid = g["id"].as_str().unwrap();
    assert_eq!(
        s.req(Method::DELETE, &format!("/v1/grants/{gid}"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        s.req(Method::DELETE, "/v1/roles/payer").send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let events = all_events(&s).await;
    for action in ["role.create", "grant.create", "grant.delete", "role.delete"] {
        assert!(events.iter().any(|e| e["action"] == action), "{action}");
    }
}

async fn approval_is_requested_given_once_and_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(
        &s,
        r#"@id("small") permit(principal is Agent, action == Action::"transfer", resource) when { context has amount && context.amount <= 10000 };
@id("large") @requires_approval("transfers above 10,000 need the owner's approval")
permit(principal is Agent, action == Action::"transfer", resource) when { context has amount && context.amount > 10000 };"#,
        None,
        true,
    )
    .await;
    let a = agent(&s, "trader", &[]).await;
    assert_eq!(
        decide(&s, agent_ref(&a.id), "transfer", account(), json!({"amount": 500})).await["decision"],
        true
    );
    let big = json!({"amount": 250000, "currency": "EUR"});
    let d = decide(&s, agent_ref(&a.id), "transfer", account(), big.clone()).await;
    assert_eq!(d["decision"], false);
    assert_eq!(d["context"]["decision"], "requires_approval");
    assert_eq!(d["context"]["approval"]["status"], "pending");
    assert_eq!(d["context"]["approval"]["assignee"], "alice@bank.example");
    let id = d["context"]["approval"]["id"].as_str().unwrap().to_owned();
    // Asking again does not pile up requests.
    let again = decide(&s, agent_ref(&a.id), "transfer", account(), big.clone()).await;
    assert_eq!(again["context"]["approval"]["id"], id.as_str());
    let pending = get(&s, "/v1/approvals?status=pending").await["items"].clone();
    assert_eq!(pending.as_array().unwrap().len(), 1);
    assert_eq!(
        pending[0]["reasons"],
        json!(["transfers above 10,000 need the owner's approval"])
    );
    // An operator approves; the same request goes through once.
    let (operator, _) = tenant_token(&s, "default", "operator").await;
    let r = s
        .req_as(&operator, Method::POST, &format!("/v1/approvals/{id}/approve"))
        .json(&json!({"comment": "checked with the desk"}))
        .send()
        .await
        .unwrap();
    let approved = json_ok(r, StatusCode::OK).await;
    assert_eq!(approved["status"], "approved");
    // A different amount is a different request.
    assert_eq!(
        decide(&s, agent_ref(&a.id), "transfer", account(), json!({"amount": 250001})).await["context"]["decision"],
        "requires_approval"
    );
    let ok = decide(&s, agent_ref(&a.id), "transfer", account(), big.clone()).await;
    assert_eq!(ok["decision"], true, "{ok}");
    assert_eq!(ok["context"]["approval"]["status"], "used");
    // Both allowed transfers count as used, the approved one too; the
    // requests that waited for approval do not.
    let perms = get(&s, &format!("/v1/agents/{}/permissions", a.id)).await;
    let transfers: Vec<&Value> = perms["usage"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["action"] == "transfer")
        .collect();
    assert_eq!(transfers.len(), 1, "{perms}");
    assert_eq!(transfers[0]["count"], 2, "{perms}");
    let next = decide(&s, agent_ref(&a.id), "transfer", account(), big.clone()).await;
    assert_eq!(next["decision"], false, "an approval is good for one request");
    let second = next["context"]["approval"]["id"].as_str().unwrap().to_owned();
    assert_ne!(second, id);
    let r = s
        .req(Method::POST, &format!("/v1/approvals/{second}/reject"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(r, StatusCode::OK).await["status"], "rejected");
    let r = s
        .req(Method::POST, &format!("/v1/approvals/{second}/approve"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;
    let (auditor, _) = tenant_token(&s, "default", "auditor").await;
    let r = s
        .req_as(&auditor, Method::POST, &format!("/v1/approvals/{second}/approve"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;
    let events = all_events(&s).await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "approval.approve" && e["details"]["comment"] == "checked with the desk")
    );
    assert!(events.iter().any(|e| e["action"] == "approval.reject"));
    // Every approval can be reached a page at a time, newest first.
    for amount in [300_000, 300_001, 300_002] {
        decide(&s, agent_ref(&a.id), "transfer", account(), json!({"amount": amount})).await;
    }
    let all: Vec<Value> = get(&s, "/v1/approvals").await["items"].as_array().unwrap().clone();
    assert!(all.len() >= 5, "{all:?}");
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = get(&s, &format!("/v1/approvals?limit=2{cursor}")).await;
        seen.extend(page["items"].as_array().unwrap().iter().map(|x| x["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    let ids: Vec<Value> = all.iter().map(|x| x["id"].clone()).collect();
    assert_eq!(seen, ids);
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "authz.decision" && e["details"]["approval"]["status"] == "used")
    );
}

async fn a_delegated_token_is_allowed_only_if_every_party_is(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(
        &s,
        r#"@id("readers") permit(principal in Role::"reader", action == Action::"read", resource);"#,
        None,
        true,
    )
    .await;
    json_ok(
        s.req(Method::PUT, "/v1/roles/reader")
            .json(&json!({"actions": []}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let boss = agent(&s, "boss", &["read", "write"]).await;
    let helper = agent(&s, "helper", &["read", "write"]).await;
    for who in [&boss, &helper] {
        json_ok(
            s.req(Method::POST, "/v1/grants")
                .json(&json!({"subject": {"type": "agent", "id": who.id}, "role": "reader"}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
    }
    delegate(&s, by_agent(&boss), &helper, &["read", "write"], 1).await;
    let boss_token = own_token(&s, &boss).await;
    let token = exchanged(&s, &helper, &boss_token, ACCESS, &[("scope", "read")]).await;
    let as_token = |t: &str| json!({"type": "token", "id": t});
    let d = decide(&s, as_token(&token), "read", account(), json!({})).await;
    assert_eq!(d["decision"], true, "{d}");
    assert_eq!(d["context"]["parties"].as_array().unwrap().len(), 2, "{d}");
    // The token's scope bounds it: `write` is not in it.
    let d = decide(&s, as_token(&token), "write", account(), json!({})).await;
    assert_eq!(d["decision"], false);
    assert_eq!(d["context"]["reason"], "scope");
    // Suspending and resuming the actor, or the subject, kills the tokens
    // issued before for good: a resumption revives none of them.
    let mut token = token;
    for who in [&helper, &boss] {
        for verb in ["suspend", "resume"] {
            assert_eq!(
                transition(&s, &s.token, &who.id, verb, "investigation").await.status(),
                StatusCode::OK
            );
        }
        let d = decide(&s, as_token(&token), "read", account(), json!({})).await;
        assert_eq!(d["decision"], false, "{d}");
        assert_eq!(d["context"]["reason"], "token_inactive", "{d}");
        // Tokens issued after the resumption are good (a few milliseconds
        // on: one issued in its very millisecond is refused).
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let boss_token = own_token(&s, &boss).await;
        token = exchanged(&s, &helper, &boss_token, ACCESS, &[("scope", "read")]).await;
        let d = decide(&s, as_token(&token), "read", account(), json!({})).await;
        assert_eq!(d["decision"], true, "{d}");
    }
    // The delegator loses the role: the delegated call is denied too.
    let grants = get(&s, &format!("/v1/grants?subject_type=agent&subject_id={}", boss.id)).await;
    let gid = grants["items"][0]["id"].as_str().unwrap();
    s.req(Method::DELETE, &format!("/v1/grants/{gid}"))
        .send()
        .await
        .unwrap();
    let d = decide(&s, as_token(&token), "read", account(), json!({})).await;
    assert_eq!(d["decision"], false, "{d}");
    // Inactive or foreign tokens are denied, and never echoed in the audit log.
    let d = decide(&s, as_token("not-a-token"), "read", account(), json!({})).await;
    assert_eq!(d["context"]["reason"], "token_inactive");
    let text = serde_json::to_string(&all_events(&s).await).unwrap();
    assert!(!text.contains(&token), "a bearer token reached the audit log");
}

async fn agent_to_agent_calls_build_the_graph(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(
        &s,
        r#"@id("same-owner") permit(principal is Agent, action == Action::"invoke", resource is Agent) when { principal.owner == resource.owner };"#,
        None,
        true,
    )
    .await;
    let a = agent(&s, "caller", &[]).await;
    let b = agent(&s, "callee", &[]).await;
    for _ in 0..2 {
        let d = decide(&s, agent_ref(&a.id), "invoke", agent_ref(&b.id), json!({})).await;
        assert_eq!(d["decision"], true, "{d}");
    }
    // The schema's spelling of the type is the same callee.
    let d = decide(
        &s,
        agent_ref(&a.id),
        "invoke",
        json!({"type": "Agent", "id": b.id}),
        json!({}),
    )
    .await;
    assert_eq!(d["decision"], true, "{d}");
    let perms = get(&s, &format!("/v1/agents/{}/permissions", a.id)).await;
    assert_eq!(perms["usage"].as_array().unwrap().len(), 1, "{perms}");
    assert_eq!(perms["usage"][0]["resource_type"], "Agent", "{perms}");
    assert_eq!(perms["usage"][0]["count"], 3, "{perms}");
    assert_eq!(
        transition(&s, &s.token, &b.id, "suspend", "x").await.status(),
        StatusCode::OK
    );
    // The policy permits it; a suspended callee is refused all the same.
    let d = decide(&s, agent_ref(&a.id), "invoke", agent_ref(&b.id), json!({})).await;
    assert_eq!(d["decision"], false, "{d}");
    assert_eq!(d["context"]["reason"], "callee_not_active", "{d}");
    let g = get(&s, &format!("/v1/agents/{}/graph", a.id)).await;
    let calls = g["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["callee"], b.id.as_str());
    assert_eq!(calls[0]["allowed"], 3);
    assert_eq!(calls[0]["denied"], 1);
    let back = get(&s, &format!("/v1/agents/{}/graph", b.id)).await;
    assert_eq!(back["called_by"].as_array().unwrap().len(), 1);
    let first_seen: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "agent.edge.first_seen")
        .collect();
    assert_eq!(first_seen.len(), 1, "a new edge is flagged once");
    assert_eq!(first_seen[0]["details"]["callee"], b.id.as_str());
    problem(
        s.req(Method::GET, &format!("/v1/agents/{}/graph", crate::ghost_id()))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn tenants_do_not_see_each_others_policies_or_agents(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(&s, r#"@id("all") permit(principal, action, resource);"#, None, true).await;
    let a = agent(&s, "home", &[]).await;
    assert_eq!(
        decide(&s, agent_ref(&a.id), "read", account(), json!({})).await["decision"],
        true
    );
    let (other_admin, _) = tenant_token(&s, "other", "admin").await;
    let (other_pep, _) = tenant_token(&s, "other", "pep").await;
    // The other tenant has no policies, and cannot decide about our agent.
    assert!(
        get_as(&s, &other_admin, "/v1/policies").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let d = evaluate(
        &s,
        &other_pep,
        &json!({"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account()}),
    )
    .await;
    assert_eq!(d["decision"], false);
    assert_eq!(d["context"]["reason"], "unknown_subject");
    problem(
        s.req_as(&other_admin, Method::GET, &format!("/v1/agents/{}/permissions", a.id))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        get_as(&s, &other_admin, "/v1/roles")
            .await
            .as_array()
            .unwrap()
            .is_empty()
    );
}

async fn bad_requests_get_clear_errors(backend: Backend) {
    let s = TestServer::start(backend).await;
    upload(&s, r#"@id("all") permit(principal, action, resource);"#, None, true).await;
    let a = agent(&s, "x", &[]).await;
    let post = |body: Value| s.req(Method::POST, "/access/v1/evaluation").json(&body).send();
    problem(
        post(json!({"subject": agent_ref(&a.id)})).await.unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    let p = problem(
        post(
            json!({"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account(),
                    "context": {"amount": 1.5}}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("context.amount"), "{p}");
    assert_eq!(p["field"], "context.amount", "{p}");
    let p = problem(
        post(json!({"subject": agent_ref(&a.id), "action": {"name": "read"},
                    "resource": {"type": "Resource", "id": "r", "properties": {"owner": null}}}))
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(p["field"], "resource.properties.owner", "{p}");
    // An empty id names nothing: refused alone, answered in place in a batch.
    let p = problem(
        post(json!({"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": {"type": "Resource", "id": ""}}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(p["field"], "resource.id", "{p}");
    // Query values: the one that is wrong is named.
    let r = s
        .req(Method::GET, "/v1/grants?subject_type=agent&subject_id=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, StatusCode::BAD_REQUEST).await["field"], "subject_id");
    // Grants are listed a page at a time, oldest first.
    for class in ["pg-a", "pg-b", "pg-c"] {
        let r = s
            .req(Method::POST, "/v1/grants")
            .json(&json!({"subject": {"type": "class", "id": class}, "action": "read"}))
            .send()
            .await
            .unwrap();
        json_ok(r, StatusCode::CREATED).await;
    }
    let all = get(&s, "/v1/grants").await["items"].clone();
    assert!(all.as_array().unwrap().len() >= 3, "{all}");
    let (mut seen, mut cursor) = (Vec::new(), String::new());
    loop {
        let page = get(&s, &format!("/v1/grants?limit=2{cursor}")).await;
        seen.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(Value::Array(seen), all);
    // Descriptions are bounded like every other text.
    let r = s
        .req(Method::POST, "/v1/policies")
        .json(&json!({"policies": "", "description": "x".repeat(1025)}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(r, StatusCode::UNPROCESSABLE_ENTITY).await["field"],
        "description"
    );
    let r = s
        .req(Method::POST, "/access/v1/evaluations")
        .json(&json!({"subject": agent_ref(&a.id), "action": {"name": "read"},
                      "evaluations": [{"resource": account()}, {"resource": {"type": "Resource", "id": ""}}]}))
        .send()
        .await
        .unwrap();
    let v = json_ok(r, StatusCode::OK).await;
    assert_eq!(v["evaluations"][0]["decision"], true, "{v}");
    assert_eq!(v["evaluations"][1]["decision"], false, "{v}");
    assert_eq!(v["evaluations"][1]["context"]["error"]["status"], 400, "{v}");
    // An item with a value Cedar cannot take has the status it would alone.
    let r = s
        .req(Method::POST, "/access/v1/evaluations")
        .json(
            &json!({"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account(),
                      "evaluations": [{}, {"context": {"amount": 1.5}}]}),
        )
        .send()
        .await
        .unwrap();
    let v = json_ok(r, StatusCode::OK).await;
    assert_eq!(v["evaluations"][0]["decision"], true, "{v}");
    assert_eq!(v["evaluations"][1]["context"]["error"]["status"], 422, "{v}");
    // What-if: a request that cannot be decided is named by its place.
    let r = s
        .req(Method::POST, "/v1/policies/test")
        .json(&json!({"policies": "permit(principal, action, resource);", "requests": [
            {"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account()},
            {"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account(), "context": {"amount": 1.5}},
        ]}))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["field"], "requests[1].context.amount", "{p}");
    // Text nested too deep for Cedar's recursive parser is refused, with
    // its position, and the server lives on.
    let deep = format!(
        "permit(principal, action, resource) when {{ {}true{} }};",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    let r = s
        .req(Method::POST, "/v1/policies/validate")
        .json(&json!({"policies": deep}))
        .send()
        .await
        .unwrap();
    let v = json_ok(r, StatusCode::OK).await;
    assert_eq!(v["valid"], false);
    assert!(v["errors"][0]["message"].as_str().unwrap().contains("nested"), "{v}");
    assert_eq!(v["errors"][0]["line"], 1, "{v}");
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": agent_ref(&a.id), "action": "read",
                      "condition": format!("{}true{}", "[".repeat(300), "]".repeat(300))}))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["errors"][0]["source"], "condition", "{p}");
    assert_eq!(get(&s, "/healthz").await["status"], "ok");
    // A grant's expiry in the past is named as sent.
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": agent_ref(&a.id), "action": "read", "expires": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(r, StatusCode::UNPROCESSABLE_ENTITY).await["field"], "expires");
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": agent_ref(&a.id), "action": "read", "expires": "0s"}))
        .send()
        .await
        .unwrap();
    let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert!(p["detail"].as_str().unwrap().contains("out of range"), "{p}");
    let p = problem(
        post(
            json!({"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account(),
                    "context": {"now": 5}}),
        )
        .await
        .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("context.now"), "{p}");
    let r = s
        .req(Method::POST, "/access/v1/evaluations")
        .json(&json!({"options": {"evaluations_semantic": "sometimes"}}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST).await;
    // Unknown actions and resource types are denials, not errors.
    let d = decide(&s, agent_ref(&a.id), "fly", account(), json!({})).await;
    assert_eq!(d["context"]["reason"], "unknown_action");
    let d = decide(
        &s,
        agent_ref(&a.id),
        "read",
        json!({"type": "Spaceship", "id": "x"}),
        json!({}),
    )
    .await;
    assert_eq!(d["context"]["reason"], "unknown_resource_type");
    let r = s
        .req(Method::POST, "/v1/entities")
        .json(&json!({"entities": [{"uid": {"type": "Spaceship", "id": "x"}}]}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    // The directory follows the schema: what may be in what, one entry per
    // entity, and ids that name something; nothing of a refused batch stays.
    for (entities, says) in [
        (
            json!([{"uid": {"type": "Role", "id": "r"}, "parents": [{"type": "Agent", "id": a.id}]}]),
            "be in",
        ),
        (
            json!([{"uid": {"type": "Group", "id": "g"}}, {"uid": {"type": "Group", "id": "g"}}]),
            "twice",
        ),
        (json!([{"uid": {"type": "Group", "id": ""}}]), "1 to 512"),
    ] {
        let r = s
            .req(Method::POST, "/v1/entities")
            .json(&json!({"entities": entities}))
            .send()
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(p["detail"].as_str().unwrap().contains(says), "{p}");
    }
    assert!(
        !get(&s, "/v1/entities").await.to_string().contains("\"g\""),
        "a refused batch left nothing"
    );
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": {"type": "planet", "id": "x"}, "role": "r"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = s
        .req(Method::POST, "/v1/grants")
        .json(&json!({"subject": {"type": "class", "id": "c"}, "role": "nosuch"}))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
}

async fn a_second_postgres_node_uses_a_new_version_within_a_second(backend: Backend) {
    if backend != Backend::Postgres {
        return;
    }
    let s = TestServer::start(backend).await;
    let node2 = s.second_node().await.unwrap();
    let a = agent(&s, "two-nodes", &[]).await;
    let ask = json!({"subject": agent_ref(&a.id), "action": {"name": "read"}, "resource": account()});
    // Node 2 builds its engine (nothing active: deny).
    assert_eq!(evaluate(&node2, &node2.token, &ask).await["decision"], false);
    upload(&s, r#"@id("all") permit(principal, action, resource);"#, None, true).await;
    eventually_within("node 2 uses the new version", 1, || {
        let node2 = &node2;
        let ask = ask.clone();
        async move { evaluate(node2, &node2.token, &ask).await["decision"] == true }
    })
    .await;
}

/// Issue 21 item 15: "what may this agent do?" counts the policies that
/// name a role, group or class the agent is in, not only roles' own actions.
async fn permissions_include_what_policies_naming_its_roles_and_groups_permit(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "auditor", &[]).await;
    let policies = r#"
        @id("auditors-read") permit(principal in Role::"auditor", action == Action::"read", resource);
        @id("auditors-write-small") permit(principal in Role::"auditor", action == Action::"write", resource)
          when { context has amount && context.amount < 100 };
        @id("ops-invoke") permit(principal in Group::"ops", action == Action::"invoke", resource);
        @id("ops-transfer") permit(principal in Group::"ops", action == Action::"transfer", resource);
        @id("no-ops-transfer") forbid(principal in Group::"ops", action == Action::"transfer", resource);
        @id("someone-else") permit(principal in Role::"payer", action == Action::"transfer", resource);
    "#;
    upload(&s, policies, None, true).await;
    // A role that is only a name the policies use, granted to the agent;
    // a group it is in through the directory.
    let r = s
        .req(Method::PUT, "/v1/roles/auditor")
        .json(&json!({"actions": []}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    json_ok(
        s.req(Method::POST, "/v1/grants")
            .json(&json!({"subject": {"type": "agent", "id": a.id}, "role": "auditor"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let r = s
        .req(Method::POST, "/v1/entities")
        .json(&json!({"entities": [
            {"uid": {"type": "Group", "id": "ops"}, "attrs": {}, "parents": []},
            {"uid": {"type": "Agent", "id": a.id}, "attrs": {}, "parents": [{"type": "Group", "id": "ops"}]},
        ]}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    // The decisions agree with what the listing will say.
    assert_eq!(
        decide(&s, agent_ref(&a.id), "read", account(), json!({})).await["decision"],
        true
    );
    assert_eq!(
        decide(&s, agent_ref(&a.id), "transfer", account(), json!({})).await["decision"],
        false
    );
    let perms = get(&s, &format!("/v1/agents/{}/permissions", a.id)).await;
    assert_eq!(perms["roles"], json!(["auditor"]), "{perms}");
    assert_eq!(perms["actions"], json!(["invoke", "read"]), "{perms}");
    assert_eq!(perms["conditional_actions"], json!(["write"]), "{perms}");
    assert_eq!(perms["policies"]["read"], json!(["auditors-read"]), "{perms}");
    assert_eq!(perms["policies"]["write"], json!(["auditors-write-small"]), "{perms}");
    assert_eq!(perms["policies"]["invoke"], json!(["ops-invoke"]), "{perms}");
    // Forbidden outright, and a role the agent does not hold: not listed.
    assert!(perms["policies"].get("transfer").is_none(), "{perms}");
}
