//! A battery of bad requests thrown at every endpoint: each gets a 4xx
//! problem+json with a stable type and a detail (never a 5xx), and changes
//! nothing: not the data, not the audit log.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{agent_count, create_agent, get, head, problem};

backend_tests!(
    every_endpoint_rejects_bad_input_cleanly,
    wrong_methods_and_unknown_routes,
    field_rules_are_422_naming_the_field,
    bad_query_values_are_400,
    chunked_oversized_bodies_are_413,
    accepted_content_types,
    bodies_must_be_json_objects,
    endpoints_without_query_parameters_ignore_them,
    problems_carry_the_request_id_as_instance,
    undecodable_path_segments_are_problems,
);

/// An endpoint with a valid body (for writes) and whether it takes list
/// parameters.
#[derive(Clone)]
struct Endpoint {
    method: Method,
    path: String,
    body: Option<Value>,
    query: Query,
}

#[derive(Clone, Copy, PartialEq)]
enum Query {
    /// Takes no query parameters.
    None,
    /// A list with `limit` and `cursor`.
    Paged,
    /// The export (`format` only).
    Export,
}

/// Every `/v1` endpoint, with `agent` and `token` as the ids in paths.
fn endpoints(agent: &str, token: &str) -> Vec<Endpoint> {
    let e = |method: Method, path: &str, body: Option<Value>, query: Query| Endpoint {
        method,
        path: path.to_owned(),
        body,
        query,
    };
    let reason = || Some(json!({"reason": "r"}));
    vec![
        e(Method::POST, "/v1/tenants", Some(json!({"name": "t-new"})), Query::None),
        e(Method::GET, "/v1/tenants", None, Query::Paged),
        e(Method::GET, "/v1/tenants/default", None, Query::None),
        e(
            Method::POST,
            "/v1/admin-tokens",
            Some(json!({"name": "n", "role": "auditor"})),
            Query::None,
        ),
        e(Method::GET, "/v1/admin-tokens", None, Query::Paged),
        e(Method::GET, "/v1/admin-tokens/self", None, Query::None),
        e(Method::GET, &format!("/v1/admin-tokens/{token}"), None, Query::None),
        e(Method::DELETE, &format!("/v1/admin-tokens/{token}"), None, Query::None),
        e(Method::POST, "/v1/agents", Some(crate::agent_body("new")), Query::None),
        e(Method::GET, "/v1/agents", None, Query::Paged),
        e(
            Method::POST,
            "/v1/agents/bulk",
            Some(json!({"agents": [crate::agent_body("b")]})),
            Query::None,
        ),
        e(Method::GET, "/v1/agents/export", None, Query::Export),
        e(Method::GET, &format!("/v1/agents/{agent}"), None, Query::None),
        e(
            Method::PATCH,
            &format!("/v1/agents/{agent}"),
            Some(json!({"owner": "x"})),
            Query::None,
        ),
        e(
            Method::POST,
            &format!("/v1/agents/{agent}/activate"),
            reason(),
            Query::None,
        ),
        e(
            Method::POST,
            &format!("/v1/agents/{agent}/suspend"),
            reason(),
            Query::None,
        ),
        e(
            Method::POST,
            &format!("/v1/agents/{agent}/resume"),
            reason(),
            Query::None,
        ),
        e(
            Method::POST,
            &format!("/v1/agents/{agent}/retire"),
            reason(),
            Query::None,
        ),
        e(Method::GET, "/v1/audit/events", None, Query::Paged),
        e(Method::GET, "/v1/audit/head", None, Query::None),
    ]
}

/// What must not change under a refused request.
async fn snapshot(s: &TestServer, agent: &str) -> Value {
    json!({
        "head": head(s).await,
        "agents": crate::all_agents_as(s, &s.token, "").await,
        "agent": get(s, &format!("/v1/agents/{agent}")).await,
        "tokens": get(s, "/v1/admin-tokens?limit=10000").await,
        "tenants": get(s, "/v1/tenants?limit=10000").await,
    })
}

