//! Snapshots and terminal authentication over HTTPS: deltas carry blocks
//! and usage from other terminals, a terminal never gets its own usage
//! back, and unknown, revoked or wrongly signing terminals are refused.

use reqwest::Method;
use shared::wire::keys::PublicKey;
use shared::wire::snapshot::{
    CredentialStatus, SnapshotHeader, SnapshotItem, SnapshotKind, SnapshotReader,
};

use crate::db::TestDb;
use crate::store_test;
use crate::world::*;

fn central_keys(world: &World) -> Vec<PublicKey> {
    world.state.keys.public.clone()
}

async fn snapshot(
    server: &Server,
    terminal: &TestTerminal,
    have: Option<u64>,
    keys: &[PublicKey],
) -> Option<(SnapshotHeader, Vec<SnapshotItem>)> {
    let path = have.map_or("/api/v1/snapshot".to_owned(), |have| {
        format!("/api/v1/snapshot?have={have}")
    });
    let response = server
        .signed(Method::GET, &path, Vec::new(), terminal)
        .send()
        .await
        .expect("snapshot");
    if response.status().as_u16() == 204 {
        return None;
    }
    assert_eq!(response.status().as_u16(), 200);
    let bytes = response.bytes().await.expect("body");
    let mut reader = SnapshotReader::open(&bytes[..], keys).expect("header");
    let mut items = Vec::new();
    while let Some(item) = reader.next_item().expect("item") {
        items.push(item);
    }
    Some((reader.finish(keys).expect("signed trailer"), items))
}

// Goal: a lost card reaches the deny list of the next delta, and a sale
// with it counts as blocked only once the till's snapshot carried the
// block. Method: full snapshot, block over the staff API, delta from the
// full version, then two sales quoting the old and the new version.
async fn blocked_card_reaches_the_next_delta(db: TestDb) {
    let world = World::new(db, 3, 0).await;
    let server = Server::start(world.state.clone()).await;
    let keys = central_keys(&world);
    let mut till = world.terminal("canteen", "meal").await;
    let (full, _) = snapshot(&server, &till, None, &keys)
        .await
        .expect("a full snapshot");
    let lost = pupil(1, &world);
    let response = server
        .staff(Method::POST, "/api/v1/credentials/block", &world.riga_token)
        .json(&serde_json::json!({"kind": "card", "id": lost.card.to_lowercase()}))
        .send()
        .await
        .expect("block");
    assert_eq!(response.status().as_u16(), 200);
    let blocked: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(
        blocked["hash"],
        lost.hash.as_str(),
        "the UID is normalised before hashing"
    );
    let (delta, items) = snapshot(&server, &till, Some(full.version), &keys)
        .await
        .expect("a delta");
    assert_eq!(delta.kind, SnapshotKind::Delta);
    assert_eq!(delta.base, Some(full.version));
    assert_eq!(
        items,
        [SnapshotItem::Credential {
            hash: lost.hash.clone(),
            recipient: lost.id.clone(),
            status: CredentialStatus::Blocked
        }],
        "the delta carries exactly the block"
    );
    let state_block = server
        .staff(
            Method::POST,
            "/api/v1/credentials/block",
            &world.state_token,
        )
        .json(&serde_json::json!({"hash": pupil(2, &world).hash}))
        .send()
        .await
        .expect("block");
    assert_eq!(
        state_block.status().as_u16(),
        404,
        "a provider cannot block a card of someone it has nothing to do with"
    );

    let before = till.sale(&lost, &["riga-lunch"], lunch("2.50"), now());
    till.snapshot = delta.version;
    let after = till.sale(&lost, &["riga-lunch"], lunch("2.50"), day(1));
    let (_, answer) = server
        .upload(&till, till.packet(vec![before, after]).to_json())
        .await;
    assert_eq!(
        outcomes(&answer),
        [
            (1, "accepted".to_owned(), None),
            (
                2,
                "flagged".to_owned(),
                Some("blocked_credential".to_owned())
            )
        ]
    );
    server.stop().await;
}
store_test!(blocked_card_reaches_the_next_delta);

