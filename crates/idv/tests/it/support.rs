//! Running the `idv` binary.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use idv_testkit::{Database, TestServer};
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Child;

/// The binary under test.
pub const IDV: &str = env!("CARGO_BIN_EXE_idv");

/// Runs `idv args…` as a client of `server` (with its bootstrap token).
pub fn idv(server: &TestServer, args: &[&str]) -> Output {
    idv_as(server, &server.token, args)
}

/// Runs `idv args…` as a client of `server` with `token`.
pub fn idv_as(server: &TestServer, token: &str, args: &[&str]) -> Output {
    eprintln!("$ idv {}", args.join(" "));
    Command::new(IDV)
        .args(args)
        .env("IDV_ADDR", &server.base)
        .env("IDV_TOKEN", token)
        .env_remove("IDV_TENANT")
        .output()
        .expect("run idv")
}

/// Standard output of a command that must succeed.
pub fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "idv failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Parsed `--json` output of a command that must succeed.
pub fn json(out: Output) -> serde_json::Value {
    let text = ok(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Standard error of a command that must fail, checked to be one line.
pub fn fails(out: Output) -> String {
    assert!(
        !out.status.success(),
        "idv unexpectedly succeeded: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).expect("utf-8 errors");
    assert_eq!(err.trim_end().lines().count(), 1, "error is not one line: {err}");
    assert!(err.starts_with("error: "), "{err}");
    err
}

/// Starts `idv serve` on `db` and returns it with its base URL.
pub async fn serve(db: &Database, token: &str) -> (Child, String) {
    let mut child = tokio::process::Command::new(IDV)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(db.dir.path())
        .env("IDV_DATABASE_URL", &db.url)
        .env("IDV_BOOTSTRAP_TOKEN", token)
        .env("IDV_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start idv serve");
    let base = listening(&mut child).await;
    (child, base)
}

/// The base URL `idv serve` (spawned with its standard output piped) says
/// it listens on.
pub async fn listening(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let base = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("IdentityVault listening on ") {
                return rest.trim().to_owned();
            }
        }
        panic!("idv serve exited before listening");
    })
    .await
    .expect("idv serve did not start in time");
    // Keep draining its output so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    base
}

/// The value of the unlabelled metric `name` on the node at `base`.
pub async fn metric(http: &reqwest::Client, base: &str, name: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}
