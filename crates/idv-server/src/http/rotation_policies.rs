//! `/v1/rotation-policies`: credential rotation by schedule, for the tenant
//! (`/v1/rotation-policies/tenant`), a class (`…/class/{name}`) or an agent
//! (`…/agent/{id}`).

use axum::extract::State;
use idv_api::{Page, RotationPolicyPut, RotationPolicyView, RotationScopeView};
use idv_core::rotation::{RotationPolicy, Scope};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::credentials::{rotation, seconds};
use super::error::ApiError;
use super::extract::{Json, Path};
use crate::AppState;
use crate::app::rotation::PolicyRequest;
use crate::app::{self, Caller};

fn view(p: &RotationPolicy, scheduled: Option<usize>) -> RotationPolicyView {
    RotationPolicyView {
        scope: RotationScopeView {
            type_: p.scope.type_name().to_owned(),
            id: (p.scope != Scope::Tenant).then(|| p.scope.id()),
        },
        every_secs: p.every_secs,
        max_age_secs: p.max_age_secs,
        overlap_secs: p.overlap_secs,
        retire: p.retire.as_str().to_owned(),
        updated_at: p.updated_at.to_rfc3339(),
        updated_by: p.updated_by.clone(),
        credentials_scheduled: scheduled,
    }
}

fn request(body: RotationPolicyPut) -> Result<PolicyRequest, ApiError> {
    Ok(PolicyRequest {
        every_secs: seconds(body.every, "every")?,
        max_age_secs: seconds(body.max_age, "max_age")?,
        rotation: rotation(body.overlap, body.retire.as_deref())?,
    })
}

/// `(type, id)` from the path: `tenant` alone, or `class`/`agent` with an id.
fn scope_of(parts: &[&str]) -> Result<Scope, ApiError> {
    match parts {
        [t] => Ok(app::rotation::scope(t, "")?),
        [t, id] => Ok(app::rotation::scope(t, id)?),
        _ => Err(ApiError::bad_request(
            "invalid-scope",
            "the scope is `tenant`, `class/{name}` or `agent/{id}`",
        )),
    }
}

/// The scope of an existing policy: a path that names no scope names no
/// policy (404; only setting one answers 422 for a bad scope).
fn existing(parts: &[&str]) -> Result<Scope, ApiError> {
    scope_of(parts).map_err(|_| {
        ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "not-found",
            "Not found",
            format!("rotation policy `{}` not found", parts.join("/")),
        )
    })
}

/// The tenant's rotation policies.
#[utoipa::path(get, path = "/v1/rotation-policies", tag = "credentials",
    responses((status = 200, body = Page<RotationPolicyView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Page<RotationPolicyView>>, ApiError> {
    let items = app::rotation::list(&state, &caller).await?;
    Ok(axum::Json(Page {
        items: items.iter().map(|p| view(p, None)).collect(),
        next_cursor: None,
    }))
}

/// Set the tenant-wide policy.
#[utoipa::path(put, path = "/v1/rotation-policies/{scope}", tag = "credentials",
    params(("scope" = String, Path, description = "`tenant`")),
    request_body = RotationPolicyPut,
    responses((status = 200, body = RotationPolicyView), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
    Json(body): Json<RotationPolicyPut>,
) -> Result<axum::Json<RotationPolicyView>, ApiError> {
    put(&state, &caller, scope_of(&[&kind])?, body).await
}

/// Set the policy of a class or an agent.
#[utoipa::path(put, path = "/v1/rotation-policies/{scope}/{id}", tag = "credentials",
    params(("scope" = String, Path, description = "`class` or `agent`"), ("id" = String, Path)),
    request_body = RotationPolicyPut,
    responses((status = 200, body = RotationPolicyView), (status = 404, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put_scoped(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
    Json(body): Json<RotationPolicyPut>,
) -> Result<axum::Json<RotationPolicyView>, ApiError> {
    put(&state, &caller, scope_of(&[&kind, &id])?, body).await
}

async fn put(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    body: RotationPolicyPut,
) -> Result<axum::Json<RotationPolicyView>, ApiError> {
    let (p, n) = app::rotation::put(state, caller, scope, request(body)?).await?;
    Ok(axum::Json(view(&p, Some(n))))
}

/// The tenant-wide policy.
#[utoipa::path(get, path = "/v1/rotation-policies/{scope}", tag = "credentials",
    params(("scope" = String, Path, description = "`tenant`")),
    responses((status = 200, body = RotationPolicyView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
) -> Result<axum::Json<RotationPolicyView>, ApiError> {
    let p = app::rotation::get(&state, &caller, &existing(&[&kind])?).await?;
    Ok(axum::Json(view(&p, None)))
}

/// The policy of a class or an agent.
#[utoipa::path(get, path = "/v1/rotation-policies/{scope}/{id}", tag = "credentials",
    params(("scope" = String, Path, description = "`class` or `agent`"), ("id" = String, Path)),
    responses((status = 200, body = RotationPolicyView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get_scoped(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<axum::Json<RotationPolicyView>, ApiError> {
    let p = app::rotation::get(&state, &caller, &existing(&[&kind, &id])?).await?;
    Ok(axum::Json(view(&p, None)))
}

/// Remove the tenant-wide policy.
#[utoipa::path(delete, path = "/v1/rotation-policies/{scope}", tag = "credentials",
    params(("scope" = String, Path, description = "`tenant`")),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn delete_tenant(
    State(state): State<AppState>,
    caller: Caller,
    Path(kind): Path<String>,
) -> Result<axum::http::StatusCode, ApiError> {
    app::rotation::delete(&state, &caller, existing(&[&kind])?).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// Remove the policy of a class or an agent (the broader one applies again).
#[utoipa::path(delete, path = "/v1/rotation-policies/{scope}/{id}", tag = "credentials",
    params(("scope" = String, Path, description = "`class` or `agent`"), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn delete_scoped(
    State(state): State<AppState>,
    caller: Caller,
    Path((kind, id)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    app::rotation::delete(&state, &caller, existing(&[&kind, &id])?).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(put_tenant, get_tenant, delete_tenant))
        .routes(routes!(put_scoped, get_scoped, delete_scoped))
}
