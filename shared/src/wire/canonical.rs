//! Canonical JSON: the only bytes that are ever hashed or signed.
//!
//! The rules are the subset of RFC 8785 (JCS) that our formats need: UTF-8;
//! no insignificant whitespace; object members sorted by key in byte order
//! (all our keys are ASCII, where this equals JCS's UTF-16 order); strings
//! escaped as JCS does (`\"`, `\\`, `\b \f \n \r \t`, other controls as
//! `\u00xx` lowercase, everything else literal); numbers are integers only
//! (money and percentages are strings), so JCS's float formatting never
//! arises. The serializer in `ser` writes exactly this, in one pass.
//!
//! Integers are limited to ±(2⁵³ − 1), the range every JSON implementation
//! (and JCS, which reads numbers as IEEE doubles) represents exactly.
//!
//! Decoders parse with [`StrictValue`], which refuses duplicate object keys:
//! with duplicates, two parsers could disagree on what was signed.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::error::{path_at, WireError, WireErrorKind};

/// The largest integer magnitude allowed in signed JSON: 2⁵³ − 1.
pub const INTEGER_MAX: u64 = (1 << 53) - 1;

mod ser;

/// Canonical bytes of any serializable value.
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    to_vec_sized(value, 512)
}

/// [`to_vec`] with room for `capacity` bytes reserved up front, when the
/// size is known (re-encoding a decoded value) or can be guessed.
pub fn to_vec_sized<T: Serialize + ?Sized>(
    value: &T,
    capacity: usize,
) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(capacity);
    ser::write(&mut out, value).map_err(|err| {
        WireError::new("", WireErrorKind::Invalid(format!("cannot encode: {err}")))
    })?;
    Ok(out)
}

/// `true` exactly when `to_vec(value)` succeeds and equals `bytes`, proven
/// without building the encoding: each piece is compared with the input as
/// it is produced, stopping at the first difference. Decoders use it to
/// prove that what they parsed was already canonical.
pub fn matches<T: Serialize + ?Sized>(value: &T, bytes: &[u8]) -> bool {
    Matcher::default().matches(value, bytes)
}

/// [`matches`] for many values in a row (the records of a packet): keeps
/// the little room a comparison needs from one value to the next.
#[derive(Debug, Default)]
pub struct Matcher {
    room: ser::Room,
}

impl Matcher {
    /// `true` exactly when `to_vec(value)` succeeds and equals `bytes`.
    pub fn matches<T: Serialize + ?Sized>(&mut self, value: &T, bytes: &[u8]) -> bool {
        let mut compare = ser::Compare::new(bytes, std::mem::take(&mut self.room));
        let written = ser::write(&mut compare, value).is_ok();
        let (complete, room) = compare.finish();
        self.room = room;
        written && complete
    }
}

/// Appends the canonical JSON string of `text` (quoted and escaped).
pub fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing to a buffer cannot fail.
    let _ = ser::write_str(out, text);
}

/// Canonical bytes of a parsed JSON value. Refuses floats and integers out
/// of range, naming their path.
pub fn value_to_vec(value: &serde_json::Value) -> Result<Vec<u8>, WireError> {
    check_no_floats(value, &mut String::new())?;
    to_vec(value)
}

fn check_no_floats(value: &serde_json::Value, path: &mut String) -> Result<(), WireError> {
    match value {
        serde_json::Value::Number(number) if !(number.is_i64() || number.is_u64()) => {
            Err(WireError::new(
                path.clone(),
                WireErrorKind::Malformed("a non-integer number (money must be a string)".into()),
            ))
        }
        serde_json::Value::Number(number)
            if number
                .as_i64()
                .map(i64::unsigned_abs)
                .or(number.as_u64())
                .is_some_and(|magnitude| magnitude > INTEGER_MAX) =>
        {
            Err(WireError::new(
                path.clone(),
                WireErrorKind::Malformed(format!(
                    "integer {number} is outside ±(2^53 − 1), the range JSON represents exactly"
                )),
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

/// Parses JSON text into a value, refusing duplicate keys, trailing data and
/// nesting deeper than 128 levels; errors name the path and the position.
pub fn parse(bytes: &[u8]) -> Result<serde_json::Value, WireError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize::<_, StrictValue>(&mut de)
        .map_err(|err| WireError::new(path_at("", err.path()), malformed(err.inner())))?;
    de.end()
        .map_err(|err| WireError::new("", WireErrorKind::Malformed(err.to_string())))?;
    Ok(value.0)
}

fn malformed(err: &serde_json::Error) -> WireErrorKind {
    WireErrorKind::Malformed(err.to_string())
}

/// A JSON value that refuses duplicate object keys when deserialized.
/// Otherwise the same as [`serde_json::Value`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StrictValue(pub serde_json::Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<StrictValue, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, value: bool) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Bool(value))
    }
    fn visit_i64<E>(self, value: i64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::from(value))
    }
    fn visit_u64<E>(self, value: u64) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::from(value))
    }
    fn visit_f64<E>(self, value: f64) -> Result<serde_json::Value, E> {
        // Kept (not refused here) so that the float check can name its path.
        Ok(serde_json::Number::from_f64(value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number))
    }
    fn visit_str<E>(self, value: &str) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(value.to_owned()))
    }
    fn visit_string<E>(self, value: String) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::String(value))
    }
    fn visit_unit<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_none<E>(self) -> Result<serde_json::Value, E> {
        Ok(serde_json::Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<serde_json::Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<serde_json::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(StrictSeed)? {
            items.push(item);
        }
        Ok(serde_json::Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<serde_json::Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(StrictSeed)?;
            out.insert(key, value);
        }
        Ok(serde_json::Value::Object(out))
    }
}

struct StrictSeed;

impl<'de> DeserializeSeed<'de> for StrictSeed {
    type Value = serde_json::Value;
    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<serde_json::Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

#[cfg(test)]
mod tests;
