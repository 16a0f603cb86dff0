//! A small stand-in for central that speaks `docs/sync-protocol.md` over
//! real HTTPS (rustls, certificates from rcgen): enrolment with a one-time
//! code, signed requests, packet upload with per-record outcomes and
//! `acked_through`, snapshots by `have`, heartbeats. It sits below the real
//! HTTP and TLS stack of the agent, so the agent's sync runs unchanged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use agent::clock::Clock;
use agent::testkit::TestCentral;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use shared::wire::auth;
use shared::wire::keys::PublicKey;
use shared::wire::packet::Packet;
use shared::wire::record::SignedRecord;

pub const ENROL_CODE: &str = "ENR-TEST-0001";

/// What central has seen and will answer.
#[derive(Default)]
pub struct CentralState {
    pub terminal_key: Option<PublicKey>,
    pub records: BTreeMap<u64, SignedRecord>,
    pub packets_received: u64,
    pub heartbeats: Vec<serde_json::Value>,
    /// `have` values of snapshot requests, in order.
    pub snapshot_requests: Vec<Option<u64>>,
    /// Answers to snapshot requests: by the `have` they answer (`None`:
    /// a terminal without snapshot); a missing entry answers 204.
    pub snapshots: BTreeMap<Option<u64>, Vec<u8>>,
    /// While set, every request gets this status (central in trouble).
    pub failing: Option<u16>,
    pub code_used: bool,
}

pub struct CentralDouble {
    pub url: String,
    pub state: Arc<Mutex<CentralState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Clone)]
struct Shared {
    state: Arc<Mutex<CentralState>>,
    central: Arc<TestCentral>,
    clock: Arc<dyn Clock>,
}

