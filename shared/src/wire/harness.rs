//! Property checks over arbitrary bytes, one per decoder, shared by the
//! cargo-fuzz targets (`fuzz/`) and the stable replay test
//! (`shared/tests/wire_fuzz.rs`), so that both exercise the same thing.
//!
//! Each function feeds `data` to a decoder, returns whether the decoder
//! accepted it (so callers can see the properties were exercised), and
//! **panics only when a property fails**: a decoder must never panic, and anything it accepts
//! must re-encode to the canonical form of what it was given. Because
//! random bytes almost never carry a valid signature, each check also signs
//! the input with the published test keys ([`super::vectors`]) and decodes
//! that, so that the checks behind the signature are reached too.

use super::canonical;
use super::chain;
use super::keys::{Hash, Signature};
use super::packet::Packet;
use super::qr;
use super::record::SignedRecord;
use super::snapshot::{self, SnapshotKind, SnapshotTrailer};
use super::vectors;

/// Records: decode as sent; decode the body signed with the test key.
pub fn record(data: &[u8]) -> bool {
    let mut accepted = false;
    // The fast path agrees with the general one whenever it answers.
    if let Some(fast) = SignedRecord::from_json_canonical(data) {
        assert_eq!(
            Ok(fast),
            SignedRecord::from_json_general(data),
            "fast path differs"
        );
    }
    if let Ok(record) = SignedRecord::from_json(data) {
        assert_reencodes(data, &record.to_json());
        let again = SignedRecord::from_json(&record.to_json());
        assert_eq!(again.as_ref(), Ok(&record), "decode(encode(x)) != x");
        let _ = chain::verify_record(&test_terminal_public(), vectors::TERMINAL, &record);
        accepted = true;
    }
    // The input's body (or the input as a body): anything decoding accepts,
    // signing accepts.
    if let Ok(value) = canonical::parse(data) {
        let body = match value.get("body") {
            Some(body) => body.clone(),
            None => value,
        };
        if let Ok(decoded) = SignedRecord::from_parts(body, Signature([0; 64]), "body") {
            let key = test_key(vectors::terminal_key());
            let signed = SignedRecord::sign(decoded.body.clone(), &key)
                .unwrap_or_else(|err| panic!("decodes but cannot be signed: {err}"));
            assert_eq!(signed.canonical_body(), decoded.canonical_body());
            let again = SignedRecord::from_json(&signed.to_json())
                .unwrap_or_else(|err| panic!("signed record does not decode: {err}"));
            assert_eq!(again.verify_signature(&key.public_key()), Ok(()));
            accepted = true;
        }
    }
    accepted
}

/// Packets: decode as sent, re-encode, verify; rebuild and re-sign.
pub fn packet(data: &[u8]) -> bool {
    if let Some(fast) = Packet::from_json_canonical(data) {
        assert_eq!(
            Ok(fast),
            Packet::from_json_general(data),
            "fast path differs"
        );
    }
    let Ok(packet) = Packet::from_json(data) else {
        return false;
    };
    assert_reencodes(data, &packet.to_json());
    let again = Packet::from_json(&packet.to_json());
    assert_eq!(again.as_ref(), Ok(&packet), "decode(encode(x)) != x");
    let _ = chain::verify_packet(&test_terminal_public(), &packet);
    let key = test_key(vectors::terminal_key());
    let rebuilt = Packet::build(
        &packet.body.terminal,
        packet.body.records.clone(),
        packet.body.created_at,
        &key,
    )
    .unwrap_or_else(|err| panic!("decodes but cannot be rebuilt: {err}"));
    assert_eq!(rebuilt.id(), packet.id(), "same body, same id");
    true
}

