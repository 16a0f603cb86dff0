//! Pure decisions of the agent: what a cashier may see about a credential,
//! what a cart is quoted, and which record a commit writes. No I/O, no
//! clock: the shell ([`crate::app`]) reads the snapshot and the journal,
//! calls these functions with `now`, and writes what they return.
//!
//! The history rule (what counts against a limit) lives here, in
//! [`history_for`]: central's per-day usage from the snapshot, which by
//! contract leaves out this terminal's own records, plus every record in
//! this terminal's own journal that has not been voided. A record is thus
//! counted exactly once whether or not central has seen it yet.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use jiff::civil::Date;
use jiff::Timestamp;
use shared::model::{Benefit, CartLine, Grant, HistoryEntry, Period, Quote, RefusalReason, Zone};
use shared::money::Money;
use shared::rules::{self, Ineligibility};
use shared::time::LocalNow;
use shared::wire::canonical;
use shared::wire::keys::Hash;
use shared::wire::record::{
    BenefitRef, CredentialRef, QuoteInputs, RecordBody, RecordKind, RecordType, RECORD_VERSION,
};
use shared::wire::snapshot::UsageDay;

/// The benefits of the current snapshot, each with the hash of its
/// canonical definition (records name benefits by id and hash).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    benefits: Vec<Benefit>,
    hashes: Vec<Hash>,
}

impl Catalog {
    /// `benefits` and `hashes` are parallel; sorted by id for determinism.
    pub fn new(mut entries: Vec<(Benefit, Hash)>) -> Catalog {
        entries.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        let (benefits, hashes) = entries.into_iter().unzip();
        Catalog { benefits, hashes }
    }

    pub fn benefits(&self) -> &[Benefit] {
        &self.benefits
    }

    pub fn get(&self, id: &str) -> Option<&Benefit> {
        self.position(id).map(|idx| &self.benefits[idx])
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.benefits
            .binary_search_by(|benefit| benefit.id.as_str().cmp(id))
            .ok()
    }

    fn hash_of(&self, id: &str) -> Option<Hash> {
        self.position(id).map(|idx| self.hashes[idx])
    }

    /// The label a cashier sees for a benefit id, or the id when unknown.
    pub fn label(&self, id: &str, language: &str) -> String {
        self.get(id)
            .map(|benefit| benefit.display_label(language).to_owned())
            .unwrap_or_else(|| id.to_owned())
    }
}

/// What the snapshot says about one recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientData {
    pub entitlements: Vec<Grant>,
    pub usage: Vec<UsageDay>,
}

/// One benefit used by one of this terminal's own records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalUse {
    pub at: Timestamp,
    pub benefit: String,
    pub amount: Money,
    pub count: u32,
}

/// Which limit stopped a benefit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitHit {
    Count { period: Period, max: u32 },
    Amount { period: Period, max: Money },
    PerSale { max: Money },
}

impl LimitHit {
    fn describe(self) -> String {
        match self {
            LimitHit::Count { period, max } => {
                let uses = if max == 1 { "use" } else { "uses" };
                format!(
                    "{} limit reached ({max} {uses} a {})",
                    period_adjective(period),
                    period.as_str()
                )
            }
            LimitHit::Amount { period, max } => format!(
                "{} limit reached ({max} EUR a {})",
                period_adjective(period),
                period.as_str()
            ),
            LimitHit::PerSale { max } => format!("limit per sale reached ({max} EUR)"),
        }
    }

    /// `day`, `week`, `month`, `year` or `sale`.
    pub fn period_name(self) -> &'static str {
        match self {
            LimitHit::Count { period, .. } | LimitHit::Amount { period, .. } => period.as_str(),
            LimitHit::PerSale { .. } => "sale",
        }
    }
}

fn period_adjective(period: Period) -> &'static str {
    match period {
        Period::Day => "daily",
        Period::Week => "weekly",
        Period::Month => "monthly",
        Period::Year => "yearly",
    }
}

