//! Signing key rings: the recorded steps of each key's lifecycle (created,
//! activated, retired, removed) and the one [`JOB_ROTATE_SIGNING_KEYS`] job
//! per tenant that records them on time. What to record is decided by
//! `idv_core::keyring` from the rows as they are inside the transaction, so
//! two nodes (or a job and an administrator) racing on one ring cannot both
//! publish a next key: PostgreSQL batches hold the chain-head lock.

use idv_core::audit::{Action, TargetType};
use idv_core::keyring::{self, Change, KeyPolicy, Manual, SigningKey};
use idv_core::{Clock, Timestamp};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::row::{self, to_json};
use crate::{Store, StoreError};

pub(crate) const SIGNING_KEY_COLS: &str =
    "id, tenant_id, alg, public_jwk, sealed_private, created_at, activates_at, retired_at, publish_until, removed_at";

pub(crate) fn signing_key(row: &AnyRow) -> Result<SigningKey, StoreError> {
    Ok(SigningKey {
        kid: row.try_get("id")?,
        tenant_id: row::uuid(row, "tenant_id")?,
        alg: row.try_get("alg")?,
        public_jwk: row::json(row, "public_jwk")?,
        sealed_private: row.try_get("sealed_private")?,
        created_at: row::ts(row, "created_at")?,
        activates_at: row::ts(row, "activates_at")?,
        retired_at: row::opt_ts(row, "retired_at")?,
        publish_until: row::opt_ts(row, "publish_until")?,
        removed_at: row::opt_ts(row, "removed_at")?,
    })
}

/// Job kind: record a tenant's due key transitions and publish its next
/// key when rotation is due (one job per tenant; its target is the tenant).
pub const JOB_ROTATE_SIGNING_KEYS: &str = "keys.rotate";

impl Store {
    /// A tenant's signing keys (removed ones included), oldest first.
    pub async fn signing_keys(&self, tenant_id: Uuid) -> Result<Vec<SigningKey>, StoreError> {
        load(&self.inner.read, tenant_id).await
    }
}

async fn load<'e, E>(ex: E, tenant_id: Uuid) -> Result<Vec<SigningKey>, StoreError>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!("SELECT {SIGNING_KEY_COLS} FROM signing_keys WHERE tenant_id = $1 ORDER BY created_at, id");
    let rows = sqlx::query(&sql).bind(tenant_id.to_string()).fetch_all(ex).await?;
    rows.iter().map(signing_key).collect()
}

/// What moves a ring, for the audit trail.
#[derive(Clone, Debug)]
pub struct KeyRequest {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The server's rotation settings.
    pub policy: KeyPolicy,
    /// A manual rotation, or `None` to do what is due.
    pub manual: Option<Manual>,
    /// A fresh key, used if one is to be made.
    pub candidate: SigningKey,
    /// Why (`first_use`, `schedule`, `manual`, `compromise`), and an
    /// administrator's reason, for the events.
    pub cause: &'static str,
    /// The administrator's reason, if any.
    pub reason: Option<String>,
}

/// Records what is due (or a manual rotation) on a tenant's ring, audits
/// each step and reschedules the tenant's job. Returns the keys after.
pub(crate) async fn advance(
    conn: &mut AnyConnection,
    req: KeyRequest,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut keys = load(&mut *conn, req.tenant_id).await?;
    if req.candidate.tenant_id != req.tenant_id {
        return Err(StoreError::Corrupt("a signing key made for another tenant".into()));
    }
    let changes = match req.manual {
        None => keyring::advance(&keys, now, &req.policy, req.candidate),
        Some(m) => keyring::rotate(&keys, now, &req.policy, m, req.candidate)
            .map_err(|e| StoreError::Conflict(e.to_string()))?,
    };
    let mut drafts = Vec::with_capacity(changes.len());
    for c in &changes {
        drafts.push(record(conn, req.tenant_id, c, req.cause, req.reason.as_deref(), ctx).await?);
    }
    keyring::apply(&mut keys, &changes);
    schedule(conn, req.tenant_id, keyring::next_run(&keys, now, &req.policy), clock).await?;
    Ok((Applied::SigningKeys(keys), drafts))
}

