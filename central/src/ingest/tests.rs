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
use crate::store::verify::{EntitlementVersion, GroupsVersion, Source};

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
        version: 9,
        // R1's grant of lunch, open-ended, known since version 4.
        entitlements: HashMap::from([(
            "R1".to_owned(),
            vec![EntitlementVersion {
                source: Source::Grant,
                key: "lunch".into(),
                valid_from: None,
                valid_to: None,
                known_from: 4,
            }],
        )]),
        benefit_groups: HashMap::new(),
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

#[test]
fn a_snapshot_newer_than_central_is_refused() {
    // Central is at version 9: a record claiming version 10 names knowledge
    // central never had (and would otherwise pass benefit-version and block
    // checks it should fail).
    let known = knowledge();
    let mut future = body(cart(1));
    future.inputs.snapshot = 10;
    assert_eq!(check(future, &known).verdict, Err(Reason::UnknownSnapshot));
    let mut current = body(cart(1));
    current.inputs.snapshot = 9;
    assert_eq!(check(current, &known).verdict, Ok(()));
}

/// A body whose quote is re-computed for these entitlements, so that only
/// the entitlement check can fail.
fn body_with(entitlements: Vec<Grant>, snapshot: u64) -> RecordBody {
    let mut out = body(cart(1));
    out.quote = evaluate(&QuoteInput {
        benefits: std::slice::from_ref(&lunch()),
        grants: &entitlements,
        memberships: &[],
        history: &[],
        cart: &out.cart,
        now: at(),
    });
    out.inputs.entitlements = entitlements;
    out.inputs.snapshot = snapshot;
    out
}

fn grant(valid_from: Option<&str>, valid_to: Option<&str>) -> Grant {
    Grant {
        benefit: "lunch".into(),
        valid_from: valid_from.map(|text| text.parse().expect("date")),
        valid_to: valid_to.map(|text| text.parse().expect("date")),
    }
}

#[test]
fn entitlements_must_be_ones_central_granted_by_the_snapshot() {
    let mut known = knowledge();
    // R1's grant was open-ended from version 4; at version 7 central
    // shortened it to end on 2026-02-28 (before the tap on 2 March).
    known
        .entitlements
        .get_mut("R1")
        .expect("R1")
        .push(EntitlementVersion {
            source: Source::Grant,
            key: "lunch".into(),
            valid_from: None,
            valid_to: Some("2026-02-28".parse().expect("date")),
            known_from: 7,
        });
    assert_eq!(
        check(body_with(vec![grant(None, None)], 6), &known).verdict,
        Ok(()),
        "a terminal at version 6 still had the open-ended grant"
    );
    assert_eq!(
        check(body_with(vec![grant(None, None)], 8), &known).verdict,
        Ok(()),
        "an older version stays one central granted: the quote is checked on it"
    );
    assert_eq!(
        check(body_with(vec![grant(None, Some("2026-02-28"))], 6), &known).verdict,
        Err(Reason::UnknownEntitlement),
        "the shortened grant did not exist yet at version 6"
    );
    assert_eq!(
        check(body_with(vec![grant(None, Some("2026-12-31"))], 8), &known).verdict,
        Err(Reason::UnknownEntitlement),
        "a validity central never gave"
    );
    assert_eq!(
        check(body_with(vec![grant(None, None)], 3), &known).verdict,
        Err(Reason::UnknownEntitlement),
        "a grant made after the claimed snapshot"
    );
    let mut stranger = knowledge();
    stranger.entitlements.clear();
    assert_eq!(
        check(body(cart(1)), &stranger).verdict,
        Err(Reason::UnknownEntitlement),
        "a recipient central never granted anything"
    );
    // An entitlement to a benefit the record names no definition of cannot
    // change the quote, so it is not checked.
    let mut extra = body(cart(1));
    extra.inputs.entitlements.push(Grant {
        benefit: "snack".into(),
        valid_from: None,
        valid_to: None,
    });
    assert_eq!(check(extra, &knowledge()).verdict, Ok(()));
}

#[test]
fn a_membership_entitles_through_the_groups_the_benefit_named() {
    let mut known = knowledge();
    known.entitlements.insert(
        "R1".into(),
        vec![EntitlementVersion {
            source: Source::Membership,
            key: "pupils".into(),
            valid_from: Some("2025-09-01".parse().expect("date")),
            valid_to: None,
            known_from: 4,
        }],
    );
    let from_membership = || body_with(vec![grant(Some("2025-09-01"), None)], 6);
    assert_eq!(
        check(from_membership(), &known).verdict,
        Err(Reason::UnknownEntitlement),
        "lunch names no group yet"
    );
    known.benefit_groups.insert(
        "lunch".into(),
        vec![GroupsVersion {
            groups: vec!["pupils".into()],
            known_from: 5,
        }],
    );
    assert_eq!(check(from_membership(), &known).verdict, Ok(()));
    let mut before = from_membership();
    before.inputs.snapshot = 4;
    assert_eq!(
        check(before, &known).verdict,
        Err(Reason::UnknownEntitlement),
        "at version 4 lunch did not name the group yet"
    );
}
