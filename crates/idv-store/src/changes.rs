//! Change generations for caches: every committed batch that changed state
//! bumps this node's generation; on PostgreSQL the batch also sends
//! `NOTIFY idv_changes` in its transaction, and every node listens and bumps
//! its own generation when another node commits (DESIGN §3: caches are
//! invalidated across nodes through LISTEN/NOTIFY). A cache entry is good
//! only while the generation it was loaded under is still current.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use sqlx::postgres::PgListener;

/// The channel name.
pub(crate) const CHANNEL: &str = "idv_changes";
/// The payload of a notification whose batch changed signing keys.
pub(crate) const KEYS: &str = "keys";

/// This node's view of how current its caches may be.
#[derive(Debug, Default)]
pub struct Changes {
    generation: AtomicU64,
    /// Bumped only by changes to signing keys (and whenever the listener
    /// (re)connects): key rings are on the token hot path and must not be
    /// reloaded after every unrelated write.
    keys: AtomicU64,
    /// PostgreSQL: whether the listener is connected (no listener, no cache).
    listening: AtomicBool,
    /// How many times the listener connected again after losing its
    /// connection (each time, every cache was emptied).
    reconnects: AtomicU64,
    /// Whether changes by other nodes can go unseen without a listener
    /// (PostgreSQL); SQLite has one writer, this node.
    shared: bool,
}

impl Changes {
    pub(crate) fn new(shared: bool) -> Self {
        Self {
            generation: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            listening: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            shared,
        }
    }

    /// Something changed: every cached entry is stale.
    pub(crate) fn bump(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Signing keys changed: cached key rings are stale.
    pub(crate) fn bump_keys(&self) {
        self.keys.fetch_add(1, Ordering::SeqCst);
    }

    /// The current signing key generation, or `None` while this node cannot
    /// hear other nodes' changes (see [`Changes::current`]).
    pub fn keys(&self) -> Option<u64> {
        if self.shared && !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        Some(self.keys.load(Ordering::SeqCst))
    }

    /// Whether this node hears every change its caches depend on: always on
    /// SQLite; on PostgreSQL while the change listener is connected.
    pub fn listening(&self) -> bool {
        !self.shared || self.listening.load(Ordering::SeqCst)
    }

    /// How many times the change listener reconnected since the start.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::SeqCst)
    }

    /// The current generation, or `None` while caching is unsafe (a shared
    /// database whose change notifications this node is not receiving).
    pub fn current(&self) -> Option<u64> {
        if self.shared && !self.listening.load(Ordering::SeqCst) {
            return None;
        }
        Some(self.generation.load(Ordering::SeqCst))
    }
}

/// Listens for other nodes' commits until the process ends, reconnecting
/// after failures; while disconnected, caching is off.
///
/// Notifications are not queued for a session that is gone: whatever other
/// nodes committed between losing the connection and `LISTEN` on a new one
/// is never heard of. So the listener never reconnects behind our back
/// (sqlx's `recv` would, silently): a lost connection turns caching off at
/// once, and a new one empties every cache (a generation bump) before
/// caching resumes.
pub(crate) async fn listen(url: String, changes: Arc<Changes>) {
    let mut connected_before = false;
    loop {
        match PgListener::connect(&url).await {
            Ok(mut l) => {
                // Report a lost connection (`Ok(None)`) instead of
                // reconnecting inside `try_recv`.
                l.eager_reconnect(false);
                match l.listen(CHANNEL).await {
                    Ok(()) => {
                        // Anything may have changed while nobody listened:
                        // bump before caching resumes.
                        changes.bump();
                        changes.bump_keys();
                        changes.listening.store(true, Ordering::SeqCst);
                        if connected_before {
                            changes.reconnects.fetch_add(1, Ordering::SeqCst);
                            tracing::warn!("change listener reconnected; every cache was emptied");
                        }
                        connected_before = true;
                        let why = loop {
                            match l.try_recv().await {
                                Ok(Some(n)) => {
                                    changes.bump();
                                    if n.payload() == KEYS {
                                        changes.bump_keys();
                                    }
                                }
                                Ok(None) => break "connection lost".to_owned(),
                                Err(e) => break e.to_string(),
                            }
                        };
                        changes.listening.store(false, Ordering::SeqCst);
                        changes.bump();
                        changes.bump_keys();
                        tracing::warn!(error = %why, "change listener disconnected; caches off until it reconnects");
                    }
                    Err(e) => tracing::warn!(error = %e, "change listener cannot listen"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "change listener cannot connect"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations() {
        let local = Changes::new(false);
        assert_eq!(local.current(), Some(0));
        local.bump();
        assert_eq!(local.current(), Some(1));
        assert_eq!(local.keys(), Some(0), "only key changes move the key generation");
        local.bump_keys();
        assert_eq!(local.keys(), Some(1));
        let shared = Changes::new(true);
        assert_eq!(shared.current(), None, "no listener yet: no caching");
        shared.listening.store(true, Ordering::SeqCst);
        assert_eq!(shared.current(), Some(0));
    }
}
