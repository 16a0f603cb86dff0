//! Property tests of the rules engine: invariants that must hold for any
//! benefits, grants, history and cart, checked on random inputs.
//!
//! Everything the properties need beyond the quote itself (eligibility,
//! category coverage, whether a history entry is "in the period", the
//! application order) is computed here independently from the spec, with
//! jiff directly and never through `shared::time` or `shared::rules`.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use proptest::prelude::*;
use proptest::sample::subsequence;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Value};
use shared::model::{
    Benefit, CartLine, Grant, HistoryEntry, Membership, Period, Quote, RefusalReason,
};
use shared::rules::{evaluate, QuoteInput};

const BENEFIT_CATEGORIES: [&str; 6] = [
    "meal",
    "meal.lunch",
    "meal.snack",
    "transport",
    "transport.bus",
    "drink",
];
const LINE_CATEGORIES: [&str; 8] = [
    "meal.lunch",
    "meal.snack",
    "meal.dinner",
    "meals",
    "transport.bus",
    "transport.tram",
    "drink",
    "drink.water",
];
const PROVIDERS: [&str; 3] = ["riga", "state", "jelgava"];
const GROUPS: [&str; 2] = ["pupil", "needy"];
const DAY: i64 = 86_400;

// ---------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum RawDiscount {
    Percent(u32),
    Amount(u32),
    FixedPrice(u32),
}

#[derive(Debug, Clone)]
enum RawLimit {
    Count(u8, u32),
    Amount(u8, u32),
}

#[derive(Debug, Clone)]
struct RawBenefit {
    provider: usize,
    categories: Vec<&'static str>,
    discount: RawDiscount,
    cap: Option<u32>,
    limits: Vec<RawLimit>,
    priority: i64,
    weekdays: Option<Vec<u8>>,
    /// Validity as day offsets from now's local date.
    valid: Option<DayBounds>,
    new_york: bool,
    groups: Vec<&'static str>,
    /// A grant with optional day offsets, or none.
    grant: Option<DayBounds>,
}

fn cents(c: u32) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

fn raw_discount() -> impl Strategy<Value = RawDiscount> {
    prop_oneof![
        (0u32..=10_000).prop_map(RawDiscount::Percent),
        (0u32..=1_000).prop_map(RawDiscount::Amount),
        (0u32..=2_000).prop_map(RawDiscount::FixedPrice),
    ]
}

fn raw_limit() -> impl Strategy<Value = RawLimit> {
    prop_oneof![
        (0u8..4, 0u32..=6).prop_map(|(p, n)| RawLimit::Count(p, n)),
        (0u8..4, 0u32..=2_000).prop_map(|(p, a)| RawLimit::Amount(p, a)),
    ]
}

fn day_bounds(spread: i64) -> impl Strategy<Value = DayBounds> {
    (
        proptest::option::of(-spread..=spread / 3),
        proptest::option::of(-spread / 3..=spread),
    )
}

fn raw_benefit() -> impl Strategy<Value = RawBenefit> {
    (
        (
            0..PROVIDERS.len(),
            subsequence(BENEFIT_CATEGORIES.to_vec(), 1..=2),
            raw_discount(),
            proptest::option::weighted(0.3, prop_oneof![1 => Just(0u32), 9 => 0u32..=1_500]),
            proptest::collection::vec(raw_limit(), 0..=3),
            0i64..4,
        ),
        (
            proptest::option::weighted(0.2, subsequence(vec![1u8, 2, 3, 4, 5, 6, 7], 1..=6)),
            proptest::option::weighted(0.2, day_bounds(10)),
            proptest::bool::weighted(0.15),
            proptest::option::weighted(0.3, subsequence(GROUPS.to_vec(), 1..=2)),
            proptest::option::weighted(0.85, day_bounds(6)),
        ),
    )
        .prop_map(
            |(
                (provider, categories, discount, cap, limits, priority),
                (weekdays, valid, new_york, groups, grant),
            )| RawBenefit {
                provider,
                categories,
                discount,
                cap,
                limits,
                priority,
                weekdays,
                valid,
                new_york,
                groups: groups.unwrap_or_default(),
                grant,
            },
        )
}

