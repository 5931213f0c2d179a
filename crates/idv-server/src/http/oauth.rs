//! The OAuth edge: token, introspection and revocation endpoints, RFC 8414
//! metadata and the JWKS, for every tenant (`/t/{tenant}/…`, metadata by
//! RFC 8414 §3.1 path insertion) and for the default tenant at the root.
//! Errors use the RFC 6749 §5.2 JSON format, never problem+json.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::app::oauth::{self, ClientAuth, Issuer, OAuthError, TokenRequest};
use crate::app::{self, AppError, keys};

/// A form body's parameters (RFC 6749 §3.2: none may repeat, except those a
/// later RFC makes repeatable).
#[derive(Debug, Default)]
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(headers: &HeaderMap, body: &[u8], repeatable: &[&str]) -> Result<Self, OAuthError> {
        let form_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(OAuthError::InvalidRequest(
                "send the parameters as `application/x-www-form-urlencoded` (RFC 6749 §4.4.2)".into(),
            ));
        }
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !repeatable.contains(&k.as_str()) && pairs.iter().skip(i + 1).any(|(k2, _)| k2 == k) {
                return Err(OAuthError::InvalidRequest(format!(
                    "parameter `{k}` is repeated (RFC 6749 §3.2)"
                )));
            }
        }
        Ok(Self(pairs))
    }

    /// The parameter's value; an empty value counts as absent (RFC 6749 §3.1).
    fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.one(name)
            .ok_or_else(|| OAuthError::InvalidRequest(format!("parameter `{name}` is missing")))
    }
}

/// The credentials in the `Authorization` header.
pub(super) enum HeaderAuth {
    None,
    Basic(String, String),
    Bearer(String),
}

pub(super) fn header_auth(headers: &HeaderMap) -> Result<HeaderAuth, OAuthError> {
    let Some(v) = headers.get(header::AUTHORIZATION) else {
        return Ok(HeaderAuth::None);
    };
    let bad = || OAuthError::InvalidClient("the Authorization header is malformed".into());
    let v = v.to_str().map_err(|_| bad())?;
    let (scheme, rest) = v.split_once(' ').ok_or_else(bad)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| bad())?;
        let text = String::from_utf8(raw).map_err(|_| bad())?;
        let (id, secret) = text.split_once(':').ok_or_else(bad)?;
        // RFC 6749 §2.3.1: both parts are form-urlencoded before encoding.
        let decode = |s: &str| -> String {
            form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        Ok(HeaderAuth::Basic(decode(id), decode(secret)))
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Ok(HeaderAuth::Bearer(rest.to_owned()))
    } else {
        Err(bad())
    }
}

/// The `DPoP` header, if any (RFC 9449 §4.3: exactly one).
fn dpop_header(headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut all = headers.get_all("dpop").iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(OAuthError::InvalidDpopProof("send exactly one `DPoP` header".into()));
    }
    first
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| OAuthError::InvalidDpopProof("the `DPoP` header is not readable text".into()))
        })
        .transpose()
}

/// The client authentication in a request (RFC 6749 §2.3: exactly one method).
fn client_auth(header: &HeaderAuth, form: &Form) -> Result<Option<ClientAuth>, OAuthError> {
    let form_secret = form.one("client_secret");
    let assertion = form.one("client_assertion");
    let client_id = form.one("client_id").map(str::to_owned);
    let many = || OAuthError::InvalidRequest("use exactly one client authentication method (RFC 6749 §2.3)".into());
    match header {
        HeaderAuth::Basic(id, secret) => {
            if form_secret.is_some() || assertion.is_some() {
                return Err(many());
            }
            if client_id.as_deref().is_some_and(|c| c != id) {
                return Err(OAuthError::InvalidRequest(
                    "`client_id` does not match the Authorization header".into(),
                ));
            }
            Ok(Some(ClientAuth::Basic {
                client_id: id.clone(),
                secret: secret.clone(),
            }))
        }
        HeaderAuth::Bearer(_) | HeaderAuth::None => match (form_secret, assertion) {
            (Some(_), Some(_)) => Err(many()),
            (Some(secret), None) => {
                let client_id =
                    client_id.ok_or_else(|| OAuthError::InvalidRequest("`client_secret` needs `client_id`".into()))?;
                Ok(Some(ClientAuth::Post {
                    client_id,
                    secret: secret.to_owned(),
                }))
            }
            (None, Some(a)) => {
                if form.one("client_assertion_type") != Some(oauth::JWT_BEARER_ASSERTION) {
                    return Err(OAuthError::InvalidRequest(format!(
                        "`client_assertion_type` must be `{}` (RFC 7523 §2.2)",
                        oauth::JWT_BEARER_ASSERTION
                    )));
                }
                Ok(Some(ClientAuth::Assertion {
                    client_id,
                    assertion: a.to_owned(),
                }))
            }
            (None, None) => Ok(None),
        },
    }
}

