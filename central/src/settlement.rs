//! Settlements: what a provider owes a merchant for a period, exactly as
//! the register proves it, and the documents (invoice, credit note) that
//! ask for it.
//!
//! A settlement covers one merchant × provider × period (a calendar month
//! by default). It holds:
//!
//! - **items**: every usage record it settles, with the amount (the
//!   payable discount, or the change of it for an adjustment);
//! - **lines**: the period's records per benefit and tax treatment: records,
//!   units, what terminals gave (claimed) and what is payable;
//! - **adjustments**: changes to records of earlier periods or already
//!   settled records (late arrivals, late voids, reconciliation re-runs),
//!   per benefit, treatment and direction;
//! - **documents**: per tax class, an invoice for what is owed and a credit
//!   note for negative adjustments, with net/VAT split and VAT breakdown;
//! - a **number** `S-{provider}-{merchant}-{period}-{n}` and an ISO 11649
//!   **creditor reference** derived from it.
//!
//! Issued settlements are never rewritten: the [`Ledger`] remembers what
//! was settled per record, and the next settlement carries the difference
//! between what is payable now and what was settled as an adjustment.
//! `docs/settlements.md` explains contents, VAT treatments and numbering.
//!
//! VAT: a benefit funded as a tariff discount (`Funding::TariffDiscount`)
//! pays part of a VAT-inclusive price, so its amount is split into net and
//! VAT at the line's rate ([`VatRules`]); a loss compensation
//! (`Funding::LossCompensation`) is outside the scope of VAT (UBL category
//! `O`). EN 16931 forbids mixing category `O` with others in one document,
//! so each class gets its own invoice.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use shared::model::{category_covers, Benefit, Funding};
use shared::money::{Money, Percent};
use shared::wire::keys::Hash;

use crate::creditor_ref::CreditorReference;
use crate::reconcile::{Calendar, Decision, Outcome, RecordKey, UsageRecord};

/// VAT rates for tariff-discount benefits: a benefit's own rate, else the
/// rate of the longest matching category prefix, else the standard rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VatRules {
    pub standard: Percent,
    /// Category prefix (`transport` covers `transport.bus`) → rate.
    #[serde(default)]
    pub by_category: BTreeMap<String, Percent>,
    /// Benefit id → rate; wins over categories.
    #[serde(default)]
    pub by_benefit: BTreeMap<String, Percent>,
}

impl VatRules {
    /// Latvia (Value Added Tax Law, rates in force in 2026): standard 21 %;
    /// reduced 12 % for domestic passenger transport (`transport`). Canteen
    /// and school meals are catering services at the standard rate. Other
    /// reduced rates (medicines, infant food, fresh fruit and vegetables,
    /// books 5 %) have no benefit category yet: add them per category or
    /// per benefit when a provider needs them.
    pub fn latvia() -> VatRules {
        VatRules {
            standard: percent("21"),
            by_category: BTreeMap::from([("transport".to_owned(), percent("12"))]),
            by_benefit: BTreeMap::new(),
        }
    }

    pub fn rate(&self, benefit: &str, category: &str) -> Percent {
        if let Some(rate) = self.by_benefit.get(benefit) {
            return *rate;
        }
        self.by_category
            .iter()
            .filter(|(prefix, _)| category_covers(prefix, category))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(self.standard, |(_, rate)| *rate)
    }
}

impl Default for VatRules {
    fn default() -> VatRules {
        VatRules::latvia()
    }
}

fn percent(constant: &str) -> Percent {
    Percent::parse(constant).expect("a constant percentage parses")
}

/// How an amount is taxed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// Tariff discount: VAT-inclusive at this rate (UBL category `S`).
    Vat(Percent),
    /// Loss compensation: outside the scope of VAT (UBL category `O`).
    OutOfScope,
}

impl Treatment {
    pub fn class(self) -> TaxClass {
        match self {
            Treatment::Vat(_) => TaxClass::Vat,
            Treatment::OutOfScope => TaxClass::OutOfScope,
        }
    }
}

/// Which documents an amount goes into: EN 16931 allows several VAT rates
/// in one invoice but no category `O` beside any other category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxClass {
    Vat,
    OutOfScope,
}

impl TaxClass {
    fn suffix(self) -> &'static str {
        match self {
            TaxClass::Vat => "V",
            TaxClass::OutOfScope => "O",
        }
    }
}

/// An inclusive range of local dates, in the benefits' time zones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementPeriod {
    pub start: Date,
    /// Last day, inclusive.
    pub end: Date,
}

impl SettlementPeriod {
    /// A calendar month, the default period.
    pub fn month(year: i16, month: i8) -> Result<SettlementPeriod, SettlementError> {
        let start = Date::new(year, month, 1).map_err(|err| SettlementError {
            at: "period".into(),
            kind: SettlementErrorKind::BadPeriod(err.to_string()),
        })?;
        Ok(SettlementPeriod {
            start,
            end: start.last_of_month(),
        })
    }

    pub fn new(start: Date, end: Date) -> Result<SettlementPeriod, SettlementError> {
        if end < start {
            return Err(SettlementError {
                at: "period".into(),
                kind: SettlementErrorKind::BadPeriod(format!("{end} is before {start}")),
            });
        }
        Ok(SettlementPeriod { start, end })
    }

