//! Money: EUR amounts with exactly two decimals, and percentages.
//!
//! This module is the only place that rounds. Amounts are `rust_decimal`
//! values, never floats; on the wire they are decimal strings ("2.50"), and a
//! JSON number is refused so that no float can ever sneak in.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The largest amount the system accepts anywhere: ten billion euro.
/// Far above any real price or budget, and low enough that `qty × price`
/// sums can never overflow a `Decimal`.
pub const MONEY_MAX: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 2);

/// Why a string is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("empty string is not an amount")]
    Empty,
    #[error("{0:?} is not a decimal number (expected e.g. \"2.50\")")]
    NotDecimal(String),
    #[error("{0:?} has more than 2 decimal places")]
    TooManyDecimals(String),
    #[error("{0:?} is negative")]
    Negative(String),
    #[error("{0:?} is too large (at most 10000000000.00)")]
    TooLarge(String),
    #[error("expected a decimal string such as \"2.50\", found a JSON number")]
    Float,
}

/// An amount in EUR with exactly two decimals. Arithmetic keeps the scale at 2.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::from_parts(0, 0, 0, false, 2));

    /// Parses a non-negative amount such as `"2.5"` or `"2.50"`.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let money = Money::parse_signed(text)?;
        if money.is_negative() {
            return Err(MoneyError::Negative(text.to_owned()));
        }
        Ok(money)
    }

    /// Parses an amount that may be negative (adjustments, credit notes).
    pub fn parse_signed(text: &str) -> Result<Money, MoneyError> {
        let value = parse_decimal(text)?;
        if value.scale() > 2 && value.normalize().scale() > 2 {
            return Err(MoneyError::TooManyDecimals(text.to_owned()));
        }
        if value.abs() > MONEY_MAX {
            return Err(MoneyError::TooLarge(text.to_owned()));
        }
        Ok(Money::from_decimal_exact(value))
    }

    /// Whole cents, for storage as an integer.
    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    /// The amount in cents. Exact because the scale is always 2.
    pub fn cents(self) -> i64 {
        // The scale is 2 and |value| ≤ MONEY_MAX, so the mantissa fits i64.
        i64::try_from(self.0.mantissa()).unwrap_or(i64::MAX)
    }

    fn from_decimal_exact(value: Decimal) -> Money {
        let mut value = value.round_dp(2);
        value.rescale(2);
        Money(value)
    }

    /// Rounds any decimal half away from zero to whole cents:
    /// 0.375 → 0.38, 0.365 → 0.37, −0.375 → −0.38.
    pub fn round_half_up(value: Decimal) -> Money {
        let mut value = value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
        value.rescale(2);
        Money(value)
    }

    pub fn decimal(self) -> Decimal {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    pub fn is_positive(self) -> bool {
        self.0.is_sign_positive() && !self.0.is_zero()
    }

    /// `self × qty`, exact, in cents: the decimal library returns a product
    /// of zero with no decimals, which would be written "0" where money is
    /// always written with two ("0.00").
    pub fn times(self, qty: u32) -> Money {
        let mut value = self.0 * Decimal::from(qty);
        value.rescale(2);
        Money(value)
    }

    /// `self − other`, never below zero.
    pub fn saturating_sub(self, other: Money) -> Money {
        if other >= self {
            Money::ZERO
        } else {
            self - other
        }
    }
}

fn parse_decimal(text: &str) -> Result<Decimal, MoneyError> {
    if text.is_empty() {
        return Err(MoneyError::Empty);
    }
    // Only plain decimal notation: optional sign, digits, optional dot and digits.
    // `Decimal::from_str` also accepts things like "1e3" or "_"; we do not.
    let body = text.strip_prefix('-').unwrap_or(text);
    let mut parts = body.splitn(2, '.');
    let whole = parts.next().unwrap_or("");
    let fraction = parts.next();
    let digits_ok = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
    if !digits_ok || whole.len() > 15 || fraction.is_some_and(|f| f.len() > 12) {
        return Err(if whole.len() > 15 && digits_ok {
            MoneyError::TooLarge(text.to_owned())
        } else {
            MoneyError::NotDecimal(text.to_owned())
        });
    }
    Decimal::from_str(text).map_err(|_| MoneyError::NotDecimal(text.to_owned()))
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(text: &str) -> Result<Money, MoneyError> {
        Money::parse(text)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        Money(self.0 + other.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        self.0 += other.0;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        Money(self.0 - other.0)
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, other: Money) {
        self.0 -= other.0;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, |a, b| a + b)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Accepts only a JSON string; negative amounts are accepted here and refused
/// by validation where they make no sense, so that the error can name the field.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        deserializer.deserialize_any(MoneyVisitor)
    }
}

