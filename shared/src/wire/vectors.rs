//! The inputs of the published test vectors (`docs/vectors/`): test keys,
//! a canteen terminal, two benefits, one recipient, three chained records,
//! a packet, a full snapshot, a delta and a QR token.
//!
//! The keys come from published seeds and are for tests only: anyone can
//! sign with them. `shared/tests/wire_vectors.rs` rebuilds every vector file
//! from these inputs and compares byte for byte; `make-vectors` writes them.
//! The quotes are written out literally (not computed), so that a vector
//! pins the wire format alone; a test checks that the engine agrees with
//! them.

use jiff::civil::Date;
use jiff::Timestamp;

use super::credential::credential_hash;
use super::error::{WireError, WireErrorKind};
use super::keys::{Hash, SigningKey};
use super::packet::Packet;
use super::qr::{self, QrPayload, QR_TYPE, QR_VERSION};
use super::record::{
    benefit_hash, BenefitRef, CredentialKind, CredentialRef, QuoteInputs, RecordBody, RecordKind,
    RecordType, SignedRecord, RECORD_VERSION,
};
use super::snapshot::{
    CredentialStatus, SnapshotHeader, SnapshotItem, SnapshotKind, SnapshotType, SnapshotWriter,
    UsageDay, SNAPSHOT_VERSION,
};
use crate::model::{Benefit, CartLine, Grant, HistoryEntry, LineDiscount, Quote};
use crate::money::Money;

/// Seed of the test terminal's Ed25519 key: the bytes 0x01, 0x02, …, 0x20.
pub const TERMINAL_SEED: [u8; 32] = seq_bytes(0x01);
/// Seed of the test central key: the bytes 0x21, 0x22, …, 0x40.
pub const CENTRAL_SEED: [u8; 32] = seq_bytes(0x21);
/// Seed of a key nobody trusts, for forged vectors: 0x41, …, 0x60.
pub const STRANGER_SEED: [u8; 32] = seq_bytes(0x41);
/// The test credential-hash key (HMAC-SHA256): 0x61, …, 0x80.
pub const CREDENTIAL_KEY: [u8; 32] = seq_bytes(0x61);
/// Key id of [`CREDENTIAL_KEY`] as central names it in snapshots.
pub const CREDENTIAL_KEY_ID: &str = "ck-test-1";

pub const TERMINAL: &str = "T-000123";
pub const MERCHANT: &str = "skolas-edinasana";
pub const RECIPIENT: &str = "R-7K2M9";
/// The recipient's school card UID as one reader prints it.
pub const CARD_UID: &str = "04:A2:2B:1C:5D:80";
/// A lost card of the same recipient, on the deny list.
pub const LOST_CARD_UID: &str = "04A22B1C5D7F";
/// A replacement card, added by the delta.
pub const NEW_CARD_UID: &str = "04-A2-2B-1C-5D-81";

const fn seq_bytes(first: u8) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut idx = 0;
    while idx < 32 {
        out[idx] = first + idx as u8;
        idx += 1;
    }
    out
}

pub fn terminal_key() -> Result<SigningKey, WireError> {
    SigningKey::from_seed(&TERMINAL_SEED)
}

pub fn central_key() -> Result<SigningKey, WireError> {
    SigningKey::from_seed(&CENTRAL_SEED)
}

pub fn stranger_key() -> Result<SigningKey, WireError> {
    SigningKey::from_seed(&STRANGER_SEED)
}

fn parse<T: std::str::FromStr>(text: &str) -> Result<T, WireError>
where
    T::Err: std::fmt::Display,
{
    text.parse().map_err(|err| {
        WireError::new(
            "vectors",
            WireErrorKind::Invalid(format!("{text:?}: {err}")),
        )
    })
}

fn json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, WireError> {
    serde_json::from_str(text).map_err(|err| {
        WireError::new(
            "vectors",
            WireErrorKind::Invalid(format!("built-in JSON: {err}")),
        )
    })
}

