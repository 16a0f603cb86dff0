//! Periods as an accountant in Riga counts them, and the rendered files as
//! a reader opens them.

use super::*;

fn record(
    terminal: &str,
    seq: u64,
    sign: i64,
    outcome: &str,
    lines: &[(&str, &str, i64, i64)],
) -> ReportRecord {
    ReportRecord {
        terminal: terminal.into(),
        seq,
        at: "2026-03-02T10:00:00Z".parse().expect("instant"),
        merchant: "m1".into(),
        recipient: format!("R-{seq}"),
        outcome: outcome.into(),
        reason: None,
        sign,
        lines: lines
            .iter()
            .map(|(benefit, provider, units, cents)| ReportLine {
                benefit: (*benefit).into(),
                provider: (*provider).into(),
                units: *units,
                amount: Money::from_cents(*cents),
            })
            .collect(),
    }
}

#[test]
fn a_month_runs_from_local_midnight_to_local_midnight() {
    // March 2026 in Riga: UTC+2 until the last Sunday (29th), then UTC+3.
    let (from, to) = Period::parse_month("2026-03")
        .expect("month")
        .bounds()
        .expect("bounds");
    assert_eq!(from.to_string(), "2026-02-28T22:00:00Z");
    assert_eq!(to.to_string(), "2026-03-31T21:00:00Z");
    let (from, to) = Period::parse_day("2026-07-01")
        .expect("day")
        .bounds()
        .expect("bounds");
    assert_eq!(from.to_string(), "2026-06-30T21:00:00Z");
    assert_eq!(to.to_string(), "2026-07-01T21:00:00Z");
}

#[test]
fn malformed_periods_say_what_is_expected() {
    assert_eq!(
        Period::parse_month("2026-3").expect_err("short month"),
        "month: \"2026-3\" is not a month (YYYY-MM)"
    );
    assert!(Period::parse_month("2026-13").is_err());
    assert!(Period::parse_day("2026-02-30").is_err());
    assert!(Period::parse_day("2026-03").is_err());
}

#[test]
fn totals_add_up_and_a_void_cancels_its_sale() {
    let mut builder = MerchantReportBuilder::new(
        "m1",
        "Canteen",
        Period::parse_day("2026-03-02").expect("day"),
        HashMap::from([("T-1".to_owned(), "till 1".to_owned())]),
    );
    let records = [
        record("T-1", 1, 1, "accepted", &[("lunch", "riga", 1, 250)]),
        record(
            "T-1",
            2,
            1,
            "accepted",
            &[("lunch", "riga", 2, 500), ("milk", "state", 1, 40)],
        ),
        record("T-1", 3, -1, "accepted", &[("lunch", "riga", 1, 250)]),
        record("T-2", 1, 1, "flagged", &[("lunch", "riga", 1, 250)]),
    ];
    for r in &records {
        builder.add(r).expect("same merchant");
    }
    // Reconciliation refused 1.00 of the lunch on T-1.
    builder.add_not_payable("T-1", "lunch", "riga", Money::from_cents(100));
    let report = builder.finish("2026-03-03T06:00:00Z".parse().expect("instant"));
    assert_eq!(report.total.transactions, 1);
    assert_eq!(report.total.units, 3);
    assert_eq!(report.total.discount, Money::from_cents(540));
    assert_eq!(report.total.not_accepted, Money::from_cents(250));
    let lunch = &report.rows[0];
    assert_eq!(
        (lunch.benefit.as_str(), lunch.figures.transactions),
        ("lunch", 1)
    );
    assert_eq!(lunch.figures.discount, Money::from_cents(500));
    let csv = report.to_csv();
    assert!(csv.starts_with("row,terminal,terminal_label,benefit,provider,transactions,units,discount_eur,not_accepted_eur,not_payable_eur\r\n"));
    assert!(csv.ends_with("total,,,,,1,3,5.40,2.50,1.00\r\n"), "{csv}");
    assert_eq!(lunch.figures.not_payable, Money::from_cents(100));
}

