//! Ed25519 keys (signing with ring; verification in [`super::verify`]),
//! key ids and SHA-256 hashes.
//!
//! A key id is the first 8 bytes of SHA-256 of the 32-byte public key, in
//! lowercase hex (16 characters): short enough for headers, and it names
//! the key without trusting the sender.

use std::fmt;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{WireError, WireErrorKind};

/// A SHA-256 digest; lowercase hex (64 characters) on the wire.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; 32]);

impl Hash {
    /// The `prev` of a terminal's first record: 32 zero bytes.
    pub const GENESIS: Hash = Hash([0; 32]);

    pub fn of(bytes: &[u8]) -> Hash {
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(digest.as_ref());
        Hash(out)
    }

    pub fn to_hex(&self) -> String {
        // Same digits as `hex::encode`, without its per-character iterator:
        // ingestion formats two hashes per record.
        let mut out = String::with_capacity(64);
        for digit in self.hex_digits() {
            out.push(char::from(digit));
        }
        out
    }

    pub fn from_hex(text: &str) -> Result<Hash, WireError> {
        let malformed = || {
            WireError::new(
                "",
                WireErrorKind::Malformed(format!("{text:?} is not 64 lowercase hex digits")),
            )
        };
        if text.len() != 64 || text.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out).map_err(|_| malformed())?;
        Ok(Hash(out))
    }
}

impl Hash {
    /// Lowercase hex into a stack buffer: hashes are formatted on every
    /// record encoding, so without allocating.
    fn hex_digits(&self) -> [u8; 64] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 64];
        for (idx, byte) in self.0.iter().enumerate() {
            out[2 * idx] = HEX[usize::from(byte >> 4)];
            out[2 * idx + 1] = HEX[usize::from(byte & 0xf)];
        }
        out
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.hex_digits();
        // Hex digits are ASCII, so this never fails.
        f.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
    }
}

impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Hash::from_hex(&text).map_err(|err| serde::de::Error::custom(err.kind))
    }
}

/// An Ed25519 signature; base64url without padding (86 characters) on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }
    pub fn from_base64(text: &str) -> Result<Signature, WireError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| {
                WireError::new(
                    "",
                    WireErrorKind::Malformed("signature is not base64url".into()),
                )
            })?;
        let array: [u8; 64] = bytes.try_into().map_err(|_| {
            WireError::new(
                "",
                WireErrorKind::Malformed("signature is not 64 bytes".into()),
            )
        })?;
        Ok(Signature(array))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_base64())
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Signature, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Signature::from_base64(&text).map_err(|err| serde::de::Error::custom(err.kind))
    }
}

/// An Ed25519 public key; base64url without padding (43 characters) on the wire.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    pub fn key_id(&self) -> String {
        hex::encode(&Hash::of(&self.0).0[..8])
    }
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0)
    }
    pub fn from_base64(text: &str) -> Result<PublicKey, WireError> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| {
                WireError::new(
                    "",
                    WireErrorKind::Malformed("public key is not base64url".into()),
                )
            })?;
        let array: [u8; 32] = bytes.try_into().map_err(|_| {
            WireError::new(
                "",
                WireErrorKind::Malformed("public key is not 32 bytes".into()),
            )
        })?;
        Ok(PublicKey(array))
    }
    /// Verifies `signature` over `message` (the rules are in [`super::verify`]).
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), WireError> {
        if super::verify::verify_one(self, message, signature) {
            Ok(())
        } else {
            Err(WireError::new("", WireErrorKind::BadSignature))
        }
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_base64())
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        PublicKey::from_base64(&text).map_err(|err| serde::de::Error::custom(err.kind))
    }
}

/// A private Ed25519 key. Stored as PKCS#8 v2 DER (what ring generates).
/// `Debug` never prints the secret.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl SigningKey {
    /// A new random key, returned with its PKCS#8 bytes for storage.
    pub fn generate(
        rng: &dyn ring::rand::SecureRandom,
    ) -> Result<(SigningKey, Vec<u8>), WireError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(rng).map_err(|_| {
            WireError::new("", WireErrorKind::Invalid("key generation failed".into()))
        })?;
        let key = SigningKey::from_pkcs8(pkcs8.as_ref())?;
        Ok((key, pkcs8.as_ref().to_vec()))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<SigningKey, WireError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8).map_err(|err| {
            WireError::new(
                "",
                WireErrorKind::Malformed(format!("not an Ed25519 PKCS#8 key: {err}")),
            )
        })?;
        Ok(SigningKey::from_pair(pair))
    }

    /// A key from a 32-byte seed: for published test keys only.
    pub fn from_seed(seed: &[u8; 32]) -> Result<SigningKey, WireError> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|_| WireError::new("", WireErrorKind::Malformed("bad Ed25519 seed".into())))?;
        Ok(SigningKey::from_pair(pair))
    }

    fn from_pair(pair: Ed25519KeyPair) -> SigningKey {
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        SigningKey {
            pair,
            public: PublicKey(public),
        }
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    pub fn key_id(&self) -> String {
        self.public.key_id()
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.pair.sign(message).as_ref());
        Signature(out)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, secret redacted)", self.key_id())
    }
}
