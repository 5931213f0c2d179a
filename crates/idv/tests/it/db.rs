//! `idv db …` and `idv lease …` against a real server and a real target
//! database on the test PostgreSQL (skipped without one).

use idv_core::clock::Clock as _;
use idv_testkit::{Backend, TestServer, backend_tests, postgres_url};
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::support::{IDV, fails, idv, json, ok};

backend_tests!(db_and_lease_commands);

/// Drops the scratch database and our roles however the test ends.
struct Cleanup {
    base: String,
    database: String,
    prefix: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let (base, database, prefix) = (self.base.clone(), self.database.clone(), self.prefix.clone());
        // A thread of its own: we may be inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok(mut c) = PgConnection::connect(&base).await else {
                    return;
                };
                let _ = c
                    .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
                    .await;
                let roles: Vec<String> =
                    sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)")
                        .bind(&prefix)
                        .fetch_all(&mut c)
                        .await
                        .unwrap_or_default();
                for r in roles {
                    let _ = c.execute(format!("DROP ROLE IF EXISTS \"{r}\"").as_str()).await;
                }
            });
        })
        .join();
    }
}

/// Runs `idv args…` as the agent (its client secret in the environment).
fn idv_agent(s: &TestServer, id: &str, secret: &str, args: &[&str]) -> std::process::Output {
    eprintln!("$ idv {} (as agent {id})", args.join(" "));
    std::process::Command::new(IDV)
        .args(args)
        .env("IDV_ADDR", &s.base)
        .env_remove("IDV_TOKEN")
        .env("IDV_CLIENT_ID", id)
        .env("IDV_CLIENT_SECRET", secret)
        .output()
        .unwrap()
}

