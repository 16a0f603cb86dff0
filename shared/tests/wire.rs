//! Records, packets and signed requests as central and another vendor's
//! terminal see them: round trips, tampering, non-canonical input and
//! inconsistent packet headers. Method: the published test keys and
//! records (`shared::wire::vectors`), edited as JSON the way a faulty or
//! hostile sender would, then decoded and verified.

use proptest::prelude::*;
use serde_json::{json, Value};
use shared::wire::auth::{sign_request, verify_request, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use shared::wire::chain::verify_packet;
use shared::wire::keys::{Hash, PublicKey};
use shared::wire::packet::{Packet, PACKET_RECORDS_MAX};
use shared::wire::record::{local_time_of, SignedRecord};
use shared::wire::{vectors, WireError, WireErrorKind};

fn records() -> Vec<SignedRecord> {
    vectors::records().expect("vector records")
}

fn terminal_public() -> PublicKey {
    vectors::terminal_key().expect("key").public_key()
}

fn to_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON")
}

/// An edit of a JSON body, where the error must point, and what it must say.
type Case = (Box<dyn FnOnce(&mut Value)>, &'static str, &'static str);

/// Decodes `value` (serialised with serde_json's sorted keys) as a record.
fn decode_record(value: &Value) -> Result<SignedRecord, WireError> {
    SignedRecord::from_json(&serde_json::to_vec(value).expect("encode"))
}

fn decode_packet(value: &Value) -> Result<Packet, WireError> {
    Packet::from_json(&serde_json::to_vec(value).expect("encode"))
}

// ---- records ----

#[test]
fn record_round_trips_with_the_same_hash() {
    for record in records() {
        let bytes = record.to_json();
        let decoded = SignedRecord::from_json(&bytes).expect("decodes");
        assert_eq!(decoded, record);
        assert_eq!(decoded.hash(), record.hash());
        assert_eq!(decoded.to_json(), bytes, "re-encodes to the same bytes");
        assert_eq!(decoded.verify_signature(&terminal_public()), Ok(()));
        // Through serde too, as central's JSON handlers will use it.
        let via_serde: SignedRecord =
            serde_json::from_slice(&serde_json::to_vec(&record).expect("ser")).expect("de");
        assert_eq!(via_serde.hash(), record.hash());
    }
}

#[test]
fn record_hash_is_sha256_of_the_canonical_body() {
    let record = &records()[0];
    let bytes = record.to_json();
    let text = std::str::from_utf8(&bytes).expect("UTF-8");
    let body = text
        .strip_prefix("{\"body\":")
        .and_then(|rest| rest.split_once(",\"sig\":\""))
        .map(|(body, _)| body)
        .expect("the body comes first, the signature last");
    assert_eq!(Hash::of(body.as_bytes()), record.hash());
    assert_eq!(body.as_bytes(), record.canonical_body());
}

#[test]
fn records_chain_by_prev() {
    let records = records();
    assert_eq!(records[0].body.prev, Hash::GENESIS);
    assert_eq!(records[1].body.prev, records[0].hash());
    assert_eq!(records[2].body.prev, records[1].hash());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    /// Any single changed byte of a signed record makes it undecodable or
    /// fail verification: nothing can be altered unnoticed.
    #[test]
    fn any_flipped_byte_is_caught(record_idx in 0usize..3, position in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let record = &records()[record_idx];
        let mut bytes = record.to_json();
        let at = position.index(bytes.len());
        bytes[at] ^= mask;
        if let Ok(decoded) = SignedRecord::from_json(&bytes) {
            prop_assert!(
                decoded.verify_signature(&terminal_public()).is_err(),
                "byte {} changed and still verifies", at
            );
        }
    }

    /// The same for packets: a change anywhere fails the packet signature
    /// or a record.
    #[test]
    fn any_flipped_packet_byte_is_caught(position in any::<prop::sample::Index>(), mask in 1u8..=255) {
        let mut bytes = vectors::packet().expect("packet").to_json();
        let at = position.index(bytes.len());
        bytes[at] ^= mask;
        if let Ok(decoded) = Packet::from_json(&bytes) {
            let verdict = verify_packet(&terminal_public(), &decoded);
            prop_assert!(
                verdict.as_ref().map_or(true, |issues| !issues.is_empty()),
                "byte {} changed and the packet still verifies", at
            );
        }
    }
}

