//! Admin tokens: issuing (only the keyed hash of the secret is stored),
//! revoking, and finding one by its hash at authentication.

use idv_core::Timestamp;
use idv_core::admin_token::{AdminToken, Role};
use idv_core::audit::{Action, TargetType};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::read::{Arg, Sql};
use crate::row::{corrupt, load_one, opt_ts, ts, uuid};
use crate::{Store, StoreError};

const TOKEN_COLS: &str = "id, tenant_id, name, role, platform, hint, created_at, created_by, expires_at, revoked_at";

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

pub(crate) async fn create(
    conn: &mut AnyConnection,
    t: AdminToken,
    secret_hash: [u8; 32],
    ctx: &Context,
) -> Result<Effect, StoreError> {
    sqlx::query(
        "INSERT INTO admin_tokens (id, tenant_id, name, role, platform, hint, secret_hash, created_at, \
         created_by, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, NULL)",
    )
    .bind(t.id.to_string())
    .bind(t.tenant_id.to_string())
    .bind(t.name.clone())
    .bind(t.role.as_str().to_owned())
    .bind(i64::from(t.platform))
    .bind(t.hint.clone())
    .bind(secret_hash.to_vec())
    .bind(t.created_at.as_micros())
    .bind(t.created_by.clone())
    .bind(t.expires_at.map(Timestamp::as_micros))
    .execute(&mut *conn)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict("that token is already registered".into())
        }
        _ => e.into(),
    })?;
    let d = with_details(
        draft(
            ctx,
            t.tenant_id,
            Action::AdminTokenCreate,
            TargetType::AdminToken,
            t.id.to_string(),
        ),
        json!({
            "name": t.name, "role": t.role.as_str(), "platform": t.platform, "hint": t.hint,
            "expires_at": t.expires_at.map(|e| e.to_rfc3339()),
        }),
    );
    Ok((Applied::AdminToken(t), vec![d]))
}

pub(crate) async fn revoke(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut token = load_one(
        conn,
        ("admin_tokens", TOKEN_COLS, "admin token"),
        tenant_id,
        id,
        admin_token,
    )
    .await?;
    if token.revoked_at.is_some() {
        return Err(StoreError::Conflict("the admin token is already revoked".into()));
    }
    sqlx::query("UPDATE admin_tokens SET revoked_at = $1 WHERE id = $2")
        .bind(now.as_micros())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    token.revoked_at = Some(now);
    let d = with_details(
        draft(
            ctx,
            tenant_id,
            Action::AdminTokenRevoke,
            TargetType::AdminToken,
            id.to_string(),
        ),
        json!({ "name": token.name }),
    );
    Ok((Applied::AdminToken(token), vec![d]))
}

impl Store {
    /// The admin token whose secret hashes to `hash`, if any (revoked and
    /// expired ones included; the caller checks [`AdminToken::is_usable`]).
    pub async fn admin_token_by_hash(&self, hash: &[u8; 32]) -> Result<Option<AdminToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE secret_hash = $1");
        let r = sqlx::query(&sql)
            .bind(hash.to_vec())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(admin_token).transpose()
    }

    /// Whether any admin token exists at all (first start).
    pub async fn any_admin_token(&self) -> Result<bool, StoreError> {
        let r = sqlx::query("SELECT 1 FROM admin_tokens LIMIT 1")
            .fetch_optional(&self.inner.read)
            .await?;
        Ok(r.is_some())
    }

    /// One admin token of a tenant.
    pub async fn admin_token(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<AdminToken>, StoreError> {
        let sql = format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(admin_token).transpose()
    }

    /// A tenant's admin tokens in id order, after `after`.
    pub async fn admin_tokens(
        &self,
        tenant_id: Uuid,
        after: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<AdminToken>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {TOKEN_COLS} FROM admin_tokens WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(a) = after {
            sql.and("id > ?", vec![Arg::Text(a.to_string())]);
        }
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(admin_token).collect()
    }
}

typed_writes! {
    /// Stores a new admin token (its keyed hash only).
    fn create_admin_token(token: AdminToken, secret_hash: [u8; 32]) -> AdminToken {
        Command::CreateAdminToken { token, secret_hash } => Applied::AdminToken(t) => t
    }

    /// Revokes an admin token of the tenant.
    fn revoke_admin_token(tenant_id: Uuid, id: Uuid) -> AdminToken {
        Command::RevokeAdminToken { tenant_id, id } => Applied::AdminToken(t) => t
    }
}
