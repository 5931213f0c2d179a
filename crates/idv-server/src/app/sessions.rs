//! Console sessions: signing in (break-glass with an admin token; OIDC
//! single sign-on comes through the same [`open`]), finding the session a
//! browser presents, signing out, listing and ending sessions.
//!
//! A session acts with the role it was opened with, through the same use
//! cases and permission checks as the admin API; every event it causes
//! names the session (`console_session` in the event details).

use idv_core::admin_token::{Permission, Principal, Role};
use idv_core::audit::Action;
use idv_core::session::{self, Method, Session};
use idv_store::{SIGN_OUT, StoreError};
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// A session just opened, with the secret for its cookie (shown once).
#[derive(Debug)]
pub struct Opened {
    /// The session.
    pub session: Session,
    /// The cookie's value.
    pub secret: String,
}

/// The browser the sign-in came from.
#[derive(Clone, Debug, Default)]
pub struct Browser {
    /// Its `User-Agent`, trimmed to 256 characters.
    pub user_agent: Option<String>,
}

/// Break-glass: opens a session for whoever holds `token`, an admin token of
/// any role but `pep`. A failed attempt counts against the same budgets as
/// the admin API's ([`super::auth::failed`]): `Err(Throttled)` past them.
pub async fn sign_in_with_token(state: &AppState, token: &str, browser: Browser) -> Result<Opened, AppError> {
    let caller = match super::auth::authenticate(state, token.trim(), None).await {
        Ok(c) => c,
        Err(e @ AppError::Unauthenticated(_)) => {
            return Err(match super::auth::failed(state, token.trim()).await {
                Some(seconds) => AppError::Throttled(seconds),
                None => e,
            });
        }
        Err(e) => return Err(e),
    };
    if caller.principal.role == Role::Pep {
        caller
            .require(state, Permission::ReadRegistry, Action::ConsoleSignIn)
            .await?;
    }
    let now = state.clock.now();
    let s = Session {
        id: state.clock.new_id(),
        tenant_id: caller.tenant.id,
        method: Method::AdminToken,
        subject: caller.principal.token_id.to_string(),
        issuer: None,
        email: None,
        display_name: caller.principal.token_name.clone(),
        role: caller.principal.role,
        platform: caller.principal.platform,
        token_id: Some(caller.principal.token_id),
        source: super::request::peer().map(|p| p.to_string()),
        user_agent: browser.user_agent.map(|u| u.chars().take(256).collect()),
        created_at: now,
        last_seen_at: now,
        expires_at: Session::expiry(now, state.session_timeouts),
        ended_at: None,
        ended_by: None,
        end_reason: None,
    };
    open(state, caller.context(), s).await
}

/// Stores `s` with a fresh secret, its sign-in on the record under `ctx`
/// (break-glass and single sign-on alike).
pub(super) async fn open(state: &AppState, ctx: idv_store::Context, s: Session) -> Result<Opened, AppError> {
    let secret = session::FORMAT.generate();
    let hash = state.session_hasher.hash(&secret);
    let session = state.store.create_session(s, hash, ctx).await?;
    Ok(Opened { session, secret })
}

/// The live session `secret` opens, as a caller, recording activity at most
/// once a minute. `None` for anything else: unknown, malformed, ended,
/// idle, expired, or opened with an admin token that has since been revoked
/// or has expired (a session never outlives the credential behind it).
pub async fn resolve(state: &AppState, secret: &str) -> Result<Option<(Session, Caller)>, AppError> {
    if session::FORMAT.check(secret).is_err() {
        return Ok(None);
    }
    let hash = state.session_hasher.hash(secret);
    let Some(s) = state.store.session_by_hash(&hash).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    if s.state(now, state.session_timeouts) != session::State::Live {
        return Ok(None);
    }
    if let Some(token_id) = s.token_id {
        let usable = state
            .store
            .admin_token(s.tenant_id, token_id)
            .await?
            .is_some_and(|t| t.is_usable(now));
        if !usable {
            return Ok(None);
        }
    }
    let Some(tenant) = super::tenants::by_id(state, s.tenant_id).await? else {
        return Ok(None);
    };
    if s.needs_touch(now) {
        let ctx = idv_store::Context::system("console");
        state.store.touch_session(s.id, now, ctx).await?;
    }
    let caller = Caller {
        principal: Principal {
            token_id: s.token_id.unwrap_or(s.id),
            // A person is named by e-mail (or subject) in the audit log, as
            // their sign-in was; a break-glass session by its token's name.
            token_name: match s.method {
                Method::Oidc => s.email.clone().unwrap_or_else(|| s.subject.clone()),
                Method::AdminToken => s.display_name.clone(),
            },
            home_tenant: s.tenant_id,
            role: s.role,
            platform: s.platform,
        },
        tenant,
        cross_tenant: false,
        request_id: super::request::id(),
        session: Some(s.id),
        owner_scope: (s.role == idv_core::admin_token::Role::Owner)
            .then(|| s.email.clone().unwrap_or_else(|| s.subject.clone())),
        person: match (s.method, &s.issuer) {
            (Method::Oidc, Some(iss)) => Some((iss.clone(), s.subject.clone())),
            _ => None,
        },
    };
    Ok(Some((s, caller)))
}

/// Ends the caller's own session.
pub async fn sign_out(state: &AppState, caller: &Caller, s: &Session) -> Result<(), AppError> {
    state
        .store
        .end_session(s.tenant_id, s.id, SIGN_OUT.to_owned(), caller.context())
        .await?;
    Ok(())
}

/// The tenant's open sessions: everyone's for those who manage admin
/// tokens, else the caller's own.
pub async fn list(state: &AppState, caller: &Caller, own: &Session) -> Result<Vec<Session>, AppError> {
    let subject = (!caller.principal.may(Permission::ManageTokens)).then_some(own.subject.as_str());
    let now = state.clock.now();
    let t = state.session_timeouts;
    Ok(state
        .store
        .open_sessions(caller.tenant.id, subject, now, 500)
        .await?
        .into_iter()
        .filter(|s| s.state(now, t) == session::State::Live)
        .collect())
}

/// Ends session `id`: any of the tenant's for those who manage admin
/// tokens, else only one of the caller's own.
pub async fn end(state: &AppState, caller: &Caller, own: &Session, id: Uuid) -> Result<Session, AppError> {
    let target = state.store.session(caller.tenant.id, id).await?.ok_or_else(|| {
        AppError::Store(StoreError::NotFound {
            what: "console session",
            id: id.to_string(),
        })
    })?;
    if target.subject != own.subject {
        caller
            .require(state, Permission::ManageTokens, Action::ConsoleSessionEnd)
            .await?;
    }
    Ok(state
        .store
        .end_session(caller.tenant.id, id, "ended".to_owned(), caller.context())
        .await?)
}
