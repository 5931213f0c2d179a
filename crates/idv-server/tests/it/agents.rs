//! The agent registry and lifecycle over HTTP.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{agent_count, create_agent, problem};

backend_tests!(
    create_get_and_etag,
    list_filters_and_keyset_pagination,
    update_with_if_match,
    duplicate_names_conflict_and_stay_reserved,
    lifecycle_transitions,
    bulk_create_is_all_or_nothing,
    export_csv_and_json,
    ttl_agents_retire_themselves_even_across_restarts,
);

async fn create_get_and_etag(backend: Backend) {
    let s = TestServer::start(backend).await;
    let body = json!({
        "name": "billing-bot", "owner": "alice@bank.example", "purpose": "reconcile",
        "environment": "prod", "team": "fin", "labels": {"cost-center": "42"}, "capabilities": ["payments.read"],
        "class": "reconciler", "parent": {"type": "human", "id": "alice"}
    });
    let res = s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let a: Value = res.json().await.unwrap();
    let id = a["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(uuid.get_version_num(), 7);
    assert_eq!(a["spiffe_id"], format!("spiffe://idv.test/t/default/agent/{id}"));
    assert_eq!(a["status"], "provisioning");
    assert_eq!(a["version"], 1);
    assert_eq!(a["parent"], json!({"type": "human", "id": "alice"}));
    assert_eq!(a["created_by"], a["status_changed_by"]);
    assert!(a["created_by"].as_str().unwrap().starts_with("admin_token:"));

    let res = s.req(Method::GET, &format!("/v1/agents/{id}")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"1\"");
    let got: Value = res.json().await.unwrap();
    assert_eq!(got, a);

    // A child agent may name its parent agent and depend on it.
    let child = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "child", "owner": "o", "purpose": "p", "parent": {"type": "agent", "id": id}, "depends_on": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(child.status(), 201);
    // An unknown dependency is refused.
    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "orphan", "owner": "o", "purpose": "p", "depends_on": [uuid::Uuid::from_u128(42)]}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    let res = s
        .req(Method::GET, &format!("/v1/agents/{}", uuid::Uuid::from_u128(42)))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
}

async fn list_filters_and_keyset_pagination(backend: Backend) {
    let s = TestServer::start(backend).await;
    for i in 0..25 {
        let env = ["dev", "test", "prod"][i % 3];
        let body = json!({
            "name": format!("{}-{i:02}", if i % 2 == 0 { "even" } else { "odd" }),
            "owner": format!("owner-{}", i % 5), "purpose": "p", "environment": env,
            "class": if i < 5 { "alpha" } else { "beta" },
            "labels": {"tier": if i % 4 == 0 { "gold" } else { "silver" }, "region": "eu"},
        });
        assert_eq!(
            s.req(Method::POST, "/v1/agents")
                .json(&body)
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }
    let list = |q: &str| {
        let req = s.req(Method::GET, &format!("/v1/agents?{q}"));
        async move {
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), 200);
            let v: Value = res.json().await.unwrap();
            v
        }
    };
    let names = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&list("owner=owner-0").await).len(), 5);
    assert_eq!(names(&list("environment=prod").await).len(), 8);
    assert_eq!(names(&list("class=alpha").await).len(), 5);
    assert_eq!(names(&list("label=tier%3Dgold").await).len(), 7);
    assert_eq!(names(&list("label=tier%3Dgold&label=region%3Deu").await).len(), 7);
    assert_eq!(names(&list("label=tier%3Dgold&label=region%3Dus").await).len(), 0);
    assert!(
        names(&list("name_prefix=odd-").await)
            .iter()
            .all(|n| n.starts_with("odd-"))
    );
    assert_eq!(names(&list("name_prefix=odd-").await).len(), 12);
    assert_eq!(names(&list("status=provisioning").await).len(), 25);
    assert_eq!(names(&list("status=active").await).len(), 0);
    assert_eq!(names(&list("owner=owner-1&environment=test").await).len(), 2);

    // Keyset pagination: three pages, no duplicates, no omissions, id order.
    let mut seen = Vec::new();
    let mut q = "limit=10".to_owned();
    for page in 0.. {
        let v = list(&q).await;
        let ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        seen.extend(ids);
        match v.get("next_cursor").and_then(Value::as_str) {
            Some(c) => q = format!("limit=10&cursor={c}"),
            None => {
                assert_eq!(page, 2);
                break;
            }
        }
    }
    assert_eq!(seen.len(), 25);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen);
}