    /// `2026-03` for a calendar month, else `2026-03-01_2026-03-15`.
    pub fn label(&self) -> String {
        if self.start.day() == 1 && self.end == self.start.last_of_month() {
            format!("{:04}-{:02}", self.start.year(), self.start.month())
        } else {
            format!("{}_{}", self.start, self.end)
        }
    }

    pub fn contains(&self, date: Date) -> bool {
        self.start <= date && date <= self.end
    }
}

/// What has been settled for one record so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settled {
    /// Σ of the record's items over all issued settlements.
    pub amount: Money,
    /// The last invoice that carried a positive amount for it: what a
    /// credit note for it refers to.
    pub invoice: Option<String>,
}

/// What earlier settlements settled: per record, and how many settlements
/// were issued per (provider, merchant, period label) for numbering. The
/// store may persist it as two tables instead of re-reading settlements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ledger {
    pub settled: HashMap<RecordKey, Settled>,
    pub issued: HashMap<(String, String, String), u32>,
}

impl Ledger {
    pub fn from_settlements(settlements: &[Settlement]) -> Ledger {
        let mut ledger = Ledger::default();
        for settlement in settlements {
            ledger.record(settlement);
        }
        ledger
    }

    /// Adds an issued settlement.
    pub fn record(&mut self, settlement: &Settlement) {
        *self
            .issued
            .entry((
                settlement.provider.clone(),
                settlement.merchant.clone(),
                settlement.period.label(),
            ))
            .or_default() += 1;
        for item in &settlement.items {
            let entry = self.settled.entry(item.key.clone()).or_insert(Settled {
                amount: Money::ZERO,
                invoice: None,
            });
            entry.amount += item.amount;
            if item.amount.is_positive() {
                entry.invoice = settlement
                    .documents
                    .iter()
                    .find(|document| {
                        document.kind == DocumentKind::Invoice
                            && document.class == item.treatment.class()
                    })
                    .map(|document| document.id.clone());
            }
        }
    }

    /// The `n` of the next settlement for this provider, merchant and period.
    pub fn next_sequence(&self, provider: &str, merchant: &str, period: &SettlementPeriod) -> u32 {
        self.issued
            .get(&(provider.to_owned(), merchant.to_owned(), period.label()))
            .copied()
            .unwrap_or(0)
            + 1
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settlement {
    /// `S-{provider}-{merchant}-{period}-{n}`.
    pub number: String,
    pub creditor_reference: CreditorReference,
    pub provider: String,
    pub merchant: String,
    pub period: SettlementPeriod,
    pub sequence: u32,
    pub issued_on: Date,
    pub lines: Vec<SettlementLine>,
    pub adjustments: Vec<AdjustmentLine>,
    pub items: Vec<SettlementItem>,
    pub documents: Vec<Document>,
    /// Σ lines + Σ adjustments: what the provider pays (negative: what the
    /// merchant owes back).
    pub total: Money,
}

impl Settlement {
    /// SHA-256 of the settlement's canonical JSON: stored beside it at
    /// issue, it shows that an issued settlement was never changed.
    pub fn fingerprint(&self) -> Result<Hash, SettlementError> {
        let bytes = shared::wire::canonical::to_vec(self).map_err(|err| SettlementError {
            at: self.number.clone(),
            kind: SettlementErrorKind::Encode(err.to_string()),
        })?;
        Ok(Hash::of(&bytes))
    }
}

/// The period's records of one benefit and treatment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementLine {
    pub benefit: String,
    pub label: String,
    pub treatment: Treatment,
    /// Signed records (transactions) with a discount of this benefit.
    pub records: u64,
    /// Units payable (lunches, rides).
    pub units: u64,
    /// What the terminals gave.
    pub claimed: Money,
    /// What the provider pays.
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// More is owed than was settled (late records, a refusal undone).
    Debit,
    /// Less is owed than was settled (a late earlier record took the limit,
    /// a late void).
    Credit,
}

/// Changes to records outside this period, or already settled, per
/// benefit, treatment and direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdjustmentLine {
    pub benefit: String,
    pub label: String,
    pub treatment: Treatment,
    pub direction: Direction,
    pub records: u64,
    /// Signed: negative for credits.
    pub amount: Money,
    /// Earliest and latest local day of the adjusted records.
    pub first_day: Date,
    pub last_day: Date,
    /// Invoices whose amounts this corrects (credits refer to them).
    pub corrects: BTreeSet<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    Regular,
    Adjustment,
}

/// One record in a settlement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettlementItem {
    pub key: RecordKey,
    pub day: Date,
    pub kind: ItemKind,
    pub treatment: Treatment,
    /// Regular: payable (0 when reconciliation refused it all).
    /// Adjustment: payable now − settled before.
    pub amount: Money,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocumentKind {
    Invoice,
    CreditNote,
}

