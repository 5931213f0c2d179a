//! Webhook subscriptions and their deliveries.
//!
//! A subscription is a cursor over the audit chain plus a filter. The
//! dispatcher ([`dispatch`]) runs in the writer's transaction, where the
//! chain cannot grow under it (one writer on SQLite; the chain-head lock on
//! PostgreSQL), so every event up to the head it reads is committed and
//! final: it turns the matching events after each cursor into deliveries,
//! each with a [`JOB_DELIVER_WEBHOOK`] job, and moves the cursor, in one
//! commit. Nothing is lost and nothing is sent twice by the dispatcher; the
//! audit writer's own path does no webhook work at all.

use idv_core::Clock;
use idv_core::Timestamp;
use idv_core::audit::{Action, Draft, Outcome, TargetType};
use idv_core::webhook::{self, AttemptResult, Delivery, DeliveryStatus, Filter, Next, Status, Webhook};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{self, EVENT_COLS, draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::jobs::Job;
use crate::row;
use crate::{Store, StoreError};

/// Job kind: attempt one delivery (`target_id` is the delivery id).
pub const JOB_DELIVER_WEBHOOK: &str = "webhook.deliver";
/// Chain positions one dispatch reads per subscription (the chain is
/// dense, so this bounds the work of one step however busy the log is).
pub const DISPATCH_WINDOW: i64 = 2_000;
/// Subscriptions one dispatch step serves, furthest behind first: a step
/// holds the chain head's lock, so it must stay short however many
/// subscriptions the tenants have (the rest are served by the next steps).
pub const DISPATCH_SUBSCRIPTIONS: i64 = 50;
/// How long settled (delivered or failed) deliveries stay in the log; the
/// events themselves stay in the audit chain.
pub const DELIVERY_RETENTION_SECS: i64 = 30 * 86_400;
/// Deliveries one prune step deletes at most.
const PRUNE_BATCH: i64 = 10_000;

const COLS: &str = "id, tenant_id, url, events, description, status, disabled_reason, disabled_at, \
     consecutive_failures, failing_since, last_success_at, created_at, created_by, updated_at";
const DELIVERY_COLS: &str = "id, tenant_id, webhook_id, event_type, event_id, payload, status, attempts, \
     next_attempt_at, created_at, last_attempt_at, last_status_code, last_error, last_duration_ms, delivered_at";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn decode(r: &AnyRow) -> Result<Webhook, StoreError> {
    let events: Vec<String> = row::json(r, "events")?;
    let status: String = r.try_get("status")?;
    Ok(Webhook {
        id: row::uuid(r, "id")?,
        tenant_id: row::uuid(r, "tenant_id")?,
        url: r.try_get("url")?,
        events: Filter::parse(&events).map_err(|e| corrupt("events", e))?,
        description: r.try_get("description")?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        disabled_reason: r.try_get("disabled_reason")?,
        disabled_at: row::opt_ts(r, "disabled_at")?,
        consecutive_failures: r.try_get("consecutive_failures")?,
        failing_since: row::opt_ts(r, "failing_since")?,
        last_success_at: row::opt_ts(r, "last_success_at")?,
        created_at: row::ts(r, "created_at")?,
        created_by: r.try_get("created_by")?,
        updated_at: row::ts(r, "updated_at")?,
    })
}

fn delivery(r: &AnyRow) -> Result<Delivery, StoreError> {
    let status: String = r.try_get("status")?;
    let event_id: Option<String> = r.try_get("event_id")?;
    Ok(Delivery {
        id: row::uuid(r, "id")?,
        tenant_id: row::uuid(r, "tenant_id")?,
        webhook_id: row::uuid(r, "webhook_id")?,
        event_type: r.try_get("event_type")?,
        event_id: event_id
            .map(|s| Uuid::parse_str(&s).map_err(|e| corrupt("event_id", e)))
            .transpose()?,
        payload: r.try_get("payload")?,
        status: DeliveryStatus::parse(&status).ok_or_else(|| corrupt("delivery status", &status))?,
        attempts: r.try_get("attempts")?,
        next_attempt_at: row::opt_ts(r, "next_attempt_at")?,
        created_at: row::ts(r, "created_at")?,
        last_attempt_at: row::opt_ts(r, "last_attempt_at")?,
        last_status_code: r.try_get("last_status_code")?,
        last_error: r.try_get("last_error")?,
        last_duration_ms: r.try_get("last_duration_ms")?,
        delivered_at: row::opt_ts(r, "delivered_at")?,
    })
}

/// A subscription's sealed signing secrets: the current one, and the
/// previous one with the end of its overlap (after a rotation).
#[derive(Clone, Debug)]
pub struct SealedSecrets {
    /// The current secret, sealed.
    pub current: Vec<u8>,
    /// The previous secret, sealed, and until when it still signs.
    pub previous: Option<(Vec<u8>, Timestamp)>,
}

/// Which deliveries to list.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    /// Only in this state.
    pub status: Option<DeliveryStatus>,
    /// Keyset: ids after this one (before it, newest first).
    pub after: Option<Uuid>,
    /// Newest first (the console's view) rather than oldest first.
    pub newest_first: bool,
    /// At most this many.
    pub limit: i64,
}

