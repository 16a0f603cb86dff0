//! Validation of benefit definitions and carts: the cross-field rules that
//! the strict deserializers of [`crate::model`] cannot express.
//!
//! Every problem is reported with the path of the offending field
//! (`benefits[2].limits[0].period`) so that a provider fixing a rule file or
//! a POS developer fixing a request knows exactly where to look. All
//! problems are collected, not just the first.
//!
//! Two scopes: [`benefits`] and [`cart`] are what central publishes and a
//! till accepts (boring ids, a non-empty cart, no rule that can never
//! apply); [`computable_benefits`] and [`computable_cart`] are only what the
//! engine needs to give the answer `benefit-rules.md` defines (discount in
//! range, no negative money, bounded units). Conformance vectors are held
//! to the second: the specification allows everything else.

use std::collections::HashSet;
use std::fmt;

use crate::model::{Benefit, CartLine, Discount};
use crate::money::Money;

/// Most units one cart may hold; a canteen tray or a bus ticket is far below.
pub const CART_UNITS_MAX: u32 = 10_000;
/// Most lines one cart may hold.
pub const CART_LINES_MAX: usize = 200;
/// Longest identifier (benefit, provider, group, category, sku) accepted.
pub const ID_LEN_MAX: usize = 128;

/// One problem found in an input, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// All problems of an input, in the order found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (idx, problem) in self.0.iter().enumerate() {
            if idx > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

struct Collector {
    problems: Vec<Problem>,
    scope: Scope,
}

/// How much a check asks for (see the module's doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// What central publishes and a till accepts.
    Register,
    /// Only what the engine needs for a defined answer.
    Engine,
}

impl Collector {
    fn new(scope: Scope) -> Collector {
        Collector {
            problems: Vec::new(),
            scope,
        }
    }

    /// A rule of the register's only: central and tills keep it, the
    /// engine does not need it.
    fn register_only(&self) -> bool {
        self.scope == Scope::Register
    }

    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }
    fn finish(self) -> Result<(), Problems> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Problems(self.problems))
        }
    }
}

/// `true` for identifiers we accept: 1..=128 printable ASCII characters
/// without spaces. Ids travel in URLs, CSV files and signed records, so
/// they are kept boring.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= ID_LEN_MAX && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Checks a list of benefits: each on its own, and that ids are unique.
pub fn benefits(list: &[Benefit]) -> Result<(), Problems> {
    check_benefits(Collector::new(Scope::Register), list)
}

/// Checks a list of benefits for what the engine needs only (conformance
/// vectors): each discount in range, no negative money, ISO weekdays, and
/// unique ids (the application order ties on id).
pub fn computable_benefits(list: &[Benefit]) -> Result<(), Problems> {
    check_benefits(Collector::new(Scope::Engine), list)
}

fn check_benefits(mut out: Collector, list: &[Benefit]) -> Result<(), Problems> {
    let mut seen = HashSet::new();
    for (idx, benefit) in list.iter().enumerate() {
        let path = format!("benefits[{idx}]");
        check_benefit(&mut out, &path, benefit);
        if !seen.insert(benefit.id.as_str()) {
            out.push(
                format!("{path}.id"),
                format!("duplicate benefit id {:?}", benefit.id),
            );
        }
    }
    out.finish()
}

/// Checks one benefit; paths start at `path`.
pub fn benefit(path: &str, benefit: &Benefit) -> Result<(), Problems> {
    let mut out = Collector::new(Scope::Register);
    check_benefit(&mut out, path, benefit);
    out.finish()
}