/// Everything one quote depends on.
#[derive(Debug, Clone)]
struct World {
    benefits: Vec<Benefit>,
    grants: Vec<Grant>,
    memberships: Vec<Membership>,
    history: Vec<HistoryEntry>,
    cart: Vec<CartLine>,
    now: Timestamp,
}

impl World {
    fn quote(&self) -> Quote {
        evaluate(&QuoteInput {
            benefits: &self.benefits,
            grants: &self.grants,
            memberships: &self.memberships,
            history: &self.history,
            cart: &self.cart,
            now: self.now,
        })
    }
}

fn riga() -> TimeZone {
    TimeZone::get("Europe/Riga").expect("bundled zone")
}

fn shift(date: Date, days: i64) -> String {
    date.checked_add(days.days())
        .expect("date in range")
        .to_string()
}

type RawHistory = (usize, i64, u32, Option<u32>);
type RawLine = (usize, u32, u32);
/// Inclusive bounds as day offsets from now's local date.
type DayBounds = (Option<i64>, Option<i64>);
type RawMembership = (usize, Option<DayBounds>);

fn build(
    now_offset: i64,
    raws: Vec<RawBenefit>,
    raw_history: Vec<RawHistory>,
    raw_cart: Vec<RawLine>,
    raw_memberships: Vec<RawMembership>,
) -> World {
    // now: anywhere from mid-December 2025 to mid-April 2026, so that year,
    // month and ISO week boundaries and the March DST change all occur.
    let base: Timestamp = "2025-12-15T00:00:00Z".parse().expect("base");
    let now = base
        .checked_add(SignedDuration::from_secs(now_offset))
        .expect("now");
    let today = now.to_zoned(riga()).date();
    let mut benefits = Vec::new();
    let mut grants = Vec::new();
    for (idx, raw) in raws.iter().enumerate() {
        let id = format!("b{idx}");
        let discount = match raw.discount {
            RawDiscount::Percent(p) => json!({"percent": cents(p)}),
            RawDiscount::Amount(a) => json!({"amount": cents(a)}),
            RawDiscount::FixedPrice(f) => json!({"fixed_price": cents(f)}),
        };
        let limits: Vec<Value> = raw
            .limits
            .iter()
            .map(|limit| match *limit {
                RawLimit::Count(p, n) => {
                    json!({"period": Period::ALL[usize::from(p)], "max_count": n})
                }
                RawLimit::Amount(p, a) => {
                    json!({"period": Period::ALL[usize::from(p)], "max_amount": cents(a)})
                }
            })
            .collect();
        let mut benefit = json!({
            "id": id,
            "provider": PROVIDERS[raw.provider],
            "categories": raw.categories,
            "discount": discount,
            "limits": limits,
            "priority": raw.priority,
            "groups": raw.groups,
        });
        if let Some(cap) = raw.cap {
            benefit["max_per_transaction"] = json!(cents(cap));
        }
        if let Some(days) = &raw.weekdays {
            benefit["weekdays"] = json!(days);
        }
        if let Some((from, to)) = raw.valid {
            if let Some(from) = from {
                benefit["valid_from"] = json!(shift(today, from));
            }
            if let Some(to) = to {
                benefit["valid_to"] = json!(shift(today, to.max(from.unwrap_or(to))));
            }
        }
        if raw.new_york {
            benefit["time_zone"] = json!("America/New_York");
        }
        benefits.push(serde_json::from_value::<Benefit>(benefit).expect("benefit json"));
        if let Some((from, to)) = raw.grant {
            grants.push(Grant {
                benefit: id,
                valid_from: from.map(|d| shift(today, d).parse().expect("date")),
                valid_to: to.map(|d| shift(today, d).parse().expect("date")),
            });
        }
    }
    shared::validate::benefits(&benefits).expect("generated benefits are valid");
    let memberships = raw_memberships
        .into_iter()
        .map(|(group, bounds)| {
            let (from, to) = bounds.unwrap_or((None, None));
            Membership {
                group: GROUPS[group].to_owned(),
                valid_from: from.map(|d| shift(today, d).parse().expect("date")),
                valid_to: to.map(|d| shift(today, d).parse().expect("date")),
            }
        })
        .collect();
    // History: within three weeks before and three days after now; some
    // entries name a benefit that is not offered.
    let history = raw_history
        .into_iter()
        .map(|(benefit, offset, amount, count)| HistoryEntry {
            at: now
                .checked_add(SignedDuration::from_secs(offset))
                .expect("in range"),
            benefit: format!("b{benefit}"),
            amount: shared::money::Money::from_cents(i64::from(amount)),
            count: count.unwrap_or(1),
        })
        .collect();
    let cart: Vec<CartLine> = raw_cart
        .into_iter()
        .enumerate()
        .map(|(idx, (category, price, qty))| CartLine {
            sku: format!("SKU{idx}"),
            category: LINE_CATEGORIES[category].to_owned(),
            unit_price: shared::money::Money::from_cents(i64::from(price)),
            qty,
        })
        .collect();
    shared::validate::cart(&cart).expect("generated cart is valid");
    World {
        benefits,
        grants,
        memberships,
        history,
        cart,
        now,
    }
}

