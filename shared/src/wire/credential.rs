//! Keyed hashes of credentials: terminals and snapshots never hold a raw
//! card number, eID serial or token, only `HMAC-SHA256(key, kind ":" id)`.
//!
//! The key is issued by central at enrolment and named by a key id, so it
//! can be rotated. `id` is normalised first (see [`normalise_id`]) so that
//! the same card read by two readers hashes the same.

use ring::hmac;

use super::record::CredentialKind;

/// Uppercase hex for card UIDs (readers disagree on case and separators);
/// other kinds are used as given, trimmed.
pub fn normalise_id(kind: CredentialKind, id: &str) -> String {
    match kind {
        CredentialKind::Card | CredentialKind::ResidentCard => id
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect(),
        _ => id.trim().to_owned(),
    }
}

/// `hex(HMAC-SHA256(key, kind ":" normalised id))`, 64 lowercase characters.
pub fn credential_hash(key: &[u8], kind: CredentialKind, id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let mut message = Vec::with_capacity(id.len() + 16);
    message.extend_from_slice(kind.as_str().as_bytes());
    message.push(b':');
    message.extend_from_slice(normalise_id(kind, id).as_bytes());
    hex::encode(hmac::sign(&key, &message).as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_card_any_notation_same_hash() {
        let key = b"test credential key";
        let a = credential_hash(key, CredentialKind::Card, "04:a2:2b:1c");
        let b = credential_hash(key, CredentialKind::Card, "04A22B1C");
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
        assert_ne!(
            a,
            credential_hash(key, CredentialKind::Eid, "04A22B1C"),
            "kind is part of the hash"
        );
        assert_ne!(
            a,
            credential_hash(b"other key", CredentialKind::Card, "04A22B1C")
        );
    }
}
