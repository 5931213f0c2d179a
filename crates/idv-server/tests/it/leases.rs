//! Dynamic PostgreSQL credentials against the real local PostgreSQL: the
//! target is a fresh database on the server `IDV_TEST_POSTGRES_URL` names
//! (whichever store the IdentityVault under test runs on), each test with
//! its own role prefix, since roles are cluster-wide.
//!
//! The machine's PostgreSQL accepts loopback connections with `trust`, so a
//! login there checks neither password nor `VALID UNTIL`. The tests check
//! both where PostgreSQL keeps them instead: the stored SCRAM verifier is
//! recomputed here from the issued password (RFC 5802 §3, RFC 7677), and
//! `rolvaliduntil` is compared with the lease; "cannot log in after
//! revocation or expiry" is a login refused because the role is gone.

use hmac::{Hmac, Mac};
use idv_core::clock::Clock as _;
use idv_testkit::{Backend, ScratchDatabase, TestServer, backend_tests};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::{Connection as _, Executor as _, PgConnection, Row as _};

use crate::{all_events, db, eventually, exec, get, json_ok, problem, start_manual, transition};

backend_tests!(
    an_agent_gets_a_role_that_can_do_what_its_template_grants_and_nothing_else,
    leases_renew_up_to_their_maximum_and_expire,
    a_renewal_to_the_maximum_records_what_the_target_has_and_then_changes_nothing,
    a_target_that_is_down_leaves_the_revocation_pending_until_it_is_back,
    a_crash_between_create_role_and_activation_leaves_no_role_behind,
    the_sweeper_drops_orphans_and_nothing_else,
    suspending_an_agent_revokes_its_leases,
    targets_and_templates_are_checked_and_tenant_scoped,
    concurrent_requests_and_revocations_on_one_template_all_succeed,
);

/// A throwaway database on the test PostgreSQL, with a table the template
/// grants and one it does not (dropped with its roles at the end).
struct Target {
    db: ScratchDatabase,
    base: String,
    database: String,
    prefix: String,
}

impl Target {
    /// A target on the test PostgreSQL (these tests need one for roles even
    /// when the store is SQLite; nextest's default profile skips them).
    async fn create(test: &str) -> Target {
        let db = ScratchDatabase::create(test, 't').await;
        let t = Target {
            base: db.base.clone(),
            database: db.name.clone(),
            prefix: db.prefix.clone(),
            db,
        };
        let mut c = t.admin().await;
        c.execute(
            "CREATE TABLE accounts (id int, balance int); INSERT INTO accounts VALUES (1, 100), (2, 250);
             CREATE TABLE secrets (x text); INSERT INTO secrets VALUES ('nope');",
        )
        .await
        .unwrap();
        t
    }

    /// The URL of this database with `user` (and a password the loopback
    /// `trust` rule ignores: it must never come back out of the server).
    fn url(&self, user: &str, password: &str) -> String {
        self.db.url(user, password)
    }

    fn admin_url(&self) -> String {
        self.url("postgres", ADMIN_PASSWORD)
    }

    async fn admin(&self) -> PgConnection {
        PgConnection::connect(&self.admin_url()).await.unwrap()
    }

    /// Logs in as `user`: the connection, or the refusal's text.
    async fn login(&self, user: &str, password: &str) -> Result<PgConnection, String> {
        PgConnection::connect(&self.url(user, password))
            .await
            .map_err(|e| e.to_string())
    }

    /// A connection to the cluster (roles are cluster-wide), not through
    /// the target database, which a test may close.
    async fn cluster(&self) -> PgConnection {
        PgConnection::connect(&self.base).await.unwrap()
    }

    /// `(rolvaliduntil as epoch seconds, rolpassword)` of a role, if it exists.
    async fn role(&self, name: &str) -> Option<(Option<f64>, String)> {
        let mut c = self.cluster().await;
        sqlx::query(
            "SELECT extract(epoch FROM rolvaliduntil)::float8 AS until, rolpassword FROM pg_authid WHERE rolname = $1",
        )
        .bind(name)
        .fetch_optional(&mut c)
        .await
        .unwrap()
        .map(|r| (r.get("until"), r.get("rolpassword")))
    }

