//! Delegation by RFC 8693 token exchange, over real HTTP: agent to agent,
//! from a human authenticated by a trusted external issuer, multi-hop `act`
//! chains, narrowing, depth limits, `may_act`, and cascading revocation.

use idv_core::jose::{self, Alg, KeyPair};
use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};

use crate::{all_events, json_ok, problem, transition};

backend_tests!(
    an_agent_acts_for_another_within_the_delegation,
    a_human_delegates_through_three_hops_and_revocation_cascades,
    depth_may_act_and_expiry_bound_every_chain,
    delegations_and_trusted_issuers_are_validated_and_tenant_scoped,
);

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub(crate) const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const IDP: &str = "https://idp.bank.example";

pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) secret: String,
}

pub(crate) async fn agent(s: &TestServer, name: &str, scopes: &[&str]) -> Agent {
    let a = json_ok(
        s.req(Method::POST, "/v1/agents")
            .json(&json!({
                "name": name, "owner": "alice@bank.example", "purpose": "delegation tests",
                "allowed_scopes": scopes, "allowed_resources": ["https://api.bank.example/ledger"],
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(
        transition(s, &s.token, &id, "activate", "t").await.status(),
        StatusCode::OK
    );
    let c = json_ok(
        s.req(Method::POST, &format!("/v1/agents/{id}/credentials"))
            .json(&json!({"type": "client_secret"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    Agent {
        id,
        secret: c["client_secret"].as_str().unwrap().to_owned(),
    }
}

pub(crate) async fn delegate(s: &TestServer, delegator: Value, to: &Agent, scopes: &[&str], max_depth: u32) -> String {
    json_ok(
        s.req(Method::POST, "/v1/delegations")
            .json(&json!({
                "delegator": delegator, "delegate": to.id, "scopes": scopes, "max_depth": max_depth,
                "ttl": "1h", "task": {"ticket": "CHG-7"},
            }))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

pub(crate) fn by_agent(a: &Agent) -> Value {
    json!({"type": "agent", "id": a.id})
}

pub(crate) async fn own_token(s: &TestServer, a: &Agent) -> String {
    let r = s
        .http
        .post(s.url("/oauth2/token"))
        .basic_auth(&a.id, Some(&a.secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn exchange(
    s: &TestServer,
    actor: &Agent,
    subject: &str,
    subject_type: &str,
    extra: &[(&str, &str)],
) -> Response {
    let mut form = vec![
        ("grant_type", EXCHANGE),
        ("subject_token", subject),
        ("subject_token_type", subject_type),
    ];
    form.extend_from_slice(extra);
    s.http
        .post(s.url("/oauth2/token"))
        .basic_auth(&actor.id, Some(&actor.secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn exchanged(
    s: &TestServer,
    actor: &Agent,
    subject: &str,
    subject_type: &str,
    extra: &[(&str, &str)],
) -> String {
    let body = json_ok(exchange(s, actor, subject, subject_type, extra).await, StatusCode::OK).await;
    assert_eq!(body["issued_token_type"], ACCESS);
    assert_eq!(body["token_type"], "Bearer");
    body["access_token"].as_str().unwrap().to_owned()
}

async fn refused(res: Response, code: &str) -> Value {
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"], code, "{body}");
    assert!(status.is_client_error(), "{status}");
    body
}

async fn introspect(s: &TestServer, t: &str) -> Value {
    json_ok(
        s.http
            .post(s.url("/oauth2/introspect"))
            .bearer_auth(&s.token)
            .form(&[("token", t)])
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await
}

fn claims(t: &str) -> serde_json::Map<String, Value> {
    jose::decode(t).unwrap().claims
}

fn scopes(t: &str) -> Vec<String> {
    claims(t)["scope"]
        .as_str()
        .unwrap()
        .split(' ')
        .map(str::to_owned)
        .collect()
}

async fn an_agent_acts_for_another_within_the_delegation(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "principal", &["ledger:read", "ledger:write"]).await;
    let b = agent(&s, "helper", &["ledger:read", "ledger:write", "payments:send"]).await;
    let c = agent(&s, "stranger", &["ledger:read"]).await;
    let ta = own_token(&s, &a).await;
    let d = delegate(&s, by_agent(&a), &b, &["ledger:read"], 1).await;
    // Without asking: everything the three bounds leave (ledger:read).
    let tb = exchanged(&s, &b, &ta, ACCESS, &[]).await;
    let c1 = claims(&tb);
    assert_eq!(c1["sub"], a.id.as_str(), "sub stays the subject's");
    assert_eq!(c1["client_id"], b.id.as_str());
    assert_eq!(c1["act"], json!({"sub": b.id}));
    assert_eq!(c1["scope"], "ledger:read");
    assert_eq!(c1["delegations"], json!([d]));
    assert_eq!(c1["task"], json!({"ticket": "CHG-7"}));
    let i = introspect(&s, &tb).await;
    assert_eq!(i["active"], true);
    assert_eq!(i["act"], json!({"sub": b.id}));
    // Trying to widen: write is the subject's and B's, but not delegated.
    refused(
        exchange(&s, &b, &ta, ACCESS, &[("scope", "ledger:write")]).await,
        "invalid_scope",
    )
    .await;
    refused(
        exchange(&s, &b, &ta, ACCESS, &[("scope", "payments:send")]).await,
        "invalid_scope",
    )
    .await;
    // No delegation to C.
    refused(exchange(&s, &c, &ta, ACCESS, &[]).await, "invalid_grant").await;
    // Protocol errors.
    refused(exchange(&s, &b, &ta, "urn:x", &[]).await, "invalid_request").await;
    refused(
        exchange(
            &s,
            &b,
            &ta,
            ACCESS,
            &[("requested_token_type", "urn:ietf:params:oauth:token-type:id_token")],
        )
        .await,
        "invalid_request",
    )
    .await;
    refused(exchange(&s, &b, "not-a-token", ACCESS, &[]).await, "invalid_grant").await;
    // An actor token must be the caller's own.
    let tb_own = own_token(&s, &b).await;
    exchanged(
        &s,
        &b,
        &ta,
        ACCESS,
        &[("actor_token", &tb_own), ("actor_token_type", ACCESS)],
    )
    .await;
    refused(
        exchange(
            &s,
            &b,
            &ta,
            ACCESS,
            &[("actor_token", &ta), ("actor_token_type", ACCESS)],
        )
        .await,
        "invalid_grant",
    )
    .await;
    // A suspended delegate cannot exchange; a suspended subject's tokens are dead.
    assert_eq!(
        transition(&s, &s.token, &b.id, "suspend", "t").await.status(),
        StatusCode::OK
    );
    refused(exchange(&s, &b, &ta, ACCESS, &[]).await, "invalid_client").await;
    assert_eq!(introspect(&s, &tb).await["active"], false);
    assert_eq!(
        transition(&s, &s.token, &b.id, "resume", "t").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        introspect(&s, &tb).await["active"],
        false,
        "a delegated token whose actor was suspended stays dead after the resumption"
    );
    // Tokens exchanged after the resumption are good (a few milliseconds on:
    // a token issued in the very millisecond of the resumption is refused).
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let tb = json_ok(exchange(&s, &b, &ta, ACCESS, &[]).await, StatusCode::OK).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(introspect(&s, &tb).await["active"], true);
    assert_eq!(
        transition(&s, &s.token, &a.id, "suspend", "t").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        introspect(&s, &tb).await["active"],
        false,
        "the subject agent is suspended"
    );
    refused(exchange(&s, &b, &ta, ACCESS, &[]).await, "invalid_grant").await;
    // Every exchange and refusal is on the record.
    let events = all_events(&s).await;
    let ok: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == "token.exchange" && e["outcome"] == "success")
        .collect();
    assert_eq!(ok.len(), 3);
    assert_eq!(ok[0]["details"]["delegation_id"], d.as_str());
    assert_eq!(ok[0]["details"]["sub"], a.id.as_str());
    let denied = events
        .iter()
        .filter(|e| e["action"] == "token.issue" && e["outcome"] == "denied")
        .count();
    assert!(denied >= 9, "{denied}");
}

/// The server's clock, in seconds.
fn unix_now(s: &TestServer) -> i64 {
    s.running.state.clock.now().as_micros() / 1_000_000
}

/// An IdP-signed, ID-token-like JWT for `sub`.
fn idp_token(s: &TestServer, key: &KeyPair, sub: &str, extra: Value) -> String {
    let now = unix_now(s);
    let mut c = json!({"iss": IDP, "sub": sub, "aud": "idv", "iat": now, "exp": now + 600,
        "scope": "ledger:read ledger:write"});
    if let (Value::Object(m), Value::Object(e)) = (&mut c, extra) {
        m.extend(e);
    }
    key.sign("idp-1", "JWT", &c)
}

async fn trust_idp(s: &TestServer, key: &KeyPair) {
    let mut jwk = serde_json::to_value(key.public_jwk("idp-1")).unwrap();
    jwk.as_object_mut().unwrap().remove("use");
    json_ok(
        s.req(Method::POST, "/v1/trusted-issuers")
            .json(&json!({"issuer": IDP, "jwks": {"keys": [jwk]}, "audience": "idv"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
}

async fn a_human_delegates_through_three_hops_and_revocation_cascades(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = KeyPair::generate(Alg::ES256);
    trust_idp(&s, &idp).await;
    let all = ["ledger:read", "ledger:write"];
    let a = agent(&s, "hop-a", &all).await;
    let b = agent(&s, "hop-b", &all).await;
    let c = agent(&s, "hop-c", &["ledger:read"]).await;
    let human = json!({"type": "human", "issuer": IDP, "sub": "alice"});
    let d1 = delegate(&s, human, &a, &all, 3).await;
    let d2 = delegate(&s, by_agent(&a), &b, &all, 3).await;
    let d3 = delegate(&s, by_agent(&b), &c, &all, 3).await;
    let id_token = idp_token(&s, &idp, "alice", json!({}));
    let t1 = exchanged(&s, &a, &id_token, JWT, &[]).await;
    let t2 = exchanged(&s, &b, &t1, ACCESS, &[("scope", "ledger:read ledger:write")]).await;
    let t3 = exchanged(&s, &c, &t2, ACCESS, &[]).await;
    for (t, depth) in [(&t1, 1), (&t2, 2), (&t3, 3)] {
        let cl = claims(t);
        assert_eq!(cl["sub"], "alice");
        let mut act = &cl["act"];
        let mut n = 0;
        while act.is_object() {
            n += 1;
            act = &act["act"];
        }
        assert_eq!(n, depth, "{cl:?}");
        assert_eq!(introspect(&s, t).await["active"], true);
    }
    // RFC 8693 §4.1: the newest actor outermost, prior ones nested.
    assert_eq!(
        claims(&t3)["act"],
        json!({"sub": c.id, "act": {"sub": b.id, "act": {"sub": a.id}}})
    );
    assert_eq!(claims(&t3)["delegations"], json!([d1, d2, d3]));
    // Narrowing never widens down the chain.
    assert!(scopes(&t2).iter().all(|x| scopes(&t1).contains(x)));
    assert!(scopes(&t3).iter().all(|x| scopes(&t2).contains(x)));
    assert_eq!(scopes(&t3), vec!["ledger:read"]);
    // An IdP token for someone with no delegation, or from an untrusted
    // issuer, or with the wrong audience, starts nothing.
    refused(
        exchange(&s, &a, &idp_token(&s, &idp, "mallory", json!({})), JWT, &[]).await,
        "invalid_grant",
    )
    .await;
    let rogue = KeyPair::generate(Alg::ES256);
    refused(
        exchange(&s, &a, &idp_token(&s, &rogue, "alice", json!({})), JWT, &[]).await,
        "invalid_grant",
    )
    .await;
    refused(
        exchange(
            &s,
            &a,
            &idp_token(&s, &idp, "alice", json!({"aud": "someone-else"})),
            JWT,
            &[],
        )
        .await,
        "invalid_grant",
    )
    .await;
    refused(
        exchange(&s, &a, &idp_token(&s, &idp, "alice", json!({"exp": 1})), JWT, &[]).await,
        "invalid_grant",
    )
    .await;
    // Revoking the first link kills every token below it, however deep.
    let res = s
        .req(Method::DELETE, &format!("/v1/delegations/{d1}"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_ok(res, StatusCode::OK).await["status"], "revoked");
    for t in [&t1, &t2, &t3] {
        assert_eq!(introspect(&s, t).await, json!({"active": false}));
    }
    refused(exchange(&s, &c, &t2, ACCESS, &[]).await, "invalid_grant").await;
    refused(exchange(&s, &a, &id_token, JWT, &[]).await, "invalid_grant").await;
    let events = all_events(&s).await;
    assert!(
        events
            .iter()
            .any(|e| e["action"] == "delegation.revoke" && e["target_id"] == d1.as_str())
    );
}

async fn depth_may_act_and_expiry_bound_every_chain(backend: Backend) {
    let s = TestServer::start(backend).await;
    let idp = KeyPair::generate(Alg::EdDSA);
    trust_idp(&s, &idp).await;
    let sc = ["ledger:read"];
    let a = agent(&s, "d-a", &sc).await;
    let b = agent(&s, "d-b", &sc).await;
    let c = agent(&s, "d-c", &sc).await;
    // A lends to B without re-delegation (max_depth 1); B's own lending to C
    // cannot lift that.
    delegate(&s, by_agent(&a), &b, &sc, 1).await;
    delegate(&s, by_agent(&b), &c, &sc, 5).await;
    let ta = own_token(&s, &a).await;
    let tb = exchanged(&s, &b, &ta, ACCESS, &[]).await;
    let body = refused(exchange(&s, &c, &tb, ACCESS, &[]).await, "invalid_grant").await;
    assert!(body["error_description"].as_str().unwrap().contains("deep"), "{body}");
    // may_act names who may act for the subject (RFC 8693 §4.4).
    delegate(&s, json!({"type": "human", "issuer": IDP, "sub": "bob"}), &a, &sc, 1).await;
    let only_b = idp_token(&s, &idp, "bob", json!({"may_act": {"sub": b.id}}));
    refused(exchange(&s, &a, &only_b, JWT, &[]).await, "invalid_grant").await;
    let for_a = idp_token(&s, &idp, "bob", json!({"may_act": {"sub": a.id}}));
    let t = exchanged(&s, &a, &for_a, JWT, &[]).await;
    // Never outlives the subject token (exp = now + 600 here < server TTL? no:
    // the server TTL is 300 s, the IdP token 600 s, the delegation 1 h).
    let cl = claims(&t);
    assert_eq!(cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(), 300);
    let short = idp_token(&s, &idp, "bob", json!({"exp": unix_now(&s) + 40}));
    let t = exchanged(&s, &a, &short, JWT, &[]).await;
    let cl = claims(&t);
    assert!(
        cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap() <= 41,
        "{cl:?}"
    );
    // An agent cannot exchange its own token to act for itself.
    refused(exchange(&s, &a, &ta, ACCESS, &[]).await, "invalid_grant").await;
}

async fn delegations_and_trusted_issuers_are_validated_and_tenant_scoped(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = agent(&s, "v-a", &["ledger:read"]).await;
    let b = agent(&s, "v-b", &["ledger:read"]).await;
    let bad = [
        json!({"delegator": by_agent(&a), "delegate": b.id, "scopes": [], "ttl": "1h"}),
        json!({"delegator": by_agent(&a), "delegate": b.id, "scopes": ["a b"], "ttl": "1h"}),
        json!({"delegator": by_agent(&a), "delegate": b.id, "scopes": ["x"], "ttl": "90d"}),
        json!({"delegator": by_agent(&a), "delegate": b.id, "scopes": ["x"], "ttl": "1h", "max_depth": 0}),
        json!({"delegator": by_agent(&a), "delegate": a.id, "scopes": ["x"], "ttl": "1h"}),
        json!({"delegator": {"type": "robot"}, "delegate": b.id, "scopes": ["x"], "ttl": "1h"}),
        json!({"delegator": by_agent(&a), "delegate": b.id, "scopes": ["x"], "ttl": "1h", "audience": ["not a uri"]}),
    ];
    for body in bad {
        let res = s.req(Method::POST, "/v1/delegations").json(&body).send().await.unwrap();
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // An unknown delegate, or a human of an issuer that is not trusted.
    let res = s
        .req(Method::POST, "/v1/delegations")
        .json(&json!({"delegator": by_agent(&a), "delegate": crate::ghost_id(), "scopes": ["x"], "ttl": "1h"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
    let res = s
        .req(Method::POST, "/v1/delegations")
        .json(
            &json!({"delegator": {"type": "human", "issuer": "https://nobody.example", "sub": "x"},
            "delegate": b.id, "scopes": ["x"], "ttl": "1h"}),
        )
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::CONFLICT).await;
    // Trusted issuers: public keys with a kid only; admins only.
    for jwks in [
        json!({"keys": []}),
        json!([]),
        json!({"keys": [{"kty": "oct", "k": "AAAA", "kid": "x"}]}),
    ] {
        let res = s
            .req(Method::POST, "/v1/trusted-issuers")
            .json(&json!({"issuer": IDP, "jwks": jwks}))
            .send()
            .await
            .unwrap();
        problem(res, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let (operator, _) = crate::named_token(&s, "default", "operator", "op").await;
    let key = KeyPair::generate(Alg::EdDSA);
    let jwk = serde_json::to_value(key.public_jwk("k1")).unwrap();
    let res = s
        .req_as(&operator, Method::POST, "/v1/trusted-issuers")
        .json(&json!({"issuer": IDP, "jwks": {"keys": [jwk]}}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::FORBIDDEN).await;
    let d = delegate(&s, by_agent(&a), &b, &["ledger:read"], 1).await;
    // Another tenant sees and touches none of it.
    let (beta, _) = crate::tenant_token(&s, "beta", "admin").await;
    for req in [
        s.req_as(&beta, Method::GET, &format!("/v1/delegations/{d}")),
        s.req_as(&beta, Method::DELETE, &format!("/v1/delegations/{d}")),
    ] {
        problem(req.send().await.unwrap(), StatusCode::NOT_FOUND).await;
    }
    let list = json_ok(
        s.req_as(&beta, Method::GET, "/v1/delegations").send().await.unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"], json!([]));
    let list = json_ok(
        s.req(Method::GET, &format!("/v1/delegations?delegate={}", b.id))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["items"][0]["id"], d.as_str());
    assert_eq!(list["items"][0]["status"], "active");
    let res = s
        .req_as(&beta, Method::POST, "/v1/delegations")
        .json(&json!({"delegator": {"type": "agent", "id": b.id}, "delegate": a.id, "scopes": ["x"], "ttl": "1h"}))
        .send()
        .await
        .unwrap();
    problem(res, StatusCode::NOT_FOUND).await;
}
