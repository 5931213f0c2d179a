//! Extractors that turn every malformed request into problem+json.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::error::ApiError;
use crate::AppState;
use crate::app::{self, Caller};

/// A JSON body, with rejections as problem+json.
#[derive(Debug)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .is_some_and(|m| m == "application/json" || (m.starts_with("application/") && m.ends_with("+json")));
        if !json_type {
            return Err(json_rejection(
                JsonRejection::MissingJsonContentType(Default::default()),
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(b) => b,
            Err(rej) => return Err(json_rejection(JsonRejection::BytesRejection(rej))),
        };
        // Every request body is a JSON object; serde would otherwise also
        // accept an array as a struct's fields in order.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            let text = std::str::from_utf8(&bytes).ok().filter(|t| !t.trim().is_empty());
            return Err(match text.map(serde_json::from_str::<serde::de::IgnoredAny>) {
                Some(Ok(_)) => ApiError::bad_request("invalid-body", "the body must be a JSON object"),
                _ => ApiError::bad_request("malformed-json", "the body is not a valid JSON object"),
            });
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(rej) => Err(json_rejection(rej)),
        }
    }
}

fn json_rejection(rej: JsonRejection) -> ApiError {
    match rej {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported media type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(e) => ApiError::bad_request(
            "malformed-json",
            format!("the body is not valid JSON: {}", source_text(&e)),
        ),
        JsonRejection::JsonDataError(e) => ApiError::bad_request(
            "invalid-body",
            format!("the body does not match the expected shape: {}", source_text(&e)),
        ),
        JsonRejection::BytesRejection(e) => {
            let text = e.body_text();
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE || text.contains("length limit") {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    "Payload too large",
                    "the request body is larger than this endpoint accepts",
                )
            } else {
                ApiError::bad_request("unreadable-body", "the request body could not be read")
            }
        }
        other => ApiError::bad_request("invalid-body", other.body_text()),
    }
}

/// The innermost error message (serde's, with line and column), without
/// axum's wrapper text.
fn source_text(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Path parameters, with rejections (e.g. a segment that is not UTF-8) as
/// problem+json.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(Path(v)),
            Err(rej) => Err(ApiError::bad_request(
                "invalid-path",
                format!("the URL path is not valid: {}", rej.body_text()),
            )),
        }
    }
}

/// Parses an id from the path.
pub fn parse_id(raw: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::bad_request("invalid-id", format!("`{raw}` is not a valid {what} id (a UUID)")))
}

/// Page size when the client names none.
pub const DEFAULT_PAGE: i64 = 100;
/// Largest page a client may ask for.
pub const MAX_PAGE: i64 = 10_000;

/// A keyset page of `items` (fetched with `limit`): rendered with `view`,
/// and a `next_cursor` (from `cursor`, the last item's key) when the page
/// is full, since more may follow.
pub fn keyset_page<T, V, C: ToString>(
    items: &[T],
    limit: i64,
    cursor: impl Fn(&T) -> C,
    view: impl FnMut(&T) -> V,
) -> idv_api::Page<V> {
    let full = i64::try_from(items.len()).is_ok_and(|n| n == limit);
    idv_api::Page {
        next_cursor: items.last().filter(|_| full).map(|t| cursor(t).to_string()),
        items: items.iter().map(view).collect(),
    }
}

/// The page size for a list request's `limit`.
pub fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(
            "invalid-parameter",
            format!("`limit` must be between 1 and {MAX_PAGE}, not {n}"),
        )
        .with_field("limit")),
    }
}

/// Header naming the tenant a platform operator acts in.
pub const TENANT_HEADER: &str = "x-idv-tenant";

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |d: &str| {
            state
                .metrics
                .auth_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", d)
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send an admin token as `Authorization: Bearer <token>`"))?;
        let value = value
            .to_str()
            .map_err(|_| unauthorized("the Authorization header is not readable text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("the Authorization header must use the Bearer scheme"))?;
        let tenant = match parts.headers.get(TENANT_HEADER) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| {
                ApiError::bad_request("invalid-tenant", "the X-IDV-Tenant header is not readable text")
            })?),
        };
        match app::auth::authenticate(state, token, tenant).await {
            Ok(caller) => Ok(caller),
            Err(e @ app::AppError::Unauthenticated(_)) => {
                state
                    .metrics
                    .auth_failures
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                match app::auth::failed(state, token).await {
                    Some(seconds) => Err(ApiError::too_many_failures(seconds)),
                    None => Err(ApiError::from(e)),
                }
            }
            Err(e) => Err(ApiError::from(e)),
        }
    }
}

/// Query parameters as repeated key/value pairs (so `label` can repeat).
#[derive(Debug, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl QueryPairs {
    /// Parses a raw query string.
    pub fn parse(raw: Option<&str>) -> Self {
        QueryPairs(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// Refuses parameters outside `allowed`, so a typo is not silently ignored.
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for (k, _) in &self.0 {
            if !allowed.contains(&k.as_str()) {
                return Err(ApiError::bad_request(
                    "unknown-parameter",
                    format!("unknown query parameter `{k}` (allowed: {})", allowed.join(", ")),
                )
                .with_field(k.clone()));
            }
        }
        Ok(())
    }

    /// The single value of `key`; repeating it is an error.
    pub fn one(&self, key: &str) -> Result<Option<&str>, ApiError> {
        let mut vals = self.0.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let first = vals.next();
        if vals.next().is_some() {
            return Err(
                ApiError::bad_request("invalid-parameter", format!("`{key}` may be given only once")).with_field(key),
            );
        }
        Ok(first)
    }

    /// Every value of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0.iter().filter(move |(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// `key` parsed with `FromStr`.
    pub fn parsed<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, ApiError> {
        self.one(key)?
            .map(|v| {
                v.parse::<T>().map_err(|_| {
                    ApiError::bad_request("invalid-parameter", format!("`{key}`: `{v}` is not {what}")).with_field(key)
                })
            })
            .transpose()
    }
}
