//! Reports, budgets, the recipient portal and open data, over real HTTPS
//! on loopback against both stores, with records a test terminal signed
//! and uploaded as any terminal would.

use std::sync::Arc;

use central::http::reports::person_hash;
use central::portal::PersonalCode;
use central::reconcile::flags::{Flag, FlagKind, Subject};
use central::store::ledger::FlagRow;
use central::store::Party;
use central::{AppState, Clock};
use reqwest::Method;
use serde_json::Value;

use crate::db::TestDb;
use crate::store_test;
use crate::world::*;

async fn get(server: &Server, path: &str, token: &str) -> (u16, String) {
    let response = server
        .staff(Method::GET, path, token)
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn get_json(server: &Server, path: &str, token: &str) -> Value {
    let (status, body) = get(server, path, token).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("JSON answer")
}

/// Asks the person view for `code`, as the state portal does: the code in
/// a JSON body, never in the URL.
async fn person(server: &Server, code: &str, token: &str) -> (u16, String) {
    let response = server
        .staff(Method::POST, "/api/v1/portal/person", token)
        .json(&serde_json::json!({ "personal_code": code }))
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.text().await.expect("body"))
}

async fn person_json(server: &Server, code: &str, token: &str) -> Value {
    let (status, body) = person(server, code, token).await;
    assert_eq!(status, 200, "person {code}: {body}");
    serde_json::from_str(&body).expect("JSON answer")
}

fn message(body: &str) -> String {
    let value: Value = serde_json::from_str(body).expect("JSON error");
    value["error"]["message"]
        .as_str()
        .expect("error message")
        .to_owned()
}

/// Uploads one lunch for each of `pupils` (numbers) at `till`, at `at`;
/// returns how many records were accepted.
async fn lunches(
    server: &Server,
    world: &World,
    till: &mut TestTerminal,
    pupils: std::ops::Range<u32>,
    at: jiff::Timestamp,
) -> usize {
    let records: Vec<_> = pupils
        .map(|n| till.sale(&pupil(n, world), &["riga-lunch"], lunch("2.50"), at))
        .collect();
    let (status, answer) = server.upload(till, till.packet(records).to_json()).await;
    assert_eq!(status, 200, "{answer}");
    outcomes(&answer)
        .iter()
        .filter(|(_, outcome, _)| outcome == "accepted")
        .count()
}

