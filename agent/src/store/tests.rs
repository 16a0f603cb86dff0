//! Goal: the database keeps what was committed, applies only verified
//! snapshots, and hands central exactly the records it lacks. Method: a
//! real SQLite file in a temporary directory, signed snapshots from the
//! test central, records signed with a test terminal key.

use super::*;
use crate::testkit::TestCentral;
use jiff::Timestamp;
use shared::model::CartLine;
use shared::wire::record::{
    CredentialKind, CredentialRef, QuoteInputs, RecordBody, RecordType, RECORD_VERSION,
};

fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn central() -> TestCentral {
    TestCentral::new("T-1", "canteen").expect("test central")
}

fn ctx(central: &TestCentral) -> ApplyContext {
    ApplyContext {
        central_keys: central.public_keys(),
        terminal: central.terminal.clone(),
        merchant: central.merchant.clone(),
        credential_key_id: central.credential_key_id.clone(),
        now: ts("2026-03-02T10:00:00Z"),
    }
}

fn lunch() -> SnapshotItem {
    SnapshotItem::Benefit {
        benefit: serde_json::from_str(
            r#"{"id":"lunch","provider":"riga","label":{"en":"Free lunch"},"categories":["meal.lunch"],"discount":{"percent":"100"}}"#,
        )
        .expect("benefit"),
    }
}

fn card(
    central: &TestCentral,
    uid: &str,
    recipient: &str,
    status: CredentialStatus,
) -> SnapshotItem {
    SnapshotItem::Credential {
        hash: central.card_hash(uid),
        recipient: recipient.into(),
        status,
    }
}

fn full(central: &TestCentral, version: u64, items: &[SnapshotItem]) -> Vec<u8> {
    let header = central.header(
        SnapshotKind::Full,
        version,
        None,
        ts("2026-03-02T09:00:00Z"),
    );
    central.snapshot(&header, items).expect("snapshot")
}

fn delta(central: &TestCentral, base: u64, version: u64, items: &[SnapshotItem]) -> Vec<u8> {
    let header = central.header(
        SnapshotKind::Delta,
        version,
        Some(base),
        ts("2026-03-02T09:30:00Z"),
    );
    central.snapshot(&header, items).expect("snapshot")
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("agent.sqlite")).expect("open store");
    (dir, store)
}

fn lookup(store: &Store, central: &TestCentral, uid: &str) -> Option<(String, bool)> {
    let hash = Hash::from_hex(&central.card_hash(uid)).expect("hash");
    credential(&store.reader(), &hash).expect("lookup")
}

#[test]
fn full_then_delta_snapshot_and_refusals_keep_the_old_one() {
    let central = central();
    let (_dir, store) = open();
    let first = full(
        &central,
        5,
        &[
            lunch(),
            card(&central, "04A1", "R-1", CredentialStatus::Active),
            SnapshotItem::Recipient {
                recipient: "R-1".into(),
                entitlements: vec![Grant {
                    benefit: "lunch".into(),
                    valid_from: None,
                    valid_to: None,
                }],
                usage: Vec::new(),
            },
        ],
    );
    let applied = store
        .apply_snapshot(first.as_slice(), &ctx(&central))
        .expect("full applies");
    assert_eq!(
        applied,
        Applied {
            version: 5,
            kind: SnapshotKind::Full,
            items: 3
        }
    );
    assert_eq!(
        lookup(&store, &central, "04:a1"),
        Some(("R-1".into(), false))
    );
    assert_eq!(store.snapshot().catalog.label("lunch", "en"), "Free lunch");
    assert_eq!(store.status().expect("status").credentials, 1);

    // A delta blocks the card and adds another.
    let second = delta(
        &central,
        5,
        6,
        &[
            card(&central, "04A1", "R-1", CredentialStatus::Blocked),
            card(&central, "04B2", "R-2", CredentialStatus::Active),
        ],
    );
    store
        .apply_snapshot(second.as_slice(), &ctx(&central))
        .expect("delta applies");
    assert_eq!(lookup(&store, &central, "04A1"), Some(("R-1".into(), true)));
    assert_eq!(store.snapshot().version, Some(6));

    // Refused: a delta on the wrong base, a snapshot for another terminal,
    // a wrongly signed one, a truncated one. Nothing changes.
    let refusals: Vec<(Vec<u8>, &str)> = vec![
        (
            delta(
                &central,
                5,
                7,
                &[card(&central, "04C3", "R-3", CredentialStatus::Active)],
            ),
            "cannot apply to the terminal's version 6",
        ),
        (
            {
                let other = TestCentral::new("T-2", "canteen").expect("central");
                full(
                    &other,
                    9,
                    &[card(&other, "04C3", "R-3", CredentialStatus::Active)],
                )
            },
            "built for terminal \"T-2\", this is \"T-1\"",
        ),
        (
            {
                let mut bytes = full(
                    &central,
                    9,
                    &[card(&central, "04C3", "R-3", CredentialStatus::Active)],
                );
                // Flip one byte of the credential line: the signed hash no longer matches.
                let at = bytes.iter().position(|b| *b == b'R').expect("an R");
                bytes[at] = b'Q';
                bytes
            },
            "the snapshot was altered",
        ),
        (
            {
                let bytes = full(
                    &central,
                    9,
                    &[card(&central, "04C3", "R-3", CredentialStatus::Active)],
                );
                let cut = bytes[..bytes.len() - 1]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .expect("line end")
                    + 1;
                bytes[..cut].to_vec()
            },
            "without its signed trailer",
        ),
    ];
    for (bytes, expected) in refusals {
        let err = store
            .apply_snapshot(bytes.as_slice(), &ctx(&central))
            .expect_err(expected);
        assert!(err.to_string().contains(expected), "{err}");
        assert_eq!(store.snapshot().version, Some(6));
        assert_eq!(lookup(&store, &central, "04C3"), None, "{expected}");
    }
    let unsigned_by_us = TestCentral {
        key: SigningKey::from_seed(&[1; 32]).expect("key"),
        ..TestCentral::new("T-1", "canteen").expect("central")
    };
    let err = store
        .apply_snapshot(
            full(&unsigned_by_us, 9, &[lunch()]).as_slice(),
            &ctx(&central),
        )
        .expect_err("unknown key");
    assert!(err.to_string().contains("signed by unknown key"), "{err}");
    // The staging tables of a refused full snapshot are gone.
    let staging: i64 = store
        .reader()
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE '%_next'",
            [],
            |row| row.get(0),
        )
        .expect("count");
    assert_eq!(staging, 0);

    // A newer full snapshot replaces everything.
    store
        .apply_snapshot(
            full(
                &central,
                10,
                &[card(&central, "04C3", "R-3", CredentialStatus::Active)],
            )
            .as_slice(),
            &ctx(&central),
        )
        .expect("full applies");
    assert_eq!(lookup(&store, &central, "04A1"), None);
    assert_eq!(
        lookup(&store, &central, "04C3"),
        Some(("R-3".into(), false))
    );
    assert!(store.snapshot().catalog.get("lunch").is_none());
}

