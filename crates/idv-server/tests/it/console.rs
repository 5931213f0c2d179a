//! The console over HTTP (no browser: `tests/console` drives one): sign-in,
//! the session cookie, timeouts, sign-out, CSRF and origin checks, refusals
//! by role, and what each of those leaves in the audit log.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::redirect::Policy;
use reqwest::{Client, Response, StatusCode};
use serde_json::Value;

use crate::{create_agent, events_after, get, head, named_token, start_manual, transition};

backend_tests!(
    break_glass_sign_in_opens_a_session_until_sign_out,
    sessions_end_when_idle_or_past_their_lifetime,
    session_timeouts_follow_the_settings,
    a_session_dies_with_its_admin_token,
    state_changes_need_the_csrf_token_and_our_origin,
    an_auditor_is_refused_and_the_refusal_is_recorded,
    bad_sign_ins_are_refused_with_a_page,
    sessions_can_be_listed_and_ended,
    graph_and_heat_map_data_follow_the_decisions,
    sso_settings_are_checked_sealed_and_audited,
    a_forged_or_stale_sso_return_opens_nothing,
    the_overview_rotation_and_exports_follow_the_registry,
    policies_are_compared_activated_and_drafts_tested_on_recorded_decisions,
    the_chain_is_verified_from_the_audit_page,
);