fn world() -> impl Strategy<Value = World> {
    (
        0i64..=120 * DAY,
        proptest::collection::vec(raw_benefit(), 0..=6),
        proptest::collection::vec(
            (
                0usize..=6,
                -21 * DAY..=3 * DAY,
                0u32..=500,
                proptest::option::weighted(0.5, 0u32..=3),
            ),
            0..=40,
        ),
        proptest::collection::vec((0..LINE_CATEGORIES.len(), 0u32..=2_000, 1u32..=5), 1..=10),
        proptest::collection::vec(
            (
                0..GROUPS.len(),
                proptest::option::weighted(0.5, day_bounds(5)),
            ),
            0..=2,
        ),
    )
        .prop_map(|(now, benefits, history, cart, memberships)| {
            build(now, benefits, history, cart, memberships)
        })
}

// ---------------------------------------------------------------------------
// The spec, restated independently
// ---------------------------------------------------------------------------

fn covers(prefix: &str, category: &str) -> bool {
    category == prefix
        || (category.len() > prefix.len()
            && category.starts_with(prefix)
            && category.as_bytes()[prefix.len()] == b'.')
}

fn benefit_covers(benefit: &Benefit, category: &str) -> bool {
    benefit
        .categories
        .iter()
        .any(|prefix| covers(prefix, category))
}

fn local_date(at: Timestamp, benefit: &Benefit) -> Date {
    at.to_zoned(benefit.time_zone.tz().clone()).date()
}

/// Same calendar period, by comparing local calendar fields rather than
/// instant ranges (the way `shared::time` does it).
fn in_period(benefit: &Benefit, period: Period, now: Timestamp, at: Timestamp) -> bool {
    let (a, b) = (local_date(now, benefit), local_date(at, benefit));
    match period {
        Period::Day => a == b,
        Period::Week => {
            let (wa, wb) = (a.iso_week_date(), b.iso_week_date());
            wa.year() == wb.year() && wa.week() == wb.week()
        }
        Period::Month => a.year() == b.year() && a.month() == b.month(),
        Period::Year => a.year() == b.year(),
    }
}

fn within(date: Date, from: Option<Date>, to: Option<Date>) -> bool {
    from.is_none_or(|f| f <= date) && to.is_none_or(|t| date <= t)
}

fn is_eligible(world: &World, benefit: &Benefit) -> bool {
    let date = local_date(world.now, benefit);
    let weekday = u8::try_from(date.weekday().to_monday_one_offset()).expect("1..=7");
    within(date, benefit.valid_from, benefit.valid_to)
        && benefit
            .weekdays
            .as_ref()
            .is_none_or(|days| days.contains(&weekday))
        && (world
            .grants
            .iter()
            .any(|g| g.benefit == benefit.id && within(date, g.valid_from, g.valid_to))
            || world.memberships.iter().any(|m| {
                benefit.groups.contains(&m.group) && within(date, m.valid_from, m.valid_to)
            }))
}

/// History used in the limit's period: (sum of counts, sum of amounts in cents).
fn history_in_period(world: &World, benefit: &Benefit, period: Period) -> (u64, i64) {
    world
        .history
        .iter()
        .filter(|entry| entry.benefit == benefit.id)
        .filter(|entry| in_period(benefit, period, world.now, entry.at))
        .fold((0, 0), |(count, amount), entry| {
            (
                count + u64::from(entry.count),
                amount + entry.amount.cents(),
            )
        })
}

