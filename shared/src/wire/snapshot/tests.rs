//! Snapshots: what a terminal applies, and every way it refuses one.
//! Method: write real snapshots with the writer and a test key, then damage
//! their bytes the way a network, a disk or an attacker would.

use jiff::civil::date;

use super::*;
use crate::rules::{evaluate, QuoteInput};

fn central() -> SigningKey {
    SigningKey::from_seed(&[0x21; 32]).expect("seed")
}

fn other_key() -> SigningKey {
    SigningKey::from_seed(&[0x77; 32]).expect("seed")
}

fn header(kind: SnapshotKind, base: Option<u64>, version: u64) -> SnapshotHeader {
    SnapshotHeader {
        base,
        built_at: "2026-03-02T05:00:00Z".parse().expect("timestamp"),
        credential_key_id: "c1".into(),
        key_id: central().key_id(),
        kind,
        merchant: "skolas-edinasana".into(),
        terminal: "T-000123".into(),
        snapshot_type: SnapshotType::Snapshot,
        v: SNAPSHOT_VERSION,
        version,
    }
}

fn lunch() -> Benefit {
    serde_json::from_str(
        r#"{"id":"lunch","provider":"riga","categories":["meal.lunch"],
            "discount":{"percent":"100"},"limits":[{"period":"day","max_count":1}]}"#,
    )
    .expect("benefit")
}

fn items() -> Vec<SnapshotItem> {
    vec![
        SnapshotItem::Benefit { benefit: lunch() },
        SnapshotItem::Credential {
            hash: "a".repeat(64),
            recipient: "R-1".into(),
            status: CredentialStatus::Active,
        },
        SnapshotItem::Credential {
            hash: "b".repeat(64),
            recipient: "R-1".into(),
            status: CredentialStatus::Blocked,
        },
        SnapshotItem::Recipient {
            recipient: "R-1".into(),
            entitlements: vec![Grant {
                benefit: "lunch".into(),
                valid_from: Some(date(2025, 9, 1)),
                valid_to: Some(date(2026, 6, 30)),
            }],
            usage: vec![UsageDay {
                amount: Money::parse("2.50").expect("money"),
                benefit: "lunch".into(),
                count: 1,
                day: date(2026, 3, 2),
            }],
        },
    ]
}

fn write(header: &SnapshotHeader, items: &[SnapshotItem], key: &SigningKey) -> Vec<u8> {
    let mut writer = SnapshotWriter::new(Vec::new(), header).expect("header");
    for item in items {
        writer.push(item).expect("item");
    }
    writer.finish(key).expect("finish")
}

fn keys() -> Vec<PublicKey> {
    vec![other_key().public_key(), central().public_key()]
}

fn read(bytes: &[u8]) -> Result<(SnapshotHeader, Vec<SnapshotItem>), WireError> {
    read_all(bytes, &keys())
}

