//! Counters and latency histograms for `GET /metrics` (Prometheus text
//! format 0.0.4). Hand-rolled on atomics: a handful of series does not
//! justify a metrics framework, and recording must cost nanoseconds on the
//! tap path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS_SECONDS: [f64; 12] = [
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// A latency histogram with fixed buckets.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS_SECONDS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS_SECONDS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (bound, bucket) in BUCKETS_SECONDS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Everything the agent counts.
#[derive(Debug, Default)]
pub struct Metrics {
    /// (endpoint, outcome code) → answers.
    outcomes: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    pub quote_latency: Histogram,
    pub commit_latency: Histogram,
    pub sync_runs_ok: AtomicU64,
    pub sync_runs_failed: AtomicU64,
    pub snapshots_applied: AtomicU64,
    pub snapshots_refused: AtomicU64,
    pub records_uploaded: AtomicU64,
}

/// Gauges read at scrape time.
#[derive(Debug, Clone, Default)]
pub struct Gauges {
    pub snapshot_version: Option<u64>,
    pub snapshot_age_seconds: Option<i64>,
    pub snapshot_stale: bool,
    pub journal_head_seq: u64,
    pub outbox_records: u64,
    pub outbox_packets: u64,
    pub credentials: u64,
    pub last_sync_ok_unix: Option<i64>,
}

impl Metrics {
    pub fn count(&self, endpoint: &'static str, outcome: &'static str) {
        let mut outcomes = self
            .outcomes
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        *outcomes.entry((endpoint, outcome)).or_default() += 1;
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP agent_requests_total Answers of the local API by endpoint and outcome code."
        );
        let _ = writeln!(out, "# TYPE agent_requests_total counter");
        {
            let outcomes = self
                .outcomes
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            for ((endpoint, outcome), value) in outcomes.iter() {
                let _ = writeln!(
                    out,
                    "agent_requests_total{{endpoint=\"{endpoint}\",outcome=\"{outcome}\"}} {value}"
                );
            }
        }
        self.quote_latency.render(
            &mut out,
            "agent_quote_duration_seconds",
            "Time to answer a quote, from request parsed to answer built.",
        );
        self.commit_latency.render(
            &mut out,
            "agent_commit_duration_seconds",
            "Time to commit a record (signed, chained, fsync'd).",
        );
        let counters = [
            (
                "agent_sync_runs_ok_total",
                "Sync rounds that completed.",
                &self.sync_runs_ok,
            ),
            (
                "agent_sync_runs_failed_total",
                "Sync rounds that failed and backed off.",
                &self.sync_runs_failed,
            ),
            (
                "agent_snapshots_applied_total",
                "Snapshots applied.",
                &self.snapshots_applied,
            ),
            (
                "agent_snapshots_refused_total",
                "Snapshots refused (bad signature, wrong terminal, out of order, malformed).",
                &self.snapshots_refused,
            ),
            (
                "agent_records_uploaded_total",
                "Records acknowledged by central.",
                &self.records_uploaded,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let mut gauge = |name: &str, help: &str, value: Option<String>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            if let Some(value) = value {
                let _ = writeln!(out, "{name} {value}");
            }
        };
        gauge(
            "agent_snapshot_version",
            "Version of the snapshot in force.",
            gauges.snapshot_version.map(|v| v.to_string()),
        );
        gauge(
            "agent_snapshot_age_seconds",
            "Seconds since central built the snapshot in force.",
            gauges.snapshot_age_seconds.map(|v| v.to_string()),
        );
        gauge(
            "agent_snapshot_stale",
            "1 when the snapshot is older than terminal.snapshot_age_max_hours.",
            Some(u8::from(gauges.snapshot_stale).to_string()),
        );
        gauge(
            "agent_journal_head_seq",
            "Seq of the last committed record.",
            Some(gauges.journal_head_seq.to_string()),
        );
        gauge(
            "agent_outbox_records",
            "Committed records central has not acknowledged.",
            Some(gauges.outbox_records.to_string()),
        );
        gauge(
            "agent_outbox_packets",
            "Packets built and waiting for acknowledgement.",
            Some(gauges.outbox_packets.to_string()),
        );
        gauge(
            "agent_snapshot_credentials",
            "Credentials in the snapshot.",
            Some(gauges.credentials.to_string()),
        );
        gauge(
            "agent_last_sync_ok_timestamp_seconds",
            "Unix time of the last successful sync.",
            gauges.last_sync_ok_unix.map(|v| v.to_string()),
        );
        out
    }
}