/// What an update changes (absent: unchanged).
#[derive(Clone, Debug, Default)]
pub struct WebhookChanges {
    /// A new endpoint (already checked).
    pub url: Option<String>,
    /// A new filter.
    pub events: Option<Filter>,
    /// A new description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// Enable or disable.
    pub enabled: Option<bool>,
}

impl Store {
    /// One subscription.
    pub async fn webhook(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Webhook>, StoreError> {
        let r = sqlx::query(&format!("SELECT {COLS} FROM webhooks WHERE tenant_id = $1 AND id = $2"))
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(decode).transpose()
    }

    /// A subscription's sealed secrets.
    pub async fn webhook_secrets(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<SealedSecrets>, StoreError> {
        let r = sqlx::query(
            "SELECT sealed_secret, sealed_previous_secret, previous_secret_until FROM webhooks \
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.inner.read)
        .await?;
        r.map(|r| {
            let previous: Option<Vec<u8>> = r.try_get("sealed_previous_secret")?;
            let until = row::opt_ts(&r, "previous_secret_until")?;
            Ok(SealedSecrets {
                current: r.try_get("sealed_secret")?,
                previous: previous.zip(until),
            })
        })
        .transpose()
    }

    /// A tenant's subscriptions in id order, after `after`.
    pub async fn webhooks(&self, tenant_id: Uuid, after: Option<Uuid>, limit: i64) -> Result<Vec<Webhook>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM webhooks WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ))
        .bind(tenant_id.to_string())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter().map(decode).collect()
    }

    /// One delivery of a tenant.
    pub async fn webhook_delivery(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let r = sqlx::query(&format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"
        ))
        .bind(tenant_id.to_string())
        .bind(id.to_string())
        .fetch_optional(&self.inner.read)
        .await?;
        r.as_ref().map(delivery).transpose()
    }

    /// A subscription's delivery log, oldest first (ids are time-ordered)
    /// or newest first.
    pub async fn webhook_deliveries(
        &self,
        tenant_id: Uuid,
        webhook_id: Uuid,
        f: &DeliveryFilter,
    ) -> Result<Vec<Delivery>, StoreError> {
        let status = if f.status.is_some() { " AND status = $5" } else { "" };
        let (cmp, order, start) = if f.newest_first {
            // Past any id: ids are hex and dashes.
            ("<", "id DESC", "~")
        } else {
            (">", "id", "")
        };
        let sql = format!(
            "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2 \
             AND id {cmp} $3{status} ORDER BY {order} LIMIT $4"
        );
        let mut q = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(webhook_id.to_string())
            .bind(f.after.map_or_else(|| start.to_owned(), |a| a.to_string()))
            .bind(f.limit.clamp(1, 10_000));
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        let rows = q.fetch_all(&self.inner.read).await?;
        rows.iter().map(delivery).collect()
    }

    /// Whether an enabled subscription is behind the chain head: a cheap
    /// read that lets an idle node skip the dispatching write.
    pub async fn webhooks_behind(&self) -> Result<bool, StoreError> {
        let r = sqlx::query(
            "SELECT COUNT(*) AS n FROM (SELECT 1 FROM webhooks WHERE status = 'enabled' AND cursor_seq < \
             (SELECT COALESCE(MAX(seq), 0) FROM audit_events) LIMIT 1) AS behind",
        )
        .fetch_one(&self.inner.read)
        .await?;
        Ok(r.try_get::<i64, _>("n")? > 0)
    }
}

