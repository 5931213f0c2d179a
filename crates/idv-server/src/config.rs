//! Configuration: the settings (flags, `IDV_*` environment variables and the
//! configuration file, declared once in [`settings`]), the [`Config`] they
//! give, and the zero-config data directory with its master key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use idv_core::secret::MasterKey;

mod file;
pub mod settings;

pub use file::DEFAULT_FILE;
pub use settings::Settings;

/// Everything the server needs to start: the [`Settings`] checked and
/// typed (each field's flag, environment variable, default and meaning are
/// declared there), plus what tests and benchmarks set directly.
#[derive(Clone, Debug)]
pub struct Config {
    /// Listen address ([`Settings::listen`]).
    pub listen: SocketAddr,
    /// Data directory ([`Settings::data_dir`]).
    pub data_dir: PathBuf,
    /// PostgreSQL (or SQLite) URL; `None`: SQLite in the data directory
    /// ([`Settings::database_url`]).
    pub database_url: Option<String>,
    /// Initial admin token for automation ([`settings::BOOTSTRAP_TOKEN`]).
    pub bootstrap_token: Option<String>,
    /// Master key as 64 hex digits ([`settings::MASTER_KEY`]).
    pub master_key: Option<String>,
    /// File holding the master key ([`Settings::master_key_file`]).
    pub master_key_file: Option<PathBuf>,
    /// SPIFFE trust domain for agent URIs ([`Settings::trust_domain`]).
    pub trust_domain: String,
    /// How often due jobs are polled (fixed; tests poll faster).
    pub job_interval: Duration,
    /// How long a node's claim on a job lasts without renewal, within
    /// [`JOB_LEASE_RANGE`] ([`Settings::job_lease`]). A live node renews its
    /// claims every third of it; a dead node's jobs go to another node when
    /// it ends.
    pub job_lease: Duration,
    /// Base URL clients reach this server at, for issuer URLs and metadata;
    /// `None`: `http://<listen address>` ([`Settings::public_url`]).
    pub public_url: Option<String>,
    /// Access token lifetime, at most [`MAX_TOKEN_TTL`]
    /// ([`Settings::token_ttl`]).
    pub token_ttl: Duration,
    /// Require a server nonce in DPoP proofs (RFC 9449 §8;
    /// [`Settings::dpop_require_nonce`]).
    pub dpop_require_nonce: bool,
    /// Algorithm of newly created signing keys ([`Settings::signing_alg`]).
    pub signing_alg: idv_core::jose::Alg,
    /// How long each signing key signs before the next one takes over;
    /// `None`: no scheduled rotation, manual only
    /// ([`Settings::signing_key_rotation`]).
    pub signing_key_rotation: Option<Duration>,
    /// How long before it signs the next key is published in the JWKS
    /// ([`Settings::signing_key_publish_ahead`]). The JWKS
    /// `Cache-Control: max-age` is derived from it ([`jwks_max_age_secs`]).
    pub signing_key_publish_ahead: Duration,
    /// Which plain-`http://` webhook endpoints may be subscribed
    /// ([`Settings::webhook_http`]); `https://` always may.
    pub webhook_http: idv_core::webhook::HttpPolicy,
    /// If not empty, the only hosts webhooks are sent to
    /// ([`Settings::webhook_hosts`]).
    pub webhook_hosts: Vec<String>,
    /// Failed authentications allowed per minute from one source address
    /// ([`Settings::auth_failure_limit`]): a third of it at once; a sixth
    /// of it per claimed client id. Past it, 429 and counted audit events
    /// ([`crate::app::throttle`]).
    pub auth_failure_limit: u32,
    /// Limits on client connections.
    pub connections: ConnectionLimits,
    /// Console session timeouts ([`Settings::console_idle_timeout`],
    /// [`Settings::console_session_lifetime`]).
    pub console_sessions: idv_core::session::Timeouts,
}

/// Limits on client connections, so that slow or idle clients cannot hold
/// the server's connections (slowloris).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's headers, counted from the
    /// first byte it may send: on a kept-alive connection that is also how
    /// long it may stay idle between requests
    /// ([`Settings::http_header_timeout`]).
    pub header_timeout: Duration,
    /// Open connections from one client address (IPv6: one /64) beyond which
    /// a new one is closed at once ([`Settings::http_max_connections_per_ip`]).
    pub max_per_ip: usize,
    /// Open connections in all beyond which a new one is closed at once
    /// ([`Settings::http_max_connections`]).
    pub max: usize,
}