/// A clear "no": each variant has its own code and a message a cashier
/// understands. None of them says why a person is entitled; benefits are
/// named only by their label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownCredential,
    BlockedCredential,
    /// A QR token already used for a sale on this terminal.
    TokenAlreadyUsed,
    /// A QR token past its expiry.
    TokenExpired,
    /// A QR token that does not decode or verify.
    TokenInvalid,
    /// The recipient has no benefit this merchant serves.
    NoBenefit,
    BenefitExpired {
        label: String,
        on: Date,
    },
    BenefitNotYetValid {
        label: String,
        from: Date,
    },
    NotValidToday {
        label: String,
    },
    /// Benefits exist, but none covers anything in the cart.
    NoEligibleBenefit {
        labels: Vec<String>,
    },
    LimitReached {
        label: String,
        hit: LimitHit,
    },
    /// Covered items, but nothing left to discount (already free).
    NothingToDiscount,
    /// The commit's re-quote differs from what the POS showed.
    QuoteChanged {
        expected: String,
        actual: String,
    },
}

impl Refusal {
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::UnknownCredential => "unknown_credential",
            Refusal::BlockedCredential => "blocked_credential",
            Refusal::TokenAlreadyUsed => "token_already_used",
            Refusal::TokenExpired => "token_expired",
            Refusal::TokenInvalid => "token_invalid",
            Refusal::NoBenefit => "no_benefit",
            Refusal::BenefitExpired { .. } => "benefit_expired",
            Refusal::BenefitNotYetValid { .. } => "benefit_not_yet_valid",
            Refusal::NotValidToday { .. } => "benefit_not_valid_today",
            Refusal::NoEligibleBenefit { .. } => "no_eligible_benefit",
            Refusal::LimitReached { .. } => "limit_reached",
            Refusal::NothingToDiscount => "nothing_to_discount",
            Refusal::QuoteChanged { .. } => "quote_changed",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::UnknownCredential => {
                "Card not recognised: no benefit is registered for it here".into()
            }
            Refusal::BlockedCredential => {
                "This card is blocked: the holder should contact the benefit provider".into()
            }
            Refusal::TokenAlreadyUsed => {
                "This QR code was already used: ask for a fresh code in the app".into()
            }
            Refusal::TokenExpired => "This QR code has expired: ask for a fresh code in the app".into(),
            Refusal::TokenInvalid => {
                "This QR code is not a valid benefit code: ask for a fresh code in the app".into()
            }
            Refusal::NoBenefit => "No benefit of this card holder applies at this place".into(),
            Refusal::BenefitExpired { label, on } => format!("{label}: expired on {on}"),
            Refusal::BenefitNotYetValid { label, from } => {
                format!("{label}: valid only from {from}")
            }
            Refusal::NotValidToday { label } => format!("{label}: not valid on this day"),
            Refusal::NoEligibleBenefit { labels } => format!(
                "No item in this sale is covered by the holder's benefits ({})",
                labels.join(", ")
            ),
            Refusal::LimitReached { label, hit } => format!("{label}: {}", hit.describe()),
            Refusal::NothingToDiscount => "Nothing left to discount in this sale".into(),
            Refusal::QuoteChanged { expected, actual } => format!(
                "The amount changed since the quote (now due {actual}, shown {expected}): quote again"
            ),
        }
    }
}

/// A benefit as the cashier may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisibleBenefit {
    pub id: String,
    pub label: String,
    pub categories: Vec<String>,
    /// The last day it is valid, when bounded.
    pub valid_to: Option<Date>,
    pub limits: Vec<LimitState>,
}

/// How much of one limit is used in its current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitState {
    Count {
        period: Period,
        max: u32,
        used: u64,
    },
    Amount {
        period: Period,
        max: Money,
        used: Money,
    },
}

