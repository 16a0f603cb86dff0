//! Snapshots: what a terminal knows, signed by central. A full snapshot
//! replaces everything; a delta from version `base` to `version` changes it.
//!
//! Format: JSON Lines, so that two million credentials stream through
//! constant memory on both sides. Line 1 is a [`SnapshotHeader`]; then one
//! [`SnapshotItem`] per line; the last line is the [`SnapshotTrailer`] with
//! the item count, the SHA-256 of every preceding byte (header and item
//! lines, each with its `\n`) and central's Ed25519 signature over
//! `"BPOS-SNAPSHOT-1\n" || sha256`. Lines are canonical JSON.
//!
//! The agent applies items inside one database transaction and commits only
//! after [`SnapshotReader::finish`] has verified the trailer, so an unsigned,
//! wrongly signed or truncated snapshot changes nothing.
//!
//! Privacy: benefits travel without `groups`, recipients are pseudonymous
//! references with per-benefit entitlements, credentials are keyed hashes.

use std::io::{BufRead, Read, Write};

use jiff::civil::Date;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::canonical;
use super::error::{WireError, WireErrorKind};
use super::keys::{Hash, PublicKey, Signature, SigningKey};
use crate::model::{Benefit, Grant, HistoryEntry, Zone};
use crate::money::Money;

pub const SNAPSHOT_VERSION: u32 = 1;
/// Longest line a reader accepts: bounds memory on hostile input.
pub const LINE_LEN_MAX: usize = 64 * 1024;
/// Domain separation of the trailer signature: these bytes, then the 32
/// raw bytes of the SHA-256 of every line before the trailer.
pub const SIGNATURE_CONTEXT: &[u8] = b"BPOS-SNAPSHOT-1\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotKind {
    Full,
    Delta,
}

/// Line 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotHeader {
    /// For a delta: the version it applies to. Absent for a full snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<u64>,
    pub built_at: Timestamp,
    /// Key id of the credential-hash key the hashes in this snapshot use.
    pub credential_key_id: String,
    /// Key id of central's signing key.
    pub key_id: String,
    pub kind: SnapshotKind,
    /// The merchant the snapshot is scoped to.
    pub merchant: String,
    /// The terminal it was built for.
    pub terminal: String,
    #[serde(rename = "type")]
    pub snapshot_type: SnapshotType,
    pub v: u32,
    /// The version this snapshot brings the terminal to.
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotType {
    Snapshot,
}

/// Lines 2..n−1, tagged by `"t"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case", deny_unknown_fields)]
pub enum SnapshotItem {
    /// A benefit definition (without `groups`), added or replaced.
    Benefit {
        benefit: Benefit,
    },
    BenefitRemoved {
        id: String,
    },
    /// A credential hash and whose it is. `status: blocked` is the deny list.
    Credential {
        hash: String,
        recipient: String,
        status: CredentialStatus,
    },
    CredentialRemoved {
        hash: String,
    },
    /// A recipient's entitlements and central's known usage; replaces any earlier line for `recipient`.
    Recipient {
        recipient: String,
        entitlements: Vec<Grant>,
        usage: Vec<UsageDay>,
    },
    RecipientRemoved {
        recipient: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialStatus {
    Active,
    /// Lost, stolen or withdrawn: refuse at the till.
    Blocked,
}

/// Central's known usage of one benefit by one recipient on one local day
/// (in the benefit's time zone). A day lies in exactly one week, month and
/// year, so per-day sums serve every period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageDay {
    pub amount: Money,
    pub benefit: String,
    pub count: u32,
    pub day: Date,
}

impl UsageDay {
    /// The history entry the rules engine counts for this day: `at` is the
    /// local midnight starting `day` in the benefit's zone, which lies in the
    /// same day, ISO week, month and year as every use on that day.
    pub fn to_history(&self, zone: &Zone) -> Result<HistoryEntry, WireError> {
        let at = self
            .day
            .to_zoned(zone.tz().clone())
            .map_err(|err| {
                WireError::new(
                    "day",
                    WireErrorKind::Invalid(format!(
                        "{} has no local midnight in {}: {err}",
                        self.day,
                        zone.name()
                    )),
                )
            })?
            .timestamp();
        Ok(HistoryEntry {
            at,
            benefit: self.benefit.clone(),
            amount: self.amount,
            count: self.count,
        })
    }
}

/// Last line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotTrailer {
    pub items: u64,
    pub sha256: Hash,
    pub sig: Signature,
    /// The constant `"end"`.
    pub t: String,
}