/// A CA and a server certificate for 127.0.0.1 and localhost.
pub struct Tls {
    pub ca_pem: String,
    cert_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Tls {
    pub fn generate() -> Tls {
        let ca_key = rcgen::KeyPair::generate().expect("ca key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("ca params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "test central CA");
        let ca = ca_params.self_signed(&ca_key).expect("ca cert");
        let server_key = rcgen::KeyPair::generate().expect("server key");
        let server_params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("server params");
        let server = server_params
            .signed_by(&server_key, &ca, &ca_key)
            .expect("server cert");
        Tls {
            ca_pem: ca.pem(),
            cert_der: server.der().to_vec(),
            key_der: server_key.serialize_der(),
        }
    }
}

impl CentralDouble {
    /// Starts on `addr` (port 0 for any) with `tls`.
    pub async fn start(
        addr: SocketAddr,
        tls: &Tls,
        clock: Arc<dyn Clock>,
        state: Arc<Mutex<CentralState>>,
    ) -> CentralDouble {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocols")
            .with_no_client_auth()
            .with_single_cert(
                vec![rustls::pki_types::CertificateDer::from(
                    tls.cert_der.clone(),
                )],
                rustls::pki_types::PrivateKeyDer::Pkcs8(tls.key_der.clone().into()),
            )
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind central");
        let addr = listener.local_addr().expect("addr");
        let shared = Shared {
            state: state.clone(),
            central: Arc::new(crate::support::central()),
            clock,
        };
        let router = Router::new()
            .route("/api/v1/enrol", post(enrol))
            .route("/api/v1/packets", post(packets))
            .route("/api/v1/snapshot", get(snapshot))
            .route("/api/v1/heartbeat", post(heartbeat))
            .with_state(shared);
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    _ = &mut stopped => return,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let acceptor = acceptor.clone();
                let router = router.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(router);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        CentralDouble {
            url: format!("https://{addr}"),
            state,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, CentralState> {
        self.state.lock().expect("central state")
    }

    /// Stops accepting; open connections end with their requests.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn boxed_error(status: StatusCode, code: &str, message: &str) -> Box<Response> {
    Box::new(error(status, code, message))
}

fn check_signed(
    shared: &Shared,
    headers: &HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<(), Box<Response>> {
    let state = shared.state.lock().expect("state");
    if let Some(status) = state.failing {
        return Err(boxed_error(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            "unavailable",
            "central is in trouble",
        ));
    }
    let Some(key) = state.terminal_key else {
        return Err(boxed_error(
            StatusCode::UNAUTHORIZED,
            "unknown_terminal",
            "not enrolled",
        ));
    };
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    if header(auth::HEADER_TERMINAL) != shared.central.terminal {
        return Err(boxed_error(
            StatusCode::UNAUTHORIZED,
            "unknown_terminal",
            "wrong terminal",
        ));
    }
    auth::verify_request(
        &key,
        method,
        path_and_query,
        &header(auth::HEADER_TIMESTAMP),
        &header(auth::HEADER_SIGNATURE),
        body,
        shared.clock.now(),
    )
    .map_err(|err| {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            &err.to_string(),
        ))
    })
}

async fn enrol(State(shared): State<Shared>, body: Bytes) -> Response {
    let request: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(value) => value,
        Err(err) => return error(StatusCode::BAD_REQUEST, "malformed", &err.to_string()),
    };
    let mut state = shared.state.lock().expect("state");
    if request["code"] != ENROL_CODE {
        return error(
            StatusCode::NOT_FOUND,
            "unknown_code",
            "no such enrolment code",
        );
    }
    if state.code_used {
        return error(
            StatusCode::CONFLICT,
            "used_code",
            "this code was already used",
        );
    }
    let Ok(key) = PublicKey::from_base64(request["public_key"].as_str().unwrap_or("")) else {
        return error(StatusCode::BAD_REQUEST, "malformed", "public_key");
    };
    state.code_used = true;
    state.terminal_key = Some(key);
    let file = shared.central.enrolment_file("");
    axum::Json(json!({
        "terminal": file.terminal,
        "merchant": file.merchant,
        "central_keys": file.central_keys,
        "credential_key": file.credential_key,
        "categories": ["meal"],
    }))
    .into_response()
}

async fn packets(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = check_signed(&shared, &headers, "POST", "/api/v1/packets", &body) {
        return *response;
    }
    let packet = match Packet::from_json(&body) {
        Ok(packet) => packet,
        Err(err) => return error(StatusCode::BAD_REQUEST, "malformed", &err.to_string()),
    };
    let mut state = shared.state.lock().expect("state");
    let Some(key) = state.terminal_key else {
        return error(StatusCode::UNAUTHORIZED, "unknown_terminal", "not enrolled");
    };
    if packet.verify_signature(&key).is_err() {
        return error(StatusCode::BAD_REQUEST, "bad_signature", "packet signature");
    }
    state.packets_received += 1;
    let mut outcomes = Vec::new();
    for record in &packet.body.records {
        let seq = record.body.seq;
        let outcome = match state.records.get(&seq) {
            Some(known) if known.hash() == record.hash() => {
                json!({"seq": seq, "outcome": "duplicate"})
            }
            Some(_) => json!({"seq": seq, "outcome": "flagged", "reason": "fork"}),
            None if record.verify_signature(&key).is_err() => {
                json!({"seq": seq, "outcome": "flagged", "reason": "bad_signature"})
            }
            None => {
                state.records.insert(seq, record.clone());
                json!({"seq": seq, "outcome": "accepted"})
            }
        };
        outcomes.push(outcome);
    }
    let mut acked_through = 0;
    while state.records.contains_key(&(acked_through + 1)) {
        acked_through += 1;
    }
    axum::Json(json!({"packet": packet.id().to_hex(), "records": outcomes, "acked_through": acked_through})).into_response()
}

#[derive(serde::Deserialize)]
struct Have {
    have: Option<u64>,
}

async fn snapshot(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Query(have): Query<Have>,
    uri: axum::http::Uri,
) -> Response {
    let path_and_query = uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_default();
    if let Err(response) = check_signed(&shared, &headers, "GET", &path_and_query, b"") {
        return *response;
    }
    let mut state = shared.state.lock().expect("state");
    state.snapshot_requests.push(have.have);
    match state.snapshots.get(&have.have) {
        Some(bytes) => (
            StatusCode::OK,
            [("content-type", "application/x-ndjson")],
            bytes.clone(),
        )
            .into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn heartbeat(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(response) = check_signed(&shared, &headers, "POST", "/api/v1/heartbeat", &body) {
        return *response;
    }
    let value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    shared.state.lock().expect("state").heartbeats.push(value);
    StatusCode::NO_CONTENT.into_response()
}