/// An RFC 6749 §5.2 error response.
struct OAuthResponse(OAuthError);

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = match &e {
            OAuthError::InvalidClient(_) => StatusCode::UNAUTHORIZED,
            OAuthError::TooManyFailures { .. } => StatusCode::TOO_MANY_REQUESTS,
            OAuthError::Server(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let description = match &e {
            OAuthError::Server(inner) => {
                tracing::error!(error = %inner, "oauth request failed");
                "the request could not be completed; try again".to_owned()
            }
            other => other.to_string(),
        };
        let mut res = (
            status,
            axum::Json(json!({ "error": e.code(), "error_description": description })),
        )
            .into_response();
        let h = res.headers_mut();
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let OAuthError::TooManyFailures { retry_after, .. } = &e {
            h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6749 §5.2: a 401 names the scheme the client may use.
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"idv\", error=\"invalid_client\""),
            );
        }
        res
    }
}

fn no_store(body: impl serde::Serialize) -> Response {
    let mut res = axum::Json(body).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    res
}

async fn resolve(state: &AppState, tenant: Option<&str>) -> Result<Issuer, OAuthError> {
    oauth::issuer(state, tenant).await.map_err(|e| match e {
        AppError::Store(idv_store::StoreError::NotFound { .. }) => {
            OAuthError::InvalidRequest("no such tenant (issuer)".into())
        }
        other => OAuthError::Server(other),
    })
}

async fn token_inner(
    state: &AppState,
    tenant: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let issuer = resolve(state, tenant).await?;
    let parsed = (|| {
        let form = Form::parse(headers, body, &["resource", "audience"])?;
        let header = header_auth(headers)?;
        if matches!(header, HeaderAuth::Bearer(_)) {
            return Err(OAuthError::InvalidClient(
                "the token endpoint takes client credentials, not a bearer token".into(),
            ));
        }
        let auth = client_auth(&header, &form)?;
        let req = TokenRequest {
            grant_type: form.required("grant_type")?.to_owned(),
            scope: form.0.iter().find(|(k, _)| k == "scope").map(|(_, v)| v.clone()),
            resources: form.all("resource"),
            authorization_details: form.one("authorization_details").map(str::to_owned),
            audiences: form.all("audience"),
            subject_token: form.one("subject_token").map(str::to_owned),
            subject_token_type: form.one("subject_token_type").map(str::to_owned),
            actor_token: form.one("actor_token").map(str::to_owned),
            actor_token_type: form.one("actor_token_type").map(str::to_owned),
            requested_token_type: form.one("requested_token_type").map(str::to_owned),
            dpop: dpop_header(headers)?,
        };
        Ok((auth, req))
    })();
    let (auth, req) = match parsed {
        Ok(p) => p,
        Err(e) => {
            // Refusals before authentication are on the record too, under
            // the client id the request claimed, if any.
            let claimed = match header_auth(headers) {
                Ok(HeaderAuth::Basic(id, _)) => Some(id),
                _ => form_urlencoded::parse(body)
                    .find(|(k, _)| k == "client_id")
                    .map(|(_, v)| v.into_owned()),
            };
            return Err(oauth::refuse_request(state, &issuer, claimed.as_deref(), e).await);
        }
    };
    let r = oauth::token(state, &issuer, auth, req).await?;
    Ok(no_store(r))
}

