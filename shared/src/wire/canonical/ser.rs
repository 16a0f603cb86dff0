//! A serde `Serializer` that writes canonical JSON directly, without
//! building a `serde_json::Value` first: members are written in the order
//! serde gives them and re-sorted only when that order is not already
//! sorted (most of our structs declare their fields sorted), so signing a
//! record costs one pass over it.
//!
//! It also makes the canonical form independent of `serde_json`'s
//! `preserve_order` feature: maps are sorted here, whatever their order.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Serialize};

use super::INTEGER_MAX;

/// Why a value cannot be written as canonical JSON (a float, an integer out
/// of range, a non-string map key, duplicate keys): always a programming
/// error in a type, never bad input.
#[derive(Debug)]
pub(super) struct EncodeError(pub(super) String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> EncodeError {
        EncodeError(msg.to_string())
    }
}

type Result<T> = std::result::Result<T, EncodeError>;

pub(super) fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    value.serialize(Canonical { out })
}

struct Canonical<'a> {
    out: &'a mut Vec<u8>,
}

/// JCS string escaping: `"` `\` and the short forms of five controls, the
/// other controls as `\u00xx` (lowercase), everything else literal.
pub(super) fn write_str(out: &mut Vec<u8>, text: &str) {
    out.reserve(text.len() + 2);
    out.push(b'"');
    write_escaped(out, text);
    out.push(b'"');
}

/// Writes formatted pieces escaped, for `collect_str`.
struct Escaper<'a> {
    out: &'a mut Vec<u8>,
}

impl fmt::Write for Escaper<'_> {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        write_escaped(self.out, piece);
        Ok(())
    }
}

