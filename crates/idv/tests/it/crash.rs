//! The crash test: the real `idv serve` process is killed with SIGKILL in the
//! middle of concurrent agent creation, restarted on the same store, and
//! every acknowledged creation must be there, with its audit event, and the
//! chain must verify.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idv_testkit::{Backend, Database, backend_tests};
use serde_json::{Value, json};

use crate::support::{IDV, serve};

backend_tests!(sigkill_mid_load_loses_no_acknowledged_write);

async fn sigkill_mid_load_loses_no_acknowledged_write(backend: Backend) {
    let db = Database::fresh(backend).await.unwrap();
    let token = idv_core::admin_token::generate();
    let (mut child, base) = serve(&db, &token).await;

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let http = reqwest::Client::new();
    let mut load = Vec::new();
    for worker in 0..12 {
        let (http, base, token, acked) = (http.clone(), base.clone(), token.clone(), acked.clone());
        load.push(tokio::spawn(async move {
            for n in 0.. {
                // Most workers create one at a time; two create in bulk.
                let res = if worker < 2 {
                    let agents: Vec<Value> = (0..50)
                        .map(|i| json!({"name": format!("bulk-{worker}-{n}-{i}"), "owner": "o", "purpose": "crash"}))
                        .collect();
                    http.post(format!("{base}/v1/agents/bulk"))
                        .bearer_auth(&token)
                        .json(&json!({"agents": agents}))
                        .send()
                        .await
                } else {
                    let body =
                        json!({"name": format!("one-{worker}-{n}"), "owner": "o", "purpose": "crash", "ttl": "1h"});
                    http.post(format!("{base}/v1/agents"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                };
                let Ok(res) = res else { return };
                if res.status() != 201 {
                    return;
                }
                let Ok(body) = res.json::<Value>().await else { return };
                let mut ids: Vec<String> = match body.get("agents") {
                    Some(list) => list
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a["id"].as_str().unwrap().to_owned())
                        .collect(),
                    None => vec![body["id"].as_str().unwrap().to_owned()],
                };
                acked.lock().unwrap().append(&mut ids);
            }
        }));
    }
    // Kill it mid-load: once a good number of writes are acknowledged.
    let started = Instant::now();
    while acked.lock().unwrap().len() < 1_500 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.start_kill().unwrap(); // SIGKILL on Unix
    child.wait().await.unwrap();
    for l in load {
        l.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    assert!(acked.len() >= 100, "too little load before the kill: {}", acked.len());

    let (_child, base) = serve(&db, &token).await;
    let get = |path: String| {
        let (http, token) = (http.clone(), token.clone());
        async move { http.get(path).bearer_auth(token).send().await.unwrap() }
    };
    for id in &acked {
        let res = get(format!("{base}/v1/agents/{id}")).await;
        assert_eq!(res.status(), 200, "acknowledged agent {id} is missing after the crash");
    }

    // Nothing half-applied: every stored agent has exactly one creation
    // event and every creation event has its agent.
    let stored = all_ids(&http, &token, &format!("{base}/v1/agents?limit=10000"), "id").await;
    let created = all_ids(
        &http,
        &token,
        &format!("{base}/v1/audit/events?action=agent.create&outcome=success&limit=10000"),
        "target_id",
    )
    .await;
    assert_eq!(stored.len(), created.len());
    assert_eq!(
        stored.iter().collect::<BTreeSet<_>>(),
        created.iter().collect::<BTreeSet<_>>()
    );
    assert!(stored.len() >= acked.len());

    let out = std::process::Command::new(IDV)
        .args(["audit", "verify", "--json"])
        .env("IDV_ADDR", &base)
        .env("IDV_TOKEN", &token)
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["ok"], true);
    eprintln!(
        "crash test ({backend:?}): {} creations acknowledged before SIGKILL, {} stored, chain of {} events verifies",
        acked.len(),
        stored.len(),
        report["verified"]
    );
}

/// Every `field` of every item across all pages of `first`.
async fn all_ids(http: &reqwest::Client, token: &str, first: &str, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut url = first.to_owned();
    loop {
        let page: Value = http
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for item in page["items"].as_array().unwrap() {
            out.push(item[field].as_str().unwrap().to_owned());
        }
        match page.get("next_cursor").and_then(Value::as_str) {
            Some(c) => url = format!("{first}&cursor={c}"),
            None => return out,
        }
    }
}
