//! AuthZEN 1.0 §8 search: which subjects may do an action on a resource,
//! which resources a subject may act on, which actions it may take. The
//! PDP enumerates the candidates the store knows (the registry's active
//! agents, the directory's entities of the type asked, the schema's
//! actions), decides each exactly as an evaluation would, and returns the
//! allowed ones a page at a time. At most [`SCAN_MAX`] candidates are
//! decided per page; the page token says where the next page resumes, so a
//! search over any number of candidates is answered in bounded steps. Each
//! search is audited as one `authz.search` event.

use std::net::IpAddr;

use base64::Engine as _;
use idv_core::admin_token::Permission;
use idv_core::audit::{Action, Draft, Outcome as AuditOutcome, TargetKind, canonical_json};
use idv_core::lifecycle::Status;
use idv_policy::{Engine, Outcome};
use idv_store::{AgentFilter, DecisionRecord};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::decisions::{Ask, is_agent_type, resolve, run};
use super::{AppError, Caller};
use crate::AppState;

/// Results per page when the request names no `page.limit`.
pub const PAGE_DEFAULT: usize = 100;
/// Most results per page (a larger `page.limit` is lowered to it).
pub const PAGE_MAX: usize = 1_000;
/// Most candidates decided to answer one page: a page may hold fewer
/// results than its limit and still have a next page.
pub const SCAN_MAX: usize = 1_000;

/// What is searched for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// §8.4: subjects of a type.
    Subject,
    /// §8.5: resources of a type.
    Resource,
    /// §8.6: actions.
    Action,
}

impl Kind {
    /// Its name in the audit log and page tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Subject => "subject",
            Kind::Resource => "resource",
            Kind::Action => "action",
        }
    }
}

/// One search: the request as an evaluation whose searched part has no id
/// (no name, for actions).
#[derive(Clone, Debug)]
pub struct Search {
    /// What is searched for.
    pub kind: Kind,
    /// The rest of the request.
    pub ask: Ask,
    /// `page.token`: where to resume.
    pub token: Option<String>,
    /// `page.limit`, already bounded.
    pub limit: usize,
}

/// One page of results.
#[derive(Clone, Debug)]
pub struct Found {
    /// The ids (names, for actions) allowed, in id order.
    pub results: Vec<String>,
    /// Empty on the last page.
    pub next_token: String,
}

/// A request digest that ties a page token to the search it came from:
/// a token is refused by any other search.
fn digest(s: &Search) -> String {
    let a = &s.ask;
    let v = json!({
        "kind": s.kind.as_str(),
        "subject": { "type": a.subject.type_name, "id": a.subject.id, "properties": a.subject.properties },
        "action": { "name": a.action, "properties": a.action_properties },
        "resource": { "type": a.resource.type_name, "id": a.resource.id, "properties": a.resource.properties },
        "context": a.context,
    });
    let d = Sha256::digest(canonical_json(&v).as_bytes());
    idv_core::hex::encode(d.get(..12).unwrap_or_default())
}

fn encode_token(s: &Search, after: &str) -> String {
    let body = json!({ "q": digest(s), "a": after }).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(body)
}

