//! A target PostgreSQL database: creating, extending and dropping the roles
//! of dynamic credentials, and finding the ones we made.
//!
//! Every role we create carries a comment naming the lease, the tenant and
//! the target, so the orphan sweeper drops only roles that are ours for this
//! target, never a role that merely shares the prefix.

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::Duration;

use idv_core::Timestamp;
use idv_core::db_template::quote_ident;
use sha2::{Digest as _, Sha256};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions as _, Connection as _, Executor as _, Postgres, Row as _};
use uuid::Uuid;

/// How long we wait for a target before calling it unreachable.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Connections kept open to one target at most (role changes on a target
/// are serialised by [`CATALOG_LOCK`] anyway).
const POOL_SIZE: u32 = 4;
/// An idle target connection is closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Open connections to targets: a small pool per connection string, keyed
/// by its SHA-256 (each pool keeps its connect options, password included,
/// in memory, as any open connection must). A replaced or deleted target's
/// pool is forgotten and closed.
#[derive(Debug, Default)]
pub struct Pools {
    by_url: Mutex<HashMap<[u8; 32], PgPool>>,
}

/// One target database, ready to use (its pool of connections).
#[derive(Clone, Debug)]
pub struct Target(PgPool);

impl Pools {
    /// The target at `url` (its pool is made on first use and connects
    /// lazily).
    pub fn get(&self, url: &str) -> Result<Target, TargetError> {
        let key: [u8; 32] = Sha256::digest(url.as_bytes()).into();
        let mut map = self
            .by_url
            .lock()
            .map_err(|_| TargetError("the target pool map is poisoned".into()))?;
        if let Some(p) = map.get(&key) {
            return Ok(Target(p.clone()));
        }
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .min_connections(0)
            .idle_timeout(POOL_IDLE)
            .acquire_timeout(TIMEOUT)
            .connect_lazy_with(options(url)?);
        map.insert(key, pool.clone());
        Ok(Target(pool))
    }

    /// Closes and forgets the pool for `url` (a target replaced or deleted).
    pub fn forget(&self, url: &str) {
        let key: [u8; 32] = Sha256::digest(url.as_bytes()).into();
        let pool = self.by_url.lock().ok().and_then(|mut m| m.remove(&key));
        if let Some(pool) = pool {
            // Closing waits for connections in use; nobody waits for that.
            tokio::spawn(async move { pool.close().await });
        }
    }
}

/// The start of the comment on every role we make.
const TAG: &str = "IdentityVault lease";

/// A boxed, sendable future: the connector's calls are spawned from jobs,
/// and boxing pins down the lifetimes sqlx's executors need for `Send`.
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A target failed or refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(pub String);

fn err(what: &str, e: impl std::fmt::Display) -> TargetError {
    TargetError(format!("{what}: {e}"))
}

/// The parts of a connection string that are safe to show.
#[derive(Debug, Clone)]
pub struct Parsed {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database.
    pub database: String,
    /// The admin role.
    pub user: String,
}

/// Parses a `postgres://` connection string without connecting.
pub fn parse(url: &str) -> Result<Parsed, TargetError> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(TargetError("must be a `postgres://` URL".into()));
    }
    // sqlx's messages never echo the password.
    let o = PgConnectOptions::from_str(url).map_err(|e| err("not a PostgreSQL connection string", e))?;
    Ok(Parsed {
        host: o.get_host().to_owned(),
        port: o.get_port(),
        database: o.get_database().unwrap_or_else(|| o.get_username()).to_owned(),
        user: o.get_username().to_owned(),
    })
}

fn options(url: &str) -> Result<PgConnectOptions, TargetError> {
    Ok(PgConnectOptions::from_str(url)
        .map_err(|e| err("bad connection string", e))?
        .application_name("identityvault")
        .disable_statement_logging())
}

/// A connection from the target's pool (checked alive before use).
async fn acquire(target: &Target) -> Result<PoolConnection<Postgres>, TargetError> {
    target.0.acquire().await.map_err(|e| err("target unreachable", e))
}