async fn head_seq(conn: &mut AnyConnection) -> Result<i64, StoreError> {
    let r = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM audit_events")
        .fetch_one(&mut *conn)
        .await?;
    Ok(r.try_get("n")?)
}

async fn load(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Webhook, StoreError> {
    crate::row::load_one(conn, ("webhooks", COLS, "webhook"), tenant_id, id, decode).await
}

fn webhook_draft(ctx: &Context, w: &Webhook, action: Action) -> Draft {
    // The URL's path and query can hold the receiver's own tokens: only its
    // origin is on the record. The secret never is.
    with_details(
        draft(ctx, w.tenant_id, action, TargetType::Webhook, w.id.to_string()),
        json!({ "url_origin": webhook::url_origin(&w.url), "events": w.events.to_strings(),
                "description": w.description, "status": w.status.as_str() }),
    )
}

async fn insert_delivery(conn: &mut AnyConnection, d: &Delivery, clock: &dyn Clock) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO webhook_deliveries ({DELIVERY_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
         NULL, NULL, NULL, NULL, NULL)"
    ))
    .bind(d.id.to_string())
    .bind(d.tenant_id.to_string())
    .bind(d.webhook_id.to_string())
    .bind(d.event_type.clone())
    .bind(d.event_id.map(|e| e.to_string()))
    .bind(d.payload.clone())
    .bind(d.status.as_str())
    .bind(d.attempts)
    .bind(d.next_attempt_at.map(Timestamp::as_micros))
    .bind(d.created_at.as_micros())
    .execute(&mut *conn)
    .await?;
    schedule(conn, d.tenant_id, d.id, d.created_at, clock).await
}

