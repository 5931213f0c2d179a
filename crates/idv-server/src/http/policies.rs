//! `/v1/policies`: the tenant's Cedar policy versions, their validation,
//! activation and rollback, and test decisions against them.

use axum::extract::State;
use axum::http::StatusCode;
use idv_api::{
    EvaluationRequest, PolicyTest, PolicyTestReport, PolicyTestResult, PolicyUpload, PolicyValidation,
    PolicyVersionView, PolicyVersions,
};
use idv_core::Timestamp;
use idv_core::audit::Action;
use idv_core::policy_version::PolicyVersion;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::{ApiError, policy_problems};
use super::extract::{Json, Path};
use crate::AppState;
use crate::app::decisions::{Ask, Thing};
use crate::app::{self, AppError, Caller};

fn version_view(v: PolicyVersion, full: bool) -> PolicyVersionView {
    PolicyVersionView {
        version: v.version,
        active: v.active,
        policy_ids: v.policy_ids,
        description: v.description,
        created_at: v.created_at.to_rfc3339(),
        created_by: v.created_by,
        activated_at: v.activated_at.map(Timestamp::to_rfc3339),
        policies: full.then_some(v.policies),
        schema: if full { v.schema } else { None },
        warnings: vec![],
    }
}

/// The answer to a change that made `v` active.
fn activated_view((v, warnings): (PolicyVersion, Vec<String>)) -> PolicyVersionView {
    PolicyVersionView {
        warnings,
        ..version_view(v, false)
    }
}

fn version_number(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::bad_request("invalid-path", format!("`{raw}` is not a policy version number")))
}

/// Upload a policy version (validated against the schema; 422 lists every
/// problem with its line and column). `activate: true` activates it too.
#[utoipa::path(post, path = "/v1/policies", tag = "policies", request_body = PolicyUpload,
    responses((status = 201, body = PolicyVersionView), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PolicyUpload>,
) -> Result<(StatusCode, axum::Json<PolicyVersionView>), ApiError> {
    let v = app::policies::upload(
        &state,
        &caller,
        body.policies,
        body.schema,
        body.description.unwrap_or_default(),
        body.activate,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(activated_view(v))))
}

/// Check a candidate version without storing it.
#[utoipa::path(post, path = "/v1/policies/validate", tag = "policies", request_body = PolicyUpload,
    responses((status = 200, body = PolicyValidation)), security(("bearer" = [])))]
pub async fn validate(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PolicyUpload>,
) -> Result<axum::Json<PolicyValidation>, ApiError> {
    caller
        .require(
            &state,
            idv_core::admin_token::Permission::ReadRegistry,
            Action::PolicyValidate,
        )
        .await?;
    Ok(axum::Json(
        match app::policies::validate(&body.policies, body.schema.as_deref()) {
            Ok(c) => PolicyValidation {
                valid: true,
                policy_ids: c.policy_ids(),
                errors: vec![],
            },
            Err(AppError::PolicyInvalid(p)) => PolicyValidation {
                valid: false,
                policy_ids: vec![],
                errors: policy_problems(&p),
            },
            Err(e) => return Err(e.into()),
        },
    ))
}

/// The tenant's versions, newest first, the active one marked.
#[utoipa::path(get, path = "/v1/policies", tag = "policies",
    responses((status = 200, body = PolicyVersions)), security(("bearer" = [])))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<PolicyVersions>, ApiError> {
    let items = app::policies::list(&state, &caller).await?;
    Ok(axum::Json(PolicyVersions {
        active: items.iter().find(|v| v.active).map(|v| v.version),
        items: items.into_iter().map(|v| version_view(v, false)).collect(),
    }))
}

