//! Merchant and provider reports, as pure functions: stored records →
//! report tables → CSV, printable HTML or JSON.
//!
//! - **Merchant report** (a day or a month): per terminal × benefit ×
//!   provider, the transactions, units and discount given in accepted
//!   records, and the discount of records not accepted at ingestion
//!   (flagged or held: not payable unless a reviewer clears them); totals
//!   per terminal and overall.
//! - **Provider report** (a month): usage per benefit × merchant
//!   (transactions, distinct recipients, units, discount), budget spent
//!   against expected, and the open flags.
//!
//! Days and months are local to Europe/Riga, the benefits' time zone
//! ([`REPORT_ZONE`]). A sale counts `+1` transaction and its discount; a
//! void of it counts `-1` and subtracts the same discount, so a voided
//! sale nets to nothing in the period of both.
//!
//! Deliberately absent: recipient references (only counts of distinct
//! recipients), personal data, and I/O: the HTTP layer reads the store page
//! by page and feeds the builders here.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shared::model::LineDiscount;
use shared::money::Money;
use shared::wire::record::RecordKind;

use crate::store::RecordRow;

/// The time zone of report days and months.
pub const REPORT_ZONE: &str = "Europe/Riga";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {message}")]
pub struct ReportError {
    pub at: String,
    pub message: String,
}

fn zone() -> TimeZone {
    // The bundled tz database always has Riga; UTC is a safe fallback that
    // would only ever show in a broken build.
    TimeZone::get(REPORT_ZONE).unwrap_or(TimeZone::UTC)
}

/// A report period: one local day or one local month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day(Date),
    /// The first day of the month.
    Month(Date),
}

impl Period {
    /// `YYYY-MM-DD`.
    pub fn parse_day(text: &str) -> Result<Period, String> {
        let date = text
            .parse::<Date>()
            .ok()
            .filter(|_| text.len() == 10)
            .ok_or_else(|| format!("date: {text:?} is not a date (YYYY-MM-DD)"))?;
        Ok(Period::Day(date))
    }

    /// `YYYY-MM`.
    pub fn parse_month(text: &str) -> Result<Period, String> {
        let bad = || format!("month: {text:?} is not a month (YYYY-MM)");
        if text.len() != 7 || text.as_bytes().get(4) != Some(&b'-') {
            return Err(bad());
        }
        let date = format!("{text}-01").parse::<Date>().map_err(|_| bad())?;
        Ok(Period::Month(date))
    }

    pub fn first_day(self) -> Date {
        match self {
            Period::Day(date) | Period::Month(date) => date,
        }
    }

    pub fn last_day(self) -> Date {
        match self {
            Period::Day(date) => date,
            Period::Month(date) => date.last_of_month(),
        }
    }

    /// `2026-03-02` or `2026-03`.
    pub fn label(self) -> String {
        match self {
            Period::Day(date) => date.to_string(),
            Period::Month(date) => month_label(date),
        }
    }

    /// `[from, to)`: local midnight of the first day to local midnight
    /// after the last.
    pub fn bounds(self) -> Result<(Timestamp, Timestamp), ReportError> {
        let tz = zone();
        let start = |date: Date| {
            date.to_zoned(tz.clone())
                .map(|zoned| zoned.timestamp())
                .map_err(|err| ReportError {
                    at: "period".into(),
                    message: format!("{date} in {REPORT_ZONE}: {err}"),
                })
        };
        let after = self.last_day().tomorrow().map_err(|err| ReportError {
            at: "period".into(),
            message: err.to_string(),
        })?;
        Ok((start(self.first_day())?, start(after)?))
    }
}

fn month_label(date: Date) -> String {
    format!("{:04}-{:02}", date.year(), date.month())
}

/// One benefit's discount in one record, as reports count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLine {
    pub benefit: String,
    pub provider: String,
    pub units: i64,
    pub amount: Money,
}

