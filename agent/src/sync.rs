//! Background sync with central, per `docs/sync-protocol.md`: pack and
//! upload outbox packets, download and apply snapshot deltas, report a
//! heartbeat. Every request is signed (`shared::wire::auth`) and goes over
//! HTTPS trusting only central's CA.
//!
//! Failure is the normal case for a bus in a depot: a failed round backs
//! off exponentially with jitter up to `sync.backoff_max_seconds`, and
//! because the outbox and the snapshot version live in the database, a
//! restarted agent resumes exactly where it stopped.

use std::io::{BufReader, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use shared::wire::auth;

use crate::app::App;
use crate::enrolment::{central_error_message, error_chain, https_client};
use crate::store::{ApplyContext, SnapshotError};

/// Most packets uploaded in one round; the rest wait for the next.
const PACKETS_PER_ROUND_MAX: usize = 64;
/// Largest answer to a packet upload or heartbeat that is read.
const ANSWER_BYTES_MAX: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("central unreachable: {0}")]
    Unreachable(String),
    #[error("central answered {status} to {what}: {message}")]
    Status {
        what: &'static str,
        status: u16,
        message: String,
    },
    #[error("central's answer to {what} is malformed: {message}")]
    BadAnswer { what: &'static str, message: String },
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error("local storage: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// What one round did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub records_packed: u64,
    pub packets_sent: u64,
    pub acked_through: Option<u64>,
    pub snapshot: Option<u64>,
}

#[derive(Deserialize)]
struct PacketAnswer {
    packet: String,
    acked_through: u64,
    #[serde(default)]
    records: Vec<RecordOutcome>,
    /// Earlier held records whose gap this packet filled, with their final outcome.
    #[serde(default)]
    resolved: Vec<RecordOutcome>,
}

#[derive(Deserialize)]
struct RecordOutcome {
    seq: u64,
    outcome: String,
    #[serde(default)]
    reason: Option<String>,
}

pub struct Syncer {
    app: Arc<App>,
    client: reqwest::Client,
    base: String,
}

impl Syncer {
    pub fn new(app: Arc<App>) -> Result<Syncer, SyncError> {
        let client = https_client(&app.enrolment.ca_pem, app.config.sync.request_timeout)
            .map_err(|err| SyncError::Other(err.to_string()))?;
        let base = app
            .enrolment
            .file
            .central_url
            .trim_end_matches('/')
            .to_owned();
        Ok(Syncer { app, client, base })
    }

    fn signed(
        &self,
        method: reqwest::Method,
        path_and_query: &str,
        body: Vec<u8>,
    ) -> reqwest::RequestBuilder {
        let enrolment = &self.app.enrolment;
        let headers = auth::sign_request(
            &enrolment.key,
            enrolment.terminal(),
            method.as_str(),
            path_and_query,
            self.app.clock.now(),
            &body,
        );
        let mut request = self
            .client
            .request(method, format!("{}{path_and_query}", self.base));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.body(body)
    }

    /// One full round: upload, then snapshot, then heartbeat.
    pub async fn round(&self) -> Result<RoundReport, SyncError> {
        let mut report = RoundReport::default();
        let app = self.app.clone();
        report.records_packed = blocking(move || {
            app.store
                .pack(
                    &app.enrolment.key,
                    app.enrolment.terminal(),
                    app.clock.now(),
                )
                .map_err(SyncError::from)
        })
        .await?;
        self.upload(&mut report).await?;
        report.snapshot = self.download_snapshot().await?;
        self.heartbeat().await?;
        Ok(report)
    }

    async fn upload(&self, report: &mut RoundReport) -> Result<(), SyncError> {
        let app = self.app.clone();
        let packets = blocking(move || {
            app.store
                .outbox(PACKETS_PER_ROUND_MAX)
                .map_err(SyncError::from)
        })
        .await?;
        for packet in packets {
            let response = self
                .signed(
                    reqwest::Method::POST,
                    "/api/v1/packets",
                    packet.bytes.clone(),
                )
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .send()
                .await
                .map_err(|err| SyncError::Unreachable(error_chain(&err)))?;
            let status = response.status();
            let body = read_limited(response, ANSWER_BYTES_MAX).await?;
            if !status.is_success() {
                return Err(SyncError::Status {
                    what: "a packet upload",
                    status: status.as_u16(),
                    message: central_error_message(&body),
                });
            }
            let answer: PacketAnswer =
                serde_json::from_slice(&body).map_err(|err| SyncError::BadAnswer {
                    what: "a packet upload",
                    message: err.to_string(),
                })?;
            if answer.packet != packet.packet_id {
                return Err(SyncError::BadAnswer {
                    what: "a packet upload",
                    message: format!(
                        "acknowledges packet {} but {} was sent",
                        answer.packet, packet.packet_id
                    ),
                });
            }
            for record in answer
                .records
                .iter()
                .chain(&answer.resolved)
                .filter(|record| record.outcome == "flagged")
            {
                // Flagged records are stored by central as evidence; the
                // terminal cannot fix them, but an operator should know. A
                // `bad_signature` copy is not stored in the chain:
                // `acked_through` stops before it, so the record stays in
                // the outbox and is resent (a copy corrupted on the way is
                // followed by a clean one).
                tracing::warn!(
                    seq = record.seq,
                    reason = record.reason.as_deref().unwrap_or(""),
                    "central flagged a record"
                );
            }
            let app = self.app.clone();
            let acked = answer.acked_through;
            blocking(move || app.store.ack(acked).map_err(SyncError::from)).await?;
            report.packets_sent += 1;
            report.acked_through = Some(acked);
            let newly = acked
                .saturating_sub(packet.first_seq.saturating_sub(1))
                .min(packet.last_seq - packet.first_seq + 1);
            self.app
                .metrics
                .records_uploaded
                .fetch_add(newly, Ordering::Relaxed);
            if acked < packet.last_seq {
                return Err(SyncError::Other(format!(
                    "central holds records only through seq {acked} after packet {}..={}; retrying later",
                    packet.first_seq, packet.last_seq
                )));
            }
        }
        Ok(())
    }

    /// Downloads to a file in the data directory (bounded), then applies it
    /// on a blocking thread. `Some(version)` when a snapshot was applied.
    async fn download_snapshot(&self) -> Result<Option<u64>, SyncError> {
        let have = self.app.store.snapshot().version;
        let path_and_query = match have {
            Some(version) => format!("/api/v1/snapshot?have={version}"),
            None => "/api/v1/snapshot".to_owned(),
        };
        let mut response = self
            .signed(reqwest::Method::GET, &path_and_query, Vec::new())
            .send()
            .await
            .map_err(|err| SyncError::Unreachable(error_chain(&err)))?;
        let status = response.status();
        if status == reqwest::StatusCode::NO_CONTENT {
            return Ok(None);
        }
        if !status.is_success() {
            let body = read_limited(response, ANSWER_BYTES_MAX).await?;
            return Err(SyncError::Status {
                what: "a snapshot request",
                status: status.as_u16(),
                message: central_error_message(&body),
            });
        }
        let limit = self.app.config.sync.snapshot_bytes_max;
        let download_path = self.app.config.data_dir.join("snapshot.download");
        let mut file = std::fs::File::create(&download_path)
            .map_err(|err| SyncError::Other(format!("{}: {err}", download_path.display())))?;
        let mut written: u64 = 0;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|err| SyncError::Unreachable(error_chain(&err)))?
        {
            written += chunk.len() as u64;
            if written > limit {
                drop(file);
                let _ = std::fs::remove_file(&download_path);
                self.app
                    .metrics
                    .snapshots_refused
                    .fetch_add(1, Ordering::Relaxed);
                return Err(SyncError::Other(format!(
                    "snapshot larger than sync.snapshot_bytes_max ({limit} bytes); not applied"
                )));
            }
            file.write_all(&chunk)
                .map_err(|err| SyncError::Other(format!("{}: {err}", download_path.display())))?;
        }
        drop(file);
        let app = self.app.clone();
        let path = download_path.clone();
        let result = blocking(move || {
            let file = std::fs::File::open(&path)
                .map_err(|err| SyncError::Other(format!("{}: {err}", path.display())))?;
            let ctx = ApplyContext {
                central_keys: app.enrolment.central_keys.clone(),
                terminal: app.enrolment.terminal().to_owned(),
                merchant: app.enrolment.merchant().to_owned(),
                credential_key_id: app.enrolment.file.credential_key.key_id.clone(),
                now: app.clock.now(),
            };
            app.store
                .apply_snapshot(BufReader::with_capacity(256 * 1024, file), &ctx)
                .map_err(SyncError::from)
        })
        .await;
        let _ = std::fs::remove_file(&download_path);
        match result {
            Ok(applied) => {
                self.app
                    .metrics
                    .snapshots_applied
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(version = applied.version, kind = ?applied.kind, items = applied.items, "snapshot applied");
                Ok(Some(applied.version))
            }
            Err(err) => {
                self.app
                    .metrics
                    .snapshots_refused
                    .fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %err, "snapshot refused; keeping the current one");
                Err(err)
            }
        }
    }

    async fn heartbeat(&self) -> Result<(), SyncError> {
        let app = self.app.clone();
        let status = blocking(move || app.store.status().map_err(SyncError::from)).await?;
        let head_seq = status.head.map(|head| head.seq).unwrap_or(0);
        let body = serde_json::to_vec(&serde_json::json!({
            "snapshot": self.app.store.snapshot().version,
            "outbox": head_seq.saturating_sub(status.acked_through),
            "clock": self.app.clock.now().to_string(),
        }))
        .map_err(|err| SyncError::Other(err.to_string()))?;
        let response = self
            .signed(reqwest::Method::POST, "/api/v1/heartbeat", body)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .send()
            .await
            .map_err(|err| SyncError::Unreachable(error_chain(&err)))?;
        let status = response.status();
        if !status.is_success() {
            let body = read_limited(response, ANSWER_BYTES_MAX).await?;
            return Err(SyncError::Status {
                what: "a heartbeat",
                status: status.as_u16(),
                message: central_error_message(&body),
            });
        }
        Ok(())
    }
}