async fn every_endpoint_rejects_bad_input_cleanly(backend: Backend) {
    // Hundreds of failed token checks from one address, each to be answered
    // 401: a failure budget far above them (the budget has its own tests).
    let s = TestServer::start_with(
        backend,
        idv_testkit::Options {
            clock: Some(TestServer::manual_clock()),
            auth_failure_limit: Some(1_000_000),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let clock = s.clock.clone().unwrap();
    let agent = create_agent(&s, &s.token, "target").await;
    let agent_id = agent["id"].as_str().unwrap();
    let (_auditor, token_id) = crate::tenant_token(&s, "default", "auditor").await;
    let revoked = {
        let (t, id) = crate::tenant_token(&s, "default", "admin").await;
        let res = s
            .req(Method::DELETE, &format!("/v1/admin-tokens/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        t
    };
    let expired = {
        let res = s
            .req(Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": "short", "role": "admin", "expires_in": "1m"}))
            .send()
            .await
            .unwrap();
        let v = crate::json_ok(res, StatusCode::CREATED).await;
        v["token"].as_str().unwrap().to_owned()
    };
    clock.advance_secs(61);
    let before = snapshot(&s, agent_id).await;
    let typo = {
        // One character changed: the checksum catches it before any lookup.
        let mut t = s.token.clone().into_bytes();
        t[10] = if t[10] == b'a' { b'b' } else { b'a' };
        String::from_utf8(t).unwrap()
    };
    let unknown = idv_core::admin_token::generate();
    let truncated = s.token[..s.token.len() - 1].to_owned();

    let mut checked = 0;
    for ep in endpoints(agent_id, &token_id) {
        let what = format!("{} {}", ep.method, ep.path);
        let send = |req: reqwest::RequestBuilder| async { req.send().await.unwrap() };
        let with_body = |mut req: reqwest::RequestBuilder| {
            if let Some(b) = &ep.body {
                req = req.json(b);
            }
            req
        };
        // Authentication problems: 401 with a Bearer challenge.
        for bad in [
            None,
            Some("Basic dXNlcjpwYXNz".to_owned()),
            Some("Bearer".to_owned()),
            Some("Bearer ".to_owned()),
            Some(format!("Token {}", s.token)),
            Some(format!("Bearer {typo}")),
            Some(format!("Bearer {truncated}")),
            Some(format!("Bearer {unknown}")),
            Some(format!("Bearer {revoked}")),
            Some(format!("Bearer {expired}")),
            Some("Bearer not-even-close".to_owned()),
        ] {
            let mut req = s.http.request(ep.method.clone(), s.url(&ep.path));
            if let Some(h) = &bad {
                req = req.header("authorization", h);
            }
            let res = send(with_body(req)).await;
            assert_eq!(
                res.headers().get("www-authenticate").map(|v| v.to_str().unwrap()),
                Some("Bearer realm=\"idv-admin\""),
                "{what} {bad:?}"
            );
            let p = problem(res, StatusCode::UNAUTHORIZED).await;
            assert_eq!(p["type"], "urn:idv:problem:unauthorized", "{what} {bad:?}");
            checked += 1;
        }
        // A tenant that does not exist, and a tenant header that is not text.
        let p = problem(
            send(with_body(
                s.req(ep.method.clone(), &ep.path)
                    .header("x-idv-tenant", "no-such-tenant"),
            ))
            .await,
            StatusCode::NOT_FOUND,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:not-found", "{what}");
        let p = problem(
            send(with_body(s.req(ep.method.clone(), &ep.path).header(
                "x-idv-tenant",
                reqwest::header::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
            )))
            .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-tenant", "{what}");
        checked += 2;

        if let Some(body) = &ep.body {
            let raw = |ctype: Option<&str>, bytes: Vec<u8>| {
                let mut req = s.req(ep.method.clone(), &ep.path).body(bytes);
                if let Some(c) = ctype {
                    req = req.header("content-type", c.to_owned());
                }
                req
            };
            let json_raw = |bytes: &[u8]| raw(Some("application/json"), bytes.to_vec());
            // Not JSON at all (a valid body spoiled, so only the syntax is wrong).
            let text = serde_json::to_string(body).unwrap();
            let cut = text.rfind("\":\"").unwrap() + 3;
            let malformed: Vec<Vec<u8>> = vec![
                b"{ not json".to_vec(),
                Vec::new(),
                format!("{},}}", &text[..text.len() - 1]).into_bytes(),
                format!("{text} x").into_bytes(),
                text.as_bytes()[..text.len() - 1].to_vec(),
                [&text.as_bytes()[..cut], b"\xff\xfe", &text.as_bytes()[cut..]].concat(),
            ];
            for bytes in &malformed {
                let p = problem(send(json_raw(bytes)).await, StatusCode::BAD_REQUEST).await;
                assert_eq!(
                    p["type"],
                    "urn:idv:problem:malformed-json",
                    "{what} {}",
                    String::from_utf8_lossy(bytes)
                );
                checked += 1;
            }
            // JSON of the wrong shape.
            let first = body.as_object().unwrap().keys().next().unwrap().clone();
            let mut unknown_field = body.clone();
            unknown_field["surprise"] = json!(1);
            let p = problem(
                send(s.req(ep.method.clone(), &ep.path).json(&unknown_field)).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what}");
            assert!(p["detail"].as_str().unwrap().contains("surprise"), "{what}: {p}");
            let duplicated = format!("{{\"{first}\": {},{}", body[&first], &text[1..]);
            let mut shapes = vec![json!([1, 2]), json!("text"), json!(42), Value::Null];
            for wrong in [json!({"nested": true}), json!(12), json!([1]), json!(true)] {
                let mut b = body.clone();
                b[&first] = wrong;
                shapes.push(b);
            }
            for shape in shapes {
                let p = problem(
                    send(s.req(ep.method.clone(), &ep.path).json(&shape)).await,
                    StatusCode::BAD_REQUEST,
                )
                .await;
                assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what} {shape}");
                checked += 1;
            }
            let p = problem(send(json_raw(duplicated.as_bytes())).await, StatusCode::BAD_REQUEST).await;
            assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what} {duplicated}");
            assert!(p["detail"].as_str().unwrap().contains("duplicate"), "{what}: {p}");
            let deep = "[".repeat(100_000);
            let p = problem(send(json_raw(deep.as_bytes())).await, StatusCode::BAD_REQUEST).await;
            assert!(p["type"].as_str().unwrap().ends_with("-json") || p["type"].as_str().unwrap().ends_with("-body"));
            // A required field missing (a PATCH has none).
            let p = problem(
                send(s.req(ep.method.clone(), &ep.path).json(&json!({}))).await,
                StatusCode::BAD_REQUEST,
            )
            .await;
            if ep.method == Method::PATCH {
                assert_eq!(p["type"], "urn:idv:problem:empty-patch", "{what}");
            } else {
                assert_eq!(p["type"], "urn:idv:problem:invalid-body", "{what}");
                assert!(p["detail"].as_str().unwrap().contains("missing field"), "{what}: {p}");
            }
            // Not declared as JSON.
            let valid = serde_json::to_vec(body).unwrap();
            for ctype in [
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("application/xml"),
                Some("json"),
                None,
            ] {
                let p = problem(
                    send(raw(ctype, valid.clone())).await,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                )
                .await;
                assert_eq!(p["type"], "urn:idv:problem:unsupported-media-type", "{what} {ctype:?}");
                checked += 1;
            }
            // Over the body limit (1 MiB; 64 MiB for bulk), even as valid JSON.
            let limit = if ep.path.ends_with("/bulk") { 64 << 20 } else { 1 << 20 };
            let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(limit + 10));
            let p = problem(
                send(raw(Some("application/json"), huge.into_bytes())).await,
                StatusCode::PAYLOAD_TOO_LARGE,
            )
            .await;
            assert_eq!(p["type"], "urn:idv:problem:payload-too-large", "{what}");
            checked += 5;
        }
        match ep.query {
            Query::None => {}
            Query::Paged | Query::Export => {
                let sep = if ep.path.contains('?') { '&' } else { '?' };
                for q in ["colour=blue", "Limit=5", "cursor=&extra=1"] {
                    let path = format!("{}{sep}{q}", ep.path);
                    let p = problem(send(s.req(ep.method.clone(), &path)).await, StatusCode::BAD_REQUEST).await;
                    assert_eq!(p["type"], "urn:idv:problem:unknown-parameter", "{what} {q}");
                    assert!(p["field"].is_string(), "{p}");
                    checked += 1;
                }
            }
        }
        if ep.query == Query::Paged {
            let sep = if ep.path.contains('?') { '&' } else { '?' };
            for q in [
                "limit=0",
                "limit=-1",
                "limit=ten",
                "limit=10001",
                "limit=1e3",
                "limit=99999999999999999999",
                "limit=1&limit=2",
                "cursor=%00%01",
                "cursor=not-a-cursor",
                "cursor=1&cursor=2",
            ] {
                let path = format!("{}{sep}{q}", ep.path);
                let p = problem(send(s.req(ep.method.clone(), &path)).await, StatusCode::BAD_REQUEST).await;
                assert!(
                    ["urn:idv:problem:invalid-parameter", "urn:idv:problem:invalid-id"]
                        .contains(&p["type"].as_str().unwrap()),
                    "{what} {q}: {p}"
                );
                checked += 1;
            }
        }
        // Bad ids in the path.
        for (good, bad) in [
            (agent_id, "not-a-uuid"),
            (agent_id, "123"),
            (agent_id, "00000000-0000-0000-0000-00000000000g"),
            (token_id.as_str(), "self-ish"),
            (token_id.as_str(), "%20"),
        ] {
            if ep.path.contains(good) {
                let path = ep.path.replace(good, bad);
                let p = problem(
                    send(with_body(s.req(ep.method.clone(), &path))).await,
                    StatusCode::BAD_REQUEST,
                )
                .await;
                assert_eq!(p["type"], "urn:idv:problem:invalid-id", "{what} {bad}");
                assert!(p["detail"].as_str().unwrap().contains("not a valid"), "{p}");
                checked += 1;
            }
        }
    }
    assert!(checked > 500, "{checked}");
    // Nothing changed, and nothing was audited by any of it.
    assert_eq!(snapshot(&s, agent_id).await, before);
    // The server is healthy after all that.
    let res = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let metrics = crate::metrics_text(&s).await;
    assert!(
        metrics.contains("idv_http_responses_total{class=\"5xx\"} 0\n"),
        "{metrics}"
    );
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("idv_auth_failures_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(failures >= 200, "{failures}");
}

/// Every route and the methods it takes (as in `src/http/mod.rs`).
fn routes(agent: &str, token: &str) -> Vec<(String, Vec<Method>)> {
    vec![
        ("/healthz".into(), vec![Method::GET]),
        ("/readyz".into(), vec![Method::GET]),
        ("/metrics".into(), vec![Method::GET]),
        ("/openapi.json".into(), vec![Method::GET]),
        ("/v1/tenants".into(), vec![Method::GET, Method::POST]),
        ("/v1/tenants/default".into(), vec![Method::GET]),
        ("/v1/admin-tokens".into(), vec![Method::GET, Method::POST]),
        ("/v1/admin-tokens/self".into(), vec![Method::GET]),
        (format!("/v1/admin-tokens/{token}"), vec![Method::GET, Method::DELETE]),
        ("/v1/agents".into(), vec![Method::GET, Method::POST]),
        ("/v1/agents/bulk".into(), vec![Method::POST]),
        ("/v1/agents/export".into(), vec![Method::GET]),
        (format!("/v1/agents/{agent}"), vec![Method::GET, Method::PATCH]),
        (format!("/v1/agents/{agent}/activate"), vec![Method::POST]),
        ("/v1/audit/events".into(), vec![Method::GET]),
        ("/v1/audit/head".into(), vec![Method::GET]),
    ]
}

const METHODS: [Method; 6] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

async fn wrong_methods_and_unknown_routes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let agent = create_agent(&s, &s.token, "m").await;
    let id = agent["id"].as_str().unwrap();
    let (_, token_id) = crate::tenant_token(&s, "default", "auditor").await;
    let before = snapshot(&s, id).await;
    for (path, allowed) in routes(id, &token_id) {
        for method in METHODS {
            if allowed.contains(&method) {
                continue;
            }
            // With and without a token: routing comes first.
            for req in [
                s.req(method.clone(), &path).json(&json!({"name": "x"})),
                s.http.request(method.clone(), s.url(&path)),
            ] {
                let res = req.send().await.unwrap();
                // RFC 9110 §15.5.6: a 405 names the methods that would work.
                let allow = res
                    .headers()
                    .get("allow")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default();
                for m in &allowed {
                    assert!(allow.contains(m.as_str()), "{method} {path}: Allow: {allow:?}");
                }
                let p = problem(res, StatusCode::METHOD_NOT_ALLOWED).await;
                assert_eq!(p["type"], "urn:idv:problem:method-not-allowed", "{method} {path}");
            }
        }
    }
    for path in [
        "/v1/nothing-here",
        "/v1",
        "/",
        "/v1/agents/a/b/c",
        "/v2/agents",
        "/V1/agents",
        "/v1/tenants/default/agents",
    ] {
        let p = problem(s.req(Method::GET, path).send().await.unwrap(), StatusCode::NOT_FOUND).await;
        assert_eq!(p["type"], "urn:idv:problem:not-found", "{path}");
    }
    assert_eq!(snapshot(&s, id).await, before);
}

async fn field_rules_are_422_naming_the_field(backend: Backend) {
    let s = TestServer::start(backend).await;
    let before = head(&s).await;
    let long = |n: usize| "x".repeat(n);
    let with = |extra: Value| {
        let mut b = crate::agent_body("ok");
        b.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        b
    };
    for (body, field) in [
        (with(json!({"name": "has space"})), "name"),
        (with(json!({"name": ""})), "name"),
        (with(json!({"name": "-leading"})), "name"),
        (with(json!({"name": "ünïcode"})), "name"),
        (with(json!({"name": long(129)})), "name"),
        (with(json!({"owner": ""})), "owner"),
        (with(json!({"owner": " \t "})), "owner"),
        (with(json!({"owner": long(257)})), "owner"),
        (with(json!({"purpose": "a\u{0}b"})), "purpose"),
        (with(json!({"purpose": long(1025)})), "purpose"),
        (with(json!({"environment": "staging"})), "environment"),
        (with(json!({"environment": "PROD"})), "environment"),
        (with(json!({"team": ""})), "team"),
        (with(json!({"labels": {"": "v"}})), "labels"),
        (with(json!({"labels": {"k": long(257)}})), "labels"),
        (
            with(json!({"labels": (0..65).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()})),
            "labels",
        ),
        (with(json!({"capabilities": ["ok", "not ok"]})), "capabilities"),
        (with(json!({"class": "has space"})), "class"),
        (with(json!({"ttl": "-5m"})), "ttl"),
        (with(json!({"parent": {"type": "robot", "id": "x"}})), "parent"),
        (with(json!({"parent": {"type": "human", "id": ""}})), "parent"),
        (
            with(json!({"depends_on": (0..65).map(|i| uuid::Uuid::from_u128(i).to_string()).collect::<Vec<_>>()})),
            "depends_on",
        ),
    ] {
        let p = problem(
            s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-field");
        assert_eq!(p["field"], field, "{p}");
        assert!(p["detail"].as_str().unwrap().contains(field), "{p}");
    }
    for (body, field) in [
        (json!({"name": "Bad Name!"}), "name"),
        (json!({"name": "1abc"}), "name"),
        (json!({"name": "a".repeat(64)}), "name"),
        (json!({"name": "ok", "display_name": " "}), "display_name"),
    ] {
        let res = s.req(Method::POST, "/v1/tenants").json(&body).send().await.unwrap();
        assert_eq!(problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"], field);
    }
    for (body, field) in [
        (json!({"name": "n", "role": "superuser"}), "role"),
        (json!({"name": "n", "role": "Admin"}), "role"),
        (json!({"name": "", "role": "admin"}), "name"),
        (
            json!({"name": "n", "role": "admin", "expires_in": "never"}),
            "expires_in",
        ),
        (json!({"name": "n", "role": "admin", "expires_in": 0}), "expires_in"),
    ] {
        let res = s
            .req(Method::POST, "/v1/admin-tokens")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"], field);
    }
    assert_eq!(agent_count(&s).await, 0);
    assert_eq!(head(&s).await, before, "checked before the store: nothing audited");
}

async fn bad_query_values_are_400(backend: Backend) {
    let s = TestServer::start(backend).await;
    create_agent(&s, &s.token, "a_1").await;
    create_agent(&s, &s.token, "ab1").await;
    for q in [
        "status=sleeping",
        "status=Active",
        "environment=staging",
        "label=novalue",
        "label=",
        "owner=a&owner=b",
        "class=a&class=b",
        "name_prefix=a&name_prefix=b",
        "status=active&status=retired",
    ] {
        let p = problem(
            s.req(Method::GET, &format!("/v1/agents?{q}")).send().await.unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-parameter", "{q}");
        assert!(p["field"].is_string(), "{p}");
    }
    for q in [
        "outcome=maybe",
        "since=yesterday",
        "until=2024-13-01T00:00:00Z",
        "all_tenants=perhaps",
        "actor_token_id=x",
        "cursor=-x",
        "action=a&action=b",
    ] {
        let p = problem(
            s.req(Method::GET, &format!("/v1/audit/events?{q}"))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(
            ["urn:idv:problem:invalid-parameter", "urn:idv:problem:invalid-id"].contains(&p["type"].as_str().unwrap()),
            "{q}: {p}"
        );
    }
    // Well-formed values that match nothing are not errors.
    for q in [
        "owner=nobody",
        "name_prefix=%25",
        "name_prefix=_",
        "name_prefix=a%25",
        "label=a%3Db%3Dc",
        "cursor=ffffffff-ffff-ffff-ffff-ffffffffffff",
        "owner=%27%20OR%20%271%27%3D%271",
        "name_prefix=%27%3B%20DROP%20TABLE%20agents%3B--",
        "label=k%27%3Dv%22",
    ] {
        let v = get(&s, &format!("/v1/agents?{q}")).await;
        assert_eq!(v["items"], json!([]), "{q}");
    }
    // The prefix is literal: `_` and `%` are not wildcards.
    let names = |v: Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(get(&s, "/v1/agents?name_prefix=a_").await), ["a_1"]);
    assert_eq!(names(get(&s, "/v1/agents?name_prefix=").await), ["a_1", "ab1"]);
}

async fn chunked_oversized_bodies_are_413(backend: Backend) {
    let s = TestServer::start(backend).await;
    // No Content-Length: the limit must hold while streaming.
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "x".repeat(64 * 1024));
    let mut req = format!(
        "POST /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        s.token
    )
    .into_bytes();
    req.extend_from_slice(b"4\r\n{\"a\"\r\n");
    for _ in 0..20 {
        req.extend_from_slice(chunk.as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let (status, headers, body) = crate::raw(&s, &req).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v == "application/problem+json"),
        "{headers:?}"
    );
    assert!(body.contains("urn:idv:problem:payload-too-large"), "{body}");
    assert_eq!(agent_count(&s).await, 0);
}

async fn accepted_content_types(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (i, ctype) in [
        "application/json",
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "application/vnd.idv+json",
    ]
    .into_iter()
    .enumerate()
    {
        let res = s
            .req(Method::POST, "/v1/agents")
            .header("content-type", ctype)
            .body(serde_json::to_vec(&crate::agent_body(&format!("ct-{i}"))).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{ctype}");
    }
    // A body just under the limit is fine (the limit is not smaller than documented).
    let padded = format!(
        "{}{}",
        " ".repeat((1 << 20) - 200),
        serde_json::to_string(&crate::agent_body("padded")).unwrap()
    );
    assert!(padded.len() < 1 << 20);
    let res = s
        .req(Method::POST, "/v1/agents")
        .header("content-type", "application/json")
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

async fn undecodable_path_segments_are_problems(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (method, path) in [
        (Method::GET, "/v1/agents/%FF"),
        (Method::GET, "/v1/tenants/%FF%FE"),
        (Method::GET, "/v1/admin-tokens/%C3"),
        (Method::DELETE, "/v1/admin-tokens/%FF"),
    ] {
        let res = s.req(method.clone(), path).send().await.unwrap();
        assert!(res.status().is_client_error(), "{method} {path}: {}", res.status());
        problem(res, StatusCode::BAD_REQUEST).await;
    }
    let a = create_agent(&s, &s.token, "x").await;
    let res = s
        .req(Method::POST, &format!("/v1/agents/{}/%FF", a["id"].as_str().unwrap()))
        .json(&json!({"reason": "r"}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    problem(res, StatusCode::BAD_REQUEST).await;
}

/// docs/api.md: "Endpoints that take no query parameters ignore any that are
/// sent" (lists refuse unknown ones; see the battery).
async fn endpoints_without_query_parameters_ignore_them(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "x").await;
    let id = a["id"].as_str().unwrap();
    let (_, token_id) = crate::tenant_token(&s, "default", "auditor").await;
    let before = head(&s).await;
    for ep in endpoints(id, &token_id) {
        if ep.query != Query::None || ep.method != Method::GET {
            continue;
        }
        let res = s
            .req(Method::GET, &format!("{}?colour=blue", ep.path))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{}", ep.path);
    }
    assert_eq!(head(&s).await, before);
}

/// The request id is in problem bodies as `instance`. (Found failing at
/// a5a8d16: `ApiError::with_request_id` was never called.)
async fn problems_carry_the_request_id_as_instance(backend: Backend) {
    let s = TestServer::start(backend).await;
    let res = s
        .req(Method::GET, &format!("/v1/agents/{}", crate::ghost_id()))
        .header("x-request-id", "req-instance-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-instance-1");
    let p = problem(res, StatusCode::NOT_FOUND).await;
    assert!(
        p["instance"].as_str().is_some_and(|i| i.contains("req-instance-1")),
        "{p}"
    );
    // Every kind of problem, with an assigned id too.
    for (req, status) in [
        (s.http.get(s.url("/v1/agents")), StatusCode::UNAUTHORIZED),
        (s.req(Method::GET, "/v1/agents/not-an-id"), StatusCode::BAD_REQUEST),
        (s.req(Method::DELETE, "/v1/agents"), StatusCode::METHOD_NOT_ALLOWED),
        (s.req(Method::GET, "/v1/nowhere"), StatusCode::NOT_FOUND),
        (
            s.req(Method::POST, "/v1/agents").json(&json!({"name": "x"})),
            StatusCode::BAD_REQUEST,
        ),
        (
            s.req(Method::POST, "/v1/agents")
                .json(&json!({"name": "bad name", "owner": "o", "purpose": "p"})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let res = req.send().await.unwrap();
        let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        let p = problem(res, status).await;
        assert!(p["instance"].as_str().is_some_and(|i| i.contains(&rid)), "{rid}: {p}");
    }
}

/// serde reads a struct from an array of its fields in order; the API takes
/// only objects, so `["name", "owner", "purpose"]` creates nothing.
async fn bodies_must_be_json_objects(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (body, slug) in [
        (r#"["arr", "owner", "purpose"]"#, "invalid-body"),
        (r#"  "just a string""#, "invalid-body"),
        ("42", "invalid-body"),
        ("null", "invalid-body"),
        ("", "malformed-json"),
        ("[1, 2", "malformed-json"),
    ] {
        let res = s
            .req(Method::POST, "/v1/agents")
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let p = problem(res, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["type"], format!("urn:idv:problem:{slug}"), "{body:?}: {p}");
    }
    assert_eq!(agent_count(&s).await, 0);
}
