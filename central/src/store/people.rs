//! Storage of the people behind pseudonymous recipients, for the recipient
//! portal and reports: birth dates and guardians of minor children, portal
//! tokens and the portal's access log, the budget register, and the record
//! queries that reports and the portal make (a period of one merchant, one
//! provider or one recipient). A separate trait from [`super::Store`] (its
//! supertrait); both backends implement it (`people/sqlite.rs`,
//! `people/postgres.rs`). Nothing here is ever read by snapshot code.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::Timestamp;

use super::{RecordRow, StoreResult};

/// Records whose instant lies in `[from, to)`, narrowed to a merchant, a
/// provider (one of the providers that funded a discount) or a recipient.
/// Pages come in `(at, terminal, seq)` order, at most `limit` rows each.
#[derive(Debug, Clone)]
pub struct PeriodQuery {
    pub from: Timestamp,
    pub to: Timestamp,
    pub merchant: Option<String>,
    pub provider: Option<String>,
    pub recipient: Option<String>,
    pub after: Option<PeriodCursor>,
    pub limit: u32,
}

/// Where the next page starts: the last row of the previous one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodCursor {
    /// `at` as stored, so that the next page continues in stored order.
    pub at_text: String,
    pub terminal: String,
    pub seq: u64,
}

/// One page of [`PeriodQuery`]; `next` is `None` on the last page.
#[derive(Debug, Clone, Default)]
pub struct PeriodPage {
    pub rows: Vec<RecordRow>,
    pub next: Option<PeriodCursor>,
}

/// A recipient reference with the personal data the portal may show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub recipient: String,
    /// The provider that registered the reference.
    pub provider: String,
    pub personal_code: Option<String>,
    pub name: Option<String>,
    pub birth_date: Option<Date>,
}

/// Expected spending of one benefit in one month (`2026-03`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub benefit: String,
    pub month: String,
    pub provider: String,
    pub expected_cents: i64,
}

/// One access of the portal to a person's view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalAccess {
    pub at: Timestamp,
    /// The portal token's label.
    pub client: String,
    /// Keyed hash of the personal code asked for; never the code itself.
    pub person_hash: String,
    pub found: bool,
}

/// The people register's storage interface. Every method is one transaction.
#[async_trait]
pub trait PeopleStore: Send + Sync + 'static {
    /// One page of records in a period (see [`PeriodQuery`]).
    async fn records_in_period(&self, query: &PeriodQuery) -> StoreResult<PeriodPage>;
    /// How many `accepted` records lie in the period (widened by a second
    /// on each side, as [`PeopleStore::records_in_period`] reads it).
    /// Records are only ever added and an `accepted` record never changes
    /// outcome (only `held` ones are resolved), so the accepted set of a
    /// period only grows: an unchanged count means an unchanged set. Open
    /// data uses it to know whether its cached answer still holds.
    async fn accepted_in_period(&self, from: Timestamp, to: Timestamp) -> StoreResult<u64>;
    /// Recipient references whose personal code is one of `codes` (the
    /// same code may be written with or without its dash).
    async fn persons_by_code(&self, codes: &[String]) -> StoreResult<Vec<Person>>;
    /// The children registered for any of these guardians.
    async fn children_of(&self, guardians: &[String]) -> StoreResult<Vec<Person>>;
    async fn create_portal_token(&self, hash: &str, label: &str) -> StoreResult<()>;
    /// The label of a portal token, `None` when unknown.
    async fn portal_token(&self, hash: &str) -> StoreResult<Option<String>>;
    async fn log_portal_access(&self, access: &PortalAccess) -> StoreResult<()>;
    async fn portal_accesses(&self, person_hash: &str) -> StoreResult<Vec<PortalAccess>>;
    /// Sets (or replaces) the expected spending of a benefit in a month.
    async fn put_budget(&self, budget: &Budget) -> StoreResult<()>;
    /// Budgets of a provider's benefits in one month.
    async fn budgets(&self, provider: &str, month: &str) -> StoreResult<Vec<Budget>>;
}

/// Stored instants are compared as text; a stored instant may carry a
/// fraction of a second (`…:00.5Z` sorts before `…:00Z`), so the SQL range
/// is widened by a second on each side and the caller's exact range is
/// applied to parsed instants.
fn widened(query: &PeriodQuery) -> (String, String) {
    widened_range(query.from, query.to)
}

