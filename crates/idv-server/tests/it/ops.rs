//! Health, readiness, metrics and the OpenAPI document.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::Method;
use serde_json::Value;

backend_tests!(health_metrics_and_openapi);

async fn health_metrics_and_openapi(backend: Backend) {
    let s = TestServer::start(backend).await;
    for path in ["/healthz", "/readyz"] {
        let res = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    }
    crate::create_agent(&s, &s.token, "m").await;
    let _ = s.http.get(s.url("/v1/agents")).send().await.unwrap();
    let res = s.http.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for name in [
        "idv_http_responses_total{class=\"2xx\"}",
        "idv_http_responses_total{class=\"4xx\"}",
        "idv_auth_failures_total",
        "idv_audit_events_total",
        "idv_audit_batches_total",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    let res = s.http.get(s.url("/openapi.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let doc: Value = res.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/v1/tenants",
        "/v1/tenants/{name}",
        "/v1/admin-tokens",
        "/v1/admin-tokens/self",
        "/v1/admin-tokens/{id}",
        "/v1/agents",
        "/v1/agents/bulk",
        "/v1/agents/export",
        "/v1/agents/{id}",
        "/v1/agents/{id}/{transition}",
        "/v1/audit/events",
        "/v1/audit/head",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing from the OpenAPI document");
    }
    // X-Request-Id is echoed, or assigned.
    let res = s
        .req(Method::GET, "/v1/agents")
        .header("x-request-id", "req-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-123");
    let res = s.req(Method::GET, "/v1/agents").send().await.unwrap();
    assert!(!res.headers()["x-request-id"].is_empty());
}
