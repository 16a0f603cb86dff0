//! The ledger end to end, on SQLite and PostgreSQL: packets uploaded over
//! HTTPS by test terminals, then reconciliation, flags and settlements
//! through the staff API, as a provider or merchant would use them.

use std::path::PathBuf;
use std::process::Command;

use central::ledger;
use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::central;
use crate::db::TestDb;
use crate::store_test;
use crate::world::*;

fn at(text: &str) -> jiff::Timestamp {
    text.parse().expect("test instant")
}

async fn get_json(server: &Server, path: &str, token: &str) -> (u16, Value) {
    let response = server
        .staff(Method::GET, path, token)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

async fn send_json(
    server: &Server,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let response = server
        .staff(method, path, token)
        .json(&body)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Two canteen tills, each offline, each give pupil 1 the one free lunch
/// of 2 March; both upload. The later till's upload goes first, so arrival
/// order differs from time order.
/// Issues the settlements of `period` as the holder of `token`.
async fn issue(server: &Server, token: &str, period: &str) -> (u16, Value) {
    send_json(
        server,
        Method::POST,
        "/api/v1/settlements",
        token,
        json!({ "period": period }),
    )
    .await
}

/// Sets riga-lunch's overuse tolerance to `count` extra lunches.
async fn set_tolerance(server: &Server, token: &str, count: u32) -> (u16, Value) {
    send_json(
        server,
        Method::PUT,
        "/api/v1/overuse-policies/riga-lunch",
        token,
        json!({ "tolerance_count": count }),
    )
    .await
}

async fn two_offline_lunches(world: &World, server: &Server) -> (String, String) {
    let mut till_a = world.terminal("canteen", "meal").await;
    let mut till_b = world.terminal("canteen", "meal").await;
    let pupil = pupil(1, world);
    let early = till_a.sale(
        &pupil,
        &["riga-lunch"],
        lunch("2.50"),
        at("2026-03-02T09:30:00Z"),
    );
    let late = till_b.sale(
        &pupil,
        &["riga-lunch"],
        lunch("2.50"),
        at("2026-03-02T10:00:00Z"),
    );
    let late_packet = till_b.packet(vec![late]);
    let (status, answer) = server.upload(&till_b, late_packet.to_json()).await;
    assert_eq!(status, 200, "{answer}");
    let early_packet = till_a.packet(vec![early]);
    let (status, answer) = server.upload(&till_a, early_packet.to_json()).await;
    assert_eq!(status, 200, "{answer}");
    (till_a.id().to_owned(), till_b.id().to_owned())
}

// Goal: overuse no single till could see is a conflict after both sync, and
// the per-benefit tolerance decides deterministically who bears it.
// Method: two tills each give the daily lunch; reconcile; read the
// provider's reconciliation view; then allow one extra lunch and re-run.
async fn two_tills_one_lunch_a_day_conflict(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    let (till_a, till_b) = two_offline_lunches(&world, &server).await;
    let report = ledger::run(world.store().as_ref(), now())
        .await
        .expect("ledger run");
    assert_eq!(report.usage_lines, 2, "{report:?}");

    let (status, conflicts) = get_json(
        &server,
        "/api/v1/reconciliation?period=2026-03",
        &world.riga_token,
    )
    .await;
    assert_eq!(status, 200, "{conflicts}");
    let conflicts = conflicts.as_array().expect("array");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    let conflict = &conflicts[0];
    assert_eq!(
        conflict["terminal"],
        till_b.as_str(),
        "the later lunch is the conflict"
    );
    assert_eq!(conflict["outcome"], "not_payable");
    assert_eq!(conflict["payable"], "0.00");
    assert_eq!(conflict["merchant_bears"], "2.50");
    assert_eq!(conflict["conflicts"][0]["kind"], "offline_overuse");

    let (status, flags) = get_json(
        &server,
        "/api/v1/flags?kind=offline_overuse",
        &world.riga_token,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(flags.as_array().map(Vec::len), Some(1), "{flags}");
    assert_eq!(flags[0]["subject"]["terminal"], till_b.as_str());

    // A tolerance of one lunch makes both payable; the later one tolerated.
    let (status, answer) = set_tolerance(&server, &world.riga_token, 1).await;
    assert_eq!(status, 204, "{answer}");
    let (status, _) = set_tolerance(&server, &world.state_token, 5).await;
    assert_eq!(status, 403, "another provider cannot loosen riga's policy");
    ledger::run(world.store().as_ref(), now())
        .await
        .expect("re-run");
    let (_, conflicts) = get_json(
        &server,
        "/api/v1/reconciliation?period=2026-03",
        &world.riga_token,
    )
    .await;
    assert_eq!(conflicts.as_array().map(Vec::len), Some(1), "{conflicts}");
    assert_eq!(conflicts[0]["terminal"], till_b.as_str());
    assert_eq!(conflicts[0]["outcome"], "tolerated");
    assert_eq!(conflicts[0]["payable"], "2.50");
    assert_eq!(
        conflicts[0]["conflicts"][0]["kind"],
        "offline_overuse_tolerated"
    );
    let _ = till_a;
    server.stop().await;
}
store_test!(two_tills_one_lunch_a_day_conflict);

// Goal: a run after ingestion happens by itself (the debounced background
// task), without anyone calling it. Method: upload, then poll the flags.
async fn reconciliation_runs_after_ingestion(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    two_offline_lunches(&world, &server).await;
    let mut seen = 0;
    for _ in 0..100 {
        let (_, flags) = get_json(&server, "/api/v1/flags", &world.admin_token).await;
        seen = flags.as_array().map_or(0, Vec::len);
        if seen > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 1, "the overuse flag appears without a manual run");
    server.stop().await;
}
store_test!(reconciliation_runs_after_ingestion);

// Goal: flags have states and an audit trail of who decided, and each
// token sees and decides only what concerns it.
// Method: raise an overuse flag; list it as riga, state and the canteen;
// decide as the canteen (refused), as riga (rejected, with a note), then
// an illegal transition; read the trail.
async fn flag_decisions_are_audited_and_scoped(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    two_offline_lunches(&world, &server).await;
    ledger::run(world.store().as_ref(), now())
        .await
        .expect("ledger run");
    let (_, flags) = get_json(&server, "/api/v1/flags?state=open", &world.riga_token).await;
    let id = flags[0]["id"].as_str().expect("flag id").to_owned();
    let (_, other) = get_json(&server, "/api/v1/flags", &world.state_token).await;
    assert_eq!(
        other,
        json!([]),
        "the state provider does not see riga's flags"
    );
    let (status, _) = get_json(&server, &format!("/api/v1/flags/{id}"), &world.state_token).await;
    assert_eq!(status, 404);
    let (_, mine) = get_json(&server, "/api/v1/flags", &world.canteen_token).await;
    assert_eq!(
        mine.as_array().map(Vec::len),
        Some(1),
        "the merchant sees flags on its tills"
    );

    let decision = |to: &str, note: &str| json!({"decision": to, "note": note});
    let path = format!("/api/v1/flags/{id}/decision");
    let (status, answer) = send_json(
        &server,
        Method::POST,
        &path,
        &world.canteen_token,
        decision("accept", "ok"),
    )
    .await;
    assert_eq!(status, 403, "a merchant cannot decide: {answer}");
    let (status, answer) = send_json(
        &server,
        Method::POST,
        &path,
        &world.riga_token,
        decision("reject", ""),
    )
    .await;
    assert_eq!(status, 400, "a note is required: {answer}");
    let (status, answer) = send_json(
        &server,
        Method::POST,
        &path,
        &world.riga_token,
        decision("reject", "second lunch not allowed"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "rejected");
    let (status, answer) = send_json(
        &server,
        Method::POST,
        &path,
        &world.riga_token,
        decision("accept", "changed my mind"),
    )
    .await;
    assert_eq!(status, 409, "rejected → accepted needs a reopen: {answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("reopen"),
        "{answer}"
    );
    let (_, flag) = get_json(&server, &format!("/api/v1/flags/{id}"), &world.admin_token).await;
    let trail = flag["trail"].as_array().expect("trail");
    assert_eq!(trail.len(), 1, "{flag}");
    assert_eq!(trail[0]["who"], "test");
    assert_eq!(trail[0]["from"], "open");
    assert_eq!(trail[0]["to"], "rejected");
    assert_eq!(trail[0]["note"], "second lunch not allowed");
    server.stop().await;
}
store_test!(flag_decisions_are_audited_and_scoped);

fn validator() -> PathBuf {
    std::env::var_os("EINVOICE_VALIDATOR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/einvoice/validate")
        })
}

async fn set_invoice_details(server: &Server, world: &World) {
    let canteen = json!({
        "party": {"id": "canteen", "name": "SIA \"Canteen\"", "registration_number": "40003000001",
                  "vat_id": "LV40003000001",
                  "address": {"street": "Brīvības iela 1", "city": "Rīga", "postal_code": "LV-1010", "country": "LV"},
                  "endpoint_scheme": "lv_registration"},
        "iban": "LV80BANK0000435195001", "bic": "BANKLV22"
    });
    let riga = json!({
        "party": {"id": "riga", "name": "Rīgas valstspilsētas pašvaldība", "registration_number": "90011524360",
                  "vat_id": "LV90011524360",
                  "address": {"street": "Rātslaukums 1", "city": "Rīga", "postal_code": "LV-1539", "country": "LV"},
                  "endpoint_scheme": "lv_vat"},
        "buyer_reference": "IKSD-2026-benefits"
    });
    let (status, answer) = send_json(
        server,
        Method::PUT,
        "/api/v1/invoice-details/merchant/canteen",
        &world.canteen_token,
        canteen,
    )
    .await;
    assert_eq!(status, 204, "{answer}");
    let (status, answer) = send_json(
        server,
        Method::PUT,
        "/api/v1/invoice-details/provider/riga",
        &world.riga_token,
        riga,
    )
    .await;
    assert_eq!(status, 204, "{answer}");
}

// Goal: a late arrival after a settlement was issued never changes the
// issued settlement; the next one carries the correction, and its credit
// note is a valid EN 16931 / Peppol document.
// Method: till A's lunch is settled for March; till B syncs an earlier
// lunch of the same pupil and day; March is settled again; compare the
// first settlement's bytes, read the second's items, validate its
// documents with shared/einvoice/validate (fails when it is missing).
async fn late_arrival_adjusts_the_next_settlement(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    set_invoice_details(&server, &world).await;
    let mut till_a = world.terminal("canteen", "meal").await;
    let mut till_b = world.terminal("canteen", "meal").await;
    let pupil = pupil(1, &world);
    let lunch_a = till_a.sale(
        &pupil,
        &["riga-lunch"],
        lunch("2.50"),
        at("2026-03-02T10:00:00Z"),
    );
    let (status, _) = server
        .upload(&till_a, till_a.packet(vec![lunch_a]).to_json())
        .await;
    assert_eq!(status, 200);
    let (status, issued) = issue(&server, &world.riga_token, "2026-03").await;
    assert_eq!(status, 201, "{issued}");
    let first = issued[0]["number"].as_str().expect("number").to_owned();
    assert_eq!(first, "S-riga-canteen-2026-03-1");
    assert_eq!(issued[0]["total"], "2.50");
    let before = server
        .staff(
            Method::GET,
            &format!("/api/v1/settlements/{first}"),
            &world.canteen_token,
        )
        .send()
        .await
        .expect("GET settlement")
        .bytes()
        .await
        .expect("bytes");
    let (status, _) = issue(&server, &world.canteen_token, "2026-03").await;
    assert_eq!(status, 403, "a merchant does not issue settlements");

    // Till B was offline: its earlier lunch takes the day's limit.
    let lunch_b = till_b.sale(
        &pupil,
        &["riga-lunch"],
        lunch("2.50"),
        at("2026-03-02T09:00:00Z"),
    );
    let (status, _) = server
        .upload(&till_b, till_b.packet(vec![lunch_b]).to_json())
        .await;
    assert_eq!(status, 200);
    let (status, issued) = issue(&server, &world.admin_token, "2026-03").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued.as_array().map(Vec::len), Some(1), "{issued}");
    let second = issued[0]["number"].as_str().expect("number").to_owned();
    assert_eq!(second, "S-riga-canteen-2026-03-2");
    assert_eq!(
        issued[0]["total"], "0.00",
        "B's lunch is owed, A's is credited back"
    );

    let after = server
        .staff(
            Method::GET,
            &format!("/api/v1/settlements/{first}"),
            &world.admin_token,
        )
        .send()
        .await
        .expect("GET settlement")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(before, after, "an issued settlement is never rewritten");
    let (_, settlement) = get_json(
        &server,
        &format!("/api/v1/settlements/{second}"),
        &world.riga_token,
    )
    .await;
    let adjustments = settlement["adjustments"].as_array().expect("adjustments");
    assert_eq!(adjustments.len(), 1, "{settlement}");
    assert_eq!(adjustments[0]["direction"], "credit");
    assert_eq!(adjustments[0]["amount"], "-2.50");
    assert_eq!(settlement["lines"][0]["amount"], "2.50");
    let (status, _) = get_json(
        &server,
        &format!("/api/v1/settlements/{second}"),
        &world.bus_token,
    )
    .await;
    assert_eq!(status, 404, "another merchant does not see it");

    let documents: Vec<String> = settlement["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect();
    assert!(documents.contains(&format!("{second}-VC")), "{documents:?}");
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut files = Vec::new();
    for id in documents.iter().chain([format!("{first}-V")].iter()) {
        let number = if id.starts_with(&second) {
            &second
        } else {
            &first
        };
        let response = server
            .staff(
                Method::GET,
                &format!("/api/v1/settlements/{number}/invoice.xml?document={id}"),
                &world.riga_token,
            )
            .send()
            .await
            .expect("GET invoice.xml");
        assert_eq!(response.status().as_u16(), 200, "{id}");
        let xml = response.text().await.expect("XML");
        if id.ends_with("-VC") {
            assert!(xml.contains("<CreditNote"), "{xml}");
        }
        let path = dir.path().join(format!("{id}.xml"));
        std::fs::write(&path, xml).expect("writing XML");
        files.push(path);
    }
    let validator = validator();
    let output = Command::new(&validator)
        .args(&files)
        .output()
        .unwrap_or_else(|err| {
            panic!(
                "cannot run the validator {} ({err}): it is shared/einvoice/validate beside \
                 the repository (or set EINVOICE_VALIDATOR), and needs Java and Saxon HE",
                validator.display()
            )
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && !stdout.contains("[fatal]"),
        "validation failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    server.stop().await;
}
store_test!(late_arrival_adjusts_the_next_settlement);

// Goal: rejecting a flag on a record takes the record out of payment; the
// settlement pays only what the register proves.
// Method: with a tolerance of one extra lunch both lunches are payable and
// the later one is flagged `offline_overuse_tolerated`; riga rejects that
// flag; after the run the month settles at one lunch.
async fn a_rejected_flag_leaves_its_record_unpaid(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    let (status, _) = set_tolerance(&server, &world.riga_token, 1).await;
    assert_eq!(status, 204);
    let (_, till_b) = two_offline_lunches(&world, &server).await;
    ledger::run(world.store().as_ref(), now())
        .await
        .expect("ledger run");
    let (_, flags) = get_json(
        &server,
        "/api/v1/flags?kind=offline_overuse_tolerated",
        &world.riga_token,
    )
    .await;
    assert_eq!(flags.as_array().map(Vec::len), Some(1), "{flags}");
    assert_eq!(flags[0]["subject"]["terminal"], till_b.as_str());
    let id = flags[0]["id"].as_str().expect("id");
    let (status, answer) = send_json(
        &server,
        Method::POST,
        &format!("/api/v1/flags/{id}/decision"),
        &world.riga_token,
        json!({"decision": "reject", "note": "one lunch a day means one"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, issued) = issue(&server, &world.riga_token, "2026-03").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(
        issued[0]["total"], "2.50",
        "only the first lunch is paid: {issued}"
    );
    server.stop().await;
}
store_test!(a_rejected_flag_leaves_its_record_unpaid);

// Goal: a flag rejected after its record was settled credits the record
// back in the next period's settlement, once: issuing a later period finds
// the earlier period's line whose payable amount changed.
// Method: two offline lunches on one day (one tolerated), March settled
// with both paid; the tolerated one's flag rejected (its record is taken
// in again); April settled, then May.
async fn a_flag_rejected_after_settlement_is_credited_in_a_later_period(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    let (status, _) = set_tolerance(&server, &world.riga_token, 1).await;
    assert_eq!(status, 204);
    two_offline_lunches(&world, &server).await;
    let settle = |period: &'static str| issue(&server, &world.riga_token, period);
    let (status, issued) = settle("2026-03").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(
        issued[0]["total"], "5.00",
        "the tolerated lunch is paid: {issued}"
    );
    let (_, flags) = get_json(
        &server,
        "/api/v1/flags?kind=offline_overuse_tolerated",
        &world.riga_token,
    )
    .await;
    let id = flags[0]["id"].as_str().expect("a tolerated-overuse flag");
    let (status, answer) = send_json(
        &server,
        Method::POST,
        &format!("/api/v1/flags/{id}/decision"),
        &world.riga_token,
        json!({"decision": "reject", "note": "one lunch a day means one"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, issued) = settle("2026-04").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued.as_array().map(Vec::len), Some(1), "{issued}");
    assert_eq!(issued[0]["number"], "S-riga-canteen-2026-04-1");
    assert_eq!(
        issued[0]["total"], "-2.50",
        "March's rejected lunch is credited back in April: {issued}"
    );
    let (status, issued) = settle("2026-05").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(
        issued.as_array().map(Vec::len),
        Some(0),
        "the credit is settled once: {issued}"
    );
    server.stop().await;
}
store_test!(a_flag_rejected_after_settlement_is_credited_in_a_later_period);

// Goal: malformed or hostile ledger requests are refused with a message
// that says what and where, and change nothing.
async fn malformed_ledger_requests_are_refused(db: TestDb) {
    let world = World::new(db, 1, 0).await;
    let server = Server::start(world.state.clone()).await;
    let (status, answer) = get_json(
        &server,
        "/api/v1/reconciliation?period=2026-13",
        &world.admin_token,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("period"),
        "{answer}"
    );
    let (status, answer) = send_json(
        &server,
        Method::POST,
        "/api/v1/settlements",
        &world.admin_token,
        json!({"period": "March", "extra": 1}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = get_json(&server, "/api/v1/flags?state=maybe", &world.admin_token).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("state"),
        "{answer}"
    );
    let (status, _) = get_json(&server, "/api/v1/flags?provider=state", &world.riga_token).await;
    assert_eq!(status, 403, "a provider cannot widen its scope");
    let (status, _) = send_json(
        &server,
        Method::POST,
        "/api/v1/flags/0123/decision",
        &world.admin_token,
        json!({"decision": "accept", "note": "n"}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, answer) = send_json(
        &server,
        Method::PUT,
        "/api/v1/invoice-details/merchant/canteen",
        &world.canteen_token,
        json!({"party": {"id": "canteen", "name": "C", "registration_number": "40003000001",
                         "address": {"street": "S", "city": "R", "postal_code": "LV-1010", "country": "LV"},
                         "endpoint_scheme": "lv_registration"},
               "iban": "LV00BANK0000435195001"}),
    )
    .await;
    assert_eq!(status, 400, "a wrong IBAN check: {answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("iban"),
        "{answer}"
    );
    let (status, _) = send_json(
        &server,
        Method::PUT,
        "/api/v1/invoice-details/merchant/bus",
        &world.canteen_token,
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "a merchant sets only its own details");
    let (status, settlements) = get_json(&server, "/api/v1/settlements", &world.admin_token).await;
    assert_eq!(
        (status, settlements),
        (200, json!([])),
        "nothing was issued"
    );
    server.stop().await;
}
store_test!(malformed_ledger_requests_are_refused);

// Goal: a gap in a till's chain that is not filled within a day becomes a
// `chain_gap` flag, visible to the till's merchant and not to another.
// Method: upload records 1 and 3 (3 is held); run at once (no flag yet),
// then 25 hours later.
async fn an_unfilled_chain_gap_is_flagged_after_a_day(db: TestDb) {
    let world = World::new(db, 3, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let first = till.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let _lost = till.sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let third = till.sale(&pupil(2, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let (status, answer) = server
        .upload(&till, till.packet(vec![first]).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = server
        .upload(&till, till.packet(vec![third]).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer)[0].1, "held", "{answer}");
    ledger::run(world.store().as_ref(), now())
        .await
        .expect("ledger run");
    let (_, flags) = get_json(&server, "/api/v1/flags?kind=chain_gap", &world.admin_token).await;
    assert_eq!(flags, json!([]), "a fresh gap is not a finding yet");
    let later = now()
        .checked_add(jiff::SignedDuration::from_hours(25))
        .expect("instant");
    ledger::run(world.store().as_ref(), later)
        .await
        .expect("ledger run");
    let (_, flags) = get_json(
        &server,
        "/api/v1/flags?kind=chain_gap",
        &world.canteen_token,
    )
    .await;
    assert_eq!(flags.as_array().map(Vec::len), Some(1), "{flags}");
    assert_eq!(flags[0]["subject"]["terminal"], till.id());
    assert_eq!(flags[0]["evidence"]["from"], 2);
    assert_eq!(flags[0]["evidence"]["to"], 2);
    let (_, other) = get_json(&server, "/api/v1/flags?kind=chain_gap", &world.bus_token).await;
    assert_eq!(other, json!([]), "another merchant does not see it");
    server.stop().await;
}
store_test!(an_unfilled_chain_gap_is_flagged_after_a_day);

/// A void of `sale` as the till's next record, at `at`: same cart and quote.
fn void_of(
    till: &mut TestTerminal,
    sale: &shared::wire::record::SignedRecord,
    at: jiff::Timestamp,
) -> shared::wire::record::SignedRecord {
    let mut body = sale.body.clone();
    till.seq += 1;
    body.kind = shared::wire::record::RecordKind::Void;
    body.voids = Some(sale.body.seq);
    body.seq = till.seq;
    body.prev = till.prev;
    body.idempotency_key = format!("{}-void-{}", till.id(), till.seq);
    body.at = at;
    body.local_time = shared::wire::record::local_time_of(at, &riga());
    till.sign(body)
}

// Goal: a sale voided after its month was settled is credited back in the
// next settlement, and a lunch voided before settlement is never paid.
// Method: two pupils' lunches; settle March; void one; settle March again.
async fn a_late_void_is_credited_in_the_next_settlement(db: TestDb) {
    let world = World::new(db, 3, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let kept = till.sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let voided = till.sale(&pupil(2, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let (status, answer) = server
        .upload(&till, till.packet(vec![kept, voided.clone()]).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    let (status, issued) = issue(&server, &world.riga_token, "2026-03").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued[0]["total"], "5.00");
    let void = void_of(&mut till, &voided, day(1));
    let (status, answer) = server
        .upload(&till, till.packet(vec![void]).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer)[0].1, "accepted", "{answer}");
    let (status, issued) = issue(&server, &world.riga_token, "2026-03").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued[0]["number"], "S-riga-canteen-2026-03-2");
    assert_eq!(
        issued[0]["total"], "-2.50",
        "the voided lunch is credited back"
    );
    server.stop().await;
}
store_test!(a_late_void_is_credited_in_the_next_settlement);

// Goal: an operator reaches the ledger from the command line: a fresh demo
// shows settlements, their invoices render, the demo's planted lunch
// conflict is settled by policy (Riga's second lunch unpaid, Jelgava's
// tolerated one paid), and a mistake is refused with a message.
// Method: `central demo` on 40 recipients over 40 days (so the conflict
// falls in the last complete month), then the ledger subcommands on the
// same data directory (SQLite).
#[test]
fn ledger_from_the_command_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data = dir.path().join("data");
    let demo = central(&data, &["demo", "--recipients", "40", "--days", "40"]);
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    let report = String::from_utf8_lossy(&demo.stdout);
    assert!(
        report.contains("settlement S-"),
        "the demo settles its last month: {report}"
    );
    let reconcile = central(&data, &["reconcile"]);
    assert!(reconcile.status.success());
    assert!(
        String::from_utf8_lossy(&reconcile.stdout).contains("took in 0 records"),
        "a second run finds nothing new"
    );
    let list = central(&data, &["settlement", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    let number = listed
        .lines()
        .next()
        .and_then(|line| line.split('\t').next())
        .expect("a settlement in the list")
        .to_owned();
    assert!(number.starts_with("S-"), "{listed}");
    // The records the overuse flags name, and whether the settlement of
    // their provider and merchant pays them.
    let flags = central(&data, &["flags", "list"]);
    let flagged = |kind: &str| -> (String, u64) {
        let line = String::from_utf8_lossy(&flags.stdout)
            .lines()
            .find(|line| line.split('\t').nth(1) == Some(kind))
            .unwrap_or_else(|| panic!("a {kind} flag after the demo"))
            .to_owned();
        let subject: Value =
            serde_json::from_str(line.rsplit('\t').next().expect("subject")).expect("JSON");
        (
            subject["terminal"].as_str().expect("terminal").to_owned(),
            subject["seq"].as_u64().expect("seq"),
        )
    };
    // Each settled line with its payable amount (a line found not payable
    // is listed at 0.00).
    let settled = |provider: &str| -> Vec<((String, u64), String)> {
        let line = listed
            .lines()
            .find(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                fields.get(2) == Some(&provider) && fields.get(3) == Some(&"skolas-edinasana")
            })
            .unwrap_or_else(|| panic!("a {provider} canteen settlement: {listed}"));
        let number = line.split('\t').next().expect("number");
        let show = central(&data, &["settlement", "show", number]);
        let shown: Value = serde_json::from_slice(&show.stdout).expect("settlement JSON");
        shown["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|item| {
                (
                    (
                        item["key"]["terminal"]
                            .as_str()
                            .expect("terminal")
                            .to_owned(),
                        item["key"]["seq"].as_u64().expect("seq"),
                    ),
                    item["amount"].as_str().expect("amount").to_owned(),
                )
            })
            .collect()
    };
    let refused = flagged("offline_overuse");
    let tolerated = flagged("offline_overuse_tolerated");
    let paid = |provider: &str, record: &(String, u64)| -> String {
        settled(provider)
            .into_iter()
            .find(|(key, _)| key == record)
            .map(|(_, amount)| amount)
            .unwrap_or_else(|| panic!("{record:?} is settled in the {provider} settlement"))
    };
    assert_eq!(
        paid("riga", &refused),
        "0.00",
        "Riga has no tolerance: the second lunch {refused:?} is not paid"
    );
    assert_eq!(
        paid("jelgava", &tolerated),
        "1.50",
        "Jelgava tolerates one extra lunch: {tolerated:?} is paid, half of 3.00"
    );
    let invoice = central(&data, &["settlement", "invoice", &number]);
    assert!(
        invoice.status.success(),
        "{}",
        String::from_utf8_lossy(&invoice.stderr)
    );
    assert!(String::from_utf8_lossy(&invoice.stdout).starts_with("<?xml"));
    let show = central(&data, &["settlement", "show", &number]);
    let shown: Value = serde_json::from_slice(&show.stdout).expect("settlement JSON");
    assert_eq!(shown["number"], number.as_str());
    let bad = central(&data, &["settle", "--period", "2026-3"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("YYYY-MM"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let unknown = central(
        &data,
        &[
            "flags",
            "decide",
            "nope",
            "--decision",
            "accept",
            "--who",
            "ops",
            "--note",
            "n",
        ],
    );
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("not found"));
}

/// `record` with one byte of its body changed after signing: its signature
/// no longer verifies with the till's key.
fn tampered(record: &shared::wire::record::SignedRecord) -> shared::wire::record::SignedRecord {
    let mut json: Value = serde_json::from_slice(&record.to_json()).expect("record JSON");
    json["body"]["cart"][0]["sku"] = "LUNCX".into();
    let copy: shared::wire::record::SignedRecord =
        serde_json::from_value(json).expect("still a well-formed record");
    assert_ne!(copy.hash(), record.hash());
    copy
}

// Goal: a copy whose signature failed (kept as evidence, never a record)
// becomes one bad_signature flag per copy, naming the till, the seq and
// the copy's hash, seen by the till's merchant and not by providers or
// another merchant; a rerun raises nothing new.
// Method: upload a clean record 1 and a tampered record 2; run twice.
async fn a_tampered_record_is_one_bad_signature_flag(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let first = till.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let second = till.sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), day(0));
    let copy = tampered(&second);
    let (status, answer) = server
        .upload(&till, till.packet(vec![first, copy.clone()]).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outcomes(&answer)[1].2.as_deref(), Some("bad_signature"));
    let report = ledger::run(world.store().as_ref(), now())
        .await
        .expect("ledger run");
    assert_eq!(report.flags_raised, 1, "{report:?}");
    let (status, flags) = get_json(
        &server,
        "/api/v1/flags?kind=bad_signature&state=open",
        &world.admin_token,
    )
    .await;
    assert_eq!(status, 200, "{flags}");
    assert_eq!(flags.as_array().map(Vec::len), Some(1), "{flags}");
    let flag = &flags[0];
    assert_eq!(flag["subject"]["terminal"], till.id());
    assert_eq!(flag["subject"]["seq"], 2);
    assert_eq!(flag["evidence"]["hash"], copy.hash().to_hex());
    assert_eq!(flag["merchant"], "canteen");

    let report = ledger::run(world.store().as_ref(), now())
        .await
        .expect("re-run");
    assert_eq!(report.flags_raised, 0, "{report:?}");
    let (_, again) = get_json(
        &server,
        "/api/v1/flags?kind=bad_signature",
        &world.admin_token,
    )
    .await;
    assert_eq!(again, flags, "the rerun finds the same flag, nothing new");

    let (_, merchant) = get_json(&server, "/api/v1/flags", &world.canteen_token).await;
    assert_eq!(
        merchant.as_array().map(Vec::len),
        Some(1),
        "the till's merchant sees it: {merchant}"
    );
    for token in [&world.bus_token, &world.riga_token] {
        let (_, other) = get_json(&server, "/api/v1/flags", token).await;
        assert_eq!(
            other,
            json!([]),
            "the copy's claims grant no one else a view"
        );
    }
    server.stop().await;
}
store_test!(a_tampered_record_is_one_bad_signature_flag);

async fn get_page(server: &Server, path: &str, token: &str) -> (u16, Value, Option<String>) {
    let response = server
        .staff(Method::GET, path, token)
        .send()
        .await
        .expect("GET");
    let status = response.status().as_u16();
    let next = response
        .headers()
        .get("next-after")
        .map(|v| v.to_str().expect("ASCII cursor").to_owned());
    (status, response.json().await.expect("JSON answer"), next)
}

// Goal: a reviewer can read every flag, page by page, however many there
// are: each page at most `limit`, the next cursor given while more follow,
// the pages together the whole list in order with nothing repeated.
// Method: five tampered copies give five flags; read them two at a time,
// following `next-after`; then refuse malformed and foreign cursors.
async fn flag_listings_page_by_cursor(db: TestDb) {
    let world = World::new(db, 5, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let copies: Vec<_> = (0..5)
        .map(|n| {
            let sale = till.sale(&pupil(n, &world), &["riga-lunch"], lunch("2.50"), day(0));
            tampered(&sale)
        })
        .collect();
    let (status, answer) = server.upload(&till, till.packet(copies).to_json()).await;
    assert_eq!(status, 200, "{answer}");
    ledger::run(world.store().as_ref(), now())
        .await
        .expect("ledger run");
    let (_, all, next) = get_page(&server, "/api/v1/flags", &world.admin_token).await;
    let all: Vec<String> = all
        .as_array()
        .expect("array")
        .iter()
        .map(|f| f["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(all.len(), 5, "{all:?}");
    assert_eq!(next, None, "everything fits in one page of 100");

    let mut paged = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/api/v1/flags?limit=2".to_owned();
    loop {
        let (status, page, next) = get_page(&server, &path, &world.canteen_token).await;
        assert_eq!(status, 200, "{page}");
        let page = page.as_array().expect("array").clone();
        sizes.push(page.len());
        paged.extend(
            page.iter()
                .map(|f| f["id"].as_str().expect("id").to_owned()),
        );
        match next {
            Some(cursor) => {
                assert_eq!(Some(cursor.as_str()), paged.last().map(String::as_str));
                path = format!("/api/v1/flags?limit=2&after={cursor}");
            }
            None => break,
        }
        assert!(sizes.len() < 10, "paging does not end: {sizes:?}");
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(paged, all, "the pages are the list, in order");

    let (status, page, next) = get_page(
        &server,
        &format!("/api/v1/flags?limit=5&after={}", all[4]),
        &world.admin_token,
    )
    .await;
    assert_eq!(
        (status, page, next),
        (200, json!([]), None),
        "after the last"
    );
    for bad in ["nothex", "0123456789abcdef0123456789abcdef"] {
        let (status, answer) = get_json(
            &server,
            &format!("/api/v1/flags?after={bad}"),
            &world.admin_token,
        )
        .await;
        assert_eq!(status, 400, "{answer}");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("after"),
            "{answer}"
        );
    }
    let (status, answer) = get_json(
        &server,
        &format!("/api/v1/flags?after={}", all[0]),
        &world.bus_token,
    )
    .await;
    assert_eq!(
        status, 400,
        "another merchant's flag is no cursor: {answer}"
    );
    server.stop().await;
}
store_test!(flag_listings_page_by_cursor);

/// The ledger's question of every run: where undecided lines start.
const PENDING_DAYS: &str =
    "SELECT benefit, MIN(day) FROM ledger_usage WHERE outcome = 'pending' GROUP BY benefit";

// Goal: each run's search for undecided lines reads the index of the
// undecided lines (0006_ledger_index.sql), not the whole usage table.
// Method: ask each backend's planner for the plan of that query (on
// PostgreSQL with sequential scans discouraged, since on a tiny table a
// scan is cheapest: what is checked is that the index applies).
async fn undecided_lines_are_found_through_their_index(db: TestDb) {
    let plan = match &db.postgres {
        None => {
            let conn = rusqlite::Connection::open(db.dir.path().join("central.sqlite"))
                .expect("opening the test database");
            let mut stmt = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {PENDING_DAYS}"))
                .expect("EXPLAIN");
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(3))
                .expect("plan rows")
                .collect::<Result<Vec<_>, _>>()
                .expect("plan");
            rows.join("\n")
        }
        Some((url, schema)) => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connecting to PostgreSQL");
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "SET search_path TO \"{schema}\"; SET enable_seqscan = off"
                ))
                .await
                .expect("session settings");
            let rows = client
                .query(&format!("EXPLAIN {PENDING_DAYS}"), &[])
                .await
                .expect("EXPLAIN");
            rows.iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    assert!(plan.contains("ledger_usage_pending"), "{plan}");
}
store_test!(undecided_lines_are_found_through_their_index);
