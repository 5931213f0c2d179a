//! Rotation policies and the rotation jobs they schedule: one
//! [`JOB_ROTATE_CREDENTIAL`] job per live client secret or API key under a
//! policy, due when the policy says, rescheduled whenever a policy changes.

use idv_core::Clock;
use idv_core::audit::{Action, TargetType};
use idv_core::credential::{Credential, Kind, Retire};
use idv_core::rotation::{self, RotationPolicy, Scope};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::row::{self, chunk_rows, placeholders};
use crate::{Dialect, Store, StoreError};

/// Job kind: rotate a credential because its rotation policy says so.
pub const JOB_ROTATE_CREDENTIAL: &str = "credential.rotate";

const COLS: &str =
    "tenant_id, scope_type, scope_id, every_secs, max_age_secs, overlap_secs, retire, updated_at, updated_by";

fn secs(row: &AnyRow, col: &str) -> Result<Option<u64>, StoreError> {
    row.try_get::<Option<i64>, _>(col)?
        .map(|v| u64::try_from(v).map_err(|_| StoreError::Corrupt(format!("{col} is negative"))))
        .transpose()
}

fn policy(row: &AnyRow) -> Result<RotationPolicy, StoreError> {
    let scope_type: String = row.try_get("scope_type")?;
    let scope_id: String = row.try_get("scope_id")?;
    let retire: String = row.try_get("retire")?;
    Ok(RotationPolicy {
        tenant_id: row::uuid(row, "tenant_id")?,
        scope: Scope::parse(&scope_type, &scope_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        every_secs: secs(row, "every_secs")?,
        max_age_secs: secs(row, "max_age_secs")?,
        overlap_secs: secs(row, "overlap_secs")?.unwrap_or_default(),
        retire: retire
            .parse::<Retire>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?,
        updated_at: row::ts(row, "updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn policies(conn: &mut AnyConnection, tenant_id: Uuid) -> Result<Vec<RotationPolicy>, StoreError> {
    let rows = sqlx::query(&format!("SELECT {COLS} FROM rotation_policies WHERE tenant_id = $1"))
        .bind(tenant_id.to_string())
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(policy).collect()
}

impl Store {
    /// A tenant's rotation policies, tenant first, then classes, then agents.
    pub async fn rotation_policies(&self, tenant_id: Uuid) -> Result<Vec<RotationPolicy>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM rotation_policies WHERE tenant_id = $1 ORDER BY scope_type DESC, scope_id"
        ))
        .bind(tenant_id.to_string())
        .fetch_all(&self.inner.read)
        .await?;
        rows.iter().map(policy).collect()
    }
}

/// Schedules the rotation of a credential just made, if a policy applies.
pub(crate) async fn schedule(
    conn: &mut AnyConnection,
    c: &Credential,
    class: Option<&str>,
    clock: &dyn Clock,
) -> Result<(), StoreError> {
    if !rotation::rotates(c.kind) {
        return Ok(());
    }
    let all = policies(conn, c.tenant_id).await?;
    let Some(p) = rotation::effective_for(&all, c.tenant_id, c.agent_id, class) else {
        return Ok(());
    };
    sqlx::query("INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(clock.new_id().to_string())
        .bind(c.tenant_id.to_string())
        .bind(JOB_ROTATE_CREDENTIAL)
        .bind(c.id.to_string())
        .bind(p.due(c.created_at).as_micros())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Drops and remakes the rotation jobs of every live credential `scope`
/// covers, under the tenant's policies as they are now. Returns how many
/// are scheduled.
pub(crate) async fn reschedule(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    scope: &Scope,
    clock: &dyn Clock,
) -> Result<usize, StoreError> {
    // The credentials a policy could rotate: live, not yet rotated, with a
    // secret we make.
    let (filter, arg) = match scope {
        Scope::Tenant => ("", None),
        Scope::Class(c) => (" AND a.class = $3", Some(c.clone())),
        Scope::Agent(a) => (" AND a.id = $3", Some(a.to_string())),
    };
    let live = format!(
        "SELECT c.id FROM credentials c JOIN agents a ON a.id = c.agent_id \
         WHERE c.tenant_id = $1 AND c.revoked_at IS NULL AND c.successor_id IS NULL AND c.kind <> $2{filter}"
    );
    let drop_jobs = format!("DELETE FROM jobs WHERE kind = '{JOB_ROTATE_CREDENTIAL}' AND target_id IN ({live})");
    let mut q = sqlx::query(&drop_jobs)
        .bind(tenant_id.to_string())
        .bind(Kind::PrivateKeyJwt.as_str());
    if let Some(a) = &arg {
        q = q.bind(a.clone());
    }
    q.execute(&mut *conn).await?;
    let all = policies(conn, tenant_id).await?;
    if all.is_empty() {
        return Ok(0);
    }
    let select = format!(
        "SELECT c.id, c.created_at, a.id AS agent_id, a.class FROM credentials c JOIN agents a ON a.id = c.agent_id \
         WHERE c.tenant_id = $1 AND c.revoked_at IS NULL AND c.successor_id IS NULL AND c.kind <> $2{filter}"
    );
    let mut q = sqlx::query(&select)
        .bind(tenant_id.to_string())
        .bind(Kind::PrivateKeyJwt.as_str());
    if let Some(a) = &arg {
        q = q.bind(a.clone());
    }
    let rows = q.fetch_all(&mut *conn).await?;
    let mut due: Vec<(String, i64)> = Vec::with_capacity(rows.len());
    for r in &rows {
        let agent_id = row::uuid(r, "agent_id")?;
        let class: Option<String> = r.try_get("class")?;
        if let Some(p) = rotation::effective_for(&all, tenant_id, agent_id, class.as_deref()) {
            due.push((r.try_get("id")?, p.due(row::ts(r, "created_at")?).as_micros()));
        }
    }
    for chunk in due.chunks(chunk_rows(5)) {
        let sql = format!(
            "INSERT INTO jobs (id, tenant_id, kind, target_id, run_at) VALUES {}",
            placeholders(dialect, chunk.len(), 5, 1)
        );
        let mut q = sqlx::query(&sql);
        for (id, at) in chunk {
            q = q
                .bind(clock.new_id().to_string())
                .bind(tenant_id.to_string())
                .bind(JOB_ROTATE_CREDENTIAL)
                .bind(id.clone())
                .bind(*at);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(due.len())
}

/// Sets (creates or replaces) a policy and reschedules what it covers.
pub(crate) async fn put(
    conn: &mut AnyConnection,
    dialect: Dialect,
    p: RotationPolicy,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    if let Scope::Agent(a) = &p.scope {
        crate::agents::load_agent(conn, p.tenant_id, *a).await?;
    }
    sqlx::query("DELETE FROM rotation_policies WHERE tenant_id = $1 AND scope_type = $2 AND scope_id = $3")
        .bind(p.tenant_id.to_string())
        .bind(p.scope.type_name())
        .bind(p.scope.id())
        .execute(&mut *conn)
        .await?;
    sqlx::query(&format!(
        "INSERT INTO rotation_policies ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(p.tenant_id.to_string())
    .bind(p.scope.type_name())
    .bind(p.scope.id())
    .bind(p.every_secs.map(as_i64))
    .bind(p.max_age_secs.map(as_i64))
    .bind(as_i64(p.overlap_secs))
    .bind(p.retire.as_str())
    .bind(p.updated_at.as_micros())
    .bind(p.updated_by.clone())
    .execute(&mut *conn)
    .await?;
    let scheduled = reschedule(conn, dialect, p.tenant_id, &p.scope, clock).await?;
    let d = with_details(
        draft(
            ctx,
            p.tenant_id,
            Action::RotationPolicyPut,
            TargetType::RotationPolicy,
            p.scope.to_string(),
        ),
        json!({
            "every_secs": p.every_secs, "max_age_secs": p.max_age_secs, "overlap_secs": p.overlap_secs,
            "retire": p.retire.as_str(), "credentials_scheduled": scheduled,
        }),
    );
    Ok((Applied::RotationPolicy(Box::new(p), scheduled), vec![d]))
}

/// Removes a policy; what it covered falls back to the next broader one.
pub(crate) async fn delete(
    conn: &mut AnyConnection,
    dialect: Dialect,
    tenant_id: Uuid,
    scope: Scope,
    clock: &dyn Clock,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let done = sqlx::query("DELETE FROM rotation_policies WHERE tenant_id = $1 AND scope_type = $2 AND scope_id = $3")
        .bind(tenant_id.to_string())
        .bind(scope.type_name())
        .bind(scope.id())
        .execute(&mut *conn)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound {
            what: "rotation policy",
            id: scope.to_string(),
        });
    }
    let scheduled = reschedule(conn, dialect, tenant_id, &scope, clock).await?;
    let d = with_details(
        draft(
            ctx,
            tenant_id,
            Action::RotationPolicyDelete,
            TargetType::RotationPolicy,
            scope.to_string(),
        ),
        json!({ "credentials_scheduled": scheduled }),
    );
    Ok((Applied::Count(scheduled), vec![d]))
}

/// Drops a credential's pending rotation (it was rotated, or revoked).
pub(crate) async fn unschedule(conn: &mut AnyConnection, credential_id: Uuid) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM jobs WHERE kind = $1 AND target_id = $2")
        .bind(JOB_ROTATE_CREDENTIAL)
        .bind(credential_id.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

typed_writes! {
    /// Sets a rotation policy; answers it and how many credentials it
    /// scheduled.
    fn put_rotation_policy(policy: RotationPolicy) -> (RotationPolicy, usize) {
        Command::PutRotationPolicy(policy) => Applied::RotationPolicy(p, n) => (*p, n)
    }

    /// Removes a rotation policy; answers how many credentials were
    /// rescheduled.
    fn delete_rotation_policy(tenant_id: Uuid, scope: Scope) -> usize {
        Command::DeleteRotationPolicy { tenant_id, scope } => Applied::Count(n) => n
    }
}