/// A stored record, decoded for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRecord {
    pub terminal: String,
    pub seq: u64,
    pub at: Timestamp,
    pub merchant: String,
    pub recipient: String,
    /// `accepted`, `flagged` or `held`.
    pub outcome: String,
    pub reason: Option<String>,
    /// `+1` for a sale, `-1` for a void.
    pub sign: i64,
    /// One line per (benefit, provider), summed over cart lines.
    pub lines: Vec<ReportLine>,
}

impl ReportRecord {
    pub fn accepted(&self) -> bool {
        self.outcome == "accepted"
    }
    fn discount(&self) -> Money {
        self.lines.iter().map(|line| line.amount).sum()
    }
}

/// The part of a stored record body that reports read. The body was
/// checked whole at ingestion; reading only these fields (serde skips the
/// rest, such as the quote's inputs and history) makes a month's report
/// several times cheaper than decoding whole bodies.
#[derive(Deserialize)]
struct ReportBody {
    kind: RecordKind,
    cart: Vec<ReportCartLine>,
    quote: ReportQuote,
}

#[derive(Deserialize)]
struct ReportCartLine {
    qty: u32,
}

#[derive(Deserialize)]
struct ReportQuote {
    discounts: Vec<LineDiscount>,
}

/// Decodes a stored record's body: its quote's line discounts, with the
/// units of the cart line each discounted.
pub fn report_record(row: &RecordRow) -> Result<ReportRecord, ReportError> {
    let at = format!("record {}#{}", row.terminal, row.seq);
    let body: ReportBody = serde_json::from_str(&row.body).map_err(|err| ReportError {
        at: at.clone(),
        message: format!("stored body: {err}"),
    })?;
    let sign = match body.kind {
        RecordKind::Sale => 1,
        RecordKind::Void => -1,
    };
    let mut lines: BTreeMap<(String, String), ReportLine> = BTreeMap::new();
    for discount in &body.quote.discounts {
        let units = body
            .cart
            .get(discount.line as usize)
            .map_or(1, |line| i64::from(line.qty));
        let line = lines
            .entry((discount.benefit.clone(), discount.provider.clone()))
            .or_insert_with(|| ReportLine {
                benefit: discount.benefit.clone(),
                provider: discount.provider.clone(),
                units: 0,
                amount: Money::from_cents(0),
            });
        line.units += units;
        line.amount += discount.amount;
    }
    Ok(ReportRecord {
        terminal: row.terminal.clone(),
        seq: row.seq,
        at: row.at,
        merchant: row.merchant.clone(),
        recipient: row.recipient.clone(),
        outcome: row.outcome.clone(),
        reason: row.reason.clone(),
        sign,
        lines: lines.into_values().collect(),
    })
}

/// Transactions, units and discount; `not_accepted` is the discount in
/// records flagged or held at ingestion; `not_payable` the part of the
/// accepted discount that reconciliation across terminals refused
/// (offline overuse beyond a limit): given at the till, not paid by the
/// provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub transactions: i64,
    pub units: i64,
    pub discount: Money,
    pub not_accepted: Money,
    pub not_payable: Money,
}

impl Default for Figures {
    fn default() -> Figures {
        Figures {
            transactions: 0,
            units: 0,
            discount: Money::from_cents(0),
            not_accepted: Money::from_cents(0),
            not_payable: Money::from_cents(0),
        }
    }
}

