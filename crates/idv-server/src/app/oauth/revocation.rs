//! The revocation endpoint (RFC 7009).

use idv_core::access_token::Checked;
use idv_core::audit::Action;
use idv_store::{Context, StoreError};
use serde_json::json;
use uuid::Uuid;

use super::introspection::{Known, recognise};
use super::{Caller, Issuer, OAuthError, refusal_event, refuse};
use crate::AppState;
use crate::app::request;

/// The revocation endpoint (RFC 7009 §2.1): a client may revoke the tokens
/// and API keys issued to it; an admin of the tenant (`operator` or `admin`)
/// may revoke any. Unknown, invalid and expired tokens succeed silently.
pub async fn revoke(state: &AppState, issuer: &Issuer, caller: &Caller, token: &str) -> Result<(), OAuthError> {
    if let Caller::Admin(a) = caller
        && !a.principal.may(idv_core::admin_token::Permission::WriteRegistry)
    {
        return Err(OAuthError::UnauthorizedClient(format!(
            "the `{}` role may not revoke tokens",
            a.principal.role
        )));
    }
    let owner_ok = |agent_id: Uuid| match caller {
        Caller::Client(c) => c.agent.id == agent_id,
        Caller::Admin(_) => true,
    };
    let ctx = Context {
        actor: caller.actor(),
        request_id: Some(request::id()),
        note: None,
    };
    match recognise(state, issuer, token).await? {
        None => Ok(()),
        Some(Known::Jwt { checked, .. }) => {
            let Checked {
                jti,
                sub,
                client_id,
                expires_at,
                ..
            } = checked;
            // RFC 7009 §2.1: the token must have been issued to this client.
            let agent_id = Uuid::parse_str(&client_id).unwrap_or_default();
            if !owner_ok(agent_id) {
                let err = OAuthError::UnauthorizedClient("the token was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    Action::TokenRevoke,
                    &sub,
                    &err,
                    json!({ "jti": jti }),
                );
                return Err(refuse(state, ev, err).await);
            }
            state
                .store
                .revoke_token(issuer.tenant.id, jti, expires_at, sub, ctx)
                .await?;
            Ok(())
        }
        Some(Known::ApiKey(c)) => {
            if !owner_ok(c.agent_id) {
                let err = OAuthError::UnauthorizedClient("the API key was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    Action::CredentialRevoke,
                    &c.agent_id.to_string(),
                    &err,
                    json!({ "credential_id": c.id }),
                );
                return Err(refuse(state, ev, err).await);
            }
            if c.revoked_at.is_some() {
                return Ok(());
            }
            match state.store.revoke_credential(issuer.tenant.id, c.id, ctx).await {
                Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