struct MoneyVisitor;

impl serde::de::Visitor<'_> for MoneyVisitor {
    type Value = Money;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a decimal string such as \"2.50\"")
    }
    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Money, E> {
        Money::parse_signed(text).map_err(E::custom)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Money, E> {
        Err(E::custom(MoneyError::Float))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Money, E> {
        Err(E::custom(MoneyError::Float))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Money, E> {
        Err(E::custom(MoneyError::Float))
    }
}

/// A percentage in 0..=100, any number of decimals, as a decimal string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(Decimal);

impl Percent {
    pub fn parse(text: &str) -> Result<Percent, MoneyError> {
        let value = parse_decimal(text)?;
        Ok(Percent(value))
    }
    pub fn decimal(self) -> Decimal {
        self.0
    }
    pub fn is_in_range(self) -> bool {
        self.0 >= Decimal::ZERO && self.0 <= Decimal::ONE_HUNDRED
    }
    /// `round_half_up(amount × self / 100)`.
    pub fn of(self, amount: Money) -> Money {
        Money::round_half_up(amount.decimal() * self.0 / Decimal::ONE_HUNDRED)
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Debug for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.0)
    }
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Percent, D::Error> {
        struct PercentVisitor;
        impl serde::de::Visitor<'_> for PercentVisitor {
            type Value = Percent;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal string such as \"50\"")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Percent, E> {
                Percent::parse(text).map_err(E::custom)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Percent, E> {
                Err(E::custom(MoneyError::Float))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Percent, E> {
                Err(E::custom(MoneyError::Float))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Percent, E> {
                Err(E::custom(MoneyError::Float))
            }
        }
        deserializer.deserialize_any(PercentVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        Money::parse(text).expect("valid money")
    }

    #[test]
    fn parses_and_prints_two_decimals() {
        assert_eq!(m("2.5").to_string(), "2.50");
        assert_eq!(m("2").to_string(), "2.00");
        assert_eq!(m("0.07").to_string(), "0.07");
        assert_eq!(
            m("2.500").to_string(),
            "2.50",
            "trailing zeros are not extra precision"
        );
        assert_eq!(m("2.5"), m("2.50"));
    }

    #[test]
    fn refuses_what_is_not_money() {
        assert_eq!(Money::parse(""), Err(MoneyError::Empty));
        assert!(matches!(
            Money::parse("2.505"),
            Err(MoneyError::TooManyDecimals(_))
        ));
        assert!(matches!(
            Money::parse("-1.00"),
            Err(MoneyError::Negative(_))
        ));
        assert!(matches!(
            Money::parse("1e3"),
            Err(MoneyError::NotDecimal(_))
        ));
        assert!(matches!(Money::parse("1."), Err(MoneyError::NotDecimal(_))));
        assert!(matches!(Money::parse(".5"), Err(MoneyError::NotDecimal(_))));
        assert!(matches!(Money::parse(" 1"), Err(MoneyError::NotDecimal(_))));
        assert!(matches!(
            Money::parse("NaN"),
            Err(MoneyError::NotDecimal(_))
        ));
        assert!(matches!(
            Money::parse("99999999999999999999"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(matches!(
            Money::parse("10000000000.01"),
            Err(MoneyError::TooLarge(_))
        ));
        assert!(Money::parse("10000000000.00").is_ok());
    }

    #[test]
    fn json_number_is_refused() {
        let err = serde_json::from_str::<Money>("2.5").expect_err("float refused");
        assert!(err.to_string().contains("JSON number"), "{err}");
        assert_eq!(
            serde_json::from_str::<Money>("\"2.5\"").ok(),
            Some(m("2.50"))
        );
    }

    #[test]
    fn rounds_half_away_from_zero() {
        let d = |t: &str| Decimal::from_str(t).expect("decimal");
        assert_eq!(Money::round_half_up(d("0.375")).to_string(), "0.38");
        assert_eq!(Money::round_half_up(d("0.365")).to_string(), "0.37");
        assert_eq!(Money::round_half_up(d("0.364")).to_string(), "0.36");
        assert_eq!(Money::round_half_up(d("-0.375")).to_string(), "-0.38");
        let half = Percent::parse("50").expect("percent");
        assert_eq!(half.of(m("0.75")).to_string(), "0.38");
    }

    #[test]
    fn money_max_is_ten_billion() {
        assert_eq!(MONEY_MAX.to_string(), "10000000000.00");
    }

    #[test]
    fn cents_round_trip() {
        assert_eq!(m("12.34").cents(), 1234);
        assert_eq!(Money::from_cents(1234), m("12.34"));
        assert_eq!(Money::from_cents(-5).to_string(), "-0.05");
    }
}
