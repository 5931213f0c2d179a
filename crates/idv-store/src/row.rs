//! Decoding rows into domain types and binding domain types into queries.

use idv_core::Timestamp;
use idv_core::admin_token::{AdminToken, Role};
use idv_core::agent::{Agent, Environment, Parent};
use idv_core::audit::{Actor, ActorKind, Event, Outcome};
use idv_core::credential::{Credential, Kind};
use idv_core::delegation::{Delegation, Delegator};
use idv_core::keyring::SigningKey;
use idv_core::lifecycle::Status;
use idv_core::tenant::Tenant;
use idv_core::trusted_issuer::TrustedIssuer;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Row};
use uuid::Uuid;

use crate::command::Job;
use crate::{Dialect, StoreError};

pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn uuid(row: &AnyRow, col: &str) -> Result<Uuid, StoreError> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| corrupt(col, e))
}

fn opt_uuid(row: &AnyRow, col: &str) -> Result<Option<Uuid>, StoreError> {
    let s: Option<String> = row.try_get(col)?;
    s.map(|s| Uuid::parse_str(&s).map_err(|e| corrupt(col, e))).transpose()
}

pub(crate) fn ts(row: &AnyRow, col: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_micros(row.try_get::<i64, _>(col)?))
}

pub(crate) fn opt_ts(row: &AnyRow, col: &str) -> Result<Option<Timestamp>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(Timestamp::from_micros))
}

pub(crate) fn json<T: serde::de::DeserializeOwned>(row: &AnyRow, col: &str) -> Result<T, StoreError> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(col, e))
}

fn hash32(row: &AnyRow, col: &str) -> Result<[u8; 32], StoreError> {
    let v: Vec<u8> = row.try_get(col)?;
    v.try_into().map_err(|_| corrupt(col, "not 32 bytes"))
}

pub(crate) const TENANT_COLS: &str = "id, name, display_name, created_at";

pub(crate) fn tenant(row: &AnyRow) -> Result<Tenant, StoreError> {
    Ok(Tenant {
        id: uuid(row, "id")?,
        name: row.try_get("name")?,
        display_name: row.try_get("display_name")?,
        created_at: ts(row, "created_at")?,
    })
}

pub(crate) const TOKEN_COLS: &str =
    "id, tenant_id, name, role, platform, hint, created_at, created_by, expires_at, revoked_at";

