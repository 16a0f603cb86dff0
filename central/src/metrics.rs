//! Prometheus metrics of central, in the text exposition format at
//! `GET /metrics`: every ingestion outcome (with its reason), packets,
//! refused uploads, snapshots served and enrolments.
//!
//! Hand-written counters over atomics: the set is small and fixed, so a
//! metrics framework would add dependencies without adding anything.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::plan::{Outcome, Reason};

#[derive(Debug, Default)]
pub struct Metrics {
    /// Indexed by [`Outcome::ALL`] position.
    outcomes: [AtomicU64; 4],
    /// Flagged records by [`Reason::ALL`] position.
    reasons: [AtomicU64; Reason::ALL.len()],
    packets: AtomicU64,
    packet_records: AtomicU64,
    packets_refused: AtomicU64,
    packets_replayed: AtomicU64,
    snapshots_full: AtomicU64,
    snapshots_delta: AtomicU64,
    snapshots_current: AtomicU64,
    enrolments: AtomicU64,
    auth_failures: AtomicU64,
}

const _: () = assert!(Outcome::ALL.len() == 4 && Reason::ALL.len() == 12);

#[derive(Debug, Clone, Copy)]
pub enum SnapshotServed {
    Full,
    Delta,
    Current,
}

impl Metrics {
    pub fn record_outcome(&self, outcome: Outcome, reason: Option<Reason>) {
        if let Some(idx) = Outcome::ALL.iter().position(|o| *o == outcome) {
            self.outcomes[idx].fetch_add(1, Ordering::Relaxed);
        }
        if let Some(idx) = reason.and_then(|reason| Reason::ALL.iter().position(|r| *r == reason)) {
            self.reasons[idx].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn packet_ingested(&self, records: usize, seen_before: bool) {
        self.packets.fetch_add(1, Ordering::Relaxed);
        if seen_before {
            self.packets_replayed.fetch_add(1, Ordering::Relaxed);
        }
        self.packet_records
            .fetch_add(records as u64, Ordering::Relaxed);
    }

    pub fn packet_refused(&self) {
        self.packets_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot_served(&self, kind: SnapshotServed) {
        let counter = match kind {
            SnapshotServed::Full => &self.snapshots_full,
            SnapshotServed::Delta => &self.snapshots_delta,
            SnapshotServed::Current => &self.snapshots_current,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn enrolled(&self) {
        self.enrolments.fetch_add(1, Ordering::Relaxed);
    }

    pub fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        out.push_str("# HELP central_records_total Records ingested, by outcome.\n");
        out.push_str("# TYPE central_records_total counter\n");
        for (idx, outcome) in Outcome::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "central_records_total{{outcome=\"{}\"}} {}",
                outcome.as_str(),
                get(&self.outcomes[idx])
            );
        }
        out.push_str("# HELP central_records_flagged_total Flagged records, by reason.\n");
        out.push_str("# TYPE central_records_flagged_total counter\n");
        for (idx, reason) in Reason::ALL.iter().enumerate() {
            let _ = writeln!(
                out,
                "central_records_flagged_total{{reason=\"{}\"}} {}",
                reason.as_str(),
                get(&self.reasons[idx])
            );
        }
        let simple = [
            (
                "central_packets_total",
                "Packets ingested (including resends).",
                &self.packets,
            ),
            (
                "central_packet_records_total",
                "Records in ingested packets.",
                &self.packet_records,
            ),
            (
                "central_packets_replayed_total",
                "Packets received again (answered from stored outcomes, nothing counted twice).",
                &self.packets_replayed,
            ),
            (
                "central_packets_refused_total",
                "Uploads refused as a whole (malformed, wrong terminal, bad packet signature).",
                &self.packets_refused,
            ),
            (
                "central_enrolments_total",
                "Terminals enrolled.",
                &self.enrolments,
            ),
            (
                "central_auth_failures_total",
                "Requests refused for authentication.",
                &self.auth_failures,
            ),
        ];
        for (name, help, counter) in simple {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", get(counter));
        }
        out.push_str("# HELP central_snapshots_total Snapshot requests answered, by kind.\n");
        out.push_str("# TYPE central_snapshots_total counter\n");
        for (kind, counter) in [
            ("full", &self.snapshots_full),
            ("delta", &self.snapshots_delta),
            ("current", &self.snapshots_current),
        ] {
            let _ = writeln!(
                out,
                "central_snapshots_total{{kind=\"{kind}\"}} {}",
                get(counter)
            );
        }
        out
    }
}