#[test]
fn snapshot_survives_reopen_and_newer_schema_is_refused() {
    let central = central();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.sqlite");
    {
        let store = Store::open(&path).expect("open");
        store
            .apply_snapshot(full(&central, 3, &[lunch()]).as_slice(), &ctx(&central))
            .expect("apply");
    }
    let store = Store::open(&path).expect("reopen");
    assert_eq!(store.snapshot().version, Some(3));
    assert_eq!(store.snapshot().built_at, Some(ts("2026-03-02T09:00:00Z")));
    drop(store);
    let conn = Connection::open(&path).expect("raw open");
    conn.execute_batch("PRAGMA user_version = 99")
        .expect("bump");
    drop(conn);
    let err = Store::open(&path).err().expect("refused");
    assert_eq!(
        err.to_string(),
        format!(
            "database schema version 99 is newer than this agent supports ({}); install a newer agent",
            MIGRATIONS.len()
        )
    );
}

fn record(key: &SigningKey, seq: u64, prev: Hash, idempotency_key: &str) -> SignedRecord {
    let body = RecordBody {
        at: ts("2026-03-02T10:05:00Z"),
        cart: vec![CartLine {
            sku: "L".into(),
            category: "meal.lunch".into(),
            unit_price: Money::parse("2.50").expect("money"),
            qty: 1,
        }],
        credential: CredentialRef {
            hash: "ab".repeat(32),
            kind: CredentialKind::Card,
        },
        idempotency_key: idempotency_key.into(),
        inputs: QuoteInputs {
            benefits: Vec::new(),
            entitlements: Vec::new(),
            history: Vec::new(),
            snapshot: 1,
        },
        kind: RecordKind::Sale,
        local_time: "2026-03-02T12:05:00+02:00".into(),
        merchant: "canteen".into(),
        prev,
        quote: shared::model::Quote {
            discounts: Vec::new(),
            total: Money::parse("2.50").expect("money"),
            discount_total: Money::ZERO,
            due: Money::parse("2.50").expect("money"),
            by_provider: BTreeMap::new(),
            refused: Vec::new(),
        },
        recipient: "R-1".into(),
        seq,
        terminal: "T-1".into(),
        record_type: RecordType::Record,
        v: RECORD_VERSION,
        voids: None,
    };
    SignedRecord::sign(body, key).expect("sign")
}

fn append_n(store: &Store, key: &SigningKey, n: u64) {
    let mut writer = store.writer();
    for _ in 0..n {
        let head = writer.head();
        let seq = head.map(|h| h.seq + 1).unwrap_or(1);
        let rec = record(
            key,
            seq,
            head.map(|h| h.hash).unwrap_or(Hash::GENESIS),
            &format!("k-{seq}"),
        );
        let usage = BTreeMap::from([(
            "lunch".to_owned(),
            (Money::parse("2.50").expect("money"), 1u32),
        )]);
        writer
            .append(&NewRecord {
                record: &rec,
                credential_hash: &"ab".repeat(32),
                fingerprint: Hash::of(b"fp"),
                answer: b"{}",
                usage: &usage,
            })
            .expect("append");
    }
}

