//! Admin tokens: shown once, recognisable, stored only as hashes, revocable,
//! expiring.

use std::collections::HashSet;

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{get, get_as, json_ok, problem};

backend_tests!(
    a_new_token_is_shown_once_and_works,
    revoked_tokens_stop_working_at_once,
    tokens_expire,
    token_lists_page_by_id,
    tokens_are_stored_only_as_hashes,
    typos_are_caught_by_the_checksum,
);

async fn create(s: &TestServer, body: Value) -> Value {
    json_ok(
        s.req(Method::POST, "/v1/admin-tokens")
            .json(&body)
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await
}

async fn a_new_token_is_shown_once_and_works(backend: Backend) {
    let s = TestServer::start(backend).await;
    let me = get(&s, "/v1/admin-tokens/self").await;
    assert_eq!(me["admin_token"]["name"], "bootstrap");
    assert_eq!(me["admin_token"]["platform"], true);
    assert_eq!(me["admin_token"]["role"], "admin");
    assert_eq!(me["admin_token"]["created_by"], "system:bootstrap");
    assert_eq!(me["tenant"]["name"], "default");
    let v = create(&s, json!({"name": "ci pipeline", "role": "operator"})).await;
    let secret = v["token"].as_str().unwrap();
    // Recognisable: prefix, length, checksum.
    assert!(secret.starts_with("idvat_"), "{secret}");
    assert_eq!(secret.len(), idv_core::admin_token::TOKEN_LEN);
    idv_core::admin_token::check_format(secret).unwrap();
    let t = &v["admin_token"];
    let id = t["id"].as_str().unwrap();
    assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
    assert_eq!(t["tenant"], "default");
    assert_eq!(t["name"], "ci pipeline");
    assert_eq!(t["role"], "operator");
    assert_eq!(t["platform"], false);
    assert_eq!(t["hint"], format!("{}…", &secret[..10]));
    assert_eq!(
        t["created_by"],
        format!("admin_token:{}", me["admin_token"]["id"].as_str().unwrap())
    );
    assert!(t["expires_at"].is_null() && t["revoked_at"].is_null());
    // Never shown again: the record is the same, without the secret.
    let got = get(&s, &format!("/v1/admin-tokens/{id}")).await;
    assert_eq!(&got, t);
    assert!(!got.to_string().contains(secret));
    let list = get(&s, "/v1/admin-tokens").await;
    assert!(list["items"].as_array().unwrap().contains(t));
    assert!(!list.to_string().contains(secret));
    // It works, with its own identity and role.
    let who = get_as(&s, secret, "/v1/admin-tokens/self").await;
    assert_eq!(&who["admin_token"], t);
    assert_eq!(who["tenant"]["name"], "default");
    let a = crate::create_agent(&s, secret, "by-ci").await;
    assert_eq!(a["created_by"], format!("admin_token:{id}"));
    // Two tokens never share a secret.
    let w = create(&s, json!({"name": "ci pipeline", "role": "operator"})).await;
    assert_ne!(w["token"], v["token"]);
    assert_ne!(w["admin_token"]["id"], v["admin_token"]["id"]);
    // `expires_in` as seconds or text.
    for (e, secs) in [(json!(120), 120), (json!("90d"), 90 * 86400)] {
        let v = create(&s, json!({"name": "e", "role": "auditor", "expires_in": e})).await;
        let created = idv_core::Timestamp::parse(v["admin_token"]["created_at"].as_str().unwrap()).unwrap();
        let expires = idv_core::Timestamp::parse(v["admin_token"]["expires_at"].as_str().unwrap()).unwrap();
        assert_eq!(expires.as_micros() - created.as_micros(), secs * 1_000_000);
    }
}

async fn revoked_tokens_stop_working_at_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let v = create(&s, json!({"name": "temp", "role": "admin"})).await;
    let secret = v["token"].as_str().unwrap().to_owned();
    let id = v["admin_token"]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.req_as(&secret, Method::GET, "/v1/agents")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let r = json_ok(
        s.req(Method::DELETE, &format!("/v1/admin-tokens/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(r["revoked_at"].is_string());
    assert_eq!(r["id"], id.as_str());
    let p = problem(
        s.req_as(&secret, Method::GET, "/v1/agents").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:unauthorized");
    // The record stays, revoked; revoking again is a conflict.
    assert_eq!(get(&s, &format!("/v1/admin-tokens/{id}")).await, r);
    let p = problem(
        s.req(Method::DELETE, &format!("/v1/admin-tokens/{id}"))
            .send()
            .await
            .unwrap(),
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:conflict");
    let p = problem(
        s.req(Method::DELETE, &format!("/v1/admin-tokens/{}", crate::ghost_id()))
            .send()
            .await
            .unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(p["type"], "urn:idv:problem:not-found");
    // A token may revoke itself; the next request with it fails.
    let v = create(&s, json!({"name": "self-destruct", "role": "admin"})).await;
    let secret = v["token"].as_str().unwrap();
    let id = v["admin_token"]["id"].as_str().unwrap();
    let res = s
        .req_as(secret, Method::DELETE, &format!("/v1/admin-tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    problem(
        s.req_as(secret, Method::GET, "/v1/admin-tokens/self")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    // Revocation survives a restart.
    let s = s.restart(backend).await.unwrap();
    problem(
        s.req_as(secret, Method::GET, "/v1/agents").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn tokens_expire(backend: Backend) {
    let s = crate::start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let v = create(&s, json!({"name": "short", "role": "operator", "expires_in": "1h"})).await;
    let secret = v["token"].as_str().unwrap();
    clock.advance_secs(3599);
    assert_eq!(
        s.req_as(secret, Method::GET, "/v1/agents")
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    clock.advance_secs(1);
    let p = problem(
        s.req_as(secret, Method::GET, "/v1/agents").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("expired"), "{p}");
    // The bootstrap token does not expire.
    clock.advance_secs(10 * 365 * 86400);
    assert_eq!(s.req(Method::GET, "/v1/agents").send().await.unwrap().status(), 200);
}

async fn token_lists_page_by_id(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut made = HashSet::new();
    for i in 0..12 {
        let v = create(&s, json!({"name": format!("t{i}"), "role": "auditor"})).await;
        made.insert(v["admin_token"]["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut path = "/v1/admin-tokens?limit=5".to_owned();
    loop {
        let page = get(&s, &path).await;
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned()),
        );
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => path = format!("/v1/admin-tokens?limit=5&cursor={c}"),
            None => break,
        }
    }
    // The bootstrap token and the twelve, each once, in id order.
    assert_eq!(seen.len(), 13);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(sorted, seen);
    assert!(made.iter().all(|id| seen.contains(id)));
}

async fn tokens_are_stored_only_as_hashes(backend: Backend) {
    let s = TestServer::start(backend).await;
    let v = create(&s, json!({"name": "hashed", "role": "admin"})).await;
    let secret = v["token"].as_str().unwrap().to_owned();
    let boot = s.token.clone();
    let database = s.stop().await;
    let mut conn = crate::db(&database.url).await;
    // Nothing in any column of the token table holds a secret.
    let rows: Vec<(String, String, Vec<u8>)> = sqlx::query_as("SELECT id, hint, secret_hash FROM admin_tokens")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (_, hint, hash) in &rows {
        assert_eq!(hash.len(), 32, "an HMAC-SHA256");
        assert_eq!(hint.chars().count(), 11, "{hint}");
    }
    sqlx::Connection::close(conn).await.unwrap();
    // And the database file does not contain them anywhere (SQLite).
    if backend == Backend::Sqlite {
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(database.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                bytes.extend(std::fs::read(&path).unwrap());
            }
        }
        for t in [&secret, &boot] {
            assert!(
                !bytes.windows(t.len()).any(|w| w == t.as_bytes()),
                "a token is stored in clear"
            );
        }
    }
}

async fn typos_are_caught_by_the_checksum(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut typo = s.token.clone().into_bytes();
    typo[20] = if typo[20] == b'Z' { b'Y' } else { b'Z' };
    let typo = String::from_utf8(typo).unwrap();
    let p = problem(
        s.req_as(&typo, Method::GET, "/v1/agents").send().await.unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("checksum"), "{p}");
    let p = problem(
        s.req_as(&format!("{}x", s.token), Method::GET, "/v1/agents")
            .send()
            .await
            .unwrap(),
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("not an IdentityVault admin token"),
        "{p}"
    );
    // The bearer scheme is case-insensitive in its usual spellings.
    let res = s
        .http
        .get(s.url("/v1/agents"))
        .header("authorization", format!("bearer {}", s.token))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}