impl Figures {
    fn add(&mut self, sign: i64, accepted: bool, units: i64, amount: Money) {
        if accepted {
            self.transactions += sign;
            self.units += sign * units;
            self.discount += if sign < 0 { -amount } else { amount };
        } else {
            self.not_accepted += if sign < 0 { -amount } else { amount };
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MerchantRow {
    pub terminal: String,
    pub terminal_label: String,
    pub benefit: String,
    pub provider: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerminalTotal {
    pub terminal: String,
    pub terminal_label: String,
    #[serde(flatten)]
    pub figures: Figures,
}

/// A merchant's report for a day or a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MerchantReport {
    pub merchant: String,
    pub merchant_name: String,
    /// `day` or `month`.
    pub period_kind: &'static str,
    pub period: String,
    pub first_day: Date,
    pub last_day: Date,
    pub time_zone: &'static str,
    pub generated_at: Timestamp,
    pub rows: Vec<MerchantRow>,
    pub terminals: Vec<TerminalTotal>,
    pub total: Figures,
}

/// Builds a [`MerchantReport`] from records fed in any order, page by page.
pub struct MerchantReportBuilder {
    merchant: String,
    merchant_name: String,
    period: Period,
    terminal_labels: HashMap<String, String>,
    rows: BTreeMap<(String, String, String), Figures>,
    terminals: BTreeMap<String, Figures>,
    total: Figures,
}

impl MerchantReportBuilder {
    pub fn new(
        merchant: &str,
        merchant_name: &str,
        period: Period,
        terminal_labels: HashMap<String, String>,
    ) -> MerchantReportBuilder {
        MerchantReportBuilder {
            merchant: merchant.to_owned(),
            merchant_name: merchant_name.to_owned(),
            period,
            terminal_labels,
            rows: BTreeMap::new(),
            terminals: BTreeMap::new(),
            total: Figures::default(),
        }
    }

    /// Adds one record; a record of another merchant is refused (the
    /// caller's query was wrong, and a report must never mix merchants).
    pub fn add(&mut self, record: &ReportRecord) -> Result<(), ReportError> {
        if record.merchant != self.merchant {
            return Err(ReportError {
                at: format!("record {}#{}", record.terminal, record.seq),
                message: format!(
                    "belongs to merchant {:?}, not {:?}",
                    record.merchant, self.merchant
                ),
            });
        }
        if record.lines.is_empty() {
            return Ok(());
        }
        let accepted = record.accepted();
        for line in &record.lines {
            self.rows
                .entry((
                    record.terminal.clone(),
                    line.benefit.clone(),
                    line.provider.clone(),
                ))
                .or_default()
                .add(record.sign, accepted, line.units, line.amount);
        }
        let units: i64 = record.lines.iter().map(|line| line.units).sum();
        let discount = record.discount();
        self.terminals
            .entry(record.terminal.clone())
            .or_default()
            .add(record.sign, accepted, units, discount);
        self.total.add(record.sign, accepted, units, discount);
        Ok(())
    }

    /// Adds what reconciliation refused of an accepted record's discount
    /// for one benefit (claimed − payable of its usage lines).
    pub fn add_not_payable(
        &mut self,
        terminal: &str,
        benefit: &str,
        provider: &str,
        amount: Money,
    ) {
        if amount.is_zero() {
            return;
        }
        self.rows
            .entry((terminal.to_owned(), benefit.to_owned(), provider.to_owned()))
            .or_default()
            .not_payable += amount;
        self.terminals
            .entry(terminal.to_owned())
            .or_default()
            .not_payable += amount;
        self.total.not_payable += amount;
    }

    pub fn finish(self, generated_at: Timestamp) -> MerchantReport {
        let label = |terminal: &str| {
            self.terminal_labels
                .get(terminal)
                .cloned()
                .unwrap_or_default()
        };
        MerchantReport {
            merchant: self.merchant.clone(),
            merchant_name: self.merchant_name.clone(),
            period_kind: match self.period {
                Period::Day(_) => "day",
                Period::Month(_) => "month",
            },
            period: self.period.label(),
            first_day: self.period.first_day(),
            last_day: self.period.last_day(),
            time_zone: REPORT_ZONE,
            generated_at,
            rows: self
                .rows
                .iter()
                .map(|((terminal, benefit, provider), figures)| MerchantRow {
                    terminal: terminal.clone(),
                    terminal_label: label(terminal),
                    benefit: benefit.clone(),
                    provider: provider.clone(),
                    figures: *figures,
                })
                .collect(),
            terminals: self
                .terminals
                .iter()
                .map(|(terminal, figures)| TerminalTotal {
                    terminal: terminal.clone(),
                    terminal_label: label(terminal),
                    figures: *figures,
                })
                .collect(),
            total: self.total,
        }
    }
}

impl MerchantReport {
    pub const CSV_HEADER: [&'static str; 10] = [
        "row",
        "terminal",
        "terminal_label",
        "benefit",
        "provider",
        "transactions",
        "units",
        "discount_eur",
        "not_accepted_eur",
        "not_payable_eur",
    ];

    /// One CSV table: `line` rows, then a `terminal_total` per terminal,
    /// then the `total`; the first column says which.
    pub fn to_csv(&self) -> String {
        let mut rows: Vec<[String; 10]> = Vec::new();
        let figures = |f: &Figures| {
            [
                f.transactions.to_string(),
                f.units.to_string(),
                f.discount.to_string(),
                f.not_accepted.to_string(),
                f.not_payable.to_string(),
            ]
        };
        for row in &self.rows {
            let [t, u, d, n, p] = figures(&row.figures);
            rows.push([
                "line".into(),
                row.terminal.clone(),
                row.terminal_label.clone(),
                row.benefit.clone(),
                row.provider.clone(),
                t,
                u,
                d,
                n,
                p,
            ]);
        }
        for total in &self.terminals {
            let [t, u, d, n, p] = figures(&total.figures);
            rows.push([
                "terminal_total".into(),
                total.terminal.clone(),
                total.terminal_label.clone(),
                String::new(),
                String::new(),
                t,
                u,
                d,
                n,
                p,
            ]);
        }
        let [t, u, d, n, p] = figures(&self.total);
        rows.push([
            "total".into(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            t,
            u,
            d,
            n,
            p,
        ]);
        write_csv(&Self::CSV_HEADER, rows)
    }

    /// A printable HTML document (no scripts, a print stylesheet).
    pub fn to_html(&self) -> String {
        let title = format!(
            "Benefit discounts — {} — {} {}",
            self.merchant_name,
            if self.period_kind == "day" {
                "day"
            } else {
                "month"
            },
            self.period
        );
        let mut body = String::new();
        let _ = write!(
            body,
            "<header><h1>{}</h1><dl>\
             <dt>Merchant</dt><dd>{} ({})</dd>\
             <dt>Period</dt><dd>{} to {} ({})</dd>\
             <dt>Generated</dt><dd>{}</dd></dl></header>",
            escape("Benefit discounts"),
            escape(&self.merchant_name),
            escape(&self.merchant),
            self.first_day,
            self.last_day,
            escape(self.time_zone),
            escape(&self.generated_at.to_string()),
        );
        body.push_str(
            "<table><caption>Per terminal, benefit and provider</caption><thead><tr>\
             <th>Terminal</th><th>Benefit</th><th>Provider</th>\
             <th class=\"n\">Transactions</th><th class=\"n\">Units</th>\
             <th class=\"n\">Discount, EUR</th><th class=\"n\">Not accepted, EUR</th>\
             <th class=\"n\">Not payable, EUR</th></tr></thead><tbody>",
        );
        let cells = |f: &Figures| {
            format!(
                "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td>",
                f.transactions, f.units, f.discount, f.not_accepted, f.not_payable
            )
        };
        let terminal_name = |terminal: &str, label: &str| {
            if label.is_empty() {
                escape(terminal)
            } else {
                format!("{} ({})", escape(terminal), escape(label))
            }
        };
        for terminal in &self.terminals {
            for row in self.rows.iter().filter(|r| r.terminal == terminal.terminal) {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td>{}</td><td>{}</td>{}</tr>",
                    terminal_name(&row.terminal, &row.terminal_label),
                    escape(&row.benefit),
                    escape(&row.provider),
                    cells(&row.figures)
                );
            }
            let _ = write!(
                body,
                "<tr class=\"subtotal\"><th colspan=\"3\">Total {}</th>{}</tr>",
                terminal_name(&terminal.terminal, &terminal.terminal_label),
                cells(&terminal.figures)
            );
        }
        if self.rows.is_empty() {
            body.push_str(
                "<tr><td colspan=\"8\">No benefit transactions in this period.</td></tr>",
            );
        }
        let _ = write!(
            body,
            "</tbody><tfoot><tr class=\"total\"><th colspan=\"3\">Total</th>{}</tr></tfoot></table>\
             <p class=\"note\">Discount: accepted records. Not accepted: discount in records \
             flagged or held at verification, not payable unless cleared. Not payable: discount \
             of accepted records that reconciliation across terminals found beyond a limit. \
             Days are local to {}.</p>",
            cells(&self.total),
            escape(self.time_zone)
        );
        html_document(&title, &body)
    }
}

/// Usage of one benefit at one merchant in the month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderRow {
    pub benefit: String,
    pub merchant: String,
    pub merchant_name: String,
    pub transactions: i64,
    pub recipients: u64,
    pub units: i64,
    pub discount: Money,
    pub not_accepted: Money,
}

/// Spent (accepted discount of the provider's benefit in the month)
/// against the expected amount set in the budget register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetLine {
    pub benefit: String,
    pub expected: Option<Money>,
    pub spent: Money,
    pub remaining: Option<Money>,
    /// `"42.5"`: spent / expected × 100, one decimal; `None` without a budget.
    pub used_percent: Option<String>,
}

/// A record of this provider not accepted at ingestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenFlag {
    pub terminal: String,
    pub seq: u64,
    pub at: Timestamp,
    pub merchant: String,
    pub outcome: String,
    pub reason: Option<String>,
    /// The provider's part of the record's discount.
    pub discount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderReport {
    pub provider: String,
    pub provider_name: String,
    pub month: String,
    pub first_day: Date,
    pub last_day: Date,
    pub time_zone: &'static str,
    pub generated_at: Timestamp,
    pub usage: Vec<ProviderRow>,
    pub budgets: Vec<BudgetLine>,
    /// Records of this month not accepted at ingestion (flagged or held
    /// when verified), with the provider's part of their discount.
    pub open_flags: Vec<OpenFlag>,
    /// Open flags of the ledger (reconciliation, fraud and integrity
    /// checks) that concern the provider's money, whatever month they
    /// were raised in: each waits for a reviewer.
    pub ledger_flags: Vec<LedgerFlag>,
}

/// An open flag of the ledger, as the report lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LedgerFlag {
    pub id: String,
    /// `offline_overuse`, `discount_mismatch`, `impossible_travel`, …
    pub kind: &'static str,
    pub raised_at: Timestamp,
    pub terminal: Option<String>,
    pub seq: Option<u64>,
    pub merchant: Option<String>,
}

