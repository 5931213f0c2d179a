//! Scheduled rotation at scale: N agents each with a client secret, a
//! tenant rotation policy that makes them all due within the same minute,
//! and `client_credentials` issuance measured before and while the durable
//! jobs rotate them (default: 100,000 agents).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde_json::json;

use crate::latency::{Budget, Latency, drive};
use crate::server::Server;
use crate::tokens::{admin, agent, form};

/// `idv-bench rotation`.
#[derive(Debug, clap::Args)]
pub struct RotationArgs {
    /// Agents, each with a client secret to rotate.
    #[arg(long, default_value_t = 100_000)]
    pub agents: usize,
    /// The policy's `every` in seconds (60 is the shortest a policy allows).
    #[arg(long, default_value_t = 60)]
    pub every_secs: u64,
    /// Concurrent issuance clients.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Seconds of each issuance measurement.
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
}

/// What was measured.
#[derive(Debug, Serialize)]
pub struct RotationReport {
    /// Agents with a credential.
    pub agents: usize,
    /// Credentials issued through the API per second (setup).
    pub credentials_per_sec: f64,
    /// Setting the tenant policy (it schedules every credential).
    pub policy_put_secs: f64,
    /// Credentials it scheduled.
    pub scheduled: u64,
    /// Seconds from the first rotation job to the last.
    pub rotation_secs: f64,
    /// Rotations per second over that time.
    pub rotations_per_sec: f64,
    /// Issuance with nothing else running.
    pub issue_before: Latency,
    /// Issuance while the rotations run.
    pub issue_during: Latency,
}

/// `idv_jobs_run_total` and `idv_jobs_failed_total`.
async fn jobs(server: &Server) -> anyhow::Result<(u64, u64)> {
    let text = String::from_utf8(server.get("/metrics").await?)?;
    let read = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| anyhow!("no {name} in /metrics"))
    };
    Ok((read("idv_jobs_run_total ")?, read("idv_jobs_failed_total ")?))
}

async fn issue(
    server: &Server,
    a: &Arc<crate::tokens::Agent>,
    args: &RotationArgs,
    what: &'static str,
) -> anyhow::Result<Latency> {
    let url = Arc::new(format!("{}/oauth2/token", server.base));
    let http = server.http().clone();
    let a = a.clone();
    drive(
        Budget {
            requests: 10_000_000,
            time: Some(Duration::from_secs(args.secs)),
        },
        args.clients,
        crate::bar(0, what),
        move |_| {
            let (h, u, a) = (http.clone(), url.clone(), a.clone());
            async move {
                form(&h, &u, &a.id, &a.secret, &[("grant_type", "client_credentials")])
                    .await
                    .map(drop)
            }
        },
    )
    .await
}

/// Runs the benchmark.
pub async fn run(args: &RotationArgs, server: &Arc<Server>) -> anyhow::Result<RotationReport> {
    // The issuing agent is made first, so its own rotation comes first and
    // it keeps working through the overlap.
    let client = Arc::new(agent(server, "bench-issuer").await?);
    crate::say(&format!("loading {} agents", args.agents));
    let (_, ids) = crate::load::bulk(server, args.agents, 10_000, 4, crate::bar(args.agents, "agents")).await?;
    let ids = Arc::new(ids);
    crate::say("a client secret for each");
    let t = Instant::now();
    let (s2, ids2) = (server.clone(), ids.clone());
    drive(
        Budget {
            requests: args.agents,
            time: None,
        },
        16,
        crate::bar(args.agents, "credentials"),
        move |i| {
            let (s, ids) = (s2.clone(), ids2.clone());
            async move {
                let id = ids.get(i).ok_or_else(|| anyhow!("no agent {i}"))?;
                admin(
                    &s,
                    &format!("/v1/agents/{id}/credentials"),
                    json!({"type": "client_secret"}),
                )
                .await
                .map(drop)
            }
        },
    )
    .await?;
    let credentials_per_sec = args.agents as f64 / t.elapsed().as_secs_f64().max(1e-9);

    crate::say("issuance before");
    let issue_before = issue(server, &client, args, "issue").await?;

    crate::say(&format!("tenant rotation policy: every {} s", args.every_secs));
    let (ran0, failed0) = jobs(server).await?;
    let t = Instant::now();
    let res = server
        .http()
        .put(format!("{}/v1/rotation-policies/tenant", server.base))
        .bearer_auth(server.token())
        .json(&json!({"every": args.every_secs, "overlap": "1h"}))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("rotation policy: {} {}", res.status(), res.text().await?);
    }
    let policy_put_secs = t.elapsed().as_secs_f64();
    let p: serde_json::Value = res.json().await?;
    let scheduled = p
        .get("credentials_scheduled")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| anyhow!("no credentials_scheduled in {p}"))?;
    let total = scheduled;

    crate::say("waiting for the first rotations");
    let started = Instant::now();
    loop {
        if jobs(server).await?.0 > ran0 {
            break;
        }
        if started.elapsed() > Duration::from_secs(args.every_secs + 600) {
            bail!("no rotation job ran");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = Instant::now();
    crate::say("issuance while the rotations run");
    let issue_during = issue(server, &client, args, "issue").await?;
    let bar = crate::bar(usize::try_from(total).unwrap_or(usize::MAX), "rotations");
    loop {
        let (ran, failed) = jobs(server).await?;
        bar.set_position(ran - ran0);
        if failed > failed0 {
            bail!("{} rotation jobs failed", failed - failed0);
        }
        if ran - ran0 >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish_and_clear();
    let rotation_secs = first.elapsed().as_secs_f64();
    Ok(RotationReport {
        agents: args.agents,
        credentials_per_sec,
        policy_put_secs,
        scheduled,
        rotation_secs,
        rotations_per_sec: total as f64 / rotation_secs.max(1e-9),
        issue_before,
        issue_during,
    })
}

impl RotationReport {
    /// The human-readable table.
    pub fn print_table(&self) {
        println!(
            "agents with a client secret: {} (issued at {:.0}/s)",
            self.agents, self.credentials_per_sec
        );
        println!(
            "tenant policy set in {:.2} s, scheduling {} rotations",
            self.policy_put_secs, self.scheduled
        );
        println!(
            "rotations: {} in {:.1} s ({:.0}/s), each with its successor sealed for pick-up",
            self.scheduled, self.rotation_secs, self.rotations_per_sec
        );
        for (what, l) in [("before", &self.issue_before), ("during", &self.issue_during)] {
            println!(
                "client_credentials {what} ({} clients): {:.0} /s, p50 {} us, p99 {} us",
                l.clients, l.per_sec, l.p50_us, l.p99_us
            );
        }
    }
}
