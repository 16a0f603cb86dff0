//! QR / phone tokens: short-lived, signed by central, verifiable offline.
//!
//! Text form `BPQ1.<payload>.<sig>`: `payload` is base64url (no padding) of
//! the canonical JSON of [`QrPayload`]; `sig` is base64url of central's
//! Ed25519 signature over the ASCII bytes `BPQ1.<payload>`. About 300
//! characters with a short recipient reference: a version 13 QR code at
//! error correction level M (331 bytes), easily read from a phone screen.

use base64::Engine;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::canonical;
use super::credential::credential_hash;
use super::error::{WireError, WireErrorKind};
use super::keys::{PublicKey, Signature, SigningKey};
use super::record::{CredentialKind, CredentialRef};

pub const QR_PREFIX: &str = "BPQ1";
/// Longest token text a decoder looks at.
pub const QR_LEN_MAX: usize = 512;
/// The payload's `v`.
pub const QR_VERSION: u32 = 1;
/// The payload's `type`: domain separation from every other signed object.
pub const QR_TYPE: &str = "qr";
/// How far in the future `iat` may lie: terminal clocks drift.
pub const QR_CLOCK_SKEW_MAX_SECONDS: i64 = 60;
/// Bytes of randomness in a nonce.
pub const QR_NONCE_LEN: usize = 16;
/// Longest recipient reference a token carries.
pub const QR_RECIPIENT_LEN_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QrPayload {
    pub exp: Timestamp,
    pub iat: Timestamp,
    /// Key id of the central key that signed it.
    pub kid: String,
    /// 16 random bytes, base64url: makes every token unique, so a terminal can refuse a replay.
    pub nonce: String,
    pub recipient: String,
    #[serde(rename = "type")]
    pub qr_type: String,
    pub v: u32,
}

impl QrPayload {
    /// How a record names this token: the keyed hash of its nonce, with kind
    /// `qr`. The record never carries the token, yet central can see one
    /// token used twice.
    pub fn credential_ref(&self, credential_key: &[u8]) -> CredentialRef {
        CredentialRef {
            hash: credential_hash(credential_key, CredentialKind::Qr, &self.nonce),
            kind: CredentialKind::Qr,
        }
    }
}

/// Encodes and signs a token. Refuses a payload that [`decode`] would
/// refuse for its form (version, type, key id, nonce, length).
pub fn encode(payload: &QrPayload, key: &SigningKey) -> Result<String, WireError> {
    check_form(payload)?;
    if payload.kid != key.key_id() {
        return Err(WireError::new(
            "kid",
            WireErrorKind::Invalid(format!(
                "{:?} but the signing key is {}",
                payload.kid,
                key.key_id()
            )),
        ));
    }
    let payload_bytes = canonical::to_vec(payload)?;
    let mut token = String::with_capacity(QR_LEN_MAX);
    token.push_str(QR_PREFIX);
    token.push('.');
    token.push_str(&B64.encode(payload_bytes));
    let sig = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&sig.to_base64());
    if token.len() > QR_LEN_MAX {
        return Err(WireError::new(
            "",
            WireErrorKind::TooLarge(format!(
                "the token is {} characters, at most {QR_LEN_MAX}",
                token.len()
            )),
        ));
    }
    Ok(token)
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Decodes and verifies a token at `now` with the central keys the terminal
/// trusts. In order: length, prefix, payload form (canonical JSON, version,
/// type), key id, signature, then time (`iat ≤ now + 60 s`, `now < exp`), so
/// that a time error is only ever reported for a genuine token.
pub fn decode(
    token: &str,
    central_keys: &[PublicKey],
    now: Timestamp,
) -> Result<QrPayload, WireError> {
    if token.len() > QR_LEN_MAX {
        return Err(WireError::new(
            "",
            WireErrorKind::TooLarge(format!(
                "{} characters, a token has at most {QR_LEN_MAX}",
                token.len()
            )),
        ));
    }
    let mut parts = token.split('.');
    let (Some(prefix), Some(payload_text), Some(sig_text), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WireError::new(
            "",
            WireErrorKind::Malformed("expected three parts: BPQ1.<payload>.<signature>".into()),
        ));
    };
    if prefix != QR_PREFIX {
        let other_version = prefix
            .strip_prefix("BPQ")
            .and_then(|digits| digits.parse::<u64>().ok());
        return Err(WireError::new(
            "prefix",
            match other_version {
                Some(version) => WireErrorKind::UnsupportedVersion(version),
                None => WireErrorKind::Malformed(format!("{prefix:?} is not {QR_PREFIX:?}")),
            },
        ));
    }
    let payload_bytes = B64.decode(payload_text).map_err(|err| {
        WireError::new(
            "payload",
            WireErrorKind::Malformed(format!("not base64url without padding: {err}")),
        )
    })?;
    let payload = decode_payload(&payload_bytes)?;
    let Some(key) = central_keys.iter().find(|key| key.key_id() == payload.kid) else {
        return Err(WireError::new(
            "payload.kid",
            WireErrorKind::UnknownKey(payload.kid.clone()),
        ));
    };
    let sig =
        Signature::from_base64(sig_text).map_err(|err| WireError::new("signature", err.kind))?;
    let signed_len = token.len() - sig_text.len() - 1;
    key.verify(&token.as_bytes()[..signed_len], &sig)
        .map_err(|_| WireError::new("signature", WireErrorKind::BadSignature))?;
    let iat_max = now
        .checked_add(jiff::SignedDuration::from_secs(QR_CLOCK_SKEW_MAX_SECONDS))
        .unwrap_or(Timestamp::MAX);
    if payload.iat > iat_max {
        return Err(WireError::new(
            "payload.iat",
            WireErrorKind::Invalid(format!(
                "issued at {}, more than {QR_CLOCK_SKEW_MAX_SECONDS} s after the terminal's time {now}",
                payload.iat
            )),
        ));
    }
    if now >= payload.exp {
        return Err(WireError::new(
            "payload.exp",
            WireErrorKind::Expired(payload.exp.to_string()),
        ));
    }
    Ok(payload)
}

