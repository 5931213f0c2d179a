//! The CLI against a real in-process server, on both stores.

use idv_testkit::{Backend, TestServer, backend_tests};
use sqlx::Connection as _;

use crate::support::{fails, idv, idv_as, json, ok};

backend_tests!(
    agent_commands_cover_the_lifecycle,
    tenants_and_admin_tokens,
    import_and_list_all,
    audit_verify_points_at_a_tampered_event,
    audit_verify_offline_reads_only_and_finds_the_database_as_serve_does,
    client_mistakes_are_one_line_errors,
    credential_commands,
    policy_decide_and_approval_commands,
    key_commands,
    webhook_commands,
    sso_commands,
    access_request_commands,
);

/// A one-request HTTP receiver on loopback: its URL, and the request's
/// headers (lower-cased) and body once it came.
async fn one_request() -> (String, tokio::sync::oneshot::Receiver<(Vec<(String, String)>, String)>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let headers: Vec<(String, String)> = head
                    .lines()
                    .skip(1)
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .map_or(0, |(_, v)| v.parse().unwrap());
                if body.len() >= len || n == 0 {
                    sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await
                        .unwrap();
                    let _ = tx.send((headers, body.to_owned()));
                    return;
                }
            }
        }
    });
    (url, rx)
}

async fn webhook_commands(backend: Backend) {
    let s = TestServer::start(backend).await;
    let (url, got) = one_request().await;
    let out = ok(idv(
        &s,
        &[
            "webhook",
            "create",
            "--url",
            &url,
            "--event",
            "agent.*",
            "--description",
            "ops",
        ],
    ));
    assert!(out.contains("Signing secret (shown once"), "{out}");
    let secret = out
        .split_whitespace()
        .find(|w| w.starts_with("whsec_"))
        .unwrap()
        .to_owned();
    let list = json(idv(&s, &["webhook", "list", "--json"]));
    let id = list["items"][0]["id"].as_str().unwrap().to_owned();
    assert!(!list.to_string().contains(secret.trim_start_matches("whsec_")));
    let table = ok(idv(&s, &["webhook", "list"]));
    assert!(table.contains(&id) && table.contains("enabled"), "{table}");
    let w = json(idv(
        &s,
        &[
            "webhook",
            "update",
            &id,
            "--event",
            "agent.*",
            "--event",
            "credential.*",
            "--json",
        ],
    ));
    assert_eq!(w["events"], serde_json::json!(["agent.*", "credential.*"]));
    assert!(ok(idv(&s, &["webhook", "get", &id])).contains("credential.*"));

    // A test event reaches the receiver; the CLI verifies it as a receiver would.
    let queued = json(idv(&s, &["webhook", "test", &id, "--json"]));
    assert_eq!(queued["event_type"], "webhook.test");
    let (headers, body) = tokio::time::timeout(std::time::Duration::from_secs(10), got)
        .await
        .unwrap()
        .unwrap();
    let h = |n: &str| headers.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json");
    std::fs::write(&file, &body).unwrap();
    let file = file.to_str().unwrap();
    let (msg, ts, sig) = (h("webhook-id"), h("webhook-timestamp"), h("webhook-signature"));
    let args = |secret: &str| {
        vec![
            "webhook".to_owned(),
            "verify".to_owned(),
            "--secret".to_owned(),
            secret.to_owned(),
            "--id".to_owned(),
            msg.clone(),
            "--timestamp".to_owned(),
            ts.clone(),
            "--signature".to_owned(),
            sig.clone(),
            "--payload-file".to_owned(),
            file.to_owned(),
        ]
    };
    let good = args(&secret);
    let good: Vec<&str> = good.iter().map(String::as_str).collect();
    assert!(ok(idv(&s, &good)).contains("valid"));
    let other = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let bad = args(other);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    assert!(fails(idv(&s, &bad)).contains("no signature matches"));

    let log = ok(idv(&s, &["webhook", "deliveries", &id]));
    assert!(log.contains("webhook.test"), "{log}");
    assert!(ok(idv(&s, &["webhook", "update", &id, "--disable"])).contains("disabled"));
    let rotated = ok(idv(&s, &["webhook", "rotate-secret", &id]));
    assert!(rotated.contains("whsec_") && !rotated.contains(&secret), "{rotated}");
    assert!(ok(idv(&s, &["webhook", "delete", &id])).contains("Deleted"));
    assert!(fails(idv(&s, &["webhook", "get", &id])).contains("(404)"));
    assert!(fails(idv(&s, &["webhook", "create", "--url", "ftp://x", "--event", "*"])).contains("(422)"));
}

