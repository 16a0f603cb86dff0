//! The published test vectors (`docs/vectors/`) against the code: every
//! file is rebuilt from its inputs byte for byte, every invalid one fails
//! with exactly the error in its `.error` file, and the records' quotes are
//! what the engine gives on the records' own inputs.
//!
//! When a wire format changes on purpose, regenerate with
//! `cargo run -p shared --bin make-vectors -- docs/vectors`, review the diff
//! (every changed byte is a change for other vendors), and bump `v`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use shared::model::Benefit;
use shared::rules::{evaluate, QuoteInput};
use shared::wire::record::benefit_hash;
use shared::wire::snapshot::{read_all, SnapshotItem};
use shared::wire::vectors;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/vectors")
}

fn read(name: &str) -> Vec<u8> {
    let path = vectors_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("reading {}: {err}", path.display()))
}

/// Files in the directory that are neither vectors nor their `.error`
/// sidecars.
const DOCUMENTATION: [&str; 3] = [".gitattributes", "README.md", "check.py"];

#[test]
fn every_vector_is_rebuilt_byte_for_byte() {
    let files = vectors::files().expect("vectors build");
    let mut mismatched = Vec::new();
    for file in &files {
        if read(&file.name) != file.bytes {
            mismatched.push(file.name.clone());
        }
    }
    assert!(
        mismatched.is_empty(),
        "these files differ from what the code builds (regenerate with make-vectors and review): {mismatched:?}"
    );
}

#[test]
fn no_stale_or_unexplained_files() {
    let built: BTreeSet<String> = vectors::files()
        .expect("vectors build")
        .into_iter()
        .map(|file| file.name)
        .collect();
    let mut on_disk = BTreeSet::new();
    for dir in ["", "invalid"] {
        for entry in std::fs::read_dir(vectors_dir().join(dir)).expect("vectors directory") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                on_disk.insert(if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                });
            }
        }
    }
    for name in &on_disk {
        let explained = built.contains(name)
            || DOCUMENTATION.contains(&name.as_str())
            || name
                .strip_suffix(".error")
                .is_some_and(|vector| built.contains(vector));
        assert!(explained, "{name} is not built by vectors::files()");
    }
}

#[test]
fn valid_vectors_verify_and_invalid_ones_fail_as_documented() {
    for file in vectors::files().expect("vectors build") {
        let bytes = read(&file.name);
        let report = vectors::check(&file.name, &bytes).expect("check runs");
        if file.name.starts_with("invalid/") {
            let expected = String::from_utf8(read(&format!("{}.error", file.name))).expect("UTF-8");
            let expected: Vec<&str> = expected.lines().collect();
            assert_eq!(report, expected, "{}", file.name);
        } else {
            assert_eq!(report, Vec::<String>::new(), "{} must verify", file.name);
        }
    }
}

#[test]
fn every_invalid_vector_has_its_expected_error_documented() {
    let readme = String::from_utf8(read("README.md")).expect("UTF-8");
    for file in vectors::files().expect("vectors build") {
        if let Some(name) = file.name.strip_prefix("invalid/") {
            assert!(readme.contains(name), "README.md does not list {name}");
        }
    }
}

/// Central re-runs the engine on a record's own inputs: the vectors must
/// pass that check too, or they would teach vendors a wrong quote.
#[test]
fn vector_quotes_are_what_the_engine_gives() {
    let (_, snapshot_items) = read_all(
        &read("snapshot-full.ndjson")[..],
        &[vectors::central_key().expect("key").public_key()],
    )
    .expect("full snapshot verifies");
    let benefits: Vec<Benefit> = snapshot_items
        .into_iter()
        .filter_map(|item| match item {
            SnapshotItem::Benefit { benefit } => Some(benefit),
            _ => None,
        })
        .collect();
    for record in vectors::records().expect("records") {
        let inputs = &record.body.inputs;
        let named: Vec<Benefit> = inputs
            .benefits
            .iter()
            .map(|reference| {
                let benefit = benefits
                    .iter()
                    .find(|benefit| benefit.id == reference.id)
                    .expect("benefit in the snapshot");
                assert_eq!(benefit_hash(benefit).expect("hash"), reference.hash);
                benefit.clone()
            })
            .collect();
        let quote = evaluate(&QuoteInput {
            benefits: &named,
            grants: &inputs.entitlements,
            memberships: &[],
            history: &inputs.history,
            cart: &record.body.cart,
            now: record.body.at,
        });
        assert_eq!(quote, record.body.quote, "record seq {}", record.body.seq);
        assert!(record.body.local_time_agrees(), "seq {}", record.body.seq);
    }
}

#[test]
fn usage_in_the_snapshot_is_the_history_in_record_1() {
    let zone = shared::model::Zone::get("Europe/Riga").expect("zone");
    let usage = vectors::central_usage().expect("usage");
    let history: Vec<_> = usage
        .iter()
        .map(|day| day.to_history(&zone).expect("history"))
        .collect();
    let record_1 = &vectors::records().expect("records")[0];
    assert_eq!(history, record_1.body.inputs.history);
}
