//! Commands on delegations and trusted issuers.

use idv_core::Timestamp;
use idv_core::audit::{Action, TargetType};
use idv_core::delegation::{Delegation, Delegator};
use idv_core::lifecycle::Status;
use idv_core::trusted_issuer::TrustedIssuer;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::agents::load_agent;
use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::read::{Arg, Sql};
use crate::row::{self, load_one, to_json};
use crate::{Store, StoreError};

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
            id: Uuid::parse_str(&who).map_err(|e| row::corrupt("delegator", e))?,
        },
        "human" => {
            let (issuer, sub) = who.split_once('#').ok_or_else(|| row::corrupt("delegator", "no `#`"))?;
            Delegator::Human {
                issuer: issuer.to_owned(),
                sub: sub.to_owned(),
            }
        }
        other => return Err(row::corrupt("delegator_type", other)),
    };
    let task: Option<String> = row.try_get("task")?;
    Ok(Delegation {
        id: row::uuid(row, "id")?,
        tenant_id: row::uuid(row, "tenant_id")?,
        delegator,
        delegate: row::uuid(row, "delegate_id")?,
        scopes: row::json(row, "scopes")?,
        audiences: row::json(row, "audiences")?,
        task: task
            .map(|t| serde_json::from_str(&t).map_err(|e| row::corrupt("task", e)))
            .transpose()?,
        max_depth: u32::try_from(row.try_get::<i64, _>("max_depth")?).map_err(|e| row::corrupt("max_depth", e))?,
        created_at: row::ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
        expires_at: row::ts(row, "expires_at")?,
        revoked_at: row::opt_ts(row, "revoked_at")?,
    })
}

pub(crate) const ISSUER_COLS: &str = "id, tenant_id, issuer, keys, audience, created_at, created_by";

pub(crate) fn trusted_issuer(row: &AnyRow) -> Result<TrustedIssuer, StoreError> {
    Ok(TrustedIssuer {
        id: row::uuid(row, "id")?,
        tenant_id: row::uuid(row, "tenant_id")?,
        issuer: row.try_get("issuer")?,
        keys: row::json(row, "keys")?,
        audience: row.try_get("audience")?,
        created_at: row::ts(row, "created_at")?,
        created_by: row.try_get("created_by")?,
    })
}

async fn require_usable_agent(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    role: &str,
) -> Result<(), StoreError> {
    let a = load_agent(conn, tenant_id, id).await?;
    if a.status == Status::Retired {
        return Err(StoreError::Conflict(format!("the {role} agent `{id}` is retired")));
    }
    Ok(())
}

pub(crate) async fn create(conn: &mut AnyConnection, d: Delegation, ctx: &Context) -> Result<Effect, StoreError> {
    require_usable_agent(conn, d.tenant_id, d.delegate, "delegate").await?;
    match &d.delegator {
        Delegator::Agent { id } => require_usable_agent(conn, d.tenant_id, *id, "delegating").await?,
        Delegator::Human { issuer, .. } => {
            let known = sqlx::query("SELECT 1 FROM trusted_issuers WHERE tenant_id = $1 AND issuer = $2")
                .bind(d.tenant_id.to_string())
                .bind(issuer.clone())
                .fetch_optional(&mut *conn)
                .await?;
            if known.is_none() {
                return Err(StoreError::Conflict(format!(
                    "`{issuer}` is not a trusted issuer of this tenant; add it first"
                )));
            }
        }
    }
    let (kind, who) = delegator_columns(&d.delegator);
    sqlx::query(
        "INSERT INTO delegations (id, tenant_id, delegator_type, delegator, delegate_id, scopes, audiences, task, \
         max_depth, created_at, created_by, expires_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL)",
    )
    .bind(d.id.to_string())
    .bind(d.tenant_id.to_string())
    .bind(kind)
    .bind(who)
    .bind(d.delegate.to_string())
    .bind(to_json(&d.scopes))
    .bind(to_json(&d.audiences))
    .bind(d.task.as_ref().map(to_json))
    .bind(i64::from(d.max_depth))
    .bind(d.created_at.as_micros())
    .bind(d.created_by.clone())
    .bind(d.expires_at.as_micros())
    .execute(&mut *conn)
    .await?;
    let ev = with_details(
        draft(
            ctx,
            d.tenant_id,
            Action::DelegationCreate,
            TargetType::Delegation,
            d.id.to_string(),
        ),
        json!({
            "delegator": d.delegator, "delegate": d.delegate, "scopes": d.scopes, "audiences": d.audiences,
            "max_depth": d.max_depth, "expires_at": d.expires_at.to_rfc3339(),
        }),
    );
    Ok((Applied::Delegation(Box::new(d)), vec![ev]))
}

pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut d = load_one(
        conn,
        ("delegations", DELEGATION_COLS, "delegation"),
        tenant_id,
        id,
        delegation,
    )
    .await?;
    if d.revoked_at.is_some() {
        return Err(StoreError::Conflict("the delegation is already revoked".into()));
    }
    sqlx::query("UPDATE delegations SET revoked_at = $1 WHERE id = $2")
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    d.revoked_at = Some(now);
    let ev = with_details(
        draft(
            ctx,
            tenant_id,
            Action::DelegationRevoke,
            TargetType::Delegation,
            id.to_string(),
        ),
        json!({ "delegator": d.delegator, "delegate": d.delegate }),
    );
    Ok((Applied::Delegation(Box::new(d)), vec![ev]))
}

