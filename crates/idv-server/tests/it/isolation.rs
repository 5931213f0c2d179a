//! Tenant isolation and roles, endpoint by endpoint: a token of tenant B
//! can neither read nor change tenant A's records.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{all_events, create_agent, problem, tenant_token};

backend_tests!(
    other_tenants_data_is_invisible_and_immutable,
    roles_limit_what_tokens_do
);

async fn other_tenants_data_is_invisible_and_immutable(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (a_admin, a_token_id) = tenant_token(&s, "alpha", "admin").await;
    let (b_admin, b_token_id) = tenant_token(&s, "beta", "admin").await;
    let a_agent = create_agent(&s, &a_admin, "shared-name").await;
    // Names are unique per tenant, not globally.
    let b_agent = create_agent(&s, &b_admin, "shared-name").await;
    let a_id = a_agent["id"].as_str().unwrap();
    let before: Value = s
        .req_as(&a_admin, Method::GET, &format!("/v1/agents/{a_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let as_b = |method: Method, path: &str| s.req_as(&b_admin, method, path);
    let not_found = [
        as_b(Method::GET, &format!("/v1/agents/{a_id}")),
        as_b(Method::PATCH, &format!("/v1/agents/{a_id}"))
            .header("if-match", "*")
            .json(&json!({"owner": "mallory"})),
        as_b(Method::POST, &format!("/v1/agents/{a_id}/activate")).json(&json!({"reason": "x"})),
        as_b(Method::POST, &format!("/v1/agents/{a_id}/suspend")).json(&json!({"reason": "x"})),
        as_b(Method::POST, &format!("/v1/agents/{a_id}/resume")).json(&json!({"reason": "x"})),
        as_b(Method::POST, &format!("/v1/agents/{a_id}/retire")).json(&json!({"reason": "x"})),
        as_b(Method::GET, &format!("/v1/admin-tokens/{a_token_id}")),
        as_b(Method::DELETE, &format!("/v1/admin-tokens/{a_token_id}")),
        as_b(Method::GET, "/v1/tenants/alpha"),
    ];
    for req in not_found {
        problem(req.send().await.unwrap(), StatusCode::NOT_FOUND).await;
    }
    // B's token cannot switch itself into A.
    for (method, path) in [
        (Method::GET, "/v1/agents".to_owned()),
        (Method::GET, format!("/v1/agents/{a_id}")),
    ] {
        let res = as_b(method, &path)
            .header("x-idv-tenant", "alpha")
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::FORBIDDEN).await;
    }
    // Platform-only operations.
    problem(
        as_b(Method::POST, "/v1/tenants")
            .json(&json!({"name": "gamma"}))
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        as_b(Method::GET, "/v1/audit/head").send().await.unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    problem(
        as_b(Method::GET, "/v1/audit/events?all_tenants=true")
            .send()
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let res = as_b(Method::POST, "/v1/admin-tokens").json(&json!({"name": "p", "role": "admin", "platform": true}));
    problem(res.send().await.unwrap(), StatusCode::FORBIDDEN).await;

    // Lists show only B's own records.
    let items = |v: Value| v["items"].as_array().unwrap().clone();
    let agents = items(
        as_b(Method::GET, "/v1/agents")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(agents.len(), 1);
    assert_eq!(agents[0]["id"], b_agent["id"]);
    let tokens = items(
        as_b(Method::GET, "/v1/admin-tokens")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert!(tokens.iter().all(|t| t["tenant"] == "beta"));
    assert!(tokens.iter().any(|t| t["id"] == b_token_id));
    let tenants = items(
        as_b(Method::GET, "/v1/tenants")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert_eq!(tenants.len(), 1);
    assert_eq!(tenants[0]["name"], "beta");
    let export = as_b(Method::GET, "/v1/agents/export")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!export.contains(a_id));
    let events = items(
        as_b(Method::GET, "/v1/audit/events?limit=10000")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap(),
    );
    assert!(!events.is_empty());
    let beta_id = tenants[0]["id"].clone();
    // Only beta's own events (including its refused attempts on alpha's ids).
    assert!(events.iter().all(|e| e["tenant_id"] == beta_id), "{events:?}");
    assert!(events.iter().all(|e| e["actor"]["token_id"] != a_token_id));
    let who: Value = as_b(Method::GET, "/v1/admin-tokens/self")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(who["tenant"]["name"], "beta");

    // A's agent is exactly as it was.
    let after: Value = s
        .req_as(&a_admin, Method::GET, &format!("/v1/agents/{a_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);
    // The refusals that reached a permission check are on the record.
    let denied = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .count();
    assert!(denied >= 3, "{denied}");
}

async fn roles_limit_what_tokens_do(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (operator, _) = tenant_token(&s, "acme", "operator").await;
    let (auditor, _) = tenant_token(&s, "acme", "auditor").await;
    let (admin, _) = tenant_token(&s, "acme", "admin").await;
    let agent = create_agent(&s, &operator, "ops-made").await;
    let id = agent["id"].as_str().unwrap();

    // Auditors read the registry and the audit log, and write nothing.
    assert_eq!(
        s.req_as(&auditor, Method::GET, &format!("/v1/agents/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        s.req_as(&auditor, Method::GET, "/v1/audit/events")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let writes = [
        s.req_as(&auditor, Method::POST, "/v1/agents")
            .json(&json!({"name": "x", "owner": "o", "purpose": "p"})),
        s.req_as(&auditor, Method::PATCH, &format!("/v1/agents/{id}"))
            .json(&json!({"owner": "x"})),
        s.req_as(&auditor, Method::POST, &format!("/v1/agents/{id}/activate"))
            .json(&json!({"reason": "x"})),
        s.req_as(&auditor, Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": "x", "role": "admin"})),
    ];
    for req in writes {
        let p = problem(req.send().await.unwrap(), StatusCode::FORBIDDEN).await;
        assert_eq!(p["type"], "urn:idv:problem:forbidden");
    }
    // Operators manage agents but not tokens, and cannot read the audit log.
    let res = s
        .req_as(&operator, Method::POST, &format!("/v1/agents/{id}/activate"))
        .json(&json!({"reason": "go"}));
    assert_eq!(res.send().await.unwrap().status(), 200);
    for req in [
        s.req_as(&operator, Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": "x", "role": "operator"})),
        s.req_as(&operator, Method::GET, "/v1/admin-tokens"),
        s.req_as(&operator, Method::GET, "/v1/audit/events"),
    ] {
        problem(req.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    }
    // Tenant admins manage tokens in their tenant but not platform tokens or tenants.
    let res = s
        .req_as(&admin, Method::POST, "/v1/admin-tokens")
        .json(&json!({"name": "ci", "role": "operator", "expires_in": "1h"}));
    assert_eq!(res.send().await.unwrap().status(), 201);
    let res = s
        .req_as(&admin, Method::POST, "/v1/admin-tokens")
        .json(&json!({"name": "p", "role": "admin", "platform": true}));
    problem(res.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    let res = s
        .req_as(&admin, Method::POST, "/v1/tenants")
        .json(&json!({"name": "other"}));
    problem(res.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    // Every denial is audited with outcome `denied` and the token that tried.
    let denied: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert!(denied.len() >= 9, "{}", denied.len());
    assert!(denied.iter().all(|e| e["actor"]["token_id"].is_string()));
}
