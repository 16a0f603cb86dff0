//! Central: the reconciliation server of the benefits system.
//!
//! It enrols terminals, keeps the registers (providers, merchants, groups,
//! benefits, recipients, credentials, grants, memberships), receives
//! packets of signed records and verifies every one with the same `shared`
//! engine the terminals use, and publishes signed per-terminal snapshots.
//!
//! # Layout
//! - [`http`]: the JSON API (terminals: signed requests; staff: bearer tokens).
//! - [`store`]: the [`store::Store`] trait, with SQLite and PostgreSQL backends.
//! - [`ingest`]: packet → verified records (signatures, quote re-run) → store.
//! - [`snapshot`]: full and delta snapshots per terminal.
//! - [`import`]: bulk CSV / JSON Lines import of registers.
//! - [`keys`], [`tls`]: the data directory's keys and certificates.
//! - [`metrics`]: Prometheus counters.
//! - [`demo`]: realistic demo data through the normal paths.
//! - [`reports`], [`portal`]: merchant and provider reports, and the
//!   recipient portal's view of a person, as pure functions over stored
//!   records (served by `http::reports`, with open data from [`opendata`]).
//! - [`ledger`]: after ingestion, records → usage lines → reconciliation →
//!   stored decisions and flags; issuing settlements (served by
//!   `http::ledger`).
//! - [`reconcile`], [`settlement`], [`einvoice`], [`opendata`],
//!   [`creditor_ref`]: reconciliation across terminals, settlements,
//!   EN 16931 e-invoices and open data, as pure functions.
//!
//! Deliberately missing: the web UI; HTTP handlers never name a database crate.
//!
//! # Example
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let config = central::Config::new("data".into());
//! let state = central::AppState::open(&config).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! central::serve(state, listener, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub mod creditor_ref;
pub mod demo;
pub mod einvoice;
pub mod http;
pub mod import;
pub mod ingest;
pub mod keys;
pub mod ledger;
pub mod metrics;
pub mod opendata;
pub mod portal;
pub mod reconcile;
pub mod reports;
pub mod settlement;
pub mod snapshot;
pub mod store;
pub mod tls;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

pub use http::app;

use crate::ingest::Ingestor;
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::store::Store;

/// Most TLS connections served at once; more wait in the accept backlog.
pub const CONNECTIONS_MAX: usize = 4_096;
/// A TLS handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Open connections get this long to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How central runs. Defaults in code; the command line and environment
/// (`CENTRAL_*`) override them.
#[derive(Clone)]
pub struct Config {
    /// Keys, certificates and (by default) the SQLite file live here.
    pub data_dir: PathBuf,
    /// `postgres://…` to use PostgreSQL instead of `data_dir/central.sqlite`.
    pub database_url: Option<String>,
    /// Extra DNS names / IP addresses for the server certificate.
    pub tls_names: Vec<String>,
    /// How long an enrolment code stays valid.
    pub enrol_code_ttl: Duration,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The database URL may carry a password.
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_ref().map(|_| "<redacted>"),
            )
            .field("tls_names", &self.tls_names)
            .field("enrol_code_ttl", &self.enrol_code_ttl)
            .finish()
    }
}

impl Config {
    pub fn new(data_dir: PathBuf) -> Config {
        Config {
            data_dir,
            database_url: None,
            tls_names: Vec::new(),
            enrol_code_ttl: Duration::from_secs(72 * 3600),
        }
    }
}

/// Where `now` comes from: the system clock, or a fixed instant in tests.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> Timestamp + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(Timestamp::now))
    }
    pub fn fixed(at: Timestamp) -> Clock {
        Clock(Arc::new(move || at))
    }
    pub fn now(&self) -> Timestamp {
        (self.0)()
    }
}

/// Everything a request handler needs.
pub struct State {
    pub store: Arc<dyn Store>,
    pub keys: Keys,
    pub ingestor: Ingestor,
    pub metrics: Arc<Metrics>,
    pub config: Config,
    pub clock: Clock,
    /// Wakes the ledger's background run (`ledger::ingested`); started on
    /// first use, inside the runtime.
    pub ledger_runner: std::sync::OnceLock<Arc<tokio::sync::Notify>>,
}

#[derive(Clone)]
pub struct AppState(pub Arc<State>);

impl std::ops::Deref for AppState {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {message}")]
    DataDir { path: PathBuf, message: String },
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("listening: {0}")]
    Io(#[from] std::io::Error),
}

/// Opens the store named by the configuration.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, StartError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|err| StartError::DataDir {
        path: config.data_dir.clone(),
        message: err.to_string(),
    })?;
    Ok(match &config.database_url {
        Some(url) => Arc::new(store::postgres::PostgresStore::connect(url, None).await?),
        None => Arc::new(
            store::sqlite::SqliteStore::open(&config.data_dir.join("central.sqlite")).await?,
        ),
    })
}

impl AppState {
    /// Opens the data directory (creating keys and certificates on first
    /// start) and the store.
    pub async fn open(config: &Config) -> Result<AppState, StartError> {
        let store = open_store(config).await?;
        AppState::with_store(config, store, Clock::system())
    }

    pub fn with_store(
        config: &Config,
        store: Arc<dyn Store>,
        clock: Clock,
    ) -> Result<AppState, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|err| StartError::DataDir {
            path: config.data_dir.clone(),
            message: err.to_string(),
        })?;
        let keys = keys::load_or_create(&config.data_dir)?;
        tls::ensure_certificates(&config.data_dir, &config.tls_names)?;
        let metrics = Arc::new(Metrics::default());
        Ok(AppState(Arc::new(State {
            ingestor: Ingestor::new(Arc::clone(&store), Arc::clone(&metrics)),
            store,
            keys,
            metrics,
            config: config.clone(),
            clock,
            ledger_runner: std::sync::OnceLock::new(),
        })))
    }
}

/// Serves the API over TLS on `listener` until `shutdown` completes, then
/// lets open connections finish for a grace period.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let tls_config = tls::server_config(&state.config.data_dir)?;
    let acceptor = TlsAcceptor::from(tls_config);
    let router = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            let tls_stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls_stream)) => tls_stream,
                    Ok(Err(err)) => {
                        tracing::debug!(%peer, error = %err, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let service = hyper::service::service_fn(move |request| {
                router.clone().oneshot(request.map(axum::body::Body::new))
            });
            let builder = auto::Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection(TokioIo::new(tls_stream), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period");
    }
    Ok(())
}
