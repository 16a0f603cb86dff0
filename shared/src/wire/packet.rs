//! The packet: a signed, contiguous run of one terminal's records, the unit
//! of upload from terminal to central.
//!
//! On the wire `{"body": PacketBody, "sig": Signature}`; `id = SHA-256(canonical(body))`.
//! The agent stores a packet's bytes in its outbox and resends the same
//! bytes, so a resend has the same id; central also deduplicates per record
//! (terminal, seq, hash), so even a repacked run changes nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::canonical::{self, StrictValue};
use super::error::{path_at, WireError, WireErrorKind};
use super::keys::{Hash, PublicKey, Signature, SigningKey};
use super::record::{envelope_parts, SignedRecord};

pub const PACKET_VERSION: u32 = 1;
/// Most records in one packet; bounds memory and request size on both sides.
pub const PACKET_RECORDS_MAX: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PacketBody {
    pub created_at: Timestamp,
    pub first_seq: u64,
    /// Hash of the last record.
    pub head: Hash,
    pub last_seq: u64,
    /// `prev` of the first record: the hash of record `first_seq − 1`.
    pub prev: Hash,
    pub records: Vec<SignedRecord>,
    pub terminal: String,
    #[serde(rename = "type")]
    pub packet_type: PacketType,
    pub v: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PacketType {
    Packet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub body: PacketBody,
    pub sig: Signature,
    canonical_body: Vec<u8>,
    id: Hash,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PacketWire<B> {
    body: B,
    sig: Signature,
}

impl Packet {
    /// Packs a non-empty contiguous run of records and signs it.
    pub fn build(
        terminal: &str,
        records: Vec<SignedRecord>,
        created_at: Timestamp,
        key: &SigningKey,
    ) -> Result<Packet, WireError> {
        let (Some(first), Some(last)) = (records.first(), records.last()) else {
            return Err(WireError::new(
                "records",
                WireErrorKind::Invalid("a packet needs at least one record".into()),
            ));
        };
        if records.len() > PACKET_RECORDS_MAX {
            return Err(WireError::new(
                "records",
                WireErrorKind::TooLarge(format!(
                    "{} records, at most {PACKET_RECORDS_MAX}",
                    records.len()
                )),
            ));
        }
        let body = PacketBody {
            created_at,
            first_seq: first.body.seq,
            head: last.hash(),
            last_seq: last.body.seq,
            prev: first.body.prev,
            terminal: terminal.to_owned(),
            packet_type: PacketType::Packet,
            v: PACKET_VERSION,
            records,
        };
        check_header(&body)?;
        let canonical_body = Packet::encode_body(&body)?;
        let sig = key.sign(&canonical_body);
        let id = Hash::of(&canonical_body);
        Ok(Packet {
            body,
            sig,
            canonical_body,
            id,
        })
    }

    /// Canonical body bytes, reusing each record's canonical bytes.
    fn encode_body(body: &PacketBody) -> Result<Vec<u8>, WireError> {
        // The `records` member is spliced in from the records' own canonical
        // bytes rather than re-encoded; keys stay in sorted order.
        let mut out = Vec::with_capacity(
            256 + body
                .records
                .iter()
                .map(|r| r.canonical_body().len() + 100)
                .sum::<usize>(),
        );
        out.extend_from_slice(b"{\"created_at\":");
        out.extend_from_slice(&canonical::to_vec(&body.created_at)?);
        out.extend_from_slice(
            format!(
                ",\"first_seq\":{},\"head\":\"{}\",\"last_seq\":{},\"prev\":\"{}\",\"records\":[",
                body.first_seq, body.head, body.last_seq, body.prev
            )
            .as_bytes(),
        );
        for (idx, record) in body.records.iter().enumerate() {
            if idx > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&record.to_json());
        }
        out.extend_from_slice(b"],\"terminal\":");
        out.extend_from_slice(&canonical::to_vec(&body.terminal)?);
        out.extend_from_slice(format!(",\"type\":\"packet\",\"v\":{}}}", body.v).as_bytes());
        Ok(out)
    }

    /// SHA-256 of the canonical body: the same packet always has the same id.
    pub fn id(&self) -> Hash {
        self.id
    }

    pub fn canonical_body(&self) -> &[u8] {
        &self.canonical_body
    }

    pub fn verify_signature(&self, key: &PublicKey) -> Result<(), WireError> {
        key.verify(&self.canonical_body, &self.sig)
            .map_err(|_| WireError::new("sig", WireErrorKind::BadSignature))
    }

    /// `{"body":…,"sig":"…"}` in canonical JSON.
    pub fn to_json(&self) -> Vec<u8> {
        super::record::envelope_json(&self.canonical_body, &self.sig)
    }

    /// Decodes a packet: well-formed, canonical, consistent header
    /// (first/last seq, prev, head, terminal of every record, contiguous
    /// seqs). Does not check signatures; see [`super::chain`].
    pub fn from_json(bytes: &[u8]) -> Result<Packet, WireError> {
        // The common case, a packet in canonical form, decodes in one typed
        // pass; anything else takes the general path, which names the error.
        if let Some(packet) = Packet::from_json_canonical(bytes) {
            return Ok(packet);
        }
        Packet::from_json_general(bytes)
    }

    /// The general path of [`from_json`](Self::from_json): any formatting,
    /// precise errors.
    pub(crate) fn from_json_general(bytes: &[u8]) -> Result<Packet, WireError> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: PacketWire<StrictValue> =
            serde_path_to_error::deserialize(&mut de).map_err(|err| {
                WireError::new(
                    path_at("", err.path()),
                    WireErrorKind::Malformed(err.inner().to_string()),
                )
            })?;
        de.end()
            .map_err(|err| WireError::new("", WireErrorKind::Malformed(err.to_string())))?;
        let body = wire.body.0;
        let signed_bytes = canonical::value_to_vec(&body).map_err(|err| {
            let at = if err.at.is_empty() {
                "body".to_owned()
            } else {
                format!("body.{}", err.at)
            };
            WireError::new(at, err.kind)
        })?;
        if let Some(version) = body.get("v").and_then(serde_json::Value::as_u64) {
            if version != u64::from(PACKET_VERSION) {
                return Err(WireError::new(
                    "body.v",
                    WireErrorKind::UnsupportedVersion(version),
                ));
            }
        }
        let serde_json::Value::Object(mut map) = body else {
            return Err(WireError::new(
                "body",
                WireErrorKind::Malformed("expected an object".into()),
            ));
        };
        let records_value = map.remove("records").unwrap_or(serde_json::Value::Null);
        let serde_json::Value::Array(record_values) = records_value else {
            return Err(WireError::new(
                "body.records",
                WireErrorKind::Malformed("expected an array".into()),
            ));
        };
        if record_values.len() > PACKET_RECORDS_MAX {
            return Err(WireError::new(
                "body.records",
                WireErrorKind::TooLarge(format!(
                    "{} records, at most {PACKET_RECORDS_MAX}",
                    record_values.len()
                )),
            ));
        }
        let mut records = Vec::with_capacity(record_values.len());
        for (idx, value) in record_values.into_iter().enumerate() {
            let at = format!("body.records[{idx}]");
            let record_wire: PacketWire<serde_json::Value> =
                serde_path_to_error::deserialize(value).map_err(|err| {
                    WireError::new(
                        path_at(&at, err.path()),
                        WireErrorKind::Malformed(err.inner().to_string()),
                    )
                })?;
            records.push(SignedRecord::from_parts(
                record_wire.body,
                record_wire.sig,
                &format!("{at}.body"),
            )?);
        }
        map.insert("records".into(), serde_json::Value::Array(Vec::new()));
        let mut header: PacketBody =
            serde_path_to_error::deserialize(serde_json::Value::Object(map)).map_err(|err| {
                WireError::new(
                    path_at("body", err.path()),
                    WireErrorKind::Malformed(err.inner().to_string()),
                )
            })?;
        if header.v != PACKET_VERSION {
            return Err(WireError::new(
                "body.v",
                WireErrorKind::UnsupportedVersion(u64::from(header.v)),
            ));
        }
        header.records = records;
        check_header(&header)?;
        let canonical_body = Packet::encode_body(&header)?;
        if canonical_body != signed_bytes {
            return Err(WireError::new("body", WireErrorKind::NotCanonical));
        }
        let id = Hash::of(&canonical_body);
        Ok(Packet {
            body: header,
            sig: wire.sig,
            canonical_body,
            id,
        })
    }
}

