//! Signed HTTP requests: how a terminal proves who it is to central.
//!
//! Headers `X-Terminal`, `X-Timestamp` (RFC 3339 UTC) and `X-Signature`
//! (base64url Ed25519 over [`request_message`]) with the key enrolled for
//! that terminal. Central refuses a timestamp more than
//! [`CLOCK_SKEW_MAX_SECONDS`] from its clock, so a captured request cannot be
//! replayed later; uploads are idempotent, so a replay inside the window
//! changes nothing either.

use jiff::Timestamp;

use super::error::{WireError, WireErrorKind};
use super::keys::{Hash, PublicKey, Signature, SigningKey};

pub const HEADER_TERMINAL: &str = "x-terminal";
pub const HEADER_TIMESTAMP: &str = "x-timestamp";
pub const HEADER_SIGNATURE: &str = "x-signature";
pub const CLOCK_SKEW_MAX_SECONDS: i64 = 300;

/// The signed message: five lines joined by `\n`:
/// `BPOS-REQ-1`, method (uppercase), path with query, timestamp, hex SHA-256 of the body.
pub fn request_message(
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    body: &[u8],
) -> Vec<u8> {
    format!(
        "BPOS-REQ-1\n{}\n{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path_and_query,
        timestamp,
        Hash::of(body).to_hex()
    )
    .into_bytes()
}

/// The three header values for a request.
pub fn sign_request(
    key: &SigningKey,
    terminal: &str,
    method: &str,
    path_and_query: &str,
    now: Timestamp,
    body: &[u8],
) -> [(&'static str, String); 3] {
    let timestamp = now.to_string();
    let sig = key.sign(&request_message(method, path_and_query, &timestamp, body));
    [
        (HEADER_TERMINAL, terminal.to_owned()),
        (HEADER_TIMESTAMP, timestamp),
        (HEADER_SIGNATURE, sig.to_base64()),
    ]
}

/// Checks a request's signature and freshness against the terminal's key.
pub fn verify_request(
    key: &PublicKey,
    method: &str,
    path_and_query: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now: Timestamp,
) -> Result<(), WireError> {
    let at: Timestamp = timestamp.parse().map_err(|_| {
        WireError::new(
            HEADER_TIMESTAMP,
            WireErrorKind::Malformed(format!("{timestamp:?} is not an RFC 3339 instant")),
        )
    })?;
    let skew = (now.as_second() - at.as_second()).abs();
    if skew > CLOCK_SKEW_MAX_SECONDS {
        return Err(WireError::new(
            HEADER_TIMESTAMP,
            WireErrorKind::Invalid(format!(
                "{skew} s from the server's clock (at most {CLOCK_SKEW_MAX_SECONDS} s)"
            )),
        ));
    }
    let sig = Signature::from_base64(signature)
        .map_err(|err| WireError::new(HEADER_SIGNATURE, err.kind))?;
    key.verify(
        &request_message(method, path_and_query, timestamp, body),
        &sig,
    )
    .map_err(|_| WireError::new(HEADER_SIGNATURE, WireErrorKind::BadSignature))
}
