//! Wire formats: records signed and verified per second on one core, beside
//! raw `ring` Ed25519 sign and verify of the same canonical bytes in the
//! same run; encode and decode throughput; snapshot write and read per
//! 100,000 credential lines.
//!
//! Run with `cargo bench -p shared --bench wire`. Two records: `typical` is
//! `docs/vectors/record-2.json` (2 cart lines, 2 benefits, 2 history
//! entries, 1.4 kB); `large` has 10 cart lines, 10 benefits and 40 history
//! entries (about 6 kB), a recipient late in a busy month. A packet of 1000
//! typical records measures decoding as central does it, per record.
//!
//! After criterion's report, summary lines print each median (read back
//! from criterion's `estimates.json` of this run), rates, and the ratios
//! against raw ring. Goal (`docs/performance.md`): signing and verifying a
//! record at ≥ 80 % of the raw Ed25519 rate.
//!
//! On a loaded machine times wander; instruction counts do not. With
//! `WIRE_BENCH_REPEAT=OPERATION:N` the binary skips criterion and runs one
//! operation N times, for `valgrind --tool=callgrind`: the difference between
//! N and 0 repetitions, divided by N, is the instructions per operation
//! (`docs/performance.md` has the script). Operations: `sign`, `raw_sign`,
//! `decode_and_verify`, `raw_verify`, each suffixed `_typical` or `_large`,
//! and `packet_decode` (one packet of 1000 typical records, as central
//! receives them).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::{BatchSize, Criterion, Throughput};
use ring::signature::{Ed25519KeyPair, UnparsedPublicKey, ED25519};
use serde_json::Value;
use shared::model::{CartLine, HistoryEntry, LineDiscount};
use shared::money::Money;
use shared::wire::canonical;
use shared::wire::keys::{Hash, SigningKey};
use shared::wire::packet::{Packet, PACKET_RECORDS_MAX};
use shared::wire::record::{BenefitRef, RecordBody, SignedRecord};
use shared::wire::snapshot::{
    CredentialStatus, SnapshotHeader, SnapshotItem, SnapshotReader, SnapshotWriter,
};
use shared::wire::vectors;
use shared::wire::verify;

const GOAL_RATIO: f64 = 0.80;
const SNAPSHOT_LINES: usize = 100_000;

fn typical() -> RecordBody {
    vectors::records().expect("vector records")[1].body.clone()
}

/// A bigger record: 10 lines, 10 benefit refs, 40 history entries.
fn large() -> RecordBody {
    let mut body = typical();
    let money = |cents: i64| Money::from_cents(cents);
    body.cart = (0..10)
        .map(|idx| CartLine {
            sku: format!("SKU-{idx:04}"),
            category: if idx % 2 == 0 {
                "meal.lunch"
            } else {
                "meal.snack"
            }
            .into(),
            unit_price: money(85 + 10 * idx),
            qty: 1 + (idx % 3) as u32,
        })
        .collect();
    body.inputs.benefits = (0..10)
        .map(|idx| BenefitRef {
            hash: Hash([idx as u8; 32]),
            id: format!("benefit-{idx}"),
        })
        .collect();
    body.inputs.history = (0..40)
        .map(|idx| HistoryEntry {
            at: format!("2026-03-{:02}T10:{:02}:00Z", 1 + idx % 20, idx)
                .parse()
                .expect("instant"),
            benefit: format!("benefit-{}", idx % 10),
            amount: money(50 + idx),
            count: 1,
        })
        .collect();
    body.quote.discounts = (0..10)
        .map(|idx| LineDiscount {
            line: idx,
            benefit: format!("benefit-{idx}"),
            provider: "riga".into(),
            amount: money(40),
        })
        .collect();
    body
}

/// A full packet (1000 typical records, chained), as central's bench uploads
/// it: its JSON on the wire.
fn packet_json(key: &SigningKey) -> Vec<u8> {
    let mut prev = Hash::GENESIS;
    let records: Vec<SignedRecord> = (1..=PACKET_RECORDS_MAX as u64)
        .map(|seq| {
            let mut body = typical();
            body.seq = seq;
            body.prev = prev;
            body.idempotency_key = format!("bench-{seq}");
            let record = SignedRecord::sign(body, key).expect("sign");
            prev = record.hash();
            record
        })
        .collect();
    let terminal = records[0].body.terminal.clone();
    let created_at = records[0].body.at;
    Packet::build(&terminal, records, created_at, key)
        .expect("packet")
        .to_json()
}

fn output_directory() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("criterion")
}

