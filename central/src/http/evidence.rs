//! Evidence that ingestion kept outside the chain, for the admin:
//! `GET /api/v1/bad-signatures`, the copies of records whose signature did
//! not verify with their terminal's key. Such a copy is not attributed to
//! the terminal, so it is neither a fork (`GET /api/v1/forks`) nor in the
//! record list; it is listed here so that tampering on the path is seen.

use axum::extract::State;
use axum::Json;
use serde::Serialize;

use super::{ApiError, Staff};
use crate::store::Role;
use crate::AppState;

#[derive(Serialize)]
pub struct BadSignatureJson {
    terminal: String,
    seq: u64,
    hash: String,
    /// The record body as received (`null` if it is not JSON, which the
    /// packet decoder never lets through).
    record: serde_json::Value,
}

pub async fn bad_signatures(
    State(state): State<AppState>,
    staff: Staff,
) -> Result<Json<Vec<BadSignatureJson>>, ApiError> {
    if staff.role != Role::Admin {
        return Err(ApiError::forbidden("this needs the admin token"));
    }
    Ok(Json(
        state
            .store
            .bad_signatures(None)
            .await?
            .into_iter()
            .map(|row| BadSignatureJson {
                record: serde_json::from_str(&row.body).unwrap_or(serde_json::Value::Null),
                terminal: row.terminal,
                seq: row.seq,
                hash: row.hash,
            })
            .collect(),
    ))
}
