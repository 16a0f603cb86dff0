//! Canonical JSON: the exact bytes a vendor must produce, and what parsing refuses.

use serde_json::json;

use super::*;

fn text(value: &serde_json::Value) -> String {
    String::from_utf8(value_to_vec(value).expect("encodes")).expect("UTF-8")
}

#[test]
fn keys_sorted_no_whitespace_integers_plain() {
    let value = json!({"b": 1, "a": {"d": [1, 2], "c": -3}, "B": true, "_": null});
    assert_eq!(
        text(&value),
        r#"{"B":true,"_":null,"a":{"c":-3,"d":[1,2]},"b":1}"#,
        "keys in byte order: uppercase before underscore before lowercase"
    );
}

#[test]
fn strings_escaped_as_jcs() {
    // Goal: exactly the JCS escapes; everything else literal, including
    // `/`, DEL and non-ASCII.
    let value = json!("q\"b\\s/\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}é€😀");
    assert_eq!(
        text(&value),
        "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}é€😀\""
    );
}

#[test]
fn floats_refused_with_their_path() {
    let value = parse(br#"{"cart":[{"qty":1},{"qty":1.0}]}"#).expect("valid JSON");
    let err = value_to_vec(&value).expect_err("float refused");
    assert_eq!(err.at, "cart[1].qty");
    assert!(matches!(err.kind, WireErrorKind::Malformed(_)), "{err}");
    let exponent = parse(br#"{"n":1e2}"#).expect("valid JSON");
    assert_eq!(value_to_vec(&exponent).expect_err("exponent").at, "n");
}

#[test]
fn integers_beyond_2_pow_53_refused() {
    let limit = parse(b"[9007199254740991,-9007199254740991]").expect("valid");
    assert_eq!(text(&limit), "[9007199254740991,-9007199254740991]");
    for beyond in [&b"[9007199254740992]"[..], b"[-9007199254740992]"] {
        let value = parse(beyond).expect("valid JSON");
        let err = value_to_vec(&value).expect_err("out of range");
        assert_eq!(err.at, "[0]");
        assert!(err.to_string().contains("2^53"), "{err}");
    }
}

#[test]
fn duplicate_keys_refused_with_path() {
    let err = parse(br#"{"a":{"x":1,"x":2}}"#).expect_err("duplicate");
    assert_eq!(err.at, "a");
    assert!(err.to_string().contains("duplicate key \"x\""), "{err}");
}

#[test]
fn trailing_data_and_garbage_refused() {
    assert!(parse(br#"{"a":1} x"#).is_err());
    assert!(parse(b"").is_err());
    assert!(parse(br#"{"a":"\ud800"}"#).is_err(), "lone surrogate");
    assert!(parse(&[b'"', 0xff, b'"']).is_err(), "invalid UTF-8");
    let deep = "[".repeat(200) + &"]".repeat(200);
    assert!(parse(deep.as_bytes()).is_err(), "nesting is bounded");
}

#[test]
fn whitespace_and_key_order_of_input_do_not_matter() {
    let loose = parse(b" { \"b\" : 1 ,\n \"a\" : \"\\u0041\" } ").expect("valid");
    assert_eq!(text(&loose), r#"{"a":"A","b":1}"#);
}

/// An independent canonical writer over `serde_json::Value`: objects sorted
/// explicitly through a `BTreeMap`, strings through serde_json's escaping.
/// The one-pass serializer must agree with it byte for byte.
fn reference(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(reference).collect();
            format!("[{}]", inner.join(","))
        }
        serde_json::Value::Object(map) => {
            let sorted: std::collections::BTreeMap<&str, &serde_json::Value> = map
                .iter()
                .map(|(key, value)| (key.as_str(), value))
                .collect();
            let inner: Vec<String> = sorted
                .iter()
                .map(|(key, value)| {
                    format!(
                        "{}:{}",
                        serde_json::to_string(key).expect("key"),
                        reference(value)
                    )
                })
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        other => serde_json::to_string(other).expect("scalar"),
    }
}

fn via_value<T: Serialize>(value: &T) -> String {
    reference(&serde_json::to_value(value).expect("to_value"))
}

#[test]
fn one_pass_encoding_equals_the_value_route_for_every_wire_type() {
    use crate::wire::vectors;
    let check = |what: &str, fast: Vec<u8>, slow: String| {
        assert_eq!(String::from_utf8(fast).expect("UTF-8"), slow, "{what}");
    };
    for record in vectors::records().expect("records") {
        check(
            "record body",
            to_vec(&record.body).expect("encode"),
            via_value(&record.body),
        );
        check(
            "signed record",
            to_vec(&record).expect("encode"),
            via_value(&record),
        );
    }
    let packet = vectors::packet().expect("packet");
    check(
        "packet body",
        to_vec(&packet.body).expect("encode"),
        via_value(&packet.body),
    );
    assert_eq!(
        to_vec(&packet.body).expect("encode"),
        packet.canonical_body()
    );
    for (header, items) in [
        vectors::snapshot_full_parts().expect("full"),
        vectors::snapshot_delta_parts().expect("delta"),
    ] {
        check(
            "snapshot header",
            to_vec(&header).expect("encode"),
            via_value(&header),
        );
        for item in &items {
            check(
                "snapshot item",
                to_vec(item).expect("encode"),
                via_value(item),
            );
        }
    }
    let payload = vectors::qr_payload().expect("payload");
    check(
        "qr payload",
        to_vec(&payload).expect("encode"),
        via_value(&payload),
    );
    for benefit in vectors::benefits().expect("benefits") {
        check(
            "benefit",
            to_vec(&benefit).expect("encode"),
            via_value(&benefit),
        );
    }
}

#[test]
fn floats_and_wide_integers_cannot_be_encoded() {
    assert!(to_vec(&1.5f64).is_err());
    assert!(to_vec(&(INTEGER_MAX + 1)).is_err());
    assert!(to_vec(&(-(INTEGER_MAX as i64) - 1)).is_err());
    assert_eq!(
        to_vec(&-(INTEGER_MAX as i64)).expect("in range"),
        b"-9007199254740991"
    );
    assert_eq!(to_vec(&0u8).expect("zero"), b"0");
    assert_eq!(to_vec(&i64::from(-7i8)).expect("negative"), b"-7");
}

fn arbitrary_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        (-(INTEGER_MAX as i64)..=(INTEGER_MAX as i64)).prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::String),
        "[\\x00-\\x7f]{0,12}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map("[ -~]{0,6}|\\PC{0,3}", inner, 0..6)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    /// Any JSON value (integers in range): the one-pass writer equals the
    /// independent reference, and parsing its output gives the value back.
    #[test]
    fn one_pass_encoding_equals_reference(value in arbitrary_json()) {
        let fast = value_to_vec(&value).expect("encodes");
        proptest::prop_assert_eq!(String::from_utf8(fast.clone()).expect("UTF-8"), reference(&value));
        proptest::prop_assert_eq!(parse(&fast).expect("parses"), value);
    }
}
