//! Console sessions: opening one (only the keyed hash of the cookie's secret
//! is stored), recording activity, ending one, and finding one by its hash.

use idv_core::Timestamp;
use idv_core::admin_token::Role;
use idv_core::audit::{Action, TargetType};
use idv_core::session::{Method, Session};
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use uuid::Uuid;

use crate::audit::{draft, with_details};
use crate::command::{Applied, Command, Context, Effect, typed_writes};
use crate::read::{Arg, Sql};
use crate::row::{corrupt, load_one, opt_ts, opt_uuid, ts, uuid};
use crate::{Store, StoreError};

const SESSION_COLS: &str = "id, tenant_id, method, subject, issuer, email, display_name, role, platform, token_id, \
     source, user_agent, created_at, last_seen_at, expires_at, ended_at, ended_by, end_reason";

fn session(row: &AnyRow) -> Result<Session, StoreError> {
    let method: String = row.try_get("method")?;
    let role: String = row.try_get("role")?;
    Ok(Session {
        id: uuid(row, "id")?,
        tenant_id: uuid(row, "tenant_id")?,
        method: method.parse::<Method>().map_err(|e| corrupt("method", e))?,
        subject: row.try_get("subject")?,
        issuer: row.try_get("issuer")?,
        email: row.try_get("email")?,
        display_name: row.try_get("display_name")?,
        role: role.parse::<Role>().map_err(|e| corrupt("role", e))?,
        platform: row.try_get::<i64, _>("platform")? != 0,
        token_id: opt_uuid(row, "token_id")?,
        source: row.try_get("source")?,
        user_agent: row.try_get("user_agent")?,
        created_at: ts(row, "created_at")?,
        last_seen_at: ts(row, "last_seen_at")?,
        expires_at: ts(row, "expires_at")?,
        ended_at: opt_ts(row, "ended_at")?,
        ended_by: row.try_get("ended_by")?,
        end_reason: row.try_get("end_reason")?,
    })
}

pub(crate) async fn create(
    conn: &mut AnyConnection,
    s: Session,
    secret_hash: [u8; 32],
    ctx: &Context,
) -> Result<Effect, StoreError> {
    sqlx::query(
        "INSERT INTO console_sessions (id, tenant_id, secret_hash, method, subject, issuer, email, display_name, \
         role, platform, token_id, source, user_agent, created_at, last_seen_at, expires_at, ended_at, ended_by, \
         end_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, NULL, NULL, NULL)",
    )
    .bind(s.id.to_string())
    .bind(s.tenant_id.to_string())
    .bind(secret_hash.to_vec())
    .bind(s.method.as_str().to_owned())
    .bind(s.subject.clone())
    .bind(s.issuer.clone())
    .bind(s.email.clone())
    .bind(s.display_name.clone())
    .bind(s.role.as_str().to_owned())
    .bind(i64::from(s.platform))
    .bind(s.token_id.map(|t| t.to_string()))
    .bind(s.source.clone())
    .bind(s.user_agent.clone())
    .bind(s.created_at.as_micros())
    .bind(s.last_seen_at.as_micros())
    .bind(s.expires_at.as_micros())
    .execute(&mut *conn)
    .await?;
    let d = with_details(
        draft(
            ctx,
            s.tenant_id,
            Action::ConsoleSignIn,
            TargetType::ConsoleSession,
            s.id.to_string(),
        ),
        json!({
            "method": s.method.as_str(), "subject": s.subject, "issuer": s.issuer, "email": s.email,
            "role": s.role.as_str(), "platform": s.platform, "source": s.source, "user_agent": s.user_agent,
            "expires_at": s.expires_at.to_rfc3339(),
        }),
    );
    Ok((Applied::Session(Box::new(s)), vec![d]))
}

/// Records activity: bookkeeping for the idle timeout, not a change of
/// anyone's access, so no audit event (as a credential's last use is not).
pub(crate) async fn touch(conn: &mut AnyConnection, id: Uuid, at: Timestamp) -> Result<Effect, StoreError> {
    sqlx::query(
        "UPDATE console_sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1 AND ended_at IS NULL",
    )
    .bind(at.as_micros())
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    Ok((Applied::Done, Vec::new()))
}