/// An invoice or credit note, ready to render (`crate::einvoice`): all
/// amounts positive, net and VAT already split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// `{settlement}-V`, `{settlement}-O` for invoices; `-VC`, `-OC` for
    /// credit notes.
    pub id: String,
    pub kind: DocumentKind,
    pub class: TaxClass,
    pub lines: Vec<DocumentLine>,
    pub vat_breakdown: Vec<VatBreakdown>,
    pub net_total: Money,
    pub vat_total: Money,
    pub gross_total: Money,
    /// Invoices a credit note corrects.
    pub preceding_invoices: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentLine {
    pub benefit: String,
    pub name: String,
    pub description: String,
    pub treatment: Treatment,
    /// Units for regular lines, records for adjustments.
    pub quantity: u64,
    pub net: Money,
    pub gross: Money,
    pub first_day: Date,
    pub last_day: Date,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VatBreakdown {
    pub treatment: Treatment,
    pub taxable: Money,
    pub tax: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct SettlementError {
    pub at: String,
    pub kind: SettlementErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettlementErrorKind {
    #[error("bad period: {0}")]
    BadPeriod(String),
    #[error("there are {records} records but {decisions} decisions")]
    LengthMismatch { records: usize, decisions: usize },
    #[error("decision is for {0}, not for this record")]
    DecisionMismatch(RecordKey),
    #[error("benefit {0:?} is not defined")]
    UnknownBenefit(String),
    #[error("{0} is not a valid id (1..=128 printable ASCII characters, no spaces)")]
    BadId(String),
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// Splits a VAT-inclusive amount: `vat = round_half_up(gross × r / (100 + r))`,
/// `net = gross − vat`, so that net + VAT is exactly what the register
/// proves. (Computing VAT from the rounded net instead can differ by a
/// cent; EN 16931 BR-CO-17 allows that difference.)
pub fn vat_split(gross: Money, rate: Percent) -> (Money, Money) {
    let rate = rate.decimal();
    let vat = Money::round_half_up(gross.decimal() * rate / (Decimal::ONE_HUNDRED + rate));
    (gross - vat, vat)
}

/// What to settle: one provider and merchant for one period.
#[derive(Debug, Clone)]
pub struct SettlementRequest<'a> {
    pub provider: &'a str,
    pub merchant: &'a str,
    pub period: SettlementPeriod,
    pub issued_on: Date,
}

/// Builds the settlement of one provider × merchant × period from the
/// reconciled records (`decisions[i]` decides `records[i]`; records of
/// other providers or merchants are ignored) and the ledger of earlier
/// settlements. `None` when there is nothing to settle.
pub fn settle(
    benefits: &[Benefit],
    vat: &VatRules,
    records: &[UsageRecord],
    decisions: &[Decision],
    ledger: &Ledger,
    request: &SettlementRequest<'_>,
) -> Result<Option<Settlement>, SettlementError> {
    check_aligned(records, decisions)?;
    let selected: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, record)| {
            record.provider == request.provider && record.merchant == request.merchant
        })
        .map(|(idx, _)| idx)
        .collect();
    let by_id = benefit_index(benefits);
    build(
        &by_id,
        vat,
        records,
        decisions,
        &selected,
        ledger,
        request,
        &mut Calendar::default(),
    )
}

/// Settlements of every provider × merchant with something to settle in
/// `period`, numbered from the ledger, in (provider, merchant) order.
pub fn settle_all(
    benefits: &[Benefit],
    vat: &VatRules,
    records: &[UsageRecord],
    decisions: &[Decision],
    ledger: &Ledger,
    period: SettlementPeriod,
    issued_on: Date,
) -> Result<Vec<Settlement>, SettlementError> {
    check_aligned(records, decisions)?;
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (idx, record) in records.iter().enumerate() {
        groups
            .entry((&record.provider, &record.merchant))
            .or_default()
            .push(idx);
    }
    let by_id = benefit_index(benefits);
    let mut calendar = Calendar::default();
    let mut out = Vec::new();
    for ((provider, merchant), selected) in groups {
        let request = SettlementRequest {
            provider,
            merchant,
            period,
            issued_on,
        };
        if let Some(settlement) = build(
            &by_id,
            vat,
            records,
            decisions,
            &selected,
            ledger,
            &request,
            &mut calendar,
        )? {
            out.push(settlement);
        }
    }
    Ok(out)
}

fn check_aligned(records: &[UsageRecord], decisions: &[Decision]) -> Result<(), SettlementError> {
    if records.len() != decisions.len() {
        return Err(SettlementError {
            at: "decisions".into(),
            kind: SettlementErrorKind::LengthMismatch {
                records: records.len(),
                decisions: decisions.len(),
            },
        });
    }
    Ok(())
}

fn benefit_index(benefits: &[Benefit]) -> HashMap<&str, &Benefit> {
    benefits.iter().map(|b| (b.id.as_str(), b)).collect()
}

/// Running sums of one settlement line or adjustment group.
struct Sums<'a> {
    /// Distinct signed records (a record may discount several lines).
    transactions: HashSet<(&'a str, u64)>,
    units: u64,
    claimed: Money,
    amount: Money,
    first_day: Date,
    last_day: Date,
    corrects: BTreeSet<String>,
}

impl<'a> Sums<'a> {
    fn new(day: Date) -> Sums<'a> {
        Sums {
            transactions: HashSet::new(),
            units: 0,
            claimed: Money::ZERO,
            amount: Money::ZERO,
            first_day: day,
            last_day: day,
            corrects: BTreeSet::new(),
        }
    }
    fn add(
        &mut self,
        record: &'a UsageRecord,
        day: Date,
        units: u32,
        claimed: Money,
        amount: Money,
    ) {
        self.transactions.insert((&record.terminal, record.seq));
        self.units += u64::from(units);
        self.claimed += claimed;
        self.amount += amount;
        self.first_day = self.first_day.min(day);
        self.last_day = self.last_day.max(day);
    }
}

