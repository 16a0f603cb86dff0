//! End to end over real HTTPS on loopback: a terminal built from
//! `shared::wire` enrols with a one-time code, downloads and verifies its
//! snapshot, uploads signed packets, and central answers per record. Each
//! test runs on SQLite and on PostgreSQL.

use reqwest::Method;
use shared::wire::keys::PublicKey;
use shared::wire::record::RecordBody;
use shared::wire::snapshot::{SnapshotItem, SnapshotKind, SnapshotReader};

use crate::db::TestDb;
use crate::store_test;
use crate::world::*;

/// Reads a whole snapshot answer, verifying it with `keys`.
fn read_snapshot(
    bytes: &[u8],
    keys: &[PublicKey],
) -> (shared::wire::snapshot::SnapshotHeader, Vec<SnapshotItem>) {
    let mut reader = SnapshotReader::open(bytes, keys).expect("snapshot header");
    let mut items = Vec::new();
    while let Some(item) = reader.next_item().expect("snapshot item") {
        items.push(item);
    }
    let header = reader.finish(keys).expect("snapshot trailer verifies");
    (header, items)
}

async fn get_snapshot(
    server: &Server,
    terminal: &TestTerminal,
    have: Option<u64>,
) -> (u16, Vec<u8>) {
    let path = match have {
        Some(have) => format!("/api/v1/snapshot?have={have}"),
        None => "/api/v1/snapshot".to_owned(),
    };
    let response = server
        .signed(Method::GET, &path, Vec::new(), terminal)
        .send()
        .await
        .expect("snapshot request");
    let status = response.status().as_u16();
    (
        status,
        response.bytes().await.expect("snapshot body").to_vec(),
    )
}

