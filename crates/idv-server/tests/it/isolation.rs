//! Tenant isolation and roles, endpoint by endpoint: a token of tenant B can
//! neither read nor change tenant A's records, and each role does only what
//! the permission table in `idv_core::admin_token` allows.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{all_events, create_agent, events_as, get, get_as, head, json_ok, problem, tenant_token};

backend_tests!(
    another_tenants_records_cannot_be_read_or_changed,
    lists_and_exports_never_show_another_tenant,
    a_token_cannot_switch_itself_into_another_tenant,
    platform_tokens_act_in_a_named_tenant_and_it_is_recorded,
    roles_allow_exactly_the_permission_table,
    platform_roles,
    refused_tenant_switch_is_audited,
    tenant_admin_cannot_revoke_platform_tokens,
);

/// Tenant A (`alpha`) with data, and tenant B (`beta`) with a token of each role.
struct World {
    s: TestServer,
    a_admin: String,
    a_token_id: String,
    a_agent: Value,
    a_other: Value,
    b: Vec<(&'static str, String)>,
    b_agent: Value,
}

async fn world(backend: Backend) -> World {
    let s = TestServer::start(backend).await;
    let (a_admin, a_token_id) = tenant_token(&s, "alpha", "admin").await;
    let mut body = crate::agent_body("shared-name");
    body["labels"] = json!({"secret-project": "x"});
    body["owner"] = json!("alpha-owner");
    body["class"] = json!("alpha-class");
    let a_agent = json_ok(
        s.req_as(&a_admin, Method::POST, "/v1/agents")
            .json(&body)
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let a_other = create_agent(&s, &a_admin, "alpha-only").await;
    let mut b = Vec::new();
    for role in ["admin", "operator", "auditor"] {
        b.push((role, tenant_token(&s, "beta", role).await.0));
    }
    // Names are unique per tenant, not globally.
    let b_agent = create_agent(&s, &b[0].1, "shared-name").await;
    World {
        s,
        a_admin,
        a_token_id,
        a_agent,
        a_other,
        b,
        b_agent,
    }
}

/// Everything of tenant A that B must not be able to change.
async fn alpha_state(w: &World) -> Value {
    json!({
        "agents": crate::all_agents_as(&w.s, &w.a_admin, "").await,
        "tokens": get_as(&w.s, &w.a_admin, "/v1/admin-tokens").await,
        "tenant": get_as(&w.s, &w.a_admin, "/v1/tenants/alpha").await,
        "events": events_as(&w.s, &w.a_admin, "").await,
    })
}

async fn another_tenants_records_cannot_be_read_or_changed(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let a_id = w.a_agent["id"].as_str().unwrap();
    let a_tok = &w.a_token_id;
    let before = alpha_state(&w).await;

    for (role, token) in &w.b {
        let writer = *role != "auditor";
        let admin = *role == "admin";
        // (request, status when the role may do it at all)
        let mut cases: Vec<(reqwest::RequestBuilder, StatusCode)> = vec![
            (
                s.req_as(token, Method::GET, &format!("/v1/agents/{a_id}")),
                StatusCode::NOT_FOUND,
            ),
            (s.req_as(token, Method::GET, "/v1/tenants/alpha"), StatusCode::NOT_FOUND),
        ];
        let w_status = if writer {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        for if_match in [None, Some("*"), Some("\"1\"")] {
            let mut req = s
                .req_as(token, Method::PATCH, &format!("/v1/agents/{a_id}"))
                .json(&json!({"owner": "mallory"}));
            if let Some(m) = if_match {
                req = req.header("if-match", m);
            }
            cases.push((req, w_status));
        }
        for verb in ["activate", "suspend", "resume", "retire"] {
            cases.push((
                s.req_as(token, Method::POST, &format!("/v1/agents/{a_id}/{verb}"))
                    .json(&json!({"reason": "x"})),
                w_status,
            ));
        }
        let t_status = if admin {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::FORBIDDEN
        };
        cases.push((
            s.req_as(token, Method::GET, &format!("/v1/admin-tokens/{a_tok}")),
            t_status,
        ));
        cases.push((
            s.req_as(token, Method::DELETE, &format!("/v1/admin-tokens/{a_tok}")),
            t_status,
        ));
        // References to A's agents from B's records are unknown agents.
        let ref_status = if writer {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::FORBIDDEN
        };
        let mut child = crate::agent_body("child-of-alpha");
        child["parent"] = json!({"type": "agent", "id": a_id});
        cases.push((s.req_as(token, Method::POST, "/v1/agents").json(&child), ref_status));
        let mut dep = crate::agent_body("depends-on-alpha");
        dep["depends_on"] = json!([a_id]);
        cases.push((s.req_as(token, Method::POST, "/v1/agents").json(&dep), ref_status));
        cases.push((
            s.req_as(token, Method::POST, "/v1/agents/bulk")
                .json(&json!({"agents": [dep]})),
            ref_status,
        ));
        cases.push((
            s.req_as(
                token,
                Method::PATCH,
                &format!("/v1/agents/{}", w.b_agent["id"].as_str().unwrap()),
            )
            .json(&json!({"depends_on": [a_id]})),
            ref_status,
        ));
        for (i, (req, status)) in cases.into_iter().enumerate() {
            let p = problem(req.send().await.unwrap(), status).await;
            if status == StatusCode::NOT_FOUND {
                // The same answer as for an id that never existed.
                assert_eq!(p["type"], "urn:idv:problem:not-found", "{role} case {i}");
            }
            if status == StatusCode::UNPROCESSABLE_ENTITY {
                let field = p["field"].as_str().unwrap();
                assert!(field == "parent" || field == "depends_on", "{p}");
            }
        }
    }
    // A's records are exactly as they were, and A's token still works.
    assert_eq!(alpha_state(&w).await, before);
    let b_agents = crate::all_agents_as(s, &w.b[0].1, "").await;
    assert_eq!(
        b_agents,
        vec![
            get_as(
                s,
                &w.b[0].1,
                &format!("/v1/agents/{}", w.b_agent["id"].as_str().unwrap())
            )
            .await
        ]
    );
}

async fn lists_and_exports_never_show_another_tenant(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let a_id = w.a_agent["id"].as_str().unwrap();
    let a_ids = [a_id, w.a_other["id"].as_str().unwrap()];
    // A did more things so that its audit log has every kind of event.
    assert_eq!(
        crate::transition(s, &w.a_admin, a_id, "activate", "alpha reason")
            .await
            .status(),
        200
    );
    let tenants = get(s, "/v1/tenants").await;
    let beta_id = tenants["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "beta")
        .unwrap()["id"]
        .clone();
    for (role, token) in &w.b {
        // Agents: every filter that matches A's agent, and A's id as a cursor.
        for q in [
            "",
            "name_prefix=shared",
            "name_prefix=alpha",
            "owner=alpha-owner",
            "class=alpha-class",
            "label=secret-project%3Dx",
            "status=active",
            "limit=1",
        ] {
            let items = get_as(s, token, &format!("/v1/agents?{q}")).await["items"]
                .as_array()
                .unwrap()
                .clone();
            assert!(items.iter().all(|a| a["tenant"] == "beta"), "{role} {q}: {items:?}");
            assert!(items.iter().all(|a| !a_ids.contains(&a["id"].as_str().unwrap())));
        }
        let items = get_as(s, token, &format!("/v1/agents?cursor={}", uuid::Uuid::nil())).await["items"].clone();
        assert_eq!(
            items,
            json!([get_as(s, token, &format!("/v1/agents/{}", w.b_agent["id"].as_str().unwrap())).await])
        );
        // Exports.
        for format in ["csv", "json"] {
            let res = s
                .req_as(token, Method::GET, &format!("/v1/agents/export?format={format}"))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            let text = res.text().await.unwrap();
            for id in a_ids {
                assert!(!text.contains(id), "{role} {format} export shows alpha's {id}");
            }
            assert!(!text.contains("/t/alpha/"));
            assert!(text.contains(w.b_agent["id"].as_str().unwrap()));
        }
        // Tenants: only its own.
        let tenants = get_as(s, token, "/v1/tenants").await;
        assert_eq!(tenants["items"].as_array().unwrap().len(), 1, "{role}");
        assert_eq!(tenants["items"][0]["name"], "beta");
        let me = get_as(s, token, "/v1/admin-tokens/self").await;
        assert_eq!(me["tenant"]["name"], "beta");
        assert_eq!(me["admin_token"]["tenant"], "beta");
    }
    // Admin tokens (admin role only) and audit events (admin and auditor).
    let b_admin = &w.b[0].1;
    let tokens = get_as(s, b_admin, "/v1/admin-tokens").await["items"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(tokens.len(), 3);
    assert!(tokens.iter().all(|t| t["tenant"] == "beta"));
    assert!(tokens.iter().all(|t| t["id"] != w.a_token_id.as_str()));
    for token in [b_admin, &w.b[2].1] {
        for q in [
            "",
            &format!("target_id={a_id}"),
            &format!("actor_token_id={}", w.a_token_id),
            "action=agent.activate",
            "action=tenant.create",
        ] {
            let events = events_as(s, token, q).await;
            assert!(events.iter().all(|e| e["tenant_id"] == beta_id), "{q}: {events:?}");
            assert!(events.iter().all(|e| e["actor"]["token_id"] != w.a_token_id.as_str()));
            assert!(!serde_json::to_string(&events).unwrap().contains("alpha reason"));
        }
        let events = events_as(s, token, "").await;
        assert!(
            events.iter().any(|e| e["target_id"] == w.b_agent["id"]),
            "B sees its own events"
        );
    }
    // And the other way round: A sees nothing of B.
    let events = events_as(s, &w.a_admin, "").await;
    assert!(!events.iter().any(|e| e["tenant_id"] == beta_id));
    let agents = crate::all_agents_as(s, &w.a_admin, "").await;
    assert_eq!(agents.len(), 2);
}

async fn a_token_cannot_switch_itself_into_another_tenant(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let a_id = w.a_agent["id"].as_str().unwrap();
    let before = alpha_state(&w).await;
    for (role, token) in &w.b {
        for (method, path, body) in [
            (Method::GET, "/v1/agents".to_owned(), None),
            (Method::GET, format!("/v1/agents/{a_id}"), None),
            (Method::GET, "/v1/agents/export".to_owned(), None),
            (Method::GET, "/v1/audit/events".to_owned(), None),
            (Method::GET, "/v1/admin-tokens".to_owned(), None),
            (Method::GET, "/v1/admin-tokens/self".to_owned(), None),
            (Method::GET, "/v1/tenants/alpha".to_owned(), None),
            (
                Method::POST,
                "/v1/agents".to_owned(),
                Some(crate::agent_body("planted")),
            ),
            (
                Method::PATCH,
                format!("/v1/agents/{a_id}"),
                Some(json!({"owner": "mallory"})),
            ),
            (
                Method::POST,
                format!("/v1/agents/{a_id}/retire"),
                Some(json!({"reason": "x"})),
            ),
            (
                Method::POST,
                "/v1/admin-tokens".to_owned(),
                Some(json!({"name": "backdoor", "role": "admin"})),
            ),
            (Method::DELETE, format!("/v1/admin-tokens/{}", w.a_token_id), None),
        ] {
            // Naming another tenant is refused, and so is a tenant that does not exist.
            for tenant in ["alpha", "default", "nonexistent"] {
                let mut req = s.req_as(token, method.clone(), &path).header("x-idv-tenant", tenant);
                if let Some(b) = &body {
                    req = req.json(b);
                }
                let p = problem(req.send().await.unwrap(), StatusCode::FORBIDDEN).await;
                assert_eq!(
                    p["type"], "urn:idv:problem:forbidden",
                    "{role} {method} {path} as {tenant}"
                );
            }
        }
        // Naming its own tenant is fine.
        let res = s
            .req_as(token, Method::GET, "/v1/agents")
            .header("x-idv-tenant", "beta")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    // Platform-only operations.
    let b_admin = &w.b[0].1;
    for (req, what) in [
        (
            s.req_as(b_admin, Method::POST, "/v1/tenants")
                .json(&json!({"name": "gamma"})),
            "create a tenant",
        ),
        (s.req_as(b_admin, Method::GET, "/v1/audit/head"), "read the chain head"),
        (
            s.req_as(b_admin, Method::GET, "/v1/audit/events?all_tenants=true"),
            "read every tenant's events",
        ),
        (
            s.req_as(b_admin, Method::POST, "/v1/admin-tokens")
                .json(&json!({"name": "p", "role": "admin", "platform": true})),
            "create a platform token",
        ),
    ] {
        let p = problem(req.send().await.unwrap(), StatusCode::FORBIDDEN).await;
        assert_eq!(p["type"], "urn:idv:problem:forbidden", "{what}");
    }
    assert_eq!(alpha_state(&w).await, before);
    let tenants = get(s, "/v1/tenants").await;
    assert!(
        !tenants["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "gamma")
    );
}

async fn platform_tokens_act_in_a_named_tenant_and_it_is_recorded(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    // Without the header, the bootstrap token acts in its own (default) tenant.
    assert_eq!(get(s, "/v1/agents").await["items"], json!([]));
    let res = s
        .req(
            Method::GET,
            &format!("/v1/agents/{}", w.a_agent["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    // With it, in the named tenant.
    let in_alpha = |method: Method, path: &str| s.req(method, path).header("x-idv-tenant", "alpha");
    let list = json_ok(
        in_alpha(Method::GET, "/v1/agents").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let me = json_ok(
        in_alpha(Method::GET, "/v1/admin-tokens/self").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(me["tenant"]["name"], "alpha");
    assert_eq!(me["admin_token"]["tenant"], "default");
    assert_eq!(me["admin_token"]["platform"], true);
    let a = json_ok(
        in_alpha(Method::POST, "/v1/agents")
            .header("x-request-id", "platform-1")
            .json(&crate::agent_body("made-by-platform"))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(a["tenant"], "alpha");
    assert!(
        a["spiffe_id"]
            .as_str()
            .unwrap()
            .starts_with("spiffe://idv.test/t/alpha/agent/")
    );
    // Alpha's admin sees the agent and the event, which names the choice.
    get_as(s, &w.a_admin, &format!("/v1/agents/{}", a["id"].as_str().unwrap())).await;
    let events = events_as(s, &w.a_admin, "action=agent.create").await;
    let ev = events.iter().find(|e| e["request_id"] == "platform-1").unwrap();
    assert_eq!(ev["actor"]["name"], "bootstrap");
    assert_eq!(ev["details"]["request"]["acting_in_tenant"], "alpha");
    let default_id = get(s, "/v1/tenants/default").await["id"].clone();
    assert_eq!(ev["details"]["request"]["home_tenant_id"], default_id);
    let alpha_id = get(s, "/v1/tenants/alpha").await["id"].clone();
    assert_eq!(ev["tenant_id"], alpha_id);
    // A platform token naming its own tenant is not cross-tenant.
    let a = json_ok(
        s.req(Method::POST, "/v1/agents")
            .header("x-idv-tenant", "default")
            .header("x-request-id", "platform-2")
            .json(&crate::agent_body("home"))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(a["tenant"], "default");
    let ev = all_events(s)
        .await
        .into_iter()
        .find(|e| e["request_id"] == "platform-2")
        .unwrap();
    assert!(ev["details"].get("request").is_none(), "{ev}");
}

/// What each role may do (`idv_core::admin_token::Role::allows`).
fn allowed(role: &str, permission: &str) -> bool {
    matches!(
        (role, permission),
        (_, "none" | "read_registry")
            | ("admin" | "operator", "write_registry")
            | ("admin", "manage_tokens")
            | ("admin" | "auditor", "read_audit")
    )
}

async fn roles_allow_exactly_the_permission_table(backend: Backend) {
    let s = TestServer::start(backend).await;
    let acme_id = json_ok(
        s.req(Method::POST, "/v1/tenants")
            .json(&json!({"name": "acme"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await["id"]
        .clone();
    let mut denials = 0;
    for role in ["admin", "operator", "auditor"] {
        let (token, token_id) = crate::named_token(&s, "acme", role, &format!("{role}-token")).await;
        let agent = create_agent(
            &s,
            &crate::named_token(&s, "acme", "admin", &format!("setup-{role}"))
                .await
                .0,
            &format!("agent-of-{role}"),
        )
        .await;
        let id = agent["id"].as_str().unwrap().to_owned();
        let (_, victim) = crate::named_token(&s, "acme", "auditor", &format!("victim-{role}")).await;
        let cases: Vec<(Method, String, Option<Value>, &str, &str)> = vec![
            (Method::GET, "/v1/tenants".into(), None, "read_registry", "tenant.list"),
            (
                Method::GET,
                "/v1/tenants/acme".into(),
                None,
                "read_registry",
                "tenant.get",
            ),
            (
                Method::POST,
                "/v1/tenants".into(),
                Some(json!({"name": format!("t-{role}")})),
                "platform",
                "tenant.create",
            ),
            (Method::GET, "/v1/admin-tokens/self".into(), None, "none", ""),
            (
                Method::GET,
                "/v1/admin-tokens".into(),
                None,
                "manage_tokens",
                "admin_token.list",
            ),
            (
                Method::GET,
                format!("/v1/admin-tokens/{victim}"),
                None,
                "manage_tokens",
                "admin_token.get",
            ),
            (
                Method::POST,
                "/v1/admin-tokens".into(),
                Some(json!({"name": "new", "role": "operator"})),
                "manage_tokens",
                "admin_token.create",
            ),
            (
                Method::POST,
                "/v1/admin-tokens".into(),
                Some(json!({"name": "new", "role": "auditor", "platform": true})),
                "platform",
                "",
            ),
            (Method::GET, "/v1/agents".into(), None, "read_registry", "agent.list"),
            (
                Method::GET,
                "/v1/agents/export".into(),
                None,
                "read_registry",
                "agent.list",
            ),
            (
                Method::GET,
                format!("/v1/agents/{id}"),
                None,
                "read_registry",
                "agent.read",
            ),
            (
                Method::POST,
                "/v1/agents".into(),
                Some(crate::agent_body(&format!("new-by-{role}"))),
                "write_registry",
                "agent.create",
            ),
            (
                Method::POST,
                "/v1/agents/bulk".into(),
                Some(json!({"agents": [crate::agent_body(&format!("bulk-by-{role}"))]})),
                "write_registry",
                "agent.create",
            ),
            (
                Method::PATCH,
                format!("/v1/agents/{id}"),
                Some(json!({"team": "t"})),
                "write_registry",
                "agent.update",
            ),
            (
                Method::POST,
                format!("/v1/agents/{id}/activate"),
                Some(json!({"reason": "r"})),
                "write_registry",
                "agent.transition",
            ),
            (Method::GET, "/v1/audit/events".into(), None, "read_audit", "audit.read"),
            (
                Method::GET,
                "/v1/audit/events?all_tenants=true".into(),
                None,
                "platform_audit",
                "",
            ),
            (
                Method::GET,
                "/v1/audit/head".into(),
                None,
                "platform_audit",
                "audit.read_all_tenants",
            ),
            (
                Method::DELETE,
                format!("/v1/admin-tokens/{victim}"),
                None,
                "manage_tokens",
                "admin_token.revoke",
            ),
        ];
        for (method, path, body, permission, action) in cases {
            let before = head(&s).await;
            let mut req = s.req_as(&token, method.clone(), &path);
            if let Some(b) = &body {
                req = req.json(b);
            }
            let res = req.send().await.unwrap();
            let what = format!("{role} {method} {path}");
            if allowed(role, permission) {
                assert!(res.status().is_success(), "{what}: {}", res.status());
                continue;
            }
            let p = problem(res, StatusCode::FORBIDDEN).await;
            assert_eq!(p["type"], "urn:idv:problem:forbidden", "{what}");
            assert!(p["detail"].as_str().unwrap().contains(role), "{what}: {p}");
            // The refusal is itself audited, once, as `denied`, in acme's log.
            let new = crate::events_after(&s, before).await;
            assert_eq!(new.len(), 1, "{what}: {new:?}");
            let ev = &new[0];
            assert_eq!(ev["outcome"], "denied", "{what}");
            assert_eq!(ev["actor"]["token_id"], token_id.as_str(), "{what}");
            assert_eq!(ev["actor"]["name"], format!("{role}-token"));
            assert_eq!(ev["tenant_id"], acme_id, "{what}");
            assert_eq!(ev["target_type"], "api");
            assert_eq!(ev["details"]["role"], role);
            if !action.is_empty() {
                assert_eq!(ev["action"], action, "{what}");
            }
            denials += 1;
        }
    }
    assert!(denials >= 20, "{denials}");
    let acme_agents = crate::all_agents_as(&s, &s.token, "").await;
    assert!(acme_agents.is_empty(), "the default tenant was not touched");
    let acme_agents: Vec<Value> =
        crate::all_agents_as(&s, &crate::named_token(&s, "acme", "auditor", "reader").await.0, "").await;
    let names: Vec<&str> = acme_agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert!(!names.iter().any(|n| n.ends_with("-by-auditor")), "{names:?}");
    assert!(
        names.contains(&"new-by-operator") && names.contains(&"bulk-by-admin"),
        "{names:?}"
    );
    let tenants = get(&s, "/v1/tenants").await;
    assert_eq!(
        tenants["items"].as_array().unwrap().len(),
        2,
        "no role created a tenant"
    );
}

async fn platform_roles(backend: Backend) {
    let s = TestServer::start(backend).await;
    let token = |role: &str| {
        let req = s
            .req(Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": format!("platform-{role}"), "role": role, "platform": true}));
        async move {
            let v = json_ok(req.send().await.unwrap(), StatusCode::CREATED).await;
            assert_eq!(v["admin_token"]["platform"], true);
            v["token"].as_str().unwrap().to_owned()
        }
    };
    let (p_admin, p_operator, p_auditor) = (token("admin").await, token("operator").await, token("auditor").await);
    // A platform admin creates tenants.
    let res = s
        .req_as(&p_admin, Method::POST, "/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let a = create_agent(
        &s,
        &crate::named_token(&s, "acme", "admin", "acme-admin").await.0,
        "acme-agent",
    )
    .await;
    let id = a["id"].as_str().unwrap();
    // A platform auditor reads any tenant and the whole chain, and writes nothing.
    let res = s
        .req_as(&p_auditor, Method::GET, &format!("/v1/agents/{id}"))
        .header("x-idv-tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(get_as(&s, &p_auditor, "/v1/audit/head").await["seq"].as_i64().unwrap() > 0);
    let all = crate::events_as(&s, &p_auditor, "all_tenants=true").await;
    assert_eq!(crate::verify(&all).unwrap(), head(&s).await);
    for req in [
        s.req_as(&p_auditor, Method::POST, "/v1/agents")
            .header("x-idv-tenant", "acme")
            .json(&crate::agent_body("nope")),
        s.req_as(&p_auditor, Method::POST, "/v1/tenants")
            .json(&json!({"name": "nope"})),
        // A platform operator manages agents anywhere, but neither tenants nor the audit log.
        s.req_as(&p_operator, Method::POST, "/v1/tenants")
            .json(&json!({"name": "nope"})),
        s.req_as(&p_operator, Method::GET, "/v1/audit/head"),
        s.req_as(&p_operator, Method::GET, "/v1/audit/events?all_tenants=true"),
        s.req_as(&p_operator, Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": "x", "role": "operator"})),
    ] {
        problem(req.send().await.unwrap(), StatusCode::FORBIDDEN).await;
    }
    let res = s
        .req_as(&p_operator, Method::POST, &format!("/v1/agents/{id}/activate"))
        .header("x-idv-tenant", "acme")
        .json(&json!({"reason": "platform ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

async fn tenant_admin_cannot_revoke_platform_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (tenant_admin, _) = crate::named_token(&s, "default", "admin", "default-admin").await;
    let me = get(&s, "/v1/admin-tokens/self").await;
    let bootstrap_id = me["admin_token"]["id"].as_str().unwrap();
    let res = s
        .req_as(
            &tenant_admin,
            Method::DELETE,
            &format!("/v1/admin-tokens/{bootstrap_id}"),
        )
        .send()
        .await
        .unwrap();
    let status = res.status();
    // Whatever the answer, the platform operator must not be locked out.
    let still = s
        .req(Method::GET, "/v1/admin-tokens/self")
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(still, StatusCode::OK, "the tenant admin revoked the platform token");
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A token naming another tenant is refused, and the refusal is on the
/// record in the token's own tenant. (Found failing at a5a8d16, where
/// `app::auth::authenticate` refused without an event.)
async fn refused_tenant_switch_is_audited(backend: Backend) {
    let w = world(backend).await;
    let s = &w.s;
    let b_admin = &w.b[0].1;
    let before = head(s).await;
    let res = s
        .req_as(b_admin, Method::GET, "/v1/agents")
        .header("x-idv-tenant", "alpha")
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN).await;
    let new = crate::events_after(s, before).await;
    assert_eq!(new.len(), 1, "{new:?}");
    let ev = &new[0];
    assert_eq!(ev["outcome"], "denied");
    assert_eq!(ev["target_id"], "alpha");
    let beta = get(s, "/v1/tenants/beta").await;
    assert_eq!(ev["tenant_id"], beta["id"], "recorded in the token's own tenant");
    let me = get_as(s, b_admin, "/v1/admin-tokens/self").await;
    assert_eq!(ev["actor"]["token_id"], me["admin_token"]["id"]);
    // B's auditor can read it; alpha's log does not show it.
    let b_events = events_as(s, &w.b[2].1, "outcome=denied").await;
    assert!(b_events.iter().any(|e| e["id"] == ev["id"]));
    assert!(!events_as(s, &w.a_admin, "").await.iter().any(|e| e["id"] == ev["id"]));
}