#[test]
fn another_merchants_record_is_refused() {
    let mut builder = MerchantReportBuilder::new(
        "m2",
        "Other",
        Period::parse_day("2026-03-02").expect("day"),
        HashMap::new(),
    );
    let err = builder
        .add(&record(
            "T-1",
            1,
            1,
            "accepted",
            &[("lunch", "riga", 1, 250)],
        ))
        .expect_err("wrong merchant");
    assert_eq!(
        err.to_string(),
        "record T-1#1: belongs to merchant \"m1\", not \"m2\""
    );
}

#[test]
fn html_escapes_every_name() {
    let builder = MerchantReportBuilder::new(
        "m1",
        "<script>alert('x')</script> & Co",
        Period::parse_month("2026-03").expect("month"),
        HashMap::new(),
    );
    let html = builder.finish(Timestamp::UNIX_EPOCH).to_html();
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; Co"));
    assert!(html.contains("@media print"));
}

#[test]
fn budget_shows_remaining_and_percent_used() {
    let mut builder = ProviderReportBuilder::new(
        "riga",
        "Riga",
        Period::parse_month("2026-03").expect("month"),
        HashMap::new(),
    );
    builder.add(&record(
        "T-1",
        1,
        1,
        "accepted",
        &[("lunch", "riga", 1, 250), ("milk", "state", 1, 40)],
    ));
    builder.add(&record("T-1", 2, 1, "held", &[("lunch", "riga", 1, 250)]));
    let report = builder.finish(
        &HashMap::from([("lunch".to_owned(), 1_000)]),
        &["lunch".to_owned(), "bus".to_owned()],
        Vec::new(),
        Timestamp::UNIX_EPOCH,
    );
    let lunch = report
        .budgets
        .iter()
        .find(|b| b.benefit == "lunch")
        .expect("lunch budget");
    assert_eq!(lunch.spent, Money::from_cents(250));
    assert_eq!(lunch.remaining, Some(Money::from_cents(750)));
    assert_eq!(lunch.used_percent.as_deref(), Some("25.0"));
    let bus = report
        .budgets
        .iter()
        .find(|b| b.benefit == "bus")
        .expect("bus line");
    assert_eq!((bus.expected, bus.used_percent.clone()), (None, None));
    // Only the provider's own benefit counts; the state's milk does not appear.
    assert_eq!(report.usage.len(), 1);
    assert_eq!(report.open_flags.len(), 1);
    assert_eq!(report.open_flags[0].outcome, "held");
}

#[test]
fn open_flags_keep_the_earliest_whatever_the_order_they_come_in() {
    // The provider report reads merchant by merchant, so records do not
    // come in time order: feed more than twice the cap, latest first, and
    // expect the cap's worth of the earliest, oldest first.
    let mut builder = ProviderReportBuilder::new(
        "riga",
        "Riga",
        Period::parse_month("2026-03").expect("month"),
        HashMap::new(),
    );
    let n_records = 2 * OPEN_FLAGS_MAX as u64 + 7;
    let start: Timestamp = "2026-03-02T10:00:00Z".parse().expect("instant");
    for seq in (1..=n_records).rev() {
        let mut held = record("T-1", seq, 1, "held", &[("lunch", "riga", 1, 250)]);
        held.at = start
            .checked_add(jiff::SignedDuration::from_secs(
                i64::try_from(seq).expect("small"),
            ))
            .expect("instant");
        builder.add(&held);
    }
    let report = builder.finish(&HashMap::new(), &[], Vec::new(), Timestamp::UNIX_EPOCH);
    assert_eq!(report.open_flags.len(), OPEN_FLAGS_MAX);
    assert_eq!(report.open_flags[0].seq, 1);
    assert_eq!(
        report.open_flags[OPEN_FLAGS_MAX - 1].seq,
        OPEN_FLAGS_MAX as u64
    );
}