async fn key_commands(backend: Backend) {
    let s = TestServer::start(backend).await;
    // The first key is made on first use (here: the JWKS).
    let jwks: serde_json::Value = s
        .http
        .get(s.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let k1 = jwks["keys"][0]["kid"].as_str().unwrap().to_owned();
    let list = ok(idv(&s, &["key", "list"]));
    assert!(list.contains(&k1) && list.contains("current"), "{list}");
    let out = ok(idv(
        &s,
        &["key", "rotate", "--publish-ahead", "2h", "--reason", "quarterly"],
    ));
    assert!(out.contains("Published key") && out.contains("next"), "{out}");
    let err = fails(idv(&s, &["key", "rotate"]));
    assert!(err.contains("409"), "{err}");
    let r = json(idv(&s, &["key", "rotate", "--revoke-old", "--json"]));
    let created = r["created"].as_str().unwrap();
    let keys = json(idv(&s, &["key", "list", "--json"]));
    let states: Vec<(&str, &str)> = keys["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kid"].as_str().unwrap(), k["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 3);
    assert_eq!(states[0], (k1.as_str(), "removed"), "revoked");
    assert_eq!(states[1].1, "removed", "the waiting key never signed");
    assert_eq!(states[2], (created, "current"));
    let err = fails(idv(&s, &["key", "rotate", "--publish-ahead", "1s"]));
    assert!(err.contains("422"), "{err}");
}

async fn policy_decide_and_approval_commands(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let bad = write("bad.cedar", "permit(principal,\n  action resource);");
    let out = idv(&s, &["policy", "validate", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with(&format!("{bad}:2:10: ")),
        "compiler-style position: {err}"
    );
    assert!(err.trim_end().ends_with("error: 1 problem(s)"), "{err}");
    // Upload refuses it the same way, naming the file too.
    let out = idv(&s, &["policy", "upload", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: ") && err.contains("422"), "{err}");
    assert!(
        err.contains(&format!("\n  {bad}:2:10: ")),
        "compiler-style position: {err}"
    );
    // An empty IDV_TENANT is no tenant (the token's own).
    let out = std::process::Command::new(crate::support::IDV)
        .args(["policy", "list", "--json"])
        .env("IDV_ADDR", &s.base)
        .env("IDV_TOKEN", &s.token)
        .env("IDV_TENANT", "")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v1 = write(
        "v1.cedar",
        "@id(\"payers\") permit(principal in Role::\"payer\", action == Action::\"transfer\", resource)\n  when { context has amount && context.amount <= 100 };\n@id(\"big\") @requires_approval(\"large transfer\")\npermit(principal in Role::\"payer\", action == Action::\"transfer\", resource)\n  when { context has amount && context.amount > 100 };",
    );
    assert!(ok(idv(&s, &["policy", "validate", &v1])).contains("valid (2 policies"));
    let up = json(idv(
        &s,
        &[
            "policy",
            "upload",
            &v1,
            "--activate",
            "--description",
            "first",
            "--json",
        ],
    ));
    assert_eq!(up["version"], 1);
    assert_eq!(up["active"], true);
    let agent = json(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "payer-bot",
            "--owner",
            "treasury@bank.example",
            "--purpose",
            "p",
            "--json",
        ],
    ));
    let id = agent["id"].as_str().unwrap().to_owned();
    ok(idv(&s, &["agent", "activate", &id, "--reason", "go"]));
    // A role the policies refer to (no actions of its own).
    assert!(ok(idv(&s, &["role", "put", "payer", "--description", "moves money"])).contains("Role payer"));
    let g = json(idv(&s, &["grant", "create", "agent", &id, "--role", "payer", "--json"]));
    assert_eq!(g["role"], "payer");
    assert!(ok(idv(&s, &["grant", "list"])).contains("role payer"));
    let subject = format!("agent:{id}");
    let small = ok(idv(
        &s,
        &[
            "decide",
            "--subject",
            &subject,
            "--action",
            "transfer",
            "--resource",
            "Resource:acct",
            "--context",
            "{\"amount\": 5}",
        ],
    ));
    assert!(small.contains("allow") && small.contains("payers"), "{small}");
    // A denial says why, even Cedar's default deny (no permit applied).
    let denied = ok(idv(
        &s,
        &[
            "decide",
            "--subject",
            &subject,
            "--action",
            "transfer",
            "--resource",
            "Resource:acct",
        ],
    ));
    assert!(
        denied.contains("deny") && denied.contains("reason:") && denied.contains("default deny"),
        "{denied}"
    );
    assert!(denied.contains("policies:") && denied.contains("(none)"), "{denied}");
    let big = json(idv(
        &s,
        &[
            "decide",
            "--subject",
            &subject,
            "--action",
            "transfer",
            "--resource",
            "Resource:acct",
            "--context",
            "{\"amount\": 500}",
            "--json",
        ],
    ));
    assert_eq!(big["decision"], false);
    let approval = big["context"]["approval"]["id"].as_str().unwrap().to_owned();
    let pending = ok(idv(&s, &["approval", "list", "--status", "pending"]));
    assert!(
        pending.contains(&approval) && pending.contains("treasury@bank.example"),
        "{pending}"
    );
    // Separation of duties: the token that asked may not approve.
    let err = fails(idv(&s, &["approval", "approve", &approval]));
    assert!(err.contains("requester"), "{err}");
    let approver = json(idv(
        &s,
        &[
            "admin-token",
            "create",
            "--name",
            "desk-approver",
            "--role",
            "operator",
            "--json",
        ],
    ));
    let approver = approver["token"].as_str().unwrap().to_owned();
    let approved = json(idv_as(
        &s,
        &approver,
        &["approval", "approve", &approval, "--comment", "ok", "--json"],
    ));
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["approved_by"], serde_json::json!(["desk-approver"]));
    let again = json(idv(
        &s,
        &[
            "decide",
            "--subject",
            &subject,
            "--action",
            "transfer",
            "--resource",
            "Resource:acct",
            "--context",
            "{\"amount\": 500}",
            "--json",
        ],
    ));
    assert_eq!(again["decision"], true);
    // What-if: a candidate that allows nothing changes the small transfer.
    let requests = write(
        "requests.json",
        &serde_json::json!([
            {"subject": {"type": "agent", "id": id}, "action": {"name": "transfer"}, "resource": {"type": "Resource", "id": "acct"}, "context": {"amount": 5}}
        ])
        .to_string(),
    );
    let empty = write("empty.cedar", "");
    let report = ok(idv(&s, &["policy", "test", &requests, "--file", &empty]));
    assert!(
        report.contains("1 of 1 decisions would change") && report.contains("allow"),
        "{report}"
    );
    // One file of requests for any agent: `--subject` asks them all as it.
    let anyone = write(
        "anyone.json",
        r#"[{"action": {"name": "transfer"}, "resource": {"type": "Resource", "id": "acct"}, "context": {"amount": 5}}]"#,
    );
    let report = ok(idv(
        &s,
        &["policy", "test", &anyone, "--subject", &subject, "--file", &empty],
    ));
    assert!(report.contains("1 of 1 decisions would change"), "{report}");
    let v2 = json(idv(&s, &["policy", "upload", &empty, "--json"]));
    assert_eq!(v2["version"], 2);
    assert!(ok(idv(&s, &["policy", "activate", "2"])).contains("Version 2 is active"));
    let list = ok(idv(&s, &["policy", "list"]));
    assert!(list.starts_with("VERSION") && list.contains("first"), "{list}");
    assert!(ok(idv(&s, &["policy", "rollback"])).contains("version 1 is active"));
    assert!(ok(idv(&s, &["policy", "get", "1"])).contains("@requires_approval"));
    let err = fails(idv(&s, &["policy", "activate", "9"]));
    assert!(err.contains("404"), "{err}");
}

async fn credential_commands(backend: Backend) {
    let s = TestServer::start(backend).await;
    let created = json(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "cred-bot",
            "--owner",
            "o",
            "--purpose",
            "p",
            "--allow-scope",
            "ledger:read",
            "--allow-scope",
            "ledger:write",
            "--json",
        ],
    ));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created["allowed_scopes"],
        serde_json::json!(["ledger:read", "ledger:write"])
    );
    let secret = ok(idv(&s, &["credential", "create", &id, "--type", "client-secret"]));
    assert!(
        secret.contains("Client secret (shown once") && secret.contains("idvcs_"),
        "{secret}"
    );
    assert!(secret.contains(&format!("client_id: {id}")), "{secret}");
    let key = json(idv(
        &s,
        &[
            "credential",
            "create",
            &id,
            "--type",
            "api-key",
            "--scope",
            "ledger:read",
            "--ttl",
            "30d",
            "--json",
        ],
    ));
    assert!(key["api_key"].as_str().unwrap().starts_with("idvak_"));
    assert_eq!(key["credential"]["scopes"], serde_json::json!(["ledger:read"]));
    let table = ok(idv(&s, &["credential", "list", &id]));
    assert!(
        table.starts_with("ID") && table.contains("api_key") && table.contains("client_secret"),
        "{table}"
    );
    let cid = key["credential"]["id"].as_str().unwrap();
    assert!(ok(idv(&s, &["credential", "get", cid])).contains("ledger:read"));
    assert!(ok(idv(&s, &["credential", "revoke", cid])).contains("Revoked credential"));
    assert_eq!(
        json(idv(&s, &["credential", "get", cid, "--json"]))["status"],
        "revoked"
    );
    let err = fails(idv(&s, &["credential", "revoke", cid]));
    assert!(err.contains("409") && err.lines().count() == 1, "{err}");
    let err = fails(idv(
        &s,
        &[
            "credential",
            "create",
            &id,
            "--type",
            "api-key",
            "--scope",
            "payments:send",
        ],
    ));
    assert!(err.contains("422"), "{err}");

    // Rotation, lineage and the security event.
    let first = json(idv(
        &s,
        &["credential", "create", &id, "--type", "client-secret", "--json"],
    ));
    let first_id = first["credential"]["id"].as_str().unwrap();
    let r = json(idv(
        &s,
        &[
            "credential",
            "rotate",
            first_id,
            "--overlap",
            "10m",
            "--retire-on-first-use",
            "--json",
        ],
    ));
    assert!(r["successor"]["client_secret"].as_str().unwrap().starts_with("idvcs_"));
    assert_eq!(r["successor"]["credential"]["retire_on_use"], true);
    let second_id = r["successor"]["credential"]["id"].as_str().unwrap();
    let sealed = ok(idv(&s, &["credential", "rotate", second_id, "--pickup"]));
    assert!(
        sealed.contains("sealed for the agent") && !sealed.contains("shown once"),
        "{sealed}"
    );
    let history = ok(idv(&s, &["credential", "history", first_id]));
    assert_eq!(history.lines().count(), 4, "{history}");
    assert!(history.contains(first_id) && history.contains(second_id), "{history}");
    let err = fails(idv(&s, &["credential", "rotate", first_id]));
    assert!(err.contains("409") && err.contains("already rotated"), "{err}");
    // `--overlap 0`, as the help and docs promise: the predecessor stops at once.
    let now = json(idv(
        &s,
        &["credential", "create", &id, "--type", "client-secret", "--json"],
    ));
    let now_id = now["credential"]["id"].as_str().unwrap();
    let r = json(idv(&s, &["credential", "rotate", now_id, "--overlap", "0", "--json"]));
    assert!(r["successor"]["client_secret"].as_str().unwrap().starts_with("idvcs_"));
    assert_eq!(
        json(idv(&s, &["credential", "get", now_id, "--json"]))["status"],
        "revoked"
    );
    let rotated = ok(idv(
        &s,
        &["credential", "rotate-agent", &id, "--reason", "risk score 0.9"],
    ));
    assert!(
        rotated.starts_with("PREDECESSOR") && rotated.contains("sealed"),
        "{rotated}"
    );
    let c = json(idv(
        &s,
        &[
            "credential",
            "compromised",
            &id,
            "--reason",
            "leaked in a log",
            "--json",
        ],
    ));
    assert!(!c["revoked"].as_array().unwrap().is_empty());
    assert!(
        c["revoked"]
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] == "revoked")
    );

    // Rotation policies.
    let set = ok(idv(
        &s,
        &[
            "rotation-policy",
            "set",
            "--tenant-wide",
            "--every",
            "30d",
            "--overlap",
            "1d",
        ],
    ));
    assert!(set.contains("every 2592000s") && set.contains("scheduled"), "{set}");
    let p = json(idv(
        &s,
        &[
            "rotation-policy",
            "set",
            "--agent",
            &id,
            "--max-age",
            "90d",
            "--retire-on-first-use",
            "--json",
        ],
    ));
    assert_eq!(p["scope"]["id"], id.as_str());
    assert_eq!(p["retire"], "first_use");
    let list = ok(idv(&s, &["rotation-policy", "list"]));
    assert_eq!(list.lines().count(), 3, "{list}");
    ok(idv(&s, &["rotation-policy", "delete", "--agent", &id]));
    let err = fails(idv(&s, &["rotation-policy", "delete", "--agent", &id]));
    assert!(err.contains("404"), "{err}");
    let err = fails(idv(&s, &["rotation-policy", "set", "--tenant-wide", "--every", "10s"]));
    assert!(err.contains("422"), "{err}");
}

