//! The fuzz properties on stable Rust, in bounded time: every decoder over
//! the vector files (valid and invalid) and thousands of deterministic
//! mutations of them, through the same checks the cargo-fuzz targets run
//! (`shared::wire::harness`). A decoder must never panic, and what it
//! accepts must re-encode to the canonical form of its input.
//!
//! Mutations come from a fixed-seed generator, so a failure is
//! reproducible: the message names the seed file and the mutation number.
//! `WIRE_FUZZ_MUTATIONS` raises the count per decoder (default 3,000).

use std::path::Path;

use shared::mix::SplitMix64 as Mix;
use shared::wire::keys::PublicKey;
use shared::wire::packet::Packet;
use shared::wire::record::SignedRecord;
use shared::wire::{harness, qr, snapshot, vectors};

/// Bytes that make decoders take unusual paths.
const TOKENS: [&[u8]; 16] = [
    b"\"",
    b"\\",
    b"\\u0000",
    b"{}",
    b"[]",
    b"null",
    b"1.0",
    b"-0",
    b"9007199254740992",
    b"\n",
    b",",
    b":",
    b"\"v\":2",
    b"\"t\":\"end\"",
    b"\xff",
    b"\"2.5\"",
];

fn mutate(rng: &mut Mix, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.index(seeds.len())].clone();
    // Mostly one change, so that many mutants stay close to valid.
    let n_changes = if rng.index(3) == 0 {
        2 + rng.index(3)
    } else {
        1
    };
    for _ in 0..n_changes {
        let len = data.len();
        match rng.index(7) {
            0 if len > 0 => {
                let at = rng.index(len);
                data[at] ^= 1 << rng.index(8);
            }
            1 if len > 0 => {
                let at = rng.index(len);
                data[at] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let at = rng.index(len);
                let n = 1 + rng.index(16.min(len - at));
                data.drain(at..at + n);
            }
            3 => {
                let at = rng.index(len + 1);
                let token = TOKENS[rng.index(TOKENS.len())];
                data.splice(at..at, token.iter().copied());
            }
            4 => data.truncate(rng.index(len + 1)),
            5 if len > 0 => {
                // Duplicate a slice in place: repeated members, lines, records.
                let from = rng.index(len);
                let n = 1 + rng.index(64.min(len - from));
                let piece = data[from..from + n].to_vec();
                let at = rng.index(len + 1);
                data.splice(at..at, piece);
            }
            _ => {
                // Splice in a piece of another seed.
                let other = &seeds[rng.index(seeds.len())];
                if !other.is_empty() {
                    let from = rng.index(other.len());
                    let n = 1 + rng.index(64.min(other.len() - from));
                    let at = rng.index(len + 1);
                    data.splice(at..at, other[from..from + n].iter().copied());
                }
            }
        }
    }
    data
}

fn seeds(prefixes: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors");
    let mut out = Vec::new();
    for sub in ["", "invalid"] {
        for entry in std::fs::read_dir(dir.join(sub)).expect("vectors directory") {
            let path = entry.expect("entry").path();
            let name = path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            if prefixes.iter().any(|prefix| name.starts_with(prefix)) && !name.ends_with(".error") {
                out.push((name, std::fs::read(&path).expect("read seed")));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty(), "no seeds for {prefixes:?}");
    out
}

fn mutations() -> usize {
    std::env::var("WIRE_FUZZ_MUTATIONS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(3_000)
}

/// Runs `check` over the seeds and their mutations. Some mutations must be
/// accepted: otherwise the re-encoding properties were never exercised.
fn run(name: &str, prefixes: &[&str], check: fn(&[u8]) -> bool, seed: u64) {
    let named = seeds(prefixes);
    for (file, bytes) in &named {
        let result = std::panic::catch_unwind(|| check(bytes));
        assert!(result.is_ok(), "{name}: seed {file} fails its property");
    }
    let seed_bytes: Vec<Vec<u8>> = named.into_iter().map(|(_, bytes)| bytes).collect();
    let mut rng = Mix(seed);
    let mut n_accepted = 0usize;
    let n_mutations = mutations();
    for idx in 0..n_mutations {
        let data = mutate(&mut rng, &seed_bytes);
        let result = std::panic::catch_unwind(|| check(&data));
        n_accepted += usize::from(matches!(result, Ok(true)));
        assert!(
            result.is_ok(),
            "{name}: mutation {idx} (generator seed {seed}) fails; input: {:?}",
            String::from_utf8_lossy(&data)
        );
    }
    eprintln!("{name}: {n_accepted} of {n_mutations} mutations accepted");
    assert!(
        n_accepted * 200 >= n_mutations,
        "{name}: only {n_accepted} of {n_mutations} mutations accepted (under 0.5 %)"
    );
}

#[test]
fn record_decoder() {
    run("record", &["record-", "chain-"], harness::record, 1);
}

#[test]
fn packet_decoder() {
    run("packet", &["packet-"], harness::packet, 2);
}

#[test]
fn snapshot_decoder() {
    run("snapshot", &["snapshot-full"], harness::snapshot, 3);
}

#[test]
fn delta_decoder() {
    run("delta", &["snapshot-delta"], harness::snapshot, 4);
}

#[test]
fn qr_decoder() {
    run("qr", &["qr-"], harness::qr, 5);
}

fn central() -> [PublicKey; 1] {
    [vectors::central_key().expect("key").public_key()]
}

/// The harness is not vacuous: it reaches acceptance (and so the
/// re-encoding assertions) for the valid seeds.
#[test]
fn harness_reaches_acceptance_on_valid_inputs() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors");
    let read = |name: &str| std::fs::read(dir.join(name)).expect("read");
    assert!(SignedRecord::from_json(&read("record-1.json")).is_ok());
    assert!(Packet::from_json(&read("packet-1.json")).is_ok());
    assert!(snapshot::read_all(&read("snapshot-delta.ndjson")[..], &central()).is_ok());
    let token = String::from_utf8(read("qr-valid.txt")).expect("UTF-8");
    let now = vectors::qr_now().expect("now");
    assert!(qr::decode(&token, &central(), now).is_ok());
}