/// Default header (and keep-alive idle) timeout.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on connections from one client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 256;
/// Default bound on connections in all.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The longest header timeout.
pub const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(300);

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_per_ip: DEFAULT_MAX_CONNECTIONS_PER_IP,
            max: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ConnectionLimits {
    /// Refuses limits the server cannot run with.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.header_timeout < Duration::from_secs(1) || self.header_timeout > MAX_HEADER_TIMEOUT {
            bail!("the HTTP header timeout must be between 1 second and 5 minutes");
        }
        if self.max == 0 || self.max_per_ip == 0 {
            bail!("the HTTP connection limits must be at least 1");
        }
        Ok(())
    }
}

/// The hard maximum access token lifetime: self-contained tokens cannot be
/// recalled from resource servers that verify them locally, so they stay short.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Default job lease.
pub const DEFAULT_JOB_LEASE: Duration = Duration::from_secs(15);
/// The shortest and longest job lease (whole seconds: renewals every third
/// of it, at least a second apart).
pub const JOB_LEASE_RANGE: std::ops::RangeInclusive<Duration> = Duration::from_secs(3)..=Duration::from_secs(3600);

/// Default signing key rotation period.
pub const DEFAULT_KEY_ROTATION: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default lead with which a next signing key is published.
pub const DEFAULT_KEY_PUBLISH_AHEAD: Duration = Duration::from_secs(3600);
/// The shortest publication lead: longer than a node's cached ring lives
/// (`app::keys::RING_MAX_AGE_SECS`), so every node has the next key before
/// it signs even without change notifications.
pub const MIN_KEY_PUBLISH_AHEAD: Duration = Duration::from_secs(60);
/// The longest publication lead.
pub const MAX_KEY_PUBLISH_AHEAD: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest JWKS `max-age`.
pub const MAX_JWKS_MAX_AGE_SECS: u64 = 300;

/// The JWKS `Cache-Control: max-age` for a publication lead: a tenth of the
/// lead, at most five minutes, so a resource server that honours it fetches
/// the JWKS about ten times between a next key's publication and its first
/// token (and a revoked key leaves its cache within five minutes).
pub fn jwks_max_age_secs(publish_ahead: Duration) -> u64 {
    (publish_ahead.as_secs() / 10).clamp(1, MAX_JWKS_MAX_AGE_SECS)
}

/// The key lifecycle settings for a configuration: a retired key stays
/// published for the longest access token lifetime, plus the verification
/// leeway and how stale a node's cached ring may be (a node that missed an
/// emergency rotation can sign with the old key that much later).
pub fn key_policy(config: &Config) -> idv_core::keyring::KeyPolicy {
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    idv_core::keyring::KeyPolicy {
        rotate_every_secs: config.signing_key_rotation.map(secs),
        publish_ahead_secs: secs(config.signing_key_publish_ahead),
        publish_after_secs: secs(MAX_TOKEN_TTL)
            + idv_core::access_token::LEEWAY_SECS
            + crate::app::keys::RING_MAX_AGE_SECS,
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8700)),
            data_dir: PathBuf::from("idv-data"),
            database_url: None,
            bootstrap_token: None,
            master_key: None,
            master_key_file: None,
            trust_domain: "idv.local".into(),
            job_interval: Duration::from_secs(1),
            job_lease: DEFAULT_JOB_LEASE,
            public_url: None,
            token_ttl: Duration::from_secs(300),
            dpop_require_nonce: false,
            signing_alg: idv_core::jose::Alg::EdDSA,
            signing_key_rotation: Some(DEFAULT_KEY_ROTATION),
            signing_key_publish_ahead: DEFAULT_KEY_PUBLISH_AHEAD,
            webhook_http: idv_core::webhook::HttpPolicy::Loopback,
            webhook_hosts: Vec::new(),
            auth_failure_limit: crate::app::throttle::DEFAULT_LIMIT,
            connections: ConnectionLimits::default(),
            console_sessions: idv_core::session::Timeouts::default(),
        }
    }
}

