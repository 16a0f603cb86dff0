//! Chain verification: signatures, sequence continuity, hash links, forks.
//!
//! Pure functions over records; the caller supplies what it already knows
//! (central: the stored records of that terminal; agent: its journal).

use super::keys::{Hash, PublicKey};
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

/// Verifies a run of records standing alone: every signature, terminal,
/// contiguous seqs and hash links. `prev` is the hash the first record must
/// link to, when known (`Hash::GENESIS` when it is seq 1).
pub fn verify_run(
    key: &PublicKey,
    terminal: &str,
    prev: Option<Hash>,
    records: &[SignedRecord],
) -> Vec<ChainIssue> {
    let mut issues = Vec::new();
    let mut expected_prev = prev;
    let mut expected_seq: Option<u64> = None;
    for record in records {
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
        if seq == 1 {
            expected_prev = Some(Hash::GENESIS);
        }
        if let Some(want) = expected_seq {
            if seq > want {
                issues.push(ChainIssue::Gap {
                    from: want,
                    to: seq - 1,
                });
                expected_prev = None;
            }
        }
        if let Some(want_prev) = expected_prev {
            if record.body.prev != want_prev {
                issues.push(ChainIssue::BrokenLink { seq });
            }
        }
        expected_prev = Some(record.hash());
        expected_seq = Some(seq + 1);
    }
    issues
}