async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, SyncError> {
    let mut out = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| SyncError::Unreachable(error_chain(&err)))?
    {
        if out.len() + chunk.len() > limit {
            return Err(SyncError::BadAnswer {
                what: "a request",
                message: format!("answer larger than {limit} bytes"),
            });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SyncError> + Send + 'static,
) -> Result<T, SyncError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| SyncError::Other(format!("worker failed: {err}")))?
}

/// The next delay: `base × 2^failures`, capped, then a uniformly random
/// point in its upper half, so that 10,000 terminals coming back after an
/// outage do not all knock at once.
pub fn backoff(initial: Duration, max: Duration, failures: u32, random: u64) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = initial.saturating_mul(1u32 << exponent).min(max);
    let half = full / 2;
    let spread = u64::try_from(half.as_millis()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_millis(random % spread)
}

fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    u64::from_le_bytes(bytes)
}

/// Runs rounds until `shutdown` fires: every `sync.interval` while central
/// answers, backing off while it does not.
pub async fn run_loop(app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let syncer = match Syncer::new(app.clone()) {
        Ok(syncer) => syncer,
        Err(err) => {
            tracing::error!(error = %err, "sync disabled: cannot build the HTTPS client");
            return;
        }
    };
    let config = app.config.sync.clone();
    let mut failures: u32 = 0;
    loop {
        let result = syncer.round().await;
        let now = app.clock.now();
        let delay = match &result {
            Ok(report) => {
                failures = 0;
                app.metrics.sync_runs_ok.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(?report, "sync round done");
                config.interval
            }
            Err(err) => {
                failures = failures.saturating_add(1);
                app.metrics.sync_runs_failed.fetch_add(1, Ordering::Relaxed);
                let delay = backoff(
                    config.backoff_initial,
                    config.backoff_max,
                    failures,
                    random_u64(),
                );
                tracing::warn!(error = %err, failures, retry_in = ?delay, "sync round failed");
                delay
            }
        };
        let note = result.as_ref().err().map(ToString::to_string);
        let store = app.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.note_sync(now, note.as_deref())).await;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
    }
}
