//! Wire formats: everything that crosses between a terminal and central,
//! and the cryptography that makes it trustworthy. Specified for other
//! vendors in `docs/wire.md`, with vectors in `docs/vectors/`.
//!
//! - [`canonical`]: canonical JSON (RFC 8785 subset) — the bytes that are hashed and signed.
//! - [`keys`]: Ed25519 keys (signing with ring), key ids, SHA-256 hashes.
//! - [`verify`]: Ed25519 verification, single and batched, with one set of rules.
//! - [`record`]: the signed, hash-chained transaction record.
//! - [`packet`]: a signed run of one terminal's records (terminal → central).
//! - [`chain`]: verification of records, packets and chains (gaps, forks).
//! - [`snapshot`]: signed full snapshots and deltas (central → terminal).
//! - [`qr`]: short-lived signed QR / phone tokens, verifiable offline.
//! - [`credential`]: keyed hashes of credentials (no raw card numbers on terminals).
//! - [`auth`]: signed HTTP requests from terminals.
//! - [`harness`]: property checks of every decoder, for fuzzing.
//! - [`vectors`]: the inputs of the published test vectors (test keys only).
//!
//! **API boundary**: agent and central ship separately, and other vendors'
//! terminals speak these formats. Every change is versioned (`v` field).

pub mod auth;
pub mod canonical;
pub mod chain;
pub mod credential;
pub mod harness;
pub mod keys;
pub mod packet;
pub mod qr;
pub mod record;
pub mod snapshot;
pub mod vectors;
pub mod verify;

mod error;
pub use error::{WireError, WireErrorKind};