/// Snapshots and deltas: read as sent; then with a trailer signed by the
/// test central key over the complete lines given, in which case what is
/// accepted must be written back byte for byte by the writer.
pub fn snapshot(data: &[u8]) -> bool {
    let central = test_key(vectors::central_key());
    let keys = [central.public_key()];
    if let Ok((header, _)) = snapshot::read_all(data, &keys) {
        let _ = snapshot::check_applies(Some(7), &header);
    }
    // Re-sign: drop a trailing partial line and a trailer-looking last line.
    let mut end = data
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |idx| idx + 1);
    let last_start = data[..end.saturating_sub(1)]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |idx| idx + 1);
    if data[last_start..end].starts_with(b"{\"items\":") {
        end = last_start;
    }
    let body = &data[..end];
    let n_lines = body.iter().filter(|b| **b == b'\n').count() as u64;
    if n_lines == 0 {
        return false;
    }
    let sha256 = Hash::of(body);
    let trailer = SnapshotTrailer {
        items: n_lines - 1,
        sha256,
        sig: central.sign(&snapshot::signed_message(&sha256)),
        t: "end".into(),
    };
    let Ok(mut trailer_line) = canonical::to_vec(&trailer) else {
        return false;
    };
    trailer_line.push(b'\n');
    let signed = [body, &trailer_line].concat();
    let Ok((header, items)) = snapshot::read_all(&signed[..], &keys) else {
        return false;
    };
    let written = vectors::write_snapshot(&header, &items, &central)
        .unwrap_or_else(|err| panic!("read but cannot be written: {err}"));
    assert_eq!(
        written, signed,
        "a snapshot read must be written back byte for byte"
    );
    match (header.kind, header.base) {
        (SnapshotKind::Delta, Some(base)) => {
            assert!(snapshot::check_applies(Some(base), &header).is_ok());
            assert!(snapshot::check_applies(None, &header).is_err());
        }
        (SnapshotKind::Full, _) => {
            assert!(snapshot::check_applies(None, &header).is_ok());
            assert!(snapshot::check_applies(Some(header.version), &header).is_err());
        }
        (SnapshotKind::Delta, None) => panic!("a delta without base was accepted"),
    }
    true
}

/// QR tokens: decode as sent; then the input as a payload signed by the
/// test central key, checked at its own `iat`.
pub fn qr(data: &[u8]) -> bool {
    let mut accepted = false;
    let central = test_key(vectors::central_key());
    let keys = [central.public_key()];
    let now = vectors::qr_now().unwrap_or_else(|err| panic!("{err}"));
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(payload) = qr::decode(text, &keys, now) {
            let encoded = qr::encode(&payload, &central)
                .unwrap_or_else(|err| panic!("decodes but cannot be encoded: {err}"));
            assert_eq!(encoded, text, "a token accepted must re-encode to itself");
            accepted = true;
        }
    }
    // Re-sign the payload of a token-looking input, or the input itself.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload_bytes = std::str::from_utf8(data)
        .ok()
        .and_then(|text| text.split('.').nth(1))
        .and_then(|part| b64.decode(part).ok())
        .unwrap_or_else(|| data.to_vec());
    let signed_part = format!("{}.{}", qr::QR_PREFIX, b64.encode(&payload_bytes));
    let token = format!(
        "{signed_part}.{}",
        central.sign(signed_part.as_bytes()).to_base64()
    );
    let iat = canonical::parse(&payload_bytes)
        .ok()
        .and_then(|value| value.get("iat")?.as_str()?.parse::<jiff::Timestamp>().ok());
    if let Some(iat) = iat {
        if let Ok(payload) = qr::decode(&token, &keys, iat) {
            let encoded = qr::encode(&payload, &central)
                .unwrap_or_else(|err| panic!("decodes but cannot be encoded: {err}"));
            assert_eq!(encoded, token, "a token accepted must re-encode to itself");
            accepted = true;
        }
    }
    accepted
}

/// The canonical form of the input equals what the decoder re-encodes.
fn assert_reencodes(data: &[u8], encoded: &[u8]) {
    let value =
        canonical::parse(data).unwrap_or_else(|err| panic!("accepted but not strict JSON: {err}"));
    let input_canonical = canonical::value_to_vec(&value)
        .unwrap_or_else(|err| panic!("accepted but not canonical-able: {err}"));
    assert_eq!(
        String::from_utf8_lossy(&input_canonical),
        String::from_utf8_lossy(encoded),
        "accepted input does not re-encode to its canonical form"
    );
}

fn test_key(key: Result<super::keys::SigningKey, super::WireError>) -> super::keys::SigningKey {
    key.unwrap_or_else(|err| panic!("test key: {err}"))
}

fn test_terminal_public() -> super::keys::PublicKey {
    test_key(vectors::terminal_key()).public_key()
}