/// The two benefits of the merchant, as a snapshot carries them.
pub fn benefits() -> Result<Vec<Benefit>, WireError> {
    json(
        r#"[
        {"id":"riga-lunch","provider":"riga","label":{"en":"Free lunch","lv":"Brīvpusdienas"},
         "categories":["meal.lunch"],"discount":{"percent":"100"},
         "limits":[{"period":"day","max_count":1}]},
        {"id":"riga-snack","provider":"riga","label":{"en":"Snack −50 %"},
         "categories":["meal.snack"],"discount":{"percent":"50"},"max_per_transaction":"1.00",
         "limits":[{"period":"month","max_amount":"10.00"}]}
    ]"#,
    )
}

/// The recipient's entitlements to both benefits for the school year.
pub fn entitlements() -> Result<Vec<Grant>, WireError> {
    json(
        r#"[{"benefit":"riga-lunch","valid_from":"2025-09-01","valid_to":"2026-05-31"},
            {"benefit":"riga-snack","valid_from":"2025-09-01","valid_to":"2026-05-31"}]"#,
    )
}

/// Central's known usage in the full snapshot: a snack at another terminal
/// on Sunday 1 March.
pub fn central_usage() -> Result<Vec<UsageDay>, WireError> {
    Ok(vec![UsageDay {
        amount: parse("0.60")?,
        benefit: "riga-snack".into(),
        count: 1,
        day: parse::<Date>("2026-03-01")?,
    }])
}

fn credential(uid: &str) -> String {
    credential_hash(&CREDENTIAL_KEY, CredentialKind::Card, uid)
}

fn benefit_refs() -> Result<Vec<BenefitRef>, WireError> {
    benefits()?
        .iter()
        .map(|benefit| {
            Ok(BenefitRef {
                hash: benefit_hash(benefit)?,
                id: benefit.id.clone(),
            })
        })
        .collect()
}

fn history_before_record_2() -> Result<Vec<HistoryEntry>, WireError> {
    json(
        r#"[{"at":"2026-02-28T22:00:00Z","benefit":"riga-snack","amount":"0.60","count":1},
            {"at":"2026-03-02T10:05:00Z","benefit":"riga-lunch","amount":"2.50","count":1}]"#,
    )
}

fn cart_2() -> Result<Vec<CartLine>, WireError> {
    json(
        r#"[{"sku":"LUNCH-B","category":"meal.lunch","unit_price":"2.50","qty":1},
            {"sku":"JUICE-02","category":"meal.snack","unit_price":"0.85","qty":2}]"#,
    )
}

fn quote_2() -> Result<Quote, WireError> {
    Ok(Quote {
        discounts: vec![
            LineDiscount {
                line: 0,
                benefit: "riga-lunch".into(),
                provider: "riga".into(),
                amount: parse("2.50")?,
            },
            LineDiscount {
                line: 1,
                benefit: "riga-snack".into(),
                provider: "riga".into(),
                amount: parse("0.86")?,
            },
        ],
        total: parse("4.20")?,
        discount_total: parse("3.36")?,
        due: parse("0.84")?,
        by_provider: [("riga".to_owned(), parse::<Money>("3.36")?)].into(),
        refused: Vec::new(),
    })
}