/// Authenticates the caller of introspection or revocation: an agent's client
/// credentials, or an admin token of the issuer's tenant.
async fn endpoint_caller(
    state: &AppState,
    issuer: &Issuer,
    headers: &HeaderMap,
    form: &Form,
) -> Result<oauth::Caller, OAuthError> {
    let header = header_auth(headers)?;
    if let HeaderAuth::Bearer(token) = &header {
        let caller = app::auth::authenticate(state, token, None).await.map_err(|e| match e {
            AppError::Unauthenticated(d) | AppError::Forbidden(d) => OAuthError::InvalidClient(d),
            other => OAuthError::Server(other),
        })?;
        if caller.tenant.id != issuer.tenant.id {
            return Err(OAuthError::InvalidClient(
                "the admin token belongs to another tenant".into(),
            ));
        }
        return Ok(oauth::Caller::Admin(Box::new(caller)));
    }
    let auth = client_auth(&header, form)?
        .ok_or_else(|| OAuthError::InvalidClient("authenticate with client credentials or an admin token".into()))?;
    let client = oauth::authenticate(state, issuer, &auth).await?;
    if client.assertion_jti.is_some() {
        // RFC 7523 §3: an assertion is single-use here too.
        return Err(OAuthError::InvalidClient(
            "use client_secret_basic, client_secret_post or an admin token here".into(),
        ));
    }
    Ok(oauth::Caller::Client(Box::new(client)))
}

async fn introspect_inner(
    state: &AppState,
    tenant: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let issuer = resolve(state, tenant).await?;
    let form = Form::parse(headers, body, &[])?;
    let caller = endpoint_caller(state, &issuer, headers, &form).await?;
    let token = form.required("token")?;
    let out = oauth::introspect(state, &issuer, &caller, token).await?;
    Ok(no_store(out))
}

async fn revoke_inner(
    state: &AppState,
    tenant: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, OAuthError> {
    let issuer = resolve(state, tenant).await?;
    let form = Form::parse(headers, body, &[])?;
    let caller = endpoint_caller(state, &issuer, headers, &form).await?;
    let token = form.required("token")?;
    if let Some(hint) = form.one("token_type_hint")
        && !matches!(hint, "access_token" | "refresh_token")
    {
        // RFC 7009 §2.2.1: a hint we do not know is not an error; the token
        // is searched for anyway. Only say so in the log.
        tracing::debug!(hint, "unknown token_type_hint");
    }
    oauth::revoke(state, &issuer, &caller, token).await?;
    Ok(no_store(json!({})))
}

fn respond(r: Result<Response, OAuthError>) -> Response {
    r.unwrap_or_else(|e| OAuthResponse(e).into_response())
}

/// The three form-posting OAuth endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    Token,
    Introspect,
    Revoke,
}

/// Reads the request, runs `endpoint` for the tenant (`None`: the default
/// tenant at the root) and renders the answer or the RFC 6749 error.
async fn serve(state: AppState, tenant: Option<String>, req: axum::extract::Request, endpoint: Endpoint) -> Response {
    let dpop = endpoint == Endpoint::Token && req.headers().contains_key("dpop");
    let mut res = respond(
        async {
            let (headers, body) = split(req).await?;
            let t = tenant.as_deref();
            match endpoint {
                Endpoint::Token => token_inner(&state, t, &headers, &body).await,
                Endpoint::Introspect => introspect_inner(&state, t, &headers, &body).await,
                Endpoint::Revoke => revoke_inner(&state, t, &headers, &body).await,
            }
        }
        .await,
    );
    // RFC 9449 §8: hand out a fresh nonce to DPoP clients.
    if dpop && let Ok(v) = HeaderValue::from_str(&state.dpop_nonces.issue(state.clock.now())) {
        res.headers_mut().insert("dpop-nonce", v);
    }
    res
}