/// Persists one change; returns its event. No private material is ever in
/// an event.
async fn record(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    change: &Change,
    cause: &str,
    reason: Option<&str>,
    ctx: &Context,
) -> Result<idv_core::audit::Draft, StoreError> {
    let event = |action: Action, kid: &str, details: serde_json::Value| {
        with_details(
            draft(ctx, tenant_id, action, TargetType::SigningKey, kid.to_owned()),
            details,
        )
    };
    Ok(match change {
        Change::Create(k) => {
            sqlx::query(
                "INSERT INTO signing_keys (id, tenant_id, alg, public_jwk, sealed_private, created_at, activates_at, \
                 retired_at, publish_until, removed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL, NULL)",
            )
            .bind(k.kid.clone())
            .bind(k.tenant_id.to_string())
            .bind(k.alg.clone())
            .bind(to_json(&k.public_jwk))
            .bind(k.sealed_private.clone())
            .bind(k.created_at.as_micros())
            .bind(k.activates_at.as_micros())
            .execute(&mut *conn)
            .await?;
            event(
                Action::SigningKeyCreate,
                &k.kid,
                json!({
                    "alg": k.alg, "activates_at": k.activates_at.to_rfc3339(), "cause": cause, "reason": reason,
                }),
            )
        }
        Change::Activate { kid, at, predecessor } => event(
            Action::SigningKeyActivate,
            kid,
            json!({ "activated_at": at.to_rfc3339(), "predecessor": predecessor, "cause": cause }),
        ),
        Change::Retire {
            kid,
            retired_at,
            publish_until,
        } => {
            sqlx::query("UPDATE signing_keys SET retired_at = $1, publish_until = $2 WHERE tenant_id = $3 AND id = $4")
                .bind(retired_at.as_micros())
                .bind(publish_until.as_micros())
                .bind(tenant_id.to_string())
                .bind(kid.clone())
                .execute(&mut *conn)
                .await?;
            event(
                Action::SigningKeyRetire,
                kid,
                json!({
                    "retired_at": retired_at.to_rfc3339(), "publish_until": publish_until.to_rfc3339(),
                    "cause": cause, "reason": reason,
                }),
            )
        }
        Change::Remove { kid, at, revoked } => {
            // The row stays for audit (which key signed what, and when); the
            // private half is erased, so the key can never sign again.
            sqlx::query(
                "UPDATE signing_keys SET removed_at = $1, sealed_private = $2 WHERE tenant_id = $3 AND id = $4",
            )
            .bind(at.as_micros())
            .bind(Vec::<u8>::new())
            .bind(tenant_id.to_string())
            .bind(kid.clone())
            .execute(&mut *conn)
            .await?;
            event(
                Action::SigningKeyRemove,
                kid,
                json!({ "removed_at": at.to_rfc3339(), "revoked": revoked, "cause": cause, "reason": reason }),
            )
        }
    })
}

/// Replaces the tenant's job with one due at `run_at` (none: no job).
async fn schedule(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    run_at: Option<Timestamp>,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM jobs WHERE kind = $1 AND target_id = $2")
        .bind(JOB_ROTATE_SIGNING_KEYS)
        .bind(tenant_id.to_string())
        .execute(&mut *conn)
        .await?;
    if let Some(at) = run_at {
        sqlx::query("INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(clock.new_id().to_string())
            .bind(tenant_id.to_string())
            .bind(JOB_ROTATE_SIGNING_KEYS)
            .bind(tenant_id.to_string())
            .bind(at.as_micros())
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// At start: every tenant with signing keys gets its job, due now, so each
/// ring is looked at under the settings this node started with (keys made
/// before rotation existed, or a changed rotation period). Bookkeeping, no
/// event.
pub(crate) async fn schedule_all(
    conn: &mut AnyConnection,
    now: Timestamp,
    clock: &dyn Clock,
) -> Result<Effect, StoreError> {
    let tenants: Vec<(String,)> = sqlx::query_as("SELECT DISTINCT tenant_id FROM signing_keys")
        .fetch_all(&mut *conn)
        .await?;
    for (t,) in &tenants {
        let id = Uuid::parse_str(t).map_err(|e| StoreError::Corrupt(format!("signing key tenant: {e}")))?;
        schedule(conn, id, Some(now), clock).await?;
    }
    Ok((Applied::Count(tenants.len()), vec![]))
}

typed_writes! {
    /// Records what is due on a tenant's signing key ring (or a manual
    /// rotation); answers the ring after the change.
    fn advance_signing_keys(request: KeyRequest) -> Vec<SigningKey> {
        Command::SigningKeys(Box::new(request)) => Applied::SigningKeys(keys) => keys
    }

    /// At start: a key job due now for every tenant with signing keys.
    fn schedule_key_rotations() {
        Command::ScheduleKeyRotations
    }
}
