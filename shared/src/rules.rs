//! The benefit rules engine: which benefits apply, and what they give.
//!
//! Implements `docs/rules.md` (the project's statement of
//! `../shared/spec/benefit-rules.md`). The agent calls [`evaluate`] to quote
//! a cart; central calls the same function on the terminal's recorded inputs
//! to verify it. Pure: no clock, no I/O; `now` is an argument.
//!
//! A benefit that gives nothing is not an error: it is a [`Refusal`] inside
//! the [`Quote`].

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use crate::model::{
    within, Benefit, CartLine, Discount, Grant, HistoryEntry, LineDiscount, Membership, Quote,
    Refusal, RefusalReason,
};
use crate::money::Money;
use crate::time::LocalNow;

/// Everything a quote depends on. Central re-runs [`evaluate`] on exactly
/// these inputs to verify a terminal.
#[derive(Debug, Clone, Copy)]
pub struct QuoteInput<'a> {
    pub benefits: &'a [Benefit],
    pub grants: &'a [Grant],
    pub memberships: &'a [Membership],
    pub history: &'a [HistoryEntry],
    pub cart: &'a [CartLine],
    pub now: Timestamp,
}

/// Eligibility then quote: the whole engine in one call.
pub fn evaluate(input: &QuoteInput<'_>) -> Quote {
    let mut clocks = ZoneClocks::new(input.now);
    let eligible: Vec<&Benefit> = input
        .benefits
        .iter()
        .filter(|benefit| {
            is_eligible(
                benefit,
                input.grants,
                input.memberships,
                clocks.get(benefit),
            )
        })
        .collect();
    quote_with(&eligible, input.history, input.cart, &mut clocks)
}

/// The benefits eligible for a recipient at `now`, in the order given.
pub fn eligible<'a>(
    benefits: &'a [Benefit],
    grants: &[Grant],
    memberships: &[Membership],
    now: Timestamp,
) -> Vec<&'a Benefit> {
    let mut clocks = ZoneClocks::new(now);
    benefits
        .iter()
        .filter(|benefit| is_eligible(benefit, grants, memberships, clocks.get(benefit)))
        .collect()
}

/// Why a benefit is not eligible now; `None` when it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ineligibility {
    /// Today is outside the benefit's own validity.
    BenefitNotValidToday,
    /// The benefit does not apply on this weekday.
    NotOnThisWeekday,
    /// The recipient has a grant or membership for it, but not today.
    EntitlementNotValidToday,
    /// The recipient has no grant or membership for it at all.
    NotEntitled,
}

/// Eligibility with the reason when it fails, for messages at the till.
pub fn eligibility(
    benefit: &Benefit,
    grants: &[Grant],
    memberships: &[Membership],
    now: Timestamp,
) -> Option<Ineligibility> {
    let local = LocalNow::new(now, benefit.time_zone.tz());
    let has_grant = grants.iter().any(|g| g.benefit == benefit.id);
    let has_membership = memberships
        .iter()
        .any(|m| benefit.groups.iter().any(|group| *group == m.group));
    if !has_grant && !has_membership {
        return Some(Ineligibility::NotEntitled);
    }
    if !within(local.date, benefit.valid_from, benefit.valid_to) {
        return Some(Ineligibility::BenefitNotValidToday);
    }
    if let Some(weekdays) = &benefit.weekdays {
        if !weekdays.contains(&local.weekday) {
            return Some(Ineligibility::NotOnThisWeekday);
        }
    }
    if !is_entitled(benefit, grants, memberships, &local) {
        return Some(Ineligibility::EntitlementNotValidToday);
    }
    None
}

fn is_eligible(
    benefit: &Benefit,
    grants: &[Grant],
    memberships: &[Membership],
    local: &LocalNow,
) -> bool {
    within(local.date, benefit.valid_from, benefit.valid_to)
        && benefit
            .weekdays
            .as_ref()
            .is_none_or(|days| days.contains(&local.weekday))
        && is_entitled(benefit, grants, memberships, local)
}

