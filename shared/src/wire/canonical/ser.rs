//! A serde `Serializer` that writes canonical JSON directly, without
//! building a `serde_json::Value` first: members are written in the order
//! serde gives them and re-sorted only when that order is not already
//! sorted (most of our structs declare their fields sorted), so signing a
//! record costs one pass over it.
//!
//! It also makes the canonical form independent of `serde_json`'s
//! `preserve_order` feature: maps are sorted here, whatever their order.
//!
//! The same serializer can compare instead of write ([`Compare`]): decoders
//! prove that the bytes they parsed are the canonical form of the value
//! they got, without a second buffer, stopping at the first difference.

use std::borrow::Cow;
use std::fmt;

use serde::ser::{self, Serialize};

use super::INTEGER_MAX;

/// Why a value cannot be written as canonical JSON (a float, an integer out
/// of range, a non-string map key, duplicate keys): always a programming
/// error in a type, never bad input.
#[derive(Debug)]
pub(super) struct EncodeError(pub(super) Cow<'static, str>);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EncodeError {}

impl ser::Error for EncodeError {
    fn custom<T: fmt::Display>(msg: T) -> EncodeError {
        EncodeError(Cow::Owned(msg.to_string()))
    }
}

type Result<T> = std::result::Result<T, EncodeError>;

/// Where canonical bytes go: appended to a buffer, or compared against
/// bytes that claim to be canonical already. Objects are the sink's
/// business: a buffer rearranges members serde gave out of order, a
/// comparison has to go back and buffer them.
pub(super) trait Out: Sized {
    /// What an open object remembers.
    type Obj;
    fn put(&mut self, byte: u8) -> Result<()>;
    fn put_all(&mut self, bytes: &[u8]) -> Result<()>;
    /// Writes `text` escaped (without quotes).
    fn put_escaped(&mut self, text: &str) -> Result<()> {
        write_escaped(self, text)
    }
    /// Writes `{`.
    fn open_object(&mut self, len: usize) -> Result<Self::Obj>;
    /// Writes one member, `"key":value`, and the comma before it.
    fn member<T: Serialize + ?Sized>(
        &mut self,
        obj: &mut Self::Obj,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<()>;
    /// Writes the members not written yet, in sorted order, and `}`.
    fn close_object(&mut self, obj: Self::Obj) -> Result<()>;
}

/// Key and byte range (`"key":value`, no comma) of one member.
type Span = (Cow<'static, str>, usize, usize);

/// An object written into a buffer.
pub(super) struct VecObject {
    /// Offset just after `{`.
    start: usize,
    members: Vec<Span>,
    sorted: bool,
}

impl Out for Vec<u8> {
    type Obj = VecObject;
    #[inline]
    fn put(&mut self, byte: u8) -> Result<()> {
        self.push(byte);
        Ok(())
    }
    #[inline]
    fn put_all(&mut self, bytes: &[u8]) -> Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
    fn open_object(&mut self, len: usize) -> Result<VecObject> {
        self.push(b'{');
        Ok(VecObject {
            start: self.len(),
            members: Vec::with_capacity(len.min(32)),
            sorted: true,
        })
    }
    fn member<T: Serialize + ?Sized>(
        &mut self,
        obj: &mut VecObject,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<()> {
        if let Some((last, _, _)) = obj.members.last() {
            if key.as_bytes() <= last.as_bytes() {
                obj.sorted = false;
            }
            self.push(b',');
        }
        let begin = self.len();
        write_member(self, &key, value)?;
        obj.members.push((key, begin, self.len()));
        Ok(())
    }
    fn close_object(&mut self, mut obj: VecObject) -> Result<()> {
        if !obj.sorted {
            sort_members(&mut obj.members)?;
            let written = self.split_off(obj.start);
            for (idx, (_, begin, end)) in obj.members.iter().enumerate() {
                if idx > 0 {
                    self.push(b',');
                }
                self.extend_from_slice(&written[begin - obj.start..end - obj.start]);
            }
        }
        self.push(b'}');
        Ok(())
    }
}

fn write_member<O: Out, T: Serialize + ?Sized>(out: &mut O, key: &str, value: &T) -> Result<()> {
    write_str(out, key)?;
    out.put(b':')?;
    value.serialize(Canonical { out })
}

/// Sorts members by key (byte order), refusing duplicates.
fn sort_members(members: &mut [Span]) -> Result<()> {
    members.sort_by(|left, right| left.0.as_bytes().cmp(right.0.as_bytes()));
    if let Some(pair) = members.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(EncodeError(Cow::Owned(format!(
            "duplicate key {:?}",
            pair[0].0
        ))));
    }
    Ok(())
}

/// Compares what would be written with `expected`, stopping at the first
/// byte that differs.
///
/// Members of an object are compared in place as serde gives them. Many of
/// our structs declare their fields out of sorted order, so when a member
/// does not match where it stands, the object goes on in `scratch`: the
/// members that matched are copied there, the rest are written there, and
/// at the close they are sorted and compared. Member spans live on one
/// stack and `scratch` is reused, so a comparison allocates only while they
/// grow.
pub(super) struct Compare<'e> {
    expected: &'e [u8],
    at: usize,
    /// Spans of the members of the open objects, innermost last: offsets in
    /// `expected` for an object compared in place, in `scratch` for one
    /// being buffered.
    spans: Vec<Span>,
    /// The object being buffered (at most one at a time: what is inside it
    /// is written to `scratch` as a plain buffer).
    scratch: Vec<u8>,
}

pub(super) struct CompareObject {
    /// Offset in `expected` just after `{`.
    start: usize,
    /// Where this object's spans begin in `Compare::spans`.
    base: usize,
    /// Members written so far.
    count: usize,
    buffered: bool,
}

/// Why [`Compare`] stopped: the bytes differ. A constant, as it happens on
/// every object written out of order: no allocation.
pub(super) const DIFFERS: &str = "differs from the canonical form";

fn differs() -> EncodeError {
    EncodeError(Cow::Borrowed(DIFFERS))
}

/// The room a [`Compare`] grows, kept between comparisons.
#[derive(Debug)]
pub(super) struct Room {
    spans: Vec<Span>,
    scratch: Vec<u8>,
}

impl Default for Room {
    /// Enough for a record (its deepest nesting, its largest object written
    /// out of order) without growing on the way.
    fn default() -> Room {
        Room {
            spans: Vec::with_capacity(32),
            scratch: Vec::with_capacity(1024),
        }
    }
}

impl<'e> Compare<'e> {
    pub(super) fn new(expected: &'e [u8], room: Room) -> Compare<'e> {
        Compare {
            expected,
            at: 0,
            spans: room.spans,
            scratch: room.scratch,
        }
    }
    /// `true` when exactly all of `expected` was written; gives back the
    /// room for the next comparison.
    pub(super) fn finish(mut self) -> (bool, Room) {
        self.spans.clear();
        self.scratch.clear();
        (
            self.at == self.expected.len(),
            Room {
                spans: self.spans,
                scratch: self.scratch,
            },
        )
    }

    /// Writes a member in place; `Err` leaves `at` wherever it stopped.
    fn member_in_place<T: Serialize + ?Sized>(
        &mut self,
        obj: &CompareObject,
        key: &str,
        value: &T,
    ) -> Result<usize> {
        if obj.count > 0 {
            let last = &self.spans[obj.base + obj.count - 1].0;
            if key.as_bytes() <= last.as_bytes() {
                return Err(differs());
            }
            self.put(b',')?;
        }
        let begin = self.at;
        write_member(self, key, value)?;
        Ok(begin)
    }
}

impl Out for Compare<'_> {
    type Obj = CompareObject;
    #[inline]
    fn put(&mut self, byte: u8) -> Result<()> {
        if self.expected.get(self.at) == Some(&byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(differs())
        }
    }
    #[inline]
    fn put_all(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.at + bytes.len();
        let Some(expected) = self.expected.get(self.at..end) else {
            return Err(differs());
        };
        // Most pieces are a few bytes (keys, punctuation, short strings):
        // a plain loop beats calling `memcmp`.
        let same = if bytes.len() <= 16 {
            expected
                .iter()
                .zip(bytes)
                .all(|(left, right)| left == right)
        } else {
            expected == bytes
        };
        if same {
            self.at = end;
            Ok(())
        } else {
            Err(differs())
        }
    }
    /// One pass for the common case: the text equals the expected bytes
    /// and needs no escape.
    fn put_escaped(&mut self, text: &str) -> Result<()> {
        let bytes = text.as_bytes();
        let end = self.at + bytes.len();
        if let Some(expected) = self.expected.get(self.at..end) {
            if expected == bytes && !needs_escape(bytes) {
                self.at = end;
                return Ok(());
            }
        }
        write_escaped(self, text)
    }
    fn open_object(&mut self, _: usize) -> Result<CompareObject> {
        self.put(b'{')?;
        Ok(CompareObject {
            start: self.at,
            base: self.spans.len(),
            count: 0,
            buffered: false,
        })
    }
    fn member<T: Serialize + ?Sized>(
        &mut self,
        obj: &mut CompareObject,
        key: Cow<'static, str>,
        value: &T,
    ) -> Result<()> {
        if !obj.buffered {
            let mark = self.at;
            match self.member_in_place(obj, &key, value) {
                Ok(begin) => {
                    self.spans.push((key, begin, self.at));
                    obj.count += 1;
                    return Ok(());
                }
                Err(err) if err.0 != DIFFERS => return Err(err),
                Err(_) => {}
            }
            // Out of order, or different: go on in the buffer with the
            // members that matched, and decide at the close. Spans of
            // objects inside the failed member are dropped with it.
            obj.buffered = true;
            self.at = mark;
            self.spans.truncate(obj.base + obj.count);
            for span in &mut self.spans[obj.base..] {
                span.1 -= obj.start;
                span.2 -= obj.start;
            }
            self.scratch.clear();
            self.scratch
                .extend_from_slice(&self.expected[obj.start..mark]);
        }
        if obj.count > 0 {
            self.scratch.push(b',');
        }
        let begin = self.scratch.len();
        write_member(&mut self.scratch, &key, value)?;
        self.spans.push((key, begin, self.scratch.len()));
        obj.count += 1;
        Ok(())
    }
    fn close_object(&mut self, obj: CompareObject) -> Result<()> {
        if obj.buffered {
            // Both are taken out for the comparison and put back, to keep
            // their room for the next object.
            let mut spans = std::mem::take(&mut self.spans);
            let scratch = std::mem::take(&mut self.scratch);
            let members = &mut spans[obj.base..];
            let compared = sort_members(members).and_then(|()| {
                members
                    .iter()
                    .enumerate()
                    .try_for_each(|(idx, (_, begin, end))| {
                        if idx > 0 {
                            self.put(b',')?;
                        }
                        self.put_all(&scratch[*begin..*end])
                    })
            });
            spans.truncate(obj.base);
            self.spans = spans;
            self.scratch = scratch;
            self.scratch.clear();
            compared?;
        } else {
            self.spans.truncate(obj.base);
        }
        self.put(b'}')
    }
}

pub(super) fn write<T: Serialize + ?Sized, O: Out>(out: &mut O, value: &T) -> Result<()> {
    value.serialize(Canonical { out })
}

struct Canonical<'a, O> {
    out: &'a mut O,
}

/// JCS string escaping: `"` `\` and the short forms of five controls, the
/// other controls as `\u00xx` (lowercase), everything else literal.
pub(super) fn write_str<O: Out>(out: &mut O, text: &str) -> Result<()> {
    out.put(b'"')?;
    out.put_escaped(text)?;
    out.put(b'"')
}

/// Writes formatted pieces escaped, for `collect_str`; keeps the sink's
/// error, which `fmt::Error` cannot carry.
struct Escaper<'a, O> {
    out: &'a mut O,
    failed: Option<EncodeError>,
}

