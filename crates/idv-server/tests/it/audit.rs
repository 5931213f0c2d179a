//! The audit log over HTTP: one event per change, with the right fields and
//! never a secret; an unbroken chain that shows exactly where it was edited;
//! and no change at all when the event cannot be written.

use idv_testkit::{Backend, Options, TestServer, backend_tests};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{
    agent_count, all_events, create_agent, db, events_after, events_as, exec, get, head, json_ok, problem, scalar,
    verify,
};

backend_tests!(
    every_state_change_writes_exactly_one_event,
    reads_write_no_events,
    request_ids_are_recorded,
    no_secret_appears_in_the_audit_log,
    the_chain_verifies_and_links,
    audit_filters_and_pagination,
    a_stored_edit_breaks_the_chain_exactly_there,
    a_failing_audit_write_fails_the_operation,
);

/// Sends `req` with `X-Request-Id: rid` and returns the response and the
/// events it wrote (checking that there is exactly one).
async fn one_event(s: &TestServer, rid: &str, req: reqwest::RequestBuilder) -> (Response, Value) {
    let before = head(s).await;
    let res = req.header("x-request-id", rid).send().await.unwrap();
    let new = events_after(s, before).await;
    assert_eq!(new.len(), 1, "{rid}: {new:?}");
    let ev = new.into_iter().next().unwrap();
    assert_eq!(ev["request_id"], rid);
    (res, ev)
}

