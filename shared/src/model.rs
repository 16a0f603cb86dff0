//! Domain types of the benefit register: benefits, grants, memberships,
//! usage history, carts and quotes.
//!
//! These types are also the JSON shapes of `../shared/spec/benefit-rules.md`:
//! they deserialize strictly (money only from decimal strings, time zones
//! only from the IANA database, unknown fields refused) so that a value of
//! these types is already well-formed. Cross-field rules (percent range,
//! date order, duplicate ids) live in [`crate::validate`].
//!
//! Deliberately absent: names, personal codes and social statuses. A
//! recipient is a pseudonymous reference; a group is an opaque id that the
//! terminal never shows.

use std::collections::BTreeMap;
use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::money::{Money, Percent};

/// The time zone benefits use when they name none.
pub const DEFAULT_TIME_ZONE: &str = "Europe/Riga";

/// A benefit: what is discounted, by how much, under which limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Benefit {
    pub id: String,
    pub provider: String,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub label: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    pub categories: Vec<String>,
    pub discount: Discount,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_transaction: Option<Money>,
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub limits: Vec<Limit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<u8>>,
    #[serde(default = "default_priority", deserialize_with = "priority_or_default")]
    pub priority: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<Date>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub time_zone: Zone,
    /// How the provider funds the benefit; decides VAT treatment in settlements.
    #[serde(default)]
    pub funding: Funding,
}

fn default_priority() -> i64 {
    100
}

/// An optional field written as `null` means the same as the field left
/// out: its default (the specification gives defaults, not a null form).
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `priority: null` is the default priority, as when it is left out.
fn priority_or_default<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    Ok(Option::<i64>::deserialize(deserializer)?.unwrap_or_else(default_priority))
}

impl Benefit {
    /// The label shown to a cashier: English, else Latvian, else the id.
    pub fn display_label(&self, language: &str) -> &str {
        self.label
            .get(language)
            .or_else(|| self.label.get("en"))
            .or_else(|| self.label.get("lv"))
            .map(String::as_str)
            .unwrap_or(&self.id)
    }

    /// `true` when a cart line of `category` is covered: equal to one of the
    /// benefit's categories, or starting with one of them followed by `.`.
    pub fn covers(&self, category: &str) -> bool {
        self.categories
            .iter()
            .any(|prefix| category_covers(prefix, category))
    }
}

/// `meal` covers `meal` and `meal.lunch`, not `meals`.
pub fn category_covers(prefix: &str, category: &str) -> bool {
    match category.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('.'),
        None => false,
    }
}

/// Exactly one kind of discount per benefit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discount {
    /// `P` % of the unit's remaining price, rounded half up.
    Percent(Percent),
    /// This much off each unit, at most its remaining price.
    Amount(Money),
    /// The unit costs at most this.
    FixedPrice(Money),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscountFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    percent: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    amount: Option<Money>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fixed_price: Option<Money>,
}

impl Serialize for Discount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut fields = DiscountFields {
            percent: None,
            amount: None,
            fixed_price: None,
        };
        match *self {
            Discount::Percent(p) => fields.percent = Some(p),
            Discount::Amount(a) => fields.amount = Some(a),
            Discount::FixedPrice(f) => fields.fixed_price = Some(f),
        }
        fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Discount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Discount, D::Error> {
        use serde::de::Error;
        let fields = DiscountFields::deserialize(deserializer)?;
        match (fields.percent, fields.amount, fields.fixed_price) {
            (Some(p), None, None) => Ok(Discount::Percent(p)),
            (None, Some(a), None) => Ok(Discount::Amount(a)),
            (None, None, Some(f)) => Ok(Discount::FixedPrice(f)),
            (None, None, None) => Err(D::Error::custom(
                "no discount kind: give exactly one of percent, amount, fixed_price",
            )),
            _ => Err(D::Error::custom(
                "more than one discount kind: give exactly one of percent, amount, fixed_price",
            )),
        }
    }
}

