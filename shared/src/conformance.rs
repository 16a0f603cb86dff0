//! Conformance vectors: the file format of `../shared/conformance/*.json`,
//! running one through the engine, and a field-by-field comparison.
//!
//! Used by the `conformance` binary and by the test suite, so that the
//! runner a vendor runs and the one CI runs are the same code.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::Deserialize;

use crate::model::{Benefit, CartLine, Grant, HistoryEntry, Membership, Quote};
use crate::money::Money;
use crate::rules::{self, QuoteInput};
use crate::validate;

/// One vector file. Top-level fields beyond these (a comment, a ticket
/// reference) are ignored: the specification names the ones a runner
/// reads, and says nothing against others.
#[derive(Debug, Clone, Deserialize)]
pub struct Vector {
    pub name: String,
    #[serde(default)]
    pub source: String,
    pub now: Timestamp,
    pub benefits: Vec<Benefit>,
    #[serde(default)]
    pub grants: Vec<Grant>,
    #[serde(default)]
    pub memberships: Vec<Membership>,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    pub cart: Vec<CartLine>,
    pub expect: Quote,
}

/// Parses a vector, naming the failing field on error. Only what the
/// engine needs for a defined answer is checked beyond the format
/// ([`validate::computable_benefits`], [`validate::computable_cart`]): an
/// empty cart, a weekday list that never matches or an id central would
/// not register all have the answer the specification gives them.
pub fn parse(text: &str) -> Result<Vector, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let vector: Vector = serde_path_to_error::deserialize(&mut de)
        .map_err(|err| format!("{}: {}", err.path(), err.inner()))?;
    validate::computable_benefits(&vector.benefits).map_err(|problems| problems.to_string())?;
    validate::computable_cart(&vector.cart).map_err(|problems| problems.to_string())?;
    Ok(vector)
}

/// Runs the engine on a vector's inputs.
pub fn run(vector: &Vector) -> Quote {
    rules::evaluate(&QuoteInput {
        benefits: &vector.benefits,
        grants: &vector.grants,
        memberships: &vector.memberships,
        history: &vector.history,
        cart: &vector.cart,
        now: vector.now,
    })
}

/// Differences between the expected and the actual quote, one per field;
/// empty when they agree. Money compares as decimal values.
pub fn diff(expected: &Quote, actual: &Quote) -> Vec<String> {
    let mut out = Vec::new();
    let show = |value: &dyn erased::Show| value.show();
    if expected.discounts != actual.discounts {
        out.push(format!(
            "discounts: expected {}, got {}",
            show(&expected.discounts),
            show(&actual.discounts)
        ));
    }
    for (field, want, got) in [
        ("total", expected.total, actual.total),
        (
            "discount_total",
            expected.discount_total,
            actual.discount_total,
        ),
        ("due", expected.due, actual.due),
    ] {
        if want != got {
            out.push(format!("{field}: expected {want}, got {got}"));
        }
    }
    // `by_provider` has "only non-zero entries": an expected zero entry
    // says the same as no entry.
    let nonzero = |map: &BTreeMap<String, Money>| -> BTreeMap<String, Money> {
        map.iter()
            .filter(|(_, amount)| !amount.is_zero())
            .map(|(provider, amount)| (provider.clone(), *amount))
            .collect()
    };
    if nonzero(&expected.by_provider) != nonzero(&actual.by_provider) {
        out.push(format!(
            "by_provider: expected {}, got {}",
            show(&expected.by_provider),
            show(&actual.by_provider)
        ));
    }
    if expected.refused != actual.refused {
        out.push(format!(
            "refused: expected {}, got {}",
            show(&expected.refused),
            show(&actual.refused)
        ));
    }
    out
}

mod erased {
    /// Compact JSON of a value, for difference messages.
    pub trait Show {
        fn show(&self) -> String;
    }
    impl<T: serde::Serialize> Show for T {
        fn show(&self) -> String {
            serde_json::to_string(self).unwrap_or_else(|err| format!("<{err}>"))
        }
    }
}
