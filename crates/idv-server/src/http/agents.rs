//! `/v1/agents`: registry and lifecycle.

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use idv_api::{
    AgentBulkCreate, AgentBulkCreated, AgentCreate, AgentCreatedRef, AgentPatch, AgentView, DurationValue,
    OwnerReassign, OwnerReassigned, Page, ParentRef, TransitionRequest,
};
use idv_core::agent::{Agent, AgentChanges, AgentError, Environment, NewAgent, Parent, spiffe_id};
use idv_core::grant::Grants;
use idv_core::lifecycle::{Status, Transition};
use idv_store::{AgentFilter, AgentOrder};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::error::ApiError;
use super::extract::{Json, Path, QueryPairs, keyset_page, page_size, parse_id};
use super::views;
use crate::AppState;
use crate::app::{self, Caller};

fn invalid(field: &str, reason: impl Into<String>) -> ApiError {
    app::AppError::Invalid(AgentError::Invalid {
        field: field.into(),
        reason: reason.into(),
    })
    .into()
}

fn environment(field: &str, v: &str) -> Result<Environment, ApiError> {
    v.parse::<Environment>()
        .map_err(|_| invalid(field, format!("`{v}` is not one of dev, test, prod")))
}

fn parent(p: ParentRef) -> Result<Parent, ApiError> {
    match p.type_.as_str() {
        "agent" => Uuid::parse_str(&p.id)
            .map(Parent::Agent)
            .map_err(|_| invalid("parent", format!("`{}` is not an agent id", p.id))),
        "human" => Ok(Parent::Human(p.id)),
        other => Err(invalid("parent", format!("type `{other}` is not `agent` or `human`"))),
    }
}

fn ttl(d: DurationValue) -> Result<u64, ApiError> {
    match d {
        DurationValue::Seconds(s) => Ok(s),
        DurationValue::Text(t) => idv_core::duration::parse_seconds(&t).map_err(|e| invalid("ttl", e.to_string())),
    }
}

fn new_agent(c: AgentCreate) -> Result<NewAgent, ApiError> {
    Ok(NewAgent {
        name: c.name,
        owner: c.owner,
        purpose: c.purpose,
        environment: c
            .environment
            .as_deref()
            .map(|e| environment("environment", e))
            .transpose()?,
        team: c.team,
        labels: c.labels,
        capabilities: c.capabilities,
        class: c.class,
        parent: c.parent.map(parent).transpose()?,
        depends_on: c.depends_on,
        grants: Grants {
            scopes: c.allowed_scopes,
            resources: c.allowed_resources,
            authorization_details_types: c.authorization_details_types,
        },
        ttl_seconds: c.ttl.map(ttl).transpose()?,
    })
}

