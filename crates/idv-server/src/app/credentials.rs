//! Agent credentials: issue (the secret is returned once), list, revoke,
//! rotate (by an administrator or by the agent itself), lineage, security
//! events, and the agent's self-service pick-up of a successor.

use idv_core::admin_token::Permission;
use idv_core::agent::Agent;
use idv_core::audit::{Action, Actor, ActorKind};
use idv_core::credential::{self, API_KEY, CLIENT_SECRET, Credential, Kind, NewCredential, Revocation, Rotation};
use idv_core::jose::{Jwk, PublicKey};
use idv_core::lifecycle::Status;
use idv_store::{Context, StoreError};
use serde_json::Value;
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// A checked public JWK for `private_key_jwt`: only public keys of the
/// algorithms we verify; private members (`d`) are refused so a private key
/// is never stored by mistake.
fn public_jwk(v: &Value) -> Result<Value, AppError> {
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
    serde_json::to_value(&jwk).map_err(|e| AppError::Internal(e.to_string()))
}

/// A new secret for `kind`, if it has one: the secret and its hint.
pub(super) fn new_secret(kind: Kind) -> Option<(String, String)> {
    kind.format().map(|f| {
        let s = f.generate();
        let hint = f.hint(&s);
        (s, hint)
    })
}

/// What identifies a sealed successor secret: its tenant and credential.
pub(super) fn sealing_aad(c: &Credential) -> Vec<u8> {
    format!("{}/{}", c.tenant_id, c.id).into_bytes()
}

/// Issues a credential to agent `agent_id`; returns it and, for kinds with a
/// secret, the secret (shown once, stored only as a keyed hash).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    agent_id: Uuid,
    req: NewCredential,
) -> Result<(Credential, Option<String>), AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::CredentialCreate)
        .await?;
    let agent = super::agents::existing(state, caller, agent_id).await?;
    let jwk = req.jwk.as_ref().map(public_jwk).transpose()?;
    let (secret, hint) = match new_secret(req.kind) {
        Some((s, h)) => (Some(s), Some(h)),
        None => (None, jwk.as_ref().and_then(thumbprint)),
    };
    let credential = NewCredential { jwk, ..req }.into_credential(
        state.clock.new_id(),
        &agent,
        hint,
        state.clock.now(),
        &caller.actor().reference(),
    )?;
    let secret_hash = secret.as_deref().map(|s| state.credential_hasher.hash(s));
    let c = state
        .store
        .create_credential(credential, secret_hash, caller.context())
        .await?;
    Ok((c, secret))
}

/// An agent's credentials.
pub async fn list(state: &AppState, caller: &Caller, agent_id: Uuid) -> Result<Vec<Credential>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::CredentialList)
        .await?;
    super::agents::existing(state, caller, agent_id).await?;
    Ok(state.store.credentials(caller.tenant.id, agent_id).await?)
}

/// One credential.
pub async fn get(state: &AppState, caller: &Caller, id: Uuid) -> Result<Credential, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::CredentialRead)
        .await?;
    get_in(state, caller, id).await
}

/// Revokes one credential; it stops working at once on every node (each
/// authentication reads it from the store).
pub async fn revoke(state: &AppState, caller: &Caller, id: Uuid) -> Result<Credential, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::CredentialRevoke)
        .await?;
    get_in(state, caller, id).await?;
    Ok(state
        .store
        .revoke_credential(caller.tenant.id, id, caller.context())
        .await?)
}

/// The RFC 7638 thumbprint of a checked public JWK.
fn thumbprint(v: &Value) -> Option<String> {
    serde_json::from_value::<Jwk>(v.clone()).ok()?.thumbprint().ok()
}

/// A rotation as asked for.
#[derive(Debug)]
pub struct RotateRequest {
    /// Overlap and retirement.
    pub rotation: Rotation,
    /// The successor's public JWK (`private_key_jwt`).
    pub jwk: Option<Value>,
    /// Seal the new secret for the agent instead of answering with it.
    pub pickup: bool,
}

/// A rotation done: both credentials after it and, unless it waits for
/// pick-up, the successor's secret (shown once).
#[derive(Debug)]
pub struct Rotated {
    /// The predecessor (new expiry, or revoked).
    pub predecessor: Credential,
    /// The successor.
    pub successor: Credential,
    /// Its secret, if it has one and it was not sealed for pick-up.
    pub secret: Option<String>,
}

