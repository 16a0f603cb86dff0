//! Bulk import of registers by a provider: recipients, credentials,
//! memberships and grants, from CSV or JSON Lines.
//!
//! A file holds one kind of row. It is parsed and checked whole first:
//! every problem is reported with its line number (up to
//! [`ERRORS_MAX`]), and a file with any problem changes nothing. A clean
//! file is applied by the store in one transaction, so it is applied whole
//! or not at all, and re-importing the same file changes nothing (rows are
//! upserts that only write what differs).
//!
//! Columns (CSV header, or JSON Lines object keys):
//! - `recipients`: `recipient`, `personal_code`, `name`, `birth_date`
//!   (`YYYY-MM-DD`; tells the portal until when a child is a minor)
//! - `credentials`: `recipient`, `kind`, `id` (the raw card UID or token;
//!   only its keyed hash is kept)
//! - `memberships`: `recipient`, `group`, `valid_from`, `valid_to`
//! - `grants`: `recipient`, `benefit`, `valid_from`, `valid_to`
//! - `guardians`: `guardian`, `child` (two recipient references: the
//!   guardian sees the child's benefits on the portal while the child is
//!   under 18)
//!
//! A recipient reference is pseudonymous: a value shaped like a Latvian
//! personal code is refused, so personal data cannot leak into references
//! that terminals see.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{BufRead, BufReader, Read};

use jiff::civil::Date;
use serde::Deserialize;
use shared::model::{Grant, Membership};
use shared::validate::is_valid_id;
use shared::wire::credential::credential_hash;
use shared::wire::record::CredentialKind;

use crate::store::{ImportRow, Progress};

/// Problems reported before giving up on listing more.
pub const ERRORS_MAX: usize = 100;
/// Longest raw credential id, personal code or name accepted.
const FIELD_LEN_MAX: usize = 200;
/// How often parsing reports progress, in rows.
const PROGRESS_EVERY: u64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Recipients,
    Credentials,
    Memberships,
    Grants,
    Guardians,
}

impl Kind {
    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "recipients" => Some(Kind::Recipients),
            "credentials" => Some(Kind::Credentials),
            "memberships" => Some(Kind::Memberships),
            "grants" => Some(Kind::Grants),
            "guardians" => Some(Kind::Guardians),
            _ => None,
        }
    }

    fn columns(self) -> &'static [&'static str] {
        match self {
            Kind::Recipients => &["recipient", "personal_code", "name", "birth_date"],
            Kind::Credentials => &["recipient", "kind", "id"],
            Kind::Memberships => &["recipient", "group", "valid_from", "valid_to"],
            Kind::Grants => &["recipient", "benefit", "valid_from", "valid_to"],
            Kind::Guardians => &["guardian", "child"],
        }
    }

    /// Columns that must have a value.
    fn required(self) -> &'static [&'static str] {
        match self {
            Kind::Recipients => &["recipient"],
            Kind::Credentials => &["recipient", "kind", "id"],
            Kind::Memberships => &["recipient", "group"],
            Kind::Grants => &["recipient", "benefit"],
            Kind::Guardians => &["guardian", "child"],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

/// One problem, with its line (1-based; the CSV header is line 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Every problem found (at most [`ERRORS_MAX`]; `more` when there were more).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ImportErrors {
    pub errors: Vec<RowError>,
    pub more: bool,
}

impl fmt::Display for ImportErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the file was not imported; nothing changed:")?;
        for error in &self.errors {
            writeln!(f, "  {error}")?;
        }
        if self.more {
            writeln!(f, "  … and more (first {ERRORS_MAX} shown)")?;
        }
        Ok(())
    }
}

/// What rows are checked against.
pub struct Context {
    pub provider: String,
    /// The provider's own groups and benefits: it may only use those.
    pub groups: HashSet<String>,
    pub benefits: HashSet<String>,
    pub credential_key: Vec<u8>,
}

struct Collector {
    errors: Vec<RowError>,
    more: bool,
}

impl Collector {
    fn push(&mut self, line: u64, message: impl Into<String>) {
        if self.errors.len() < ERRORS_MAX {
            self.errors.push(RowError {
                line,
                message: message.into(),
            });
        } else {
            self.more = true;
        }
    }
}

/// `true` for what looks like a Latvian personal code (`DDMMYY-NNNNN`,
/// with or without the dash, including the new `32…` form).
pub fn looks_like_personal_code(text: &str) -> bool {
    let digits: String = text.chars().filter(|c| *c != '-').collect();
    digits.len() == 11
        && digits.bytes().all(|b| b.is_ascii_digit())
        && text.chars().filter(|c| *c == '-').count() <= 1
}