async fn schedule(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    delivery_id: Uuid,
    run_at: Timestamp,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(clock.new_id().to_string())
        .bind(tenant_id.to_string())
        .bind(JOB_DELIVER_WEBHOOK)
        .bind(delivery_id.to_string())
        .bind(run_at.as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Drops the jobs of a subscription's pending deliveries (it was disabled
/// or deleted); the deliveries stay pending.
async fn unschedule_all(conn: &mut AnyConnection, webhook_id: Uuid) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM jobs WHERE kind = $1 AND target_id IN \
         (SELECT id FROM webhook_deliveries WHERE webhook_id = $2 AND status = 'pending')",
    )
    .bind(JOB_DELIVER_WEBHOOK)
    .bind(webhook_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores a new subscription; its cursor starts at the chain head (it
/// receives what happens from now on).
pub(crate) async fn create(
    conn: &mut AnyConnection,
    w: Webhook,
    sealed_secret: Vec<u8>,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let cursor = head_seq(conn).await?;
    sqlx::query(
        "INSERT INTO webhooks (id, tenant_id, url, events, description, status, sealed_secret, cursor_seq, \
         consecutive_failures, created_at, created_by, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10, $11)",
    )
    .bind(w.id.to_string())
    .bind(w.tenant_id.to_string())
    .bind(w.url.clone())
    .bind(row::to_json(&w.events.to_strings()))
    .bind(w.description.clone())
    .bind(w.status.as_str())
    .bind(sealed_secret)
    .bind(cursor)
    .bind(w.created_at.as_micros())
    .bind(w.created_by.clone())
    .bind(w.updated_at.as_micros())
    .execute(&mut *conn)
    .await?;
    let d = webhook_draft(ctx, &w, Action::WebhookCreate);
    Ok((Applied::Webhook(Box::new(w)), vec![d]))
}

/// Changes a subscription. Enabling one that was disabled resumes it where
/// it stopped: its pending deliveries are due at once and the events that
/// came meanwhile (still behind its cursor) follow.
pub(crate) async fn update(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    changes: WebhookChanges,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut w = load(conn, tenant_id, id).await?;
    let mut changed = Vec::new();
    if let Some(url) = changes.url {
        w.url = url;
        changed.push("url");
    }
    if let Some(events) = changes.events {
        w.events = events;
        changed.push("events");
    }
    if let Some(description) = changes.description {
        w.description = description;
        changed.push("description");
    }
    match (changes.enabled, w.status) {
        (Some(true), Status::Disabled) => {
            w.status = Status::Enabled;
            w.disabled_reason = None;
            w.disabled_at = None;
            w.consecutive_failures = 0;
            w.failing_since = None;
            changed.push("status");
            let pending = sqlx::query("SELECT id FROM webhook_deliveries WHERE webhook_id = $1 AND status = 'pending'")
                .bind(id.to_string())
                .fetch_all(&mut *conn)
                .await?;
            unschedule_all(conn, id).await?;
            for r in &pending {
                schedule(conn, tenant_id, row::uuid(r, "id")?, now, clock).await?;
            }
        }
        (Some(false), Status::Enabled) => {
            w.status = Status::Disabled;
            w.disabled_reason = Some(format!("disabled by {}", ctx.actor.reference()));
            w.disabled_at = Some(now);
            changed.push("status");
            unschedule_all(conn, id).await?;
        }
        _ => {}
    }
    w.updated_at = now;
    save(conn, &w).await?;
    let d = with_details(
        webhook_draft(ctx, &w, Action::WebhookUpdate),
        json!({ "changed": changed }),
    );
    Ok((Applied::Webhook(Box::new(w)), vec![d]))
}

async fn save(conn: &mut AnyConnection, w: &Webhook) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE webhooks SET url = $1, events = $2, description = $3, status = $4, disabled_reason = $5, \
         disabled_at = $6, consecutive_failures = $7, failing_since = $8, last_success_at = $9, updated_at = $10 \
         WHERE id = $11",
    )
    .bind(w.url.clone())
    .bind(row::to_json(&w.events.to_strings()))
    .bind(w.description.clone())
    .bind(w.status.as_str())
    .bind(w.disabled_reason.clone())
    .bind(w.disabled_at.map(Timestamp::as_micros))
    .bind(w.consecutive_failures)
    .bind(w.failing_since.map(Timestamp::as_micros))
    .bind(w.last_success_at.map(Timestamp::as_micros))
    .bind(w.updated_at.as_micros())
    .bind(w.id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Removes a subscription with its delivery log and pending jobs.
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let w = load(conn, tenant_id, id).await?;
    unschedule_all(conn, id).await?;
    sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM webhooks WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let d = webhook_draft(ctx, &w, Action::WebhookDelete);
    Ok((Applied::Webhook(Box::new(w)), vec![d]))
}

/// Replaces the signing secret; the old one keeps signing (as a second
/// signature) until `previous_until`. Refused while an earlier rotation's
/// overlap runs ([`webhook::may_rotate`]), and when another rotation
/// replaced `replacing` first.
pub(crate) async fn rotate_secret(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    secrets: SealedSecrets,
    replacing: &[u8],
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut w = load(conn, tenant_id, id).await?;
    w.updated_at = now;
    // Read in the writer's transaction: a rotation committed since the
    // caller read the secret is seen here.
    let running: Option<i64> = sqlx::query_scalar("SELECT previous_secret_until FROM webhooks WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut *conn)
        .await?;
    if let Err(until) = webhook::may_rotate(running.map(Timestamp::from_micros), now) {
        return Err(StoreError::Conflict(format!(
            "the secret was rotated recently and the previous one co-signs until {}; rotate again after that \
             (the secret that rotation returned signs every delivery)",
            until.to_rfc3339()
        )));
    }
    let (previous, until) = secrets.previous.unzip();
    // Compare-and-swap on the secret the caller replaced, and on the overlap
    // having ended (another node's writer may have rotated meanwhile).
    let done = sqlx::query(
        "UPDATE webhooks SET sealed_secret = $1, sealed_previous_secret = $2, previous_secret_until = $3, \
         updated_at = $4 WHERE id = $5 AND sealed_secret = $6 \
         AND (previous_secret_until IS NULL OR previous_secret_until <= $4)",
    )
    .bind(secrets.current)
    .bind(previous)
    .bind(until.map(Timestamp::as_micros))
    .bind(now.as_micros())
    .bind(id.to_string())
    .bind(replacing.to_vec())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::Conflict(
            "the secret was rotated by another request meanwhile; rotate again if you need a newer one".into(),
        ));
    }
    let d = with_details(
        webhook_draft(ctx, &w, Action::WebhookRotateSecret),
        json!({ "previous_secret_until": until.map(Timestamp::to_rfc3339) }),
    );
    Ok((Applied::Webhook(Box::new(w)), vec![d]))
}

/// Queues a test delivery to one subscription (enabled or not: a test is
/// how one checks an endpoint before enabling it again).
pub(crate) async fn test(
    conn: &mut AnyConnection,
    d: Delivery,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let details = json!({ "delivery_id": d.id });
    queue(conn, d, Action::WebhookTest, details, clock, ctx).await
}

/// Queues delivery `d` again as a new delivery of the same event; `of`
/// is the delivery sent before.
pub(crate) async fn redeliver(
    conn: &mut AnyConnection,
    d: Delivery,
    of: Uuid,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let details = json!({ "delivery_id": d.id, "of": of, "event_type": d.event_type, "event_id": d.event_id });
    queue(conn, d, Action::WebhookRedeliver, details, clock, ctx).await
}

/// Inserts a delivery (its job due at once) to an existing subscription,
/// with one event `action` carrying `details`.
async fn queue(
    conn: &mut AnyConnection,
    d: Delivery,
    action: Action,
    details: serde_json::Value,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let w = load(conn, d.tenant_id, d.webhook_id).await?;
    insert_delivery(conn, &d, clock).await?;
    let ev = with_details(webhook_draft(ctx, &w, action), details);
    Ok((Applied::Delivery(Box::new(d)), vec![ev]))
}

/// Turns the events after each enabled subscription's cursor into
/// deliveries, at most [`DISPATCH_WINDOW`] chain positions per subscription;
/// returns how many deliveries it made. Bookkeeping: no audit event (the
/// deliveries' outcomes are audited).
pub(crate) async fn dispatch(
    conn: &mut AnyConnection,
    now: Timestamp,
    clock: &dyn Clock,
) -> Result<Effect, StoreError> {
    // INVARIANT: inside the writer's transaction no event can commit at or
    // below this head after it is read, so a cursor never skips one.
    let head = head_seq(conn).await?;
    let rows = sqlx::query(
        "SELECT id, tenant_id, events, cursor_seq FROM webhooks WHERE status = 'enabled' AND cursor_seq < $1 \
         ORDER BY cursor_seq, id LIMIT $2",
    )
    .bind(head)
    .bind(DISPATCH_SUBSCRIPTIONS)
    .fetch_all(&mut *conn)
    .await?;
    let mut made = 0;
    for r in &rows {
        let id = row::uuid(r, "id")?;
        let tenant_id = row::uuid(r, "tenant_id")?;
        // A subscription whose stored filter no longer parses is skipped
        // (and said so), not allowed to stop every tenant's deliveries.
        let filter = match row::json::<Vec<String>>(r, "events")
            .and_then(|p| Filter::parse(&p).map_err(|e| corrupt("events", e)))
        {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(webhook = %id, error = %e, "a webhook subscription's filter is unreadable; skipped");
                continue;
            }
        };
        let cursor: i64 = r.try_get("cursor_seq")?;
        let upto = head.min(cursor.saturating_add(DISPATCH_WINDOW));
        let actions = filter.actions();
        if !actions.is_empty() {
            let sql = format!(
                "SELECT {EVENT_COLS} FROM audit_events WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 \
                 AND outcome = 'success' AND action IN {} ORDER BY seq",
                numbered_list(actions.len(), 4)
            );
            let mut q = sqlx::query(&sql).bind(tenant_id.to_string()).bind(cursor).bind(upto);
            for a in &actions {
                q = q.bind(*a);
            }
            for er in q.fetch_all(&mut *conn).await? {
                let e = audit::event(&er)?;
                // A subscription never hears of its own disabling.
                if e.action == Action::WebhookDisabled.as_str() && e.target_id == id.to_string() {
                    continue;
                }
                let Some(t) = webhook::event_type(&e.action).filter(|t| filter.matches(t)) else {
                    continue;
                };
                let d = Delivery::pending(
                    (clock.new_id(), tenant_id, id),
                    t,
                    Some(e.id),
                    webhook::payload(t, &e),
                    now,
                );
                insert_delivery(conn, &d, clock).await?;
                made += 1;
            }
        }
        sqlx::query("UPDATE webhooks SET cursor_seq = $1 WHERE id = $2 AND cursor_seq = $3")
            .bind(upto)
            .bind(id.to_string())
            .bind(cursor)
            .execute(&mut *conn)
            .await?;
    }
    Ok((Applied::Count(made), vec![]))
}