pub(crate) async fn end(
    conn: &mut AnyConnection,
    tenant_id: Uuid,
    id: Uuid,
    reason: String,
    now: Timestamp,
    ctx: &Context,
) -> Result<Effect, StoreError> {
    let mut s = load_one(
        conn,
        ("console_sessions", SESSION_COLS, "console session"),
        tenant_id,
        id,
        session,
    )
    .await?;
    if s.ended_at.is_some() {
        return Err(StoreError::Conflict("the session has already ended".into()));
    }
    let by = ctx.actor.reference();
    sqlx::query("UPDATE console_sessions SET ended_at = $1, ended_by = $2, end_reason = $3 WHERE id = $4")
        .bind(now.as_micros())
        .bind(by.clone())
        .bind(reason.clone())
        .bind(id.to_string())
        .execute(&mut *conn)
        .await?;
    s.ended_at = Some(now);
    s.ended_by = Some(by);
    s.end_reason = Some(reason.clone());
    let action = if reason == SIGN_OUT {
        Action::ConsoleSignOut
    } else {
        Action::ConsoleSessionEnd
    };
    let d = with_details(
        draft(ctx, tenant_id, action, TargetType::ConsoleSession, id.to_string()),
        json!({ "subject": s.subject, "email": s.email, "reason": reason }),
    );
    Ok((Applied::Session(Box::new(s)), vec![d]))
}

/// The end reason of a sign-out (recorded as `console.sign_out`; any other
/// reason is `console.session_end`).
pub const SIGN_OUT: &str = "sign_out";

impl Store {
    /// The session whose secret hashes to `hash`, if any (ended and expired
    /// ones included; the caller checks [`Session::state`]).
    pub async fn session_by_hash(&self, hash: &[u8; 32]) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLS} FROM console_sessions WHERE secret_hash = $1");
        let r = sqlx::query(&sql)
            .bind(hash.to_vec())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(session).transpose()
    }

    /// One session of a tenant.
    pub async fn session(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<Session>, StoreError> {
        let sql = format!("SELECT {SESSION_COLS} FROM console_sessions WHERE tenant_id = $1 AND id = $2");
        let r = sqlx::query(&sql)
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.inner.read)
            .await?;
        r.as_ref().map(session).transpose()
    }

    /// A tenant's sessions (of one subject, if given) not ended and not past
    /// their absolute expiry at `now`, newest first.
    pub async fn open_sessions(
        &self,
        tenant_id: Uuid,
        subject: Option<&str>,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<Session>, StoreError> {
        let mut sql = Sql::new(format!("SELECT {SESSION_COLS} FROM console_sessions WHERE 1 = 1"));
        sql.and("tenant_id = ?", vec![Arg::Text(tenant_id.to_string())]);
        if let Some(s) = subject {
            sql.and("subject = ?", vec![Arg::Text(s.to_owned())]);
        }
        sql.and("ended_at IS NULL", vec![]);
        sql.and("expires_at > ?", vec![Arg::Int(now.as_micros())]);
        let lim = sql.bind_next(Arg::Int(limit));
        sql.push(&format!(" ORDER BY id DESC LIMIT {lim}"));
        sql.fetch_all(self).await?.iter().map(session).collect()
    }
}

typed_writes! {
    /// Opens a console session (its keyed hash only).
    fn create_session(session: Session, secret_hash: [u8; 32]) -> Session {
        Command::CreateSession { session: Box::new(session), secret_hash } => Applied::Session(s) => *s
    }

    /// Records activity on a session.
    fn touch_session(id: Uuid, at: Timestamp) {
        Command::TouchSession { id, at }
    }

    /// Ends a session of the tenant, for `reason` ([`SIGN_OUT`] or another).
    fn end_session(tenant_id: Uuid, id: Uuid, reason: String) -> Session {
        Command::EndSession { tenant_id, id, reason } => Applied::Session(s) => *s
    }
}