/// The trailer as first parsed: `sig` optional so that a trailer without
/// one is reported as unsigned rather than as malformed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TrailerLoose {
    items: u64,
    sha256: Hash,
    #[serde(default)]
    sig: Option<Signature>,
    t: String,
}

/// Streams a snapshot out, hashing as it goes.
pub struct SnapshotWriter<W: Write> {
    out: W,
    hasher: ring::digest::Context,
    items: u64,
}

impl<W: Write> SnapshotWriter<W> {
    /// Checks the header and writes it as line 1.
    pub fn new(out: W, header: &SnapshotHeader) -> Result<SnapshotWriter<W>, WireError> {
        check_header(header).map_err(|err| in_line(err, 1))?;
        let mut writer = SnapshotWriter {
            out,
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            items: 0,
        };
        let line = canonical::to_vec(header)?;
        writer.write_line(line, 1)?;
        Ok(writer)
    }

    /// Writes one item line. Refuses a benefit carrying `groups` (terminals
    /// must never learn why someone is entitled) and lines over [`LINE_LEN_MAX`].
    pub fn push(&mut self, item: &SnapshotItem) -> Result<(), WireError> {
        let line_no = self.items + 2;
        check_item(item).map_err(|err| in_line(err, line_no))?;
        let line = canonical::to_vec(item)?;
        self.write_line(line, line_no)?;
        self.items += 1;
        Ok(())
    }

    fn write_line(&mut self, mut line: Vec<u8>, line_no: u64) -> Result<(), WireError> {
        if line.len() > LINE_LEN_MAX {
            return Err(WireError::new(
                format!("line {line_no}"),
                WireErrorKind::TooLarge(format!(
                    "{} bytes, a line has at most {LINE_LEN_MAX}",
                    line.len()
                )),
            ));
        }
        line.push(b'\n');
        self.hasher.update(&line);
        self.out
            .write_all(&line)
            .map_err(|err| write_failed(line_no, &err))
    }

    /// Writes the signed trailer and returns the inner writer.
    pub fn finish(mut self, key: &SigningKey) -> Result<W, WireError> {
        let line_no = self.items + 2;
        let sha256 = finish_hash(self.hasher);
        let trailer = SnapshotTrailer {
            items: self.items,
            sha256,
            sig: key.sign(&signed_message(&sha256)),
            t: "end".into(),
        };
        let mut line = canonical::to_vec(&trailer)?;
        line.push(b'\n');
        self.out
            .write_all(&line)
            .and_then(|()| self.out.flush())
            .map_err(|err| write_failed(line_no, &err))?;
        Ok(self.out)
    }
}

fn write_failed(line_no: u64, err: &std::io::Error) -> WireError {
    WireError::new(
        format!("line {line_no}"),
        WireErrorKind::Invalid(format!("write failed: {err}")),
    )
}

fn finish_hash(hasher: ring::digest::Context) -> Hash {
    let digest = hasher.finish();
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    Hash(out)
}

/// `SIGNATURE_CONTEXT || sha256`: what central signs in the trailer.
pub fn signed_message(sha256: &Hash) -> Vec<u8> {
    let mut message = Vec::with_capacity(SIGNATURE_CONTEXT.len() + 32);
    message.extend_from_slice(SIGNATURE_CONTEXT);
    message.extend_from_slice(&sha256.0);
    message
}

/// Streams a snapshot in: header first, then items; [`finish`](Self::finish)
/// verifies count, hash and signature. Nothing read may be trusted until
/// `finish` returns `Ok`.
pub struct SnapshotReader<R: BufRead> {
    input: R,
    header: SnapshotHeader,
    hasher: ring::digest::Context,
    items: u64,
    /// Number of the last line read (1 = header).
    line: u64,
    /// Reused buffer for one line.
    buf: Vec<u8>,
    /// The trailer once reached, with its line number.
    trailer: Option<(TrailerLoose, u64)>,
}

/// How reading one bounded line ended.
enum Line {
    /// A whole line, `\n` removed, is in the buffer.
    Complete,
    /// End of input before any byte.
    End,
}

