//! Snapshots of the public protocol documents as served: the OpenAPI
//! document, the OAuth authorization-server metadata (RFC 8414) of the root
//! issuer and of a tenant's, and the AuthZEN configuration. A change of the
//! public surface shows up in review as a change of a `.snap` file under
//! `snapshots/` (accept one with `cargo insta review`, or rerun with
//! `INSTA_UPDATE=always` and read the diff).
//!
//! What varies per run, the server's address, is written as `http://[base]`.

use idv_testkit::{Backend, TestServer, backend_tests};
use reqwest::StatusCode;
use serde_json::Value;

use crate::tenant_token;

backend_tests!(
    openapi_document_is_unchanged,
    oauth_metadata_is_unchanged,
    authzen_configuration_is_unchanged,
);

/// GET `path` (no token), expecting 200 and JSON; the body pretty-printed,
/// with the server's address replaced by `http://[base]`.
async fn document(s: &TestServer, path: &str) -> String {
    let res = s.http.get(s.url(path)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{path}");
    let ctype = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ctype.starts_with("application/json"), "{path}: {ctype}");
    let text = res.text().await.unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e})"));
    // The served bytes are the compact form of what the snapshot shows (its
    // keys in the same order), so the snapshot pins the bytes too.
    assert_eq!(serde_json::to_string(&doc).unwrap(), text, "{path}: keys out of order");
    serde_json::to_string_pretty(&doc)
        .unwrap()
        .replace(&s.base, "http://[base]")
}

async fn openapi_document_is_unchanged(backend: Backend) {
    let s = TestServer::start(backend).await;
    insta::assert_snapshot!("openapi", document(&s, "/openapi.json").await);
}

async fn oauth_metadata_is_unchanged(backend: Backend) {
    let s = TestServer::start(backend).await;
    tenant_token(&s, "alpha", "admin").await;
    insta::assert_snapshot!(
        "oauth_metadata_root",
        document(&s, "/.well-known/oauth-authorization-server").await
    );
    insta::assert_snapshot!(
        "oauth_metadata_tenant",
        document(&s, "/.well-known/oauth-authorization-server/t/alpha").await
    );
}

async fn authzen_configuration_is_unchanged(backend: Backend) {
    let s = TestServer::start(backend).await;
    insta::assert_snapshot!(
        "authzen_configuration",
        document(&s, "/.well-known/authzen-configuration").await
    );
}
