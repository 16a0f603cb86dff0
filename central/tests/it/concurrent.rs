//! Two central processes over one PostgreSQL: the database, not the
//! process, enforces idempotency and the chain. Each instance has its own
//! connection pool and HTTPS server; the same packets go to both at once.

use std::sync::Arc;

use central::store::postgres::PostgresStore;
use central::store::{RecordFilter, UsageQuery};
use central::{AppState, Clock, Config};
use futures_util::future::join_all;

use crate::db;
use crate::world::*;

const TERMINALS: usize = 4;
const RECORDS: u32 = 120;
const PER_PACKET: usize = 10;

// Goal: concurrent ingestion of the same packets through two instances
// stores every record exactly once, resolves every gap, and counts usage
// once. Method: 4 tills × 120 records in 12 packets; every packet is sent
// to both instances at the same moment, odd tills in reverse order (so
// records are held, then resolved, under contention).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_ingest_the_same_packets_concurrently() {
    let Some(first_db) = db::postgres().await else {
        return;
    };
    let (url, schema) = first_db.postgres.clone().expect("PostgreSQL coordinates");
    let world = World::new(first_db, RECORDS, 0).await;
    let second_store = PostgresStore::connect(&url, Some(&schema))
        .await
        .expect("second instance");
    let second = AppState::with_store(
        &Config::new(world.state.config.data_dir.clone()),
        Arc::new(second_store),
        Clock::fixed(now()),
    )
    .expect("second instance state");
    let server_a = Server::start(world.state.clone()).await;
    let server_b = Server::start(second).await;

    let mut tills = Vec::new();
    for _ in 0..TERMINALS {
        tills.push(world.terminal("canteen", "meal").await);
    }
    let mut uploads = Vec::new();
    for (idx, till) in tills.iter_mut().enumerate() {
        let records: Vec<_> = (0..RECORDS)
            .map(|n| till.sale(&pupil(n, &world), &["riga-lunch"], lunch("2.50"), now()))
            .collect();
        let mut packets: Vec<Vec<u8>> = records
            .chunks(PER_PACKET)
            .map(|chunk| till.packet(chunk.to_vec()).to_json())
            .collect();
        if idx % 2 == 1 {
            packets.reverse();
        }
        uploads.push(packets);
    }
    let work = tills.iter().zip(uploads).map(|(till, packets)| {
        let (a, b) = (&server_a, &server_b);
        async move {
            for packet in packets {
                let (first, second) =
                    tokio::join!(a.upload(till, packet.clone()), b.upload(till, packet));
                assert_eq!(first.0, 200, "{}", first.1);
                assert_eq!(second.0, 200, "{}", second.1);
                for answer in [&first.1, &second.1] {
                    for (seq, outcome, reason) in outcomes(answer) {
                        assert!(
                            ["accepted", "duplicate", "held"].contains(&outcome.as_str()),
                            "seq {seq}: {outcome} {reason:?}"
                        );
                    }
                }
            }
        }
    });
    join_all(work).await;

    for till in &tills {
        let stored = world
            .store()
            .records(&RecordFilter {
                terminal: Some(till.id().to_owned()),
                limit: 1_000,
                ..Default::default()
            })
            .await
            .expect("records");
        assert_eq!(stored.len(), RECORDS as usize, "every record exactly once");
        assert!(
            stored.iter().all(|r| r.outcome == "accepted"),
            "every held record resolved"
        );
        let row = world
            .store()
            .terminal(till.id())
            .await
            .expect("store")
            .expect("terminal");
        assert_eq!(row.acked_through, u64::from(RECORDS));
    }
    // Usage counted once per record, not once per instance that saw it.
    let usage = world
        .store()
        .recipients_by_id(
            &["P00000".to_owned()],
            &UsageQuery {
                since: "2026-01-01".parse().expect("date"),
                exclude_terminal: String::new(),
            },
        )
        .await
        .expect("usage");
    assert_eq!(usage[0].usage.len(), 1);
    assert_eq!(
        usage[0].usage[0].count, TERMINALS as i64,
        "one lunch from each till"
    );
    server_a.stop().await;
    server_b.stop().await;
}
