//! Three `idv serve` processes on one PostgreSQL database (issue 21 items
//! 9–11): nodes starting at once on an empty database bootstrap it once; a
//! node whose change listener is cut never honours what another node revoked
//! meanwhile; and the jobs of a node killed while holding their leases run
//! once, on the other nodes, within the configured lease.
//!
//! PostgreSQL only: without `IDV_TEST_POSTGRES_URL` each test says it was
//! skipped (the module is named `postgres` so the runner can tell).

/// The job lease is whole seconds between 3 s and an hour: renewals come
/// every third of it.
#[test]
fn a_job_lease_out_of_range_is_refused() {
    for (lease, why) in [
        ("2s", "the job lease must be whole seconds between 3 seconds and 1 hour"),
        ("2h", "the job lease must be whole seconds between 3 seconds and 1 hour"),
        ("soon", "--job-lease / IDV_JOB_LEASE"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(crate::support::IDV)
            .args(["serve", "--listen", "127.0.0.1:0", "--job-lease", lease, "--data-dir"])
            .arg(dir.path())
            .env_remove("IDV_DATABASE_URL")
            .output()
            .unwrap();
        assert!(!out.status.success(), "--job-lease {lease} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "--job-lease {lease}: {err}");
    }
}

mod postgres {
    use std::collections::BTreeMap;
    use std::net::SocketAddr;
    use std::path::Path;
    use std::process::Stdio;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use idv_testkit::{Backend, Database};
    use serde_json::{Value, json};
    use sqlx::Connection as _;
    use tokio::io::{AsyncBufReadExt as _, BufReader};
    use tokio::process::Child;

    use crate::support::{IDV, metric};

    /// The job lease the nodes run with (the shortest allowed).
    const LEASE: Duration = Duration::from_secs(3);

    /// A running `idv serve` process.
    struct Node {
        child: Child,
        base: String,
        /// The line saying how it bootstrapped.
        bootstrap: String,
    }

    /// Spawns `idv serve` on `url` with its own data directory under `dir`
    /// (the master key comes from the environment, shared by all nodes).
    fn spawn(url: &str, dir: &Path, master_key: &str, token: Option<&str>) -> Child {
        let mut cmd = tokio::process::Command::new(IDV);
        // The checks below fail the same credentials hundreds of times from one
        // address, each to be answered 401: a failure budget far above that.
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--job-lease",
            "3s",
            "--auth-failure-limit",
            "1000000",
        ]);
        cmd.arg("--data-dir")
            .arg(dir)
            .env("IDV_DATABASE_URL", url)
            .env("IDV_MASTER_KEY", master_key)
            .env_remove("IDV_BOOTSTRAP_TOKEN")
            .env("IDV_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(t) = token {
            cmd.env("IDV_BOOTSTRAP_TOKEN", t);
        }
        cmd.spawn().expect("start idv serve")
    }

    /// Waits for a spawned node's banner; `Err` with its standard error if it
    /// exits first.
    async fn ready(mut child: Child) -> Result<Node, String> {
        let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let banner = tokio::time::timeout(Duration::from_secs(60), async {
            let mut base = None;
            while let Some(line) = out.next_line().await.unwrap() {
                if let Some(rest) = line.strip_prefix("IdentityVault listening on ") {
                    base = Some(rest.trim().to_owned());
                }
                if line.starts_with("Admin bootstrap token") || line.starts_with("Already bootstrapped") {
                    return base.map(|b| (b, line));
                }
            }
            None
        })
        .await
        .expect("idv serve did not start in 60 s");
        match banner {
            Some((base, bootstrap)) => {
                // Keep draining its output so it never blocks on a full pipe.
                tokio::spawn(async move { while let Ok(Some(_)) = out.next_line().await {} });
                tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
                Ok(Node { child, base, bootstrap })
            }
            None => {
                let mut text = String::new();
                while let Ok(Some(l)) = err.next_line().await {
                    text.push_str(&l);
                    text.push('\n');
                }
                Err(text)
            }
        }
    }

    /// `url` with an `application_name`, so the test can find the node's
    /// connections in `pg_stat_activity`.
    fn named(url: &str, name: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}application_name={name}")
    }

    async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// Nodes starting at once on an empty database, with the same
    /// `IDV_BOOTSTRAP_TOKEN` and without: none exits, and exactly one
    /// creates the platform bootstrap token (issue 21 item 10: about half
    /// the starts lost a node to `that token is already registered`, and
    /// without the variable two tokens were created).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_first_start_bootstraps_once() {
        idv_testkit::require_postgres("concurrent_first_start_bootstraps_once");
        let http = reqwest::Client::new();
        for round in 0..3 {
            for given in [true, false] {
                let db = Database::fresh(Backend::Postgres).await.unwrap();
                let key = idv_core::secret::MasterKey::generate().to_hex();
                let token = given.then(idv_core::admin_token::generate);
                let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
                // All three spawned before any is waited for.
                let children: Vec<_> = dirs
                    .iter()
                    .map(|d| spawn(&db.url, d.path(), &key, token.as_deref()))
                    .collect();
                let mut nodes = Vec::new();
                for c in children {
                    match ready(c).await {
                        Ok(n) => nodes.push(n),
                        Err(e) => panic!("round {round} (token given: {given}): a node exited: {e}"),
                    }
                }
                let lines: Vec<&str> = nodes.iter().map(|n| n.bootstrap.as_str()).collect();
                let created: Vec<&str> = lines
                    .iter()
                    .copied()
                    .filter(|l| l.starts_with("Admin bootstrap token"))
                    .collect();
                assert_eq!(created.len(), 1, "round {round}: one node bootstraps: {lines:?}");
                assert_eq!(
                    lines.iter().filter(|l| l.starts_with("Already bootstrapped")).count(),
                    2,
                    "round {round}: {lines:?}"
                );
                let secret = match &token {
                    Some(t) => t.clone(),
                    None => created[0].rsplit(' ').next().unwrap().to_owned(),
                };
                for n in &nodes {
                    let (status, list) =
                        send(http.get(format!("{}/v1/admin-tokens", n.base)).bearer_auth(&secret)).await;
                    assert_eq!(status, 200, "{list}");
                    let items = list["items"].as_array().unwrap();
                    assert_eq!(items.len(), 1, "round {round}: one admin token: {list}");
                    assert_eq!(items[0]["name"], "bootstrap");
                }
            }
        }
    }

    /// A TCP proxy in front of PostgreSQL whose new connections can be held
    /// back, so a node's listener stays disconnected long enough for another
    /// node's change to land in the gap.
    struct Proxy {
        addr: SocketAddr,
        slow: Arc<AtomicBool>,
    }

    async fn proxy(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let slow = Arc::new(AtomicBool::new(false));
        let flag = slow.clone();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (upstream, held) = (upstream.clone(), flag.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    if held {
                        tokio::time::sleep(Duration::from_millis(1500)).await;
                    }
                    if let Ok(mut out) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                    }
                });
            }
        });
        Proxy { addr, slow }
    }

    /// An active agent with a client secret; `(agent id, credential id, secret)`.
    async fn client(http: &reqwest::Client, base: &str, token: &str, name: &str) -> (String, String, String) {
        let (status, a) = send(
            http.post(format!("{base}/v1/agents"))
                .bearer_auth(token)
                .json(&json!({"name": name, "owner": "o", "purpose": "nodes"})),
        )
        .await;
        assert_eq!(status, 201, "{a}");
        let id = a["id"].as_str().unwrap().to_owned();
        let (status, body) = send(
            http.post(format!("{base}/v1/agents/{id}/activate"))
                .bearer_auth(token)
                .json(&json!({"reason": "test"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, c) = send(
            http.post(format!("{base}/v1/agents/{id}/credentials"))
                .bearer_auth(token)
                .json(&json!({"type": "client_secret"})),
        )
        .await;
        assert_eq!(status, 201, "{c}");
        (
            id,
            c["credential"]["id"].as_str().unwrap().to_owned(),
            c["client_secret"].as_str().unwrap().to_owned(),
        )
    }

    async fn token_status(http: &reqwest::Client, base: &str, id: &str, secret: &str) -> u16 {
        send(
            http.post(format!("{base}/oauth2/token"))
                .basic_auth(id, Some(secret))
                .form(&[("grant_type", "client_credentials")]),
        )
        .await
        .0
    }

    async fn admin_status(http: &reqwest::Client, base: &str, token: &str) -> u16 {
        send(http.get(format!("{base}/v1/admin-tokens/self")).bearer_auth(token))
            .await
            .0
    }

    /// Three nodes: B reaches the database through a proxy. B's change
    /// listener is cut and held back while A revokes a client secret, suspends
    /// an agent and revokes an admin token B has cached: B must never honour
    /// any of them again (issue 21 item 9: the listener reconnected silently
    /// and B's caches stayed stale). Then the node holding the leases of due
    /// TTL jobs is killed: the others run each job once, within the lease
    /// (item 11).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_nodes_survive_a_listener_cut_and_a_killed_lease_holder() {
        idv_testkit::require_postgres("three_nodes_survive_a_listener_cut_and_a_killed_lease_holder");
        let db = Database::fresh(Backend::Postgres).await.unwrap();
        let key = idv_core::secret::MasterKey::generate().to_hex();
        let token = idv_core::admin_token::generate();
        let parsed = reqwest::Url::parse(&db.url).unwrap();
        let upstream = format!(
            "{}:{}",
            parsed.host_str().unwrap(),
            parsed.port_or_known_default().unwrap_or(5432)
        );
        let px = proxy(upstream).await;
        let mut via_proxy = parsed.clone();
        via_proxy.set_host(Some("127.0.0.1")).unwrap();
        via_proxy.set_port(Some(px.addr.port())).unwrap();
        let app = |n: &str| format!("idv-{n}-{}", rand_suffix(&db.url));
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let urls = [
            named(&db.url, &app("a")),
            named(via_proxy.as_str(), &app("b")),
            named(&db.url, &app("c")),
        ];
        let children: Vec<_> = urls
            .iter()
            .zip(&dirs)
            .map(|(u, d)| spawn(u, d.path(), &key, Some(&token)))
            .collect();
        let mut nodes = Vec::new();
        for c in children {
            nodes.push(ready(c).await.unwrap_or_else(|e| panic!("a node exited: {e}")));
        }
        let bases: Vec<String> = nodes.iter().map(|n| n.base.clone()).collect();
        let (a, b, c) = (&bases[0], &bases[1], &bases[2]);
        let http = reqwest::Client::new();

        // --- A listener cut followed by changes on another node.
        let (x, x_cred, x_secret) = client(&http, a, &token, "revoked-secret").await;
        let (y, _, y_secret) = client(&http, a, &token, "suspended-agent").await;
        let (status, k) = send(
            http.post(format!("{a}/v1/admin-tokens"))
                .bearer_auth(&token)
                .json(&json!({"name": "revoked-admin", "role": "operator"})),
        )
        .await;
        assert_eq!(status, 201, "{k}");
        let (k_secret, k_id) = (
            k["token"].as_str().unwrap().to_owned(),
            k["admin_token"]["id"].as_str().unwrap().to_owned(),
        );
        // B and C cache all three.
        for base in [b, c] {
            assert_eq!(token_status(&http, base, &x, &x_secret).await, 200);
            assert_eq!(token_status(&http, base, &y, &y_secret).await, 200);
            assert_eq!(admin_status(&http, base, &k_secret).await, 200);
        }
        let mut pg = sqlx::PgConnection::connect(&db.url).await.unwrap();
        px.slow.store(true, Ordering::SeqCst);
        let cut: i64 = sqlx::query_scalar(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE application_name = $1 AND query ILIKE 'listen%'",
        )
        .bind(app("b"))
        .fetch_one(&mut pg)
        .await
        .unwrap();
        assert_eq!(cut, 1, "B's listener backend terminated");
        // While B reconnects (held back 1.5 s), A revokes, suspends, revokes.
        let (status, body) = send(http.delete(format!("{a}/v1/credentials/{x_cred}")).bearer_auth(&token)).await;
        assert!(status == 200 || status == 204, "{status} {body}");
        let (status, body) = send(
            http.post(format!("{a}/v1/agents/{y}/suspend"))
                .bearer_auth(&token)
                .json(&json!({"reason": "investigation"})),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = send(http.delete(format!("{a}/v1/admin-tokens/{k_id}")).bearer_auth(&token)).await;
        assert!(status == 200 || status == 204, "{status} {body}");
        px.slow.store(false, Ordering::SeqCst);
        // Never honoured again on any node: while B is disconnected, and
        // after it has reconnected.
        let started = Instant::now();
        let mut rounds = 0;
        while started.elapsed() < Duration::from_secs(4) {
            for (name, base) in [("A", a), ("B", b), ("C", c)] {
                assert_eq!(
                    token_status(&http, base, &x, &x_secret).await,
                    401,
                    "{name} honoured a revoked secret after {:?}",
                    started.elapsed()
                );
                assert_ne!(
                    token_status(&http, base, &y, &y_secret).await,
                    200,
                    "{name} issued a token to a suspended agent after {:?}",
                    started.elapsed()
                );
                assert_eq!(
                    admin_status(&http, base, &k_secret).await,
                    401,
                    "{name} honoured a revoked admin token after {:?}",
                    started.elapsed()
                );
            }
            rounds += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let reconnects = metric(&http, b, "idv_change_listener_reconnects_total").await;
        assert_eq!(reconnects, 1, "B's reconnect is counted");
        assert_eq!(metric(&http, b, "idv_change_listener_up").await, 1);
        assert_eq!(metric(&http, a, "idv_change_listener_reconnects_total").await, 0);
        eprintln!("listener cut: {rounds} rounds of checks on three nodes, none honoured");

        // --- SIGKILL of the node holding the leases of due jobs.
        let mut before = Vec::new();
        for base in &bases {
            before.push(metric(&http, base, "idv_jobs_run_total").await);
        }
        const AGENTS: usize = 40;
        let agents: Vec<Value> = (0..AGENTS)
            .map(|i| json!({"name": format!("eph-{i}"), "owner": "o", "purpose": "jobs", "ttl": "3s"}))
            .collect();
        let (status, body) = send(
            http.post(format!("{a}/v1/agents/bulk"))
                .bearer_auth(&token)
                .json(&json!({ "agents": agents })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let due = Instant::now() + Duration::from_secs(3);
        // Hold the agents' rows: whichever node claims the jobs blocks in
        // its transaction, holding their leases, until it is killed.
        let mut hold = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let mut tx = hold.begin().await.unwrap();
        let held: Vec<(String,)> = sqlx::query_as("SELECT id FROM agents WHERE name LIKE 'eph-%' FOR UPDATE")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
        assert_eq!(held.len(), AGENTS);
        let started = Instant::now();
        let holder = loop {
            let blocked: Option<(String,)> = sqlx::query_as(
                "SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock' \
                 AND wait_event <> 'advisory' AND application_name = ANY($1)",
            )
            .bind(["a", "b", "c"].map(app).to_vec())
            .fetch_optional(&mut pg)
            .await
            .unwrap();
            if let Some((name,)) = blocked {
                break name;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no node claimed the due jobs in 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let leased: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE locked_until IS NOT NULL")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        assert!(leased > 0, "the jobs are leased");
        let victim = (0..3).find(|i| app(["a", "b", "c"][*i]) == holder).unwrap();
        nodes[victim].child.start_kill().unwrap();
        nodes[victim].child.wait().await.unwrap();
        let killed = Instant::now();
        tx.rollback().await.unwrap();
        let survivors: Vec<(&String, u64)> = bases
            .iter()
            .zip(&before)
            .enumerate()
            .filter(|(i, _)| *i != victim)
            .map(|(_, (b, n))| (b, *n))
            .collect();
        let ran_since = async |survivors: &[(&String, u64)]| {
            let mut ran = 0;
            for (base, n) in survivors {
                ran += metric(&http, base, "idv_jobs_run_total").await - n;
            }
            ran
        };
        // Every agent retires, each once, on the surviving nodes.
        let limit = LEASE + Duration::from_secs(5);
        loop {
            let ran = ran_since(&survivors).await;
            if ran >= AGENTS as u64 {
                break;
            }
            assert!(
                killed.elapsed() < limit,
                "only {ran} of {AGENTS} jobs ran within {limit:?} of the kill (lease {LEASE:?})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let late = Instant::now().saturating_duration_since(due);
        eprintln!(
            "killed node {holder}; its {AGENTS} jobs ran {:?} after the kill, {late:?} after they came due",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(ran_since(&survivors).await, AGENTS as u64, "no job ran twice");
        let mut retired: BTreeMap<String, usize> = BTreeMap::new();
        let (status, page) = send(
            http.get(format!(
                "{}/v1/audit/events?action=agent.retire&limit=1000",
                survivors[0].0
            ))
            .bearer_auth(&token),
        )
        .await;
        assert_eq!(status, 200, "{page}");
        for e in page["items"].as_array().unwrap() {
            assert_eq!(e["outcome"], "success");
            *retired.entry(e["target_id"].as_str().unwrap().to_owned()).or_default() += 1;
        }
        assert_eq!(retired.len(), AGENTS, "every agent retired");
        assert!(
            retired.values().all(|n| *n == 1),
            "an agent was retired twice: {retired:?}"
        );
        assert!(held.iter().all(|(id,)| retired.contains_key(id)));
    }

    /// A short suffix unique to this test's database (its schema name).
    fn rand_suffix(url: &str) -> String {
        url.rsplit('_').next().unwrap_or("x").chars().take(12).collect()
    }
}
