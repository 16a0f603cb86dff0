//! The one error type of every wire decoder: what is wrong, and where.

use std::fmt;

/// A decoding or verification failure, with the path of the offending field
/// (`records[3].quote.total`) or the line of a snapshot (`line 17`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WireError {
    /// Where: a field path, `line N`, or empty for the whole input.
    pub at: String,
    pub kind: WireErrorKind,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{}: {}", self.at, self.kind)
        }
    }
}

impl WireError {
    pub fn new(at: impl Into<String>, kind: WireErrorKind) -> WireError {
        WireError {
            at: at.into(),
            kind,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireErrorKind {
    #[error("malformed: {0}")]
    Malformed(String),
    #[error("unsupported version {0}")]
    UnsupportedVersion(u64),
    #[error("not in canonical form (re-encoding differs from the signed bytes)")]
    NotCanonical,
    #[error("missing signature")]
    Unsigned,
    #[error("bad signature")]
    BadSignature,
    #[error("signed by unknown key {0}")]
    UnknownKey(String),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("out of order: {0}")]
    OutOfOrder(String),
    #[error("expired at {0}")]
    Expired(String),
    #[error("too large: {0}")]
    TooLarge(String),
    #[error("{0}")]
    Invalid(String),
}

/// `prefix` joined to a serde field path, whose root is written `.`:
/// `path_at("body", records[1].seq)` is `body.records[1].seq`.
pub(crate) fn path_at(prefix: &str, path: &serde_path_to_error::Path) -> String {
    let path = path.to_string();
    match (prefix.is_empty(), path == "." || path.is_empty()) {
        (_, true) => prefix.to_owned(),
        (true, false) => path,
        (false, false) => format!("{prefix}.{path}"),
    }
}
