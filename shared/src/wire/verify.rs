//! Ed25519 signature verification: what counts as a valid signature, one
//! at a time and in batches.
//!
//! Signing stays with ring ([`super::keys::SigningKey`]). Verification is
//! here because ring verifies one signature at a time, and central spends
//! most of its ingestion CPU verifying: checking a packet's records as one
//! batch costs about a fifth of checking them one by one.
//!
//! A batch may only ever accept what a single check accepts, or a terminal
//! could sign records that central takes and an auditor's verifier refuses.
//! The two agree only with the cofactored equation (ZIP 215), so both use
//! it, on top of RFC 8032's encoding rules:
//!
//! - `S` is canonical (below the group order ℓ);
//! - `A` and `R` are canonical encodings (y below p, no x = 0 with the
//!   sign bit set);
//! - `A` is not of small order (such a key lets anyone sign);
//! - `[8][S]B = [8]R + [8][k]A` with `k = SHA-512(R || A || M)`, which is
//!   the group equation RFC 8032 §5.1.7 states. Every RFC 8032 signer (ring
//!   here) produces signatures that also satisfy the unmultiplied equation,
//!   so this refuses nothing an honest signer makes; it differs from a
//!   cofactorless verifier only on signatures crafted by the key's owner.
//!
//! `docs/wire.md` states the same rules for other vendors.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use ed25519_zebra::batch;
use ed25519_zebra::VerificationKeyBytes;
use rand_core::{CryptoRng, RngCore};

use super::keys::{PublicKey, Signature};

/// Records per signature batch, as central checks a packet: large enough
/// that a batch costs about a fifth of single checks, small enough that a
/// packet of 1,000 still spreads over every core.
pub const BATCH: usize = 128;

/// One signature to check: who signed, what, and the signature.
#[derive(Clone, Copy, Debug)]
pub struct Signed<'a> {
    pub key: &'a PublicKey,
    pub message: &'a [u8],
    pub signature: &'a Signature,
}

/// Whether `signature` is valid for `message` under `key` (the rules in the
/// module documentation). Written out on curve25519-dalek, rather than
/// through ed25519-zebra's single check, so that the key is decompressed
/// once for both the small-order check and the equation: this is the path
/// of every packet signature and of the agent's checks.
pub fn verify_one(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
    let Some(a) = decode_key(key) else {
        return false;
    };
    let r_bytes = r_part(signature);
    if !canonical_point(&r_bytes) {
        return false;
    }
    let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
        return false;
    };
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&signature.0[32..]);
    let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
        return false;
    };
    let mut hash = ring::digest::Context::new(&ring::digest::SHA512);
    hash.update(&r_bytes);
    hash.update(&key.0);
    hash.update(message);
    let mut wide = [0u8; 64];
    wide.copy_from_slice(hash.finish().as_ref());
    let k = Scalar::from_bytes_mod_order_wide(&wide);
    // [S]B − [k]A, compared with R up to a small-order difference.
    let expected_r = EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &(-a), &s);
    (expected_r - r).mul_by_cofactor().is_identity()
}

