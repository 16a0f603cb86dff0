//! The real `agent` binary: enrolment, a run that syncs, restarts that
//! keep the chain, and `kill -9` in the middle of commits.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent::clock::SystemClock;
use serde_json::{json, Value};
use shared::wire::snapshot::SnapshotKind;

use crate::central_double::{CentralDouble, CentralState, Tls, ENROL_CODE};
use crate::support::*;

const AGENT: &str = env!("CARGO_BIN_EXE_agent");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

struct Site {
    _root: tempfile::TempDir,
    config: PathBuf,
    data_dir: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Site {
    fn new(extra_toml: &str) -> Site {
        let root = tempfile::tempdir().expect("tempdir");
        let data_dir = root.path().join("data");
        let port = free_port();
        let config = root.path().join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\n[api]\nlisten = \"127.0.0.1:{port}\"\n{extra_toml}",
                data_dir.display().to_string()
            ),
        )
        .expect("config");
        let log = root.path().join("agent.log");
        Site {
            config,
            data_dir,
            port,
            log,
            _root: root,
        }
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("AGENT_LOG", "info")
            .output()
            .expect("run agent")
    }

    fn spawn(&self) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        Command::new(AGENT)
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("AGENT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn agent")
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn wait_healthy(&self, client: &reqwest::Client) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(response) = client.get(format!("{}/health", self.base())).send().await {
                if response.status() == 200 {
                    return;
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "agent never became healthy:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("wait")
}

async fn commit(client: &reqwest::Client, base: &str, key: &str, cart: Value) -> (u16, Value) {
    let response = client
        .post(format!("{base}/v1/commit"))
        .json(&json!({"idempotency_key": key, "credential": card(PUPIL), "cart": cart}))
        .send()
        .await
        .expect("commit");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Goal: the whole life of a till with the real binary: enrol with a
/// one-time code, run, receive the first snapshot, sell, upload, stop,
/// restart with the chain intact, and check it from the command line.
/// Method: the central stand-in over HTTPS; the binary as a child process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrol_run_sell_upload_and_restart_with_the_real_binary() {
    let tls = Tls::generate();
    let central = central();
    let first_snapshot = central
        .snapshot(
            &central.header(SnapshotKind::Full, 1, None, jiff::Timestamp::now()),
            &fixture_items(&central),
        )
        .expect("snapshot");
    let state = Arc::new(Mutex::new(CentralState {
        snapshots: [(None, first_snapshot)].into_iter().collect(),
        ..CentralState::default()
    }));
    let double = CentralDouble::start(
        "127.0.0.1:0".parse().expect("addr"),
        &tls,
        Arc::new(SystemClock),
        state,
    )
    .await;
    let site = Site::new(
        "[sync]\ninterval_seconds = 1\nbackoff_initial_seconds = 1\nbackoff_max_seconds = 2\n",
    );
    let ca = site.data_dir.with_file_name("ca.pem");
    std::fs::write(&ca, &tls.ca_pem).expect("ca");

    let wrong = site.command(&[
        "enroll",
        "--central",
        &double.url,
        "--ca",
        ca.to_str().expect("path"),
        "--code",
        "ENR-WRONG",
    ]);
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("enrolment refused by central (404): unknown_code"),
        "{stderr}"
    );

    let enrolled = site.command(&[
        "enroll",
        "--central",
        &double.url,
        "--ca",
        ca.to_str().expect("path"),
        "--code",
        ENROL_CODE,
        "--label",
        "Till 1",
    ]);
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    assert!(String::from_utf8_lossy(&enrolled.stdout)
        .starts_with("enrolled as terminal T-000123 of merchant skolas-edinasana"));
    assert_eq!(mode_of(&site.data_dir.join("terminal.key")), 0o600);
    assert_eq!(mode_of(&site.data_dir.join("enrolment.json")), 0o600);
    let again = site.command(&[
        "enroll",
        "--central",
        &double.url,
        "--ca",
        ca.to_str().expect("path"),
        "--code",
        ENROL_CODE,
    ]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already enrolled as terminal T-000123")
    );

    let client = reqwest::Client::new();
    let mut child = site.spawn();
    site.wait_healthy(&client).await;
    let (status, first) = commit(&client, &site.base(), "till1-1", lunch_cart()).await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = commit(&client, &site.base(), "till1-2", coffee_cart()).await;
    assert_eq!(status, 200, "{second}");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while double.state().records.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "records never reached central:\n{}",
            site.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        terminate(&mut child).success(),
        "clean exit on SIGTERM:\n{}",
        site.log_text()
    );
    assert!(site.log_text().contains("agent stopped"));

    let status = site.command(&["status", "--json"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert_eq!(status["journal"]["records"], 2);
    assert_eq!(status["outbox"]["records"], 0);
    assert_eq!(status["snapshot"]["version"], 1);
    let text = site.command(&["status"]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("journal   2 records, head "),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    let mut child = site.spawn();
    site.wait_healthy(&client).await;
    let (status, third) = commit(&client, &site.base(), "till1-3", coffee_cart()).await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["seq"], 3);
    assert_eq!(
        third["record"]["body"]["prev"], second["hash"],
        "the chain continues across the restart"
    );
    assert!(terminate(&mut child).success());

    let verified = site.command(&["verify-journal"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );
    assert!(
        String::from_utf8_lossy(&verified.stdout).starts_with("journal OK: 3 records, head seq 3")
    );
    // Tampering with a committed record is caught, with exit status 1.
    {
        let conn = rusqlite::Connection::open(site.data_dir.join("agent.sqlite")).expect("db");
        let record: Vec<u8> = conn
            .query_row("SELECT record FROM journal WHERE seq = 2", [], |row| {
                row.get(0)
            })
            .expect("record 2");
        let altered =
            String::from_utf8(record)
                .expect("utf8")
                .replacen("\"due\":\"", "\"due\":\"1", 1);
        conn.execute(
            "UPDATE journal SET record = CAST(?1 AS BLOB) WHERE seq = 2",
            [altered],
        )
        .expect("tamper");
    }
    let tampered = site.command(&["verify-journal"]);
    assert_eq!(tampered.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&tampered.stdout);
    assert!(stdout.contains("record seq 2: bad signature"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&tampered.stderr).contains("journal has"),
        "{}",
        String::from_utf8_lossy(&tampered.stderr)
    );
    // Nothing the agent logged names the raw card number.
    let log = site.log_text();
    assert!(
        !log.contains("04:A2:2B:1C") && !log.contains("04A22B1C"),
        "{log}"
    );
    double.stop().await;
}

/// Goal: `kill -9` at any moment loses no commit that was answered OK and
/// leaves a chain that verifies. Method: three rounds of a commit loop
/// killed at a random moment; after each restart every acknowledged key
/// replays its record (same seq and hash), then `verify-journal`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_commits_loses_nothing_acknowledged() {
    let site = Site::new("[sync]\nenabled = false\n");
    let central = central();
    central
        .enrol_into(
            &site.data_dir,
            "https://127.0.0.1:9",
            b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .expect("identity");
    {
        let store = agent::store::Store::open(&site.data_dir.join("agent.sqlite")).expect("store");
        store
            .apply_snapshot(
                fixture_snapshot(&central, 1).as_slice(),
                &apply_context(&central, ts(START)),
            )
            .expect("snapshot");
    }
    let client = reqwest::Client::new();
    let mut acknowledged: Vec<(String, u64, String)> = Vec::new();
    let mut random = ring_random();
    for round in 0..3 {
        let mut child = site.spawn();
        site.wait_healthy(&client).await;
        let kill_after = Duration::from_millis(150 + random() % 400);
        let started = std::time::Instant::now();
        let mut idx = 0;
        let mut in_flight = Vec::new();
        while started.elapsed() < kill_after {
            let key = format!("r{round}-{idx}");
            idx += 1;
            let (status, body) = commit(&client, &site.base(), &key, coffee_cart()).await;
            assert_eq!(status, 200, "{body}");
            in_flight.push((
                key,
                body["seq"].as_u64().expect("seq"),
                body["hash"].as_str().expect("hash").to_owned(),
            ));
        }
        // Fire one more commit and kill the process while it may be in flight.
        let base = site.base();
        let racing = tokio::spawn({
            let client = client.clone();
            async move {
                let _ = client
                    .post(format!("{base}/v1/commit"))
                    .json(&json!({"idempotency_key": format!("r{round}-racing"), "credential": card(PUPIL), "cart": coffee_cart()}))
                    .send()
                    .await;
            }
        });
        tokio::time::sleep(Duration::from_micros(random() % 2_000)).await;
        child.kill().expect("kill -9");
        child.wait().expect("wait");
        let _ = racing.await;
        assert!(!in_flight.is_empty(), "round {round} committed nothing");
        acknowledged.extend(in_flight);
    }

    let mut child = site.spawn();
    site.wait_healthy(&client).await;
    for (key, seq, hash) in &acknowledged {
        let (status, body) = commit(&client, &site.base(), key, coffee_cart()).await;
        assert_eq!(status, 200, "{key}: {body}");
        assert_eq!(
            (body["seq"].as_u64(), body["hash"].as_str()),
            (Some(*seq), Some(hash.as_str())),
            "{key}"
        );
    }
    assert!(terminate(&mut child).success());
    let verified = site.command(&["verify-journal"]);
    let stdout = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{stdout}");
    assert!(stdout.starts_with("journal OK: "), "{stdout}");
}

fn ring_random() -> impl FnMut() -> u64 {
    let rng = ring::rand::SystemRandom::new();
    move || {
        let mut bytes = [0u8; 8];
        ring::rand::SecureRandom::fill(&rng, &mut bytes).expect("random");
        u64::from_le_bytes(bytes)
    }
}