pub(crate) async fn create_issuer(
    conn: &mut AnyConnection,
    t: TrustedIssuer,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let taken = sqlx::query("SELECT 1 FROM trusted_issuers WHERE tenant_id = $1 AND issuer = $2")
        .bind(t.tenant_id.to_string())
        .bind(t.issuer.clone())
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!("`{}` is already trusted", t.issuer)));
    }
    sqlx::query(
        "INSERT INTO trusted_issuers (id, tenant_id, issuer, keys, audience, created_at, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.id.to_string())
    .bind(t.tenant_id.to_string())
    .bind(t.issuer.clone())
    .bind(to_json(&t.keys))
    .bind(t.audience.clone())
    .bind(t.created_at.as_micros())
    .bind(t.created_by.clone())
    .execute(&mut *conn)
    .await?;
    let kids: Vec<&str> = t
        .keys
        .iter()
        .filter_map(|k| k.get("kid").and_then(|v| v.as_str()))
        .collect();
    let ev = with_details(
        draft(
            ctx,
            t.tenant_id,
            Action::TrustedIssuerCreate,
            TargetType::TrustedIssuer,
            t.id.to_string(),
        ),
        json!({ "issuer": t.issuer, "kids": kids, "audience": t.audience }),
    );
    Ok((Applied::TrustedIssuer(Box::new(t)), vec![ev]))
}

pub(crate) async fn delete_issuer(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let t = load_one(
        conn,
        ("trusted_issuers", ISSUER_COLS, "trusted issuer"),
        tenant_id,
        id,
        trusted_issuer,
    )
    .await?;
    sqlx::query("DELETE FROM trusted_issuers WHERE id = $1")
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    let ev = with_details(
        draft(
            ctx,
            tenant_id,
            Action::TrustedIssuerDelete,
            TargetType::TrustedIssuer,
            id.to_string(),
        ),
        json!({ "issuer": t.issuer }),
    );
    Ok((Applied::TrustedIssuer(Box::new(t)), vec![ev]))
}

impl Store {
    /// One delegation of a tenant.
    pub async fn delegation(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Delegation>, StoreError> {
        let sql = format!("SELECT {DELEGATION_COLS} FROM delegations WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(delegation).transpose()
    }

    /// A tenant's delegations in id order after `after`, optionally only
    /// those to agent `delegate`.
    pub async fn delegations(
        &self,
        tenant_id: Uuid,
        delegate: Option<Uuid>,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<Delegation>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {DELEGATION_COLS} FROM delegations WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(d) = delegate {
            sql.and("delegate_id = ?", vec![Arg::Text(d.to_string())]);
        }
        if let Some(a) = after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(delegation).collect()
    }

    /// Delegations an agent gave (it is the delegator), newest first, at
    /// most `limit`.
    pub async fn delegations_from(
        &self,
        tenant_id: Uuid,
        agent_id: Uuid,
        limit: i64,
    ) -> Result<Vec<Delegation>, StoreError> {
        let sql = format!(
            "SELECT {DELEGATION_COLS} FROM delegations WHERE tenant_id = $1 AND delegator_type = 'agent' \
             AND delegator = $2 ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(agent_id.to_string())
            .bind(limit)
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(delegation).collect()
    }

    /// Delegations from `delegator` to agent `delegate` (revoked and expired
    /// ones included), newest first.
    pub async fn delegations_between(
        &self,
        tenant_id: Uuid,
        delegator: &Delegator,
        delegate: Uuid,
    ) -> Result<Vec<Delegation>, StoreError> {
        let (_, who) = delegator_columns(delegator);
        let sql = format!(
            "SELECT {DELEGATION_COLS} FROM delegations WHERE tenant_id = $1 AND delegate_id = $2 AND delegator = $3 \
             ORDER BY id DESC LIMIT 100"
        );
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(delegate.to_string())
            .bind(who)
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter()
            .map(delegation)
            .filter(|d| d.as_ref().map_or(true, |d| d.delegator == *delegator))
            .collect()
    }

    /// The tenant's delegations among `ids` (for checking a token's chain).
    pub async fn delegations_by_ids(&self, tenant_id: Uuid, ids: &[Uuid]) -> Result<Vec<Delegation>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut sql = Sql::new(format!("SELECT {DELEGATION_COLS} FROM delegations WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        let marks: Vec<String> = ids.iter().map(|id| sql.bind_next(Arg::Text(id.to_string()))).collect();
        sql.push(&format!(" AND id IN ({})", marks.join(", ")));
        sql.fetch_all(self).await?.iter().map(delegation).collect()
    }

    /// A tenant's trusted issuers.
    pub async fn trusted_issuers(&self, tenant_id: Uuid) -> Result<Vec<TrustedIssuer>, StoreError> {
        let sql = format!("SELECT {ISSUER_COLS} FROM trusted_issuers WHERE tenant_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .fetch_all(&self.inner.read)
            .await?;
        rows.iter().map(trusted_issuer).collect()
    }
}

typed_writes! {
    /// Stores a delegation.
    fn create_delegation(delegation: Delegation) -> Delegation {
        Command::CreateDelegation(delegation) => Applied::Delegation(d) => *d
    }

    /// Revokes a delegation (and with it every token issued through it).
    fn revoke_delegation(tenant_id: Uuid, id: Uuid) -> Delegation {
        Command::RevokeDelegation { tenant_id, id } => Applied::Delegation(d) => *d
    }

    /// Trusts an external issuer.
    fn create_trusted_issuer(issuer: TrustedIssuer) -> TrustedIssuer {
        Command::CreateTrustedIssuer(issuer) => Applied::TrustedIssuer(t) => *t
    }

    /// Stops trusting an external issuer; answers the one removed.
    fn delete_trusted_issuer(tenant_id: Uuid, id: Uuid) -> TrustedIssuer {
        Command::DeleteTrustedIssuer { tenant_id, id } => Applied::TrustedIssuer(t) => *t
    }
}
