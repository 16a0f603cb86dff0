//! Ingestion checks what a terminal claims rather than trusting it: the
//! snapshot version a record was quoted against, and the entitlements it
//! relied on, as central held them at or before that version (issue 6).
//! Records held for a gap are answered with their final outcome by the
//! packet that fills the gap. A record whose signature does not verify is
//! kept as evidence apart and leaves its seq open for the genuine record.
//! Each test runs on SQLite and PostgreSQL.

use central::ingest::PacketAnswer;
use central::store::plan::{Outcome, Reason, RecordAnswer};
use central::store::{ImportRow, RecordFilter, Terminal};
use shared::model::{Grant, Membership};
use shared::wire::record::SignedRecord;

use crate::db::TestDb;
use crate::store_test;
use crate::world::{lunch, now, outcomes, pensioner, pupil, Server, TestTerminal, World};

async fn ingest(world: &World, till: &TestTerminal, records: Vec<SignedRecord>) -> PacketAnswer {
    let terminal: Terminal = world
        .store()
        .terminal(till.id())
        .await
        .expect("reading the terminal")
        .expect("the terminal exists");
    world
        .state
        .ingestor
        .ingest_packet(&terminal, till.packet(records), now())
        .await
        .expect("ingesting")
}

fn answer(seq: u64, outcome: Outcome, reason: Option<Reason>) -> RecordAnswer {
    RecordAnswer {
        seq,
        outcome,
        reason,
    }
}

/// Re-signs `record` as the till's next record with its entitlements
/// replaced (the quote stays valid: only the claim changes).
fn with_entitlements(
    till: &mut TestTerminal,
    record: SignedRecord,
    entitlements: Vec<Grant>,
) -> SignedRecord {
    let mut body = record.body;
    body.inputs.entitlements = entitlements;
    till.sign(body)
}

fn lunch_until(valid_to: Option<&str>) -> Grant {
    Grant {
        benefit: "riga-lunch".into(),
        valid_from: None,
        valid_to: valid_to.map(|text| text.parse().expect("date")),
    }
}

fn flagged(world: &World, reason: &str) -> u64 {
    let needle = format!("central_records_flagged_total{{reason=\"{reason}\"}} ");
    world
        .state
        .metrics
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(needle.as_str()))
        .and_then(|count| count.trim().parse().ok())
        .expect("the reason's counter")
}

// Goal: a record quoted against a snapshot version central never had is
// flagged `unknown_snapshot`, kept, and counted. Method: a till claiming a
// version above central's current one, beside an honest till.
async fn a_snapshot_from_the_future_is_flagged(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let mut honest = world.terminal("canteen", "meal").await;
    let mut boastful = world.terminal("canteen", "meal").await;
    boastful.snapshot += 1_000;
    let fine = honest.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let claimed = boastful.sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), now());

    let answered = ingest(&world, &honest, vec![fine]).await;
    assert_eq!(answered.records, [answer(1, Outcome::Accepted, None)]);
    let answered = ingest(&world, &boastful, vec![claimed]).await;
    assert_eq!(
        answered.records,
        [answer(1, Outcome::Flagged, Some(Reason::UnknownSnapshot))]
    );
    assert_eq!(answered.acked_through, 1, "flagged, but stored as evidence");
    assert_eq!(flagged(&world, "unknown_snapshot"), 1);
}
store_test!(a_snapshot_from_the_future_is_flagged);

// Goal: entitlements are checked against what central granted (grants and
// memberships, through the groups a benefit names), as of the record's
// snapshot version: a claim central never made is flagged
// `unknown_entitlement`; a validity central changed later still holds for
// a terminal whose snapshot predates the change. Method: pupils are members
// of the lunch benefit's group; a pensioner is not; pupil 0's membership
// is then cut short by a re-import.
async fn entitlements_are_checked_as_of_the_snapshot(db: TestDb) {
    let world = World::new(db, 2, 1).await;
    let mut before = world.terminal("canteen", "meal").await;
    let member = before.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let outsider = before.sale(&pensioner(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let stretched = before.sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), now());
    let stretched = with_entitlements(
        &mut before,
        stretched,
        vec![lunch_until(Some("2027-06-30"))],
    );
    let answered = ingest(&world, &before, vec![member, outsider, stretched]).await;
    assert_eq!(
        answered.records,
        [
            answer(1, Outcome::Accepted, None),
            answer(2, Outcome::Flagged, Some(Reason::UnknownEntitlement)),
            answer(3, Outcome::Flagged, Some(Reason::UnknownEntitlement)),
        ],
        "a member is entitled; a pensioner is not; nor a validity central never gave"
    );
    assert_eq!(flagged(&world, "unknown_entitlement"), 2);

    // Central cuts pupil 0's membership short, after `before` synced.
    let cut_short = Membership {
        group: "riga-pupil".into(),
        valid_from: None,
        valid_to: Some("2026-12-31".parse().expect("date")),
    };
    world
        .store()
        .import(
            "riga",
            vec![ImportRow::Membership {
                recipient: pupil(0, &world).id,
                membership: cut_short,
            }],
            None,
        )
        .await
        .expect("re-import");
    let mut after = world.terminal("canteen", "meal").await;
    assert!(after.snapshot > before.snapshot);

    let old_claim = before.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let new_claim = before.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let new_claim = with_entitlements(
        &mut before,
        new_claim,
        vec![lunch_until(Some("2026-12-31"))],
    );
    let answered = ingest(&world, &before, vec![old_claim, new_claim]).await;
    assert_eq!(
        answered.records,
        [
            answer(4, Outcome::Accepted, None),
            answer(5, Outcome::Flagged, Some(Reason::UnknownEntitlement)),
        ],
        "at the old snapshot the open-ended membership held; the shortened one did not exist yet"
    );
    let current = after.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let current = with_entitlements(&mut after, current, vec![lunch_until(Some("2026-12-31"))]);
    let answered = ingest(&world, &after, vec![current]).await;
    assert_eq!(answered.records, [answer(1, Outcome::Accepted, None)]);
}
store_test!(entitlements_are_checked_as_of_the_snapshot);

