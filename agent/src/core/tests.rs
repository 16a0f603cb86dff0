//! Goal: the agent's pure decisions give the cashier the right answer and
//! the right words, and count usage exactly once. Method: small catalogs
//! and recipients built from JSON, quoted at fixed instants in Riga.

use super::*;

fn benefit(json: &str) -> Benefit {
    serde_json::from_str(json).expect("benefit json")
}

fn catalog(benefits: &[&str]) -> Catalog {
    Catalog::new(
        benefits
            .iter()
            .map(|json| {
                let benefit = benefit(json);
                let hash = shared::wire::record::benefit_hash(&benefit).expect("hash");
                (benefit, hash)
            })
            .collect(),
    )
}

const LUNCH: &str = r#"{"id":"lunch","provider":"riga","label":{"en":"Free lunch","lv":"Bezmaksas pusdienas"},
    "categories":["meal.lunch"],"discount":{"percent":"100"},"limits":[{"period":"day","max_count":1}]}"#;
const SNACK: &str = r#"{"id":"snack","provider":"riga","label":{"en":"Snack 50 %"},
    "categories":["meal.snack"],"discount":{"percent":"50"},
    "limits":[{"period":"month","max_amount":"3.00"}],"weekdays":[1,2,3,4,5]}"#;

fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

fn grants(json: &str) -> Vec<Grant> {
    serde_json::from_str(json).expect("grants json")
}

fn cart(json: &str) -> Vec<CartLine> {
    serde_json::from_str(json).expect("cart json")
}

