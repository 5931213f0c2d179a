//! Hot-path caches of what the store holds (credentials by secret hash,
//! agents by id), valid only while the store's change generation is the one
//! they were loaded under: any committed change on this node, or on another
//! node (PostgreSQL LISTEN/NOTIFY), empties them in effect. Without a live
//! change listener nothing is cached.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

use idv_core::admin_token::AdminToken;
use idv_core::agent::Agent;
use idv_core::credential::Credential;
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

    /// Entries held (of the newest generation).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.1.len())
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
    /// Policy engines by tenant.
    pub engines: super::policies::Engines,
}

/// The credential whose secret hashes to `hash`.
pub async fn credential(state: &AppState, hash: &[u8; 32]) -> Result<Option<Credential>, AppError> {
    // Read the generation before the store: a change committed in between
    // makes the entry stale at once.
    let generation = state.store.changes().current();
    if let Some(c) = state.caches.credentials.get(hash, generation) {
        return Ok(Some(c));
    }
    let c = state.store.credential_by_hash(hash).await?;
    if let Some(c) = &c {
        state.caches.credentials.put(*hash, generation, c.clone());
    }
    Ok(c)
}

/// The admin token whose secret hashes to `hash`.
pub async fn admin_token(state: &AppState, hash: &[u8; 32]) -> Result<Option<AdminToken>, AppError> {
    let generation = state.store.changes().current();
    if let Some(t) = state.caches.admin_tokens.get(hash, generation) {
        return Ok(Some(t));
    }
    let t = state.store.admin_token_by_hash(hash).await?;
    if let Some(t) = &t {
        state.caches.admin_tokens.put(*hash, generation, t.clone());
    }
    Ok(t)
}

/// Agent `id` of tenant `tenant_id`.
pub async fn agent(state: &AppState, tenant_id: Uuid, id: Uuid) -> Result<Option<Agent>, AppError> {
    let generation = state.store.changes().current();
    if let Some(a) = state.caches.agents.get(&(tenant_id, id), generation) {
        return Ok(Some(a));
    }
    let a = state.store.agent(tenant_id, id).await?;
    if let Some(a) = &a {
        state.caches.agents.put((tenant_id, id), generation, a.clone());
    }
    Ok(a)
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
}