#[derive(Default)]
struct ProviderCell {
    figures: Figures,
    recipients: HashSet<String>,
}

/// Builds a [`ProviderReport`] from records fed page by page.
pub struct ProviderReportBuilder {
    provider: String,
    provider_name: String,
    period: Period,
    merchant_names: HashMap<String, String>,
    cells: BTreeMap<(String, String), ProviderCell>,
    flags: Vec<OpenFlag>,
}

/// Open flags listed at most; the count beyond is not kept.
pub const OPEN_FLAGS_MAX: usize = 1_000;

/// The earliest [`OPEN_FLAGS_MAX`] flags, oldest first.
fn sort_and_trim(flags: &mut Vec<OpenFlag>) {
    flags.sort_by(|a, b| (a.at, &a.terminal, a.seq).cmp(&(b.at, &b.terminal, b.seq)));
    flags.truncate(OPEN_FLAGS_MAX);
}

impl ProviderReportBuilder {
    pub fn new(
        provider: &str,
        provider_name: &str,
        period: Period,
        merchant_names: HashMap<String, String>,
    ) -> ProviderReportBuilder {
        ProviderReportBuilder {
            provider: provider.to_owned(),
            provider_name: provider_name.to_owned(),
            period,
            merchant_names,
            cells: BTreeMap::new(),
            flags: Vec::new(),
        }
    }

