//! Credential rotation: overlap, retirement at the overlap's end or on the
//! successor's first use, lineage, the agent's self-service pick-up and
//! rotation, and security events.

use std::time::Duration;

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{all_events, eventually, get, json_ok, problem, start_manual, transition};

backend_tests!(
    rotation_overlaps_then_the_job_retires_the_predecessor,
    first_use_of_the_successor_retires_the_predecessor,
    agents_collect_successors_and_rotate_themselves,
    a_compromised_agent_loses_every_credential_at_once,
    rotation_input_is_checked,
    rotation_policies_rotate_on_schedule,
    rotation_policy_input_is_checked,
    a_class_change_moves_an_agent_between_policies,
    all_credentials_of_an_agent_rotate_on_a_signal,
);

/// Registers and activates an agent; its id.
async fn agent(s: &TestServer, name: &str) -> String {
    let body = json!({
        "name": name, "owner": "alice@bank.example", "purpose": "rotation tests",
        "allowed_scopes": ["ledger:read"],
    });
    let a = json_ok(
        s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(transition(s, &s.token, &id, "activate", "test").await.status(), 200);
    id
}

/// Issues a credential of `kind` to `agent`; the answer (secret included).
async fn issue(s: &TestServer, agent: &str, kind: &str) -> Value {
    json_ok(
        s.req(Method::POST, &format!("/v1/agents/{agent}/credentials"))
            .json(&json!({ "type": kind }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await
}

async fn rotate(s: &TestServer, id: &str, body: Value) -> Response {
    s.req(Method::POST, &format!("/v1/credentials/{id}/rotate"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Asks for an access token with a client secret; the status.
async fn token_status(s: &TestServer, agent: &str, secret: &str) -> StatusCode {
    s.http
        .post(s.url("/oauth2/token"))
        .basic_auth(agent, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .status()
}

fn str_of<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x.as_str().unwrap_or_else(|| panic!("no {path:?} in {v}"))
}

async fn credential(s: &TestServer, id: &str) -> Value {
    get(s, &format!("/v1/credentials/{id}")).await
}

/// No secret ever reaches the audit log.
async fn assert_not_logged(s: &TestServer, secrets: &[&str]) {
    let log = serde_json::to_string(&all_events(s).await).unwrap();
    for secret in secrets {
        assert!(!log.contains(secret), "a secret is in the audit log");
    }
}

async fn rotation_overlaps_then_the_job_retires_the_predecessor(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let a = agent(&s, "rotating").await;
    let c = issue(&s, &a, "client_secret").await;
    let old_id = str_of(&c, &["credential", "id"]).to_owned();
    let old_secret = str_of(&c, &["client_secret"]).to_owned();
    assert_eq!(token_status(&s, &a, &old_secret).await, StatusCode::OK);

    let r = json_ok(
        rotate(&s, &old_id, json!({"overlap": "60s"})).await,
        StatusCode::CREATED,
    )
    .await;
    let new_id = str_of(&r, &["successor", "credential", "id"]).to_owned();
    let new_secret = str_of(&r, &["successor", "client_secret"]).to_owned();
    assert_ne!(new_secret, old_secret);
    assert_eq!(r["successor"]["credential"]["predecessor_id"], old_id.as_str());
    assert_eq!(r["predecessor"]["successor_id"], new_id.as_str());
    assert_eq!(r["predecessor"]["status"], "active");
    let ends = idv_core::Timestamp::parse(str_of(&r, &["predecessor", "expires_at"])).unwrap();
    let made = idv_core::Timestamp::parse(str_of(&r, &["successor", "credential", "created_at"])).unwrap();
    assert_eq!(ends.as_micros() - made.as_micros(), 60_000_000);

    // Zero downtime: both work during the overlap.
    assert_eq!(token_status(&s, &a, &old_secret).await, StatusCode::OK);
    assert_eq!(token_status(&s, &a, &new_secret).await, StatusCode::OK);
    // The lineage, from either end, oldest first.
    for id in [&old_id, &new_id] {
        let h = get(&s, &format!("/v1/credentials/{id}/history")).await;
        let ids: Vec<&str> = h["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![old_id.as_str(), new_id.as_str()]);
    }
    // A rotated credential is not rotated again: its successor is.
    let p = problem(rotate(&s, &old_id, json!({})).await, StatusCode::CONFLICT).await;
    assert!(p["detail"].as_str().unwrap().contains(&new_id), "{p}");

    // Not yet: a second early.
    clock.advance_secs(59);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(credential(&s, &old_id).await["status"], "active");
    clock.advance_secs(2);
    eventually("the predecessor to be revoked", || async {
        credential(&s, &old_id).await["status"] == "revoked"
    })
    .await;
    let old = credential(&s, &old_id).await;
    assert_eq!(old["revoked_reason"], "rotated");
    assert_eq!(token_status(&s, &a, &old_secret).await, StatusCode::UNAUTHORIZED);
    assert_eq!(token_status(&s, &a, &new_secret).await, StatusCode::OK);

    let events = all_events(&s).await;
    let rotate_ev: Vec<&Value> = events.iter().filter(|e| e["action"] == "credential.rotate").collect();
    assert_eq!(rotate_ev.len(), 1);
    assert_eq!(rotate_ev[0]["target_id"], old_id.as_str());
    assert_eq!(rotate_ev[0]["details"]["successor_id"], new_id.as_str());
    assert_eq!(rotate_ev[0]["details"]["overlap_secs"], 60);
    let revoke_ev: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "credential.revoke" && e["target_id"] == old_id.as_str())
        .collect();
    assert_eq!(revoke_ev.len(), 1);
    assert_eq!(revoke_ev[0]["details"]["cause"], "overlap_ended");
    assert_eq!(revoke_ev[0]["actor"]["kind"], "system");
    assert_not_logged(&s, &[&old_secret, &new_secret]).await;

    // Zero overlap: the predecessor dies with the rotation.
    let r = json_ok(rotate(&s, &new_id, json!({"overlap": 0})).await, StatusCode::CREATED).await;
    assert_eq!(r["predecessor"]["status"], "revoked");
    assert_eq!(token_status(&s, &a, &new_secret).await, StatusCode::UNAUTHORIZED);
    let newest = str_of(&r, &["successor", "client_secret"]);
    assert_eq!(token_status(&s, &a, newest).await, StatusCode::OK);
    let h = get(&s, &format!("/v1/credentials/{old_id}/history")).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3);
}

async fn first_use_of_the_successor_retires_the_predecessor(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "first-use").await;
    let c = issue(&s, &a, "client_secret").await;
    let old_id = str_of(&c, &["credential", "id"]).to_owned();
    let old_secret = str_of(&c, &["client_secret"]).to_owned();
    let r = json_ok(
        rotate(&s, &old_id, json!({"overlap": "1h", "retire": "first_use"})).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(r["successor"]["credential"]["retire_on_use"], true);
    let new_secret = str_of(&r, &["successor", "client_secret"]).to_owned();
    // The predecessor works until the successor is used…
    assert_eq!(token_status(&s, &a, &old_secret).await, StatusCode::OK);
    assert_eq!(token_status(&s, &a, &new_secret).await, StatusCode::OK);
    // …and not after.
    assert_eq!(token_status(&s, &a, &old_secret).await, StatusCode::UNAUTHORIZED);
    let old = credential(&s, &old_id).await;
    assert_eq!(
        (old["status"].as_str(), old["revoked_reason"].as_str()),
        (Some("revoked"), Some("rotated"))
    );
    let new_id = str_of(&r, &["successor", "credential", "id"]);
    assert_eq!(credential(&s, new_id).await["retire_on_use"], false);
    // Once: later uses change nothing.
    assert_eq!(token_status(&s, &a, &new_secret).await, StatusCode::OK);
    let revokes = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "credential.revoke" && e["target_id"] == old_id.as_str())
        .collect::<Vec<_>>();
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0]["details"]["cause"], "successor_used");
}

async fn agents_collect_successors_and_rotate_themselves(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "self-service").await;
    let c = issue(&s, &a, "client_secret").await;
    let old_id = str_of(&c, &["credential", "id"]).to_owned();
    let old_secret = str_of(&c, &["client_secret"]).to_owned();

    // Rotated for the agent to collect: no secret in the answer.
    let r = json_ok(rotate(&s, &old_id, json!({"pickup": true})).await, StatusCode::CREATED).await;
    assert!(r["successor"].get("client_secret").is_none(), "{r}");
    assert_eq!(r["successor"]["credential"]["awaiting_pickup"], true);

    let collect = |secret: String| {
        let s = &s;
        let a = a.clone();
        async move {
            s.http
                .post(s.url("/v1/self/credential/successor"))
                .basic_auth(&a, Some(secret))
                .send()
                .await
                .unwrap()
        }
    };
    let got = json_ok(collect(old_secret.clone()).await, StatusCode::OK).await;
    let new_secret = str_of(&got, &["client_secret"]).to_owned();
    assert_eq!(got["credential"]["awaiting_pickup"], false);
    assert_eq!(token_status(&s, &a, &new_secret).await, StatusCode::OK);
    // Once only.
    problem(collect(old_secret.clone()).await, StatusCode::NOT_FOUND).await;
    // Nothing waits for the new credential.
    problem(collect(new_secret.clone()).await, StatusCode::NOT_FOUND).await;
    // Not without the agent's own credential.
    for res in [
        collect("idvcs_nope".into()).await,
        s.http
            .post(s.url("/v1/self/credential/successor"))
            .send()
            .await
            .unwrap(),
    ] {
        // RFC 9110 §11.6.1: the challenge names what this endpoint takes.
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_owned();
        assert!(challenge.starts_with("Basic realm=\"idv-agent\""), "{challenge}");
        problem(res, StatusCode::UNAUTHORIZED).await;
    }

    // The agent rotates its own credential and gets the secret at once.
    let r = json_ok(
        s.http
            .post(s.url("/v1/self/credential/rotate"))
            .basic_auth(&a, Some(&new_secret))
            .json(&json!({"overlap": "5m"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let third = str_of(&r, &["successor", "client_secret"]).to_owned();
    assert_eq!(token_status(&s, &a, &third).await, StatusCode::OK);
    assert!(str_of(&r, &["successor", "credential", "created_by"]).starts_with("agent:"));
    // `pickup` is for administrators.
    problem(
        s.http
            .post(s.url("/v1/self/credential/rotate"))
            .basic_auth(&a, Some(&third))
            .json(&json!({"pickup": true}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // API keys rotate themselves with `Bearer`.
    let k = issue(&s, &a, "api_key").await;
    let key = str_of(&k, &["api_key"]).to_owned();
    let r = json_ok(
        s.http
            .post(s.url("/v1/self/credential/rotate"))
            .bearer_auth(&key)
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    assert!(str_of(&r, &["successor", "api_key"]).starts_with("idvak_"));
    assert_eq!(r["successor"]["credential"]["scopes"], k["credential"]["scopes"]);

    // A suspended agent cannot collect or rotate.
    assert_eq!(transition(&s, &s.token, &a, "suspend", "test").await.status(), 200);
    problem(
        s.http
            .post(s.url("/v1/self/credential/rotate"))
            .basic_auth(&a, Some(&third))
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    let collected: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "credential.successor.collect")
        .collect();
    // One collected; the two attempts with nothing to collect are on the
    // record as failures.
    let outcomes: Vec<&str> = collected.iter().map(|e| e["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, vec!["success", "failure", "failure"]);
    assert_eq!(collected[0]["actor"]["kind"], "agent");
    assert_eq!(collected[0]["actor"]["name"], a.as_str());
    assert_not_logged(&s, &[&old_secret, &new_secret, &third, &key]).await;
}

async fn a_compromised_agent_loses_every_credential_at_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "breached").await;
    let c = issue(&s, &a, "client_secret").await;
    let k = issue(&s, &a, "api_key").await;
    let secret = str_of(&c, &["client_secret"]).to_owned();
    // A rotation in progress: both ends are revoked too.
    let r = json_ok(
        rotate(&s, str_of(&c, &["credential", "id"]), json!({"overlap": "1h"})).await,
        StatusCode::CREATED,
    )
    .await;
    let rotated = str_of(&r, &["successor", "client_secret"]).to_owned();
    let path = format!("/v1/agents/{a}/compromised");
    problem(
        s.req(Method::POST, &path)
            .json(&json!({"reason": " "}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let ans = json_ok(
        s.req(Method::POST, &path)
            .json(&json!({"reason": "key found in a public repository"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let revoked = ans["revoked"].as_array().unwrap();
    assert_eq!(revoked.len(), 3, "{ans}");
    assert!(
        revoked
            .iter()
            .all(|c| c["status"] == "revoked" && c["revoked_reason"] == "compromised")
    );
    for old in [&secret, &rotated] {
        assert_eq!(token_status(&s, &a, old).await, StatusCode::UNAUTHORIZED);
    }
    let successors = ans["successors"].as_array().unwrap();
    assert_eq!(successors.len(), 2, "{ans}");
    let fresh = successors.iter().find_map(|c| c["client_secret"].as_str()).unwrap();
    assert_eq!(token_status(&s, &a, fresh).await, StatusCode::OK);
    assert!(successors.iter().any(|c| c["api_key"].as_str().is_some()));
    let ev: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "agent.compromised")
        .collect();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["reason"], "key found in a public repository");
    assert_not_logged(&s, &[&secret, &rotated, fresh, str_of(&k, &["api_key"])]).await;
}

async fn rotation_input_is_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "checked").await;
    let c = issue(&s, &a, "client_secret").await;
    let id = str_of(&c, &["credential", "id"]).to_owned();
    for (body, field) in [
        (json!({"overlap": "31d"}), "overlap"),
        (json!({"overlap": "soon"}), "overlap"),
        (json!({"retire": "never"}), "retire"),
        (json!({"jwk": {"kty": "OKP"}}), "jwk"),
    ] {
        let p = problem(rotate(&s, &id, body.clone()).await, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    problem(rotate(&s, &id, json!({"later": 1})).await, StatusCode::BAD_REQUEST).await;
    problem(rotate(&s, &crate::ghost_id(), json!({})).await, StatusCode::NOT_FOUND).await;
    problem(rotate(&s, "not-an-id", json!({})).await, StatusCode::BAD_REQUEST).await;
    // Nothing was half-done: no successor, still one credential.
    assert!(credential(&s, &id).await.get("successor_id").is_none());
    let revoked = s
        .req(Method::DELETE, &format!("/v1/credentials/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    problem(rotate(&s, &id, json!({})).await, StatusCode::CONFLICT).await;
    problem(
        s.req(Method::GET, &format!("/v1/credentials/{}/history", crate::ghost_id()))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        s.req(Method::POST, &format!("/v1/agents/{}/compromised", crate::ghost_id()))
            .json(&json!({"reason": "x"}))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
}

async fn put_policy(s: &TestServer, scope: &str, body: Value) -> Response {
    s.req(Method::PUT, &format!("/v1/rotation-policies/{scope}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Registers and activates an agent of `class`; its id.
async fn agent_in(s: &TestServer, name: &str, class: &str) -> String {
    let body = json!({"name": name, "owner": "o", "purpose": "rotation tests", "class": class});
    let a = json_ok(
        s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(transition(s, &s.token, &id, "activate", "test").await.status(), 200);
    id
}

async fn rotation_policies_rotate_on_schedule(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let a = agent_in(&s, "scheduled", "payments").await;
    let other = agent_in(&s, "unscheduled", "reporting").await;
    let c = issue(&s, &a, "client_secret").await;
    let first_id = str_of(&c, &["credential", "id"]).to_owned();
    let first_secret = str_of(&c, &["client_secret"]).to_owned();
    let o = issue(&s, &other, "client_secret").await;

    let p = json_ok(
        put_policy(&s, "class/payments", json!({"every": "1h", "overlap": "10m"})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (p["every_secs"].as_u64(), p["overlap_secs"].as_u64()),
        (Some(3600), Some(600))
    );
    assert_eq!(p["scope"], json!({"type": "class", "id": "payments"}));
    assert_eq!(p["credentials_scheduled"], 1);

    // Due an hour after the credential was made.
    clock.advance_secs(3590);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(credential(&s, &first_id).await.get("successor_id").is_none());
    clock.advance_secs(20);
    eventually("the scheduled rotation", || async {
        credential(&s, &first_id).await.get("successor_id").is_some()
    })
    .await;
    let first = credential(&s, &first_id).await;
    let second_id = first["successor_id"].as_str().unwrap().to_owned();
    let second = credential(&s, &second_id).await;
    assert_eq!(second["awaiting_pickup"], true);
    assert_eq!(second["created_by"], "system:jobs");
    // The other class has no policy: untouched.
    assert!(
        credential(&s, str_of(&o, &["credential", "id"]))
            .await
            .get("successor_id")
            .is_none()
    );

    // The agent collects its successor with the credential it has.
    let got = json_ok(
        s.http
            .post(s.url("/v1/self/credential/successor"))
            .basic_auth(&a, Some(&first_secret))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let second_secret = str_of(&got, &["client_secret"]).to_owned();
    assert_eq!(token_status(&s, &a, &second_secret).await, StatusCode::OK);
    assert_eq!(token_status(&s, &a, &first_secret).await, StatusCode::OK);
    // The overlap ends: the first is revoked; the schedule goes on with the second.
    clock.advance_secs(601);
    eventually("the overlap to end", || async {
        credential(&s, &first_id).await["status"] == "revoked"
    })
    .await;
    assert_eq!(token_status(&s, &a, &first_secret).await, StatusCode::UNAUTHORIZED);
    clock.advance_secs(3000);
    eventually("the second scheduled rotation", || async {
        credential(&s, &second_id).await.get("successor_id").is_some()
    })
    .await;
    let h = get(&s, &format!("/v1/credentials/{first_id}/history")).await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3);

    // The agent's own policy wins over its class's; removing it falls back.
    let p = json_ok(
        put_policy(
            &s,
            &format!("agent/{a}"),
            json!({"max_age": "1d", "overlap": "1h", "retire": "first_use"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(p["credentials_scheduled"], 1);
    let list = get(&s, "/v1/rotation-policies").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let del = s
        .req(Method::DELETE, &format!("/v1/rotation-policies/agent/{a}"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let del = s
        .req(Method::DELETE, "/v1/rotation-policies/class/payments")
        .send()
        .await
        .unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    assert!(
        get(&s, "/v1/rotation-policies").await["items"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Nothing is scheduled any more.
    let third_id = credential(&s, &second_id).await["successor_id"]
        .as_str()
        .unwrap()
        .to_owned();
    clock.advance_secs(10 * 24 * 3600);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(credential(&s, &third_id).await.get("successor_id").is_none());

    let events = all_events(&s).await;
    let puts: Vec<&Value> = events.iter().filter(|e| e["action"] == "rotation_policy.put").collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(puts[0]["target_id"], "class:payments");
    assert_not_logged(&s, &[&first_secret, &second_secret]).await;
}

async fn rotation_policy_input_is_checked(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (body, field) in [
        (json!({}), "every"),
        (json!({"every": "30s"}), "every"),
        (json!({"max_age": "1h", "overlap": "1h"}), "max_age"),
        (json!({"every": "1d", "overlap": "31d"}), "overlap"),
        (json!({"every": "1d", "retire": "later"}), "retire"),
        (json!({"every": "soon"}), "every"),
    ] {
        let p = problem(
            put_policy(&s, "tenant", body.clone()).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(p["field"], field, "{body}: {p}");
    }
    problem(
        put_policy(&s, "team/x", json!({"every": "1d"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put_policy(&s, "agent/nope", json!({"every": "1d"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put_policy(&s, "class", json!({"every": "1d"})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put_policy(&s, &format!("agent/{}", crate::ghost_id()), json!({"every": "1d"})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    problem(
        s.req(Method::DELETE, "/v1/rotation-policies/tenant")
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    // A path that names no scope names no policy.
    for path in [
        "/v1/rotation-policies/0",
        "/v1/rotation-policies/0/0",
        "/v1/rotation-policies/agent/x",
    ] {
        for m in [Method::GET, Method::DELETE] {
            problem(s.req(m, path).send().await.unwrap(), StatusCode::NOT_FOUND).await;
        }
    }
    problem(
        s.req(Method::GET, "/v1/rotation-policies/tenant").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let ok = json_ok(put_policy(&s, "tenant", json!({"every": 86400})).await, StatusCode::OK).await;
    assert_eq!(ok["scope"], json!({"type": "tenant"}));
    assert_eq!(ok["credentials_scheduled"], 0);
    assert_eq!(get(&s, "/v1/rotation-policies/tenant").await["every_secs"], 86400);
}

async fn a_class_change_moves_an_agent_between_policies(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let a = agent_in(&s, "mover", "payments").await;
    let c = issue(&s, &a, "api_key").await;
    let id = str_of(&c, &["credential", "id"]).to_owned();
    json_ok(
        put_policy(&s, "class/payments", json!({"every": "1h"})).await,
        StatusCode::OK,
    )
    .await;
    json_ok(
        put_policy(&s, "class/reporting", json!({"every": "1d"})).await,
        StatusCode::OK,
    )
    .await;
    let res = s
        .req(Method::PATCH, &format!("/v1/agents/{a}"))
        .header("content-type", "application/merge-patch+json")
        .body(json!({"class": "reporting"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // The payments schedule (1 h) no longer applies…
    clock.advance_secs(3700);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(credential(&s, &id).await.get("successor_id").is_none());
    // …the reporting one (1 d) does.
    clock.advance_secs(24 * 3600);
    eventually("the reporting schedule", || async {
        credential(&s, &id).await.get("successor_id").is_some()
    })
    .await;
}

async fn all_credentials_of_an_agent_rotate_on_a_signal(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent_in(&s, "risky", "payments").await;
    let c = issue(&s, &a, "client_secret").await;
    let k = issue(&s, &a, "api_key").await;
    let secret = str_of(&c, &["client_secret"]).to_owned();
    json_ok(
        put_policy(&s, "class/payments", json!({"every": "30d", "overlap": "10m"})).await,
        StatusCode::OK,
    )
    .await;
    let path = format!("/v1/agents/{a}/rotate-credentials");
    problem(
        s.req(Method::POST, &path)
            .json(&json!({"reason": ""}))
            .send()
            .await
            .unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let done = json_ok(
        s.req(Method::POST, &path)
            .json(&json!({"reason": "risk score 0.92"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let items = done["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{done}");
    for r in items {
        assert_eq!(r["successor"]["credential"]["awaiting_pickup"], true);
        assert!(r["successor"].get("client_secret").is_none() && r["successor"].get("api_key").is_none());
        assert_eq!(r["predecessor"]["status"], "active");
        let ends = idv_core::Timestamp::parse(str_of(r, &["predecessor", "expires_at"])).unwrap();
        let made = idv_core::Timestamp::parse(str_of(r, &["successor", "credential", "created_at"])).unwrap();
        assert_eq!(ends.as_micros() - made.as_micros(), 600_000_000);
    }
    // The agent keeps working and collects its new secret.
    assert_eq!(token_status(&s, &a, &secret).await, StatusCode::OK);
    let got = json_ok(
        s.http
            .post(s.url("/v1/self/credential/successor"))
            .basic_auth(&a, Some(&secret))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        token_status(&s, &a, str_of(&got, &["client_secret"])).await,
        StatusCode::OK
    );
    // Again: the successors rotate (the predecessors are rotated already).
    let again = json_ok(
        s.req(Method::POST, &path)
            .json(&json!({"reason": "still risky"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(again["items"].as_array().unwrap().len(), 2);
    let h = get(
        &s,
        &format!("/v1/credentials/{}/history", str_of(&k, &["credential", "id"])),
    )
    .await;
    assert_eq!(h["items"].as_array().unwrap().len(), 3);
    let why: Vec<Value> = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "credential.rotate")
        .map(|e| e["details"]["request"]["reason"].clone())
        .collect();
    assert_eq!(why.len(), 4);
    assert!(why[..2].iter().all(|r| r == "risk score 0.92"), "{why:?}");
}