pub(crate) fn admin_token(row: &AnyRow) -> Result<AdminToken, StoreError> {
    let role: String = row.try_get("role")?;
    Ok(AdminToken {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        name: row.try_get("name")?,
        role: role.parse::<Role>().map_err(|e| corrupt("role", e))?,
        platform: row.try_get::<i64, _>("platform")? != 0,
        hint: row.try_get("hint")?,
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

pub(crate) const AGENT_COLS: &str = "id, tenant_id, name, owner, purpose, environment, team, labels, \
     capabilities, class, parent_type, parent_id, depends_on, status, status_reason, \
     status_changed_at, status_changed_by, expires_at, created_at, created_by, updated_at, version, grants, \
     tokens_not_before";
pub(crate) const AGENT_NCOLS: usize = 24;

pub(crate) fn agent(row: &AnyRow) -> Result<Agent, StoreError> {
    let environment: Option<String> = row.try_get("environment")?;
    let parent_type: Option<String> = row.try_get("parent_type")?;
    let parent_id: Option<String> = row.try_get("parent_id")?;
    let parent = match (parent_type.as_deref(), parent_id) {
        (Some("agent"), Some(id)) => Some(Parent::Agent(
            Uuid::parse_str(&id).map_err(|e| corrupt("parent_id", e))?,
        )),
        (Some("human"), Some(id)) => Some(Parent::Human(id)),
        (None, None) => None,
        _ => return Err(corrupt("parent", "inconsistent parent columns")),
    };
    let status: String = row.try_get("status")?;
    Ok(Agent {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        purpose: row.try_get("purpose")?,
        environment: environment
            .map(|e| e.parse::<Environment>().map_err(|e| corrupt("environment", e)))
            .transpose()?,
        team: row.try_get("team")?,
        labels: json(row, "labels")?,
        capabilities: json(row, "capabilities")?,
        class: row.try_get("class")?,
        parent,
        depends_on: json(row, "depends_on")?,
        status: status.parse::<Status>().map_err(|e| corrupt("status", e))?,
        status_reason: row.try_get("status_reason")?,
        status_changed_at: ts(row, "status_changed_at")?,
        status_changed_by: row.try_get("status_changed_by")?,
        expires_at: opt_ts(row, "expires_at")?,
        tokens_not_before: opt_ts(row, "tokens_not_before")?,
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        updated_at: ts(row, "updated_at")?,
        version: row.try_get("version")?,
        grants: json(row, "grants")?,
    })
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> String {
    // Serializing maps of strings and vectors of strings/uuids cannot fail.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Binds an agent's columns in [`AGENT_COLS`] order.
pub(crate) fn bind_agent<'q>(q: AnyQuery<'q>, a: &Agent) -> AnyQuery<'q> {
    let (parent_type, parent_id) = match &a.parent {
        Some(Parent::Agent(id)) => (Some("agent"), Some(id.to_string())),
        Some(Parent::Human(h)) => (Some("human"), Some(h.clone())),
        None => (None, None),
    };
    q.bind(a.id.to_string())
        .bind(a.tenant_id.to_string())
        .bind(a.name.clone())
        .bind(a.owner.clone())
        .bind(a.purpose.clone())
        .bind(a.environment.map(|e| e.as_str().to_owned()))
        .bind(a.team.clone())
        .bind(to_json(&a.labels))
        .bind(to_json(&a.capabilities))
        .bind(a.class.clone())
        .bind(parent_type.map(str::to_owned))
        .bind(parent_id)
        .bind(to_json(&a.depends_on))
        .bind(a.status.as_str().to_owned())
        .bind(a.status_reason.clone())
        .bind(a.status_changed_at.as_micros())
        .bind(a.status_changed_by.clone())
        .bind(a.expires_at.map(Timestamp::as_micros))
        .bind(a.created_at.as_micros())
        .bind(a.created_by.clone())
        .bind(a.updated_at.as_micros())
        .bind(a.version)
        .bind(to_json(&a.grants))
        .bind(a.tokens_not_before.map(Timestamp::as_micros))
}

pub(crate) const CREDENTIAL_COLS: &str = "id, tenant_id, agent_id, kind, hint, jwk, scopes, created_at, \
     created_by, expires_at, revoked_at, last_used_at, revoked_reason, predecessor_id, successor_id, \
     retire_on_use, CAST(CASE WHEN sealed_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS awaiting_pickup";

pub(crate) fn credential(row: &AnyRow) -> Result<Credential, StoreError> {
    let kind: String = row.try_get("kind")?;
    let jwk: Option<String> = row.try_get("jwk")?;
    Ok(Credential {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        agent_id: uuid(row, "agent_id")?,
        kind: kind.parse::<Kind>().map_err(|e| corrupt("kind", e))?,
        hint: row.try_get("hint")?,
        jwk: jwk
            .map(|j| serde_json::from_str(&j).map_err(|e| corrupt("jwk", e)))
            .transpose()?,
        scopes: json(row, "scopes")?,
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: opt_ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
        last_used_at: opt_ts(row, "last_used_at")?,
        revoked_reason: row.try_get("revoked_reason")?,
        predecessor_id: opt_uuid(row, "predecessor_id")?,
        successor_id: opt_uuid(row, "successor_id")?,
        retire_on_use: row.try_get::<i64, _>("retire_on_use")? != 0,
        awaiting_pickup: row.try_get::<i64, _>("awaiting_pickup")? != 0,
    })
}

pub(crate) const SIGNING_KEY_COLS: &str =
    "id, tenant_id, alg, public_jwk, sealed_private, created_at, activates_at, retired_at, publish_until, removed_at";

pub(crate) fn signing_key(row: &AnyRow) -> Result<SigningKey, StoreError> {
    Ok(SigningKey {
        kid: row.try_get("id")?,
        tenant_id: uuid(row, "tenant_id")?,
        alg: row.try_get("alg")?,
        public_jwk: json(row, "public_jwk")?,
        sealed_private: row.try_get("sealed_private")?,
        created_at: ts(row, "created_at")?,
        activates_at: ts(row, "activates_at")?,
        retired_at: opt_ts(row, "retired_at")?,
        publish_until: opt_ts(row, "publish_until")?,
        removed_at: opt_ts(row, "removed_at")?,
    })
}

pub(crate) const EVENT_COLS: &str = "seq, id, time, tenant_id, actor_kind, actor_name, actor_token_id, \
     action, target_type, target_id, outcome, reason, request_id, details, prev_hash, hash";
pub(crate) const EVENT_NCOLS: usize = 16;

/// Names the event in an error about one of its columns, so that an
/// operator knows which row to inspect.
fn in_event(seq: i64, e: StoreError) -> StoreError {
    match e {
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("audit event {seq}: {m}")),
        other => other,
    }
}

pub(crate) fn event(row: &AnyRow) -> Result<Event, StoreError> {
    let seq: i64 = row.try_get("seq")?;
    event_columns(row, seq).map_err(|e| in_event(seq, e))
}

fn event_columns(row: &AnyRow, seq: i64) -> Result<Event, StoreError> {
    let kind: String = row.try_get("actor_kind")?;
    let outcome: String = row.try_get("outcome")?;
    let details: String = row.try_get("details")?;
    Ok(Event {
        seq,
        id: uuid(row, "id")?,
        time: ts(row, "time")?,
        tenant_id: uuid(row, "tenant_id")?,
        actor: Actor {
            kind: ActorKind::parse(&kind).ok_or_else(|| corrupt("actor_kind", &kind))?,
            name: row.try_get("actor_name")?,
            token_id: opt_uuid(row, "actor_token_id")?,
        },
        action: row.try_get("action")?,
        target_type: row.try_get("target_type")?,
        target_id: row.try_get("target_id")?,
        outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
        reason: row.try_get("reason")?,
        request_id: row.try_get("request_id")?,
        // Stored in canonical form; a value that no longer parses is itself
        // evidence of tampering, so keep the raw text for the verifier.
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
        prev_hash: hash32(row, "prev_hash")?,
        hash: hash32(row, "hash")?,
    })
}

/// One event as packed by [`crate::Dialect::packed_events_sql`].
type PackedEvent = (
    i64,
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
    String,
);

/// Events from a packed page.
pub(crate) fn packed_events(page: &str) -> Result<Vec<Event>, StoreError> {
    match serde_json::from_str::<Vec<PackedEvent>>(page) {
        Ok(rows) => rows.into_iter().map(packed_event).collect(),
        // A value of the wrong type fails the whole page: find its event.
        Err(e) => Err(locate_malformed(page).unwrap_or_else(|| corrupt("audit page", e))),
    }
}

/// The error for the first event of `page` that does not decode, naming its
/// sequence number (the slow path, taken only when the page failed).
fn locate_malformed(page: &str) -> Option<StoreError> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(page).ok()?;
    rows.into_iter().enumerate().find_map(|(i, row)| {
        let seq = row.get(0).and_then(serde_json::Value::as_i64);
        let err = match serde_json::from_value::<PackedEvent>(row) {
            Ok(_) => return None,
            Err(e) => corrupt("a column has the wrong type", e),
        };
        Some(match seq {
            Some(seq) => in_event(seq, err),
            None => corrupt("audit page", format!("the event after row {i} has no sequence number")),
        })
    })
}

fn packed_event(r: PackedEvent) -> Result<Event, StoreError> {
    let seq = r.0;
    let (id, time, tenant_id, kind, name, token_id, action, target_type, target_id, outcome) =
        (r.1, r.2, r.3, r.4, r.5, r.6, r.7, r.8, r.9, r.10);
    let (reason, request_id, details, prev_hash, hash) = (r.11, r.12, r.13, r.14, r.15);
    let parse_id = |what: &str, s: &str| Uuid::parse_str(s).map_err(|e| corrupt(what, e));
    let hex32 = |what: &str, s: &str| idv_core::hex::decode::<32>(s).ok_or_else(|| corrupt(what, s));
    let event = || {
        Ok(Event {
            seq,
            id: parse_id("id", &id)?,
            time: Timestamp::from_micros(time),
            tenant_id: parse_id("tenant_id", &tenant_id)?,
            actor: Actor {
                kind: ActorKind::parse(&kind).ok_or_else(|| corrupt("actor_kind", &kind))?,
                name,
                token_id: token_id.as_deref().map(|t| parse_id("actor_token_id", t)).transpose()?,
            },
            action,
            target_type,
            target_id,
            outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
            reason,
            request_id,
            // As in `event`: unparseable details are kept raw for the verifier.
            details: serde_json::from_str(&details).unwrap_or(serde_json::Value::String(details)),
            prev_hash: hex32("prev_hash", &prev_hash)?,
            hash: hex32("hash", &hash)?,
        })
    };
    event().map_err(|e| in_event(seq, e))
}

/// Binds an event's columns in [`EVENT_COLS`] order, borrowing what it can
/// from `e` (a bound `String` is copied once more by the driver; a `&str` is
/// not). [`insert_event`] is the same for the SQLite hot path.
pub(crate) fn bind_event<'q>(q: AnyQuery<'q>, e: &'q Event) -> AnyQuery<'q> {
    q.bind(e.seq)
        .bind(e.id.to_string())
        .bind(e.time.as_micros())
        .bind(e.tenant_id.to_string())
        .bind(e.actor.kind.as_str())
        .bind(e.actor.name.as_str())
        .bind(e.actor.token_id.map(|t| t.to_string()))
        .bind(e.action.as_str())
        .bind(e.target_type.as_str())
        .bind(e.target_id.as_str())
        .bind(e.outcome.as_str())
        .bind(e.reason.as_deref())
        .bind(e.request_id.as_deref())
        .bind(idv_core::audit::canonical_json(&e.details))
        .bind(&e.prev_hash[..])
        .bind(&e.hash[..])
}

/// Runs `stmt` (an insert of one row in [`EVENT_COLS`] order) for `e`: the
/// SQLite hot path's [`bind_event`] ([`crate::append`]).
pub(crate) fn insert_event(stmt: &mut rusqlite::CachedStatement<'_>, e: &Event) -> rusqlite::Result<usize> {
    stmt.execute(rusqlite::params![
        e.seq,
        e.id.to_string(),
        e.time.as_micros(),
        e.tenant_id.to_string(),
        e.actor.kind.as_str(),
        e.actor.name,
        e.actor.token_id.map(|t| t.to_string()),
        e.action,
        e.target_type,
        e.target_id,
        e.outcome.as_str(),
        e.reason,
        e.request_id,
        idv_core::audit::canonical_json(&e.details),
        &e.prev_hash[..],
        &e.hash[..],
    ])
}

pub(crate) fn job(row: &AnyRow) -> Result<Job, StoreError> {
    Ok(Job {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        kind: row.try_get("kind")?,
        target_id: row.try_get("target_id")?,
        run_at: ts(row, "run_at")?,
        attempts: row.try_get("attempts")?,
    })
}

/// The `n`th parameter marker of a statement. PostgreSQL numbers them
/// (`$1`). SQLite gets anonymous `?` markers, bound in order: binding
/// numbered ones makes sqlx look each name up with
/// `sqlite3_bind_parameter_name`, which walks the statement's name list, so
/// a bulk statement's binding cost would grow with the square of its
/// parameter count.
pub(crate) fn marker(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => "?".to_owned(),
        Dialect::Postgres => format!("${n}"),
    }
}