/// Rotates credential `id` (administrators).
pub async fn rotate(state: &AppState, caller: &Caller, id: Uuid, req: RotateRequest) -> Result<Rotated, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::CredentialRotate)
        .await?;
    let old = get_in(state, caller, id).await?;
    rotate_as(state, caller.context(), &caller.actor().reference(), &old, req).await
}

/// Credential `id` of the caller's tenant, or 404 — also when the caller is
/// scoped to their own agents and it is another's agent's.
async fn get_in(state: &AppState, caller: &Caller, id: Uuid) -> Result<Credential, AppError> {
    let c = state.store.credential(caller.tenant.id, id).await?.ok_or_else(|| {
        AppError::from(StoreError::NotFound {
            what: "credential",
            id: id.to_string(),
        })
    })?;
    if caller.owner_scope.is_some() {
        super::agents::existing(state, caller, c.agent_id)
            .await
            .map_err(|_| StoreError::NotFound {
                what: "credential",
                id: id.to_string(),
            })?;
    }
    Ok(c)
}

pub(super) async fn rotate_as(
    state: &AppState,
    ctx: Context,
    created_by: &str,
    old: &Credential,
    req: RotateRequest,
) -> Result<Rotated, AppError> {
    let now = state.clock.now();
    old.check_rotatable(now)
        .map_err(|e| AppError::Store(StoreError::Conflict(e.to_string())))?;
    let jwk = req.jwk.as_ref().map(public_jwk).transpose()?;
    let (secret, hint) = match new_secret(old.kind) {
        Some((s, h)) => (Some(s), Some(h)),
        None => (None, jwk.as_ref().and_then(thumbprint)),
    };
    let successor = old.successor(state.clock.new_id(), hint, jwk, &req.rotation, now, created_by)?;
    if req.pickup && secret.is_none() {
        return Err(AppError::BadParameter {
            field: "pickup".into(),
            detail: "a `private_key_jwt` successor has no secret to collect (the agent holds its private key)".into(),
        });
    }
    let secret_hash = secret.as_deref().map(|s| state.credential_hasher.hash(s));
    let sealed_secret = match (&secret, req.pickup) {
        (Some(s), true) => Some(state.secret_sealer.seal(s.as_bytes(), &sealing_aad(&successor))),
        _ => None,
    };
    let (predecessor, successor) = state
        .store
        .rotate_credential(
            successor,
            secret_hash,
            sealed_secret,
            req.rotation,
            Revocation::Rotated,
            ctx,
        )
        .await?;
    Ok(Rotated {
        predecessor,
        successor,
        secret: secret.filter(|_| !req.pickup),
    })
}

/// The rotation lineage of credential `id`, oldest first.
pub async fn history(state: &AppState, caller: &Caller, id: Uuid) -> Result<Vec<Credential>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::CredentialHistory)
        .await?;
    let c = get_in(state, caller, id).await?;
    let all = state.store.credentials(caller.tenant.id, c.agent_id).await?;
    Ok(credential::lineage(&all, id))
}

/// A security event on an agent: every live credential is revoked at once;
/// client secrets and API keys get successors whose secrets go to the
/// administrator (the agent's own credentials are not trusted now).
pub async fn compromised(
    state: &AppState,
    caller: &Caller,
    agent_id: Uuid,
    reason: String,
) -> Result<(Vec<Credential>, Vec<(Credential, Option<String>)>), AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AgentCompromised)
        .await?;
    if reason.trim().is_empty() {
        return Err(AppError::BadParameter {
            field: "reason".into(),
            detail: "`reason` is required: say what happened".into(),
        });
    }
    super::agents::existing(state, caller, agent_id).await?;
    let now = state.clock.now();
    let live: Vec<Credential> = state
        .store
        .credentials(caller.tenant.id, agent_id)
        .await?
        .into_iter()
        .filter(|c| c.is_usable(now) && c.successor_id.is_none())
        .collect();
    let mut successors = Vec::new();
    let mut secrets = Vec::new();
    for old in live.iter().filter(|c| c.kind != Kind::PrivateKeyJwt) {
        let Some((secret, hint)) = new_secret(old.kind) else {
            continue;
        };
        let s = old.successor(
            state.clock.new_id(),
            Some(hint),
            None,
            &Rotation::immediate(),
            now,
            &caller.actor().reference(),
        )?;
        successors.push((s.clone(), Some(state.credential_hasher.hash(&secret))));
        secrets.push((s.id, secret));
    }
    let (revoked, successors) = state
        .store
        .compromise_agent(caller.tenant.id, agent_id, reason, successors, caller.context())
        .await?;
    let with_secrets = successors
        .into_iter()
        .map(|c| {
            let secret = secrets.iter().find(|(id, _)| *id == c.id).map(|(_, s)| s.clone());
            (c, secret)
        })
        .collect();
    Ok((revoked, with_secrets))
}