/// Parses and checks a whole file. `Ok` only when every row is valid.
pub fn parse(
    kind: Kind,
    format: Format,
    input: impl Read,
    context: &Context,
    progress: Option<&Progress>,
) -> Result<Vec<ImportRow>, ImportErrors> {
    let mut out = Vec::new();
    let mut errors = Collector {
        errors: Vec::new(),
        more: false,
    };
    let mut seen: HashMap<String, u64> = HashMap::new();
    let mut handle = |line: u64, fields: HashMap<String, String>, errors: &mut Collector| {
        for row in check_row(kind, line, &fields, context, errors) {
            let key = row_key(&row);
            if let Some(first) = seen.insert(key.clone(), line) {
                errors.push(line, format!("{key} is already on line {first}"));
            } else {
                out.push(row);
            }
        }
        if let Some(report) = progress {
            if line % PROGRESS_EVERY == 0 {
                report(line);
            }
        }
    };
    match format {
        Format::Csv => parse_csv(kind, input, &mut errors, &mut handle),
        Format::JsonLines => parse_json_lines(kind, input, &mut errors, &mut handle),
    }
    if errors.errors.is_empty() {
        Ok(out)
    } else {
        Err(ImportErrors {
            errors: errors.errors,
            more: errors.more,
        })
    }
}

fn parse_csv(
    kind: Kind,
    input: impl Read,
    errors: &mut Collector,
    handle: &mut impl FnMut(u64, HashMap<String, String>, &mut Collector),
) {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(input);
    let headers = match reader.headers() {
        Ok(headers) => headers.clone(),
        Err(err) => {
            errors.push(1, format!("cannot read the header: {err}"));
            return;
        }
    };
    let names: Vec<String> = headers.iter().map(str::to_owned).collect();
    if !check_columns(kind, &names, 1, errors) {
        return;
    }
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                let fields = names
                    .iter()
                    .cloned()
                    .zip(record.iter().map(str::to_owned))
                    .collect();
                handle(line, fields, errors);
            }
            Err(err) => {
                let line = err.position().map(|p| p.line()).unwrap_or(0);
                let message = match err.kind() {
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!("{len} fields where the header has {expected_len}"),
                    csv::ErrorKind::Utf8 { .. } => "not valid UTF-8".to_owned(),
                    _ => err.to_string(),
                };
                errors.push(line, message);
                if !matches!(
                    err.kind(),
                    csv::ErrorKind::UnequalLengths { .. } | csv::ErrorKind::Utf8 { .. }
                ) {
                    break;
                }
            }
        }
    }
}

fn check_columns(kind: Kind, names: &[String], line: u64, errors: &mut Collector) -> bool {
    let allowed = kind.columns();
    let mut ok = true;
    for name in names {
        if !allowed.contains(&name.as_str()) {
            errors.push(
                line,
                format!(
                    "unknown column {name:?} (columns for {kind:?}: {})",
                    allowed.join(", ")
                ),
            );
            ok = false;
        }
    }
    for required in kind.required() {
        if !names.iter().any(|name| name == required) {
            errors.push(line, format!("missing column {required:?}"));
            ok = false;
        }
    }
    ok
}