/// `(m, m, …), (m, …)`: markers for `rows` rows of `cols` values, numbered
/// from `first`.
pub(crate) fn placeholders(dialect: Dialect, rows: usize, cols: usize, first: usize) -> String {
    let mut s = String::with_capacity(rows * cols * 6);
    let mut n = first;
    for r in 0..rows {
        if r > 0 {
            s.push(',');
        }
        s.push('(');
        for c in 0..cols {
            if c > 0 {
                s.push(',');
            }
            s.push_str(&marker(dialect, n));
            n += 1;
        }
        s.push(')');
    }
    s
}

/// `(m, m, …)`: an `IN` list of `n` markers numbered from `first`.
pub(crate) fn in_list(dialect: Dialect, n: usize, first: usize) -> String {
    let items: Vec<String> = (first..first + n).map(|i| marker(dialect, i)).collect();
    format!("({})", items.join(","))
}

/// Rows per multi-row statement: under SQLite's 32766 and PostgreSQL's
/// 65535 bound-parameter limits.
pub(crate) fn chunk_rows(cols: usize) -> usize {
    (30_000 / cols.max(1)).max(1)
}

pub(crate) const DELEGATION_COLS: &str = "id, tenant_id, delegator_type, delegator, delegate_id, scopes, audiences, \
     task, max_depth, created_at, created_by, expires_at, revoked_at";

