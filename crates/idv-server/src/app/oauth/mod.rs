//! The OAuth 2.0 authorization server for agents, by use case: the issuer a
//! request is addressed to ([`issuer`]), client authentication
//! ([`client_auth`]), the token endpoint and `client_credentials` issuance
//! ([`token`]), RFC 8693 token exchange ([`exchange`]), introspection (RFC
//! 7662, [`introspection`]) and revocation (RFC 7009, [`revocation`]). Every
//! issuance, refusal and revocation is audited in the same group commit as
//! every other event; the error type and the record of refusals live here.

mod client_auth;
mod exchange;
mod introspection;
mod issuer;
mod revocation;
mod token;

use idv_core::audit::{Action, Actor, ActorKind, Draft, Outcome, TargetType};
use idv_core::grant::Refusal;
use idv_store::{Context, StoreError};
use serde_json::{Value, json};

pub use self::client_auth::{Client, ClientAuth, authenticate};
pub use self::introspection::{ActiveToken, INTROSPECT_SCOPE, active_token, introspect};
pub use self::issuer::{Issuer, issuer};
pub use self::revocation::revoke;
pub use self::token::{TokenRequest, refuse_request, token};
use super::{AppError, request};
use crate::AppState;

/// RFC 7521 §4.2 / RFC 7523 §2.2: the client assertion type for JWTs.
pub use idv_core::client_assertion::ASSERTION_TYPE as JWT_BEARER_ASSERTION;
/// RFC 8693 §2.1: the token exchange grant type.
pub use idv_core::token_exchange::GRANT_TYPE as GRANT_TOKEN_EXCHANGE;
pub use idv_core::token_exchange::{TOKEN_TYPE_ACCESS, TOKEN_TYPE_JWT};

/// An RFC 6749 §5.2 error (and the RFC 8707 / RFC 9396 / RFC 7009 additions).
#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    /// `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// `invalid_client` (answered with 401).
    #[error("{0}")]
    InvalidClient(String),
    /// `invalid_grant`.
    #[error("{0}")]
    InvalidGrant(String),
    /// `unauthorized_client`.
    #[error("{0}")]
    UnauthorizedClient(String),
    /// `unsupported_grant_type`.
    #[error("{0}")]
    UnsupportedGrantType(String),
    /// `invalid_scope`.
    #[error("{0}")]
    InvalidScope(String),
    /// `invalid_target` (RFC 8707 §2).
    #[error("{0}")]
    InvalidTarget(String),
    /// `invalid_authorization_details` (RFC 9396 §5).
    #[error("{0}")]
    InvalidAuthorizationDetails(String),
    /// `unsupported_token_type` (RFC 7009 §2.2.1).
    #[error("{0}")]
    UnsupportedTokenType(String),
    /// `invalid_dpop_proof` (RFC 9449 §5).
    #[error("{0}")]
    InvalidDpopProof(String),
    /// `use_dpop_nonce` (RFC 9449 §8): retry with the nonce in `DPoP-Nonce`.
    #[error("{0}")]
    UseDpopNonce(String),
    /// Too many failed authentications from this address or under this
    /// client id: answered 429 with `Retry-After` (RFC 6585 §4), with the
    /// code the refusal itself had.
    #[error(
        "too many failed authentications from this address or for this client; retry after {retry_after} s ({detail})"
    )]
    TooManyFailures {
        /// Seconds until a failure is allowed again.
        retry_after: u64,
        /// The refusal's own error code.
        code: &'static str,
        /// The refusal's own description.
        detail: String,
    },
    /// `server_error`: logged, never echoed.
    #[error("{0}")]
    Server(AppError),
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient(_) => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType(_) => "unsupported_grant_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::InvalidTarget(_) => "invalid_target",
            OAuthError::InvalidAuthorizationDetails(_) => "invalid_authorization_details",
            OAuthError::UnsupportedTokenType(_) => "unsupported_token_type",
            OAuthError::InvalidDpopProof(_) => "invalid_dpop_proof",
            OAuthError::UseDpopNonce(_) => "use_dpop_nonce",
            OAuthError::TooManyFailures { code, .. } => code,
            OAuthError::Server(_) => "server_error",
        }
    }
}

impl From<AppError> for OAuthError {
    fn from(e: AppError) -> Self {
        OAuthError::Server(e)
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::Server(e.into())
    }
}

impl From<Refusal> for OAuthError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Scope(d) => OAuthError::InvalidScope(d),
            Refusal::Target(d) => OAuthError::InvalidTarget(d),
            Refusal::AuthorizationDetails(d) => OAuthError::InvalidAuthorizationDetails(d),
        }
    }
}

/// Who is asking to introspect or revoke.
#[derive(Clone, Debug)]
pub enum Caller {
    /// An agent (a resource server, or the token's own client).
    Client(Box<Client>),
    /// An admin API token of the issuer's tenant.
    Admin(Box<super::Caller>),
}

impl Caller {
    fn actor(&self) -> Actor {
        match self {
            Caller::Client(c) => c.actor(),
            Caller::Admin(a) => a.actor(),
        }
    }
}

fn refusal_event(issuer: &Issuer, actor: Actor, action: Action, target: &str, err: &OAuthError, extra: Value) -> Draft {
    let mut details = json!({ "error": err.code(), "error_description": err.to_string() });
    if let (Value::Object(d), Value::Object(e)) = (&mut details, extra) {
        d.extend(e);
    }
    Draft {
        tenant_id: issuer.tenant.id,
        actor,
        action,
        target_type: TargetType::Agent.into(),
        target_id: target.to_owned(),
        outcome: Outcome::Denied,
        reason: None,
        request_id: None,
        details,
    }
}

/// Records a refusal (durably) and returns the error; if the record cannot
/// be written the request fails as a server error instead.
async fn refuse(state: &AppState, mut event: Draft, err: OAuthError) -> OAuthError {
    if matches!(err, OAuthError::Server(_)) {
        return err;
    }
    event.request_id = Some(request::id());
    // Callers that did not authenticate: one by one on the record within
    // their budgets, counted past them (app::throttle).
    if event.actor.kind == ActorKind::Anonymous {
        let (source, now) = (request::peer(), state.clock.now());
        if let Some(retry_after) = state
            .failed_auth
            .spend(event.tenant_id, Some(&event.target_id), source, now)
        {
            state.failed_auth.count(&event, source, now);
            return OAuthError::TooManyFailures {
                retry_after,
                code: err.code(),
                detail: err.to_string(),
            };
        }
    }
    let ctx = Context {
        actor: event.actor.clone(),
        request_id: Some(request::id()),
        note: None,
    };
    match state.store.record(event, ctx).await {
        Ok(()) => err,
        Err(e) => OAuthError::Server(e.into()),
    }
}

fn anonymous(claimed: Option<&str>) -> Actor {
    Actor {
        kind: ActorKind::Anonymous,
        name: claimed.unwrap_or("-").chars().take(128).collect(),
        token_id: None,
    }
}