impl<O: Out> fmt::Write for Escaper<'_, O> {
    fn write_str(&mut self, piece: &str) -> fmt::Result {
        self.out.put_escaped(piece).map_err(|err| {
            self.failed = Some(err);
            fmt::Error
        })
    }
}

/// Whether any byte of `bytes` is escaped in JSON (a control, `"`, `\\`),
/// eight bytes at a time.
pub(super) fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    // Sets the high bit of some byte exactly when some byte of `word` is zero.
    let has_zero = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    // The same for "some byte is below 0x20" (exact for bounds up to 0x80).
    let has_control = |word: u64| word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut eight = [0u8; 8];
        eight.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(eight);
        if has_control(word)
            || has_zero(word ^ (ONES * u64::from(b'"')))
            || has_zero(word ^ (ONES * u64::from(b'\\')))
        {
            return true;
        }
    }
    chunks
        .remainder()
        .iter()
        .any(|&byte| byte < 0x20 || byte == b'"' || byte == b'\\')
}

fn write_escaped<O: Out>(out: &mut O, text: &str) -> Result<()> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    // Most strings need no escape at all: one quick scan, one copy.
    if !needs_escape(bytes) {
        return out.put_all(bytes);
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
        out.put_all(&bytes[start..idx])?;
        if short.is_empty() {
            out.put_all(b"\\u00")?;
            out.put(HEX[usize::from(byte >> 4)])?;
            out.put(HEX[usize::from(byte & 0xf)])?;
        } else {
            out.put_all(short)?;
        }
        start = idx + 1;
    }
    out.put_all(&bytes[start..])
}