fn is_entitled(
    benefit: &Benefit,
    grants: &[Grant],
    memberships: &[Membership],
    local: &LocalNow,
) -> bool {
    let by_grant = grants.iter().any(|grant| {
        grant.benefit == benefit.id && within(local.date, grant.valid_from, grant.valid_to)
    });
    by_grant
        || memberships.iter().any(|membership| {
            benefit
                .groups
                .iter()
                .any(|group| *group == membership.group)
                && within(local.date, membership.valid_from, membership.valid_to)
        })
}

/// Quotes a cart with benefits already known to be eligible.
pub fn quote(
    eligible: &[&Benefit],
    history: &[HistoryEntry],
    cart: &[CartLine],
    now: Timestamp,
) -> Quote {
    quote_with(eligible, history, cart, &mut ZoneClocks::new(now))
}

/// Local "now" per time zone, computed once per zone per quote: benefits
/// almost always share one zone, and the conversion is the costly part.
struct ZoneClocks {
    now: Timestamp,
    zones: Vec<(String, LocalNow)>,
}

impl ZoneClocks {
    fn new(now: Timestamp) -> ZoneClocks {
        ZoneClocks {
            now,
            zones: Vec::with_capacity(1),
        }
    }

    fn position(&mut self, benefit: &Benefit) -> usize {
        let name = benefit.time_zone.name();
        if let Some(idx) = self.zones.iter().position(|(zone, _)| zone == name) {
            return idx;
        }
        self.zones.push((
            name.to_owned(),
            LocalNow::new(self.now, benefit.time_zone.tz()),
        ));
        self.zones.len() - 1
    }

    fn get(&mut self, benefit: &Benefit) -> &LocalNow {
        let idx = self.position(benefit);
        &self.zones[idx].1
    }
}

/// Running usage of one benefit's limits: the history in the current period
/// plus what this cart has given so far.
struct LimitUsage {
    count_used: Vec<u64>,
    amount_used: Vec<Money>,
}

