//! Lose nothing when storage fails: a data directory on a real filesystem
//! that fills up (SQLite), and a transaction that fails at commit
//! (PostgreSQL). Every write acknowledged 2xx must be there after a restart,
//! the audit chain must verify, `/readyz` and `/metrics` must show the
//! failure, and the server must take writes again by itself once storage
//! works again.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use idv_testkit::{Backend, Database, Options, TestServer};
use reqwest::{Method, StatusCode};

use crate::{agent_body, all_events, db, exec, get, head, metrics_text, verify};

/// A small tmpfs mounted for one test (needs root: `mount -t tmpfs`),
/// unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `"24m"`); `Err` says why it could not.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Fills the filesystem at `dir` to the last byte with a file; its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xa5u8; 64 * 1024];
    loop {
        if f.write_all(&chunk).is_err() {
            break;
        }
    }
    // Whatever is left, byte by byte in smaller pieces.
    for size in [4096, 512, 1] {
        while f.write_all(&chunk[..size]).is_ok() && f.flush().is_ok() {}
    }
    let _ = f.sync_all();
    path
}

/// Creates agents in a loop until `n` were tried; the ids of those
/// acknowledged, and how many were refused with 503. Any other status fails.
async fn create_many(s: &TestServer, prefix: &str, n: usize) -> (Vec<String>, usize) {
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..n {
        let res = s
            .req(Method::POST, "/v1/agents")
            .json(&agent_body(&format!("{prefix}-{i}")))
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::CREATED => {
                let body: serde_json::Value = res.json().await.unwrap();
                acked.push(body["id"].as_str().unwrap().to_owned());
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
                assert_eq!(ctype, "application/problem+json");
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", res.text().await.unwrap()),
        }
    }
    (acked, refused)
}

async fn readyz(s: &TestServer) -> StatusCode {
    s.http.get(s.url("/readyz")).send().await.unwrap().status()
}

/// The value of the unlabelled metric `name`.
async fn metric(s: &TestServer, name: &str) -> f64 {
    let text = metrics_text(s).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .parse()
        .unwrap()
}

/// Writes until one is acknowledged again, for up to `secs`; the ids acked.
async fn until_writes_work(s: &TestServer, prefix: &str, secs: u64) -> Vec<String> {
    let start = Instant::now();
    let mut i = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        let (acked, _) = create_many(s, &format!("{prefix}-{i}"), 1).await;
        if !acked.is_empty() {
            return acked;
        }
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("writes did not work again within {secs} s");
}

