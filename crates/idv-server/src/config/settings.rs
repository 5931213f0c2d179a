//! `idv serve`'s settings, declared once. Each field of [`Settings`] is a
//! flag, an `IDV_*` environment variable and a key of the configuration file
//! (the flag's name without its dashes), with its default and its meaning:
//! the clap flags, the configuration file's keys, the [`Config`] and the
//! configuration tables of the README and `docs/operations.md` all come from
//! here. Secrets are the exception: [`ENV_ONLY`] settings are read from the
//! environment only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;

use super::{Config, ConnectionLimits, DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP};

/// The settings of `idv serve`. Precedence: flag, then environment variable,
/// then configuration file, then default.
#[derive(Clone, Debug, clap::Args)]
pub struct Settings {
    /// Configuration file: TOML whose keys are the flags' names without their
    /// dashes (`data-dir = "/var/lib/idv"`).
    ///
    /// Default: `./idv.toml` if it exists
    #[arg(long, env = "IDV_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port to listen on (plain HTTP/1.1, no TLS).
    #[arg(long, env = "IDV_LISTEN", default_value = "127.0.0.1:8700")]
    pub listen: SocketAddr,
    /// Data directory (mode 0700, relative to the working directory): SQLite
    /// database and `master.key`.
    #[arg(long, env = "IDV_DATA_DIR", default_value = "idv-data")]
    pub data_dir: PathBuf,
    /// `postgres://…` or `postgresql://…` to use PostgreSQL instead of the
    /// embedded SQLite (a `sqlite:` URL is accepted too).
    ///
    /// Default: SQLite in the data directory (`sqlite://<data-dir>/idv.db?mode=rwc`)
    #[arg(long, env = "IDV_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the master key (must exist when given).
    ///
    /// Default: `<data-dir>/master.key`, created (mode 0600) on first start
    #[arg(long, env = "IDV_MASTER_KEY_FILE")]
    pub master_key_file: Option<PathBuf>,
    /// SPIFFE trust domain in agent URIs (lowercase letters, digits, `.`,
    /// `-`, `_`).
    #[arg(long, env = "IDV_TRUST_DOMAIN", default_value = "idv.local")]
    pub trust_domain: String,
    /// Base URL clients reach the server at: OAuth issuers (`<url>`,
    /// `<url>/t/<tenant>`), metadata and the DPoP `htu`.
    ///
    /// Default: `http://<listen address>`
    #[arg(long, env = "IDV_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Default access token lifetime, e.g. `300`, `5m` (at most 1 hour;
    /// tenants and agent classes may set their own, `/v1/token-ttls`).
    #[arg(long, env = "IDV_TOKEN_TTL", default_value = "5m")]
    pub token_ttl: String,
    /// Algorithm of new token signing keys: `EdDSA` or `ES256`.
    #[arg(long, env = "IDV_SIGNING_ALG", default_value = "EdDSA")]
    pub signing_alg: String,
    /// How long each token signing key signs before the next takes over,
    /// e.g. `30d` (at least 1 hour and twice the publication lead); `off`
    /// for manual rotation only (`idv key rotate`).
    #[arg(long, env = "IDV_SIGNING_KEY_ROTATION", default_value = "30d")]
    pub signing_key_rotation: String,
    /// How long before it signs the next signing key is published in the
    /// JWKS (1 minute to 30 days); the JWKS `max-age` is a tenth of it, at
    /// most 5 minutes.
    #[arg(long, env = "IDV_SIGNING_KEY_PUBLISH_AHEAD", default_value = "1h")]
    pub signing_key_publish_ahead: String,
    /// Require a server nonce in DPoP proofs (RFC 9449 §8).
    #[arg(long, env = "IDV_DPOP_REQUIRE_NONCE")]
    pub dpop_require_nonce: bool,
    /// How long a node's claim on a background job lasts without renewal,
    /// e.g. `15s` (whole seconds, 3 seconds to 1 hour); a live node renews
    /// its claims every third of it, a dead node's jobs wait about this long
    /// before another node runs them.
    #[arg(long, env = "IDV_JOB_LEASE", default_value = "15s")]
    pub job_lease: String,
    /// Which plain-`http://` webhook endpoints may be subscribed: `never`,
    /// `loopback` (`localhost`, `127.0.0.0/8`, `[::1]`) or `always`;
    /// `https://` always may.
    #[arg(long, env = "IDV_WEBHOOK_HTTP", default_value = "loopback")]
    pub webhook_http: String,
    /// The only hosts webhooks may be sent to, comma-separated: names,
    /// addresses or `*.domain` (`hooks.bank.example`, `*.bank.example`,
    /// `127.0.0.1`).
    ///
    /// Default: any
    #[arg(long, env = "IDV_WEBHOOK_HOSTS", value_delimiter = ',')]
    pub webhook_hosts: Vec<String>,
    /// Failed authentications allowed per minute from one source address (a
    /// third of it at once, a sixth per client id); past it, 429 with
    /// `Retry-After` and counted audit events.
    #[arg(long, env = "IDV_AUTH_FAILURE_LIMIT", default_value_t = crate::app::throttle::DEFAULT_LIMIT,
          value_parser = clap::value_parser!(u32).range(6..=1_000_000))]
    pub auth_failure_limit: u32,
    /// How long a client has to send a request's headers, and how long a
    /// kept-alive connection may stay idle, e.g. `10s` (1 second to 5
    /// minutes).
    #[arg(long, env = "IDV_HTTP_HEADER_TIMEOUT", default_value = "10s")]
    pub http_header_timeout: String,
    /// Open connections from one client address (IPv6: one /64) beyond which
    /// a new one is closed at once.
    #[arg(long, env = "IDV_HTTP_MAX_CONNECTIONS_PER_IP", default_value_t = DEFAULT_MAX_CONNECTIONS_PER_IP)]
    pub http_max_connections_per_ip: usize,
    /// Open connections in all beyond which a new one is closed at once.
    #[arg(long, env = "IDV_HTTP_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub http_max_connections: usize,
    /// How long a console session may stay without a request before it
    /// ends, e.g. `30m` (1 minute to 24 hours; at most the lifetime).
    #[arg(long, env = "IDV_CONSOLE_IDLE_TIMEOUT", default_value = "30m")]
    pub console_idle_timeout: String,
    /// How long a console session lasts after sign-in whatever happens,
    /// e.g. `12h` (5 minutes to 7 days).
    #[arg(long, env = "IDV_CONSOLE_SESSION_LIFETIME", default_value = "12h")]
    pub console_session_lifetime: String,
    /// Log filter in `tracing` syntax, e.g. `info` or
    /// `info,idv_store=debug`; logs go to standard error.
    #[arg(long, env = "IDV_LOG", default_value = "info")]
    pub log: String,
}

