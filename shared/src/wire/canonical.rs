//! Canonical JSON: the only bytes that are ever hashed or signed.
//!
//! The rules are the subset of RFC 8785 (JCS) that our formats need: UTF-8;
//! no insignificant whitespace; object members sorted by key in byte order
//! (all our keys are ASCII, where this equals JCS's UTF-16 order); strings
//! escaped as JCS does (`\"`, `\\`, `\b \f \n \r \t`, other controls as
//! `\u00xx` lowercase, everything else literal); numbers are integers only
//! (money and percentages are strings), so JCS's float formatting never
//! arises. `serde_json` with its default sorted `Map` produces exactly this.

use serde::Serialize;

use super::error::{WireError, WireErrorKind};

/// Canonical bytes of any serializable value.
pub fn to_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, WireError> {
    let value = serde_json::to_value(value).map_err(|err| {
        WireError::new("", WireErrorKind::Invalid(format!("cannot encode: {err}")))
    })?;
    value_to_vec(&value)
}

/// Canonical bytes of a parsed JSON value. Refuses floats.
pub fn value_to_vec(value: &serde_json::Value) -> Result<Vec<u8>, WireError> {
    check_no_floats(value, &mut String::new())?;
    // serde_json's Map is a BTreeMap (no `preserve_order` feature), so keys
    // come out sorted by byte order and the output has no whitespace.
    serde_json::to_vec(value)
        .map_err(|err| WireError::new("", WireErrorKind::Invalid(format!("cannot encode: {err}"))))
}

fn check_no_floats(value: &serde_json::Value, path: &mut String) -> Result<(), WireError> {
    match value {
        serde_json::Value::Number(number) if !(number.is_i64() || number.is_u64()) => {
            Err(WireError::new(
                path.clone(),
                WireErrorKind::Malformed("a non-integer number (money must be a string)".into()),
            ))
        }
        serde_json::Value::Array(items) => {
            for (idx, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{idx}]"));
                check_no_floats(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                check_no_floats(item, path)?;
                path.truncate(len);
            }
            Ok(())
        }
        _ => Ok(()),
    }
}
