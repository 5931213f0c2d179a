//! Health, readiness, metrics, the OpenAPI document, and request ids.

use std::collections::{BTreeMap, BTreeSet};

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::{Method, StatusCode};
use serde_json::Value;

backend_tests!(
    health_and_readiness_need_no_token,
    metrics_are_prometheus_text_and_count,
    openapi_documents_every_route,
    request_ids_are_echoed_or_assigned,
);

async fn health_and_readiness_need_no_token(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in ["/healthz", "/readyz"] {
        for auth in [None, Some("Bearer wrong")] {
            let mut req = s.http.get(s.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status(), StatusCode::OK, "{path}");
            assert!(
                res.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/json")
            );
            assert_eq!(res.json::<Value>().await.unwrap(), serde_json::json!({"status": "ok"}));
        }
    }
}

/// Parses Prometheus text exposition: `name{labels} value` lines into a map,
/// checking every line is well formed and every sample has HELP and TYPE.
fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    let mut samples = BTreeMap::new();
    let mut help = BTreeSet::new();
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, doc) = rest.split_once(' ').unwrap();
            assert!(!doc.is_empty(), "{line}");
            help.insert(name.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            types.insert(name.to_owned(), kind.to_owned());
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "unexpected line {line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
                "{line}"
            );
            if let Some(labels) = series.strip_prefix(name) {
                assert!(
                    labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                    "{line}"
                );
            }
            assert!(
                help.contains(name) && types.contains_key(name),
                "{name} has no HELP/TYPE"
            );
            if types[name] == "counter" {
                assert!(name.ends_with("_total"), "counter {name} should end in _total");
            }
            samples.insert(series.to_owned(), value.parse::<f64>().unwrap());
        }
    }
    samples
}

async fn metrics_are_prometheus_text_and_count(backend: Backend) {
    let s = TestServer::start(backend).await;
    let scrape = || async {
        let res = s.http.get(s.url("/metrics")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/plain; version=0.0.4");
        parse_prometheus(&res.text().await.unwrap())
    };
    let before = scrape().await;
    for name in [
        "idv_http_responses_total{class=\"1xx\"}",
        "idv_http_responses_total{class=\"2xx\"}",
        "idv_http_responses_total{class=\"3xx\"}",
        "idv_http_responses_total{class=\"4xx\"}",
        "idv_http_responses_total{class=\"5xx\"}",
        "idv_auth_failures_total",
        "idv_jobs_run_total",
        "idv_jobs_failed_total",
        "idv_audit_batches_total",
        "idv_audit_units_total",
        "idv_audit_events_total",
        "idv_audit_failed_batches_total",
        "idv_audit_batch_seconds_total",
        "idv_audit_commit_seconds_total",
        "idv_writer_reconnects_total",
        "idv_writer_healthy",
        "idv_http_connections_open",
        "idv_http_connections_accepted_total",
        "idv_http_connections_timed_out_total",
        "idv_http_connections_refused_total{limit=\"per_ip\"}",
        "idv_http_connections_refused_total{limit=\"total\"}",
    ] {
        assert!(before.contains_key(name), "missing {name} in {before:?}");
    }
    crate::create_agent(&s, &s.token, "m").await;
    let _ = s.http.get(s.url("/v1/agents")).send().await.unwrap();
    let _ = s.req(Method::GET, "/v1/agents/not-an-id").send().await.unwrap();
    let after = scrape().await;
    let delta = |k: &str| after[k] - before[k];
    // The scrape itself counts as a 2xx once it has been answered.
    assert!(delta("idv_http_responses_total{class=\"2xx\"}") >= 2.0);
    assert_eq!(delta("idv_http_responses_total{class=\"4xx\"}"), 2.0);
    assert_eq!(delta("idv_http_responses_total{class=\"5xx\"}"), 0.0);
    // Creating the agent was a group commit, and it took time.
    assert!(delta("idv_audit_batch_seconds_total") > 0.0);
    assert!(after["idv_audit_commit_seconds_total"] <= after["idv_audit_batch_seconds_total"]);
    assert_eq!(delta("idv_auth_failures_total"), 1.0);
    assert_eq!(delta("idv_audit_events_total"), 1.0);
    assert!(delta("idv_audit_batches_total") >= 1.0);
    // The scrapes' own connection is open.
    assert!(after["idv_http_connections_open"] >= 1.0);
    assert!(after["idv_http_connections_accepted_total"] >= 1.0);
}

async fn openapi_documents_every_route(backend: Backend) {
    let s = TestServer::start(backend).await;
    let res = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let doc: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert!(!doc["info"]["title"].as_str().unwrap().is_empty());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 16, "only {paths:?}");
    assert!(paths.keys().filter(|p| p.starts_with("/v1/")).count() >= 12);
    for (path, item) in paths {
        let item = item.as_object().unwrap();
        let methods: BTreeSet<String> = item
            .keys()
            .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
            .cloned()
            .collect();
        assert!(!methods.is_empty(), "{path} documents no operation");
        for (method, op) in item {
            if !methods.contains(method) {
                continue;
            }
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
            // Every admin API and AuthZEN operation needs the bearer token;
            // ops and discovery endpoints do not.
            let secured = op["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            let needs = path.starts_with("/v1/") || path.starts_with("/access/");
            assert_eq!(secured, needs, "{method} {path}");
            // Path parameters are declared.
            for seg in path.split('/').filter(|s| s.starts_with('{')) {
                let name = seg.trim_matches(|c| c == '{' || c == '}');
                let declared = op["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|p| p["name"] == name && p["in"] == "path"));
                assert!(declared, "{method} {path}: `{name}` not declared");
            }
            // Documented means served: its handler answers (without a token,
            // so nothing changes), not the router's 404 or 405.
            let concrete: Vec<String> = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        crate::ghost_id()
                    } else {
                        seg.to_owned()
                    }
                })
                .collect();
            let res = s
                .http
                .request(method.to_uppercase().parse().unwrap(), s.url(&concrete.join("/")))
                .send()
                .await
                .unwrap();
            let status = res.status();
            let text = res.text().await.unwrap();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is not routed: {text}"
            );
            assert!(
                !text.contains("no such endpoint"),
                "{method} {path} is documented but not routed: {text}"
            );
        }
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"]
            .as_str()
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("bearer")
    );
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    assert!(doc["components"]["schemas"]["AgentView"].is_object());
}

async fn request_ids_are_echoed_or_assigned(backend: Backend) {
    let s = TestServer::start(backend).await;
    let res = s
        .req(Method::GET, "/v1/agents")
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123");
    let mut seen = BTreeSet::new();
    for path in ["/v1/agents", "/healthz", "/nope", "/metrics"] {
        let res = s.req(Method::GET, path).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(!id.is_empty());
        assert!(seen.insert(id), "request ids repeat");
    }
}