/// The payload JSON: strict, canonical, this version, well formed.
fn decode_payload(bytes: &[u8]) -> Result<QrPayload, WireError> {
    let under = |err: WireError| {
        let at = if err.at.is_empty() || err.at == "." {
            "payload".to_owned()
        } else {
            format!("payload.{}", err.at)
        };
        WireError::new(at, err.kind)
    };
    let value = canonical::parse(bytes).map_err(under)?;
    if let Some(version) = value.get("v").and_then(serde_json::Value::as_u64) {
        if version != u64::from(QR_VERSION) {
            return Err(WireError::new(
                "payload.v",
                WireErrorKind::UnsupportedVersion(version),
            ));
        }
    }
    canonical::value_to_vec(&value).map_err(under)?;
    let payload: QrPayload = serde_path_to_error::deserialize(value).map_err(|err| {
        under(WireError::new(
            err.path().to_string(),
            WireErrorKind::Malformed(err.inner().to_string()),
        ))
    })?;
    if canonical::to_vec(&payload)? != bytes {
        return Err(WireError::new("payload", WireErrorKind::NotCanonical));
    }
    check_form(&payload).map_err(under)?;
    Ok(payload)
}

/// Rules on a payload's fields beyond their types.
fn check_form(payload: &QrPayload) -> Result<(), WireError> {
    let invalid =
        |at: &str, message: String| Err(WireError::new(at, WireErrorKind::Invalid(message)));
    if payload.v != QR_VERSION {
        return Err(WireError::new(
            "v",
            WireErrorKind::UnsupportedVersion(u64::from(payload.v)),
        ));
    }
    if payload.qr_type != QR_TYPE {
        return invalid(
            "type",
            format!("{:?} where {QR_TYPE:?} was expected", payload.qr_type),
        );
    }
    let nonce_ok = B64
        .decode(&payload.nonce)
        .is_ok_and(|nonce| nonce.len() == QR_NONCE_LEN);
    if !nonce_ok {
        return invalid(
            "nonce",
            format!(
                "{:?} is not {QR_NONCE_LEN} bytes in base64url",
                payload.nonce
            ),
        );
    }
    if payload.recipient.is_empty() || payload.recipient.len() > QR_RECIPIENT_LEN_MAX {
        return invalid(
            "recipient",
            format!("must be 1 to {QR_RECIPIENT_LEN_MAX} bytes"),
        );
    }
    if payload.exp <= payload.iat {
        return invalid(
            "exp",
            format!("{} is not after iat {}", payload.exp, payload.iat),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