fn quote_with(
    eligible: &[&Benefit],
    history: &[HistoryEntry],
    cart: &[CartLine],
    clocks: &mut ZoneClocks,
) -> Quote {
    let total: Money = cart
        .iter()
        .map(|line| line.unit_price.times(line.qty))
        .sum();

    // Application order: ascending priority, then id in byte order.
    let mut ordered: Vec<&Benefit> = eligible
        .iter()
        .copied()
        .filter(|benefit| cart.iter().any(|line| benefit.covers(&line.category)))
        .collect();
    ordered.sort_by(|a, b| a.priority.cmp(&b.priority).then_with(|| a.id.cmp(&b.id)));

    // Usage per limit from history, in one pass over the history.
    let mut usages: Vec<LimitUsage> = ordered
        .iter()
        .map(|benefit| LimitUsage {
            count_used: vec![0; benefit.limits.len()],
            amount_used: vec![Money::ZERO; benefit.limits.len()],
        })
        .collect();
    let locals: Vec<LocalNow> = ordered
        .iter()
        .map(|benefit| clocks.get(benefit).clone())
        .collect();
    if ordered.iter().any(|benefit| !benefit.limits.is_empty()) {
        let index: HashMap<&str, usize> = ordered
            .iter()
            .enumerate()
            .filter(|(_, benefit)| !benefit.limits.is_empty())
            .map(|(idx, benefit)| (benefit.id.as_str(), idx))
            .collect();
        for entry in history {
            let Some(&idx) = index.get(entry.benefit.as_str()) else {
                continue;
            };
            let usage = &mut usages[idx];
            for (limit_idx, limit) in ordered[idx].limits.iter().enumerate() {
                if locals[idx].same_period(limit.period, entry.at) {
                    usage.count_used[limit_idx] += u64::from(entry.count);
                    usage.amount_used[limit_idx] += entry.amount;
                }
            }
        }
    }

    // Remaining price of every unit, flattened line by line.
    let mut unit_start = Vec::with_capacity(cart.len());
    let mut remaining = Vec::new();
    for line in cart {
        unit_start.push(remaining.len());
        remaining.extend(std::iter::repeat_n(line.unit_price, line.qty as usize));
    }

    // (line, application index, amount)
    let mut given_per_line: Vec<(usize, usize, Money)> = Vec::new();
    let mut refused = Vec::new();
    for (apply_idx, benefit) in ordered.iter().enumerate() {
        let usage = &mut usages[apply_idx];
        let mut given = Money::ZERO;
        let mut first_reason: Option<RefusalReason> = None;
        let mut visited_any = false;
        for (line_idx, line) in cart.iter().enumerate() {
            if !benefit.covers(&line.category) {
                continue;
            }
            let mut line_given = Money::ZERO;
            for unit in 0..line.qty as usize {
                let slot = &mut remaining[unit_start[line_idx] + unit];
                let outcome = unit_discount(benefit, usage, *slot, given);
                if !visited_any {
                    visited_any = true;
                    first_reason = outcome.err();
                }
                if let Ok(discount) = outcome {
                    *slot -= discount;
                    given += discount;
                    line_given += discount;
                    for (limit_idx, limit) in benefit.limits.iter().enumerate() {
                        if limit.max_count.is_some() {
                            usage.count_used[limit_idx] += 1;
                        }
                        usage.amount_used[limit_idx] += discount;
                    }
                }
            }
            if line_given.is_positive() {
                given_per_line.push((line_idx, apply_idx, line_given));
            }
        }
        if given.is_zero() {
            if let Some(reason) = first_reason {
                refused.push(Refusal {
                    benefit: benefit.id.clone(),
                    reason,
                });
            }
        }
    }

    given_per_line.sort_by_key(|&(line, apply_idx, _)| (line, apply_idx));
    let mut by_provider: BTreeMap<String, Money> = BTreeMap::new();
    let discounts: Vec<LineDiscount> = given_per_line
        .into_iter()
        .map(|(line, apply_idx, amount)| {
            let benefit = ordered[apply_idx];
            *by_provider.entry(benefit.provider.clone()).or_default() += amount;
            LineDiscount {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                benefit: benefit.id.clone(),
                provider: benefit.provider.clone(),
                amount,
            }
        })
        .collect();
    let discount_total: Money = discounts.iter().map(|d| d.amount).sum();
    Quote {
        discounts,
        total,
        discount_total,
        due: total - discount_total,
        by_provider,
        refused,
    }
}

/// Steps 3.1 to 3.4 of the spec for one unit: the discount it gets, or the
/// first reason it gets nothing.
fn unit_discount(
    benefit: &Benefit,
    usage: &LimitUsage,
    remaining: Money,
    given: Money,
) -> Result<Money, RefusalReason> {
    for (limit_idx, limit) in benefit.limits.iter().enumerate() {
        if let Some(max_count) = limit.max_count {
            if usage.count_used[limit_idx] >= u64::from(max_count) {
                return Err(RefusalReason::CountLimit);
            }
        }
    }
    let mut discount = match benefit.discount {
        Discount::Percent(percent) => percent.of(remaining),
        Discount::Amount(amount) => remaining.min(amount),
        Discount::FixedPrice(price) => remaining.saturating_sub(price),
    };
    if !discount.is_positive() {
        return Err(RefusalReason::NothingLeft);
    }
    if let Some(cap) = benefit.max_per_transaction {
        discount = discount.min(cap.saturating_sub(given));
        if !discount.is_positive() {
            return Err(RefusalReason::TransactionCap);
        }
    }
    for (limit_idx, limit) in benefit.limits.iter().enumerate() {
        if let Some(max_amount) = limit.max_amount {
            discount = discount.min(max_amount.saturating_sub(usage.amount_used[limit_idx]));
            if !discount.is_positive() {
                return Err(RefusalReason::AmountLimit);
            }
        }
    }
    Ok(discount)
}

#[cfg(test)]
mod tests;
