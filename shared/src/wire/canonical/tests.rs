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
