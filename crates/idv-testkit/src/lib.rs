//! Test kit: starts the real server in-process on `127.0.0.1:0` over SQLite
//! (a fresh temporary directory) or PostgreSQL (a fresh schema in the
//! database named by `IDV_TEST_POSTGRES_URL`), and gives tests an HTTP client.

use std::sync::Arc;
use std::time::Duration;

use idv_core::Timestamp;
use idv_core::clock::{Clock, ManualClock, SystemClock};
use idv_server::{Config, Running};
use sqlx::{Connection, Executor};

/// The environment variable naming the PostgreSQL used by tests.
pub const POSTGRES_ENV: &str = "IDV_TEST_POSTGRES_URL";

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite in a temporary directory.
    Sqlite,
    /// PostgreSQL from `IDV_TEST_POSTGRES_URL`, in a fresh schema.
    Postgres,
}

/// The PostgreSQL URL for tests, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV).ok().filter(|s| !s.is_empty())
}

/// The URL of the test PostgreSQL; fails the test without one. Tests that
/// need PostgreSQL are named so that nextest's default profile lists them as
/// skipped (`.config/nextest.toml`); a run that selects them must provide it.
#[expect(clippy::panic, reason = "test support: a test that cannot run must fail, not pass")]
pub fn require_postgres(test: &str) -> String {
    match postgres_url() {
        Some(url) => url,
        None => panic!(
            "{POSTGRES_ENV} is not set, so `{test}` cannot run; run the default nextest profile \
             (which skips PostgreSQL tests) or set it (see CONTRIBUTING.md)"
        ),
    }
}

/// Generates one test per backend for each listed `async fn name(Backend)`:
/// `sqlite::name` always runs; `postgres::name` needs `IDV_TEST_POSTGRES_URL`
/// (nextest's default profile lists it as skipped; the `ci` profile runs it).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::require_postgres(stringify!($name));
                    super::$name($crate::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A fresh, empty database for `backend`: its URL and what keeps it alive.
#[derive(Debug)]
pub struct Database {
    /// URL to give the server.
    pub url: String,
    /// Data directory (also holds the SQLite file).
    pub dir: tempfile::TempDir,
}

impl Database {
    /// Creates a fresh database (a new SQLite file, or a new PostgreSQL schema).
    pub async fn fresh(backend: Backend) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let url = match backend {
            Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("idv.db").display()),
            Backend::Postgres => {
                let base = postgres_url().ok_or_else(|| anyhow::anyhow!("{POSTGRES_ENV} is not set"))?;
                let schema = format!("idv_t_{}", rand::random::<u64>());
                let mut conn = sqlx::PgConnection::connect(&base).await?;
                conn.execute(format!("CREATE SCHEMA {schema}").as_str()).await?;
                conn.close().await?;
                let sep = if base.contains('?') { '&' } else { '?' };
                format!("{base}{sep}options=-c%20search_path%3D{schema}")
            }
        };
        Ok(Self { url, dir })
    }
}

/// Options for [`TestServer::start_with`].
#[derive(Debug, Default)]
pub struct Options {
    /// Use this clock (default: the system clock).
    pub clock: Option<Arc<ManualClock>>,
    /// Reuse this database (default: a fresh one).
    pub database: Option<Database>,
    /// Bootstrap token to use; pass the previous server's token when
    /// restarting on the same database (default: a new one).
    pub token: Option<String>,
    /// Require DPoP server nonces.
    pub dpop_require_nonce: bool,
    /// Algorithm of new signing keys (default EdDSA).
    pub signing_alg: Option<idv_core::jose::Alg>,
    /// Job lease (default: the server's default).
    pub job_lease: Option<Duration>,
    /// Signing key rotation period and publication lead (default: the
    /// server's defaults, 30 days and 1 hour).
    pub key_rotation: Option<(Option<Duration>, Duration)>,
    /// Failed authentications allowed per minute from one address (default:
    /// the server's).
    pub auth_failure_limit: Option<u32>,
    /// Connection limits (default: the server's defaults).
    pub connections: Option<idv_server::config::ConnectionLimits>,
    /// Console session timeouts (default: the server's).
    pub console_sessions: Option<idv_core::session::Timeouts>,
}

/// A running in-process server.
#[derive(Debug)]
pub struct TestServer {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The bootstrap platform admin token.
    pub token: String,
    /// The manual clock, when one was given.
    pub clock: Option<Arc<ManualClock>>,
    /// The database (kept alive for the server's lifetime).
    pub database: Database,
    /// The server.
    pub running: Running,
    /// An HTTP client.
    pub http: reqwest::Client,
}

impl TestServer {
    /// Starts another node on this server's database (PostgreSQL: the
    /// scale-out deployment), with the same master key, bootstrap token and
    /// clock.
    pub async fn second_node(&self) -> anyhow::Result<TestServer> {
        let dir = tempfile::tempdir()?;
        std::fs::copy(
            self.database.dir.path().join("master.key"),
            dir.path().join("master.key"),
        )?;
        let database = Database {
            url: self.database.url.clone(),
            dir,
        };
        Self::start_with(
            Backend::Postgres,
            Options {
                database: Some(database),
                token: Some(self.token.clone()),
                clock: self.clock.clone(),
                ..Options::default()
            },
        )
        .await
    }

    /// Starts a server on a fresh database of `backend`.
    #[expect(clippy::panic, reason = "test support: a server that cannot start fails the test")]
    pub async fn start(backend: Backend) -> TestServer {
        match Self::start_with(backend, Options::default()).await {
            Ok(s) => s,
            Err(e) => panic!("test server failed to start: {e:#}"),
        }
    }

