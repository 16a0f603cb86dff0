//! Fuzzes full snapshots (SnapshotReader), as sent and re-signed with the
//! test central key; seeded with full snapshots.
//! Never panics unless a property of `shared::wire::harness::snapshot` fails.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::wire::harness::snapshot(data);
});