fn check_benefit(out: &mut Collector, path: &str, benefit: &Benefit) {
    if out.register_only() {
        check_register_names(out, path, benefit);
    }
    match benefit.discount {
        Discount::Percent(percent) => {
            if !percent.is_in_range() {
                out.push(
                    format!("{path}.discount.percent"),
                    format!("{percent} is outside 0..=100"),
                );
            }
        }
        Discount::Amount(amount) => check_money(out, &format!("{path}.discount.amount"), amount),
        Discount::FixedPrice(price) => {
            check_money(out, &format!("{path}.discount.fixed_price"), price)
        }
    }
    if let Some(cap) = benefit.max_per_transaction {
        check_money(out, &format!("{path}.max_per_transaction"), cap);
    }
    for (idx, limit) in benefit.limits.iter().enumerate() {
        let limit_path = format!("{path}.limits[{idx}]");
        if out.register_only() {
            match (limit.max_count, limit.max_amount) {
                (Some(_), Some(_)) => out.push(
                    limit_path.clone(),
                    "give either max_count or max_amount, not both (use two limits)",
                ),
                (None, None) => out.push(limit_path.clone(), "give max_count or max_amount"),
                _ => {}
            }
        }
        if let Some(amount) = limit.max_amount {
            check_money(out, &format!("{limit_path}.max_amount"), amount);
        }
    }
    if out.register_only() && benefit.weekdays.as_ref().is_some_and(Vec::is_empty) {
        out.push(
            format!("{path}.weekdays"),
            "is empty: the benefit would never apply",
        );
    }
    for (idx, day) in benefit.weekdays.iter().flatten().enumerate() {
        if !(1..=7).contains(day) {
            out.push(
                format!("{path}.weekdays[{idx}]"),
                format!("{day} is not an ISO weekday (1 = Monday .. 7 = Sunday)"),
            );
        }
    }
    if out.register_only() {
        check_register_bounds(out, path, benefit);
    }
}

/// Rules of the register only: boring ids, categories and groups.
fn check_register_names(out: &mut Collector, path: &str, benefit: &Benefit) {
    if !is_valid_id(&benefit.id) {
        out.push(
            format!("{path}.id"),
            "must be 1-128 printable characters without spaces",
        );
    }
    if !is_valid_id(&benefit.provider) {
        out.push(
            format!("{path}.provider"),
            "must be 1-128 printable characters without spaces",
        );
    }
    if benefit.categories.is_empty() {
        out.push(
            format!("{path}.categories"),
            "must name at least one category",
        );
    }
    for (idx, category) in benefit.categories.iter().enumerate() {
        if !is_valid_category(category) {
            out.push(
                format!("{path}.categories[{idx}]"),
                format!(
                    "{category:?} is not a category (dot-separated words, e.g. \"meal.lunch\")"
                ),
            );
        }
    }
    for (idx, group) in benefit.groups.iter().enumerate() {
        if !is_valid_id(group) {
            out.push(
                format!("{path}.groups[{idx}]"),
                "must be 1-128 printable characters",
            );
        }
    }
}

/// Rules of the register only: no validity that can never hold, labels of a
/// sane length.
fn check_register_bounds(out: &mut Collector, path: &str, benefit: &Benefit) {
    if let (Some(from), Some(to)) = (benefit.valid_from, benefit.valid_to) {
        if from > to {
            out.push(
                format!("{path}.valid_from"),
                format!("{from} is after valid_to {to}"),
            );
        }
    }
    for (language, label) in &benefit.label {
        if label.is_empty() || label.len() > 200 {
            out.push(format!("{path}.label.{language}"), "must be 1-200 bytes");
        }
    }
}

fn check_money(out: &mut Collector, path: &str, amount: Money) {
    if amount.is_negative() {
        out.push(path, format!("{amount} is negative"));
    }
}

/// A category is dot-separated non-empty words of `[a-z0-9_-]`.
pub fn is_valid_category(category: &str) -> bool {
    !category.is_empty()
        && category.len() <= ID_LEN_MAX
        && category.split('.').all(|word| {
            !word.is_empty()
                && word
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        })
}

/// The highest unit price, 1,000,000.00: a full cart of them stays within
/// [`crate::money::MONEY_MAX`] (a test checks it is `MONEY_MAX / CART_UNITS_MAX`).
const UNIT_PRICE_MAX: rust_decimal::Decimal =
    rust_decimal::Decimal::from_parts(100_000_000, 0, 0, false, 2);

/// Checks a cart as sent by POS software or a validator.
pub fn cart(lines: &[CartLine]) -> Result<(), Problems> {
    check_cart(Collector::new(Scope::Register), lines)
}