#[allow(clippy::too_many_arguments)]
fn build<'a>(
    by_id: &HashMap<&str, &'a Benefit>,
    vat: &VatRules,
    records: &'a [UsageRecord],
    decisions: &[Decision],
    selected: &[usize],
    ledger: &Ledger,
    request: &SettlementRequest<'_>,
    calendar: &mut Calendar,
) -> Result<Option<Settlement>, SettlementError> {
    for (name, id) in [
        ("provider", request.provider),
        ("merchant", request.merchant),
    ] {
        if !shared::validate::is_valid_id(id) {
            return Err(SettlementError {
                at: name.into(),
                kind: SettlementErrorKind::BadId(id.to_owned()),
            });
        }
    }
    let period = request.period;
    let mut items = Vec::new();
    let mut lines: BTreeMap<(&str, Treatment), Sums> = BTreeMap::new();
    let mut adjustments: BTreeMap<(&str, Treatment, Direction), Sums> = BTreeMap::new();
    for &idx in selected {
        let (record, decision) = (&records[idx], &decisions[idx]);
        let at = || format!("records[{idx}]");
        if decision.key.terminal != record.terminal
            || decision.key.seq != record.seq
            || decision.key.line != record.line
            || decision.key.benefit != record.benefit
        {
            return Err(SettlementError {
                at: at(),
                kind: SettlementErrorKind::DecisionMismatch(decision.key.clone()),
            });
        }
        let Some(benefit) = by_id.get(record.benefit.as_str()) else {
            return Err(SettlementError {
                at: at(),
                kind: SettlementErrorKind::UnknownBenefit(record.benefit.clone()),
            });
        };
        let day = calendar.date(&benefit.time_zone, record.at);
        if day > period.end {
            continue; // a later period's
        }
        let treatment = match benefit.funding {
            Funding::TariffDiscount => Treatment::Vat(vat.rate(&benefit.id, &record.category)),
            Funding::LossCompensation => Treatment::OutOfScope,
        };
        let settled = ledger.settled.get(&decision.key);
        if decision.outcome == Outcome::Voided && settled.is_none() {
            continue; // cancelled before it was ever settled: nothing given
        }
        if period.contains(day) && settled.is_none() {
            lines
                .entry((&benefit.id, treatment))
                .or_insert_with(|| Sums::new(day))
                .add(
                    record,
                    day,
                    decision.payable_count,
                    decision.claimed,
                    decision.payable,
                );
            items.push(SettlementItem {
                key: decision.key.clone(),
                day,
                kind: ItemKind::Regular,
                treatment,
                amount: decision.payable,
            });
            continue;
        }
        let before = settled.map_or(Money::ZERO, |settled| settled.amount);
        let delta = decision.payable - before;
        if delta.is_zero() {
            continue;
        }
        let direction = if delta.is_positive() {
            Direction::Debit
        } else {
            Direction::Credit
        };
        let sums = adjustments
            .entry((&benefit.id, treatment, direction))
            .or_insert_with(|| Sums::new(day));
        sums.add(record, day, 0, Money::ZERO, delta);
        if let Some(invoice) = settled.and_then(|settled| settled.invoice.as_ref()) {
            sums.corrects.insert(invoice.clone());
        }
        items.push(SettlementItem {
            key: decision.key.clone(),
            day,
            kind: ItemKind::Adjustment,
            treatment,
            amount: delta,
        });
    }
    if items.is_empty() {
        return Ok(None);
    }

    let label_of = |id: &str| {
        by_id.get(id).map_or(id.to_owned(), |benefit| {
            benefit.display_label("lv").to_owned()
        })
    };
    let lines: Vec<SettlementLine> = lines
        .into_iter()
        .map(|((benefit, treatment), sums)| SettlementLine {
            benefit: benefit.to_owned(),
            label: label_of(benefit),
            treatment,
            records: sums.transactions.len() as u64,
            units: sums.units,
            claimed: sums.claimed,
            amount: sums.amount,
        })
        .collect();
    let adjustments: Vec<AdjustmentLine> = adjustments
        .into_iter()
        .map(|((benefit, treatment, direction), sums)| AdjustmentLine {
            benefit: benefit.to_owned(),
            label: label_of(benefit),
            treatment,
            direction,
            records: sums.transactions.len() as u64,
            amount: sums.amount,
            first_day: sums.first_day,
            last_day: sums.last_day,
            corrects: sums.corrects,
        })
        .collect();
    let total = lines.iter().map(|line| line.amount).sum::<Money>()
        + adjustments.iter().map(|line| line.amount).sum::<Money>();
    let sequence = ledger.next_sequence(request.provider, request.merchant, &period);
    let number = format!(
        "S-{}-{}-{}-{}",
        request.provider,
        request.merchant,
        period.label(),
        sequence
    );
    let documents = documents(&number, &period, &lines, &adjustments);
    Ok(Some(Settlement {
        creditor_reference: CreditorReference::for_settlement(&number),
        number,
        provider: request.provider.to_owned(),
        merchant: request.merchant.to_owned(),
        period,
        sequence,
        issued_on: request.issued_on,
        lines,
        adjustments,
        items,
        documents,
        total,
    }))
}

