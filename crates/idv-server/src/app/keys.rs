//! Per-tenant signing key rings, cached in memory, and their rotation.
//!
//! A tenant's first token creates its first key (EdDSA unless configured
//! otherwise), sealed under the master key with associated data naming the
//! tenant and key id. From then on a durable `keys.rotate` job per tenant
//! publishes the next key `publish_ahead` before it takes over, records the
//! takeover and the old key's retirement, and removes retired keys from the
//! JWKS once every token they signed has expired (`idv_core::keyring`).
//!
//! A cached ring chooses its signer by time (`activates_at`), so every node
//! switches to a next key at the same instant without hearing of it then. A
//! ring is reloaded when signing keys change on any node (the store's key
//! generation: PostgreSQL `LISTEN/NOTIFY`), after [`RING_MAX_AGE_SECS`]
//! whatever happens, and when a token names a key id it does not know (at
//! most once a second per tenant).

use std::sync::Arc;

use idv_core::Timestamp;
use idv_core::admin_token::Permission;
use idv_core::audit::Action;
use idv_core::jose::{Alg, Jwk, KeyPair, PublicKey};
use idv_core::keyring::{self, KeyState, Manual, SigningKey};
use idv_store::{Context, Job, KeyRequest, StoreError};
use uuid::Uuid;

use super::{AppError, Caller};
use crate::AppState;

/// How soon an unknown `kid` may trigger another reload.
const RELOAD_MICROS: i64 = 1_000_000;

/// The longest a node uses a cached ring without looking at the store
/// again, even when it heard of no change (and so the longest a node whose
/// change listener is down can miss an emergency rotation by another node).
pub const RING_MAX_AGE_SECS: i64 = 30;

/// One key of a ring, ready to use.
#[derive(Debug)]
struct RingKey {
    /// Its row (without the sealed private half).
    meta: SigningKey,
    /// The opened private half, for keys that may still sign.
    pair: Option<KeyPair>,
    /// The public half.
    public: PublicKey,
    /// As published.
    jwk: Jwk,
}

/// One tenant's keys, ready to use.
#[derive(Debug)]
pub struct TenantKeys {
    keys: Vec<RingKey>,
    /// The rows, for [`keyring::signer`].
    metas: Vec<SigningKey>,
    /// When this ring was loaded.
    loaded_at: Timestamp,
}

impl TenantKeys {
    /// The key that signs at `now`, with its id.
    pub fn signer(&self, now: Timestamp) -> Option<(&str, &KeyPair)> {
        let s = keyring::signer(&self.metas, now)?;
        let k = self.keys.iter().find(|k| k.meta.kid == s.kid)?;
        k.pair.as_ref().map(|p| (k.meta.kid.as_str(), p))
    }

    /// The key with id `kid`, if it is published at `now`.
    pub fn public_key(&self, kid: &str, now: Timestamp) -> Option<&PublicKey> {
        self.keys
            .iter()
            .find(|k| k.meta.kid == kid && k.meta.is_published(now))
            .map(|k| &k.public)
    }

    /// The JWKS document's keys at `now`: the next key, the current one and
    /// the retired ones whose tokens may still be valid.
    pub fn jwks(&self, now: Timestamp) -> Vec<Jwk> {
        self.keys
            .iter()
            .filter(|k| k.meta.is_published(now))
            .map(|k| k.jwk.clone())
            .collect()
    }

    /// Whether it is young enough to use without looking at the store
    /// (the cache already checks the key generation).
    fn is_young(&self, now: Timestamp) -> bool {
        now.as_micros() - self.loaded_at.as_micros() < RING_MAX_AGE_SECS * 1_000_000 && now >= self.loaded_at
    }
}

fn bad_jwk(kid: &str, e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("signing key {kid} has a bad public JWK: {e}"))
}

async fn load(state: &AppState, tenant_id: Uuid) -> Result<Arc<TenantKeys>, AppError> {
    // Read the generation before the store: a change committed in between
    // makes this ring stale at once.
    let generation = state.store.changes().keys();
    let stored = state.store.signing_keys(tenant_id).await?;
    let now = state.clock.now();
    let mut keys = Vec::new();
    let mut metas = Vec::new();
    for k in stored.into_iter().filter(|k| k.is_published(now)) {
        let jwk: Jwk = serde_json::from_value(k.public_jwk.clone()).map_err(|e| bad_jwk(&k.kid, e))?;
        let public = PublicKey::from_jwk(&jwk).map_err(|e| bad_jwk(&k.kid, e))?;
        let pair = match k.is_retired(now) {
            false => Some(open(state, &k)?),
            true => None,
        };
        let meta = SigningKey {
            sealed_private: Vec::new(),
            ..k
        };
        metas.push(meta.clone());
        keys.push(RingKey {
            meta,
            pair,
            public,
            jwk,
        });
    }
    let ring = Arc::new(TenantKeys {
        keys,
        metas,
        loaded_at: now,
    });
    state.caches.key_rings.put(tenant_id, generation, ring.clone());
    Ok(ring)
}