/// Checks a cart for what the engine needs only (conformance vectors): no
/// negative price, and a bounded number of lines and units (the engine
/// visits every unit). An empty cart, a line of no units, an empty sku or a
/// price above the register's bound have an answer under the specification.
pub fn computable_cart(lines: &[CartLine]) -> Result<(), Problems> {
    check_cart(Collector::new(Scope::Engine), lines)
}

fn check_cart(mut out: Collector, lines: &[CartLine]) -> Result<(), Problems> {
    if lines.is_empty() && out.register_only() {
        out.push("cart", "is empty");
    }
    if lines.len() > CART_LINES_MAX {
        out.push(
            "cart",
            format!("has {} lines, at most {CART_LINES_MAX}", lines.len()),
        );
    }
    let mut units: u64 = 0;
    for (idx, line) in lines.iter().enumerate() {
        // Every decoded record's cart comes through here: the field's path
        // is written only for a problem.
        let at = |field: &str| format!("cart[{idx}].{field}");
        if out.register_only() {
            if line.sku.is_empty() || line.sku.len() > ID_LEN_MAX {
                out.push(at("sku"), "must be 1-128 characters");
            }
            if !is_valid_category(&line.category) {
                out.push(
                    at("category"),
                    format!(
                        "{:?} is not a category (e.g. \"meal.lunch\")",
                        line.category
                    ),
                );
            }
            if line.qty == 0 {
                out.push(at("qty"), "must be at least 1");
            }
        }
        if line.unit_price.is_negative() {
            out.push(at("unit_price"), format!("{} is negative", line.unit_price));
        }
        // The engine's decimals hold far more; the register keeps every
        // cart total within what money may be.
        if out.register_only() && line.unit_price.decimal() > UNIT_PRICE_MAX {
            out.push(at("unit_price"), "is too large for one unit");
        }
        units += u64::from(line.qty);
    }
    if units > u64::from(CART_UNITS_MAX) {
        out.push(
            "cart",
            format!("has {units} units, at most {CART_UNITS_MAX}"),
        );
    }
    out.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Benefit {
        serde_json::from_str(json).expect("benefit json")
    }

    fn problems_of(list: &[Benefit]) -> Vec<String> {
        match benefits(list) {
            Ok(()) => Vec::new(),
            Err(Problems(problems)) => problems.iter().map(ToString::to_string).collect(),
        }
    }

    const OK: &str =
        r#"{"id":"a","provider":"riga","categories":["meal"],"discount":{"percent":"100"}}"#;

    #[test]
    fn a_plain_benefit_is_valid() {
        assert!(problems_of(&[parse(OK)]).is_empty());
    }

    #[test]
    fn each_rule_is_reported_with_its_path() {
        let bad = parse(
            r#"{"id":"a","provider":"riga","categories":[],"discount":{"percent":"101"},
                "limits":[{"period":"day"},{"period":"month","max_count":1,"max_amount":"1"}],
                "weekdays":[0,8],"valid_from":"2026-02-01","valid_to":"2026-01-01"}"#,
        );
        let problems = problems_of(&[bad, parse(OK), parse(OK)]);
        let expected = [
            "benefits[0].categories: must name at least one category",
            "benefits[0].discount.percent: 101 is outside 0..=100",
            "benefits[0].limits[0]: give max_count or max_amount",
            "benefits[0].limits[1]: give either max_count or max_amount, not both (use two limits)",
            "benefits[0].weekdays[0]: 0 is not an ISO weekday (1 = Monday .. 7 = Sunday)",
            "benefits[0].weekdays[1]: 8 is not an ISO weekday (1 = Monday .. 7 = Sunday)",
            "benefits[0].valid_from: 2026-02-01 is after valid_to 2026-01-01",
            "benefits[1].id: duplicate benefit id \"a\"",
            "benefits[2].id: duplicate benefit id \"a\"",
        ];
        assert_eq!(problems, expected);
    }

    #[test]
    fn decoding_errors_name_the_field() {
        let cases = [
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{"percent":"1","amount":"1"}}"#,
                "discount",
                "more than one discount kind",
            ),
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{}}"#,
                "discount",
                "no discount kind",
            ),
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{"amount":"1.005"}}"#,
                "discount.amount",
                "more than 2 decimal places",
            ),
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{"amount":1.5}}"#,
                "discount.amount",
                "JSON number",
            ),
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{"amount":"1"},"limits":[{"period":"fortnight","max_count":1}]}"#,
                "limits[0].period",
                "unknown variant `fortnight`",
            ),
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{"amount":"1"},"time_zone":"Mars/Olympus"}"#,
                "time_zone",
                "unknown time zone",
            ),
            (
                r#"{"id":"a","provider":"p","categories":["m"],"discount":{"amount":"1"},"max_per_transaction":""}"#,
                "max_per_transaction",
                "empty string",
            ),
        ];
        for (json, path, message) in cases {
            let mut de = serde_json::Deserializer::from_str(json);
            let err = serde_path_to_error::deserialize::<_, Benefit>(&mut de).expect_err(json);
            assert_eq!(err.path().to_string(), path, "{json}");
            assert!(err.inner().to_string().contains(message), "{json}: {err}");
        }
    }

    #[test]
    fn computable_scope_keeps_only_what_the_engine_needs() {
        // A till refuses these, the engine has an answer for each.
        let lines: Vec<CartLine> =
            serde_json::from_str(r#"[{"sku":"","category":"Meal","unit_price":"1","qty":0}]"#)
                .expect("cart json");
        assert!(cart(&lines).is_err());
        assert_eq!(computable_cart(&lines), Ok(()));
        assert!(cart(&[]).is_err());
        assert_eq!(computable_cart(&[]), Ok(()));
        let odd = parse(
            r#"{"id":"pusdienas-skolēniem","provider":"rīga","categories":["Meal"],
                "discount":{"percent":"100"},"weekdays":[],
                "limits":[{"period":"day","max_count":1,"max_amount":"5.00"}]}"#,
        );
        assert!(benefits(std::slice::from_ref(&odd)).is_err());
        assert_eq!(computable_benefits(&[odd]), Ok(()));
        // Neither takes what has no defined answer.
        let negative: Vec<CartLine> =
            serde_json::from_str(r#"[{"sku":"x","category":"meal","unit_price":"-1","qty":1}]"#)
                .expect("cart json");
        assert!(computable_cart(&negative).is_err());
        let bulk: Vec<CartLine> =
            serde_json::from_str(r#"[{"sku":"x","category":"meal","unit_price":"1","qty":10001}]"#)
                .expect("cart json");
        assert!(computable_cart(&bulk).is_err());
        match computable_benefits(&[parse(
            r#"{"id":"x","provider":"p","categories":["meal"],"discount":{"percent":"101"},
                "weekdays":[8]}"#,
        )]) {
            Ok(()) => panic!("percent 101 and weekday 8 accepted"),
            Err(Problems(found)) => assert_eq!(
                found.iter().map(|p| p.path.as_str()).collect::<Vec<_>>(),
                ["benefits[0].discount.percent", "benefits[0].weekdays[0]"]
            ),
        }
    }

    #[test]
    fn unit_price_max_keeps_a_full_cart_within_money_max() {
        assert_eq!(
            UNIT_PRICE_MAX,
            crate::money::MONEY_MAX / rust_decimal::Decimal::from(CART_UNITS_MAX)
        );
    }

    #[test]
    fn cart_problems_name_the_line() {
        let lines: Vec<CartLine> = serde_json::from_str(
            r#"[{"sku":"","category":"Meal","unit_price":"1","qty":0},
                {"sku":"x","category":"meal..x","unit_price":"-1","qty":1}]"#,
        )
        .expect("cart json");
        let problems: Vec<String> = match cart(&lines) {
            Ok(()) => Vec::new(),
            Err(Problems(problems)) => problems.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(
            problems,
            [
                "cart[0].sku: must be 1-128 characters",
                "cart[0].category: \"Meal\" is not a category (e.g. \"meal.lunch\")",
                "cart[0].qty: must be at least 1",
                "cart[1].category: \"meal..x\" is not a category (e.g. \"meal.lunch\")",
                "cart[1].unit_price: -1.00 is negative",
            ]
        );
    }
}