// Goal: a merchant's daily and monthly totals equal what its terminals
// uploaded, in JSON, CSV and HTML, and only the merchant (or the admin)
// reads them. Method: 6 lunches on 2 March and 1 on 3 March at the canteen,
// then each format and each token.
async fn merchant_reports_add_up_and_are_scoped(db: TestDb) {
    let world = World::new(db, 7, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut till, 0..6, now()).await, 6);
    assert_eq!(lunches(&server, &world, &mut till, 6..7, day(1)).await, 1);

    let daily = get_json(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02",
        &world.canteen_token,
    )
    .await;
    assert_eq!(daily["merchant_name"], "Canteen Ltd");
    assert_eq!(daily["total"]["transactions"], 6);
    assert_eq!(daily["total"]["discount"], "15.00");
    assert_eq!(daily["rows"][0]["terminal"], till.id());
    assert_eq!(daily["rows"][0]["benefit"], "riga-lunch");
    assert_eq!(daily["rows"][0]["provider"], "riga");
    let monthly = get_json(
        &server,
        "/api/v1/reports/merchant/monthly?month=2026-03",
        &world.canteen_token,
    )
    .await;
    assert_eq!(monthly["total"]["transactions"], 7);
    assert_eq!(monthly["total"]["units"], 7);
    assert_eq!(monthly["total"]["discount"], "17.50");
    assert_eq!(
        monthly["total"]["not_payable"], "0.00",
        "no overuse across terminals"
    );
    assert_eq!(monthly["terminals"][0]["discount"], "17.50");

    // CSV: the header an accountant's spreadsheet expects, one line row,
    // the terminal's total and the overall total.
    let (status, csv_text) = get(
        &server,
        "/api/v1/reports/merchant/monthly?month=2026-03&format=csv",
        &world.canteen_token,
    )
    .await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "row",
            "terminal",
            "terminal_label",
            "benefit",
            "provider",
            "transactions",
            "units",
            "discount_eur",
            "not_accepted_eur",
            "not_payable_eur"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 3, "{csv_text}");
    assert_eq!(&rows[0][0], "line");
    assert_eq!(&rows[0][7], "17.50");
    assert_eq!(&rows[2][0], "total");
    assert_eq!(&rows[2][5], "7");
    assert_eq!(&rows[2][7], "17.50");

    // HTML: a hostile merchant name is shown as text, never as markup.
    world
        .store()
        .upsert_merchant(&Party {
            id: "canteen".into(),
            name: "<script>alert(1)</script> & Sons".into(),
        })
        .await
        .expect("renaming the merchant");
    let response = server
        .staff(
            Method::GET,
            "/api/v1/reports/merchant/daily?date=2026-03-02",
            &world.canteen_token,
        )
        .header("accept", "text/html")
        .send()
        .await
        .expect("HTML report");
    assert!(response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html")));
    let html = response.text().await.expect("HTML");
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; Sons"));
    assert!(html
        .contains("<tfoot><tr class=\"total\"><th colspan=\"3\">Total</th><td class=\"n\">6</td>"));
    assert!(html.contains(">15.00<"));
    assert!(html.contains("@media print"));

    // Scoping: the bus company cannot read the canteen's report; its own is empty.
    let (status, body) = get(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02&merchant=canteen",
        &world.bus_token,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let own = get_json(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02",
        &world.bus_token,
    )
    .await;
    assert_eq!(own["total"]["transactions"], 0);
    let (status, _) = get(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02",
        &world.riga_token,
    )
    .await;
    assert_eq!(status, 403, "a provider token reads no merchant report");
    let admin = get_json(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02&merchant=canteen",
        &world.admin_token,
    )
    .await;
    assert_eq!(admin["total"]["discount"], "15.00");

    // Offline overuse: a second till, unaware of the first, gives pupil 0 a
    // second lunch on 2 March. Both are accepted (each till applied the
    // rules to what it knew); reconciliation pays one lunch a day, so the
    // second is given but not payable.
    let mut second_till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(
        lunches(&server, &world, &mut second_till, 0..1, now()).await,
        1
    );
    central::ledger::run(world.store().as_ref(), now())
        .await
        .expect("reconciling");
    let daily = get_json(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02",
        &world.canteen_token,
    )
    .await;
    assert_eq!(daily["total"]["transactions"], 7);
    assert_eq!(daily["total"]["discount"], "17.50");
    assert_eq!(daily["total"]["not_payable"], "2.50", "{daily}");

    // Bad parameters: 400 saying what and where.
    for (path, expected) in [
        (
            "/api/v1/reports/merchant/daily?date=2026-02-30",
            "date: \"2026-02-30\" is not a date (YYYY-MM-DD)",
        ),
        (
            "/api/v1/reports/merchant/monthly?month=03-2026",
            "month: \"03-2026\" is not a month (YYYY-MM)",
        ),
        (
            "/api/v1/reports/merchant/monthly",
            "month: required (YYYY-MM)",
        ),
        (
            "/api/v1/reports/merchant/daily?date=2026-03-02&format=pdf",
            "format: \"pdf\" is not one of json, csv, html",
        ),
        (
            "/api/v1/reports/merchant/daily?day=2026-03-02",
            "day: unknown parameter (this endpoint takes date, merchant, format)",
        ),
    ] {
        let (status, body) = get(&server, path, &world.canteen_token).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(message(&body), expected, "{path}");
    }
    server.stop().await;
}
store_test!(merchant_reports_add_up_and_are_scoped);

// Goal: the provider sees usage per benefit and merchant, the budget
// against what was spent, and records not accepted; only its own.
// Method: 6 accepted lunches and one with a discount the terminal
// miscalculated, a budget of 100.00, then the report as each token.
async fn provider_report_shows_usage_budget_and_flags(db: TestDb) {
    let world = World::new(db, 7, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut till, 0..6, now()).await, 6);
    // A record whose quote gives 2.00 where the rules give 2.50: verification flags it.
    let honest = till.sale(&pupil(6, &world), &["riga-lunch"], lunch("2.50"), now());
    let mut body = honest.body.clone();
    body.quote.discounts[0].amount = "2.00".parse().expect("money");
    body.quote.discount_total = "2.00".parse().expect("money");
    body.quote.due = "0.50".parse().expect("money");
    body.quote
        .by_provider
        .insert("riga".into(), "2.00".parse().expect("money"));
    till.prev = body.prev;
    let altered = till.sign(body);
    let (status, answer) = server
        .upload(&till, till.packet(vec![altered]).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_ne!(outcomes(&answer)[0].1, "accepted", "{answer}");

    // An open ledger flag on Riga's money, and one on the state's.
    let flag_on = |provider: &str, seq: u64| FlagRow {
        flag: Flag::raise(
            FlagKind::ImpossibleTravel,
            Subject::Record {
                terminal: till.id().to_owned(),
                seq,
            },
            provider,
            serde_json::json!({}),
            now(),
        ),
        terminal: Some(till.id().to_owned()),
        seq: Some(seq),
        merchant: Some("canteen".into()),
        providers: format!(",{provider},"),
    };
    world
        .store()
        .raise_flags(vec![flag_on("riga", 1), flag_on("state", 2)])
        .await
        .expect("raising flags");

    let put_budget = |token: &str, benefit: &str, month: &str, body: Value| {
        server
            .staff(
                Method::PUT,
                &format!("/api/v1/budgets/{benefit}/{month}"),
                token,
            )
            .json(&body)
            .send()
    };
    let response = put_budget(
        &world.riga_token,
        "riga-lunch",
        "2026-03",
        serde_json::json!({"expected": "100.00"}),
    )
    .await
    .expect("budget");
    assert_eq!(response.status().as_u16(), 200);
    let response = put_budget(
        &world.state_token,
        "riga-lunch",
        "2026-03",
        serde_json::json!({"expected": "1.00"}),
    )
    .await
    .expect("budget");
    assert_eq!(
        response.status().as_u16(),
        404,
        "another provider's benefit"
    );
    let response = put_budget(
        &world.riga_token,
        "riga-lunch",
        "2026-03",
        serde_json::json!({"expected": "12.345"}),
    )
    .await
    .expect("budget");
    assert_eq!(response.status().as_u16(), 400);
    let body = response.text().await.expect("body");
    assert!(message(&body).starts_with("expected: \"12.345\""), "{body}");

    let report = get_json(
        &server,
        "/api/v1/reports/provider?month=2026-03",
        &world.riga_token,
    )
    .await;
    let usage = report["usage"].as_array().expect("usage");
    assert_eq!(usage.len(), 1, "{report}");
    assert_eq!(usage[0]["benefit"], "riga-lunch");
    assert_eq!(usage[0]["merchant"], "canteen");
    assert_eq!(usage[0]["merchant_name"], "Canteen Ltd");
    assert_eq!(usage[0]["transactions"], 6);
    assert_eq!(usage[0]["recipients"], 6);
    assert_eq!(usage[0]["discount"], "15.00");
    assert_eq!(usage[0]["not_accepted"], "2.00");
    let budget = report["budgets"]
        .as_array()
        .expect("budgets")
        .iter()
        .find(|b| b["benefit"] == "riga-lunch")
        .expect("lunch budget")
        .clone();
    assert_eq!(budget["expected"], "100.00");
    assert_eq!(budget["spent"], "15.00");
    assert_eq!(budget["remaining"], "85.00");
    assert_eq!(budget["used_percent"], "15.0");
    let flags = report["open_flags"].as_array().expect("flags");
    assert_eq!(flags.len(), 1, "{report}");
    assert_eq!(flags[0]["seq"], 7);
    assert_eq!(flags[0]["discount"], "2.00");
    let ledger_flags = report["ledger_flags"].as_array().expect("ledger flags");
    assert_eq!(ledger_flags.len(), 1, "{report}");
    assert_eq!(ledger_flags[0]["kind"], "impossible_travel");
    assert_eq!(ledger_flags[0]["seq"], 1);

    let (status, csv_text) = get(
        &server,
        "/api/v1/reports/provider?month=2026-03&format=csv&table=budget",
        &world.riga_token,
    )
    .await;
    assert_eq!(status, 200);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        [
            "month",
            "benefit",
            "expected_eur",
            "spent_eur",
            "remaining_eur",
            "used_percent"
        ]
    );
    let row = reader
        .records()
        .map(|r| r.expect("row"))
        .find(|r| &r[1] == "riga-lunch")
        .expect("lunch row");
    assert_eq!(
        row.iter().collect::<Vec<_>>(),
        ["2026-03", "riga-lunch", "100.00", "15.00", "85.00", "15.0"]
    );

    // The state sees none of Riga's usage, and cannot ask for it.
    let (status, _) = get(
        &server,
        "/api/v1/reports/provider?month=2026-03&provider=riga",
        &world.state_token,
    )
    .await;
    assert_eq!(status, 403);
    let state_report = get_json(
        &server,
        "/api/v1/reports/provider?month=2026-03",
        &world.state_token,
    )
    .await;
    assert_eq!(state_report["usage"], serde_json::json!([]));
    assert_eq!(state_report["open_flags"], serde_json::json!([]));
    assert_eq!(
        state_report["ledger_flags"][0]["seq"], 2,
        "the state sees its own flag only"
    );
    let (status, _) = get(
        &server,
        "/api/v1/reports/provider?month=2026-03",
        &world.canteen_token,
    )
    .await;
    assert_eq!(status, 403, "a merchant token reads no provider report");
    let (status, body) = get(
        &server,
        "/api/v1/reports/provider?month=2026-03&format=csv&table=everything",
        &world.riga_token,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        "table: \"everything\" is not one of usage, budget, flags"
    );
    server.stop().await;
}
store_test!(provider_report_shows_usage_budget_and_flags);