/// The benefits eligible now, with their labels and limit usage.
pub fn identify(
    catalog: &Catalog,
    recipient: &RecipientData,
    local: &[LocalUse],
    now: Timestamp,
    language: &str,
) -> Result<Vec<VisibleBenefit>, Refusal> {
    let eligible = rules::eligible(catalog.benefits(), &recipient.entitlements, &[], now);
    if eligible.is_empty() {
        return Err(ineligibility_refusal(catalog, recipient, now, language));
    }
    let history = history_for(&eligible, recipient, local, now);
    Ok(eligible
        .iter()
        .map(|benefit| {
            let local_now = LocalNow::new(now, benefit.time_zone.tz());
            let grant_end = recipient
                .entitlements
                .iter()
                .filter(|grant| {
                    grant.benefit == benefit.id
                        && shared::model::within(local_now.date, grant.valid_from, grant.valid_to)
                })
                .map(|grant| grant.valid_to)
                .max_by(|a, b| match (a, b) {
                    // An open-ended grant outlasts any bounded one.
                    (None, None) => std::cmp::Ordering::Equal,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (Some(a), Some(b)) => a.cmp(b),
                })
                .flatten();
            let valid_to = match (grant_end, benefit.valid_to) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            VisibleBenefit {
                id: benefit.id.clone(),
                label: benefit.display_label(language).to_owned(),
                categories: benefit.categories.clone(),
                valid_to,
                limits: limit_states(benefit, &history, &local_now),
            }
        })
        .collect())
}

fn limit_states(benefit: &Benefit, history: &[HistoryEntry], local: &LocalNow) -> Vec<LimitState> {
    benefit
        .limits
        .iter()
        .filter_map(|limit| {
            let (start, end) = local.bounds(limit.period);
            let in_period = history
                .iter()
                .filter(|entry| entry.benefit == benefit.id && start <= entry.at && entry.at < end);
            match (limit.max_count, limit.max_amount) {
                (Some(max), _) => Some(LimitState::Count {
                    period: limit.period,
                    max,
                    used: in_period.map(|entry| u64::from(entry.count)).sum(),
                }),
                (None, Some(max)) => Some(LimitState::Amount {
                    period: limit.period,
                    max,
                    used: in_period.map(|entry| entry.amount).sum(),
                }),
                (None, None) => None,
            }
        })
        .collect()
}

/// Why no benefit is eligible now, for the cashier.
fn ineligibility_refusal(
    catalog: &Catalog,
    recipient: &RecipientData,
    now: Timestamp,
    language: &str,
) -> Refusal {
    let mut expired: Option<Refusal> = None;
    let mut later: Option<Refusal> = None;
    let mut weekday: Option<Refusal> = None;
    for grant in &recipient.entitlements {
        let Some(benefit) = catalog.get(&grant.benefit) else {
            continue;
        };
        let label = benefit.display_label(language).to_owned();
        let today = LocalNow::new(now, benefit.time_zone.tz()).date;
        let reason = rules::eligibility(benefit, &recipient.entitlements, &[], now);
        let (from, to) = match reason {
            Some(Ineligibility::BenefitNotValidToday) => (benefit.valid_from, benefit.valid_to),
            Some(Ineligibility::EntitlementNotValidToday) => (grant.valid_from, grant.valid_to),
            Some(Ineligibility::NotOnThisWeekday) => {
                weekday.get_or_insert(Refusal::NotValidToday { label });
                continue;
            }
            Some(Ineligibility::NotEntitled) | None => continue,
        };
        match (from, to) {
            (_, Some(to)) if to < today => {
                let newer = match &expired {
                    Some(Refusal::BenefitExpired { on, .. }) => to > *on,
                    _ => true,
                };
                if newer {
                    expired = Some(Refusal::BenefitExpired { label, on: to });
                }
            }
            (Some(from), _) if from > today => {
                later.get_or_insert(Refusal::BenefitNotYetValid { label, from });
            }
            _ => {}
        }
    }
    // The most useful answer first: a benefit that applies on other days
    // of the week, then one that starts soon, then the latest expiry.
    weekday.or(later).or(expired).unwrap_or(Refusal::NoBenefit)
}

