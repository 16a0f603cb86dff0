//! The chain rules on small hand-built runs: each test builds the stored
//! state and a packet, and checks the answers a terminal would see.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::*;
use crate::store::RecordKindRow;

fn record(seq: u64, hash: &str, prev: &str) -> IncomingRecord {
    IncomingRecord {
        seq,
        hash: hash.into(),
        prev: prev.into(),
        verdict: Ok(()),
        recipient: "R1".into(),
        credential: "c".into(),
        merchant: "m".into(),
        at: Timestamp::UNIX_EPOCH,
        kind: RecordKindRow::Sale,
        voids: None,
        discount_cents: 0,
        providers: ",".into(),
        snapshot: 1,
        body: "{}".into(),
        sig: "s".into(),
        usage: Vec::new(),
    }
}

fn known(entries: &[(u64, &str, &str, Outcome)]) -> BTreeMap<u64, Known> {
    entries
        .iter()
        .map(|(seq, hash, prev, outcome)| {
            (
                *seq,
                Known {
                    hash: (*hash).into(),
                    prev: (*prev).into(),
                    outcome: *outcome,
                    reason: None,
                },
            )
        })
        .collect()
}

fn outcomes(answers: &[RecordAnswer]) -> Vec<(u64, &'static str, Option<&'static str>)> {
    answers
        .iter()
        .map(|a| (a.seq, a.outcome.as_str(), a.reason.map(Reason::as_str)))
        .collect()
}

#[test]
fn a_fresh_chain_is_accepted() {
    let run = [record(1, "h1", GENESIS_HEX), record(2, "h2", "h1")];
    let out = plan(&run, &BTreeMap::new(), false);
    assert_eq!(
        outcomes(&out.answers),
        [(1, "accepted", None), (2, "accepted", None)]
    );
    assert_eq!(out.inserts.len(), 2);
    assert!(out.forks.is_empty());
}

#[test]
fn seq_one_must_link_to_genesis() {
    let out = plan(&[record(1, "h1", "ff")], &BTreeMap::new(), false);
    assert_eq!(
        outcomes(&out.answers),
        [(1, "flagged", Some("broken_link"))]
    );
}

#[test]
fn same_record_twice_is_a_duplicate_and_a_different_one_a_fork() {
    let stored = known(&[(1, "h1", GENESIS_HEX, Outcome::Accepted)]);
    let dup = plan(&[record(1, "h1", GENESIS_HEX)], &stored, false);
    assert_eq!(outcomes(&dup.answers), [(1, "duplicate", None)]);
    assert!(dup.inserts.is_empty());
    let again = plan(&[record(1, "h1", GENESIS_HEX)], &stored, true);
    assert_eq!(
        outcomes(&again.answers),
        [(1, "accepted", None)],
        "a packet seen before reports the stored outcome"
    );
    let fork = plan(&[record(1, "other", GENESIS_HEX)], &stored, false);
    assert_eq!(outcomes(&fork.answers), [(1, "flagged", Some("fork"))]);
    assert_eq!(fork.forks, [0]);
    assert!(fork.inserts.is_empty(), "a fork never overwrites");
}

#[test]
fn a_gap_holds_and_the_missing_range_resolves_it() {
    let stored = known(&[(1, "h1", GENESIS_HEX, Outcome::Accepted)]);
    let later = plan(
        &[record(3, "h3", "h2"), record(4, "h4", "h3")],
        &stored,
        false,
    );
    assert_eq!(
        outcomes(&later.answers),
        [(3, "held", None), (4, "accepted", None)]
    );
    let stored = known(&[
        (1, "h1", GENESIS_HEX, Outcome::Accepted),
        (3, "h3", "h2", Outcome::Held),
    ]);
    let fill = plan(&[record(2, "h2", "h1")], &stored, false);
    assert_eq!(outcomes(&fill.answers), [(2, "accepted", None)]);
    assert_eq!(outcomes(&fill.resolved), [(3, "accepted", None)]);
}

#[test]
fn a_held_record_that_does_not_link_is_flagged_when_resolved() {
    let stored = known(&[
        (1, "h1", GENESIS_HEX, Outcome::Accepted),
        (3, "h3", "not-h2", Outcome::Held),
    ]);
    let fill = plan(&[record(2, "h2", "h1")], &stored, false);
    assert_eq!(
        outcomes(&fill.resolved),
        [(3, "flagged", Some("broken_link"))]
    );
}

#[test]
fn a_record_failing_its_own_checks_is_flagged_even_after_a_gap() {
    let mut bad = record(5, "h5", "h4");
    bad.verdict = Err(Reason::DiscountMismatch);
    let out = plan(&[bad], &BTreeMap::new(), false);
    assert_eq!(
        outcomes(&out.answers),
        [(5, "flagged", Some("discount_mismatch"))]
    );
    assert_eq!(
        out.inserts.len(),
        1,
        "flagged records are stored as evidence"
    );
}

fn bad_signature(seq: u64, hash: &str, prev: &str) -> IncomingRecord {
    IncomingRecord {
        verdict: Err(Reason::BadSignature),
        ..record(seq, hash, prev)
    }
}

#[test]
fn a_bad_signature_leaves_its_seq_open_and_later_records_wait() {
    let stored = known(&[
        (1, "h1", GENESIS_HEX, Outcome::Accepted),
        (2, "h2", "h1", Outcome::Accepted),
    ]);
    let run = [
        bad_signature(3, "x3", "h2"),
        record(4, "h4", "h3"),
        record(5, "h5", "h4"),
    ];
    let out = plan(&run, &stored, false);
    assert_eq!(
        outcomes(&out.answers),
        [
            (3, "flagged", Some("bad_signature")),
            (4, "held", None),
            (5, "accepted", None)
        ]
    );
    assert_eq!(out.bad_signatures, [0], "the tampered copy is evidence");
    let inserted: Vec<u64> = out.inserts.iter().map(|(idx, _)| run[*idx].seq).collect();
    assert_eq!(inserted, [4, 5], "seq 3 is not taken");
    assert!(out.forks.is_empty());
}

#[test]
fn the_genuine_record_after_a_bad_signature_is_accepted_and_releases_the_held() {
    let stored = known(&[
        (1, "h1", GENESIS_HEX, Outcome::Accepted),
        (2, "h2", "h1", Outcome::Accepted),
        (4, "h4", "h3", Outcome::Held),
        (5, "h5", "h4", Outcome::Accepted),
    ]);
    let run = [
        record(3, "h3", "h2"),
        record(4, "h4", "h3"),
        record(5, "h5", "h4"),
    ];
    let out = plan(&run, &stored, false);
    assert_eq!(
        outcomes(&out.answers),
        [
            (3, "accepted", None),
            (4, "duplicate", None),
            (5, "duplicate", None)
        ]
    );
    assert_eq!(outcomes(&out.resolved), [(4, "accepted", None)]);
    assert!(out.forks.is_empty() && out.bad_signatures.is_empty());
}

#[test]
fn a_bad_signature_over_a_stored_seq_is_no_fork() {
    let stored = known(&[(1, "h1", GENESIS_HEX, Outcome::Accepted)]);
    let out = plan(&[bad_signature(1, "x1", GENESIS_HEX)], &stored, true);
    assert_eq!(
        outcomes(&out.answers),
        [(1, "flagged", Some("bad_signature"))]
    );
    assert!(out.forks.is_empty(), "a copy no one signed proves no fork");
    assert!(out.inserts.is_empty());
    assert_eq!(out.bad_signatures, [0]);
}
