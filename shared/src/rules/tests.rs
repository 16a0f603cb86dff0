//! Unit tests of the engine beyond the shared vectors.
//!
//! Data-driven: each case is a small JSON literal of inputs (the vector
//! format without `expect`), and the whole quote, serialized to JSON, is
//! compared with an expected literal worked out by hand from
//! `../shared/spec/benefit-rules.md` (the working is in the comments).

use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{eligibility, eligible, evaluate, Ineligibility, QuoteInput};
use crate::model::{Benefit, CartLine, Grant, HistoryEntry, Membership};
use crate::validate;

/// A field of a case; an absent field is an empty list.
fn field<T: DeserializeOwned>(case: &Value, name: &str) -> T {
    let value = case.get(name).cloned().unwrap_or_else(|| json!([]));
    serde_json::from_value(value).unwrap_or_else(|err| panic!("case field {name}: {err}"))
}

/// The quote of a case, as JSON.
fn run(case: &Value) -> Value {
    let benefits: Vec<Benefit> = field(case, "benefits");
    validate::benefits(&benefits).expect("test benefits are valid");
    run_unvalidated(case, &benefits)
}

fn run_unvalidated(case: &Value, benefits: &[Benefit]) -> Value {
    let grants: Vec<Grant> = field(case, "grants");
    let memberships: Vec<Membership> = field(case, "memberships");
    let history: Vec<HistoryEntry> = field(case, "history");
    let cart: Vec<CartLine> = field(case, "cart");
    validate::cart(&cart).expect("test cart is valid");
    let quote = evaluate(&QuoteInput {
        benefits,
        grants: &grants,
        memberships: &memberships,
        history: &history,
        cart: &cart,
        now: field(case, "now"),
    });
    serde_json::to_value(quote).expect("a quote serializes")
}

/// A quote that gives nothing and refuses nothing.
fn nothing(total: &str) -> Value {
    json!({"discounts": [], "total": total, "discount_total": "0.00", "due": total,
           "by_provider": {}, "refused": []})
}