async fn agent_commands_cover_the_lifecycle(backend: Backend) {
    let s = TestServer::start(backend).await;
    let created = json(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "billing-bot",
            "--owner",
            "alice@bank.example",
            "--purpose",
            "reconcile",
            "--environment",
            "prod",
            "--label",
            "team=fin",
            "--capability",
            "payments.read",
            "--ttl",
            "1h",
            "--json",
        ],
    ));
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["status"], "provisioning");
    assert_eq!(created["labels"]["team"], "fin");
    assert!(created["expires_at"].is_string());

    let shown = ok(idv(&s, &["agent", "get", &id]));
    assert!(shown.contains("name:") && shown.contains("billing-bot"), "{shown}");
    assert!(
        shown.contains(&format!("spiffe://idv.test/t/default/agent/{id}")),
        "{shown}"
    );

    let table = ok(idv(&s, &["agent", "list", "--environment", "prod"]));
    let first = table.lines().next().unwrap();
    assert!(first.starts_with("ID") && first.contains("STATUS"), "{table}");
    assert!(table.contains("billing-bot"), "{table}");
    assert_eq!(ok(idv(&s, &["agent", "list", "--environment", "dev"])).trim(), "(none)");

    let updated = json(idv(
        &s,
        &[
            "agent",
            "update",
            &id,
            "--team",
            "payments",
            "--clear",
            "environment",
            "--json",
        ],
    ));
    assert_eq!(updated["team"], "payments");
    assert!(updated["environment"].is_null());
    assert_eq!(updated["version"], 2);
    // A stale explicit version is refused with the current one named.
    let err = fails(idv(&s, &["agent", "update", &id, "--owner", "bob", "--if-match", "1"]));
    assert!(err.contains("412") && err.contains("current version: 2"), "{err}");

    for (verb, state) in [
        ("activate", "active"),
        ("suspend", "suspended"),
        ("resume", "active"),
        ("retire", "retired"),
    ] {
        let a = json(idv(&s, &["agent", verb, &id, "--reason", "CHG-1", "--json"]));
        assert_eq!(a["status"], state);
        assert_eq!(a["status_reason"], "CHG-1");
    }
    let err = fails(idv(&s, &["agent", "activate", &id, "--reason", "again"]));
    assert!(err.contains("409") && err.contains("current state: retired"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let csv_path = dir.path().join("agents.csv");
    ok(idv(&s, &["agent", "export", "--output", csv_path.to_str().unwrap()]));
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.starts_with("id,"));
    let exported: serde_json::Value =
        serde_json::from_str(&ok(idv(&s, &["agent", "export", "--format", "json"]))).unwrap();
    assert_eq!(exported.as_array().unwrap().len(), 1);
    assert_eq!(exported[0]["status"], "retired");
    s.stop().await;
}

