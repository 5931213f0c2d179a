//! `idv serve`'s settings from a configuration file: flag over environment
//! over file over default, the file named by `--config`, `IDV_CONFIG` or
//! found as `./idv.toml`, and unknown keys refused.

use std::process::Stdio;

use serde_json::{Value, json};

use crate::support::{IDV, fails, listening};

const TOKEN: &str = "settings-bootstrap-0123456789abcdef0123456789";

/// A port free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The JSON body of a request's response.
async fn json(req: reqwest::RequestBuilder) -> Value {
    req.send().await.unwrap().json().await.unwrap()
}

#[tokio::test]
async fn a_flag_beats_the_environment_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("idv.toml");
    std::fs::write(
        &file,
        format!(
            "# Every key is a flag's name.\n\
             listen = \"127.0.0.1:{port}\"\n\
             trust-domain = \"file.example\"\n\
             public-url = \"http://file.example\"\n\
             webhook-hosts = [\"hooks.example\"]\n\
             log = \"warn\"\n"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(IDV)
        .args(["serve", "--public-url", "http://flag.example", "--data-dir"])
        .arg(dir.path().join("data"))
        .env("IDV_CONFIG", &file)
        .env("IDV_TRUST_DOMAIN", "env.example")
        .env("IDV_PUBLIC_URL", "http://env.example")
        .env("IDV_BOOTSTRAP_TOKEN", TOKEN)
        .env_remove("IDV_DATABASE_URL")
        .env_remove("IDV_LISTEN")
        .env_remove("IDV_LOG")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let listening = listening(&mut child).await;
    // The file's address: nothing else names one, so the file beats the default.
    let base = format!("http://127.0.0.1:{port}");
    assert_eq!(listening, base);
    let http = reqwest::Client::new();
    let meta = json(http.get(format!("{base}/.well-known/oauth-authorization-server"))).await;
    assert_eq!(
        meta["issuer"], "http://flag.example",
        "the flag beats the environment and the file"
    );
    let agent = json(
        http.post(format!("{base}/v1/agents"))
            .bearer_auth(TOKEN)
            .json(&json!({"name": "a", "owner": "alice@bank.example", "purpose": "testing"})),
    )
    .await;
    let spiffe = agent["spiffe_id"].as_str().unwrap();
    assert!(
        spiffe.starts_with("spiffe://env.example/"),
        "the environment beats the file: {spiffe}"
    );
    child.kill().await.unwrap();
}

#[test]
fn the_file_is_named_by_flag_or_environment_or_found_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "listen = \"127.0.0.1:0\"\ndata_dir = \"x\"\n").unwrap();
    let expected = format!(
        "error: {}: unknown setting `data_dir` (did you mean `data-dir`?)\n",
        bad.display()
    );
    let serve = || {
        let mut cmd = std::process::Command::new(IDV);
        cmd.arg("serve")
            .current_dir(dir.path())
            .env_remove("IDV_CONFIG")
            .env_remove("IDV_DATABASE_URL");
        cmd
    };
    let by_flag = serve().arg("--config").arg(&bad).output().unwrap();
    assert_eq!(fails(by_flag), expected);
    let by_env = serve().env("IDV_CONFIG", &bad).output().unwrap();
    assert_eq!(fails(by_env), expected);
    // Found in the working directory when nothing names one.
    std::fs::write(dir.path().join("idv.toml"), "port = 8700\n").unwrap();
    let found = fails(serve().output().unwrap());
    assert!(
        found.starts_with("error: idv.toml: unknown setting `port`; the settings are listen, data-dir, "),
        "{found}"
    );
    // A named file that is missing is an error, not a silent default.
    let missing = fails(serve().args(["--config", "nowhere.toml"]).output().unwrap());
    assert!(
        missing.starts_with("error: cannot read the configuration file nowhere.toml: "),
        "{missing}"
    );
    assert!(
        !dir.path().join("idv-data").exists(),
        "nothing is created before the settings are read"
    );
}