async fn update_with_if_match(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "upd").await;
    let path = format!("/v1/agents/{}", a["id"].as_str().unwrap());
    let patch = |body: Value, etag: Option<&str>| {
        let mut req = s
            .req(Method::PATCH, &path)
            .header("content-type", "application/merge-patch+json")
            .body(serde_json::to_vec(&body).unwrap());
        if let Some(e) = etag {
            req = req.header("if-match", e);
        }
        req.send()
    };
    let res = patch(json!({"team": "payments", "labels": {"a": "b"}}), Some("\"1\""))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["team"], "payments");
    assert_eq!(v["version"], 2);

    // A stale version: 412 naming the current one, nothing changed.
    let p = problem(
        patch(json!({"owner": "mallory"}), Some("\"1\"")).await.unwrap(),
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:stale-version");
    assert_eq!(p["current_version"], 2);
    let now: Value = s.req(Method::GET, &path).send().await.unwrap().json().await.unwrap();
    assert_eq!(now["owner"], "alice@bank.example");

    // `null` clears; `*` matches any version.
    let v: Value = patch(json!({"team": null}), Some("*"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["team"].is_null());
    assert_eq!(v["version"], 3);
    // Without If-Match the write is unconditional (as in plain HTTP).
    let v: Value = patch(json!({"owner": "bob"}), None)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["owner"], "bob");
    assert_eq!(v["version"], 4);
    let res = patch(json!({}), Some("\"4\"")).await.unwrap();
    assert_eq!(
        problem(res, StatusCode::BAD_REQUEST).await["type"],
        "urn:idv:problem:empty-patch"
    );
    let res = patch(json!({"owner": "x"}), Some("W/\"abc\"")).await.unwrap();
    problem(res, StatusCode::BAD_REQUEST).await;
}

async fn duplicate_names_conflict_and_stay_reserved(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "dup").await;
    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "dup", "owner": "o", "purpose": "p"}))
        .send()
        .await;
    assert_eq!(
        problem(res.unwrap(), StatusCode::CONFLICT).await["type"],
        "urn:idv:problem:conflict"
    );
    let id = a["id"].as_str().unwrap();
    let res = s
        .req(Method::POST, &format!("/v1/agents/{id}/retire"))
        .json(&json!({"reason": "done"}))
        .send()
        .await;
    assert_eq!(res.unwrap().status(), 200);
    // A retired agent's name is not freed: it could be mistaken for the old one.
    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "dup", "owner": "o", "purpose": "p"}))
        .send()
        .await;
    problem(res.unwrap(), StatusCode::CONFLICT).await;
    assert_eq!(agent_count(&s).await, 1);
}

