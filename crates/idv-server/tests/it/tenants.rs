//! Tenants: created by platform admins, unique by name, each its own namespace.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{get, get_as, head, json_ok, problem};

backend_tests!(
    the_default_tenant_exists,
    create_get_and_list_tenants,
    tenant_names_are_unique,
    a_new_tenant_is_an_empty_namespace,
);

async fn the_default_tenant_exists(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = get(&s, "/v1/tenants/default").await;
    assert_eq!(t["name"], "default");
    assert_eq!(t["display_name"], "Default tenant");
    assert_eq!(
        uuid::Uuid::parse_str(t["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7
    );
    let list = get(&s, "/v1/tenants").await;
    assert_eq!(list["items"], json!([t]));
    // A restart keeps it (and does not make another).
    let s = s.restart(backend).await.unwrap();
    assert_eq!(get(&s, "/v1/tenants").await["items"], json!([t]));
}

async fn create_get_and_list_tenants(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = json_ok(
        s.req(Method::POST, "/v1/tenants")
            .json(&json!({"name": "acme-bank", "display_name": "Acme Bank plc"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(t["name"], "acme-bank");
    assert_eq!(t["display_name"], "Acme Bank plc");
    assert_eq!(
        uuid::Uuid::parse_str(t["id"].as_str().unwrap())
            .unwrap()
            .get_version_num(),
        7
    );
    assert!(t["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(get(&s, "/v1/tenants/acme-bank").await, t);
    // The display name defaults to the name.
    let u = json_ok(
        s.req(Method::POST, "/v1/tenants")
            .json(&json!({"name": "u1"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(u["display_name"], "u1");
    for i in 0..8 {
        let res = s
            .req(Method::POST, "/v1/tenants")
            .json(&json!({"name": format!("t{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
    }
    // Platform tokens list every tenant, in id (creation) order, by pages.
    let mut names = Vec::new();
    let mut path = "/v1/tenants?limit=4".to_owned();
    loop {
        let page = get(&s, &path).await;
        names.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["name"].as_str().unwrap().to_owned()),
        );
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => path = format!("/v1/tenants?limit=4&cursor={c}"),
            None => break,
        }
    }
    let mut want = vec!["default".to_owned(), "acme-bank".into(), "u1".into()];
    want.extend((0..8).map(|i| format!("t{i}")));
    assert_eq!(names, want);
    // Others see only their own.
    let (tok, _) = crate::tenant_token(&s, "t3", "auditor").await;
    let own = get_as(&s, &tok, "/v1/tenants").await;
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
    assert_eq!(own["items"][0]["name"], "t3");
    assert_eq!(get_as(&s, &tok, "/v1/tenants/t3").await["name"], "t3");
    problem(
        s.req_as(&tok, Method::GET, "/v1/tenants/t4").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let own_cursor = own["items"][0]["id"].as_str().unwrap();
    let after = get_as(&s, &tok, &format!("/v1/tenants?cursor={own_cursor}")).await;
    assert_eq!(after["items"], json!([]));
    problem(
        s.req(Method::GET, "/v1/tenants/nope").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn tenant_names_are_unique(backend: Backend) {
    let s = TestServer::start(backend).await;
    let res = s
        .req(Method::POST, "/v1/tenants")
        .json(&json!({"name": "acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let before = head(&s).await;
    for name in ["acme", "default"] {
        let p = problem(
            s.req(Method::POST, "/v1/tenants")
                .json(&json!({"name": name, "display_name": "again"}))
                .send()
                .await
                .unwrap(),
            StatusCode::CONFLICT,
        )
        .await;
        assert_eq!(p["type"], "urn:idv:problem:conflict");
        assert!(p["detail"].as_str().unwrap().contains(name), "{p}");
    }
    // Each refusal is one failure event.
    let new = crate::events_after(&s, before).await;
    assert_eq!(new.len(), 2);
    assert!(
        new.iter()
            .all(|e| e["action"] == "tenant.create" && e["outcome"] == "failure")
    );
    assert_eq!(get(&s, "/v1/tenants").await["items"].as_array().unwrap().len(), 2);
    assert_eq!(get(&s, "/v1/tenants/acme").await["display_name"], "acme");
}

async fn a_new_tenant_is_an_empty_namespace(backend: Backend) {
    let s = TestServer::start(backend).await;
    crate::create_agent(&s, &s.token, "in-default").await;
    let (admin, _) = crate::tenant_token(&s, "fresh", "admin").await;
    assert_eq!(get_as(&s, &admin, "/v1/agents").await["items"], json!([]));
    let tokens = get_as(&s, &admin, "/v1/admin-tokens").await;
    assert_eq!(tokens["items"].as_array().unwrap().len(), 1);
    let a = crate::create_agent(&s, &admin, "in-default").await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(a["tenant"], "fresh");
    assert_eq!(a["spiffe_id"], format!("spiffe://idv.test/t/fresh/agent/{id}"));
    // Its own admin can make tokens in it.
    let res = s
        .req_as(&admin, Method::POST, "/v1/admin-tokens")
        .json(&json!({"name": "ops", "role": "operator"}))
        .send()
        .await
        .unwrap();
    let v = json_ok(res, StatusCode::CREATED).await;
    assert_eq!(v["admin_token"]["tenant"], "fresh");
    let op = v["token"].as_str().unwrap();
    assert_eq!(get_as(&s, op, &format!("/v1/agents/{id}")).await, a);
}
