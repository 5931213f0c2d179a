//! The admin API's error edge: every failure becomes RFC 9457 problem+json
//! with a stable `type`. Internal errors are logged with the request id and
//! never echoed.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idv_api::{PROBLEM_JSON, PolicyProblem, Problem};
use idv_core::agent::AgentError;
use idv_store::StoreError;

use crate::app::AppError;

/// An admin API error (boxed: it travels in every `Result` of the edge).
#[derive(Debug)]
pub struct ApiError(Box<Details>);

#[derive(Debug)]
struct Details {
    status: StatusCode,
    slug: &'static str,
    title: &'static str,
    detail: String,
    field: Option<String>,
    current_state: Option<String>,
    current_version: Option<i64>,
    errors: Option<Vec<PolicyProblem>>,
    /// For internal errors: what to log (never sent).
    internal: Option<String>,
    /// The `WWW-Authenticate` challenge of a 401 (RFC 9110 §11.6.1), when
    /// not the admin API's.
    challenge: Option<&'static str>,
    /// Seconds for `Retry-After` (RFC 9110 §10.2.3), on a 429.
    retry_after: Option<u64>,
}

impl ApiError {
    /// A problem with `status`, stable `slug` (the end of its `type` URI) and `detail`.
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Self(Box::new(Details {
            status,
            slug,
            title,
            detail: detail.into(),
            field: None,
            current_state: None,
            current_version: None,
            errors: None,
            internal: None,
            challenge: None,
            retry_after: None,
        }))
    }

    /// 429: too many failed authentications; try again in `seconds`
    /// (RFC 6585 §4).
    pub fn too_many_failures(seconds: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-failures",
            "Too many failed authentications",
            format!("too many failed authentications from this address or with this token; retry after {seconds} s"),
        );
        e.0.retry_after = Some(seconds);
        e
    }

    /// The challenge a 401 carries (the admin API's `Bearer` by default).
    pub fn with_challenge(mut self, challenge: &'static str) -> Self {
        self.0.challenge = Some(challenge);
        self
    }

    /// 400 for a malformed request part.
    pub fn bad_request(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, slug, "Bad request", detail)
    }

    /// 422 `invalid-field`: a body field or parameter breaks a rule.
    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid-field",
            "Invalid field",
            detail,
        )
        .with_field(field)
    }

    /// Names the offending field.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    /// Places the error inside `prefix`: field `owner` becomes
    /// `agents[3].owner` (or just `prefix` when no field was named).
    pub fn within(mut self, prefix: &str) -> Self {
        self.0.detail = format!("{prefix}: {}", self.0.detail);
        self.0.field = Some(match self.0.field.take() {
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_owned(),
        });
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// The short summary, for people.
    pub fn title(&self) -> &str {
        self.0.title
    }

    /// What went wrong, for people (never an internal detail).
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// For an internal error: what to log (never shown).
    pub fn internal_detail(&self) -> Option<&str> {
        self.0.internal.as_deref()
    }

    fn internal(detail: &str) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "Service unavailable",
            "the request could not be completed and nothing was changed; try again (the server log has details)",
        );
        e.0.internal = Some(detail.to_owned());
        e
    }
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Unauthenticated(d) => Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", d),
            AppError::Forbidden(d) => Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", d),
            AppError::Invalid(AgentError::Invalid { field, reason }) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                format!("`{field}`: {reason}"),
            )
            .with_field(field),
            AppError::BadParameter { field, detail } => Self::invalid_field(&field, detail),
            AppError::Store(s) => s.into(),
            AppError::PolicyInvalid(problems) => {
                let list = policy_problems(&problems);
                let first = list.first().map_or_else(String::new, |p| match (p.line, p.column) {
                    (Some(l), Some(c)) => format!(": {} line {l}, column {c}: {}", p.source, p.message),
                    _ => format!(": {}: {}", p.source, p.message),
                });
                let mut e = Self::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid-policy",
                    "Invalid policy",
                    format!("{} problem(s){first}", list.len()),
                );
                e.0.errors = Some(list);
                e
            }
            AppError::Upstream(d) => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream-unavailable",
                "Upstream unavailable",
                d,
            ),
            AppError::Internal(d) => Self::internal(&d),
            AppError::Throttled(seconds) => Self::too_many_failures(seconds),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound { .. } => Self::new(StatusCode::NOT_FOUND, "not-found", "Not found", e.to_string()),
            StoreError::Conflict(d) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", d),
            StoreError::Replayed(_) => Self::new(StatusCode::CONFLICT, "conflict", "Conflict", e.to_string()),
            StoreError::PreconditionFailed { current } => {
                let mut p = Self::new(
                    StatusCode::PRECONDITION_FAILED,
                    "stale-version",
                    "Precondition failed",
                    e.to_string(),
                );
                p.0.current_version = Some(current);
                p
            }
            StoreError::Transition(t) => {
                let mut p = Self::new(
                    StatusCode::CONFLICT,
                    "invalid-transition",
                    "Invalid lifecycle transition",
                    t.to_string(),
                );
                p.0.current_state = Some(t.from.as_str().to_owned());
                p
            }
            StoreError::Invalid(AgentError::Invalid { field, reason }) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-field",
                "Invalid field",
                format!("`{field}`: {reason}"),
            )
            .with_field(field),
            StoreError::Config(d) | StoreError::Unavailable(d) | StoreError::Corrupt(d) => Self::internal(&d),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let d = *self.0;
        let body = Problem {
            type_: format!("urn:idv:problem:{}", d.slug),
            title: d.title.to_owned(),
            status: d.status.as_u16(),
            detail: d.detail,
            // Filled in by the edge middleware, which knows the request id.
            instance: None,
            current_state: d.current_state,
            current_version: d.current_version,
            field: d.field,
            errors: d.errors,
        };
        let mut res = (d.status, axum::Json(&body)).into_response();
        res.extensions_mut().insert(Rendered {
            problem: body,
            internal: d.internal,
        });
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(secs) = d.retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if d.status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(d.challenge.unwrap_or("Bearer realm=\"idv-admin\"")),
            );
        }
        res
    }
}

/// A problem response as rendered, for the edge middleware to stamp with the
/// request id (`instance`) and to log internal errors under it.
#[derive(Clone, Debug)]
pub struct Rendered {
    /// The body sent.
    pub problem: Problem,
    /// What went wrong inside, for the log only.
    pub internal: Option<String>,
}

/// Adds the request id to a problem response as `instance`, and logs an
/// internal error with it.
pub fn stamp(res: &mut Response, request_id: &str) {
    let Some(Rendered { mut problem, internal }) = res.extensions_mut().remove::<Rendered>() else {
        return;
    };
    if let Some(detail) = internal {
        tracing::error!(request_id, error = %detail, "internal error");
    }
    problem.instance = Some(format!("urn:idv:request:{request_id}"));
    if let Ok(bytes) = serde_json::to_vec(&problem) {
        res.headers_mut().remove(header::CONTENT_LENGTH);
        *res.body_mut() = axum::body::Body::from(bytes);
    }
}

/// Compile problems as the API reports them.
pub fn policy_problems(p: &[idv_policy::Problem]) -> Vec<PolicyProblem> {
    p.iter()
        .map(|p| PolicyProblem {
            source: match p.source {
                idv_policy::compile::Source::Policies => "policies".into(),
                idv_policy::compile::Source::Schema => "schema".into(),
                idv_policy::compile::Source::Condition => "condition".into(),
            },
            message: p.message.clone(),
            line: p.line,
            column: p.column,
            policy_id: p.policy_id.clone(),
        })
        .collect()
}
