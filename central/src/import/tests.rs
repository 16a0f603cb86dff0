//! Unit tests of `import`.
