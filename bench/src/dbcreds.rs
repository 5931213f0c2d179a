//! Dynamic PostgreSQL credentials: full issue + revoke cycles against a real
//! PostgreSQL target. Each cycle is an agent asking for a credential (a
//! policy decision, `CREATE ROLE … VALID UNTIL` with a grant in one target
//! transaction, two audited store commits) and then revoking it (sessions
//! terminated, `DROP OWNED`, `DROP ROLE`, two more commits).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Connection as _, Executor as _, PgConnection};

use crate::latency::{Budget, Latency, drive};
use crate::server::Server;
use crate::tokens::{agent, text};

/// `idv-bench dbcreds`.
#[derive(Debug, clap::Args)]
pub struct DbCredsArgs {
    /// A PostgreSQL superuser (or `CREATEROLE` + `CREATEDB`) URL where a
    /// scratch target database is created and dropped.
    #[arg(
        long,
        env = "IDV_BENCH_TARGET_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub target_url: String,
    /// Concurrent agents cycling.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// Seconds of measurement.
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct DbCredsReport {
    /// Issue + revoke cycles.
    pub cycles: Latency,
    /// Roles left on the target afterwards (must be 0).
    pub roles_left: i64,
}

/// The target URL with its database replaced by `database`.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| anyhow!("--target-url is not a URL: {url}"))?;
    let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
    Ok(format!("{scheme}://{authority}/{database}"))
}

async fn post_as(server: &Server, a: &crate::tokens::Agent, path: &str, body: Value) -> anyhow::Result<Value> {
    let res = server
        .http()
        .post(format!("{}{path}", server.base))
        .basic_auth(&a.id, Some(&a.secret))
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    if !status.is_success() {
        bail!("{path}: {status} {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

async fn admin_put(server: &Server, path: &str, body: Value) -> anyhow::Result<()> {
    let res = server
        .http()
        .put(format!("{}{path}", server.base))
        .bearer_auth(server.token())
        .json(&body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("{path}: {} {}", res.status(), res.text().await?);
    }
    Ok(())
}

/// Runs the benchmark.
pub async fn run(args: &DbCredsArgs, server: &Arc<Server>) -> anyhow::Result<DbCredsReport> {
    let database = format!("idv_bench_target_{:08x}", rand::random::<u32>());
    let prefix = format!("b{:06x}_", rand::random::<u32>() & 0xff_ffff);
    let mut admin = PgConnection::connect(&args.target_url).await?;
    admin.execute(format!("CREATE DATABASE {database}").as_str()).await?;
    let target = with_database(&args.target_url, &database)?;
    let measured = measure(args, server, &target, &prefix).await;
    let roles_left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, $1)")
        .bind(&prefix)
        .fetch_one(&mut admin)
        .await?;
    admin
        .execute(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)").as_str())
        .await?;
    Ok(DbCredsReport {
        cycles: measured?,
        roles_left,
    })
}

async fn measure(args: &DbCredsArgs, server: &Arc<Server>, target: &str, prefix: &str) -> anyhow::Result<Latency> {
    let mut c = PgConnection::connect(target).await?;
    c.execute("CREATE TABLE accounts (id int, balance int)").await?;
    c.close().await?;
    admin_put(
        server,
        "/v1/db/targets/bench",
        json!({"connection_url": target, "role_prefix": prefix}),
    )
    .await?;
    admin_put(
        server,
        "/v1/db/templates/bench-ro",
        json!({"target": "bench", "statements": ["GRANT SELECT ON accounts TO {{name}}"]}),
    )
    .await?;
    crate::tokens::admin(
        server,
        "/v1/policies",
        json!({"policies": "permit(principal, action == Action::\"connect\", resource == DatabaseTemplate::\"bench-ro\");",
               "activate": true}),
    )
    .await?;
    let mut agents = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        agents.push(Arc::new(agent(server, &format!("db-bench-{i}")).await?));
    }
    let agents = Arc::new(agents);
    crate::say(&format!(
        "issue + revoke cycles, {} agents, {} s",
        args.clients, args.secs
    ));
    let s = server.clone();
    drive(
        Budget {
            requests: 10_000_000,
            time: Some(Duration::from_secs(args.secs)),
        },
        args.clients,
        crate::bar(0, "cycles"),
        move |i| {
            let (s, agents) = (s.clone(), agents.clone());
            async move {
                let a = agents.get(i % agents.len()).ok_or_else(|| anyhow!("no agent"))?;
                let issued = post_as(&s, a, "/v1/self/db/creds/bench-ro", json!({})).await?;
                let lease = issued.get("lease").ok_or_else(|| anyhow!("no lease in {issued}"))?;
                let id = text(lease, "id")?;
                let done = post_as(&s, a, &format!("/v1/self/leases/{id}/revoke"), json!({})).await?;
                if text(&done, "state")? != "revoked" {
                    bail!("lease {id} is not revoked: {done}");
                }
                Ok(())
            }
        },
    )
    .await
}

impl DbCredsReport {
    /// The human-readable table.
    pub fn print_table(&self) {
        let l = &self.cycles;
        println!(
            "dynamic credential issue + revoke ({} agents): {:.0} cycles/s, p50 {} us, p99 {} us ({} cycles)",
            l.clients, l.per_sec, l.p50_us, l.p99_us, l.requests
        );
        println!("roles left on the target afterwards: {}", self.roles_left);
    }
}
