//! Per-tenant signing key rings, cached in memory.
//!
//! A tenant's first token creates its first key (EdDSA unless configured
//! otherwise), sealed under the
//! master key with associated data naming the tenant and key id. Keys are
//! only ever added here (rotation comes with the rotation issue), so a cached
//! ring is refreshed when a token names a key id it does not know, at most
//! once a second per tenant.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use idv_core::Timestamp;
use idv_core::audit::Actor;
use idv_core::jose::{Alg, Jwk, KeyPair, PublicKey};
use idv_core::keyring::{self, SigningKey};
use idv_store::{Command, Context};
use uuid::Uuid;

use super::AppError;
use crate::AppState;

/// How soon an unknown `kid` may trigger another reload.
const RELOAD_MICROS: i64 = 1_000_000;

/// One tenant's keys, ready to use.
#[derive(Debug)]
pub struct TenantKeys {
    /// The key that signs, with its id.
    signer: Option<(String, KeyPair)>,
    /// Published public keys by id.
    public: Vec<(String, PublicKey, Jwk)>,
    /// When this ring was loaded.
    loaded_at: Timestamp,
}

impl TenantKeys {
    /// The signing key and its id.
    pub fn signer(&self) -> Option<(&str, &KeyPair)> {
        self.signer.as_ref().map(|(kid, k)| (kid.as_str(), k))
    }

    /// The published key with id `kid`.
    pub fn public_key(&self, kid: &str) -> Option<&PublicKey> {
        self.public.iter().find(|(k, ..)| k == kid).map(|(_, p, _)| p)
    }

    /// The JWKS document's keys.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.public.iter().map(|(.., j)| j.clone()).collect()
    }
}

/// The cache of every tenant's ring on this node.
#[derive(Debug, Default)]
pub struct KeyCache {
    rings: RwLock<HashMap<Uuid, Arc<TenantKeys>>>,
    /// Serialises first-key creation on this node.
    create: tokio::sync::Mutex<()>,
}

fn cached(state: &AppState, tenant_id: Uuid) -> Option<Arc<TenantKeys>> {
    state.keys.rings.read().ok().and_then(|m| m.get(&tenant_id).cloned())
}

async fn load(state: &AppState, tenant_id: Uuid) -> Result<Arc<TenantKeys>, AppError> {
    let stored = state.store.signing_keys(tenant_id).await?;
    let now = state.clock.now();
    let signer = match keyring::current(&stored) {
        Some(k) => Some((k.kid.clone(), open(state, k)?)),
        None => None,
    };
    let mut public = Vec::new();
    for k in stored.iter().filter(|k| k.is_published(now)) {
        let jwk: Jwk = serde_json::from_value(k.public_jwk.clone())
            .map_err(|e| AppError::Internal(format!("signing key {} has a bad public JWK: {e}", k.kid)))?;
        let key = PublicKey::from_jwk(&jwk)
            .map_err(|e| AppError::Internal(format!("signing key {} has a bad public JWK: {e}", k.kid)))?;
        public.push((k.kid.clone(), key, jwk));
    }
    let ring = Arc::new(TenantKeys {
        signer,
        public,
        loaded_at: now,
    });
    if let Ok(mut m) = state.keys.rings.write() {
        m.insert(tenant_id, ring.clone());
    }
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

/// The tenant's ring, loading it on first use.
pub async fn ring(state: &AppState, tenant_id: Uuid) -> Result<Arc<TenantKeys>, AppError> {
    match cached(state, tenant_id) {
        Some(r) => Ok(r),
        None => load(state, tenant_id).await,
    }
}

/// The public key `kid` of the tenant, reloading the ring once if the id is
/// new to this node (another node may have added it).
pub async fn public_key(state: &AppState, tenant_id: Uuid, kid: &str) -> Result<Option<PublicKey>, AppError> {
    let r = ring(state, tenant_id).await?;
    if let Some(k) = r.public_key(kid) {
        return Ok(Some(k.clone()));
    }
    if state.clock.now().as_micros() - r.loaded_at.as_micros() < RELOAD_MICROS {
        return Ok(None);
    }
    Ok(load(state, tenant_id).await?.public_key(kid).cloned())
}

/// The tenant's ring with a signing key, creating the first key if needed.
pub async fn signing_ring(state: &AppState, tenant_id: Uuid) -> Result<Arc<TenantKeys>, AppError> {
    let r = ring(state, tenant_id).await?;
    if r.signer.is_some() {
        return Ok(r);
    }
    let _guard = state.keys.create.lock().await;
    let r = load(state, tenant_id).await?;
    if r.signer.is_some() {
        return Ok(r);
    }
    let pair = KeyPair::generate(state.signing_alg);
    let kid = state.clock.new_id().to_string();
    let key = SigningKey {
        kid: kid.clone(),
        tenant_id,
        alg: pair.alg().as_str().to_owned(),
        public_jwk: serde_json::to_value(pair.public_jwk(&kid))
            .map_err(|e| AppError::Internal(format!("cannot encode a JWK: {e}")))?,
        sealed_private: state
            .key_sealer
            .seal(&pair.secret_bytes(), &keyring::sealing_aad(tenant_id, &kid)),
        created_at: state.clock.now(),
        retired_at: None,
        publish_until: None,
    };
    let ctx = Context {
        actor: Actor::system("keyring"),
        request_id: None,
        note: None,
    };
    state.store.execute(Command::CreateSigningKey(key), ctx).await?;
    load(state, tenant_id).await
}