// Goal: the whole happy path a new till goes through. Method: a merchant
// creates a terminal over the staff API, the till enrols with the code,
// verifies a full snapshot with the key from the enrolment answer, sells two
// lunches and uploads them; the same bytes again get the same answer.
async fn enrol_sync_sell_upload(db: TestDb) {
    let world = World::new(db, 3, 2).await;
    let server = Server::start(world.state.clone()).await;
    let created: serde_json::Value = server
        .staff(Method::POST, "/api/v1/terminals", &world.canteen_token)
        .json(&serde_json::json!({"label": "Till 1", "categories": ["meal"]}))
        .send()
        .await
        .expect("create terminal")
        .json()
        .await
        .expect("JSON");
    let code = created["code"].as_str().expect("code").to_owned();
    let (key, _) =
        shared::wire::keys::SigningKey::generate(&ring::rand::SystemRandom::new()).expect("key");
    let enrol = |code: String| {
        server
            .http
            .post(format!("{}/api/v1/enrol", server.base))
            .json(&serde_json::json!({"code": code, "public_key": key.public_key().to_base64(), "label": ""}))
            .send()
    };
    // The neutral point as a key would let anyone sign as the terminal:
    // refused, and the code stays unused.
    let mut neutral = [0u8; 32];
    neutral[0] = 1;
    let refused = server
        .http
        .post(format!("{}/api/v1/enrol", server.base))
        .json(&serde_json::json!({"code": code, "public_key": PublicKey(neutral).to_base64()}))
        .send()
        .await
        .expect("enrol with a small-order key");
    assert_eq!(refused.status().as_u16(), 400);
    let refused: serde_json::Value = refused.json().await.expect("JSON");
    assert!(
        refused
            .to_string()
            .contains("public_key: not a usable Ed25519 key"),
        "{refused}"
    );
    let answer = enrol(code.clone()).await.expect("enrol");
    assert_eq!(answer.status().as_u16(), 200);
    let answer: serde_json::Value = answer.json().await.expect("JSON");
    assert_eq!(answer["merchant"], "canteen");
    assert_eq!(answer["categories"], serde_json::json!(["meal"]));
    let central_keys: Vec<PublicKey> = answer["central_keys"]
        .as_array()
        .expect("central_keys")
        .iter()
        .map(|k| {
            PublicKey::from_base64(k["public_key"].as_str().expect("key")).expect("base64url key")
        })
        .collect();
    assert_eq!(
        enrol(code).await.expect("enrol again").status().as_u16(),
        409,
        "a code is single use"
    );
    assert_eq!(
        enrol("ENR-NOPE-NOPE-NOPE".into())
            .await
            .expect("enrol")
            .status()
            .as_u16(),
        404
    );

    let id = answer["terminal"].as_str().expect("terminal id");
    let terminals: Vec<serde_json::Value> = server
        .staff(Method::GET, "/api/v1/terminals", &world.canteen_token)
        .send()
        .await
        .expect("terminals")
        .json()
        .await
        .expect("JSON");
    assert_eq!(terminals.len(), 1);
    assert_eq!(terminals[0]["status"], "active");
    assert_eq!(
        terminals[0]["label"], "Till 1",
        "an empty enrolment label keeps the merchant's"
    );
    let terminal_row = world
        .store()
        .terminal(id)
        .await
        .expect("store")
        .expect("terminal");
    let mut till = TestTerminal::new(terminal_row, key, &world).await;

    let (status, bytes) = get_snapshot(&server, &till, None).await;
    assert_eq!(status, 200);
    let (header, items) = read_snapshot(&bytes, &central_keys);
    assert_eq!(header.kind, SnapshotKind::Full);
    assert_eq!(header.terminal, till.id());
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        !text.contains("groups"),
        "benefits reach terminals without groups"
    );
    assert!(
        !text.contains("riga-pupil\""),
        "no group id reaches a terminal"
    );
    assert!(
        !text.contains(&pupil(0, &world).card),
        "no raw card number in a snapshot"
    );
    let benefits: Vec<&str> = items
        .iter()
        .filter_map(|item| match item {
            SnapshotItem::Benefit { benefit } => Some(benefit.id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        benefits,
        ["riga-lunch"],
        "only benefits of the till's categories"
    );
    let recipients: Vec<&str> = items
        .iter()
        .filter_map(|item| match item {
            SnapshotItem::Recipient {
                recipient,
                entitlements,
                ..
            } => {
                assert_eq!(entitlements.len(), 1);
                assert_eq!(
                    entitlements[0].benefit, "riga-lunch",
                    "membership resolved to the benefit"
                );
                Some(recipient.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        recipients,
        ["P00000", "P00001", "P00002"],
        "pensioners are out of a canteen's scope"
    );
    let credentials = items
        .iter()
        .filter(|item| matches!(item, SnapshotItem::Credential { .. }))
        .count();
    assert_eq!(credentials, 3);
    let (status, _) = get_snapshot(&server, &till, Some(header.version)).await;
    assert_eq!(status, 204, "nothing newer than the version the till has");

    let first = till.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let second = till.sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), now());
    assert_eq!(
        first.body.quote.discount_total.to_string(),
        "2.50",
        "free lunch"
    );
    let packet = till.packet(vec![first, second]).to_json();
    let (status, answer) = server.upload(&till, packet.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outcomes(&answer),
        [
            (1, "accepted".to_owned(), None),
            (2, "accepted".to_owned(), None)
        ]
    );
    assert_eq!(answer["acked_through"], 2);
    let (status, again) = server.upload(&till, packet).await;
    assert_eq!(status, 200);
    assert_eq!(again, answer, "the same packet twice gives the same answer");

    let records = |token: String| {
        let request = server.staff(Method::GET, "/api/v1/records", &token);
        async move {
            request
                .send()
                .await
                .expect("records")
                .json::<Vec<serde_json::Value>>()
                .await
                .expect("JSON")
        }
    };
    assert_eq!(
        records(world.riga_token.clone()).await.len(),
        2,
        "the funding provider sees them"
    );
    assert_eq!(
        records(world.canteen_token.clone()).await.len(),
        2,
        "the merchant sees them"
    );
    assert!(
        records(world.state_token.clone()).await.is_empty(),
        "another provider sees nothing"
    );
    assert!(
        records(world.bus_token.clone()).await.is_empty(),
        "another merchant sees nothing"
    );

    let metrics = server
        .http
        .get(format!("{}/metrics", server.base))
        .send()
        .await
        .expect("metrics");
    let metrics = metrics.text().await.expect("metrics text");
    assert!(
        metrics.contains("central_records_total{outcome=\"accepted\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}
store_test!(enrol_sync_sell_upload);

// Goal: records arriving out of order, twice, or repacked lose nothing and
// change nothing. Method: upload 4..6 before 1..3 (4 is held until 3
// arrives), then a repacked 2..3 (duplicates), then 1..3 again (same answer).
async fn reordered_duplicated_replayed(db: TestDb) {
    let world = World::new(db, 6, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let records: Vec<_> = (0..6)
        .map(|n| till.sale(&pupil(n, &world), &["riga-lunch"], lunch("2.50"), now()))
        .collect();

    let later = till.packet(records[3..6].to_vec());
    let (status, answer) = server.upload(&till, later.to_json()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outcomes(&answer),
        [
            (4, "held".to_owned(), None),
            (5, "accepted".to_owned(), None),
            (6, "accepted".to_owned(), None)
        ]
    );
    assert_eq!(
        answer["acked_through"], 0,
        "nothing is contiguous from seq 1 yet"
    );

    let earlier = till.packet(records[0..3].to_vec()).to_json();
    let (_, first_answer) = server.upload(&till, earlier.clone()).await;
    assert_eq!(
        outcomes(&first_answer)
            .iter()
            .map(|o| o.1.as_str())
            .collect::<Vec<_>>(),
        ["accepted", "accepted", "accepted"]
    );
    assert_eq!(
        first_answer["acked_through"], 6,
        "the gap filled: everything through 6 is stored"
    );
    let stored = world
        .store()
        .records(&central::store::RecordFilter {
            terminal: Some(till.id().to_owned()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("records");
    assert_eq!(stored.len(), 6);
    assert!(
        stored.iter().all(|r| r.outcome == "accepted"),
        "the held record was verified once its predecessor came"
    );

    let repacked =
        shared::wire::packet::Packet::build(till.id(), records[1..3].to_vec(), day(1), &till.key)
            .expect("packet");
    let (_, answer) = server.upload(&till, repacked.to_json()).await;
    assert_eq!(
        outcomes(&answer),
        [
            (2, "duplicate".to_owned(), None),
            (3, "duplicate".to_owned(), None)
        ]
    );
    let (_, replay) = server.upload(&till, earlier).await;
    assert_eq!(
        replay["records"], first_answer["records"],
        "a replayed packet gets the same outcomes"
    );
    let after = world
        .store()
        .records(&central::store::RecordFilter {
            terminal: Some(till.id().to_owned()),
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("records");
    assert_eq!(after, stored, "duplicates and replays changed nothing");
    server.stop().await;
}
store_test!(reordered_duplicated_replayed);

// Goal: every kind of bad record is kept as evidence with the right
// reason (a record whose signature fails apart from the chain), and a
// tampered packet is refused whole. Method: one till builds a
// clean chain where each record carries one defect.
async fn tampered_records_are_flagged(db: TestDb) {
    let world = World::new(db, 4, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let ok = till.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());

    // A terminal claiming more discount than the rules give (signed honestly).
    let mut greedy = till
        .sale(&pupil(1, &world), &["riga-lunch"], lunch("2.50"), now())
        .body;
    greedy.cart[0].unit_price = "4.00".parse().expect("price");
    let greedy = till.sign(greedy);

    // A card central never issued.
    let mut stranger = pupil(2, &world);
    stranger.hash = shared::wire::credential::credential_hash(
        b"another key",
        shared::wire::record::CredentialKind::Card,
        "04FFFF",
    );
    let unknown_card = till.sale(&stranger, &["riga-lunch"], lunch("2.50"), now());

    // A benefit version central never published.
    let mut unknown_benefit: RecordBody = till
        .sale(&pupil(3, &world), &["riga-lunch"], lunch("2.50"), now())
        .body;
    unknown_benefit.inputs.benefits[0].hash = shared::wire::keys::Hash::of(b"not a benefit");
    let unknown_benefit = till.sign(unknown_benefit);

    // Local time that does not name the same instant.
    let mut bad_time = till.sale(&pupil(3, &world), &[], lunch("2.50"), now()).body;
    bad_time.local_time = "2026-03-02T13:05:00+02:00".into();
    let bad_time = till.sign(bad_time);

    // Bytes changed after signing: the record signature no longer verifies.
    let mut forged = till.sale(&pupil(3, &world), &[], lunch("2.50"), now());
    let mut forged_json: serde_json::Value =
        serde_json::from_slice(&forged.to_json()).expect("record JSON");
    forged_json["body"]["cart"][0]["sku"] = "FORGED".into();
    forged = serde_json::from_value(forged_json).expect("still a well-formed record");

    let records = vec![ok, greedy, unknown_card, unknown_benefit, bad_time, forged];
    let packet = till.packet(records.clone());
    let (status, answer) = server.upload(&till, packet.to_json()).await;
    assert_eq!(status, 200, "{answer}");
    let got: Vec<(u64, String, Option<String>)> = outcomes(&answer);
    let expected = [
        (1, "accepted", None),
        (2, "flagged", Some("discount_mismatch")),
        (3, "flagged", Some("unknown_credential")),
        (4, "flagged", Some("unknown_benefit")),
        (5, "flagged", Some("bad_local_time")),
        (6, "flagged", Some("bad_signature")),
    ];
    let expected: Vec<(u64, String, Option<String>)> = expected
        .iter()
        .map(|(s, o, r)| (*s, (*o).to_owned(), r.map(str::to_owned)))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(
        answer["acked_through"], 5,
        "flagged records are stored, so the till may drop them; but a record \
         whose signature fails is not the till's and leaves seq 6 open"
    );
    assert!(
        world
            .store()
            .record_body(till.id(), 6)
            .await
            .expect("store")
            .is_none(),
        "the forged record is kept apart, not in the chain"
    );
    let evidence = world
        .store()
        .bad_signatures(Some(till.id()))
        .await
        .expect("store");
    assert_eq!(evidence.len(), 1, "{evidence:?}");
    assert_eq!(evidence[0].seq, 6);
    assert_eq!(evidence[0].hash, records[5].hash().to_hex());

    // A packet whose bytes were changed after the terminal signed it: a
    // changed record breaks the header's hash of the last record; a changed
    // header breaks the packet signature. Either way nothing is stored.
    let next = till.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), day(1));
    let text = String::from_utf8(till.packet(vec![next]).to_json()).expect("UTF-8");
    let (status, refusal) = server
        .upload(&till, text.replace("\"LUNCH\"", "\"DINNER\"").into_bytes())
        .await;
    assert_eq!(status, 400, "{refusal}");
    assert!(
        refusal["error"]["message"]
            .as_str()
            .expect("message")
            .contains("body.head"),
        "{refusal}"
    );
    let (status, refusal) = server
        .upload(
            &till,
            text.replace(
                &format!("\"created_at\":\"{NOW}\""),
                "\"created_at\":\"2026-03-02T10:06:00Z\"",
            )
            .into_bytes(),
        )
        .await;
    assert_eq!(status, 400, "{refusal}");
    assert_eq!(refusal["error"]["code"], "bad_signature");
    assert!(
        world
            .store()
            .record_body(till.id(), 7)
            .await
            .expect("store")
            .is_none(),
        "nothing of a refused packet is stored"
    );

    // A second, different record 1: a fork, kept apart, the first untouched.
    let saved = (till.seq, till.prev);
    till.seq = 0;
    till.prev = shared::wire::keys::Hash::GENESIS;
    let fork = till.sale(&pupil(1, &world), &["riga-lunch"], lunch("3.00"), now());
    (till.seq, till.prev) = saved;
    let (_, answer) = server
        .upload(&till, till.packet(vec![fork]).to_json())
        .await;
    assert_eq!(
        outcomes(&answer),
        [(1, "flagged".to_owned(), Some("fork".to_owned()))]
    );
    let forks: Vec<serde_json::Value> = server
        .staff(Method::GET, "/api/v1/forks", &world.admin_token)
        .send()
        .await
        .expect("forks")
        .json()
        .await
        .expect("JSON");
    assert_eq!(forks.len(), 1);
    assert_eq!(forks[0]["seq"], 1);
    let first = world
        .store()
        .record_body(till.id(), 1)
        .await
        .expect("store")
        .expect("record 1");
    assert!(
        first.contains("\"2.50\""),
        "the stored record 1 was not overwritten"
    );
    server.stop().await;
}
store_test!(tampered_records_are_flagged);