impl Packet {
    /// `Some` only when the packet is valid with a canonical body, in which
    /// case the general path would return the same packet.
    ///
    /// The body is proven canonical piece by piece instead of re-encoded
    /// whole: each record's envelope is parsed and compared in place
    /// ([`SignedRecord::from_json_canonical_prefix`]), the records array is
    /// exactly those envelopes joined by commas, and the header around it,
    /// with the array emptied, is the canonical encoding of the header.
    /// Together that is `encode_body` of the packet returned.
    pub(crate) fn from_json_canonical(bytes: &[u8]) -> Option<Packet> {
        let (body_bytes, sig) = envelope_parts(bytes)?;
        // The members before `records` hold no `,"records":[` (an instant,
        // integers, hex hashes); wherever the split falls, the header check
        // below refuses what does not fit.
        let open = find(body_bytes, RECORDS_OPEN)? + RECORDS_OPEN.len();
        // UTF-8 checked once here rather than string by string in the parser.
        let body_text = std::str::from_utf8(body_bytes).ok()?;
        // Typical records take 1.5 kB on the wire: a hint, not a bound.
        let mut records =
            Vec::with_capacity((body_bytes.len() / 1024).clamp(1, PACKET_RECORDS_MAX));
        let mut at = open;
        let mut matcher = canonical::Matcher::default();
        loop {
            if records.len() == PACKET_RECORDS_MAX {
                // One more record: the general path names the error.
                return None;
            }
            let (record, len) =
                SignedRecord::from_json_canonical_prefix(body_text.get(at..)?, &mut matcher)?;
            records.push(record);
            at += len;
            match body_bytes.get(at) {
                Some(b',') => at += 1,
                Some(b']') => break,
                _ => return None,
            }
        }
        let (before, after) = (&body_bytes[..open], &body_bytes[at..]);
        let mut header_text = Vec::with_capacity(before.len() + after.len());
        header_text.extend_from_slice(before);
        header_text.extend_from_slice(after);
        let mut body: PacketBody = serde_json::from_slice(&header_text).ok()?;
        if body.v != PACKET_VERSION || !matcher.matches(&body, &header_text) {
            return None;
        }
        body.records = records;
        check_header(&body).ok()?;
        let canonical_body = body_bytes.to_vec();
        let id = Hash::of(&canonical_body);
        Some(Packet {
            body,
            sig,
            canonical_body,
            id,
        })
    }
}

