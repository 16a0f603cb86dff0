//! Issue 6: the real `agent` binary against the real `central` binary, as
//! `scripts/demo` runs them: enrol with a one-time code, sync a snapshot,
//! sell offline while central is down, sync the packets once it is back,
//! and see every record accepted with the discount the till gave (also a
//! second till and a bus validator). Then hostile uploads made of the
//! agent's own signed records (the same packet twice, a replay under a new
//! packet id, records out of order, a duplicate inside a packet, a changed
//! byte, a fork), each checked against the staff API so that nothing
//! accepted changes or is lost. The till tests run on SQLite and, with
//! `CENTRAL_TEST_PG_URL`, on PostgreSQL (`CENTRAL_DATABASE_URL`).
//!
//! The processes live in `agent_harness.rs` (kill-on-drop guards, bounded
//! waits that print both daemons' logs).

use std::collections::BTreeMap;
use std::path::Path;

use jiff::Timestamp;
use serde_json::{json, Value};
use shared::wire::keys::SigningKey;
use shared::wire::packet::Packet;
use shared::wire::record::SignedRecord;

use crate::agent_harness::{poll, postgres_database_url, Agent, Central, Site, WAIT};

/// A Riga pupil's card: recipient reference and raw card UID.
fn pupil(n: u32) -> (String, String) {
    (format!("P{n:05}"), format!("04AA{n:06X}"))
}

fn card(n: u32) -> Value {
    json!({"kind": "card", "id": pupil(n).1})
}

fn lunch() -> Value {
    json!({"sku": "LUNCH", "category": "meal.lunch", "unit_price": "2.50", "qty": 1})
}

fn snack() -> Value {
    json!({"sku": "BUN", "category": "meal.snack", "unit_price": "1.20", "qty": 1})
}

/// Publishes benefit definitions of `provider` through `central benefit`.
fn publish(central: &Central, dir: &Path, provider: &str, benefits: &[Value]) {
    for benefit in benefits {
        let file = dir.join(format!("{}.json", benefit["id"].as_str().expect("id")));
        std::fs::write(&file, benefit.to_string()).expect("writing a benefit file");
        let out = central.cli(&["benefit", "--provider", provider, path_str(&file)]);
        assert!(out.contains("published"), "{out}");
    }
}

/// Imports `(recipient, card UID)` pairs as cards and members of `group`
/// through `central import` (CSV files, as a provider sends them).
fn import_people(
    central: &Central,
    dir: &Path,
    provider: &str,
    group: &str,
    people: &[(String, String)],
) {
    let mut credentials = String::from("recipient,kind,id\n");
    let mut memberships = String::from("recipient,group,valid_from,valid_to\n");
    for (recipient, uid) in people {
        credentials.push_str(&format!("{recipient},card,{uid}\n"));
        memberships.push_str(&format!("{recipient},{group},,\n"));
    }
    for (kind, text) in [("credentials", credentials), ("memberships", memberships)] {
        let file = dir.join(format!("{provider}-{kind}.csv"));
        std::fs::write(&file, text).expect("writing an import file");
        central.cli(&[
            "import",
            "--provider",
            provider,
            "--kind",
            kind,
            path_str(&file),
        ]);
    }
}

/// `central terminal create`; returns the one-time enrolment code.
fn enrolment_code(central: &Central, merchant: &str, label: &str, category: &str) -> String {
    let created = central.cli(&[
        "terminal",
        "create",
        "--merchant",
        merchant,
        "--label",
        label,
        "--category",
        category,
    ]);
    created
        .lines()
        .find_map(|line| line.strip_prefix("enrolment code: "))
        .unwrap_or_else(|| panic!("no enrolment code in `terminal create` output:\n{created}"))
        .trim()
        .to_owned()
}