/// The three record bodies before signing, `prev` left as GENESIS: record 1
/// a free lunch on Monday; record 2 lunch and two juices on Tuesday (the
/// juice half price, rounded per unit: 0.425 → 0.43); record 3 voids record 2.
pub fn record_bodies() -> Result<Vec<RecordBody>, WireError> {
    let record_1 = RecordBody {
        at: parse("2026-03-02T10:05:00Z")?,
        cart: json(r#"[{"sku":"LUNCH-A","category":"meal.lunch","unit_price":"2.50","qty":1}]"#)?,
        credential: CredentialRef {
            hash: credential(CARD_UID),
            kind: CredentialKind::Card,
        },
        idempotency_key: "pos-7-000481".into(),
        inputs: QuoteInputs {
            benefits: benefit_refs()?,
            entitlements: entitlements()?,
            history: json(
                r#"[{"at":"2026-02-28T22:00:00Z","benefit":"riga-snack","amount":"0.60","count":1}]"#,
            )?,
            snapshot: 7,
        },
        kind: RecordKind::Sale,
        local_time: "2026-03-02T12:05:00+02:00".into(),
        merchant: MERCHANT.into(),
        prev: Hash::GENESIS,
        quote: Quote {
            discounts: vec![LineDiscount {
                line: 0,
                benefit: "riga-lunch".into(),
                provider: "riga".into(),
                amount: parse("2.50")?,
            }],
            total: parse("2.50")?,
            discount_total: parse("2.50")?,
            due: parse("0.00")?,
            by_provider: [("riga".to_owned(), parse::<Money>("2.50")?)].into(),
            refused: Vec::new(),
        },
        recipient: RECIPIENT.into(),
        seq: 1,
        terminal: TERMINAL.into(),
        record_type: RecordType::Record,
        v: RECORD_VERSION,
        voids: None,
    };
    let record_2 = RecordBody {
        at: parse("2026-03-03T10:10:00Z")?,
        cart: cart_2()?,
        idempotency_key: "pos-7-000482".into(),
        inputs: QuoteInputs {
            history: history_before_record_2()?,
            ..record_1.inputs.clone()
        },
        local_time: "2026-03-03T12:10:00+02:00".into(),
        quote: quote_2()?,
        seq: 2,
        ..record_1.clone()
    };
    let record_3 = RecordBody {
        at: parse("2026-03-03T10:11:30Z")?,
        idempotency_key: "pos-7-000483".into(),
        kind: RecordKind::Void,
        local_time: "2026-03-03T12:11:30+02:00".into(),
        seq: 3,
        voids: Some(2),
        ..record_2.clone()
    };
    Ok(vec![record_1, record_2, record_3])
}

/// The three records, chained and signed with the terminal key.
pub fn records() -> Result<Vec<SignedRecord>, WireError> {
    let key = terminal_key()?;
    let mut prev = Hash::GENESIS;
    let mut out = Vec::new();
    for mut body in record_bodies()? {
        body.prev = prev;
        let record = SignedRecord::sign(body, &key)?;
        prev = record.hash();
        out.push(record);
    }
    Ok(out)
}

/// A packet of records 1 to 3.
pub fn packet() -> Result<Packet, WireError> {
    Packet::build(
        TERMINAL,
        records()?,
        parse("2026-03-03T12:00:00Z")?,
        &terminal_key()?,
    )
}

fn snapshot_header(
    kind: SnapshotKind,
    base: Option<u64>,
    version: u64,
    built_at: &str,
) -> Result<SnapshotHeader, WireError> {
    Ok(SnapshotHeader {
        base,
        built_at: parse(built_at)?,
        credential_key_id: CREDENTIAL_KEY_ID.into(),
        key_id: central_key()?.key_id(),
        kind,
        merchant: MERCHANT.into(),
        terminal: TERMINAL.into(),
        snapshot_type: SnapshotType::Snapshot,
        v: SNAPSHOT_VERSION,
        version,
    })
}

/// Header and items of the full snapshot, version 7.
pub fn snapshot_full_parts() -> Result<(SnapshotHeader, Vec<SnapshotItem>), WireError> {
    let header = snapshot_header(SnapshotKind::Full, None, 7, "2026-03-02T04:00:00Z")?;
    let mut items: Vec<SnapshotItem> = benefits()?
        .into_iter()
        .map(|benefit| SnapshotItem::Benefit { benefit })
        .collect();
    items.push(SnapshotItem::Credential {
        hash: credential(CARD_UID),
        recipient: RECIPIENT.into(),
        status: CredentialStatus::Active,
    });
    items.push(SnapshotItem::Credential {
        hash: credential(LOST_CARD_UID),
        recipient: RECIPIENT.into(),
        status: CredentialStatus::Blocked,
    });
    items.push(SnapshotItem::Recipient {
        recipient: RECIPIENT.into(),
        entitlements: entitlements()?,
        usage: central_usage()?,
    });
    Ok((header, items))
}

/// Header and items of the delta from version 7 to 8: the lost card leaves
/// the list, a replacement card arrives, the recipient's usage now includes
/// Monday's lunch.
pub fn snapshot_delta_parts() -> Result<(SnapshotHeader, Vec<SnapshotItem>), WireError> {
    let header = snapshot_header(SnapshotKind::Delta, Some(7), 8, "2026-03-03T04:00:00Z")?;
    let mut usage = central_usage()?;
    usage.push(UsageDay {
        amount: parse("2.50")?,
        benefit: "riga-lunch".into(),
        count: 1,
        day: parse("2026-03-02")?,
    });
    let items = vec![
        SnapshotItem::CredentialRemoved {
            hash: credential(LOST_CARD_UID),
        },
        SnapshotItem::Credential {
            hash: credential(NEW_CARD_UID),
            recipient: RECIPIENT.into(),
            status: CredentialStatus::Active,
        },
        SnapshotItem::Recipient {
            recipient: RECIPIENT.into(),
            entitlements: entitlements()?,
            usage,
        },
    ];
    Ok((header, items))
}

/// Writes a snapshot signed by `key`.
pub fn write_snapshot(
    header: &SnapshotHeader,
    items: &[SnapshotItem],
    key: &SigningKey,
) -> Result<Vec<u8>, WireError> {
    let mut writer = SnapshotWriter::new(Vec::new(), header)?;
    for item in items {
        writer.push(item)?;
    }
    writer.finish(key)
}

/// The QR token payload: five minutes of validity.
pub fn qr_payload() -> Result<QrPayload, WireError> {
    Ok(QrPayload {
        exp: parse("2026-03-02T10:05:00Z")?,
        iat: parse("2026-03-02T10:00:00Z")?,
        kid: central_key()?.key_id(),
        // The bytes 0x00..=0x0f: a real nonce is random.
        nonce: "AAECAwQFBgcICQoLDA0ODw".into(),
        recipient: RECIPIENT.into(),
        qr_type: QR_TYPE.into(),
        v: QR_VERSION,
    })
}

/// The instant at which the QR vectors are checked.
pub fn qr_now() -> Result<Timestamp, WireError> {
    parse("2026-03-02T10:01:00Z")
}

pub fn qr_token() -> Result<String, WireError> {
    qr::encode(&qr_payload()?, &central_key()?)
}

/// One file of `docs/vectors/`: its path relative to that directory and its
/// exact bytes (no newline is added at the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorFile {
    pub name: String,
    pub bytes: Vec<u8>,
}