async fn tenants_and_admin_tokens(backend: Backend) {
    let s = TestServer::start(backend).await;
    let t = json(idv(
        &s,
        &["tenant", "create", "acme", "--display-name", "Acme Bank", "--json"],
    ));
    assert_eq!(t["display_name"], "Acme Bank");
    assert!(ok(idv(&s, &["tenant", "list"])).contains("Acme Bank"));
    assert_eq!(json(idv(&s, &["tenant", "get", "acme", "--json"]))["name"], "acme");

    // An operator token of tenant acme, made by the platform admin acting in acme.
    let created = json(idv(
        &s,
        &[
            "admin-token",
            "create",
            "--name",
            "ops",
            "--role",
            "operator",
            "--tenant",
            "acme",
            "--json",
        ],
    ));
    let token = created["token"].as_str().unwrap().to_owned();
    let token_id = created["admin_token"]["id"].as_str().unwrap().to_owned();
    // Listings are per tenant: the default tenant's list says so and where
    // to look; acme's (with a tenant column) shows the new token.
    let out = idv(&s, &["admin-token", "list"]);
    let note = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(
        note.contains("tenant default only") && note.contains("--tenant NAME"),
        "{note}"
    );
    let mine = ok(out);
    assert!(mine.contains("TENANT") && !mine.contains(&token_id), "{mine}");
    let theirs = ok(idv(&s, &["admin-token", "list", "--tenant", "acme"]));
    assert!(theirs.contains(&token_id) && theirs.contains("acme"), "{theirs}");
    let shown = ok(idv(
        &s,
        &[
            "admin-token",
            "create",
            "--name",
            "ops2",
            "--role",
            "auditor",
            "--tenant",
            "acme",
        ],
    ));
    assert!(
        shown.contains("`idv admin-token list --tenant acme` lists it"),
        "{shown}"
    );
    assert!(token.starts_with("idvat_"));
    let who = json(idv_as(&s, &token, &["admin-token", "whoami", "--json"]));
    assert_eq!(who["tenant"]["name"], "acme");
    assert_eq!(who["admin_token"]["role"], "operator");

    // Operators manage agents, not tokens.
    let err = fails(idv_as(
        &s,
        &token,
        &["admin-token", "create", "--name", "x", "--role", "admin"],
    ));
    assert!(err.contains("403"), "{err}");
    ok(idv_as(
        &s,
        &token,
        &["agent", "create", "--name", "a1", "--owner", "o", "--purpose", "p"],
    ));
    // The default tenant does not see acme's agent.
    assert_eq!(ok(idv(&s, &["agent", "list"])).trim(), "(none)");

    let listed = ok(idv(&s, &["admin-token", "list", "--tenant", "acme"]));
    assert!(listed.contains("ops") && !listed.contains(&token), "{listed}");
    let revoked = json(idv(
        &s,
        &["admin-token", "revoke", &token_id, "--tenant", "acme", "--json"],
    ));
    assert!(revoked["revoked_at"].is_string());
    let err = fails(idv_as(&s, &token, &["agent", "list"]));
    assert!(err.contains("401"), "{err}");
    s.stop().await;
}