// Goal: a parent sees, through the portal, their minor children's
// benefits with conditions and usage; a child leaves the view on turning
// 18; the portal and staff tokens do not cross over; the access log never
// holds the personal code. Method: guardians and birth dates imported over
// HTTP, a lunch, then the view on 2 March and, on a second server whose
// clock reads 3 March, again.
async fn portal_shows_minor_children_until_18(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    let import = |kind: &str, body: &str| {
        server
            .staff(
                Method::POST,
                &format!("/api/v1/import/{kind}"),
                &world.riga_token,
            )
            .header("content-type", "text/csv")
            .body(body.to_owned())
            .send()
    };
    // Line-numbered errors, and nothing applied from a bad file.
    let response = import(
        "recipients",
        "recipient,personal_code,name,birth_date\nG1,010180-10001,Anna Ozola,\nP00000,,Ilze,2008-02-30\n",
    )
    .await
    .expect("import");
    assert_eq!(response.status().as_u16(), 422);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(
        error["error"]["rows"][0],
        "line 3: birth_date: \"2008-02-30\" is not a date (YYYY-MM-DD)"
    );
    let response = import("guardians", "guardian,child\nG1,G1\n")
        .await
        .expect("import");
    assert_eq!(response.status().as_u16(), 422);
    let error: Value = response.json().await.expect("JSON");
    assert_eq!(
        error["error"]["rows"][0],
        "line 2: child: \"G1\" cannot be their own guardian"
    );

    // P00000 turns 18 on 3 March 2026, P00001 on 2 March (the test's today).
    let people = "recipient,personal_code,name,birth_date\nG1,010180-10001,Anna Ozola,\nP00000,030308-20001,Ilze Ozola,2008-03-03\nP00001,020308-20002,Jānis Ozols,2008-03-02\n";
    let guardians = "guardian,child\nG1,P00000\nG1,P00001\n";
    for (kind, file, changed) in [("recipients", people, 3), ("guardians", guardians, 2)] {
        let summary: Value = import(kind, file)
            .await
            .expect("import")
            .json()
            .await
            .expect("JSON");
        assert_eq!(summary["recipients_changed"], changed, "{kind}: {summary}");
        assert_eq!(summary["rows"], changed, "one row per file line: {summary}");
        let again: Value = import(kind, file)
            .await
            .expect("import")
            .json()
            .await
            .expect("JSON");
        assert_eq!(
            again["recipients_changed"], 0,
            "{kind} again changes nothing"
        );
    }
    let mut till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut till, 0..2, now()).await, 2);

    let created = server
        .staff(Method::POST, "/api/v1/portal/tokens", &world.admin_token)
        .json(&serde_json::json!({"label": "state portal"}))
        .send()
        .await
        .expect("portal token");
    assert_eq!(created.status().as_u16(), 201);
    let portal_token = created.json::<Value>().await.expect("JSON")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let (status, _) = get(&server, "/api/v1/portal/tokens", &world.riga_token).await;
    assert_eq!(status, 405, "tokens are only created");

    let view = person_json(&server, "010180-10001", &portal_token).await;
    assert_eq!(view["name"], "Anna Ozola");
    assert_eq!(view["benefits"], serde_json::json!([]));
    let children = view["children"].as_array().expect("children");
    assert_eq!(children.len(), 1, "only the child under 18: {view}");
    assert_eq!(children[0]["name"], "Ilze Ozola");
    assert_eq!(children[0]["birth_date"], "2008-03-03");
    let lunch_view = &children[0]["benefits"][0];
    assert_eq!(lunch_view["benefit"], "riga-lunch");
    assert_eq!(lunch_view["provider_name"], "Riga");
    assert_eq!(lunch_view["granted_by"], "group");
    assert_eq!(lunch_view["group"], "Pupils");
    assert_eq!(lunch_view["conditions"]["discount"], "100 % off");
    assert_eq!(
        lunch_view["conditions"]["limits"],
        serde_json::json!(["at most 1 a day"])
    );
    assert_eq!(
        lunch_view["usage"],
        serde_json::json!([{"month": "2026-03", "transactions": 1, "discount": "2.50"}])
    );
    assert_eq!(
        lunch_view["last_transactions"][0]["merchant_name"],
        "Canteen Ltd"
    );
    assert_eq!(
        lunch_view["last_transactions"][0]["at"],
        "2026-03-02T12:05:00+02:00"
    );
    assert!(
        !view.to_string().contains("P0000"),
        "no recipient reference reaches the portal: {view}"
    );
    // The same code without its dash finds the same person.
    let plain = person_json(&server, "01018010001", &portal_token).await;
    assert_eq!(plain["children"], view["children"]);

    // Errors and crossing roles.
    let (status, body) = person(&server, "0101-80", &portal_token).await;
    assert_eq!(status, 400);
    assert!(
        message(&body).starts_with("personal_code: must be 11 digits"),
        "{body}"
    );
    let (status, body) = person(&server, "010101-99999", &portal_token).await;
    assert_eq!(status, 404);
    assert_eq!(
        message(&body),
        "no person with this personal code is registered"
    );
    let (status, _) = person(&server, "010180-10001", &world.admin_token).await;
    assert_eq!(status, 403, "a staff token cannot read the person view");
    // The code never travels in the URL: the old path is gone.
    let (status, _) = get(
        &server,
        "/api/v1/portal/persons/010180-10001",
        &portal_token,
    )
    .await;
    assert_eq!(status, 404, "no route takes the code in its path");
    // A body that is not JSON, or carries more than the code, is refused
    // with a message saying why.
    let response = server
        .staff(Method::POST, "/api/v1/portal/person", &portal_token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("personal_code=010180-10001")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 415);
    assert_eq!(
        message(&response.text().await.expect("body")),
        "Content-Type: \"application/x-www-form-urlencoded\" is not application/json"
    );
    let response = server
        .staff(Method::POST, "/api/v1/portal/person", &portal_token)
        .json(&serde_json::json!({"personal_code": "010180-10001", "name": "Anna"}))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    let text = response.text().await.expect("body");
    assert!(message(&text).contains("unknown field `name`"), "{text}");
    let (status, _) = get(
        &server,
        "/api/v1/reports/merchant/daily?date=2026-03-02&merchant=canteen",
        &portal_token,
    )
    .await;
    assert_eq!(status, 401, "the portal token is no staff token");

    // Every access is logged under a keyed hash, never the code.
    let code = PersonalCode::parse("010180-10001").expect("code");
    let hash = person_hash(&world.state.keys.credential_key, &code);
    assert!(!hash.contains("010180"));
    let accesses = world
        .store()
        .portal_accesses(&hash)
        .await
        .expect("access log");
    assert_eq!(accesses.len(), 2, "{accesses:?}");
    assert!(accesses
        .iter()
        .all(|a| a.client == "state portal" && a.found));

    // On 3 March Ilze is 18: she leaves her mother's view.
    let tomorrow = AppState::with_store(
        &world.state.config,
        Arc::clone(world.store()),
        Clock::fixed(day(1)),
    )
    .expect("second state");
    let later = Server::start(tomorrow).await;
    let view = person_json(&later, "010180-10001", &portal_token).await;
    assert_eq!(view["children"], serde_json::json!([]), "{view}");
    later.stop().await;
    server.stop().await;
}
store_test!(portal_shows_minor_children_until_18);