async fn lifecycle_transitions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "life").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let go = |verb: &str, reason: Option<&str>| {
        let body = match reason {
            Some(r) => json!({"reason": r}),
            None => json!({}),
        };
        s.req(Method::POST, &format!("/v1/agents/{id}/{verb}"))
            .json(&body)
            .send()
    };
    // Not yet active: suspend and resume are refused, naming the state.
    for verb in ["suspend", "resume"] {
        let p = problem(go(verb, Some("x")).await.unwrap(), StatusCode::CONFLICT).await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-transition");
        assert_eq!(p["current_state"], "provisioning");
    }
    // The reason is required.
    problem(go("activate", None).await.unwrap(), StatusCode::BAD_REQUEST).await;
    problem(
        go("activate", Some("")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    for (verb, state) in [
        ("activate", "active"),
        ("suspend", "suspended"),
        ("resume", "active"),
        ("suspend", "suspended"),
    ] {
        let res = go(verb, Some(&format!("ticket for {verb}"))).await.unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["status"], state);
        assert_eq!(v["status_reason"], format!("ticket for {verb}"));
        assert_eq!(v["status_changed_by"], a["created_by"]);
    }
    let p = problem(go("activate", Some("x")).await.unwrap(), StatusCode::CONFLICT).await;
    assert_eq!(p["current_state"], "suspended");
    assert_eq!(go("retire", Some("decommissioned")).await.unwrap().status(), 200);
    // Retired is terminal, and the record stays readable.
    for verb in ["activate", "suspend", "resume", "retire"] {
        let p = problem(go(verb, Some("x")).await.unwrap(), StatusCode::CONFLICT).await;
        assert_eq!(p["current_state"], "retired");
    }
    let v: Value = s
        .req(Method::GET, &format!("/v1/agents/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["status"], "retired");
    assert_eq!(v["status_reason"], "decommissioned");
    let res = go("explode", Some("x")).await.unwrap();
    assert!(res.status() == 404 || res.status() == 400, "{}", res.status());
}

async fn bulk_create_is_all_or_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    let agents: Vec<Value> = (0..10_000)
        .map(|i| json!({"name": format!("bulk-{i:05}"), "owner": "team", "purpose": "scale", "labels": {"n": i.to_string()}}))
        .collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": agents}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["created"], 10_000);
    assert_eq!(v["agents"].as_array().unwrap().len(), 10_000);
    assert_eq!(v["agents"][9_999]["name"], "bulk-09999");
    assert_eq!(agent_count(&s).await, 10_000);
    let head = crate::head(&s).await;

    // One invalid item: 400 naming it, nothing created, one failure event at most.
    let mut bad: Vec<Value> = (0..100)
        .map(|i| json!({"name": format!("more-{i}"), "owner": "t", "purpose": "p"}))
        .collect();
    bad[57] = json!({"name": "more-57", "owner": "", "purpose": "p"});
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": bad}))
        .send()
        .await
        .unwrap();
    let p = problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["type"], "urn:idv:problem:invalid-field");
    assert_eq!(p["field"], "agents[57].owner");
    // A name already taken: 409, nothing created.
    let mut dup: Vec<Value> = (0..100)
        .map(|i| json!({"name": format!("more-{i}"), "owner": "t", "purpose": "p"}))
        .collect();
    dup[99] = json!({"name": "bulk-00000", "owner": "t", "purpose": "p"});
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": dup}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT).await;
    // Duplicates inside the request are refused too.
    let twice = json!({"agents": [{"name": "same", "owner": "o", "purpose": "p"}, {"name": "same", "owner": "o", "purpose": "p"}]});
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&twice)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error());
    assert_eq!(agent_count(&s).await, 10_000);
    assert!(crate::head(&s).await <= head + 3);
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": []}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn export_csv_and_json(backend: Backend) {
    let s = TestServer::start(backend).await;
    let agent = |i: usize| {
        let owner = if i == 7 {
            "=HYPERLINK(\"http://evil\")".to_owned()
        } else {
            format!("o{i}")
        };
        json!({"name": format!("e{i:04}"), "owner": owner, "purpose": "a, \"quoted\" purpose"})
    };
    // More than one export page (1,000) of agents.
    let agents: Vec<Value> = (0..1_200).map(agent).collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": agents}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for i in 1_200..1_205 {
        assert_eq!(
            s.req(Method::POST, "/v1/agents")
                .json(&agent(i))
                .send()
                .await
                .unwrap()
                .status(),
            201
        );
    }

    let res = s.req(Method::GET, "/v1/agents/export?format=csv").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + 1_205);
    assert!(lines[0].starts_with("id,spiffe_id,name,owner,purpose"));
    assert!(csv.contains("\"a, \"\"quoted\"\" purpose\""));
    // Formula injection is neutralised: no cell starts with `=`.
    assert!(csv.contains("'=HYPERLINK"));
    assert!(!csv.contains(",=HYPERLINK"));

    let res = s
        .req(Method::GET, "/v1/agents/export?format=json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let all: Vec<Value> = res.json().await.unwrap();
    assert_eq!(all.len(), 1_205);
    assert!(all.iter().any(|a| a["owner"] == "=HYPERLINK(\"http://evil\")"));
    let res = s.req(Method::GET, "/v1/agents/export?format=xml").send().await.unwrap();
    problem(res, StatusCode::BAD_REQUEST).await;
}

async fn ttl_agents_retire_themselves_even_across_restarts(backend: Backend) {
    let clock = TestServer::manual_clock();
    let s = TestServer::start_with(
        backend,
        idv_testkit::Options {
            clock: Some(clock.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let create = |name: &str, ttl: Value| {
        s.req(Method::POST, "/v1/agents")
            .json(&json!({"name": name, "owner": "o", "purpose": "jit", "ttl": ttl}))
            .send()
    };
    let short: Value = create("short", json!("60s")).await.unwrap().json().await.unwrap();
    let long: Value = create("long", json!(3600)).await.unwrap().json().await.unwrap();
    assert!(short["expires_at"].is_string());
    problem(
        create("bad", json!("soon")).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        create("zero", json!(0)).await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // Restart before it is due: the job is durable.
    let s = s.restart(backend).await.unwrap();
    clock.advance_secs(61);
    let status = |id: String| {
        let req = s.req(Method::GET, &format!("/v1/agents/{id}"));
        async move {
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            v
        }
    };
    let mut retired = None;
    for _ in 0..200 {
        let v = status(short["id"].as_str().unwrap().to_owned()).await;
        if v["status"] == "retired" {
            retired = Some(v);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let v = retired.expect("the TTL agent did not retire");
    assert!(v["status_changed_by"].as_str().unwrap().starts_with("system"), "{v}");
    assert_eq!(
        status(long["id"].as_str().unwrap().to_owned()).await["status"],
        "provisioning"
    );
    let events = crate::all_events(&s).await;
    let expiry: Vec<&Value> = events
        .iter()
        .filter(|e| e["target_id"] == short["id"] && e["actor"]["kind"] == "system")
        .collect();
    assert_eq!(expiry.len(), 1, "{expiry:?}");
    assert_eq!(expiry[0]["outcome"], "success");
}