/// The usage that counts against the limits of `eligible` at `now`:
/// central's per-day usage (as entries at the day's local midnight) and
/// this terminal's own records, for benefits with limits, inside the span
/// of their limits' current periods. Sorted for a deterministic record.
pub fn history_for(
    eligible: &[&Benefit],
    recipient: &RecipientData,
    local: &[LocalUse],
    now: Timestamp,
) -> Vec<HistoryEntry> {
    let mut history = Vec::new();
    for benefit in eligible {
        if benefit.limits.is_empty() {
            continue;
        }
        let local_now = LocalNow::new(now, benefit.time_zone.tz());
        let mut start = Timestamp::MAX;
        let mut end = Timestamp::MIN;
        for limit in &benefit.limits {
            let (period_start, period_end) = local_now.bounds(limit.period);
            start = start.min(period_start);
            end = end.max(period_end);
        }
        for day in &recipient.usage {
            if day.benefit != benefit.id {
                continue;
            }
            let Ok(entry) = day.to_history(&benefit.time_zone) else {
                continue;
            };
            if start <= entry.at && entry.at < end {
                history.push(entry);
            }
        }
        for used in local {
            if used.benefit == benefit.id && start <= used.at && used.at < end {
                history.push(HistoryEntry {
                    at: used.at,
                    benefit: used.benefit.clone(),
                    amount: used.amount,
                    count: used.count,
                });
            }
        }
    }
    history.sort_by(|a, b| {
        (a.at, &a.benefit, a.amount, a.count).cmp(&(b.at, &b.benefit, b.amount, b.count))
    });
    history
}

/// A benefit that gave nothing while others gave something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub benefit: String,
    pub label: String,
    pub code: &'static str,
    pub message: String,
}

/// A quote with everything a record needs to prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    pub quote: Quote,
    pub inputs: QuoteInputs,
    pub notes: Vec<Note>,
    /// Per benefit: what this sale uses (amount, units), for local usage.
    pub usage: BTreeMap<String, (Money, u32)>,
}

/// Quotes a cart for a recipient, or says clearly why nothing is given.
pub fn quote(
    catalog: &Catalog,
    snapshot_version: u64,
    recipient: &RecipientData,
    local: &[LocalUse],
    cart: &[CartLine],
    now: Timestamp,
    language: &str,
) -> Result<Quoted, Refusal> {
    let eligible = rules::eligible(catalog.benefits(), &recipient.entitlements, &[], now);
    if eligible.is_empty() {
        return Err(ineligibility_refusal(catalog, recipient, now, language));
    }
    let covering: Vec<&Benefit> = eligible
        .iter()
        .copied()
        .filter(|benefit| cart.iter().any(|line| benefit.covers(&line.category)))
        .collect();
    if covering.is_empty() {
        return Err(Refusal::NoEligibleBenefit {
            labels: eligible
                .iter()
                .map(|benefit| benefit.display_label(language).to_owned())
                .collect(),
        });
    }
    let history = history_for(&eligible, recipient, local, now);
    let quote = rules::quote(&eligible, &history, cart, now);
    let label_of = |id: &str| catalog.label(id, language);

    if !quote.discount_total.is_positive() {
        // The first benefit stopped by a limit names the limit; otherwise
        // everything covered was already free.
        let limited = quote.refused.iter().find(|refusal| {
            matches!(
                refusal.reason,
                RefusalReason::CountLimit
                    | RefusalReason::AmountLimit
                    | RefusalReason::TransactionCap
            )
        });
        return Err(match limited {
            Some(refusal) => {
                let benefit = catalog.get(&refusal.benefit);
                Refusal::LimitReached {
                    label: label_of(&refusal.benefit),
                    hit: benefit
                        .map(|benefit| which_limit(benefit, refusal.reason, &history, now))
                        .unwrap_or(LimitHit::PerSale { max: Money::ZERO }),
                }
            }
            None => Refusal::NothingToDiscount,
        });
    }

    let notes = quote
        .refused
        .iter()
        .map(|refusal| {
            let label = label_of(&refusal.benefit);
            let (code, message) = match (refusal.reason, catalog.get(&refusal.benefit)) {
                (RefusalReason::NothingLeft, _) | (_, None) => (
                    "nothing_left",
                    format!("{label}: nothing left to discount after other benefits"),
                ),
                (reason, Some(benefit)) => (
                    "limit_reached",
                    format!(
                        "{label}: {}",
                        which_limit(benefit, reason, &history, now).describe()
                    ),
                ),
            };
            Note {
                benefit: refusal.benefit.clone(),
                label,
                code,
                message,
            }
        })
        .collect();

    let inputs = QuoteInputs {
        benefits: eligible
            .iter()
            .map(|benefit| BenefitRef {
                hash: catalog.hash_of(&benefit.id).unwrap_or(Hash::GENESIS),
                id: benefit.id.clone(),
            })
            .collect(),
        entitlements: recipient.entitlements.clone(),
        history: history.clone(),
        snapshot: snapshot_version,
    };
    let usage = usage_by_benefit(&eligible, &history, cart, now);
    Ok(Quoted {
        quote,
        inputs,
        notes,
        usage,
    })
}

