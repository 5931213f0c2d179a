//! The server under test: the real `idv_server`, started in this process on
//! `127.0.0.1:0` on a runtime of its own (as `idv serve` would run it), over a
//! fresh SQLite data directory or a fresh PostgreSQL schema; and the HTTP
//! client the benchmark speaks to it with.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use idv_core::clock::SystemClock;
use idv_server::{Config, Running};
use reqwest::StatusCode;
use sqlx::{Connection as _, Executor as _};

/// The database the server runs on.
#[derive(Debug)]
pub struct Database {
    /// URL given to the server (and to the offline verifier).
    pub url: String,
    /// Data directory: the master key, and the SQLite file.
    pub dir: PathBuf,
    /// `(server URL, schema)` of a PostgreSQL schema made for this run.
    schema: Option<(String, String)>,
    /// Keeps a temporary data directory alive.
    _temp: Option<tempfile::TempDir>,
}

impl Database {
    /// SQLite in `dir` (a fresh temporary directory when `None`), or a new
    /// schema in the PostgreSQL database at `postgres`.
    pub async fn fresh(postgres: Option<&str>, dir: Option<&Path>) -> anyhow::Result<Self> {
        let temp = match dir {
            Some(_) => None,
            None => Some(tempfile::tempdir()?),
        };
        let dir = match (dir, &temp) {
            (Some(d), _) => d.to_path_buf(),
            (None, Some(t)) => t.path().to_path_buf(),
            (None, None) => bail!("no data directory"),
        };
        if dir.join("idv.db").exists() {
            bail!("{} already holds a database; give an empty directory", dir.display());
        }
        let (url, schema) = match postgres {
            None => (idv_server::config::sqlite_url(&dir), None),
            Some(base) => {
                let schema = format!("idv_bench_{:016x}", rand::random::<u64>());
                let mut conn = sqlx::PgConnection::connect(base)
                    .await
                    .with_context(|| format!("cannot connect to {base}"))?;
                conn.execute(format!("CREATE SCHEMA {schema}").as_str()).await?;
                conn.close().await?;
                let sep = if base.contains('?') { '&' } else { '?' };
                (
                    format!("{base}{sep}options=-c%20search_path%3D{schema}"),
                    Some((base.to_owned(), schema)),
                )
            }
        };
        Ok(Self {
            url,
            dir,
            schema,
            _temp: temp,
        })
    }

    /// `sqlite` or `postgresql`.
    pub fn kind(&self) -> &'static str {
        if self.schema.is_some() { "postgresql" } else { "sqlite" }
    }

    /// Size on disk in MiB: the SQLite files, or the PostgreSQL schema's relations.
    pub async fn size_mib(&self) -> anyhow::Result<f64> {
        let bytes = match &self.schema {
            None => ["idv.db", "idv.db-wal", "idv.db-shm"]
                .iter()
                .filter_map(|f| std::fs::metadata(self.dir.join(f)).ok())
                .map(|m| m.len() as f64)
                .sum(),
            Some((base, schema)) => {
                let mut conn = sqlx::PgConnection::connect(base).await?;
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0)::bigint FROM pg_class c \
                     JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
                )
                .bind(schema)
                .fetch_one(&mut conn)
                .await?;
                conn.close().await?;
                n as f64
            }
        };
        Ok(bytes / (1024.0 * 1024.0))
    }

    /// Drops the PostgreSQL schema made for this run (SQLite: the temporary
    /// directory goes when this is dropped).
    pub async fn remove(self) -> anyhow::Result<()> {
        if let Some((base, schema)) = &self.schema {
            let mut conn = sqlx::PgConnection::connect(base).await?;
            conn.execute(format!("DROP SCHEMA {schema} CASCADE").as_str()).await?;
            conn.close().await?;
        }
        Ok(())
    }
}

/// A running in-process server and a keep-alive client for it.
#[derive(Debug)]
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The bootstrap (platform admin) token.
    token: String,
    http: reqwest::Client,
    running: Running,
}

impl Server {
    /// Starts the server over `db` with a generated bootstrap token, as
    /// `idv serve` does with `IDV_BOOTSTRAP_TOKEN`. Run it on the server's
    /// runtime: its listener and tasks stay there.
    pub async fn start(db: &Database) -> anyhow::Result<Self> {
        let token = idv_core::admin_token::generate();
        let config = Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: db.dir.clone(),
            database_url: Some(db.url.clone()),
            bootstrap_token: Some(token.clone()),
            trust_domain: "idv.bench".into(),
            ..Config::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let running = idv_server::start(config, Arc::new(SystemClock::default()), listener).await?;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .tcp_nodelay(true)
            .timeout(Duration::from_secs(600))
            .build()?;
        Ok(Self {
            base: format!("http://{}", running.addr),
            token,
            http,
            running,
        })
    }

    /// Stops accepting requests, finishes those in flight and closes the
    /// store. Run it on the server's runtime.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.running.shutdown().await
    }

    /// The HTTP client (keep-alive pool).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The bootstrap admin token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `GET path`; fails unless 200. Returns the body.
    pub async fn get(&self, path: &str) -> anyhow::Result<Vec<u8>> {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        expect(res, StatusCode::OK, "GET", path).await
    }

    /// `POST path` with a JSON body; fails unless 201. Returns the body.
    pub async fn post(&self, path: &str, json: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(json)
            .send()
            .await?;
        expect(res, StatusCode::CREATED, "POST", path).await
    }
}

async fn expect(res: reqwest::Response, want: StatusCode, method: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    let status = res.status();
    let body = res.bytes().await?.to_vec();
    if status != want {
        let text = String::from_utf8_lossy(body.get(..body.len().min(500)).unwrap_or_default());
        return Err(anyhow!("{method} {path}: {status} {text}"));
    }
    Ok(body)
}
