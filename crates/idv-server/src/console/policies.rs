//! Policies: the versions (which is active, who made each), a diff between
//! two, activation and roll back, a draft tested against the decisions
//! recorded in the audit log, and the roles and grants. The same use cases
//! as `/v1/policies`, `/v1/roles` and `/v1/grants`.

use askama::Template;
use axum::Form;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use idv_core::audit::{Action, Event};
use idv_core::policy_version::PolicyVersion;
use idv_core::role::{GrantSubject, Permission, Role, RoleGrant};
use idv_store::AuditFilter;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{ConsoleError, Layout, Viewer, query_pairs, render, urlencode};
use crate::AppState;
use crate::app;
use crate::app::decisions::{Ask, Thing};

/// Recorded decisions a draft is tested against: the most recent ones.
const RECORDED: i64 = 500;

/// One line of a diff.
pub struct Line {
    /// `add`, `del` or `same`.
    pub kind: &'static str,
    /// `+`, `-` or a space.
    pub sign: char,
    /// The text.
    pub text: String,
}

/// A line diff of two texts (policies, then schema).
fn diff(old: &str, new: &str) -> Vec<Line> {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|c| {
            let (kind, sign) = match c.tag() {
                similar::ChangeTag::Insert => ("add", '+'),
                similar::ChangeTag::Delete => ("del", '-'),
                similar::ChangeTag::Equal => ("same", ' '),
            };
            Line {
                kind,
                sign,
                text: c.value().trim_end_matches('\n').to_owned(),
            }
        })
        .collect()
}

/// A grant as a row.
pub struct GrantRow {
    /// `agent:<id>`, `class:<name>`, `group:<name>`.
    pub subject: String,
    /// Link to the agent, when the subject is one.
    pub agent: Option<String>,
    /// `role x` or `action y`.
    pub permission: String,
    /// Condition.
    pub condition: String,
    /// Until, or empty.
    pub expires: String,
    /// Who made it.
    pub by: String,
}