/// One version, with its text.
#[utoipa::path(get, path = "/v1/policies/{version}", tag = "policies", params(("version" = i64, Path)),
    responses((status = 200, body = PolicyVersionView), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Result<axum::Json<PolicyVersionView>, ApiError> {
    let v = app::policies::get(&state, &caller, version_number(&version)?).await?;
    Ok(axum::Json(version_view(v, true)))
}

/// Make a version active; every node uses it within a second.
#[utoipa::path(post, path = "/v1/policies/{version}/activate", tag = "policies", params(("version" = i64, Path)),
    responses((status = 200, body = PolicyVersionView), (status = 404, body = idv_api::Problem),
        (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn activate(
    State(state): State<AppState>,
    caller: Caller,
    Path(version): Path<String>,
) -> Result<axum::Json<PolicyVersionView>, ApiError> {
    let v = app::policies::activate(&state, &caller, Some(version_number(&version)?)).await?;
    Ok(axum::Json(activated_view(v)))
}

/// Re-activate the version that was active before the current one.
#[utoipa::path(post, path = "/v1/policies/rollback", tag = "policies",
    responses((status = 200, body = PolicyVersionView), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<PolicyVersionView>, ApiError> {
    let v = app::policies::activate(&state, &caller, None).await?;
    Ok(axum::Json(activated_view(v)))
}

/// A member of an AuthZEN request that is required and was sent empty.
#[derive(Debug)]
pub struct EmptyField(pub &'static str);

impl std::fmt::Display for EmptyField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}` is empty", self.0)
    }
}

impl From<EmptyField> for ApiError {
    fn from(e: EmptyField) -> Self {
        ApiError::bad_request("invalid-body", e.to_string()).with_field(e.0)
    }
}

/// Convert an AuthZEN request into a use-case question.
///
/// Refuses what names nothing (AuthZEN 1.0 §5: `type` and `id` are
/// required strings; an empty one cannot identify an entity).
pub fn ask(r: EvaluationRequest) -> Result<Ask, EmptyField> {
    for (field, v) in [
        ("subject.type", &r.subject.type_),
        ("subject.id", &r.subject.id),
        ("action.name", &r.action.name),
        ("resource.type", &r.resource.type_),
        ("resource.id", &r.resource.id),
    ] {
        if v.is_empty() {
            return Err(EmptyField(field));
        }
    }
    Ok(Ask {
        subject: Thing {
            type_name: r.subject.type_,
            id: r.subject.id,
            properties: r.subject.properties,
        },
        action: r.action.name,
        action_properties: r.action.properties,
        resource: Thing {
            type_name: r.resource.type_,
            id: r.resource.id,
            properties: r.resource.properties,
        },
        context: r.context.unwrap_or_default(),
    })
}

/// What-if: run AuthZEN requests against a candidate (a stored version, or
/// text) and the active version; nothing is recorded.
#[utoipa::path(post, path = "/v1/policies/test", tag = "policies", request_body = PolicyTest,
    responses((status = 200, body = PolicyTestReport), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<PolicyTest>,
) -> Result<axum::Json<PolicyTestReport>, ApiError> {
    if body.requests.len() > 10_000 {
        return Err(ApiError::invalid_field("requests", "`requests`: at most 10000"));
    }
    let text = body.policies.as_deref().map(|p| (p, body.schema.as_deref()));
    let candidate = app::policies::candidate(&state, &caller, body.version, text).await?;
    let asks: Vec<Ask> = body
        .requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            ask(r).map_err(|e| {
                ApiError::bad_request("invalid-body", format!("`requests[{i}]`: {e}"))
                    .with_field(format!("requests[{i}].{}", e.0))
            })
        })
        .collect::<Result<_, _>>()?;
    let (active, results) = app::decisions::compare(&state, &caller, candidate, &asks).await?;
    let results: Vec<PolicyTestResult> = results
        .into_iter()
        .enumerate()
        .map(|(index, c)| PolicyTestResult {
            index,
            active: c.active.to_owned(),
            candidate: c.candidate.to_owned(),
            changed: c.active != c.candidate,
            candidate_policies: c.candidate_policies,
        })
        .collect();
    Ok(axum::Json(PolicyTestReport {
        active_version: (active > 0).then_some(active),
        changed: results.iter().filter(|r| r.changed).count(),
        results,
    }))
}

/// This module's routes, each declared by its handler's `#[utoipa::path]`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload, list))
        .routes(routes!(validate))
        .routes(routes!(test))
        .routes(routes!(rollback))
        .routes(routes!(get))
        .routes(routes!(activate))
}
