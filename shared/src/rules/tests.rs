//! Unit tests of the engine beyond the shared vectors.
