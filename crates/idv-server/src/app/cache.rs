//! Every in-memory cache of this node, and the one rule they follow: a
//! cached value is used only while what it was loaded from provably has not
//! changed. Three kinds, by how that is known:
//!
//! | Kind | Good while | Holds |
//! |---|---|---|
//! | [`GenCache`] | the store's change generation is the one it was loaded under (any committed change on any node moves it: PostgreSQL `LISTEN/NOTIFY`) | credentials and admin tokens by secret hash, agents, token lifetimes, policy revisions; signing-key rings (under the key generation, and at most [`super::keys::RING_MAX_AGE_SECS`] old) |
//! | [`Stamped`] | its own stamp matches the one asked for | built policy engines, by policy revision (and until a grant in them expires) |
//! | [`Immutable`] | always: the rows never change | tenants (never renamed or deleted), compiled policy versions (immutable once stored) |
//!
//! Without a live change listener the generation is unknown, and nothing of
//! the first kind is cached. Every cache is bounded: a full one starts again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

use idv_core::admin_token::AdminToken;
use idv_core::agent::Agent;
use idv_core::credential::Credential;
use idv_core::tenant::Tenant;
use uuid::Uuid;

use super::AppError;
use crate::AppState;

/// Most entries per cache before it is emptied.
const CAPACITY: usize = 200_000;

/// A map whose entries are good for one change generation. It holds only
/// entries of the newest generation it has seen: generations only grow, so
/// an older entry can never be read again, and a map that kept them would
/// grow with every key touched since start (up to [`CAPACITY`]) and
/// double its table as it did. A newer generation starts a new map (the old
/// one's memory is freed), and a full map is emptied.
#[derive(Debug)]
pub struct GenCache<K, V> {
    map: RwLock<(u64, HashMap<K, V>)>,
}

impl<K, V> Default for GenCache<K, V> {
    fn default() -> Self {
        Self {
            map: RwLock::new((0, HashMap::new())),
        }
    }
}

impl<K: Hash + Eq, V: Clone> GenCache<K, V> {
    /// The entry for `k`, if it was loaded under generation `generation`.
    pub fn get(&self, k: &K, generation: Option<u64>) -> Option<V> {
        let g = generation?;
        let m = self.map.read().ok()?;
        if m.0 != g {
            return None;
        }
        m.1.get(k).cloned()
    }

    /// Remembers `v`, loaded under `generation` (a load under an older
    /// generation than the map's is dropped: it is stale already).
    pub fn put(&self, k: K, generation: Option<u64>, v: V) {
        let Some(g) = generation else { return };
        if let Ok(mut m) = self.map.write() {
            if g < m.0 {
                return;
            }
            if g > m.0 || m.1.len() >= CAPACITY {
                *m = (g, HashMap::new());
            }
            m.1.insert(k, v);
        }
    }

    /// The entry for `k` under `generation`, loaded by `load` (and kept) when
    /// it is not held. Read `generation` before the store, so a change
    /// committed in between makes the entry stale at once.
    pub async fn get_or_load<E>(
        &self,
        k: K,
        generation: Option<u64>,
        load: impl Future<Output = Result<V, E>>,
    ) -> Result<V, E> {
        if let Some(v) = self.get(&k, generation) {
            return Ok(v);
        }
        let v = load.await?;
        self.put(k, generation, v.clone());
        Ok(v)
    }

    /// Like [`Self::get_or_load`] for a lookup that may find nothing: only
    /// what was found is kept (so probing unknown keys fills nothing).
    pub async fn find<E>(
        &self,
        k: K,
        generation: Option<u64>,
        load: impl Future<Output = Result<Option<V>, E>>,
    ) -> Result<Option<V>, E> {
        if let Some(v) = self.get(&k, generation) {
            return Ok(Some(v));
        }
        let v = load.await?;
        if let Some(v) = &v {
            self.put(k, generation, v.clone());
        }
        Ok(v)
    }

    /// Entries held (of the newest generation).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.1.len())
    }
}

/// One value per key, each good while its own stamp (e.g. the revision it
/// was built at) is the one asked for.
#[derive(Debug)]
pub struct Stamped<K, S, V> {
    map: RwLock<HashMap<K, (S, V)>>,
}

impl<K, S, V> Default for Stamped<K, S, V> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, S: Eq, V: Clone> Stamped<K, S, V> {
    /// The value for `k` if it carries `stamp`.
    pub fn get(&self, k: &K, stamp: &S) -> Option<V> {
        let m = self.map.read().ok()?;
        m.get(k).filter(|(s, _)| s == stamp).map(|(_, v)| v.clone())
    }

    /// Keeps `v` for `k` under `stamp`, replacing what was there.
    pub fn put(&self, k: K, stamp: S, v: V) {
        if let Ok(mut m) = self.map.write() {
            if m.len() >= CAPACITY && !m.contains_key(&k) {
                *m = HashMap::new();
            }
            m.insert(k, (stamp, v));
        }
    }
}

/// Values of rows that never change once written: good forever, at most
/// `CAP` of them (past it the set starts again; a value is loaded again when
/// next needed).
#[derive(Debug)]
pub struct Immutable<K, V, const CAP: usize = CAPACITY> {
    map: RwLock<HashMap<K, V>>,
}