/// Application rank of each benefit id: ascending priority, then id bytes.
fn ranks(benefits: &[Benefit]) -> BTreeMap<String, usize> {
    let mut order: Vec<&Benefit> = benefits.iter().collect();
    order.sort_by(|a, b| (a.priority, a.id.as_bytes()).cmp(&(b.priority, b.id.as_bytes())));
    order
        .iter()
        .enumerate()
        .map(|(rank, benefit)| (benefit.id.clone(), rank))
        .collect()
}

fn benefit<'a>(world: &'a World, id: &str) -> &'a Benefit {
    world
        .benefits
        .iter()
        .find(|b| b.id == id)
        .expect("quoted benefit exists")
}

// ---------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------

/// Invariants of one quote.
fn check_quote(world: &World, quote: &Quote) -> Result<(), TestCaseError> {
    // Totals.
    let total: i64 = world
        .cart
        .iter()
        .map(|line| line.unit_price.cents() * i64::from(line.qty))
        .sum();
    prop_assert_eq!(quote.total.cents(), total, "total = Σ unit_price × qty");
    let discounts: i64 = quote.discounts.iter().map(|d| d.amount.cents()).sum();
    prop_assert_eq!(
        quote.discount_total.cents(),
        discounts,
        "discount_total = Σ discounts"
    );
    let by_provider: i64 = quote.by_provider.values().map(|m| m.cents()).sum();
    prop_assert_eq!(by_provider, discounts, "Σ by_provider = Σ discounts");
    prop_assert_eq!(
        quote.total.cents() - quote.discount_total.cents(),
        quote.due.cents()
    );
    prop_assert!(!quote.due.is_negative(), "due ≥ 0");
    for (provider, amount) in &quote.by_provider {
        prop_assert!(amount.is_positive(), "by_provider {} is zero", provider);
        let sum: i64 = quote
            .discounts
            .iter()
            .filter(|d| d.provider == *provider)
            .map(|d| d.amount.cents())
            .sum();
        prop_assert_eq!(amount.cents(), sum, "by_provider {}", provider);
    }

    // Each line gets at most its price.
    for (idx, line) in world.cart.iter().enumerate() {
        let given: i64 = quote
            .discounts
            .iter()
            .filter(|d| d.line as usize == idx)
            .map(|d| d.amount.cents())
            .sum();
        prop_assert!(
            given <= line.unit_price.cents() * i64::from(line.qty),
            "line {} discounted {} of {}",
            idx,
            given,
            line.unit_price.cents() * i64::from(line.qty)
        );
    }

    // Each discount: non-zero, from an eligible benefit covering the line,
    // with its provider; ordered by line, then application order.
    let rank = ranks(&world.benefits);
    let mut previous: Option<(u32, usize)> = None;
    for d in &quote.discounts {
        prop_assert!(d.amount.is_positive(), "zero discount {:?}", d);
        let b = benefit(world, &d.benefit);
        prop_assert_eq!(&d.provider, &b.provider);
        prop_assert!(is_eligible(world, b), "{} is not eligible", b.id);
        let line = world.cart.get(d.line as usize).expect("line exists");
        prop_assert!(
            benefit_covers(b, &line.category),
            "{} on {}",
            b.id,
            line.category
        );
        let key = (d.line, rank[&d.benefit]);
        prop_assert!(
            previous < Some(key),
            "discounts out of order: {:?}",
            quote.discounts
        );
        previous = Some(key);
    }

    // Refused: eligible, covering, gave nothing; in application order.
    let mut previous_rank = None;
    for refusal in &quote.refused {
        let b = benefit(world, &refusal.benefit);
        prop_assert!(is_eligible(world, b), "refused {} is not eligible", b.id);
        prop_assert!(world.cart.iter().any(|l| benefit_covers(b, &l.category)));
        prop_assert!(
            quote.discounts.iter().all(|d| d.benefit != b.id),
            "refused {} gave something",
            b.id
        );
        prop_assert!(previous_rank < Some(rank[&b.id]), "refused out of order");
        previous_rank = Some(rank[&b.id]);
        // The reason is met on the first covered unit, where this benefit
        // has given nothing yet: its cause must be visible in the inputs.
        match refusal.reason {
            RefusalReason::CountLimit => {
                let spent = b.limits.iter().any(|limit| {
                    limit.max_count.is_some_and(|max| {
                        history_in_period(world, b, limit.period).0 >= u64::from(max)
                    })
                });
                prop_assert!(spent, "{} count_limit without a spent count limit", b.id);
            }
            RefusalReason::AmountLimit => {
                let spent = b.limits.iter().any(|limit| {
                    limit.max_amount.is_some_and(|max| {
                        history_in_period(world, b, limit.period).1 >= max.cents()
                    })
                });
                prop_assert!(spent, "{} amount_limit without a spent amount limit", b.id);
            }
            RefusalReason::TransactionCap => {
                prop_assert_eq!(b.max_per_transaction.map(|cap| cap.cents()), Some(0));
            }
            RefusalReason::NothingLeft => {}
        }
    }

    // Every eligible benefit that covers a line is either in the discounts
    // or refused, never both; no other benefit appears.
    for b in &world.benefits {
        let gave = quote.discounts.iter().any(|d| d.benefit == b.id);
        let refused = quote.refused.iter().any(|r| r.benefit == b.id);
        let expected =
            is_eligible(world, b) && world.cart.iter().any(|l| benefit_covers(b, &l.category));
        prop_assert_eq!(gave || refused, expected, "{} listed wrongly", b.id);
    }

    // Per benefit: the transaction cap and the amount limits hold.
    for b in &world.benefits {
        let given: i64 = quote
            .discounts
            .iter()
            .filter(|d| d.benefit == b.id)
            .map(|d| d.amount.cents())
            .sum();
        if let Some(cap) = b.max_per_transaction {
            prop_assert!(
                given <= cap.cents(),
                "{} gave {} over cap {}",
                b.id,
                given,
                cap
            );
        }
        for limit in &b.limits {
            if let Some(max) = limit.max_amount {
                let (_, used) = history_in_period(world, b, limit.period);
                prop_assert!(
                    used + given <= max.cents().max(used),
                    "{}: {} used + {} given over {} per {:?}",
                    b.id,
                    used,
                    given,
                    max,
                    limit.period
                );
            }
        }
    }
    Ok(())
}