/// Token endpoint of the default tenant.
#[utoipa::path(post, path = "/oauth2/token", tag = "oauth",
    request_body(content = idv_api::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = idv_api::TokenResponseBody), (status = 400, body = idv_api::OAuthErrorBody),
        (status = 401, body = idv_api::OAuthErrorBody), (status = 429, body = idv_api::OAuthErrorBody),
        (status = 503, body = idv_api::OAuthErrorBody)))]
pub async fn token(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    serve(state, None, req, Endpoint::Token).await
}

/// Token endpoint of a tenant.
#[utoipa::path(post, path = "/t/{tenant}/oauth2/token", tag = "oauth", params(("tenant" = String, Path)),
    request_body(content = idv_api::TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = idv_api::TokenResponseBody), (status = 400, body = idv_api::OAuthErrorBody),
        (status = 401, body = idv_api::OAuthErrorBody), (status = 429, body = idv_api::OAuthErrorBody),
        (status = 503, body = idv_api::OAuthErrorBody)))]
pub async fn tenant_token(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    req: axum::extract::Request,
) -> Response {
    serve(state, Some(tenant), req, Endpoint::Token).await
}

async fn split(req: axum::extract::Request) -> Result<(HeaderMap, Bytes), OAuthError> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, super::BODY_LIMIT)
        .await
        .map_err(|_| OAuthError::InvalidRequest("the body is too large or unreadable".into()))?;
    Ok((parts.headers, bytes))
}

/// Introspection endpoint of the default tenant.
#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth",
    request_body(content = idv_api::TokenLookupForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object), (status = 400, body = idv_api::OAuthErrorBody),
        (status = 401, body = idv_api::OAuthErrorBody), (status = 429, body = idv_api::OAuthErrorBody),
        (status = 503, body = idv_api::OAuthErrorBody)))]
pub async fn introspect(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    serve(state, None, req, Endpoint::Introspect).await
}

/// Introspection endpoint of a tenant.
#[utoipa::path(post, path = "/t/{tenant}/oauth2/introspect", tag = "oauth", params(("tenant" = String, Path)),
    request_body(content = idv_api::TokenLookupForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object), (status = 400, body = idv_api::OAuthErrorBody),
        (status = 401, body = idv_api::OAuthErrorBody), (status = 429, body = idv_api::OAuthErrorBody),
        (status = 503, body = idv_api::OAuthErrorBody)))]
pub async fn tenant_introspect(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    req: axum::extract::Request,
) -> Response {
    serve(state, Some(tenant), req, Endpoint::Introspect).await
}

/// Revocation endpoint of the default tenant.
#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth",
    request_body(content = idv_api::TokenLookupForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object), (status = 400, body = idv_api::OAuthErrorBody),
        (status = 401, body = idv_api::OAuthErrorBody), (status = 429, body = idv_api::OAuthErrorBody),
        (status = 503, body = idv_api::OAuthErrorBody)))]
pub async fn revoke(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    serve(state, None, req, Endpoint::Revoke).await
}

/// Revocation endpoint of a tenant.
#[utoipa::path(post, path = "/t/{tenant}/oauth2/revoke", tag = "oauth", params(("tenant" = String, Path)),
    request_body(content = idv_api::TokenLookupForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, body = Object), (status = 400, body = idv_api::OAuthErrorBody),
        (status = 401, body = idv_api::OAuthErrorBody), (status = 429, body = idv_api::OAuthErrorBody),
        (status = 503, body = idv_api::OAuthErrorBody)))]
pub async fn tenant_revoke(
    State(state): State<AppState>,
    Path(tenant): Path<String>,
    req: axum::extract::Request,
) -> Response {
    serve(state, Some(tenant), req, Endpoint::Revoke).await
}

