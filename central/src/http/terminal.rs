//! The terminal API: enrolment, packet upload, snapshots, heartbeat
//! (`docs/sync-protocol.md`).

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shared::wire::keys::PublicKey;

use super::{authenticate_terminal, parse_json, ApiError};
use crate::ingest::IngestError;
use crate::keys::secret_hash;
use crate::metrics::SnapshotServed;
use crate::snapshot::{self, Plan};
use crate::store::plan::RecordAnswer;
use crate::store::{EnrolRefusal, Terminal};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    code: String,
    public_key: String,
    #[serde(default)]
    label: Option<String>,
}

#[derive(Serialize)]
pub struct CentralKey {
    key_id: String,
    public_key: String,
}

#[derive(Serialize)]
pub struct CredentialKey {
    key_id: String,
    key: String,
}

#[derive(Serialize)]
pub struct EnrolAnswer {
    terminal: String,
    merchant: String,
    central_keys: Vec<CentralKey>,
    credential_key: CredentialKey,
    categories: Vec<String>,
}

/// `POST /api/v1/enrol`: the one-time code is the credential.
#[tracing::instrument(skip_all)]
pub async fn enrol(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<EnrolAnswer>, ApiError> {
    let request: EnrolRequest = parse_json(&body)?;
    let key = PublicKey::from_base64(&request.public_key)
        .map_err(|err| ApiError::bad_request("malformed", format!("public_key: {}", err.kind)))?;
    // A small-order key would let anyone sign as this terminal.
    if !shared::wire::verify::acceptable_key(&key) {
        return Err(ApiError::bad_request(
            "malformed",
            "public_key: not a usable Ed25519 key (not a canonical curve point, or of small order)",
        ));
    }
    // An empty label keeps the one the merchant gave when creating the terminal.
    let label = request
        .label
        .as_deref()
        .map(str::trim)
        .filter(|label| !label.is_empty());
    if label.is_some_and(|label| label.len() > 200) {
        return Err(ApiError::bad_request(
            "malformed",
            "label: at most 200 bytes",
        ));
    }
    let now = state.clock.now();
    let answer = state
        .store
        .enrol(
            &secret_hash(request.code.trim()),
            &key.to_base64(),
            label,
            now,
        )
        .await?;
    let terminal = match answer {
        Ok(terminal) => terminal,
        Err(refusal) => {
            let (status, code, message) = match refusal {
                EnrolRefusal::UnknownCode => (
                    StatusCode::NOT_FOUND,
                    "unknown_code",
                    "code: unknown enrolment code",
                ),
                EnrolRefusal::UsedCode => (
                    StatusCode::CONFLICT,
                    "used_code",
                    "code: this enrolment code was already used",
                ),
                EnrolRefusal::ExpiredCode => (
                    StatusCode::GONE,
                    "expired_code",
                    "code: this enrolment code has expired",
                ),
                EnrolRefusal::KeyInUse => (
                    StatusCode::CONFLICT,
                    "key_in_use",
                    "public_key: already enrolled for another terminal",
                ),
            };
            tracing::info!(code, "enrolment refused");
            return Err(ApiError::new(status, code, message));
        }
    };
    state.metrics.enrolled();
    tracing::info!(terminal = %terminal.id, merchant = %terminal.merchant, key = %key.key_id(), "terminal enrolled");
    use base64::Engine;
    Ok(Json(EnrolAnswer {
        terminal: terminal.id,
        merchant: terminal.merchant,
        central_keys: state
            .keys
            .public
            .iter()
            .map(|key| CentralKey {
                key_id: key.key_id(),
                public_key: key.to_base64(),
            })
            .collect(),
        credential_key: CredentialKey {
            key_id: state.keys.credential_key_id.clone(),
            key: base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(&state.keys.credential_key),
        },
        categories: terminal.categories,
    }))
}

#[derive(Serialize)]
pub struct RecordAnswerJson {
    seq: u64,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[derive(Serialize)]
pub struct PacketAnswerJson {
    packet: String,
    records: Vec<RecordAnswerJson>,
    /// Earlier held records whose gap this packet filled, with their final outcome.
    resolved: Vec<RecordAnswerJson>,
    acked_through: u64,
}

/// `POST /api/v1/packets`.
#[tracing::instrument(skip_all, fields(terminal))]
pub async fn packets(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<PacketAnswerJson>, ApiError> {
    let terminal = authenticate_terminal(&state, &method, &uri, &headers, &body).await?;
    tracing::Span::current().record("terminal", terminal.id.as_str());
    let now = state.clock.now();
    let answer = state
        .ingestor
        .ingest(&terminal, &body, now)
        .await
        .map_err(|err| {
            if !matches!(err, IngestError::Store(_)) {
                state.metrics.packet_refused();
                tracing::warn!(terminal = %terminal.id, error = %err, "packet refused");
            }
            match err {
                IngestError::Malformed(err) => ApiError::bad_request("malformed", err.to_string()),
                IngestError::WrongTerminal { .. } => {
                    ApiError::bad_request("wrong_terminal", err.to_string())
                }
                IngestError::BadPacketSignature(_) => {
                    ApiError::bad_request("bad_signature", err.to_string())
                }
                IngestError::NotEnrolled(_) => ApiError::unauthorized(err.to_string()),
                IngestError::Store(err) => ApiError::from(err),
            }
        })?;
    crate::ledger::ingested(&state);
    let json = |records: &[RecordAnswer]| -> Vec<RecordAnswerJson> {
        records
            .iter()
            .map(|record| RecordAnswerJson {
                seq: record.seq,
                outcome: record.outcome.as_str(),
                reason: record.reason.map(|reason| reason.as_str()),
            })
            .collect()
    };
    Ok(Json(PacketAnswerJson {
        packet: answer.packet,
        records: json(&answer.records),
        resolved: json(&answer.resolved),
        acked_through: answer.acked_through,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotQuery {
    #[serde(default)]
    have: Option<u64>,
}

/// `GET /api/v1/snapshot?have=N`: streams a delta or a full snapshot.
#[tracing::instrument(skip_all, fields(terminal))]
pub async fn snapshot(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    query: Result<Query<SnapshotQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let terminal = authenticate_terminal(&state, &method, &uri, &headers, b"").await?;
    tracing::Span::current().record("terminal", terminal.id.as_str());
    let Query(query) = query
        .map_err(|err| ApiError::bad_request("malformed", format!("query: {}", err.body_text())))?;
    let plan = snapshot::plan(state.store.as_ref(), query.have).await?;
    let served = match plan {
        Plan::Current => {
            state.metrics.snapshot_served(SnapshotServed::Current);
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        Plan::Full { .. } => SnapshotServed::Full,
        Plan::Delta { .. } => SnapshotServed::Delta,
    };
    state.metrics.snapshot_served(served);
    tracing::info!(terminal = %terminal.id, have = ?query.have, ?plan, "snapshot");
    Ok(stream_snapshot(state, terminal, plan))
}

/// Builds the snapshot in a task and streams its chunks as they come; an
/// error mid-way cuts the stream, so the terminal sees no valid trailer and
/// applies nothing.
fn stream_snapshot(state: AppState, terminal: Terminal, plan: Plan) -> Response {
    let (mut sender, receiver) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(8);
    tokio::spawn(async move {
        let now = state.clock.now();
        let result =
            snapshot::build(&state.store, &state.keys, &terminal, plan, now, &mut sender).await;
        if let Err(err) = result {
            tracing::error!(terminal = %terminal.id, error = %err, "snapshot build failed");
            let _ = sender
                .send(Err(std::io::Error::other(err.to_string())))
                .await;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (chunk.map(Bytes::from), receiver))
    });
    (
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(stream),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    snapshot: Option<u64>,
    outbox: Option<u64>,
    clock: Timestamp,
}

/// `POST /api/v1/heartbeat`.
#[tracing::instrument(skip_all)]
pub async fn heartbeat(
    State(state): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let terminal = authenticate_terminal(&state, &method, &uri, &headers, &body).await?;
    let beat: Heartbeat = parse_json(&body)?;
    let now = state.clock.now();
    let skew = beat.clock.as_second() - now.as_second();
    state.store.heartbeat(&terminal.id, now, skew).await?;
    tracing::info!(terminal = %terminal.id, snapshot = ?beat.snapshot, outbox = ?beat.outbox, skew_s = skew, "heartbeat");
    Ok(StatusCode::NO_CONTENT)
}
