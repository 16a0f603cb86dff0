//! Unit tests of `snapshot`.
