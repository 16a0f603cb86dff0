//! Chain verification: signatures, sequence continuity, hash links, forks.
//!
//! Pure functions over records; the caller supplies what it already knows
//! (central: the stored records of that terminal; agent: its journal).
//!
//! - [`verify_record`]: one record on its own (signature, terminal).
//! - [`verify_packet`]: a packet's signature and its run of records.
//! - [`classify`]: a record against the record already known at its seq
//!   (new, duplicate, or a fork), for a verifier that keeps its records in a
//!   database, as central does.
//! - [`ChainState`]: a whole chain accepted record by record, in any order,
//!   reporting gaps with the missing range, broken links and forks, as the
//!   agent's `verify-journal` and tests do.

use std::collections::BTreeMap;

use super::error::WireError;
use super::keys::{Hash, PublicKey};
use super::packet::Packet;
use super::record::SignedRecord;

/// One thing wrong with a run of records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainIssue {
    #[error("record seq {seq}: bad signature")]
    BadSignature { seq: u64 },
    #[error("records {from}..={to} are missing")]
    Gap { from: u64, to: u64 },
    #[error("record seq {seq}: prev does not match the hash of record {}", seq - 1)]
    BrokenLink { seq: u64 },
    #[error("record seq {seq}: a different record with this seq is already known (fork: {known} vs {got})")]
    Fork { seq: u64, known: Hash, got: Hash },
    #[error("record seq {seq}: belongs to terminal {found:?}, expected {expected:?}")]
    WrongTerminal {
        seq: u64,
        expected: String,
        found: String,
    },
    #[error("record seq {seq}: seq 0 is not allowed (sequences start at 1)")]
    SeqZero { seq: u64 },
}

/// Verifies one record on its own: its signature with the terminal's key
/// and that it belongs to `terminal`. Links and continuity need neighbours:
/// see [`classify`] and [`ChainState`].
pub fn verify_record(key: &PublicKey, terminal: &str, record: &SignedRecord) -> Vec<ChainIssue> {
    let mut issues = Vec::new();
    let seq = record.body.seq;
    if seq == 0 {
        issues.push(ChainIssue::SeqZero { seq });
    }
    if record.body.terminal != terminal {
        issues.push(ChainIssue::WrongTerminal {
            seq,
            expected: terminal.to_owned(),
            found: record.body.terminal.clone(),
        });
    }
    if record.verify_signature(key).is_err() {
        issues.push(ChainIssue::BadSignature { seq });
    }
    issues
}

/// Verifies a decoded packet: its own signature (an error: nothing in an
/// unsigned or forged packet is evidence of anything), then its records as a
/// run (issues, each about one record). That the packet's `prev` matches the
/// record before it is for the caller, who knows that record.
pub fn verify_packet(key: &PublicKey, packet: &Packet) -> Result<Vec<ChainIssue>, WireError> {
    packet.verify_signature(key)?;
    Ok(verify_run(
        key,
        &packet.body.terminal,
        None,
        &packet.body.records,
    ))
}

/// How a record relates to what is already known at its seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Nothing is known at this seq.
    New,
    /// The very same record (same hash) is already known: a resend.
    Duplicate,
    /// A different record has this seq: evidence of tampering or of a
    /// terminal restored from an old backup. Keep both; overwrite neither.
    Fork { known: Hash },
}

/// Classifies `record` against the hash of the record already stored for
/// its terminal and seq, if any.
pub fn classify(known: Option<Hash>, record: &SignedRecord) -> Known {
    match known {
        None => Known::New,
        Some(hash) if hash == record.hash() => Known::Duplicate,
        Some(hash) => Known::Fork { known: hash },
    }
}

impl Known {
    /// The issue to report, if any.
    pub fn issue(self, record: &SignedRecord) -> Option<ChainIssue> {
        match self {
            Known::Fork { known } => Some(ChainIssue::Fork {
                seq: record.body.seq,
                known,
                got: record.hash(),
            }),
            Known::New | Known::Duplicate => None,
        }
    }
}

/// One terminal's chain as far as it is known, fed one record at a time in
/// any order. Remembers the hash and `prev` of each accepted record (72
/// bytes each), so that a fork, a broken link or a gap is found whichever
/// side of it arrives first.
#[derive(Debug, Clone)]
pub struct ChainState {
    key: PublicKey,
    terminal: String,
    /// Records at or below `floor` were verified elsewhere and are not kept;
    /// no gap is reported below `floor + 1`.
    floor: u64,
    /// Hash of record `floor` when known (`GENESIS` for floor 0).
    floor_hash: Option<Hash>,
    /// seq → (hash, prev) of every accepted record above `floor`.
    records: BTreeMap<u64, (Hash, Hash)>,
}

