//! The OAuth server for agents over real HTTP: credentials, the token
//! endpoint, introspection, revocation, metadata and JWKS, and a battery of
//! forged and misused tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use idv_core::jose::{self, Alg, KeyPair, PublicKey};
use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Map, Value, json};

use crate::{all_events, json_ok, problem, start_manual, tenant_token, transition};

backend_tests!(
    client_credentials_issues_rfc9068_tokens,
    token_errors_follow_rfc6749_and_are_audited,
    forged_and_misused_tokens_are_never_active,
    suspended_and_retired_agents_lose_access_at_once,
    revocation_follows_rfc7009,
    api_keys_are_scoped_checked_and_recorded,
    private_key_jwt_assertions,
    credentials_stay_in_their_tenant,
    each_tenant_is_its_own_issuer,
    dpop_binds_tokens_per_rfc9449,
    dpop_server_nonces,
    dpop_replay_is_caught_across_nodes,
    es256_keys_when_configured,
    sealed_keys_are_bound_to_their_tenant_and_id,
    token_lifetimes_per_tenant_and_class,
    ed25519_fully_specified_algorithm_is_accepted,
    a_resumption_revives_no_token,
    introspection_is_for_the_tokens_parties_only,
);

async fn token_lifetimes_per_tenant_and_class(backend: Backend) {
    let s = TestServer::start(backend).await;
    let plain = client(&s, &s.token, "ttl-plain").await;
    let mut body = grants_body("ttl-batch");
    body["class"] = json!("batch");
    let a = json_ok(
        s.req(Method::POST, "/v1/agents").json(&body).send().await.unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        transition(&s, &s.token, &id, "activate", "t").await.status(),
        StatusCode::OK
    );
    let cred = credential(&s, &s.token, &id, json!({"type": "client_secret"})).await;
    let batch = Client {
        id,
        secret: cred["client_secret"].as_str().unwrap().to_owned(),
    };
    let ttl = |r: Value| {
        let t = r["access_token"].as_str().unwrap().to_owned();
        let c = jose::decode(&t).unwrap().claims;
        assert_eq!(r["expires_in"], c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap());
        r["expires_in"].as_i64().unwrap()
    };
    assert_eq!(ttl(token(&s, "", &plain, &[]).await), 300, "the server default");
    let put = |class: &str, body: Value| s.req(Method::PUT, &format!("/v1/token-ttls/{class}")).json(&body);
    json_ok(put("*", json!({"ttl": "2m"})).send().await.unwrap(), StatusCode::OK).await;
    json_ok(put("batch", json!({"ttl": 30})).send().await.unwrap(), StatusCode::OK).await;
    assert_eq!(ttl(token(&s, "", &plain, &[]).await), 120, "the tenant default");
    assert_eq!(ttl(token(&s, "", &batch, &[]).await), 30, "the class setting");
    let list = json_ok(
        s.req(Method::GET, "/v1/token-ttls").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["server_default_secs"], 300);
    assert_eq!(list["max_secs"], 3600);
    assert_eq!(
        list["items"],
        json!([{"class": "*", "ttl_secs": 120}, {"class": "batch", "ttl_secs": 30}])
    );
    // The hard maximum, bad class names and roles.
    problem(
        put("*", json!({"ttl": "2h"})).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put("*", json!({"ttl": 0})).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    problem(
        put("bad%20name", json!({"ttl": 60})).send().await.unwrap(),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    let (operator, _) = crate::named_token(&s, "default", "operator", "ttl-op").await;
    let res = s
        .req_as(&operator, Method::PUT, "/v1/token-ttls/*")
        .json(&json!({"ttl": 60}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN).await;
    // Another tenant's settings are its own.
    let (beta, _) = tenant_token(&s, "beta", "admin").await;
    let list = json_ok(
        s.req_as(&beta, Method::GET, "/v1/token-ttls").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"], json!([]));
    // Removing falls back; removing again is a 404.
    let res = s.req(Method::DELETE, "/v1/token-ttls/batch").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(ttl(token(&s, "", &batch, &[]).await), 120);
    problem(
        s.req(Method::DELETE, "/v1/token-ttls/batch").send().await.unwrap(),
        StatusCode::NOT_FOUND,
    )
    .await;
    let events = all_events(&s).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "token_ttl.set" && e["outcome"] == "success")
            .count(),
        3
    );
}

async fn sealed_keys_are_bound_to_their_tenant_and_id(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (alpha, _) = tenant_token(&s, "alpha", "admin").await;
    let (beta, _) = tenant_token(&s, "beta", "admin").await;
    let a = client(&s, &alpha, "seal-a").await;
    let b = client(&s, &beta, "seal-b").await;
    token(&s, "/t/alpha", &a, &[]).await;
    token(&s, "/t/beta", &b, &[]).await;
    // Copy alpha's sealed private key over beta's, straight in the database.
    let mut conn = crate::db(&s.database.url).await;
    let copied = crate::exec(
        &mut conn,
        "UPDATE signing_keys SET sealed_private = (SELECT k.sealed_private FROM signing_keys k \
         JOIN tenants t ON t.id = k.tenant_id WHERE t.name = 'alpha') \
         WHERE tenant_id = (SELECT id FROM tenants WHERE name = 'beta')",
    )
    .await;
    assert_eq!(copied, 1);
    let s = s.restart(backend).await.unwrap();
    // Beta's key no longer opens: beta cannot sign (and says nothing more);
    // alpha is unaffected.
    let res = post_form(
        &s,
        "/t/beta/oauth2/token",
        Some(&b),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let body = oauth_error(res, StatusCode::SERVICE_UNAVAILABLE, "server_error").await;
    assert!(!body["error_description"].as_str().unwrap().contains("alpha"));
    token(&s, "/t/alpha", &a, &[]).await;
}

async fn es256_keys_when_configured(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        idv_testkit::Options {
            signing_alg: Some(Alg::ES256),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c = client(&s, &s.token, "es-bot").await;
    let t = access_token(&s, &c).await;
    let jws = jose::decode(&t).unwrap();
    assert_eq!(jws.header.alg, Alg::ES256);
    let jwks = json_ok(
        s.http.get(s.url("/.well-known/jwks.json")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert_eq!(jwks["keys"][0]["crv"], "P-256");
    assert_eq!(jwks["keys"][0]["alg"], "ES256");
    assert!(active(&s, &t).await);
}

/// A DPoP proof (RFC 9449 §4.2) by `key` for POST `htu`.
fn dpop_proof(key: &KeyPair, htu: &str, iat: i64, extra: Value) -> String {
    let mut h = Map::new();
    h.insert("typ".into(), json!("dpop+jwt"));
    h.insert("jwk".into(), serde_json::to_value(key.public_key().jwk()).unwrap());
    let mut c = json!({"jti": crate::ghost_id(), "htm": "POST", "htu": htu, "iat": iat});
    if let (Value::Object(m), Value::Object(e)) = (&mut c, extra) {
        m.extend(e);
    }
    key.sign_with_header(&h, &c)
}

async fn dpop_token(s: &TestServer, c: &Client, proof: &str) -> Response {
    s.http
        .post(s.url("/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("DPoP", proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

fn server_now(s: &TestServer) -> i64 {
    s.running.state.clock.now().as_micros() / 1_000_000
}

async fn dpop_binds_tokens_per_rfc9449(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "dpop-bot").await;
    let key = KeyPair::generate(Alg::ES256);
    let htu = s.url("/oauth2/token");
    let now = server_now(&s);
    let proof = dpop_proof(&key, &htu, now, json!({}));
    let res = dpop_token(&s, &c, &proof).await;
    assert!(res.headers().contains_key("dpop-nonce"));
    let body = json_ok(res, StatusCode::OK).await;
    assert_eq!(body["token_type"], "DPoP");
    let t = body["access_token"].as_str().unwrap();
    let jkt = key.public_key().jwk().thumbprint().unwrap();
    let claims = verify_with_jwks(&s, "/.well-known/jwks.json", t).await;
    assert_eq!(claims["cnf"], json!({"jkt": jkt}));
    let i = introspect_admin(&s, "", &s.token, t).await;
    assert_eq!(i["token_type"], "DPoP");
    assert_eq!(i["cnf"]["jkt"], jkt.as_str());
    // The same proof again is a replay.
    oauth_error(
        dpop_token(&s, &c, &proof).await,
        StatusCode::BAD_REQUEST,
        "invalid_dpop_proof",
    )
    .await;
    let evil = KeyPair::generate(Alg::EdDSA);
    let mut cases: Vec<(&str, String)> = vec![
        (
            "wrong htu",
            dpop_proof(&key, &s.url("/t/default/oauth2/token"), now, json!({})),
        ),
        ("wrong htm", dpop_proof(&key, &htu, now, json!({"htm": "GET"}))),
        ("old iat", dpop_proof(&key, &htu, now - 600, json!({}))),
        ("future iat", dpop_proof(&key, &htu, now + 600, json!({}))),
        ("no jti", {
            let mut h = Map::new();
            h.insert("typ".into(), json!("dpop+jwt"));
            h.insert("jwk".into(), serde_json::to_value(key.public_key().jwk()).unwrap());
            key.sign_with_header(&h, &json!({"htm": "POST", "htu": htu, "iat": now}))
        }),
        ("signed by another key", {
            let mut h = Map::new();
            h.insert("typ".into(), json!("dpop+jwt"));
            h.insert("jwk".into(), serde_json::to_value(key.public_key().jwk()).unwrap());
            evil.sign_with_header(&h, &json!({"jti": "x1", "htm": "POST", "htu": htu, "iat": now}))
        }),
        (
            "wrong typ",
            key.sign("k", "JWT", &json!({"jti": "x2", "htm": "POST", "htu": htu, "iat": now})),
        ),
        ("garbage", "not.a.proof".into()),
    ];
    for alg in ["none", "HS256"] {
        let h = segment(&json!({"alg": alg, "typ": "dpop+jwt", "jwk": key.public_key().jwk()}));
        let p = segment(&json!({"jti": "x3", "htm": "POST", "htu": htu, "iat": now}));
        cases.push(("symmetric or none", format!("{h}.{p}.{}", B64.encode([0u8; 32]))));
    }
    let mut private = serde_json::to_value(key.public_key().jwk()).unwrap();
    private["d"] = json!(B64.encode([1u8; 32]));
    let h = segment(&json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": private}));
    let p = segment(&json!({"jti": "x4", "htm": "POST", "htu": htu, "iat": now}));
    cases.push(("private key in jwk", format!("{h}.{p}.{}", B64.encode([0u8; 64]))));
    for (name, proof) in cases {
        let res = dpop_token(&s, &c, &proof).await;
        let body = oauth_error(res, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
        assert!(!body["error_description"].as_str().unwrap().is_empty(), "{name}");
    }
    // Two DPoP headers are refused too.
    let res = s
        .http
        .post(s.url("/oauth2/token"))
        .basic_auth(&c.id, Some(&c.secret))
        .header("DPoP", dpop_proof(&key, &htu, now, json!({})))
        .header("DPoP", dpop_proof(&key, &htu, now, json!({})))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    // A tenant's token endpoint is its own `htu`.
    let (alpha, _) = tenant_token(&s, "alpha", "admin").await;
    let ca = client(&s, &alpha, "alpha-dpop").await;
    let res = s
        .http
        .post(s.url("/t/alpha/oauth2/token"))
        .basic_auth(&ca.id, Some(&ca.secret))
        .header(
            "DPoP",
            dpop_proof(&key, &s.url("/t/alpha/oauth2/token"), now, json!({})),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(res, StatusCode::OK).await["token_type"], "DPoP");
    // Refused proofs are audited like every refusal.
    assert!(all_events(&s).await.iter().any(|e| e["action"] == "token.issue"
        && e["outcome"] == "denied"
        && e["details"]["error"] == "invalid_dpop_proof"));
}

async fn dpop_server_nonces(backend: Backend) {
    let s = TestServer::start_with(
        backend,
        idv_testkit::Options {
            dpop_require_nonce: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let c = client(&s, &s.token, "nonce-bot").await;
    let key = KeyPair::generate(Alg::EdDSA);
    let htu = s.url("/oauth2/token");
    let now = server_now(&s);
    let res = dpop_token(&s, &c, &dpop_proof(&key, &htu, now, json!({}))).await;
    let nonce = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    oauth_error(res, StatusCode::BAD_REQUEST, "use_dpop_nonce").await;
    let res = dpop_token(&s, &c, &dpop_proof(&key, &htu, now, json!({"nonce": "made-up"}))).await;
    oauth_error(res, StatusCode::BAD_REQUEST, "use_dpop_nonce").await;
    let res = dpop_token(&s, &c, &dpop_proof(&key, &htu, now, json!({"nonce": nonce}))).await;
    assert_eq!(json_ok(res, StatusCode::OK).await["token_type"], "DPoP");
}

async fn dpop_replay_is_caught_across_nodes(backend: Backend) {
    if backend == Backend::Sqlite {
        eprintln!("not applicable: one SQLite file is served by one node");
        return;
    }
    let s = TestServer::start(backend).await;
    let node2 = s.second_node().await.unwrap();
    let c = client(&s, &s.token, "two-node-bot").await;
    let key = KeyPair::generate(Alg::ES256);
    // Both nodes answer for the same issuer when given the same public URL;
    // here each has its own address, so the proof names node 2's endpoint.
    let proof = dpop_proof(&key, &node2.url("/oauth2/token"), server_now(&s), json!({}));
    let first = dpop_token(&node2, &c, &proof).await;
    assert_eq!(json_ok(first, StatusCode::OK).await["token_type"], "DPoP");
    let again = dpop_token(&node2, &c, &proof).await;
    oauth_error(again, StatusCode::BAD_REQUEST, "invalid_dpop_proof").await;
    // A token issued on node 2 is revoked on node 1 and inactive on both at once.
    let t = token(&node2, "", &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t_claims = jose::decode(&t).unwrap().claims;
    assert_eq!(t_claims["iss"], node2.base.as_str());
    let res = post_form(&node2, "/oauth2/revoke", Some(&c), &[("token", t.as_str())]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(introspect_admin(&node2, "", &node2.token, &t).await["active"], false);
    // A credential revoked on node 1 stops working on node 2.
    let creds = json_ok(
        s.req(Method::GET, &format!("/v1/agents/{}/credentials", c.id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let cred = creds["items"][0]["id"].as_str().unwrap();
    json_ok(
        s.req(Method::DELETE, &format!("/v1/credentials/{cred}"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    // Node 2 serves the credential from its cache until node 1's commit
    // notification (LISTEN/NOTIFY) reaches it: milliseconds, within a second.
    let started = std::time::Instant::now();
    crate::eventually_within("node 2 refuses the revoked credential", 1, || {
        let (node2, c) = (&node2, &c);
        async move {
            let res = post_form(node2, "/oauth2/token", Some(c), &[("grant_type", "client_credentials")]).await;
            res.status() == StatusCode::UNAUTHORIZED
        }
    })
    .await;
    eprintln!("node 2 refused the revoked credential after {:?}", started.elapsed());
}

/// An active agent with a client secret.
#[derive(Clone)]
pub(crate) struct Client {
    pub(crate) id: String,
    pub(crate) secret: String,
}

fn grants_body(name: &str) -> Value {
    json!({
        "name": name, "owner": "alice@bank.example", "purpose": "oauth tests", "environment": "prod",
        "allowed_scopes": ["ledger:read", "ledger:write"],
        "allowed_resources": ["https://api.bank.example/ledger"],
        "authorization_details_types": ["task"],
    })
}

/// Registers and activates an agent with `token`, and gives it a client secret.
pub(crate) async fn client(s: &TestServer, token: &str, name: &str) -> Client {
    let a = json_ok(
        s.req_as(token, Method::POST, "/v1/agents")
            .json(&grants_body(name))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        transition(s, token, &id, "activate", "test").await.status(),
        StatusCode::OK
    );
    let c = credential(s, token, &id, json!({"type": "client_secret"})).await;
    assert_eq!(c["client_id"], id);
    Client {
        id,
        secret: c["client_secret"].as_str().unwrap().to_owned(),
    }
}

async fn credential(s: &TestServer, token: &str, agent: &str, body: Value) -> Value {
    json_ok(
        s.req_as(token, Method::POST, &format!("/v1/agents/{agent}/credentials"))
            .json(&body)
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await
}

/// POSTs a form to `path` with HTTP Basic client authentication.
async fn post_form(s: &TestServer, path: &str, c: Option<&Client>, form: &[(&str, &str)]) -> Response {
    let mut req = s.http.post(s.url(path)).form(form);
    if let Some(c) = c {
        req = req.basic_auth(&c.id, Some(&c.secret));
    }
    req.send().await.unwrap()
}

async fn token(s: &TestServer, prefix: &str, c: &Client, form: &[(&str, &str)]) -> Value {
    let mut f = vec![("grant_type", "client_credentials")];
    f.extend_from_slice(form);
    json_ok(
        post_form(s, &format!("{prefix}/oauth2/token"), Some(c), &f).await,
        StatusCode::OK,
    )
    .await
}

pub(crate) async fn access_token(s: &TestServer, c: &Client) -> String {
    token(s, "", c, &[]).await["access_token"].as_str().unwrap().to_owned()
}

/// Asserts an RFC 6749 §5.2 error; returns the body.
async fn oauth_error(res: Response, status: StatusCode, code: &str) -> Value {
    let got = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(!body["error_description"].as_str().unwrap().is_empty());
    assert_eq!(headers["cache-control"], "no-store");
    if status == StatusCode::UNAUTHORIZED {
        assert!(headers.contains_key("www-authenticate"));
    }
    body
}

/// Introspects with the bootstrap admin token (default tenant).
async fn introspect_admin(s: &TestServer, prefix: &str, admin: &str, t: &str) -> Value {
    json_ok(
        s.http
            .post(s.url(&format!("{prefix}/oauth2/introspect")))
            .bearer_auth(admin)
            .form(&[("token", t)])
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

pub(crate) async fn active(s: &TestServer, t: &str) -> bool {
    introspect_admin(s, "", &s.token, t).await["active"] == json!(true)
}

/// Verifies `t` with the JWKS the server publishes at `jwks_path`.
pub(crate) async fn verify_with_jwks(s: &TestServer, jwks_path: &str, t: &str) -> Map<String, Value> {
    let jwks = json_ok(s.http.get(s.url(jwks_path)).send().await.unwrap(), StatusCode::OK).await;
    let jws = jose::decode(t).unwrap();
    let kid = jws.header.kid.clone().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("kid {kid} not in {jwks}"));
    let key = PublicKey::from_jwk(&serde_json::from_value(jwk.clone()).unwrap()).unwrap();
    jws.verify(&key).unwrap();
    assert_eq!(jws.header.typ.as_deref(), Some("at+jwt"));
    jws.claims
}

fn segment(v: &Value) -> String {
    B64.encode(serde_json::to_vec(v).unwrap())
}

/// The tenant's real signing key, from the running server (to forge tokens
/// that differ from genuine ones only where a test wants them to).
async fn real_key(s: &TestServer, tenant: &str) -> (String, KeyPair) {
    let state = &s.running.state;
    let t = state.store.tenant_by_name(tenant).await.unwrap().unwrap();
    let ring = idv_server::app::keys::signing_ring(state, t.id).await.unwrap();
    let (kid, key) = ring.signer(state.clock.now()).unwrap();
    (kid.to_owned(), key.clone())
}

async fn client_credentials_issues_rfc9068_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "tok-bot").await;
    let r = token(&s, "", &c, &[("scope", "ledger:read")]).await;
    assert_eq!(r["token_type"], "Bearer");
    assert_eq!(r["expires_in"], 300);
    assert_eq!(r["scope"], "ledger:read");
    let t = r["access_token"].as_str().unwrap();
    let claims = verify_with_jwks(&s, "/.well-known/jwks.json", t).await;
    assert_eq!(jose::decode(t).unwrap().header.alg, Alg::EdDSA, "EdDSA by default");
    assert_eq!(claims["iss"], s.base.as_str());
    assert_eq!(claims["sub"], c.id.as_str());
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(
        claims["aud"],
        s.base.as_str(),
        "no resource: the issuer is the audience"
    );
    assert_eq!(claims["scope"], "ledger:read");
    assert_eq!(claims["owner"], "alice@bank.example");
    assert_eq!(claims["environment"], "prod");
    assert!(
        claims["spiffe_id"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/agent/{}", c.id))
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);
    // No scope asked: every granted scope.
    let all = token(&s, "", &c, &[]).await;
    assert_eq!(all["scope"], "ledger:read ledger:write");
    // RFC 8707 resource becomes aud; RFC 9396 details are carried.
    let details =
        r#"[{"type":"task","task_id":"T-7","actions":["reconcile"],"locations":["https://api.bank.example/ledger"]}]"#;
    let r = token(
        &s,
        "",
        &c,
        &[
            ("resource", "https://api.bank.example/ledger"),
            ("authorization_details", details),
        ],
    )
    .await;
    assert_eq!(r["authorization_details"][0]["task_id"], "T-7");
    let claims = verify_with_jwks(&s, "/.well-known/jwks.json", r["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["aud"], "https://api.bank.example/ledger");
    assert_eq!(claims["authorization_details"][0]["actions"], json!(["reconcile"]));
    // client_secret_post works too.
    let res = s
        .http
        .post(s.url("/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", c.id.as_str()),
            ("client_secret", c.secret.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    json_ok(res, StatusCode::OK).await;
    // Every issuance is audited with its jti; no secret or token appears in the log.
    let events = all_events(&s).await;
    let issued: Vec<&Value> = events.iter().filter(|e| e["action"] == "token.issue").collect();
    assert_eq!(issued.len(), 4);
    assert!(
        issued
            .iter()
            .all(|e| e["outcome"] == "success" && e["actor"]["kind"] == "agent")
    );
    assert_eq!(issued[0]["details"]["jti"], claims_jti(t));
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(&c.secret));
    assert!(!text.contains(t));
    assert!(events.iter().any(|e| e["action"] == "signing_key.create"));
    assert!(events.iter().any(|e| e["action"] == "credential.create"));
}

fn claims_jti(t: &str) -> Value {
    jose::decode(t).unwrap().claims["jti"].clone()
}

async fn token_errors_follow_rfc6749_and_are_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "err-bot").await;
    let wrong = Client {
        id: c.id.clone(),
        secret: idv_core::credential::CLIENT_SECRET.generate(),
    };
    let cc = ("grant_type", "client_credentials");
    let cases: Vec<(Response, StatusCode, &str)> = vec![
        (
            post_form(&s, "/oauth2/token", Some(&wrong), &[cc]).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            post_form(&s, "/oauth2/token", None, &[cc]).await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
        (
            post_form(&s, "/oauth2/token", Some(&c), &[("grant_type", "password")]).await,
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            post_form(&s, "/oauth2/token", Some(&c), &[]).await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_form(&s, "/oauth2/token", Some(&c), &[cc, ("scope", "ledger:read admin")]).await,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            post_form(&s, "/oauth2/token", Some(&c), &[cc, ("scope", "a  b")]).await,
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            post_form(
                &s,
                "/oauth2/token",
                Some(&c),
                &[cc, ("resource", "https://evil.example")],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            post_form(
                &s,
                "/oauth2/token",
                Some(&c),
                &[cc, ("authorization_details", r#"[{"type":"payment"}]"#)],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_authorization_details",
        ),
        (
            post_form(
                &s,
                "/oauth2/token",
                Some(&c),
                &[cc, ("authorization_details", "not json")],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_authorization_details",
        ),
        (
            post_form(
                &s,
                "/oauth2/token",
                Some(&c),
                &[cc, ("scope", "ledger:read"), ("scope", "ledger:write")],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            // Two authentication methods at once (RFC 6749 §2.3).
            post_form(
                &s,
                "/oauth2/token",
                Some(&c),
                &[cc, ("client_secret", c.secret.as_str())],
            )
            .await,
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            s.http
                .post(s.url("/oauth2/token"))
                .basic_auth(&c.id, Some(&c.secret))
                .json(&json!({"grant_type": "client_credentials"}))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            post_form(
                &s,
                "/oauth2/token",
                Some(&Client {
                    id: "not-a-uuid".into(),
                    secret: c.secret.clone(),
                }),
                &[cc],
            )
            .await,
            StatusCode::UNAUTHORIZED,
            "invalid_client",
        ),
    ];
    let n = cases.len();
    for (res, status, code) in cases {
        oauth_error(res, status, code).await;
    }
    // A typo in the secret is refused by its checksum, before any lookup.
    let mut typo = c.secret.clone().into_bytes();
    typo[10] = if typo[10] == b'a' { b'b' } else { b'a' };
    let typo = Client {
        id: c.id.clone(),
        secret: String::from_utf8(typo).unwrap(),
    };
    oauth_error(
        post_form(&s, "/oauth2/token", Some(&typo), &[cc]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    // Every refusal is on the record, denied, malformed requests included.
    let denied = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "token.issue" && e["outcome"] == "denied")
        .count();
    assert_eq!(denied, n + 1, "refused issuances audited");
}

async fn forged_and_misused_tokens_are_never_active(backend: Backend) {
    let s = start_manual(backend).await;
    let c = client(&s, &s.token, "sec-bot").await;
    let genuine = access_token(&s, &c).await;
    assert!(active(&s, &genuine).await);
    let jws = jose::decode(&genuine).unwrap();
    let claims = Value::Object(jws.claims.clone());
    let kid = jws.header.kid.clone().unwrap();
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut forged: Vec<(String, String)> = Vec::new();
    // alg none, in every case.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = segment(&json!({"alg": alg, "typ": "at+jwt", "kid": kid}));
        forged.push((format!("alg {alg}"), format!("{h}.{}.", parts[1])));
        forged.push((
            format!("alg {alg}, signature kept"),
            format!("{h}.{}.{}", parts[1], parts[2]),
        ));
    }
    // HS256 keyed with our public key (the JWK's `x`, the JWK text, the PEM-less bytes).
    let jwks = json_ok(
        s.http.get(s.url("/.well-known/jwks.json")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let jwk = jwks["keys"][0].clone();
    let x = B64.decode(jwk["x"].as_str().unwrap()).unwrap();
    for (name, secret) in [
        ("HS256 with raw public key", x.clone()),
        ("HS256 with JWK text", serde_json::to_vec(&jwk).unwrap()),
        ("HS256 with x text", jwk["x"].as_str().unwrap().as_bytes().to_vec()),
    ] {
        let h = segment(&json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}));
        let input = format!("{h}.{}", parts[1]);
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(input.as_bytes());
        forged.push((
            name.into(),
            format!("{input}.{}", B64.encode(mac.finalize().into_bytes())),
        ));
    }
    // An attacker's key, announced in the header in every way a verifier
    // might follow: unknown kid, injected `jwk`, `jku`, `x5u`.
    let evil = KeyPair::generate(Alg::EdDSA);
    let evil_jwk = serde_json::to_value(evil.public_key().jwk()).unwrap();
    for (name, header) in [
        ("unknown kid", json!({"typ": "at+jwt", "kid": "attacker"})),
        ("injected jwk", json!({"typ": "at+jwt", "kid": kid, "jwk": evil_jwk})),
        (
            "jku",
            json!({"typ": "at+jwt", "kid": kid, "jku": "http://127.0.0.1:9/jwks.json"}),
        ),
        (
            "x5u",
            json!({"typ": "at+jwt", "kid": kid, "x5u": "http://127.0.0.1:9/cert.pem"}),
        ),
        ("no kid", json!({"typ": "at+jwt"})),
    ] {
        let h = header.as_object().unwrap().clone();
        forged.push((name.into(), evil.sign_with_header(&h, &claims)));
    }
    // Tampered payload with the genuine signature.
    let mut widened = claims.clone();
    widened["scope"] = json!("ledger:read ledger:write admin");
    forged.push((
        "tampered payload".into(),
        format!("{}.{}.{}", parts[0], segment(&widened), parts[2]),
    ));
    // Signed with our real key but wrong where it matters.
    let (real_kid, real) = real_key(&s, "default").await;
    let now = claims["iat"].as_i64().unwrap();
    let variants: Vec<(&str, &str, Value)> = vec![
        ("wrong typ", "JWT", claims.clone()),
        ("wrong typ (dpop)", "dpop+jwt", claims.clone()),
        (
            "wrong iss",
            "at+jwt",
            with(&claims, "iss", json!("https://evil.example")),
        ),
        ("expired", "at+jwt", with(&claims, "exp", json!(now - 3600))),
        ("nbf in the future", "at+jwt", with(&claims, "nbf", json!(now + 3600))),
        ("iat in the future", "at+jwt", with(&claims, "iat", json!(now + 3600))),
        ("no jti", "at+jwt", without(&claims, "jti")),
        ("no aud", "at+jwt", without(&claims, "aud")),
        ("no exp", "at+jwt", without(&claims, "exp")),
    ];
    for (name, typ, c2) in variants {
        forged.push((name.into(), real.sign(&real_kid, typ, &c2)));
    }
    // Our admin token, client secret and garbage are not access tokens.
    forged.push(("admin token".into(), s.token.clone()));
    forged.push(("client secret".into(), c.secret.clone()));
    forged.push(("garbage".into(), "a.b.c".into()));
    forged.push(("empty segments".into(), "..".into()));
    for (name, t) in &forged {
        let r = introspect_admin(&s, "", &s.token, t).await;
        assert_eq!(r, json!({"active": false}), "{name}");
    }
    // A token of tenant A is not active at tenant B, and A's client cannot
    // authenticate at B.
    let (beta_admin, _) = tenant_token(&s, "beta", "admin").await;
    let r = introspect_admin(&s, "/t/beta", &beta_admin, &genuine).await;
    assert_eq!(r, json!({"active": false}));
    oauth_error(
        post_form(
            &s,
            "/t/beta/oauth2/token",
            Some(&c),
            &[("grant_type", "client_credentials")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    // Time passes: the genuine token is dead from its `exp` on, with no
    // leeway: we judge our own tokens by our own clock (RFC 7519 §4.1.4).
    assert!(active(&s, &genuine).await);
    let exp = claims["exp"].as_i64().unwrap();
    let clock = s.clock.as_ref().unwrap();
    clock.advance_secs(exp - 1 - server_now(&s));
    assert!(active(&s, &genuine).await, "alive in its last second");
    clock.advance_secs(1);
    assert_eq!(server_now(&s), exp);
    assert!(!active(&s, &genuine).await, "inactive at `exp`");
}

fn with(v: &Value, k: &str, x: Value) -> Value {
    let mut v = v.clone();
    v[k] = x;
    v
}

fn without(v: &Value, k: &str) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove(k);
    v
}

async fn suspended_and_retired_agents_lose_access_at_once(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "life-bot").await;
    let t = access_token(&s, &c).await;
    assert!(active(&s, &t).await);
    assert_eq!(
        transition(&s, &s.token, &c.id, "suspend", "incident").await.status(),
        StatusCode::OK
    );
    assert!(!active(&s, &t).await, "tokens of a suspended agent are inactive");
    oauth_error(
        post_form(&s, "/oauth2/token", Some(&c), &[("grant_type", "client_credentials")]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
    assert_eq!(
        transition(&s, &s.token, &c.id, "resume", "cleared").await.status(),
        StatusCode::OK
    );
    assert!(!active(&s, &t).await, "a resumption revives no token");
    access_token(&s, &c).await;
    assert_eq!(
        transition(&s, &s.token, &c.id, "retire", "done").await.status(),
        StatusCode::OK
    );
    assert!(!active(&s, &t).await);
    let creds = json_ok(
        s.req(Method::GET, &format!("/v1/agents/{}/credentials", c.id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(
        creds["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "revoked")
    );
    let res = s
        .req(Method::POST, &format!("/v1/agents/{}/credentials", c.id))
        .json(&json!({"type": "client_secret"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT).await;
    // A provisioning agent cannot authenticate either.
    let a = json_ok(
        s.req(Method::POST, "/v1/agents")
            .json(&grants_body("new-bot"))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap();
    let cred = credential(&s, &s.token, id, json!({"type": "client_secret"})).await;
    let p = Client {
        id: id.to_owned(),
        secret: cred["client_secret"].as_str().unwrap().to_owned(),
    };
    oauth_error(
        post_form(&s, "/oauth2/token", Some(&p), &[("grant_type", "client_credentials")]).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

async fn revocation_follows_rfc7009(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "rev-bot").await;
    let other = client(&s, &s.token, "rev-other").await;
    let t = access_token(&s, &c).await;
    // Another client may not revoke it.
    oauth_error(
        post_form(&s, "/oauth2/revoke", Some(&other), &[("token", t.as_str())]).await,
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
    )
    .await;
    assert!(active(&s, &t).await);
    // Unknown tokens are not an error (RFC 7009 §2.2).
    let res = post_form(&s, "/oauth2/revoke", Some(&c), &[("token", "nonsense")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = post_form(
        &s,
        "/oauth2/revoke",
        Some(&c),
        &[("token", t.as_str()), ("token_type_hint", "access_token")],
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!active(&s, &t).await, "inactive at once after revocation");
    // Revoking twice is fine.
    assert_eq!(
        post_form(&s, "/oauth2/revoke", Some(&c), &[("token", t.as_str())])
            .await
            .status(),
        StatusCode::OK
    );
    // An auditor may introspect but not revoke; an operator may revoke any token of the tenant.
    let t2 = access_token(&s, &c).await;
    let (auditor, _) = crate::named_token(&s, "default", "auditor", "aud").await;
    let res = s
        .http
        .post(s.url("/oauth2/revoke"))
        .bearer_auth(&auditor)
        .form(&[("token", t2.as_str())])
        .send()
        .await
        .unwrap();
    oauth_error(res, StatusCode::BAD_REQUEST, "unauthorized_client").await;
    assert_eq!(introspect_admin(&s, "", &auditor, &t2).await["active"], true);
    let (operator, _) = crate::named_token(&s, "default", "operator", "op").await;
    let res = s
        .http
        .post(s.url("/oauth2/revoke"))
        .bearer_auth(&operator)
        .form(&[("token", t2.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!active(&s, &t2).await);
    // Introspection needs an authenticated caller.
    let res = post_form(&s, "/oauth2/introspect", None, &[("token", t2.as_str())]).await;
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    let events = all_events(&s).await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e["action"] == "token.revoke" && e["outcome"] == "success")
            .count(),
        3
    );
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "token.revoke" && e["outcome"] == "denied")
    );
}

async fn api_keys_are_scoped_checked_and_recorded(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "key-bot").await;
    let k = credential(
        &s,
        &s.token,
        &c.id,
        json!({"type": "api_key", "scopes": ["ledger:read"], "ttl": "1d"}),
    )
    .await;
    let key = k["api_key"].as_str().unwrap();
    assert!(key.starts_with("idvak_"));
    assert!(k.get("client_secret").is_none());
    assert_eq!(k["credential"]["hint"], format!("{}…", &key[..10]));
    let r = json_ok(
        post_form(&s, "/oauth2/introspect", Some(&c), &[("token", key)]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["active"], true);
    assert_eq!(r["token_type"], "api_key");
    assert_eq!(r["scope"], "ledger:read");
    assert_eq!(r["sub"], c.id.as_str());
    assert!(r["exp"].is_i64());
    // Use is recorded: last-used time and an audit event.
    let cred = json_ok(
        s.req(
            Method::GET,
            &format!("/v1/credentials/{}", k["credential"]["id"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert!(cred["last_used_at"].is_string());
    assert!(all_events(&s).await.iter().any(|e| e["action"] == "api_key.use"));
    // One-character typo: refused by the checksum before any lookup.
    let mut typo = key.as_bytes().to_vec();
    typo[12] = if typo[12] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    let r = json_ok(
        post_form(&s, "/oauth2/introspect", Some(&c), &[("token", typo.as_str())]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r, json!({"active": false}));
    // Scopes beyond the agent's grants are refused.
    let res = s
        .req(Method::POST, &format!("/v1/agents/{}/credentials", c.id))
        .json(&json!({"type": "api_key", "scopes": ["payments:send"]}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    for bad in [
        json!({"type": "password"}),
        json!({"type": "client_secret", "scopes": ["ledger:read"]}),
        json!({"type": "api_key", "ttl": 0}),
    ] {
        let res = s
            .req(Method::POST, &format!("/v1/agents/{}/credentials", c.id))
            .json(&bad)
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // Revoked through RFC 7009 by its own agent.
    assert_eq!(
        post_form(&s, "/oauth2/revoke", Some(&c), &[("token", key)])
            .await
            .status(),
        StatusCode::OK
    );
    let r = json_ok(
        post_form(&s, "/oauth2/introspect", Some(&c), &[("token", key)]).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r, json!({"active": false}));
    // The key never appears in the audit log.
    assert!(!serde_json::to_string(&all_events(&s).await).unwrap().contains(key));
}

/// RFC 9864 §2.2: oauth4webapi and openid-client sign client assertions and
/// DPoP proofs with `"alg": "Ed25519"`; both are accepted for Ed25519 keys
/// and the metadata says so.
async fn ed25519_fully_specified_algorithm_is_accepted(backend: Backend) {
    let s = TestServer::start(backend).await;
    let meta = json_ok(
        s.http
            .get(s.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    for k in [
        "token_endpoint_auth_signing_alg_values_supported",
        "dpop_signing_alg_values_supported",
    ] {
        assert_eq!(meta[k], json!(["EdDSA", "Ed25519", "ES256"]), "{k}");
    }
    let c = client(&s, &s.token, "ed25519-bot").await;
    let pair = KeyPair::generate(Alg::Ed25519);
    // The JWK may name the fully-specified algorithm too.
    let jwk = serde_json::to_value(pair.public_jwk("ext-1")).unwrap();
    assert_eq!(jwk["alg"], "Ed25519");
    credential(&s, &s.token, &c.id, json!({"type": "private_key_jwt", "jwk": jwk})).await;
    let now = server_now(&s);
    let assertion = pair.sign(
        "ext-1",
        "JWT",
        &json!({"iss": c.id, "sub": c.id, "aud": s.url("/oauth2/token"), "exp": now + 60, "iat": now,
                "jti": crate::ghost_id()}),
    );
    assert_eq!(jose::decode(&assertion).unwrap().header.alg, Alg::Ed25519);
    let dpop_key = KeyPair::generate(Alg::Ed25519);
    let proof = dpop_proof(&dpop_key, &s.url("/oauth2/token"), now, json!({}));
    assert_eq!(jose::decode(&proof).unwrap().header.alg, Alg::Ed25519);
    let res = s
        .http
        .post(s.url("/oauth2/token"))
        .header("DPoP", &proof)
        .form(&[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let body = json_ok(res, StatusCode::OK).await;
    assert_eq!(body["token_type"], "DPoP");
    let t = body["access_token"].as_str().unwrap();
    let claims = verify_with_jwks(&s, "/.well-known/jwks.json", t).await;
    assert_eq!(claims["cnf"]["jkt"], dpop_key.public_key().jwk().thumbprint().unwrap());
    assert_eq!(claims["client_id"], c.id.as_str());
}

/// Suspension is for investigations: the tokens issued before it stay dead
/// after the agent is resumed (an attacker may hold them), and so do those
/// issued before a compromise; tokens issued afterwards are good. Every
/// node agrees once the change's notification reaches it.
async fn a_resumption_revives_no_token(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    // PostgreSQL: a second node whose caches hold the agent as it was.
    let node2 = match backend {
        Backend::Postgres => Some(s.second_node().await.unwrap()),
        Backend::Sqlite => None,
    };
    let nodes: Vec<&TestServer> = std::iter::once(&s).chain(node2.as_ref()).collect();
    let c = client(&s, &s.token, "resumed-bot").await;
    let mut before = Vec::new();
    for n in &nodes {
        let t = token(n, "", &c, &[]).await["access_token"].as_str().unwrap().to_owned();
        assert_eq!(introspect_admin(n, "", &n.token, &t).await["active"], true);
        before.push((*n, t));
    }
    clock.advance_secs(1);
    for verb in ["suspend", "resume"] {
        assert_eq!(
            transition(&s, &s.token, &c.id, verb, "investigation").await.status(),
            StatusCode::OK
        );
    }
    for (n, t) in &before {
        crate::eventually_within("the node sees the cut", 1, || async {
            introspect_admin(n, "", &n.token, t).await == json!({"active": false})
        })
        .await;
    }
    clock.advance_secs(1);
    let mut after = Vec::new();
    for n in &nodes {
        let t = token(n, "", &c, &[]).await["access_token"].as_str().unwrap().to_owned();
        assert_eq!(
            introspect_admin(n, "", &n.token, &t).await["active"],
            true,
            "issued after the resumption"
        );
        after.push((*n, t));
    }
    let agent = json_ok(
        s.req(Method::GET, &format!("/v1/agents/{}", c.id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(agent["status"], "active");
    clock.advance_secs(1);
    json_ok(
        s.req(Method::POST, &format!("/v1/agents/{}/compromised", c.id))
            .json(&json!({"reason": "secret in a public repository"}))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    for (n, t) in &after {
        crate::eventually_within("the node sees the compromise", 1, || async {
            introspect_admin(n, "", &n.token, t).await == json!({"active": false})
        })
        .await;
    }
}

/// RFC 7662 §4: only the token's own client, an agent it is addressed to, an
/// agent granted `introspect`, or an admin token that may read the registry
/// learn anything; everyone else is told `{"active": false}`.
async fn introspection_is_for_the_tokens_parties_only(backend: Backend) {
    let s = TestServer::start(backend).await;
    let owner = client(&s, &s.token, "intro-owner").await;
    let stranger = client(&s, &s.token, "intro-stranger").await;
    let rs = client(&s, &s.token, "intro-rs").await;
    let checker = client(&s, &s.token, "intro-checker").await;
    let spiffe_of = |t: &str| {
        jose::decode(t).unwrap().claims["spiffe_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let rs_spiffe = spiffe_of(&access_token(&s, &rs).await);
    for (who, field, value) in [
        (
            &owner,
            "allowed_resources",
            json!(["https://api.bank.example/ledger", rs_spiffe]),
        ),
        (&checker, "allowed_scopes", json!(["ledger:read", "introspect"])),
    ] {
        json_ok(
            s.req(Method::PATCH, &format!("/v1/agents/{}", who.id))
                .json(&json!({ field: value }))
                .send()
                .await
                .unwrap(),
            StatusCode::OK,
        )
        .await;
    }
    let t = access_token(&s, &owner).await;
    let for_rs = token(&s, "", &owner, &[("resource", rs_spiffe.as_str())]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = credential(
        &s,
        &s.token,
        &owner.id,
        json!({"type": "api_key", "scopes": ["ledger:read"]}),
    )
    .await;
    let key = key["api_key"].as_str().unwrap().to_owned();
    let ask = |who: &Client, token: &str| {
        let (s, who, token) = (&s, who.clone(), token.to_owned());
        async move {
            json_ok(
                post_form(s, "/oauth2/introspect", Some(&who), &[("token", token.as_str())]).await,
                StatusCode::OK,
            )
            .await
        }
    };
    // The token's own client and an agent granted `introspect`.
    for who in [&owner, &checker] {
        for tok in [&t, &for_rs, &key] {
            assert_eq!(ask(who, tok).await["active"], true, "{}", who.id);
        }
    }
    // An agent the token is addressed to (its SPIFFE id in `aud`), for that token only.
    assert_eq!(ask(&rs, &for_rs).await["active"], true);
    // Anyone else learns nothing, not even that the token exists.
    for (who, tok) in [
        (&stranger, &t),
        (&stranger, &for_rs),
        (&stranger, &key),
        (&rs, &t),
        (&rs, &key),
    ] {
        assert_eq!(ask(who, tok).await, json!({"active": false}), "{}", who.id);
    }
    // The refused look at the API key did not count as a use.
    let creds = json_ok(
        s.req(Method::GET, &format!("/v1/agents/{}/credentials", owner.id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let uses = all_events(&s)
        .await
        .into_iter()
        .filter(|e| e["action"] == "api_key.use")
        .count();
    assert_eq!(uses, 2, "{creds}");
    // Admin tokens: roles that read the registry may; a PEP asks for decisions only.
    for (role, expected) in [
        ("auditor", json!(true)),
        ("operator", json!(true)),
        ("pep", json!(null)),
    ] {
        let (admin, _) = crate::named_token(&s, "default", role, &format!("intro-{role}")).await;
        let i = introspect_admin(&s, "", &admin, &t).await;
        assert_eq!(i["active"], expected.as_bool().unwrap_or(false), "{role}: {i}");
        if expected.is_null() {
            assert_eq!(i, json!({"active": false}));
        }
    }
}

async fn private_key_jwt_assertions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let c = client(&s, &s.token, "pkj-bot").await;
    let pair = KeyPair::generate(Alg::ES256);
    let jwk = serde_json::to_value(pair.public_key().jwk()).unwrap();
    let cred = credential(&s, &s.token, &c.id, json!({"type": "private_key_jwt", "jwk": jwk})).await;
    assert!(cred.get("client_secret").is_none());
    assert_eq!(
        cred["credential"]["hint"],
        pair.public_key().jwk().thumbprint().unwrap()
    );
    let now = s.running.state.clock.now().as_micros() / 1_000_000;
    let assertion = |aud: &str, exp: i64, jti: &str| {
        pair.sign(
            "k",
            "JWT",
            &json!({"iss": c.id, "sub": c.id, "aud": aud, "exp": exp, "iat": now, "jti": jti}),
        )
    };
    let endpoint = s.url("/oauth2/token");
    let ask = |a: String| {
        let s = &s;
        async move {
            s.http
                .post(s.url("/oauth2/token"))
                .form(&[
                    ("grant_type", "client_credentials"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", a.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let good = assertion(&endpoint, now + 60, "j-1");
    json_ok(ask(good.clone()).await, StatusCode::OK).await;
    // Replay of the same assertion.
    oauth_error(ask(good).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    // The issuer as audience is accepted too.
    json_ok(ask(assertion(&s.base, now + 60, "j-2")).await, StatusCode::OK).await;
    for bad in [
        assertion("https://elsewhere.example/token", now + 60, "j-3"),
        assertion(&endpoint, now - 120, "j-4"),
        assertion(&endpoint, now + 3600, "j-5"),
        KeyPair::generate(Alg::ES256).sign(
            "k",
            "JWT",
            &json!({"iss": c.id, "sub": c.id, "aud": endpoint, "exp": now + 60, "jti": "j-6"}),
        ),
    ] {
        oauth_error(ask(bad).await, StatusCode::UNAUTHORIZED, "invalid_client").await;
    }
    // Private keys are never accepted as credentials.
    let mut private = jwk.clone();
    private["d"] = json!("AAAA");
    let res = s
        .req(Method::POST, &format!("/v1/agents/{}/credentials", c.id))
        .json(&json!({"type": "private_key_jwt", "jwk": private}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    let res = s
        .req(Method::POST, &format!("/v1/agents/{}/credentials", c.id))
        .json(&json!({"type": "private_key_jwt"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn credentials_stay_in_their_tenant(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (alpha, _) = tenant_token(&s, "alpha", "admin").await;
    let c = client(&s, &alpha, "alpha-bot").await;
    let cred_id = json_ok(
        s.req_as(&alpha, Method::GET, &format!("/v1/agents/{}/credentials", c.id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (beta, _) = tenant_token(&s, "beta", "admin").await;
    let cases = [
        s.req_as(&beta, Method::GET, &format!("/v1/agents/{}/credentials", c.id)),
        s.req_as(&beta, Method::POST, &format!("/v1/agents/{}/credentials", c.id))
            .json(&json!({"type": "client_secret"})),
        s.req_as(&beta, Method::GET, &format!("/v1/credentials/{cred_id}")),
        s.req_as(&beta, Method::DELETE, &format!("/v1/credentials/{cred_id}")),
    ];
    for req in cases {
        problem(req.send().await.unwrap(), StatusCode::NOT_FOUND).await;
    }
    // Beta's admin cannot revoke alpha's tokens at alpha's endpoint either.
    let t = token(&s, "/t/alpha", &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = s
        .http
        .post(s.url("/t/alpha/oauth2/revoke"))
        .bearer_auth(&beta)
        .form(&[("token", t.as_str())])
        .send()
        .await
        .unwrap();
    oauth_error(res, StatusCode::UNAUTHORIZED, "invalid_client").await;
    assert_eq!(introspect_admin(&s, "/t/alpha", &alpha, &t).await["active"], true);
    // The credential still works; alpha's admin can revoke it.
    let res = s
        .req_as(&alpha, Method::DELETE, &format!("/v1/credentials/{cred_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(res, StatusCode::OK).await["status"], "revoked");
    let res = s
        .req_as(&alpha, Method::DELETE, &format!("/v1/credentials/{cred_id}"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT).await;
    oauth_error(
        post_form(
            &s,
            "/t/alpha/oauth2/token",
            Some(&c),
            &[("grant_type", "client_credentials")],
        )
        .await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    )
    .await;
}

async fn each_tenant_is_its_own_issuer(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (alpha, _) = tenant_token(&s, "alpha", "admin").await;
    let root = json_ok(
        s.http
            .get(s.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(root["issuer"], s.base.as_str());
    assert_eq!(root["token_endpoint"], s.url("/oauth2/token"));
    assert_eq!(
        root["grant_types_supported"],
        json!(["client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"])
    );
    let meta = json_ok(
        s.http
            .get(s.url("/.well-known/oauth-authorization-server/t/alpha"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let iss = format!("{}/t/alpha", s.base);
    assert_eq!(meta["issuer"], iss.as_str());
    assert_eq!(meta["jwks_uri"], format!("{iss}/.well-known/jwks.json"));
    assert_eq!(meta["token_endpoint"], format!("{iss}/oauth2/token"));
    let c = client(&s, &alpha, "iss-bot").await;
    let t = token(&s, "/t/alpha", &c, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims = verify_with_jwks(&s, "/t/alpha/.well-known/jwks.json", &t).await;
    assert_eq!(claims["iss"], iss.as_str());
    assert_eq!(claims["tenant"], "alpha");
    assert!(claims["spiffe_id"].as_str().unwrap().contains("/t/alpha/agent/"));
    // Alpha's key is not in the default tenant's JWKS.
    let root_jwks = json_ok(
        s.http.get(s.url("/.well-known/jwks.json")).send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    let kid = jose::decode(&t).unwrap().header.kid.unwrap();
    assert!(
        root_jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kid"] != kid.as_str())
    );
    // The default tenant answers at both its issuer URLs.
    let d = client(&s, &s.token, "default-bot").await;
    let via_tenant_path = token(&s, "/t/default", &d, &[]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        jose::decode(&via_tenant_path).unwrap().claims["iss"],
        format!("{}/t/default", s.base)
    );
    assert!(active(&s, &via_tenant_path).await);
    let res = s
        .http
        .get(s.url("/.well-known/oauth-authorization-server/t/nope"))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    oauth_error(
        post_form(
            &s,
            "/t/nope/oauth2/token",
            Some(&c),
            &[("grant_type", "client_credentials")],
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_request",
    )
    .await;
}
