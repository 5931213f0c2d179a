//! The agent registry over HTTP: create, get, list, update, bulk, export.

use std::collections::HashSet;

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{
    agent_body, agent_count, create_agent, events_after, get, head, json_ok, problem, tenant_token, transition,
};

backend_tests!(
    create_assigns_uuidv7_spiffe_id_and_defaults,
    create_with_every_field_round_trips,
    parent_and_dependencies_must_exist,
    list_filters_each_narrow_the_result,
    keyset_pagination_has_no_duplicates_or_omissions,
    pagination_stays_consistent_while_agents_are_added,
    update_with_if_match,
    update_validates_and_names_are_unique,
    duplicate_names_conflict_and_stay_reserved,
    bulk_create_ten_thousand_is_all_or_nothing,
    bulk_item_errors_name_the_item_and_field,
    export_csv_and_json,
    export_of_an_empty_and_a_page_sized_inventory,
    bulk_edge_parsed_field_errors_name_the_field,
    bulk_unknown_reference_names_the_item,
    reassigning_an_owner_moves_their_live_agents,
);

async fn create_assigns_uuidv7_spiffe_id_and_defaults(backend: Backend) {
    let s = TestServer::start(backend).await;
    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&agent_body("minimal"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let a: Value = res.json().await.unwrap();
    let id = a["id"].as_str().unwrap();
    let uuid = uuid::Uuid::parse_str(id).unwrap();
    assert_eq!(uuid.get_version_num(), 7, "{id} is not a UUIDv7");
    assert_eq!(a["spiffe_id"], format!("spiffe://idv.test/t/default/agent/{id}"));
    assert_eq!(a["tenant"], "default");
    assert_eq!(a["name"], "minimal");
    assert_eq!(a["owner"], "alice@bank.example");
    assert_eq!(a["purpose"], "testing");
    // Defaults of every optional field.
    assert_eq!(a["status"], "provisioning");
    assert_eq!(a["version"], 1);
    for null in ["environment", "team", "class", "parent", "status_reason", "expires_at"] {
        assert!(a[null].is_null(), "{null} should default to null: {a}");
    }
    assert_eq!(a["labels"], json!({}));
    assert_eq!(a["capabilities"], json!([]));
    assert_eq!(a["depends_on"], json!([]));
    // Times are RFC 3339 UTC, and all equal at creation.
    let created = a["created_at"].as_str().unwrap();
    assert!(created.ends_with('Z'), "{created}");
    idv_core::Timestamp::parse(created).unwrap();
    assert_eq!(a["updated_at"], created);
    assert_eq!(a["status_changed_at"], created);
    // Who created it: the bootstrap token.
    let me = get(&s, "/v1/admin-tokens/self").await;
    let by = format!("admin_token:{}", me["admin_token"]["id"].as_str().unwrap());
    assert_eq!(a["created_by"], by);
    assert_eq!(a["status_changed_by"], by);

    // GET answers the same record with the same ETag.
    let res = s.req(Method::GET, &format!("/v1/agents/{id}")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"1\"");
    assert_eq!(res.json::<Value>().await.unwrap(), a);

    // Ids are time-ordered: a later agent sorts after.
    let b = create_agent(&s, &s.token, "second").await;
    let b_id = uuid::Uuid::parse_str(b["id"].as_str().unwrap()).unwrap();
    assert!(b_id > uuid, "UUIDv7 ids must sort by creation");

    // An agent that does not exist.
    let res = s
        .req(Method::GET, &format!("/v1/agents/{}", crate::ghost_id()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(res, StatusCode::NOT_FOUND).await["type"],
        "urn:idv:problem:not-found"
    );
}

async fn create_with_every_field_round_trips(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dep = create_agent(&s, &s.token, "dependency").await;
    let dep_id = dep["id"].as_str().unwrap();
    let body = json!({
        "name": "billing-bot.v2_x", "owner": "alice@bank.example", "purpose": "reconcile invoices",
        "environment": "prod", "team": "fin", "labels": {"cost-center": "42", "app.kubernetes.io/name": "billing"},
        "capabilities": ["payments.read", "ledger:write"], "class": "reconciler",
        "parent": {"type": "human", "id": "alice"}, "depends_on": [dep_id], "ttl": "8h",
    });
    let a = json_ok(
        s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    for key in [
        "name",
        "owner",
        "purpose",
        "environment",
        "team",
        "labels",
        "capabilities",
        "class",
        "parent",
        "depends_on",
    ] {
        assert_eq!(a[key], body[key], "{key}");
    }
    let created = idv_core::Timestamp::parse(a["created_at"].as_str().unwrap()).unwrap();
    let expires = idv_core::Timestamp::parse(a["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.as_micros() - created.as_micros(), 8 * 3600 * 1_000_000);
    let got = get(&s, &format!("/v1/agents/{}", a["id"].as_str().unwrap())).await;
    assert_eq!(got, a);
    // The ttl may also be whole seconds.
    let mut secs = agent_body("seconds-ttl");
    secs["ttl"] = json!(90);
    let a = json_ok(
        s.req(Method::POST, "/v1/agents").json(&secs).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let created = idv_core::Timestamp::parse(a["created_at"].as_str().unwrap()).unwrap();
    let expires = idv_core::Timestamp::parse(a["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(expires.as_micros() - created.as_micros(), 90 * 1_000_000);
}

async fn parent_and_dependencies_must_exist(backend: Backend) {
    let s = TestServer::start(backend).await;
    let parent = create_agent(&s, &s.token, "parent").await;
    let pid = parent["id"].as_str().unwrap();
    let mut child = agent_body("child");
    child["parent"] = json!({"type": "agent", "id": pid});
    child["depends_on"] = json!([pid]);
    let c = json_ok(
        s.req(Method::POST, "/v1/agents").json(&child).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(c["parent"], json!({"type": "agent", "id": pid}));
    assert_eq!(c["depends_on"], json!([pid]));

    let ghost = crate::ghost_id();
    let before = head(&s).await;
    for (field, patch) in [
        ("parent", json!({"parent": {"type": "agent", "id": ghost}})),
        ("depends_on", json!({"depends_on": [ghost]})),
        ("depends_on", json!({"depends_on": [pid, pid]})),
        ("parent", json!({"parent": {"type": "agent", "id": "not-a-uuid"}})),
    ] {
        let mut body = agent_body("orphan");
        body.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
        let p = problem(
            s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-field");
        assert_eq!(p["field"], field, "{p}");
    }
    // An update may not point at a missing agent either.
    let res = s
        .req(Method::PATCH, &format!("/v1/agents/{}", c["id"].as_str().unwrap()))
        .json(&json!({"depends_on": [ghost]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"],
        "depends_on"
    );
    assert_eq!(agent_count(&s).await, 2);
    // The two refusals that reached the store (unknown references) were
    // audited as failures; the rest were refused at the edge.
    let new = crate::events_after(&s, before).await;
    assert_eq!(new.len(), 3, "{new:?}");
    assert!(new.iter().all(|e| e["outcome"] == "failure"), "{new:?}");
}

async fn list_filters_each_narrow_the_result(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let env = ["dev", "test", "prod"][i % 3];
        let body = json!({
            "name": format!("{}-{i:02}", if i % 2 == 0 { "even" } else { "odd" }),
            "owner": format!("owner-{}", i % 5), "purpose": "p", "environment": env,
            "class": if i < 5 { "alpha" } else { "beta" },
            "labels": {"tier": if i % 4 == 0 { "gold" } else { "silver" }, "region": "eu", "expr": "a=b"},
        });
        let a = json_ok(
            s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
            StatusCode::CREATED,
        )
        .await;
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    // Drive a few through the lifecycle so every status is present.
    for id in &ids[0..6] {
        assert_eq!(transition(&s, &s.token, id, "activate", "go").await.status(), 200);
    }
    for id in &ids[0..2] {
        assert_eq!(transition(&s, &s.token, id, "suspend", "hold").await.status(), 200);
    }
    assert_eq!(transition(&s, &s.token, &ids[2], "retire", "done").await.status(), 200);

    let names = |q: &'static str| {
        let req = s.req(Method::GET, &format!("/v1/agents?{q}"));
        async move {
            let v = json_ok(req.send().await.unwrap(), StatusCode::OK).await;
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..25)
            .filter(|&i| pred(i))
            .map(|i| format!("{}-{i:02}", if i % 2 == 0 { "even" } else { "odd" }))
            .collect()
    };
    assert_eq!(names("").await, expect(&|_| true));
    assert_eq!(names("owner=owner-0").await, expect(&|i| i % 5 == 0));
    assert_eq!(names("environment=prod").await, expect(&|i| i % 3 == 2));
    assert_eq!(names("class=alpha").await, expect(&|i| i < 5));
    assert_eq!(names("class=gamma").await, Vec::<String>::new());
    assert_eq!(names("label=tier%3Dgold").await, expect(&|i| i % 4 == 0));
    assert_eq!(names("label=tier=gold").await, expect(&|i| i % 4 == 0));
    assert_eq!(
        names("label=tier%3Dgold&label=region%3Deu").await,
        expect(&|i| i % 4 == 0)
    );
    assert_eq!(names("label=tier%3Dgold&label=region%3Dus").await, Vec::<String>::new());
    assert_eq!(names("label=region%3D").await, Vec::<String>::new());
    // Only the first `=` separates key from value.
    assert_eq!(names("label=expr%3Da%3Db").await.len(), 25);
    assert_eq!(names("name_prefix=odd-").await, expect(&|i| i % 2 == 1));
    assert_eq!(
        names("name_prefix=odd-1").await,
        expect(&|i| i % 2 == 1 && (10..20).contains(&i))
    );
    assert_eq!(names("name_prefix=ODD").await, Vec::<String>::new());
    assert_eq!(names("name_prefix=even-2").await, expect(&|i| i % 2 == 0 && i >= 20));
    assert_eq!(names("status=provisioning").await, expect(&|i| i >= 6));
    assert_eq!(names("status=active").await, expect(&|i| (3..6).contains(&i)));
    assert_eq!(names("status=suspended").await, expect(&|i| i < 2));
    assert_eq!(names("status=retired").await, expect(&|i| i == 2));
    // Filters combine with AND.
    assert_eq!(
        names("owner=owner-1&environment=test").await,
        expect(&|i| i % 5 == 1 && i % 3 == 1)
    );
    assert_eq!(
        names("class=beta&label=tier%3Dgold&status=provisioning&name_prefix=even").await,
        expect(&|i| i >= 6 && i % 4 == 0)
    );
    // A filter plus pagination.
    let page = get(&s, "/v1/agents?label=tier%3Dsilver&limit=10").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 10);
    let cursor = page["next_cursor"].as_str().unwrap();
    let rest = get(&s, &format!("/v1/agents?label=tier%3Dsilver&limit=10&cursor={cursor}")).await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 8);
    assert!(rest.get("next_cursor").is_none_or(Value::is_null));
}

async fn keyset_pagination_has_no_duplicates_or_omissions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut created = Vec::new();
    for i in 0..25 {
        created.push(
            create_agent(&s, &s.token, &format!("p-{i:02}")).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut path = "/v1/agents?limit=10".to_owned();
    loop {
        let v = get(&s, &path).await;
        let ids: Vec<String> = v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        pages.push(ids.len());
        seen.extend(ids);
        match v.get("next_cursor").and_then(Value::as_str) {
            Some(c) => path = format!("/v1/agents?limit=10&cursor={c}"),
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(pages, [10, 10, 5]);
    // Every agent exactly once, in creation (id) order.
    assert_eq!(seen, created);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 25);

    // The default page is 100, and a full last page still ends cleanly.
    let v = get(&s, "/v1/agents?limit=25").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 25);
    let c = v["next_cursor"].as_str().expect("a full page names a cursor");
    let v = get(&s, &format!("/v1/agents?cursor={c}")).await;
    assert_eq!(v["items"], json!([]));
    assert!(v.get("next_cursor").is_none_or(Value::is_null));
    let many: Vec<Value> = (0..120).map(|i| agent_body(&format!("q-{i:03}"))).collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": many}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let v = get(&s, "/v1/agents").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 100);
    assert!(v["next_cursor"].is_string());
    // A cursor of an id that is not an agent still pages by id order.
    let v = get(&s, &format!("/v1/agents?cursor={}", uuid::Uuid::nil())).await;
    assert_eq!(v["items"].as_array().unwrap().len(), 100);
}

async fn pagination_stays_consistent_while_agents_are_added(backend: Backend) {
    let s = TestServer::start(backend).await;
    for i in 0..15 {
        create_agent(&s, &s.token, &format!("old-{i:02}")).await;
    }
    let first = get(&s, "/v1/agents?limit=10").await;
    let mut seen: Vec<String> = first["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    for i in 0..5 {
        create_agent(&s, &s.token, &format!("new-{i}")).await;
    }
    let mut cursor = first["next_cursor"].as_str().unwrap().to_owned();
    loop {
        let v = get(&s, &format!("/v1/agents?limit=10&cursor={cursor}")).await;
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].as_str().unwrap().to_owned()),
        );
        match v.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let mut want: Vec<String> = (0..15).map(|i| format!("old-{i:02}")).collect();
    want.extend((0..5).map(|i| format!("new-{i}")));
    assert_eq!(seen, want);
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
        async move { req.send().await.unwrap() }
    };
    let res = patch(
        json!({"team": "payments", "labels": {"a": "b"}, "environment": "dev", "class": "c1"}),
        Some("\"1\""),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["etag"], "\"2\"");
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["team"], "payments");
    assert_eq!(v["labels"], json!({"a": "b"}));
    assert_eq!(v["version"], 2);
    assert_eq!(v["created_at"], a["created_at"]);
    assert_eq!(v["owner"], a["owner"], "fields not in the patch stay");
    assert_eq!(v["status"], "provisioning");
    let after = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(after.headers()["etag"], "\"2\"");

    // A stale version: 412 naming the current one, nothing changed.
    let p = problem(
        patch(json!({"owner": "mallory"}), Some("\"1\"")).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:stale-version");
    assert_eq!(p["current_version"], 2);
    let p = problem(
        patch(json!({"owner": "mallory"}), Some("\"99\"")).await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    assert_eq!(p["current_version"], 2);
    let now = get(&s, &path).await;
    assert_eq!(now["owner"], "alice@bank.example");
    assert_eq!(now["version"], 2);

    // `null` clears optional fields; labels are replaced whole; `*` matches any version.
    let v = json_ok(
        patch(
            json!({"team": null, "environment": null, "class": null, "labels": {"c": "d"}}),
            Some("*"),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        v["team"].is_null() && v["environment"].is_null() && v["class"].is_null(),
        "{v}"
    );
    assert_eq!(v["labels"], json!({"c": "d"}));
    assert_eq!(v["version"], 3);
    // The label index follows the change.
    assert_eq!(get(&s, "/v1/agents?label=a%3Db").await["items"], json!([]));
    assert_eq!(
        get(&s, "/v1/agents?label=c%3Dd").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Without If-Match the write is unconditional (documented).
    let v = json_ok(patch(json!({"owner": "bob"}), None).await, StatusCode::OK).await;
    assert_eq!(v["owner"], "bob");
    assert_eq!(v["version"], 4);
    // Malformed If-Match values are refused before anything happens.
    for bad in ["W/\"4\"", "4", "\"four\"", "\"4", ""] {
        let p = problem(patch(json!({"owner": "x"}), Some(bad)).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-if-match", "{bad:?}");
    }
    // An empty patch changes nothing.
    let p = problem(patch(json!({}), Some("\"4\"")).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(p["type"], "urn:idv:problem:empty-patch");
    let now = get(&s, &path).await;
    assert_eq!(now["version"], 4);
    assert_eq!(now["owner"], "bob");
}

async fn update_validates_and_names_are_unique(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "first").await;
    create_agent(&s, &s.token, "taken").await;
    let path = format!("/v1/agents/{}", a["id"].as_str().unwrap());
    let patch = |body: Value| {
        let req = s.req(Method::PATCH, &path).json(&body);
        async move { req.send().await.unwrap() }
    };
    for (body, field) in [
        (json!({"owner": ""}), "owner"),
        (json!({"name": "bad name"}), "name"),
        (json!({"environment": "staging"}), "environment"),
        (json!({"labels": {"Bad Key": "v"}}), "labels"),
        (json!({"capabilities": ["no spaces"]}), "capabilities"),
        (json!({"class": "-x"}), "class"),
        (json!({"depends_on": [a["id"]]}), "depends_on"),
    ] {
        let p = problem(patch(body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-field", "{body}");
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    let p = problem(patch(json!({"name": "taken"})).await, StatusCode::CONFLICT).await;
    assert_eq!(p["type"], "urn:idv:problem:conflict");
    // Renaming frees the old name.
    let v = json_ok(patch(json!({"name": "renamed"})).await, StatusCode::OK).await;
    assert_eq!(v["name"], "renamed");
    assert_eq!(v["version"], 2, "refused patches do not bump the version");
    create_agent(&s, &s.token, "first").await;
    // A retired agent is read-only.
    assert_eq!(
        transition(&s, &s.token, a["id"].as_str().unwrap(), "retire", "done")
            .await
            .status(),
        200
    );
    let p = problem(patch(json!({"owner": "x"})).await, StatusCode::CONFLICT).await;
    assert_eq!(p["type"], "urn:idv:problem:conflict");
    assert_eq!(get(&s, &path).await["owner"], "alice@bank.example");
    // An agent that does not exist.
    let res = s
        .req(Method::PATCH, &format!("/v1/agents/{}", crate::ghost_id()))
        .json(&json!({"owner": "x"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
}

async fn duplicate_names_conflict_and_stay_reserved(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "dup").await;
    let before = head(&s).await;
    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "dup", "owner": "o", "purpose": "p"}))
        .send()
        .await
        .unwrap();
    let p = problem(res, StatusCode::CONFLICT).await;
    assert_eq!(p["type"], "urn:idv:problem:conflict");
    assert!(p["detail"].as_str().unwrap().contains("dup"), "{p}");
    // Names are case-sensitive.
    create_agent(&s, &s.token, "DUP").await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(transition(&s, &s.token, id, "retire", "done").await.status(), 200);
    // A retired agent's name is not freed: it could be mistaken for the old one.
    let res = s
        .req(Method::POST, "/v1/agents")
        .json(&json!({"name": "dup", "owner": "o", "purpose": "p"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT).await;
    assert_eq!(agent_count(&s).await, 2);
    // The conflicts were audited as failures, nothing else but the create and retire.
    let actions: Vec<(String, String)> = crate::events_after(&s, before)
        .await
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let pairs: Vec<(&str, &str)> = actions.iter().map(|(a, o)| (a.as_str(), o.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("agent.create", "failure"),
            ("agent.create", "success"),
            ("agent.retire", "success"),
            ("agent.create", "failure"),
        ]
    );
}

async fn bulk_create_ten_thousand_is_all_or_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    // About 3 MiB: well over the 1 MiB limit of other endpoints.
    let purpose = "scale test ".repeat(25);
    let agents: Vec<Value> = (0..10_000)
        .map(|i| {
            let env = if i % 2 == 0 { "dev" } else { "prod" };
            json!({"name": format!("bulk-{i:05}"), "owner": "team", "purpose": purpose,
                   "labels": {"n": i.to_string()}, "environment": env})
        })
        .collect();
    let body = serde_json::to_vec(&json!({"agents": agents})).unwrap();
    assert!(body.len() > 3 << 20, "{}", body.len());
    let before_head = head(&s).await;
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let v = json_ok(res, StatusCode::CREATED).await;
    assert_eq!(v["created"], 10_000);
    let refs = v["agents"].as_array().unwrap();
    assert_eq!(refs.len(), 10_000);
    for (i, r) in refs.iter().enumerate() {
        assert_eq!(r["name"], format!("bulk-{i:05}"), "results are in request order");
        let id = r["id"].as_str().unwrap();
        assert_eq!(r["spiffe_id"], format!("spiffe://idv.test/t/default/agent/{id}"));
    }
    assert_eq!(refs.iter().map(|r| &r["id"]).collect::<HashSet<_>>().len(), 10_000);
    assert_eq!(agent_count(&s).await, 10_000);
    assert_eq!(
        crate::all_agents_as(&s, &s.token, "environment=prod").await.len(),
        5_000
    );
    let one = get(&s, "/v1/agents?label=n%3D9999").await;
    assert_eq!(one["items"][0]["name"], "bulk-09999");
    // One audit event per agent.
    assert_eq!(head(&s).await, before_head + 10_000);

    // One invalid item: 422 naming it, nothing created.
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
    assert_eq!(agent_count(&s).await, 10_000);
    assert_eq!(crate::all_agents_as(&s, &s.token, "name_prefix=more-").await.len(), 0);

    // Refusals found by the store: nothing created, one failure event each.
    let bulk = |agents: Vec<Value>| {
        let req = s.req(Method::POST, "/v1/agents/bulk").json(&json!({"agents": agents}));
        async move { req.send().await.unwrap() }
    };
    // A name already taken (the last item): 409.
    let mut dup: Vec<Value> = (0..100)
        .map(|i| json!({"name": format!("more-{i}"), "owner": "t", "purpose": "p"}))
        .collect();
    dup[99] = json!({"name": "bulk-00000", "owner": "t", "purpose": "p"});
    let h = head(&s).await;
    let p = problem(bulk(dup).await, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().unwrap().contains("bulk-00000"), "{p}");
    // A name repeated inside the request: 409.
    let h2 = head(&s).await;
    assert_eq!(h2, h + 1);
    problem(
        bulk(vec![agent_body("same"), agent_body("same")]).await,
        StatusCode::CONFLICT,
    )
    .await;
    // An unknown dependency in one item: 422.
    let h3 = head(&s).await;
    assert_eq!(h3, h2 + 1);
    let mut refs_bad: Vec<Value> = (0..10).map(|i| agent_body(&format!("ref-{i}"))).collect();
    refs_bad[3]["depends_on"] = json!([crate::ghost_id()]);
    let p = problem(bulk(refs_bad).await, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(p["type"], "urn:idv:problem:invalid-field");
    assert_eq!(head(&s).await, h3 + 1);
    let new = crate::events_after(&s, h).await;
    assert!(
        new.iter()
            .all(|e| e["outcome"] == "failure" && e["action"] == "agent.create_bulk"),
        "{new:?}"
    );
    assert_eq!(agent_count(&s).await, 10_000);

    // Empty and over-limit requests.
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"], "agents");
    let too_many: Vec<Value> = (0..50_001)
        .map(|i| json!({"name": format!("x{i}"), "owner": "o", "purpose": "p"}))
        .collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": too_many}))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(res, StatusCode::UNPROCESSABLE_ENTITY).await["field"], "agents");
    assert_eq!(agent_count(&s).await, 10_000);
}

/// Sends a bulk of five agents whose item 3 is changed by `bad`; the problem.
async fn bulk_with_bad_item(s: &TestServer, bad: &Value) -> Value {
    let mut items: Vec<Value> = (0..5).map(|i| agent_body(&format!("item-{i}"))).collect();
    items[3]
        .as_object_mut()
        .unwrap()
        .extend(bad.as_object().unwrap().clone());
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": items}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await
}

async fn bulk_item_errors_name_the_item_and_field(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (field, bad) in [
        ("name", json!({"name": "bad name"})),
        ("owner", json!({"owner": ""})),
        ("purpose", json!({"purpose": " "})),
        ("team", json!({"team": "a\u{7}b"})),
        ("labels", json!({"labels": {"UPPER": "x"}})),
        ("capabilities", json!({"capabilities": [""]})),
        ("class", json!({"class": "_x"})),
    ] {
        let p = bulk_with_bad_item(&s, &bad).await;
        assert_eq!(p["type"], "urn:idv:problem:invalid-field");
        assert_eq!(p["field"], format!("agents[3].{field}"), "{p}");
    }
    assert_eq!(agent_count(&s).await, 0);
}

/// `environment`, `parent` and `ttl` are parsed in the HTTP handler; their
/// bulk errors still name the item and the field (`agents[i].<field>`).
/// (Found failing at a5a8d16, where `bulk_create` replaced the field with
/// `agents[i]`.)
async fn bulk_edge_parsed_field_errors_name_the_field(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (field, bad) in [
        ("environment", json!({"environment": "staging"})),
        ("parent", json!({"parent": {"type": "robot", "id": "r2"}})),
        ("ttl", json!({"ttl": "forever"})),
    ] {
        let p = bulk_with_bad_item(&s, &bad).await;
        assert_eq!(p["field"], format!("agents[3].{field}"), "{p}");
    }
    assert_eq!(agent_count(&s).await, 0);
}

/// An unknown reference in a bulk item names the item, so a client of a
/// 10,000-item bulk can tell which one. (Found failing at a5a8d16, where the
/// store's `check_references` named only `depends_on`.)
async fn bulk_unknown_reference_names_the_item(backend: Backend) {
    let s = TestServer::start(backend).await;
    let p = bulk_with_bad_item(&s, &json!({"depends_on": [crate::ghost_id()]})).await;
    assert_eq!(p["field"], "agents[3].depends_on", "{p}");
}

async fn export_csv_and_json(backend: Backend) {
    let s = TestServer::start(backend).await;
    let agent = |i: usize| {
        let owner = match i {
            7 => "=HYPERLINK(\"http://evil\")".to_owned(),
            8 => "+cmd".to_owned(),
            9 => "-2+3".to_owned(),
            10 => "@SUM(A1)".to_owned(),
            _ => format!("o{i}"),
        };
        json!({"name": format!("e{i:04}"), "owner": owner, "purpose": "a, \"quoted\" purpose",
               "labels": {"k": "v", "z": "=1"}, "capabilities": ["a", "b"], "environment": "prod"})
    };
    // More than one export page (1,000) of agents.
    let agents: Vec<Value> = (0..1_200).map(agent).collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": agents}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
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
    let first = get(&s, "/v1/agents?limit=1").await["items"][0].clone();
    let fid = first["id"].as_str().unwrap();
    assert_eq!(transition(&s, &s.token, fid, "retire", "gone").await.status(), 200);

    // CSV is the default.
    for path in ["/v1/agents/export", "/v1/agents/export?format=csv"] {
        let res = s.req(Method::GET, path).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/csv; charset=utf-8");
        assert!(
            res.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("agents.csv")
        );
        let csv = res.text().await.unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 1_205, "a header row and one row per agent");
        assert_eq!(
            lines[0],
            "id,spiffe_id,name,owner,purpose,environment,team,class,status,labels,capabilities,parent,depends_on,created_at,expires_at"
        );
        // Retired agents are exported too.
        assert!(lines[1].starts_with(fid), "{}", lines[1]);
        assert!(lines[1].contains(",retired,"), "{}", lines[1]);
        assert!(lines[2].contains(",provisioning,"));
        assert!(lines[2].contains("\"a, \"\"quoted\"\" purpose\""), "{}", lines[2]);
        assert!(lines[2].contains(",k=v;z==1,a;b,"), "{}", lines[2]);
        // Formula injection is neutralised: no cell starts with `=`, `+`, `-`, `@`.
        let row = |i: usize| lines[1 + i];
        assert!(row(7).contains(",\"'=HYPERLINK(\"\"http://evil\"\")\","), "{}", row(7));
        assert!(row(8).contains(",'+cmd,"), "{}", row(8));
        assert!(row(9).contains(",'-2+3,"), "{}", row(9));
        assert!(row(10).contains(",'@SUM(A1),"), "{}", row(10));
        for line in &lines {
            for cell in line.split(',') {
                let cell = cell.trim_start_matches('"');
                assert!(
                    !cell.starts_with(['=', '+', '-', '@']),
                    "unguarded cell {cell:?} in {line}"
                );
            }
        }
    }

    let res = s
        .req(Method::GET, "/v1/agents/export?format=json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/json");
    let all: Vec<Value> = res.json().await.unwrap();
    assert_eq!(all.len(), 1_205);
    // JSON keeps values exactly (no CSV guard) and is the same view as GET.
    assert_eq!(all[7]["owner"], "=HYPERLINK(\"http://evil\")");
    assert_eq!(all[0]["status"], "retired");
    assert_eq!(all[0], get(&s, &format!("/v1/agents/{fid}")).await);
    let ids: HashSet<&str> = all.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 1_205);

    for q in ["format=xml", "format=csv&format=json", "format="] {
        let res = s
            .req(Method::GET, &format!("/v1/agents/export?{q}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            problem(res, StatusCode::BAD_REQUEST).await["type"],
            "urn:idv:problem:invalid-parameter",
            "{q}"
        );
    }
}

async fn export_of_an_empty_and_a_page_sized_inventory(backend: Backend) {
    let s = TestServer::start(backend).await;
    let csv = s
        .req(Method::GET, "/v1/agents/export")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1, "only the header: {csv}");
    let json: Value = s
        .req(Method::GET, "/v1/agents/export?format=json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json, json!([]));
    // Exactly one export page (1,000): the stream must still close cleanly.
    let agents: Vec<Value> = (0..1_000).map(|i| agent_body(&format!("x{i:04}"))).collect();
    let res = s
        .req(Method::POST, "/v1/agents/bulk")
        .json(&json!({"agents": agents}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let json: Vec<Value> = s
        .req(Method::GET, "/v1/agents/export?format=json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json.len(), 1_000);
    let csv = s
        .req(Method::GET, "/v1/agents/export?format=csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(csv.lines().count(), 1_001);
}

/// A person leaves: every live agent they own moves to someone else, each
/// with its own audit event; retired agents keep their owner; other owners'
/// agents are untouched; refusals are recorded; bad input changes nothing.
async fn reassigning_an_owner_moves_their_live_agents(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut alices = Vec::new();
    for n in ["ra-1", "ra-2", "ra-3"] {
        alices.push(create_agent(&s, &s.token, n).await["id"].as_str().unwrap().to_owned());
    }
    let carol = json_ok(
        s.req(Method::POST, "/v1/agents")
            .json(&json!({"name": "ra-carol", "owner": "carol@bank.example", "purpose": "testing"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let retired = &alices[2];
    transition(&s, &s.token, retired, "activate", "go").await;
    assert_eq!(
        transition(&s, &s.token, retired, "retire", "done").await.status(),
        StatusCode::OK
    );
    let before = head(&s).await;

    let reassign = |token: &str, body: Value| {
        s.req_as(token, Method::POST, "/v1/agents/reassign-owner")
            .json(&body)
            .send()
    };
    let moved = json_ok(
        reassign(
            &s.token,
            json!({"from": "alice@bank.example", "to": "bob@bank.example"}),
        )
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(moved["reassigned"], 2);
    assert_eq!(
        moved["agents"],
        json!([alices[0], alices[1]]),
        "in id order, the retired one left out"
    );
    for id in &alices[..2] {
        let a = get(&s, &format!("/v1/agents/{id}")).await;
        assert_eq!(
            (a["owner"].as_str(), a["version"].as_i64()),
            (Some("bob@bank.example"), Some(2))
        );
    }
    let kept = get(&s, &format!("/v1/agents/{retired}")).await;
    assert_eq!(kept["owner"], "alice@bank.example", "a retired record is read-only");
    let other = get(&s, &format!("/v1/agents/{}", carol["id"].as_str().unwrap())).await;
    assert_eq!(
        (other["owner"].as_str(), other["version"].as_i64()),
        (Some("carol@bank.example"), Some(1))
    );
    let events: Vec<Value> = events_after(&s, before).await;
    let ours: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "agent.reassign_owner")
        .collect();
    assert_eq!(ours.len(), 2, "{events:?}");
    for (e, id) in ours.iter().zip(&alices) {
        assert_eq!(e["target_id"], json!(id));
        assert_eq!(e["outcome"], "success");
        assert_eq!(e["details"]["from"], "alice@bank.example");
        assert_eq!(e["details"]["to"], "bob@bank.example");
    }
    // Nothing left to move: no change, no event.
    let again = head(&s).await;
    let none = json_ok(
        reassign(
            &s.token,
            json!({"from": "alice@bank.example", "to": "bob@bank.example"}),
        )
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["reassigned"], 0);
    assert_eq!(head(&s).await, again);

    // An auditor may not; the refusal is on the record.
    let (auditor, _) = tenant_token(&s, "default", "auditor").await;
    let at = head(&s).await;
    problem(
        reassign(&auditor, json!({"from": "bob@bank.example", "to": "eve@bank.example"}))
            .await
            .unwrap(),
        StatusCode::FORBIDDEN,
    )
    .await;
    let refused = events_after(&s, at).await;
    assert!(
        refused
            .iter()
            .any(|e| e["action"] == "agent.reassign_owner" && e["outcome"] == "denied"),
        "{refused:?}"
    );
    // Bad input: a clear problem, nothing changed.
    for (body, status) in [
        (
            json!({"from": "bob@bank.example", "to": "bob@bank.example"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"from": "bob@bank.example", "to": " "}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"from": "bob@bank.example"}), StatusCode::BAD_REQUEST),
        (
            json!({"from": "bob@bank.example", "to": "x", "also": 1}),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let res = reassign(&s.token, body.clone()).await.unwrap();
        assert_eq!(res.status(), status, "{body}");
        let p: Value = res.json().await.unwrap();
        assert!(p["detail"].as_str().is_some_and(|d| !d.is_empty()), "{p}");
    }
    let still = get(&s, &format!("/v1/agents/{}", alices[0])).await;
    assert_eq!(
        (still["owner"].as_str(), still["version"].as_i64()),
        (Some("bob@bank.example"), Some(2))
    );
}
