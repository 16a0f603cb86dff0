//! Fuzzes packets (Packet::from_json), re-encoded, verified and rebuilt.
//! Never panics unless a property of `shared::wire::harness::packet` fails.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::wire::harness::packet(data);
});
