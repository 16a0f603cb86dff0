//! The chain decision for one packet, as a pure function: given what is
//! stored for a terminal around the packet's seq range, which records are
//! inserted with which outcome, which are forks, and which held records
//! the packet resolves. Both backends call [`plan`] inside their
//! transaction, after locking the terminal, so the rules are written once.
//!
//! Rules (`docs/sync-protocol.md`):
//! - a record whose signature does not verify is kept as evidence apart,
//!   whatever is stored at its seq: it cannot be attributed to the terminal,
//!   so it neither takes its seq (which stays open for the genuine record:
//!   later records wait `held` as for a gap) nor makes a fork;
//! - a seq already stored with the same hash is a duplicate (or, for a
//!   packet seen before, reports the stored outcome);
//! - a seq already stored with another hash is a fork: kept as evidence,
//!   never overwriting the stored record;
//! - a new record that failed a check of its own is stored flagged;
//! - otherwise its `prev` is checked against the stored record `seq − 1`
//!   (or the genesis hash for seq 1): accepted or `broken_link`; when
//!   `seq − 1` is not stored yet, the record is stored `held`;
//! - a held record is resolved when its predecessor arrives.

use std::collections::BTreeMap;

use super::IncomingRecord;

/// Why a record is flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    BadSignature,
    BrokenLink,
    Fork,
    DiscountMismatch,
    UnknownCredential,
    BlockedCredential,
    UnknownBenefit,
    BadLocalTime,
    /// The record names another merchant than the terminal's.
    WrongMerchant,
    /// A void naming no earlier sale of this terminal with the same cart and quote.
    BadVoid,
    /// `inputs.snapshot` is newer than any snapshot version central has.
    UnknownSnapshot,
    /// An entitlement the quote relied on is no grant or membership central
    /// held for the recipient at or before `inputs.snapshot`.
    UnknownEntitlement,
}

impl Reason {
    pub const ALL: [Reason; 12] = [
        Reason::BadSignature,
        Reason::BrokenLink,
        Reason::Fork,
        Reason::DiscountMismatch,
        Reason::UnknownCredential,
        Reason::BlockedCredential,
        Reason::UnknownBenefit,
        Reason::BadLocalTime,
        Reason::WrongMerchant,
        Reason::BadVoid,
        Reason::UnknownSnapshot,
        Reason::UnknownEntitlement,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::BadSignature => "bad_signature",
            Reason::BrokenLink => "broken_link",
            Reason::Fork => "fork",
            Reason::DiscountMismatch => "discount_mismatch",
            Reason::UnknownCredential => "unknown_credential",
            Reason::BlockedCredential => "blocked_credential",
            Reason::UnknownBenefit => "unknown_benefit",
            Reason::BadLocalTime => "bad_local_time",
            Reason::WrongMerchant => "wrong_merchant",
            Reason::BadVoid => "bad_void",
            Reason::UnknownSnapshot => "unknown_snapshot",
            Reason::UnknownEntitlement => "unknown_entitlement",
        }
    }

    pub fn parse(text: &str) -> Option<Reason> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Accepted,
    Duplicate,
    Flagged,
    Held,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [
        Outcome::Accepted,
        Outcome::Duplicate,
        Outcome::Flagged,
        Outcome::Held,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Accepted => "accepted",
            Outcome::Duplicate => "duplicate",
            Outcome::Flagged => "flagged",
            Outcome::Held => "held",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        Outcome::ALL
            .into_iter()
            .find(|outcome| outcome.as_str() == text)
    }
}

/// The answer for one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAnswer {
    pub seq: u64,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
}

/// A stored record of the terminal, as the plan needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub hash: String,
    pub prev: String,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
}