fn decode_token(s: &Search, token: &str) -> Result<String, AppError> {
    let bad = || AppError::BadParameter {
        field: "page.token".into(),
        detail: "`page.token` is not a token this PDP gave for this search".into(),
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    match (v.get("q").and_then(Value::as_str), v.get("a").and_then(Value::as_str)) {
        (Some(q), Some(a)) if q == digest(s) => Ok(a.to_owned()),
        _ => Err(bad()),
    }
}

/// Up to `n` candidates after `after`, in order, and whether more follow.
async fn candidates(
    state: &AppState,
    tenant_id: Uuid,
    engine: &Engine,
    s: &Search,
    after: Option<&str>,
    n: usize,
) -> Result<(Vec<String>, bool), AppError> {
    let type_name = match s.kind {
        Kind::Subject => s.ask.subject.type_name.as_str(),
        Kind::Resource => s.ask.resource.type_name.as_str(),
        Kind::Action => {
            let names = engine.compiled().action_names();
            return Ok(take_after(names.into_iter(), after, n));
        }
    };
    if is_agent_type(type_name) {
        // Only an active agent can be allowed (as actor or callee).
        let after = match after {
            Some(a) => Some(Uuid::parse_str(a).map_err(|_| AppError::BadParameter {
                field: "page.token".into(),
                detail: "`page.token` is not a token this PDP gave for this search".into(),
            })?),
            None => None,
        };
        let f = AgentFilter {
            status: Some(Status::Active),
            after,
            limit: i64::try_from(n + 1).unwrap_or(i64::MAX),
            ..AgentFilter::default()
        };
        let mut ids: Vec<String> = state
            .store
            .agents(tenant_id, &f)
            .await?
            .into_iter()
            .map(|a| a.id.to_string())
            .collect();
        let more = ids.len() > n;
        ids.truncate(n);
        return Ok((ids, more));
    }
    if s.kind == Kind::Subject && type_name == "token" {
        // Tokens are presented, not enumerated.
        return Ok((vec![], false));
    }
    Ok(take_after(engine.entity_ids(type_name).into_iter(), after, n))
}

fn take_after(sorted: impl Iterator<Item = String>, after: Option<&str>, n: usize) -> (Vec<String>, bool) {
    let mut rest = sorted.filter(|id| after.is_none_or(|a| id.as_str() > a));
    let ids: Vec<String> = rest.by_ref().take(n).collect();
    let more = rest.next().is_some();
    (ids, more)
}

/// Runs a search and records it (one `authz.search` event per page, with
/// the results it returned).
pub async fn search(
    state: &AppState,
    caller: &Caller,
    s: &Search,
    source_ip: Option<IpAddr>,
) -> Result<Found, AppError> {
    caller.require(state, Permission::Decide, Action::AuthzSearch).await?;
    let engine = super::policies::engine(state, caller.tenant.id).await?;
    let tenant = &caller.tenant;
    let now = state.clock.now();
    let mut after = match &s.token {
        Some(t) if !t.is_empty() => Some(decode_token(s, t)?),
        _ => None,
    };
    // The subject of a resource or action search is fixed: resolve it once
    // (for a token, one signature check, and its `jti` for the audit log).
    let fixed = resolve(state, tenant, &s.ask).await?;
    let mut results = Vec::new();
    let mut examined = 0usize;
    let mut done = false;
    'scan: while results.len() < s.limit && examined < SCAN_MAX {
        let want = (SCAN_MAX - examined).min(256);
        let (batch, more) = candidates(state, tenant.id, &engine, s, after.as_deref(), want).await?;
        let last = batch.len();
        for (i, id) in batch.into_iter().enumerate() {
            examined += 1;
            let mut ask = s.ask.clone();
            match s.kind {
                Kind::Subject => ask.subject.id.clone_from(&id),
                Kind::Resource => ask.resource.id.clone_from(&id),
                Kind::Action => ask.action.clone_from(&id),
            }
            let d = match s.kind {
                Kind::Action => run(&engine, &fixed, &ask, now, source_ip)?,
                _ => {
                    let r = resolve(state, tenant, &ask).await?;
                    run(&engine, &r, &ask, now, source_ip)?
                }
            };
            // An outcome that needs approval is not an allow: it is left out.
            if d.outcome == Outcome::Allow {
                results.push(id.clone());
            }
            after = Some(id);
            if i + 1 == last && !more {
                done = true;
            }
            if results.len() >= s.limit {
                break 'scan;
            }
        }
        if last == 0 || !more {
            done = true;
            break;
        }
    }
    let next_token = match (&after, done) {
        (Some(a), false) => encode_token(s, a),
        _ => String::new(),
    };
    // Never a bearer token in the log: its agent and `jti` stand for it.
    let (subject_type, subject_id) = match (&fixed.actor, s.ask.subject.type_name.as_str()) {
        (Some(a), "token") => ("agent".to_owned(), a.id.to_string()),
        _ => (s.ask.subject.type_name.clone(), s.ask.subject.id.clone()),
    };
    let (target_type, target_id) = match s.kind {
        Kind::Subject => (s.ask.resource.type_name.clone(), s.ask.resource.id.clone()),
        _ => (subject_type.clone(), subject_id.clone()),
    };
    let ctx = caller.context();
    let event = Draft {
        tenant_id: tenant.id,
        actor: ctx.actor.clone(),
        action: Action::AuthzSearch,
        target_type: TargetKind::Entity(target_type),
        target_id,
        outcome: AuditOutcome::Success,
        reason: None,
        request_id: ctx.request_id.clone(),
        details: json!({
            "search": s.kind.as_str(),
            "subject": { "type": subject_type, "id": subject_id, "properties": s.ask.subject.properties },
            "action": { "name": s.ask.action, "properties": s.ask.action_properties },
            "resource": { "type": s.ask.resource.type_name, "id": s.ask.resource.id,
                          "properties": s.ask.resource.properties },
            "context": s.ask.context,
            "token": fixed.token.as_ref().map(|(_, jti)| json!({ "jti": jti })),
            "policy_version": engine.version(),
            "examined": examined,
            "results": results,
            "more": !next_token.is_empty(),
        }),
    };
    let record = DecisionRecord {
        event,
        usage: None,
        edge: None,
        approval: None,
    };
    state.store.decide(record, ctx).await?;
    Ok(Found { results, next_token })
}
