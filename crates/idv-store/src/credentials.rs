//! Commands on credentials, signing keys and revoked tokens.

use idv_core::audit::{Action, Draft, TargetType};
use idv_core::credential::{Credential, Kind, Revocation, Rotation};
use idv_core::lifecycle::Status;
use idv_core::{Clock, Timestamp};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::agents::load_agent;
use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::jobs::Job;
use crate::rotation::{self, JOB_ROTATE_CREDENTIAL};
use crate::row::{self, load_one, to_json};
use crate::{Store, StoreError};

/// Job kind: revoke a rotated credential at the end of its overlap.
pub const JOB_RETIRE_CREDENTIAL: &str = "credential.retire";

pub(crate) const CREDENTIAL_COLS: &str = "id, tenant_id, agent_id, kind, hint, jwk, scopes, created_at, \
     created_by, expires_at, revoked_at, last_used_at, revoked_reason, predecessor_id, successor_id, \
     retire_on_use, CAST(CASE WHEN sealed_secret IS NULL THEN 0 ELSE 1 END AS BIGINT) AS awaiting_pickup";

pub(crate) fn credential(row: &AnyRow) -> Result<Credential, StoreError> {
    let kind: String = row.try_get("kind")?;
    let jwk: Option<String> = row.try_get("jwk")?;
    Ok(Credential {
        id: row::uuid(row, "id")?,
        tenant_id: row::uuid(row, "tenant_id")?,
        agent_id: row::uuid(row, "agent_id")?,
        kind: kind.parse::<Kind>().map_err(|e| row::corrupt("kind", e))?,
        hint: row.try_get("hint")?,
        jwk: jwk
            .map(|j| serde_json::from_str(&j).map_err(|e| row::corrupt("jwk", e)))
            .transpose()?,
        scopes: row::json(row, "scopes")?,
        created_at: row::ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row::opt_ts(row, "expires_at")?,
        revoked_at: row::opt_ts(row, "revoked_at")?,
        last_used_at: row::opt_ts(row, "last_used_at")?,
        revoked_reason: row.try_get("revoked_reason")?,
        predecessor_id: row::opt_uuid(row, "predecessor_id")?,
        successor_id: row::opt_uuid(row, "successor_id")?,
        retire_on_use: row.try_get::<i64, _>("retire_on_use")? != 0,
        awaiting_pickup: row.try_get::<i64, _>("awaiting_pickup")? != 0,
    })
}

