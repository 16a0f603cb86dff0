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
use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use super::canonical::{self, StrictValue};
use super::error::{path_at, WireError, WireErrorKind};
use super::keys::{Hash, PublicKey, Signature, SigningKey};
use super::verify::{verify_batch, Signed};
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
    /// Signs a body with the terminal's key. Refuses a body that
    /// [`from_json`](Self::from_json) would refuse, so that a terminal never
    /// commits a record central cannot read.
    pub fn sign(body: RecordBody, key: &SigningKey) -> Result<SignedRecord, WireError> {
        check_body(&body)?;
        // About 250 bytes per cart line or history entry, 600 for the rest.
        let size_guess = 600
            + 250
                * (body.cart.len()
                    + body.inputs.history.len()
                    + body.inputs.benefits.len()
                    + body.quote.discounts.len());
        let canonical_body = canonical::to_vec_sized(&body, size_guess)?;
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

    /// Checks the signatures of `records`, all by `key`, as one batch
    /// ([`super::verify::verify_batch`], whose random weights come from
    /// `rng`): `true` where [`verify_signature`](Self::verify_signature)
    /// would say `Ok`. Callers split a packet into chunks of
    /// [`super::verify::BATCH`].
    pub fn verify_signatures<R: RngCore + CryptoRng>(
        records: &[SignedRecord],
        key: &PublicKey,
        rng: R,
    ) -> Vec<bool> {
        let items: Vec<Signed<'_>> = records
            .iter()
            .map(|record| Signed {
                key,
                message: &record.canonical_body,
                signature: &record.sig,
            })
            .collect();
        verify_batch(&items, rng)
    }

    /// `{"body":…,"sig":"…"}` in canonical JSON.
    pub fn to_json(&self) -> Vec<u8> {
        envelope_json(&self.canonical_body, &self.sig)
    }

    /// Decodes a signed record; refuses unknown fields, floats and a body
    /// that is not in canonical form. Does not check the signature.
    pub fn from_json(bytes: &[u8]) -> Result<SignedRecord, WireError> {
        // Almost every record arrives with its body in canonical form, as
        // terminals send it; then one typed parse and one encoding prove it.
        // Anything else takes the general path, which also names the error.
        if let Some(record) = SignedRecord::from_json_canonical(bytes) {
            return Ok(record);
        }
        SignedRecord::from_json_general(bytes)
    }

    /// The general path of [`from_json`](Self::from_json): any formatting,
    /// precise errors.
    pub(crate) fn from_json_general(bytes: &[u8]) -> Result<SignedRecord, WireError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: SignedRecordWire<StrictValue> = serde_path_to_error::deserialize(&mut de)
            .map_err(|err| {
                WireError::new(
                    path_at("", err.path()),
                    WireErrorKind::Malformed(err.inner().to_string()),
                )
            })?;
        de.end()
            .map_err(|err| WireError::new("", WireErrorKind::Malformed(err.to_string())))?;
        SignedRecord::from_parts(wire.body.0, wire.sig, "body")
    }

    /// The fast path of [`from_json`](Self::from_json): `Some` only when the
    /// body is already canonical and valid, in which case the general path
    /// would return the same record.
    pub(crate) fn from_json_canonical(bytes: &[u8]) -> Option<SignedRecord> {
        let (body, sig) = envelope_parts(bytes)?;
        // UTF-8 checked once here rather than string by string in the parser.
        let parsed: RecordBody = serde_json::from_str(std::str::from_utf8(body).ok()?).ok()?;
        SignedRecord::proven_canonical(parsed, body, sig, &mut canonical::Matcher::default())
    }

    /// A record whose body `parsed` was read from `body`: `Some` when the
    /// body is valid and `body` is exactly its canonical form, which is
    /// then kept as the signed bytes (compared in place, not re-encoded).
    fn proven_canonical(
        parsed: RecordBody,
        body: &[u8],
        sig: Signature,
        matcher: &mut canonical::Matcher,
    ) -> Option<SignedRecord> {
        check_body(&parsed).ok()?;
        if !matcher.matches(&parsed, body) {
            return None;
        }
        let canonical_body = body.to_vec();
        let hash = Hash::of(&canonical_body);
        Some(SignedRecord {
            body: parsed,
            sig,
            canonical_body,
            hash,
        })
    }

    /// The fast path for a record inside a packet body: `bytes` starts with
    /// a record in its canonical envelope, `{"body":…,"sig":"…"}` exactly as
    /// [`to_json`](Self::to_json) writes it, followed by anything. Returns
    /// the record and the length of its envelope; `Some` only when the body
    /// is canonical and valid and the signature text is canonical base64url,
    /// so the envelope equals `to_json()` of the record returned.
    ///
    /// Text, not bytes: the caller checked UTF-8 once for all records, so
    /// the parser does not check each string again.
    pub(crate) fn from_json_canonical_prefix(
        text: &str,
        matcher: &mut canonical::Matcher,
    ) -> Option<(SignedRecord, usize)> {
        let rest = text.strip_prefix("{\"body\":")?;
        // One parse finds where the body ends: no separate scan for it.
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<RecordBody>();
        let parsed = stream.next()?.ok()?;
        let body_len = stream.byte_offset();
        let (body, tail) = rest.as_bytes().split_at(body_len);
        let sig_text = tail.strip_prefix(ENVELOPE_SIG_MEMBER)?.get(..SIG_LEN)?;
        if !tail[ENVELOPE_SIG_MEMBER.len() + SIG_LEN..].starts_with(ENVELOPE_SUFFIX) {
            return None;
        }
        let sig = Signature::from_base64(std::str::from_utf8(sig_text).ok()?).ok()?;
        // Decoding is strict, but the packet's canonical form depends on
        // these exact characters: compare them with the encoding.
        let mut encoded = [0u8; SIG_LEN];
        base64::Engine::encode_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            sig.0,
            &mut encoded,
        )
        .ok()?;
        if encoded[..] != *sig_text {
            return None;
        }
        let record = SignedRecord::proven_canonical(parsed, body, sig, matcher)?;
        let len = ENVELOPE_PREFIX.len()
            + body_len
            + ENVELOPE_SIG_MEMBER.len()
            + SIG_LEN
            + ENVELOPE_SUFFIX.len();
        Some((record, len))
    }

    /// Builds a record from an already parsed body value (used inside packets).
    pub fn from_parts(
        body: serde_json::Value,
        sig: Signature,
        at: &str,
    ) -> Result<SignedRecord, WireError> {
        let signed_bytes = canonical::value_to_vec(&body)
            .map_err(|err| WireError::new(join(at, &err.at), err.kind))?;
        // The version first, so that a newer record is reported as such and
        // not as unknown fields.
        if let Some(version) = body.get("v").and_then(serde_json::Value::as_u64) {
            if version != u64::from(RECORD_VERSION) {
                return Err(WireError::new(
                    join(at, "v"),
                    WireErrorKind::UnsupportedVersion(version),
                ));
            }
        }
        let parsed: RecordBody = serde_path_to_error::deserialize(body).map_err(|err| {
            WireError::new(
                join(at, &err.path().to_string()),
                WireErrorKind::Malformed(err.inner().to_string()),
            )
        })?;
        check_body(&parsed).map_err(|err| WireError::new(join(at, &err.at), err.kind))?;
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

const ENVELOPE_PREFIX: &[u8] = b"{\"body\":";
const ENVELOPE_SIG_MEMBER: &[u8] = b",\"sig\":\"";
const ENVELOPE_SUFFIX: &[u8] = b"\"}";
/// Base64url (no padding) of a 64-byte Ed25519 signature.
const SIG_LEN: usize = 86;

/// `{"body":<canonical body>,"sig":"<base64url>"}`: the canonical envelope of
/// every signed object (records and packets), which
/// [`split_canonical_envelope`] takes apart again.
pub(crate) fn envelope_json(canonical_body: &[u8], sig: &Signature) -> Vec<u8> {
    let sig_text = sig.to_base64();
    let mut out = Vec::with_capacity(
        ENVELOPE_PREFIX.len()
            + canonical_body.len()
            + ENVELOPE_SIG_MEMBER.len()
            + sig_text.len()
            + ENVELOPE_SUFFIX.len(),
    );
    out.extend_from_slice(ENVELOPE_PREFIX);
    out.extend_from_slice(canonical_body);
    out.extend_from_slice(ENVELOPE_SIG_MEMBER);
    out.extend_from_slice(sig_text.as_bytes());
    out.extend_from_slice(ENVELOPE_SUFFIX);
    out
}

/// The body bytes and the signature of a well-formed `{"body":…,"sig":…}`
/// envelope (a record's or a packet's): split without parsing when written
/// exactly as [`SignedRecord::to_json`] writes it, else parsed leniently (the
/// envelope is not signed; the body is proven canonical by the caller).
pub(crate) fn envelope_parts(bytes: &[u8]) -> Option<(&[u8], Signature)> {
    match split_canonical_envelope(bytes) {
        Some(parts) => Some(parts),
        None => {
            let wire: SignedRecordWire<&serde_json::value::RawValue> =
                serde_json::from_slice(bytes).ok()?;
            Some((wire.body.get().as_bytes(), wire.sig))
        }
    }
}

/// `{"body":<body>,"sig":"<86 characters>"}` exactly, as [`SignedRecord::to_json`]
/// writes it: the body bytes and the signature, without parsing the
/// envelope (the body is parsed and proven canonical by the caller).
fn split_canonical_envelope(bytes: &[u8]) -> Option<(&[u8], Signature)> {
    let rest = bytes
        .strip_prefix(ENVELOPE_PREFIX)?
        .strip_suffix(ENVELOPE_SUFFIX)?;
    let body_len = rest
        .len()
        .checked_sub(ENVELOPE_SIG_MEMBER.len() + SIG_LEN)?;
    let (body, tail) = rest.split_at(body_len);
    let sig_text = tail.strip_prefix(ENVELOPE_SIG_MEMBER)?;
    let sig = Signature::from_base64(std::str::from_utf8(sig_text).ok()?).ok()?;
    Some((body, sig))
}

/// Rules on a body beyond its types: the version, identifiers that stay
/// boring (1–128 printable ASCII characters, no spaces: they travel in URLs,
/// CSV files and logs), a credential hash in its one form, and `voids`
/// present exactly on a void, naming an earlier record.
fn check_body(body: &RecordBody) -> Result<(), WireError> {
    let invalid =
        |at: &str, message: String| Err(WireError::new(at, WireErrorKind::Invalid(message)));
    if body.v != RECORD_VERSION {
        return Err(WireError::new(
            "v",
            WireErrorKind::UnsupportedVersion(u64::from(body.v)),
        ));
    }
    for (at, id) in [
        ("terminal", &body.terminal),
        ("merchant", &body.merchant),
        ("recipient", &body.recipient),
        ("idempotency_key", &body.idempotency_key),
    ] {
        if !crate::validate::is_valid_id(id) {
            return invalid(
                at,
                format!("{id:?} is not 1 to 128 printable ASCII characters without spaces"),
            );
        }
    }
    let hash = &body.credential.hash;
    if hash.len() != 64 || !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return invalid(
            "credential.hash",
            format!("{hash:?} is not 64 lowercase hex digits"),
        );
    }
    if body.seq == 0 {
        return invalid("seq", "sequence numbers start at 1".into());
    }
    match (body.kind, body.voids) {
        (RecordKind::Sale, None) => {}
        (RecordKind::Sale, Some(_)) => {
            return invalid("voids", "only a void names a record it voids".into())
        }
        (RecordKind::Void, None) => {
            return invalid(
                "voids",
                "a void must name the seq of the sale it cancels".into(),
            )
        }
        (RecordKind::Void, Some(voided)) if voided == 0 || voided >= body.seq => {
            return invalid(
                "voids",
                format!("{voided} is not an earlier record than seq {}", body.seq),
            )
        }
        (RecordKind::Void, Some(_)) => {}
    }
    // A verifier re-runs the quote, visiting every unit of the cart: a
    // record's cart is held to what a till accepts, so that a faulty or
    // hostile terminal cannot make central allocate without bound.
    if let Err(problems) = crate::validate::cart(&body.cart) {
        return match problems.0.first() {
            Some(first) => invalid(&first.path, first.message.clone()),
            None => invalid("cart", problems.to_string()),
        };
    }
    Ok(())
}

/// The `local_time` text of an instant in a zone: RFC 3339 with the zone's
/// offset at that instant and the same fraction of a second as `at`
/// (`2026-03-02T12:05:00+02:00`).
pub fn local_time_of(at: Timestamp, tz: &jiff::tz::TimeZone) -> String {
    at.display_with_offset(tz.to_offset(at)).to_string()
}

impl RecordBody {
    /// `true` when `local_time` is an RFC 3339 time with a numeric offset
    /// naming the same instant as `at`. Central flags a record where it is
    /// not (`bad_local_time`) rather than refusing it: the record is still
    /// evidence.
    pub fn local_time_agrees(&self) -> bool {
        let has_offset = self.local_time.len() > 6 && {
            let tail = &self.local_time.as_bytes()[self.local_time.len() - 6..];
            matches!(tail[0], b'+' | b'-') && tail[3] == b':'
        };
        has_offset
            && self
                .local_time
                .parse::<Timestamp>()
                .is_ok_and(|instant| instant == self.at)
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
        let wire = SignedRecordWire::<StrictValue>::deserialize(deserializer)?;
        SignedRecord::from_parts(wire.body.0, wire.sig, "body").map_err(serde::de::Error::custom)
    }
}