#[test]
fn formatting_of_the_input_does_not_matter() {
    // Whitespace and member order are not part of what is signed: the
    // signature is over the canonical form of the parsed body.
    let record = &records()[1];
    let pretty = serde_json::to_string_pretty(&to_value(&record.to_json())).expect("pretty");
    let reordered = pretty.replacen("\"body\"", "\"_tmp\"", 1);
    let mut value: Value = serde_json::from_str(&reordered).expect("JSON");
    let body = value
        .as_object_mut()
        .expect("object")
        .remove("_tmp")
        .expect("body");
    let text = format!(
        "{{ \"sig\" : {} ,\n \"body\" : {} }}",
        value["sig"],
        serde_json::to_string_pretty(&body).expect("pretty")
    );
    let decoded = SignedRecord::from_json(text.as_bytes()).expect("decodes");
    assert_eq!(decoded.hash(), record.hash());
    assert_eq!(decoded.to_json(), record.to_json());
    assert_eq!(decoded.verify_signature(&terminal_public()), Ok(()));
}

/// Edits the record's body and decodes: what error does a sender get?
fn edited(edit: impl FnOnce(&mut Value)) -> Result<SignedRecord, WireError> {
    let mut value = to_value(&records()[1].to_json());
    edit(&mut value["body"]);
    decode_record(&value)
}

#[test]
fn values_must_be_in_their_one_canonical_form() {
    let not_canonical = WireError::new("body", WireErrorKind::NotCanonical);
    // Money with exactly two decimals.
    let err = edited(|body| body["cart"][0]["unit_price"] = json!("2.5")).expect_err("2.5");
    assert_eq!(err, not_canonical);
    // Instants in UTC, jiff's shortest RFC 3339 form.
    let err = edited(|body| body["at"] = json!("2026-03-03T12:10:00+02:00")).expect_err("offset");
    assert_eq!(err, not_canonical);
    let err = edited(|body| body["at"] = json!("2026-03-03T10:10:00.000Z")).expect_err("fraction");
    assert_eq!(err, not_canonical);
    // Absent optional members are omitted, not null.
    let err = edited(|body| body["voids"] = Value::Null).expect_err("null");
    assert_eq!(err, not_canonical);
    // Members with a default are written out.
    let err = edited(|body| {
        body["inputs"]["history"][0]
            .as_object_mut()
            .expect("object")
            .remove("count");
    })
    .expect_err("default omitted");
    assert_eq!(err, not_canonical);
}