impl<R: BufRead> SnapshotReader<R> {
    /// Reads and checks the header line (type, version, key id known).
    pub fn open(mut input: R, central_keys: &[PublicKey]) -> Result<SnapshotReader<R>, WireError> {
        let mut buf = Vec::with_capacity(1024);
        match read_line(&mut input, &mut buf, 1)? {
            Line::End => {
                return Err(WireError::new(
                    "line 1",
                    WireErrorKind::Truncated("empty input: no header line".into()),
                ))
            }
            Line::Complete => {}
        }
        check_version_first(&buf)?;
        let header: SnapshotHeader = decode_line(&buf, 1)?;
        check_header(&header).map_err(|err| in_line(err, 1))?;
        if !central_keys.iter().any(|key| key.key_id() == header.key_id) {
            return Err(WireError::new(
                "line 1 (key_id)",
                WireErrorKind::UnknownKey(header.key_id.clone()),
            ));
        }
        let mut hasher = ring::digest::Context::new(&ring::digest::SHA256);
        hasher.update(&buf);
        hasher.update(b"\n");
        Ok(SnapshotReader {
            input,
            header,
            hasher,
            items: 0,
            line: 1,
            buf,
            trailer: None,
        })
    }

    pub fn header(&self) -> &SnapshotHeader {
        &self.header
    }

    /// The next item, or `None` at the trailer (which is kept for `finish`).
    pub fn next_item(&mut self) -> Result<Option<SnapshotItem>, WireError> {
        if self.trailer.is_some() {
            return Ok(None);
        }
        let line_no = self.line + 1;
        match read_line(&mut self.input, &mut self.buf, line_no)? {
            Line::End => {
                return Err(WireError::new(
                    format!("line {line_no}"),
                    WireErrorKind::Truncated(format!(
                        "the snapshot ends after {} lines without its signed trailer",
                        self.line
                    )),
                ))
            }
            Line::Complete => {}
        }
        self.line = line_no;
        match decode_line::<SnapshotItem>(&self.buf, line_no) {
            Ok(item) => {
                check_item(&item).map_err(|err| in_line(err, line_no))?;
                self.hasher.update(&self.buf);
                self.hasher.update(b"\n");
                self.items += 1;
                Ok(Some(item))
            }
            Err(item_err) => match self.decode_trailer(line_no)? {
                Some(trailer) => {
                    self.trailer = Some((trailer, line_no));
                    Ok(None)
                }
                None => Err(item_err),
            },
        }
    }

    /// `Some` when the line in `buf` is a trailer (`"t":"end"`); errors when
    /// it is a trailer but a bad one.
    fn decode_trailer(&self, line_no: u64) -> Result<Option<TrailerLoose>, WireError> {
        let is_trailer = canonical::parse(&self.buf)
            .is_ok_and(|value| value.get("t").and_then(serde_json::Value::as_str) == Some("end"));
        if !is_trailer {
            return Ok(None);
        }
        let trailer: TrailerLoose = decode_line_loose(&self.buf, line_no)?;
        let Some(sig) = trailer.sig else {
            return Err(WireError::new(
                format!("line {line_no} (sig)"),
                WireErrorKind::Unsigned,
            ));
        };
        // Canonical like every other line, so a snapshot has one byte form.
        let typed = SnapshotTrailer {
            items: trailer.items,
            sha256: trailer.sha256,
            sig,
            t: trailer.t.clone(),
        };
        if canonical::to_vec(&typed)? != self.buf {
            return Err(WireError::new(
                format!("line {line_no}"),
                WireErrorKind::NotCanonical,
            ));
        }
        Ok(Some(trailer))
    }