/// A calendar period in the benefit's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Day,
    /// ISO week, Monday to Sunday.
    Week,
    Month,
    Year,
}

impl Period {
    pub const ALL: [Period; 4] = [Period::Day, Period::Week, Period::Month, Period::Year];

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Year => "year",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A usage limit per period: a number of uses or an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub period: Period,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Money>,
}

/// How a provider funds a benefit (decides the VAT treatment downstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Funding {
    /// A discount from the tariff, VAT included: the provider pays the
    /// discounted part of a VAT-inclusive price.
    #[default]
    TariffDiscount,
    /// Compensation of the merchant's loss, outside the scope of VAT.
    LossCompensation,
}

/// An IANA time zone, resolved when parsed so that an unknown name is an
/// error at the edge and the engine never looks a zone up twice.
#[derive(Clone)]
pub struct Zone {
    name: String,
    tz: TimeZone,
}

impl Zone {
    pub fn get(name: &str) -> Result<Zone, String> {
        if name.is_empty() || name.len() > 64 {
            return Err(format!("{name:?} is not an IANA time zone name"));
        }
        TimeZone::get(name)
            .map(|tz| Zone {
                name: name.to_owned(),
                tz,
            })
            .map_err(|_| format!("unknown time zone {name:?}"))
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }
}

impl Default for Zone {
    fn default() -> Zone {
        // The bundled database always has Europe/Riga; fall back to UTC only
        // to keep `Default` total.
        Zone::get(DEFAULT_TIME_ZONE).unwrap_or_else(|_| Zone {
            name: DEFAULT_TIME_ZONE.to_owned(),
            tz: TimeZone::UTC,
        })
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Zone) -> bool {
        self.name == other.name
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Zone, D::Error> {
        let name = String::deserialize(deserializer)?;
        Zone::get(&name).map_err(serde::de::Error::custom)
    }
}

/// An individual decision giving one recipient one benefit for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub benefit: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<Date>,
}

/// A recipient belongs to a group for a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<Date>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<Date>,
}

/// `true` when `date` lies within the optional inclusive bounds.
pub fn within(date: Date, from: Option<Date>, to: Option<Date>) -> bool {
    from.is_none_or(|from| from <= date) && to.is_none_or(|to| date <= to)
}

/// An earlier use of a benefit by the same recipient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntry {
    pub at: Timestamp,
    pub benefit: String,
    /// An entry of uses only (say, a ride on a free pass) may leave the
    /// amount out: it counts toward count limits, not amount limits.
    #[serde(default = "no_amount")]
    pub amount: Money,
    #[serde(default = "default_count")]
    pub count: u32,
}

fn no_amount() -> Money {
    Money::ZERO
}

fn default_count() -> u32 {
    1
}

/// One line of a cart: `qty` units of `unit_price`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CartLine {
    pub sku: String,
    pub category: String,
    pub unit_price: Money,
    pub qty: u32,
}

/// The engine's answer for one cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quote {
    pub discounts: Vec<LineDiscount>,
    pub total: Money,
    pub discount_total: Money,
    pub due: Money,
    pub by_provider: BTreeMap<String, Money>,
    pub refused: Vec<Refusal>,
}

/// What one benefit gave on one cart line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDiscount {
    pub line: u32,
    pub benefit: String,
    pub provider: String,
    pub amount: Money,
}

/// An eligible benefit that covered the cart but gave nothing, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub benefit: String,
    pub reason: RefusalReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// A count limit (`max_count` uses per period) is reached.
    CountLimit,
    /// An amount limit (`max_amount` per period) is spent.
    AmountLimit,
    /// `max_per_transaction` is spent in this cart.
    TransactionCap,
    /// The unit was already free.
    NothingLeft,
}

impl RefusalReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::CountLimit => "count_limit",
            RefusalReason::AmountLimit => "amount_limit",
            RefusalReason::TransactionCap => "transaction_cap",
            RefusalReason::NothingLeft => "nothing_left",
        }
    }
}