async fn import_and_list_all(backend: Backend) {
    let s = TestServer::start(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agents.jsonl");
    let lines: Vec<String> = (0..2_500)
        .map(|i| serde_json::json!({"name": format!("bot-{i:05}"), "owner": "team-a", "purpose": "load"}).to_string())
        .collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    let res = json(idv(
        &s,
        &["agent", "import", file.to_str().unwrap(), "--batch", "1000", "--json"],
    ));
    assert_eq!(res["created"], 2_500);
    assert_eq!(res["agents"].as_array().unwrap().len(), 2_500);

    let all = json(idv(&s, &["agent", "list", "--all", "--limit", "700", "--json"]));
    let items = all["items"].as_array().unwrap();
    assert_eq!(items.len(), 2_500);
    assert!(all.get("next_cursor").is_none());
    let mut names: Vec<&str> = items.iter().map(|a| a["name"].as_str().unwrap()).collect();
    names.dedup();
    assert_eq!(names.len(), 2_500);

    // A batch with a bad item imports nothing from that batch and says where.
    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"name":"ok-1","owner":"o","purpose":"p"},{"name":"bad name!","owner":"o","purpose":"p"}]"#,
    )
    .unwrap();
    let err = fails(idv(&s, &["agent", "import", bad.to_str().unwrap()]));
    assert!(err.contains("agents[1].name") || err.contains("name"), "{err}");
    assert!(err.contains("0 agents were imported"), "{err}");
    let after = json(idv(&s, &["agent", "list", "--name-prefix", "ok-", "--json"]));
    assert!(after["items"].as_array().unwrap().is_empty());
    s.stop().await;
}