// Goal: open data never shows a cell of fewer than 5 recipients, nor one
// that a total would reveal, and the registers list no recipient. Method:
// 6 pupils eat at the canteen, 5 at a kiosk and 2 at the bus company's
// canteen in March; read JSON, CSV and JSON-LD without a token.
async fn open_data_suppresses_small_cells(db: TestDb) {
    let world = World::new(db, 13, 0).await;
    world
        .store()
        .upsert_merchant(&Party {
            id: "kiosk".into(),
            name: "Kiosk".into(),
        })
        .await
        .expect("merchant");
    let server = Server::start(world.state.clone()).await;
    let mut canteen = world.terminal("canteen", "meal.lunch").await;
    let mut kiosk = world.terminal("kiosk", "meal.lunch").await;
    let mut bus = world.terminal("bus", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut canteen, 0..6, now()).await, 6);
    assert_eq!(lunches(&server, &world, &mut kiosk, 6..11, now()).await, 5);
    assert_eq!(lunches(&server, &world, &mut bus, 11..13, now()).await, 2);

    let public = |path: &str| server.http.get(format!("{}{path}", server.base)).send();
    let response = public("/api/v1/open-data/usage?month=2026-03")
        .await
        .expect("open data");
    assert_eq!(response.status().as_u16(), 200);
    let data: Value = response.json().await.expect("JSON");
    let cell = |merchant: &str| {
        data["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["merchant"] == merchant)
            .cloned()
            .unwrap_or_else(|| panic!("cell of {merchant}: {data}"))
    };
    assert_eq!(cell("bus")["suppressed"], "primary");
    assert_eq!(cell("bus")["recipients"], Value::Null);
    assert_eq!(cell("bus")["amount"], Value::Null);
    assert_eq!(
        cell("kiosk")["suppressed"],
        "secondary",
        "the smallest other cell hides the small one from the total"
    );
    assert_eq!(cell("canteen")["recipients"], 6);
    assert_eq!(cell("canteen")["amount"], "15.00");
    assert_eq!(data["totals"][0]["recipients"], 13);
    assert_eq!(data["totals"][0]["amount"], "32.50");

    let csv_text = public("/api/v1/open-data/usage?month=2026-03&format=csv")
        .await
        .expect("CSV")
        .text()
        .await
        .expect("text");
    assert_eq!(
        csv_text,
        "month,provider,benefit,merchant,transactions,recipients,amount_eur,suppressed\r\n\
         2026-03,riga,riga-lunch,bus,,,,primary\r\n\
         2026-03,riga,riga-lunch,canteen,6,6,15.00,\r\n\
         2026-03,riga,riga-lunch,kiosk,,,,secondary\r\n"
    );

    let response = public("/api/v1/open-data/usage?month=2026-03&format=jsonld")
        .await
        .expect("JSON-LD");
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/ld+json")
    );
    let cube: Value = response.json().await.expect("JSON");
    assert_eq!(cube["@context"]["qb"], "http://purl.org/linked-data/cube#");
    let graph = cube["@graph"].as_array().expect("graph");
    assert_eq!(graph[0]["@type"], "qb:DataSet");
    let hidden: Vec<&Value> = graph
        .iter()
        .filter(|node| node["obsStatus"] == "primary")
        .collect();
    assert_eq!(hidden.len(), 1);
    assert!(hidden[0].get("recipients").is_none());
    assert!(hidden[0].get("amountEur").is_none());

    let registers: Value = public("/api/v1/open-data/benefits")
        .await
        .expect("registers")
        .json()
        .await
        .expect("JSON");
    let lunch_entry = registers["benefits"]
        .as_array()
        .expect("benefits")
        .iter()
        .find(|b| b["id"] == "riga-lunch")
        .expect("lunch")
        .clone();
    assert_eq!(lunch_entry["conditions"]["discount"], "100 % off");
    assert_eq!(lunch_entry["groups"], serde_json::json!(["riga-pupil"]));
    assert!(registers["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .any(|g| g["id"] == "riga-pupil" && g["label"] == "Pupils"));
    assert!(
        !registers.to_string().contains("P000"),
        "no recipient in open data"
    );

    let response = public("/api/v1/open-data/usage?month=2026-03&format=xml")
        .await
        .expect("bad format");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        message(&response.text().await.expect("body")),
        "format: \"xml\" is not one of json, csv, jsonld"
    );
    let response = public("/api/v1/open-data/usage?month=2026-3")
        .await
        .expect("bad month");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        message(&response.text().await.expect("body")),
        "month: \"2026-3\" is not a month (YYYY-MM)"
    );
    server.stop().await;
}
store_test!(open_data_suppresses_small_cells);