fn open(state: &AppState, k: &SigningKey) -> Result<KeyPair, AppError> {
    let alg: Alg = k
        .alg
        .parse()
        .map_err(|_| AppError::Internal(format!("signing key {} has an unknown algorithm", k.kid)))?;
    let secret = state
        .key_sealer
        .open(&k.sealed_private, &keyring::sealing_aad(k.tenant_id, &k.kid))
        .map_err(|_| {
            AppError::Internal(format!(
                "signing key {} does not open under this master key for this tenant",
                k.kid
            ))
        })?;
    KeyPair::from_secret_bytes(alg, &secret)
        .map_err(|_| AppError::Internal(format!("signing key {} is damaged", k.kid)))
}

/// The tenant's ring, loading it on first use or when it is stale.
pub async fn ring(state: &AppState, tenant_id: Uuid) -> Result<Arc<TenantKeys>, AppError> {
    match state.caches.key_rings.get(&tenant_id, state.store.changes().keys()) {
        Some(r) if r.is_young(state.clock.now()) => Ok(r),
        _ => load(state, tenant_id).await,
    }
}

/// The published key `kid` of the tenant, reloading the ring once if the id
/// is new to this node (another node may have added it).
pub async fn public_key(state: &AppState, tenant_id: Uuid, kid: &str) -> Result<Option<PublicKey>, AppError> {
    let r = ring(state, tenant_id).await?;
    let now = state.clock.now();
    if let Some(k) = r.public_key(kid, now) {
        return Ok(Some(k.clone()));
    }
    if now.as_micros() - r.loaded_at.as_micros() < RELOAD_MICROS {
        return Ok(None);
    }
    Ok(load(state, tenant_id).await?.public_key(kid, now).cloned())
}

/// The tenant's ring with a signing key, creating the first key if needed.
pub async fn signing_ring(state: &AppState, tenant_id: Uuid) -> Result<Arc<TenantKeys>, AppError> {
    let r = ring(state, tenant_id).await?;
    if r.signer(state.clock.now()).is_some() {
        return Ok(r);
    }
    let _guard = state.key_creation.lock().await;
    let r = load(state, tenant_id).await?;
    if r.signer(state.clock.now()).is_some() {
        return Ok(r);
    }
    advance(state, tenant_id, None, "first_use", None, system_ctx()).await?;
    load(state, tenant_id).await
}

fn system_ctx() -> Context {
    Context::system("keyring")
}

/// A fresh key pair for the tenant, sealed, as a candidate for the ring.
fn candidate(state: &AppState, tenant_id: Uuid) -> Result<SigningKey, AppError> {
    let pair = KeyPair::generate(state.signing_alg);
    let kid = state.clock.new_id().to_string();
    let now = state.clock.now();
    Ok(SigningKey {
        kid: kid.clone(),
        tenant_id,
        alg: pair.alg().as_str().to_owned(),
        public_jwk: serde_json::to_value(pair.public_jwk(&kid))
            .map_err(|e| AppError::Internal(format!("cannot encode a JWK: {e}")))?,
        sealed_private: state
            .key_sealer
            .seal(&pair.secret_bytes(), &keyring::sealing_aad(tenant_id, &kid)),
        created_at: now,
        activates_at: now,
        retired_at: None,
        publish_until: None,
        removed_at: None,
    })
}

/// Records what is due on the tenant's ring (or a manual rotation) in one
/// commit with its events; returns the keys after and the id of the key it
/// made, if it made one.
async fn advance(
    state: &AppState,
    tenant_id: Uuid,
    manual: Option<Manual>,
    cause: &'static str,
    reason: Option<String>,
    ctx: Context,
) -> Result<(Vec<SigningKey>, Option<String>), AppError> {
    let candidate = candidate(state, tenant_id)?;
    let kid = candidate.kid.clone();
    let req = KeyRequest {
        tenant_id,
        policy: state.key_policy,
        manual,
        candidate,
        cause,
        reason,
    };
    let keys = state.store.advance_signing_keys(req, ctx).await?;
    let made = keys.iter().any(|k| k.kid == kid).then_some(kid);
    Ok((keys, made))
}