async fn audit_verify_points_at_a_tampered_event(backend: Backend) {
    let s = TestServer::start(backend).await;
    for i in 0..5 {
        ok(idv(
            &s,
            &[
                "agent",
                "create",
                "--name",
                &format!("a{i}"),
                "--owner",
                "o",
                "--purpose",
                "p",
            ],
        ));
    }
    let report = json(idv(&s, &["audit", "verify", "--json"]));
    assert_eq!(report["ok"], true);
    let total = report["verified"].as_i64().unwrap();
    assert!(total >= 7, "{report}");
    let events = json(idv(&s, &["audit", "list", "--action", "agent.create", "--json"]));
    let target = events["items"][2]["seq"].as_i64().unwrap();

    let db = s.stop().await;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = $1")
        .bind(target)
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    let data_dir = db.dir.path().to_str().unwrap().to_owned();
    let offline: Vec<&str> = match backend {
        Backend::Sqlite => vec!["audit", "verify", "--data-dir", &data_dir],
        Backend::Postgres => vec!["audit", "verify", "--database-url", &db.url],
    };
    let out = std::process::Command::new(crate::support::IDV)
        .args(&offline)
        .output()
        .unwrap();
    let err = fails(out);
    assert!(err.contains(&format!("broken at event {target}")), "{err}");
    assert!(err.contains("altered"), "{err}");

    let mut with_json = offline.clone();
    with_json.push("--json");
    let out = std::process::Command::new(crate::support::IDV)
        .args(&with_json)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["broken"]["seq"], target);
    assert_eq!(report["verified"], target - 1);
}

/// Name, size and modification time of every file in `dir`; not the time
/// of SQLite's `-shm` file, the WAL's index in shared memory, where every
/// reader (read-only ones too) marks what it reads.
fn listing(dir: &std::path::Path) -> Vec<(String, u64, Option<std::time::SystemTime>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            let time = (!name.ends_with("-shm")).then(|| m.modified().unwrap());
            (name, m.len(), time)
        })
        .collect();
    out.sort();
    out
}