async fn db_and_lease_commands(backend: Backend) {
    let Some(base) = postgres_url() else {
        eprintln!("SKIPPED: IDV_TEST_POSTGRES_URL not set; `db_and_lease_commands` needs a PostgreSQL target");
        return;
    };
    let n = idv_core::clock::SystemClock::default().new_id().as_u128() as u32;
    let database = format!("idv_cli_target_{n:08x}");
    let prefix = format!("c{:06x}_", n & 0xff_ffff);
    let mut admin = PgConnection::connect(&base).await.unwrap();
    admin
        .execute(format!("CREATE DATABASE {database}").as_str())
        .await
        .unwrap();
    let _cleanup = Cleanup {
        base: base.clone(),
        database: database.clone(),
        prefix: prefix.clone(),
    };
    let hostport = base
        .split_once("://")
        .map_or(base.as_str(), |(_, r)| r)
        .rsplit_once('@')
        .map_or(base.as_str(), |(_, h)| h)
        .split(['/', '?'])
        .next()
        .unwrap()
        .to_owned();
    let url = format!("postgres://postgres@{hostport}/{database}");
    let mut target = PgConnection::connect(&url).await.unwrap();
    target.execute("CREATE TABLE accounts (id int)").await.unwrap();

    let s = TestServer::start(backend).await;
    let t = json(idv(
        &s,
        &[
            "db",
            "target",
            "set",
            "ledger",
            "--url",
            &url,
            "--role-prefix",
            &prefix,
            "--json",
        ],
    ));
    assert_eq!(t["database"], database.as_str());
    assert!(ok(idv(&s, &["db", "target", "list"])).contains(&database));
    let err = fails(idv(
        &s,
        &[
            "db",
            "template",
            "set",
            "evil",
            "--target",
            "ledger",
            "--grant",
            "GRANT postgres TO {{name}}",
        ],
    ));
    assert!(err.contains("422"), "{err}");
    let dir = tempfile::tempdir().unwrap();
    let grants = dir.path().join("grants.sql");
    std::fs::write(
        &grants,
        "GRANT SELECT ON accounts TO {{name}};\nGRANT USAGE ON SCHEMA public TO {{name}};\n",
    )
    .unwrap();
    let file = grants.to_str().unwrap();
    let tpl = json(idv(
        &s,
        &[
            "db",
            "template",
            "set",
            "ro",
            "--target",
            "ledger",
            "--file",
            file,
            "--max-ttl",
            "2h",
            "--json",
        ],
    ));
    assert_eq!(tpl["statements"].as_array().unwrap().len(), 2);
    assert_eq!(tpl["max_ttl_secs"], 7200);
    assert!(ok(idv(&s, &["db", "template", "get", "ro"])).contains("GRANT SELECT ON TABLE \"accounts\""));
    let policy = dir.path().join("p.cedar");
    std::fs::write(
        &policy,
        "permit(principal, action == Action::\"connect\", resource == DatabaseTemplate::\"ro\");",
    )
    .unwrap();
    ok(idv(&s, &["policy", "upload", policy.to_str().unwrap(), "--activate"]));

    let agent = json(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "cli-db-bot",
            "--owner",
            "o",
            "--purpose",
            "p",
            "--json",
        ],
    ));
    let id = agent["id"].as_str().unwrap().to_owned();
    ok(idv(&s, &["agent", "activate", &id, "--reason", "test"]));
    let cred = json(idv(
        &s,
        &["credential", "create", &id, "--type", "client-secret", "--json"],
    ));
    let secret = cred["client_secret"].as_str().unwrap().to_owned();

    // Without agent credentials the agent command says how to give them.
    let err = fails(idv(&s, &["db", "creds", "ro"]));
    assert!(err.contains("IDV_CLIENT_ID"), "{err}");
    let issued = json(idv_agent(
        &s,
        &id,
        &secret,
        &["db", "creds", "ro", "--ttl", "10m", "--json"],
    ));
    let user = issued["username"].as_str().unwrap().to_owned();
    let lease = issued["lease"]["id"].as_str().unwrap().to_owned();
    assert!(user.starts_with(&prefix));
    let mut c = PgConnection::connect(&format!("postgres://{user}@{hostport}/{database}"))
        .await
        .unwrap();
    c.execute("SELECT * FROM accounts").await.unwrap();
    let table = ok(idv_agent(&s, &id, &secret, &["db", "creds", "ro"]));
    assert!(table.contains("password") && table.contains("lease_id"), "{table}");

    let mine = json(idv_agent(&s, &id, &secret, &["lease", "list", "--json"]));
    assert_eq!(mine["items"].as_array().unwrap().len(), 2);
    let all = ok(idv(&s, &["lease", "list", "--agent-id", &id, "--state", "active"]));
    assert!(all.starts_with("ID") && all.contains(&user), "{all}");
    let renewed = ok(idv_agent(
        &s,
        &id,
        &secret,
        &["lease", "renew", &lease, "--increment", "1h"],
    ));
    assert!(renewed.contains("now ends at"), "{renewed}");
    let ttl = json(idv(&s, &["lease", "get", &lease, "--json"]))["ttl_secs"]
        .as_i64()
        .unwrap();
    assert!((3590..=3600).contains(&ttl), "{ttl}");
    assert!(ok(idv_agent(&s, &id, &secret, &["lease", "revoke", &lease])).contains("dropped"));
    assert!(c.execute("SELECT 1").await.is_err());
    let err = fails(idv(&s, &["lease", "revoke", &lease]));
    assert!(err.contains("409"), "{err}");
    let rest = json(idv(&s, &["lease", "list", "--state", "active", "--json"]));
    for l in rest["items"].as_array().unwrap() {
        ok(idv(&s, &["lease", "revoke", l["id"].as_str().unwrap()]));
    }
    let swept = json(idv(&s, &["db", "target", "sweep", "ledger", "--json"]));
    assert_eq!(swept["found"], 0);
    ok(idv(&s, &["db", "template", "delete", "ro"]));
    assert!(ok(idv(&s, &["db", "target", "delete", "ledger"])).contains("Deleted target"));
    drop(target);
    drop(c);
}
