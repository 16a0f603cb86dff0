//! E-invoices made from real settlements pass the official rules.
//!
//! Goal: every document a merchant would send a municipality (invoices with
//! several benefits, both VAT treatments, credit notes for negative
//! adjustments) is valid EN 16931 / Peppol BIS Billing 3.0.
//!
//! Method: reconcile and settle March for a canteen company (several
//! terminals, one offline conflict), then April after a till synced March
//! records late and a March sale was voided late; render every document of
//! both settlements to files and run `shared/einvoice/validate` (the CEN
//! EN 16931 UBL rules and the Peppol BIS 3 rules, run by Saxon HE) on them.
//! Any `[fatal]` line fails the test, and so does any `[warning]`.
//!
//! Needs Java and Saxon HE: `apt-get install -y default-jre-headless
//! libsaxonhe-java`. The validator is found at `../shared/einvoice/validate`
//! beside the repository, or at `$EINVOICE_VALIDATOR`. With `KEEP_EINVOICES`
//! set, the generated files stay in the temporary directory for reading.

use std::path::PathBuf;
use std::process::Command;

use central::einvoice::{render_all, Address, EndpointScheme, InvoiceContext, Party};
use central::reconcile::{reconcile, reconcile_late, Policies, UsageRecord};
use central::settlement::{
    settle, DocumentKind, Ledger, Settlement, SettlementPeriod, SettlementRequest, VatRules,
};
use jiff::Timestamp;
use shared::model::Benefit;
use shared::money::Money;
use shared::wire::keys::Hash;

fn validator() -> PathBuf {
    std::env::var_os("EINVOICE_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/einvoice/validate")
        })
}

fn benefits() -> Vec<Benefit> {
    [
        r#"{"id":"riga-pupil-lunch","provider":"riga","label":{"lv":"Brīvpusdienas","en":"Free lunch"},
            "categories":["meal.lunch"],"discount":{"percent":"100"},"limits":[{"period":"day","max_count":1}]}"#,
        r#"{"id":"riga-breakfast","provider":"riga","label":{"lv":"Brokastis","en":"Breakfast"},
            "categories":["meal.breakfast"],"discount":{"percent":"50"}}"#,
        r#"{"id":"riga-pupil-bus","provider":"riga","label":{"lv":"Skolēnu brauciens","en":"Pupil bus ride"},
            "categories":["transport"],"discount":{"percent":"100"}}"#,
        r#"{"id":"riga-lunch-support","provider":"riga","label":{"lv":"Pusdienu atbalsts","en":"Lunch support"},
            "categories":["meal"],"discount":{"amount":"1.20"},"funding":"loss_compensation"}"#,
    ]
    .iter()
    .map(|json| serde_json::from_str(json).expect("benefit JSON in test"))
    .collect()
}

fn usage(
    terminal: &str,
    seq: u64,
    at: &str,
    recipient: &str,
    benefit: &str,
    category: &str,
    cents: i64,
) -> UsageRecord {
    UsageRecord {
        terminal: terminal.into(),
        seq,
        line: 0,
        at: at.parse::<Timestamp>().expect("timestamp in test"),
        recipient: recipient.into(),
        credential: format!("cred-{recipient}"),
        benefit: benefit.into(),
        provider: "riga".into(),
        merchant: "skolas-edinasana".into(),
        category: category.into(),
        amount: Money::from_cents(cents),
        count: 1,
        snapshot: 1,
        voided: false,
        record_hash: Hash::of(format!("{terminal}#{seq}").as_bytes()),
    }
}

