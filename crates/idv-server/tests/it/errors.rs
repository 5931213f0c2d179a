//! A battery of bad requests thrown at every endpoint: each gets a 4xx
//! problem+json with a stable type and a detail, and changes nothing.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{agent_count, create_agent, head, problem};

backend_tests!(every_endpoint_rejects_bad_input_cleanly, unknown_routes_and_methods);

/// An endpoint and a valid body for it (for writes).
struct Endpoint {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Query parameters it accepts (lists), to try an unknown one.
    lists: bool,
}

fn endpoints(agent: &str, token: &str) -> Vec<Endpoint> {
    let e = |method: Method, path: &str, body: Option<Value>, lists: bool| Endpoint {
        method,
        path: path.to_owned(),
        body,
        lists,
    };
    vec![
        e(Method::POST, "/v1/tenants", Some(json!({"name": "t-new"})), false),
        e(Method::GET, "/v1/tenants", None, true),
        e(Method::GET, "/v1/tenants/default", None, false),
        e(
            Method::POST,
            "/v1/admin-tokens",
            Some(json!({"name": "n", "role": "auditor"})),
            false,
        ),
        e(Method::GET, "/v1/admin-tokens", None, true),
        e(Method::GET, "/v1/admin-tokens/self", None, false),
        e(Method::GET, &format!("/v1/admin-tokens/{token}"), None, false),
        e(Method::DELETE, &format!("/v1/admin-tokens/{token}"), None, false),
        e(
            Method::POST,
            "/v1/agents",
            Some(json!({"name": "new", "owner": "o", "purpose": "p"})),
            false,
        ),
        e(Method::GET, "/v1/agents", None, true),
        e(
            Method::POST,
            "/v1/agents/bulk",
            Some(json!({"agents": [{"name": "b", "owner": "o", "purpose": "p"}]})),
            false,
        ),
        e(Method::GET, "/v1/agents/export", None, true),
        e(Method::GET, &format!("/v1/agents/{agent}"), None, false),
        e(
            Method::PATCH,
            &format!("/v1/agents/{agent}"),
            Some(json!({"owner": "x"})),
            false,
        ),
        e(
            Method::POST,
            &format!("/v1/agents/{agent}/activate"),
            Some(json!({"reason": "r"})),
            false,
        ),
        e(
            Method::POST,
            &format!("/v1/agents/{agent}/retire"),
            Some(json!({"reason": "r"})),
            false,
        ),
        e(Method::GET, "/v1/audit/events", None, true),
        e(Method::GET, "/v1/audit/head", None, false),
    ]
}

