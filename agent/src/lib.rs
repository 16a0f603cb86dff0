//! The benefits agent: the daemon beside POS software on a canteen till
//! and on an unattended bus validator. It answers a tap from a signed local
//! snapshot in milliseconds, works for days without network, never loses a
//! committed record and never charges a double tap twice.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, validated, with defaults in code.
//! - [`core`]: pure decisions: identify, quote (with the history rule),
//!   records, receipts. No I/O.
//! - [`store`]: the SQLite database (snapshot, journal, usage, outbox),
//!   WAL + `synchronous=FULL`, migrations.
//! - [`app`]: the shell: resolves credentials, reads usage, calls `core`,
//!   writes records.
//! - [`http`]: the local API for POS software (`docs/agent-api.md`).
//! - [`sync`]: upload of packets and download of snapshots, with backoff.
//! - [`enrolment`]: the terminal key and what central gave at enrolment.
//! - [`indicator`]: validator lights and beeper.
//! - [`metrics`], [`clock`]: Prometheus text; the one source of "now".
//! - [`testkit`]: central's side of the wire for tests and the benchmark.
//!
//! Deliberately missing: card reader drivers (`firmware-tests` and the
//! integrator drive `POST /v1/tap` or the POS API), any storage of raw card
//! numbers, names, personal codes or social statuses.
//!
//! # Example
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! let config = agent::config::Config::load(std::path::Path::new("/etc/benefits-agent/agent.toml"))?;
//! let listener = agent::ApiListener::bind(&config.api.listen).await?;
//! agent::run(config, listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```

pub mod app;
pub mod clock;
pub mod config;
pub mod core;
pub mod enrolment;
pub mod http;
pub mod indicator;
pub mod metrics;
pub mod store;
pub mod sync;
pub mod testkit;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::app::App;
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, Listen};
use crate::enrolment::Enrolment;
use crate::indicator::{CommandIndicator, Indicator, LogIndicator};
use crate::store::Store;

/// How often the checkpointer looks for a pause in writes, how long a pause
/// must be, and after how many writes it checkpoints regardless: the WAL
/// stays small, and commits neither pay for the automatic checkpoint nor
/// share the disk with a background one.
const CHECKPOINT_POLL: Duration = Duration::from_millis(100);
const CHECKPOINT_IDLE: Duration = Duration::from_millis(200);
const CHECKPOINT_WRITES_MAX: u64 = 2_000;
/// How long a sync round may finish after shutdown before it is dropped.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The listening socket of the local API.
pub enum ApiListener {
    Tcp(tokio::net::TcpListener),
    /// With the path, removed again on shutdown.
    Unix(tokio::net::UnixListener, PathBuf),
}

impl ApiListener {
    /// Binds what `api.listen` names. A stale Unix socket file left by a
    /// crash is replaced.
    pub async fn bind(listen: &Listen) -> anyhow::Result<ApiListener> {
        match listen {
            Listen::Tcp(addr) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("listening on {addr}"))?;
                Ok(ApiListener::Tcp(listener))
            }
            Listen::Unix(path) => {
                if path.exists() {
                    std::fs::remove_file(path)
                        .with_context(|| format!("removing stale socket {}", path.display()))?;
                }
                let listener = tokio::net::UnixListener::bind(path)
                    .with_context(|| format!("listening on unix:{}", path.display()))?;
                Ok(ApiListener::Unix(listener, path.clone()))
            }
        }
    }
}

/// What `run` may be given beyond the configuration; tests pass a manual
/// clock or a recording indicator.
pub struct RunOptions {
    pub clock: Arc<dyn Clock>,
    pub indicator: Option<Arc<dyn Indicator>>,
}

impl Default for RunOptions {
    fn default() -> RunOptions {
        RunOptions {
            clock: Arc::new(SystemClock),
            indicator: None,
        }
    }
}

/// Runs the daemon until `shutdown` completes: the local API, the sync
/// loop and the WAL checkpointer.
pub async fn run(
    config: Config,
    listener: ApiListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_with(config, RunOptions::default(), listener, shutdown).await
}

/// Opens the data directory: identity and database.
pub fn open_app(config: Config, options: RunOptions) -> anyhow::Result<Arc<App>> {
    let enrolment = Enrolment::load(&config.data_dir)?;
    let database = config.database_path();
    let store =
        Store::open(&database).with_context(|| format!("opening {}", database.display()))?;
    let indicator: Arc<dyn Indicator> = match (&options.indicator, &config.validator) {
        (Some(indicator), _) => indicator.clone(),
        (None, Some(validator)) => match &validator.indicator_command {
            Some(command) => Arc::new(CommandIndicator::new(
                command.clone(),
                validator.indicator_timeout,
            )),
            None => Arc::new(LogIndicator),
        },
        (None, None) => Arc::new(LogIndicator),
    };
    Ok(Arc::new(App {
        config,
        store: Arc::new(store),
        enrolment: Arc::new(enrolment),
        clock: options.clock,
        metrics: metrics::Metrics::default(),
        indicator,
    }))
}

pub async fn run_with(
    config: Config,
    options: RunOptions,
    listener: ApiListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = open_app(config, options)?;
    run_app(app, listener, shutdown).await
}

/// Serves an opened app; see [`run`].
pub async fn run_app(
    app: Arc<App>,
    listener: ApiListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let snapshot = app.store.snapshot();
    tracing::info!(
        terminal = app.enrolment.terminal(),
        mode = app.config.terminal.mode.as_str(),
        snapshot = ?snapshot.version,
        "agent starting"
    );

    let sync_task = if app.config.sync.enabled {
        Some(tokio::spawn(sync::run_loop(app.clone(), stop_rx.clone())))
    } else {
        None
    };
    let checkpoint_task = {
        let store = app.store.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(CHECKPOINT_POLL) => {}
                    _ = stop.changed() => return,
                }
                let store = store.clone();
                match tokio::task::spawn_blocking(move || {
                    store.checkpoint_if_due(CHECKPOINT_IDLE, CHECKPOINT_WRITES_MAX)
                })
                .await
                {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => tracing::warn!(error = %err, "WAL checkpoint failed"),
                    Err(err) => tracing::warn!(error = %err, "WAL checkpoint task failed"),
                }
            }
        })
    };

    let router = http::router(app.clone());
    let served = match listener {
        ApiListener::Tcp(listener) => {
            let addr = listener
                .local_addr()
                .context("reading the listening address")?;
            tracing::info!(%addr, "local API listening");
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
        }
        ApiListener::Unix(listener, path) => {
            tracing::info!(path = %path.display(), "local API listening on a Unix socket");
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await;
            let _ = std::fs::remove_file(&path);
            served
        }
    };
    let _ = stop_tx.send(true);
    if let Some(task) = sync_task {
        let abort = task.abort_handle();
        if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
            abort.abort();
            tracing::warn!("sync round still running at shutdown; dropped (it resumes on restart)");
        }
    }
    let _ = checkpoint_task.await;
    served.context("serving the local API")?;
    tracing::info!("agent stopped");
    Ok(())
}
