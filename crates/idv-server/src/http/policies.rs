//! `/v1/policies`, `/v1/roles`, `/v1/grants`, `/v1/entities`, and an
//! agent's `/permissions`.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use idv_api::{
    AgentPermissions, EntitiesPut, EntityView, EvaluationRequest, GrantCreate, GrantSubjectRef, GrantView, Page,
    PolicyTest, PolicyTestReport, PolicyTestResult, PolicyUpload, PolicyValidation, PolicyVersionView, PolicyVersions,
    RolePut, RoleView, UsageView,
};
use idv_core::Timestamp;
use idv_core::audit::Action;
use idv_core::directory::{DirectoryEntity, EntityRef};
use idv_core::policy_version::PolicyVersion;
use idv_core::role::{GrantSubject, Permission, Role, RoleGrant};
use serde_json::{Value, json};

use super::error::{ApiError, policy_problems};
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use crate::AppState;
use crate::app::decisions::{Ask, Thing};
use crate::app::policies::NewGrant;
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

fn role_view(r: Role) -> RoleView {
    RoleView {
        name: r.name,
        description: r.description,
        actions: r.actions,
        updated_at: r.updated_at.to_rfc3339(),
    }
}

/// Create or replace a role (a named set of actions).
#[utoipa::path(put, path = "/v1/roles/{name}", tag = "policies", params(("name" = String, Path)),
    request_body = RolePut, responses((status = 200, body = RoleView), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn put_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    Json(body): Json<RolePut>,
) -> Result<axum::Json<RoleView>, ApiError> {
    let r = app::policies::put_role(
        &state,
        &caller,
        &name,
        body.description.unwrap_or_default(),
        body.actions,
    )
    .await?;
    Ok(axum::Json(role_view(r)))
}

/// The tenant's roles.
#[utoipa::path(get, path = "/v1/roles", tag = "policies",
    responses((status = 200, body = Vec<RoleView>)), security(("bearer" = [])))]
pub async fn roles(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<RoleView>>, ApiError> {
    let roles = app::policies::roles(&state, &caller).await?;
    Ok(axum::Json(roles.into_iter().map(role_view).collect()))
}

/// Delete a role that no grant holds.
#[utoipa::path(delete, path = "/v1/roles/{name}", tag = "policies", params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem), (status = 409, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn delete_role(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    app::policies::delete_role(&state, &caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

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

fn entity_view(e: DirectoryEntity) -> EntityView {
    EntityView {
        uid: json!(e.uid),
        attrs: e.attrs,
        parents: e.parents.iter().map(|p| json!(p)).collect(),
    }
}

/// Create or replace directory entities (Cedar's entity JSON: `uid`,
/// `attrs`, `parents`), all or nothing.
#[utoipa::path(post, path = "/v1/entities", tag = "policies", request_body = EntitiesPut,
    responses((status = 200, body = Object), (status = 422, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn put_entities(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<EntitiesPut>,
) -> Result<axum::Json<Value>, ApiError> {
    let mut entities = Vec::with_capacity(body.entities.len());
    for (i, v) in body.entities.into_iter().enumerate() {
        let e: DirectoryEntity = serde_json::from_value(v).map_err(|e| {
            ApiError::invalid_field(
                &format!("entities[{i}]"),
                format!("`entities[{i}]`: {e} (expected `{{\"uid\": {{\"type\", \"id\"}}, \"attrs\": {{…}}, \"parents\": [{{\"type\", \"id\"}}]}}`)"),
            )
        })?;
        entities.push(e);
    }
    let n = app::policies::put_entities(&state, &caller, entities).await?;
    Ok(axum::Json(json!({ "stored": n })))
}

/// The tenant's directory.
#[utoipa::path(get, path = "/v1/entities", tag = "policies",
    responses((status = 200, body = Vec<EntityView>)), security(("bearer" = [])))]
pub async fn entities(State(state): State<AppState>, caller: Caller) -> Result<axum::Json<Vec<EntityView>>, ApiError> {
    let items = app::policies::directory(&state, &caller).await?;
    Ok(axum::Json(items.into_iter().map(entity_view).collect()))
}

/// Remove a directory entity.
#[utoipa::path(delete, path = "/v1/entities/{type}/{id}", tag = "policies",
    params(("type" = String, Path), ("id" = String, Path)),
    responses((status = 204), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn delete_entity(
    State(state): State<AppState>,
    caller: Caller,
    Path((type_name, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    app::policies::delete_entity(&state, &caller, EntityRef { type_name, id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What an agent may do (its roles, and the actions its roles, grants and
/// the policies naming it or its roles, groups or class give), its own
/// grants, and what it has used.
#[utoipa::path(get, path = "/v1/agents/{id}/permissions", tag = "policies", params(("id" = String, Path)),
    responses((status = 200, body = AgentPermissions), (status = 404, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn permissions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<axum::Json<AgentPermissions>, ApiError> {
    let agent_id = parse_id(&id, "agent")?;
    let p = app::decisions::permissions(&state, &caller, agent_id).await?;
    let now = state.clock.now();
    Ok(axum::Json(AgentPermissions {
        agent_id,
        roles: p.roles,
        actions: p.permitted.actions,
        conditional_actions: p.permitted.conditional,
        policies: p.permitted.policies,
        grants: p.grants.into_iter().map(|g| grant_view(g, now)).collect(),
        usage: p
            .usage
            .into_iter()
            .map(|u| UsageView {
                action: u.action,
                resource_type: u.resource_type,
                count: u.count,
                first_used: u.first_used.to_rfc3339(),
                last_used: u.last_used.to_rfc3339(),
            })
            .collect(),
    }))
}