/// A connection of its own, for checking a connection string.
async fn connect(url: &str) -> Result<PgConnection, TargetError> {
    match tokio::time::timeout(TIMEOUT, options(url)?.connect()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(err("target unreachable", e)),
        Err(_) => Err(TargetError(format!(
            "target unreachable: no answer in {} s",
            TIMEOUT.as_secs()
        ))),
    }
}

async fn within<T>(what: &str, f: impl std::future::Future<Output = Result<T, sqlx::Error>>) -> Result<T, TargetError> {
    match tokio::time::timeout(TIMEOUT, f).await {
        Ok(r) => r.map_err(|e| err(what, e)),
        Err(_) => Err(TargetError(format!("{what}: no answer in {} s", TIMEOUT.as_secs()))),
    }
}

/// Connects and checks that the admin role may create roles.
pub fn check<'a>(url: &'a str) -> Boxed<'a, Result<(), TargetError>> {
    Box::pin(async move {
        let mut c = connect(url).await?;
        let row = within(
            "checking the admin role",
            sqlx::query("SELECT rolsuper OR rolcreaterole AS ok FROM pg_roles WHERE rolname = current_user")
                .fetch_one(&mut c),
        )
        .await?;
        let ok: bool = row.try_get("ok").map_err(|e| err("checking the admin role", e))?;
        let _ = c.close().await;
        if ok {
            Ok(())
        } else {
            Err(TargetError("the admin role lacks CREATEROLE".into()))
        }
    })
}

/// Runs one statement we rendered ourselves (unprepared: DDL, and no cached
/// statement per role name).
async fn run(c: &mut PgConnection, what: &str, sql: &str) -> Result<(), TargetError> {
    within(what, sqlx::query(sql).persistent(false).execute(&mut *c))
        .await
        .map(drop)
}

/// Runs `statements` in one transaction: all of them take effect or none.
async fn in_transaction(c: &mut PgConnection, what: &str, statements: &[String]) -> Result<(), TargetError> {
    // sqlx's transaction: if we stop part-way it is rolled back before the
    // connection is used again (or goes back to its pool).
    let mut tx = within(what, c.begin()).await?;
    for s in statements {
        run(&mut tx, what, s).await?;
    }
    within(what, tx.commit()).await
}

/// A single-quoted SQL literal (for values we made ourselves).
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Serialises our catalog changes on a target: concurrent `GRANT`s or
/// `DROP OWNED`s touching the same object's ACL fail with "tuple
/// concurrently updated" in PostgreSQL, so every role creation and drop
/// takes this transaction-level advisory lock first (across all nodes).
const CATALOG_LOCK: &str = "SELECT pg_advisory_xact_lock(7311000001)";

/// The comment that marks a role as ours.
pub fn tag(lease: Uuid, tenant: Uuid, target: &str) -> String {
    format!("{TAG} {lease} tenant {tenant} target {target}")
}

/// Creates the role, its password (a SCRAM verifier, so the password itself
/// never reaches the target), its end and its grants in one transaction:
/// either all of it exists afterwards or none of it does.
pub fn create_role<'a>(
    pool: &'a Target,
    role: &'a str,
    verifier: &'a str,
    valid_until: Timestamp,
    comment: &'a str,
    grants: &'a [String],
) -> Boxed<'a, Result<(), TargetError>> {
    Box::pin(async move {
        let mut c = acquire(pool).await?;
        let mut sql = vec![
            CATALOG_LOCK.to_owned(),
            format!(
                "CREATE ROLE {r} LOGIN NOINHERIT PASSWORD {p} VALID UNTIL {u}",
                r = quote_ident(role),
                p = literal(verifier),
                u = literal(&valid_until.to_rfc3339()),
            ),
            format!("COMMENT ON ROLE {} IS {}", quote_ident(role), literal(comment)),
        ];
        sql.extend(grants.iter().cloned());
        in_transaction(&mut c, "creating the role", &sql).await
    })
}

