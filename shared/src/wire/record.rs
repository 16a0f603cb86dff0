//! The transaction record: one committed discount, signed by the terminal
//! and linked to the previous record by hash.
//!
//! On the wire a signed record is `{"body": RecordBody, "sig": Signature}`.
//! `hash = SHA-256(canonical(body))`, `sig = Ed25519(canonical(body))` with
//! the terminal's key, and `body.prev` is the hash of the terminal's record
//! `seq − 1` ([`Hash::GENESIS`] for `seq = 1`).
//!
//! The body carries the engine's inputs ([`QuoteInputs`]), so central can
//! verify the quote as a pure function of the record and the benefit
//! definitions it names by hash. It cannot carry a name, personal code or
//! social status: there is no field for one, and unknown fields are refused.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::canonical;
use super::error::{WireError, WireErrorKind};
use super::keys::{Hash, PublicKey, Signature, SigningKey};
use crate::model::{CartLine, Grant, HistoryEntry, Quote};

pub const RECORD_VERSION: u32 = 1;

/// What a record says. Fields are declared in canonical (sorted) order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// The instant of the tap, UTC (`2026-03-02T10:05:00Z`).
    pub at: Timestamp,
    pub cart: Vec<CartLine>,
    pub credential: CredentialRef,
    /// Chosen by the POS or validator; the same key never makes two records.
    pub idempotency_key: String,
    pub inputs: QuoteInputs,
    pub kind: RecordKind,
    /// The same instant as local wall time with offset (`2026-03-02T12:05:00+02:00`),
    /// for receipts and reports; central checks it agrees with `at`.
    pub local_time: String,
    pub merchant: String,
    pub prev: Hash,
    pub quote: Quote,
    /// Pseudonymous recipient reference; never a personal code.
    pub recipient: String,
    /// Per-terminal sequence number: 1, 2, 3, … without gaps.
    pub seq: u64,
    pub terminal: String,
    #[serde(rename = "type")]
    pub record_type: RecordType,
    pub v: u32,
    /// For `kind = void`: the `seq` of the sale this record cancels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voids: Option<u64>,
}

/// The constant `"record"`: domain separation between signed objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordType {
    Record,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A discount given.
    Sale,
    /// Cancels an earlier sale of the same terminal (`voids` names its seq);
    /// carries the same cart and quote as the sale it cancels.
    Void,
}

/// How the recipient identified themself, as a keyed hash
/// ([`super::credential::credential_hash`]), never the raw number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialRef {
    pub hash: String,
    pub kind: CredentialKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    /// A contactless card (school card, transport card) by its UID.
    Card,
    /// National eID card.
    Eid,
    /// A tokenised bank card.
    BankCard,
    /// Municipal resident card.
    ResidentCard,
    /// A signed QR token from the phone app or printed ([`super::qr`]).
    Qr,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Card => "card",
            CredentialKind::Eid => "eid",
            CredentialKind::BankCard => "bank_card",
            CredentialKind::ResidentCard => "resident_card",
            CredentialKind::Qr => "qr",
        }
    }
}

/// The engine inputs the terminal used, beside the snapshot version:
/// `quote == rules::evaluate(benefits, entitlements, [], history, cart, at)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuoteInputs {
    /// Benefits the terminal judged eligible, each with the SHA-256 of its
    /// canonical definition as it stood in the snapshot.
    pub benefits: Vec<BenefitRef>,
    /// The recipient's entitlements (grants; memberships are resolved by
    /// central into per-benefit entitlements before reaching a terminal).
    pub entitlements: Vec<Grant>,
    /// Usage the terminal counted: central's usage from the snapshot plus
    /// its own earlier records, for the eligible benefits in current periods.
    pub history: Vec<HistoryEntry>,
    /// Snapshot version the terminal quoted against.
    pub snapshot: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenefitRef {
    pub hash: Hash,
    pub id: String,
}

/// The SHA-256 of a benefit definition's canonical JSON, as named in
/// [`BenefitRef::hash`].
pub fn benefit_hash(benefit: &crate::model::Benefit) -> Result<Hash, WireError> {
    Ok(Hash::of(&canonical::to_vec(benefit)?))
}