fn widened_range(from: Timestamp, to: Timestamp) -> (String, String) {
    let second = jiff::SignedDuration::from_secs(1);
    let from_wide = from.checked_sub(second).unwrap_or(from);
    let to_wide = to.checked_add(second).unwrap_or(to);
    (from_wide.to_string(), to_wide.to_string())
}

/// A bound value of [`period_sql`].
enum SqlValue {
    Text(String),
    Int(i64),
}

/// The SQL of [`PeopleStore::records_in_period`], naming only the filters
/// the query sets. A filter written as `(? IS NULL OR merchant = ?)` keeps
/// the planner (SQLite always, PostgreSQL with a generic plan) from using
/// the `(merchant, at)` or `(recipient, at)` index, and every page becomes
/// a scan of the whole table; with only the set filters, a merchant's or a
/// recipient's period is an index range.
///
/// `postgres`: `$n` placeholders and byte-order (`COLLATE "C"`) text
/// comparison, as the PostgreSQL indexes are built; else SQLite's `?n`.
fn period_sql(query: &PeriodQuery, postgres: bool) -> (String, Vec<SqlValue>) {
    let (from_text, to_text) = widened(query);
    let c = if postgres { " COLLATE \"C\"" } else { "" };
    let mut values = vec![SqlValue::Text(from_text), SqlValue::Text(to_text)];
    let next = |values: &mut Vec<SqlValue>, value: SqlValue| {
        values.push(value);
        if postgres {
            format!("${}", values.len())
        } else {
            format!("?{}", values.len())
        }
    };
    let (from_p, to_p) = if postgres { ("$1", "$2") } else { ("?1", "?2") };
    let mut sql = format!(
        "SELECT terminal, seq, hash, outcome, reason, recipient, merchant, at, kind, discount_cents, body
         FROM records WHERE at{c} >= {from_p} AND at{c} < {to_p}"
    );
    if let Some(merchant) = &query.merchant {
        let p = next(&mut values, SqlValue::Text(merchant.clone()));
        sql.push_str(&format!(" AND merchant = {p}"));
    }
    if let Some(provider) = &query.provider {
        let p = next(&mut values, SqlValue::Text(format!("%,{provider},%")));
        sql.push_str(&format!(" AND providers LIKE {p}"));
    }
    if let Some(recipient) = &query.recipient {
        let p = next(&mut values, SqlValue::Text(recipient.clone()));
        sql.push_str(&format!(" AND recipient = {p}"));
    }
    if let Some(cursor) = &query.after {
        let at_p = next(&mut values, SqlValue::Text(cursor.at_text.clone()));
        let terminal_p = next(&mut values, SqlValue::Text(cursor.terminal.clone()));
        let seq_p = next(
            &mut values,
            SqlValue::Int(i64::try_from(cursor.seq).unwrap_or(i64::MAX)),
        );
        // The plain `at >=` bound lets the index start at the cursor; the
        // row comparison then skips the rows already returned.
        sql.push_str(&format!(
            " AND at{c} >= {at_p} AND (at{c}, terminal{c}, seq) > ({at_p}, {terminal_p}, {seq_p})"
        ));
    }
    let limit_p = next(&mut values, SqlValue::Int(i64::from(query.limit)));
    sql.push_str(&format!(
        " ORDER BY at{c}, terminal{c}, seq LIMIT {limit_p}"
    ));
    (sql, values)
}

/// Keeps the rows in the exact range and computes the next cursor from the
/// last row the database returned (before filtering, so no row is skipped).
fn page(query: &PeriodQuery, rows: Vec<(String, RecordRow)>) -> PeriodPage {
    let next = if rows.len() >= query.limit as usize {
        rows.last().map(|(at_text, row)| PeriodCursor {
            at_text: at_text.clone(),
            terminal: row.terminal.clone(),
            seq: row.seq,
        })
    } else {
        None
    };
    PeriodPage {
        rows: rows
            .into_iter()
            .map(|(_, row)| row)
            .filter(|row| query.from <= row.at && row.at < query.to)
            .collect(),
        next,
    }
}