/// The stored form of a delegator: `agent` + its id, or `human` +
/// `<issuer>#<sub>` (an issuer URI has no fragment, so `#` splits it).
pub(crate) fn delegator_columns(d: &Delegator) -> (&'static str, String) {
    match d {
        Delegator::Agent { id } => ("agent", id.to_string()),
        Delegator::Human { issuer, sub } => ("human", format!("{issuer}#{sub}")),
    }
}

pub(crate) fn delegation(row: &AnyRow) -> Result<Delegation, StoreError> {
    let kind: String = row.try_get("delegator_type")?;
    let who: String = row.try_get("delegator")?;
    let delegator = match kind.as_str() {
        "agent" => Delegator::Agent {
            id: Uuid::parse_str(&who).map_err(|e| corrupt("delegator", e))?,
        },
        "human" => {
            let (issuer, sub) = who.split_once('#').ok_or_else(|| corrupt("delegator", "no `#`"))?;
            Delegator::Human {
                issuer: issuer.to_owned(),
                sub: sub.to_owned(),
            }
        }
        other => return Err(corrupt("delegator_type", other)),
    };
    let task: Option<String> = row.try_get("task")?;
    Ok(Delegation {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        delegator,
        delegate: uuid(row, "delegate_id")?,
        scopes: json(row, "scopes")?,
        audiences: json(row, "audiences")?,
        task: task
            .map(|t| serde_json::from_str(&t).map_err(|e| corrupt("task", e)))
            .transpose()?,
        max_depth: u32::try_from(row.try_get::<i64, _>("max_depth")?).map_err(|e| corrupt("max_depth", e))?,
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: ts(row, "expires_at")?,
        revoked_at: opt_ts(row, "revoked_at")?,
    })
}

pub(crate) const ISSUER_COLS: &str = "id, tenant_id, issuer, keys, audience, created_at, created_by";

pub(crate) fn trusted_issuer(row: &AnyRow) -> Result<TrustedIssuer, StoreError> {
    Ok(TrustedIssuer {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        issuer: row.try_get("issuer")?,
        keys: json(row, "keys")?,
        audience: row.try_get("audience")?,
        created_at: ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
    })
}