/// A month of a canteen: lunches, breakfasts, bus rides and loss-compensated
/// lunches for a few pupils on two tills and a bus validator.
fn march_records() -> Vec<UsageRecord> {
    let mut records = Vec::new();
    let mut seq = [0u64; 3];
    let mut next = |till: usize| {
        seq[till] += 1;
        seq[till]
    };
    for day in 2..=27 {
        for pupil in 1..=4 {
            let recipient = format!("R-{pupil}");
            let at = |hour: u8| format!("2026-03-{day:02}T{hour:02}:{pupil:02}:00+02:00");
            let lunch_till = if pupil % 2 == 0 { "TILL-1" } else { "TILL-2" };
            let idx = if pupil % 2 == 0 { 0 } else { 1 };
            records.push(usage(
                lunch_till,
                next(idx),
                &at(12),
                &recipient,
                "riga-pupil-lunch",
                "meal.lunch",
                265,
            ));
            if pupil <= 2 {
                records.push(usage(
                    "TILL-1",
                    next(0),
                    &at(8),
                    &recipient,
                    "riga-breakfast",
                    "meal.breakfast",
                    95,
                ));
            }
            records.push(usage(
                "BUS-7",
                next(2),
                &at(7),
                &recipient,
                "riga-pupil-bus",
                "transport.bus",
                150,
            ));
            if pupil == 4 {
                records.push(usage(
                    "TILL-2",
                    next(1),
                    &at(13),
                    &recipient,
                    "riga-lunch-support",
                    "meal.lunch",
                    120,
                ));
            }
        }
    }
    // Offline conflict: TILL-2 also gave pupil 2 a lunch on 5 March.
    records.push(usage(
        "TILL-2",
        next(1),
        "2026-03-05T12:30:00+02:00",
        "R-2",
        "riga-pupil-lunch",
        "meal.lunch",
        265,
    ));
    records
}

fn context() -> InvoiceContext {
    InvoiceContext {
        seller: Party {
            id: "skolas-edinasana".into(),
            name: "SIA \"Skolas ēdināšana & Co\"".into(),
            registration_number: "40003000001".into(),
            vat_id: Some("LV40003000001".into()),
            address: Address {
                street: "Brīvības iela 1".into(),
                city: "Rīga".into(),
                postal_code: "LV-1010".into(),
                country: "LV".into(),
            },
            endpoint_scheme: EndpointScheme::LvRegistration,
            email: Some("gramatvediba@example.lv".into()),
        },
        buyer: Party {
            id: "riga".into(),
            name: "Rīgas valstspilsētas pašvaldība".into(),
            registration_number: "90011524360".into(),
            vat_id: Some("LV90011524360".into()),
            address: Address {
                street: "Rātslaukums 1".into(),
                city: "Rīga".into(),
                postal_code: "LV-1539".into(),
                country: "LV".into(),
            },
            endpoint_scheme: EndpointScheme::LvVat,
            email: None,
        },
        iban: "LV80BANK0000435195001".into(),
        bic: Some("BANKLV22".into()),
        payment_days: 30,
        buyer_reference: Some("IKSD-2026-benefits".into()),
    }
}

fn settle_month(
    records: &[UsageRecord],
    decisions: &[central::reconcile::Decision],
    ledger: &Ledger,
    month: i8,
) -> Settlement {
    let period = SettlementPeriod::month(2026, month).expect("valid month");
    settle(
        &benefits(),
        &VatRules::latvia(),
        records,
        decisions,
        ledger,
        &SettlementRequest {
            provider: "riga",
            merchant: "skolas-edinasana",
            period,
            issued_on: period.end.tomorrow().expect("a next day"),
        },
    )
    .expect("valid settlement input")
    .expect("something to settle")
}