fn parse_json_lines(
    kind: Kind,
    input: impl Read,
    errors: &mut Collector,
    handle: &mut impl FnMut(u64, HashMap<String, String>, &mut Collector),
) {
    let reader = BufReader::new(input);
    for (idx, line) in reader.lines().enumerate() {
        let line_number = idx as u64 + 1;
        let text = match line {
            Ok(text) => text,
            Err(err) => {
                errors.push(line_number, format!("cannot read: {err}"));
                return;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        let object: HashMap<String, Option<JsonField>> = match serde_json::from_str(&text) {
            Ok(object) => object,
            Err(err) => {
                errors.push(line_number, format!("not a JSON object of strings: {err}"));
                continue;
            }
        };
        let names: Vec<String> = object.keys().cloned().collect();
        if !check_columns(kind, &names, line_number, errors) {
            continue;
        }
        let fields = object
            .into_iter()
            .filter_map(|(name, value)| value.map(|JsonField(value)| (name, value)))
            .collect();
        handle(line_number, fields, errors);
    }
}

/// A JSON Lines field: a string (numbers are refused, as in every wire format).
#[derive(Deserialize)]
#[serde(transparent)]
struct JsonField(String);

fn field<'a>(fields: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    fields
        .get(name)
        .map(|value| value.trim())
        .filter(|value| !value.is_empty())
}

fn check_row(
    kind: Kind,
    line: u64,
    fields: &HashMap<String, String>,
    context: &Context,
    errors: &mut Collector,
) -> Vec<ImportRow> {
    let before = errors.errors.len() + usize::from(errors.more);
    for required in kind.required() {
        if field(fields, required).is_none() {
            errors.push(line, format!("{required}: is empty"));
        }
    }
    let mut reference = |name: &str| -> String {
        let value = field(fields, name).unwrap_or_default().to_owned();
        if !value.is_empty() {
            if !is_valid_id(&value) {
                errors.push(
                    line,
                    format!("{name}: must be 1-128 printable characters without spaces"),
                );
            } else if looks_like_personal_code(&value) {
                errors.push(
                    line,
                    format!("{name}: looks like a personal code; use a pseudonymous reference (personal codes go in the recipients file's personal_code column)"),
                );
            }
        }
        value
    };
    if kind == Kind::Guardians {
        let guardian = reference("guardian");
        let child = reference("child");
        if !guardian.is_empty() && guardian == child {
            errors.push(
                line,
                format!("child: {child:?} cannot be their own guardian"),
            );
        }
        let after = errors.errors.len() + usize::from(errors.more);
        return if after == before {
            vec![ImportRow::Guardian { guardian, child }]
        } else {
            Vec::new()
        };
    }
    let recipient = reference("recipient");
    let mut long = |name: &str| -> Option<String> {
        let value = field(fields, name)?;
        if value.len() > FIELD_LEN_MAX {
            errors.push(line, format!("{name}: longer than {FIELD_LEN_MAX} bytes"));
        }
        Some(value.to_owned())
    };
    let mut extra = None;
    let row = match kind {
        Kind::Recipients => {
            let personal_code = long("personal_code");
            let name = long("name");
            if let Some(text) = field(fields, "birth_date") {
                match text.parse::<Date>() {
                    Ok(birth_date) => {
                        extra = Some(ImportRow::BirthDate {
                            recipient: recipient.clone(),
                            birth_date,
                        })
                    }
                    Err(_) => errors.push(
                        line,
                        format!("birth_date: {text:?} is not a date (YYYY-MM-DD)"),
                    ),
                }
            }
            ImportRow::Recipient {
                recipient,
                personal_code,
                name,
            }
        }
        Kind::Credentials => {
            let id = long("id").unwrap_or_default();
            let kind_text = field(fields, "kind").unwrap_or_default();
            let credential_kind = parse_credential_kind(kind_text);
            if credential_kind.is_none() && !kind_text.is_empty() {
                errors.push(
                    line,
                    format!(
                        "kind: {kind_text:?} is not one of card, eid, bank_card, resident_card, qr"
                    ),
                );
            }
            let kind = credential_kind.unwrap_or(CredentialKind::Card);
            ImportRow::Credential {
                hash: credential_hash(&context.credential_key, kind, &id),
                recipient,
                kind,
            }
        }
        Kind::Memberships => {
            let group = field(fields, "group").unwrap_or_default().to_owned();
            if !group.is_empty() && !context.groups.contains(&group) {
                errors.push(
                    line,
                    format!(
                        "group: {group:?} is not a group of provider {:?}",
                        context.provider
                    ),
                );
            }
            let (valid_from, valid_to) = dates(fields, line, errors);
            ImportRow::Membership {
                recipient,
                membership: Membership {
                    group,
                    valid_from,
                    valid_to,
                },
            }
        }
        Kind::Grants => {
            let benefit = field(fields, "benefit").unwrap_or_default().to_owned();
            if !benefit.is_empty() && !context.benefits.contains(&benefit) {
                errors.push(
                    line,
                    format!(
                        "benefit: {benefit:?} is not a benefit of provider {:?}",
                        context.provider
                    ),
                );
            }
            let (valid_from, valid_to) = dates(fields, line, errors);
            ImportRow::Grant {
                recipient,
                grant: Grant {
                    benefit,
                    valid_from,
                    valid_to,
                },
            }
        }
        // Handled above: a guardian row names two references, not one.
        Kind::Guardians => return Vec::new(),
    };
    let after = errors.errors.len() + usize::from(errors.more);
    if after == before {
        std::iter::once(row).chain(extra).collect()
    } else {
        Vec::new()
    }
}

fn parse_credential_kind(text: &str) -> Option<CredentialKind> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

fn dates(
    fields: &HashMap<String, String>,
    line: u64,
    errors: &mut Collector,
) -> (Option<Date>, Option<Date>) {
    let mut date = |name: &str| -> Option<Date> {
        let text = field(fields, name)?;
        match text.parse::<Date>() {
            Ok(date) => Some(date),
            Err(_) => {
                errors.push(line, format!("{name}: {text:?} is not a date (YYYY-MM-DD)"));
                None
            }
        }
    };
    let from = date("valid_from");
    let to = date("valid_to");
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            errors.push(line, format!("valid_from: {from} is after valid_to {to}"));
        }
    }
    (from, to)
}

/// The identity of a row within a file: each may appear once.
fn row_key(row: &ImportRow) -> String {
    match row {
        ImportRow::Recipient { recipient, .. } => format!("recipient {recipient:?}"),
        ImportRow::Credential { hash, .. } => {
            format!("the same credential (hash {})", &hash[..16.min(hash.len())])
        }
        ImportRow::Membership {
            recipient,
            membership,
        } => format!("membership of {recipient:?} in {:?}", membership.group),
        ImportRow::Grant { recipient, grant } => {
            format!("grant of {:?} to {recipient:?}", grant.benefit)
        }
        ImportRow::BirthDate { recipient, .. } => format!("birth date of {recipient:?}"),
        ImportRow::Guardian { guardian, child } => {
            format!("guardian {guardian:?} of {child:?}")
        }
    }
}

#[cfg(test)]
mod tests;