#[test]
fn malformed_records_refused_with_the_field_named() {
    let cases: Vec<Case> = vec![
        (
            Box::new(|body| body["cart"][1]["qty"] = json!(2.0)),
            "body.cart[1].qty",
            "non-integer",
        ),
        (
            Box::new(|body| body["cart"][1]["unit_price"] = json!(0.85)),
            "body.cart[1].unit_price",
            "money must be a string",
        ),
        (
            Box::new(|body| body["name"] = json!("Jānis Bērziņš")),
            "body.name",
            "unknown field `name`",
        ),
        (
            Box::new(|body| body["credential"]["personal_code"] = json!("010101-12345")),
            "body.credential.personal_code",
            "unknown field `personal_code`",
        ),
        (
            Box::new(|body| body["quote"]["due"] = json!("-0.84")),
            "",
            "",
        ),
        (
            Box::new(|body| body["seq"] = json!(0)),
            "body.seq",
            "start at 1",
        ),
        (
            Box::new(|body| body["recipient"] = json!("R 7K2M9")),
            "body.recipient",
            "printable ASCII",
        ),
        (
            Box::new(|body| body["credential"]["hash"] = json!("04A22B1C5D80")),
            "body.credential.hash",
            "64 lowercase hex",
        ),
        (
            Box::new(|body| body["kind"] = json!("void")),
            "body.voids",
            "must name the seq",
        ),
        (
            Box::new(|body| body["seq"] = json!(9_007_199_254_740_993_u64)),
            "body.seq",
            "2^53",
        ),
        (
            Box::new(|body| body["prev"] = json!("00")),
            "body.prev",
            "64 lowercase hex",
        ),
        (
            Box::new(|body| body["type"] = json!("packet")),
            "body.type",
            "unknown variant",
        ),
        // A verifier re-runs the quote unit by unit: a cart no till would
        // accept (here four billion units) is refused before that.
        (
            Box::new(|body| body["cart"][1]["qty"] = json!(4_000_000_000_u32)),
            "body.cart",
            "units, at most 10000",
        ),
        (
            Box::new(|body| body["cart"][0]["qty"] = json!(0)),
            "body.cart[0].qty",
            "at least 1",
        ),
        (
            Box::new(|body| body["cart"] = json!([])),
            "body.cart",
            "is empty",
        ),
    ];
    for (edit, at, message) in cases {
        let result = edited(edit);
        if at.is_empty() {
            // A negative amount decodes (validation of quotes is central's
            // re-run of the engine), but the signature no longer matches.
            let record = result.expect("decodes");
            assert!(record.verify_signature(&terminal_public()).is_err());
            continue;
        }
        let err = result.expect_err(message);
        assert_eq!(err.at, at, "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn newer_record_version_reported_as_such() {
    let err = edited(|body| {
        body["v"] = json!(2);
        body["new_field"] = json!(true);
    })
    .expect_err("v2");
    assert_eq!(
        err,
        WireError::new("body.v", WireErrorKind::UnsupportedVersion(2))
    );
}

#[test]
fn duplicate_keys_and_trailing_data_refused() {
    let bytes = records()[0].to_json();
    let text = String::from_utf8(bytes).expect("UTF-8");
    let duplicated = text.replacen("\"seq\":1,", "\"seq\":1,\"seq\":2,", 1);
    let err = SignedRecord::from_json(duplicated.as_bytes()).expect_err("duplicate");
    assert!(err.to_string().contains("duplicate key \"seq\""), "{err}");
    assert!(SignedRecord::from_json(format!("{text} {{}}").as_bytes()).is_err());
    assert!(SignedRecord::from_json(&text.as_bytes()[..text.len() - 1]).is_err());
    let unsigned = text.split(",\"sig\"").next().expect("body").to_owned() + "}";
    let err = SignedRecord::from_json(unsigned.as_bytes()).expect_err("unsigned");
    assert!(err.to_string().contains("missing field `sig`"), "{err}");
}

#[test]
fn sign_refuses_what_decoding_would_refuse() {
    let key = vectors::terminal_key().expect("key");
    let mut body = records()[0].body.clone();
    body.recipient = String::new();
    let err = SignedRecord::sign(body, &key).expect_err("empty recipient");
    assert_eq!(err.at, "recipient");
}

#[test]
fn local_time_agrees_with_the_instant() {
    let riga = jiff::tz::TimeZone::get("Europe/Riga").expect("zone");
    let mut body = records()[0].body.clone();
    assert_eq!(local_time_of(body.at, &riga), "2026-03-02T12:05:00+02:00");
    assert!(body.local_time_agrees());
    let summer: jiff::Timestamp = "2026-07-01T09:30:00.25Z".parse().expect("ts");
    assert_eq!(local_time_of(summer, &riga), "2026-07-01T12:30:00.25+03:00");
    body.local_time = "2026-03-02T13:05:00+02:00".into();
    assert!(!body.local_time_agrees(), "an hour off");
    body.local_time = "2026-03-02T10:05:00Z".into();
    assert!(!body.local_time_agrees(), "UTC is not a local time");
    body.local_time = "12:05".into();
    assert!(!body.local_time_agrees());
}

// ---- packets ----

#[test]
fn packet_round_trips_and_keeps_its_id() {
    let packet = vectors::packet().expect("packet");
    let bytes = packet.to_json();
    let decoded = Packet::from_json(&bytes).expect("decodes");
    assert_eq!(decoded, packet);
    assert_eq!(decoded.id(), packet.id());
    assert_eq!(decoded.to_json(), bytes);
    assert_eq!(verify_packet(&terminal_public(), &decoded), Ok(vec![]));
    assert_eq!(decoded.body.first_seq, 1);
    assert_eq!(decoded.body.last_seq, 3);
    assert_eq!(decoded.body.head, records()[2].hash());
    // Built again, or re-sent pretty-printed: recognisably the same packet.
    assert_eq!(vectors::packet().expect("packet").id(), packet.id());
    let pretty = serde_json::to_string_pretty(&to_value(&bytes)).expect("pretty");
    assert_eq!(
        Packet::from_json(pretty.as_bytes()).expect("decodes").id(),
        packet.id()
    );
}

#[test]
fn packet_id_is_sha256_of_its_canonical_body() {
    let packet = vectors::packet().expect("packet");
    let value = to_value(&packet.to_json());
    let body = serde_json::to_vec(&value["body"]).expect("encode");
    assert_eq!(Hash::of(&body), packet.id());
    assert_eq!(body, packet.canonical_body());
}

fn edited_packet(edit: impl FnOnce(&mut Value)) -> WireError {
    let mut value = to_value(&vectors::packet().expect("packet").to_json());
    edit(&mut value["body"]);
    decode_packet(&value).expect_err("inconsistent packet")
}

#[test]
fn inconsistent_packet_headers_refused() {
    let second_hash = records()[1].hash();
    let cases: Vec<Case> = vec![
        (
            Box::new(|body| body["first_seq"] = json!(2)),
            "body.first_seq",
            "first record has seq 1",
        ),
        (
            Box::new(|body| body["last_seq"] = json!(4)),
            "body.last_seq",
            "last record has seq 3",
        ),
        (
            Box::new(|body| body["prev"] = json!(Hash([1; 32]))),
            "body.prev",
            "first record's prev",
        ),
        (
            Box::new(move |body| body["head"] = json!(second_hash)),
            "body.head",
            "hash of the last record",
        ),
        (
            Box::new(|body| {
                body["records"].as_array_mut().expect("array").remove(1);
                body["last_seq"] = json!(3);
            }),
            "body.records[1].body.seq",
            "contiguous",
        ),
        (
            Box::new(|body| body["records"] = json!([])),
            "body.records",
            "at least one record",
        ),
        (
            Box::new(|body| body["terminal"] = json!("T-000999")),
            "body.records[0].body.terminal",
            "in a packet of terminal",
        ),
        (
            Box::new(|body| body["v"] = json!(2)),
            "body.v",
            "unsupported version 2",
        ),
        (
            Box::new(|body| body["records"][2]["body"]["quote"]["total"] = json!("4.2")),
            "body.records[2].body",
            "not in canonical form",
        ),
        (
            Box::new(|body| {
                body.as_object_mut().expect("object").remove("records");
            }),
            "body.records",
            "expected an array",
        ),
        (
            Box::new(|body| body["created_at"] = json!("yesterday")),
            "body.created_at",
            "malformed",
        ),
    ];
    for (edit, at, message) in cases {
        let err = edited_packet(edit);
        assert_eq!(err.at, at, "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

#[test]
fn oversized_packet_refused_before_its_records_are_decoded() {
    let err = edited_packet(|body| {
        let one = body["records"][0].clone();
        body["records"] = Value::Array(vec![one; PACKET_RECORDS_MAX + 1]);
    });
    assert_eq!(err.at, "body.records");
    assert!(matches!(err.kind, WireErrorKind::TooLarge(_)), "{err}");
}

#[test]
fn build_refuses_a_run_that_is_not_contiguous() {
    let records = records();
    let key = vectors::terminal_key().expect("key");
    let now = "2026-03-03T12:00:00Z".parse().expect("ts");
    let err = Packet::build(
        vectors::TERMINAL,
        vec![records[0].clone(), records[2].clone()],
        now,
        &key,
    )
    .expect_err("gap");
    assert_eq!(err.at, "body.records[1].body.seq");
    assert!(Packet::build(vectors::TERMINAL, vec![], now, &key).is_err());
}

#[test]
fn packet_signed_by_another_key_refused() {
    let stranger = vectors::stranger_key().expect("key");
    let now = "2026-03-03T12:00:00Z".parse().expect("ts");
    let packet = Packet::build(vectors::TERMINAL, records(), now, &stranger).expect("build");
    let err = verify_packet(&terminal_public(), &packet).expect_err("forged");
    assert_eq!(err, WireError::new("sig", WireErrorKind::BadSignature));
}

// ---- signed requests ----

#[test]
fn signed_request_verifies_and_binds_method_path_body_and_time() {
    let key = vectors::terminal_key().expect("key");
    let public = key.public_key();
    let now: jiff::Timestamp = "2026-03-03T12:00:00Z".parse().expect("ts");
    let body = br#"{"snapshot":7}"#;
    let headers = sign_request(&key, "T-000123", "post", "/api/v1/heartbeat", now, body);
    assert_eq!(headers[0], ("x-terminal", "T-000123".to_owned()));
    assert_eq!(
        headers[1],
        ("x-timestamp", "2026-03-03T12:00:00Z".to_owned())
    );
    let (timestamp, sig) = (headers[1].1.as_str(), headers[2].1.as_str());
    let verify = |method: &str, path: &str, body: &[u8], at: &str| {
        verify_request(
            &public,
            method,
            path,
            timestamp,
            sig,
            body,
            at.parse().expect("ts"),
        )
    };
    assert_eq!(
        verify("POST", "/api/v1/heartbeat", body, "2026-03-03T12:00:00Z"),
        Ok(())
    );
    assert_eq!(
        verify("POST", "/api/v1/heartbeat", body, "2026-03-03T12:05:00Z"),
        Ok(())
    );
    assert_eq!(
        verify("POST", "/api/v1/heartbeat", body, "2026-03-03T11:55:00Z"),
        Ok(())
    );
    let bad_signature = WireError::new(HEADER_SIGNATURE, WireErrorKind::BadSignature);
    assert_eq!(
        verify(
            "POST",
            "/api/v1/heartbeat",
            b"{\"snapshot\":8}",
            "2026-03-03T12:00:00Z"
        ),
        Err(bad_signature.clone())
    );
    assert_eq!(
        verify("POST", "/api/v1/packets", body, "2026-03-03T12:00:00Z"),
        Err(bad_signature.clone())
    );
    assert_eq!(
        verify("PUT", "/api/v1/heartbeat", body, "2026-03-03T12:00:00Z"),
        Err(bad_signature)
    );
    let late = verify("POST", "/api/v1/heartbeat", body, "2026-03-03T12:05:01Z").expect_err("late");
    assert_eq!(late.at, HEADER_TIMESTAMP);
    assert!(late.to_string().contains("301 s"), "{late}");
}

#[test]
fn malformed_request_headers_named() {
    let public = terminal_public();
    let now: jiff::Timestamp = "2026-03-03T12:00:00Z".parse().expect("ts");
    let err = verify_request(&public, "GET", "/", "noon", "AAAA", b"", now).expect_err("time");
    assert_eq!(err.at, HEADER_TIMESTAMP);
    assert!(matches!(err.kind, WireErrorKind::Malformed(_)));
    let err = verify_request(&public, "GET", "/", "2026-03-03T12:00:00Z", "!!", b"", now)
        .expect_err("signature");
    assert_eq!(err.at, HEADER_SIGNATURE);
    assert!(matches!(err.kind, WireErrorKind::Malformed(_)));
}