impl ChainState {
    /// A chain from its first record: seq 1 must link to [`Hash::GENESIS`].
    pub fn new(key: PublicKey, terminal: &str) -> ChainState {
        ChainState::after(key, terminal, 0, Hash::GENESIS)
    }

    /// A chain known (and verified) through record `seq`, whose hash is
    /// `hash`: central resuming from its store, a packet after acked records.
    pub fn after(key: PublicKey, terminal: &str, seq: u64, hash: Hash) -> ChainState {
        ChainState {
            key,
            terminal: terminal.to_owned(),
            floor: seq,
            floor_hash: Some(hash),
            records: BTreeMap::new(),
        }
    }

    /// Checks `record` against the chain and remembers it when it is sound
    /// enough to be evidence (right terminal, valid signature, not a fork).
    /// A resend of a known record changes nothing and reports nothing.
    ///
    /// A gap is reported when the record lies beyond the highest seq known
    /// so far; [`gaps`](Self::gaps) gives the gaps left at the end.
    pub fn accept(&mut self, record: &SignedRecord) -> Vec<ChainIssue> {
        let mut issues = verify_record(&self.key, &self.terminal, record);
        if !issues.is_empty() {
            return issues;
        }
        let seq = record.body.seq;
        let hash = record.hash();
        if let Some(known) = self.hash_at(seq) {
            issues.extend(classify(Some(known), record).issue(record));
            return issues;
        }
        if seq <= self.floor {
            // Older than what this state covers: the caller's store decides.
            return issues;
        }
        let highest = self.highest();
        if seq > highest + 1 {
            issues.push(ChainIssue::Gap {
                from: highest + 1,
                to: seq - 1,
            });
        }
        if let Some(expected_prev) = self.hash_at(seq - 1) {
            if record.body.prev != expected_prev {
                issues.push(ChainIssue::BrokenLink { seq });
            }
        }
        if let Some((_, next_prev)) = self.records.get(&(seq + 1)) {
            if *next_prev != hash {
                issues.push(ChainIssue::BrokenLink { seq: seq + 1 });
            }
        }
        self.records.insert(seq, (hash, record.body.prev));
        issues
    }

    /// The hash of the record at `seq`, when known.
    pub fn hash_at(&self, seq: u64) -> Option<Hash> {
        if seq == self.floor {
            return self.floor_hash;
        }
        self.records.get(&seq).map(|(hash, _)| *hash)
    }

    /// The highest seq known (the floor when nothing was accepted).
    pub fn highest(&self) -> u64 {
        self.records
            .last_key_value()
            .map_or(self.floor, |(seq, _)| *seq)
    }

    /// The last seq up to which every record is known without a gap, and
    /// its hash: what central acknowledges as `acked_through`.
    pub fn contiguous_head(&self) -> (u64, Option<Hash>) {
        let mut seq = self.floor;
        let mut hash = self.floor_hash;
        while let Some((next_hash, _)) = self.records.get(&(seq + 1)) {
            seq += 1;
            hash = Some(*next_hash);
        }
        (seq, hash)
    }

    /// Every missing range between the floor and the highest known seq.
    pub fn gaps(&self) -> Vec<ChainIssue> {
        let mut gaps = Vec::new();
        let mut expected = self.floor + 1;
        for seq in self.records.keys() {
            if *seq > expected {
                gaps.push(ChainIssue::Gap {
                    from: expected,
                    to: seq - 1,
                });
            }
            expected = seq + 1;
        }
        gaps
    }
}

/// Verifies a run of records standing alone: every signature, terminal,
/// contiguous seqs, hash links, and a second record with a seq already in
/// the run (a fork). `prev` is the hash the first record must link to, when
/// known (`Hash::GENESIS` when it is seq 1). No gap is reported before the
/// first record.
pub fn verify_run(
    key: &PublicKey,
    terminal: &str,
    prev: Option<Hash>,
    records: &[SignedRecord],
) -> Vec<ChainIssue> {
    let Some(first) = records.first() else {
        return Vec::new();
    };
    let first_seq = first.body.seq;
    let mut state = match (first_seq, prev) {
        (0 | 1, _) => ChainState::new(*key, terminal),
        (_, Some(prev)) => ChainState::after(*key, terminal, first_seq - 1, prev),
        (_, None) => ChainState {
            key: *key,
            terminal: terminal.to_owned(),
            floor: first_seq - 1,
            floor_hash: None,
            records: BTreeMap::new(),
        },
    };
    records
        .iter()
        .flat_map(|record| state.accept(record))
        .collect()
}

#[cfg(test)]
mod tests;
