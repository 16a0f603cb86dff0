//! Fuzzes signed records (SignedRecord::from_json), and record bodies signed
//! with the test key.
//! Never panics unless a property of `shared::wire::harness::record` fails.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::wire::harness::record(data);
});
