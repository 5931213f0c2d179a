//! Agent credentials: issue (the secret is returned once), list, revoke.

use idv_core::admin_token::Permission;
use idv_core::credential::{Credential, NewCredential};
use idv_core::jose::{Jwk, PublicKey};
use idv_store::{Applied, Command, StoreError};
use uuid::Uuid;

use super::tenants::unexpected;
use super::{AppError, Caller};
use crate::AppState;

/// Issues a credential to agent `agent_id`; returns it and, for kinds with a
/// secret, the secret (shown once, stored only as a keyed hash).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    agent_id: Uuid,
    req: NewCredential,
) -> Result<(Credential, Option<String>), AppError> {
    caller
        .require(state, Permission::WriteRegistry, "credential.create")
        .await?;
    let agent = state
        .store
        .agent(caller.tenant.id, agent_id)
        .await?
        .ok_or_else(|| StoreError::NotFound {
            what: "agent",
            id: agent_id.to_string(),
        })?;
    let jwk = match &req.jwk {
        Some(v) => {
            // Only public keys of the algorithms we verify; private members
            // (`d`) are refused so a private key is never stored by mistake.
            if v.get("d").is_some() {
                return Err(AppError::BadParameter {
                    field: "jwk".into(),
                    detail: "`jwk` must be a public key (it has a private `d` member)".into(),
                });
            }
            let jwk: Jwk = serde_json::from_value(v.clone()).map_err(|e| AppError::BadParameter {
                field: "jwk".into(),
                detail: format!("`jwk` is not a JWK: {e}"),
            })?;
            PublicKey::from_jwk(&jwk).map_err(|e| AppError::BadParameter {
                field: "jwk".into(),
                detail: format!("`jwk`: {e} (Ed25519 `OKP` or P-256 `EC` public keys)"),
            })?;
            Some(jwk)
        }
        None => None,
    };
    let secret = req.kind.format().map(|f| f.generate());
    let hint = match (&secret, req.kind.format()) {
        (Some(s), Some(f)) => Some(f.hint(s)),
        _ => jwk.as_ref().and_then(|j| j.thumbprint().ok()),
    };
    let credential = NewCredential {
        jwk: jwk
            .map(|j| serde_json::to_value(j).map_err(|e| AppError::Internal(e.to_string())))
            .transpose()?,
        ..req
    }
    .into_credential(
        state.clock.new_id(),
        &agent,
        hint,
        state.clock.now(),
        &caller.actor().reference(),
    )?;
    let secret_hash = secret.as_deref().map(|s| state.credential_hasher.hash(s));
    match state
        .store
        .execute(
            Command::CreateCredential {
                credential,
                secret_hash,
            },
            caller.context(),
        )
        .await?
    {
        Applied::Credential(c) => Ok((*c, secret)),
        _ => Err(unexpected()),
    }
}

/// An agent's credentials.
pub async fn list(state: &AppState, caller: &Caller, agent_id: Uuid) -> Result<Vec<Credential>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, "credential.list")
        .await?;
    if state.store.agent(caller.tenant.id, agent_id).await?.is_none() {
        return Err(StoreError::NotFound {
            what: "agent",
            id: agent_id.to_string(),
        }
        .into());
    }
    Ok(state.store.credentials(caller.tenant.id, agent_id).await?)
}

/// One credential.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Credential, AppError> {
    caller
        .require(state, Permission::ReadRegistry, "credential.read")
        .await?;
    state.store.credential(caller.tenant.id, id).await?.ok_or_else(|| {
        StoreError::NotFound {
            what: "credential",
            id: id.to_string(),
        }
        .into()
    })
}

/// Revokes one credential; it stops working at once on every node (each
/// authentication reads it from the store).
pub async fn revoke(state: &AppState, caller: &Caller, id: Uuid) -> Result<Credential, AppError> {
    caller
        .require(state, Permission::WriteRegistry, "credential.revoke")
        .await?;
    match state
        .store
        .execute(
            Command::RevokeCredential {
                tenant_id: caller.tenant.id,
                id,
            },
            caller.context(),
        )
        .await?
    {
        Applied::Credential(c) => Ok(*c),
        _ => Err(unexpected()),
    }
}