    /// Our roles (by prefix) on the cluster.
    async fn prefixed_roles(&self) -> Vec<String> {
        let mut c = self.cluster().await;
        sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1) ORDER BY rolname")
            .bind(&self.prefix)
            .fetch_all(&mut c)
            .await
            .unwrap()
    }

    async fn set_reachable(&self, yes: bool) {
        let mut admin = self.cluster().await;
        admin
            .execute(format!("ALTER DATABASE {} ALLOW_CONNECTIONS {yes}", self.database).as_str())
            .await
            .unwrap();
        if !yes {
            admin
                .execute(
                    format!(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                        self.database
                    )
                    .as_str(),
                )
                .await
                .unwrap();
        }
    }
}

const ADMIN_PASSWORD: &str = "target-admin-pw-never-shown";

/// Recomputes a SCRAM-SHA-256 verifier (`SCRAM-SHA-256$<i>:<salt>$<StoredKey>:<ServerKey>`)
/// from `password`: whether it matches.
fn scram_matches(verifier: &str, password: &str) -> bool {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let rest = verifier.strip_prefix("SCRAM-SHA-256$").unwrap();
    let (params, keys) = rest.split_once('$').unwrap();
    let (iterations, salt) = params.split_once(':').unwrap();
    let (stored_key, server_key) = keys.split_once(':').unwrap();
    let iterations: u32 = iterations.parse().unwrap();
    let salt = b64.decode(salt).unwrap();
    let hmac = |key: &[u8], data: &[u8]| -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    // Hi(password, salt, i): PBKDF2 with HMAC-SHA-256, one block (RFC 5802 §2.2).
    let mut u = hmac(password.as_bytes(), &[salt.as_slice(), &1u32.to_be_bytes()].concat());
    let mut salted = u.clone();
    for _ in 1..iterations {
        u = hmac(password.as_bytes(), &u);
        salted.iter_mut().zip(&u).for_each(|(a, b)| *a ^= b);
    }
    let client_key = hmac(&salted, b"Client Key");
    let stored = Sha256::digest(&client_key).to_vec();
    let server = hmac(&salted, b"Server Key");
    b64.decode(stored_key).unwrap() == stored && b64.decode(server_key).unwrap() == server
}

