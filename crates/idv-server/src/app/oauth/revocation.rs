//! The revocation endpoint (RFC 7009).

use idv_core::access_token::Checked;
use idv_store::{Applied, Command, Context, StoreError};
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
                    "token.revoke",
                    &sub,
                    &err,
                    json!({ "jti": jti }),
                );
                return Err(refuse(state, ev, err).await);
            }
            let cmd = Command::RevokeToken {
                tenant_id: issuer.tenant.id,
                jti,
                expires_at,
                subject: sub,
            };
            state.store.execute(cmd, ctx).await?;
            Ok(())
        }
        Some(Known::ApiKey(c)) => {
            if !owner_ok(c.agent_id) {
                let err = OAuthError::UnauthorizedClient("the API key was not issued to this client".into());
                let ev = refusal_event(
                    issuer,
                    caller.actor(),
                    "credential.revoke",
                    &c.agent_id.to_string(),
                    &err,
                    json!({ "credential_id": c.id }),
                );
                return Err(refuse(state, ev, err).await);
            }
            if c.revoked_at.is_some() {
                return Ok(());
            }
            let cmd = Command::RevokeCredential {
                tenant_id: issuer.tenant.id,
                id: c.id,
            };
            match state.store.execute(cmd, ctx).await {
                Ok(Applied::Credential(_)) | Err(StoreError::Conflict(_)) => Ok(()),
                Ok(_) => Ok(()),
                Err(e) => Err(e.into()),
            }
        }
    }
}
