//! `idv db …` and `idv lease …` against a real server and a real target
//! database on the test PostgreSQL (nextest's default profile skips them).

use idv_testkit::{Backend, ScratchDatabase, TestServer, backend_tests};
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::support::{IDV, fails, idv, json, ok};

backend_tests!(db_and_lease_commands);

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
    let scratch = ScratchDatabase::create("db_and_lease_commands", 'c').await;
    let (database, prefix, hostport) = (scratch.name.clone(), scratch.prefix.clone(), scratch.hostport.clone());
    let url = scratch.url("postgres", "");
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
