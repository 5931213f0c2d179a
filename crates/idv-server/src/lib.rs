//! The IdentityVault server: configuration, use cases (`app`), the HTTP edge
//! (`http`) and background jobs (`jobs`). Handlers call the use cases and
//! nothing below them.

pub mod app;
pub mod config;
pub mod connectors;
pub mod console;
pub mod csv;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod state;

use std::sync::Arc;

use idv_core::Clock;
use idv_core::clock::SystemClock;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::Config;
pub use state::AppState;

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The bootstrap token if one was created on this start (first start only).
    pub bootstrap_token: Option<String>,
    /// Whether the bootstrap token came from `IDV_BOOTSTRAP_TOKEN`.
    pub bootstrap_from_env: bool,
    /// The shared state (for tests and tools).
    pub state: AppState,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    jobs: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting requests, finishes those in flight, stops the jobs and
    /// lets the writer drain.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.server.await??;
        self.jobs.await?;
        self.state.store.close().await;
        Ok(())
    }

    /// Waits until the server stops (after [`Running::stop_handle`] fires).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.server.await??;
        let _ = self.stop.send(true);
        self.jobs.await?;
        self.state.store.close().await;
        Ok(())
    }

    /// A handle that stops the server when sent `true`.
    pub fn stop_handle(&self) -> watch::Sender<bool> {
        self.stop.clone()
    }
}

/// Starts the server on `listener` with `clock`; returns once it accepts requests.
pub async fn start(config: Config, clock: Arc<dyn Clock>, listener: TcpListener) -> anyhow::Result<Running> {
    let setup = config::prepare(&config)?;
    let addr = listener.local_addr()?;
    let public_url = config.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
    let state = AppState::open(&config, &setup, clock, &public_url).await?;
    let boot = app::bootstrap::run(&state, config.bootstrap_token.as_deref()).await?;
    app::keys::schedule_all(&state).await?;
    let (stop, stop_rx) = watch::channel(false);
    let router = http::router(state.clone());
    let server = tokio::spawn(http::connections::serve(
        listener,
        router,
        config.connections,
        state.metrics.clone(),
        stop_rx.clone(),
    ));
    let jobs = tokio::spawn(jobs::run(state.clone(), config.job_interval, config.job_lease, stop_rx));
    Ok(Running {
        addr,
        bootstrap_token: boot.token,
        bootstrap_from_env: boot.from_env,
        state,
        stop,
        server,
        jobs,
    })
}

/// Runs the server until SIGINT or SIGTERM: what `idv serve` does.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let running = start(config, Arc::new(SystemClock::default()), listener).await?;
    println!("IdentityVault listening on http://{}", running.addr);
    println!("Console: {}/console", running.state.public_url);
    println!("Store: {}", running.state.store_description);
    match (&running.bootstrap_token, running.bootstrap_from_env) {
        (Some(_), true) => println!("Admin bootstrap token: the one given in IDV_BOOTSTRAP_TOKEN"),
        (Some(t), false) => {
            println!("Admin bootstrap token (shown once, store it now): {t}");
            println!("  export IDV_ADDR=http://{} IDV_TOKEN={t}", running.addr);
        }
        (None, _) => println!("Already bootstrapped; use an existing admin token."),
    }
    let stop = running.stop_handle();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
    });
    running.wait().await
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
