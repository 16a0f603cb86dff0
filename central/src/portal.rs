//! The recipient portal's view of one person, as a pure function: the
//! benefits granted to them and to their minor children, each with its
//! conditions in readable form, and what they used (per benefit and month,
//! and the last transactions).
//!
//! A child is shown while under 18 on the request date, from the birth
//! date imported with the recipient or, failing that, the one an old-form
//! personal code carries (`DDMMYY-CNNNN`, century digit `C`). A child
//! without a known birth date is not shown: the portal cannot prove the
//! child is a minor.
//!
//! Deliberately absent: recipient references, credential hashes,
//! terminals and anything about other people. This module does no I/O; the
//! HTTP layer reads the store and logs the access.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;
use shared::model::{Benefit, Discount, Period};
use shared::money::Money;

use crate::reports::ReportRecord;
use crate::store::people::Person;
use crate::store::{Group, RecipientEntries};

/// Last transactions listed per benefit.
pub const LAST_TRANSACTIONS: usize = 10;
/// Months of usage shown, counting the current one.
pub const USAGE_MONTHS: i32 = 13;
/// Age at which a child leaves the guardian's view.
pub const ADULT_AGE_YEARS: i16 = 18;

/// A personal code in both written forms, `DDMMYY-NNNNN` and `DDMMYYNNNNN`:
/// imports may hold either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalCode {
    pub dashed: String,
    pub plain: String,
}

impl PersonalCode {
    /// Checks the shape: 11 digits, optionally with a dash after the sixth.
    pub fn parse(text: &str) -> Result<PersonalCode, String> {
        let text = text.trim();
        let plain: String = match text.len() {
            12 if text.as_bytes()[6] == b'-' => format!("{}{}", &text[..6], &text[7..]),
            11 => text.to_owned(),
            _ => {
                return Err(format!(
                    "personal_code: must be 11 digits, written DDMMYY-NNNNN or DDMMYYNNNNN (got {} characters)",
                    text.chars().count()
                ))
            }
        };
        if !plain.bytes().all(|b| b.is_ascii_digit()) {
            return Err(
                "personal_code: must be 11 digits, written DDMMYY-NNNNN or DDMMYYNNNNN".to_owned(),
            );
        }
        Ok(PersonalCode {
            dashed: format!("{}-{}", &plain[..6], &plain[6..]),
            plain,
        })
    }

    /// Both forms, for a lookup.
    pub fn forms(&self) -> Vec<String> {
        vec![self.dashed.clone(), self.plain.clone()]
    }
}

/// The birth date an old-form personal code carries (`DDMMYY` and the
/// century digit 0/1/2 for 18xx/19xx/20xx); `None` for the new `32…` form
/// or anything that is not a real date.
pub fn birth_date_from_code(code: &str) -> Option<Date> {
    let plain = PersonalCode::parse(code).ok()?.plain;
    let digit = |idx: usize| i16::from(plain.as_bytes()[idx] - b'0');
    if plain.starts_with("32") {
        return None;
    }
    let century = match digit(6) {
        0 => 1800,
        1 => 1900,
        2 => 2000,
        _ => return None,
    };
    let day = digit(0) * 10 + digit(1);
    let month = digit(2) * 10 + digit(3);
    let year = century + digit(4) * 10 + digit(5);
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// `true` while the person has not had their 18th birthday by `today`.
pub fn is_minor(birth_date: Date, today: Date) -> bool {
    match birth_date.checked_add(ADULT_AGE_YEARS.years()) {
        Ok(adult_on) => today < adult_on,
        Err(_) => false,
    }
}

/// A benefit's conditions, in words a parent reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conditions {
    /// `100 % off`, `2.50 EUR off each unit`, `each unit costs at most 1.00 EUR`.
    pub discount: String,
    pub max_per_transaction: Option<String>,
    /// `at most 1 a day`, `at most 10.00 EUR a month`.
    pub limits: Vec<String>,
    /// `Monday, Tuesday, …`; `every day` when unrestricted.
    pub days: String,
    /// The product categories it covers (`meal`, `transport`).
    pub categories: Vec<String>,
    pub time_zone: String,
}