/// What the backend must write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indexes into the packet's records to insert into the chain, with their outcome.
    pub inserts: Vec<(usize, RecordAnswer)>,
    /// Indexes into the packet's records to keep as fork evidence.
    pub forks: Vec<usize>,
    /// Indexes into the packet's records whose signature does not verify,
    /// to keep as evidence outside the chain.
    pub bad_signatures: Vec<usize>,
    /// Held records already stored whose outcome is now final.
    pub resolved: Vec<RecordAnswer>,
    /// One answer per record of the packet, in order.
    pub answers: Vec<RecordAnswer>,
}

/// The hex of the genesis `prev`: 32 zero bytes.
pub const GENESIS_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Decides a packet. `known` holds the stored records of the terminal with
/// seq in `first_seq − 1 ..= last_seq + 1`.
pub fn plan(records: &[IncomingRecord], known: &BTreeMap<u64, Known>, seen_before: bool) -> Plan {
    let mut known = known.clone();
    let mut out = Plan::default();
    for (idx, record) in records.iter().enumerate() {
        if record.verdict == Err(Reason::BadSignature) {
            out.bad_signatures.push(idx);
            out.answers.push(RecordAnswer {
                seq: record.seq,
                outcome: Outcome::Flagged,
                reason: Some(Reason::BadSignature),
            });
            continue;
        }
        if let Some(stored) = known.get(&record.seq) {
            let answer = if stored.hash != record.hash {
                out.forks.push(idx);
                RecordAnswer {
                    seq: record.seq,
                    outcome: Outcome::Flagged,
                    reason: Some(Reason::Fork),
                }
            } else if seen_before {
                RecordAnswer {
                    seq: record.seq,
                    outcome: stored.outcome,
                    reason: stored.reason,
                }
            } else {
                RecordAnswer {
                    seq: record.seq,
                    outcome: Outcome::Duplicate,
                    reason: None,
                }
            };
            out.answers.push(answer);
            continue;
        }
        let answer = match record.verdict {
            Err(reason) => RecordAnswer {
                seq: record.seq,
                outcome: Outcome::Flagged,
                reason: Some(reason),
            },
            Ok(()) => link_answer(record.seq, &record.prev, &known),
        };
        known.insert(
            record.seq,
            Known {
                hash: record.hash.clone(),
                prev: record.prev.clone(),
                outcome: answer.outcome,
                reason: answer.reason,
            },
        );
        out.inserts.push((idx, answer));
        out.answers.push(answer);
    }
    // Held records whose predecessor is now stored: in seq order, so that a
    // resolution can never depend on a later one.
    let held: Vec<(u64, String)> = known
        .iter()
        .filter(|(_, stored)| stored.outcome == Outcome::Held)
        .map(|(seq, stored)| (*seq, stored.prev.clone()))
        .collect();
    for (seq, prev) in held {
        let answer = link_answer(seq, &prev, &known);
        if answer.outcome == Outcome::Held {
            continue;
        }
        if let Some(stored) = known.get_mut(&seq) {
            stored.outcome = answer.outcome;
            stored.reason = answer.reason;
        }
        if let Some((_, inserted)) = out
            .inserts
            .iter_mut()
            .find(|(idx, _)| records[*idx].seq == seq)
        {
            // Held and resolved inside the same packet: insert it resolved.
            *inserted = answer;
            if let Some(packet_answer) = out.answers.iter_mut().find(|a| a.seq == seq) {
                *packet_answer = answer;
            }
        } else {
            out.resolved.push(answer);
        }
    }
    out
}

fn link_answer(seq: u64, prev: &str, known: &BTreeMap<u64, Known>) -> RecordAnswer {
    let expected = if seq == 1 {
        Some(GENESIS_HEX)
    } else {
        known.get(&(seq - 1)).map(|stored| stored.hash.as_str())
    };
    let (outcome, reason) = match expected {
        None => (Outcome::Held, None),
        Some(hash) if hash == prev => (Outcome::Accepted, None),
        Some(_) => (Outcome::Flagged, Some(Reason::BrokenLink)),
    };
    RecordAnswer {
        seq,
        outcome,
        reason,
    }
}

#[cfg(test)]
mod tests;