fn lines(bytes: &[u8]) -> Vec<String> {
    String::from_utf8(bytes.to_vec())
        .expect("UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn join(lines: &[String]) -> Vec<u8> {
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    out
}

/// Re-signs a hand-edited snapshot's trailer, so that a test reaches the
/// check behind the signature.
fn resign(lines: &mut [String], items: u64) {
    let body: Vec<u8> = join(&lines[..lines.len() - 1]);
    let sha256 = Hash::of(&body);
    let trailer = SnapshotTrailer {
        items,
        sha256,
        sig: central().sign(&signed_message(&sha256)),
        t: "end".into(),
    };
    let last = lines.len() - 1;
    lines[last] = String::from_utf8(canonical::to_vec(&trailer).expect("encode")).expect("UTF-8");
}

#[test]
fn full_snapshot_round_trips() {
    let header = header(SnapshotKind::Full, None, 7);
    let bytes = write(&header, &items(), &central());
    let (read_header, read_items) = read(&bytes).expect("valid snapshot");
    assert_eq!(read_header, header);
    assert_eq!(read_items, items());
    let text = lines(&bytes);
    assert_eq!(text.len(), 6, "header, four items, trailer");
    assert!(text[0].starts_with(r#"{"built_at":"2026-03-02T05:00:00Z","credential_key_id":"c1""#));
    assert!(
        text[5].starts_with(r#"{"items":4,"sha256":""#),
        "{}",
        text[5]
    );
}

#[test]
fn delta_round_trips_and_applies_only_on_its_base() {
    let header = header(SnapshotKind::Delta, Some(7), 8);
    let delta_items = vec![
        SnapshotItem::CredentialRemoved {
            hash: "a".repeat(64),
        },
        SnapshotItem::BenefitRemoved { id: "lunch".into() },
        SnapshotItem::RecipientRemoved {
            recipient: "R-1".into(),
        },
    ];
    let bytes = write(&header, &delta_items, &central());
    let (read_header, read_items) = read(&bytes).expect("valid delta");
    assert_eq!(read_items, delta_items);
    assert_eq!(check_applies(Some(7), &read_header), Ok(()));
    let err = check_applies(Some(6), &read_header).expect_err("wrong base");
    assert!(matches!(err.kind, WireErrorKind::OutOfOrder(_)));
    assert_eq!(
        err.to_string(),
        "base: out of order: a delta from version 7 to 8 cannot apply to the terminal's version 6"
    );
    assert!(
        check_applies(Some(8), &read_header).is_err(),
        "already applied"
    );
    assert!(
        check_applies(None, &read_header).is_err(),
        "no snapshot yet"
    );
}

#[test]
fn full_snapshot_must_be_newer() {
    let full = header(SnapshotKind::Full, None, 7);
    assert_eq!(check_applies(None, &full), Ok(()));
    assert_eq!(check_applies(Some(6), &full), Ok(()));
    let err = check_applies(Some(7), &full).expect_err("same version");
    assert!(matches!(err.kind, WireErrorKind::OutOfOrder(_)), "{err}");
    assert!(check_applies(Some(9), &full).is_err(), "older");
}

#[test]
fn unsigned_trailer_refused() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    let last = text.len() - 1;
    let mut trailer: serde_json::Value = serde_json::from_str(&text[last]).expect("JSON");
    trailer.as_object_mut().expect("object").remove("sig");
    text[last] = trailer.to_string();
    let err = read(&join(&text)).expect_err("unsigned");
    assert_eq!(err, WireError::new("line 6 (sig)", WireErrorKind::Unsigned));
}

#[test]
fn truncated_snapshots_refused() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let text = lines(&bytes);
    // Cut at a line boundary: the trailer is gone.
    let err = read(&join(&text[..5])).expect_err("no trailer");
    assert_eq!(err.at, "line 6");
    assert!(matches!(err.kind, WireErrorKind::Truncated(_)), "{err}");
    // Cut inside a line, anywhere.
    for cut in [1, 40, bytes.len() / 2, bytes.len() - 1] {
        let err = read(&bytes[..cut]).expect_err("cut");
        assert!(
            matches!(err.kind, WireErrorKind::Truncated(_)),
            "cut {cut}: {err}"
        );
    }
    let err = read(b"").expect_err("empty");
    assert_eq!(err.at, "line 1");
    assert!(matches!(err.kind, WireErrorKind::Truncated(_)));
}

#[test]
fn wrongly_signed_refused() {
    // Signed by a trusted key other than the one the header names.
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &other_key());
    let err = read(&bytes).expect_err("wrong key");
    assert_eq!(
        err,
        WireError::new("line 6 (sig)", WireErrorKind::BadSignature)
    );
}

#[test]
fn unknown_key_refused_at_the_header() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let err = read_all(&bytes[..], &[other_key().public_key()]).expect_err("unknown");
    assert_eq!(
        err,
        WireError::new(
            "line 1 (key_id)",
            WireErrorKind::UnknownKey(central().key_id())
        )
    );
}

#[test]
fn altered_item_refused() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    text[2] = text[2].replace("R-1", "R-2");
    let err = read(&join(&text)).expect_err("altered");
    assert_eq!(err.at, "line 6 (sha256)");
    assert!(err.to_string().contains("was altered"), "{err}");
    // The blocked credential quietly becoming active: same refusal.
    let mut text = lines(&bytes);
    text[3] = text[3].replace("blocked", "active");
    assert_eq!(
        read(&join(&text)).expect_err("altered").at,
        "line 6 (sha256)"
    );
}

#[test]
fn item_count_mismatch_refused() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    resign(&mut text, 3);
    let err = read(&join(&text)).expect_err("count");
    assert_eq!(err.at, "line 6 (items)");
    assert!(
        err.to_string().contains("counts 3 items but 4 were read"),
        "{err}"
    );
}

#[test]
fn malformed_line_named() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    text[3] = r#"{"hash":"x","recipient":"R-1","status":"lost","t":"credential"}"#.into();
    resign(&mut text, 4);
    let err = read(&join(&text)).expect_err("bad status");
    assert!(err.at.starts_with("line 4"), "{err}");
    assert!(matches!(err.kind, WireErrorKind::Malformed(_)), "{err}");
    text[3] = "not json".into();
    assert_eq!(read(&join(&text)).expect_err("garbage").at, "line 4");
    text[3] = r#"{"hash":"x","t":"credential_removed","x":1}"#.into();
    let err = read(&join(&text)).expect_err("unknown field");
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn non_canonical_line_refused() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    text[2] = text[2].replace(",", ", ");
    resign(&mut text, 4);
    let err = read(&join(&text)).expect_err("whitespace");
    assert_eq!(err, WireError::new("line 3", WireErrorKind::NotCanonical));
}

#[test]
fn newer_version_refused_as_such() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    text[0] = text[0].replace(r#""v":1"#, r#""future":true,"v":2"#);
    let err = read(&join(&text)).expect_err("v2");
    assert_eq!(
        err,
        WireError::new("line 1 (v)", WireErrorKind::UnsupportedVersion(2))
    );
}

