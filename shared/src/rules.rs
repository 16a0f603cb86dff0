//! The benefit rules engine: which benefits apply, and what they give.
//!
//! Implements `docs/rules.md` (the project's statement of
//! `../shared/spec/benefit-rules.md`). The agent calls [`evaluate`] to quote
//! a cart; central calls the same function on the terminal's recorded inputs
//! to verify it. Pure: no clock, no I/O; `now` is an argument.
//!
//! A benefit that gives nothing is not an error: it is a [`Refusal`] inside
//! the [`Quote`].

use std::collections::BTreeMap;

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
        .any(|m| benefit.groups.contains(&m.group));
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
            benefit.groups.contains(&membership.group)
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

/// Running usage of one limit: the history in the limit's current period
/// plus what this cart has given so far.
struct Usage {
    /// The period around now, `[start, end)`, in nanoseconds since the Unix
    /// epoch (one integer comparison each, instead of jiff's two-field one).
    start: i128,
    end: i128,
    count: u64,
    /// History amounts summed in whole cents (exact: `Money` always has two
    /// decimals, and far cheaper than decimal additions); turned into
    /// `amount` once the history is read.
    history_cents: i128,
    amount: Money,
}

/// Benefit ids to application indexes, for the pass over the history: a
/// small open-addressing table keyed by the id's length and first and last
/// eight bytes. For ids of at most 16 bytes that key is the whole id, so a
/// look-up compares three integers and never calls `memcmp`; longer ids also
/// compare their middle bytes. Several benefits may share an id (validation
/// refuses that, the engine does not rely on it): a look-up yields them all.
struct IdTable {
    slots: Vec<Slot>,
    shift: u32,
}

#[derive(Clone, Copy)]
struct Slot {
    key: IdKey,
    /// Application index; `usize::MAX` marks an empty slot.
    idx: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct IdKey {
    head: u64,
    tail: u64,
    len: usize,
}

impl IdKey {
    fn of(bytes: &[u8]) -> IdKey {
        let len = bytes.len();
        let mut head = [0u8; 8];
        let mut tail = [0u8; 8];
        if len >= 8 {
            head.copy_from_slice(&bytes[..8]);
            tail.copy_from_slice(&bytes[len - 8..]);
        } else {
            head[..len].copy_from_slice(bytes);
        }
        IdKey {
            head: u64::from_le_bytes(head),
            tail: u64::from_le_bytes(tail),
            len,
        }
    }

    fn hash(self) -> u64 {
        (self.head ^ self.tail.rotate_left(29) ^ (self.len as u64).rotate_left(53))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

impl IdTable {
    fn new(ids: &[(usize, &str)]) -> IdTable {
        let size = (ids.len() * 2).next_power_of_two().max(8);
        let empty = Slot {
            key: IdKey::of(b""),
            idx: usize::MAX,
        };
        let mut table = IdTable {
            slots: vec![empty; size],
            shift: 64 - size.trailing_zeros(),
        };
        for &(idx, id) in ids {
            let key = IdKey::of(id.as_bytes());
            let mut slot = table.home(key);
            while table.slots[slot].idx != usize::MAX {
                slot = (slot + 1) & (size - 1);
            }
            table.slots[slot] = Slot { key, idx };
        }
        table
    }

    fn home(&self, key: IdKey) -> usize {
        // The high bits of a multiplicative hash; `shift` keeps it in range.
        usize::try_from(key.hash() >> self.shift).unwrap_or(0)
    }

    /// Calls `found` with the index of every benefit whose id is `id`.
    fn for_each(&self, id: &str, ordered: &[&Benefit], mut found: impl FnMut(usize)) {
        let bytes = id.as_bytes();
        let key = IdKey::of(bytes);
        let mask = self.slots.len() - 1;
        let mut slot = self.home(key);
        loop {
            let Slot { key: slot_key, idx } = self.slots[slot];
            if idx == usize::MAX {
                return;
            }
            if slot_key == key
                && (key.len <= 16
                    || ordered[idx].id.as_bytes()[8..key.len - 8] == bytes[8..key.len - 8])
            {
                found(idx);
            }
            slot = (slot + 1) & mask;
        }
    }
}

fn money_of_cents(cents: i128) -> Money {
    // A history would need billions of entries to leave i64; saturating
    // then still refuses (or allows) exactly what the exact sum would.
    Money::from_cents(i64::try_from(cents).unwrap_or(if cents < 0 { i64::MIN } else { i64::MAX }))
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

    // One `Usage` per limit, flat; benefit `i` owns `usages[first[i]..first[i + 1]]`.
    let mut first = Vec::with_capacity(ordered.len() + 1);
    let mut usages: Vec<Usage> = Vec::new();
    for benefit in &ordered {
        first.push(usages.len());
        if benefit.limits.is_empty() {
            continue;
        }
        let local = clocks.get(benefit);
        usages.extend(benefit.limits.iter().map(|limit| {
            let (start, end) = local.bounds(limit.period);
            Usage {
                start: start.as_nanosecond(),
                end: end.as_nanosecond(),
                count: 0,
                history_cents: 0,
                amount: Money::ZERO,
            }
        }));
    }
    first.push(usages.len());

    // Usage per limit from history, in one pass over the history.
    if !usages.is_empty() {
        // Entries outside every period need no look-up at all.
        let earliest = usages.iter().map(|usage| usage.start).min();
        let latest = usages.iter().map(|usage| usage.end).max();
        let ids: Vec<(usize, &str)> = ordered
            .iter()
            .enumerate()
            .filter(|(_, benefit)| !benefit.limits.is_empty())
            .map(|(idx, benefit)| (idx, benefit.id.as_str()))
            .collect();
        let table = IdTable::new(&ids);
        for entry in history {
            let at = entry.at.as_nanosecond();
            if earliest.is_some_and(|start| at < start) || latest.is_some_and(|end| at >= end) {
                continue;
            }
            table.for_each(&entry.benefit, &ordered, |idx| {
                for usage in &mut usages[first[idx]..first[idx + 1]] {
                    if usage.start <= at && at < usage.end {
                        usage.count += u64::from(entry.count);
                        usage.history_cents += i128::from(entry.amount.cents());
                    }
                }
            });
        }
        for usage in &mut usages {
            usage.amount = money_of_cents(usage.history_cents);
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
        let usage = &mut usages[first[apply_idx]..first[apply_idx + 1]];
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
                    for (limit, usage) in benefit.limits.iter().zip(usage.iter_mut()) {
                        if limit.max_count.is_some() {
                            usage.count += 1;
                        }
                        if limit.max_amount.is_some() {
                            usage.amount += discount;
                        }
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
            // Clone the provider name only the first time it is seen.
            match by_provider.get_mut(&benefit.provider) {
                Some(sum) => *sum += amount,
                None => {
                    by_provider.insert(benefit.provider.clone(), amount);
                }
            }
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
    usage: &[Usage],
    remaining: Money,
    given: Money,
) -> Result<Money, RefusalReason> {
    for (limit, usage) in benefit.limits.iter().zip(usage) {
        if let Some(max_count) = limit.max_count {
            if usage.count >= u64::from(max_count) {
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
    for (limit, usage) in benefit.limits.iter().zip(usage) {
        if let Some(max_amount) = limit.max_amount {
            discount = discount.min(max_amount.saturating_sub(usage.amount));
            if !discount.is_positive() {
                return Err(RefusalReason::AmountLimit);
            }
        }
    }
    Ok(discount)
}

#[cfg(test)]
mod tests;