fn file(name: &str, bytes: impl Into<Vec<u8>>) -> VectorFile {
    VectorFile {
        name: name.to_owned(),
        bytes: bytes.into(),
    }
}

/// Replaces the first `from` in `bytes` (which must contain it) with `to`.
fn replace_once(bytes: &[u8], from: &str, to: &str) -> Result<Vec<u8>, WireError> {
    let text = String::from_utf8_lossy(bytes);
    if !text.contains(from) {
        return Err(WireError::new(
            "vectors",
            WireErrorKind::Invalid(format!("{from:?} not found")),
        ));
    }
    Ok(text.replacen(from, to, 1).into_bytes())
}

fn json_array(records: &[SignedRecord]) -> Vec<u8> {
    let mut out = b"[".to_vec();
    for (idx, record) in records.iter().enumerate() {
        if idx > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&record.to_json());
    }
    out.push(b']');
    out
}

fn canonical_json(value: &serde_json::Value) -> Result<Vec<u8>, WireError> {
    super::canonical::value_to_vec(value)
}

/// Every vector file, valid and invalid, rebuilt from the inputs above.
pub fn files() -> Result<Vec<VectorFile>, WireError> {
    let terminal = terminal_key()?;
    let central = central_key()?;
    let stranger = stranger_key()?;
    let records = records()?;
    let packet = packet()?;
    let mut out = Vec::new();

    // Keys, hashes of benefits and credentials, a signed request.
    let key_entry = |name: &str, seed: &[u8; 32], key: &SigningKey| {
        serde_json::json!({
            "name": name,
            "seed_hex": hex::encode(seed),
            "public_key": key.public_key(),
            "key_id": key.key_id(),
        })
    };
    out.push(file(
        "keys.json",
        canonical_json(&serde_json::json!({
            "credential_key": {"key_hex": hex::encode(CREDENTIAL_KEY), "key_id": CREDENTIAL_KEY_ID},
            "signing_keys": [
                key_entry("terminal", &TERMINAL_SEED, &terminal),
                key_entry("central", &CENTRAL_SEED, &central),
                key_entry("stranger", &STRANGER_SEED, &stranger),
            ],
        }))?,
    ));
    let mut benefit_entries = Vec::new();
    for benefit in benefits()? {
        let canonical = String::from_utf8(super::canonical::to_vec(&benefit)?)
            .map_err(|_| WireError::new("vectors", WireErrorKind::Invalid("not UTF-8".into())))?;
        benefit_entries.push(serde_json::json!({
            "canonical": canonical,
            "hash": benefit_hash(&benefit)?,
        }));
    }
    out.push(file(
        "benefit-hashes.json",
        canonical_json(&serde_json::Value::Array(benefit_entries))?,
    ));
    let credential_cases = [
        (CredentialKind::Card, CARD_UID),
        (CredentialKind::Card, "04a22b1c5d80"),
        (CredentialKind::Card, "04 A2 2B 1C 5D 80"),
        (CredentialKind::ResidentCard, "04:A2:2B:1C:5D:80"),
        (CredentialKind::Eid, " LV-EID-0001234 "),
        (CredentialKind::BankCard, "tok_4f9a0c77e2"),
        (CredentialKind::Qr, "AAECAwQFBgcICQoLDA0ODw"),
    ];
    let credential_entries: Vec<serde_json::Value> = credential_cases
        .iter()
        .map(|(kind, id)| {
            serde_json::json!({
                "hash": credential_hash(&CREDENTIAL_KEY, *kind, id),
                "id": id,
                "kind": kind,
                "normalised": super::credential::normalise_id(*kind, id),
            })
        })
        .collect();
    out.push(file(
        "credential-hashes.json",
        canonical_json(&serde_json::Value::Array(credential_entries))?,
    ));
    let request_body = br#"{"clock":"2026-03-03T12:00:00Z","outbox":0,"snapshot":8}"#;
    let request_now: Timestamp = parse("2026-03-03T12:00:00Z")?;
    let headers = super::auth::sign_request(
        &terminal,
        TERMINAL,
        "POST",
        "/api/v1/heartbeat",
        request_now,
        request_body,
    );
    let request = |signature: &str, body: &[u8]| {
        serde_json::json!({
            "body": String::from_utf8_lossy(body),
            "headers": {
                headers[0].0: headers[0].1,
                headers[1].0: headers[1].1,
                headers[2].0: signature,
            },
            "message": String::from_utf8_lossy(&super::auth::request_message(
                "POST",
                "/api/v1/heartbeat",
                &headers[1].1,
                body,
            )),
            "method": "POST",
            "now": request_now,
            "path": "/api/v1/heartbeat",
        })
    };
    out.push(file(
        "request-heartbeat.json",
        canonical_json(&request(&headers[2].1, request_body))?,
    ));

    // Records, a packet, snapshots, a QR token.
    for (idx, record) in records.iter().enumerate() {
        out.push(file(&format!("record-{}.json", idx + 1), record.to_json()));
    }
    out.push(file("packet-1.json", packet.to_json()));
    let (full_header, full_items) = snapshot_full_parts()?;
    let full = write_snapshot(&full_header, &full_items, &central)?;
    out.push(file("snapshot-full.ndjson", full.clone()));
    let (delta_header, delta_items) = snapshot_delta_parts()?;
    out.push(file(
        "snapshot-delta.ndjson",
        write_snapshot(&delta_header, &delta_items, &central)?,
    ));
    out.push(file("qr-valid.txt", qr_token()?));

    // Invalid records.
    let record_1 = records[0].to_json();
    let forged_1 = SignedRecord::sign(records[0].body.clone(), &stranger)?;
    out.push(file(
        "invalid/record-bad-signature.json",
        forged_1.to_json(),
    ));
    out.push(file(
        "invalid/record-tampered.json",
        replace_once(&record_1, "\"due\":\"0.00\"", "\"due\":\"0.01\"")?,
    ));
    out.push(file(
        "invalid/record-not-canonical.json",
        replace_once(
            &record_1,
            "\"unit_price\":\"2.50\"",
            "\"unit_price\":\"2.5\"",
        )?,
    ));
    out.push(file(
        "invalid/record-float.json",
        replace_once(&record_1, "\"qty\":1", "\"qty\":1.0")?,
    ));
    out.push(file(
        "invalid/record-unknown-field.json",
        replace_once(
            &record_1,
            "\"recipient\":",
            "\"personal_code\":\"010190-12345\",\"recipient\":",
        )?,
    ));
    out.push(file(
        "invalid/record-duplicate-key.json",
        replace_once(&record_1, "\"seq\":1,", "\"seq\":1,\"seq\":2,")?,
    ));
    out.push(file(
        "invalid/record-v2.json",
        replace_once(&record_1, "\"v\":1", "\"v\":2")?,
    ));
    out.push(file(
        "invalid/record-unsigned.json",
        replace_once(
            &record_1,
            &format!(",\"sig\":\"{}\"", records[0].sig.to_base64()),
            "",
        )?,
    ));

    // Invalid packets.
    let forged_packet = Packet::build(
        TERMINAL,
        records.clone(),
        parse("2026-03-03T12:00:00Z")?,
        &stranger,
    )?;
    out.push(file(
        "invalid/packet-bad-signature.json",
        forged_packet.to_json(),
    ));
    out.push(file(
        "invalid/packet-head-mismatch.json",
        replace_once(
            &packet.to_json(),
            &format!("\"head\":\"{}\"", records[2].hash()),
            &format!("\"head\":\"{}\"", records[1].hash()),
        )?,
    ));
    let gap_body = format!(
        "{{\"body\":{{\"created_at\":\"2026-03-03T12:00:00Z\",\"first_seq\":1,\"head\":\"{}\",\"last_seq\":3,\"prev\":\"{}\",\"records\":{},\"terminal\":\"{TERMINAL}\",\"type\":\"packet\",\"v\":1}},\"sig\":\"{}\"}}",
        records[2].hash(),
        Hash::GENESIS,
        String::from_utf8_lossy(&json_array(&[records[0].clone(), records[2].clone()])),
        packet.sig.to_base64(),
    );
    out.push(file("invalid/packet-gap.json", gap_body));

    // Chains: runs of records a verifier accepts in order.
    let mut forked_body = records[1].body.clone();
    forked_body.idempotency_key = "pos-7-000482-replayed".into();
    let forked_2 = SignedRecord::sign(forked_body, &terminal)?;
    out.push(file(
        "invalid/chain-fork.json",
        json_array(&[records[0].clone(), records[1].clone(), forked_2]),
    ));
    out.push(file(
        "invalid/chain-gap.json",
        json_array(&[records[0].clone(), records[2].clone()]),
    ));
    let mut relinked_3 = records[2].body.clone();
    relinked_3.prev = records[0].hash();
    out.push(file(
        "invalid/chain-broken-link.json",
        json_array(&[
            records[0].clone(),
            records[1].clone(),
            SignedRecord::sign(relinked_3, &terminal)?,
        ]),
    ));

    // Invalid snapshots.
    let full_text = String::from_utf8_lossy(&full).into_owned();
    let full_lines: Vec<&str> = full_text.lines().collect();
    let rejoin = |lines: &[&str]| {
        let mut text = lines.join("\n");
        text.push('\n');
        text.into_bytes()
    };
    let trailer_idx = full_lines.len() - 1;
    let trailer_value: serde_json::Value = serde_json::from_str(full_lines[trailer_idx])
        .map_err(|err| WireError::new("vectors", WireErrorKind::Invalid(err.to_string())))?;
    let unsigned_trailer = format!(
        "{{\"items\":{},\"sha256\":{},\"t\":\"end\"}}",
        trailer_value["items"], trailer_value["sha256"]
    );
    let mut unsigned = full_lines.clone();
    unsigned[trailer_idx] = &unsigned_trailer;
    out.push(file(
        "invalid/snapshot-full-unsigned.ndjson",
        rejoin(&unsigned),
    ));
    out.push(file(
        "invalid/snapshot-full-truncated.ndjson",
        rejoin(&full_lines[..trailer_idx]),
    ));
    out.push(file(
        "invalid/snapshot-full-bad-signature.ndjson",
        write_snapshot(&full_header, &full_items, &stranger)?,
    ));
    out.push(file(
        "invalid/snapshot-full-altered.ndjson",
        replace_once(&full, "\"status\":\"blocked\"", "\"status\":\"active\"")?,
    ));
    let stranger_header = SnapshotHeader {
        key_id: stranger.key_id(),
        ..full_header.clone()
    };
    out.push(file(
        "invalid/snapshot-full-unknown-key.ndjson",
        write_snapshot(&stranger_header, &full_items, &stranger)?,
    ));
    let wrong_base = SnapshotHeader {
        base: Some(6),
        ..delta_header.clone()
    };
    out.push(file(
        "invalid/snapshot-delta-wrong-base.ndjson",
        write_snapshot(&wrong_base, &delta_items, &central)?,
    ));

    // Invalid QR tokens.
    let expired = QrPayload {
        exp: parse("2026-03-02T10:00:30Z")?,
        iat: parse("2026-03-02T09:55:30Z")?,
        ..qr_payload()?
    };
    out.push(file(
        "invalid/qr-expired.txt",
        qr::encode(&expired, &central)?,
    ));
    let future = QrPayload {
        exp: parse("2026-03-02T10:10:00Z")?,
        iat: parse("2026-03-02T10:05:00Z")?,
        ..qr_payload()?
    };
    out.push(file(
        "invalid/qr-issued-in-future.txt",
        qr::encode(&future, &central)?,
    ));
    let strangers = QrPayload {
        kid: stranger.key_id(),
        ..qr_payload()?
    };
    out.push(file(
        "invalid/qr-unknown-key.txt",
        qr::encode(&strangers, &stranger)?,
    ));
    let token = qr_token()?;
    let other_recipient = QrPayload {
        recipient: "R-0000001".into(),
        ..qr_payload()?
    };
    let other_token = qr::encode(&other_recipient, &central)?;
    let (other_signed, _) = other_token.rsplit_once('.').unwrap_or_default();
    let (_, original_sig) = token.rsplit_once('.').unwrap_or_default();
    out.push(file(
        "invalid/qr-tampered.txt",
        format!("{other_signed}.{original_sig}"),
    ));
    Ok(out)
}

