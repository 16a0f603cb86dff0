//! Unit tests of the pure parts of snapshot building: scope by category,
//! memberships resolved into entitlements, and which usage days are sent.

use super::*;
use crate::store::{RecipientEntries, UsageRow};
use shared::model::Membership;

fn benefit(json: serde_json::Value) -> Benefit {
    serde_json::from_value(json).expect("benefit")
}

fn monthly() -> Benefit {
    benefit(serde_json::json!({
        "id": "rides", "provider": "riga", "groups": ["family"], "categories": ["transport.bus"],
        "discount": {"percent": "100"}, "limits": [{"period": "month", "max_amount": "10.00"}, {"period": "day", "max_count": 4}]
    }))
}

fn scope_of(benefits: &[Benefit]) -> Scope {
    let mut by_group: HashMap<String, Vec<String>> = HashMap::new();
    for b in benefits {
        for g in &b.groups {
            by_group.entry(g.clone()).or_default().push(b.id.clone());
        }
    }
    Scope {
        benefits: benefits.iter().map(|b| (b.id.clone(), b.clone())).collect(),
        by_group,
        usage: UsageQuery {
            since: Date::MIN,
            exclude_terminal: "T".into(),
        },
    }
}

#[test]
fn scope_follows_category_prefixes_both_ways() {
    let bus = monthly();
    assert!(
        in_scope(&bus, &["transport".to_owned()]),
        "a transport validator sells bus rides"
    );
    assert!(in_scope(&bus, &["transport.bus.night".to_owned()]));
    assert!(!in_scope(&bus, &["meal".to_owned()]));
    assert!(
        !in_scope(&bus, &["transport.busy".to_owned()]),
        "prefixes end at a dot"
    );
}

#[test]
fn memberships_become_entitlements_without_groups() {
    let scope = scope_of(&[monthly()]);
    let data = RecipientData {
        id: "R1".into(),
        entries: RecipientEntries {
            grants: vec![Grant {
                benefit: "not-in-scope".into(),
                valid_from: None,
                valid_to: None,
            }],
            memberships: vec![Membership {
                group: "family".into(),
                valid_from: Some("2026-01-01".parse().expect("date")),
                valid_to: Some("2026-12-31".parse().expect("date")),
            }],
        },
        usage: Vec::new(),
    };
    let item = recipient_item(
        &scope,
        &data,
        "2026-03-10T10:00:00Z".parse().expect("instant"),
    )
    .expect("in scope");
    let SnapshotItem::Recipient { entitlements, .. } = item else {
        panic!("a recipient line")
    };
    assert_eq!(
        entitlements,
        [Grant {
            benefit: "rides".into(),
            valid_from: Some("2026-01-01".parse().expect("date")),
            valid_to: Some("2026-12-31".parse().expect("date")),
        }]
    );
    let outsider = RecipientData {
        id: "R2".into(),
        entries: RecipientEntries::default(),
        usage: Vec::new(),
    };
    assert!(
        recipient_item(&scope, &outsider, Timestamp::UNIX_EPOCH).is_none(),
        "no entitlement in scope, no line"
    );
    assert!(terminal_form(&monthly()).groups.is_empty());
}

#[test]
fn usage_covers_the_longest_current_period_only() {
    let scope = scope_of(&[monthly()]);
    let row = |day: &str, count: i64| UsageRow {
        benefit: "rides".into(),
        day: day.parse().expect("date"),
        count,
        amount_cents: 150 * count,
    };
    let data = RecipientData {
        id: "R1".into(),
        entries: RecipientEntries::default(),
        usage: vec![
            row("2026-02-28", 1),
            row("2026-03-01", 2),
            row("2026-03-09", 1),
            row("2026-03-10", 0),
        ],
    };
    // 1 March 00:30 in Riga is still 28 February 22:30 UTC.
    let now: Timestamp = "2026-03-10T10:00:00Z".parse().expect("instant");
    let days: Vec<(String, u32, String)> = usage(&scope, &data, now)
        .into_iter()
        .map(|u| (u.day.to_string(), u.count, u.amount.to_string()))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-03-01".into(), 2, "3.00".into()),
            ("2026-03-09".into(), 1, "1.50".into())
        ],
        "February is outside the month; an empty day is not sent"
    );
    assert_eq!(
        usage_start(&monthly(), now),
        Some("2026-03-01".parse().expect("date"))
    );
}
