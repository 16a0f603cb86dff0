//! Sync against a central stand-in over real HTTPS: a week offline, bad
//! snapshots, and a restart mid-upload.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::clock::Clock;
use serde_json::json;
use shared::wire::chain;
use shared::wire::keys::{Hash, SigningKey};
use shared::wire::snapshot::{CredentialStatus, SnapshotItem, SnapshotKind};

use crate::central_double::{CentralDouble, CentralState, Tls};
use crate::support::*;

const FAST_SYNC: &str =
    "[sync]\ninterval_seconds = 1\nbackoff_initial_seconds = 1\nbackoff_max_seconds = 2\n";

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn free_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Goal: a till offline for a week keeps selling within its limits, says
/// its data is stale, and when central comes back uploads every record
/// exactly once, in an intact chain, and takes the new snapshot. Method:
/// central's port is closed for 7 simulated days (one lunch a day, the
/// second refused), then a central stand-in starts on that port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_for_a_week_then_sync() {
    let tls = Tls::generate();
    let addr = free_port();
    let daemon = Daemon::start(Setup {
        toml: FAST_SYNC.into(),
        central_url: format!("https://{addr}"),
        ca_pem: tls.ca_pem.clone().into_bytes(),
        ..Setup::default()
    })
    .await;

    for day in 0..7 {
        let (status, _, body) = daemon
            .post("/v1/commit", json!({"idempotency_key": format!("day-{day}"), "credential": card(PUPIL), "cart": lunch_cart()}))
            .await;
        assert_eq!(status, 200, "day {day}: {body}");
        assert_eq!(body["seq"], day + 1);
        assert_eq!(
            body["warnings"].as_array().map(Vec::len),
            Some(usize::from(day >= 2)),
            "day {day}: {body}"
        );
        let (status, _, body) = daemon
            .post("/v1/commit", json!({"idempotency_key": format!("day-{day}-again"), "credential": card(PUPIL), "cart": lunch_cart()}))
            .await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "limit_reached"),
            "day {day}"
        );
        daemon.clock.advance(jiff::SignedDuration::from_hours(24));
    }
    wait_for("a failed sync attempt to be noted", || {
        daemon
            .app
            .store
            .status()
            .expect("status")
            .last_sync_error
            .is_some()
    })
    .await;
    let status = daemon.status().await;
    assert_eq!(status["outbox"]["records"], 7);
    assert_eq!(status["snapshot"]["stale"], true);
    assert!(
        status["sync"]["last_error"]
            .as_str()
            .expect("error")
            .starts_with("central unreachable"),
        "{status}"
    );

    // Central comes back, with a delta that adds a card: the card being
    // known afterwards proves the delta was applied.
    let central = central();
    let now = daemon.clock.now();
    let delta = central
        .snapshot(
            &central.header(SnapshotKind::Delta, 2, Some(1), now),
            &[SnapshotItem::Credential {
                hash: central.card_hash(STRANGER),
                recipient: "R-4".into(),
                status: CredentialStatus::Active,
            }],
        )
        .expect("delta");
    let state = Arc::new(Mutex::new(CentralState {
        terminal_key: Some(daemon.app.enrolment.key.public_key()),
        snapshots: [(Some(1), delta)].into_iter().collect(),
        ..CentralState::default()
    }));
    let clock: Arc<dyn Clock> = daemon.clock.clone();
    let double = CentralDouble::start(addr, &tls, clock, state).await;
    wait_for("the outbox to drain and the delta to apply", || {
        let status = daemon.app.store.status().expect("status");
        status.acked_through == 7 && daemon.app.store.snapshot().version == Some(2)
    })
    .await;
    wait_for("a heartbeat reporting an empty outbox", || {
        double
            .state()
            .heartbeats
            .iter()
            .any(|beat| beat["outbox"] == 0)
    })
    .await;
    wait_for("a round noted as successful", || {
        daemon
            .app
            .store
            .status()
            .expect("status")
            .last_sync_error
            .is_none()
    })
    .await;

    let records: Vec<_> = double.state().records.values().cloned().collect();
    assert_eq!(
        records.iter().map(|r| r.body.seq).collect::<Vec<_>>(),
        (1..=7).collect::<Vec<u64>>()
    );
    let issues = chain::verify_run(
        &daemon.app.enrolment.key.public_key(),
        TERMINAL,
        Some(Hash::GENESIS),
        &records,
    );
    assert!(issues.is_empty(), "{issues:?}");
    let days: Vec<String> = records
        .iter()
        .map(|r| r.body.local_time[..10].to_owned())
        .collect();
    assert_eq!(
        days,
        [
            "2026-03-02",
            "2026-03-03",
            "2026-03-04",
            "2026-03-05",
            "2026-03-06",
            "2026-03-07",
            "2026-03-08"
        ]
    );

    let status = daemon.status().await;
    assert_eq!(
        (
            status["outbox"]["records"].as_u64(),
            status["outbox"]["packets"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(status["snapshot"]["version"], 2);
    assert_eq!(status["snapshot"]["stale"], false);
    assert_eq!(status["sync"]["last_error"], serde_json::Value::Null);
    let (code, _, _) = daemon
        .post("/v1/identify", json!({"credential": card(STRANGER)}))
        .await;
    assert_eq!(code, 200, "the delta's new card is known");
    daemon.stop().await;
    double.stop().await;
}

/// Goal: a snapshot that is unsigned, for another terminal, signed by an
/// unknown key, out of order or truncated is refused with a clear reason, and the
/// old snapshot stays in force; a good one then applies. Method: central
/// serves each in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_snapshots_are_refused_and_the_old_one_kept() {
    let tls = Tls::generate();
    let state = Arc::new(Mutex::new(CentralState::default()));
    let clock = Arc::new(agent::clock::ManualClock::new(ts(START)));
    let double = CentralDouble::start(
        "127.0.0.1:0".parse().expect("addr"),
        &tls,
        clock,
        state.clone(),
    )
    .await;
    let daemon = Daemon::start(Setup {
        toml: FAST_SYNC.into(),
        central_url: double.url.clone(),
        ca_pem: tls.ca_pem.clone().into_bytes(),
        ..Setup::default()
    })
    .await;
    state.lock().expect("state").terminal_key = Some(daemon.app.enrolment.key.public_key());

    let central = central();
    let block = [SnapshotItem::Credential {
        hash: central.card_hash(PUPIL),
        recipient: "R-1".into(),
        status: CredentialStatus::Blocked,
    }];
    let built = ts(START);
    let other_terminal = agent::testkit::TestCentral::new("T-999", MERCHANT).expect("central");
    let impostor = agent::testkit::TestCentral {
        key: SigningKey::from_seed(&[42; 32]).expect("key"),
        ..crate::support::central()
    };
    let good = central
        .snapshot(
            &central.header(SnapshotKind::Delta, 2, Some(1), built),
            &block,
        )
        .expect("good");
    let truncated = {
        let cut = good[..good.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .expect("line end")
            + 1;
        good[..cut].to_vec()
    };
    let unsigned = {
        let text = String::from_utf8(good.clone()).expect("utf8");
        let start = text.find(",\"sig\":\"").expect("sig member");
        let end = start + text[start + 8..].find('"').expect("end of sig") + 9;
        format!("{}{}", &text[..start], &text[end..]).into_bytes()
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (unsigned, "missing signature"),
        (
            other_terminal
                .snapshot(
                    &other_terminal.header(SnapshotKind::Delta, 2, Some(1), built),
                    &block,
                )
                .expect("snapshot"),
            "built for terminal \"T-999\", this is \"T-000123\"",
        ),
        (
            impostor
                .snapshot(
                    &impostor.header(SnapshotKind::Delta, 2, Some(1), built),
                    &block,
                )
                .expect("snapshot"),
            "signed by unknown key",
        ),
        (
            central
                .snapshot(
                    &central.header(SnapshotKind::Delta, 9, Some(8), built),
                    &block,
                )
                .expect("snapshot"),
            "a delta from version 8 to 9 cannot apply to the terminal's version 1",
        ),
        (truncated, "without its signed trailer"),
    ];
    for (bytes, reason) in cases {
        state
            .lock()
            .expect("state")
            .snapshots
            .insert(Some(1), bytes);
        let refused_before = daemon
            .app
            .metrics
            .snapshots_refused
            .load(std::sync::atomic::Ordering::Relaxed);
        wait_for(reason, || {
            daemon
                .app
                .metrics
                .snapshots_refused
                .load(std::sync::atomic::Ordering::Relaxed)
                > refused_before
                && daemon
                    .app
                    .store
                    .status()
                    .expect("status")
                    .last_sync_error
                    .is_some_and(|error| error.contains(reason))
        })
        .await;
        assert_eq!(daemon.app.store.snapshot().version, Some(1), "{reason}");
        let (code, _, _) = daemon
            .post("/v1/identify", json!({"credential": card(PUPIL)}))
            .await;
        assert_eq!(code, 200, "{reason}: the card is still active");
    }

    state.lock().expect("state").snapshots.insert(Some(1), good);
    wait_for("the good delta", || {
        daemon.app.store.snapshot().version == Some(2)
    })
    .await;
    let (code, _, body) = daemon
        .post("/v1/identify", json!({"credential": card(PUPIL)}))
        .await;
    assert_eq!((code, error_code(&body)), (422, "blocked_credential"));
    daemon.stop().await;
    double.stop().await;
}

/// Goal: an agent stopped while central refuses uploads resumes after a
/// restart and central ends up with every record once. Method: central
/// answers 503; commit 3 sales; restart the agent; central recovers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_uploads_where_they_stopped() {
    let tls = Tls::generate();
    let state = Arc::new(Mutex::new(CentralState {
        failing: Some(503),
        ..CentralState::default()
    }));
    let clock = Arc::new(agent::clock::ManualClock::new(ts(START)));
    let double = CentralDouble::start(
        "127.0.0.1:0".parse().expect("addr"),
        &tls,
        clock,
        state.clone(),
    )
    .await;
    let setup = || Setup {
        toml: FAST_SYNC.into(),
        central_url: double.url.clone(),
        ca_pem: tls.ca_pem.clone().into_bytes(),
        ..Setup::default()
    };
    let daemon = Daemon::start(setup()).await;
    state.lock().expect("state").terminal_key = Some(daemon.app.enrolment.key.public_key());
    let snack = json!([{"sku": "S", "category": "meal.snack", "unit_price": "1.00", "qty": 1}]);
    for idx in 0..3 {
        let (status, _, body) = daemon
            .post("/v1/commit", json!({"idempotency_key": format!("s-{idx}"), "credential": card(PUPIL), "cart": snack}))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    wait_for("a packet built and refused", || {
        let status = daemon.app.store.status().expect("status");
        status.outbox_packets == 1
            && status
                .last_sync_error
                .as_deref()
                .is_some_and(|e| e.contains("503"))
    })
    .await;
    let dir = daemon.stop().await;

    state.lock().expect("state").failing = None;
    let daemon = Daemon::start_in(dir, setup()).await;
    wait_for("the outbox to drain after the restart", || {
        daemon.app.store.status().expect("status").acked_through == 3
    })
    .await;
    let (records, packets_received) = {
        let central_state = double.state();
        let records: Vec<u64> = central_state.records.keys().copied().collect();
        (records, central_state.packets_received)
    };
    assert_eq!(records, [1, 2, 3]);
    assert_eq!(
        packets_received, 1,
        "the stored packet was sent once it could be"
    );
    daemon.stop().await;
    double.stop().await;
}