/// A client that does not follow redirects (to see them).
fn browser() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// Signs in with `token`; answers the cookie pair (`idv_session=…`).
async fn sign_in(s: &TestServer, token: &str) -> String {
    let res = browser()
        .post(s.url("/console/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console");
    let set = res.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    assert!(!set.contains("Secure"), "plain http: no Secure attribute ({set})");
    set.split(';').next().unwrap().to_owned()
}

async fn page(s: &TestServer, cookie: &str, path: &str) -> Response {
    browser().get(s.url(path)).header(COOKIE, cookie).send().await.unwrap()
}

/// The CSRF token a signed-in page carries.
async fn csrf(s: &TestServer, cookie: &str) -> String {
    let html = page(s, cookie, "/console/agents").await.text().await.unwrap();
    let at = html.find("name=\"_csrf\" value=\"").unwrap() + "name=\"_csrf\" value=\"".len();
    html[at..at + 64].to_owned()
}

fn signed_out(res: &Response) {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/console/login");
}

async fn break_glass_sign_in_opens_a_session_until_sign_out(backend: Backend) {
    let s = TestServer::start(backend).await;
    signed_out(&page(&s, "", "/console").await);
    let before = head(&s).await;
    let cookie = sign_in(&s, &s.token).await;
    let res = page(&s, &cookie, "/console").await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("Overview") && html.contains("bootstrap"), "{html}");
    let events = events_after(&s, before).await;
    let signin = events.iter().find(|e| e["action"] == "console.sign_in").unwrap();
    assert_eq!(signin["outcome"], "success");
    assert_eq!(signin["details"]["method"], "admin_token");
    assert_eq!(signin["actor"]["name"], "bootstrap");

    // An action through the console names its session.
    let a = create_agent(&s, &s.token, "console-one").await;
    let id = a["id"].as_str().unwrap();
    let token = csrf(&s, &cookie).await;
    let res = browser()
        .post(s.url(&format!("/console/agents/{id}/lifecycle")))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", token.as_str()), ("action", "activate"), ("reason", "go")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await["status"], "active");
    let activated = events_after(&s, before)
        .await
        .into_iter()
        .find(|e| e["action"] == "agent.activate")
        .unwrap();
    assert_eq!(
        activated["details"]["request"]["console_session"], signin["target_id"],
        "{activated}"
    );

    // Sign out: the same cookie no longer opens anything.
    let res = browser()
        .post(s.url("/console/logout"))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    signed_out(&res);
    assert!(res.headers()[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    signed_out(&page(&s, &cookie, "/console").await);
    assert!(
        events_after(&s, before)
            .await
            .iter()
            .any(|e| e["action"] == "console.sign_out" && e["outcome"] == "success")
    );
}

async fn sessions_end_when_idle_or_past_their_lifetime(backend: Backend) {
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    let cookie = sign_in(&s, &s.token).await;
    // Activity keeps it alive past the idle timeout (30 minutes)...
    for _ in 0..3 {
        clock.advance_secs(20 * 60);
        assert_eq!(page(&s, &cookie, "/console").await.status(), StatusCode::OK);
    }
    // ...but 30 minutes of silence ends it.
    clock.advance_secs(30 * 60);
    signed_out(&page(&s, &cookie, "/console").await);
    // And activity never carries it past 12 hours.
    let cookie = sign_in(&s, &s.token).await;
    for _ in 0..(12 * 3) {
        clock.advance_secs(20 * 60);
        let res = page(&s, &cookie, "/console").await;
        if res.status() != StatusCode::OK {
            signed_out(&res);
            return;
        }
    }
    panic!("the session outlived its 12 hours");
}

/// The timeouts are settings: a server told 5 minutes idle and 1 hour in
/// all ends sessions then.
async fn session_timeouts_follow_the_settings(backend: Backend) {
    let clock = TestServer::manual_clock();
    let s = TestServer::start_with(
        backend,
        idv_testkit::Options {
            clock: Some(clock.clone()),
            console_sessions: Some(idv_core::session::Timeouts {
                idle_secs: 5 * 60,
                absolute_secs: 3600,
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let cookie = sign_in(&s, &s.token).await;
    clock.advance_secs(4 * 60);
    assert_eq!(page(&s, &cookie, "/console").await.status(), StatusCode::OK);
    clock.advance_secs(6 * 60);
    signed_out(&page(&s, &cookie, "/console").await);
    let cookie = sign_in(&s, &s.token).await;
    // Active every 4 minutes: alive at 56 minutes, ended at the hour.
    for _ in 0..14 {
        clock.advance_secs(4 * 60);
        assert_eq!(page(&s, &cookie, "/console").await.status(), StatusCode::OK);
    }
    clock.advance_secs(4 * 60);
    signed_out(&page(&s, &cookie, "/console").await);
}

async fn a_session_dies_with_its_admin_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (op, op_id) = named_token(&s, "default", "operator", "ops-oncall").await;
    let cookie = sign_in(&s, &op).await;
    assert_eq!(page(&s, &cookie, "/console/agents").await.status(), StatusCode::OK);
    let res = s
        .req(reqwest::Method::DELETE, &format!("/v1/admin-tokens/{op_id}"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    signed_out(&page(&s, &cookie, "/console/agents").await);
}

async fn state_changes_need_the_csrf_token_and_our_origin(backend: Backend) {
    let s = TestServer::start(backend).await;
    let cookie = sign_in(&s, &s.token).await;
    let a = create_agent(&s, &s.token, "csrf-target").await;
    let id = a["id"].as_str().unwrap();
    let token = csrf(&s, &cookie).await;
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut r = browser()
            .post(s.url(&format!("/console/agents/{id}/lifecycle")))
            .header(COOKIE, &cookie)
            .form(&form);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let activate = |t: &str| {
        vec![
            ("_csrf", t.to_owned()),
            ("action", "activate".into()),
            ("reason", "x".into()),
        ]
    };
    // No token, a wrong token, a token from another session: refused.
    let other = sign_in(&s, &s.token).await;
    let other_token = csrf(&s, &other).await;
    for form in [
        vec![("action", "activate".into()), ("reason", "x".into())],
        activate("0".repeat(64).as_str()),
        activate(&other_token),
    ] {
        assert_eq!(post(form, None).await.unwrap().status(), StatusCode::FORBIDDEN);
    }
    // The right token from another site: refused.
    assert_eq!(
        post(activate(&token), Some("https://evil.example"))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await["status"], "provisioning");
    // The right token from our own origin: done.
    assert_eq!(
        post(activate(&token), Some(Box::leak(s.base.clone().into_boxed_str())))
            .await
            .unwrap()
            .status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await["status"], "active");
}

async fn an_auditor_is_refused_and_the_refusal_is_recorded(backend: Backend) {
    let s = TestServer::start(backend).await;
    let a = create_agent(&s, &s.token, "audited").await;
    let id = a["id"].as_str().unwrap();
    transition(&s, &s.token, id, "activate", "go").await;
    let (auditor, _) = named_token(&s, "default", "auditor", "examiner").await;
    let cookie = sign_in(&s, &auditor).await;
    let html = page(&s, &cookie, &format!("/console/agents/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(!html.contains("lifecycle-apply"), "no action buttons for an auditor");
    let html = page(&s, &cookie, "/console/agents").await.text().await.unwrap();
    assert!(!html.contains("bulk-apply"));
    assert!(
        !html.contains("/console/tenants"),
        "no portfolio in a tenant auditor's navigation"
    );
    assert_eq!(
        page(&s, &cookie, "/console/tenants").await.status(),
        StatusCode::FORBIDDEN
    );
    let token = csrf(&s, &cookie).await;
    let before = head(&s).await;
    let res = browser()
        .post(s.url("/console/agents/bulk"))
        .header(COOKIE, &cookie)
        .form(&[
            ("_csrf", token.as_str()),
            ("action", "suspend"),
            ("reason", "forged"),
            ("id", id),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(get(&s, &format!("/v1/agents/{id}")).await["status"], "active");
    let denied: Vec<Value> = events_after(&s, before)
        .await
        .into_iter()
        .filter(|e| e["outcome"] == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["actor"]["name"], "examiner");
    assert!(
        denied[0]["details"]["request"]["console_session"].is_string(),
        "{}",
        denied[0]
    );
}

async fn bad_sign_ins_are_refused_with_a_page(backend: Backend) {
    let s = TestServer::start(backend).await;
    for bad in ["", "idvat_nope", "not a token at all"] {
        let res = browser()
            .post(s.url("/console/login"))
            .form(&[("token", bad)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        assert!(res.headers().get(SET_COOKIE).is_none());
        assert!(res.text().await.unwrap().contains("sign-in-error"));
    }
    // A policy enforcement point's token is not for people.
    let (pep, _) = named_token(&s, "default", "pep", "gateway").await;
    let res = browser()
        .post(s.url("/console/login"))
        .form(&[("token", pep.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get(SET_COOKIE).is_none());
    // A sign-in form posted from another site.
    let res = browser()
        .post(s.url("/console/login"))
        .header("origin", "https://evil.example")
        .form(&[("token", s.token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A forged or malformed cookie is no session.
    signed_out(&page(&s, "idv_session=idvs_forged", "/console").await);
}

async fn sessions_can_be_listed_and_ended(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (op, _) = named_token(&s, "default", "operator", "ops-oncall").await;
    let mine = sign_in(&s, &op).await;
    let admin = sign_in(&s, &s.token).await;
    // The operator sees only their own session.
    let html = page(&s, &mine, "/console/sessions").await.text().await.unwrap();
    assert!(html.contains("ops-oncall") && !html.contains(">bootstrap"), "{html}");
    // The administrator sees both, and ends the operator's.
    let html = page(&s, &admin, "/console/sessions").await.text().await.unwrap();
    assert!(html.contains("ops-oncall"));
    let row = html
        .split("<tr>")
        .find(|r| r.contains("ops-oncall"))
        .expect("the operator's row");
    let at = row.find("/console/sessions/").unwrap() + "/console/sessions/".len();
    let id = &row[at..at + 36];
    let token = csrf(&s, &admin).await;
    let res = browser()
        .post(s.url(&format!("/console/sessions/{id}/end")))
        .header(COOKIE, &admin)
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let ended = page(&s, &mine, "/console").await.status() == StatusCode::SEE_OTHER;
    assert!(ended, "the operator's session was ended");
    assert_eq!(page(&s, &admin, "/console").await.status(), StatusCode::OK);
}

/// The graph and heat map endpoints answer what AuthZEN decisions recorded,
/// filtered as asked, to signed-in people only.
async fn graph_and_heat_map_data_follow_the_decisions(backend: Backend) {
    let s = TestServer::start(backend).await;
    let res = s
        .req(reqwest::Method::POST, "/v1/policies")
        .json(&serde_json::json!({
            "policies": r#"permit(principal is Agent, action == Action::"invoke", resource is Agent);"#,
            "activate": true,
        }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let mut ids = Vec::new();
    for (name, env) in [("g-a", "prod"), ("g-b", "prod"), ("g-c", "dev")] {
        let a = crate::json_ok(
            s.req(reqwest::Method::POST, "/v1/agents")
                .json(&serde_json::json!({"name": name, "owner": "o@bank.example", "purpose": "p", "environment": env}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        let id = a["id"].as_str().unwrap().to_owned();
        transition(&s, &s.token, &id, "activate", "go").await;
        ids.push(id);
    }
    let (pep, _) = named_token(&s, "default", "pep", "gw").await;
    for (from, to, n) in [(0, 1, 3), (1, 2, 1)] {
        for _ in 0..n {
            let res = s
                .req_as(&pep, reqwest::Method::POST, "/access/v1/evaluation")
                .json(&serde_json::json!({
                    "subject": {"type": "agent", "id": ids[from]},
                    "action": {"name": "invoke"},
                    "resource": {"type": "agent", "id": ids[to]},
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
    }
    signed_out(&page(&s, "", "/console/graph/data").await);
    let cookie = sign_in(&s, &s.token).await;
    let g: Value = page(&s, &cookie, "/console/graph/data").await.json().await.unwrap();
    assert_eq!(g["nodes"].as_array().unwrap().len(), 3, "{g}");
    assert_eq!(g["edges"][0]["source"], ids[0].as_str(), "busiest first: {g}");
    assert_eq!(g["edges"][0]["allowed"], 3);
    let prod: Value = page(&s, &cookie, "/console/graph/data?environment=prod")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(prod["nodes"].as_array().unwrap().len(), 2, "{prod}");
    assert_eq!(prod["edges"].as_array().unwrap().len(), 1, "{prod}");
    let h: Value = page(&s, &cookie, "/console/heatmap/data").await.json().await.unwrap();
    assert_eq!(h["actions"], serde_json::json!(["invoke"]), "{h}");
    assert_eq!(h["agents"].as_array().unwrap().len(), 2, "{h}");
    let counts: Vec<i64> = h["cells"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts.iter().sum::<i64>(), 4, "{h}");
    // The same decisions by hour of the week (in this hour, or the two
    // sides of an hour's turn), each cell naming its hour.
    let week = h["week"].as_array().unwrap();
    assert_eq!(week.len(), 168);
    let busy: Vec<&Value> = week.iter().filter(|c| c["allowed"].as_i64().unwrap() > 0).collect();
    assert!((1..=2).contains(&busy.len()), "{h}");
    assert_eq!(busy.iter().map(|c| c["allowed"].as_i64().unwrap()).sum::<i64>(), 4);
    assert!(
        busy.iter().all(|c| c["last"].as_str().unwrap().contains(":00:00.")),
        "{h}"
    );
    let page_html = page(&s, &cookie, "/console/heatmap").await.text().await.unwrap();
    assert!(page_html.contains(r#"id="week-table""#) && page_html.contains("<th scope=\"row\">Mon</th>"));
}

async fn sso_settings_are_checked_sealed_and_audited(backend: Backend) {
    let s = TestServer::start(backend).await;
    let put = |token: &str, body: Value| s.req_as(token, reqwest::Method::PUT, "/v1/sso").json(&body).send();
    let good = serde_json::json!({
        "issuer": "https://bank.okta.com/",
        "client_id": "0oa1idv",
        "client_secret": "very-secret-value",
        "role_map": {"IdentityVault Admins": "admin", "IdentityVault Auditors": "auditor"},
    });
    signed_out(&page(&s, "", "/console").await);
    let before = head(&s).await;
    let res = put(&s.token, good.clone()).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    assert!(!text.contains("very-secret-value"), "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["issuer"], "https://bank.okta.com", "the trailing slash is dropped");
    assert_eq!(v["scopes"], serde_json::json!(["openid", "email", "profile"]));
    assert_eq!(v["groups_claim"], "groups");
    assert_eq!(v["redirect_uri"], format!("{}/console/sso/callback", s.base));
    let ev: Vec<Value> = events_after(&s, before).await;
    let put_ev = ev.iter().find(|e| e["action"] == "sso.put").expect("sso.put recorded");
    assert!(!put_ev.to_string().contains("very-secret-value"));
    // The sign-in page now offers single sign-on.
    let html = page(&s, "", "/console/login").await.text().await.unwrap();
    assert!(html.contains("/console/sso/start?tenant=default"), "{html}");
    // Bad settings: a clear 422 naming the field, nothing changed.
    for (patch, field) in [
        (serde_json::json!({"issuer": "http://bank.okta.com"}), "issuer"),
        (serde_json::json!({"scopes": ["email"]}), "scopes"),
        (serde_json::json!({"role_map": {}}), "role_map"),
        (serde_json::json!({"role_map": {"g": "pep"}}), "role_map"),
        (serde_json::json!({"role_map": {"g": "root"}}), "role_map"),
        (serde_json::json!({"client_secret": ""}), "client_secret"),
    ] {
        let mut body = good.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let res = put(&s.token, body).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        let p: Value = res.json().await.unwrap();
        assert_eq!(p["field"], field, "{p}");
    }
    // `owner` is for people: no admin token gets it.
    let res = s
        .req(reqwest::Method::POST, "/v1/admin-tokens")
        .json(&serde_json::json!({"name": "dev", "role": "owner"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Roles: an operator may not set it; an auditor may read it.
    let (op, _) = named_token(&s, "default", "operator", "op").await;
    assert_eq!(put(&op, good.clone()).await.unwrap().status(), StatusCode::FORBIDDEN);
    let (aud, _) = named_token(&s, "default", "auditor", "aud").await;
    let got = s.req_as(&aud, reqwest::Method::GET, "/v1/sso").send().await.unwrap();
    assert_eq!(got.status(), StatusCode::OK);
    // Removed: gone, and the sign-in page no longer offers it.
    let del = s.req(reqwest::Method::DELETE, "/v1/sso").send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NO_CONTENT);
    let del = s.req(reqwest::Method::DELETE, "/v1/sso").send().await.unwrap();
    assert_eq!(del.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        s.req(reqwest::Method::GET, "/v1/sso").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    let html = page(&s, "", "/console/login").await.text().await.unwrap();
    assert!(!html.contains("/console/sso/start"));
}

/// Coming back from the provider without this browser's transaction, with
/// another `state`, or with a forged transaction opens no session.
async fn a_forged_or_stale_sso_return_opens_nothing(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (cookie, query) in [
        ("", "code=abc&state=xyz"),
        ("idv_oidc=bm90LWEtc2VhbGVkLXRyYW5zYWN0aW9u", "code=abc&state=xyz"),
        ("idv_oidc=", "error=access_denied&state=xyz"),
    ] {
        let res = page(&s, cookie, &format!("/console/sso/callback?{query}")).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{cookie} {query}");
        let set: Vec<String> = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert!(set.iter().all(|c| !c.starts_with("idv_session=idvs_")), "{set:?}");
        assert!(res.text().await.unwrap().contains("start again"));
    }
    // Starting without a provider configured: a clear 404 page.
    let res = page(&s, "", "/console/sso/start?tenant=default").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

/// The overview's figures and trends, the rotation page and the inventory's
/// orders and downloads all follow what the API did.
async fn the_overview_rotation_and_exports_follow_the_registry(backend: Backend) {
    let s = TestServer::start(backend).await;
    let mut ids = Vec::new();
    for (name, env) in [("ov-alpha", "prod"), ("ov-bravo", "dev")] {
        let a = crate::json_ok(
            s.req(reqwest::Method::POST, "/v1/agents")
                .json(&serde_json::json!({"name": name, "owner": "o@bank.example", "purpose": "p", "environment": env}))
                .send()
                .await
                .unwrap(),
            StatusCode::CREATED,
        )
        .await;
        ids.push(a["id"].as_str().unwrap().to_owned());
    }
    transition(&s, &s.token, &ids[0], "activate", "go").await;
    let cred = crate::json_ok(
        s.req(reqwest::Method::POST, &format!("/v1/agents/{}/credentials", ids[0]))
            .json(&serde_json::json!({"type": "client_secret", "ttl": "72h"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let cred_id = cred["credential"]["id"]
        .as_str()
        .or(cred["id"].as_str())
        .unwrap()
        .to_owned();
    // No policy permits anything: a denied decision.
    let (pep, _) = named_token(&s, "default", "pep", "gw").await;
    let res = s
        .req_as(&pep, reqwest::Method::POST, "/access/v1/evaluation")
        .json(&serde_json::json!({
            "subject": {"type": "agent", "id": ids[0]},
            "action": {"name": "read"},
            "resource": {"type": "document", "id": "d1"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let cookie = sign_in(&s, &s.token).await;
    let html = page(&s, &cookie, "/console").await.text().await.unwrap();
    assert!(html.contains(r#"id="total-agents">2<"#), "{html}");
    assert!(html.contains(r#"id="live-credentials">1<"#), "{html}");
    // A platform operator sees every tenant's total too; a tenant's operator does not.
    let default_row = html.find(r#"id="by-tenant""#).map(|at| &html[at..at + 300]);
    assert!(
        default_row.is_some_and(|r| r.contains(r#"<span class="count">2</span>"#)),
        "{html}"
    );
    let (op, _) = named_token(&s, "default", "operator", "ops").await;
    let op_cookie = sign_in(&s, &op).await;
    let op_html = page(&s, &op_cookie, "/console").await.text().await.unwrap();
    assert!(!op_html.contains(r#"id="by-tenant""#));
    assert!(
        html.contains(r#"<span>credentials due for rotation in 7 days</span><span class="count">1</span>"#),
        "{html}"
    );
    // This week's row of each trend table is the last one.
    let week = |id: &str| {
        let at = html.find(&format!(r#"id="{id}""#)).unwrap();
        let table = &html[at..at + html[at..].find("</tbody>").unwrap()];
        let row = &table[table.rfind("<tr>").unwrap()..];
        row.split("<td>")
            .skip(1)
            .map(|c| c[..c.find('<').unwrap()].to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(week("trend-lifecycle"), ["2", "0"], "created, retired");
    assert_eq!(
        week("trend-security"),
        ["0", "0", "1"],
        "compromised, suspended, denied"
    );

    let rotation = page(&s, &cookie, "/console/rotation").await.text().await.unwrap();
    let due = &rotation[rotation.find(r#"id="due""#).unwrap()..];
    assert!(due.contains(&cred_id), "{rotation}");

    let names = |html: &str| {
        html.match_indices("ov-")
            .map(|(i, _)| html[i..i + 8].to_owned())
            .filter(|n| n.starts_with("ov-alpha") || n.starts_with("ov-bravo"))
            .collect::<Vec<_>>()
    };
    // Each row names its agent twice (the checkbox's label and the link).
    let rows = |html: &str| {
        let mut n = names(html);
        n.dedup();
        n
    };
    let desc = page(&s, &cookie, "/console/agents?sort=-name")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&desc), ["ov-bravo", "ov-alpha"]);
    assert!(desc.contains(r#"aria-sort="descending""#));
    let bad = page(&s, &cookie, "/console/agents?sort=owner").await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    let csv = page(&s, &cookie, "/console/agents/export?environment=prod").await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    assert_eq!(csv.headers()["cache-control"], "no-store");
    let text = csv.text().await.unwrap();
    let lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("id,name,status,owner") && lines[1].contains("ov-alpha"),
        "{text}"
    );
    let xlsx = page(&s, &cookie, "/console/agents/export?format=xlsx").await;
    assert_eq!(
        xlsx.headers()["content-type"],
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );
    assert_eq!(&xlsx.bytes().await.unwrap()[..2], b"PK");
    signed_out(&page(&s, "", "/console/agents/export").await);
}

/// The policies page: versions and a diff, activation and roll back (not
/// for operators: refused and recorded), and a draft tested against the
/// decisions the audit log recorded.
async fn policies_are_compared_activated_and_drafts_tested_on_recorded_decisions(backend: Backend) {
    let s = TestServer::start(backend).await;
    for (text, activate) in [
        (
            r#"@id("invoke-all") permit(principal is Agent, action == Action::"invoke", resource is Agent);"#,
            true,
        ),
        (
            r#"@id("read-all") permit(principal is Agent, action == Action::"read", resource);"#,
            false,
        ),
    ] {
        let res = s
            .req(reqwest::Method::POST, "/v1/policies")
            .json(&serde_json::json!({"policies": text, "activate": activate}))
            .send()
            .await
            .unwrap();
        assert!(res.status().is_success(), "{}", res.status());
    }
    let agent = crate::json_ok(
        s.req(reqwest::Method::POST, "/v1/agents")
            .json(&serde_json::json!({"name": "pol-a", "owner": "o@bank.example", "purpose": "p"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = agent["id"].as_str().unwrap().to_owned();
    transition(&s, &s.token, &id, "activate", "go").await;
    let (pep, _) = named_token(&s, "default", "pep", "gw").await;
    let res = s
        .req_as(&pep, reqwest::Method::POST, "/access/v1/evaluation")
        .json(&serde_json::json!({
            "subject": {"type": "agent", "id": id},
            "action": {"name": "read"},
            "resource": {"type": "Resource", "id": "r1"},
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    let cookie = sign_in(&s, &s.token).await;
    // By default: from the version before the active one (none) to the active.
    let html = page(&s, &cookie, "/console/policies?from=1&to=2")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"<span class="del">- @id(&quot;invoke-all&quot;)"#)
            || html.contains(r#"<span class="del">- @id(&#34;invoke-all&#34;)"#),
        "{html}"
    );
    assert!(
        html.contains(r#"class="activate" aria-label="Activate version 2""#),
        "{html}"
    );
    let token = csrf(&s, &cookie).await;
    let post = |path: &'static str, form: Vec<(&'static str, String)>, who: String| {
        let s = &s;
        async move {
            browser()
                .post(s.url(path))
                .header(COOKIE, who)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let res = post(
        "/console/policies/activate",
        vec![("_csrf", token.clone()), ("version", "2".into())],
        cookie.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let versions = crate::get(&s, "/v1/policies").await;
    let active: Vec<i64> = versions["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["active"] == true)
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(active, [2]);
    let res = post(
        "/console/policies/activate",
        vec![("_csrf", token.clone()), ("version", "rollback".into())],
        cookie.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(crate::get(&s, "/v1/policies/1").await["active"] == true);

    // The recorded `read` was denied under version 1; the draft would allow it.
    let res = post(
        "/console/policies/test",
        vec![
            ("_csrf", token.clone()),
            (
                "policies",
                r#"@id("draft-read") permit(principal, action == Action::"read", resource);"#.into(),
            ),
            ("schema", String::new()),
        ],
        cookie.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("<strong>1</strong> would change"), "{html}");
    assert!(html.contains("draft-read"), "{html}");
    // A draft that does not compile is refused with the reason.
    let bad = post(
        "/console/policies/test",
        vec![
            ("_csrf", token.clone()),
            ("policies", "permit(".into()),
            ("schema", String::new()),
        ],
        cookie.clone(),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);

    // An operator reads, but cannot activate: refused and recorded.
    let (op, _) = named_token(&s, "default", "operator", "ops").await;
    let op_cookie = sign_in(&s, &op).await;
    let html = page(&s, &op_cookie, "/console/policies").await.text().await.unwrap();
    assert!(
        !html.contains("class=\"activate\"") && !html.contains("id=\"rollback\""),
        "{html}"
    );
    let op_token = csrf(&s, &op_cookie).await;
    let seq = head(&s).await;
    let res = post(
        "/console/policies/activate",
        vec![("_csrf", op_token), ("version", "2".into())],
        op_cookie.clone(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let refused = events_after(&s, seq).await;
    assert!(
        refused
            .iter()
            .any(|e| e["action"] == "policy.version.activate" && e["outcome"] == "denied"),
        "{refused:?}"
    );
}

/// "Verify the whole chain now": intact, then, after an event is edited in
/// the database, broken at that event; each run recorded as `audit.verify`.
async fn the_chain_is_verified_from_the_audit_page(backend: Backend) {
    let s = TestServer::start(backend).await;
    for i in 0..3 {
        create_agent(&s, &s.token, &format!("chain-{i}")).await;
    }
    let html = verify_from_console(&s).await;
    assert!(html.contains(r#"id="chain-status">Intact"#), "{html}");
    let created = crate::all_events(&s)
        .await
        .iter()
        .find(|e| e["action"] == "agent.create")
        .unwrap()["seq"]
        .as_i64()
        .unwrap();
    let s = crate::audit::edit_stored(
        s,
        backend,
        &[format!(
            "UPDATE audit_events SET reason = 'forged' WHERE seq = {created}"
        )],
    )
    .await;
    let html = verify_from_console(&s).await;
    assert!(
        html.contains(&format!(r#"id="chain-status">Broken at event {created}:"#)),
        "{html}"
    );
    let runs: Vec<bool> = crate::all_events(&s)
        .await
        .iter()
        .filter(|e| e["action"] == "audit.verify")
        .map(|e| e["details"]["intact"].as_bool().unwrap())
        .collect();
    assert_eq!(runs, [true, false]);
}

/// Signs in, checks the audit page has no result yet, runs the chain
/// verification, and answers the audit page after it.
async fn verify_from_console(s: &TestServer) -> String {
    let cookie = sign_in(s, &s.token).await;
    let before = page(s, &cookie, "/console/audit").await.text().await.unwrap();
    assert!(before.contains("Not verified"), "{before}");
    let token = csrf(s, &cookie).await;
    let res = browser()
        .post(s.url("/console/audit/verify"))
        .header(COOKIE, &cookie)
        .form(&[("_csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    page(s, &cookie, "/console/audit").await.text().await.unwrap()
}
