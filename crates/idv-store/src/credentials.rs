//! Commands on credentials, signing keys and revoked tokens.

use idv_core::Timestamp;
use idv_core::audit::Draft;
use idv_core::credential::{Credential, Kind};
use idv_core::keyring::SigningKey;
use idv_core::lifecycle::Status;
use serde_json::json;
use sqlx::AnyConnection;
use uuid::Uuid;

use crate::StoreError;
use crate::command::{Applied, Context, Outcome2, draft, load_agent, load_one, with_details};
use crate::row::{self, CREDENTIAL_COLS, to_json};

pub(crate) async fn create(
    conn: &mut AnyConnection,
    c: Credential,
    secret_hash: Option<[u8; 32]>,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let agent = load_agent(conn, c.tenant_id, c.agent_id).await?;
    if agent.status == Status::Retired {
        return Err(StoreError::Conflict(
            "the agent is retired; retired agents get no credentials".into(),
        ));
    }
    sqlx::query(
        "INSERT INTO credentials (id, tenant_id, agent_id, kind, hint, secret_hash, jwk, scopes, created_at, \
         created_by, expires_at, revoked_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL)",
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
    .execute(&mut *conn)
    .await?;
    let d = with_details(
        draft(ctx, c.tenant_id, "credential.create", "credential", c.id.to_string()),
        json!({
            "agent_id": c.agent_id, "kind": c.kind.as_str(), "hint": c.hint,
            "scopes": c.scopes, "expires_at": c.expires_at.map(Timestamp::to_rfc3339),
        }),
    );
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

async fn load(conn: &mut AnyConnection, tenant_id: Uuid, id: Uuid) -> Result<Credential, StoreError> {
    load_one(
        conn,
        ("credentials", CREDENTIAL_COLS, "credential"),
        tenant_id,
        id,
        row::credential,
    )
    .await
}

pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    let mut c = load(conn, tenant_id, id).await?;
    if c.revoked_at.is_some() {
        return Err(StoreError::Conflict("the credential is already revoked".into()));
    }
    sqlx::query("UPDATE credentials SET revoked_at = $1 WHERE id = $2")
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    c.revoked_at = Some(now);
    let d = with_details(
        draft(ctx, tenant_id, "credential.revoke", "credential", id.to_string()),
        json!({ "agent_id": c.agent_id, "kind": c.kind.as_str(), "hint": c.hint }),
    );
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

/// Revokes every live credential of an agent (on retirement); returns how many.
pub(crate) async fn revoke_all(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    agent_id: Uuid,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE credentials SET revoked_at = $1 WHERE tenant_id = $2 AND agent_id = $3 AND revoked_at IS NULL",
    )
    .bind(now.as_micros())
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
) -> Result<Outcome2, StoreError> {
    let mut c = load(conn, tenant_id, id).await?;
    sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE id = $2")
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    c.last_used_at = Some(now);
    let action = match c.kind {
        Kind::ApiKey => "api_key.use",
        Kind::ClientSecret | Kind::PrivateKeyJwt => "credential.use",
    };
    let d = with_details(
        draft(ctx, tenant_id, action, "credential", id.to_string()),
        json!({ "agent_id": c.agent_id, "hint": c.hint }),
    );
    Ok((Applied::Credential(Box::new(c)), vec![d]))
}

pub(crate) async fn create_signing_key(
    conn: &mut AnyConnection,
    k: SigningKey,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
    sqlx::query(
        "INSERT INTO signing_keys (id, tenant_id, alg, public_jwk, sealed_private, created_at, retired_at, \
         publish_until) VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL)",
    )
    .bind(k.kid.clone())
    .bind(k.tenant_id.to_string())
    .bind(k.alg.clone())
    .bind(to_json(&k.public_jwk))
    .bind(k.sealed_private.clone())
    .bind(k.created_at.as_micros())
    .execute(&mut *conn)
    .await?;
    let d = with_details(
        draft(ctx, k.tenant_id, "signing_key.create", "signing_key", k.kid.clone()),
        json!({ "alg": k.alg }),
    );
    Ok((Applied::Done, vec![d]))
}

pub(crate) async fn revoke_token(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    jti: String,
    expires_at: Timestamp,
    subject: String,
    now: Timestamp,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
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
        draft(ctx, tenant_id, "token.revoke", "token", jti),
        json!({ "sub": subject, "exp": expires_at.to_rfc3339(), "already_revoked": seen.is_some() }),
    );
    Ok((Applied::Done, vec![d]))
}

pub(crate) async fn issue_token(
    conn: &mut AnyConnection,
    event: Draft,
    once: Vec<(String, Timestamp)>,
) -> Result<Outcome2, StoreError> {
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

pub(crate) async fn set_token_ttl(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    class: String,
    ttl_secs: Option<i64>,
    now: Timestamp,
    ctx: &Context,
) -> Result<Outcome2, StoreError> {
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
            "token_ttl.set",
            "token_ttl",
            if class.is_empty() { "*".into() } else { class.clone() },
        ),
        json!({ "class": class, "ttl_secs": ttl_secs }),
    );
    Ok((Applied::Done, vec![d]))
}