/// Riga's free lunch (one a day) and a half-price snack capped at 0.50 a
/// sale (a co-payment; two a day), both for the group of pupils; `pupils`
/// pupils with a card each; a canteen with one till. Returns the till's
/// enrolment code.
fn register(central: &Central, dir: &Path, pupils: u32) -> String {
    central.cli(&["provider", "riga", "Riga"]);
    central.cli(&["merchant", "canteen", "Canteen Ltd"]);
    central.cli(&["group", "--provider", "riga", "riga-pupil", "Pupils"]);
    publish(
        central,
        dir,
        "riga",
        &[
            json!({
                "id": "riga-lunch", "provider": "riga", "groups": ["riga-pupil"],
                "label": {"lv": "Brīvpusdienas", "en": "Free lunch"},
                "categories": ["meal.lunch"], "discount": {"percent": "100"},
                "limits": [{"period": "day", "max_count": 1}]
            }),
            json!({
                "id": "riga-snack", "provider": "riga", "groups": ["riga-pupil"],
                "categories": ["meal.snack"], "discount": {"percent": "50"},
                "max_per_transaction": "0.50",
                "limits": [{"period": "day", "max_count": 2}]
            }),
        ],
    );
    let people: Vec<(String, String)> = (0..pupils).map(pupil).collect();
    import_people(central, dir, "riga", "riga-pupil", &people);
    enrolment_code(central, "canteen", "Canteen till 1", "meal")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// A site with central serving, the till enrolled and running with its
/// first snapshot applied.
async fn site_with_enrolled_till(database_url: Option<String>, pupils: u32) -> Site {
    let mut site = Site::new(database_url, "");
    let code = register(&site.central, site.dir.path(), pupils);
    site.central.start().await;
    site.agent.enroll(&site.central, &code);
    // The code is single use: a second till cannot enrol with it.
    let other_root = site.dir.path().join("other-till");
    std::fs::create_dir_all(&other_root).expect("creating a directory");
    let refused = Agent::new(&other_root).command(&[
        "enroll",
        "--central",
        &site.central.url(),
        "--ca",
        path_str(&site.central.ca()),
        "--code",
        &code,
    ]);
    assert!(
        !refused.status.success(),
        "a used code enrolled a second till"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("enrolment refused by central (409): used_code"),
        "{stderr}"
    );
    site.agent.start().await;
    let status = site.wait_for_snapshot().await;
    assert_eq!(status["merchant"], "canteen");
    assert_eq!(status["snapshot"]["stale"], false, "{status}");
    site
}

/// The staff API's records of one terminal, by seq.
async fn records_by_seq(central: &Central, terminal: &str) -> BTreeMap<u64, Value> {
    let records = central
        .staff_get(&format!("/api/v1/records?terminal={terminal}&limit=1000"))
        .await;
    records
        .as_array()
        .expect("records are an array")
        .iter()
        .map(|record| (record["seq"].as_u64().expect("seq"), record.clone()))
        .collect()
}

// Goal: issue 6's happy path with both real binaries: a till syncs its
// snapshot, keeps selling while central is down (limits still hold), and
// once central is back every sale reaches it and is accepted with the
// exact discount the till gave. Method: central `serve` is killed with
// SIGKILL after the first snapshot, then restarted on the same data and
// port; the agent's status and central's staff API are polled with bounds.
async fn offline_sales_reach_central_when_it_returns(database_url: Option<String>) {
    let mut site = site_with_enrolled_till(database_url, 3).await;
    let before = site.agent.status().await;
    let terminal = before["terminal"].as_str().expect("terminal id").to_owned();
    let first_version = before["snapshot"]["version"].as_u64().expect("version");

    site.central.kill();
    // Wait until the till itself has noticed: the sales below are offline
    // from its point of view too, not merely racing a sync round.
    let status = poll(
        "the agent reports central unreachable",
        WAIT,
        || site.logs(),
        async || {
            let status = site.agent.status().await;
            status["sync"]["last_error"].is_string().then_some(status)
        },
    )
    .await;
    assert!(
        status["sync"]["last_error"]
            .as_str()
            .expect("last_error")
            .contains("unreachable"),
        "{status}"
    );

    // The cashier's flow: identify, quote, then commit once paid.
    let (code, identified) = site
        .agent
        .post("/v1/identify", &json!({"credential": card(0)}))
        .await;
    assert_eq!(code, 200, "{identified}");
    let labels: Vec<&str> = identified["benefits"]
        .as_array()
        .expect("benefits")
        .iter()
        .map(|benefit| benefit["label"].as_str().expect("label"))
        .collect();
    assert!(labels.contains(&"Brīvpusdienas"), "{identified}");
    assert!(
        !identified.to_string().contains("riga-pupil"),
        "no group reaches the till: {identified}"
    );
    let (code, quoted) = site
        .agent
        .post(
            "/v1/quote",
            &json!({"credential": card(0), "cart": [lunch()]}),
        )
        .await;
    assert_eq!(code, 200, "{quoted}");
    assert_eq!(quoted["discount_total"], "2.50", "{quoted}");
    let (code, outcome, first) = site.agent.commit("sale-1", card(0), json!([lunch()])).await;
    assert_eq!(code, 200, "{first}");
    assert_eq!(
        first["lines"], quoted["lines"],
        "the commit gives what was quoted"
    );
    assert_eq!(outcome, "new");
    assert_eq!(first["discount_total"], "2.50", "a free lunch: {first}");
    assert_eq!(first["due"], "0.00");
    let (code, _, second) = site
        .agent
        .commit("sale-2", card(1), json!([lunch(), snack()]))
        .await;
    assert_eq!(code, 200, "{second}");
    assert_eq!(
        second["discount_total"], "3.00",
        "2.50 lunch and half of 1.20 capped at 0.50: {second}"
    );
    assert_eq!(second["due"], "0.70");
    let (code, outcome, again) = site.agent.commit("sale-1", card(0), json!([lunch()])).await;
    assert_eq!(code, 200);
    assert_eq!(outcome, "replayed", "a retried commit records nothing new");
    assert_eq!(again, first, "the same key gives the same answer");
    let (code, _, refused) = site.agent.commit("sale-3", card(0), json!([lunch()])).await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(
        refused["error"]["code"], "limit_reached",
        "one lunch a day holds offline: {refused}"
    );
    let (code, _, refused) = site
        .agent
        .commit(
            "sale-4",
            json!({"kind": "card", "id": "04FFFFFF"}),
            json!([lunch()]),
        )
        .await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "unknown_credential");
    let status = site.agent.status().await;
    assert_eq!(status["journal"]["records"], 2, "{status}");
    assert_eq!(
        status["outbox"]["records"], 2,
        "both sales wait for central: {status}"
    );

    site.central.start().await;
    // The outbox empties in the middle of a round; the round's outcome is
    // noted at its end, so wait for both.
    let status = poll(
        "the agent's outbox drains and a sync round succeeds after central restarts",
        WAIT,
        || site.logs(),
        async || {
            let status = site.agent.status().await;
            (status["outbox"]["records"] == 0 && status["sync"]["last_error"].is_null())
                .then_some(status)
        },
    )
    .await;
    assert_eq!(status["outbox"]["acked_through"], 2, "{status}");
    assert!(
        status["snapshot"]["version"]
            .as_u64()
            .is_some_and(|version| version > first_version),
        "the sales are a new version, applied after the upload: {status}"
    );

    let records = records_by_seq(&site.central, &terminal).await;
    assert_eq!(
        records.keys().copied().collect::<Vec<_>>(),
        [1, 2],
        "{records:?}"
    );
    for sale in [&first, &second] {
        let seq = sale["seq"].as_u64().expect("seq");
        let stored = &records[&seq];
        assert_eq!(stored["outcome"], "accepted", "{stored}");
        assert_eq!(
            stored["discount"], sale["discount_total"],
            "central verified and kept the till's exact discount"
        );
        assert_eq!(stored["hash"], sale["hash"]);
        assert_eq!(
            stored["record"], sale["record"]["body"],
            "central holds the record exactly as the till signed it"
        );
        assert_eq!(stored["merchant"], "canteen");
    }
    let terminals = site.central.staff_get("/api/v1/terminals").await;
    let row = terminals
        .as_array()
        .expect("terminals")
        .iter()
        .find(|row| row["id"] == terminal.as_str())
        .expect("the till is listed")
        .clone();
    assert_eq!(row["acked_through"], 2, "{row}");
    assert_eq!(row["status"], "active");
    assert!(
        row["last_seen"].is_string(),
        "the till's heartbeat reached central: {row}"
    );

    // Each record counts exactly once toward a limit after the round trip:
    // the till counts its own journal, and central's snapshot leaves the
    // till's own records out. A second snack is one of the two a day; a
    // third is refused.
    let (code, _, snack_two) = site.agent.commit("sale-5", card(1), json!([snack()])).await;
    assert_eq!(
        code, 200,
        "the first snack is not counted twice: {snack_two}"
    );
    assert_eq!(snack_two["discount_total"], "0.50");
    let (code, _, refused) = site.agent.commit("sale-6", card(1), json!([snack()])).await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "limit_reached", "{refused}");

    // A second till of the same canteen, created over the staff API, knows
    // from its snapshot what the first one gave: one lunch a day holds
    // across tills that sync.
    let (code, created) = site
        .central
        .staff_post(
            "/api/v1/terminals",
            &json!({"merchant": "canteen", "label": "Canteen till 2", "categories": ["meal"]}),
        )
        .await;
    assert_eq!(code, 201, "{created}");
    let other_root = site.dir.path().join("till-2");
    std::fs::create_dir_all(&other_root).expect("creating a directory");
    let mut till_two = Agent::new(&other_root);
    till_two.enroll(&site.central, created["code"].as_str().expect("code"));
    till_two.start().await;
    poll(
        "the second till applies its first snapshot",
        WAIT,
        || {
            format!(
                "{}\n--- till 2 log ---\n{}",
                site.logs(),
                till_two.log_tail()
            )
        },
        async || {
            let status = till_two.status().await;
            status["snapshot"]["version"].is_u64().then_some(status)
        },
    )
    .await;
    let (code, _, refused) = till_two.commit("t2-1", card(0), json!([lunch()])).await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(
        refused["error"]["code"], "limit_reached",
        "pupil 0 had lunch at till 1: {refused}"
    );
    let (code, _, lunch_two) = till_two.commit("t2-2", card(2), json!([lunch()])).await;
    assert_eq!(code, 200, "{lunch_two}");
    assert_eq!(lunch_two["discount_total"], "2.50");
    till_two.terminate();

    site.agent.terminate();
    let verified = site.agent.command(&["verify-journal"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    let offline = site.agent.command(&["status", "--json"]);
    assert!(offline.status.success());
    let offline: Value = serde_json::from_slice(&offline.stdout).expect("status JSON");
    assert_eq!(offline["journal"]["records"], 3, "{offline}");

    // Both daemons log to a file here, as under systemd: plain lines an
    // operator can grep, without terminal colour codes, and no card number.
    for (name, log) in [
        ("agent", site.agent.log_text()),
        ("central", site.central.log_text()),
    ] {
        assert!(log.contains("INFO"), "{name} logged nothing:\n{log}");
        assert!(!log.contains('\u{1b}'), "{name} logs escape codes:\n{log}");
        assert!(
            !log.contains(&pupil(0).1) && !log.contains(&pupil(1).1),
            "{name} logged a card number:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_sales_reach_central_when_it_returns_sqlite() {
    offline_sales_reach_central_when_it_returns(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_sales_reach_central_when_it_returns_postgres() {
    if let Some(url) = postgres_database_url().await {
        offline_sales_reach_central_when_it_returns(Some(url)).await;
    }
}

/// The canonical JSON of a packet whose records the caller chose freely
/// (even ones `Packet::build` would refuse), signed with `key`.
fn hand_made_packet(
    terminal: &str,
    records: &[SignedRecord],
    created_at: Timestamp,
    key: &SigningKey,
) -> Vec<u8> {
    let first = records.first().expect("at least one record");
    let last = records.last().expect("at least one record");
    let mut body = format!(
        "{{\"created_at\":{},\"first_seq\":{},\"head\":\"{}\",\"last_seq\":{},\"prev\":\"{}\",\"records\":[",
        serde_json::to_string(&created_at).expect("instant"),
        first.body.seq,
        last.hash().to_hex(),
        last.body.seq,
        first.body.prev.to_hex(),
    )
    .into_bytes();
    for (idx, record) in records.iter().enumerate() {
        if idx > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&record.to_json());
    }
    body.extend_from_slice(
        format!(
            "],\"terminal\":{},\"type\":\"packet\",\"v\":1}}",
            serde_json::to_string(terminal).expect("id")
        )
        .as_bytes(),
    );
    let sig = key.sign(&body);
    let mut out = b"{\"body\":".to_vec();
    out.extend_from_slice(&body);
    out.extend_from_slice(format!(",\"sig\":\"{}\"}}", sig.to_base64()).as_bytes());
    out
}

/// `[(seq, hash)]` of the staff API's fork evidence, in seq order.
async fn fork_list(central: &Central) -> Vec<(u64, String)> {
    evidence_list(central, "/api/v1/forks").await
}

/// `[(seq, hash)]` of a staff API evidence listing (forks, records with a
/// bad signature), in seq order.
async fn evidence_list(central: &Central, path: &str) -> Vec<(u64, String)> {
    let forks = central.staff_get(path).await;
    let mut list: Vec<(u64, String)> = forks
        .as_array()
        .expect("evidence is an array")
        .iter()
        .map(|fork| {
            (
                fork["seq"].as_u64().expect("seq"),
                fork["hash"].as_str().expect("hash").to_owned(),
            )
        })
        .collect();
    list.sort();
    list
}

/// `[(seq, outcome, reason)]` of a packet answer, for compact asserts.
fn outcomes(answer: &Value) -> Vec<(u64, String, Option<String>)> {
    answer["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in the answer: {answer}"))
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().expect("seq"),
                r["outcome"].as_str().expect("outcome").to_owned(),
                r["reason"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

fn answers(list: &[(u64, &str, Option<&str>)]) -> Vec<(u64, String, Option<String>)> {
    list.iter()
        .map(|(seq, outcome, reason)| (*seq, (*outcome).to_owned(), reason.map(str::to_owned)))
        .collect()
}

/// The records of `seqs` in `after` are exactly those in `before`.
fn unchanged(before: &BTreeMap<u64, Value>, after: &BTreeMap<u64, Value>, what: &str) {
    for (seq, record) in before {
        assert_eq!(
            after.get(seq),
            Some(record),
            "{what}: stored record {seq} changed or vanished"
        );
    }
}

// Goal: issue 6's hostile cases with real records: whatever a terminal's
// key signs (a repeat, a replay, a reorder, a duplicate, a changed byte, a
// fork) gets the documented outcome, and nothing central already stored
// changes or is lost; the agent then syncs its own outbox over all this
// and ends with nothing pending. Method: the till sells six lunches with
// sync off; the test reads its journal (SQLite) and key (`terminal.key`)
// and posts signed packets itself, checking the staff API after each.
async fn hostile_uploads_of_the_agents_records_lose_nothing(database_url: Option<String>) {
    let mut site = site_with_enrolled_till(database_url, 6).await;
    site.agent.terminate();
    site.agent.write_config(false);
    site.agent.start().await;
    let mut sales = Vec::new();
    for n in 0..6 {
        let (code, _, sale) = site
            .agent
            .commit(&format!("lunch-{n}"), card(n), json!([lunch()]))
            .await;
        assert_eq!(code, 200, "{sale}");
        sales.push(sale);
    }
    site.agent.terminate();

    let key = site.agent.terminal_key();
    let journal = site.agent.journal();
    assert_eq!(journal.len(), 6);
    for (record, sale) in journal.iter().zip(&sales) {
        record
            .verify_signature(&key.public_key())
            .expect("the journal's records verify with the terminal key");
        assert_eq!(Value::String(record.hash().to_hex()), sale["hash"]);
    }
    let terminal = journal[0].body.terminal.clone();
    let r = |seq: u64| journal[usize::try_from(seq - 1).expect("seq")].clone();
    let packet = |records: Vec<SignedRecord>, created_at: Timestamp| {
        Packet::build(&terminal, records, created_at, &key).expect("packet")
    };
    let now = Timestamp::now();
    let central = &site.central;

    // The same packet twice: the same answer, nothing changes.
    let first = packet(vec![r(1), r(2)], now);
    let (status, answer) = central.upload(&key, &terminal, first.to_json()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outcomes(&answer),
        answers(&[(1, "accepted", None), (2, "accepted", None)])
    );
    assert_eq!(answer["acked_through"], 2);
    let stored = records_by_seq(central, &terminal).await;
    let (_, again) = central.upload(&key, &terminal, first.to_json()).await;
    assert_eq!(again, answer, "a packet sent twice gets the same answer");
    assert_eq!(records_by_seq(central, &terminal).await, stored);

    // A replay of accepted records under a new packet id.
    let replay = packet(
        vec![r(1), r(2)],
        now.checked_add(jiff::SignedDuration::from_secs(1))
            .expect("instant"),
    );
    assert_ne!(replay.id(), first.id());
    let (_, answer) = central.upload(&key, &terminal, replay.to_json()).await;
    assert_eq!(
        outcomes(&answer),
        answers(&[(1, "duplicate", None), (2, "duplicate", None)])
    );
    assert_eq!(records_by_seq(central, &terminal).await, stored);

    // Reordered: 4 before 3 is held, then accepted when 3 fills the gap.
    let (_, answer) = central
        .upload(&key, &terminal, packet(vec![r(4)], now).to_json())
        .await;
    assert_eq!(outcomes(&answer), answers(&[(4, "held", None)]));
    assert_eq!(answer["resolved"], json!([]), "{answer}");
    assert_eq!(answer["acked_through"], 2, "3 is missing");
    let held = records_by_seq(central, &terminal).await;
    assert_eq!(held[&4]["outcome"], "held");
    unchanged(&stored, &held, "after a held record");
    let (_, answer) = central
        .upload(&key, &terminal, packet(vec![r(3)], now).to_json())
        .await;
    assert_eq!(outcomes(&answer), answers(&[(3, "accepted", None)]));
    assert_eq!(
        answer["resolved"],
        json!([{"seq": 4, "outcome": "accepted"}]),
        "the packet that fills the gap answers for the held record: {answer}"
    );
    assert_eq!(answer["acked_through"], 4, "the gap is filled");
    let stored = records_by_seq(central, &terminal).await;
    assert_eq!(stored[&3]["outcome"], "accepted");
    assert_eq!(
        stored[&4]["outcome"], "accepted",
        "the held record was checked when its predecessor came"
    );

    // A duplicate inside one packet: refused whole, nothing stored.
    let doubled = hand_made_packet(&terminal, &[r(5), r(5)], now, &key);
    let (status, refusal) = central.upload(&key, &terminal, doubled).await;
    assert_eq!(status, 400, "{refusal}");
    assert_eq!(refusal["error"]["code"], "malformed", "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .is_some_and(|message| message.contains("records")),
        "the message names the records: {refusal}"
    );
    assert_eq!(records_by_seq(central, &terminal).await, stored);
    // A packet overlapping what is stored: the known record is a duplicate.
    let (_, answer) = central
        .upload(&key, &terminal, packet(vec![r(4), r(5)], now).to_json())
        .await;
    assert_eq!(
        outcomes(&answer),
        answers(&[(4, "duplicate", None), (5, "accepted", None)])
    );
    assert_eq!(answer["acked_through"], 5);
    let mut stored_then = records_by_seq(central, &terminal).await;
    unchanged(&stored, &stored_then, "after an overlapping packet");
    let stored = std::mem::take(&mut stored_then);

    // One byte of record 6's body changed after signing.
    let genuine_six = r(6);
    let text = String::from_utf8(genuine_six.to_json()).expect("UTF-8");
    assert_eq!(text.matches("\"LUNCH\"").count(), 1, "{text}");
    let tampered = SignedRecord::from_json(text.replace("\"LUNCH\"", "\"LUNCX\"").as_bytes())
        .expect("still a well-formed record");
    assert_ne!(tampered.hash(), genuine_six.hash());
    let (_, answer) = central
        .upload(
            &key,
            &terminal,
            packet(vec![tampered.clone()], now).to_json(),
        )
        .await;
    assert_eq!(
        outcomes(&answer),
        answers(&[(6, "flagged", Some("bad_signature"))])
    );
    assert_eq!(
        answer["acked_through"], 5,
        "a record no one can attribute to the till leaves seq 6 open"
    );
    let after = records_by_seq(central, &terminal).await;
    assert_eq!(after, stored, "the tampered copy is not in the chain");
    assert_eq!(
        evidence_list(central, "/api/v1/bad-signatures").await,
        [(6, tampered.hash().to_hex())],
        "kept as evidence apart"
    );
    assert_eq!(
        fork_list(central).await,
        [],
        "no fork so far: every upload was a repeat, a reorder or new"
    );

    // A second, differently signed record 3: a fork, kept apart.
    let mut other = r(3).body;
    other.idempotency_key = "lunch-2-again".into();
    let fork = SignedRecord::sign(other, &key).expect("signing the fork");
    let (_, answer) = central
        .upload(&key, &terminal, packet(vec![fork.clone()], now).to_json())
        .await;
    assert_eq!(outcomes(&answer), answers(&[(3, "flagged", Some("fork"))]));
    let stored_after_fork = records_by_seq(central, &terminal).await;
    assert_eq!(
        stored_after_fork, after,
        "a fork never overwrites: {stored_after_fork:?}"
    );
    assert_eq!(fork_list(central).await, [(3, fork.hash().to_hex())]);

    // The till comes back with sync on and uploads its own outbox over all
    // of this: it must end with nothing pending, and its genuine record 6
    // takes seq 6 (the tampered copy never did).
    site.agent.write_config(true);
    site.agent.start().await;
    let status = poll(
        "the agent's outbox drains",
        WAIT,
        || site.logs(),
        async || {
            let status = site.agent.status().await;
            (status["outbox"]["records"] == 0).then_some(status)
        },
    )
    .await;
    assert_eq!(status["outbox"]["acked_through"], 6, "{status}");
    let last = records_by_seq(central, &terminal).await;
    unchanged(&after, &last, "after the till's own upload");
    assert_eq!(last.len(), 6, "{last:?}");
    for seq in 1..=6 {
        assert_eq!(last[&seq]["outcome"], "accepted", "record {seq}");
        assert_eq!(last[&seq]["hash"], sales[seq as usize - 1]["hash"]);
        assert_eq!(last[&seq]["discount"], "2.50");
    }
    assert_eq!(last[&6]["hash"], genuine_six.hash().to_hex());
    assert_eq!(
        fork_list(central).await,
        [(3, fork.hash().to_hex())],
        "the fork is still there, and the genuine record 6 made none"
    );
    assert_eq!(
        evidence_list(central, "/api/v1/bad-signatures").await,
        [(6, tampered.hash().to_hex())],
        "the tampered copy is still kept"
    );
    // Central took every record of the till: nothing to warn its operator about.
    let log = site.agent.log_text();
    assert!(
        !log.contains("central flagged a record"),
        "no record of the till was flagged:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_of_the_agents_records_lose_nothing_sqlite() {
    hostile_uploads_of_the_agents_records_lose_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_uploads_of_the_agents_records_lose_nothing_postgres() {
    if let Some(url) = postgres_database_url().await {
        hostile_uploads_of_the_agents_records_lose_nothing(Some(url)).await;
    }
}

// Goal: a bus validator with the real binary: taps while central is down
// light green or red at once, a double tap charges once, and the rides
// reach central accepted with the fixed discount once it is back. Method:
// validator mode with an indicator command that appends what it is told
// to a file (standing in for the GPIO script); central is killed and
// restarted as in the till test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validator_taps_offline_reach_central() {
    let lights = tempfile::NamedTempFile::new().expect("indicator file");
    let lights_path = lights.path().to_str().expect("UTF-8 path").to_owned();
    let validator_toml = format!(
        "[terminal]\nmode = \"validator\"\n\n[validator]\nfare = {{ sku = \"RIDE\", category = \"transport.bus\", unit_price = \"1.20\" }}\nindicator_command = [\"/bin/sh\", \"-c\", \"echo \\\"$1 $2\\\" >> \\\"$0\\\"\", {lights_path:?}]\n"
    );
    let mut site = Site::new(None, &validator_toml);
    let central = &site.central;
    let dir = site.dir.path();
    central.cli(&["provider", "state", "State"]);
    central.cli(&["merchant", "bus", "Bus Ltd"]);
    central.cli(&[
        "group",
        "--provider",
        "state",
        "state-pensioner",
        "Pensioners",
    ]);
    publish(
        central,
        dir,
        "state",
        &[json!({
            "id": "state-ride", "provider": "state", "groups": ["state-pensioner"],
            "categories": ["transport.bus"], "discount": {"amount": "0.70"}
        })],
    );
    let pensioners: Vec<(String, String)> = (0..2)
        .map(|n| (format!("S{n:05}"), format!("04BB{n:06X}")))
        .collect();
    import_people(central, dir, "state", "state-pensioner", &pensioners);
    let code = enrolment_code(central, "bus", "Bus 12 validator", "transport");
    site.central.start().await;
    site.agent.enroll(&site.central, &code);
    site.agent.start().await;
    let status = site.wait_for_snapshot().await;
    assert_eq!(status["mode"], "validator", "{status}");
    let terminal = status["terminal"].as_str().expect("terminal").to_owned();

    site.central.kill();
    poll(
        "the validator reports central unreachable",
        WAIT,
        || site.logs(),
        async || {
            let status = site.agent.status().await;
            status["sync"]["last_error"].is_string().then_some(())
        },
    )
    .await;
    let tap = |uid: &str| json!({"credential": {"kind": "card", "id": uid}});
    let (code, outcome, ride) = site
        .agent
        .post_with_outcome("/v1/tap", &tap(&pensioners[0].1))
        .await;
    assert_eq!(code, 200, "{ride}");
    assert_eq!(outcome, "new");
    assert_eq!(ride["discount_total"], "0.70", "{ride}");
    assert_eq!(ride["due"], "0.50");
    let (code, outcome, again) = site
        .agent
        .post_with_outcome("/v1/tap", &tap(&pensioners[0].1))
        .await;
    assert_eq!(code, 200, "{again}");
    assert_eq!(
        outcome, "double_tap",
        "a second tap at once charges nothing"
    );
    assert_eq!(again["seq"], ride["seq"]);
    let (code, _, refused) = site
        .agent
        .post_with_outcome("/v1/tap", &tap("04FFFFFF"))
        .await;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "unknown_credential");
    let (code, _, other_ride) = site
        .agent
        .post_with_outcome("/v1/tap", &tap(&pensioners[1].1))
        .await;
    assert_eq!(code, 200, "{other_ride}");
    let mut signals = poll(
        "the indicator command ran for every tap",
        WAIT,
        || site.logs(),
        async || {
            let text = std::fs::read_to_string(&lights_path).unwrap_or_default();
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            (lines.len() >= 4).then_some(lines)
        },
    )
    .await;
    signals.sort();
    assert_eq!(
        signals,
        [
            "accepted ok",
            "accepted ok",
            "accepted ok",
            "refused unknown_credential"
        ]
    );
    let status = site.agent.status().await;
    assert_eq!(status["outbox"]["records"], 2, "two rides: {status}");

    site.central.start().await;
    poll(
        "the validator's outbox drains after central restarts",
        WAIT,
        || site.logs(),
        async || {
            let status = site.agent.status().await;
            (status["outbox"]["records"] == 0 && status["sync"]["last_error"].is_null())
                .then_some(())
        },
    )
    .await;
    let records = records_by_seq(&site.central, &terminal).await;
    assert_eq!(
        records.keys().copied().collect::<Vec<_>>(),
        [1, 2],
        "{records:?}"
    );
    for (stored, tapped) in records.values().zip([&ride, &other_ride]) {
        assert_eq!(stored["outcome"], "accepted", "{stored}");
        assert_eq!(stored["discount"], "0.70");
        assert_eq!(stored["hash"], tapped["hash"]);
        assert_eq!(stored["merchant"], "bus");
    }
    site.agent.terminate();
}