    /// Adds one record; only its lines funded by this provider count.
    pub fn add(&mut self, record: &ReportRecord) {
        let accepted = record.accepted();
        let mut own = Money::from_cents(0);
        for line in record.lines.iter().filter(|l| l.provider == self.provider) {
            let cell = self
                .cells
                .entry((line.benefit.clone(), record.merchant.clone()))
                .or_default();
            cell.figures
                .add(record.sign, accepted, line.units, line.amount);
            if accepted && record.sign > 0 {
                cell.recipients.insert(record.recipient.clone());
            }
            own += line.amount;
        }
        if !accepted && own.is_positive() {
            // Records may come in any order (merchant by merchant): keep
            // the earliest, bounded, by trimming now and then.
            if self.flags.len() >= 2 * OPEN_FLAGS_MAX {
                sort_and_trim(&mut self.flags);
            }
            self.flags.push(OpenFlag {
                terminal: record.terminal.clone(),
                seq: record.seq,
                at: record.at,
                merchant: record.merchant.clone(),
                outcome: record.outcome.clone(),
                reason: record.reason.clone(),
                discount: if record.sign < 0 { -own } else { own },
            });
        }
    }

    /// `budgets`: expected cents per benefit for the month; `benefits`:
    /// every benefit of the provider, so that one without usage still
    /// shows its budget.
    pub fn finish(
        self,
        budgets: &HashMap<String, i64>,
        benefits: &[String],
        ledger_flags: Vec<LedgerFlag>,
        generated_at: Timestamp,
    ) -> ProviderReport {
        let mut spent: BTreeMap<String, Money> = benefits
            .iter()
            .map(|b| (b.clone(), Money::from_cents(0)))
            .collect();
        for benefit in budgets.keys() {
            spent.entry(benefit.clone()).or_insert(Money::from_cents(0));
        }
        for ((benefit, _), cell) in &self.cells {
            *spent.entry(benefit.clone()).or_insert(Money::from_cents(0)) += cell.figures.discount;
        }
        let budgets = spent
            .into_iter()
            .map(|(benefit, spent)| {
                let expected = budgets.get(&benefit).map(|c| Money::from_cents(*c));
                BudgetLine {
                    remaining: expected.map(|e| e - spent),
                    used_percent: expected.and_then(|e| percent(spent, e)),
                    expected,
                    spent,
                    benefit,
                }
            })
            .collect();
        let mut flags = self.flags;
        sort_and_trim(&mut flags);
        ProviderReport {
            provider: self.provider.clone(),
            provider_name: self.provider_name.clone(),
            month: self.period.label(),
            first_day: self.period.first_day(),
            last_day: self.period.last_day(),
            time_zone: REPORT_ZONE,
            generated_at,
            usage: self
                .cells
                .into_iter()
                .map(|((benefit, merchant), cell)| ProviderRow {
                    merchant_name: self
                        .merchant_names
                        .get(&merchant)
                        .cloned()
                        .unwrap_or_default(),
                    benefit,
                    merchant,
                    transactions: cell.figures.transactions,
                    recipients: cell.recipients.len() as u64,
                    units: cell.figures.units,
                    discount: cell.figures.discount,
                    not_accepted: cell.figures.not_accepted,
                })
                .collect(),
            budgets,
            open_flags: flags,
            ledger_flags,
        }
    }
}