/// Runs a due [`idv_store::JOB_ROTATE_SIGNING_KEYS`] job: records what time
/// did to the tenant's ring and publishes its next key when rotation is due.
/// The job is replaced in the same commit by one due when the ring next
/// needs looking at.
pub async fn rotate_due(state: &AppState, job: Job, ctx: Context) -> Result<(), AppError> {
    advance(state, job.tenant_id, None, "schedule", None, ctx)
        .await
        .map(drop)
}

/// At start: every tenant's ring is looked at soon under this node's
/// settings (a changed rotation period applies from the next run).
pub async fn schedule_all(state: &AppState) -> Result<(), StoreError> {
    state.store.schedule_key_rotations(system_ctx()).await
}

/// A tenant's keys with their state now, oldest first (never private
/// material).
pub async fn list(state: &AppState, caller: &Caller) -> Result<Vec<(SigningKey, KeyState)>, AppError> {
    caller
        .require(state, Permission::ReadRegistry, Action::SigningKeyList)
        .await?;
    let keys = state.store.signing_keys(caller.tenant.id).await?;
    Ok(with_states(keys, state.clock.now()))
}

fn with_states(keys: Vec<SigningKey>, now: Timestamp) -> Vec<(SigningKey, KeyState)> {
    let states: Vec<KeyState> = keys.iter().map(|k| keyring::state(k, &keys, now)).collect();
    keys.into_iter()
        .zip(states)
        .map(|(k, s)| {
            (
                SigningKey {
                    sealed_private: Vec::new(),
                    ..k
                },
                s,
            )
        })
        .collect()
}

/// A manual rotation as asked for.
#[derive(Clone, Debug, Default)]
pub struct RotateRequest {
    /// Publish the new key this long before it signs (default: the
    /// server's `publish_ahead`).
    pub publish_ahead_secs: Option<u64>,
    /// The new key signs at once; the old one is retired now.
    pub immediate: bool,
    /// Compromise: also remove the old key from the JWKS at once, so every
    /// token it signed stops verifying (implies `immediate`).
    pub revoke_old: bool,
    /// Why, for the audit trail.
    pub reason: Option<String>,
}

/// The shortest and longest lead a manual rotation may ask for.
const MIN_AHEAD_SECS: u64 = 60;
const MAX_AHEAD_SECS: u64 = 30 * 24 * 3600;

/// Rotates the tenant's signing key now (role `admin`); returns the new
/// key's id and every key with its state after.
pub async fn rotate(
    state: &AppState,
    caller: &Caller,
    req: RotateRequest,
) -> Result<(String, Vec<(SigningKey, KeyState)>), AppError> {
    caller
        .require(state, Permission::ManageTrust, Action::SigningKeyRotate)
        .await?;
    let bad = |field: &str, detail: &str| AppError::BadParameter {
        field: field.into(),
        detail: detail.into(),
    };
    if let Some(r) = &req.reason
        && (r.chars().count() > 1024 || r.chars().any(char::is_control))
    {
        return Err(bad("reason", "`reason` must be at most 1024 printable characters"));
    }
    let manual = match (req.immediate || req.revoke_old, req.publish_ahead_secs) {
        (true, Some(_)) => {
            return Err(bad(
                "publish_ahead",
                "`publish_ahead` cannot be combined with `immediate` or `revoke_old`",
            ));
        }
        (true, None) => Manual::Immediate {
            revoke_old: req.revoke_old,
        },
        (false, ahead) => {
            let secs = ahead.unwrap_or(u64::try_from(state.key_policy.publish_ahead_secs).unwrap_or(MIN_AHEAD_SECS));
            if !(MIN_AHEAD_SECS..=MAX_AHEAD_SECS).contains(&secs) {
                return Err(bad(
                    "publish_ahead",
                    "`publish_ahead` must be between 1 minute and 30 days (or use `immediate`)",
                ));
            }
            Manual::Ahead(i64::try_from(secs).unwrap_or(i64::MAX))
        }
    };
    let cause = if req.revoke_old { "compromise" } else { "manual" };
    let (keys, made) = advance(
        state,
        caller.tenant.id,
        Some(manual),
        cause,
        req.reason,
        caller.context(),
    )
    .await?;
    // A manual rotation always makes a key (or is refused).
    let made = made.ok_or_else(|| StoreError::Corrupt("the store answered with an unexpected result".into()))?;
    Ok((made, with_states(keys, state.clock.now())))
}