#[test]
fn journal_appends_only_extend_the_chain_and_verify() {
    let key = SigningKey::from_seed(&[3; 32]).expect("key");
    let (_dir, store) = open();
    append_n(&store, &key, 3);
    // A record that does not extend the head is refused before the disk.
    let stray = record(&key, 7, Hash::GENESIS, "stray");
    let err = store
        .writer()
        .append(&NewRecord {
            record: &stray,
            credential_hash: "x",
            fingerprint: Hash::GENESIS,
            answer: b"{}",
            usage: &BTreeMap::new(),
        })
        .expect_err("gap refused");
    assert!(
        err.to_string()
            .contains("does not extend the journal head (expected seq 4)"),
        "{err}"
    );
    let again = record(&key, 4, store.writer().head().expect("head").hash, "k-1");
    let err = store
        .writer()
        .append(&NewRecord {
            record: &again,
            credential_hash: "x",
            fingerprint: Hash::GENESIS,
            answer: b"{}",
            usage: &BTreeMap::new(),
        })
        .expect_err("idempotency key is unique");
    assert!(err.to_string().contains("UNIQUE"), "{err}");

    let check = store
        .verify_journal(&key.public_key(), "T-1")
        .expect("verify");
    assert_eq!(
        (check.records, check.issues.len()),
        (3, 0),
        "{:?}",
        check.issues
    );
    assert_eq!(check.head.map(|h| h.seq), Some(3));
    assert_eq!(
        local_usage(&store.reader(), "R-1", ts("2026-03-02T11:00:00Z"))
            .expect("usage")
            .len(),
        3
    );

    // Tamper with record 2 on disk: verification names it.
    let writer = store.writer();
    let bytes: Vec<u8> = writer
        .conn()
        .query_row("SELECT record FROM journal WHERE seq = 2", [], |row| {
            row.get(0)
        })
        .expect("read");
    let tampered = String::from_utf8(bytes)
        .expect("utf8")
        .replace("\"due\":\"2.50\"", "\"due\":\"0.50\"");
    writer
        .conn()
        .execute("UPDATE journal SET record = ?1 WHERE seq = 2", [tampered])
        .expect("tamper");
    drop(writer);
    let check = store
        .verify_journal(&key.public_key(), "T-1")
        .expect("verify");
    assert!(
        check
            .issues
            .iter()
            .any(|issue| issue.contains("record seq 2: stored hash differs")),
        "{:?}",
        check.issues
    );
    assert!(
        check
            .issues
            .iter()
            .any(|issue| issue.contains("record seq 2: bad signature")),
        "{:?}",
        check.issues
    );
}

#[test]
fn outbox_packs_resends_the_same_bytes_and_drops_what_central_holds() {
    let key = SigningKey::from_seed(&[3; 32]).expect("key");
    let (_dir, store) = open();
    append_n(&store, &key, 1_500);
    let now = ts("2026-03-02T11:00:00Z");
    assert_eq!(store.pack(&key, "T-1", now).expect("pack"), 1_500);
    assert_eq!(
        store.pack(&key, "T-1", now).expect("pack again"),
        0,
        "nothing packed twice"
    );
    let packets = store.outbox(10).expect("outbox");
    let ranges: Vec<(u64, u64)> = packets.iter().map(|p| (p.first_seq, p.last_seq)).collect();
    assert_eq!(ranges, [(1, 1_000), (1_001, 1_500)]);
    let decoded = Packet::from_json(&packets[0].bytes).expect("packet decodes");
    assert_eq!(decoded.id().to_hex(), packets[0].packet_id);
    assert!(decoded.verify_signature(&key.public_key()).is_ok());

    store.ack(1_000).expect("ack");
    assert_eq!(store.outbox(10).expect("outbox").len(), 1);
    assert_eq!(
        store.outbox(10).expect("outbox")[0].bytes,
        packets[1].bytes,
        "same bytes resent"
    );
    append_n(&store, &key, 2);
    assert_eq!(store.pack(&key, "T-1", now).expect("pack"), 2);
    store.ack(1_502).expect("ack");
    assert!(store.outbox(10).expect("outbox").is_empty());
    assert_eq!(store.status().expect("status").acked_through, 1_502);

    // Central restored from a backup and holds only 1..=900: repack from 901.
    store.ack(900).expect("ack");
    assert_eq!(store.pack(&key, "T-1", now).expect("repack"), 602);
    let ranges: Vec<(u64, u64)> = store
        .outbox(10)
        .expect("outbox")
        .iter()
        .map(|p| (p.first_seq, p.last_seq))
        .collect();
    assert_eq!(ranges, [(901, 1_502)]);
}
