//! The shared state handed to every handler and job.

use std::sync::Arc;

use idv_core::Clock;
use idv_core::secret::SecretHasher;
use idv_store::{Dialect, Store};

use crate::config::{Config, Setup};
use crate::metrics::Metrics;

/// Built once in `start` and passed with `Router::with_state`.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The store.
    pub store: Store,
    /// Keyed hashing of admin tokens.
    pub token_hasher: SecretHasher,
    /// SPIFFE trust domain.
    pub trust_domain: Arc<str>,
    /// Time and ids.
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// For the startup banner: which store is in use (no credentials).
    pub store_description: String,
}

impl AppState {
    /// Opens the store and checks the master key against it.
    pub async fn open(config: &Config, setup: &Setup, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let store = Store::open(&setup.database_url, clock.clone()).await?;
        store.check_master_key(&setup.master_key.check_value()).await?;
        setup.save_new_key()?;
        let store_description = match store.dialect() {
            Dialect::Sqlite => format!("SQLite in {}", config.data_dir.display()),
            Dialect::Postgres => "PostgreSQL".to_owned(),
        };
        Ok(Self {
            store,
            token_hasher: SecretHasher::new(&setup.master_key, "admin-token"),
            trust_domain: config.trust_domain.as_str().into(),
            clock,
            metrics: Arc::new(Metrics::default()),
            store_description,
        })
    }
}
