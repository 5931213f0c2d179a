//! The inventory (filters, keyset paging, bulk lifecycle actions) and an
//! agent's detail page with its lifecycle actions.

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use idv_core::agent::{Agent, Environment};
use idv_core::audit::Action;
use idv_core::credential::Credential;
use idv_core::lifecycle::{Status, Transition};
use idv_store::{AgentFilter, AgentOrder};
use uuid::Uuid;

use super::{ConsoleError, Layout, Viewer, export, path_id, query_pairs, query_string, render, urlencode};
use crate::AppState;
use crate::app;

/// Agents per inventory page.
const PAGE: i64 = 50;

/// Most agents one bulk action may change.
const BULK_MAX: usize = 500;

/// The inventory's filters, as in the query string.
#[derive(Clone, Debug, Default)]
pub struct Filters {
    /// `status`.
    pub status: String,
    /// `environment`.
    pub environment: String,
    /// `owner`.
    pub owner: String,
    /// `class`.
    pub class: String,
    /// `label` (`key=value`).
    pub label: String,
    /// `name` (a prefix).
    pub name: String,
    /// `expired=1`: only agents past their time to live, not retired.
    pub expired: String,
    /// `sort`: `created` (default), `-created`, `name` or `-name`.
    pub sort: String,
}

/// Most agents one export holds; the API's keyset paging reads the rest.
const EXPORT_MAX: usize = 100_000;

/// Agents read per store call while exporting.
const EXPORT_CHUNK: i64 = 1_000;

impl Filters {
    fn parse(raw: Option<&str>) -> (Self, Option<String>) {
        let mut f = Filters::default();
        let mut cursor = None;
        for (k, v) in query_pairs(raw) {
            match k.as_str() {
                "status" => f.status = v,
                "environment" => f.environment = v,
                "owner" => f.owner = v,
                "class" => f.class = v,
                "label" => f.label = v,
                "name" => f.name = v,
                "expired" => f.expired = v,
                "sort" => f.sort = v,
                "cursor" => cursor = Some(v),
                _ => {}
            }
        }
        (f, cursor)
    }

    /// The query string of these filters (without a cursor).
    pub fn query(&self) -> String {
        query_string(&[
            ("status", &self.status),
            ("environment", &self.environment),
            ("owner", &self.owner),
            ("class", &self.class),
            ("label", &self.label),
            ("name", &self.name),
            ("expired", &self.expired),
            ("sort", &self.sort),
        ])
    }

    /// The query string with another sort (a column heading's link).
    pub fn sorted(&self, sort: &str) -> String {
        Filters {
            sort: sort.to_owned(),
            ..self.clone()
        }
        .query()
    }

    /// The sort a column heading links to: ascending, or descending when
    /// the list is already ascending by it.
    pub fn toggle(&self, column: &str) -> String {
        if self.sort == column || (column == "created" && self.sort.is_empty()) {
            format!("-{column}")
        } else {
            column.to_owned()
        }
    }

    /// `aria-sort` of a column heading.
    pub fn aria_sort(&self, column: &str) -> &'static str {
        match self.sort.as_str() {
            s if s == column || (column == "created" && s.is_empty()) => "ascending",
            s if s.strip_prefix('-') == Some(column) => "descending",
            _ => "none",
        }
    }

    fn order(&self) -> Result<AgentOrder, ConsoleError> {
        match self.sort.as_str() {
            "" => Ok(AgentOrder::Created),
            s => AgentOrder::parse(s).ok_or_else(|| {
                ConsoleError::Refused(
                    StatusCode::BAD_REQUEST,
                    "the sort: one of created, -created, name, -name".into(),
                )
            }),
        }
    }

    /// The inventory's path with these filters.
    pub fn path(&self) -> String {
        match self.query() {
            q if q.is_empty() => "/console/agents".to_owned(),
            q => format!("/console/agents?{q}"),
        }
    }

    /// The store's filter, from the page `cursor` on (an id, or a name for
    /// the name orders).
    fn to_store(&self, cursor: Option<&str>, now: idv_core::Timestamp) -> Result<AgentFilter, ConsoleError> {
        let order = self.order()?;
        let cursor = cursor.filter(|c| !c.is_empty());
        let (after, after_name) = match (order.by_name(), cursor) {
            (_, None) => (None, None),
            (true, Some(c)) => (None, Some(c.to_owned())),
            (false, Some(c)) => (
                Some(c.parse::<Uuid>().map_err(|_| {
                    ConsoleError::Refused(StatusCode::BAD_REQUEST, "the page cursor is not valid".into())
                })?),
                None,
            ),
        };
        let bad = |what: &str, detail: String| {
            ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("the {what} filter: {detail}"))
        };
        let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let labels = match self.label.split_once('=') {
            Some((k, v)) => vec![(k.trim().to_owned(), v.trim().to_owned())],
            None if self.label.is_empty() => Vec::new(),
            None => return Err(bad("label", "write it as key=value".into())),
        };
        Ok(AgentFilter {
            status: match self.status.as_str() {
                "" => None,
                s => Some(s.parse::<Status>().map_err(|e| bad("status", e.to_string()))?),
            },
            owner: nonempty(&self.owner),
            environment: match self.environment.as_str() {
                "" => None,
                e => Some(
                    e.parse::<Environment>()
                        .map_err(|e| bad("environment", e.to_string()))?,
                ),
            },
            class: nonempty(&self.class),
            labels,
            name_prefix: nonempty(&self.name),
            expired_before: (!self.expired.is_empty()).then_some(now),
            order,
            after,
            after_name,
            limit: PAGE,
        })
    }
}