// Goal: the answer to the packet that fills a gap lists the records held
// for it, with their final outcome, and a replay of that packet is answered
// the same. Method: over HTTPS, upload seq 3 and 2 (held), then seq 1.
async fn the_packet_that_fills_a_gap_answers_for_the_held_records(db: TestDb) {
    let world = World::new(db, 3, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let records: Vec<_> = (0..3)
        .map(|n| till.sale(&pupil(n, &world), &["riga-lunch"], lunch("2.50"), now()))
        .collect();
    let (status, later) = server
        .upload(&till, till.packet(records[1..3].to_vec()).to_json())
        .await;
    assert_eq!(status, 200, "{later}");
    assert_eq!(
        outcomes(&later),
        [
            (2, "held".to_owned(), None),
            (3, "accepted".to_owned(), None)
        ]
    );
    assert_eq!(later["resolved"], serde_json::json!([]));

    let first = till.packet(records[0..1].to_vec()).to_json();
    let (status, filling) = server.upload(&till, first.clone()).await;
    assert_eq!(status, 200, "{filling}");
    assert_eq!(outcomes(&filling), [(1, "accepted".to_owned(), None)]);
    assert_eq!(
        filling["resolved"],
        serde_json::json!([{"seq": 2, "outcome": "accepted"}]),
        "the held record's final outcome comes with the packet that filled its gap"
    );
    assert_eq!(filling["acked_through"], 3);

    let (_, replay) = server.upload(&till, first).await;
    assert_eq!(replay, filling, "a replay is answered as the first time");
    server.stop().await;
}
store_test!(the_packet_that_fills_a_gap_answers_for_the_held_records);

async fn staff_list(server: &Server, world: &World, path: &str) -> Vec<(u64, String)> {
    let list: Vec<serde_json::Value> = server
        .staff(reqwest::Method::GET, path, &world.admin_token)
        .send()
        .await
        .expect("staff listing")
        .json()
        .await
        .expect("a JSON array");
    list.iter()
        .map(|item| {
            (
                item["seq"].as_u64().expect("seq"),
                item["hash"].as_str().expect("hash").to_owned(),
            )
        })
        .collect()
}

// Goal: one record corrupted after signing flags only itself: it does not
// take its seq (so no genuine record is filed as a fork or a broken link),
// later records wait as for a gap, acked_through stops before it, and the
// clean resend is accepted and releases what waited. The tampered copy is
// kept as evidence (GET /api/v1/bad-signatures), counted once, never in
// usage. Method: over HTTPS, records 1..5 of one till where 3 is sent
// with a changed byte, twice, then all five clean.
async fn a_bad_signature_leaves_its_seq_to_the_genuine_record(db: TestDb) {
    let world = World::new(db, 5, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let genuine: Vec<SignedRecord> = (0..5)
        .map(|n| till.sale(&pupil(n, &world), &["riga-lunch"], lunch("2.50"), now()))
        .collect();
    let mut json: serde_json::Value =
        serde_json::from_slice(&genuine[2].to_json()).expect("record JSON");
    json["body"]["cart"][0]["sku"] = "LUNCX".into();
    let tampered: SignedRecord = serde_json::from_value(json).expect("still a well-formed record");
    assert_ne!(tampered.hash(), genuine[2].hash());
    let (status, answer) = server
        .upload(&till, till.packet(genuine[0..2].to_vec()).to_json())
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["acked_through"], 2);

    let bad = till
        .packet(vec![
            tampered.clone(),
            genuine[3].clone(),
            genuine[4].clone(),
        ])
        .to_json();
    let (status, first) = server.upload(&till, bad.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        outcomes(&first),
        [
            (3, "flagged".to_owned(), Some("bad_signature".to_owned())),
            (4, "held".to_owned(), None),
            (5, "accepted".to_owned(), None)
        ],
        "4 waits for 3 as for a gap; 5 links to the stored 4"
    );
    assert_eq!(first["acked_through"], 2, "seq 3 is still open");
    assert_eq!(first["resolved"], serde_json::json!([]));
    let stored = world
        .store()
        .record_body(till.id(), 3)
        .await
        .expect("store");
    assert!(stored.is_none(), "the tampered copy does not take seq 3");

    let (_, again) = server.upload(&till, bad.clone()).await;
    assert_eq!(again, first, "the same bad packet, the same answer");
    assert_eq!(flagged(&world, "bad_signature"), 1, "counted once");
    assert_eq!(
        staff_list(&server, &world, "/api/v1/bad-signatures").await,
        [(3, tampered.hash().to_hex())],
        "kept once as evidence"
    );

    let (status, clean) = server
        .upload(&till, till.packet(genuine[2..5].to_vec()).to_json())
        .await;
    assert_eq!(status, 200, "{clean}");
    assert_eq!(
        outcomes(&clean),
        [
            (3, "accepted".to_owned(), None),
            (4, "duplicate".to_owned(), None),
            (5, "duplicate".to_owned(), None)
        ]
    );
    assert_eq!(
        clean["resolved"],
        serde_json::json!([{"seq": 4, "outcome": "accepted"}]),
        "the genuine 3 releases the held 4"
    );
    assert_eq!(clean["acked_through"], 5);

    // The bad packet once more, after the genuine record took seq 3: still
    // only evidence, never a fork (and, as for any replay, the records it
    // brought show their final outcome).
    let (_, late) = server.upload(&till, bad).await;
    assert_eq!(
        outcomes(&late),
        [
            (3, "flagged".to_owned(), Some("bad_signature".to_owned())),
            (4, "accepted".to_owned(), None),
            (5, "accepted".to_owned(), None)
        ]
    );
    assert_eq!(late["acked_through"], 5);
    assert_eq!(staff_list(&server, &world, "/api/v1/forks").await, []);
    assert_eq!(
        staff_list(&server, &world, "/api/v1/bad-signatures").await,
        [(3, tampered.hash().to_hex())]
    );
    let records = world
        .store()
        .records(&RecordFilter {
            terminal: Some(till.id().to_owned()),
            limit: 100,
            ..RecordFilter::default()
        })
        .await
        .expect("records");
    for record in &records {
        assert_eq!(record.outcome, "accepted", "record {}", record.seq);
    }
    let hashes: Vec<String> = genuine.iter().map(|r| r.hash().to_hex()).collect();
    let mut stored: Vec<(u64, String)> = records
        .iter()
        .map(|record| (record.seq, record.hash.clone()))
        .collect();
    stored.sort();
    assert_eq!(
        stored,
        hashes
            .into_iter()
            .enumerate()
            .map(|(n, hash)| (n as u64 + 1, hash))
            .collect::<Vec<_>>(),
        "the chain holds exactly the genuine records"
    );
    server.stop().await;
}
store_test!(a_bad_signature_leaves_its_seq_to_the_genuine_record);

// Goal: in a packet larger than one signature batch, exactly the record
// whose signature is bad is flagged, whichever batch it falls in; the next
// one waits for its seq, as for a gap; the others are accepted. Method: 300
// records (three batches of up to 128), one bit of one signature flipped
// at the first record of the second batch.
async fn a_bad_signature_in_a_large_packet_is_found_exactly(db: TestDb) {
    let world = World::new(db, 10, 0).await;
    let mut till = world.terminal("canteen", "meal").await;
    let mut records: Vec<SignedRecord> = (0..300)
        .map(|n| {
            till.sale(
                &pupil(n % 10, &world),
                &["riga-lunch"],
                lunch("2.50"),
                now(),
            )
        })
        .collect();
    let genuine = records[128].clone();
    records[128].sig.0[40] ^= 1;
    let first = ingest(&world, &till, records).await;
    let expected: Vec<RecordAnswer> = (1..=300)
        .map(|seq| match seq {
            1..=128 => answer(seq, Outcome::Accepted, None),
            129 => answer(seq, Outcome::Flagged, Some(Reason::BadSignature)),
            130 => answer(seq, Outcome::Held, None),
            _ => answer(seq, Outcome::Accepted, None),
        })
        .collect();
    let differing: Vec<(&RecordAnswer, &RecordAnswer)> = first
        .records
        .iter()
        .zip(&expected)
        .filter(|(got, want)| got != want)
        .collect();
    assert_eq!(differing, [], "(answer, expected)");
    assert_eq!(first.records.len(), 300);
    assert_eq!(first.acked_through, 128);

    let fixed = ingest(&world, &till, vec![genuine]).await;
    assert_eq!(
        fixed.records,
        [answer(129, Outcome::Accepted, None)],
        "the genuine record takes seq 129"
    );
    assert_eq!(
        fixed.resolved,
        [answer(130, Outcome::Accepted, None)],
        "and releases 130, which waited for it"
    );
    assert_eq!(fixed.acked_through, 300);
}
store_test!(a_bad_signature_in_a_large_packet_is_found_exactly);