    /// Reads any items left, then verifies the trailer: item count, SHA-256
    /// of every line before it, central's signature, and that nothing
    /// follows. Error `Truncated` when the trailer is missing.
    pub fn finish(mut self, central_keys: &[PublicKey]) -> Result<SnapshotHeader, WireError> {
        while self.next_item()?.is_some() {}
        let Some((trailer, line_no)) = self.trailer.take() else {
            return Err(WireError::new(
                format!("line {}", self.line + 1),
                WireErrorKind::Truncated("no trailer".into()),
            ));
        };
        let at = |field: &str| format!("line {line_no} ({field})");
        if trailer.items != self.items {
            return Err(WireError::new(
                at("items"),
                WireErrorKind::Invalid(format!(
                    "the trailer counts {} items but {} were read",
                    trailer.items, self.items
                )),
            ));
        }
        let sha256 = finish_hash(self.hasher);
        if trailer.sha256 != sha256 {
            return Err(WireError::new(
                at("sha256"),
                WireErrorKind::Invalid(format!(
                    "the signed hash {} differs from the hash {} of lines 1..{}: the snapshot was altered",
                    trailer.sha256,
                    sha256,
                    line_no - 1
                )),
            ));
        }
        let Some(key) = central_keys
            .iter()
            .find(|key| key.key_id() == self.header.key_id)
        else {
            return Err(WireError::new(
                "line 1 (key_id)",
                WireErrorKind::UnknownKey(self.header.key_id.clone()),
            ));
        };
        let sig = trailer
            .sig
            .ok_or_else(|| WireError::new(at("sig"), WireErrorKind::Unsigned))?;
        key.verify(&signed_message(&sha256), &sig)
            .map_err(|_| WireError::new(at("sig"), WireErrorKind::BadSignature))?;
        self.buf.clear();
        let extra = (&mut self.input)
            .take(1)
            .read_to_end(&mut self.buf)
            .map_err(|err| read_failed(line_no + 1, &err))?;
        if extra > 0 {
            return Err(WireError::new(
                format!("line {}", line_no + 1),
                WireErrorKind::Malformed("data after the trailer".into()),
            ));
        }
        Ok(self.header)
    }
}

/// Reads a whole snapshot, verifying it: for tests, tools and small inputs.
/// The agent streams with [`SnapshotReader`] instead.
pub fn read_all<R: BufRead>(
    input: R,
    central_keys: &[PublicKey],
) -> Result<(SnapshotHeader, Vec<SnapshotItem>), WireError> {
    let mut reader = SnapshotReader::open(input, central_keys)?;
    let mut items = Vec::new();
    while let Some(item) = reader.next_item()? {
        items.push(item);
    }
    let header = reader.finish(central_keys)?;
    Ok((header, items))
}

/// Reads one line of at most [`LINE_LEN_MAX`] bytes (without its `\n`) into `buf`.
fn read_line<R: BufRead>(
    input: &mut R,
    buf: &mut Vec<u8>,
    line_no: u64,
) -> Result<Line, WireError> {
    buf.clear();
    let limit = LINE_LEN_MAX as u64 + 1;
    let n_read = input
        .take(limit)
        .read_until(b'\n', buf)
        .map_err(|err| read_failed(line_no, &err))?;
    if n_read == 0 {
        return Ok(Line::End);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        return Ok(Line::Complete);
    }
    if n_read as u64 >= limit {
        return Err(WireError::new(
            format!("line {line_no}"),
            WireErrorKind::TooLarge(format!("longer than {LINE_LEN_MAX} bytes")),
        ));
    }
    Err(WireError::new(
        format!("line {line_no}"),
        WireErrorKind::Truncated(format!(
            "the input ends inside this line, after {n_read} bytes without a newline"
        )),
    ))
}

/// Places an error found inside a line: `line 17 (benefit.groups)`.
fn in_line(err: WireError, line_no: u64) -> WireError {
    let at = if err.at.is_empty() || err.at == "." {
        format!("line {line_no}")
    } else {
        format!("line {line_no} ({})", err.at)
    };
    WireError::new(at, err.kind)
}

fn read_failed(line_no: u64, err: &std::io::Error) -> WireError {
    WireError::new(
        format!("line {line_no}"),
        WireErrorKind::Truncated(format!("read failed: {err}")),
    )
}

/// A header of another version is reported as such, not as unknown fields.
fn check_version_first(line: &[u8]) -> Result<(), WireError> {
    let version = canonical::parse(line)
        .ok()
        .and_then(|value| value.get("v").and_then(serde_json::Value::as_u64));
    match version {
        Some(version) if version != u64::from(SNAPSHOT_VERSION) => Err(WireError::new(
            "line 1 (v)",
            WireErrorKind::UnsupportedVersion(version),
        )),
        _ => Ok(()),
    }
}

/// Parses one line as `T`, which must be in canonical form.
fn decode_line<T>(line: &[u8], line_no: u64) -> Result<T, WireError>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    // Fast path: a canonical line (what central writes) is proven so by one
    // typed parse and one encoding; anything else takes the general path,
    // which also names the error.
    if let Ok(value) = serde_json::from_slice::<T>(line) {
        if canonical::to_vec_sized(&value, line.len()).is_ok_and(|bytes| bytes == line) {
            return Ok(value);
        }
    }
    let value: T = decode_line_loose(line, line_no)?;
    if canonical::to_vec(&value)? != line {
        return Err(WireError::new(
            format!("line {line_no}"),
            WireErrorKind::NotCanonical,
        ));
    }
    Ok(value)
}

