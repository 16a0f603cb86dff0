//! One quote for a realistic till, with a bare "ceiling" loop beside it.
//!
//! Run with `cargo bench -p shared --bench quote`. The till: 10 cart lines,
//! 20 eligible benefits (every one with limits, of all four periods and
//! both kinds), 1,000 history entries spread over the current month across
//! those benefits. The baseline ("ceiling") only sums the 1,000 history
//! amounts as `Money`: a fixed, simple workload over the same data that
//! scales with the machine, so the ratio between the two stays meaningful
//! on a noisy shared machine or another machine.
//!
//! After criterion's own report, a summary line prints both medians (read
//! back from criterion's `estimates.json`) and their ratio. Goal: the quote's
//! median at most 20 µs (`docs/performance.md`).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use criterion::Criterion;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use shared::mix::SplitMix64 as Mix;
use shared::model::{Benefit, CartLine, Grant, HistoryEntry, Membership};
use shared::money::Money;
use shared::rules::{evaluate, QuoteInput};

const BENEFITS: usize = 20;
const HISTORY: usize = 1_000;
const LINES: usize = 10;
const GOAL_NANOS: f64 = 20_000.0;

fn cents(c: u64) -> String {
    format!("{}.{:02}", c / 100, c % 100)
}

struct Till {
    benefits: Vec<Benefit>,
    grants: Vec<Grant>,
    memberships: Vec<Membership>,
    history: Vec<HistoryEntry>,
    cart: Vec<CartLine>,
    now: Timestamp,
}

fn till() -> Till {
    let mut rng = Mix(2026);
    let now: Timestamp = "2026-03-20T12:30:00+02:00".parse().expect("now");
    let month_start: Timestamp = "2026-03-01T00:00:00+02:00".parse().expect("month start");
    let providers = ["riga", "state", "jelgava", "liepaja"];
    let categories = [
        "meal",
        "meal.lunch",
        "meal.snack",
        "transport",
        "transport.bus",
        "drink",
    ];
    let mut benefits = Vec::with_capacity(BENEFITS);
    let mut grants = Vec::new();
    for idx in 0..BENEFITS {
        let id = format!("benefit-{idx:02}");
        let discount = match idx % 3 {
            0 => json!({"percent": (10 + 10 * (idx % 10)).to_string()}),
            1 => json!({"amount": cents(20 + rng.below(80))}),
            _ => json!({"fixed_price": cents(50 + rng.below(150))}),
        };
        // Every benefit has limits; caps are generous enough that most of
        // them still give something after the month's history.
        let limits = match idx % 4 {
            0 => {
                json!([{"period": "day", "max_count": 3}, {"period": "month", "max_amount": "400.00"}])
            }
            1 => json!([{"period": "week", "max_amount": "60.00"}]),
            2 => {
                json!([{"period": "month", "max_count": 200}, {"period": "year", "max_amount": "900.00"}])
            }
            _ => {
                json!([{"period": "day", "max_amount": "20.00"}, {"period": "week", "max_count": 40}, {"period": "month", "max_amount": "250.00"}])
            }
        };
        let mut benefit = json!({
            "id": id,
            "provider": providers[idx % providers.len()],
            "categories": [categories[idx % categories.len()]],
            "discount": discount,
            "limits": limits,
            "priority": 10 * (idx % 5),
            "time_zone": "Europe/Riga",
        });
        if idx % 5 == 0 {
            benefit["max_per_transaction"] = json!("5.00");
        }
        if idx % 2 == 0 {
            grants.push(Grant {
                benefit: id,
                valid_from: Some("2026-01-01".parse().expect("date")),
                valid_to: Some("2026-12-31".parse().expect("date")),
            });
        } else {
            benefit["groups"] = json!([format!("group-{}", idx % 3)]);
        }
        benefits.push(serde_json::from_value::<Benefit>(benefit).expect("benefit"));
    }
    let memberships = (0..3)
        .map(|g| Membership {
            group: format!("group-{g}"),
            valid_from: Some("2025-09-01".parse().expect("date")),
            valid_to: None,
        })
        .collect();
    let span = now.as_second() - month_start.as_second();
    let history = (0..HISTORY)
        .map(|idx| {
            let offset = i64::try_from(rng.below(u64::try_from(span).expect("span"))).expect("i64");
            HistoryEntry {
                at: month_start
                    .checked_add(SignedDuration::from_secs(offset))
                    .expect("in range"),
                benefit: format!("benefit-{:02}", idx % BENEFITS),
                amount: Money::from_cents(i64::try_from(10 + rng.below(140)).expect("i64")),
                count: 1 + u32::try_from(rng.below(2)).expect("u32"),
            }
        })
        .collect();
    let line_categories = [
        "meal.lunch",
        "meal.snack",
        "transport.bus",
        "drink.water",
        "meal.dinner",
    ];
    let cart: Vec<CartLine> = (0..LINES)
        .map(|idx| {
            serde_json::from_value(json!({
                "sku": format!("SKU-{idx}"),
                "category": line_categories[idx % line_categories.len()],
                "unit_price": cents(80 + rng.below(520)),
                "qty": 1 + rng.below(3),
            }))
            .expect("cart line")
        })
        .collect();
    Till {
        benefits,
        grants,
        memberships,
        history,
        cart,
        now,
    }
}