/// `idv audit verify --offline`, from a directory other than the server's,
/// with the database found as `idv serve` finds it: `env` set, no other
/// `IDV_*` location variable.
fn verify_offline(cwd: &std::path::Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(crate::support::IDV);
    cmd.current_dir(cwd)
        .args(["audit", "verify", "--offline"])
        .env_remove("IDV_DATA_DIR")
        .env_remove("IDV_DATABASE_URL")
        .env_remove("IDV_ADDR")
        .env_remove("IDV_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Offline verification opens the database read-only (nothing in the data
/// directory changes, no migration runs, a schema of another version is
/// refused) and finds it through `IDV_DATA_DIR` / `IDV_DATABASE_URL` or the
/// default `./idv-data`, like `idv serve`.
async fn audit_verify_offline_reads_only_and_finds_the_database_as_serve_does(backend: Backend) {
    let s = TestServer::start(backend).await;
    for i in 0..3 {
        ok(idv(
            &s,
            &[
                "agent",
                "create",
                "--name",
                &format!("v{i}"),
                "--owner",
                "o",
                "--purpose",
                "p",
            ],
        ));
    }
    let db = s.stop().await;
    sqlx::any::install_default_drivers();
    // SQLite: a consistent copy of the database in a data directory of its
    // own, as a cleanly stopped server leaves it (the stopped test server's
    // last connections may still be closing in this process).
    let copy = tempfile::tempdir().unwrap();
    let (dir, url) = match backend {
        Backend::Sqlite => {
            let file = copy.path().join("idv.db");
            let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
            sqlx::query(&format!("VACUUM INTO '{}'", file.display()))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.unwrap();
            (copy.path(), format!("sqlite://{}", file.display()))
        }
        Backend::Postgres => (db.dir.path(), db.url.clone()),
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let data_dir = dir.to_str().unwrap().to_owned();
    let env: Vec<(&str, &str)> = match backend {
        Backend::Sqlite => vec![("IDV_DATA_DIR", &data_dir)],
        Backend::Postgres => vec![("IDV_DATABASE_URL", &db.url)],
    };
    let before = listing(dir);
    let out = ok(verify_offline(elsewhere.path(), &env));
    assert!(out.contains("Audit chain intact"), "{out}");
    assert_eq!(listing(dir), before, "the data directory changed");

    // Nothing found where serve would look: a clear error naming the place.
    let err = fails(verify_offline(elsewhere.path(), &[]));
    assert!(err.contains("idv-data") && err.contains("IDV_DATA_DIR"), "{err}");
    if backend == Backend::Sqlite {
        // The default data directory, `./idv-data`, as `idv serve` uses.
        std::os::unix::fs::symlink(dir, elsewhere.path().join("idv-data")).unwrap();
        let out = ok(verify_offline(elsewhere.path(), &[]));
        assert!(out.contains("Audit chain intact"), "{out}");
        assert_eq!(listing(dir), before, "the data directory changed");
    }

    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let run = |sql: &'static str| sqlx::query(sql);
    // A schema newer than this binary's is refused.
    run("INSERT INTO idv_migrations (version, applied_at) VALUES (9999, 'applied')")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = fails(verify_offline(elsewhere.path(), &env));
    assert!(err.contains("newer"), "{err}");
    run("DELETE FROM idv_migrations WHERE version = 9999")
        .execute(&mut conn)
        .await
        .unwrap();
    // An older one too, and it is not migrated.
    let (latest,): (i64,) = sqlx::query_as("SELECT MAX(version) FROM idv_migrations")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM idv_migrations WHERE version = $1")
        .bind(latest)
        .execute(&mut conn)
        .await
        .unwrap();
    let err = fails(verify_offline(elsewhere.path(), &env));
    assert!(err.contains("older"), "{err}");
    let (still,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM idv_migrations WHERE version = $1")
        .bind(latest)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(still, 0, "offline verify migrated the database");
    conn.close().await.unwrap();
}

async fn client_mistakes_are_one_line_errors(backend: Backend) {
    let s = TestServer::start(backend).await;
    let err = fails(idv_as(&s, "", &["agent", "list"]));
    assert!(err.contains("IDV_TOKEN"), "{err}");
    let err = fails(idv_as(&s, "idvat_wrong", &["agent", "list"]));
    assert!(err.contains("401"), "{err}");
    let err = fails(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "x",
            "--owner",
            "o",
            "--purpose",
            "p",
            "--label",
            "nolabel",
        ],
    ));
    assert!(err.contains("key=value"), "{err}");
    let err = fails(idv(&s, &["agent", "get", "not-a-uuid"]));
    assert!(err.contains("400") && err.contains("not-a-uuid"), "{err}");
    // Path segments are echoed as typed, not form-encoded (`<approval+id>`).
    let err = fails(idv(&s, &["approval", "approve", "<approval id>", "--comment", "x"]));
    assert!(err.contains("<approval id>") && !err.contains('+'), "{err}");
    let err = fails(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "x",
            "--owner",
            "o",
            "--purpose",
            "p",
            "--environment",
            "staging",
        ],
    ));
    assert!(err.contains("environment"), "{err}");
    let out = std::process::Command::new(crate::support::IDV)
        .args(["agent", "list"])
        .env("IDV_ADDR", "http://127.0.0.1:9")
        .env("IDV_TOKEN", &s.token)
        .output()
        .unwrap();
    let err = fails(out);
    assert!(err.contains("cannot reach"), "{err}");
    s.stop().await;
}