/// Readable conditions of a benefit definition.
pub fn conditions(benefit: &Benefit) -> Conditions {
    let discount = match &benefit.discount {
        Discount::Percent(percent) => format!("{percent} % off"),
        Discount::Amount(amount) => format!("{amount} EUR off each unit"),
        Discount::FixedPrice(price) => format!("each unit costs at most {price} EUR"),
    };
    let per = |period: Period| match period {
        Period::Day => "a day",
        Period::Week => "a week (Monday to Sunday)",
        Period::Month => "a month",
        Period::Year => "a year",
    };
    let mut limits = Vec::new();
    for limit in &benefit.limits {
        if let Some(count) = limit.max_count {
            limits.push(format!("at most {count} {}", per(limit.period)));
        }
        if let Some(amount) = limit.max_amount {
            limits.push(format!("at most {amount} EUR {}", per(limit.period)));
        }
    }
    const NAMES: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = match &benefit.weekdays {
        None => "every day".to_owned(),
        Some(days) => {
            let mut days = days.clone();
            days.sort_unstable();
            days.dedup();
            days.iter()
                .filter_map(|d| NAMES.get(usize::from(d.saturating_sub(1))))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    Conditions {
        discount,
        max_per_transaction: benefit
            .max_per_transaction
            .map(|m| format!("at most {m} EUR per purchase")),
        limits,
        days,
        categories: benefit.categories.clone(),
        time_zone: benefit.time_zone.name().to_owned(),
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthUsage {
    pub month: String,
    pub transactions: i64,
    pub discount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    /// Local wall time in the benefit's zone, `2026-03-02T12:05:00+02:00`.
    pub at: String,
    pub merchant: String,
    pub merchant_name: String,
    /// The discount this benefit gave; negative for a cancelled purchase.
    pub amount: Money,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BenefitView {
    pub benefit: String,
    pub name: String,
    pub provider: String,
    pub provider_name: String,
    /// `grant`, or `group` with the group's label in `group`.
    pub granted_by: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The entitlement's own validity, intersected with the benefit's.
    pub valid_from: Option<Date>,
    pub valid_to: Option<Date>,
    pub conditions: Conditions,
    pub usage: Vec<MonthUsage>,
    pub last_transactions: Vec<Transaction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChildView {
    pub name: Option<String>,
    pub birth_date: Date,
    pub benefits: Vec<BenefitView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersonView {
    pub name: Option<String>,
    pub as_of: Date,
    pub benefits: Vec<BenefitView>,
    pub children: Vec<ChildView>,
}

/// One recipient reference with what the store knows of it.
#[derive(Debug, Clone)]
pub struct RecipientFacts {
    pub person: Person,
    pub entries: RecipientEntries,
    /// Accepted records of this recipient in the usage window, decoded.
    pub records: Vec<ReportRecord>,
}

/// The registers the view names things from.
pub struct Registers<'a> {
    pub benefits: &'a [Benefit],
    pub groups: &'a [Group],
    pub providers: &'a HashMap<String, String>,
    pub merchants: &'a HashMap<String, String>,
}

/// The first day of the usage window: the first of the month
/// [`USAGE_MONTHS`]` - 1` months before `today`'s.
pub fn usage_since(today: Date) -> Date {
    today
        .first_of_month()
        .checked_sub((USAGE_MONTHS - 1).months())
        .unwrap_or(today.first_of_month())
}

/// The person's view. `own`: the person's recipient references (a person
/// may be registered by several providers); `children`: every child any
/// of them is guardian of (minors are chosen here).
pub fn person_view(
    own: &[RecipientFacts],
    children: &[RecipientFacts],
    registers: &Registers<'_>,
    today: Date,
) -> PersonView {
    let name = own.iter().find_map(|facts| facts.person.name.clone());
    let mut minors: BTreeMap<(Date, String), ChildView> = BTreeMap::new();
    for child in children {
        let birth = child.person.birth_date.or_else(|| {
            child
                .person
                .personal_code
                .as_deref()
                .and_then(birth_date_from_code)
        });
        let Some(birth) = birth else { continue };
        if !is_minor(birth, today) {
            continue;
        }
        let view = minors
            .entry((birth, child.person.recipient.clone()))
            .or_insert_with(|| ChildView {
                name: child.person.name.clone(),
                birth_date: birth,
                benefits: Vec::new(),
            });
        view.benefits
            .extend(benefits_of(std::slice::from_ref(child), registers, today));
    }
    PersonView {
        name,
        as_of: today,
        benefits: benefits_of(own, registers, today),
        children: minors.into_values().collect(),
    }
}

fn benefits_of(
    facts: &[RecipientFacts],
    registers: &Registers<'_>,
    today: Date,
) -> Vec<BenefitView> {
    let mut out: Vec<BenefitView> = Vec::new();
    for fact in facts {
        for benefit in registers.benefits {
            let Some((granted_by, group, from, to)) = entitlement(benefit, fact, registers, today)
            else {
                continue;
            };
            if out.iter().any(|view| view.benefit == benefit.id) {
                continue;
            }
            let (usage, last) = usage_of(benefit, &fact.records, registers);
            out.push(BenefitView {
                benefit: benefit.id.clone(),
                name: benefit.display_label("lv").to_owned(),
                provider: benefit.provider.clone(),
                provider_name: registers
                    .providers
                    .get(&benefit.provider)
                    .cloned()
                    .unwrap_or_default(),
                granted_by,
                group,
                valid_from: later(from, benefit.valid_from),
                valid_to: earlier(to, benefit.valid_to),
                conditions: conditions(benefit),
                usage,
                last_transactions: last,
            });
        }
    }
    out.sort_by(|a, b| a.benefit.cmp(&b.benefit));
    out
}

type Entitlement = (&'static str, Option<String>, Option<Date>, Option<Date>);

/// How the recipient is entitled to the benefit today or later: a direct
/// grant first, else a membership in one of the benefit's groups. An
/// entitlement that ended before `today` is not shown.
fn entitlement(
    benefit: &Benefit,
    fact: &RecipientFacts,
    registers: &Registers<'_>,
    today: Date,
) -> Option<Entitlement> {
    let current = |to: Option<Date>| to.is_none_or(|to| to >= today);
    if let Some(grant) = fact
        .entries
        .grants
        .iter()
        .find(|g| g.benefit == benefit.id && current(g.valid_to))
    {
        return Some(("grant", None, grant.valid_from, grant.valid_to));
    }
    let membership = fact
        .entries
        .memberships
        .iter()
        .find(|m| benefit.groups.contains(&m.group) && current(m.valid_to))?;
    let label = registers
        .groups
        .iter()
        .find(|g| g.id == membership.group)
        .map_or_else(|| membership.group.clone(), |g| g.label.clone());
    Some((
        "group",
        Some(label),
        membership.valid_from,
        membership.valid_to,
    ))
}

fn later(a: Option<Date>, b: Option<Date>) -> Option<Date> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn earlier(a: Option<Date>, b: Option<Date>) -> Option<Date> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn usage_of(
    benefit: &Benefit,
    records: &[ReportRecord],
    registers: &Registers<'_>,
) -> (Vec<MonthUsage>, Vec<Transaction>) {
    let zone: &TimeZone = benefit.time_zone.tz();
    let mut months: BTreeMap<String, MonthUsage> = BTreeMap::new();
    let mut last: Vec<(Timestamp, Transaction)> = Vec::new();
    for record in records.iter().filter(|r| r.accepted()) {
        let amount: Money = record
            .lines
            .iter()
            .filter(|line| line.benefit == benefit.id && line.provider == benefit.provider)
            .map(|line| line.amount)
            .sum();
        let touched = record
            .lines
            .iter()
            .any(|line| line.benefit == benefit.id && line.provider == benefit.provider);
        if !touched {
            continue;
        }
        let amount = if record.sign < 0 { -amount } else { amount };
        let local = record.at.to_zoned(zone.clone());
        let month = format!("{:04}-{:02}", local.year(), local.month());
        let entry = months.entry(month.clone()).or_insert_with(|| MonthUsage {
            month,
            transactions: 0,
            discount: Money::from_cents(0),
        });
        entry.transactions += record.sign;
        entry.discount += amount;
        last.push((
            record.at,
            Transaction {
                at: local.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string(),
                merchant: record.merchant.clone(),
                merchant_name: registers
                    .merchants
                    .get(&record.merchant)
                    .cloned()
                    .unwrap_or_default(),
                amount,
            },
        ));
    }
    last.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    last.truncate(LAST_TRANSACTIONS);
    (
        months.into_values().collect(),
        last.into_iter().map(|(_, t)| t).collect(),
    )
}

#[cfg(test)]
mod tests;
