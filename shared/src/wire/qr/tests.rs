//! QR tokens: what a terminal accepts offline, and what it refuses.
//! Method: encode with a test key, then tamper with the text, the keys
//! and the clock.

use super::*;

fn central() -> SigningKey {
    SigningKey::from_seed(&[0x21; 32]).expect("seed")
}

fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn payload() -> QrPayload {
    QrPayload {
        exp: ts("2026-03-02T10:05:00Z"),
        iat: ts("2026-03-02T10:00:00Z"),
        kid: central().key_id(),
        nonce: "AAECAwQFBgcICQoLDA0ODw".into(),
        recipient: "R-7K2M9".into(),
        qr_type: QR_TYPE.into(),
        v: QR_VERSION,
    }
}

fn token() -> String {
    encode(&payload(), &central()).expect("encodes")
}

fn keys() -> Vec<PublicKey> {
    vec![central().public_key()]
}

fn at(now: &str) -> Result<QrPayload, WireError> {
    decode(&token(), &keys(), ts(now))
}

#[test]
fn round_trips_and_fits_a_small_qr_code() {
    let token = token();
    assert!(
        token.starts_with("BPQ1.eyJleHAiOiIyMDI2LTAzLTAyVDEwOjA1OjAwWiIs"),
        "{token}"
    );
    assert_eq!(token.matches('.').count(), 2);
    // A version 13 QR code at level M holds 331 bytes in byte mode.
    assert!(token.len() <= 331, "{} characters", token.len());
    assert_eq!(at("2026-03-02T10:01:00Z"), Ok(payload()));
}

#[test]
fn expiry_is_exclusive() {
    assert!(at("2026-03-02T10:04:59Z").is_ok());
    let err = at("2026-03-02T10:05:00Z").expect_err("expired");
    assert_eq!(
        err,
        WireError::new(
            "payload.exp",
            WireErrorKind::Expired("2026-03-02T10:05:00Z".into())
        )
    );
}

#[test]
fn issued_in_the_future_beyond_skew_refused() {
    assert!(at("2026-03-02T09:59:00Z").is_ok(), "60 s of skew allowed");
    let err = at("2026-03-02T09:58:59Z").expect_err("future");
    assert_eq!(err.at, "payload.iat");
}

#[test]
fn unknown_key_refused() {
    let other = SigningKey::from_seed(&[0x77; 32]).expect("seed");
    let err = decode(&token(), &[other.public_key()], ts("2026-03-02T10:01:00Z"))
        .expect_err("unknown key");
    assert_eq!(
        err,
        WireError::new("payload.kid", WireErrorKind::UnknownKey(central().key_id()))
    );
}

#[test]
fn forged_or_altered_tokens_refused() {
    let now = ts("2026-03-02T10:01:00Z");
    // Signed by another key that claims central's key id.
    let forger = SigningKey::from_seed(&[0x77; 32]).expect("seed");
    let claimed = format!("BPQ1.{}", token().split('.').nth(1).expect("payload"));
    let forged = format!("{claimed}.{}", forger.sign(claimed.as_bytes()).to_base64());
    let err = decode(&forged, &keys(), now).expect_err("forged");
    assert_eq!(
        err,
        WireError::new("signature", WireErrorKind::BadSignature)
    );
    // Another recipient's payload under the original signature.
    let mut altered = payload();
    altered.recipient = "R-0000".into();
    let altered_payload = B64.encode(canonical::to_vec(&altered).expect("encode"));
    let sig = token().rsplit('.').next().expect("sig").to_owned();
    let err = decode(&format!("BPQ1.{altered_payload}.{sig}"), &keys(), now).expect_err("altered");
    assert_eq!(err.kind, WireErrorKind::BadSignature);
}

#[test]
fn malformed_text_refused_with_the_part_named() {
    let now = ts("2026-03-02T10:01:00Z");
    let token = token();
    let cases: Vec<(String, &str)> = vec![
        ("".into(), ""),
        ("BPQ1".into(), ""),
        (format!("{token}.x"), ""),
        (token.replacen("BPQ1", "XYZ1", 1), "prefix"),
        (token.replacen("BPQ1.", "BPQ1.!", 1), "payload"),
        (format!("{}A", &token[..token.len() - 1]), "signature"),
        ("BPQ1.e30.AA".into(), "payload"),
    ];
    for (text, where_) in cases {
        let err = decode(&text, &keys(), now).expect_err("malformed");
        assert_eq!(err.at, where_, "{text:?}: {err}");
    }
    let err = decode(&token.replacen("BPQ1", "BPQ2", 1), &keys(), now).expect_err("v2");
    assert_eq!(err.kind, WireErrorKind::UnsupportedVersion(2));
    let long = "A".repeat(QR_LEN_MAX + 1);
    let err = decode(&long, &keys(), now).expect_err("long");
    assert!(matches!(err.kind, WireErrorKind::TooLarge(_)));
}

#[test]
fn non_canonical_payload_refused() {
    let now = ts("2026-03-02T10:01:00Z");
    let key = central();
    let sign = |payload_json: &str| {
        let signed = format!("BPQ1.{}", B64.encode(payload_json));
        format!("{signed}.{}", key.sign(signed.as_bytes()).to_base64())
    };
    let canonical_json =
        String::from_utf8(canonical::to_vec(&payload()).expect("encode")).expect("UTF-8");
    assert!(decode(&sign(&canonical_json), &keys(), now).is_ok());
    let spaced = canonical_json.replace(",", ", ");
    let err = decode(&sign(&spaced), &keys(), now).expect_err("spaces");
    assert_eq!(err, WireError::new("payload", WireErrorKind::NotCanonical));
    let extra = canonical_json.replace(r#""v":1"#, r#""v":1,"z":0"#);
    let err = decode(&sign(&extra), &keys(), now).expect_err("unknown field");
    assert!(err.to_string().contains("unknown field"), "{err}");
}

#[test]
fn encode_refuses_what_decode_would() {
    let key = central();
    let mut wrong_kid = payload();
    wrong_kid.kid = "0000000000000000".into();
    assert_eq!(encode(&wrong_kid, &key).expect_err("kid").at, "kid");
    let mut short_nonce = payload();
    short_nonce.nonce = "AAEC".into();
    assert_eq!(encode(&short_nonce, &key).expect_err("nonce").at, "nonce");
    let mut backwards = payload();
    backwards.exp = backwards.iat;
    assert_eq!(encode(&backwards, &key).expect_err("exp").at, "exp");
    let mut other_type = payload();
    other_type.qr_type = "record".into();
    assert_eq!(encode(&other_type, &key).expect_err("type").at, "type");
}

#[test]
fn record_names_a_token_by_its_nonce() {
    let key = b"credential key";
    let reference = payload().credential_ref(key);
    assert_eq!(reference.kind, crate::wire::record::CredentialKind::Qr);
    assert_eq!(
        reference.hash,
        crate::wire::credential::credential_hash(
            key,
            crate::wire::record::CredentialKind::Qr,
            "AAECAwQFBgcICQoLDA0ODw"
        )
    );
    let mut other = payload();
    other.nonce = "AQECAwQFBgcICQoLDA0ODw".into();
    assert_ne!(other.credential_ref(key).hash, reference.hash);
}