/// A setting read from the environment only: a secret, kept off command
/// lines (which every local user can read) and out of configuration files.
#[derive(Clone, Copy, Debug)]
pub struct EnvOnly {
    /// The environment variable.
    pub env: &'static str,
    /// What happens without it.
    pub default: &'static str,
    /// What it is.
    pub meaning: &'static str,
}

impl EnvOnly {
    /// Its value; empty counts as unset.
    pub fn read(&self) -> Option<String> {
        std::env::var(self.env).ok().filter(|v| !v.is_empty())
    }
}

/// `IDV_MASTER_KEY`.
pub const MASTER_KEY: EnvOnly = EnvOnly {
    env: "IDV_MASTER_KEY",
    default: "—",
    meaning: "The master key as 64 hex digits; takes precedence over any file",
};

/// `IDV_BOOTSTRAP_TOKEN`.
pub const BOOTSTRAP_TOKEN: EnvOnly = EnvOnly {
    env: "IDV_BOOTSTRAP_TOKEN",
    default: "generated and printed once",
    meaning: "The initial platform admin token, used only when no admin token exists yet",
};

/// The settings read from the environment only.
pub const ENV_ONLY: [EnvOnly; 2] = [MASTER_KEY, BOOTSTRAP_TOKEN];

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

impl Settings {
    /// The server configuration these settings describe (the environment-only
    /// secrets read here), or why they cannot run.
    pub fn into_config(self) -> anyhow::Result<Config> {
        let seconds = |value: &str, setting: &str| {
            idv_core::duration::parse_seconds(value)
                .map(Duration::from_secs)
                .map_err(|e| anyhow!("{setting}: {e}"))
        };
        Ok(Config {
            listen: self.listen,
            data_dir: self.data_dir,
            database_url: self.database_url.filter(|u| !u.is_empty()),
            bootstrap_token: BOOTSTRAP_TOKEN.read(),
            master_key: MASTER_KEY.read(),
            master_key_file: self.master_key_file,
            trust_domain: self.trust_domain,
            public_url: self.public_url.filter(|u| !u.is_empty()),
            token_ttl: seconds(&self.token_ttl, "--token-ttl / IDV_TOKEN_TTL")?,
            dpop_require_nonce: self.dpop_require_nonce,
            // New keys sign as `EdDSA` or `ES256`, the names every verifier
            // knows; `Ed25519` (RFC 9864) is accepted from clients, not issued.
            signing_alg: match self.signing_alg.parse() {
                Ok(alg @ (idv_core::jose::Alg::EdDSA | idv_core::jose::Alg::ES256)) => alg,
                _ => anyhow::bail!("--signing-alg / IDV_SIGNING_ALG must be `EdDSA` or `ES256`"),
            },
            signing_key_rotation: match self.signing_key_rotation.trim() {
                "off" => None,
                every => Some(
                    seconds(every, "--signing-key-rotation / IDV_SIGNING_KEY_ROTATION")
                        .map_err(|e| anyhow!("{e} (or `off`)"))?,
                ),
            },
            signing_key_publish_ahead: seconds(
                &self.signing_key_publish_ahead,
                "--signing-key-publish-ahead / IDV_SIGNING_KEY_PUBLISH_AHEAD",
            )?,
            job_lease: seconds(&self.job_lease, "--job-lease / IDV_JOB_LEASE")?,
            webhook_http: self
                .webhook_http
                .parse()
                .map_err(|e| anyhow!("--webhook-http / IDV_WEBHOOK_HTTP: {e}"))?,
            webhook_hosts: self
                .webhook_hosts
                .into_iter()
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
            auth_failure_limit: self.auth_failure_limit,
            connections: ConnectionLimits {
                header_timeout: seconds(
                    &self.http_header_timeout,
                    "--http-header-timeout / IDV_HTTP_HEADER_TIMEOUT",
                )?,
                max_per_ip: self.http_max_connections_per_ip,
                max: self.http_max_connections,
            },
            console_sessions: idv_core::session::Timeouts {
                idle_secs: secs(seconds(
                    &self.console_idle_timeout,
                    "--console-idle-timeout / IDV_CONSOLE_IDLE_TIMEOUT",
                )?),
                absolute_secs: secs(seconds(
                    &self.console_session_lifetime,
                    "--console-session-lifetime / IDV_CONSOLE_SESSION_LIFETIME",
                )?),
            },
            ..Config::default()
        })
    }
}