/// Amount and units each benefit gives on this cart. The engine counts one
/// use per discounted unit, but its quote reports amounts per line; quoting
/// the same cart split into one line per unit walks the units in the same
/// order with the same state (`docs/rules.md` step 5), so the number of
/// one-unit lines a benefit discounts is exactly its number of uses.
fn usage_by_benefit(
    eligible: &[&Benefit],
    history: &[HistoryEntry],
    cart: &[CartLine],
    now: Timestamp,
) -> BTreeMap<String, (Money, u32)> {
    let units: Vec<CartLine> = cart
        .iter()
        .flat_map(|line| {
            std::iter::repeat_n(
                CartLine {
                    qty: 1,
                    ..line.clone()
                },
                line.qty as usize,
            )
        })
        .collect();
    let per_unit = rules::quote(eligible, history, &units, now);
    let mut usage: BTreeMap<String, (Money, u32)> = BTreeMap::new();
    for discount in per_unit.discounts {
        let entry = usage.entry(discount.benefit).or_insert((Money::ZERO, 0));
        entry.0 += discount.amount;
        entry.1 += 1;
    }
    usage
}

/// The limit that stopped `benefit` for `reason`: the first of its limits
/// of that kind already used up by the history, else the first of that kind.
fn which_limit(
    benefit: &Benefit,
    reason: RefusalReason,
    history: &[HistoryEntry],
    now: Timestamp,
) -> LimitHit {
    if reason == RefusalReason::TransactionCap {
        return LimitHit::PerSale {
            max: benefit.max_per_transaction.unwrap_or(Money::ZERO),
        };
    }
    let local = LocalNow::new(now, benefit.time_zone.tz());
    let states = limit_states(benefit, history, &local);
    let want_count = reason == RefusalReason::CountLimit;
    let exhausted = states.iter().find(|state| match state {
        LimitState::Count { max, used, .. } => want_count && *used >= u64::from(*max),
        LimitState::Amount { max, used, .. } => !want_count && used >= max,
    });
    let any_of_kind = states.iter().find(|state| match state {
        LimitState::Count { .. } => want_count,
        LimitState::Amount { .. } => !want_count,
    });
    match exhausted.or(any_of_kind) {
        Some(LimitState::Count { period, max, .. }) => LimitHit::Count {
            period: *period,
            max: *max,
        },
        Some(LimitState::Amount { period, max, .. }) => LimitHit::Amount {
            period: *period,
            max: *max,
        },
        None => LimitHit::PerSale {
            max: benefit.max_per_transaction.unwrap_or(Money::ZERO),
        },
    }
}

/// What the POS showed the customer, sent back with the commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expected {
    pub due: Option<Money>,
    pub discount_total: Option<Money>,
}

/// Refuses a commit whose re-quote differs from what the POS showed.
pub fn check_expected(quote: &Quote, expected: &Expected) -> Result<(), Refusal> {
    if let Some(due) = expected.due {
        if due != quote.due {
            return Err(Refusal::QuoteChanged {
                expected: due.to_string(),
                actual: quote.due.to_string(),
            });
        }
    }
    if let Some(discount) = expected.discount_total {
        if discount != quote.discount_total {
            return Err(Refusal::QuoteChanged {
                expected: format!("discount {discount}"),
                actual: format!("discount {}", quote.discount_total),
            });
        }
    }
    Ok(())
}

/// Identity of the chain position and the terminal a record is written for.
#[derive(Debug, Clone)]
pub struct RecordContext<'a> {
    pub terminal: &'a str,
    pub merchant: &'a str,
    pub zone: &'a Zone,
    pub seq: u64,
    pub prev: Hash,
    pub at: Timestamp,
}

/// `at` as local wall time with its UTC offset, e.g. `2026-03-02T12:05:00+02:00`.
pub fn local_time(at: Timestamp, zone: &Zone) -> String {
    let offset = zone.tz().to_offset(at);
    at.display_with_offset(offset).to_string()
}