/// What a conforming verifier reports for a vector file: nothing for a
/// valid one, otherwise one line per error or chain issue. Records are
/// checked with the terminal key for terminal [`TERMINAL`]; packets also
/// with their signature; `chain-*` files are arrays of records fed in order
/// to a fresh chain; snapshots are read with the central key and applied
/// to a terminal holding nothing (full) or version 7 (delta); QR tokens are
/// checked with the central key at [`qr_now`].
pub fn check(name: &str, bytes: &[u8]) -> Result<Vec<String>, WireError> {
    let terminal_public = terminal_key()?.public_key();
    let central_public = central_key()?.public_key();
    let base = name.rsplit('/').next().unwrap_or(name);
    let lines = |issues: Vec<super::chain::ChainIssue>| {
        issues.iter().map(ToString::to_string).collect::<Vec<_>>()
    };
    let report = if base.starts_with("record-") {
        match SignedRecord::from_json(bytes) {
            Err(err) => vec![err.to_string()],
            Ok(record) => lines(super::chain::verify_record(
                &terminal_public,
                TERMINAL,
                &record,
            )),
        }
    } else if base.starts_with("packet-") {
        match Packet::from_json(bytes)
            .and_then(|packet| super::chain::verify_packet(&terminal_public, &packet))
        {
            Err(err) => vec![err.to_string()],
            Ok(issues) => lines(issues),
        }
    } else if base.starts_with("chain-") {
        let values: Vec<serde_json::Value> = match serde_json::from_slice(bytes) {
            Ok(values) => values,
            Err(err) => return Ok(vec![format!("not a JSON array: {err}")]),
        };
        let mut state = super::chain::ChainState::new(terminal_public, TERMINAL);
        let mut report = Vec::new();
        for (idx, value) in values.iter().enumerate() {
            let record_bytes = canonical_json(value)?;
            match SignedRecord::from_json(&record_bytes) {
                Err(err) => report.push(format!("[{idx}] {err}")),
                Ok(record) => report.extend(lines(state.accept(&record))),
            }
        }
        report
    } else if base.starts_with("snapshot-") {
        let current = if base.starts_with("snapshot-delta") {
            Some(7)
        } else {
            None
        };
        match super::snapshot::read_all(bytes, &[central_public])
            .and_then(|(header, _)| super::snapshot::check_applies(current, &header))
        {
            Err(err) => vec![err.to_string()],
            Ok(()) => Vec::new(),
        }
    } else if base.starts_with("qr-") {
        let text = String::from_utf8_lossy(bytes);
        match qr::decode(&text, &[central_public], qr_now()?) {
            Err(err) => vec![err.to_string()],
            Ok(_) => Vec::new(),
        }
    } else {
        check_reference(base, bytes, &terminal_public)?
    };
    Ok(report)
}