/// Checks every item; `true` where [`verify_one`] would say `true`.
///
/// All items are checked together first, each term weighted by a random
/// 128-bit scalar from `rng`, so that a signer cannot arrange for errors to
/// cancel out: a batch holding an invalid signature passes with probability
/// at most 2^-128. Only when the batch fails is each one checked alone, to
/// name the invalid ones; the cost is then that of the single checks on
/// top, which only a faulty or hostile terminal causes.
pub fn verify_batch<R: RngCore + CryptoRng>(items: &[Signed<'_>], rng: R) -> Vec<bool> {
    let mut valid = vec![true; items.len()];
    // Items usually share one key: each distinct key is checked once.
    let mut keys_seen: Vec<(&PublicKey, bool)> = Vec::new();
    let mut batch = batch::Verifier::new();
    let mut queued = 0usize;
    for (idx, item) in items.iter().enumerate() {
        let key_ok = match keys_seen.iter().find(|(key, _)| *key == item.key) {
            Some((_, ok)) => *ok,
            None => {
                let ok = acceptable_key(item.key);
                keys_seen.push((item.key, ok));
                ok
            }
        };
        if !key_ok || !canonical_point(&r_part(item.signature)) {
            valid[idx] = false;
            continue;
        }
        batch.queue((
            VerificationKeyBytes::from(item.key.0),
            ed25519_zebra::Signature::from(item.signature.0),
            item.message,
        ));
        queued += 1;
    }
    if queued == 0 || batch.verify(rng).is_ok() {
        return valid;
    }
    for (idx, item) in items.iter().enumerate() {
        if valid[idx] {
            valid[idx] = verify_one(item.key, item.message, item.signature);
        }
    }
    valid
}

/// A key signatures may be checked against: a canonical encoding of a
/// point of the curve that is not of small order.
pub fn acceptable_key(key: &PublicKey) -> bool {
    decode_key(key).is_some()
}

/// The key's point, when it is [acceptable](acceptable_key).
fn decode_key(key: &PublicKey) -> Option<EdwardsPoint> {
    if !canonical_point(&key.0) {
        return None;
    }
    CompressedEdwardsY(key.0)
        .decompress()
        .filter(|point| !point.is_small_order())
}

/// The first half of a signature: the encoded point `R`.
fn r_part(signature: &Signature) -> [u8; 32] {
    let mut r = [0u8; 32];
    r.copy_from_slice(&signature.0[..32]);
    r
}

/// Whether 32 bytes are the canonical encoding of a curve point's
/// coordinates (RFC 8032 §5.1.3): `y < p = 2^255 - 19`, and not `x = 0`
/// (which only `y = 1` and `y = p - 1` have) with the sign bit set.
/// Decompression itself is left to the caller.
pub fn canonical_point(bytes: &[u8; 32]) -> bool {
    let sign = bytes[31] >> 7;
    let mut y = *bytes;
    y[31] &= 0x7f;
    let top_all_ones = y[1..31].iter().all(|&b| b == 0xff) && y[31] == 0x7f;
    // y ≥ p: every byte but the lowest at its maximum and the lowest ≥ 0xed.
    if top_all_ones && y[0] >= 0xed {
        return false;
    }
    if sign == 1 {
        let y_is_one = y[0] == 1 && y[1..].iter().all(|&b| b == 0);
        let y_is_p_minus_one = top_all_ones && y[0] == 0xec;
        if y_is_one || y_is_p_minus_one {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::keys::SigningKey;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed(&[seed; 32]).expect("test seed")
    }

    #[test]
    fn canonical_encodings() {
        let mut p = [0xffu8; 32];
        p[0] = 0xed;
        p[31] = 0x7f;
        assert!(!canonical_point(&p), "y = p");
        let mut p_minus_one = p;
        p_minus_one[0] = 0xec;
        assert!(
            canonical_point(&p_minus_one),
            "y = p - 1, x = 0, sign clear"
        );
        p_minus_one[31] |= 0x80;
        assert!(
            !canonical_point(&p_minus_one),
            "y = p - 1 with the sign bit"
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        assert!(canonical_point(&one), "the neutral point");
        one[31] = 0x80;
        assert!(
            !canonical_point(&one),
            "the neutral point with the sign bit"
        );
        let mut max = [0xffu8; 32];
        assert!(!canonical_point(&max), "y = 2^255 - 1");
        max[31] = 0x7f;
        assert!(!canonical_point(&max), "y = 2^255 - 1, sign clear");
        assert!(canonical_point(&key(1).public_key().0), "a real key");
    }

    #[test]
    fn small_order_keys_are_refused() {
        let mut neutral = [0u8; 32];
        neutral[0] = 1;
        assert!(!acceptable_key(&PublicKey(neutral)));
        // (0, -1): order 2.
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        assert!(!acceptable_key(&PublicKey(minus_one)));
        assert!(acceptable_key(&key(7).public_key()));
        // With the neutral point as key, `S·B = R` is a valid signature of
        // anything; it must not verify.
        let forged = Signature([0u8; 64]);
        let mut forged_r = forged;
        forged_r.0[0] = 1;
        assert!(!verify_one(&PublicKey(neutral), b"anything", &forged_r));
    }

    #[test]
    fn batch_agrees_with_single_checks() {
        let keys = [key(1), key(2)];
        let messages: Vec<Vec<u8>> = (0..40).map(|i| format!("m{i}").into_bytes()).collect();
        let mut signatures: Vec<Signature> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| keys[i % 2].sign(m))
            .collect();
        let publics = [keys[0].public_key(), keys[1].public_key()];
        // Damage: a flipped bit in S, a signature by the other key, a
        // non-canonical S (S + ℓ), a non-canonical R.
        signatures[3].0[40] ^= 1;
        signatures[10] = keys[1].sign(&messages[10]);
        let ell: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let mut carry = 0u16;
        for (i, byte) in ell.iter().enumerate() {
            let sum = u16::from(signatures[17].0[32 + i]) + u16::from(*byte) + carry;
            signatures[17].0[32 + i] = sum as u8;
            carry = sum >> 8;
        }
        signatures[25].0[..32].copy_from_slice(&[0xff; 32]);
        let items: Vec<Signed<'_>> = messages
            .iter()
            .zip(&signatures)
            .enumerate()
            .map(|(i, (message, signature))| Signed {
                key: &publics[i % 2],
                message,
                signature,
            })
            .collect();
        let batch = verify_batch(&items, rand::thread_rng());
        let single: Vec<bool> = items
            .iter()
            .map(|item| verify_one(item.key, item.message, item.signature))
            .collect();
        assert_eq!(batch, single);
        let invalid: Vec<usize> = (0..items.len()).filter(|&i| !batch[i]).collect();
        assert_eq!(invalid, vec![3, 10, 17, 25]);
        // Each damage alone among valid signatures: the batch equation
        // itself must refuse it (above, the others would fail it anyway).
        for bad in [3, 10, 17, 25] {
            let mut alone: Vec<Signed<'_>> = items[..3].to_vec();
            alone.push(items[bad]);
            assert_eq!(
                verify_batch(&alone, rand::thread_rng()),
                vec![true, true, true, false],
                "damage at {bad}"
            );
        }
        // And all valid: nothing refused.
        let good: Vec<Signed<'_>> = items
            .iter()
            .enumerate()
            .filter(|(i, _)| ![3, 10, 17, 25].contains(i))
            .map(|(_, item)| *item)
            .collect();
        assert!(verify_batch(&good, rand::thread_rng()).iter().all(|ok| *ok));
        assert!(verify_batch(&[], rand::thread_rng()).is_empty());
    }

    fn ring_accepts(key: &PublicKey, message: &[u8], signature: &Signature) -> bool {
        ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.0)
            .verify(message, &signature.0)
            .is_ok()
    }

    proptest::proptest! {
        /// On everything but signatures crafted with a small-order part,
        /// the rules agree with ring's: honest signatures, and honest ones
        /// with any one bit flipped (in `R`, `S` or the message).
        #[test]
        fn agrees_with_ring_on_honest_and_damaged_signatures(
            seed in proptest::array::uniform32(proptest::prelude::any::<u8>()),
            message in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            flip in proptest::option::of(0usize..(64 * 8 + 8)),
        ) {
            let signer = SigningKey::from_seed(&seed).expect("seed");
            let public = signer.public_key();
            let mut signature = signer.sign(&message);
            let mut message = message;
            match flip {
                Some(bit) if bit < 512 => signature.0[bit / 8] ^= 1 << (bit % 8),
                Some(bit) if !message.is_empty() => {
                    let at = (bit - 512) % message.len();
                    message[at] ^= 1 << (bit % 8);
                }
                _ => {}
            }
            let ours = verify_one(&public, &message, &signature);
            proptest::prop_assert_eq!(ours, ring_accepts(&public, &message, &signature));
            proptest::prop_assert_eq!(ours, flip.is_none() || (flip.is_some_and(|bit| bit >= 512) && message.is_empty()));
            let batch = verify_batch(
                &[Signed { key: &public, message: &message, signature: &signature }],
                rand::thread_rng(),
            );
            proptest::prop_assert_eq!(batch, vec![ours]);
        }
    }

    /// A signature whose `R` carries a small-order component satisfies the
    /// cofactored equation only. Only the key's owner can make one; single
    /// and batch checks must judge it alike (here: valid, as RFC 8032's
    /// group equation does), where a cofactorless verifier such as ring's
    /// refuses it.
    #[test]
    fn torsion_in_r_is_judged_alike() {
        use curve25519_dalek::constants::EIGHT_TORSION;
        use curve25519_dalek::edwards::EdwardsPoint;
        use curve25519_dalek::scalar::{clamp_integer, Scalar};

        let seed = [9u8; 32];
        let signer = SigningKey::from_seed(&seed).expect("test seed");
        let public = signer.public_key();
        let expanded = ring::digest::digest(&ring::digest::SHA512, &seed);
        let mut low = [0u8; 32];
        low.copy_from_slice(&expanded.as_ref()[..32]);
        let secret = Scalar::from_bytes_mod_order(clamp_integer(low));
        assert_eq!(EdwardsPoint::mul_base(&secret).compress().0, public.0);

        let message = b"record";
        let nonce = Scalar::from(123_456_789u64);
        let r = (EdwardsPoint::mul_base(&nonce) + EIGHT_TORSION[1]).compress();
        let mut context = Vec::new();
        context.extend_from_slice(r.as_bytes());
        context.extend_from_slice(&public.0);
        context.extend_from_slice(message);
        let mut wide = [0u8; 64];
        wide.copy_from_slice(ring::digest::digest(&ring::digest::SHA512, &context).as_ref());
        let k = Scalar::from_bytes_mod_order_wide(&wide);
        let s = nonce + k * secret;
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(r.as_bytes());
        bytes[32..].copy_from_slice(s.as_bytes());
        let signature = Signature(bytes);

        let cofactorless =
            ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public.0)
                .verify(message, &signature.0)
                .is_ok();
        assert!(!cofactorless, "ring's equation refuses it");
        assert!(verify_one(&public, message, &signature));
        let honest = signer.sign(b"other");
        let items = [
            Signed {
                key: &public,
                message,
                signature: &signature,
            },
            Signed {
                key: &public,
                message: b"other",
                signature: &honest,
            },
        ];
        for _ in 0..16 {
            assert_eq!(verify_batch(&items, rand::thread_rng()), vec![true, true]);
        }
    }
}
