//! The local HTTP API for POS software (`docs/agent-api.md`): axum
//! handlers that parse, call [`crate::app::App`], and render. Every error
//! is JSON `{"error": {"code", "message", "details"?}}` with a status that
//! says whose problem it is: 400 malformed, 404/405 wrong path or method,
//! 409 conflict with what is committed, 413 too large, 415 not JSON,
//! 422 a refusal for the cashier, 503 not ready, 500 our fault.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::model::CartLine;
use shared::validate::Problem;

use crate::app::{App, AppError, CommitRequest, Committed, CredentialInput, VoidRequest};

/// Header set on a commit answer that repeats an earlier one.
pub const HEADER_OUTCOME: &str = "x-commit-outcome";

pub fn router(app: Arc<App>) -> Router {
    let config = &app.config.api;
    let body_limit = config.body_bytes_max;
    let timeout = config.request_timeout;
    let concurrency = config.concurrent_requests_max;
    Router::new()
        .route("/v1/identify", post(identify))
        .route("/v1/quote", post(quote))
        .route("/v1/commit", post(commit))
        .route("/v1/void", post(void))
        .route("/v1/tap", post(tap))
        .route("/v1/status", get(status))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(concurrency))
        .with_state(app)
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorInner<'a>,
}

#[derive(Serialize)]
struct ErrorInner<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(
        skip_serializing_if = "<[Problem]>::is_empty",
        serialize_with = "problems"
    )]
    details: &'a [Problem],
}

fn problems<S: serde::Serializer>(details: &&[Problem], serializer: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = serializer.serialize_seq(Some(details.len()))?;
    for problem in details.iter() {
        seq.serialize_element(
            &serde_json::json!({"path": problem.path, "message": problem.message}),
        )?;
    }
    seq.end()
}

/// A JSON error answer.
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    details: Vec<Problem>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Vec::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorInner {
                code: self.code,
                message: &self.message,
                details: &self.details,
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| {
            b"{\"error\":{\"code\":\"internal_error\",\"message\":\"\"}}".to_vec()
        });
        (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response()
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> ApiError {
        match err {
            AppError::Refused(refusal) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                refusal.code(),
                refusal.message(),
            ),
            AppError::BadRequest {
                code,
                message,
                details,
            } => ApiError {
                status: StatusCode::BAD_REQUEST,
                code,
                message,
                details,
            },
            AppError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            AppError::NotFound { code, message } => {
                ApiError::new(StatusCode::NOT_FOUND, code, message)
            }
            AppError::Unavailable { code, message } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            }
            AppError::Internal(detail) => {
                // Details stay in the log: a POS needs to know it is our
                // fault, not how our database is laid out.
                tracing::error!(error = %detail, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "The benefit terminal had an internal error; nothing was recorded. Try again; if it repeats, call support",
                )
            }
        }
    }
}

/// JSON body extractor whose every rejection is a JSON error naming the
/// field (`cart[0].unit_price: …`), unlike axum's plain-text rejections.
pub struct AppJson<T>(pub T);

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            let status = rejection.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    status,
                    "body_too_large",
                    "the request body is larger than api.body_bytes_max",
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unreadable_body",
                    rejection.body_text(),
                )
            }
        })?;
        parse_json(&bytes).map(AppJson)
    }
}

/// Parses `bytes` as `T`, naming the offending field in the error.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.inner();
        let message = if inner.is_syntax() || inner.is_eof() {
            format!("the body is not valid JSON: {inner}")
        } else if path == "." {
            format!("{inner}")
        } else {
            format!("{path}: {inner}")
        };
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "malformed_request",
            details: vec![Problem {
                path: if path == "." { String::new() } else { path },
                message: inner.to_string(),
            }],
            message,
        }
    })?;
    de.end().map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("the body has more after the JSON value: {err}"),
        )
    })?;
    Ok(value)
}

fn json_response<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response(),
        Err(err) => {
            ApiError::from(AppError::Internal(format!("encoding answer: {err}"))).into_response()
        }
    }
}