/// The RFC 8414 metadata document of `issuer`: every endpoint, grant, method
/// and algorithm we support, and nothing else.
fn metadata(issuer: &Issuer) -> Value {
    let methods = json!(["client_secret_basic", "client_secret_post", "private_key_jwt"]);
    // RFC 9864 §2.2: `Ed25519` beside the deprecated `EdDSA`.
    let assertion_algs: Vec<&str> = idv_core::jose::Alg::ACCEPTED.map(|a| a.as_str()).to_vec();
    let dpop_algs: Vec<&str> = idv_core::dpop::ALGS.map(|a| a.as_str()).to_vec();
    json!({
        "issuer": issuer.url,
        "token_endpoint": issuer.endpoint("/oauth2/token"),
        "jwks_uri": issuer.endpoint("/.well-known/jwks.json"),
        "introspection_endpoint": issuer.endpoint("/oauth2/introspect"),
        "revocation_endpoint": issuer.endpoint("/oauth2/revoke"),
        // No authorization endpoint: agents use client_credentials only.
        "response_types_supported": [],
        "grant_types_supported": ["client_credentials", oauth::GRANT_TOKEN_EXCHANGE],
        "token_endpoint_auth_methods_supported": methods,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
        "dpop_signing_alg_values_supported": dpop_algs,
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
    })
}

fn not_found_issuer(e: OAuthError) -> Response {
    match e {
        OAuthError::InvalidRequest(_) => super::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            "no such tenant (issuer)",
        )
        .into_response(),
        other => OAuthResponse(other).into_response(),
    }
}

/// RFC 8414 metadata of the default tenant (root issuer).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth",
    responses((status = 200, description = "RFC 8414 metadata", body = Object), (status = 404, body = idv_api::Problem)))]
pub async fn root_metadata(State(state): State<AppState>) -> Response {
    metadata_for(&state, None).await
}

/// RFC 8414 metadata of a tenant (`/.well-known/oauth-authorization-server/t/{tenant}`).
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server/t/{tenant}", tag = "oauth", params(("tenant" = String, Path)),
    responses((status = 200, description = "RFC 8414 metadata", body = Object), (status = 404, body = idv_api::Problem)))]
pub async fn tenant_metadata(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    metadata_for(&state, Some(&tenant)).await
}

async fn metadata_for(state: &AppState, tenant: Option<&str>) -> Response {
    match resolve(state, tenant).await {
        Ok(issuer) => axum::Json(metadata(&issuer)).into_response(),
        Err(e) => not_found_issuer(e),
    }
}

/// JWKS of the default tenant.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "oauth",
    responses((status = 200, description = "JWK set", body = Object), (status = 404, body = idv_api::Problem)))]
pub async fn root_jwks(State(state): State<AppState>) -> Response {
    jwks_for(&state, None).await
}

/// JWKS of a tenant.
#[utoipa::path(get, path = "/t/{tenant}/.well-known/jwks.json", tag = "oauth", params(("tenant" = String, Path)),
    responses((status = 200, description = "JWK set", body = Object), (status = 404, body = idv_api::Problem)))]
pub async fn tenant_jwks(State(state): State<AppState>, Path(tenant): Path<String>) -> Response {
    jwks_for(&state, Some(&tenant)).await
}

async fn jwks_for(state: &AppState, tenant: Option<&str>) -> Response {
    let issuer = match resolve(state, tenant).await {
        Ok(i) => i,
        Err(e) => return not_found_issuer(e),
    };
    // The first key is made on first use, so a resource server fetching the
    // JWKS before any token exists still gets the key that will sign.
    match keys::signing_ring(state, issuer.tenant.id).await {
        Ok(ring) => {
            let mut res = axum::Json(json!({ "keys": ring.jwks(state.clock.now()) })).into_response();
            // Shorter than the publication lead of a next key (config::jwks_max_age_secs).
            if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={}", state.jwks_max_age_secs)) {
                res.headers_mut().insert(header::CACHE_CONTROL, v);
            }
            res
        }
        Err(e) => OAuthResponse(OAuthError::Server(e)).into_response(),
    }
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(token))
        .routes(routes!(introspect))
        .routes(routes!(revoke))
        .routes(routes!(tenant_token))
        .routes(routes!(tenant_introspect))
        .routes(routes!(tenant_revoke))
        .routes(routes!(root_metadata))
        .routes(routes!(tenant_metadata))
        .routes(routes!(root_jwks))
        .routes(routes!(tenant_jwks))
}