/// Deletes up to [`PRUNE_BATCH`] settled deliveries older than
/// [`DELIVERY_RETENTION_SECS`], recording per tenant how many went.
pub(crate) async fn prune(conn: &mut AnyConnection, now: Timestamp, ctx: &Context) -> Result<Effect, StoreError> {
    let before = now.plus_secs(-DELIVERY_RETENTION_SECS).as_micros();
    let tenants: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT tenant_id FROM webhook_deliveries WHERE created_at < $1 AND status <> 'pending'",
    )
    .bind(before)
    .fetch_all(&mut *conn)
    .await?;
    let (mut total, mut drafts) = (0, Vec::new());
    for t in tenants {
        let deleted = sqlx::query(
            "DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM webhook_deliveries \
             WHERE tenant_id = $1 AND created_at < $2 AND status <> 'pending' LIMIT $3)",
        )
        .bind(t.clone())
        .bind(before)
        .bind(PRUNE_BATCH)
        .execute(&mut *conn)
        .await?
        .rows_affected();
        let tenant_id = Uuid::parse_str(&t).map_err(|e| corrupt("tenant_id", e))?;
        drafts.push(with_details(
            draft(
                ctx,
                tenant_id,
                Action::WebhookDeliveriesPrune,
                TargetType::WebhookDeliveries,
                "retention".into(),
            ),
            json!({ "deleted": deleted, "created_before": Timestamp::from_micros(before).to_rfc3339() }),
        ));
        total += usize::try_from(deleted).unwrap_or(usize::MAX);
    }
    Ok((Applied::Count(total), drafts))
}