/// Keys, benefit and credential hashes, signed requests: recomputes what
/// the file states.
fn check_reference(
    base: &str,
    bytes: &[u8],
    terminal_public: &super::keys::PublicKey,
) -> Result<Vec<String>, WireError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|err| WireError::new(base, WireErrorKind::Malformed(err.to_string())))?;
    let mut report = Vec::new();
    let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_owned();
    match base {
        "keys.json" => {
            for entry in value["signing_keys"].as_array().into_iter().flatten() {
                let mut seed = [0u8; 32];
                if hex::decode_to_slice(text(&entry["seed_hex"]), &mut seed).is_err() {
                    report.push(format!("{}: bad seed", entry["name"]));
                    continue;
                }
                let key = SigningKey::from_seed(&seed)?;
                if key.public_key().to_base64() != text(&entry["public_key"])
                    || key.key_id() != text(&entry["key_id"])
                {
                    report.push(format!("{}: public key or key id differs", entry["name"]));
                }
            }
        }
        "benefit-hashes.json" => {
            for entry in value.as_array().into_iter().flatten() {
                let canonical = text(&entry["canonical"]);
                if Hash::of(canonical.as_bytes()).to_hex() != text(&entry["hash"]) {
                    report.push(format!("hash of {canonical} differs"));
                }
            }
        }
        "credential-hashes.json" => {
            for entry in value.as_array().into_iter().flatten() {
                let kind: CredentialKind =
                    serde_json::from_value(entry["kind"].clone()).map_err(|err| {
                        WireError::new(base, WireErrorKind::Malformed(err.to_string()))
                    })?;
                let id = text(&entry["id"]);
                if credential_hash(&CREDENTIAL_KEY, kind, &id) != text(&entry["hash"]) {
                    report.push(format!("hash of {id:?} differs"));
                }
            }
        }
        _ if base.starts_with("request-") => {
            let now: Timestamp = parse(&text(&value["now"]))?;
            if let Err(err) = super::auth::verify_request(
                terminal_public,
                &text(&value["method"]),
                &text(&value["path"]),
                &text(&value["headers"]["x-timestamp"]),
                &text(&value["headers"]["x-signature"]),
                text(&value["body"]).as_bytes(),
                now,
            ) {
                report.push(err.to_string());
            }
        }
        _ => report.push(format!("{base}: no check for this kind of file")),
    }
    Ok(report)
}
