//! `idv serve`.

use idv_server::Config;
use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log).map_err(|e| anyhow::anyhow!("--log `{}`: {e}", args.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        database_url: args.database_url.filter(|u| !u.is_empty()),
        bootstrap_token: std::env::var("IDV_BOOTSTRAP_TOKEN").ok().filter(|t| !t.is_empty()),
        master_key: std::env::var("IDV_MASTER_KEY").ok().filter(|k| !k.is_empty()),
        master_key_file: args.master_key_file,
        trust_domain: args.trust_domain,
        public_url: args.public_url.filter(|u| !u.is_empty()),
        token_ttl: std::time::Duration::from_secs(
            idv_core::duration::parse_seconds(&args.token_ttl)
                .map_err(|e| anyhow::anyhow!("--token-ttl / IDV_TOKEN_TTL: {e}"))?,
        ),
        dpop_require_nonce: args.dpop_require_nonce,
        // New keys sign as `EdDSA` or `ES256`, the names every verifier
        // knows; `Ed25519` (RFC 9864) is accepted from clients, not issued.
        signing_alg: match args.signing_alg.parse() {
            Ok(alg @ (idv_core::jose::Alg::EdDSA | idv_core::jose::Alg::ES256)) => alg,
            _ => anyhow::bail!("--signing-alg / IDV_SIGNING_ALG must be `EdDSA` or `ES256`"),
        },
        signing_key_rotation: match args.signing_key_rotation.trim() {
            "off" => None,
            every => Some(std::time::Duration::from_secs(
                idv_core::duration::parse_seconds(every).map_err(|e| {
                    anyhow::anyhow!("--signing-key-rotation / IDV_SIGNING_KEY_ROTATION: {e} (or `off`)")
                })?,
            )),
        },
        signing_key_publish_ahead: std::time::Duration::from_secs(
            idv_core::duration::parse_seconds(&args.signing_key_publish_ahead)
                .map_err(|e| anyhow::anyhow!("--signing-key-publish-ahead / IDV_SIGNING_KEY_PUBLISH_AHEAD: {e}"))?,
        ),
        job_lease: std::time::Duration::from_secs(
            idv_core::duration::parse_seconds(&args.job_lease)
                .map_err(|e| anyhow::anyhow!("--job-lease / IDV_JOB_LEASE: {e}"))?,
        ),
        webhook_http: args
            .webhook_http
            .parse()
            .map_err(|e| anyhow::anyhow!("--webhook-http / IDV_WEBHOOK_HTTP: {e}"))?,
        webhook_hosts: args
            .webhook_hosts
            .into_iter()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect(),
        auth_failure_limit: args.auth_failure_limit,
        connections: idv_server::config::ConnectionLimits {
            header_timeout: std::time::Duration::from_secs(
                idv_core::duration::parse_seconds(&args.http_header_timeout)
                    .map_err(|e| anyhow::anyhow!("--http-header-timeout / IDV_HTTP_HEADER_TIMEOUT: {e}"))?,
            ),
            max_per_ip: args.http_max_connections_per_ip,
            max: args.http_max_connections,
        },
        ..Config::default()
    };
    idv_server::serve(config).await
}