// Goal: monthly limits hold across terminals: a till's snapshot carries
// what the other tills gave, never its own records (the agent counts its
// journal itself). Method: till A sells a lunch; A's and B's deltas.
async fn usage_comes_from_other_terminals_only(db: TestDb) {
    let world = World::new(db, 2, 0).await;
    let server = Server::start(world.state.clone()).await;
    let keys = central_keys(&world);
    let mut a = world.terminal("canteen", "meal").await;
    let b = world.terminal("canteen", "meal").await;
    let (base_a, _) = snapshot(&server, &a, None, &keys).await.expect("full A");
    let (base_b, _) = snapshot(&server, &b, None, &keys).await.expect("full B");
    let sale = a.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let (status, _) = server.upload(&a, a.packet(vec![sale]).to_json()).await;
    assert_eq!(status, 200);

    let (_, items) = snapshot(&server, &b, Some(base_b.version), &keys)
        .await
        .expect("delta B");
    let usage: Vec<_> = items
        .iter()
        .filter_map(|item| match item {
            SnapshotItem::Recipient {
                recipient, usage, ..
            } if recipient == "P00000" => Some(usage.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(usage.len(), 1, "B learns the recipient's usage: {items:?}");
    assert_eq!(usage[0].len(), 1);
    assert_eq!(usage[0][0].benefit, "riga-lunch");
    assert_eq!(usage[0][0].count, 1);
    assert_eq!(usage[0][0].amount.to_string(), "2.50");
    assert_eq!(
        usage[0][0].day.to_string(),
        "2026-03-02",
        "the local day in Riga"
    );

    match snapshot(&server, &a, Some(base_a.version), &keys).await {
        None => {}
        Some((_, items)) => assert!(
            items.iter().all(
                |item| !matches!(item, SnapshotItem::Recipient { usage, .. } if !usage.is_empty())
            ),
            "A never gets its own usage back: {items:?}"
        ),
    }
    let (_, full_b) = snapshot(&server, &b, None, &keys).await.expect("full B");
    assert!(
        full_b.iter().any(|item| matches!(item, SnapshotItem::Recipient { recipient, usage, .. } if recipient == "P00000" && usage.len() == 1)),
        "a full snapshot carries the same usage"
    );
    server.stop().await;
}
store_test!(usage_comes_from_other_terminals_only);

// Goal: only an active terminal signing with its enrolled key gets in.
// Method: requests with no headers, a wrong key, a stale timestamp, another
// terminal's packet, and after revocation.
async fn terminals_must_authenticate(db: TestDb) {
    let world = World::new(db, 1, 0).await;
    let server = Server::start(world.state.clone()).await;
    let mut till = world.terminal("canteen", "meal").await;
    let other = world.terminal("canteen", "meal").await;
    let plain = server
        .http
        .get(format!("{}/api/v1/snapshot", server.base))
        .send()
        .await
        .expect("request");
    assert_eq!(plain.status().as_u16(), 401);
    let body: serde_json::Value = plain.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "unauthorized");

    let (impostor_key, _) =
        shared::wire::keys::SigningKey::generate(&ring::rand::SystemRandom::new()).expect("key");
    let headers = shared::wire::auth::sign_request(
        &impostor_key,
        till.id(),
        "GET",
        "/api/v1/snapshot",
        now(),
        b"",
    );
    let mut request = server.http.get(format!("{}/api/v1/snapshot", server.base));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    assert_eq!(
        request.send().await.expect("request").status().as_u16(),
        401,
        "a key that is not the enrolled one"
    );

    let stale = now()
        .checked_sub(jiff::SignedDuration::from_mins(10))
        .expect("instant");
    let headers = shared::wire::auth::sign_request(
        &till.key,
        till.id(),
        "GET",
        "/api/v1/snapshot",
        stale,
        b"",
    );
    let mut request = server.http.get(format!("{}/api/v1/snapshot", server.base));
    for (name, value) in headers {
        request = request.header(name, value);
    }
    assert_eq!(
        request.send().await.expect("request").status().as_u16(),
        401,
        "a replayed old request"
    );

    let sale = till.sale(&pupil(0, &world), &["riga-lunch"], lunch("2.50"), now());
    let packet = till.packet(vec![sale]).to_json();
    let (status, answer) = server.upload(&other, packet.clone()).await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], "wrong_terminal");

    let revoked = server
        .staff(
            Method::POST,
            &format!("/api/v1/terminals/{}/revoke", till.id()),
            &world.bus_token,
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(
        revoked.status().as_u16(),
        404,
        "another merchant's terminal is not even visible"
    );
    let revoked = server
        .staff(
            Method::POST,
            &format!("/api/v1/terminals/{}/revoke", till.id()),
            &world.canteen_token,
        )
        .send()
        .await
        .expect("revoke");
    assert_eq!(revoked.status().as_u16(), 204);
    let (status, answer) = server.upload(&till, packet).await;
    assert_eq!(status, 401, "{answer}");
    assert!(answer["error"]["message"]
        .as_str()
        .expect("message")
        .contains("revoked"));
    server.stop().await;
}
store_test!(terminals_must_authenticate);