#[test]
fn invoices_and_credit_notes_pass_en16931_and_peppol_rules() {
    let benefits = benefits();
    let march = march_records();
    let first = reconcile(&benefits, &Policies::new(), &march)
        .expect("reconciles")
        .decisions;
    let march_settlement = settle_month(&march, &first, &Ledger::default(), 3);
    let ledger = Ledger::from_settlements(std::slice::from_ref(&march_settlement));

    // April: regular April usage, plus TILL-3 syncing a lunch of 3 March
    // that came before TILL-1's (so TILL-1's, already paid, is credited),
    // and a late void of a loss-compensated lunch of 10 March.
    let mut all = march.clone();
    all.push(usage(
        "TILL-3",
        1,
        "2026-03-03T11:00:00+02:00",
        "R-2",
        "riga-pupil-lunch",
        "meal.lunch",
        265,
    ));
    let voided = all
        .iter_mut()
        .find(|r| r.benefit == "riga-lunch-support" && r.at.to_string().starts_with("2026-03-10"))
        .expect("a loss-compensated lunch on 10 March");
    voided.voided = true;
    all.push(usage(
        "TILL-1",
        900,
        "2026-04-01T12:00:00+03:00",
        "R-1",
        "riga-pupil-lunch",
        "meal.lunch",
        265,
    ));
    all.push(usage(
        "BUS-7",
        900,
        "2026-04-01T07:30:00+03:00",
        "R-1",
        "riga-pupil-bus",
        "transport.bus",
        150,
    ));
    all.push(usage(
        "TILL-2",
        900,
        "2026-04-01T13:00:00+03:00",
        "R-4",
        "riga-lunch-support",
        "meal.lunch",
        120,
    ));
    let again = reconcile_late(&benefits, &Policies::new(), &first, &all, Timestamp::MIN)
        .expect("late run");
    let april_settlement = settle_month(&all, &again.decisions, &ledger, 4);

    let kinds: Vec<(String, DocumentKind)> = march_settlement
        .documents
        .iter()
        .chain(&april_settlement.documents)
        .map(|d| (d.id.clone(), d.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "S-riga-skolas-edinasana-2026-03-1-V".to_owned(),
                DocumentKind::Invoice
            ),
            (
                "S-riga-skolas-edinasana-2026-03-1-O".to_owned(),
                DocumentKind::Invoice
            ),
            (
                "S-riga-skolas-edinasana-2026-04-1-V".to_owned(),
                DocumentKind::Invoice
            ),
            (
                "S-riga-skolas-edinasana-2026-04-1-VC".to_owned(),
                DocumentKind::CreditNote
            ),
            (
                "S-riga-skolas-edinasana-2026-04-1-O".to_owned(),
                DocumentKind::Invoice
            ),
            (
                "S-riga-skolas-edinasana-2026-04-1-OC".to_owned(),
                DocumentKind::CreditNote
            ),
        ]
    );
    // The March VAT invoice has three benefits at two rates.
    let march_vat = &march_settlement.documents[0];
    assert_eq!(march_vat.lines.len(), 3);
    assert_eq!(march_vat.vat_breakdown.len(), 2);

    let dir = std::env::temp_dir().join(format!("central-einvoice-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut files = Vec::new();
    for settlement in [&march_settlement, &april_settlement] {
        for document in render_all(settlement, &context()).expect("valid invoice data") {
            if document.kind == DocumentKind::CreditNote {
                assert!(document.xml.contains("<cac:BillingReference>"));
                assert!(document.xml.contains("<cbc:CreditNoteTypeCode>381<"));
            } else {
                assert!(document.xml.contains(&format!(
                    "<cbc:PaymentID>{}</cbc:PaymentID>",
                    settlement.creditor_reference
                )));
            }
            assert!(document.xml.contains("Skolas ēdināšana &amp; Co"));
            let path = dir.join(format!("{}.xml", document.id));
            std::fs::write(&path, &document.xml).expect("write invoice");
            files.push(path);
        }
    }
    let validator = validator();
    let output = Command::new(&validator)
        .args(&files)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run the validator {} ({err}): it is shared/einvoice/validate beside \
                 the repository (or set EINVOICE_VALIDATOR), and needs Java and Saxon HE: \
                 apt-get install -y default-jre-headless libsaxonhe-java",
                validator.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && !stdout.contains("[fatal]"),
        "validation failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        !stdout.contains("[warning]"),
        "validation warnings:\n{stdout}"
    );
    if std::env::var_os("KEEP_EINVOICES").is_none() {
        std::fs::remove_dir_all(&dir).expect("remove temp dir");
    }
}

#[test]
fn hostile_party_data_is_refused_naming_the_field() {
    let records = march_records();
    let decisions = reconcile(&benefits(), &Policies::new(), &records)
        .expect("reconciles")
        .decisions;
    let settlement = settle_month(&records, &decisions, &Ledger::default(), 3);

    let mut bad_vat = context();
    bad_vat.seller.vat_id = Some("LV123".into());
    let err = render_all(&settlement, &bad_vat).expect_err("bad VAT id");
    assert_eq!(
        err.to_string(),
        "seller.vat_id: \"LV123\" is not a Latvian VAT number (\"LV\" and 11 digits)"
    );

    let mut control = context();
    control.buyer.name = "Rīga\u{0}".into();
    let err = render_all(&settlement, &control).expect_err("control character");
    assert_eq!(
        err.to_string(),
        "buyer.name: contains the control character U+0000"
    );

    let mut iban = context();
    iban.iban = "LV81BANK0000435195001".into();
    assert_eq!(
        render_all(&settlement, &iban).expect_err("bad IBAN").at,
        "iban"
    );

    let mut other = context();
    other.seller.id = "someone-else".into();
    assert_eq!(
        render_all(&settlement, &other)
            .expect_err("wrong merchant")
            .at,
        "seller.id"
    );
}
