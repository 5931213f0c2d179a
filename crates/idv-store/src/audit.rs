//! The audit log: drafting a command's events, encoding them into and out
//! of rows, and reading the chain back (filtered, or page by page for a
//! verifier). Appending is the writer's ([`crate::writer`]).

use idv_core::Timestamp;
use idv_core::audit::{Action, Actor, ActorKind, Draft, Event, Head, Outcome, TargetType};
use serde_json::{Value, json};
use sqlx::Row;
use sqlx::any::AnyRow;
use uuid::Uuid;

use crate::command::{Command, Context, typed_writes};
use crate::read::{Arg, Sql};
use crate::row::{AnyQuery, corrupt, opt_uuid, ts, uuid};
use crate::{Store, StoreError};

/// Filters for reading the audit log.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Only events of this tenant (`None`: every tenant, for whole-chain checks).
    pub tenant_id: Option<Uuid>,
    /// Only this action, e.g. `agent.create`.
    pub action: Option<String>,
    /// Only about this target.
    pub target_id: Option<String>,
    /// Only by this admin token.
    pub actor_token_id: Option<Uuid>,
    /// Only by an actor of this name (a token's name, an agent id, …).
    pub actor_name: Option<String>,
    /// Only with this outcome.
    pub outcome: Option<Outcome>,
    /// Only at or after this time.
    pub since: Option<Timestamp>,
    /// Only before this time.
    pub until: Option<Timestamp>,
    /// Keyset cursor: only events after this sequence number.
    pub after_seq: i64,
    /// Keyset cursor for newest-first pages: only events before this one.
    pub before_seq: Option<i64>,
    /// Newest first (else oldest first, as a verifier reads).
    pub newest_first: bool,
    /// At most this many.
    pub limit: i64,
}

/// The success event of a command, stamped with who asked (and any note
/// about the request in its details).
pub(crate) fn draft(
    ctx: &Context,
    tenant_id: Uuid,
    action: Action,
    target_type: TargetType,
    target_id: String,
) -> Draft {
    Draft {
        tenant_id,
        actor: ctx.actor.clone(),
        action,
        target_type: target_type.into(),
        target_id,
        outcome: Outcome::Success,
        reason: None,
        request_id: ctx.request_id.clone(),
        details: match &ctx.note {
            Some(note) => json!({ "request": note }),
            None => json!({}),
        },
    }
}

/// `d` with `extra`'s fields added to its details.
pub(crate) fn with_details(mut d: Draft, extra: Value) -> Draft {
    if let (Value::Object(base), Value::Object(extra)) = (&mut d.details, extra) {
        base.extend(extra);
    }
    d
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

fn hash32(row: &AnyRow, col: &str) -> Result<[u8; 32], StoreError> {
    let v: Vec<u8> = row.try_get(col)?;
    v.try_into().map_err(|_| corrupt(col, "not 32 bytes"))
}

impl Store {
    /// Audit events matching `f`, in chain order.
    pub async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<Event>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {EVENT_COLS} FROM audit_events WHERE 1 = 1"));
        sql.and("seq > ?", vec![Arg::Int(f.after_seq)]);
        if let Some(t) = f.tenant_id {
            sql.and("tenant_id = ?", vec![Arg::Text(t.to_string())]);
        }
        if let Some(a) = &f.action {
            sql.and("action = ?", vec![Arg::Text(a.clone())]);
        }
        if let Some(t) = &f.target_id {
            sql.and("target_id = ?", vec![Arg::Text(t.clone())]);
        }
        if let Some(t) = f.actor_token_id {
            sql.and("actor_token_id = ?", vec![Arg::Text(t.to_string())]);
        }
        if let Some(n) = &f.actor_name {
            sql.and("actor_name = ?", vec![Arg::Text(n.clone())]);
        }
        if let Some(b) = f.before_seq {
            sql.and("seq < ?", vec![Arg::Int(b)]);
        }
        if let Some(o) = f.outcome {
            sql.and("outcome = ?", vec![Arg::Text(o.as_str().into())]);
        }
        if let Some(t) = f.since {
            sql.and("time >= ?", vec![Arg::Int(t.as_micros())]);
        }
        if let Some(t) = f.until {
            sql.and("time < ?", vec![Arg::Int(t.as_micros())]);
        }
        let lim = sql.bind_next(Arg::Int(f.limit));
        let order = if f.newest_first { "DESC" } else { "ASC" };
        sql.push(&format!(" ORDER BY seq {order} LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(event).collect()
    }

    /// The whole chain's events after `after_seq`, in order, at most `limit`:
    /// what a verifier walks. Same result as [`Store::audit_events`] without
    /// filters, read several times faster.
    pub async fn audit_chain_page(&self, after_seq: i64, limit: i64) -> Result<Vec<Event>, StoreError> {
        let row = sqlx::query(self.inner.dialect.packed_events_sql())
            .bind(after_seq)
            .bind(limit)
            .fetch_one(&self.inner.read)
            .await?;
        let page: String = row.try_get("page")?;
        packed_events(&page)
    }

    /// The last event of the chain.
    pub async fn audit_head(&self) -> Result<Head, StoreError> {
        let mut conn = self.inner.read.acquire().await?;
        crate::writer::read_head(&mut conn).await
    }
}

typed_writes! {
    /// Only records an event (e.g. a refused request).
    fn record(event: Draft) {
        Command::Record(event)
    }
}