fn write_escaped(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    // Most strings need no escape at all: one simple scan, one copy.
    if !bytes
        .iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (idx, &byte) in bytes.iter().enumerate() {
        let short: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..idx]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        start = idx + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn write_integer(out: &mut Vec<u8>, negative: bool, magnitude: u64) -> Result<()> {
    if magnitude > INTEGER_MAX {
        return Err(EncodeError(format!(
            "integer {}{magnitude} is outside ±(2^53 − 1)",
            if negative { "-" } else { "" }
        )));
    }
    if negative && magnitude > 0 {
        out.push(b'-');
    }
    let mut digits = [0u8; 20];
    let mut idx = digits.len();
    let mut rest = magnitude;
    loop {
        idx -= 1;
        digits[idx] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[idx..]);
    Ok(())
}

impl<'a> ser::Serializer for Canonical<'a> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Array<'a>;
    type SerializeTuple = Array<'a>;
    type SerializeTupleStruct = Array<'a>;
    type SerializeTupleVariant = Array<'a>;
    type SerializeMap = Object<'a>;
    type SerializeStruct = Object<'a>;
    type SerializeStructVariant = Object<'a>;

    fn serialize_bool(self, value: bool) -> Result<()> {
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, value: i8) -> Result<()> {
        self.serialize_i64(i64::from(value))
    }
    fn serialize_i16(self, value: i16) -> Result<()> {
        self.serialize_i64(i64::from(value))
    }
    fn serialize_i32(self, value: i32) -> Result<()> {
        self.serialize_i64(i64::from(value))
    }
    fn serialize_i64(self, value: i64) -> Result<()> {
        write_integer(self.out, value < 0, value.unsigned_abs())
    }
    fn serialize_u8(self, value: u8) -> Result<()> {
        self.serialize_u64(u64::from(value))
    }
    fn serialize_u16(self, value: u16) -> Result<()> {
        self.serialize_u64(u64::from(value))
    }
    fn serialize_u32(self, value: u32) -> Result<()> {
        self.serialize_u64(u64::from(value))
    }
    fn serialize_u64(self, value: u64) -> Result<()> {
        write_integer(self.out, false, value)
    }
    fn serialize_f32(self, _: f32) -> Result<()> {
        Err(EncodeError(
            "a non-integer number (money must be a string)".into(),
        ))
    }
    fn serialize_f64(self, _: f64) -> Result<()> {
        Err(EncodeError(
            "a non-integer number (money must be a string)".into(),
        ))
    }
    fn serialize_char(self, value: char) -> Result<()> {
        write_str(self.out, value.encode_utf8(&mut [0u8; 4]));
        Ok(())
    }
    fn serialize_str(self, value: &str) -> Result<()> {
        write_str(self.out, value);
        Ok(())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<()> {
        Err(EncodeError("raw bytes have no JSON form here".into()))
    }
    /// Money, instants and dates serialize through `Display`: escape the
    /// pieces as they are formatted, without an intermediate `String`.
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<()> {
        use std::fmt::Write;
        self.out.push(b'"');
        let mut escaper = Escaper { out: self.out };
        write!(escaper, "{value}").map_err(|_| EncodeError("formatting failed".into()))?;
        self.out.push(b'"');
        Ok(())
    }
    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result<()> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<()> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        value.serialize(Canonical {
            out: &mut *self.out,
        })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a>> {
        self.out.push(b'[');
        Ok(Array {
            out: self.out,
            first: true,
            close_variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Array<'a>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a>> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.extend_from_slice(b":[");
        Ok(Array {
            out: self.out,
            first: true,
            close_variant: true,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a>> {
        Ok(Object::open(self.out, len.unwrap_or(8), false))
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a>> {
        Ok(Object::open(self.out, len, false))
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a>> {
        self.out.push(b'{');
        write_str(self.out, variant);
        self.out.push(b':');
        Ok(Object::open(self.out, len, true))
    }
}

struct Array<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    close_variant: bool,
}

impl Array<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        value.serialize(Canonical {
            out: &mut *self.out,
        })
    }
    fn close(self) -> Result<()> {
        self.out.push(b']');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeSeq for Array<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl ser::SerializeTuple for Array<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl ser::SerializeTupleStruct for Array<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl ser::SerializeTupleVariant for Array<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

/// One object being written. Members go straight to `out`; each member's
/// byte range is remembered so that, if serde's order was not sorted, the
/// members can be rearranged when the object closes.
struct Object<'a> {
    out: &'a mut Vec<u8>,
    /// Offset just after `{`.
    start: usize,
    /// Key and byte range (`"key":value`, no comma) of every member.
    members: Vec<(Cow<'static, str>, usize, usize)>,
    sorted: bool,
    /// A map key waiting for its value.
    pending_key: Option<String>,
    close_variant: bool,
}

impl<'a> Object<'a> {
    fn open(out: &'a mut Vec<u8>, len: usize, close_variant: bool) -> Object<'a> {
        out.push(b'{');
        let start = out.len();
        Object {
            out,
            start,
            members: Vec::with_capacity(len.min(32)),
            sorted: true,
            pending_key: None,
            close_variant,
        }
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, value: &T) -> Result<()> {
        if let Some((last, _, _)) = self.members.last() {
            if key.as_bytes() <= last.as_bytes() {
                self.sorted = false;
            }
            self.out.push(b',');
        }
        let begin = self.out.len();
        write_str(self.out, &key);
        self.out.push(b':');
        value.serialize(Canonical {
            out: &mut *self.out,
        })?;
        let end = self.out.len();
        self.members.push((key, begin, end));
        Ok(())
    }

    fn close(mut self) -> Result<()> {
        if !self.sorted {
            self.members
                .sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
            if let Some(pair) = self.members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
                return Err(EncodeError(format!("duplicate key {:?}", pair[0].0)));
            }
            let written = self.out.split_off(self.start);
            for (idx, (_, begin, end)) in self.members.iter().enumerate() {
                if idx > 0 {
                    self.out.push(b',');
                }
                let (begin, end) = (begin - self.start, end - self.start);
                self.out.extend_from_slice(&written[begin..end]);
            }
        }
        self.out.push(b'}');
        if self.close_variant {
            self.out.push(b'}');
        }
        Ok(())
    }
}

impl ser::SerializeMap for Object<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<()> {
        self.pending_key = Some(key.serialize(KeySerializer)?);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        let key = self
            .pending_key
            .take()
            .ok_or_else(|| EncodeError("a map value without its key".into()))?;
        self.member(Cow::Owned(key), value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl ser::SerializeStruct for Object<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl ser::SerializeStructVariant for Object<'_> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.member(Cow::Borrowed(key), value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

/// Map keys must be strings (or unit variants, which serialize as strings).
struct KeySerializer;

impl ser::Serializer for KeySerializer {
    type Ok = String;
    type Error = EncodeError;
    type SerializeSeq = ser::Impossible<String, EncodeError>;
    type SerializeTuple = ser::Impossible<String, EncodeError>;
    type SerializeTupleStruct = ser::Impossible<String, EncodeError>;
    type SerializeTupleVariant = ser::Impossible<String, EncodeError>;
    type SerializeMap = ser::Impossible<String, EncodeError>;
    type SerializeStruct = ser::Impossible<String, EncodeError>;
    type SerializeStructVariant = ser::Impossible<String, EncodeError>;

    fn serialize_str(self, value: &str) -> Result<String> {
        Ok(value.to_owned())
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
    ) -> Result<String> {
        Ok(variant.to_owned())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        value: &T,
    ) -> Result<String> {
        value.serialize(self)
    }
    fn serialize_bool(self, _: bool) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_i8(self, _: i8) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_i16(self, _: i16) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_i32(self, _: i32) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_i64(self, _: i64) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_u8(self, _: u8) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_u16(self, _: u16) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_u32(self, _: u32) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_u64(self, _: u64) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_f32(self, _: f32) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_f64(self, _: f64) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_char(self, value: char) -> Result<String> {
        Ok(value.to_string())
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_none(self) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_unit(self) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<String> {
        Err(not_a_string_key())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
        Err(not_a_string_key())
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
        Err(not_a_string_key())
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct> {
        Err(not_a_string_key())
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant> {
        Err(not_a_string_key())
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
        Err(not_a_string_key())
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
        Err(not_a_string_key())
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant> {
        Err(not_a_string_key())
    }
}

fn not_a_string_key() -> EncodeError {
    EncodeError("an object key that is not a string".into())
}
