//! Unit tests of `ingest`.