/// `spent / expected × 100` with one decimal, half up; `None` for a zero budget.
fn percent(spent: Money, expected: Money) -> Option<String> {
    if !expected.is_positive() {
        return None;
    }
    let ratio = spent.decimal() * rust_decimal::Decimal::from(100) / expected.decimal();
    let mut ratio =
        ratio.round_dp_with_strategy(1, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    // Always one decimal, so that a column of percentages lines up.
    ratio.rescale(1);
    Some(ratio.to_string())
}

/// Which table of the provider report a CSV holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderTable {
    Usage,
    Budget,
    Flags,
}

impl ProviderTable {
    pub fn parse(text: &str) -> Result<ProviderTable, String> {
        match text {
            "usage" => Ok(ProviderTable::Usage),
            "budget" => Ok(ProviderTable::Budget),
            "flags" => Ok(ProviderTable::Flags),
            other => Err(format!(
                "table: {other:?} is not one of usage, budget, flags"
            )),
        }
    }
}

impl ProviderReport {
    pub fn to_csv(&self, table: ProviderTable) -> String {
        match table {
            ProviderTable::Usage => write_csv(
                &[
                    "month",
                    "benefit",
                    "merchant",
                    "merchant_name",
                    "transactions",
                    "recipients",
                    "units",
                    "discount_eur",
                    "not_accepted_eur",
                ],
                self.usage.iter().map(|row| {
                    [
                        self.month.clone(),
                        row.benefit.clone(),
                        row.merchant.clone(),
                        row.merchant_name.clone(),
                        row.transactions.to_string(),
                        row.recipients.to_string(),
                        row.units.to_string(),
                        row.discount.to_string(),
                        row.not_accepted.to_string(),
                    ]
                }),
            ),
            ProviderTable::Budget => write_csv(
                &[
                    "month",
                    "benefit",
                    "expected_eur",
                    "spent_eur",
                    "remaining_eur",
                    "used_percent",
                ],
                self.budgets.iter().map(|line| {
                    [
                        self.month.clone(),
                        line.benefit.clone(),
                        optional(line.expected),
                        line.spent.to_string(),
                        optional(line.remaining),
                        line.used_percent.clone().unwrap_or_default(),
                    ]
                }),
            ),
            ProviderTable::Flags => write_csv(
                &[
                    "source",
                    "flag",
                    "terminal",
                    "seq",
                    "at",
                    "merchant",
                    "outcome_or_kind",
                    "reason",
                    "discount_eur",
                ],
                self.open_flags
                    .iter()
                    .map(|flag| {
                        [
                            "ingestion".to_owned(),
                            String::new(),
                            flag.terminal.clone(),
                            flag.seq.to_string(),
                            flag.at.to_string(),
                            flag.merchant.clone(),
                            flag.outcome.clone(),
                            flag.reason.clone().unwrap_or_default(),
                            flag.discount.to_string(),
                        ]
                    })
                    .chain(self.ledger_flags.iter().map(|flag| {
                        [
                            "ledger".to_owned(),
                            flag.id.clone(),
                            flag.terminal.clone().unwrap_or_default(),
                            flag.seq.map(|seq| seq.to_string()).unwrap_or_default(),
                            flag.raised_at.to_string(),
                            flag.merchant.clone().unwrap_or_default(),
                            flag.kind.to_owned(),
                            String::new(),
                            String::new(),
                        ]
                    })),
            ),
        }
    }