/// A public open data usage request: status, `Cache-Status` and body.
async fn open_usage(server: &Server, query: &str) -> (u16, String, String) {
    let response = server
        .http
        .get(format!("{}/api/v1/open-data/usage?{query}", server.base))
        .send()
        .await
        .expect("open data");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, cache, response.text().await.expect("body"))
}

// Goal: a public burst for the same month is served from memory, yet a
// terminal that syncs days late still changes the published figures, and
// a month that has not begun is refused. Method: 5 lunches on 2 March,
// the same request twice (the second says `Cache-Status: …hit`), then a
// second canteen till that was offline uploads a lunch of 1 March, and
// the month is asked for again.
async fn open_data_caches_a_month_until_a_late_record(db: TestDb) {
    let world = World::new(db, 6, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut till, 0..5, now()).await, 5);
    let canteen = |body: &str| -> (Value, Value) {
        let data: Value = serde_json::from_str(body).expect("JSON");
        let cell = data["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .find(|c| c["merchant"] == "canteen")
            .cloned()
            .unwrap_or_else(|| panic!("canteen cell: {data}"));
        (cell["transactions"].clone(), cell["amount"].clone())
    };

    let (status, cache, first) = open_usage(&server, "month=2026-03").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(cache, "central; fwd=miss; stored");
    assert_eq!(canteen(&first), (Value::from(5), Value::from("12.50")));
    let (status, cache, second) = open_usage(&server, "month=2026-03").await;
    assert_eq!(status, 200);
    assert_eq!(
        cache, "central; hit",
        "the same month again comes from memory"
    );
    assert_eq!(second, first);
    let (_, cache, csv_text) = open_usage(&server, "month=2026-03&format=csv").await;
    assert_eq!(
        cache, "central; hit",
        "every format renders the cached month"
    );
    assert!(csv_text.contains("canteen,5,5,12.50"), "{csv_text}");

    // The offline till syncs late: its lunch of 1 March is in March.
    let mut late_till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(
        lunches(&server, &world, &mut late_till, 5..6, day(-1)).await,
        1
    );
    let (status, cache, third) = open_usage(&server, "month=2026-03").await;
    assert_eq!(status, 200);
    assert_eq!(
        cache, "central; fwd=miss; stored",
        "the late record is seen"
    );
    assert_eq!(canteen(&third), (Value::from(6), Value::from("15.00")));
    let (_, cache, fourth) = open_usage(&server, "month=2026-03").await;
    assert_eq!(cache, "central; hit");
    assert_eq!(fourth, third);

    // Months that have not begun (today is 2 March 2026) are refused.
    let (status, _, body) = open_usage(&server, "month=2026-04").await;
    assert_eq!(status, 400);
    assert_eq!(
        message(&body),
        "month: 2026-04 has not begun (open data covers months up to 2026-03)"
    );
    server.stop().await;
}
store_test!(open_data_caches_a_month_until_a_late_record);

