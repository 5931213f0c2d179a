//! `idv serve`.

use tracing_subscriber::EnvFilter;

use crate::cli::ServeArgs;

/// Runs the server until SIGINT or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    // The command line again, with the configuration file's values in place
    // of the defaults (`argv` from `serve` on: `idv` takes no flags before it).
    let settings = args.with_file(std::env::args_os().skip(1))?;
    let filter = EnvFilter::try_new(&settings.log).map_err(|e| anyhow::anyhow!("--log `{}`: {e}", settings.log))?;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    if let Some(file) = &settings.config {
        tracing::info!(file = %file.display(), "configuration file read");
    }
    idv_server::serve(settings.into_config()?).await
}