/// A record with its signature, and the canonical bytes and hash computed
/// once when it was signed or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRecord {
    pub body: RecordBody,
    pub sig: Signature,
    canonical_body: Vec<u8>,
    hash: Hash,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedRecordWire<B> {
    body: B,
    sig: Signature,
}

impl SignedRecord {
    /// Signs a body with the terminal's key.
    pub fn sign(body: RecordBody, key: &SigningKey) -> Result<SignedRecord, WireError> {
        let canonical_body = canonical::to_vec(&body)?;
        let sig = key.sign(&canonical_body);
        let hash = Hash::of(&canonical_body);
        Ok(SignedRecord {
            body,
            sig,
            canonical_body,
            hash,
        })
    }

    /// SHA-256 of the canonical body: the record's identity and the next record's `prev`.
    pub fn hash(&self) -> Hash {
        self.hash
    }

    /// The exact bytes that were signed and hashed.
    pub fn canonical_body(&self) -> &[u8] {
        &self.canonical_body
    }

    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), WireError> {
        key.verify(&self.canonical_body, &self.sig).map_err(|_| {
            WireError::new(
                format!("record seq {}", self.body.seq),
                WireErrorKind::BadSignature,
            )
        })
    }

    /// `{"body":…,"sig":"…"}` in canonical JSON.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.canonical_body.len() + 110);
        out.extend_from_slice(b"{\"body\":");
        out.extend_from_slice(&self.canonical_body);
        out.extend_from_slice(b",\"sig\":\"");
        out.extend_from_slice(self.sig.to_base64().as_bytes());
        out.extend_from_slice(b"\"}");
        out
    }

    /// Decodes a signed record; refuses unknown fields, floats and a body
    /// that is not in canonical form. Does not check the signature.
    pub fn from_json(bytes: &[u8]) -> Result<SignedRecord, WireError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: SignedRecordWire<serde_json::Value> = serde_path_to_error::deserialize(&mut de)
            .map_err(|err| {
            WireError::new(
                err.path().to_string(),
                WireErrorKind::Malformed(err.inner().to_string()),
            )
        })?;
        de.end()
            .map_err(|err| WireError::new("", WireErrorKind::Malformed(err.to_string())))?;
        SignedRecord::from_parts(wire.body, wire.sig, "body")
    }

    /// Builds a record from an already parsed body value (used inside packets).
    pub fn from_parts(
        body: serde_json::Value,
        sig: Signature,
        at: &str,
    ) -> Result<SignedRecord, WireError> {
        let signed_bytes = canonical::value_to_vec(&body)
            .map_err(|err| WireError::new(join(at, &err.at), err.kind))?;
        let parsed: RecordBody = serde_path_to_error::deserialize(body).map_err(|err| {
            WireError::new(
                join(at, &err.path().to_string()),
                WireErrorKind::Malformed(err.inner().to_string()),
            )
        })?;
        if parsed.v != RECORD_VERSION {
            return Err(WireError::new(
                join(at, "v"),
                WireErrorKind::UnsupportedVersion(u64::from(parsed.v)),
            ));
        }
        let canonical_body = canonical::to_vec(&parsed)?;
        if canonical_body != signed_bytes {
            return Err(WireError::new(at, WireErrorKind::NotCanonical));
        }
        let hash = Hash::of(&canonical_body);
        Ok(SignedRecord {
            body: parsed,
            sig,
            canonical_body,
            hash,
        })
    }
}

fn join(at: &str, rest: &str) -> String {
    match (at.is_empty(), rest.is_empty() || rest == ".") {
        (true, _) => rest.to_owned(),
        (false, true) => at.to_owned(),
        (false, false) => format!("{at}.{rest}"),
    }
}

impl Serialize for SignedRecord {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        SignedRecordWire {
            body: &self.body,
            sig: self.sig,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for SignedRecord {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<SignedRecord, D::Error> {
        let wire = SignedRecordWire::<serde_json::Value>::deserialize(deserializer)?;
        SignedRecord::from_parts(wire.body, wire.sig, "").map_err(serde::de::Error::custom)
    }
}