/// Where the records array opens in a canonical packet body.
const RECORDS_OPEN: &[u8] = b",\"records\":[";

/// The offset of the first occurrence of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

fn check_header(body: &PacketBody) -> Result<(), WireError> {
    let invalid =
        |at: &str, message: String| Err(WireError::new(at, WireErrorKind::Invalid(message)));
    let (Some(first), Some(last)) = (body.records.first(), body.records.last()) else {
        return invalid("body.records", "a packet needs at least one record".into());
    };
    if body.first_seq != first.body.seq {
        return invalid(
            "body.first_seq",
            format!(
                "{} but the first record has seq {}",
                body.first_seq, first.body.seq
            ),
        );
    }
    if body.last_seq != last.body.seq {
        return invalid(
            "body.last_seq",
            format!(
                "{} but the last record has seq {}",
                body.last_seq, last.body.seq
            ),
        );
    }
    if body.prev != first.body.prev {
        return invalid("body.prev", "differs from the first record's prev".into());
    }
    if body.head != last.hash() {
        return invalid(
            "body.head",
            "differs from the hash of the last record".into(),
        );
    }
    for (idx, record) in body.records.iter().enumerate() {
        if record.body.terminal != body.terminal {
            return invalid(
                &format!("body.records[{idx}].body.terminal"),
                format!(
                    "{:?} in a packet of terminal {:?}",
                    record.body.terminal, body.terminal
                ),
            );
        }
        let expected = body.first_seq + idx as u64;
        if record.body.seq != expected {
            return invalid(
                &format!("body.records[{idx}].body.seq"),
                format!(
                    "{} where {expected} was expected (records must be contiguous)",
                    record.body.seq
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The fast path against the general one: it must take canonical
    //! packets, and whenever it answers, answer as the general path does.

    use super::*;
    use crate::wire::vectors;

    /// The fast path's answer, checked against the general path's.
    fn fast_agrees(json: &[u8]) -> Option<Packet> {
        let fast = Packet::from_json_canonical(json);
        if let Some(packet) = &fast {
            assert_eq!(
                Ok(packet),
                Packet::from_json_general(json).as_ref(),
                "{}",
                String::from_utf8_lossy(json)
            );
        }
        fast
    }

    fn replace(json: &[u8], from: &str, to: &str) -> Vec<u8> {
        let text = std::str::from_utf8(json).expect("UTF-8");
        assert!(text.contains(from), "{from:?} not in the packet");
        text.replacen(from, to, 1).into_bytes()
    }

    #[test]
    fn canonical_packets_take_the_fast_path() {
        let packet = vectors::packet().expect("vector packet");
        let json = packet.to_json();
        assert_eq!(fast_agrees(&json), Some(packet.clone()));
        assert_eq!(
            fast_agrees(&json).map(|decoded| decoded.canonical_body().to_vec()),
            Some(packet.canonical_body().to_vec())
        );
        // The envelope may be formatted freely: only the body is signed.
        let spaced = replace(&json, "{\"body\":", "{ \"body\" : ");
        assert_eq!(fast_agrees(&spaced), Some(packet.clone()));
        let trailing = [&json[..], b"\n"].concat();
        assert_eq!(fast_agrees(&trailing), Some(packet));
    }

    #[test]
    fn non_canonical_bodies_are_left_to_the_general_path() {
        let packet = vectors::packet().expect("vector packet");
        let json = packet.to_json();
        let record_json = packet.body.records[0].to_json();
        let record_text = std::str::from_utf8(&record_json).expect("UTF-8");
        let sig = packet.body.records[0].sig.to_base64();
        // The same 64 bytes with non-zero trailing bits, if the decoder
        // allowed them: the packet would no longer be canonical.
        let mut loose_sig = sig.clone().into_bytes();
        let last = loose_sig.len() - 1;
        loose_sig[last] = if loose_sig[last] == b'B' { b'C' } else { b'B' };
        let loose_sig = String::from_utf8(loose_sig).expect("ASCII");
        let edits = [
            replace(&json, "\"records\":[", "\"records\":[ "),
            replace(&json, "\"},{\"body\"", "\"}, {\"body\""),
            replace(&json, "\"}]", "\"} ]"),
            replace(&json, "\"records\":[", "\"records\":[],\"x\":["),
            replace(&json, &sig, &loose_sig),
            replace(
                &json,
                "{\"body\":{\"at\"",
                "{\"sig\":\"x\",\"body\":{\"at\"",
            ),
            replace(&json, record_text, &format!("{record_text},{record_text}")),
            replace(&json, "\"first_seq\":1,", ""),
            replace(
                &json,
                "\"type\":\"packet\"",
                "\"type\":\"packet\",\"type\":\"packet\"",
            ),
            replace(&json, "\"v\":1}", "\"v\":2}"),
            replace(&json, ",\"terminal\":", " ,\"terminal\":"),
        ];
        for edited in edits {
            // Some are refused, some (spaces) accepted and re-encoded by the
            // general path; the fast path leaves all of them to it.
            assert_eq!(
                fast_agrees(&edited),
                None,
                "{}",
                String::from_utf8_lossy(&edited)
            );
            assert_eq!(
                Packet::from_json(&edited),
                Packet::from_json_general(&edited)
            );
        }
        let spaced = replace(&json, "\"records\":[", "\"records\":[ ");
        assert_eq!(Packet::from_json(&spaced), Ok(packet));
    }

    #[test]
    fn one_record_too_many_is_refused_as_before() {
        let key = vectors::terminal_key().expect("key");
        let mut prev = Hash::GENESIS;
        let mut body = vectors::record_bodies().expect("bodies")[0].clone();
        let records: Vec<SignedRecord> = (1..=PACKET_RECORDS_MAX as u64)
            .map(|seq| {
                body.seq = seq;
                body.prev = prev;
                let record = SignedRecord::sign(body.clone(), &key).expect("sign");
                prev = record.hash();
                record
            })
            .collect();
        let extra = records[0].to_json();
        let packet = Packet::build(vectors::TERMINAL, records, body.at, &key).expect("build");
        let json = packet.to_json();
        assert!(
            fast_agrees(&json).is_some(),
            "a full packet takes the fast path"
        );
        let extra = std::str::from_utf8(&extra).expect("UTF-8");
        let over = replace(&json, "\"records\":[", &format!("\"records\":[{extra},"));
        assert_eq!(fast_agrees(&over), None);
        let err = Packet::from_json(&over).expect_err("1001 records");
        assert_eq!(err.at, "body.records");
        assert!(matches!(err.kind, WireErrorKind::TooLarge(_)), "{err}");
    }

    #[test]
    fn every_one_byte_edit_decodes_as_the_general_path_decodes_it() {
        let json = vectors::packet().expect("vector packet").to_json();
        let mut accepted = 0;
        for idx in 0..json.len() {
            let mut deleted = json.clone();
            deleted.remove(idx);
            let mut replaced = json.clone();
            replaced[idx] = if replaced[idx] == b' ' { b'"' } else { b' ' };
            for edited in [deleted, replaced] {
                let general = Packet::from_json_general(&edited);
                // A deleted or replaced byte that the general path accepts
                // leaves the body canonical (free text edited, a space in
                // the envelope): the fast path takes all of those.
                assert_eq!(
                    fast_agrees(&edited).is_some(),
                    general.is_ok(),
                    "{}",
                    String::from_utf8_lossy(&edited)
                );
                assert_eq!(Packet::from_json(&edited), general);
                accepted += usize::from(general.is_ok());
            }
        }
        assert!(accepted > 0, "some edits keep the packet valid");
    }
}