fn decode_line_loose<T>(line: &[u8], line_no: u64) -> Result<T, WireError>
where
    T: for<'de> Deserialize<'de>,
{
    let value = canonical::parse(line).map_err(|err| in_line(err, line_no))?;
    canonical::value_to_vec(&value).map_err(|err| in_line(err, line_no))?;
    serde_path_to_error::deserialize(value).map_err(|err| {
        in_line(
            WireError::new(
                err.path().to_string(),
                WireErrorKind::Malformed(err.inner().to_string()),
            ),
            line_no,
        )
    })
}

/// Header rules beyond the types: version, and `base` present exactly for
/// a delta and older than `version`.
fn check_header(header: &SnapshotHeader) -> Result<(), WireError> {
    if header.v != SNAPSHOT_VERSION {
        return Err(WireError::new(
            "v",
            WireErrorKind::UnsupportedVersion(u64::from(header.v)),
        ));
    }
    match (header.kind, header.base) {
        (SnapshotKind::Full, None) => Ok(()),
        (SnapshotKind::Full, Some(_)) => Err(WireError::new(
            "base",
            WireErrorKind::Invalid("a full snapshot has no base".into()),
        )),
        (SnapshotKind::Delta, None) => Err(WireError::new(
            "base",
            WireErrorKind::Invalid("a delta needs the base version it applies to".into()),
        )),
        (SnapshotKind::Delta, Some(base)) if base >= header.version => Err(WireError::new(
            "base",
            WireErrorKind::Invalid(format!(
                "a delta from {base} to {} goes backwards",
                header.version
            )),
        )),
        (SnapshotKind::Delta, Some(_)) => Ok(()),
    }
}

/// Item rules beyond the types: benefits travel without `groups`.
fn check_item(item: &SnapshotItem) -> Result<(), WireError> {
    match item {
        SnapshotItem::Benefit { benefit } if !benefit.groups.is_empty() => Err(WireError::new(
            "benefit.groups",
            WireErrorKind::Invalid(
                "benefits reach terminals without groups (a group reveals a social status)".into(),
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks that a snapshot was built for this terminal (and its merchant):
/// central addresses every snapshot, and a terminal must not apply another
/// terminal's credentials or usage.
pub fn check_addressed_to(
    header: &SnapshotHeader,
    terminal: &str,
    merchant: &str,
) -> Result<(), WireError> {
    if header.terminal != terminal {
        return Err(WireError::new(
            "terminal",
            WireErrorKind::Invalid(format!(
                "built for terminal {:?}, this is {terminal:?}",
                header.terminal
            )),
        ));
    }
    if header.merchant != merchant {
        return Err(WireError::new(
            "merchant",
            WireErrorKind::Invalid(format!(
                "built for merchant {:?}, this terminal serves {merchant:?}",
                header.merchant
            )),
        ));
    }
    Ok(())
}

/// Checks that a snapshot with `header` may be applied on top of `current`
/// (the terminal's version, `None` when it has none): a full snapshot must
/// be newer; a delta must have `base == current`.
pub fn check_applies(current: Option<u64>, header: &SnapshotHeader) -> Result<(), WireError> {
    let out_of_order =
        |at: &str, message: String| Err(WireError::new(at, WireErrorKind::OutOfOrder(message)));
    match (header.kind, header.base, current) {
        (SnapshotKind::Full, _, Some(current)) if header.version <= current => out_of_order(
            "version",
            format!(
                "full snapshot version {} is not newer than the terminal's version {current}",
                header.version
            ),
        ),
        (SnapshotKind::Full, _, _) => Ok(()),
        (SnapshotKind::Delta, base, None) => out_of_order(
            "base",
            format!(
                "a delta from version {} cannot apply: the terminal has no snapshot",
                base.unwrap_or(0)
            ),
        ),
        (SnapshotKind::Delta, Some(base), Some(current)) if base == current => Ok(()),
        (SnapshotKind::Delta, base, Some(current)) => out_of_order(
            "base",
            format!(
                "a delta from version {} to {} cannot apply to the terminal's version {current}",
                base.map_or_else(|| "(none)".to_owned(), |base| base.to_string()),
                header.version
            ),
        ),
    }
}

#[cfg(test)]
mod tests;