impl<K, V, const CAP: usize> Default for Immutable<K, V, CAP> {
    fn default() -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq, V: Clone, const CAP: usize> Immutable<K, V, CAP> {
    /// The value for `k`, if held.
    pub fn get(&self, k: &K) -> Option<V> {
        self.map.read().ok()?.get(k).cloned()
    }

    /// Keeps `v` for `k`.
    pub fn put(&self, k: K, v: V) {
        if let Ok(mut m) = self.map.write() {
            if m.len() >= CAP && !m.contains_key(&k) {
                *m = HashMap::new();
            }
            m.insert(k, v);
        }
    }

    /// The value for `k`, loaded by `load` when not held; only what was
    /// found is kept.
    pub async fn find<E>(&self, k: K, load: impl Future<Output = Result<Option<V>, E>>) -> Result<Option<V>, E> {
        if let Some(v) = self.get(&k) {
            return Ok(Some(v));
        }
        let v = load.await?;
        if let Some(v) = &v {
            self.put(k, v.clone());
        }
        Ok(v)
    }
}

/// The caches of one node.
#[derive(Debug, Default)]
pub struct Caches {
    /// Credentials by the keyed hash of their secret.
    pub credentials: GenCache<[u8; 32], Credential>,
    /// Agents by tenant and id.
    pub agents: GenCache<(Uuid, Uuid), Agent>,
    /// Token lifetime settings by tenant.
    pub token_ttls: GenCache<Uuid, Vec<(String, i64)>>,
    /// Admin tokens by the keyed hash of their secret.
    pub admin_tokens: GenCache<[u8; 32], AdminToken>,
    /// Tenants by name.
    pub tenants_by_name: Immutable<String, Tenant>,
    /// Tenants by id.
    pub tenants_by_id: Immutable<Uuid, Tenant>,
    /// Signing-key rings by tenant, under the store's key generation.
    pub key_rings: GenCache<Uuid, std::sync::Arc<super::keys::TenantKeys>>,
    /// Policy states, compiled versions and engines.
    pub engines: super::policies::Engines,
}

/// The credential whose secret hashes to `hash`.
pub async fn credential(state: &AppState, hash: &[u8; 32]) -> Result<Option<Credential>, AppError> {
    let generation = state.store.changes().current();
    (state.caches.credentials)
        .find(*hash, generation, async {
            Ok(state.store.credential_by_hash(hash).await?)
        })
        .await
}

/// The admin token whose secret hashes to `hash`.
pub async fn admin_token(state: &AppState, hash: &[u8; 32]) -> Result<Option<AdminToken>, AppError> {
    let generation = state.store.changes().current();
    (state.caches.admin_tokens)
        .find(*hash, generation, async {
            Ok(state.store.admin_token_by_hash(hash).await?)
        })
        .await
}

/// Agent `id` of tenant `tenant_id`.
pub async fn agent(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Option<Agent>, AppError> {
    let generation = state.store.changes().current();
    (state.caches.agents)
        .find((tenant_id, id), generation, async {
            Ok(state.store.agent(tenant_id, id).await?)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_live_for_one_generation() {
        let c: GenCache<u8, &str> = GenCache::default();
        c.put(1, Some(5), "x");
        assert_eq!(c.get(&1, Some(5)), Some("x"));
        assert_eq!(c.get(&1, Some(6)), None);
        assert_eq!(c.get(&1, None), None);
        c.put(2, None, "y");
        assert_eq!(c.get(&2, Some(5)), None);
    }

    /// Entries of older generations are dropped, not kept until the cap:
    /// the map holds only what can still be read.
    #[test]
    fn only_the_newest_generation_is_held() {
        let c: GenCache<u32, u32> = GenCache::default();
        for g in 1..=1_000_u32 {
            c.put(g, Some(u64::from(g)), g);
            c.put(g + 1_000_000, Some(u64::from(g)), g);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&1_000, Some(1_000)), Some(1_000));
        // A load under an older generation is stale: not stored.
        c.put(7, Some(3), 7);
        assert_eq!(c.get(&7, Some(3)), None);
        assert_eq!(c.len(), 2);
        // Within one generation the cap holds.
        let big: GenCache<usize, ()> = GenCache::default();
        for k in 0..=CAPACITY {
            big.put(k, Some(1), ());
        }
        assert_eq!(big.len(), 1);
    }

    #[test]
    fn stamped_values_need_their_stamp() {
        let c: Stamped<u8, i64, &str> = Stamped::default();
        c.put(1, 3, "rev3");
        assert_eq!(c.get(&1, &3), Some("rev3"));
        assert_eq!(c.get(&1, &4), None);
        c.put(1, 4, "rev4");
        assert_eq!(c.get(&1, &3), None);
        assert_eq!(c.get(&2, &4), None);
    }

    #[test]
    fn immutable_values_are_bounded() {
        let c: Immutable<usize, usize, 4> = Immutable::default();
        for k in 0..4 {
            c.put(k, k);
        }
        assert_eq!(c.get(&3), Some(3));
        c.put(3, 30);
        assert_eq!(c.get(&0), Some(0), "replacing a held key does not empty the set");
        c.put(9, 9);
        assert_eq!(c.get(&0), None);
        assert_eq!(c.get(&9), Some(9));
    }
}