    /// Starts a server with options.
    pub async fn start_with(backend: Backend, opts: Options) -> anyhow::Result<TestServer> {
        let database = match opts.database {
            Some(d) => d,
            None => Database::fresh(backend).await?,
        };
        let token = opts.token.unwrap_or_else(idv_core::admin_token::generate);
        // Anything not set here is the server's default (declared in
        // `idv_server::config::Settings`).
        let defaults = Config::default();
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: database.dir.path().to_path_buf(),
            database_url: Some(database.url.clone()),
            bootstrap_token: Some(token.clone()),
            trust_domain: "idv.test".into(),
            job_interval: Duration::from_millis(50),
            job_lease: opts.job_lease.unwrap_or(defaults.job_lease),
            dpop_require_nonce: opts.dpop_require_nonce,
            signing_alg: opts.signing_alg.unwrap_or(defaults.signing_alg),
            signing_key_rotation: opts
                .key_rotation
                .map_or(defaults.signing_key_rotation, |(every, _)| every),
            signing_key_publish_ahead: opts
                .key_rotation
                .map_or(defaults.signing_key_publish_ahead, |(_, ahead)| ahead),
            auth_failure_limit: opts.auth_failure_limit.unwrap_or(defaults.auth_failure_limit),
            connections: opts.connections.unwrap_or(defaults.connections),
            console_sessions: opts.console_sessions.unwrap_or(defaults.console_sessions),
            ..defaults
        };
        let clock: Arc<dyn Clock> = match &opts.clock {
            Some(c) => c.clone(),
            None => Arc::new(SystemClock::default()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let running = idv_server::start(config, clock, listener).await?;
        Ok(TestServer {
            base: format!("http://{}", running.addr),
            token,
            clock: opts.clock,
            database,
            running,
            http: reqwest::Client::new(),
        })
    }

    /// A manual clock starting now, for tests that move time.
    pub fn manual_clock() -> Arc<ManualClock> {
        let now = SystemClock::default().now();
        Arc::new(ManualClock::new(Timestamp::from_micros(now.as_micros())))
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the bootstrap token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(&self.token)
    }

    /// A request with `token`.
    pub fn req_as(&self, token: &str, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(token)
    }

    /// Stops the server and returns its database (to restart on it).
    pub async fn stop(self) -> Database {
        if let Err(e) = self.running.shutdown().await {
            eprintln!("test server shutdown: {e:#}");
        }
        self.database
    }

    /// Stops the server and starts a new one on the same database with the
    /// same bootstrap token and clock.
    ///
    /// (See also [`TestServer::second_node`].)
    pub async fn restart(self, backend: Backend) -> anyhow::Result<TestServer> {
        let token = self.token.clone();
        let clock = self.clock.clone();
        let database = self.stop().await;
        Self::start_with(
            backend,
            Options {
                clock,
                database: Some(database),
                token: Some(token),
                ..Options::default()
            },
        )
        .await
    }
}

/// A throwaway database on the PostgreSQL of `IDV_TEST_POSTGRES_URL`, for
/// tests that need a real target database (dynamic credentials), with a
/// random role prefix of its own (roles are cluster-wide). Dropping it drops
/// the database and every role with the prefix, however the test ended.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// The cluster URL it was made through.
    pub base: String,
    /// Its name.
    pub name: String,
    /// `host:port` of the cluster.
    pub hostport: String,
    /// The role prefix for this test (`<letter><6 hex>_`).
    pub prefix: String,
}

impl ScratchDatabase {
    /// A fresh database; fails the test without `IDV_TEST_POSTGRES_URL`.
    #[expect(
        clippy::panic,
        reason = "test support: a database that cannot be made fails the test"
    )]
    pub async fn create(test: &str, letter: char) -> ScratchDatabase {
        let base = require_postgres(test);
        let n: u32 = rand::random();
        let rest = base.split_once("://").map_or(base.as_str(), |(_, r)| r);
        let hostport = rest
            .rsplit_once('@')
            .map_or(rest, |(_, h)| h)
            .split(['/', '?'])
            .next()
            .unwrap_or(rest)
            .to_owned();
        let db = ScratchDatabase {
            name: format!("idv_target_{n:08x}"),
            prefix: format!("{letter}{:06x}_", n & 0xff_ffff),
            hostport,
            base,
        };
        let made = async {
            let mut c = sqlx::PgConnection::connect(&db.base).await?;
            c.execute(format!("CREATE DATABASE {}", db.name).as_str()).await?;
            c.close().await
        };
        if let Err(e) = made.await {
            panic!("cannot create the scratch database: {e}");
        }
        db
    }

    /// Its URL as `user` with `password` (empty: none).
    pub fn url(&self, user: &str, password: &str) -> String {
        let auth = if password.is_empty() {
            user.to_owned()
        } else {
            format!("{user}:{password}")
        };
        format!("postgres://{auth}@{}/{}", self.hostport, self.name)
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let (base, name, prefix) = (self.base.clone(), self.name.clone(), self.prefix.clone());
        // A thread of its own: we may be inside the test's runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async move {
                let Ok(mut c) = sqlx::PgConnection::connect(&base).await else {
                    return;
                };
                let _ = c
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await;
                let roles: Vec<String> =
                    sqlx::query_scalar("SELECT rolname FROM pg_roles WHERE starts_with(rolname, $1)")
                        .bind(&prefix)
                        .fetch_all(&mut c)
                        .await
                        .unwrap_or_default();
                for r in roles {
                    let _ = c.execute(format!("DROP ROLE IF EXISTS \"{r}\"").as_str()).await;
                }
            });
        })
        .join();
    }
}
