//! Fuzzes QR tokens (qr::decode), as sent and with the payload re-signed by
//! the test central key.
//! Never panics unless a property of `shared::wire::harness::qr` fails.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = shared::wire::harness::qr(data);
});