fn output_directory() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("criterion")
}

/// The median point estimate, in nanoseconds, of one benchmark measured by
/// this run: `None` when it was not measured since `started` (with `--test`
/// or a filter), so that a stale figure is never printed.
fn median_nanos(dir: &Path, group: &str, name: &str, started: SystemTime) -> Option<f64> {
    let path = dir
        .join(group)
        .join(name)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < started {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let estimates: Value = serde_json::from_str(&text).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

fn main() {
    let started = SystemTime::now();
    let till = till();
    let input = QuoteInput {
        benefits: &till.benefits,
        grants: &till.grants,
        memberships: &till.memberships,
        history: &till.history,
        cart: &till.cart,
        now: till.now,
    };
    // Make sure the bench measures a till that does real work.
    let quote = evaluate(&input);
    assert!(
        quote.discounts.len() >= LINES,
        "too few discounts for a realistic till: {quote:?}"
    );
    let eligible =
        shared::rules::eligible(&till.benefits, &till.grants, &till.memberships, till.now);
    assert_eq!(eligible.len(), BENEFITS, "every benefit must be eligible");
    println!(
        "till: {} lines, {} eligible benefits, {} history entries -> {} discounts, {} refused, {} of {} EUR due",
        till.cart.len(),
        eligible.len(),
        till.history.len(),
        quote.discounts.len(),
        quote.refused.len(),
        quote.due,
        quote.total
    );

    let dir = output_directory();
    let mut criterion = Criterion::default()
        .output_directory(&dir)
        .configure_from_args();
    {
        let mut group = criterion.benchmark_group("quote");
        group.bench_function("till_10_lines_20_benefits_1000_history", |b| {
            b.iter(|| evaluate(black_box(&input)))
        });
        group.bench_function("ceiling_sum_1000_history_amounts", |b| {
            b.iter(|| {
                black_box(&till.history)
                    .iter()
                    .map(|entry| entry.amount)
                    .sum::<Money>()
            })
        });
        group.finish();
    }
    criterion.final_summary();

    let quote_median = median_nanos(
        &dir,
        "quote",
        "till_10_lines_20_benefits_1000_history",
        started,
    );
    let ceiling_median = median_nanos(&dir, "quote", "ceiling_sum_1000_history_amounts", started);
    if let (Some(q), Some(c)) = (quote_median, ceiling_median) {
        println!(
            "summary: quote median {:.2} µs (goal ≤ {:.0} µs: {}), ceiling median {:.2} µs, ratio {:.1}×",
            q / 1000.0,
            GOAL_NANOS / 1000.0,
            if q <= GOAL_NANOS { "met" } else { "NOT met" },
            c / 1000.0,
            q / c
        );
    }
}