    pub fn to_html(&self) -> String {
        let title = format!(
            "Benefit usage — {} — month {}",
            self.provider_name, self.month
        );
        let mut body = String::new();
        let _ = write!(
            body,
            "<header><h1>Benefit usage</h1><dl>\
             <dt>Provider</dt><dd>{} ({})</dd>\
             <dt>Period</dt><dd>{} to {} ({})</dd>\
             <dt>Generated</dt><dd>{}</dd></dl></header>",
            escape(&self.provider_name),
            escape(&self.provider),
            self.first_day,
            self.last_day,
            escape(self.time_zone),
            escape(&self.generated_at.to_string()),
        );
        body.push_str(
            "<table><caption>Usage per benefit and merchant</caption><thead><tr>\
             <th>Benefit</th><th>Merchant</th><th class=\"n\">Transactions</th>\
             <th class=\"n\">Recipients</th><th class=\"n\">Units</th>\
             <th class=\"n\">Discount, EUR</th><th class=\"n\">Not accepted, EUR</th>\
             </tr></thead><tbody>",
        );
        for row in &self.usage {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{} ({})</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&row.benefit),
                escape(&row.merchant_name),
                escape(&row.merchant),
                row.transactions,
                row.recipients,
                row.units,
                row.discount,
                row.not_accepted
            );
        }
        if self.usage.is_empty() {
            body.push_str("<tr><td colspan=\"7\">No usage in this month.</td></tr>");
        }
        body.push_str(
            "</tbody></table><table><caption>Budget</caption><thead><tr>\
             <th>Benefit</th><th class=\"n\">Expected, EUR</th><th class=\"n\">Spent, EUR</th>\
             <th class=\"n\">Remaining, EUR</th><th class=\"n\">Used, %</th></tr></thead><tbody>",
        );
        for line in &self.budgets {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
                 <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                escape(&line.benefit),
                optional(line.expected),
                line.spent,
                optional(line.remaining),
                escape(line.used_percent.as_deref().unwrap_or(""))
            );
        }
        let _ = write!(
            body,
            "</tbody></table><table><caption>Open flags ({})</caption><thead><tr>\
             <th>Terminal</th><th class=\"n\">Seq</th><th>At</th><th>Merchant</th>\
             <th>Outcome</th><th>Reason</th><th class=\"n\">Discount, EUR</th></tr></thead><tbody>",
            self.open_flags.len()
        );
        for flag in &self.open_flags {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td class=\"n\">{}</td></tr>",
                escape(&flag.terminal),
                flag.seq,
                escape(&flag.at.to_string()),
                escape(&flag.merchant),
                escape(&flag.outcome),
                escape(flag.reason.as_deref().unwrap_or("")),
                flag.discount
            );
        }
        let _ = write!(
            body,
            "</tbody></table><table><caption>Open ledger flags ({})</caption><thead><tr>\
             <th>Flag</th><th>Kind</th><th>Raised</th><th>Terminal</th><th class=\"n\">Seq</th>\
             <th>Merchant</th></tr></thead><tbody>",
            self.ledger_flags.len()
        );
        for flag in &self.ledger_flags {
            let _ = write!(
                body,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
                escape(&flag.id),
                escape(flag.kind),
                escape(&flag.raised_at.to_string()),
                escape(flag.terminal.as_deref().unwrap_or("")),
                flag.seq.map(|seq| seq.to_string()).unwrap_or_default(),
                escape(flag.merchant.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</tbody></table>");
        html_document(&title, &body)
    }
}

fn optional(money: Option<Money>) -> String {
    money.map(|m| m.to_string()).unwrap_or_default()
}

/// Writes a header and rows with the csv crate (RFC 4180 quoting, CRLF).
fn write_csv<const N: usize>(
    header: &[&str; N],
    rows: impl IntoIterator<Item = [String; N]>,
) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; a failure would leave the output short,
    // which the tests that parse it back would catch.
    let _ = writer.write_record(header);
    for row in rows {
        let _ = writer.write_record(&row);
    }
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes).unwrap_or_default()
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em;color:#111}\
h1{font-size:1.4em;margin:0 0 .5em}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em;margin:0 0 1.5em}\
dt{font-weight:600}dd{margin:0}table{border-collapse:collapse;width:100%;margin:0 0 1.5em}\
caption{text-align:left;font-weight:600;padding:.3em 0}th,td{border:1px solid #999;padding:.25em .5em;text-align:left}\
.n{text-align:right;font-variant-numeric:tabular-nums}.subtotal th,.subtotal td{background:#f2f2f2}\
.total th,.total td{font-weight:700;border-top:2px solid #111}.note{font-size:.85em;color:#444}\
@media print{body{margin:0;font-size:10pt}@page{size:A4;margin:15mm}thead{display:table-header-group}\
tr{page-break-inside:avoid}.subtotal th,.subtotal td{background:none}}";

/// A whole HTML document around `body` (already escaped).
fn html_document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>{body}</body></html>\n",
        escape(title)
    )
}

/// The months a report or an aggregate covers, for labels: `2026-03`.
pub fn month_of(at: Timestamp) -> String {
    month_label(at.to_zoned(zone()).date())
}

#[cfg(test)]
mod tests;