/// The median in nanoseconds of one benchmark measured by this run; `None`
/// when it was not measured since `started`, so no stale figure is printed.
fn median_nanos(dir: &Path, group: &str, name: &str, started: SystemTime) -> Option<f64> {
    let path = dir
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < started {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: Value = serde_json::from_str(&text).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn snapshot_header() -> SnapshotHeader {
    vectors::snapshot_full_parts().expect("header").0
}

/// 100,000 credential lines, as a terminal of a big school district gets.
fn credential_items() -> Vec<SnapshotItem> {
    (0..SNAPSHOT_LINES)
        .map(|idx| SnapshotItem::Credential {
            hash: Hash::of(&idx.to_le_bytes()).to_hex(),
            recipient: format!("R-{idx:07}"),
            status: if idx % 50 == 0 {
                CredentialStatus::Blocked
            } else {
                CredentialStatus::Active
            },
        })
        .collect()
}

/// Runs one operation `count` times, outside criterion (for callgrind).
fn repeat(operation: &str, count: usize) {
    let key = vectors::terminal_key().expect("key");
    let raw_pair = Ed25519KeyPair::from_seed_unchecked(&vectors::TERMINAL_SEED).expect("seed");
    let raw_public = UnparsedPublicKey::new(&ED25519, key.public_key().0);
    if operation == "packet_decode" {
        let json = packet_json(&key);
        for _ in 0..count {
            black_box(Packet::from_json(black_box(&json)).expect("decodes"));
        }
        return;
    }
    let (name, body) = match operation.rsplit_once('_') {
        Some((name, "typical")) => (name, typical()),
        Some((name, "large")) => (name, large()),
        _ => panic!("unknown operation {operation:?}"),
    };
    let record = SignedRecord::sign(body.clone(), &key).expect("sign");
    let canonical_body = record.canonical_body().to_vec();
    let json = record.to_json();
    for _ in 0..count {
        match name {
            "sign" => {
                black_box(SignedRecord::sign(black_box(body.clone()), &key).expect("sign"));
            }
            "raw_sign" => {
                black_box(raw_pair.sign(black_box(&canonical_body)));
            }
            "decode_and_verify" => {
                let decoded = SignedRecord::from_json(black_box(&json)).expect("decodes");
                decoded
                    .verify_signature(&key.public_key())
                    .expect("verifies");
            }
            "raw_verify" => {
                raw_public
                    .verify(black_box(&canonical_body), &record.sig.0)
                    .expect("verifies");
            }
            "clone" => {
                black_box(black_box(&body).clone());
            }
            _ => panic!("unknown operation {operation:?}"),
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var("WIRE_BENCH_REPEAT") {
        let (operation, count) = spec.split_once(':').expect("OPERATION:N");
        repeat(operation, count.parse().expect("a count"));
        return;
    }
    let started = SystemTime::now();
    let key = vectors::terminal_key().expect("key");
    let raw_pair = Ed25519KeyPair::from_seed_unchecked(&vectors::TERMINAL_SEED).expect("seed");
    let raw_public = UnparsedPublicKey::new(&ED25519, key.public_key().0);
    let central = vectors::central_key().expect("key");
    let central_keys = [central.public_key()];

    let dir = output_directory();
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    let mut sizes = Vec::new();
    for (name, body) in [("typical", typical()), ("large", large())] {
        let record = SignedRecord::sign(body.clone(), &key).expect("sign");
        let canonical_body = record.canonical_body().to_vec();
        let json = record.to_json();
        sizes.push((name, canonical_body.len(), json.len()));
        let mut group = criterion.benchmark_group(format!("record_{name}"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("sign", |b| {
            b.iter_batched(
                || body.clone(),
                |body| SignedRecord::sign(body, &key),
                BatchSize::SmallInput,
            )
        });
        group.bench_function("raw_ring_sign", |b| {
            b.iter(|| raw_pair.sign(black_box(&canonical_body)))
        });
        group.bench_function("decode_and_verify", |b| {
            b.iter(|| {
                let decoded = SignedRecord::from_json(black_box(&json)).expect("decodes");
                decoded
                    .verify_signature(&key.public_key())
                    .expect("verifies");
            })
        });
        group.bench_function("verify_decoded", |b| {
            b.iter(|| record.verify_signature(black_box(&key.public_key())))
        });
        group.bench_function("raw_ring_verify", |b| {
            b.iter(|| raw_public.verify(black_box(&canonical_body), &record.sig.0))
        });
        group.throughput(Throughput::Bytes(json.len() as u64));
        group.bench_function("encode_canonical_body", |b| {
            b.iter(|| canonical::to_vec(black_box(&body)))
        });
        group.bench_function("decode", |b| {
            b.iter(|| SignedRecord::from_json(black_box(&json)))
        });
        group.finish();
    }

    let packet = packet_json(&key);
    {
        let mut group = criterion.benchmark_group("packet_1000_records");
        group.sample_size(20);
        group.throughput(Throughput::Elements(PACKET_RECORDS_MAX as u64));
        group.bench_function("decode", |b| {
            b.iter(|| Packet::from_json(black_box(&packet)).expect("decodes"))
        });
        // Every record's signature, in batches as central checks them, on
        // one core: beside `record_*/raw_ring_verify` per record.
        let decoded = Packet::from_json(&packet).expect("decodes");
        let public = key.public_key();
        group.bench_function("verify_batched", |b| {
            b.iter(|| {
                for chunk in decoded.body.records.chunks(verify::BATCH) {
                    let valid = SignedRecord::verify_signatures(
                        black_box(chunk),
                        &public,
                        rand::thread_rng(),
                    );
                    assert!(valid.iter().all(|ok| *ok));
                }
            })
        });
        group.finish();
    }

    let items = credential_items();
    let snapshot_bytes =
        vectors::write_snapshot(&snapshot_header(), &items, &central).expect("write snapshot");
    {
        let mut group = criterion.benchmark_group("snapshot_100k_credentials");
        group.sample_size(10);
        group.throughput(Throughput::Bytes(snapshot_bytes.len() as u64));
        group.bench_function("write", |b| {
            b.iter(|| {
                let mut writer = SnapshotWriter::new(
                    Vec::with_capacity(snapshot_bytes.len()),
                    &snapshot_header(),
                )
                .expect("header");
                for item in &items {
                    writer.push(item).expect("item");
                }
                writer.finish(&central).expect("finish")
            })
        });
        group.bench_function("read_and_verify", |b| {
            b.iter(|| {
                let mut reader =
                    SnapshotReader::open(black_box(&snapshot_bytes[..]), &central_keys)
                        .expect("open");
                let mut n_items = 0usize;
                while reader.next_item().expect("item").is_some() {
                    n_items += 1;
                }
                reader.finish(&central_keys).expect("verified");
                assert_eq!(n_items, SNAPSHOT_LINES);
            })
        });
        group.finish();
    }
    criterion.final_summary();

    summary(&dir, started, &sizes, snapshot_bytes.len());
}

fn summary(dir: &Path, started: SystemTime, sizes: &[(&str, usize, usize)], snapshot_len: usize) {
    let rate = |nanos: f64| 1e9 / nanos;
    for (name, body_len, json_len) in sizes {
        let group = format!("record_{name}");
        let get = |bench: &str| median_nanos(dir, &group, bench, started);
        println!("summary {name} record: canonical body {body_len} B, on the wire {json_len} B");
        if let (Some(sign), Some(raw)) = (get("sign"), get("raw_ring_sign")) {
            let ratio = raw / sign;
            println!(
                "  sign:   {:>8.0} records/s ({:.1} µs) vs raw ring {:>8.0}/s ({:.1} µs): {:.0} % (goal ≥ {:.0} %: {})",
                rate(sign), sign / 1e3, rate(raw), raw / 1e3, ratio * 100.0, GOAL_RATIO * 100.0,
                if ratio >= GOAL_RATIO { "met" } else { "NOT met" }
            );
        }
        if let (Some(verify), Some(raw)) = (get("decode_and_verify"), get("raw_ring_verify")) {
            let ratio = raw / verify;
            println!(
                "  verify: {:>8.0} records/s ({:.1} µs, decode included) vs raw ring {:>8.0}/s ({:.1} µs): {:.0} % (goal ≥ {:.0} %: {})",
                rate(verify), verify / 1e3, rate(raw), raw / 1e3, ratio * 100.0, GOAL_RATIO * 100.0,
                if ratio >= GOAL_RATIO { "met" } else { "NOT met" }
            );
        }
        if let Some(verify) = get("verify_decoded") {
            println!(
                "  verify an already decoded record: {:>8.0} records/s ({:.1} µs)",
                rate(verify),
                verify / 1e3
            );
        }
        if let Some(encode) = get("encode_canonical_body") {
            println!(
                "  encode: {:>8.0} records/s, {:.0} MB/s",
                rate(encode),
                *body_len as f64 / encode * 1e3
            );
        }
        if let Some(decode) = get("decode") {
            println!(
                "  decode: {:>8.0} records/s, {:.0} MB/s",
                rate(decode),
                *json_len as f64 / decode * 1e3
            );
        }
    }
    if let Some(nanos) = median_nanos(dir, "packet_1000_records", "decode", started) {
        println!(
            "summary packet of {PACKET_RECORDS_MAX} typical records: decode {:.2} ms, {:.2} µs per record, {:.0} records/s",
            nanos / 1e6,
            nanos / 1e3 / PACKET_RECORDS_MAX as f64,
            PACKET_RECORDS_MAX as f64 / nanos * 1e9
        );
    }
    let group = "snapshot_100k_credentials";
    for bench in ["write", "read_and_verify"] {
        if let Some(nanos) = median_nanos(dir, group, bench, started) {
            println!(
                "summary snapshot {bench}: {SNAPSHOT_LINES} credential lines ({:.1} MB) in {:.0} ms: {:.0} lines/s, {:.0} MB/s",
                snapshot_len as f64 / 1e6,
                nanos / 1e6,
                SNAPSHOT_LINES as f64 / nanos * 1e9,
                snapshot_len as f64 / nanos * 1e3
            );
        }
    }
}
