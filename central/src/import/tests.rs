//! Unit tests of `import`: each test parses a small file the way a
//! provider would write it and checks the rows or the reported lines.

use std::collections::HashSet;

use super::*;

fn context() -> Context {
    Context {
        provider: "riga".into(),
        groups: HashSet::from(["riga-pupil".to_owned()]),
        benefits: HashSet::from(["riga-lunch".to_owned()]),
        credential_key: b"test key".to_vec(),
    }
}

fn errors(kind: Kind, format: Format, text: &str) -> Vec<String> {
    match parse(kind, format, text.as_bytes(), &context(), None) {
        Ok(rows) => panic!("expected errors, got {} rows", rows.len()),
        Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_clean_credentials_file_keeps_only_hashes() {
    let rows = parse(
        Kind::Credentials,
        Format::Csv,
        "recipient,kind,id\nR1,card,04:a2:2b:1c\nR2,eid,PA1234567\n".as_bytes(),
        &context(),
        None,
    )
    .expect("valid file");
    assert_eq!(rows.len(), 2);
    let ImportRow::Credential {
        hash,
        kind,
        recipient,
    } = &rows[0]
    else {
        panic!("a credential row")
    };
    assert_eq!(recipient, "R1");
    assert_eq!(*kind, CredentialKind::Card);
    assert_eq!(
        *hash,
        credential_hash(b"test key", CredentialKind::Card, "04A22B1C")
    );
    assert!(
        !format!("{rows:?}").contains("PA1234567"),
        "the raw id is not kept"
    );
}

#[test]
fn every_bad_row_is_reported_with_its_line() {
    let text = "recipient,group,valid_from,valid_to\n\
                R1,riga-pupil,2026-01-01,2025-12-31\n\
                ,riga-pupil,,\n\
                R3,jelgava-pupil,,\n\
                R4,riga-pupil,yesterday,\n\
                R5,riga-pupil,,\n\
                R5,riga-pupil,,\n\
                R7,riga-pupil\n";
    assert_eq!(
        errors(Kind::Memberships, Format::Csv, text),
        [
            "line 2: valid_from: 2026-01-01 is after valid_to 2025-12-31",
            "line 3: recipient: is empty",
            "line 4: group: \"jelgava-pupil\" is not a group of provider \"riga\"",
            "line 5: valid_from: \"yesterday\" is not a date (YYYY-MM-DD)",
            "line 7: membership of \"R5\" in \"riga-pupil\" is already on line 6",
            "line 8: 2 fields where the header has 4",
        ]
    );
}

#[test]
fn unknown_and_missing_columns_are_refused_at_the_header() {
    assert_eq!(
        errors(Kind::Grants, Format::Csv, "recipient,benefit_id\nR1,riga-lunch\n"),
        [
            "line 1: unknown column \"benefit_id\" (columns for Grants: recipient, benefit, valid_from, valid_to)",
            "line 1: missing column \"benefit\"",
        ]
    );
}

#[test]
fn json_lines_are_checked_line_by_line() {
    let text = "{\"recipient\":\"R1\",\"benefit\":\"riga-lunch\"}\n\n{\"recipient\":\"R2\",\"benefit\":7}\n{\"recipient\":\"R3\",\"benefit\":\"other\",\"valid_to\":null}\nnot json\n";
    let found = errors(Kind::Grants, Format::JsonLines, text);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("line 3: not a JSON object of strings"),
        "{found:?}"
    );
    assert_eq!(
        found[1],
        "line 4: benefit: \"other\" is not a benefit of provider \"riga\""
    );
    assert!(
        found[2].starts_with("line 5: not a JSON object"),
        "{found:?}"
    );
    let rows = parse(
        Kind::Grants,
        Format::JsonLines,
        "{\"recipient\":\"R1\",\"benefit\":\"riga-lunch\",\"valid_to\":\"2026-06-30\"}\n"
            .as_bytes(),
        &context(),
        None,
    )
    .expect("valid line");
    assert_eq!(
        rows,
        [ImportRow::Grant {
            recipient: "R1".into(),
            grant: Grant {
                benefit: "riga-lunch".into(),
                valid_from: None,
                valid_to: Some("2026-06-30".parse().expect("date"))
            },
        }]
    );
}

#[test]
fn personal_codes_cannot_become_references() {
    assert!(looks_like_personal_code("010190-12345"));
    assert!(looks_like_personal_code("32123456789"));
    assert!(!looks_like_personal_code("R0001CF8BFE"));
    assert!(!looks_like_personal_code("0101-90-12345"));
    let found = errors(
        Kind::Recipients,
        Format::Csv,
        "recipient,personal_code,name\n010190-12345,,\n",
    );
    assert!(
        found[0].starts_with("line 2: recipient: looks like a personal code"),
        "{found:?}"
    );
}

#[test]
fn errors_stop_being_listed_after_the_limit() {
    let mut text = String::from("recipient,kind,id\n");
    for n in 0..150 {
        text.push_str(&format!("R{n},floppy,1\n"));
    }
    let Err(errors) = parse(
        Kind::Credentials,
        Format::Csv,
        text.as_bytes(),
        &context(),
        None,
    ) else {
        panic!("expected errors")
    };
    assert_eq!(errors.errors.len(), ERRORS_MAX);
    assert!(errors.more);
    assert!(errors.to_string().contains("and more"));
}
