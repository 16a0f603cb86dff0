//! The HTTP API: routes, errors and authentication.
//!
//! - Terminal API (`docs/sync-protocol.md`): enrolment with a one-time code,
//!   then signed requests (`X-Terminal`, `X-Timestamp`, `X-Signature`,
//!   `shared::wire::auth`) checked against the key enrolled for that terminal.
//! - Staff API (`docs/central-api.md`): bearer tokens bound to a role and a
//!   provider or merchant; each sees only its own data.
//! - `GET /metrics`, `GET /healthz`, `GET /openapi.json`.
//!
//! Every error is `{"error": {"code", "message"}}`; a storage fault is a 500
//! whose details go to the log, never to the client.

pub mod evidence;
pub mod ledger;
pub mod reports;
pub mod staff;
mod terminal;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Serialize;
use shared::wire::auth::{verify_request, HEADER_SIGNATURE, HEADER_TERMINAL, HEADER_TIMESTAMP};
use shared::wire::keys::PublicKey;
use tower_http::timeout::TimeoutLayer;

use crate::keys::secret_hash;
use crate::store::{Role, StoreError, Terminal, TerminalStatus};
use crate::AppState;

/// The largest packet upload accepted (`413` above).
pub const PACKET_BYTES_MAX: usize = 16 * 1024 * 1024;
/// The largest import upload over HTTP; bigger files go through `central import`.
pub const IMPORT_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Requests that take longer to produce a response are answered 408.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The OpenAPI document of this API, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// The router with every route of the API.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/enrol", post(terminal::enrol))
        .route(
            "/api/v1/packets",
            post(terminal::packets).layer(DefaultBodyLimit::max(PACKET_BYTES_MAX)),
        )
        .route("/api/v1/snapshot", get(terminal::snapshot))
        .route("/api/v1/heartbeat", post(terminal::heartbeat))
        .route("/api/v1/me", get(staff::me))
        .route(
            "/api/v1/providers",
            get(staff::providers).post(staff::put_provider),
        )
        .route(
            "/api/v1/merchants",
            get(staff::merchants).post(staff::put_merchant),
        )
        .route("/api/v1/groups", get(staff::groups).post(staff::put_group))
        .route("/api/v1/benefits", get(staff::benefits))
        .route("/api/v1/benefits/{id}", put(staff::put_benefit))
        .route(
            "/api/v1/terminals",
            get(staff::terminals).post(staff::create_terminal),
        )
        .route(
            "/api/v1/terminals/{id}/revoke",
            post(staff::revoke_terminal),
        )
        .route(
            "/api/v1/import/{kind}",
            post(staff::import).layer(DefaultBodyLimit::max(IMPORT_BYTES_MAX)),
        )
        .route("/api/v1/credentials/block", post(staff::block_credential))
        .route("/api/v1/recipients/{id}", get(staff::recipient))
        .route("/api/v1/records", get(staff::records))
        .route("/api/v1/forks", get(staff::forks))
        .route("/api/v1/bad-signatures", get(evidence::bad_signatures))
        .route("/api/v1/flags", get(ledger::list_flags))
        .route("/api/v1/flags/{id}", get(ledger::get_flag))
        .route("/api/v1/flags/{id}/decision", post(ledger::decide_flag))
        .route("/api/v1/reconciliation", get(ledger::reconciliation))
        .route(
            "/api/v1/settlements",
            get(ledger::list_settlements).post(ledger::issue),
        )
        .route("/api/v1/settlements/{number}", get(ledger::get_settlement))
        .route(
            "/api/v1/settlements/{number}/invoice.xml",
            get(ledger::invoice_xml),
        )
        .route(
            "/api/v1/invoice-details/{role}/{id}",
            put(ledger::put_invoice_details),
        )
        .route(
            "/api/v1/overuse-policies/{benefit}",
            put(ledger::put_overuse_policy),
        )
        .route(
            "/api/v1/reports/merchant/daily",
            get(reports::merchant_daily),
        )
        .route(
            "/api/v1/reports/merchant/monthly",
            get(reports::merchant_monthly),
        )
        .route("/api/v1/reports/provider", get(reports::provider_report))
        .route(
            "/api/v1/budgets/{benefit}/{month}",
            put(reports::put_budget),
        )
        .route("/api/v1/portal/tokens", post(reports::create_portal_token))
        .route("/api/v1/portal/person", post(reports::portal_person))
        .route(
            "/api/v1/open-data/usage",
            get(reports::open_data_usage).layer(axum::Extension(reports::OpenDataGate::new(
                reports::OPEN_DATA_COMPUTE_MAX,
            ))),
        )
        .route(
            "/api/v1/open-data/benefits",
            get(reports::open_data_benefits),
        )
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(state)
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI,
    )
        .into_response()
}