/// What preparing the data directory produced.
#[derive(Debug)]
pub struct Setup {
    /// The master key.
    pub master_key: MasterKey,
    /// The database URL to open.
    pub database_url: String,
    /// Where to save a newly generated master key, once the store has
    /// accepted it (so a node pointed at another deployment's database does
    /// not leave a wrong key behind).
    pub new_key_file: Option<PathBuf>,
}

impl Setup {
    /// Saves a newly generated master key (mode 0600); call after the store
    /// accepted it.
    pub fn save_new_key(&self) -> anyhow::Result<()> {
        match &self.new_key_file {
            Some(path) => write_private(path, &self.master_key.to_hex()),
            None => Ok(()),
        }
    }
}

/// Creates the data directory (mode 0700) and master key file (mode 0600)
/// when needed, and works out the database URL.
pub fn prepare(config: &Config) -> anyhow::Result<Setup> {
    idv_core::agent::validate_trust_domain(&config.trust_domain).map_err(|e| anyhow::anyhow!("{e}"))?;
    if config.token_ttl.is_zero() || config.token_ttl > MAX_TOKEN_TTL {
        bail!("the access token lifetime must be between 1 second and 1 hour");
    }
    if !JOB_LEASE_RANGE.contains(&config.job_lease) || config.job_lease.subsec_nanos() != 0 {
        bail!("the job lease must be whole seconds between 3 seconds and 1 hour");
    }
    let ahead = config.signing_key_publish_ahead;
    if !(MIN_KEY_PUBLISH_AHEAD..=MAX_KEY_PUBLISH_AHEAD).contains(&ahead) {
        bail!("the signing key publication lead must be between 1 minute and 30 days");
    }
    if let Some(every) = config.signing_key_rotation
        && (every < ahead.saturating_mul(2) || every < Duration::from_secs(3600))
    {
        bail!("the signing key rotation period must be at least 1 hour and twice the publication lead");
    }
    let t = config.console_sessions;
    if !(60..=86_400).contains(&t.idle_secs)
        || !(300..=7 * 86_400).contains(&t.absolute_secs)
        || t.idle_secs > t.absolute_secs
    {
        bail!(
            "the console idle timeout must be between 1 minute and 24 hours, the session lifetime between \
             5 minutes and 7 days, and the idle timeout at most the lifetime"
        );
    }
    if let Some(url) = &config.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        bail!("the public URL must start with http:// or https://");
    }
    idv_core::webhook::UrlPolicy {
        http: config.webhook_http,
        hosts: config.webhook_hosts.clone(),
    }
    .check()
    .map_err(|e| anyhow::anyhow!("--webhook-hosts: {e}"))?;
    config.connections.check()?;
    create_private_dir(&config.data_dir)?;
    let mut new_key_file = None;
    let master_key = match (&config.master_key, &config.master_key_file) {
        (Some(hex), _) => MasterKey::from_hex(hex).context("IDV_MASTER_KEY")?,
        (None, Some(path)) => read_key(path)?,
        (None, None) => {
            let path = config.data_dir.join("master.key");
            if path.exists() {
                read_key(&path)?
            } else {
                new_key_file = Some(path);
                MasterKey::generate()
            }
        }
    };
    let database_url = match &config.database_url {
        Some(url) => url.clone(),
        None => {
            // Created owner-only before SQLite opens it; SQLite gives its WAL
            // and shared-memory files the same permissions.
            let file = sqlite_path(&config.data_dir);
            if !file.exists() {
                create_private(&file)?;
            }
            sqlite_url(&config.data_dir)
        }
    };
    Ok(Setup {
        master_key,
        database_url,
        new_key_file,
    })
}

/// The embedded database's file in a data directory.
pub fn sqlite_path(data_dir: &Path) -> PathBuf {
    data_dir.join("idv.db")
}

/// The URL of the embedded database in a data directory.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!("sqlite://{}?mode=rwc", sqlite_path(data_dir).display())
}

fn read_key(path: &Path) -> anyhow::Result<MasterKey> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the master key file {}", path.display()))?;
    MasterKey::from_hex(&text).with_context(|| format!("master key file {}", path.display()))
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!("{} exists and is not a directory", dir.display());
        }
        return Ok(());
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Creates an empty file readable only by its owner.
fn create_private(path: &Path) -> anyhow::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = create_private(path)?;
    f.write_all(contents.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    Ok(())
}
