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

/// Every way of changing `canonical` by one byte (replace, delete, insert
/// a byte that JSON cares about), plus truncations and an extension.
fn edits_of(canonical: &[u8]) -> Vec<Vec<u8>> {
    const BYTES: [u8; 8] = [b' ', b'"', b',', b'0', b'a', b'}', b']', b'\\'];
    let mut out = Vec::new();
    for idx in 0..canonical.len() {
        let byte = BYTES[idx % BYTES.len()];
        let mut replaced = canonical.to_vec();
        replaced[idx] = if replaced[idx] == byte { b'x' } else { byte };
        out.push(replaced);
        let mut deleted = canonical.to_vec();
        deleted.remove(idx);
        out.push(deleted);
        let mut inserted = canonical.to_vec();
        inserted.insert(idx, byte);
        out.push(inserted);
        out.push(canonical[..idx].to_vec());
    }
    let mut longer = canonical.to_vec();
    longer.push(b' ');
    out.push(longer);
    out
}

/// `matches(value, bytes)` is `to_vec(value) == bytes`, for the canonical
/// bytes and every edit of them.
fn assert_matches_like_encoding<T: Serialize>(value: &T) {
    let canonical = to_vec(value).expect("encodes");
    assert!(matches(value, &canonical), "its own encoding matches");
    let mut matcher = Matcher::default();
    for edited in edits_of(&canonical) {
        assert_eq!(
            matcher.matches(value, &edited),
            edited == canonical,
            "{}",
            String::from_utf8_lossy(&edited)
        );
    }
    // The matcher's kept room does not leak from one value to the next.
    assert!(matcher.matches(value, &canonical));
}

#[test]
fn matching_in_place_agrees_with_encoding_for_records_and_packets() {
    // Records hold structs whose fields are declared out of sorted order
    // (cart lines, the quote): those objects are compared through the
    // buffer, the rest in place.
    for record in crate::wire::vectors::records().expect("vector records") {
        assert_matches_like_encoding(&record.body);
    }
    let packet = crate::wire::vectors::packet().expect("vector packet");
    let mut header = packet.body.clone();
    header.records.clear();
    assert_matches_like_encoding(&header);
}

#[derive(Serialize)]
struct Unsorted {
    zeta: u32,
    alpha: Vec<Inner>,
    mid: std::collections::BTreeMap<String, Inner>,
    #[serde(skip_serializing_if = "Option::is_none")]
    absent: Option<u32>,
}

#[derive(Serialize)]
struct Inner {
    y: &'static str,
    x: Option<i64>,
    nested: Option<Box<Inner>>,
}

/// A map that names one key twice: it cannot be encoded, so nothing matches.
struct Twice;

impl Serialize for Twice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("b", &1)?;
        map.serialize_entry("a", &2)?;
        map.serialize_entry("b", &3)?;
        map.end()
    }
}

#[test]
fn matching_in_place_agrees_with_encoding_for_unsorted_and_nested_objects() {
    let inner = |y, x, nested| Inner { y, x, nested };
    let value = Unsorted {
        zeta: 7,
        alpha: vec![
            inner("q\"b", Some(-3), None),
            inner("", None, Some(Box::new(inner("deep\n", Some(1), None)))),
        ],
        mid: [
            ("b".to_owned(), inner("1", None, None)),
            ("a".to_owned(), inner("2", Some(2), None)),
        ]
        .into_iter()
        .collect(),
        absent: None,
    };
    assert_matches_like_encoding(&value);
    assert_matches_like_encoding(&vec![value]);

    assert!(to_vec(&Twice).is_err());
    for text in [&br#"{"a":2,"b":1}"#[..], br#"{"a":2,"b":1,"b":3}"#, b"{}"] {
        assert!(!matches(&Twice, text), "{}", String::from_utf8_lossy(text));
    }
    // Nothing matches a value that cannot be encoded, even its near miss.
    assert!(!matches(&1.5f64, b"1.5"));
    assert!(!matches(&(INTEGER_MAX + 1), b"9007199254740992"));
}

proptest::proptest! {
    /// Any JSON value: its canonical bytes match, and so does nothing else
    /// among the one-byte edits of them.
    #[test]
    fn matching_agrees_with_encoding_for_any_value(value in arbitrary_json()) {
        let canonical = value_to_vec(&value).expect("encodes");
        proptest::prop_assert!(matches(&value, &canonical));
        let mut matcher = Matcher::default();
        for edited in edits_of(&canonical).into_iter().take(200) {
            proptest::prop_assert_eq!(matcher.matches(&value, &edited), edited == canonical);
        }
    }
}

#[test]
fn escape_scan_finds_every_escaped_byte_wherever_it_stands() {
    // Eight bytes at a time plus a remainder: every byte value at every
    // position of texts up to 17 bytes long, among plain neighbours.
    for len in 1..=17 {
        for at in 0..len {
            for byte in 0..=u8::MAX {
                let mut text = vec![b'a'; len];
                text[at] = byte;
                let expected = byte < 0x20 || byte == b'"' || byte == b'\\';
                assert_eq!(
                    ser::needs_escape(&text),
                    expected,
                    "{byte:#04x} at {at} of {len}"
                );
            }
        }
    }
    // Neighbours that sit next to the bounds of the word tricks.
    assert!(!ser::needs_escape(b" !#[]~\x7f\xff\x80 !#[]~\x7f\xff\x80"));
    assert!(ser::needs_escape(b" !#[]~\x7f\xff\x1f !#[]~\x7f\xff\x80"));
}