/// Every record of `query`, page by page: (instant, terminal, seq).
async fn read_all(
    world: &World,
    mut query: central::store::people::PeriodQuery,
) -> Vec<(jiff::Timestamp, String, u64)> {
    let mut seen = Vec::new();
    loop {
        let page = world.store().records_in_period(&query).await.expect("page");
        seen.extend(page.rows.iter().map(|r| (r.at, r.terminal.clone(), r.seq)));
        match page.next {
            Some(next) => query.after = Some(next),
            None => return seen,
        }
    }
}

// Goal: reading a period page by page returns every record once, in
// order, whatever filters are set (each filter set is its own SQL, so the
// indexes serve it). Method: 5 lunches at one till in one instant and 2 at
// another a day later; read March with pages of 2 rows, with no filter,
// by merchant, by merchant and provider, by recipient.
async fn period_pages_return_each_record_once(db: TestDb) {
    use central::store::people::PeriodQuery;
    let world = World::new(db, 5, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal.lunch").await;
    let mut other = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut till, 0..5, now()).await, 5);
    assert_eq!(lunches(&server, &world, &mut other, 0..2, day(1)).await, 2);
    server.stop().await;
    let march =
        |merchant: Option<&str>, provider: Option<&str>, recipient: Option<&str>| PeriodQuery {
            from: "2026-02-28T22:00:00Z".parse().expect("instant"),
            to: "2026-03-31T21:00:00Z".parse().expect("instant"),
            merchant: merchant.map(str::to_owned),
            provider: provider.map(str::to_owned),
            recipient: recipient.map(str::to_owned),
            after: None,
            limit: 2,
        };
    let everything = read_all(&world, march(None, None, None)).await;
    assert_eq!(everything.len(), 7, "{everything:?}");
    let mut sorted = everything.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, everything, "in order, each once");
    assert_eq!(
        read_all(&world, march(Some("canteen"), None, None)).await,
        everything
    );
    assert_eq!(
        read_all(&world, march(Some("canteen"), Some("riga"), None)).await,
        everything
    );
    assert_eq!(
        read_all(&world, march(Some("bus"), Some("riga"), None)).await,
        []
    );
    assert_eq!(
        read_all(&world, march(Some("canteen"), Some("jelgava"), None)).await,
        []
    );
    let first_pupil = pupil(0, &world).id;
    assert_eq!(
        read_all(&world, march(None, None, Some(&first_pupil)))
            .await
            .len(),
        2,
        "pupil 0 ate at both tills"
    );
}
store_test!(period_pages_return_each_record_once);

// Goal: when the months being computed already take every slot, a public
// request that would compute one more is turned away at once with 503 and
// `Retry-After`, rather than queueing behind them. Method: the open data
// handler behind a gate with no compute slot, asked for a month with usage.
async fn open_data_refuses_to_compute_when_busy(db: TestDb) {
    use axum::body::Body;
    use central::http::reports::{open_data_usage, OpenDataGate};
    use tower::ServiceExt;
    let world = World::new(db, 5, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal.lunch").await;
    assert_eq!(lunches(&server, &world, &mut till, 0..5, now()).await, 5);
    server.stop().await;
    let router = axum::Router::new()
        .route(
            "/usage",
            axum::routing::get(open_data_usage).layer(axum::Extension(OpenDataGate::new(0))),
        )
        .with_state(world.state.clone());
    let response = router
        .oneshot(
            axum::http::Request::get("/usage?month=2026-03")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answer");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .expect("body");
    assert_eq!(
        message(&String::from_utf8_lossy(&body)),
        "open data: other months are being computed; retry in a few seconds"
    );
}
store_test!(open_data_refuses_to_compute_when_busy);