fn write_integer<O: Out>(out: &mut O, negative: bool, magnitude: u64) -> Result<()> {
    if magnitude > INTEGER_MAX {
        return Err(EncodeError(Cow::Owned(format!(
            "integer {}{magnitude} is outside ±(2^53 − 1)",
            if negative { "-" } else { "" }
        ))));
    }
    if negative && magnitude > 0 {
        out.put(b'-')?;
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
    out.put_all(&digits[idx..])
}

impl<'a, O: Out> ser::Serializer for Canonical<'a, O> {
    type Ok = ();
    type Error = EncodeError;
    type SerializeSeq = Array<'a, O>;
    type SerializeTuple = Array<'a, O>;
    type SerializeTupleStruct = Array<'a, O>;
    type SerializeTupleVariant = Array<'a, O>;
    type SerializeMap = Object<'a, O>;
    type SerializeStruct = Object<'a, O>;
    type SerializeStructVariant = Object<'a, O>;

    fn serialize_bool(self, value: bool) -> Result<()> {
        self.out.put_all(if value { b"true" } else { b"false" })
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
        write_str(self.out, value.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, value: &str) -> Result<()> {
        write_str(self.out, value)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<()> {
        Err(EncodeError("raw bytes have no JSON form here".into()))
    }
    /// Money, instants and dates serialize through `Display`: escape the
    /// pieces as they are formatted, without an intermediate `String`.
    fn collect_str<T: fmt::Display + ?Sized>(self, value: &T) -> Result<()> {
        use std::fmt::Write;
        self.out.put(b'"')?;
        let mut escaper = Escaper {
            out: &mut *self.out,
            failed: None,
        };
        if write!(escaper, "{value}").is_err() {
            return Err(escaper
                .failed
                .unwrap_or_else(|| EncodeError("formatting failed".into())));
        }
        self.out.put(b'"')
    }
    fn serialize_none(self) -> Result<()> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<()> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<()> {
        self.out.put_all(b"null")
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
        self.out.put(b'{')?;
        write_str(self.out, variant)?;
        self.out.put(b':')?;
        value.serialize(Canonical {
            out: &mut *self.out,
        })?;
        self.out.put(b'}')
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Array<'a, O>> {
        self.out.put(b'[')?;
        Ok(Array {
            out: self.out,
            first: true,
            close_variant: false,
        })
    }
    fn serialize_tuple(self, len: usize) -> Result<Array<'a, O>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Array<'a, O>> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Array<'a, O>> {
        self.out.put(b'{')?;
        write_str(self.out, variant)?;
        self.out.put_all(b":[")?;
        Ok(Array {
            out: self.out,
            first: true,
            close_variant: true,
        })
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Object<'a, O>> {
        Object::open(self.out, len.unwrap_or(8), false)
    }
    fn serialize_struct(self, _: &'static str, len: usize) -> Result<Object<'a, O>> {
        Object::open(self.out, len, false)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Object<'a, O>> {
        self.out.put(b'{')?;
        write_str(self.out, variant)?;
        self.out.put(b':')?;
        Object::open(self.out, len, true)
    }
}

struct Array<'a, O> {
    out: &'a mut O,
    first: bool,
    close_variant: bool,
}

impl<O: Out> Array<'_, O> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        if !self.first {
            self.out.put(b',')?;
        }
        self.first = false;
        value.serialize(Canonical {
            out: &mut *self.out,
        })
    }
    fn close(self) -> Result<()> {
        self.out.put(b']')?;
        if self.close_variant {
            self.out.put(b'}')?;
        }
        Ok(())
    }
}