/// An error answer: status, a stable snake_case code and a message that
/// says what and where.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }
    pub fn status(&self) -> StatusCode {
        self.status
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorFields {
                code: self.code,
                message: &self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> ApiError {
        match err {
            StoreError::NotFound(what) => ApiError::not_found(format!("{what} not found")),
            StoreError::Conflict(message) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", message)
            }
            StoreError::Invalid(message) => ApiError::bad_request("invalid", message),
            StoreError::Other(message) => {
                tracing::error!(error = %message, "storage fault");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error (logged)",
                )
            }
        }
    }
}

/// Parses a JSON body; the message names the offending field.
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let path = if path == "." { "body".to_owned() } else { path };
        ApiError::bad_request("malformed", format!("{path}: {}", err.inner()))
    })?;
    de.end()
        .map_err(|err| ApiError::bad_request("malformed", format!("body: {err}")))?;
    Ok(value)
}

/// An authenticated staff client.
#[derive(Debug, Clone)]
pub struct Staff {
    pub role: Role,
    pub label: String,
}

impl FromRequestParts<AppState> for Staff {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Staff, ApiError> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                state.metrics.auth_failed();
                ApiError::unauthorized("Authorization: Bearer <token> is required")
            })?;
        let token = value.strip_prefix("Bearer ").ok_or_else(|| {
            state.metrics.auth_failed();
            ApiError::unauthorized("Authorization must be a Bearer token")
        })?;
        match state.store.token(&secret_hash(token.trim())).await? {
            Some(token) => Ok(Staff {
                role: token.role,
                label: token.label,
            }),
            None => {
                state.metrics.auth_failed();
                Err(ApiError::unauthorized("unknown token"))
            }
        }
    }
}

/// Authenticates a signed terminal request; the terminal must be active.
pub async fn authenticate_terminal(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Terminal, ApiError> {
    let refuse = |message: String| {
        state.metrics.auth_failed();
        tracing::info!(%message, "terminal request refused");
        ApiError::unauthorized(message)
    };
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let (Some(terminal_id), Some(timestamp), Some(signature)) = (
        header_text(HEADER_TERMINAL),
        header_text(HEADER_TIMESTAMP),
        header_text(HEADER_SIGNATURE),
    ) else {
        return Err(refuse(format!(
            "signed request required: headers {HEADER_TERMINAL}, {HEADER_TIMESTAMP}, {HEADER_SIGNATURE}"
        )));
    };
    let Some(terminal) = state.store.terminal(&terminal_id).await? else {
        return Err(refuse(format!(
            "{HEADER_TERMINAL}: unknown terminal {terminal_id:?}"
        )));
    };
    if terminal.status != TerminalStatus::Active {
        return Err(refuse(format!(
            "{HEADER_TERMINAL}: terminal {terminal_id} is {}",
            terminal.status.as_str()
        )));
    }
    let key = terminal
        .public_key
        .as_deref()
        .and_then(|text| PublicKey::from_base64(text).ok())
        .ok_or_else(|| refuse(format!("terminal {terminal_id} has no enrolled key")))?;
    let path_and_query = uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or_else(|| uri.path());
    verify_request(
        &key,
        method.as_str(),
        path_and_query,
        &timestamp,
        &signature,
        body,
        state.clock.now(),
    )
    .map_err(|err| refuse(err.to_string()))?;
    Ok(terminal)
}