fn committed_response(committed: Committed) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        HEADER_OUTCOME,
        HeaderValue::from_static(committed.outcome.as_str()),
    );
    (StatusCode::OK, headers, committed.answer).into_response()
}

/// Runs blocking work (SQLite, fsync) off the async workers.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| ApiError::from(AppError::Internal(format!("worker failed: {err}"))))?
        .map_err(ApiError::from)
}

fn outcome_code<T>(result: &Result<T, ApiError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentifyRequest {
    credential: CredentialInput,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuoteRequest {
    credential: CredentialInput,
    cart: Vec<CartLine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TapRequest {
    credential: CredentialInput,
}

#[tracing::instrument(skip_all)]
async fn identify(
    State(app): State<Arc<App>>,
    AppJson(request): AppJson<IdentifyRequest>,
) -> Response {
    let app2 = app.clone();
    let result = blocking(move || app2.identify(&request.credential)).await;
    app.metrics.count("identify", outcome_code(&result));
    match result {
        Ok(answer) => json_response(&answer),
        Err(err) => err.into_response(),
    }
}

#[tracing::instrument(skip_all)]
async fn quote(State(app): State<Arc<App>>, AppJson(request): AppJson<QuoteRequest>) -> Response {
    let app2 = app.clone();
    let result = blocking(move || app2.quote(&request.credential, &request.cart)).await;
    app.metrics.count("quote", outcome_code(&result));
    match result {
        Ok(answer) => json_response(&answer),
        Err(err) => err.into_response(),
    }
}

#[tracing::instrument(skip_all)]
async fn commit(State(app): State<Arc<App>>, AppJson(request): AppJson<CommitRequest>) -> Response {
    if app.is_validator() {
        app.metrics.count("commit", "not_a_till");
        return ApiError::new(
            StatusCode::CONFLICT,
            "not_a_till",
            "this terminal is a validator: taps go to /v1/tap",
        )
        .into_response();
    }
    let app2 = app.clone();
    let result = blocking(move || app2.commit(&request)).await;
    app.metrics.count("commit", outcome_code(&result));
    match result {
        Ok(committed) => committed_response(committed),
        Err(err) => err.into_response(),
    }
}

#[tracing::instrument(skip_all)]
async fn void(State(app): State<Arc<App>>, AppJson(request): AppJson<VoidRequest>) -> Response {
    let app2 = app.clone();
    let result = blocking(move || app2.void(&request)).await;
    app.metrics.count("void", outcome_code(&result));
    match result {
        Ok(committed) => committed_response(committed),
        Err(err) => err.into_response(),
    }
}

#[tracing::instrument(skip_all)]
async fn tap(State(app): State<Arc<App>>, AppJson(request): AppJson<TapRequest>) -> Response {
    let app2 = app.clone();
    let result = blocking(move || app2.tap(request.credential)).await;
    app.metrics.count("tap", outcome_code(&result));
    match result {
        Ok(committed) => committed_response(committed),
        Err(err) => err.into_response(),
    }
}

async fn status(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    match blocking(move || app2.status()).await {
        Ok(answer) => json_response(&answer),
        Err(err) => err.into_response(),
    }
}

/// 200 when the database answers and a snapshot is loaded; 503 otherwise,
/// with the reason. A stale snapshot is still healthy (quotes still work).
async fn health(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    match blocking(move || app2.status()).await {
        Ok(status) if status.snapshot.version.is_some() => json_response(&serde_json::json!({
            "status": "ok",
            "snapshot_stale": status.snapshot.stale,
        })),
        Ok(status) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_snapshot",
            status.snapshot.message,
        )
        .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let app2 = app.clone();
    match blocking(move || app2.gauges()).await {
        Ok(gauges) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            )],
            app.metrics.render(&gauges),
        )
            .into_response(),
        Err(err) => err.into_response(),
    }
}

async fn not_found(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!(
            "{method} {}: no such endpoint (see docs/agent-api.md)",
            uri.path()
        ),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}