/// Invoice and credit note per tax class: regular lines and debit
/// adjustments are invoiced; credit adjustments go into a credit note that
/// names the invoices it corrects.
fn documents(
    number: &str,
    period: &SettlementPeriod,
    lines: &[SettlementLine],
    adjustments: &[AdjustmentLine],
) -> Vec<Document> {
    let mut out = Vec::new();
    for class in [TaxClass::Vat, TaxClass::OutOfScope] {
        let mut invoice_lines: Vec<DocumentLine> = lines
            .iter()
            .filter(|line| line.treatment.class() == class && line.amount.is_positive())
            .map(|line| DocumentLine {
                benefit: line.benefit.clone(),
                name: line.label.clone(),
                description: format!(
                    "{}: {} units in {} transactions, {}; given {} EUR, payable {} EUR",
                    line.benefit,
                    line.units,
                    line.records,
                    period.label(),
                    line.claimed,
                    line.amount
                ),
                treatment: line.treatment,
                quantity: line.units.max(1),
                net: line.amount,
                gross: line.amount,
                first_day: period.start,
                last_day: period.end,
            })
            .collect();
        let adjustment_line = |line: &AdjustmentLine| DocumentLine {
            benefit: line.benefit.clone(),
            name: format!("{} (adjustment)", line.label),
            description: format!(
                "{}: {} transactions of {} to {} {}",
                line.benefit,
                line.records,
                line.first_day,
                line.last_day,
                if line.corrects.is_empty() {
                    "not settled before".to_owned()
                } else {
                    format!(
                        "correcting {}",
                        line.corrects.iter().cloned().collect::<Vec<_>>().join(", ")
                    )
                }
            ),
            treatment: line.treatment,
            quantity: line.records.max(1),
            net: abs(line.amount),
            gross: abs(line.amount),
            first_day: line.first_day,
            last_day: line.last_day,
        };
        invoice_lines.extend(
            adjustments
                .iter()
                .filter(|line| {
                    line.treatment.class() == class && line.direction == Direction::Debit
                })
                .map(adjustment_line),
        );
        let credits: Vec<&AdjustmentLine> = adjustments
            .iter()
            .filter(|line| line.treatment.class() == class && line.direction == Direction::Credit)
            .collect();
        let credit_lines: Vec<DocumentLine> =
            credits.iter().map(|line| adjustment_line(line)).collect();
        if !invoice_lines.is_empty() {
            out.push(document(
                format!("{number}-{}", class.suffix()),
                DocumentKind::Invoice,
                class,
                invoice_lines,
                Vec::new(),
            ));
        }
        if !credit_lines.is_empty() {
            let preceding: BTreeSet<String> = credits
                .iter()
                .flat_map(|line| line.corrects.iter().cloned())
                .collect();
            out.push(document(
                format!("{number}-{}C", class.suffix()),
                DocumentKind::CreditNote,
                class,
                credit_lines,
                preceding.into_iter().collect(),
            ));
        }
    }
    out
}

fn abs(amount: Money) -> Money {
    if amount.is_negative() {
        -amount
    } else {
        amount
    }
}

/// Splits each VAT rate's gross into net and VAT once, then shares the net
/// among that rate's lines by largest remainder, so that line nets add up
/// exactly to the breakdown's taxable amount (EN 16931 BR-S-08).
fn document(
    id: String,
    kind: DocumentKind,
    class: TaxClass,
    mut lines: Vec<DocumentLine>,
    preceding_invoices: Vec<String>,
) -> Document {
    let mut by_treatment: BTreeMap<Treatment, Vec<usize>> = BTreeMap::new();
    for (idx, line) in lines.iter().enumerate() {
        by_treatment.entry(line.treatment).or_default().push(idx);
    }
    let mut vat_breakdown = Vec::new();
    for (treatment, members) in by_treatment {
        let gross: Money = members.iter().map(|&idx| lines[idx].gross).sum();
        let (net, tax) = match treatment {
            Treatment::Vat(rate) => vat_split(gross, rate),
            Treatment::OutOfScope => (gross, Money::ZERO),
        };
        let shares = share_by_largest_remainder(
            net.cents(),
            &members
                .iter()
                .map(|&idx| lines[idx].gross.cents())
                .collect::<Vec<_>>(),
        );
        for (&idx, share) in members.iter().zip(shares) {
            lines[idx].net = Money::from_cents(share);
        }
        vat_breakdown.push(VatBreakdown {
            treatment,
            taxable: net,
            tax,
        });
    }
    let net_total = vat_breakdown.iter().map(|b| b.taxable).sum();
    let vat_total = vat_breakdown.iter().map(|b| b.tax).sum();
    let gross_total = lines.iter().map(|line| line.gross).sum();
    Document {
        id,
        kind,
        class,
        lines,
        vat_breakdown,
        net_total,
        vat_total,
        gross_total,
        preceding_invoices,
    }
}