/// An active agent with a client secret: `(agent id, secret)`.
async fn agent(s: &TestServer, name: &str) -> (String, String) {
    let a = json_ok(
        s.req(Method::POST, "/v1/agents")
            .json(&json!({"name": name, "owner": "alice@bank.example", "purpose": "lease tests"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    let id = a["id"].as_str().unwrap().to_owned();
    assert_eq!(transition(s, &s.token, &id, "activate", "test").await.status(), 200);
    let c = json_ok(
        s.req(Method::POST, &format!("/v1/agents/{id}/credentials"))
            .json(&json!({"type": "client_secret"}))
            .send()
            .await
            .unwrap(),
        StatusCode::CREATED,
    )
    .await;
    (id, c["client_secret"].as_str().unwrap().to_owned())
}

/// Registers the target and a read-only template `ledger-ro` on it, and a
/// policy that lets every agent `connect` with it.
async fn setup(s: &TestServer, t: &Target, default_ttl: u64, max_ttl: u64) {
    let r = s
        .req(Method::PUT, "/v1/db/targets/ledger")
        .json(&json!({"connection_url": t.admin_url(), "role_prefix": t.prefix}))
        .send()
        .await
        .unwrap();
    let view = json_ok(r, StatusCode::OK).await;
    assert_eq!(view["database"], t.database.as_str());
    assert_eq!(view["admin_user"], "postgres");
    assert!(!view.to_string().contains(ADMIN_PASSWORD), "{view}");
    let r = s
        .req(Method::PUT, "/v1/db/templates/ledger-ro")
        .json(&json!({
            "target": "ledger",
            "statements": ["GRANT SELECT ON accounts TO {{name}}"],
            "default_ttl": default_ttl, "max_ttl": max_ttl,
        }))
        .send()
        .await
        .unwrap();
    let view = json_ok(r, StatusCode::OK).await;
    assert_eq!(view["statements"][0], "GRANT SELECT ON TABLE \"accounts\" TO {{name}}");
    let r = s
        .req(Method::POST, "/v1/policies")
        .json(&json!({
            "policies": "permit(principal, action == Action::\"connect\", resource == DatabaseTemplate::\"ledger-ro\");",
            "activate": true,
        }))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::CREATED).await;
}

async fn creds(s: &TestServer, agent: &(String, String), body: Value) -> Response {
    s.http
        .post(s.url("/v1/self/db/creds/ledger-ro"))
        .basic_auth(&agent.0, Some(&agent.1))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn self_post(s: &TestServer, agent: &(String, String), path: &str, body: Value) -> Response {
    s.http
        .post(s.url(path))
        .basic_auth(&agent.0, Some(&agent.1))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn lease(s: &TestServer, id: &str) -> Value {
    get(s, &format!("/v1/leases/{id}")).await
}

fn epoch(rfc3339: &str) -> f64 {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339).unwrap();
    t.unix_timestamp_nanos() as f64 / 1e9
}

async fn an_agent_gets_a_role_that_can_do_what_its_template_grants_and_nothing_else(backend: Backend) {
    let t = Target::create("an_agent_gets_a_role…").await;
    let s = TestServer::start(backend).await;
    let bot = agent(&s, "reporting-bot").await;
    // Before any policy allows it: denied, and nothing made.
    let r = s
        .req(Method::PUT, "/v1/db/targets/ledger")
        .json(&json!({"connection_url": t.admin_url(), "role_prefix": t.prefix}))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    let r = s
        .req(Method::PUT, "/v1/db/templates/ledger-ro")
        .json(&json!({"target": "ledger", "statements": ["GRANT SELECT ON accounts TO {{name}}"]}))
        .send()
        .await
        .unwrap();
    let tpl = json_ok(r, StatusCode::OK).await;
    assert_eq!(
        (tpl["default_ttl_secs"].as_i64(), tpl["max_ttl_secs"].as_i64()),
        (Some(3600), Some(86_400))
    );
    problem(creds(&s, &bot, json!({})).await, StatusCode::FORBIDDEN).await;
    assert!(t.prefixed_roles().await.is_empty());
    setup(&s, &t, 600, 3600).await;

    // A wrong secret is 401 with a challenge.
    let r = creds(&s, &(bot.0.clone(), "wrong".into()), json!({})).await;
    assert!(r.headers().contains_key("www-authenticate"));
    problem(r, StatusCode::UNAUTHORIZED).await;

    let issued = json_ok(creds(&s, &bot, json!({"ttl": "5m"})).await, StatusCode::CREATED).await;
    let user = issued["username"].as_str().unwrap().to_owned();
    let password = issued["password"].as_str().unwrap().to_owned();
    assert!(user.starts_with(&t.prefix), "{user}");
    assert_eq!(issued["database"], t.database.as_str());
    assert_eq!(issued["lease"]["state"], "active");
    assert_eq!(issued["lease"]["agent_id"], bot.0.as_str());
    let ttl = issued["lease"]["ttl_secs"].as_i64().unwrap();
    assert!((295..=300).contains(&ttl), "{ttl}");
    assert!(password.len() >= 32);

    // What PostgreSQL keeps: a SCRAM verifier of exactly this password, and
    // VALID UNTIL the lease's end.
    let (until, verifier) = t.role(&user).await.expect("the role exists");
    assert!(scram_matches(&verifier, &password), "{verifier}");
    assert!(!scram_matches(&verifier, "another password"));
    let expires = epoch(issued["lease"]["expires_at"].as_str().unwrap());
    assert!((until.unwrap() - expires).abs() < 1.0, "{until:?} vs {expires}");

    // The role can run the granted query and nothing else.
    let mut c = t.login(&user, &password).await.unwrap();
    let total: i64 = sqlx::query_scalar("SELECT sum(balance)::int8 FROM accounts")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(total, 350);
    for denied in [
        "SELECT * FROM secrets",
        "INSERT INTO accounts VALUES (3, 1)",
        "UPDATE accounts SET balance = 0",
        "CREATE TABLE mine (x int)",
        "CREATE ROLE sneaky",
    ] {
        let e = c.execute(denied).await.unwrap_err().to_string();
        assert!(e.contains("permission denied"), "{denied}: {e}");
    }

    // The agent sees its lease; another agent does not.
    let other = agent(&s, "other-bot").await;
    let own: Value = s
        .http
        .get(s.url("/v1/self/leases"))
        .basic_auth(&bot.0, Some(&bot.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(own["items"].as_array().unwrap().len(), 1);
    let lease_id = issued["lease"]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/self/leases/{lease_id}/revoke");
    problem(self_post(&s, &other, &path, json!({})).await, StatusCode::NOT_FOUND).await;

    // Revocation ends the open session and drops the role.
    let done = json_ok(self_post(&s, &bot, &path, json!({})).await, StatusCode::OK).await;
    assert_eq!(done["state"], "revoked");
    assert_eq!(done["end_reason"], "revoked");
    assert!(
        c.execute("SELECT 1").await.is_err(),
        "the session outlived the revocation"
    );
    assert!(t.role(&user).await.is_none());
    let refused = t.login(&user, &password).await.unwrap_err();
    assert!(refused.contains("does not exist"), "{refused}");
    // Revoking again says it is over.
    problem(self_post(&s, &bot, &path, json!({})).await, StatusCode::CONFLICT).await;

    // Audited, with neither password in any event.
    let events = all_events(&s).await;
    let actions: Vec<&str> = events.iter().filter_map(|e| e["action"].as_str()).collect();
    for a in ["db.target.put", "db.template.put", "lease.issue", "lease.revoke"] {
        assert!(actions.iter().any(|x| x.starts_with(a)), "no {a} in {actions:?}");
    }
    let text = serde_json::to_string(&events).unwrap();
    assert!(!text.contains(ADMIN_PASSWORD));
    assert!(!text.contains(&password));
    // The connection string is sealed at rest.
    if backend == Backend::Sqlite {
        let file = std::fs::read(s.database.dir.path().join("idv.db")).unwrap();
        assert!(
            !file
                .windows(ADMIN_PASSWORD.len())
                .any(|w| w == ADMIN_PASSWORD.as_bytes())
        );
    }
}

async fn leases_renew_up_to_their_maximum_and_expire(backend: Backend) {
    let t = Target::create("leases_renew…").await;
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    setup(&s, &t, 60, 150).await;
    let bot = agent(&s, "renewing-bot").await;
    let issued = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    let id = issued["lease"]["id"].as_str().unwrap().to_owned();
    let user = issued["username"].as_str().unwrap().to_owned();
    assert_eq!(issued["lease"]["ttl_secs"], 60);

    // A TTL past the template's maximum is cut to it.
    let long = json_ok(creds(&s, &bot, json!({"ttl": "1h"})).await, StatusCode::CREATED).await;
    assert_eq!(long["lease"]["ttl_secs"], 150);
    problem(
        creds(&s, &bot, json!({"ttl": 0})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    clock.advance_secs(30);
    let path = format!("/v1/self/leases/{id}/renew");
    let r = json_ok(
        self_post(&s, &bot, &path, json!({"increment": 100})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(r["ttl_secs"], 100);
    let (until, _) = t.role(&user).await.unwrap();
    assert!((until.unwrap() - epoch(r["expires_at"].as_str().unwrap())).abs() < 1.0);
    // An administrator renews too, but never past the maximum (150 s after issue).
    clock.advance_secs(30);
    let r = s
        .req(Method::POST, &format!("/v1/leases/{id}/renew"))
        .json(&json!({"increment": "1h"}))
        .send()
        .await
        .unwrap();
    let r = json_ok(r, StatusCode::OK).await;
    assert_eq!(r["expires_at"], r["max_expires_at"]);
    assert_eq!(r["ttl_secs"], 90);
    assert_eq!(r["renewable"], false);
    // At the maximum a renewal changes nothing.
    let again = json_ok(self_post(&s, &bot, &path, json!({})).await, StatusCode::OK).await;
    assert_eq!(again["expires_at"], r["expires_at"]);
    problem(
        self_post(&s, &bot, &path, json!({"increment": 0})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;

    // At its end the job revokes it: the role is dropped.
    clock.advance_secs(91);
    eventually("the expired lease is revoked", || async {
        lease(&s, &id).await["state"] == "revoked"
    })
    .await;
    let l = lease(&s, &id).await;
    assert_eq!(l["end_reason"], "expired");
    assert!(t.role(&user).await.is_none());
    problem(self_post(&s, &bot, &path, json!({})).await, StatusCode::CONFLICT).await;
}

async fn a_target_that_is_down_leaves_the_revocation_pending_until_it_is_back(backend: Backend) {
    let t = Target::create("a_target_that_is_down…").await;
    let s = start_manual(backend).await;
    let clock = s.clock.clone().unwrap();
    setup(&s, &t, 600, 3600).await;
    let bot = agent(&s, "db-bot").await;
    let issued = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    let id = issued["lease"]["id"].as_str().unwrap().to_owned();
    let user = issued["username"].as_str().unwrap().to_owned();

    t.set_reachable(false).await;
    // Issuing fails cleanly (502) and leaves no lease behind.
    problem(creds(&s, &bot, json!({})).await, StatusCode::BAD_GATEWAY).await;
    let r = s
        .req(Method::POST, &format!("/v1/leases/{id}/revoke"))
        .send()
        .await
        .unwrap();
    let l = json_ok(r, StatusCode::ACCEPTED).await;
    assert_eq!(l["state"], "revocation_pending");
    assert!(t.role(&user).await.is_some());

    // Retried with backoff, never forgotten: still pending after a few tries.
    for _ in 0..3 {
        clock.advance_secs(3600);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let l = lease(&s, &id).await;
    assert_eq!(l["state"], "revocation_pending", "{l}");
    assert!(l["last_error"].as_str().is_some_and(|e| !e.is_empty()), "{l}");

    t.set_reachable(true).await;
    clock.advance_secs(3600);
    eventually("the pending revocation completes", || async {
        lease(&s, &id).await["state"] == "revoked"
    })
    .await;
    assert!(t.role(&user).await.is_none());
    let pending = get(&s, "/v1/leases?state=revocation_pending").await;
    assert_eq!(pending["items"].as_array().unwrap().len(), 0, "{pending}");
}

async fn a_crash_between_create_role_and_activation_leaves_no_role_behind(backend: Backend) {
    let t = Target::create("a_crash_between…").await;
    let s = start_manual(backend).await;
    setup(&s, &t, 600, 3600).await;
    let bot = agent(&s, "crash-bot").await;
    let issued = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    let id = issued["lease"]["id"].as_str().unwrap().to_owned();
    let user = issued["username"].as_str().unwrap().to_owned();
    // The server dies after CREATE ROLE but before the lease's activation
    // commits: the store holds the lease as `pending`, the role exists, and
    // the revocation job is still at the issue deadline.
    let clock = s.clock.clone().unwrap();
    let token = s.token.clone();
    let database = s.stop().await;
    let mut conn = db(&database.url).await;
    let deadline = clock.now().as_micros() + 120_000_000;
    assert_eq!(
        exec(
            &mut conn,
            &format!("UPDATE leases SET state = 'pending' WHERE id = '{id}'")
        )
        .await,
        1
    );
    assert_eq!(
        exec(
            &mut conn,
            &format!("UPDATE jobs SET run_at = {deadline} WHERE kind = 'lease.revoke' AND target_id = '{id}'")
        )
        .await,
        1
    );
    drop(conn);
    let s = TestServer::start_with(
        backend,
        idv_testkit::Options {
            clock: Some(clock.clone()),
            database: Some(database),
            token: Some(token),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(lease(&s, &id).await["state"], "pending");
    assert!(t.role(&user).await.is_some());
    // At the issue deadline the job finds the lease never activated and
    // drops the role.
    clock.advance_secs(121);
    eventually("the incomplete lease ends", || async {
        lease(&s, &id).await["state"] == "revoked"
    })
    .await;
    assert_eq!(lease(&s, &id).await["end_reason"], "incomplete");
    assert!(t.role(&user).await.is_none());
}

async fn the_sweeper_drops_orphans_and_nothing_else(backend: Backend) {
    let t = Target::create("the_sweeper…").await;
    let s = TestServer::start(backend).await;
    setup(&s, &t, 600, 3600).await;
    let bot = agent(&s, "sweep-bot").await;
    let kept = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    let lost = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    // A restored backup of the store forgot the second lease; a stranger
    // role shares our prefix without our mark.
    let mut conn = db(&s.database.url).await;
    let lost_id = lost["lease"]["id"].as_str().unwrap();
    exec(&mut conn, &format!("DELETE FROM jobs WHERE target_id = '{lost_id}'")).await;
    assert_eq!(
        exec(&mut conn, &format!("DELETE FROM leases WHERE id = '{lost_id}'")).await,
        1
    );
    let stranger = format!("{}stranger", t.prefix);
    t.admin()
        .await
        .execute(format!("CREATE ROLE {stranger}").as_str())
        .await
        .unwrap();

    let r = s.req(Method::POST, "/v1/db/targets/ledger/sweep").send().await.unwrap();
    let swept = json_ok(r, StatusCode::OK).await;
    assert_eq!(swept["found"], 2, "{swept}");
    assert_eq!(swept["dropped"], json!([lost["username"]]));
    let left = t.prefixed_roles().await;
    assert!(
        left.contains(&kept["username"].as_str().unwrap().to_owned()),
        "{left:?}"
    );
    assert!(left.contains(&stranger), "{left:?}");
    assert_eq!(left.len(), 2, "{left:?}");
}

async fn suspending_an_agent_revokes_its_leases(backend: Backend) {
    let t = Target::create("suspending…").await;
    let s = TestServer::start(backend).await;
    setup(&s, &t, 600, 3600).await;
    let bot = agent(&s, "suspect-bot").await;
    let a = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    let b = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    assert_eq!(
        transition(&s, &s.token, &bot.0, "suspend", "investigation")
            .await
            .status(),
        200
    );
    for l in [&a, &b] {
        let id = l["lease"]["id"].as_str().unwrap().to_owned();
        eventually("the suspended agent's lease is revoked", || async {
            lease(&s, &id).await["state"] == "revoked"
        })
        .await;
        assert_eq!(lease(&s, &id).await["end_reason"], "agent_disabled");
        assert!(t.role(l["username"].as_str().unwrap()).await.is_none());
    }
    // And it gets no new ones.
    problem(creds(&s, &bot, json!({})).await, StatusCode::UNAUTHORIZED).await;
    let listed = get(&s, &format!("/v1/leases?agent={}&state=revoked", bot.0)).await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 2);
}

async fn targets_and_templates_are_checked_and_tenant_scoped(backend: Backend) {
    let t = Target::create("targets_and_templates…").await;
    let s = TestServer::start(backend).await;
    let put_target = |body: Value| s.req(Method::PUT, "/v1/db/targets/ledger").json(&body).send();
    for bad in [
        json!({"connection_url": "mysql://root@localhost/x"}),
        json!({"connection_url": "postgres://postgres@127.0.0.1:1/nowhere"}),
        json!({"connection_url": t.admin_url(), "role_prefix": "Bad-Prefix"}),
        json!({"connection_url": t.admin_url(), "extra": 1}),
    ] {
        let r = put_target(bad.clone()).await.unwrap();
        let status = r.status();
        assert!(
            status == StatusCode::UNPROCESSABLE_ENTITY || status == StatusCode::BAD_REQUEST,
            "{bad}: {status}"
        );
        problem(r, status).await;
    }
    setup(&s, &t, 600, 3600).await;
    let put_template = |name: &str, body: Value| {
        s.req(Method::PUT, &format!("/v1/db/templates/{name}"))
            .json(&body)
            .send()
    };
    for stmt in [
        "GRANT postgres TO {{name}}",
        "GRANT SELECT ON accounts TO {{name}} WITH GRANT OPTION",
        "ALTER ROLE {{name}} SUPERUSER",
        "GRANT SELECT ON accounts TO {{name}}; DROP TABLE accounts",
        "GRANT SELECT ON accounts TO public",
    ] {
        let r = put_template("evil", json!({"target": "ledger", "statements": [stmt]}))
            .await
            .unwrap();
        let p = problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert!(p["detail"].as_str().unwrap().contains("statement"), "{stmt}: {p}");
    }
    let r = put_template(
        "x",
        json!({"target": "nowhere", "statements": ["GRANT SELECT ON accounts TO {{name}}"]}),
    )
    .await
    .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;
    let r = put_template(
        "x",
        json!({"target": "ledger", "statements": ["GRANT SELECT ON accounts TO {{name}}"], "default_ttl": "2h", "max_ttl": "1h"}),
    )
    .await
    .unwrap();
    problem(r, StatusCode::UNPROCESSABLE_ENTITY).await;

    // A target in use cannot go.
    let bot = agent(&s, "scoped-bot").await;
    let issued = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    // Nor move while its leases' roles live where it points now; its
    // credentials may change.
    let r = put_target(json!({"connection_url": t.admin_url(), "role_prefix": "elsewhere_"}))
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;
    let r = put_target(json!({"connection_url": t.url("postgres", "a-new-password"), "role_prefix": t.prefix}))
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    let r = s.req(Method::DELETE, "/v1/db/targets/ledger").send().await.unwrap();
    problem(r, StatusCode::CONFLICT).await;
    let r = s
        .req(Method::DELETE, "/v1/db/templates/ledger-ro")
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::CONFLICT).await;

    // Another tenant sees none of it.
    let (other, _) = crate::tenant_token(&s, "other-bank", "admin").await;
    let id = issued["lease"]["id"].as_str().unwrap();
    for path in [
        "/v1/db/targets/ledger".to_owned(),
        "/v1/db/templates/ledger-ro".to_owned(),
        format!("/v1/leases/{id}"),
    ] {
        let r = s.req_as(&other, Method::GET, &path).send().await.unwrap();
        problem(r, StatusCode::NOT_FOUND).await;
    }
    let listed = crate::get_as(&s, &other, "/v1/leases").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 0);
    let r = s
        .req_as(&other, Method::POST, &format!("/v1/leases/{id}/revoke"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::NOT_FOUND).await;
    // An auditor may read but not change.
    let (auditor, _) = crate::tenant_token(&s, "default", "auditor").await;
    crate::get_as(&s, &auditor, "/v1/db/targets").await;
    let r = s
        .req_as(&auditor, Method::POST, &format!("/v1/leases/{id}/revoke"))
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::FORBIDDEN).await;

    // Revoked, then both go.
    let r = s
        .req(Method::POST, &format!("/v1/leases/{id}/revoke"))
        .send()
        .await
        .unwrap();
    json_ok(r, StatusCode::OK).await;
    let r = s
        .req(Method::DELETE, "/v1/db/templates/ledger-ro")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = s.req(Method::DELETE, "/v1/db/targets/ledger").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
}

async fn concurrent_requests_and_revocations_on_one_template_all_succeed(backend: Backend) {
    let t = Target::create("concurrent_requests…").await;
    let s = TestServer::start(backend).await;
    setup(&s, &t, 600, 3600).await;
    let bot = agent(&s, "busy-bot").await;
    // Grants to one table from many roles at once touch one ACL: PostgreSQL
    // refuses concurrent updates of it unless we serialise them.
    let issued = futures_util::future::join_all((0..8).map(|_| creds(&s, &bot, json!({})))).await;
    let mut ids = Vec::new();
    for r in issued {
        ids.push(
            json_ok(r, StatusCode::CREATED).await["lease"]["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(t.prefixed_roles().await.len(), 8);
    let paths: Vec<String> = ids.iter().map(|id| format!("/v1/self/leases/{id}/revoke")).collect();
    let revoked = futures_util::future::join_all(paths.iter().map(|p| self_post(&s, &bot, p, json!({})))).await;
    for r in revoked {
        assert_eq!(json_ok(r, StatusCode::OK).await["state"], "revoked");
    }
    assert!(t.prefixed_roles().await.is_empty());
}

/// On the real clock (the writer's `now` comes after the one the renewal
/// was computed from): renewing to the maximum stores exactly the role's
/// `VALID UNTIL`, says `renewable: false`, and further renewals change
/// nothing, on the target or on the record.
async fn a_renewal_to_the_maximum_records_what_the_target_has_and_then_changes_nothing(backend: Backend) {
    let t = Target::create("a_renewal_to_the_maximum…").await;
    let s = TestServer::start(backend).await;
    setup(&s, &t, 60, 120).await;
    let bot = agent(&s, "max-bot").await;
    let issued = json_ok(creds(&s, &bot, json!({})).await, StatusCode::CREATED).await;
    let id = issued["lease"]["id"].as_str().unwrap().to_owned();
    let user = issued["username"].as_str().unwrap().to_owned();
    // A fraction of a second into the lease, so the time left is not whole
    // seconds.
    tokio::time::sleep(std::time::Duration::from_millis(350)).await;
    let renew = || async {
        let r = s
            .req(Method::POST, &format!("/v1/leases/{id}/renew"))
            .json(&json!({"increment": "1h"}))
            .send()
            .await
            .unwrap();
        json_ok(r, StatusCode::OK).await
    };
    let renewals = || async {
        all_events(&s)
            .await
            .iter()
            .filter(|e| e["action"] == "lease.renew")
            .count()
    };
    let r = renew().await;
    assert_eq!(r["expires_at"], r["max_expires_at"], "{r}");
    assert_eq!(r["renewable"], false, "{r}");
    let stored = lease(&s, &id).await;
    assert_eq!(stored["expires_at"], r["max_expires_at"], "{stored}");
    assert_eq!(stored["renewable"], false);
    let (until, _) = t.role(&user).await.unwrap();
    let on_target = until.unwrap();
    assert!(
        (on_target - epoch(stored["expires_at"].as_str().unwrap())).abs() < 1e-5,
        "VALID UNTIL {on_target} but the lease says {}",
        stored["expires_at"]
    );
    assert_eq!(renewals().await, 1);
    // At the maximum a renewal changes nothing and records nothing.
    for _ in 0..2 {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let again = renew().await;
        assert_eq!(again["expires_at"], stored["expires_at"], "{again}");
        assert_eq!(again["renewable"], false);
        let self_renewed = json_ok(
            self_post(&s, &bot, &format!("/v1/self/leases/{id}/renew"), json!({})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(self_renewed["expires_at"], stored["expires_at"]);
    }
    assert_eq!(renewals().await, 1);
    assert_eq!(t.role(&user).await.unwrap().0, Some(on_target));
    assert_eq!(lease(&s, &id).await["expires_at"], stored["expires_at"]);
}