/// The cart with every line split into `qty` lines of one unit, and the
/// original line of each split line.
fn split(world: &World) -> (World, Vec<u32>) {
    let mut cart = Vec::new();
    let mut origin = Vec::new();
    for (idx, line) in world.cart.iter().enumerate() {
        for _ in 0..line.qty {
            cart.push(CartLine {
                qty: 1,
                ..line.clone()
            });
            origin.push(u32::try_from(idx).expect("few lines"));
        }
    }
    (
        World {
            cart,
            ..world.clone()
        },
        origin,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn quote_invariants_hold(world in world()) {
        let quote = world.quote();
        check_quote(&world, &quote)?;
    }

    #[test]
    fn quote_is_deterministic_and_independent_of_input_order(
        (world, seed) in (world(), any::<u64>())
    ) {
        let quote = world.quote();
        prop_assert_eq!(&world.quote(), &quote, "same input, same quote");

        let mut reversed = world.clone();
        reversed.benefits.reverse();
        reversed.history.reverse();
        reversed.grants.reverse();
        prop_assert_eq!(&reversed.quote(), &quote, "benefits, history, grants reversed");

        // A seeded rotation-and-swap shuffle of benefits and history.
        let mut shuffled = world.clone();
        let mut state = seed;
        let mut next = move |n: usize| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            usize::try_from(state >> 33).expect("fits") % n.max(1)
        };
        for idx in (1..shuffled.benefits.len()).rev() {
            let other = next(idx + 1);
            shuffled.benefits.swap(idx, other);
        }
        for idx in (1..shuffled.history.len()).rev() {
            let other = next(idx + 1);
            shuffled.history.swap(idx, other);
        }
        prop_assert_eq!(&shuffled.quote(), &quote, "benefits and history shuffled");
    }

    #[test]
    fn units_are_independent_of_line_grouping_and_count_limits_hold(world in world()) {
        let quote = world.quote();
        let (units, origin) = split(&world);
        let unit_quote = units.quote();
        check_quote(&units, &unit_quote)?;

        // Regrouped by original line, the split cart gives the same quote.
        // The split quote orders by split line first, so within one original
        // line the benefits interleave: sort by (line, application rank)
        // (stable) and merge the amounts of each (line, benefit).
        let rank = ranks(&world.benefits);
        let mut regrouped: Vec<(u32, String, String, i64)> = unit_quote
            .discounts
            .iter()
            .map(|d| (origin[d.line as usize], d.benefit.clone(), d.provider.clone(), d.amount.cents()))
            .collect();
        regrouped.sort_by_key(|(line, benefit, _, _)| (*line, rank[benefit]));
        let mut merged: Vec<(u32, String, String, i64)> = Vec::new();
        for entry in regrouped {
            match merged.last_mut() {
                Some(last) if last.0 == entry.0 && last.1 == entry.1 => last.3 += entry.3,
                _ => merged.push(entry),
            }
        }
        let original: Vec<(u32, String, String, i64)> = quote
            .discounts
            .iter()
            .map(|d| (d.line, d.benefit.clone(), d.provider.clone(), d.amount.cents()))
            .collect();
        prop_assert_eq!(merged, original, "per-unit processing ignores line grouping");
        prop_assert_eq!(&unit_quote.refused, &quote.refused);
        prop_assert_eq!(unit_quote.total, quote.total);
        prop_assert_eq!(unit_quote.due, quote.due);
        prop_assert_eq!(&unit_quote.by_provider, &quote.by_provider);

        // With one unit per line, each discount entry is one use: count
        // limits are checked exactly.
        for b in &units.benefits {
            let used_units = u64::try_from(
                unit_quote.discounts.iter().filter(|d| d.benefit == b.id).count(),
            ).expect("fits");
            for limit in &b.limits {
                if let Some(max) = limit.max_count {
                    let (history_count, _) = history_in_period(&units, b, limit.period);
                    prop_assert!(
                        used_units <= u64::from(max).saturating_sub(history_count),
                        "{}: {} units given, {} of {} per {:?} used before",
                        b.id, used_units, history_count, max, limit.period
                    );
                }
            }
        }
    }

    #[test]
    fn a_lone_percent_benefit_gives_its_rounded_share_of_every_unit(
        (percent, prices) in (0u32..=10_000, proptest::collection::vec((0u32..=2_000, 1u32..=5), 1..=10))
    ) {
        // With one unlimited percent benefit, every unit gets exactly
        // round_half_up(price × P / 100) at cent precision, computed here in
        // integers: price_cents × P_hundredths / 10_000, half away from zero.
        let b: Benefit = serde_json::from_value(json!({
            "id": "p", "provider": "riga", "categories": ["meal"],
            "discount": {"percent": cents(percent)}
        })).expect("benefit");
        let cart: Vec<CartLine> = prices.iter().map(|&(price, qty)| CartLine {
            sku: "X".into(), category: "meal.lunch".into(),
            unit_price: shared::money::Money::from_cents(i64::from(price)), qty,
        }).collect();
        let world = World {
            benefits: vec![b],
            grants: vec![Grant { benefit: "p".into(), valid_from: None, valid_to: None }],
            memberships: vec![], history: vec![], cart,
            now: "2026-03-02T12:00:00+02:00".parse().expect("now"),
        };
        let quote = world.quote();
        check_quote(&world, &quote)?;
        let expected: Vec<(u32, i64)> = prices.iter().enumerate().filter_map(|(line, &(price, qty))| {
            let product = u64::from(price) * u64::from(percent);
            let per_unit = i64::try_from((product + 5_000) / 10_000).expect("fits");
            let amount = per_unit * i64::from(qty);
            (amount > 0).then(|| (u32::try_from(line).expect("fits"), amount))
        }).collect();
        let actual: Vec<(u32, i64)> = quote.discounts.iter().map(|d| (d.line, d.amount.cents())).collect();
        prop_assert_eq!(actual, expected);
    }
}
