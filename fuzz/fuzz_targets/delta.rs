//! Fuzzes snapshot deltas: the snapshot checks, seeded with deltas so that
//! mutations explore delta headers and removal items.
//! Never panics unless a property of `shared::wire::harness::snapshot` fails.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::wire::harness::snapshot(data);
});
