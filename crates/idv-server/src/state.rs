//! The shared state handed to every handler and job.

use std::sync::Arc;

use idv_core::Clock;
use idv_core::dpop::Nonces;
use idv_core::seal::Sealer;
use idv_core::secret::SecretHasher;
use idv_store::{Dialect, Store};

use crate::app::cache::Caches;
use crate::config::{Config, Setup};
use crate::metrics::Metrics;

/// Built once in `start` and passed with `Router::with_state`; a handle
/// (every request and job clones it) to the [`Services`].
#[derive(Clone, Debug)]
pub struct AppState(Arc<Services>);

impl std::ops::Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.0
    }
}

/// What every handler and job shares.
#[derive(Debug)]
pub struct Services {
    /// The store.
    pub store: Store,
    /// Keyed hashing of admin tokens.
    pub token_hasher: SecretHasher,
    /// Keyed hashing of console session secrets.
    pub session_hasher: SecretHasher,
    /// Keys the console's CSRF tokens.
    pub csrf_hasher: SecretHasher,
    /// Seals tenants' single sign-on client secrets.
    pub sso_sealer: Arc<Sealer>,
    /// Seals the console's single sign-on transactions (in a cookie).
    pub oidc_sealer: Arc<Sealer>,
    /// Identity providers' discovery documents and keys.
    pub provider_documents: Arc<crate::app::sso::ProviderDocuments>,
    /// The client identity providers are reached with.
    pub idp_http: reqwest::Client,
    /// The timeouts console sessions get.
    pub session_timeouts: idv_core::session::Timeouts,
    /// Keyed hashing of agent credentials (client secrets, API keys).
    pub credential_hasher: SecretHasher,
    /// Seals signing keys at rest.
    pub key_sealer: Arc<Sealer>,
    /// Seals successor secrets waiting for their agent to collect them.
    pub secret_sealer: Arc<Sealer>,
    /// Every in-memory cache of this node (`app::cache`).
    pub caches: Arc<Caches>,
    /// The last verification of the audit chain on this node; locked while
    /// one runs, so only one walks the chain at a time.
    pub chain_check: Arc<tokio::sync::Mutex<Option<crate::app::audit::ChainCheck>>>,
    /// Serialises the creation of a tenant's first signing key on this node.
    pub key_creation: Arc<tokio::sync::Mutex<()>>,
    /// Connections to dynamic-credential target databases.
    pub target_pools: Arc<crate::connectors::postgres::Pools>,
    /// Base URL clients reach us at (no trailing slash).
    pub public_url: Arc<str>,
    /// Access token lifetime in seconds.
    pub token_ttl_secs: i64,
    /// DPoP server nonces (RFC 9449 §8).
    pub dpop_nonces: Arc<Nonces>,
    /// Budgets and counted events for failed authentication.
    pub failed_auth: crate::app::throttle::FailedAuth,
    /// Whether DPoP proofs must carry a server nonce.
    pub dpop_require_nonce: bool,
    /// Algorithm of new signing keys.
    pub signing_alg: idv_core::jose::Alg,
    /// How signing keys rotate.
    pub key_policy: idv_core::keyring::KeyPolicy,
    /// The JWKS `Cache-Control: max-age`, in seconds.
    pub jwks_max_age_secs: u64,
    /// SPIFFE trust domain.
    pub trust_domain: Arc<str>,
    /// Time and ids.
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// For the startup banner: which store is in use (no credentials).
    pub store_description: String,
    /// The client webhook deliveries are sent with.
    pub webhook_http: reqwest::Client,
    /// Which endpoints may be subscribed.
    pub webhook_urls: idv_core::webhook::UrlPolicy,
    /// Webhook deliveries in flight on this node (each a slot).
    pub delivery_slots: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Opens the store and checks the master key against it.
    pub async fn open(config: &Config, setup: &Setup, clock: Arc<dyn Clock>, public_url: &str) -> anyhow::Result<Self> {
        let store = Store::open(&setup.database_url, clock.clone()).await?;
        store.check_master_key(&setup.master_key.check_value()).await?;
        setup.save_new_key()?;
        let store_description = match store.dialect() {
            Dialect::Sqlite => format!("SQLite in {}", config.data_dir.display()),
            Dialect::Postgres => "PostgreSQL".to_owned(),
        };
        let webhook_urls = idv_core::webhook::UrlPolicy {
            http: config.webhook_http,
            hosts: config.webhook_hosts.clone(),
        };
        Ok(Self(Arc::new(Services {
            store,
            token_hasher: SecretHasher::new(&setup.master_key, "admin-token"),
            credential_hasher: SecretHasher::new(&setup.master_key, "credential"),
            session_hasher: SecretHasher::new(&setup.master_key, "console-session"),
            csrf_hasher: SecretHasher::new(&setup.master_key, "console-csrf"),
            session_timeouts: config.console_sessions,
            sso_sealer: Arc::new(Sealer::new(&setup.master_key, "sso-client-secret")),
            oidc_sealer: Arc::new(Sealer::new(&setup.master_key, "console-oidc")),
            provider_documents: Arc::default(),
            idp_http: crate::app::sso::http_client()?,
            key_sealer: Arc::new(Sealer::new(&setup.master_key, "signing-key")),
            secret_sealer: Arc::new(Sealer::new(&setup.master_key, "credential-secret")),
            caches: Arc::new(Caches::default()),
            chain_check: Arc::default(),
            key_creation: Arc::default(),
            target_pools: Arc::default(),
            public_url: public_url.trim_end_matches('/').into(),
            token_ttl_secs: i64::try_from(config.token_ttl.as_secs()).unwrap_or(300),
            dpop_nonces: Arc::new(Nonces::new(setup.master_key.derive("dpop-nonce"))),
            failed_auth: crate::app::throttle::FailedAuth::new(config.auth_failure_limit),
            dpop_require_nonce: config.dpop_require_nonce,
            signing_alg: config.signing_alg,
            key_policy: crate::config::key_policy(config),
            jwks_max_age_secs: crate::config::jwks_max_age_secs(config.signing_key_publish_ahead),
            trust_domain: config.trust_domain.as_str().into(),
            clock,
            metrics: Arc::new(Metrics::default()),
            store_description,
            webhook_http: crate::app::webhooks::http_client(&webhook_urls)?,
            webhook_urls,
            delivery_slots: Arc::new(tokio::sync::Semaphore::new(crate::jobs::DELIVERIES_IN_FLIGHT)),
        })))
    }
}