pub(crate) async fn create(
    conn: &mut AnyConnection,
    c: Credential,
    secret_hash: Option<[u8; 32]>,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    insert(conn, &c, secret_hash, None, clock).await?;
    let d = created_event(ctx, &c);
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

fn created_event(ctx: &Context, c: &Credential) -> Draft {
    with_details(
        draft(
            ctx,
            c.tenant_id,
            Action::CredentialCreate,
            TargetType::Credential,
            c.id.to_string(),
        ),
        json!({
            "agent_id": c.agent_id, "kind": c.kind.as_str(), "hint": c.hint,
            "scopes": c.scopes, "expires_at": c.expires_at.map(Timestamp::to_rfc3339),
            "predecessor_id": c.predecessor_id,
        }),
    )
}

/// Inserts a credential whose agent must exist and not be retired, and
/// schedules its rotation if a policy covers it.
async fn insert(
    conn: &mut AnyConnection,
    c: &Credential,
    secret_hash: Option<[u8; 32]>,
    sealed_secret: Option<Vec<u8>>,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    let agent = load_agent(conn, c.tenant_id, c.agent_id).await?;
    if agent.status == Status::Retired {
        return Err(StoreError::Conflict(
            "the agent is retired; retired agents get no credentials".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO credentials (id, tenant_id, agent_id, kind, hint, secret_hash, jwk, scopes, created_at, \
         created_by, expires_at, revoked_at, last_used_at, predecessor_id, retire_on_use, sealed_secret) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12, $13, $14)",
    )
    .bind(c.id.to_string())
    .bind(c.tenant_id.to_string())
    .bind(c.agent_id.to_string())
    .bind(c.kind.as_str())
    .bind(c.hint.clone())
    .bind(secret_hash.map(|h| h.to_vec()))
    .bind(c.jwk.as_ref().map(to_json))
    .bind(to_json(&c.scopes))
    .bind(c.created_at.as_micros())
    .bind(c.created_by.clone())
    .bind(c.expires_at.map(Timestamp::as_micros))
    .bind(c.predecessor_id.map(|p| p.to_string()))
    .bind(i64::from(c.retire_on_use))
    .bind(sealed_secret)
    .execute(&mut *conn)
    .await?;
    rotation::schedule(conn, c, agent.class.as_deref(), clock).await
}

async fn load(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Credential, StoreError> {
    load_one(
        conn,
        ("credentials", CREDENTIAL_COLS, "credential"),
        tenant_id,
        id,
        credential,
    )
    .await
}

pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut c = load(conn, tenant_id, id).await?;
    if c.revoked_at.is_some() {
        return Err(StoreError::Conflict("the credential is already revoked".into()));
    }
    let d = mark_revoked(conn, &mut c, Revocation::Manual, None, now, ctx).await?;
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

/// Revokes `c` (which is not revoked yet) and drafts its event. A successor
/// waiting to retire it on first use no longer needs to.
async fn mark_revoked(
    conn: &mut AnyConnection,
    c: &mut Credential,
    why: Revocation,
    cause: Option<&str>,
    now: Timestamp,
    ctx: &Context,
) -> Result<Draft, StoreError> {
    sqlx::query("UPDATE credentials SET revoked_at = $1, revoked_reason = $2 WHERE id = $3")
        .bind(now.as_micros())
        .bind(why.as_str())
        .bind(c.id.to_string())
        .execute(&mut *conn)
        .await?;
    if let Some(s) = c.successor_id {
        sqlx::query("UPDATE credentials SET retire_on_use = 0 WHERE id = $1")
            .bind(s.to_string())
            .execute(&mut *conn)
            .await?;
    }
    rotation::unschedule(conn, c.id).await?;
    c.revoked_at = Some(now);
    c.revoked_reason = Some(why.as_str().to_owned());
    Ok(with_details(
        draft(
            ctx,
            c.tenant_id,
            Action::CredentialRevoke,
            TargetType::Credential,
            c.id.to_string(),
        ),
        json!({
            "agent_id": c.agent_id, "kind": c.kind.as_str(), "hint": c.hint,
            "reason": why.as_str(), "cause": cause, "successor_id": c.successor_id,
        }),
    ))
}

/// Rotates `successor.predecessor_id` to `successor`: the successor is
/// stored (with its secret's hash, and the secret itself sealed if the agent
/// is to collect it); the predecessor is revoked at once when the overlap is
/// zero, else it expires at the end of the overlap and a job revokes it
/// then. Refused if the predecessor is not usable or was already rotated.
#[expect(clippy::too_many_arguments, reason = "one command's fields")]
pub(crate) async fn rotate(
    conn: &mut AnyConnection,
    successor: Credential,
    secret_hash: Option<[u8; 32]>,
    sealed_secret: Option<Vec<u8>>,
    rotation: Rotation,
    why: Revocation,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let predecessor_id = successor
        .predecessor_id
        .ok_or_else(|| StoreError::Corrupt("a successor without a predecessor".into()))?;
    let mut old = load(conn, successor.tenant_id, predecessor_id).await?;
    if old.agent_id != successor.agent_id {
        return Err(StoreError::Corrupt("a successor for another agent".into()));
    }
    old.check_rotatable(now)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let mut s = successor;
    s.awaiting_pickup = sealed_secret.is_some();
    insert(conn, &s, secret_hash, sealed_secret, clock).await?;
    // Its successor carries the schedule on.
    rotation::unschedule(conn, old.id).await?;
    sqlx::query("UPDATE credentials SET successor_id = $1 WHERE id = $2")
        .bind(s.id.to_string())
        .bind(old.id.to_string())
        .execute(&mut *conn)
        .await?;
    old.successor_id = Some(s.id);
    let mut drafts = vec![created_event(ctx, &s)];
    // The overlap counts from the successor's creation, the instant the
    // rotation reports.
    let overlap_ends = s
        .created_at
        .plus_secs(i64::try_from(rotation.overlap_secs).unwrap_or(i64::MAX));
    drafts.push(with_details(
        draft(
            ctx,
            old.tenant_id,
            Action::CredentialRotate,
            TargetType::Credential,
            old.id.to_string(),
        ),
        json!({
            "agent_id": old.agent_id, "kind": old.kind.as_str(), "successor_id": s.id,
            "overlap_secs": rotation.overlap_secs, "retire": rotation.retire.as_str(),
            "reason": why.as_str(), "awaiting_pickup": s.awaiting_pickup,
            "predecessor_ends_at": overlap_ends.to_rfc3339(),
        }),
    ));
    if rotation.overlap_secs == 0 {
        drafts.push(mark_revoked(conn, &mut old, why, Some("rotated_without_overlap"), now, ctx).await?);
    } else {
        // The expiry makes it stop on time even if the job runs late; the
        // job records the revocation.
        let ends = old.expires_at.map_or(overlap_ends, |e| e.min(overlap_ends));
        sqlx::query("UPDATE credentials SET expires_at = $1 WHERE id = $2")
            .bind(ends.as_micros())
            .bind(old.id.to_string())
            .execute(&mut *conn)
            .await?;
        old.expires_at = Some(ends);
        sqlx::query("INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(clock.new_id().to_string())
            .bind(old.tenant_id.to_string())
            .bind(JOB_RETIRE_CREDENTIAL)
            .bind(old.id.to_string())
            .bind(ends.as_micros())
            .execute(&mut *conn)
            .await?;
    }
    Ok((Applied::Rotated(Box::new((old, s))), drafts))
}

/// The job at the end of a rotation's overlap: revokes the predecessor if
/// nothing did before.
pub(crate) async fn retire_job(
    conn: &mut AnyConnection,
    job: Job,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let id = crate::jobs::take_job(conn, &job).await?;
    let mut c = match load(conn, job.tenant_id, id).await {
        Ok(c) => c,
        Err(StoreError::NotFound { .. }) => return Ok((Applied::Done, vec![])),
        Err(e) => return Err(e),
    };
    if c.revoked_at.is_some() {
        return Ok((Applied::Credential(Box::new(c)), vec![]));
    }
    let d = mark_revoked(conn, &mut c, Revocation::Rotated, Some("overlap_ended"), now, ctx).await?;
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

/// A successor with `retire_on_use` authenticated: its predecessor is revoked
/// now (once; later uses find nothing to do).
pub(crate) async fn retire_predecessor(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    successor_id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let s = load(conn, tenant_id, successor_id).await?;
    let Some(p) = s.predecessor_id.filter(|_| s.retire_on_use) else {
        return Ok((Applied::Done, vec![]));
    };
    let mut old = load(conn, tenant_id, p).await?;
    if old.revoked_at.is_some() {
        return Ok((Applied::Done, vec![]));
    }
    let d = mark_revoked(conn, &mut old, Revocation::Rotated, Some("successor_used"), now, ctx).await?;
    Ok((Applied::Credential(Box::new(old)), vec![d]))
}

/// Hands the sealed secret of `presenting`'s successor to its agent, once:
/// the sealed copy is erased in the same commit.
pub(crate) async fn collect_successor(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    presenting: Uuid,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let c = load(conn, tenant_id, presenting).await?;
    let none = || StoreError::NotFound {
        what: "successor awaiting pick-up for credential",
        id: presenting.to_string(),
    };
    let successor_id = c.successor_id.ok_or_else(none)?;
    let row = sqlx::query("SELECT sealed_secret FROM credentials WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id.to_string())
        .bind(successor_id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    let sealed: Vec<u8> = match row {
        Some(r) => r.try_get::<Option<Vec<u8>>, _>("sealed_secret")?.ok_or_else(none)?,
        None => return Err(none()),
    };
    sqlx::query("UPDATE credentials SET sealed_secret = NULL WHERE id = $1")
        .bind(successor_id.to_string())
        .execute(&mut *conn)
        .await?;
    let mut s = load(conn, tenant_id, successor_id).await?;
    s.awaiting_pickup = false;
    let d = with_details(
        draft(
            ctx,
            tenant_id,
            Action::CredentialSuccessorCollect,
            TargetType::Credential,
            successor_id.to_string(),
        ),
        json!({ "agent_id": s.agent_id, "predecessor_id": presenting, "kind": s.kind.as_str() }),
    );
    Ok((
        Applied::Collected {
            credential: Box::new(s),
            sealed_secret: sealed,
        },
        vec![d],
    ))
}

/// A security event on an agent: each live credential with a successor in
/// `successors` is rotated to it with no overlap; every other live one is
/// revoked. One commit, one `agent.compromised` event besides the others.
#[expect(clippy::too_many_arguments, reason = "one command's fields")]
pub(crate) async fn compromise(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    agent_id: Uuid,
    reason: String,
    successors: Vec<(Credential, Option<[u8; 32]>)>,
    now: Timestamp,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    // Every access token issued until now is dead for good (the successors'
    // tokens, issued from now on, are not).
    let mut agent = load_agent(conn, tenant_id, agent_id).await?;
    let old_version = agent.version;
    agent.tokens_not_before = Some(now);
    agent.updated_at = now;
    agent.version += 1;
    crate::agents::save_agent(conn, &agent, old_version).await?;
    let mut drafts = Vec::new();
    let mut revoked = Vec::new();
    let mut issued = Vec::new();
    for (s, hash) in successors {
        if s.agent_id != agent_id {
            return Err(StoreError::Corrupt("a successor for another agent".into()));
        }
        let (applied, mut d) = rotate(
            conn,
            s,
            hash,
            None,
            Rotation::immediate(),
            Revocation::Compromised,
            now,
            clock,
            ctx,
        )
        .await?;
        drafts.append(&mut d);
        if let Applied::Rotated(pair) = applied {
            let (old, new) = *pair;
            revoked.push(old);
            issued.push(new);
        }
    }
    let issued_ids: Vec<Uuid> = issued.iter().map(|c| c.id).collect();
    let sql = format!(
        "SELECT {CREDENTIAL_COLS} FROM credentials WHERE tenant_id = $1 AND agent_id = $2 AND revoked_at IS NULL"
    );
    let live = sqlx::query(&sql)
        .bind(tenant_id.to_string())
        .bind(agent_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
    for r in &live {
        let mut c = credential(r)?;
        if issued_ids.contains(&c.id) {
            continue;
        }
        drafts.push(mark_revoked(conn, &mut c, Revocation::Compromised, Some("security_event"), now, ctx).await?);
        revoked.push(c);
    }
    // Its database roles go too (their revocation jobs are due now).
    drafts.extend(crate::leases::revoke_for_agent(conn, tenant_id, agent_id, now, clock, ctx).await?);
    let mut d = with_details(
        draft(
            ctx,
            tenant_id,
            Action::AgentCompromised,
            TargetType::Agent,
            agent_id.to_string(),
        ),
        json!({
            "credentials_revoked": revoked.iter().map(|c| c.id).collect::<Vec<_>>(),
            "successors": issued_ids,
        }),
    );
    d.reason = Some(reason);
    drafts.push(d);
    Ok((
        Applied::Compromised {
            revoked,
            successors: issued,
        },
        drafts,
    ))
}

/// Revokes every live credential of an agent (on retirement); returns how many.
pub(crate) async fn revoke_all(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    agent_id: Uuid,
    now: Timestamp,
) -> Result<u64, StoreError> {
    sqlx::query(
        "DELETE FROM jobs WHERE kind = $1 AND target_id IN \
         (SELECT id FROM credentials WHERE tenant_id = $2 AND agent_id = $3)",
    )
    .bind(JOB_ROTATE_CREDENTIAL)
    .bind(tenant_id.to_string())
    .bind(agent_id.to_string())
    .execute(&mut *conn)
    .await?;
    let done = sqlx::query(
        "UPDATE credentials SET revoked_at = $1, revoked_reason = $2, sealed_secret = NULL \
         WHERE tenant_id = $3 AND agent_id = $4 AND revoked_at IS NULL",
    )
    .bind(now.as_micros())
    .bind(Revocation::AgentRetired.as_str())
    .bind(tenant_id.to_string())
    .bind(agent_id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn used(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut c = load(conn, tenant_id, id).await?;
    sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE id = $2")
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    c.last_used_at = Some(now);
    let action = match c.kind {
        Kind::ApiKey => Action::ApiKeyUse,
        Kind::ClientSecret | Kind::PrivateKeyJwt => Action::CredentialUse,
    };
    let d = with_details(
        draft(ctx, tenant_id, action, TargetType::Credential, id.to_string()),
        json!({ "agent_id": c.agent_id, "hint": c.hint }),
    );
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

pub(crate) async fn revoke_token(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    jti: String,
    expires_at: Timestamp,
    subject: String,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let seen = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
        .bind(jti.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if seen.is_none() {
        sqlx::query("INSERT INTO revoked_tokens (jti, tenant_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4)")
            .bind(jti.clone())
            .bind(tenant_id.to_string())
            .bind(expires_at.as_micros())
            .bind(now.as_micros())
            .execute(&mut *conn)
            .await?;
    }
    let d = with_details(
        draft(ctx, tenant_id, Action::TokenRevoke, TargetType::Token, jti),
        json!({ "sub": subject, "exp": expires_at.to_rfc3339(), "already_revoked": seen.is_some() }),
    );
    Ok((Applied::Done, vec![d]))
}

pub(crate) async fn issue_token(
    conn: &mut AnyConnection,
    event: Draft,
    once: Vec<(String, Timestamp)>,
) -> Result<Effect, StoreError> {
    for (key, expires_at) in once {
        let seen = sqlx::query("SELECT 1 FROM seen_jtis WHERE key = $1")
            .bind(key.clone())
            .fetch_optional(&mut *conn)
            .await?;
        if seen.is_some() {
            return Err(StoreError::Replayed(key));
        }
        sqlx::query("INSERT INTO seen_jtis (key, expires_at) VALUES ($1, $2)")
            .bind(key)
            .bind(expires_at.as_micros())
            .execute(&mut *conn)
            .await?;
    }
    Ok((Applied::Done, vec![event]))
}

/// One-time `jti`s deleted per prune step at most.
const PRUNE_JTIS: i64 = 10_000;

/// Deletes up to [`PRUNE_JTIS`] one-time `jti`s whose assertions expired
/// before `now` (RFC 7523 §3: the `jti` must be unique only while the
/// assertion is acceptable; its `exp` refuses it after that).
pub(crate) async fn prune_seen_jtis(conn: &mut AnyConnection, now: Timestamp) -> Result<Effect, StoreError> {
    let deleted =
        sqlx::query("DELETE FROM seen_jtis WHERE key IN (SELECT key FROM seen_jtis WHERE expires_at < $1 LIMIT $2)")
            .bind(now.as_micros())
            .bind(PRUNE_JTIS)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    Ok((Applied::Count(usize::try_from(deleted).unwrap_or(usize::MAX)), vec![]))
}

pub(crate) async fn set_token_ttl(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    class: String,
    ttl_secs: Option<i64>,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let existed = sqlx::query("DELETE FROM token_ttls WHERE tenant_id = $1 AND class = $2")
        .bind(tenant_id.to_string())
        .bind(class.clone())
        .execute(&mut *conn)
        .await?
        .rows_affected()
        > 0;
    match ttl_secs {
        Some(secs) => {
            sqlx::query(
                "INSERT INTO token_ttls (tenant_id, class, ttl_secs, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(tenant_id.to_string())
            .bind(class.clone())
            .bind(secs)
            .bind(now.as_micros())
            .bind(ctx.actor.reference())
            .execute(&mut *conn)
            .await?;
        }
        None if !existed => {
            return Err(StoreError::NotFound {
                what: "token lifetime setting",
                id: if class.is_empty() { "*".into() } else { class },
            });
        }
        None => {}
    }
    let d = with_details(
        draft(
            ctx,
            tenant_id,
            Action::TokenTtlSet,
            TargetType::TokenTtl,
            if class.is_empty() { "*".into() } else { class.clone() },
        ),
        json!({ "class": class, "ttl_secs": ttl_secs }),
    );
    Ok((Applied::Done, vec![d]))
}

impl Store {
    /// The credential whose secret hashes to `hash`, if any (revoked and
    /// expired ones included; the caller checks `Credential::is_usable`).
    pub async fn credential_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Credential>, StoreError> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE secret_hash = $1");
        let r = sqlx::query(&sql)
            .bind(hash.to_vec())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(credential).transpose()
    }

    /// One credential of a tenant.
    pub async fn credential(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Credential>, StoreError> {
        let sql = format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(credential).transpose()
    }

    /// An agent's credentials (revoked ones included), oldest first.
    pub async fn credentials(&self, tenant_id: Uuid, agent_id: Uuid) -> Result<Vec<Credential>, StoreError> {
        let sql =
            format!("SELECT {CREDENTIAL_COLS} FROM credentials WHERE tenant_id = $1 AND agent_id = $2 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(agent_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(credential).collect()
    }

    /// Whether the access token with this `jti` was revoked.
    pub async fn is_token_revoked(&self, jti: &str) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT 1 FROM revoked_tokens WHERE jti = $1")
            .bind(jti.to_owned())
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(r.is_some())
    }

    /// A tenant's token lifetimes: `(class, seconds)`, class empty for the
    /// tenant's default.
    pub async fn token_ttls(&self, tenant_id: Uuid) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query("SELECT class, ttl_secs FROM token_ttls WHERE tenant_id = $1 ORDER BY class")
            .bind(tenant_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("class")?, r.try_get::<i64, _>("ttl_secs")?)))
            .collect()
    }
}

typed_writes! {
    /// Issues a credential to an agent (not retired) of its tenant.
    fn create_credential(credential: Credential, secret_hash: Option<[u8; 32]>) -> Credential {
        Command::CreateCredential { credential, secret_hash } => Applied::Credential(c) => *c
    }

    /// Revokes one credential.
    fn revoke_credential(tenant_id: Uuid, id: Uuid) -> Credential {
        Command::RevokeCredential { tenant_id, id } => Applied::Credential(c) => *c
    }

    /// Rotates a credential to `successor` (whose `predecessor_id` names
    /// it); answers the predecessor and the successor after the change.
    fn rotate_credential(
        successor: Credential,
        secret_hash: Option<[u8; 32]>,
        sealed_secret: Option<Vec<u8>>,
        rotation: Rotation,
        why: Revocation,
    ) -> (Credential, Credential) {
        Command::RotateCredential { successor, secret_hash, sealed_secret, rotation, why, job: None }
            => Applied::Rotated(pair) => *pair
    }

    /// Runs a due [`JOB_ROTATE_CREDENTIAL`] job: the rotation to
    /// `successor`, the job finished in the same commit (a credential
    /// rotated or revoked meanwhile just finishes it).
    fn rotate_credential_due(
        successor: Credential,
        secret_hash: Option<[u8; 32]>,
        sealed_secret: Option<Vec<u8>>,
        rotation: Rotation,
        job: Job,
    ) {
        Command::RotateCredential {
            successor,
            secret_hash,
            sealed_secret,
            rotation,
            why: Revocation::Rotated,
            job: Some(job),
        }
    }

    /// Runs a due [`JOB_RETIRE_CREDENTIAL`] job.
    fn retire_credential(job: Job) {
        Command::RetireCredential(job)
    }

    /// A successor with `retire_on_use` authenticated: revokes its
    /// predecessor, once.
    fn retire_predecessor(tenant_id: Uuid, successor_id: Uuid) {
        Command::RetirePredecessor { tenant_id, successor_id }
    }

    /// The agent collects the sealed secret of the successor of the
    /// credential it presents: answers the successor and the sealed secret.
    fn collect_successor(tenant_id: Uuid, presenting: Uuid) -> (Credential, Vec<u8>) {
        Command::CollectSuccessor { tenant_id, presenting }
            => Applied::Collected { credential, sealed_secret } => (*credential, sealed_secret)
    }

    /// A security event: revokes every live credential of the agent at
    /// once, rotating those with a successor here to it. Answers the
    /// revoked credentials and the successors issued.
    fn compromise_agent(
        tenant_id: Uuid,
        agent_id: Uuid,
        reason: String,
        successors: Vec<(Credential, Option<[u8; 32]>)>,
    ) -> (Vec<Credential>, Vec<Credential>) {
        Command::CompromiseAgent { tenant_id, agent_id, reason, successors }
            => Applied::Compromised { revoked, successors } => (revoked, successors)
    }

    /// Records that an API key authenticated.
    fn use_credential(tenant_id: Uuid, id: Uuid) {
        Command::UseCredential { tenant_id, id }
    }

    /// Revokes an access token by its `jti` until `expires_at` (RFC 7009).
    fn revoke_token(tenant_id: Uuid, jti: String, expires_at: Timestamp, subject: String) {
        Command::RevokeToken { tenant_id, jti, expires_at, subject }
    }

    /// Records a token issuance, first consuming the one-time ids `once`
    /// (a key already seen refuses it with [`StoreError::Replayed`]).
    fn issue_token(event: Draft, once: Vec<(String, Timestamp)>) {
        Command::IssueToken { event, once }
    }

    /// Sets (`Some`) or clears the token lifetime of a tenant (`class`
    /// empty) or of one agent class.
    fn set_token_ttl(tenant_id: Uuid, class: String, ttl_secs: Option<i64>) {
        Command::SetTokenTtl { tenant_id, class, ttl_secs }
    }

    /// Forgets a bounded batch of expired one-time ids; answers how many.
    fn prune_seen_jtis() -> usize {
        Command::PruneSeenJtis => Applied::Count(n) => n
    }
}
