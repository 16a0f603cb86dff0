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
