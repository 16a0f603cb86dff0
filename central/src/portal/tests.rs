//! Who a parent sees, and how conditions read.

use super::*;
use jiff::civil::date;
use shared::model::Grant;

fn benefit(json: &str) -> Benefit {
    serde_json::from_str(json).expect("benefit JSON in test")
}

fn person(recipient: &str, name: &str, birth: Option<Date>, code: Option<&str>) -> Person {
    Person {
        recipient: recipient.into(),
        provider: "riga".into(),
        personal_code: code.map(str::to_owned),
        name: Some(name.into()),
        birth_date: birth,
    }
}

fn facts(person: Person, benefit: &str) -> RecipientFacts {
    RecipientFacts {
        person,
        entries: RecipientEntries {
            grants: vec![Grant {
                benefit: benefit.into(),
                valid_from: None,
                valid_to: None,
            }],
            memberships: Vec::new(),
        },
        records: Vec::new(),
    }
}

#[test]
fn personal_codes_are_checked_and_read() {
    let code = PersonalCode::parse("010203-12345").expect("valid");
    assert_eq!(code.plain, "01020312345");
    assert_eq!(
        PersonalCode::parse("0102").expect_err("short"),
        "personal_code: must be 11 digits, written DDMMYY-NNNNN or DDMMYYNNNNN (got 4 characters)"
    );
    assert!(PersonalCode::parse("01020a-12345").is_err());
    assert_eq!(
        birth_date_from_code("150312-21234"),
        Some(date(2012, 3, 15))
    );
    assert_eq!(
        birth_date_from_code("150385-11234"),
        Some(date(1985, 3, 15))
    );
    assert_eq!(birth_date_from_code("321234-56789"), None);
    assert_eq!(birth_date_from_code("310212-21234"), None);
}

#[test]
fn a_child_leaves_the_view_on_the_18th_birthday() {
    let born = date(2008, 11, 24);
    assert!(is_minor(born, date(2026, 11, 23)));
    assert!(!is_minor(born, date(2026, 11, 24)));
    // 29 February: the 18th birthday is 28 February in a common year.
    assert!(!is_minor(date(2008, 2, 29), date(2026, 2, 28)));
}

#[test]
fn the_view_lists_minors_only_and_reads_conditions() {
    let lunch = benefit(
        r#"{"id":"lunch","provider":"riga","label":{"lv":"Brīvpusdienas"},"categories":["meal"],
            "discount":{"percent":"100"},"weekdays":[1,2,3,4,5],
            "limits":[{"period":"day","max_count":1},{"period":"month","max_amount":"60.00"}]}"#,
    );
    let providers = HashMap::from([("riga".to_owned(), "Rīga".to_owned())]);
    let merchants = HashMap::new();
    let registers = Registers {
        benefits: std::slice::from_ref(&lunch),
        groups: &[],
        providers: &providers,
        merchants: &merchants,
    };
    let parent = facts(person("P", "Anna", None, Some("010180-11111")), "none");
    let young = facts(person("C1", "Ilze", Some(date(2015, 5, 1)), None), "lunch");
    let grown = facts(person("C2", "Jānis", None, Some("010105-20000")), "lunch");
    let unknown_age = facts(person("C3", "Nav", None, None), "lunch");
    let view = person_view(
        &[parent],
        &[young, grown, unknown_age],
        &registers,
        date(2026, 11, 23),
    );
    assert_eq!(view.name.as_deref(), Some("Anna"));
    assert!(view.benefits.is_empty());
    assert_eq!(view.children.len(), 1);
    let child = &view.children[0];
    assert_eq!(child.name.as_deref(), Some("Ilze"));
    let lunch = &child.benefits[0];
    assert_eq!(lunch.name, "Brīvpusdienas");
    assert_eq!(lunch.provider_name, "Rīga");
    assert_eq!(lunch.conditions.discount, "100 % off");
    assert_eq!(
        lunch.conditions.limits,
        ["at most 1 a day", "at most 60.00 EUR a month"]
    );
    assert_eq!(
        lunch.conditions.days,
        "Monday, Tuesday, Wednesday, Thursday, Friday"
    );
}