/// One row of the inventory.
pub struct Row {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Status.
    pub status: &'static str,
    /// Owner.
    pub owner: String,
    /// Environment.
    pub environment: String,
    /// Class.
    pub class: String,
    /// Created, RFC 3339.
    pub created: String,
}

impl From<&Agent> for Row {
    fn from(a: &Agent) -> Self {
        Row {
            id: a.id,
            name: a.name.clone(),
            status: a.status.as_str(),
            owner: a.owner.clone(),
            environment: a.environment.map(|e| e.as_str().to_owned()).unwrap_or_default(),
            class: a.class.clone().unwrap_or_default(),
            created: a.created_at.to_rfc3339(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/agents.html")]
struct Inventory {
    layout: Layout,
    filters: Filters,
    rows: Vec<Row>,
    next: Option<String>,
    statuses: [&'static str; 4],
    environments: Vec<&'static str>,
    notice: Option<String>,
}

/// `GET /console/agents`.
pub async fn inventory(
    State(state): State<AppState>,
    v: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let (filters, cursor) = Filters::parse(raw.as_deref());
    let f = filters.to_store(cursor.as_deref(), state.clock.now())?;
    let agents = app::agents::list(&state, &v.caller, &f).await?;
    let next = (agents.len() as i64 == PAGE)
        .then(|| {
            agents.last().map(|a| match f.order.by_name() {
                true => urlencode(&a.name),
                false => a.id.to_string(),
            })
        })
        .flatten();
    let notice = query_pairs(raw.as_deref())
        .into_iter()
        .find(|(k, _)| k == "done")
        .map(|(_, n)| n);
    Ok(render(&Inventory {
        layout: Layout::new(&v, "Agents", "/console/agents"),
        rows: agents.iter().map(Row::from).collect(),
        filters,
        next,
        statuses: Status::ALL.map(Status::as_str),
        environments: Environment::ALL.iter().map(|e| e.as_str()).collect(),
        notice,
    }))
}

/// `GET /console/agents/export`: the filtered inventory (in its order, at
/// most 100,000 agents) as CSV, or XLSX with `format=xlsx`.
pub async fn export(
    State(state): State<AppState>,
    v: Viewer,
    RawQuery(raw): RawQuery,
) -> Result<Response, ConsoleError> {
    let (filters, _) = Filters::parse(raw.as_deref());
    let mut f = filters.to_store(None, state.clock.now())?;
    f.limit = EXPORT_CHUNK;
    let mut rows = Vec::new();
    loop {
        let page = app::agents::list(&state, &v.caller, &f).await?;
        let full = page.len() as i64 == EXPORT_CHUNK;
        if let Some(last) = page.last() {
            f.after = Some(last.id);
            f.after_name = Some(last.name.clone());
        }
        rows.extend(page.iter().map(|a| {
            let r = Row::from(a);
            vec![
                r.id.to_string(),
                r.name,
                r.status.to_owned(),
                r.owner,
                r.environment,
                r.class,
                a.team.clone().unwrap_or_default(),
                a.purpose.clone(),
                r.created,
                a.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            ]
        }));
        if !full || rows.len() >= EXPORT_MAX {
            break;
        }
    }
    rows.truncate(EXPORT_MAX);
    let table = export::Table {
        name: "agents",
        headings: &[
            "id",
            "name",
            "status",
            "owner",
            "environment",
            "class",
            "team",
            "purpose",
            "created",
            "expires",
        ],
        rows,
    };
    export::respond(raw.as_deref(), &table)
}

/// A bulk lifecycle action from the inventory.
#[derive(Debug, Default)]
pub struct BulkForm {
    csrf: String,
    action: String,
    reason: String,
    ids: Vec<String>,
    back: String,
}

impl BulkForm {
    fn parse(body: &[u8]) -> Self {
        let mut f = BulkForm::default();
        for (k, v) in form_urlencoded::parse(body) {
            match k.as_ref() {
                "_csrf" => f.csrf = v.into_owned(),
                "action" => f.action = v.into_owned(),
                "reason" => f.reason = v.into_owned(),
                "id" => f.ids.push(v.into_owned()),
                "back" => f.back = v.into_owned(),
                _ => {}
            }
        }
        f
    }
}

fn transition(name: &str) -> Result<Transition, ConsoleError> {
    Transition::ALL
        .into_iter()
        .find(|t| t.as_str() == name)
        .ok_or_else(|| ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("`{name}` is not a lifecycle action")))
}

/// `POST /console/agents/bulk`: one lifecycle action on the selected agents,
/// each through the same use case (and audit event) as the API. Every agent
/// is checked first, so an action one of them cannot take changes none.
pub async fn bulk(State(state): State<AppState>, v: Viewer, body: axum::body::Bytes) -> Result<Response, ConsoleError> {
    let form = BulkForm::parse(&body);
    v.check_csrf(&form.csrf)?;
    let t = transition(&form.action)?;
    if form.ids.is_empty() {
        return Err(ConsoleError::Refused(
            StatusCode::BAD_REQUEST,
            "select at least one agent".into(),
        ));
    }
    if form.ids.len() > BULK_MAX {
        return Err(ConsoleError::Refused(
            StatusCode::BAD_REQUEST,
            format!("at most {BULK_MAX} agents at a time"),
        ));
    }
    let ids = form
        .ids
        .iter()
        .map(|i| i.parse::<Uuid>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "an agent id is not valid".into()))?;
    idv_core::agent::validate_reason(&form.reason).map_err(app::AppError::from)?;
    for id in &ids {
        let a = app::agents::get(&state, &v.caller, *id).await?;
        if let Err(e) = a.status.apply(t) {
            return Err(ConsoleError::Refused(
                StatusCode::CONFLICT,
                format!("nothing was changed: `{}`: {e}", a.name),
            ));
        }
    }
    for id in &ids {
        app::agents::transition(&state, &v.caller, *id, t, form.reason.clone()).await?;
    }
    // Back to the same filtered list (only our own paths).
    let back = if form.back.starts_with("/console/agents") && !form.back.contains("//") {
        form.back
    } else {
        "/console/agents".to_owned()
    };
    let sep = if back.contains('?') { '&' } else { '?' };
    let done = urlencode(&format!("{}: {} agent(s)", t.as_str(), ids.len()));
    Ok(Redirect::to(&format!("{back}{sep}done={done}")).into_response())
}

/// One action the agent may take ("what can this agent do?").
pub struct Can {
    /// The action.
    pub action: String,
    /// `allowed` or `conditional` (a condition or a person's approval).
    pub how: &'static str,
    /// The policies that give it.
    pub policies: String,
}

/// One edge of the agent's neighbourhood.
pub struct Neighbour {
    /// The other agent.
    pub other: Uuid,
    /// `calls` or `called by`.
    pub direction: &'static str,
    /// For what.
    pub action: String,
    /// Allowed calls.
    pub allowed: i64,
    /// Denied calls.
    pub denied: i64,
}

/// One event of the agent's timeline.
pub struct Happened {
    /// Sequence number (links to the event).
    pub seq: i64,
    /// RFC 3339.
    pub time: String,
    /// The action.
    pub action: String,
    /// `kind:name`.
    pub actor: String,
    /// The outcome.
    pub outcome: &'static str,
    /// For an edit, the fields changed; for a decision, the action asked.
    pub detail: String,
}

/// A grant to the agent, or a delegation to or from it, as a row.
pub struct Access {
    /// `role`, `action`, `delegated to it`, `delegated by it`.
    pub kind: &'static str,
    /// What: the role or action, or the delegation's scopes.
    pub what: String,
    /// From or to whom, or the condition.
    pub party: String,
    /// Until, RFC 3339, or empty.
    pub until: String,
    /// Whether it is in force now.
    pub live: bool,
}

/// One of the agent's database leases.
pub struct LeaseRow {
    /// Id.
    pub id: String,
    /// Template.
    pub template: String,
    /// Role name.
    pub username: String,
    /// State.
    pub state: &'static str,
    /// Expires.
    pub expires: String,
}

#[derive(Template)]
#[template(path = "console/agent.html")]
struct Detail {
    access: Vec<Access>,
    leases: Vec<LeaseRow>,
    edits: Option<Vec<Happened>>,
    decisions: Option<Vec<Happened>>,
    layout: Layout,
    agent: Agent,
    environment: String,
    class: String,
    credentials: Vec<Credential>,
    actions: Vec<&'static str>,
    roles: Vec<String>,
    can: Vec<Can>,
    neighbours: Vec<Neighbour>,
    timeline: Option<Vec<Happened>>,
}

/// Events shown on an agent's timeline (and edits).
const TIMELINE: i64 = 50;

/// Recent decisions shown on an agent's page.
const DECISIONS: i64 = 20;

/// `GET /console/agents/{id}`.
pub async fn detail(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let id = path_id(&id, "agent")?;
    let agent = app::agents::get(&state, &v.caller, id).await?;
    let credentials = app::credentials::list(&state, &v.caller, id).await?;
    let actions = Transition::ALL
        .into_iter()
        .filter(|t| agent.status.apply(*t).is_ok())
        .map(Transition::as_str)
        .collect();
    let perms = app::decisions::permissions(&state, &v.caller, id).await?;
    let policies = |a: &str| {
        perms
            .permitted
            .policies
            .get(a)
            .map(|p| p.iter().cloned().collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let mut can: Vec<Can> = perms
        .permitted
        .actions
        .iter()
        .map(|a| Can {
            action: a.clone(),
            how: "allowed",
            policies: policies(a),
        })
        .collect();
    can.extend(perms.permitted.conditional.iter().map(|a| Can {
        action: a.clone(),
        how: "conditional",
        policies: policies(a),
    }));
    let (calls, called_by) = app::decisions::graph(&state, &v.caller, id).await?;
    let neighbours = calls
        .iter()
        .map(|e| (e, e.callee, "calls"))
        .chain(called_by.iter().map(|e| (e, e.caller, "called by")))
        .map(|(e, other, direction)| Neighbour {
            other,
            direction,
            action: e.action.clone(),
            allowed: e.allowed,
            denied: e.denied,
        })
        .collect();
    let now = state.clock.now();
    let access = access(&state, &v, id, now).await?;
    let leases = app::leases::list(
        &state,
        &v.caller,
        &idv_store::LeaseFilter {
            agent_id: Some(id),
            limit: 50,
            ..idv_store::LeaseFilter::default()
        },
    )
    .await?
    .iter()
    .map(|l| LeaseRow {
        id: l.id.to_string(),
        template: l.template.clone(),
        username: l.username.clone(),
        state: l.state.as_str(),
        expires: l.expires_at.to_rfc3339(),
    })
    .collect();
    // From the audit log, for those who may read it: every event about the
    // agent, its edits, and the decisions it got (apart: a busy agent's
    // decisions would fill the timeline).
    let audit = v.caller.principal.may(idv_core::admin_token::Permission::ReadAudit);
    let about = |action: Option<Action>, limit: i64| {
        let (state, v) = (&state, &v);
        async move {
            if !audit {
                return Ok::<_, ConsoleError>(None);
            }
            let filter = idv_store::AuditFilter {
                target_id: Some(id.to_string()),
                action: action.map(|a| a.as_str().to_owned()),
                newest_first: true,
                limit,
                ..idv_store::AuditFilter::default()
            };
            let events = app::audit::events(state, &v.caller, filter, false).await?;
            Ok(Some(events.iter().map(Happened::from).collect()))
        }
    };
    let timeline = about(None, TIMELINE).await?;
    let edits = about(Some(Action::AgentUpdate), TIMELINE).await?;
    let decisions = about(Some(Action::AuthzDecision), DECISIONS).await?;
    Ok(render(&Detail {
        layout: Layout::new(&v, agent.name.clone(), "/console/agents"),
        environment: agent.environment.map(|e| e.as_str().to_owned()).unwrap_or_default(),
        class: agent.class.clone().unwrap_or_default(),
        agent,
        credentials,
        actions,
        roles: perms.roles.into_iter().collect(),
        can,
        neighbours,
        timeline,
        access,
        leases,
        edits,
        decisions,
    }))
}

/// The agent's grants (to it, its roles and single actions) and the
/// delegations to and from it.
async fn access(state: &AppState, v: &Viewer, id: Uuid, now: idv_core::Timestamp) -> Result<Vec<Access>, ConsoleError> {
    let subject = idv_core::role::GrantSubject::Agent(id);
    let mut out: Vec<Access> = app::policies::grants(state, &v.caller, Some(&subject), None, 200)
        .await?
        .iter()
        .map(|g| {
            let (kind, what) = match &g.permission {
                idv_core::role::Permission::Role(r) => ("role", r.clone()),
                idv_core::role::Permission::Action(a) => ("action", a.clone()),
            };
            Access {
                kind,
                what,
                party: g.condition.as_ref().map(|c| format!("when {c}")).unwrap_or_default(),
                until: g.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                live: g.is_live(now),
            }
        })
        .collect();
    let delegation = |kind: &'static str, d: &idv_core::delegation::Delegation, party: String| Access {
        kind,
        what: d.scopes.iter().cloned().collect::<Vec<_>>().join(" "),
        party,
        until: d.expires_at.to_rfc3339(),
        live: d.is_live(now),
    };
    for d in app::delegations::list(state, &v.caller, Some(id), None, 200).await? {
        let from = match &d.delegator {
            idv_core::delegation::Delegator::Agent { id } => format!("from agent {id}"),
            idv_core::delegation::Delegator::Human { issuer, sub } => format!("from {sub} ({issuer})"),
        };
        out.push(delegation("delegated to it", &d, from));
    }
    for d in app::delegations::given_by(state, &v.caller, id, 200).await? {
        out.push(delegation("delegated by it", &d, format!("to agent {}", d.delegate)));
    }
    Ok(out)
}

impl From<&idv_core::audit::Event> for Happened {
    fn from(e: &idv_core::audit::Event) -> Self {
        Happened {
            seq: e.seq,
            time: e.time.to_rfc3339(),
            action: e.action.clone(),
            actor: format!("{}:{}", e.actor.kind.as_str(), e.actor.name),
            outcome: e.outcome.as_str(),
            detail: match e.details.get("changed").and_then(|c| c.as_array()) {
                Some(fields) => fields.iter().filter_map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
                None => e
                    .details
                    .get("action")
                    .and_then(|a| a.as_str())
                    .map(str::to_owned)
                    .unwrap_or_default(),
            },
        }
    }
}

/// The registration form on the inventory page.
#[derive(serde::Deserialize)]
pub struct RegisterForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    name: String,
    #[serde(default)]
    owner: String,
    purpose: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    class: String,
}

/// `POST /console/agents`: register an agent (through the same use case and
/// checks as `POST /v1/agents`); on to its page.
pub async fn register(
    State(state): State<AppState>,
    v: Viewer,
    Form(form): Form<RegisterForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let spec = idv_core::agent::NewAgent {
        name: form.name.trim().to_owned(),
        // Owned by whoever registers it unless they name someone else.
        owner: match form.owner.trim() {
            "" => v.caller.principal.token_name.clone(),
            o => o.to_owned(),
        },
        purpose: form.purpose.trim().to_owned(),
        environment: match form.environment.as_str() {
            "" => None,
            e => Some(e.parse::<Environment>().map_err(app::AppError::from)?),
        },
        class: Some(form.class.trim().to_owned()).filter(|c| !c.is_empty()),
        ..idv_core::agent::NewAgent::default()
    };
    let created = app::agents::create(&state, &v.caller, vec![spec], false).await?;
    let id = created
        .first()
        .map(|a| a.id)
        .ok_or_else(|| app::AppError::Internal("no agent came back".into()))?;
    Ok(Redirect::to(&format!("/console/agents/{id}")).into_response())
}

/// A lifecycle action from the detail page.
#[derive(serde::Deserialize)]
pub struct LifecycleForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    action: String,
    #[serde(default)]
    reason: String,
}

/// `POST /console/agents/{id}/lifecycle`.
pub async fn lifecycle(
    State(state): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Form(form): Form<LifecycleForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&form.csrf)?;
    let id = path_id(&id, "agent")?;
    let t = transition(&form.action)?;
    app::agents::transition(&state, &v.caller, id, t, form.reason).await?;
    Ok(Redirect::to(&format!("/console/agents/{id}")).into_response())
}
