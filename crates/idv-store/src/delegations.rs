//! Commands on delegations and trusted issuers.

use idv_core::Timestamp;
use idv_core::delegation::{Delegation, Delegator};
use idv_core::lifecycle::Status;
use idv_core::trusted_issuer::TrustedIssuer;
use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::StoreError;
use crate::command::{Applied, Context, Outcome2, draft, load_agent, load_one, with_details};
use crate::row::{self, DELEGATION_COLS, ISSUER_COLS, delegator_columns, to_json};

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

pub(crate) async fn create(conn: &mut AnyConnection, d: Delegation, ctx: &Context) -> Result<Outcome2, StoreError> {
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
        draft(ctx, d.tenant_id, "delegation.create", "delegation", d.id.to_string()),
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
) -> Result<Outcome2, StoreError> {
    let mut d = load_one(
        conn,
        ("delegations", DELEGATION_COLS, "delegation"),
        tenant_id,
        id,
        row::delegation,
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
        draft(ctx, tenant_id, "delegation.revoke", "delegation", id.to_string()),
        json!({ "delegator": d.delegator, "delegate": d.delegate }),
    );
    Ok((Applied::Delegation(Box::new(d)), vec![ev]))
}

pub(crate) async fn create_issuer(
    conn: &mut AnyConnection,
    t: TrustedIssuer,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
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
            "trusted_issuer.create",
            "trusted_issuer",
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
) -> Result<Outcome2, StoreError> {
    let t = load_one(
        conn,
        ("trusted_issuers", ISSUER_COLS, "trusted issuer"),
        tenant_id,
        id,
        row::trusted_issuer,
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
            "trusted_issuer.delete",
            "trusted_issuer",
            id.to_string(),
        ),
        json!({ "issuer": t.issuer }),
    );
    Ok((Applied::TrustedIssuer(Box::new(t)), vec![ev]))
}