/// How an agent authenticates to its self-service endpoints.
#[derive(Debug)]
pub enum Presented {
    /// HTTP Basic with its `client_id` and a client secret.
    ClientSecret {
        /// The agent id.
        client_id: String,
        /// The secret.
        secret: String,
    },
    /// `Bearer` with an API key.
    ApiKey(String),
}

/// The agent and the credential it authenticated with; active agents and
/// usable credentials only.
pub(super) async fn authenticate_self(state: &AppState, p: &Presented) -> Result<(Agent, Credential), AppError> {
    let refused = || AppError::Unauthenticated("the agent credential is unknown, expired or revoked".into());
    let (secret, kind, client_id) = match p {
        Presented::ClientSecret { client_id, secret } => {
            CLIENT_SECRET.check(secret).map_err(|_| refused())?;
            (secret, Kind::ClientSecret, Some(client_id))
        }
        Presented::ApiKey(key) => {
            API_KEY.check(key).map_err(|_| refused())?;
            (key, Kind::ApiKey, None)
        }
    };
    let c = super::cache::credential(state, &state.credential_hasher.hash(secret))
        .await?
        .filter(|c| c.kind == kind && c.is_usable(state.clock.now()))
        .filter(|c| client_id.is_none_or(|id| *id == c.agent_id.to_string()))
        .ok_or_else(refused)?;
    let agent = super::cache::agent(state, c.tenant_id, c.agent_id)
        .await?
        .filter(|a| a.status == Status::Active)
        .ok_or_else(|| AppError::Unauthenticated("the agent is not active".into()))?;
    Ok((agent, c))
}

/// The agent as the audit actor, with the credential it presented.
pub(super) fn agent_context(agent: &Agent, c: &Credential) -> Context {
    Context {
        actor: Actor {
            kind: ActorKind::Agent,
            name: agent.id.to_string(),
            token_id: Some(c.id),
        },
        request_id: Some(super::request::id()),
        note: None,
    }
}

/// The agent collects the successor of the credential it presents: the
/// secret comes out of its seal once and the sealed copy is erased.
pub async fn collect(state: &AppState, p: &Presented) -> Result<(Credential, String), AppError> {
    let (agent, c) = authenticate_self(state, p).await?;
    let (credential, sealed_secret) = state
        .store
        .collect_successor(c.tenant_id, c.id, agent_context(&agent, &c))
        .await?;
    let opened = state
        .secret_sealer
        .open(&sealed_secret, &sealing_aad(&credential))
        .map_err(|e| AppError::Internal(format!("a successor secret does not open: {e}")))?;
    let secret =
        String::from_utf8(opened.to_vec()).map_err(|_| AppError::Internal("a successor secret is not text".into()))?;
    Ok((credential, secret))
}

/// The agent rotates the credential it presents; the new secret is in the
/// answer.
pub async fn self_rotate(state: &AppState, p: &Presented, req: RotateRequest) -> Result<Rotated, AppError> {
    if req.pickup {
        return Err(AppError::BadParameter {
            field: "pickup".into(),
            detail: "`pickup` is for administrators; an agent rotating itself gets its secret now".into(),
        });
    }
    let (agent, c) = authenticate_self(state, p).await?;
    let ctx = agent_context(&agent, &c);
    let by = ctx.actor.reference();
    rotate_as(state, ctx, &by, &c, req).await
}

/// A successor with `retire_on_use` authenticated: its predecessor is
/// revoked now (the caller only asks when the flag is set, so this write
/// happens once per rotation).
pub async fn successor_used(state: &AppState, c: &Credential) -> Result<(), AppError> {
    if !c.retire_on_use {
        return Ok(());
    }
    let ctx = Context {
        request_id: Some(super::request::id()),
        ..Context::system("rotation")
    };
    Ok(state.store.retire_predecessor(c.tenant_id, c.id, ctx).await?)
}