async fn sso_commands(backend: Backend) {
    let s = TestServer::start(backend).await;
    let out = ok(idv(
        &s,
        &[
            "sso",
            "set",
            "--issuer",
            "https://bank.okta.com",
            "--client-id",
            "0oa1idv",
            "--client-secret",
            "s3cret-value",
            "--map",
            "IdentityVault Admins=admin",
            "--map",
            "Auditors=auditor",
            "--scope",
            "openid",
            "--scope",
            "groups",
        ],
    ));
    assert!(
        out.contains("Redirect URI:") && out.contains("/console/sso/callback"),
        "{out}"
    );
    assert!(!out.contains("s3cret-value"));
    let v = json(idv(&s, &["sso", "get", "--json"]));
    assert_eq!(v["role_map"]["IdentityVault Admins"], "admin");
    assert_eq!(v["scopes"], serde_json::json!(["openid", "groups"]));
    // Mistakes are one-line errors.
    let err = fails(idv(
        &s,
        &[
            "sso",
            "set",
            "--issuer",
            "https://bank.okta.com",
            "--client-id",
            "c",
            "--client-secret",
            "x",
            "--map",
            "no-equals-sign",
        ],
    ));
    assert!(err.contains("GROUP=ROLE"), "{err}");
    let err = fails(idv(
        &s,
        &[
            "sso",
            "set",
            "--issuer",
            "http://idp.example",
            "--client-id",
            "c",
            "--client-secret",
            "x",
            "--map",
            "g=admin",
        ],
    ));
    assert!(err.contains("issuer"), "{err}");
    ok(idv(&s, &["sso", "delete"]));
    let err = fails(idv(&s, &["sso", "get"]));
    assert!(err.contains("single sign-on provider"), "{err}");
}

/// `idv access-request …`: ask, refuse to self-approve, approve by another,
/// list and show, withdraw.
async fn access_request_commands(backend: Backend) {
    let s = TestServer::start(backend).await;
    ok(idv(&s, &["role", "put", "reader", "--action", "read"]));
    let a = json(idv(
        &s,
        &[
            "agent",
            "create",
            "--name",
            "jit",
            "--owner",
            "o",
            "--purpose",
            "p",
            "--json",
        ],
    ));
    let id = a["id"].as_str().unwrap().to_owned();
    let approver = json(idv(
        &s,
        &["admin-token", "create", "--name", "lead", "--role", "admin", "--json"],
    ));
    let approver = approver["token"].as_str().unwrap().to_owned();
    let r = json(idv(
        &s,
        &[
            "access-request",
            "create",
            "--agent",
            &id,
            "--role",
            "reader",
            "--justification",
            "quarter close",
            "--duration",
            "8h",
            "--json",
        ],
    ));
    let rid = r["id"].as_str().unwrap().to_owned();
    assert_eq!(r["state"], "pending");
    let err = fails(idv(&s, &["access-request", "approve", &rid]));
    assert!(err.contains("403") && err.contains("own request"), "{err}");
    let shown = ok(idv_as(
        &s,
        &approver,
        &["access-request", "approve", &rid, "--comment", "ok"],
    ));
    assert!(shown.contains("approved") && shown.contains("lead"), "{shown}");
    let listed = ok(idv(&s, &["access-request", "list", "--status", "approved"]));
    assert!(listed.contains(&rid) && listed.contains("role reader"), "{listed}");
    let got = json(idv(&s, &["access-request", "get", &rid, "--json"]));
    assert!(got["grant_id"].is_string(), "{got}");
    let err = fails(idv(
        &s,
        &[
            "access-request",
            "create",
            "--agent",
            &id,
            "--justification",
            "x",
            "--duration",
            "1h",
        ],
    ));
    assert!(err.contains("--role") || err.contains("--action"), "{err}");
    let r2 = json(idv(
        &s,
        &[
            "access-request",
            "create",
            "--agent",
            &id,
            "--action",
            "read",
            "--justification",
            "j",
            "--duration",
            "1h",
            "--json",
        ],
    ));
    let w = ok(idv(&s, &["access-request", "withdraw", r2["id"].as_str().unwrap()]));
    assert!(w.contains("withdrawn"), "{w}");
}