/// Moves the role's `VALID UNTIL`.
pub fn set_valid_until<'a>(
    pool: &'a Target,
    role: &'a str,
    valid_until: Timestamp,
) -> Boxed<'a, Result<(), TargetError>> {
    Box::pin(async move {
        let mut c = acquire(pool).await?;
        let sql = format!(
            "ALTER ROLE {} VALID UNTIL {}",
            quote_ident(role),
            literal(&valid_until.to_rfc3339())
        );
        within("extending the role", c.execute(sql.as_str())).await.map(drop)
    })
}

/// Drops the role: no new logins, its sessions ended, what it owns or was
/// granted here dropped, then the role. A role that does not exist is
/// already gone (revocation is idempotent, so retries are safe).
pub fn drop_role<'a>(pool: &'a Target, role: &'a str) -> Boxed<'a, Result<(), TargetError>> {
    Box::pin(async move {
        let mut c = acquire(pool).await?;
        drop_on(&mut c, role).await
    })
}

async fn exists(c: &mut PgConnection, role: &str) -> Result<bool, TargetError> {
    let row = within(
        "looking up the role",
        sqlx::query("SELECT 1 FROM pg_roles WHERE rolname = $1")
            .bind(role)
            .fetch_optional(&mut *c),
    )
    .await?;
    Ok(row.is_some())
}

async fn drop_on(c: &mut PgConnection, role: &str) -> Result<(), TargetError> {
    if !exists(c, role).await? {
        return Ok(());
    }
    let r = quote_ident(role);
    run(c, "disabling the role", &format!("ALTER ROLE {r} NOLOGIN")).await?;
    within(
        "ending the role's sessions",
        sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
            .bind(role)
            .execute(&mut *c),
    )
    .await?;
    let sql = [
        CATALOG_LOCK.to_owned(),
        format!("REASSIGN OWNED BY {r} TO CURRENT_USER"),
        format!("DROP OWNED BY {r}"),
        format!("DROP ROLE IF EXISTS {r}"),
    ];
    match in_transaction(c, "dropping the role", &sql).await {
        // Another node (or a retry) dropped it first: gone is gone.
        Err(_) if !exists(c, role).await? => Ok(()),
        res => res,
    }
}

/// Roles on the target that start with `prefix` and carry our comment for
/// this tenant and target.
pub fn tagged_roles<'a>(
    pool: &'a Target,
    prefix: &'a str,
    tenant: Uuid,
    target: &'a str,
) -> Boxed<'a, Result<Vec<String>, TargetError>> {
    Box::pin(async move {
        let mut c = acquire(pool).await?;
        let res = within(
            "listing roles",
            sqlx::query(
                "SELECT rolname, shobj_description(oid, 'pg_authid') AS note FROM pg_roles \
             WHERE left(rolname, length($1)) = $1",
            )
            .bind(prefix)
            .fetch_all(&mut *c),
        )
        .await;
        drop(c);
        let suffix = format!(" tenant {tenant} target {target}");
        let mut ours = Vec::new();
        for r in res? {
            let name: String = r.try_get("rolname").map_err(|e| err("listing roles", e))?;
            let note: Option<String> = r.try_get("note").map_err(|e| err("listing roles", e))?;
            if note.is_some_and(|n| n.starts_with(TAG) && n.ends_with(&suffix)) {
                ours.push(name);
            }
        }
        Ok(ours)
    })
}

/// Drops each of `roles` (the sweeper's orphans); answers those dropped.
pub fn drop_roles<'a>(pool: &'a Target, roles: &'a [String]) -> Boxed<'a, Result<usize, TargetError>> {
    Box::pin(async move {
        let mut c = acquire(pool).await?;
        let mut n = 0;
        for r in roles {
            drop_on(&mut c, r).await?;
            n += 1;
        }
        Ok(n)
    })
}