fn lunch_cart() -> Vec<CartLine> {
    cart(r#"[{"sku":"L1","category":"meal.lunch","unit_price":"2.50","qty":1}]"#)
}

fn pupil() -> RecipientData {
    RecipientData {
        entitlements: grants(
            r#"[{"benefit":"lunch"},{"benefit":"snack","valid_to":"2026-06-30"}]"#,
        ),
        usage: Vec::new(),
    }
}

// Monday 2 March 2026, 12:05 in Riga (UTC+2).
const MONDAY_NOON: &str = "2026-03-02T10:05:00Z";

#[test]
fn identify_shows_labels_and_limit_usage() {
    let catalog = catalog(&[LUNCH, SNACK]);
    let visible = identify(&catalog, &pupil(), &[], ts(MONDAY_NOON), "en").expect("eligible");
    let labels: Vec<&str> = visible.iter().map(|b| b.label.as_str()).collect();
    assert_eq!(labels, ["Free lunch", "Snack 50 %"]);
    assert_eq!(
        visible[1].valid_to,
        Some("2026-06-30".parse().expect("date"))
    );
    assert_eq!(
        visible[0].limits,
        [LimitState::Count {
            period: Period::Day,
            max: 1,
            used: 0
        }]
    );
    let latvian = identify(&catalog, &pupil(), &[], ts(MONDAY_NOON), "lv").expect("eligible");
    assert_eq!(latvian[0].label, "Bezmaksas pusdienas");
    assert_eq!(latvian[1].label, "Snack 50 %", "falls back to English");
}

#[test]
fn a_second_lunch_the_same_day_is_refused_with_the_limit_named() {
    let catalog = catalog(&[LUNCH]);
    let first = quote(
        &catalog,
        7,
        &pupil(),
        &[],
        &lunch_cart(),
        ts(MONDAY_NOON),
        "en",
    )
    .expect("first lunch");
    assert_eq!(first.quote.due.to_string(), "0.00");
    assert_eq!(
        first.usage.get("lunch"),
        Some(&(Money::parse("2.50").expect("money"), 1))
    );
    assert_eq!(first.inputs.snapshot, 7);
    assert_eq!(first.inputs.benefits.len(), 1);
    assert_eq!(
        first.inputs.benefits[0].hash,
        shared::wire::record::benefit_hash(&benefit(LUNCH)).expect("hash")
    );

    let earlier = [LocalUse {
        at: ts("2026-03-02T08:00:00Z"),
        benefit: "lunch".into(),
        amount: Money::parse("2.50").expect("money"),
        count: 1,
    }];
    let refusal = quote(
        &catalog,
        7,
        &pupil(),
        &earlier,
        &lunch_cart(),
        ts(MONDAY_NOON),
        "en",
    )
    .expect_err("limit");
    assert_eq!(refusal.code(), "limit_reached");
    assert_eq!(
        refusal.message(),
        "Free lunch: daily limit reached (1 use a day)"
    );

    // The next local day (Riga midnight is 22:00 UTC) it is free again.
    let tuesday = quote(
        &catalog,
        7,
        &pupil(),
        &earlier,
        &lunch_cart(),
        ts("2026-03-02T22:00:00Z"),
        "en",
    );
    assert!(tuesday.is_ok(), "{tuesday:?}");
}

#[test]
fn central_usage_and_own_records_both_count_once() {
    // Snack: 3.00 EUR a month at 50 %. Central saw 1.00 EUR on 1 March (from
    // other terminals); this terminal gave 1.50 on 2 March. 0.50 is left.
    let catalog = catalog(&[SNACK]);
    let mut recipient = pupil();
    recipient.usage = serde_json::from_str(
        r#"[{"benefit":"snack","day":"2026-03-01","amount":"1.00","count":1},
            {"benefit":"snack","day":"2026-02-27","amount":"2.00","count":2}]"#,
    )
    .expect("usage");
    let local = [LocalUse {
        at: ts("2026-03-02T07:00:00Z"),
        benefit: "snack".into(),
        amount: Money::parse("1.50").expect("money"),
        count: 1,
    }];
    let snack = cart(r#"[{"sku":"S","category":"meal.snack","unit_price":"4.00","qty":1}]"#);
    let quoted = quote(
        &catalog,
        1,
        &recipient,
        &local,
        &snack,
        ts(MONDAY_NOON),
        "en",
    )
    .expect("quote");
    assert_eq!(quoted.quote.discount_total.to_string(), "0.50");
    // February's usage is outside the monthly period and not in the record.
    let history: Vec<(String, String)> = quoted
        .inputs
        .history
        .iter()
        .map(|entry| (entry.at.to_string(), entry.amount.to_string()))
        .collect();
    assert_eq!(
        history,
        [
            ("2026-02-28T22:00:00Z".to_owned(), "1.00".to_owned()),
            ("2026-03-02T07:00:00Z".to_owned(), "1.50".to_owned()),
        ]
    );
}

#[test]
fn each_refusal_has_its_own_code_and_words() {
    let catalog = catalog(&[LUNCH, SNACK]);
    let now = ts(MONDAY_NOON);
    let expired = RecipientData {
        entitlements: grants(r#"[{"benefit":"lunch","valid_to":"2026-02-28"}]"#),
        usage: Vec::new(),
    };
    let refusal = quote(&catalog, 1, &expired, &[], &lunch_cart(), now, "en").expect_err("expired");
    assert_eq!(
        (refusal.code(), refusal.message()),
        (
            "benefit_expired",
            "Free lunch: expired on 2026-02-28".to_owned()
        )
    );

    let later = RecipientData {
        entitlements: grants(r#"[{"benefit":"lunch","valid_from":"2026-09-01"}]"#),
        usage: Vec::new(),
    };
    let refusal = identify(&catalog, &later, &[], now, "en").expect_err("not yet");
    assert_eq!(
        (refusal.code(), refusal.message()),
        (
            "benefit_not_yet_valid",
            "Free lunch: valid only from 2026-09-01".to_owned()
        )
    );

    let snack_only = RecipientData {
        entitlements: grants(r#"[{"benefit":"snack"}]"#),
        usage: Vec::new(),
    };
    let sunday = ts("2026-03-01T10:00:00Z");
    let refusal = identify(&catalog, &snack_only, &[], sunday, "en").expect_err("weekday");
    assert_eq!(
        (refusal.code(), refusal.message()),
        (
            "benefit_not_valid_today",
            "Snack 50 %: not valid on this day".to_owned()
        )
    );

    let refusal =
        quote(&catalog, 1, &snack_only, &[], &lunch_cart(), now, "en").expect_err("not covered");
    assert_eq!(
        (refusal.code(), refusal.message()),
        (
            "no_eligible_benefit",
            "No item in this sale is covered by the holder's benefits (Snack 50 %)".to_owned()
        )
    );

    let nobody = RecipientData::default();
    let refusal =
        quote(&catalog, 1, &nobody, &[], &lunch_cart(), now, "en").expect_err("no benefit");
    assert_eq!(refusal.code(), "no_benefit");

    let free_item = cart(r#"[{"sku":"W","category":"meal.lunch","unit_price":"0.00","qty":1}]"#);
    let refusal =
        quote(&catalog, 1, &pupil(), &[], &free_item, now, "en").expect_err("nothing to discount");
    assert_eq!(refusal.code(), "nothing_to_discount");

    // No message ever names a reason for entitlement.
    for refusal in [
        Refusal::UnknownCredential,
        Refusal::BlockedCredential,
        Refusal::NoBenefit,
        Refusal::TokenAlreadyUsed,
        Refusal::TokenExpired,
        Refusal::TokenInvalid,
        Refusal::NothingToDiscount,
    ] {
        let message = refusal.message().to_lowercase();
        for word in ["needy", "disab", "pension", "family", "status", "group"] {
            assert!(!message.contains(word), "{message}");
        }
    }
}

#[test]
fn units_count_as_uses_and_notes_explain_a_partial_refusal() {
    // Two lunches a day at most; a cart of three lunches and a snack on a
    // day when the snack budget is spent.
    let two_a_day = LUNCH.replace("\"max_count\":1", "\"max_count\":2");
    let catalog = catalog(&[&two_a_day, SNACK]);
    let spent = [LocalUse {
        at: ts("2026-03-02T07:00:00Z"),
        benefit: "snack".into(),
        amount: Money::parse("3.00").expect("money"),
        count: 2,
    }];
    let tray = cart(
        r#"[{"sku":"L","category":"meal.lunch","unit_price":"2.00","qty":3},
            {"sku":"S","category":"meal.snack","unit_price":"1.00","qty":1}]"#,
    );
    let quoted = quote(&catalog, 1, &pupil(), &spent, &tray, ts(MONDAY_NOON), "en").expect("quote");
    assert_eq!(quoted.quote.discount_total.to_string(), "4.00");
    assert_eq!(
        quoted.usage.get("lunch"),
        Some(&(Money::parse("4.00").expect("money"), 2))
    );
    assert_eq!(quoted.usage.get("snack"), None);
    assert_eq!(quoted.notes.len(), 1);
    assert_eq!(
        quoted.notes[0].message,
        "Snack 50 %: monthly limit reached (3.00 EUR a month)"
    );
}

#[test]
fn expected_totals_must_match_the_requote() {
    let catalog = catalog(&[LUNCH]);
    let quoted = quote(
        &catalog,
        1,
        &pupil(),
        &[],
        &lunch_cart(),
        ts(MONDAY_NOON),
        "en",
    )
    .expect("quote");
    let zero = Money::ZERO;
    assert_eq!(
        check_expected(
            &quoted.quote,
            &Expected {
                due: Some(zero),
                discount_total: None
            }
        ),
        Ok(())
    );
    let refusal = check_expected(
        &quoted.quote,
        &Expected {
            due: Some(Money::parse("1.00").expect("money")),
            discount_total: None,
        },
    )
    .expect_err("changed");
    assert_eq!(refusal.code(), "quote_changed");
    assert_eq!(
        refusal.message(),
        "The amount changed since the quote (now due 0.00, shown 1.00): quote again"
    );
}

#[test]
fn records_carry_local_time_and_receipts_show_labels_only() {
    let catalog = catalog(&[LUNCH]);
    let now = ts(MONDAY_NOON);
    let quoted = quote(&catalog, 3, &pupil(), &[], &lunch_cart(), now, "en").expect("quote");
    let zone = Zone::get("Europe/Riga").expect("zone");
    let ctx = RecordContext {
        terminal: "T-1",
        merchant: "canteen",
        zone: &zone,
        seq: 1,
        prev: Hash::GENESIS,
        at: now,
    };
    let credential = CredentialRef {
        hash: "ab".repeat(32),
        kind: shared::wire::record::CredentialKind::Card,
    };
    let body = sale_record(&ctx, "pos-1", credential, "R-1", &lunch_cart(), &quoted);
    assert_eq!(body.local_time, "2026-03-02T12:05:00+02:00");
    assert_eq!(body.inputs, quoted.inputs);
    let text = receipt(&body, &catalog, "en");
    assert!(text.contains("Free lunch"), "{text}");
    assert!(text.contains("2026-03-02 12:05  Record 1"), "{text}");
    assert!(
        text.lines()
            .any(|line| line.starts_with("Due") && line.ends_with("0.00")),
        "{text}"
    );

    let summer = local_time(ts("2026-07-01T09:00:00.250Z"), &zone);
    assert_eq!(summer, "2026-07-01T12:00:00.25+03:00");

    let void_ctx = RecordContext { seq: 2, ..ctx };
    let void = void_record(&void_ctx, "pos-1-void", &body);
    assert_eq!(
        (void.kind, void.voids, &void.quote),
        (RecordKind::Void, Some(1), &body.quote)
    );
}

#[test]
fn fingerprint_tells_sales_apart() {
    let a = fingerprint("hash-a", &lunch_cart());
    assert_eq!(a, fingerprint("hash-a", &lunch_cart()));
    assert_ne!(a, fingerprint("hash-b", &lunch_cart()));
    let two = cart(r#"[{"sku":"L1","category":"meal.lunch","unit_price":"2.50","qty":2}]"#);
    assert_ne!(a, fingerprint("hash-a", &two));
}