/// After a restart every acknowledged agent is there and the chain verifies.
async fn all_there_after_restart(s: TestServer, backend: Backend, acked: &[String]) -> TestServer {
    let s = s.restart(backend).await.unwrap();
    for id in acked {
        let res = s.req(Method::GET, &format!("/v1/agents/{id}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "acknowledged agent {id} was lost");
    }
    assert_eq!(verify(&all_events(&s).await).unwrap(), head(&s).await);
    let listed = get(&s, "/v1/agents?limit=1000").await["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(listed, acked.len(), "nothing unacknowledged was half-applied");
    s
}

/// A SQLite server whose data directory is on a fresh 24 MiB tmpfs (the
/// tmpfs comes first: it must outlive the server).
async fn on_tmpfs() -> (Tmpfs, TestServer) {
    let fs = match Tmpfs::mount("24m") {
        Ok(fs) => fs,
        Err(why) => panic!("this test mounts a tmpfs and needs root (run it as root, or leave it to CI): {why}"),
    };
    let dir = tempfile::tempdir_in(fs.path()).unwrap();
    let database = Database {
        url: format!("sqlite://{}?mode=rwc", dir.path().join("idv.db").display()),
        dir,
    };
    let s = TestServer::start_with(
        Backend::Sqlite,
        Options {
            database: Some(database),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    (fs, s)
}

/// SQLite on a real, small filesystem that runs out of space mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_root_a_full_disk_loses_no_acknowledged_write() {
    let (fs, s) = on_tmpfs().await;
    let (mut acked, refused) = create_many(&s, "before", 20).await;
    assert_eq!((acked.len(), refused), (20, 0));
    assert_eq!(readyz(&s).await, StatusCode::OK);
    assert_eq!(metric(&s, "idv_writer_healthy").await, 1.0);

    let filler = fill(fs.path());
    let (more, refused) = create_many(&s, "full", 400).await;
    acked.extend(more);
    assert!(refused > 0, "the disk never filled up");
    // Until space returns, writes keep failing, and readiness says so.
    assert_eq!(readyz(&s).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(metric(&s, "idv_writer_healthy").await, 0.0);
    assert!(metric(&s, "idv_audit_failed_batches_total").await >= 1.0);

    // Space returns: the server takes writes again by itself, no restart.
    std::fs::remove_file(filler).unwrap();
    acked.extend(until_writes_work(&s, "after", 10).await);
    let (more, refused) = create_many(&s, "later", 20).await;
    assert_eq!(refused, 0);
    acked.extend(more);
    assert_eq!(readyz(&s).await, StatusCode::OK);
    assert_eq!(metric(&s, "idv_writer_healthy").await, 1.0);

    let s = all_there_after_restart(s, Backend::Sqlite, &acked).await;
    drop(s);
    drop(fs);
}

/// A readiness probe alone brings a failed writer back: an idle node whose
/// storage works again reports ready without any write being sent to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn needs_root_an_idle_writer_recovers_by_itself() {
    let (fs, s) = on_tmpfs().await;
    let filler = fill(fs.path());
    let (_, refused) = create_many(&s, "full", 200).await;
    assert!(refused > 0, "the disk never filled up");
    assert_eq!(readyz(&s).await, StatusCode::SERVICE_UNAVAILABLE);
    std::fs::remove_file(filler).unwrap();
    let start = Instant::now();
    while readyz(&s).await != StatusCode::OK {
        assert!(start.elapsed() < Duration::from_secs(10), "never ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(s);
    drop(fs);
}

/// PostgreSQL: a deferred constraint trigger makes every commit fail while a
/// switch is on, so whole batches fail at `COMMIT`, mid-run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_failing_commits_lose_no_acknowledged_write() {
    idv_testkit::require_postgres("postgres_failing_commits_lose_no_acknowledged_write");
    let s = TestServer::start(Backend::Postgres).await;
    let mut conn = db(&s.database.url).await;
    exec(&mut conn, "CREATE TABLE fail_commits (on_ boolean NOT NULL)").await;
    exec(&mut conn, "INSERT INTO fail_commits VALUES (false)").await;
    exec(
        &mut conn,
        "CREATE FUNCTION fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF (SELECT on_ FROM fail_commits) THEN RAISE EXCEPTION 'injected commit failure'; END IF; \
         RETURN NULL; END $$",
    )
    .await;
    // On the audit chain (every batch) and on `idv_meta` (the writer's probe).
    for table in ["audit_events", "idv_meta"] {
        exec(
            &mut conn,
            &format!(
                "CREATE CONSTRAINT TRIGGER fail_commit AFTER INSERT OR UPDATE ON {table} \
                 DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION fail_commit()"
            ),
        )
        .await;
    }
    let (mut acked, _) = create_many(&s, "before", 10).await;
    assert_eq!(acked.len(), 10);

    exec(&mut conn, "UPDATE fail_commits SET on_ = true").await;
    // Concurrent callers, so that failures hit batches of several units.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let base = s.base.clone();
        let token = s.token.clone();
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut codes = Vec::new();
            for i in 0..10 {
                let res = http
                    .post(format!("{base}/v1/agents"))
                    .bearer_auth(&token)
                    .json(&agent_body(&format!("failing-{t}-{i}")))
                    .send()
                    .await
                    .unwrap();
                codes.push(res.status());
            }
            codes
        }));
    }
    for t in tasks {
        for code in t.await.unwrap() {
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        }
    }
    assert_eq!(readyz(&s).await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(metric(&s, "idv_writer_healthy").await, 0.0);

    exec(&mut conn, "UPDATE fail_commits SET on_ = false").await;
    acked.extend(until_writes_work(&s, "after", 10).await);
    let (more, refused) = create_many(&s, "later", 10).await;
    assert_eq!(refused, 0);
    acked.extend(more);
    assert_eq!(readyz(&s).await, StatusCode::OK);
    drop(conn);
    all_there_after_restart(s, Backend::Postgres, &acked).await;
}