impl<O: Out> ser::SerializeSeq for Array<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl<O: Out> ser::SerializeTuple for Array<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl<O: Out> ser::SerializeTupleStruct for Array<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

impl<O: Out> ser::SerializeTupleVariant for Array<'_, O> {
    type Ok = ();
    type Error = EncodeError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<()> {
        self.element(value)
    }
    fn end(self) -> Result<()> {
        self.close()
    }
}

/// One object being written; the sink keeps what it needs in `obj`.
struct Object<'a, O: Out> {
    out: &'a mut O,
    obj: O::Obj,
    /// A map key waiting for its value.
    pending_key: Option<String>,
    close_variant: bool,
}

impl<'a, O: Out> Object<'a, O> {
    fn open(out: &'a mut O, len: usize, close_variant: bool) -> Result<Object<'a, O>> {
        let obj = out.open_object(len)?;
        Ok(Object {
            out,
            obj,
            pending_key: None,
            close_variant,
        })
    }

    fn member<T: Serialize + ?Sized>(&mut self, key: Cow<'static, str>, value: &T) -> Result<()> {
        self.out.member(&mut self.obj, key, value)
    }

    fn close(self) -> Result<()> {
        self.out.close_object(self.obj)?;
        if self.close_variant {
            self.out.put(b'}')?;
        }
        Ok(())
    }
}

impl<O: Out> ser::SerializeMap for Object<'_, O> {
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

impl<O: Out> ser::SerializeStruct for Object<'_, O> {
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

impl<O: Out> ser::SerializeStructVariant for Object<'_, O> {
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
