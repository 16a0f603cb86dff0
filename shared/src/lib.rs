//! The functional core of the benefits system, shared by the terminal agent
//! and the central server.
//!
//! - [`money`]: EUR amounts and percentages; the only place that rounds.
//! - [`model`]: benefits, grants, memberships, history, carts, quotes.
//! - [`time`]: local days, ISO weeks, months and years in a time zone.
//! - [`rules`]: the benefit rules engine (`docs/rules.md`).
//! - [`validate`]: cross-field checks with paths to the offending field.
//! - [`conformance`]: the conformance vector format and comparison.
//!
//! Deliberately missing: any I/O, any clock, any randomness. The agent and
//! central pass `now` in, and do the reading and writing around this crate.
//!
//! ```
//! use shared::model::{Benefit, CartLine, Grant};
//! use shared::rules::{evaluate, QuoteInput};
//!
//! let benefit: Benefit = serde_json::from_str(
//!     r#"{"id":"lunch","provider":"riga","categories":["meal.lunch"],"discount":{"percent":"100"}}"#,
//! ).unwrap();
//! let grants = [Grant { benefit: "lunch".into(), valid_from: None, valid_to: None }];
//! let cart: Vec<CartLine> = serde_json::from_str(
//!     r#"[{"sku":"L","category":"meal.lunch","unit_price":"2.50","qty":1}]"#,
//! ).unwrap();
//! let quote = evaluate(&QuoteInput {
//!     benefits: &[benefit], grants: &grants, memberships: &[], history: &[],
//!     cart: &cart, now: "2026-03-02T12:00:00+02:00".parse().unwrap(),
//! });
//! assert_eq!(quote.due.to_string(), "0.00");
//! ```

pub mod conformance;
pub mod mix;
pub mod model;
pub mod money;
pub mod rules;
pub mod time;
pub mod validate;
pub mod wire;
