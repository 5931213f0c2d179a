//! `/v1/grants`: roles or single actions given to an agent, class or group.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use idv_api::{GrantCreate, GrantSubjectRef, GrantView, Page};
use idv_core::Timestamp;
use idv_core::role::{GrantSubject, Permission, RoleGrant};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::policies::NewGrant;
use crate::app::{self, Caller};

fn subject_ref(s: &GrantSubject) -> GrantSubjectRef {
    GrantSubjectRef {
        type_: s.kind().to_owned(),
        id: s.id(),
    }
}

fn subject(r: &GrantSubjectRef, field: &str) -> Result<GrantSubject, ApiError> {
    GrantSubject::from_parts(&r.type_, &r.id).ok_or_else(|| {
        ApiError::invalid_field(
            field,
            format!("`{field}`: `{{\"type\": \"agent\"|\"class\"|\"group\", \"id\": …}}` with an agent id, class or group name"),
        )
    })
}

/// A grant as the API shows it.
pub fn grant_view(g: RoleGrant, now: Timestamp) -> GrantView {
    let expired = !g.is_live(now);
    let (role, action) = match g.permission {
        Permission::Role(r) => (Some(r), None),
        Permission::Action(a) => (None, Some(a)),
    };
    GrantView {
        id: g.id,
        subject: subject_ref(&g.subject),
        role,
        action,
        condition: g.condition,
        expires_at: g.expires_at.map(Timestamp::to_rfc3339),
        expired,
        created_at: g.created_at.to_rfc3339(),
        created_by: g.created_by,
    }
}

/// Grant a role or a single action to an agent, class or group, optionally
/// with a condition and an expiry.
#[utoipa::path(post, path = "/v1/grants", tag = "policies", request_body = GrantCreate,
    responses((status = 201, body = GrantView), (status = 404, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<GrantCreate>,
) -> Result<(StatusCode, axum::Json<GrantView>), ApiError> {
    let permission = match (body.role, body.action) {
        (Some(r), None) => Permission::Role(r),
        (None, Some(a)) => Permission::Action(a),
        _ => {
            return Err(ApiError::invalid_field(
                "role",
                "give exactly one of `role` and `action`",
            ));
        }
    };
    let now = state.clock.now();
    let expires_at = match body.expires.as_deref() {
        None => None,
        Some(text) => Some(match Timestamp::parse(text) {
            Ok(t) => t,
            Err(_) => {
                let secs = idv_core::duration::parse_seconds(text).map_err(|e| {
                    ApiError::invalid_field(
                        "expires",
                        match e {
                            // A duration, but not one a grant can have.
                            idv_core::duration::DurationError::OutOfRange(_) => format!("`expires`: {e}"),
                            _ => format!(
                                "`expires`: `{text}` is neither an RFC 3339 time nor a duration like `30m` or `7d`"
                            ),
                        },
                    )
                })?;
                now.plus_secs(i64::try_from(secs).unwrap_or(i64::MAX / 2_000_000))
            }
        }),
    };
    // Named as sent (the grant itself checks it too, as `expires_at`).
    if let Some(t) = expires_at
        && t <= now
    {
        return Err(ApiError::invalid_field(
            "expires",
            format!("`expires`: `{}` is not in the future", t.to_rfc3339()),
        ));
    }
    let g = app::policies::grant(
        &state,
        &caller,
        NewGrant {
            subject: subject(&body.subject, "subject")?,
            permission,
            condition: body.condition,
            expires_at,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(grant_view(g, now))))
}

/// The tenant's grants (`subject_type` and `subject_id` filter), oldest
/// first, a page at a time (`limit`, `cursor`: the `next_cursor` of the page
/// before).
#[utoipa::path(get, path = "/v1/grants", tag = "policies",
    params(("subject_type" = Option<String>, Query), ("subject_id" = Option<String>, Query),
        ("limit" = Option<i64>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = Page<GrantView>)), security(("bearer" = [])))]
pub async fn grants(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<axum::Json<Page<GrantView>>, ApiError> {
    let q = QueryPairs::parse(raw.as_deref());
    q.only(&["subject_type", "subject_id", "limit", "cursor"])?;
    let filter = match (q.one("subject_type")?, q.one("subject_id")?) {
        (None, None) => None,
        (Some(t), Some(id)) => {
            if !matches!(t, "agent" | "class" | "group") {
                return Err(
                    ApiError::bad_request("invalid-parameter", "`subject_type` is agent, class or group")
                        .with_field("subject_type"),
                );
            }
            Some(GrantSubject::from_parts(t, id).ok_or_else(|| {
                ApiError::bad_request("invalid-parameter", format!("`subject_id`: `{id}` is not an agent id"))
                    .with_field("subject_id")
            })?)
        }
        (t, _) => {
            let missing = if t.is_some() { "subject_id" } else { "subject_type" };
            return Err(ApiError::bad_request(
                "invalid-parameter",
                "give both `subject_type` and `subject_id`, or neither",
            )
            .with_field(missing));
        }
    };
    let limit = page_size(q.parsed("limit", "a number")?)?;
    let after = q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?;
    let items = app::policies::grants(&state, &caller, filter.as_ref(), after, limit).await?;
    let now = state.clock.now();
    Ok(axum::Json(keyset_page(
        &items,
        limit,
        |g| g.id,
        |g| grant_view(g.clone(), now),
    )))
}

/// Remove a grant.
#[utoipa::path(delete, path = "/v1/grants/{id}", tag = "policies", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn revoke_grant(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id, "grant")?;
    app::policies::revoke_grant(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(grant, grants))
        .routes(routes!(revoke_grant))
}
