//! Rotation policies (tenant, class or agent) and the scheduled rotations
//! they drive: each due credential is rotated with the policy's overlap and
//! its new secret sealed for the agent to collect.

use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::credential::{Kind, Retire, Rotation};
use idv_core::rotation::{self, DueRotation, RotationPolicy, Scope};
use idv_store::{Context, Job, StoreError};
use uuid::Uuid;

use super::credentials::{RotateRequest, Rotated, new_secret, rotate_as, sealing_aad};
use super::{AppError, Caller};
use crate::AppState;

/// A policy as asked for.
#[derive(Debug)]
pub struct PolicyRequest {
    /// Rotate this long after a credential was made.
    pub every_secs: Option<u64>,
    /// No credential works longer than this.
    pub max_age_secs: Option<u64>,
    /// Overlap and retirement of each rotation.
    pub rotation: Rotation,
}

fn invalid(e: &rotation::PolicyError) -> AppError {
    let field = match e {
        rotation::PolicyError::Invalid { field, .. } => *field,
        rotation::PolicyError::Scope(_) => "scope",
    };
    AppError::BadParameter {
        field: field.into(),
        detail: e.to_string(),
    }
}

/// Parses a scope from its path parts.
pub fn scope(type_name: &str, id: &str) -> Result<Scope, AppError> {
    Scope::parse(type_name, id).map_err(|e| invalid(&e))
}

/// Sets the policy of `scope`; returns it and how many credentials are now
/// scheduled under it.
pub async fn put(
    state: &AppState,
    caller: &Caller,
    scope: Scope,
    req: PolicyRequest,
) -> Result<(RotationPolicy, usize), AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::RotationPolicyPut)
        .await?;
    let p = RotationPolicy {
        tenant_id: caller.tenant.id,
        scope,
        every_secs: req.every_secs,
        max_age_secs: req.max_age_secs,
        overlap_secs: req.rotation.overlap_secs,
        retire: req.rotation.retire,
        updated_at: state.clock.now(),
        updated_by: caller.actor().reference(),
    };
    p.check().map_err(|e| invalid(&e))?;
    Ok(state.store.put_rotation_policy(p, caller.context()).await?)
}

/// The tenant's policies.
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<RotationPolicy>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::RotationPolicyList)
        .await?;
    Ok(state.store.rotation_policies(caller.tenant.id).await?)
}

/// One policy.
pub async fn get(state: &AppState, caller: &Caller, scope: &Scope) -> Result<RotationPolicy, AppError> {
    list(state, caller)
        .await?
        .into_iter()
        .find(|p| &p.scope == scope)
        .ok_or_else(|| {
            StoreError::NotFound {
                what: "rotation policy",
                id: scope.to_string(),
            }
            .into()
        })
}

/// Removes the policy of `scope`; returns how many credentials are now
/// scheduled under the broader policies that apply instead.
pub async fn delete(state: &AppState, caller: &Caller, scope: Scope) -> Result<usize, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::RotationPolicyDelete)
        .await?;
    Ok(state
        .store
        .delete_rotation_policy(caller.tenant.id, scope, caller.context())
        .await?)
}

/// Runs a due [`idv_store::JOB_ROTATE_CREDENTIAL`] job: rotates the
/// credential under its policy, the new secret sealed for the agent to
/// collect. A credential already rotated or revoked, or no longer under a
/// policy, just finishes the job.
pub async fn rotate_due(state: &AppState, job: Job, ctx: Context) -> Result<(), StoreError> {
    let id = Uuid::parse_str(&job.target_id).map_err(|e| StoreError::Corrupt(format!("job target: {e}")))?;
    let now = state.clock.now();
    let Some(old) = state.store.credential(job.tenant_id, id).await? else {
        return state.store.finish_job(job, ctx).await;
    };
    let agent = state.store.agent(job.tenant_id, old.agent_id).await?;
    let policies = state.store.rotation_policies(job.tenant_id).await?;
    let policy = agent.as_ref().and_then(|a| rotation::effective(&policies, a));
    // Whether the job still has work is the core's rule (no policy any
    // more, a `private_key_jwt` key, or rotated or revoked meanwhile: none).
    let due = DueRotation::new(Some(&old), policy, now);
    let (DueRotation::Rotate(policy), Some((secret, hint))) = (due, new_secret(old.kind)) else {
        return state.store.finish_job(job, ctx).await;
    };
    let successor = old
        .successor(
            state.clock.new_id(),
            Some(hint),
            None,
            &policy.rotation(),
            now,
            &ctx.actor.reference(),
        )
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let sealed = state.secret_sealer.seal(secret.as_bytes(), &sealing_aad(&successor));
    let secret_hash = Some(state.credential_hasher.hash(&secret));
    state
        .store
        .rotate_credential_due(successor, secret_hash, Some(sealed), policy.rotation(), job, ctx)
        .await
}

/// Rotates every live client secret and API key of an agent now, with its
/// rotation policy's overlap (the default without one), the successors
/// sealed for the agent to collect: for signals that call for fresh
/// credentials without cutting the agent off (an administrator's, or the
/// risk engine's). Credentials rotated meanwhile are skipped; a
/// `private_key_jwt` key is the agent's to replace.
pub async fn rotate_agent(
    state: &AppState,
    caller: &Caller,
    agent_id: Uuid,
    reason: String,
) -> Result<Vec<Rotated>, AppError> {
    caller
        .require(state, Permission::WriteRegistry, Action::AgentRotateCredentials)
        .await?;
    if reason.trim().is_empty() {
        return Err(AppError::BadParameter {
            field: "reason".into(),
            detail: "`reason` is required: say why the credentials are rotated".into(),
        });
    }
    let agent = super::agents::existing(state, caller, agent_id).await?;
    let policies = state.store.rotation_policies(caller.tenant.id).await?;
    let rotation = rotation::effective(&policies, &agent)
        .map_or_else(|| Rotation::new(None, Retire::OverlapEnd), |p| Ok(p.rotation()))?;
    let now = state.clock.now();
    let mut ctx = caller.context();
    let mut note = ctx.note.take().unwrap_or_else(|| serde_json::json!({}));
    if let Some(m) = note.as_object_mut() {
        m.insert("cause".into(), "rotate_credentials".into());
        m.insert("reason".into(), reason.into());
    }
    ctx.note = Some(note);
    let mut done = Vec::new();
    for c in state.store.credentials(caller.tenant.id, agent_id).await? {
        if c.kind == Kind::PrivateKeyJwt || c.check_rotatable(now).is_err() {
            continue;
        }
        let req = RotateRequest {
            rotation: rotation.clone(),
            jwk: None,
            pickup: true,
        };
        match rotate_as(state, ctx.clone(), &caller.actor().reference(), &c, req).await {
            Ok(r) => done.push(r),
            // Rotated by someone else meanwhile: it is fresh already.
            Err(AppError::Store(StoreError::Conflict(_))) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}
