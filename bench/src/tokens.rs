//! `idv-bench tokens`: OAuth throughput of the in-process server —
//! `client_credentials` issuance (EdDSA, every issuance audited durably),
//! introspection and RFC 8693 exchange — and, with the same load generator
//! and concurrency, `client_credentials` against `oidc-provider` (the
//! OpenID-certified Node.js server, `bench/oidc-provider/`) on this machine.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use clap::Args;
use idv_api::TokenResponseBody;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::latency::{Budget, Latency, drive};
use crate::server::Server;

/// Options of `idv-bench tokens`.
#[derive(Debug, Args)]
pub struct TokensArgs {
    /// Concurrent clients (connections) of each phase.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Each phase stops after this many seconds…
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// …or this many requests.
    #[arg(long, default_value_t = 1_000_000)]
    pub requests: usize,
    /// The `oidc-provider` baseline (`server.js` and `node_modules`); skipped
    /// when the folder has no `node_modules` (run `npm ci` there first).
    #[arg(long, default_value = "bench/oidc-provider")]
    pub oidc_provider: PathBuf,
    /// The Node.js executable.
    #[arg(long, default_value = "node")]
    pub node: String,
}

/// What `idv-bench tokens` measured.
#[derive(Debug, Serialize)]
pub struct TokensReport {
    /// `client_credentials` at IdentityVault.
    pub issue: Latency,
    /// RFC 7662 introspection of an access token.
    pub introspect: Latency,
    /// RFC 8693 token exchange (agent acting for another under a delegation).
    pub exchange: Latency,
    /// `client_credentials` at oidc-provider, if it ran.
    pub oidc_provider: Option<Baseline>,
}

/// The baseline's result.
#[derive(Debug, Serialize)]
pub struct Baseline {
    /// Its version, from its package.json.
    pub version: String,
    /// Its `client_credentials` latency.
    pub issue: Latency,
    /// IdentityVault tokens/s divided by oidc-provider tokens/s.
    pub ratio: f64,
}

pub(crate) struct Agent {
    pub(crate) id: String,
    pub(crate) secret: String,
}

/// A string member of a JSON object.
pub(crate) fn text<'a>(v: &'a Value, key: &str) -> anyhow::Result<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("no `{key}` in {v}"))
}

/// A token endpoint's answer (RFC 6749 §5.1), read as the shared wire type.
fn token_response(v: Value) -> anyhow::Result<TokenResponseBody> {
    serde_json::from_value(v.clone()).with_context(|| format!("not a token response: {v}"))
}

pub(crate) async fn admin(server: &Server, path: &str, body: Value) -> anyhow::Result<Value> {
    let res = server.post(path, serde_json::to_vec(&body)?).await?;
    Ok(serde_json::from_slice(&res)?)
}

pub(crate) async fn agent(server: &Server, name: &str) -> anyhow::Result<Agent> {
    let a = admin(
        server,
        "/v1/agents",
        json!({"name": name, "owner": "bench@bank.example", "purpose": "token benchmark",
            // `introspect`: the introspection phase asks about another agent's token.
            "allowed_scopes": ["ledger:read", "ledger:write", "introspect"]}),
    )
    .await?;
    let id = text(&a, "id")?.to_owned();
    let res = server
        .http()
        .post(format!("{}/v1/agents/{id}/activate", server.base))
        .bearer_auth(server.token())
        .json(&json!({"reason": "benchmark"}))
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("activate: {}", res.status());
    }
    let c = admin(
        server,
        &format!("/v1/agents/{id}/credentials"),
        json!({"type": "client_secret"}),
    )
    .await?;
    let secret = text(&c, "client_secret")?.to_owned();
    Ok(Agent { id, secret })
}

/// POSTs a form with Basic auth; fails unless 200. Returns the JSON body.
pub(crate) async fn form(
    http: &reqwest::Client,
    url: &str,
    user: &str,
    pass: &str,
    body: &[(&str, &str)],
) -> anyhow::Result<Value> {
    let res = http.post(url).basic_auth(user, Some(pass)).form(body).send().await?;
    let status = res.status();
    let bytes = res.bytes().await?;
    if status != reqwest::StatusCode::OK {
        bail!("{url}: {status} {}", String::from_utf8_lossy(&bytes));
    }
    Ok(serde_json::from_slice(&bytes)?)
}

fn phase(what: &'static str, args: &TokensArgs) -> (Budget, indicatif::ProgressBar) {
    let b = crate::bar(args.requests, what);
    (
        Budget {
            requests: args.requests,
            time: Some(Duration::from_secs(args.secs)),
        },
        b,
    )
}

