//! Chain verification: what central and `verify-journal` report for gaps,
//! broken links, forks, foreign and forged records. Method: sign real
//! chains with the published test key, then drop, swap and re-sign records.

use super::*;
use crate::wire::keys::SigningKey;
use crate::wire::record::RecordBody;
use crate::wire::vectors;

fn key() -> SigningKey {
    vectors::terminal_key().expect("key")
}

fn template() -> RecordBody {
    vectors::record_bodies().expect("bodies").remove(0)
}

/// A chain of `n` records, seq 1..=n, correctly linked.
fn chain(n: u64) -> Vec<SignedRecord> {
    let mut prev = Hash::GENESIS;
    (1..=n)
        .map(|seq| {
            let record = sign_with(seq, prev, &format!("k-{seq}"));
            prev = record.hash();
            record
        })
        .collect()
}

fn sign_with(seq: u64, prev: Hash, idempotency_key: &str) -> SignedRecord {
    let body = RecordBody {
        seq,
        prev,
        idempotency_key: idempotency_key.into(),
        ..template()
    };
    SignedRecord::sign(body, &key()).expect("sign")
}

fn public() -> PublicKey {
    key().public_key()
}

#[test]
fn sound_chain_has_no_issues() {
    let records = chain(5);
    assert_eq!(verify_run(&public(), "T-000123", None, &records), vec![]);
    assert_eq!(
        verify_run(&public(), "T-000123", Some(Hash::GENESIS), &records),
        vec![]
    );
    assert_eq!(
        verify_run(
            &public(),
            "T-000123",
            Some(records[1].hash()),
            &records[2..]
        ),
        vec![],
        "a run continuing after record 2"
    );
}

#[test]
fn gap_reported_with_the_missing_range() {
    let records = chain(9);
    let run: Vec<SignedRecord> = [&records[..2], &records[5..]].concat();
    assert_eq!(
        verify_run(&public(), "T-000123", None, &run),
        vec![ChainIssue::Gap { from: 3, to: 5 }]
    );
    assert_eq!(
        ChainIssue::Gap { from: 3, to: 5 }.to_string(),
        "records 3..=5 are missing"
    );
    let mut state = ChainState::new(public(), "T-000123");
    for record in &run {
        state.accept(record);
    }
    assert_eq!(state.gaps(), vec![ChainIssue::Gap { from: 3, to: 5 }]);
    assert_eq!(state.contiguous_head(), (2, Some(records[1].hash())));
    // The missing records arrive late: the gap closes, the links check out.
    for record in &records[2..5] {
        assert_eq!(state.accept(record), vec![]);
    }
    assert_eq!(state.gaps(), vec![]);
    assert_eq!(state.contiguous_head(), (9, Some(records[8].hash())));
}

#[test]
fn first_record_must_link_to_genesis() {
    let bad_first = sign_with(1, Hash([7; 32]), "k-1");
    assert_eq!(
        verify_run(&public(), "T-000123", None, &[bad_first]),
        vec![ChainIssue::BrokenLink { seq: 1 }]
    );
}

#[test]
fn broken_link_found_whichever_side_arrives_first() {
    let records = chain(3);
    // Record 3 re-signed pointing at a hash that is not record 2's.
    let bad_3 = sign_with(3, Hash([9; 32]), "k-3");
    let run = [records[0].clone(), records[1].clone(), bad_3.clone()];
    assert_eq!(
        verify_run(&public(), "T-000123", None, &run),
        vec![ChainIssue::BrokenLink { seq: 3 }]
    );
    let mut state = ChainState::new(public(), "T-000123");
    assert_eq!(
        state.accept(&bad_3),
        vec![ChainIssue::Gap { from: 1, to: 2 }]
    );
    assert_eq!(state.accept(&records[0]), vec![]);
    assert_eq!(
        state.accept(&records[1]),
        vec![ChainIssue::BrokenLink { seq: 3 }],
        "record 2 arriving shows that record 3 does not link to it"
    );
}

#[test]
fn fork_reported_as_tampering_evidence() {
    let records = chain(3);
    let other_2 = sign_with(2, records[0].hash(), "another-sale");
    let run = [
        records[0].clone(),
        records[1].clone(),
        other_2.clone(),
        records[2].clone(),
    ];
    let issues = verify_run(&public(), "T-000123", None, &run);
    assert_eq!(
        issues,
        vec![ChainIssue::Fork {
            seq: 2,
            known: records[1].hash(),
            got: other_2.hash(),
        }]
    );
    assert!(issues[0].to_string().contains("fork"), "{}", issues[0]);
    assert_eq!(classify(None, &other_2), Known::New);
    assert_eq!(classify(Some(other_2.hash()), &other_2), Known::Duplicate);
    assert_eq!(
        classify(Some(records[1].hash()), &other_2),
        Known::Fork {
            known: records[1].hash()
        }
    );
}

#[test]
fn resend_is_not_an_issue() {
    let records = chain(2);
    let mut state = ChainState::new(public(), "T-000123");
    for record in records.iter().chain(records.iter()) {
        assert_eq!(state.accept(record), vec![]);
    }
    assert_eq!(state.contiguous_head().0, 2);
}

#[test]
fn forged_and_foreign_records_are_not_evidence() {
    let records = chain(2);
    let stranger = vectors::stranger_key().expect("key");
    let forged = SignedRecord::sign(records[1].body.clone(), &stranger).expect("sign");
    let mut state = ChainState::new(public(), "T-000123");
    state.accept(&records[0]);
    assert_eq!(
        state.accept(&forged),
        vec![ChainIssue::BadSignature { seq: 2 }]
    );
    assert_eq!(
        state.hash_at(2),
        None,
        "a forged record is not remembered, so it cannot fake a fork later"
    );
    assert_eq!(state.accept(&records[1]), vec![]);
    let foreign = verify_record(&public(), "T-999999", &records[0]);
    assert_eq!(
        foreign,
        vec![ChainIssue::WrongTerminal {
            seq: 1,
            expected: "T-999999".into(),
            found: "T-000123".into(),
        }]
    );
}

#[test]
fn resumed_state_checks_the_link_to_the_stored_head() {
    let records = chain(4);
    let mut state = ChainState::after(public(), "T-000123", 2, records[1].hash());
    assert_eq!(state.accept(&records[2]), vec![]);
    let mut wrong = ChainState::after(public(), "T-000123", 2, Hash([1; 32]));
    assert_eq!(
        wrong.accept(&records[2]),
        vec![ChainIssue::BrokenLink { seq: 3 }]
    );
    // A different record 2 than the stored one is a fork.
    let other_2 = sign_with(2, records[0].hash(), "another");
    assert!(matches!(
        state.accept(&other_2).as_slice(),
        [ChainIssue::Fork { seq: 2, .. }]
    ));
}

#[test]
fn packet_signature_and_records_verified() {
    let packet = vectors::packet().expect("packet");
    assert_eq!(verify_packet(&public(), &packet), Ok(vec![]));
    let stranger = vectors::stranger_key().expect("key").public_key();
    let err = verify_packet(&stranger, &packet).expect_err("wrong key");
    assert_eq!(err.kind, crate::wire::error::WireErrorKind::BadSignature);
}