/// The configuration table of the README and `docs/operations.md`, in
/// Markdown: one row per setting, from the declarations above.
pub fn table() -> String {
    let mut cmd = super::file::command();
    cmd.build();
    let mut out = String::from("| Flag | Environment | Default | Meaning |\n|---|---|---|---|\n");
    for arg in cmd.get_arguments() {
        let Some(long) = arg.get_long().filter(|l| *l != "help") else {
            continue;
        };
        let env = arg
            .get_env()
            .map_or_else(|| "—".to_owned(), |e| format!("`{}`", e.to_string_lossy()));
        let help = arg
            .get_long_help()
            .or(arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut default = None;
        let mut meaning = Vec::new();
        for paragraph in help.split("\n\n") {
            match paragraph.strip_prefix("Default: ") {
                Some(d) => default = Some(d.to_owned()),
                None => meaning.push(paragraph.replace('\n', " ")),
            }
        }
        let default = match (default, arg.get_action(), arg.get_default_values()) {
            (Some(d), _, _) => d,
            (None, clap::ArgAction::SetTrue, _) => "off".to_owned(),
            (None, _, []) => "—".to_owned(),
            (None, _, values) => values
                .iter()
                .map(|v| format!("`{}`", v.to_string_lossy()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let meaning = meaning.join(" ");
        let meaning = meaning.trim_end_matches('.');
        out.push_str(&format!("| `--{long}` | {env} | {default} | {meaning} |\n"));
    }
    for secret in ENV_ONLY {
        out.push_str(&format!(
            "| — | `{}` | {} | {} |\n",
            secret.env, secret.default, secret.meaning
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The configuration tables in the README and `docs/operations.md` are
    /// [`table`]'s; on a difference the test prints the table to paste.
    #[test]
    fn the_docs_show_the_declared_settings() {
        let expected = table();
        for doc in ["README.md", "docs/operations.md"] {
            let path = format!("{}/../../{doc}", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                text.contains(&expected),
                "the configuration table of {doc} is not the declared one (config/settings.rs); \
                 it should read:\n\n{expected}"
            );
        }
    }

    /// Console session timeouts out of range, or an idle timeout longer
    /// than the lifetime, are refused at start.
    #[test]
    fn console_timeouts_are_checked() -> anyhow::Result<()> {
        use clap::FromArgMatches as _;
        let dir = tempfile::tempdir()?;
        for (idle, life, ok) in [
            ("30m", "12h", true),
            ("10s", "12h", false),
            ("2h", "1h", false),
            ("30m", "8d", false),
        ] {
            let cmd = super::super::file::command().mut_args(|a| a.env(None::<&str>));
            let m = cmd.try_get_matches_from([
                "serve",
                "--console-idle-timeout",
                idle,
                "--console-session-lifetime",
                life,
            ])?;
            let config = Config {
                data_dir: dir.path().join("data"),
                ..Settings::from_arg_matches(&m)?.into_config()?
            };
            let checked = crate::config::prepare(&config);
            assert_eq!(checked.is_ok(), ok, "{idle} / {life}: {checked:?}");
            if let Err(e) = checked {
                assert!(e.to_string().contains("console idle timeout"), "{e}");
            }
        }
        Ok(())
    }

    /// [`Config::default`] is what the declared defaults give.
    #[test]
    fn the_default_config_is_the_declared_defaults() -> anyhow::Result<()> {
        use clap::FromArgMatches as _;
        let cmd = super::super::file::command().mut_args(|a| a.env(None::<&str>));
        let settings = Settings::from_arg_matches(&cmd.try_get_matches_from(["serve"])?)?;
        let config = Config {
            bootstrap_token: None,
            master_key: None,
            ..settings.into_config()?
        };
        assert_eq!(format!("{config:?}"), format!("{:?}", Config::default()));
        Ok(())
    }
}