/// Runs every phase against `server`.
pub async fn run(args: &TokensArgs, server: &Arc<Server>) -> anyhow::Result<TokensReport> {
    let a = Arc::new(agent(server, "bench-principal").await?);
    let b = Arc::new(agent(server, "bench-delegate").await?);
    admin(
        server,
        "/v1/delegations",
        json!({"delegator": {"type": "agent", "id": a.id}, "delegate": b.id,
            "scopes": ["ledger:read"], "ttl": "1h"}),
    )
    .await?;
    let http = server.http().clone();
    let token_url = Arc::new(format!("{}/oauth2/token", server.base));

    crate::say("client_credentials at IdentityVault");
    let (budget, bar) = phase("issue", args);
    let (h, u, ag) = (http.clone(), token_url.clone(), a.clone());
    let issue = drive(budget, args.clients, bar, move |_| {
        let (h, u, ag) = (h.clone(), u.clone(), ag.clone());
        async move {
            form(
                &h,
                &u,
                &ag.id,
                &ag.secret,
                &[("grant_type", "client_credentials"), ("scope", "ledger:read")],
            )
            .await
            .map(drop)
        }
    })
    .await?;

    let subject = token_response(
        form(
            &http,
            &token_url,
            &a.id,
            &a.secret,
            &[("grant_type", "client_credentials")],
        )
        .await?,
    )?
    .access_token;
    let subject = Arc::new(subject);

    crate::say("introspection");
    let (budget, bar) = phase("introspect", args);
    let introspect_url = Arc::new(format!("{}/oauth2/introspect", server.base));
    let (h, u, ag, t) = (http.clone(), introspect_url.clone(), b.clone(), subject.clone());
    let introspect = drive(budget, args.clients, bar, move |_| {
        let (h, u, ag, t) = (h.clone(), u.clone(), ag.clone(), t.clone());
        async move {
            let v = form(&h, &u, &ag.id, &ag.secret, &[("token", t.as_str())]).await?;
            if v.get("active") != Some(&json!(true)) {
                bail!("token not active: {v}");
            }
            Ok(())
        }
    })
    .await?;

    crate::say("token exchange");
    let (budget, bar) = phase("exchange", args);
    let (h, u, ag, t) = (http.clone(), token_url.clone(), b.clone(), subject.clone());
    let exchange = drive(budget, args.clients, bar, move |_| {
        let (h, u, ag, t) = (h.clone(), u.clone(), ag.clone(), t.clone());
        async move {
            form(
                &h,
                &u,
                &ag.id,
                &ag.secret,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:token-exchange"),
                    ("subject_token", t.as_str()),
                    ("subject_token_type", "urn:ietf:params:oauth:token-type:access_token"),
                ],
            )
            .await
            .map(drop)
        }
    })
    .await?;

    let oidc_provider = baseline(args, &issue).await?;
    Ok(TokensReport {
        issue,
        introspect,
        exchange,
        oidc_provider,
    })
}

/// Starts oidc-provider, drives `client_credentials` at it exactly as at
/// IdentityVault, and stops it.
async fn baseline(args: &TokensArgs, ours: &Latency) -> anyhow::Result<Option<Baseline>> {
    let dir = &args.oidc_provider;
    if !dir.join("node_modules").is_dir() {
        crate::say(&format!(
            "oidc-provider baseline skipped: {} has no node_modules (run `npm ci` there)",
            dir.display()
        ));
        return Ok(None);
    }
    let version = package_version(&dir.join("node_modules/oidc-provider/package.json"))?;
    let port = free_port()?;
    crate::say(&format!("starting oidc-provider {version} on port {port}"));
    let mut child = tokio::process::Command::new(&args.node)
        .arg("server.js")
        .current_dir(dir)
        .env("PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start {} in {}", args.node, dir.display()))?;
    let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(l) = lines.next_line().await? {
            if l.starts_with("ready") {
                return anyhow::Ok(());
            }
        }
        bail!("oidc-provider exited before it was ready")
    })
    .await
    .map_err(|_| anyhow!("oidc-provider was not ready within 30 s"))?;
    ready?;
    // Keep draining its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let url = Arc::new(format!("http://127.0.0.1:{port}/token"));
    let sample = form(
        &http,
        &url,
        CLIENT_ID,
        CLIENT_SECRET,
        &[("grant_type", "client_credentials"), ("scope", "read")],
    )
    .await?;
    let jwt = token_response(sample)?.access_token;
    let header = jwt.split('.').next().unwrap_or_default();
    crate::say(&format!("oidc-provider token header: {header}"));
    crate::say("client_credentials at oidc-provider");
    let (budget, bar) = phase("oidc-provider", args);
    let h = http.clone();
    let issue = drive(budget, args.clients, bar, move |_| {
        let (h, u) = (h.clone(), url.clone());
        async move {
            form(
                &h,
                &u,
                CLIENT_ID,
                CLIENT_SECRET,
                &[("grant_type", "client_credentials"), ("scope", "read")],
            )
            .await
            .map(drop)
        }
    })
    .await?;
    let _ = child.kill().await;
    let ratio = ours.per_sec / issue.per_sec.max(1e-9);
    Ok(Some(Baseline { version, issue, ratio }))
}

/// The client `bench/oidc-provider/server.js` registers.
const CLIENT_ID: &str = "bench";
const CLIENT_SECRET: &str = "bench-secret-0123456789abcdef0123456789";

fn package_version(path: &Path) -> anyhow::Result<String> {
    let raw = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let v: Value = serde_json::from_str(&raw)?;
    Ok(text(&v, "version").unwrap_or("unknown").to_owned())
}

fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl TokensReport {
    /// The human-readable table.
    pub fn print_table(&self) {
        println!(
            "{:<40} {:>10} {:>9} {:>9} {:>9}",
            "path", "req/s", "p50 µs", "p99 µs", "p99.9 µs"
        );
        let row = |name: &str, l: &Latency| {
            println!(
                "{:<40} {:>10.0} {:>9} {:>9} {:>9}",
                name, l.per_sec, l.p50_us, l.p99_us, l.p999_us
            );
        };
        row(
            &format!("issue (client_credentials, {} conns)", self.issue.clients),
            &self.issue,
        );
        row("introspect", &self.introspect);
        row("exchange (RFC 8693)", &self.exchange);
        match &self.oidc_provider {
            Some(b) => {
                row(&format!("oidc-provider {} issue", b.version), &b.issue);
                println!();
                println!(
                    "IdentityVault / oidc-provider tokens/s: {:.2}x (target >= 3x); issue p99 {} µs (target < 10 ms)",
                    b.ratio, self.issue.p99_us
                );
            }
            None => println!("(oidc-provider baseline not run)"),
        }
    }
}