/// The record of a sale.
pub fn sale_record(
    ctx: &RecordContext<'_>,
    idempotency_key: &str,
    credential: CredentialRef,
    recipient: &str,
    cart: &[CartLine],
    quoted: &Quoted,
) -> RecordBody {
    RecordBody {
        at: ctx.at,
        cart: cart.to_vec(),
        credential,
        idempotency_key: idempotency_key.to_owned(),
        inputs: quoted.inputs.clone(),
        kind: RecordKind::Sale,
        local_time: local_time(ctx.at, ctx.zone),
        merchant: ctx.merchant.to_owned(),
        prev: ctx.prev,
        quote: quoted.quote.clone(),
        recipient: recipient.to_owned(),
        seq: ctx.seq,
        terminal: ctx.terminal.to_owned(),
        record_type: RecordType::Record,
        v: RECORD_VERSION,
        voids: None,
    }
}

/// The record cancelling `sale`: the same cart, quote and inputs.
pub fn void_record(
    ctx: &RecordContext<'_>,
    idempotency_key: &str,
    sale: &RecordBody,
) -> RecordBody {
    RecordBody {
        at: ctx.at,
        cart: sale.cart.clone(),
        credential: sale.credential.clone(),
        idempotency_key: idempotency_key.to_owned(),
        inputs: sale.inputs.clone(),
        kind: RecordKind::Void,
        local_time: local_time(ctx.at, ctx.zone),
        merchant: ctx.merchant.to_owned(),
        prev: ctx.prev,
        quote: sale.quote.clone(),
        recipient: sale.recipient.clone(),
        seq: ctx.seq,
        terminal: ctx.terminal.to_owned(),
        record_type: RecordType::Record,
        v: RECORD_VERSION,
        voids: Some(sale.seq),
    }
}

/// What makes two commit requests "the same sale": the credential hash and
/// the cart, hashed over their canonical JSON.
pub fn fingerprint(credential_hash: &str, cart: &[CartLine]) -> Hash {
    let bytes = canonical::to_vec(&(credential_hash, cart)).unwrap_or_default();
    Hash::of(&bytes)
}

/// Receipt text for a record: the labels of the benefits, never a reason.
pub fn receipt(record: &RecordBody, catalog: &Catalog, language: &str) -> String {
    const WIDTH: usize = 40;
    let mut out = String::new();
    let title = match record.kind {
        RecordKind::Sale => "BENEFIT RECEIPT".to_owned(),
        RecordKind::Void => format!(
            "VOID of record {}",
            record.voids.map(|seq| seq.to_string()).unwrap_or_default()
        ),
    };
    let line = |out: &mut String, left: &str, right: &str| {
        let left: String = left
            .chars()
            .take(WIDTH.saturating_sub(right.len() + 1))
            .collect();
        let pad = WIDTH.saturating_sub(left.chars().count() + right.len());
        let _ = writeln!(out, "{left}{}{right}", " ".repeat(pad));
    };
    let _ = writeln!(out, "{title}");
    let _ = writeln!(
        out,
        "Terminal {}  Merchant {}",
        record.terminal, record.merchant
    );
    let _ = writeln!(
        out,
        "{}  Record {}",
        record
            .local_time
            .get(..16)
            .unwrap_or(&record.local_time)
            .replace('T', " "),
        record.seq
    );
    let sign = if record.kind == RecordKind::Void {
        ""
    } else {
        "-"
    };
    for (idx, item) in record.cart.iter().enumerate() {
        line(
            &mut out,
            &format!("{} {} x {}", item.sku, item.qty, item.unit_price),
            &item.unit_price.times(item.qty).to_string(),
        );
        for discount in record
            .quote
            .discounts
            .iter()
            .filter(|discount| discount.line as usize == idx)
        {
            line(
                &mut out,
                &format!("  {}", catalog.label(&discount.benefit, language)),
                &format!("{sign}{}", discount.amount),
            );
        }
    }
    line(&mut out, "Total", &record.quote.total.to_string());
    line(
        &mut out,
        "Benefit",
        &format!("{sign}{}", record.quote.discount_total),
    );
    line(&mut out, "Due", &record.quote.due.to_string());
    out
}

#[cfg(test)]
mod tests;
