//! Unit tests of `check_record`: one honest record, then one defect at a
//! time, each giving its reason; usage counted in units and local days.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use shared::model::{Benefit, CartLine, Grant};
use shared::rules::{evaluate, QuoteInput};
use shared::wire::keys::{Hash, SigningKey};
use shared::wire::record::{
    benefit_hash, local_time_of, BenefitRef, CredentialKind, CredentialRef, QuoteInputs,
    RecordBody, RecordKind, RecordType, SignedRecord, RECORD_VERSION,
};

use super::*;

/// A credential hash (64 lowercase hex digits, as on the wire).
const CARD: &str = "c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00";

fn key() -> SigningKey {
    SigningKey::from_seed(&[7; 32]).expect("test key")
}

fn lunch() -> Benefit {
    serde_json::from_value(serde_json::json!({
        "id": "lunch", "provider": "riga", "categories": ["meal.lunch"],
        "discount": {"percent": "50"}, "max_per_transaction": "3.00",
        "limits": [{"period": "day", "max_count": 2}]
    }))
    .expect("benefit")
}

/// 2026-03-01 23:30 UTC is already 2 March in Riga.
fn at() -> Timestamp {
    "2026-03-01T23:30:00Z".parse().expect("instant")
}

fn knowledge() -> Knowledge {
    let benefit = lunch();
    let hash = benefit_hash(&benefit).expect("hash").to_hex();
    Knowledge {
        benefits: HashMap::from([(
            hash.clone(),
            Arc::new(BenefitVersion {
                hash,
                benefit,
                published_seq: 3,
            }),
        )]),
        credentials: HashMap::from([(
            CARD.to_owned(),
            CredentialState {
                recipient: "R1".into(),
                blocked_seq: None,
            },
        )]),
        sales: HashMap::new(),
    }
}

fn body(cart: Vec<CartLine>) -> RecordBody {
    let benefit = lunch();
    let entitlements = vec![Grant {
        benefit: "lunch".into(),
        valid_from: None,
        valid_to: None,
    }];
    let quote = evaluate(&QuoteInput {
        benefits: std::slice::from_ref(&benefit),
        grants: &entitlements,
        memberships: &[],
        history: &[],
        cart: &cart,
        now: at(),
    });
    RecordBody {
        at: at(),
        cart,
        credential: CredentialRef {
            hash: CARD.into(),
            kind: CredentialKind::Card,
        },
        idempotency_key: "k1".into(),
        inputs: QuoteInputs {
            benefits: vec![BenefitRef {
                hash: benefit_hash(&benefit).expect("hash"),
                id: "lunch".into(),
            }],
            entitlements,
            history: Vec::new(),
            snapshot: 5,
        },
        kind: RecordKind::Sale,
        local_time: local_time_of(at(), benefit.time_zone.tz()),
        merchant: "canteen".into(),
        prev: Hash::GENESIS,
        quote,
        recipient: "R1".into(),
        seq: 1,
        terminal: "T-1".into(),
        record_type: RecordType::Record,
        v: RECORD_VERSION,
        voids: None,
    }
}

fn cart(qty: u32) -> Vec<CartLine> {
    vec![CartLine {
        sku: "L".into(),
        category: "meal.lunch".into(),
        unit_price: "2.50".parse().expect("price"),
        qty,
    }]
}

fn check(body: RecordBody, known: &Knowledge) -> Checked {
    let record = SignedRecord::sign(body, &key()).expect("signing");
    check_record(&record, &key().public_key(), "canteen", known)
}

#[test]
fn an_honest_record_passes_and_counts_units_on_the_local_day() {
    // Three lunches at 50 % capped at 3.00 a transaction with two a day:
    // 1.25 + 1.25 (the cap and the count limit stop the third).
    let checked = check(body(cart(3)), &knowledge());
    assert_eq!(checked.verdict, Ok(()));
    assert_eq!(
        checked.usage,
        [UsageDelta {
            benefit: "lunch".into(),
            day: "2026-03-02".parse().expect("date"),
            count: 2,
            amount_cents: 250
        }]
    );
}

#[test]
fn each_defect_gives_its_reason() {
    let known = knowledge();
    let mut greedy = body(cart(1));
    greedy.quote.discount_total = "2.50".parse().expect("money");
    assert_eq!(check(greedy, &known).verdict, Err(Reason::DiscountMismatch));

    let mut other_merchant = body(cart(1));
    other_merchant.merchant = "bus".into();
    assert_eq!(
        check(other_merchant, &known).verdict,
        Err(Reason::WrongMerchant)
    );

    let mut wrong_time = body(cart(1));
    wrong_time.local_time = "2026-03-02T02:30:00+02:00".into();
    assert_eq!(check(wrong_time, &known).verdict, Err(Reason::BadLocalTime));

    let mut someone_else = body(cart(1));
    someone_else.recipient = "R2".into();
    assert_eq!(
        check(someone_else, &known).verdict,
        Err(Reason::UnknownCredential),
        "a card used for another recipient"
    );

    let mut too_early = body(cart(1));
    too_early.inputs.snapshot = 2;
    assert_eq!(
        check(too_early, &known).verdict,
        Err(Reason::UnknownBenefit),
        "a version published after the claimed snapshot"
    );

    let mut blocked = knowledge();
    blocked.credentials.insert(
        CARD.into(),
        CredentialState {
            recipient: "R1".into(),
            blocked_seq: Some(5),
        },
    );
    assert_eq!(
        check(body(cart(1)), &blocked).verdict,
        Err(Reason::BlockedCredential)
    );
    blocked.credentials.insert(
        CARD.into(),
        CredentialState {
            recipient: "R1".into(),
            blocked_seq: Some(6),
        },
    );
    assert_eq!(
        check(body(cart(1)), &blocked).verdict,
        Ok(()),
        "a block the terminal could not know yet"
    );

    let record = SignedRecord::sign(body(cart(1)), &key()).expect("signing");
    let stranger = SigningKey::from_seed(&[8; 32]).expect("key");
    let checked = check_record(&record, &stranger.public_key(), "canteen", &known);
    assert_eq!(checked.verdict, Err(Reason::BadSignature));
    assert!(
        checked.usage.is_empty(),
        "an unattributable record counts toward no usage"
    );
}

#[test]
fn a_void_must_match_the_sale_it_cancels() {
    let mut known = knowledge();
    let sale = body(cart(1));
    known
        .sales
        .insert(1, (sale.cart.clone(), sale.quote.clone()));
    let mut void = sale.clone();
    void.seq = 2;
    void.kind = RecordKind::Void;
    void.voids = Some(1);
    let checked = check(void.clone(), &known);
    assert_eq!(checked.verdict, Ok(()));
    assert_eq!(checked.usage[0].count, -1, "a void gives the use back");
    assert_eq!(checked.usage[0].amount_cents, -125);
    void.seq = 3;
    void.voids = Some(2);
    assert_eq!(check(void, &known).verdict, Err(Reason::BadVoid));
}