fn etag(a: &Agent) -> HeaderValue {
    // A decimal number in quotes is always a valid header value.
    HeaderValue::from_str(&format!("\"{}\"", a.version)).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn with_etag(status: StatusCode, a: &Agent, view: AgentView) -> Response {
    let mut res = (status, axum::Json(view)).into_response();
    res.headers_mut().insert(header::ETAG, etag(a));
    res
}

/// Register an agent (starts in `provisioning`).
#[utoipa::path(post, path = "/v1/agents", tag = "agents", request_body = AgentCreate,
    responses((status = 201, body = AgentView), (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<AgentCreate>,
) -> Result<Response, ApiError> {
    let spec = new_agent(body)?;
    let agents = app::agents::create(&state, &caller, vec![spec], false).await?;
    let a = agents
        .first()
        .ok_or_else(|| ApiError::from(app::tenants::unexpected()))?;
    Ok(with_etag(
        StatusCode::CREATED,
        a,
        views::agent(a, &caller.tenant.name, &state.trust_domain),
    ))
}

/// Register up to 50,000 agents in one request, all or nothing: if any item is
/// refused, nothing is created and the problem names the item.
#[utoipa::path(post, path = "/v1/agents/bulk", tag = "agents", request_body = AgentBulkCreate,
    responses((status = 201, body = AgentBulkCreated), (status = 409, body = idv_api::Problem), (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn bulk_create(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<AgentBulkCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let specs = body
        .agents
        .into_iter()
        .enumerate()
        .map(|(i, c)| new_agent(c).map_err(|e| e.within(&format!("agents[{i}]"))))
        .collect::<Result<Vec<_>, _>>()?;
    let agents = app::agents::create(&state, &caller, specs, true).await?;
    let refs = agents
        .iter()
        .map(|a| AgentCreatedRef {
            id: a.id,
            name: a.name.clone(),
            spiffe_id: spiffe_id(&state.trust_domain, &caller.tenant.name, a.id),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        axum::Json(AgentBulkCreated {
            created: agents.len(),
            agents: refs,
        }),
    ))
}

const LIST_PARAMS: &[&str] = &[
    "status",
    "owner",
    "environment",
    "class",
    "label",
    "name_prefix",
    "cursor",
    "limit",
];

fn filter(q: &QueryPairs) -> Result<AgentFilter, ApiError> {
    let mut labels = Vec::new();
    for l in q.all("label") {
        let (k, v) = l.split_once('=').ok_or_else(|| {
            ApiError::bad_request("invalid-parameter", format!("`label` must be `key=value`, not `{l}`"))
                .with_field("label")
        })?;
        labels.push((k.to_owned(), v.to_owned()));
    }
    Ok(AgentFilter {
        status: q.parsed::<Status>("status", "a status (provisioning, active, suspended, retired)")?,
        owner: q.one("owner")?.map(str::to_owned),
        environment: q.parsed::<Environment>("environment", "an environment (dev, test, prod)")?,
        class: q.one("class")?.map(str::to_owned),
        labels,
        name_prefix: q.one("name_prefix")?.map(str::to_owned),
        expired_before: None,
        order: AgentOrder::Created,
        after: q.one("cursor")?.map(|c| parse_id(c, "cursor")).transpose()?,
        after_name: None,
        limit: page_size(q.parsed("limit", "a number")?)?,
    })
}

/// List agents with filters and keyset pagination (in creation order).
#[utoipa::path(get, path = "/v1/agents", tag = "agents",
    params(("status" = Option<String>, Query), ("owner" = Option<String>, Query), ("environment" = Option<String>, Query),
        ("class" = Option<String>, Query), ("label" = Option<String>, Query, description = "`key=value`; repeat to require several"),
        ("name_prefix" = Option<String>, Query), ("cursor" = Option<String>, Query), ("limit" = Option<i64>, Query)),
    responses((status = 200, body = Page<AgentView>)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<axum::Json<Page<AgentView>>, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(LIST_PARAMS)?;
    let f = filter(&q)?;
    let items = app::agents::list(&state, &caller, &f).await?;
    Ok(axum::Json(keyset_page(
        &items,
        f.limit,
        |a| a.id,
        |a| views::agent(a, &caller.tenant.name, &state.trust_domain),
    )))
}

/// One agent; the `ETag` is its version, for `If-Match` on updates.
#[utoipa::path(get, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)),
    responses((status = 200, body = AgentView), (status = 404, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Response, ApiError> {
    let id = parse_id(&id, "agent")?;
    let a = app::agents::get(&state, &caller, id).await?;
    Ok(with_etag(
        StatusCode::OK,
        &a,
        views::agent(&a, &caller.tenant.name, &state.trust_domain),
    ))
}

fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(
            "invalid-if-match",
            "`If-Match` must be the agent's ETag, e.g. `\"3\"`, or `*`",
        )
    };
    let s = v.to_str().map_err(|_| bad())?.trim();
    if s == "*" {
        return Ok(None);
    }
    s.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .and_then(|n| n.parse::<i64>().ok())
        .map(Some)
        .ok_or_else(bad)
}

/// Change metadata (JSON merge patch). Send `If-Match` with the ETag you read;
/// a stale one is refused with 412 and nothing changes.
#[utoipa::path(patch, path = "/v1/agents/{id}", tag = "agents", params(("id" = String, Path)), request_body = AgentPatch,
    responses((status = 200, body = AgentView), (status = 409, body = idv_api::Problem), (status = 412, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(p): Json<AgentPatch>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "agent")?;
    let expected = if_match(&headers)?;
    // RFC 7396: `null` removes a member; the required ones cannot go.
    let required = |field: &str, v: Option<Option<String>>| match v {
        Some(None) => Err(invalid(field, "is required and cannot be removed")),
        other => Ok(other.flatten()),
    };
    let changes = AgentChanges {
        name: required("name", p.name)?,
        owner: required("owner", p.owner)?,
        purpose: required("purpose", p.purpose)?,
        environment: p
            .environment
            .map(|e| e.as_deref().map(|e| environment("environment", e)).transpose())
            .transpose()?,
        team: p.team,
        labels: p.labels.map(Option::unwrap_or_default),
        capabilities: p.capabilities.map(Option::unwrap_or_default),
        class: p.class,
        depends_on: p.depends_on.map(Option::unwrap_or_default),
        allowed_scopes: p.allowed_scopes.map(Option::unwrap_or_default),
        allowed_resources: p.allowed_resources.map(Option::unwrap_or_default),
        authorization_details_types: p.authorization_details_types.map(Option::unwrap_or_default),
    };
    if changes.is_empty() {
        return Err(ApiError::bad_request("empty-patch", "the patch changes nothing"));
    }
    let a = app::agents::update(&state, &caller, id, expected, changes).await?;
    Ok(with_etag(
        StatusCode::OK,
        &a,
        views::agent(&a, &caller.tenant.name, &state.trust_domain),
    ))
}

/// Move every live agent of one owner to another, as when a person leaves
/// or changes role; one audit event (`agent.reassign_owner`) per agent.
/// Retired agents keep their owner: their records are read-only.
#[utoipa::path(post, path = "/v1/agents/reassign-owner", tag = "agents", request_body = OwnerReassign,
    responses((status = 200, body = OwnerReassigned), (status = 403, body = idv_api::Problem),
        (status = 422, body = idv_api::Problem)),
    security(("bearer" = [])))]
pub async fn reassign_owner(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<OwnerReassign>,
) -> Result<axum::Json<OwnerReassigned>, ApiError> {
    let moved = app::agents::reassign_owner(&state, &caller, body.from.clone(), body.to.clone()).await?;
    Ok(axum::Json(OwnerReassigned {
        from: body.from,
        to: body.to,
        reassigned: moved.len(),
        agents: moved.iter().map(|a| a.id).collect(),
    }))
}

/// Lifecycle: `activate`, `suspend`, `resume` or `retire`, with a reason.
/// An invalid transition is 409 with `current_state`.
#[utoipa::path(post, path = "/v1/agents/{id}/{transition}", tag = "agents",
    params(("id" = String, Path), ("transition" = String, Path, description = "activate | suspend | resume | retire")),
    request_body = TransitionRequest,
    responses((status = 200, body = AgentView), (status = 409, body = idv_api::Problem)), security(("bearer" = [])))]