#[test]
fn week_limit_spans_a_month_boundary_in_riga() {
    // Goal: an ISO week limit counts Monday-Sunday across a month change,
    // while a month limit on the same history starts afresh on the 1st.
    // Wed 1 April 2026: its ISO week is Mon 30 March .. Sun 5 April.
    let case = json!({
        "now": "2026-04-01T10:00:00+03:00",
        "benefits": [
            {"id": "wk", "provider": "riga", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "limits": [{"period": "week", "max_count": 3}]},
            {"id": "mo", "provider": "jelgava", "categories": ["transport"],
             "discount": {"percent": "100"}, "limits": [{"period": "month", "max_count": 1}]}
        ],
        "grants": [{"benefit": "wk"}, {"benefit": "mo"}],
        "history": [
            // Sunday 29 March: the week before, not counted.
            {"at": "2026-03-29T20:00:00+03:00", "benefit": "wk", "amount": "10.00", "count": 5},
            // Monday and Tuesday: this week, in March: 2 of 3 used.
            {"at": "2026-03-30T12:00:00+03:00", "benefit": "wk", "amount": "2.00"},
            {"at": "2026-03-31T12:00:00+03:00", "benefit": "wk", "amount": "2.00"},
            // March: not this month.
            {"at": "2026-03-31T12:00:00+03:00", "benefit": "mo", "amount": "1.20"}
        ],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.00", "qty": 2},
            {"sku": "B", "category": "transport.bus", "unit_price": "1.20", "qty": 1}
        ]
    });
    // wk: one use left -> first lunch free (2.00), second refused by count
    // but the benefit gave something, so it is not listed as refused.
    // mo: nothing used in April -> the ride is free (1.20).
    let expected = json!({
        "discounts": [
            {"line": 0, "benefit": "wk", "provider": "riga", "amount": "2.00"},
            {"line": 1, "benefit": "mo", "provider": "jelgava", "amount": "1.20"}
        ],
        "total": "5.20", "discount_total": "3.20", "due": "2.00",
        "by_provider": {"jelgava": "1.20", "riga": "2.00"},
        "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn day_starts_at_local_midnight_not_utc_midnight() {
    // Goal: "today" is the Riga day (from 22:00 UTC in winter): an entry one
    // second before local midnight is yesterday, one at local midnight (still
    // the previous UTC day) is today.
    let case = json!({
        "now": "2026-03-02T08:00:00+02:00",
        "benefits": [
            {"id": "a", "provider": "p", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]},
            {"id": "b", "provider": "p", "categories": ["meal.snack"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]}
        ],
        "grants": [{"benefit": "a"}, {"benefit": "b"}],
        "history": [
            {"at": "2026-03-01T21:59:59Z", "benefit": "a", "amount": "2.50"},
            {"at": "2026-03-01T22:00:00Z", "benefit": "b", "amount": "1.00"}
        ],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1},
            {"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "a", "provider": "p", "amount": "2.50"}],
        "total": "3.50", "discount_total": "2.50", "due": "1.00",
        "by_provider": {"p": "2.50"},
        "refused": [{"benefit": "b", "reason": "count_limit"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn spring_dst_day_has_23_hours() {
    // Goal: on 29 March 2026 Riga skips 03:00-04:00; the day still starts at
    // local midnight (+02:00), so an entry 22h45m before now but on the
    // 28th is not today, although it is within "the last 24 hours".
    let case = json!({
        "now": "2026-03-29T23:30:00+03:00",
        "benefits": [
            {"id": "d", "provider": "p", "categories": ["meal"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_amount": "3.00"}]}
        ],
        "grants": [{"benefit": "d"}],
        "history": [
            {"at": "2026-03-28T23:45:00+02:00", "benefit": "d", "amount": "2.00"},
            {"at": "2026-03-29T00:15:00+02:00", "benefit": "d", "amount": "1.00"}
        ],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    // Used today: 1.00 of 3.00 -> d = min(2.50, 2.00) = 2.00.
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "d", "provider": "p", "amount": "2.00"}],
        "total": "2.50", "discount_total": "2.00", "due": "0.50",
        "by_provider": {"p": "2.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn autumn_dst_day_has_25_hours() {
    // Goal: on 25 October 2026 Riga repeats 03:00-04:00; an entry 24h20m
    // before now is still on the same local day and counts.
    let case = json!({
        "now": "2026-10-25T23:30:00+02:00",
        "benefits": [
            {"id": "d", "provider": "p", "categories": ["meal"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]}
        ],
        "grants": [{"benefit": "d"}],
        "history": [{"at": "2026-10-25T00:10:00+03:00", "benefit": "d", "amount": "2.50"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    let expected = json!({
        "discounts": [], "total": "2.50", "discount_total": "0.00", "due": "2.50",
        "by_provider": {}, "refused": [{"benefit": "d", "reason": "count_limit"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn amount_off_larger_than_the_price_stops_at_the_price() {
    // Goal: `amount` gives min(remaining, A) per unit, never more than the
    // price; a later benefit then finds the units free (nothing_left).
    let case = json!({
        "now": "2026-03-02T09:00:00+02:00",
        "benefits": [
            {"id": "big", "provider": "p", "categories": ["transport"],
             "discount": {"amount": "5.00"}, "priority": 1},
            {"id": "half", "provider": "q", "categories": ["transport"],
             "discount": {"percent": "50"}, "priority": 2}
        ],
        "grants": [{"benefit": "big"}, {"benefit": "half"}],
        "cart": [{"sku": "R", "category": "transport.bus", "unit_price": "1.20", "qty": 2}]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "big", "provider": "p", "amount": "2.40"}],
        "total": "2.40", "discount_total": "2.40", "due": "0.00",
        "by_provider": {"p": "2.40"},
        "refused": [{"benefit": "half", "reason": "nothing_left"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn fixed_price_above_the_price_gives_nothing_left() {
    // Goal: fixed_price F above the unit price gives max(0, price - F) = 0,
    // reason nothing_left, when no unit gets anything.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [{"id": "fp", "provider": "p", "categories": ["meal"],
                      "discount": {"fixed_price": "3.00"}}],
        "grants": [{"benefit": "fp"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    let expected = json!({
        "discounts": [], "total": "2.50", "discount_total": "0.00", "due": "2.50",
        "by_provider": {}, "refused": [{"benefit": "fp", "reason": "nothing_left"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn fixed_price_refused_on_the_first_unit_but_giving_later_is_not_refused() {
    // Goal: `refused` lists only benefits that gave nothing at all; a first
    // unit below the fixed price does not make the benefit refused when a
    // later unit (4.00 -> pays 3.00) gets 1.00.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [{"id": "fp", "provider": "p", "categories": ["meal"],
                      "discount": {"fixed_price": "3.00"}}],
        "grants": [{"benefit": "fp"}],
        "cart": [
            {"sku": "S", "category": "meal.snack", "unit_price": "2.50", "qty": 1},
            {"sku": "D", "category": "meal.dinner", "unit_price": "4.00", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [{"line": 1, "benefit": "fp", "provider": "p", "amount": "1.00"}],
        "total": "6.50", "discount_total": "1.00", "due": "5.50",
        "by_provider": {"p": "1.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn count_limit_sums_history_counts() {
    // Goal: used_count sums `count` (default 1) of history entries, not the
    // number of entries: 4 + 4 + 1 = 9 of 10 used, one unit left.
    let case = json!({
        "now": "2026-03-20T08:00:00+02:00",
        "benefits": [{"id": "m", "provider": "p", "categories": ["transport"],
                      "discount": {"percent": "100"},
                      "limits": [{"period": "month", "max_count": 10}]}],
        "grants": [{"benefit": "m"}],
        "history": [
            {"at": "2026-03-02T08:00:00+02:00", "benefit": "m", "amount": "4.00", "count": 4},
            {"at": "2026-03-09T08:00:00+02:00", "benefit": "m", "amount": "4.00", "count": 4},
            {"at": "2026-03-16T08:00:00+02:00", "benefit": "m", "amount": "1.00"}
        ],
        "cart": [{"sku": "R", "category": "transport.bus", "unit_price": "1.00", "qty": 3}]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "m", "provider": "p", "amount": "1.00"}],
        "total": "3.00", "discount_total": "1.00", "due": "2.00",
        "by_provider": {"p": "1.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn refused_reason_is_that_of_the_first_covered_unit() {
    // Goal: the reason is the one met on the first covered unit, even when
    // later units fail for another reason. "capped" meets the free lunch
    // first (nothing_left), then the snack (amount_limit: month cap spent).
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "free", "provider": "p", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "priority": 1},
            {"id": "capped", "provider": "q", "categories": ["meal"],
             "discount": {"percent": "50"}, "priority": 2,
             "limits": [{"period": "month", "max_amount": "5.00"}]}
        ],
        "grants": [{"benefit": "free"}, {"benefit": "capped"}],
        "history": [{"at": "2026-03-01T12:00:00+02:00", "benefit": "capped", "amount": "5.00"}],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1},
            {"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "free", "provider": "p", "amount": "2.50"}],
        "total": "3.50", "discount_total": "2.50", "due": "1.00",
        "by_provider": {"p": "2.50"},
        "refused": [{"benefit": "capped", "reason": "nothing_left"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn within_a_unit_reasons_follow_the_step_order() {
    // Goal: per unit, count limits come before the raw discount, and the
    // transaction cap before amount limits. "b-count" meets a free unit with
    // its count spent: count_limit, not nothing_left. "c-cap0" has a zero
    // transaction cap and a spent month cap: transaction_cap, not amount_limit.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "a-free", "provider": "p", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "priority": 1},
            {"id": "b-count", "provider": "p", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "priority": 2,
             "limits": [{"period": "day", "max_count": 1}]},
            {"id": "c-cap0", "provider": "p", "categories": ["meal.snack"],
             "discount": {"percent": "100"}, "priority": 3, "max_per_transaction": "0.00",
             "limits": [{"period": "month", "max_amount": "1.00"}]}
        ],
        "grants": [{"benefit": "a-free"}, {"benefit": "b-count"}, {"benefit": "c-cap0"}],
        "history": [
            {"at": "2026-03-02T08:00:00+02:00", "benefit": "b-count", "amount": "2.50"},
            {"at": "2026-03-01T08:00:00+02:00", "benefit": "c-cap0", "amount": "1.00"}
        ],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1},
            {"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "a-free", "provider": "p", "amount": "2.50"}],
        "total": "3.50", "discount_total": "2.50", "due": "1.00",
        "by_provider": {"p": "2.50"},
        "refused": [
            {"benefit": "b-count", "reason": "count_limit"},
            {"benefit": "c-cap0", "reason": "transaction_cap"}
        ]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn a_benefit_covering_no_line_appears_nowhere() {
    // Goal: an eligible benefit whose categories match no line is neither
    // in discounts nor in refused, even with its count limit spent.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [{"id": "t", "provider": "p", "categories": ["transport"],
                      "discount": {"percent": "100"},
                      "limits": [{"period": "day", "max_count": 1}]}],
        "grants": [{"benefit": "t"}],
        "history": [{"at": "2026-03-02T08:00:00+02:00", "benefit": "t", "amount": "1.00"}],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1},
            {"sku": "X", "category": "transports", "unit_price": "1.00", "qty": 1}
        ]
    });
    assert_eq!(run(&case), nothing("3.50"));
}

#[test]
fn an_ineligible_benefit_appears_nowhere() {
    // Goal: a benefit the recipient is not entitled to gives nothing and is
    // not listed as refused, though it covers the cart.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [{"id": "n", "provider": "p", "groups": ["needy"], "categories": ["meal"],
                      "discount": {"percent": "100"}}],
        "grants": [{"benefit": "other"}],
        "memberships": [{"group": "pensioner"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    assert_eq!(run(&case), nothing("2.50"));
}

#[test]
fn day_count_and_month_amount_limits_both_bind() {
    // Goal: several limits on one benefit all apply to every unit.
    // Day: 1 of 2 used today. Month: 4.50 + 0.50 = 5.00 of 6.00 used.
    // Unit 1: count ok; d = 2.00 -> min(2.00, 6.00 - 5.00) = 1.00 given.
    // Unit 2: day count now 2 of 2 -> count_limit. Unit 3: the same.
    let case = json!({
        "now": "2026-03-20T12:00:00+02:00",
        "benefits": [{"id": "m", "provider": "p", "categories": ["meal"],
                      "discount": {"percent": "100"},
                      "limits": [{"period": "day", "max_count": 2},
                                 {"period": "month", "max_amount": "6.00"}]}],
        "grants": [{"benefit": "m"}],
        "history": [
            {"at": "2026-03-10T12:00:00+02:00", "benefit": "m", "amount": "4.50", "count": 3},
            {"at": "2026-03-20T08:00:00+02:00", "benefit": "m", "amount": "0.50"}
        ],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.00", "qty": 3}]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "m", "provider": "p", "amount": "1.00"}],
        "total": "6.00", "discount_total": "1.00", "due": "5.00",
        "by_provider": {"p": "1.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn benefit_valid_to_yesterday_in_local_time_is_not_eligible() {
    // Goal: valid_to is inclusive and compared with the local date: at
    // 00:30 on 2 March in Riga (still 1 March in UTC) a benefit valid to
    // 1 March has ended; one valid to 2 March has not.
    let case = json!({
        "now": "2026-03-02T00:30:00+02:00",
        "benefits": [
            {"id": "ended", "provider": "p", "categories": ["meal"],
             "discount": {"percent": "100"}, "valid_to": "2026-03-01"},
            {"id": "today", "provider": "q", "categories": ["meal"],
             "discount": {"percent": "10"}, "valid_to": "2026-03-02"}
        ],
        "grants": [{"benefit": "ended"}, {"benefit": "today"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    // 10% of 2.50 = 0.25.
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "today", "provider": "q", "amount": "0.25"}],
        "total": "2.50", "discount_total": "0.25", "due": "2.25",
        "by_provider": {"q": "0.25"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn grant_starting_tomorrow_applies_from_local_midnight() {
    // Goal: a grant from 3 March is not valid at 23:59 on 2 March Riga time,
    // and is valid at 00:30 on 3 March Riga time (22:30 UTC on 2 March).
    let mut case = json!({
        "now": "2026-03-02T23:59:00+02:00",
        "benefits": [{"id": "g", "provider": "p", "categories": ["meal"],
                      "discount": {"percent": "100"}}],
        "grants": [{"benefit": "g", "valid_from": "2026-03-03", "valid_to": "2026-06-30"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    assert_eq!(run(&case), nothing("2.50"));
    case["now"] = json!("2026-03-02T22:30:00Z");
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "g", "provider": "p", "amount": "2.50"}],
        "total": "2.50", "discount_total": "2.50", "due": "0.00",
        "by_provider": {"p": "2.50"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn weekdays_are_local_iso_weekdays() {
    // Goal: weekdays [6, 7] means Saturday and Sunday in the benefit's zone:
    // 23:00 UTC on Friday 6 March is 01:00 on Saturday in Riga.
    let mut case = json!({
        "now": "2026-03-06T23:00:00Z",
        "benefits": [{"id": "we", "provider": "p", "categories": ["meal"],
                      "discount": {"amount": "1.00"}, "weekdays": [6, 7]}],
        "grants": [{"benefit": "we"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "we", "provider": "p", "amount": "1.00"}],
        "total": "2.50", "discount_total": "1.00", "due": "1.50",
        "by_provider": {"p": "1.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
    // 21:59 UTC on Friday is 23:59 on Friday in Riga: not a weekend day.
    case["now"] = json!("2026-03-06T21:59:00Z");
    assert_eq!(run(&case), nothing("2.50"));
}

#[test]
fn membership_of_any_listed_group_entitles() {
    // Goal: a membership of one of the benefit's groups, valid today,
    // entitles; an expired membership of another listed group, or a
    // membership of an unlisted group, does not.
    let mut case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [{"id": "g", "provider": "p", "groups": ["pensioner", "disability-1"],
                      "categories": ["transport"], "discount": {"percent": "50"}}],
        "memberships": [
            {"group": "pensioner", "valid_to": "2026-02-28"},
            {"group": "pupil-1-4"},
            {"group": "disability-1", "valid_from": "2026-03-02"}
        ],
        "cart": [{"sku": "R", "category": "transport.bus", "unit_price": "1.50", "qty": 1}]
    });
    // 50% of 1.50 = 0.75.
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "g", "provider": "p", "amount": "0.75"}],
        "total": "1.50", "discount_total": "0.75", "due": "0.75",
        "by_provider": {"p": "0.75"}, "refused": []
    });
    assert_eq!(run(&case), expected);
    case["memberships"] = json!([
        {"group": "pensioner", "valid_to": "2026-02-28"},
        {"group": "pupil-1-4"}
    ]);
    assert_eq!(run(&case), nothing("1.50"));
}

#[test]
fn time_zone_of_the_benefit_decides_the_day() {
    // Goal: periods and validity use each benefit's own zone. At 03:00 UTC
    // on 3 March it is 22:00 on 2 March in New York and 05:00 on 3 March in
    // Riga. The history entry (15:00 UTC on 2 March) is "today" in New York
    // only; a benefit valid to 2 March is still valid in New York only.
    let case = json!({
        "now": "2026-03-03T03:00:00Z",
        "benefits": [
            {"id": "ny", "provider": "p", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}],
             "time_zone": "America/New_York"},
            {"id": "riga", "provider": "p", "categories": ["meal.snack"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]},
            {"id": "ny-ends", "provider": "q", "categories": ["drink"],
             "discount": {"percent": "100"}, "valid_to": "2026-03-02",
             "time_zone": "America/New_York"},
            {"id": "riga-ends", "provider": "q", "categories": ["drink"],
             "discount": {"percent": "100"}, "valid_to": "2026-03-02"}
        ],
        "grants": [{"benefit": "ny"}, {"benefit": "riga"}, {"benefit": "ny-ends"},
                   {"benefit": "riga-ends"}],
        "history": [
            {"at": "2026-03-02T15:00:00Z", "benefit": "ny", "amount": "2.50"},
            {"at": "2026-03-02T15:00:00Z", "benefit": "riga", "amount": "1.00"}
        ],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1},
            {"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1},
            {"sku": "W", "category": "drink.water", "unit_price": "0.80", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [
            {"line": 1, "benefit": "riga", "provider": "p", "amount": "1.00"},
            {"line": 2, "benefit": "ny-ends", "provider": "q", "amount": "0.80"}
        ],
        "total": "4.30", "discount_total": "1.80", "due": "2.50",
        "by_provider": {"p": "1.00", "q": "0.80"},
        "refused": [{"benefit": "ny", "reason": "count_limit"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn eligibility_gives_the_reason() {
    // Goal: each Ineligibility reason, its precedence (no entitlement at all
    // first, then the benefit's dates, weekday, the entitlement's dates), and
    // agreement with `eligible`.
    let benefit = json!({"id": "b", "provider": "p", "groups": ["pupil"], "categories": ["meal"],
                         "discount": {"percent": "100"}, "weekdays": [1, 2, 3, 4, 5],
                         "valid_from": "2026-01-01", "valid_to": "2026-06-30"});
    let monday = "2026-03-02T12:00:00+02:00";
    let saturday = "2026-03-07T12:00:00+02:00";
    let after = "2026-07-01T12:00:00+03:00";
    let cases = [
        // (now, grants, memberships, expected)
        (
            monday,
            json!([]),
            json!([]),
            Some(Ineligibility::NotEntitled),
        ),
        (
            monday,
            json!([{"benefit": "other"}]),
            json!([{"group": "needy"}]),
            Some(Ineligibility::NotEntitled),
        ),
        (
            after,
            json!([]),
            json!([]),
            Some(Ineligibility::NotEntitled),
        ),
        (
            after,
            json!([{"benefit": "b"}]),
            json!([]),
            Some(Ineligibility::BenefitNotValidToday),
        ),
        (
            saturday,
            json!([{"benefit": "b"}]),
            json!([]),
            Some(Ineligibility::NotOnThisWeekday),
        ),
        (
            monday,
            json!([{"benefit": "b", "valid_to": "2026-03-01"}]),
            json!([{"group": "pupil", "valid_from": "2026-03-03"}]),
            Some(Ineligibility::EntitlementNotValidToday),
        ),
        (
            monday,
            json!([{"benefit": "b", "valid_to": "2026-03-01"}]),
            json!([{"group": "pupil", "valid_from": "2026-03-02"}]),
            None,
        ),
        (
            monday,
            json!([{"benefit": "b", "valid_from": "2026-03-02", "valid_to": "2026-03-02"}]),
            json!([]),
            None,
        ),
    ];
    let benefit: Benefit = serde_json::from_value(benefit).expect("benefit");
    for (now, grants, memberships, expected) in cases {
        let now = now.parse().expect("now");
        let grants: Vec<Grant> = serde_json::from_value(grants).expect("grants");
        let memberships: Vec<Membership> =
            serde_json::from_value(memberships).expect("memberships");
        let reason = eligibility(&benefit, &grants, &memberships, now);
        assert_eq!(reason, expected, "at {now} with {grants:?} {memberships:?}");
        let listed = eligible(std::slice::from_ref(&benefit), &grants, &memberships, now);
        assert_eq!(
            listed.len(),
            usize::from(expected.is_none()),
            "eligible agrees at {now} with {grants:?} {memberships:?}"
        );
    }
}

#[test]
fn percent_rounds_half_away_from_zero_per_unit() {
    // Goal: round_half_up(remaining × P / 100, 2) per unit, with a percent
    // of several decimals. 12.5% of 0.99 = 0.12375 -> 0.12 (×2 = 0.24);
    // 50% of 0.05 = 0.025 -> 0.03; 33.33% of 3.00 = 0.9999 -> 1.00.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "a", "provider": "p", "categories": ["meal.snack"], "discount": {"percent": "12.5"}},
            {"id": "b", "provider": "p", "categories": ["drink"], "discount": {"percent": "50"}},
            {"id": "c", "provider": "p", "categories": ["meal.lunch"], "discount": {"percent": "33.33"}}
        ],
        "grants": [{"benefit": "a"}, {"benefit": "b"}, {"benefit": "c"}],
        "cart": [
            {"sku": "S", "category": "meal.snack", "unit_price": "0.99", "qty": 2},
            {"sku": "W", "category": "drink", "unit_price": "0.05", "qty": 1},
            {"sku": "L", "category": "meal.lunch", "unit_price": "3.00", "qty": 1}
        ]
    });
    // total 1.98 + 0.05 + 3.00 = 5.03; discount 0.24 + 0.03 + 1.00 = 1.27.
    let expected = json!({
        "discounts": [
            {"line": 0, "benefit": "a", "provider": "p", "amount": "0.24"},
            {"line": 1, "benefit": "b", "provider": "p", "amount": "0.03"},
            {"line": 2, "benefit": "c", "provider": "p", "amount": "1.00"}
        ],
        "total": "5.03", "discount_total": "1.27", "due": "3.76",
        "by_provider": {"p": "1.27"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn stacked_percent_applies_to_the_remaining_price() {
    // Goal: a later benefit takes its percent of what earlier benefits left.
    // 50% of 0.75 = 0.375 -> 0.38, leaving 0.37; 50% of 0.37 = 0.185 -> 0.19.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "first", "provider": "state", "categories": ["meal"],
             "discount": {"percent": "50"}, "priority": 5},
            {"id": "second", "provider": "riga", "categories": ["meal"],
             "discount": {"percent": "50"}, "priority": 6}
        ],
        "grants": [{"benefit": "first"}, {"benefit": "second"}],
        "cart": [{"sku": "B", "category": "meal.snack", "unit_price": "0.75", "qty": 1}]
    });
    let expected = json!({
        "discounts": [
            {"line": 0, "benefit": "first", "provider": "state", "amount": "0.38"},
            {"line": 0, "benefit": "second", "provider": "riga", "amount": "0.19"}
        ],
        "total": "0.75", "discount_total": "0.57", "due": "0.18",
        "by_provider": {"riga": "0.19", "state": "0.38"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn history_later_than_now_in_the_same_period_counts() {
    // Goal: "in the same period as now" is the whole calendar period: an
    // entry later today (clock skew between terminals) counts; one exactly
    // at the start of tomorrow does not; one exactly at the start of today
    // does. Amounts: 1.00 + 0.50 of 2.00 used -> 0.50 left.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [{"id": "d", "provider": "p", "categories": ["meal"],
                      "discount": {"percent": "100"},
                      "limits": [{"period": "day", "max_amount": "2.00"}]}],
        "grants": [{"benefit": "d"}],
        "history": [
            {"at": "2026-03-02T00:00:00+02:00", "benefit": "d", "amount": "1.00"},
            {"at": "2026-03-02T18:00:00+02:00", "benefit": "d", "amount": "0.50"},
            {"at": "2026-03-03T00:00:00+02:00", "benefit": "d", "amount": "2.00"},
            {"at": "2026-03-02T12:00:00+02:00", "benefit": "other", "amount": "2.00"}
        ],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "d", "provider": "p", "amount": "0.50"}],
        "total": "2.50", "discount_total": "0.50", "due": "2.00",
        "by_provider": {"p": "0.50"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn overspent_amount_limit_clamps_to_zero() {
    // Goal: history above max_amount (e.g. two offline terminals) leaves a
    // negative remaining cap, which clamps to 0: amount_limit, never a
    // negative discount.
    let case = json!({
        "now": "2026-03-20T12:00:00+02:00",
        "benefits": [{"id": "m", "provider": "p", "categories": ["transport"],
                      "discount": {"percent": "100"},
                      "limits": [{"period": "month", "max_amount": "10.00"}]}],
        "grants": [{"benefit": "m"}],
        "history": [
            {"at": "2026-03-05T08:00:00+02:00", "benefit": "m", "amount": "7.00"},
            {"at": "2026-03-06T08:00:00+02:00", "benefit": "m", "amount": "7.00"}
        ],
        "cart": [{"sku": "R", "category": "transport.bus", "unit_price": "1.50", "qty": 2}]
    });
    let expected = json!({
        "discounts": [], "total": "3.00", "discount_total": "0.00", "due": "3.00",
        "by_provider": {}, "refused": [{"benefit": "m", "reason": "amount_limit"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn transaction_cap_is_per_benefit_and_cuts_a_unit() {
    // Goal: max_per_transaction limits one benefit's total in the cart, cuts
    // the unit that crosses it, and does not limit another benefit.
    // capped: 1.00 + 1.00 + min(1.00, 2.50 - 2.00) = 2.50; the 4th unit meets
    // the cap (transaction_cap) but the benefit gave, so it is not refused.
    // other (after it): 100% of what is left: 0 + 0 + 0.50 + 1.00 = 1.50.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "capped", "provider": "p", "categories": ["transport"],
             "discount": {"amount": "1.00"}, "max_per_transaction": "2.50", "priority": 1},
            {"id": "other", "provider": "q", "categories": ["transport"],
             "discount": {"percent": "100"}, "priority": 2}
        ],
        "grants": [{"benefit": "capped"}, {"benefit": "other"}],
        "cart": [
            {"sku": "R", "category": "transport.bus", "unit_price": "1.00", "qty": 3},
            {"sku": "T", "category": "transport.tram", "unit_price": "1.00", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [
            {"line": 0, "benefit": "capped", "provider": "p", "amount": "2.50"},
            {"line": 0, "benefit": "other", "provider": "q", "amount": "0.50"},
            {"line": 1, "benefit": "other", "provider": "q", "amount": "1.00"}
        ],
        "total": "4.00", "discount_total": "4.00", "due": "0.00",
        "by_provider": {"p": "2.50", "q": "1.50"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn duplicate_ids_each_count_the_history() {
    // Goal: validation refuses duplicate benefit ids, but the engine stays
    // defined on them: every benefit with the id counts its history (an
    // earlier engine let only the last-applied copy see it).
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "d", "provider": "p", "categories": ["meal"], "discount": {"percent": "100"},
             "priority": 1, "limits": [{"period": "day", "max_count": 1}]},
            {"id": "d", "provider": "q", "categories": ["meal"], "discount": {"percent": "100"},
             "priority": 2, "limits": [{"period": "day", "max_count": 1}]}
        ],
        "grants": [{"benefit": "d"}],
        "history": [{"at": "2026-03-02T08:00:00+02:00", "benefit": "d", "amount": "2.50"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}]
    });
    let benefits: Vec<Benefit> = field(&case, "benefits");
    assert!(
        validate::benefits(&benefits).is_err(),
        "duplicates are invalid"
    );
    let expected = json!({
        "discounts": [], "total": "2.50", "discount_total": "0.00", "due": "2.50",
        "by_provider": {},
        "refused": [{"benefit": "d", "reason": "count_limit"}, {"benefit": "d", "reason": "count_limit"}]
    });
    assert_eq!(run_unvalidated(&case, &benefits), expected);
}

#[test]
fn long_ids_that_share_their_ends_are_told_apart() {
    // Goal: the history look-up matches whole ids, also ids longer than 16
    // bytes that share their first and last eight bytes.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "riga-pupil-AAAA-lunch-01", "provider": "p", "categories": ["meal.lunch"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]},
            {"id": "riga-pupil-BBBB-lunch-01", "provider": "p", "categories": ["meal.snack"],
             "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]}
        ],
        "grants": [{"benefit": "riga-pupil-AAAA-lunch-01"}, {"benefit": "riga-pupil-BBBB-lunch-01"}],
        "history": [{"at": "2026-03-02T08:00:00+02:00", "benefit": "riga-pupil-AAAA-lunch-01",
                     "amount": "2.50"}],
        "cart": [
            {"sku": "L", "category": "meal.lunch", "unit_price": "2.50", "qty": 1},
            {"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1}
        ]
    });
    let expected = json!({
        "discounts": [{"line": 1, "benefit": "riga-pupil-BBBB-lunch-01", "provider": "p",
                       "amount": "1.00"}],
        "total": "3.50", "discount_total": "1.00", "due": "2.50",
        "by_provider": {"p": "1.00"},
        "refused": [{"benefit": "riga-pupil-AAAA-lunch-01", "reason": "count_limit"}]
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn amount_limit_counts_what_this_cart_already_gave() {
    // Goal: used_amount adds what the benefit gave earlier in this cart to
    // the history. 1.00 of 3.00 used: units give 1.00, 1.00, then the cap is
    // spent (0.00 left) for the third unit.
    let case = json!({
        "now": "2026-03-20T12:00:00+02:00",
        "benefits": [{"id": "m", "provider": "p", "categories": ["transport"],
                      "discount": {"percent": "100"},
                      "limits": [{"period": "month", "max_amount": "3.00"}]}],
        "grants": [{"benefit": "m"}],
        "history": [{"at": "2026-03-03T08:00:00+02:00", "benefit": "m", "amount": "1.00"}],
        "cart": [{"sku": "R", "category": "transport.bus", "unit_price": "1.00", "qty": 3}]
    });
    let expected = json!({
        "discounts": [{"line": 0, "benefit": "m", "provider": "p", "amount": "2.00"}],
        "total": "3.00", "discount_total": "2.00", "due": "1.00",
        "by_provider": {"p": "2.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}

#[test]
fn equal_priorities_apply_in_id_byte_order() {
    // Goal: ties in priority go by id in byte order, where "Zeta" (0x5A)
    // sorts before "alpha" (0x61). Zeta: 50% of 2.00 = 1.00; alpha: 1.00 off
    // the remaining 1.00 = 1.00. The other order would give alpha 1.00 and
    // Zeta 50% of 1.00 = 0.50.
    let case = json!({
        "now": "2026-03-02T12:00:00+02:00",
        "benefits": [
            {"id": "alpha", "provider": "a", "categories": ["meal"], "discount": {"amount": "1.00"}},
            {"id": "Zeta", "provider": "z", "categories": ["meal"], "discount": {"percent": "50"}}
        ],
        "grants": [{"benefit": "alpha"}, {"benefit": "Zeta"}],
        "cart": [{"sku": "L", "category": "meal.lunch", "unit_price": "2.00", "qty": 1}]
    });
    let expected = json!({
        "discounts": [
            {"line": 0, "benefit": "Zeta", "provider": "z", "amount": "1.00"},
            {"line": 0, "benefit": "alpha", "provider": "a", "amount": "1.00"}
        ],
        "total": "2.00", "discount_total": "2.00", "due": "0.00",
        "by_provider": {"a": "1.00", "z": "1.00"}, "refused": []
    });
    assert_eq!(run(&case), expected);
}