async fn every_endpoint_rejects_bad_input_cleanly(backend: Backend) {
    let s = TestServer::start(backend).await;
    let agent = create_agent(&s, &s.token, "target").await;
    let agent_id = agent["id"].as_str().unwrap();
    let (_other, token_id) = crate::tenant_token(&s, "default", "auditor").await;
    let before_agents = agent_count(&s).await;
    let revoked = {
        let (t, id) = crate::tenant_token(&s, "default", "admin").await;
        assert_eq!(
            s.req(Method::DELETE, &format!("/v1/admin-tokens/{id}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        t
    };
    let before_head = head(&s).await;
    let typo = {
        // One character changed: the checksum catches it before any lookup.
        let mut t = s.token.clone().into_bytes();
        t[10] = if t[10] == b'a' { b'b' } else { b'a' };
        String::from_utf8(t).unwrap()
    };
    let unknown = idv_core::admin_token::generate();

    let mut checked = 0;
    for ep in endpoints(agent_id, &token_id) {
        let what = format!("{} {}", ep.method, ep.path);
        let send = |req: reqwest::RequestBuilder| async { req.send().await.unwrap() };
        // Authentication problems.
        for bad in [
            None,
            Some("Basic dXNlcjpwYXNz".to_owned()),
            Some(format!("Bearer {typo}")),
            Some(format!("Bearer {unknown}")),
            Some(format!("Bearer {revoked}")),
            Some("Bearer ".to_owned()),
        ] {
            let mut req = s.http.request(ep.method.clone(), s.url(&ep.path));
            if let Some(h) = &bad {
                req = req.header("authorization", h);
            }
            if let Some(b) = &ep.body {
                req = req.json(b);
            }
            let p = problem(send(req).await, StatusCode::UNAUTHORIZED).await;
            assert_eq!(p["type"], "urn:idv:problem:unauthorized", "{what} {bad:?}");
            checked += 1;
        }
        // A tenant that does not exist.
        let mut req = s
            .req(ep.method.clone(), &ep.path)
            .header("x-idv-tenant", "no-such-tenant");
        if let Some(b) = &ep.body {
            req = req.json(b);
        }
        problem(send(req).await, StatusCode::NOT_FOUND).await;
        checked += 1;

        if let Some(body) = &ep.body {
            let raw = |ctype: &str, bytes: Vec<u8>| {
                s.req(ep.method.clone(), &ep.path)
                    .header("content-type", ctype.to_owned())
                    .body(bytes)
            };
            let p = problem(
                send(raw("application/json", b"{ not json".to_vec())).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:malformed-json", "{what}");
            let mut unknown_field = body.clone();
            unknown_field["surprise"] = json!(1);
            let p = problem(
                send(s.req(ep.method.clone(), &ep.path).json(&unknown_field)).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what}");
            assert!(p["detail"].as_str().unwrap().contains("surprise"), "{what}: {p}");
            let mut wrong_type = body.clone();
            let first = wrong_type.as_object().unwrap().keys().next().unwrap().clone();
            wrong_type[&first] = json!({"nested": true});
            let p = problem(
                send(s.req(ep.method.clone(), &ep.path).json(&wrong_type)).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what}");
            let p = problem(
                send(s.req(ep.method.clone(), &ep.path).json(&json!([1, 2]))).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what}");
            if ep.method != Method::PATCH {
                let p = problem(
                    send(s.req(ep.method.clone(), &ep.path).json(&json!({}))).await,
                    StatusCode::BAD_REQUEST,
                )
                .await;
                assert!(p["detail"].as_str().unwrap().contains("missing field"), "{what}: {p}");
            }
            let p = problem(
                send(raw("text/plain", serde_json::to_vec(body).unwrap())).await,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:unsupported-media-type", "{what}");
            let limit = if ep.path.ends_with("/bulk") { 64 << 20 } else { 1 << 20 };
            let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(limit + 10));
            let p = problem(
                send(raw("application/json", huge.into_bytes())).await,
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:payload-too-large", "{what}");
            checked += 7;
        }
        if ep.lists {
            let sep = if ep.path.contains('?') { '&' } else { '?' };
            let path = format!("{}{sep}colour=blue", ep.path);
            let p = problem(send(s.req(ep.method.clone(), &path)).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(p["type"], "urn:idv:problem:unknown-parameter", "{what}");
            if ep.path != "/v1/agents/export" {
                let path = format!("{}{sep}limit=0", ep.path);
                problem(send(s.req(ep.method.clone(), &path)).await, StatusCode::BAD_REQUEST).await;
                let path = format!("{}{sep}limit=ten", ep.path);
                problem(send(s.req(ep.method.clone(), &path)).await, StatusCode::BAD_REQUEST).await;
                let path = format!("{}{sep}cursor=%00%01", ep.path);
                problem(send(s.req(ep.method.clone(), &path)).await, StatusCode::BAD_REQUEST).await;
            }
            checked += 1;
        }
        // Bad ids in the path.
        for (good, bad) in [(agent_id, "not-a-uuid"), (token_id.as_str(), "123")] {
            if ep.path.contains(good) {
                let path = ep.path.replace(good, bad);
                let mut req = s.req(ep.method.clone(), &path);
                if let Some(b) = &ep.body {
                    req = req.json(b);
                }
                let p = problem(send(req).await, StatusCode::BAD_REQUEST).await;
                assert_eq!(p["type"], "urn:idv:problem:invalid-id", "{what}");
                checked += 1;
            }
        }
    }
    // Query and filter values of the wrong kind.
    for q in [
        "status=sleeping",
        "environment=staging",
        "label=novalue",
        "limit=100000",
        "owner=a&owner=b",
    ] {
        problem(
            s.req(Method::GET, &format!("/v1/agents?{q}")).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    for q in [
        "outcome=maybe",
        "since=yesterday",
        "all_tenants=perhaps",
        "actor_token_id=x",
        "cursor=-x",
    ] {
        problem(
            s.req(Method::GET, &format!("/v1/audit/events?{q}"))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
    }
    // Field validation names the field.
    for (body, field) in [
        (json!({"name": "has space", "owner": "o", "purpose": "p"}), "name"),
        (json!({"name": "ok", "owner": "", "purpose": "p"}), "owner"),
        (
            json!({"name": "ok", "owner": "o", "purpose": "p", "environment": "staging"}),
            "environment",
        ),
        (json!({"name": "ok", "owner": "o", "purpose": "p", "ttl": "-5m"}), "ttl"),
        (
            json!({"name": "ok", "owner": "o", "purpose": "p", "parent": {"type": "robot", "id": "x"}}),
            "parent",
        ),
        (json!({"name": "x".repeat(300), "owner": "o", "purpose": "p"}), "name"),
    ] {
        let p = problem(
            s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-field");
        assert_eq!(p["field"], field, "{p}");
    }
    let res = s.req(Method::POST, "/v1/tenants").json(&json!({"name": "Bad Name!"})).send().await.unwrap();
    assert_eq!(problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"], "name");
    for body in [
        json!({"name": "n", "role": "superuser"}),
        json!({"name": "n", "role": "admin", "expires_in": "never"}),
    ] {
        problem(
            s.req(Method::POST, "/v1/admin-tokens")
                .json(&body)
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
    }
    assert!(checked > 150, "{checked}");
    // Nothing changed, nothing was audited by any of it.
    assert_eq!(agent_count(&s).await, before_agents);
    assert_eq!(head(&s).await, before_head);
}

async fn unknown_routes_and_methods(backend: Backend) {
    let s = TestServer::start(backend).await;
    let p = problem(
        s.req(Method::GET, "/v1/nothing-here").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:not-found");
    for (method, path) in [
        (Method::DELETE, "/v1/agents"),
        (Method::PUT, "/v1/tenants"),
        (Method::POST, "/v1/audit/events"),
        (Method::GET, "/v1/agents/bulk"),
    ] {
        let p = problem(
            s.req(method, path).send().await.unwrap(),
            StatusCode::METHOD_NOT_ALLOWED,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:method-not-allowed");
    }
}