async fn every_state_change_writes_exactly_one_event(backend: Backend) {
    let s = TestServer::start(backend).await;
    let me = get(&s, "/v1/admin-tokens/self").await;
    let boot_id = me["admin_token"]["id"].as_str().unwrap().to_owned();
    let default_id = me["tenant"]["id"].clone();
    let by_bootstrap = |ev: &Value| {
        assert_eq!(ev["actor"]["kind"], "admin_token");
        assert_eq!(ev["actor"]["name"], "bootstrap");
        assert_eq!(ev["actor"]["token_id"], boot_id.as_str());
    };

    // tenant.create
    let (res, ev) = one_event(
        &s,
        "r-tenant",
        s.req(Method::POST, "/v1/tenants")
            .json(&json!({"name": "acme", "display_name": "Acme Bank"})),
    )
    .await;
    let t = json_ok(res, StatusCode::CREATED).await;
    by_bootstrap(&ev);
    assert_eq!(
        (&ev["action"], &ev["target_type"], &ev["target_id"], &ev["outcome"]),
        (&json!("tenant.create"), &json!("tenant"), &t["id"], &json!("success"))
    );
    assert_eq!(ev["tenant_id"], t["id"]);
    assert_eq!(ev["details"]["name"], "acme");

    // admin_token.create
    let (res, ev) = one_event(
        &s,
        "r-token",
        s.req(Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": "ci", "role": "operator"})),
    )
    .await;
    let tok = json_ok(res, StatusCode::CREATED).await;
    let tok_id = tok["admin_token"]["id"].as_str().unwrap();
    by_bootstrap(&ev);
    assert_eq!(ev["action"], "admin_token.create");
    assert_eq!(ev["target_type"], "admin_token");
    assert_eq!(ev["target_id"], tok_id);
    assert_eq!(ev["tenant_id"], default_id);
    assert_eq!(ev["details"]["role"], "operator");
    assert_eq!(ev["details"]["name"], "ci");
    let op = tok["token"].as_str().unwrap().to_owned();

    // agent.create, by the new operator token.
    let (res, ev) = one_event(
        &s,
        "r-create",
        s.req_as(&op, Method::POST, "/v1/agents")
            .json(&crate::agent_body("audited")),
    )
    .await;
    let a = json_ok(res, StatusCode::CREATED).await;
    let id = a["id"].as_str().unwrap();
    assert_eq!(ev["action"], "agent.create");
    assert_eq!(ev["target_type"], "agent");
    assert_eq!(ev["target_id"], id);
    assert_eq!(ev["outcome"], "success");
    assert_eq!(ev["actor"]["name"], "ci");
    assert_eq!(ev["actor"]["token_id"], tok_id);
    assert!(ev["reason"].is_null());
    assert_eq!(ev["details"]["name"], "audited");
    assert!(ev["time"].as_str().unwrap() >= a["created_at"].as_str().unwrap());

    // agent.update
    let (res, ev) = one_event(
        &s,
        "r-update",
        s.req_as(&op, Method::PATCH, &format!("/v1/agents/{id}"))
            .header("if-match", "\"1\"")
            .json(&json!({"team": "t", "owner": "bob"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ev["action"], "agent.update");
    assert_eq!(ev["target_id"], id);
    assert_eq!(ev["outcome"], "success");
    let mut changed: Vec<String> = serde_json::from_value(ev["details"]["changed"].clone()).unwrap();
    changed.sort();
    assert_eq!(changed, ["owner", "team"]);
    assert_eq!(ev["details"]["version"], 2);

    // Every transition, with its reason.
    for (verb, to) in [
        ("activate", "active"),
        ("suspend", "suspended"),
        ("resume", "active"),
        ("retire", "retired"),
    ] {
        let (res, ev) = one_event(
            &s,
            &format!("r-{verb}"),
            s.req_as(&op, Method::POST, &format!("/v1/agents/{id}/{verb}"))
                .json(&json!({"reason": format!("CHG-{verb}")})),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(ev["action"], format!("agent.{verb}"));
        assert_eq!(ev["target_id"], id);
        assert_eq!(ev["outcome"], "success");
        assert_eq!(ev["reason"], format!("CHG-{verb}"));
        assert_eq!(ev["details"]["to"], to);
        assert_eq!(ev["actor"]["token_id"], tok_id);
    }

    // A refused transition: one failure event, with the reason tried.
    let (res, ev) = one_event(
        &s,
        "r-refused",
        s.req_as(&op, Method::POST, &format!("/v1/agents/{id}/resume"))
            .json(&json!({"reason": "try"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(ev["action"], "agent.resume");
    assert_eq!(ev["outcome"], "failure");
    assert_eq!(ev["reason"], "try");
    // A stale write: one failure event.
    let b = create_agent(&s, &op, "stale").await;
    let (res, ev) = one_event(
        &s,
        "r-stale",
        s.req_as(&op, Method::PATCH, &format!("/v1/agents/{}", b["id"].as_str().unwrap()))
            .header("if-match", "\"7\"")
            .json(&json!({"team": "t"})),
    )
    .await;
    assert_eq!(res.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(
        (&ev["action"], &ev["outcome"]),
        (&json!("agent.update"), &json!("failure"))
    );

    // Bulk: one event per agent, each naming its agent, all with the request id.
    let before = head(&s).await;
    let res = s
        .req_as(&op, Method::POST, "/v1/agents/bulk")
        .header("x-request-id", "r-bulk")
        .json(&json!({"agents": [crate::agent_body("b1"), crate::agent_body("b2"), crate::agent_body("b3")]}))
        .send()
        .await
        .unwrap();
    let created = json_ok(res, StatusCode::CREATED).await;
    let new = events_after(&s, before).await;
    assert_eq!(new.len(), 3);
    for (ev, r) in new.iter().zip(created["agents"].as_array().unwrap()) {
        assert_eq!(ev["action"], "agent.create");
        assert_eq!(ev["target_id"], r["id"]);
        assert_eq!(ev["request_id"], "r-bulk");
    }

    // admin_token.revoke
    let (res, ev) = one_event(
        &s,
        "r-revoke",
        s.req(Method::DELETE, &format!("/v1/admin-tokens/{tok_id}")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    by_bootstrap(&ev);
    assert_eq!(ev["action"], "admin_token.revoke");
    assert_eq!(ev["target_id"], tok_id);
    assert_eq!(ev["outcome"], "success");
    assert!(
        all_events(&s)
            .await
            .iter()
            .all(|e| e["time"].as_str().unwrap().ends_with('Z'))
    );
}

async fn reads_write_no_events(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "read-me").await;
    let id = a["id"].as_str().unwrap();
    let (auditor, auditor_id) = crate::tenant_token(&s, "default", "auditor").await;
    let before = head(&s).await;
    for token in [&s.token, &auditor] {
        for path in [
            "/v1/tenants".to_owned(),
            "/v1/tenants/default".to_owned(),
            "/v1/admin-tokens/self".to_owned(),
            "/v1/agents".to_owned(),
            format!("/v1/agents/{id}"),
            "/v1/agents/export".to_owned(),
            "/v1/agents/export?format=json".to_owned(),
            "/v1/audit/events".to_owned(),
        ] {
            let res = s.req_as(token, Method::GET, &path).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
        }
    }
    for path in ["/v1/admin-tokens".to_owned(), format!("/v1/admin-tokens/{auditor_id}")] {
        assert_eq!(s.req(Method::GET, &path).send().await.unwrap().status(), 200);
    }
    assert_eq!(head(&s).await, before);
}

async fn request_ids_are_recorded(backend: Backend) {
    let s = TestServer::start(backend).await;
    // Sent: echoed and recorded.
    let res = s
        .req(Method::POST, "/v1/agents")
        .header("x-request-id", "client-42")
        .json(&crate::agent_body("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "client-42");
    // Not sent, or not usable (spaces, too long): assigned, echoed, recorded.
    for (i, sent) in [None, Some("has space".to_owned()), Some("x".repeat(129))]
        .into_iter()
        .enumerate()
    {
        let mut req = s
            .req(Method::POST, "/v1/agents")
            .json(&crate::agent_body(&format!("auto-{i}")));
        if let Some(v) = &sent {
            req = req.header("x-request-id", v);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), StatusCode::CREATED);
        let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(!rid.is_empty());
        assert_ne!(Some(&rid), sent.as_ref());
        let a: Value = res.json().await.unwrap();
        let events = events_as(&s, &s.token, &format!("target_id={}", a["id"].as_str().unwrap())).await;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["request_id"], rid.as_str());
    }
    // The longest allowed id is kept.
    let long = "y".repeat(128);
    let res = s
        .req(Method::GET, "/v1/agents")
        .header("x-request-id", &long)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], long.as_str());
    // Errors echo it too.
    let res = s
        .req(Method::GET, "/v1/agents/nope")
        .header("x-request-id", "err-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "err-1");
    let events = events_as(&s, &s.token, "").await;
    assert!(events.iter().any(|e| e["request_id"] == "client-42"));
}

async fn no_secret_appears_in_the_audit_log(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut secrets = vec![s.token.clone()];
    let mut ids = Vec::new();
    for (tenant, role) in [("default", "admin"), ("acme", "operator"), ("acme", "auditor")] {
        let (t, id) = crate::tenant_token(&s, tenant, role).await;
        secrets.push(t);
        ids.push(id);
    }
    let res = s
        .req(Method::POST, "/v1/admin-tokens")
        .json(&json!({"name": "platform", "role": "admin", "platform": true, "expires_in": "1h"}))
        .send()
        .await
        .unwrap();
    let v = json_ok(res, StatusCode::CREATED).await;
    secrets.push(v["token"].as_str().unwrap().to_owned());
    // Use them, fail with them, revoke one, use it again.
    for t in &secrets {
        s.req_as(t, Method::GET, "/v1/agents").send().await.unwrap();
        s.req_as(t, Method::POST, "/v1/tenants")
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap();
    }
    create_agent(&s, &secrets[1], "agent").await;
    let res = s
        .req(Method::DELETE, &format!("/v1/admin-tokens/{}", ids[0]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    s.req_as(&secrets[1], Method::GET, "/v1/agents").send().await.unwrap();

    let events = serde_json::to_string(&all_events(&s).await).unwrap();
    let tokens = serde_json::to_string(&json!([
        get(&s, "/v1/admin-tokens").await,
        json_ok(
            s.req(Method::GET, "/v1/admin-tokens")
                .header("x-idv-tenant", "acme")
                .send()
                .await
                .unwrap(),
            StatusCode::OK
        )
        .await,
        get(&s, &format!("/v1/admin-tokens/{}", ids[0])).await,
        get(&s, "/v1/admin-tokens/self").await,
    ]))
    .unwrap();
    for secret in &secrets {
        // Neither the token nor any long part of its random body.
        let body = &secret[idv_core::admin_token::PREFIX.len()..];
        for text in [&events, &tokens] {
            assert!(!text.contains(secret.as_str()));
            for window in body.as_bytes().windows(12) {
                let w = std::str::from_utf8(window).unwrap();
                assert!(!text.contains(w), "part of a secret ({w}) appears");
            }
        }
    }
    // The hint shows only the first four characters after the prefix.
    let list = get(&s, "/v1/admin-tokens").await;
    for t in list["items"].as_array().unwrap() {
        let hint = t["hint"].as_str().unwrap();
        assert_eq!(hint.chars().count(), idv_core::admin_token::PREFIX.len() + 5, "{hint}");
        assert!(t.get("token").is_none() && t.get("secret").is_none());
    }
}

async fn the_chain_verifies_and_links(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (op, _) = crate::tenant_token(&s, "acme", "operator").await;
    for i in 0..10 {
        let a = create_agent(&s, &op, &format!("c{i}")).await;
        crate::transition(&s, &op, a["id"].as_str().unwrap(), "activate", "go").await;
    }
    crate::transition(&s, &op, &crate::ghost_id(), "activate", "no such agent").await;
    let events = all_events(&s).await;
    let h = get(&s, "/v1/audit/head").await;
    assert_eq!(verify(&events).unwrap(), h["seq"].as_i64().unwrap());
    assert_eq!(events.last().unwrap()["hash"], h["hash"]);
    // seq from 1 without gaps; each event links to the one before.
    assert_eq!(events[0]["seq"], 1);
    assert_eq!(events[0]["prev_hash"], "0".repeat(64));
    for pair in events.windows(2) {
        assert_eq!(pair[1]["seq"].as_i64().unwrap(), pair[0]["seq"].as_i64().unwrap() + 1);
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    // The first events are the bootstrap's own, by the system.
    assert_eq!(events[0]["action"], "tenant.create");
    assert_eq!(events[0]["actor"]["kind"], "system");
    assert_eq!(events[1]["action"], "admin_token.create");
    // Verification works the same from a platform auditor's reading.
    let res = s
        .req(Method::POST, "/v1/admin-tokens")
        .json(&json!({"name": "pa", "role": "auditor", "platform": true}))
        .send()
        .await
        .unwrap();
    let pa = json_ok(res, StatusCode::CREATED).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let seen = events_as(&s, &pa, "all_tenants=true").await;
    assert_eq!(verify(&seen).unwrap(), head(&s).await);
}

async fn audit_filters_and_pagination(backend: Backend) {
    let s = crate::start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let (op, op_id) = crate::named_token(&s, "default", "operator", "op").await;
    let a = create_agent(&s, &op, "one").await;
    let id = a["id"].as_str().unwrap();
    clock.advance_secs(60);
    let t1 = a["created_at"].as_str().unwrap().to_owned();
    crate::transition(&s, &op, id, "activate", "go").await;
    crate::transition(&s, &op, id, "resume", "refused").await;
    let b = create_agent(&s, &s.token, "two").await;
    let t2 = b["created_at"].as_str().unwrap().to_owned();
    let q = |q: String| {
        let s = &s;
        async move { events_as(s, &s.token, &q).await }
    };
    let actions =
        |evs: &[Value]| -> Vec<String> { evs.iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect() };
    assert_eq!(
        actions(&q(format!("target_id={id}")).await),
        ["agent.create", "agent.activate", "agent.resume"]
    );
    assert_eq!(
        actions(&q(format!("actor_token_id={op_id}")).await),
        ["agent.create", "agent.activate", "agent.resume"]
    );
    assert_eq!(q("action=agent.activate".into()).await.len(), 1);
    assert_eq!(q("action=agent.nothing".into()).await.len(), 0);
    let failed = q("outcome=failure".into()).await;
    assert_eq!(actions(&failed), ["agent.resume"]);
    assert_eq!(q("outcome=denied".into()).await.len(), 0);
    assert!(q("outcome=success".into()).await.len() >= 5);
    // `since` is inclusive, `until` exclusive.
    let since = q(format!("since={t2}")).await;
    assert_eq!(since.len(), 3, "{since:?}");
    let early = q(format!("until={t2}")).await;
    assert!(early.iter().all(|e| e["time"].as_str().unwrap() <= t1.as_str()));
    assert_eq!(q(format!("since={t2}&target_id={id}")).await.len(), 2);
    // Any RFC 3339 offset names the same instant.
    let shifted = {
        let t = idv_core::Timestamp::parse(&t2).unwrap().plus_secs(3600).to_rfc3339();
        format!("{}%2B01:00", t.trim_end_matches('Z'))
    };
    assert_eq!(q(format!("since={shifted}")).await, since);
    assert_eq!(early.len() + since.len(), all_events(&s).await.len());
    // Pagination by seq: no duplicates, no omissions.
    let all = q(String::new()).await;
    let mut paged = Vec::new();
    let mut cursor = 0;
    loop {
        let page = get(&s, &format!("/v1/audit/events?limit=2&cursor={cursor}")).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        paged.extend(items.iter().cloned());
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => cursor = c.parse().unwrap(),
            None => break,
        }
    }
    assert_eq!(paged, all);
    assert_eq!(verify(&all_events(&s).await).unwrap(), head(&s).await);
}

/// Stops the server, runs `sql` on its database, and starts it again.
pub(crate) async fn edit_stored(s: TestServer, backend: Backend, sql: &[String]) -> TestServer {
    let token = s.token.clone();
    let database = s.stop().await;
    let mut conn = db(&database.url).await;
    for q in sql {
        assert_eq!(exec(&mut conn, q).await, 1, "{q}");
    }
    sqlx::Connection::close(conn).await.unwrap();
    TestServer::start_with(
        backend,
        Options {
            database: Some(database),
            token: Some(token),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

async fn a_stored_edit_breaks_the_chain_exactly_there(backend: Backend) {
    let mut s = TestServer::start(backend).await;
    for i in 0..6 {
        let a = create_agent(&s, &s.token, &format!("t{i}")).await;
        crate::transition(&s, &s.token, a["id"].as_str().unwrap(), "activate", "approved").await;
    }
    let events = all_events(&s).await;
    let last = verify(&events).unwrap();
    assert!(last >= 14, "{last}");
    // Pick events in the middle: a transition (has a reason) and a create.
    let activate = events
        .iter()
        .filter(|e| e["action"] == "agent.activate")
        .nth(3)
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    let create = events.iter().filter(|e| e["action"] == "agent.create").nth(2).unwrap()["seq"]
        .as_i64()
        .unwrap();
    assert!(create < activate);
    let original_details = events[usize::try_from(create - 1).unwrap()]["details"].clone();

    // 1. Change the reason of one event.
    s = edit_stored(
        s,
        backend,
        &[format!(
            "UPDATE audit_events SET reason = 'forged' WHERE seq = {activate}"
        )],
    )
    .await;
    let seen = all_events(&s).await;
    assert_eq!(seen[usize::try_from(activate - 1).unwrap()]["reason"], "forged");
    let broken = verify(&seen).unwrap_err();
    assert_eq!(broken.seq, activate, "{broken}");
    assert!(broken.problem.contains("altered"), "{broken}");

    // 2. Also change the details of an earlier one: the break moves there.
    s = edit_stored(
        s,
        backend,
        &[format!(
            "UPDATE audit_events SET details = '{{\"name\":\"someone-else\"}}' WHERE seq = {create}"
        )],
    )
    .await;
    assert_eq!(verify(&all_events(&s).await).unwrap_err().seq, create);

    // 3. Put both back: the chain verifies again, and new events extend it.
    let details = idv_core::audit::canonical_json(&original_details).replace('\'', "''");
    s = edit_stored(
        s,
        backend,
        &[
            format!("UPDATE audit_events SET reason = 'approved' WHERE seq = {activate}"),
            format!("UPDATE audit_events SET details = '{details}' WHERE seq = {create}"),
        ],
    )
    .await;
    assert_eq!(verify(&all_events(&s).await).unwrap(), last);
    create_agent(&s, &s.token, "after").await;
    assert_eq!(verify(&all_events(&s).await).unwrap(), last + 1);

    // 4. Delete an event: the gap is reported where it is.
    s = edit_stored(
        s,
        backend,
        &[format!("DELETE FROM audit_events WHERE seq = {activate}")],
    )
    .await;
    let broken = verify(&all_events(&s).await).unwrap_err();
    assert_eq!(broken.seq, activate, "{broken}");
    assert!(broken.problem.contains("missing"), "{broken}");
    // The API itself still works on a broken chain.
    assert_eq!(agent_count(&s).await, 7);
}

async fn a_failing_audit_write_fails_the_operation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "kept").await;
    let id = a["id"].as_str().unwrap().to_owned();
    let (_, token_id) = crate::tenant_token(&s, "default", "auditor").await;
    let mut conn = db(&s.database.url).await;
    let (install, remove): (&[&str], &[&str]) = match backend {
        Backend::Sqlite => (
            &[
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit disk full'); END",
            ],
            &["DROP TRIGGER no_audit"],
        ),
        Backend::Postgres => (
            &[
                "CREATE FUNCTION no_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit disk full'; END $$",
                "CREATE TRIGGER no_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION no_audit()",
            ],
            &["DROP TRIGGER no_audit ON audit_events", "DROP FUNCTION no_audit()"],
        ),
    };
    for sql in install {
        exec(&mut conn, sql).await;
    }
    let head_before = head(&s).await;
    let before = json!({
        "agents": crate::all_agents_as(&s, &s.token, "").await,
        "tokens": get(&s, "/v1/admin-tokens").await,
        "tenants": get(&s, "/v1/tenants").await,
    });

    // Every kind of write answers 503 and changes nothing.
    let writes = [
        s.req(Method::POST, "/v1/agents").json(&crate::agent_body("lost")),
        s.req(Method::POST, "/v1/agents/bulk")
            .json(&json!({"agents": [crate::agent_body("lost-1"), crate::agent_body("lost-2")]})),
        s.req(Method::PATCH, &format!("/v1/agents/{id}"))
            .json(&json!({"owner": "changed"})),
        s.req(Method::POST, &format!("/v1/agents/{id}/activate"))
            .json(&json!({"reason": "r"})),
        s.req(Method::POST, "/v1/tenants").json(&json!({"name": "ghost"})),
        s.req(Method::POST, "/v1/admin-tokens")
            .json(&json!({"name": "ghost", "role": "admin"})),
        s.req(Method::DELETE, &format!("/v1/admin-tokens/{token_id}")),
        // Refusals are audited too, so they cannot be answered either.
        s.req(Method::POST, &format!("/v1/agents/{id}/resume"))
            .json(&json!({"reason": "r"})),
    ];
    for req in writes {
        let p = problem(req.send().await.unwrap(), StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(p["type"], "urn:idv:problem:unavailable");
        assert!(
            !p["detail"].as_str().unwrap().contains("audit disk full"),
            "internals leaked: {p}"
        );
    }
    // Reads still work, and nothing changed.
    let after = json!({
        "agents": crate::all_agents_as(&s, &s.token, "").await,
        "tokens": get(&s, "/v1/admin-tokens").await,
        "tenants": get(&s, "/v1/tenants").await,
    });
    assert_eq!(after, before);
    assert_eq!(head(&s).await, head_before);
    let metrics = crate::metrics_text(&s).await;
    assert!(!metrics.contains("idv_audit_failed_batches_total 0\n"), "{metrics}");

    for sql in remove {
        exec(&mut conn, sql).await;
    }
    // Straight from the database: no trace of any of it.
    for (sql, want) in [
        ("SELECT COUNT(*) FROM agents WHERE name LIKE 'lost%'", 0),
        ("SELECT COUNT(*) FROM tenants WHERE name = 'ghost'", 0),
        ("SELECT COUNT(*) FROM admin_tokens WHERE name = 'ghost'", 0),
        ("SELECT COUNT(*) FROM admin_tokens WHERE revoked_at IS NOT NULL", 0),
        (
            "SELECT COUNT(*) FROM agents WHERE owner = 'changed' OR status <> 'provisioning'",
            0,
        ),
    ] {
        assert_eq!(scalar(&mut conn, sql).await, want, "{sql}");
    }
    sqlx::Connection::close(conn).await.unwrap();
    let v = get(&s, &format!("/v1/agents/{id}")).await;
    assert_eq!(v, a);
    // The store recovers once the audit log can be written again.
    create_agent(&s, &s.token, "after").await;
    assert_eq!(agent_count(&s).await, 2);
    assert_eq!(verify(&all_events(&s).await).unwrap(), head(&s).await);
    let res = s.http.get(s.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