impl From<&RoleGrant> for GrantRow {
    fn from(g: &RoleGrant) -> Self {
        GrantRow {
            subject: format!("{}:{}", g.subject.kind(), g.subject.id()),
            agent: match g.subject {
                GrantSubject::Agent(id) => Some(id.to_string()),
                _ => None,
            },
            permission: match &g.permission {
                Permission::Role(r) => format!("role {r}"),
                Permission::Action(a) => format!("action {a}"),
            },
            condition: g.condition.clone().unwrap_or_default(),
            expires: g.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            by: g.created_by.clone(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/policies.html")]
struct Page {
    layout: Layout,
    versions: Vec<PolicyVersion>,
    from: i64,
    to: i64,
    lines: Vec<Line>,
    roles: Vec<Role>,
    grants: Vec<GrantRow>,
    can_manage: bool,
    notice: Option<String>,
}

/// `GET /console/policies` (`from`, `to`: the versions to compare; by
/// default the one before the active and the active).
pub async fn page(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> Result<Response, ConsoleError> {
    v.caller.require_unscoped(&state, Action::PolicyList).await?;
    let versions = app::policies::list(&state, &v.caller).await?;
    let q = query_pairs(raw.as_deref());
    let num = |k: &str| -> Result<Option<i64>, ConsoleError> {
        match q.iter().find(|(n, _)| n == k) {
            None => Ok(None),
            Some((_, s)) if s.is_empty() => Ok(None),
            Some((_, s)) => s
                .parse()
                .map(Some)
                .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, format!("`{k}` is a version number"))),
        }
    };
    let active = versions.iter().find(|x| x.active).map(|x| x.version);
    let to = num("to")?
        .or(active)
        .or(versions.first().map(|x| x.version))
        .unwrap_or(0);
    let from = num("from")?
        .or_else(|| versions.iter().map(|x| x.version).filter(|n| *n < to).max())
        .unwrap_or(0);
    let text = |n: i64| -> Result<String, ConsoleError> {
        Ok(match versions.iter().find(|x| x.version == n) {
            Some(x) => match &x.schema {
                Some(schema) => format!("{}\n// schema fragment\n{schema}", x.policies),
                None => x.policies.clone(),
            },
            None if n == 0 => String::new(),
            None => {
                return Err(ConsoleError::Refused(
                    StatusCode::NOT_FOUND,
                    format!("no policy version {n}"),
                ));
            }
        })
    };
    let lines = diff(&text(from)?, &text(to)?);
    let roles = app::policies::roles(&state, &v.caller).await?;
    let grants = app::policies::grants(&state, &v.caller, None, None, 500).await?;
    Ok(render(&Page {
        layout: Layout::new(&v, "Policies", "/console/policies"),
        can_manage: v.caller.principal.may(idv_core::admin_token::Permission::ManagePolicy),
        versions,
        from,
        to,
        lines,
        roles,
        grants: grants.iter().map(GrantRow::from).collect(),
        notice: q.iter().find(|(k, _)| k == "done").map(|(_, d)| d.clone()),
    }))
}

#[derive(Template)]
#[template(path = "console/policy.html")]
struct VersionPage {
    layout: Layout,
    v: PolicyVersion,
}

/// `GET /console/policies/{version}`: one version's text and schema.
pub async fn version(
    State(state): State<AppState>,
    v: Viewer,
    Path(n): Path<String>,
) -> Result<Response, ConsoleError> {
    v.caller.require_unscoped(&state, Action::PolicyGet).await?;
    let n = n
        .parse::<i64>()
        .map_err(|_| ConsoleError::Refused(StatusCode::NOT_FOUND, "no such policy version".into()))?;
    let pv = app::policies::get(&state, &v.caller, n).await?;
    Ok(render(&VersionPage {
        layout: Layout::new(&v, format!("Policy version {n}"), "/console/policies"),
        v: pv,
    }))
}

/// Activate a version, or roll back.
#[derive(Deserialize)]
pub struct ActivateForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    /// A version number, or `rollback`.
    version: String,
}

/// `POST /console/policies/activate`.
pub async fn activate(
    State(state): State<AppState>,
    v: Viewer,
    Form(f): Form<ActivateForm>,
) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let version = match f.version.as_str() {
        "rollback" => None,
        n => Some(
            n.parse::<i64>()
                .map_err(|_| ConsoleError::Refused(StatusCode::BAD_REQUEST, "a version number or rollback".into()))?,
        ),
    };
    let (pv, warnings) = app::policies::activate(&state, &v.caller, version).await?;
    let mut done = format!("version {} is active", pv.version);
    if !warnings.is_empty() {
        done.push_str(&format!(" (warnings: {})", warnings.join("; ")));
    }
    Ok(Redirect::to(&format!("/console/policies?done={}", urlencode(&done))).into_response())
}

/// A recorded decision whose outcome a draft would change.
pub struct Changed {
    /// The audit event's sequence number.
    pub seq: i64,
    /// When.
    pub time: String,
    /// `Type::id` of the subject.
    pub subject: String,
    /// The action.
    pub action: String,
    /// `Type::id` of the resource.
    pub resource: String,
    /// Under the active version.
    pub active: &'static str,
    /// Under the draft.
    pub draft: &'static str,
    /// The draft's determining policies.
    pub policies: String,
}

#[derive(Template)]
#[template(path = "console/policy_test.html")]
struct TestPage {
    layout: Layout,
    policies: String,
    schema: String,
    tested: usize,
    changed: Vec<Changed>,
}

/// A draft to test.
#[derive(Deserialize)]
pub struct TestForm {
    #[serde(rename = "_csrf", default)]
    csrf: String,
    policies: String,
    #[serde(default)]
    schema: String,
}

/// The question a recorded `authz.decision` event asked, as far as the
/// event says (subject, action, resource, context and properties).
fn recorded_ask(e: &Event) -> Option<Ask> {
    let d = &e.details;
    let obj = |v: Option<&Value>| v.and_then(Value::as_object).cloned();
    let subject_type = if e.target_type == "agent" {
        "Agent".to_owned()
    } else {
        e.target_type.clone()
    };
    Some(Ask {
        subject: Thing {
            type_name: subject_type,
            id: e.target_id.clone(),
            properties: obj(d.get("subject_properties")),
        },
        action: d.get("action")?.as_str()?.to_owned(),
        action_properties: obj(d.get("action_properties")),
        resource: Thing {
            type_name: d.pointer("/resource/type")?.as_str()?.to_owned(),
            id: d.pointer("/resource/id")?.as_str()?.to_owned(),
            properties: None,
        },
        context: obj(d.get("context")).unwrap_or_else(Map::new),
    })
}

/// `POST /console/policies/test`: the draft (validated first: errors are
/// shown with their place) against the last 500 recorded decisions; lists
/// those whose outcome it would change. Nothing is recorded or activated.
pub async fn test(State(state): State<AppState>, v: Viewer, Form(f): Form<TestForm>) -> Result<Response, ConsoleError> {
    v.check_csrf(&f.csrf)?;
    let schema = Some(f.schema.as_str()).filter(|s| !s.trim().is_empty());
    let candidate = app::policies::candidate(&state, &v.caller, None, Some((&f.policies, schema))).await?;
    let events = app::audit::events(
        &state,
        &v.caller,
        AuditFilter {
            tenant_id: Some(v.caller.tenant.id),
            action: Some(Action::AuthzDecision.as_str().to_owned()),
            newest_first: true,
            limit: RECORDED,
            ..AuditFilter::default()
        },
        false,
    )
    .await?;
    let asked: Vec<(&Event, Ask)> = events.iter().filter_map(|e| recorded_ask(e).map(|a| (e, a))).collect();
    let asks: Vec<Ask> = asked.iter().map(|(_, a)| a.clone()).collect();
    let (_, results) = app::decisions::compare(&state, &v.caller, candidate, &asks).await?;
    let changed = asked
        .iter()
        .zip(results)
        .filter(|(_, c)| c.active != c.candidate)
        .map(|((e, a), c)| Changed {
            seq: e.seq,
            time: e.time.to_rfc3339(),
            subject: format!("{}::{}", a.subject.type_name, a.subject.id),
            action: a.action.clone(),
            resource: format!("{}::{}", a.resource.type_name, a.resource.id),
            active: c.active,
            draft: c.candidate,
            policies: c.candidate_policies.join(", "),
        })
        .collect();
    Ok(render(&TestPage {
        layout: Layout::new(&v, "Test a draft", "/console/policies"),
        policies: f.policies,
        schema: f.schema,
        tested: asks.len(),
        changed,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_added_and_removed_lines() {
        let lines = diff("a\nb\nc\n", "a\nc\nd\n");
        let marks: Vec<(char, &str)> = lines.iter().map(|l| (l.sign, l.text.as_str())).collect();
        assert_eq!(marks, [(' ', "a"), ('-', "b"), (' ', "c"), ('+', "d")]);
    }
}