/// `($first, …)`: an `IN` list of numbered markers (the statement mixes it
/// with `$1`…`$3`, so SQLite's anonymous `?` markers will not do).
fn numbered_list(n: usize, first: usize) -> String {
    let items: Vec<String> = (first..first + n).map(|i| format!("${i}")).collect();
    format!("({})", items.join(","))
}

/// Records one attempt of the delivery a [`JOB_DELIVER_WEBHOOK`] job runs:
/// delivered (job finished), retried later (job moved), or given up; a
/// subscription whose endpoint answered 410, or that delivered nothing
/// through a whole retry schedule, is disabled and a `webhook.disabled`
/// event says so. All in one commit with the events.
pub(crate) async fn record_attempt(
    conn: &mut AnyConnection,
    job: Job,
    result: AttemptResult,
    jitter: f64,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let id = Uuid::parse_str(&job.target_id).map_err(|e| corrupt("job target", e))?;
    // Fencing, with the claim count as the token: a worker whose lease ran
    // out while it was sending must not record over the one that claimed the
    // job after it (that one records its own attempt), nor finish a job
    // another claim holds. Its request may have reached the endpoint anyway:
    // deliveries are at least once, and receivers deduplicate on
    // `webhook-id`.
    let claims: Option<i64> = sqlx::query_scalar("SELECT attempts FROM jobs WHERE id = $1")
        .bind(job.id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if claims != Some(job.attempts) {
        tracing::info!(job = %job.id, delivery = %id, "a webhook attempt came back after its claim was taken over; not recorded");
        return Ok((Applied::Done, vec![]));
    }
    let finish = sqlx::query("DELETE FROM jobs WHERE id = $1").bind(job.id.to_string());
    let r = sqlx::query(&format!(
        "SELECT {DELIVERY_COLS} FROM webhook_deliveries WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(job.tenant_id.to_string())
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut d) = r.as_ref().map(delivery).transpose()? else {
        finish.execute(&mut *conn).await?;
        return Ok((Applied::Done, vec![]));
    };
    if d.status != DeliveryStatus::Pending {
        finish.execute(&mut *conn).await?;
        return Ok((Applied::Delivery(Box::new(d)), vec![]));
    }
    let mut w = load(conn, d.tenant_id, d.webhook_id).await?;
    d.attempts += 1;
    d.last_attempt_at = Some(result.at);
    d.last_status_code = result.status_code.map(i64::from);
    d.last_error = result.error.clone();
    d.last_duration_ms = Some(result.duration_ms);
    let step = webhook::next(d.attempts, &result, jitter);
    if !matches!(step, Next::Retry(_)) {
        finish.execute(&mut *conn).await?;
    }
    let mut drafts = Vec::new();
    let details = |d: &Delivery| {
        json!({ "webhook_id": d.webhook_id, "event_type": d.event_type, "event_id": d.event_id,
                "attempts": d.attempts, "status_code": d.last_status_code, "error": d.last_error,
                "duration_ms": d.last_duration_ms })
    };
    match step {
        Next::Done => {
            d.status = DeliveryStatus::Delivered;
            d.delivered_at = Some(now);
            d.next_attempt_at = None;
            w.consecutive_failures = 0;
            w.failing_since = None;
            w.last_success_at = Some(now);
            drafts.push(with_details(
                draft(
                    ctx,
                    d.tenant_id,
                    Action::WebhookDeliverySucceeded,
                    TargetType::WebhookDelivery,
                    d.id.to_string(),
                ),
                details(&d),
            ));
        }
        Next::Retry(secs) => {
            // From the attempt, however long it took to be recorded.
            let at = result.at.plus_secs(secs).max(now);
            d.next_attempt_at = Some(at);
            w.consecutive_failures += 1;
            w.failing_since = w.failing_since.or(Some(result.at));
            sqlx::query("UPDATE jobs SET run_at = $1, locked_until = NULL, last_error = $2 WHERE id = $3")
                .bind(at.as_micros())
                .bind(d.last_error.clone())
                .bind(job.id.to_string())
                .execute(&mut *conn)
                .await?;
            let mut ev = with_details(
                draft(
                    ctx,
                    d.tenant_id,
                    Action::WebhookDeliveryFailed,
                    TargetType::WebhookDelivery,
                    d.id.to_string(),
                ),
                details(&d),
            );
            ev = with_details(ev, json!({ "next_attempt_at": at.to_rfc3339() }));
            ev.outcome = Outcome::Failure;
            drafts.push(ev);
        }
        Next::GiveUp | Next::Gone => {
            d.status = DeliveryStatus::Failed;
            d.next_attempt_at = None;
            w.consecutive_failures += 1;
            w.failing_since = w.failing_since.or(Some(result.at));
            let mut ev = with_details(
                draft(
                    ctx,
                    d.tenant_id,
                    Action::WebhookDeliveryFailed,
                    TargetType::WebhookDelivery,
                    d.id.to_string(),
                ),
                details(&d),
            );
            ev = with_details(ev, json!({ "gave_up": true }));
            ev.outcome = Outcome::Failure;
            drafts.push(ev);
            let reason = match step {
                Next::Gone => Some("the endpoint answered 410 Gone".to_owned()),
                _ if webhook::disables(w.last_success_at, d.created_at) => Some(format!(
                    "nothing was delivered for {} attempts over the whole retry schedule",
                    webhook::MAX_ATTEMPTS
                )),
                _ => None,
            };
            if let (Some(reason), Status::Enabled) = (reason, w.status) {
                w.status = Status::Disabled;
                w.disabled_reason = Some(reason.clone());
                w.disabled_at = Some(now);
                unschedule_all(conn, w.id).await?;
                let system = Context::system("webhooks");
                let mut ev = with_details(
                    webhook_draft(&system, &w, Action::WebhookDisabled),
                    json!({ "consecutive_failures": w.consecutive_failures,
                            "failing_since": w.failing_since.map(Timestamp::to_rfc3339),
                            "last_success_at": w.last_success_at.map(Timestamp::to_rfc3339) }),
                );
                ev.reason = Some(reason);
                drafts.push(ev);
            }
        }
    }
    sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_attempt_at = $4, \
         last_status_code = $5, last_error = $6, last_duration_ms = $7, delivered_at = $8 WHERE id = $9",
    )
    .bind(d.status.as_str())
    .bind(d.attempts)
    .bind(d.next_attempt_at.map(Timestamp::as_micros))
    .bind(d.last_attempt_at.map(Timestamp::as_micros))
    .bind(d.last_status_code)
    .bind(d.last_error.clone())
    .bind(d.last_duration_ms)
    .bind(d.delivered_at.map(Timestamp::as_micros))
    .bind(d.id.to_string())
    .execute(&mut *conn)
    .await?;
    save(conn, &w).await?;
    Ok((Applied::Delivery(Box::new(d)), drafts))
}

typed_writes! {
    /// Subscribes an endpoint, its signing secret sealed.
    fn create_webhook(webhook: Webhook, sealed_secret: Vec<u8>) -> Webhook {
        Command::CreateWebhook { webhook: Box::new(webhook), sealed_secret } => Applied::Webhook(w) => *w
    }

    /// Changes a subscription.
    fn update_webhook(tenant_id: Uuid, id: Uuid, changes: WebhookChanges) -> Webhook {
        Command::UpdateWebhook { tenant_id, id, changes } => Applied::Webhook(w) => *w
    }

    /// Removes a subscription and its delivery log.
    fn delete_webhook(tenant_id: Uuid, id: Uuid) {
        Command::DeleteWebhook { tenant_id, id }
    }

    /// Replaces a subscription's signing secret, if it is still `replacing`.
    fn rotate_webhook_secret(tenant_id: Uuid, id: Uuid, secrets: SealedSecrets, replacing: Vec<u8>) -> Webhook {
        Command::RotateWebhookSecret { tenant_id, id, secrets, replacing } => Applied::Webhook(w) => *w
    }

    /// Queues a test event to one subscription.
    fn test_webhook(delivery: Delivery) -> Delivery {
        Command::TestWebhook(Box::new(delivery)) => Applied::Delivery(d) => *d
    }

    /// Queues a delivery's event again, as a new delivery (`of`: the one
    /// sent before).
    fn redeliver_webhook(delivery: Delivery, of: Uuid) -> Delivery {
        Command::RedeliverWebhook { delivery: Box::new(delivery), of } => Applied::Delivery(d) => *d
    }

    /// Turns the audit events after each subscription's cursor into
    /// deliveries; answers how many.
    fn dispatch_webhooks() -> usize {
        Command::DispatchWebhooks => Applied::Count(n) => n
    }

    /// Deletes a bounded batch of settled deliveries past their retention;
    /// answers how many.
    fn prune_webhook_deliveries() -> usize {
        Command::PruneWebhookDeliveries => Applied::Count(n) => n
    }

    /// Records one attempt of a delivery job.
    fn record_webhook_attempt(job: Job, result: AttemptResult, jitter: f64) {
        Command::RecordWebhookAttempt { job, result, jitter }
    }
}