pub async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, verb)): Path<(String, String)>,
    Json(body): Json<TransitionRequest>,
) -> Result<Response, ApiError> {
    let id = parse_id(&id, "agent")?;
    let t = Transition::ALL
        .into_iter()
        .find(|t| t.as_str() == verb)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                format!("`{verb}` is not a lifecycle action (activate, suspend, resume, retire)"),
            )
        })?;
    let a = app::agents::transition(&state, &caller, id, t, body.reason).await?;
    Ok(with_etag(
        StatusCode::OK,
        &a,
        views::agent(&a, &caller.tenant.name, &state.trust_domain),
    ))
}

const CSV_HEADER: &str = "id,spiffe_id,name,owner,purpose,environment,team,class,status,labels,capabilities,parent,depends_on,created_at,expires_at\n";

fn csv_row(a: &Agent, tenant: &str, td: &str) -> String {
    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let parent = a.parent.as_ref().map(|p| {
        let r = views::parent_ref(p);
        format!("{}:{}", r.type_, r.id)
    });
    let deps: Vec<String> = a.depends_on.iter().map(Uuid::to_string).collect();
    let fields = [
        a.id.to_string(),
        spiffe_id(td, tenant, a.id),
        a.name.clone(),
        a.owner.clone(),
        a.purpose.clone(),
        a.environment.map(|e| e.as_str().to_owned()).unwrap_or_default(),
        a.team.clone().unwrap_or_default(),
        a.class.clone().unwrap_or_default(),
        a.status.as_str().to_owned(),
        labels.join(";"),
        a.capabilities.join(";"),
        parent.unwrap_or_default(),
        deps.join(";"),
        a.created_at.to_rfc3339(),
        a.expires_at.map(|e| e.to_rfc3339()).unwrap_or_default(),
    ];
    let mut out = String::with_capacity(256);
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        crate::csv::push_field(&mut out, f);
    }
    out.push('\n');
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// Export the whole inventory (every status) as CSV or a JSON array, streamed.
#[utoipa::path(get, path = "/v1/agents/export", tag = "agents",
    params(("format" = Option<String>, Query, description = "`csv` (default) or `json`")),
    responses((status = 200, description = "text/csv or application/json")), security(("bearer" = [])))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let q = QueryPairs::parse(q.as_deref());
    q.only(&["format"])?;
    let format = match q.one("format")? {
        None | Some("csv") => Format::Csv,
        Some("json") => Format::Json,
        Some(other) => {
            return Err(ApiError::bad_request(
                "invalid-parameter",
                format!("`format` must be `csv` or `json`, not `{other}`"),
            )
            .with_field("format"));
        }
    };
    // Check access once up front, so a refusal is a clean problem response.
    app::agents::list(
        &state,
        &caller,
        &AgentFilter {
            limit: 1,
            ..AgentFilter::default()
        },
    )
    .await?;
    struct Cursor {
        after: Option<Uuid>,
        first: bool,
        done: bool,
    }
    let start = Cursor {
        after: None,
        first: true,
        done: false,
    };
    let stream = futures_util::stream::unfold(start, move |mut cur| {
        let state = state.clone();
        let caller = caller.clone();
        async move {
            if cur.done {
                return None;
            }
            let f = AgentFilter {
                after: cur.after,
                limit: 1000,
                ..AgentFilter::default()
            };
            let page = match app::agents::list(&state, &caller, &f).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "export failed mid-stream");
                    return Some((
                        Err(std::io::Error::other("export failed")),
                        Cursor { done: true, ..cur },
                    ));
                }
            };
            let mut out = String::new();
            if cur.first {
                out.push_str(if format == Format::Csv { CSV_HEADER } else { "[" });
            }
            for a in &page {
                match format {
                    Format::Csv => out.push_str(&csv_row(a, &caller.tenant.name, &state.trust_domain)),
                    Format::Json => {
                        if !(cur.first && out.len() == 1) {
                            out.push(',');
                        }
                        let v = views::agent(a, &caller.tenant.name, &state.trust_domain);
                        out.push_str(&serde_json::to_string(&v).unwrap_or_default());
                    }
                }
                cur.first = false;
            }
            cur.first = false;
            if page.len() < 1000 {
                cur.done = true;
                if format == Format::Json {
                    out.push(']');
                }
            }
            cur.after = page.last().map(|a| a.id).or(cur.after);
            Some((Ok::<_, std::io::Error>(Bytes::from(out)), cur))
        }
    });
    let (ctype, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "agents.csv"),
        Format::Json => ("application/json", "agents.json"),
    };
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// The agent registry's routes (bulk registration has a larger body
/// limit).
pub(super) fn routes() -> OpenApiRouter<AppState> {
    let bulk = OpenApiRouter::new()
        .routes(routes!(bulk_create))
        .layer(DefaultBodyLimit::max(super::BULK_BODY_LIMIT));
    OpenApiRouter::new()
        .routes(routes!(create, list))
        .routes(routes!(export))
        .routes(routes!(get, update))
        .routes(routes!(transition))
        .routes(routes!(reassign_owner))
        .merge(bulk)
}