/// Shares `total` (cents) in proportion to `weights` (cents, ≥ 0): floors
/// first, then one cent each to the largest remainders (earlier first on
/// ties). The shares add up to `total` exactly.
fn share_by_largest_remainder(total: i64, weights: &[i64]) -> Vec<i64> {
    let weight_sum: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    if weight_sum == 0 {
        let mut shares = vec![0; weights.len()];
        if let Some(first) = shares.first_mut() {
            *first = total;
        }
        return shares;
    }
    let mut shares = Vec::with_capacity(weights.len());
    let mut remainders = Vec::with_capacity(weights.len());
    for (idx, &weight) in weights.iter().enumerate() {
        let product = i128::from(total) * i128::from(weight);
        shares.push(i64::try_from(product.div_euclid(weight_sum)).unwrap_or(0));
        remainders.push((product.rem_euclid(weight_sum), idx));
    }
    let mut left = total - shares.iter().sum::<i64>();
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for (_, idx) in remainders {
        if left <= 0 {
            break;
        }
        shares[idx] += 1;
        left -= 1;
    }
    shares
}

impl fmt::Display for Treatment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Treatment::Vat(rate) => write!(f, "VAT {rate} %"),
            Treatment::OutOfScope => f.write_str("outside the scope of VAT"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! Settlements as a provider's accountant would check them: the sums,
    //! the VAT split, the numbering, and that corrections land in the next
    //! settlement while the issued one stays as it was.

    use super::*;
    use crate::reconcile::{reconcile, reconcile_late, Policies};
    use jiff::civil::date;
    use jiff::Timestamp;
    use proptest::prelude::*;

    fn m(text: &str) -> Money {
        Money::parse_signed(text).expect("money in test")
    }

    fn benefits() -> Vec<Benefit> {
        [
            r#"{"id":"lunch","provider":"riga","categories":["meal.lunch"],"discount":{"percent":"100"},
                "limits":[{"period":"day","max_count":1}]}"#,
            r#"{"id":"bus","provider":"riga","categories":["transport"],"discount":{"percent":"50"}}"#,
            r#"{"id":"lunch-comp","provider":"riga","categories":["meal"],"discount":{"amount":"1.00"},
                "funding":"loss_compensation"}"#,
        ]
        .iter()
        .map(|json| serde_json::from_str(json).expect("benefit JSON in test"))
        .collect()
    }

    fn rec(
        terminal: &str,
        seq: u64,
        at: &str,
        benefit: &str,
        category: &str,
        amount: &str,
    ) -> UsageRecord {
        UsageRecord {
            terminal: terminal.into(),
            seq,
            line: 0,
            at: at.parse::<Timestamp>().expect("timestamp in test"),
            recipient: "R-1".into(),
            credential: "cred-1".into(),
            benefit: benefit.into(),
            provider: "riga".into(),
            merchant: "canteen".into(),
            category: category.into(),
            amount: m(amount),
            count: 1,
            snapshot: 1,
            voided: false,
            record_hash: Hash::of(format!("{terminal}#{seq}").as_bytes()),
        }
    }

    fn march() -> SettlementPeriod {
        SettlementPeriod::month(2026, 3).expect("valid month")
    }

    fn settle_ok(
        records: &[UsageRecord],
        decisions: &[Decision],
        ledger: &Ledger,
        period: SettlementPeriod,
    ) -> Option<Settlement> {
        settle(
            &benefits(),
            &VatRules::latvia(),
            records,
            decisions,
            ledger,
            &SettlementRequest {
                provider: "riga",
                merchant: "canteen",
                period,
                issued_on: period.end.tomorrow().expect("a next day"),
            },
        )
        .expect("valid settlement input")
    }

    #[test]
    fn vat_split_is_inclusive_and_exact() {
        let rate = |text| Percent::parse(text).expect("percent");
        assert_eq!(vat_split(m("2.50"), rate("21")), (m("2.07"), m("0.43")));
        assert_eq!(vat_split(m("1.00"), rate("12")), (m("0.89"), m("0.11")));
        assert_eq!(
            vat_split(m("1000.00"), rate("21")),
            (m("826.45"), m("173.55"))
        );
        assert_eq!(
            vat_split(Money::ZERO, rate("21")),
            (Money::ZERO, Money::ZERO)
        );
    }

    #[test]
    fn latvian_rates_by_category_and_benefit() {
        let mut rules = VatRules::latvia();
        let rate = |text| Percent::parse(text).expect("percent");
        assert_eq!(rules.rate("lunch", "meal.lunch"), rate("21"));
        assert_eq!(rules.rate("bus", "transport.bus"), rate("12"));
        assert_eq!(
            rules.rate("bus", "transportation"),
            rate("21"),
            "prefix is per dot segment"
        );
        rules.by_benefit.insert("lunch".into(), rate("12"));
        assert_eq!(rules.rate("lunch", "meal.lunch"), rate("12"));
    }

    #[test]
    fn month_settlement_groups_per_benefit_and_splits_documents_by_vat_class() {
        let records = [
            rec(
                "T-A",
                1,
                "2026-03-02T11:00:00+02:00",
                "lunch",
                "meal.lunch",
                "2.50",
            ),
            // Same day on another till: not payable (one lunch a day).
            rec(
                "T-B",
                1,
                "2026-03-02T11:30:00+02:00",
                "lunch",
                "meal.lunch",
                "2.50",
            ),
            rec(
                "T-A",
                2,
                "2026-03-03T11:00:00+02:00",
                "lunch",
                "meal.lunch",
                "2.50",
            ),
            rec(
                "T-A",
                3,
                "2026-03-03T16:00:00+02:00",
                "bus",
                "transport.bus",
                "0.75",
            ),
            rec(
                "T-A",
                4,
                "2026-03-04T11:00:00+02:00",
                "lunch-comp",
                "meal.lunch",
                "1.00",
            ),
            // 1 April 00:30 in Riga is April, though still March in UTC.
            rec(
                "T-A",
                5,
                "2026-03-31T21:30:00Z",
                "lunch",
                "meal.lunch",
                "2.50",
            ),
        ];
        let decisions = reconcile(&benefits(), &Policies::new(), &records)
            .expect("reconciles")
            .decisions;
        let settlement = settle_ok(&records, &decisions, &Ledger::default(), march())
            .expect("something to settle");
        assert_eq!(settlement.number, "S-riga-canteen-2026-03-1");
        assert_eq!(
            settlement.creditor_reference,
            CreditorReference::for_settlement("S-riga-canteen-2026-03-1")
        );
        assert_eq!(settlement.total, m("6.75"));
        let lines: Vec<(&str, u64, u64, Money, Money)> = settlement
            .lines
            .iter()
            .map(|l| (l.benefit.as_str(), l.records, l.units, l.claimed, l.amount))
            .collect();
        assert_eq!(
            lines,
            [
                ("bus", 1, 1, m("0.75"), m("0.75")),
                ("lunch", 3, 2, m("7.50"), m("5.00")),
                ("lunch-comp", 1, 1, m("1.00"), m("1.00")),
            ]
        );
        assert_eq!(settlement.items.len(), 5, "April's record waits");
        let ids: Vec<(&str, DocumentKind)> = settlement
            .documents
            .iter()
            .map(|d| (d.id.as_str(), d.kind))
            .collect();
        assert_eq!(
            ids,
            [
                ("S-riga-canteen-2026-03-1-V", DocumentKind::Invoice),
                ("S-riga-canteen-2026-03-1-O", DocumentKind::Invoice),
            ]
        );
        let vat_invoice = &settlement.documents[0];
        let breakdown: Vec<(Treatment, Money, Money)> = vat_invoice
            .vat_breakdown
            .iter()
            .map(|b| (b.treatment, b.taxable, b.tax))
            .collect();
        let rate = |text| Treatment::Vat(Percent::parse(text).expect("percent"));
        assert_eq!(
            breakdown,
            [
                (rate("12"), m("0.67"), m("0.08")),
                (rate("21"), m("4.13"), m("0.87")),
            ]
        );
        assert_eq!(vat_invoice.gross_total, m("5.75"));
        assert_eq!(vat_invoice.net_total + vat_invoice.vat_total, m("5.75"));
        let out_of_scope = &settlement.documents[1];
        assert_eq!(out_of_scope.vat_total, Money::ZERO);
        assert_eq!(out_of_scope.net_total, m("1.00"));
    }

    #[test]
    fn late_arrival_goes_into_the_next_settlement_and_the_issued_one_is_untouched() {
        // Goal: a till syncs its 11:00 lunch of 2 March after March was
        // settled with the 11:30 lunch of another till. Method: settle March,
        // re-reconcile, settle April; check adjustments, credit note, and
        // that totals over both settlements equal what is payable now.
        let benefits = benefits();
        let on_time = vec![
            rec(
                "T-B",
                1,
                "2026-03-02T11:30:00+02:00",
                "lunch",
                "meal.lunch",
                "2.50",
            ),
            rec(
                "T-B",
                2,
                "2026-04-01T11:30:00+03:00",
                "lunch",
                "meal.lunch",
                "2.50",
            ),
        ];
        let first = reconcile(&benefits, &Policies::new(), &on_time)
            .expect("reconciles")
            .decisions;
        let march_settlement =
            settle_ok(&on_time, &first, &Ledger::default(), march()).expect("march");
        let fingerprint = march_settlement.fingerprint().expect("encodes");
        let ledger = Ledger::from_settlements(std::slice::from_ref(&march_settlement));
        assert!(
            settle_ok(&on_time, &first, &ledger, march()).is_none(),
            "nothing new for March"
        );

        let mut all = on_time.clone();
        all.push(rec(
            "T-A",
            1,
            "2026-03-02T11:00:00+02:00",
            "lunch",
            "meal.lunch",
            "2.50",
        ));
        let again = reconcile_late(&benefits, &Policies::new(), &first, &all, Timestamp::MIN)
            .expect("late run");
        let april = SettlementPeriod::month(2026, 4).expect("april");
        let april_settlement = settle_ok(&all, &again.decisions, &ledger, april).expect("april");
        assert_eq!(april_settlement.number, "S-riga-canteen-2026-04-1");
        let adjustments: Vec<(Direction, Money, Vec<String>)> = april_settlement
            .adjustments
            .iter()
            .map(|a| (a.direction, a.amount, a.corrects.iter().cloned().collect()))
            .collect();
        assert_eq!(
            adjustments,
            [
                (Direction::Debit, m("2.50"), vec![]),
                (
                    Direction::Credit,
                    m("-2.50"),
                    vec!["S-riga-canteen-2026-03-1-V".to_owned()]
                ),
            ]
        );
        assert_eq!(april_settlement.total, m("2.50"));
        let credit = april_settlement
            .documents
            .iter()
            .find(|d| d.kind == DocumentKind::CreditNote)
            .expect("a credit note");
        assert_eq!(credit.id, "S-riga-canteen-2026-04-1-VC");
        assert_eq!(credit.gross_total, m("2.50"));
        assert_eq!(credit.preceding_invoices, ["S-riga-canteen-2026-03-1-V"]);
        let invoiced: Money = april_settlement
            .documents
            .iter()
            .map(|d| match d.kind {
                DocumentKind::Invoice => d.gross_total,
                DocumentKind::CreditNote => -d.gross_total,
            })
            .sum();
        assert_eq!(invoiced, april_settlement.total);

        // Conservation: everything settled so far is exactly what is payable now.
        let payable_now: Money = again.decisions.iter().map(|d| d.payable).sum();
        assert_eq!(march_settlement.total + april_settlement.total, payable_now);
        assert_eq!(
            march_settlement.fingerprint().expect("encodes"),
            fingerprint
        );
        let mut ledger = ledger;
        ledger.record(&april_settlement);
        assert!(settle_ok(&all, &again.decisions, &ledger, april).is_none());
    }

    #[test]
    fn a_sale_voided_before_settlement_is_absent_and_lines_count_transactions() {
        let mut voided = rec(
            "T-A",
            1,
            "2026-03-02T09:00:00+02:00",
            "bus",
            "transport.bus",
            "0.75",
        );
        voided.voided = true;
        // One record discounting two cart lines of the same benefit.
        let first_line = rec(
            "T-A",
            2,
            "2026-03-02T10:00:00+02:00",
            "bus",
            "transport.bus",
            "0.75",
        );
        let mut second_line = first_line.clone();
        second_line.line = 1;
        let records = [voided, first_line, second_line];
        let decisions = reconcile(&benefits(), &Policies::new(), &records)
            .expect("reconciles")
            .decisions;
        let settlement =
            settle_ok(&records, &decisions, &Ledger::default(), march()).expect("march");
        assert_eq!(settlement.items.len(), 2, "the voided sale is not an item");
        assert_eq!(settlement.lines[0].records, 1, "one transaction");
        assert_eq!(settlement.lines[0].units, 2);
        assert_eq!(settlement.lines[0].claimed, m("1.50"));
    }

    #[test]
    fn misaligned_input_is_refused() {
        let records = [rec(
            "T-A",
            1,
            "2026-03-02T11:00:00+02:00",
            "lunch",
            "meal.lunch",
            "2.50",
        )];
        let err = settle(
            &benefits(),
            &VatRules::latvia(),
            &records,
            &[],
            &Ledger::default(),
            &SettlementRequest {
                provider: "riga",
                merchant: "canteen",
                period: march(),
                issued_on: date(2026, 4, 1),
            },
        )
        .expect_err("no decisions");
        assert_eq!(
            err.to_string(),
            "decisions: there are 1 records but 0 decisions"
        );
        assert!(SettlementPeriod::new(date(2026, 3, 2), date(2026, 3, 1)).is_err());
        assert_eq!(
            SettlementPeriod::new(date(2026, 3, 1), date(2026, 3, 15))
                .expect("valid")
                .label(),
            "2026-03-01_2026-03-15"
        );
    }

    proptest! {
        #[test]
        fn shares_add_up_and_follow_the_weights(total in 0i64..1_000_000, weights in proptest::collection::vec(0i64..100_000, 1..20)) {
            let shares = share_by_largest_remainder(total, &weights);
            prop_assert_eq!(shares.iter().sum::<i64>(), total);
            let weight_sum: i64 = weights.iter().sum();
            if weight_sum > 0 {
                for (share, weight) in shares.iter().zip(&weights) {
                    // Each share is within one cent of its exact proportion.
                    let exact = total as f64 * *weight as f64 / weight_sum as f64;
                    prop_assert!((*share as f64 - exact).abs() < 1.0 + 1e-9);
                }
            }
        }

        #[test]
        fn vat_split_adds_back_up(cents in 0i64..10_000_000, rate in prop_oneof![Just("21"), Just("12"), Just("5")]) {
            let gross = Money::from_cents(cents);
            let rate = Percent::parse(rate).expect("percent");
            let (net, vat) = vat_split(gross, rate);
            prop_assert_eq!(net + vat, gross);
            // Within a cent of VAT computed from the net (EN 16931 BR-CO-17).
            let from_net = Money::round_half_up(net.decimal() * rate.decimal() / Decimal::ONE_HUNDRED);
            prop_assert!((vat - from_net).cents().abs() <= 1);
        }
    }
}