#[test]
fn inconsistent_headers_refused_by_writer_and_reader() {
    let no_base = header(SnapshotKind::Delta, None, 3);
    assert!(SnapshotWriter::new(Vec::new(), &no_base).is_err());
    let backwards = header(SnapshotKind::Delta, Some(5), 3);
    let err = SnapshotWriter::new(Vec::new(), &backwards)
        .err()
        .expect("backwards");
    assert_eq!(err.at, "line 1 (base)");
    let bytes = write(&header(SnapshotKind::Full, None, 1), &[], &central());
    let mut text = lines(&bytes);
    text[0] = text[0].replace(r#"{"built_at""#, r#"{"base":0,"built_at""#);
    let err = read(&join(&text)).expect_err("full with base");
    assert_eq!(err.at, "line 1 (base)");
}

#[test]
fn overlong_line_refused_without_reading_it_all() {
    let mut bytes = write(&header(SnapshotKind::Full, None, 1), &[], &central());
    let header_len = bytes.iter().position(|b| *b == b'\n').expect("newline") + 1;
    let mut long = br#"{"hash":""#.to_vec();
    long.extend(std::iter::repeat_n(b'a', LINE_LEN_MAX * 4));
    bytes.splice(header_len..header_len, long);
    let err = read(&bytes).expect_err("too long");
    assert_eq!(err.at, "line 2");
    assert!(matches!(err.kind, WireErrorKind::TooLarge(_)), "{err}");
}

#[test]
fn data_after_trailer_refused() {
    let mut bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    bytes.extend_from_slice(b"{}\n");
    let err = read(&bytes).expect_err("trailing data");
    assert_eq!(err.at, "line 7");
}

#[test]
fn benefit_groups_never_reach_a_terminal() {
    let mut benefit = lunch();
    benefit.groups = vec!["needy".into()];
    let item = SnapshotItem::Benefit { benefit };
    let mut writer =
        SnapshotWriter::new(Vec::new(), &header(SnapshotKind::Full, None, 1)).expect("header");
    let err = writer.push(&item).expect_err("groups");
    assert_eq!(err.at, "line 2 (benefit.groups)");
    // A hostile central (or a bug) that writes them anyway is refused by the reader.
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut text = lines(&bytes);
    text[1] = text[1].replace(r#""id":"lunch""#, r#""groups":["needy"],"id":"lunch""#);
    resign(&mut text, 4);
    let err = read(&join(&text)).expect_err("groups");
    assert_eq!(err.at, "line 2 (benefit.groups)");
}

#[test]
fn finish_drains_unread_items() {
    let bytes = write(&header(SnapshotKind::Full, None, 1), &items(), &central());
    let mut reader = SnapshotReader::open(&bytes[..], &keys()).expect("open");
    assert!(reader.next_item().expect("item").is_some());
    assert_eq!(reader.finish(&keys()).expect("valid").version, 1);
}

#[test]
fn usage_day_counts_as_a_use_that_day_in_the_benefit_zone() {
    let zone = Zone::get("Europe/Riga").expect("zone");
    let usage = UsageDay {
        amount: Money::parse("2.50").expect("money"),
        benefit: "lunch".into(),
        count: 1,
        day: date(2026, 3, 2),
    };
    let entry = usage.to_history(&zone).expect("history");
    assert_eq!(entry.at, "2026-03-01T22:00:00Z".parse().expect("ts"));
    assert_eq!((entry.count, entry.amount), (1, usage.amount));
    // Summer time: midnight is 21:00 UTC.
    let summer = UsageDay {
        day: date(2026, 7, 1),
        ..usage.clone()
    };
    assert_eq!(
        summer.to_history(&zone).expect("history").at,
        "2026-06-30T21:00:00Z".parse().expect("ts")
    );
    // What it is for: another terminal's lunch today uses up "one a day".
    let cart: Vec<crate::model::CartLine> = serde_json::from_str(
        r#"[{"sku":"L","category":"meal.lunch","unit_price":"2.50","qty":1}]"#,
    )
    .expect("cart");
    let grants = [Grant {
        benefit: "lunch".into(),
        valid_from: None,
        valid_to: None,
    }];
    let quote_at = |history: &[HistoryEntry], now: &str| {
        evaluate(&QuoteInput {
            benefits: &[lunch()],
            grants: &grants,
            memberships: &[],
            history,
            cart: &cart,
            now: now.parse().expect("now"),
        })
    };
    let late_evening = "2026-03-02T23:59:00+02:00";
    assert_eq!(
        quote_at(std::slice::from_ref(&entry), late_evening).discount_total,
        Money::ZERO
    );
    assert_eq!(
        quote_at(&[entry], "2026-03-03T00:01:00+02:00").due,
        Money::ZERO,
        "the next local day is a new day"
    );
}

#[test]
fn snapshot_for_another_terminal_refused() {
    let header = header(SnapshotKind::Full, None, 1);
    assert_eq!(
        check_addressed_to(&header, "T-000123", "skolas-edinasana"),
        Ok(())
    );
    let err = check_addressed_to(&header, "T-000124", "skolas-edinasana").expect_err("other");
    assert_eq!(
        err.to_string(),
        "terminal: built for terminal \"T-000123\", this is \"T-000124\""
    );
    assert_eq!(
        check_addressed_to(&header, "T-000123", "other-merchant")
            .expect_err("merchant")
            .at,
        "merchant"
    );
}
