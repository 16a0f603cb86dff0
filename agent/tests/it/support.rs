//! Shared pieces of the integration tests: the fixture snapshot, an
//! in-process daemon on `127.0.0.1:0` with a manual clock, and HTTP helpers.

use std::path::Path;
use std::sync::Arc;

use agent::app::App;
use agent::clock::ManualClock;
use agent::config::Config;
use agent::indicator::{Indicator, Signal};
use agent::store::ApplyContext;
use agent::testkit::TestCentral;
use jiff::Timestamp;
use serde_json::Value;
use shared::model::{Benefit, Grant};
use shared::wire::snapshot::{CredentialStatus, SnapshotItem, SnapshotKind};

pub const TERMINAL: &str = "T-000123";
pub const MERCHANT: &str = "skolas-edinasana";

/// Monday 2 March 2026, 12:05 in Riga.
pub const START: &str = "2026-03-02T10:05:00Z";
/// When the fixture snapshot was built.
pub const BUILT: &str = "2026-03-02T09:00:00Z";

/// Cards of the fixture, by UID as a reader gives them.
pub const PUPIL: &str = "04:A2:2B:1C";
pub const BLOCKED: &str = "04B0B0B0";
pub const EXPIRED: &str = "04C0FFEE";
pub const SNACKER: &str = "04D00D00";
pub const STRANGER: &str = "04EEEEEE";

pub fn ts(text: &str) -> Timestamp {
    text.parse().expect("timestamp")
}

pub fn central() -> TestCentral {
    TestCentral::new(TERMINAL, MERCHANT).expect("test central")
}

fn benefit(json: &str) -> Benefit {
    serde_json::from_str(json).expect("benefit json")
}

fn grant(benefit: &str, valid_to: Option<&str>) -> Grant {
    Grant {
        benefit: benefit.into(),
        valid_from: None,
        valid_to: valid_to.map(|date| date.parse().expect("date")),
    }
}

/// Benefits, credentials and recipients every test starts from.
pub fn fixture_items(central: &TestCentral) -> Vec<SnapshotItem> {
    let card = |uid: &str, recipient: &str, status| SnapshotItem::Credential {
        hash: central.card_hash(uid),
        recipient: recipient.into(),
        status,
    };
    vec![
        SnapshotItem::Benefit {
            benefit: benefit(
                r#"{"id":"lunch","provider":"riga","label":{"en":"Free lunch","lv":"Bezmaksas pusdienas"},
                    "categories":["meal.lunch"],"discount":{"percent":"100"},"limits":[{"period":"day","max_count":1}]}"#,
            ),
        },
        SnapshotItem::Benefit {
            benefit: benefit(
                r#"{"id":"snack","provider":"riga","label":{"en":"Snack 50 %"},"categories":["meal.snack"],
                    "discount":{"percent":"50"},"limits":[{"period":"month","max_amount":"3.00"}]}"#,
            ),
        },
        SnapshotItem::Benefit {
            benefit: benefit(
                r#"{"id":"ride","provider":"riga-transport","label":{"en":"Free ride"},"categories":["transport.bus"],
                    "discount":{"percent":"100"},"limits":[{"period":"day","max_count":4}]}"#,
            ),
        },
        SnapshotItem::Benefit {
            benefit: benefit(
                r#"{"id":"coffee","provider":"riga","label":{"en":"Coffee 10 %"},"categories":["drink.coffee"],
                    "discount":{"percent":"10"}}"#,
            ),
        },
        card(PUPIL, "R-1", CredentialStatus::Active),
        card(BLOCKED, "R-2", CredentialStatus::Blocked),
        card(EXPIRED, "R-3", CredentialStatus::Active),
        card(SNACKER, "R-4", CredentialStatus::Active),
        SnapshotItem::Recipient {
            recipient: "R-1".into(),
            entitlements: vec![
                grant("lunch", None),
                grant("snack", None),
                grant("ride", None),
                grant("coffee", None),
            ],
            usage: Vec::new(),
        },
        SnapshotItem::Recipient {
            recipient: "R-2".into(),
            entitlements: vec![grant("lunch", None)],
            usage: Vec::new(),
        },
        SnapshotItem::Recipient {
            recipient: "R-3".into(),
            entitlements: vec![grant("lunch", Some("2026-02-28"))],
            usage: Vec::new(),
        },
        SnapshotItem::Recipient {
            recipient: "R-4".into(),
            entitlements: vec![grant("snack", None)],
            usage: Vec::new(),
        },
    ]
}

pub fn fixture_snapshot(central: &TestCentral, version: u64) -> Vec<u8> {
    let header = central.header(SnapshotKind::Full, version, None, ts(BUILT));
    central
        .snapshot(&header, &fixture_items(central))
        .expect("snapshot")
}

pub fn apply_context(central: &TestCentral, now: Timestamp) -> ApplyContext {
    ApplyContext {
        central_keys: central.public_keys(),
        terminal: central.terminal.clone(),
        merchant: central.merchant.clone(),
        credential_key_id: central.credential_key_id.clone(),
        now,
    }
}

/// An indicator that remembers what it showed.
#[derive(Default)]
pub struct RecordingIndicator {
    pub shown: std::sync::Mutex<Vec<(Signal, String)>>,
}

impl Indicator for RecordingIndicator {
    fn show(&self, signal: Signal, code: &str) {
        self.shown
            .lock()
            .expect("indicator lock")
            .push((signal, code.to_owned()));
    }
}

/// How to start a daemon.
pub struct Setup {
    /// Extra TOML appended to the configuration (after `data_dir`).
    pub toml: String,
    /// Apply the fixture snapshot before starting.
    pub snapshot: bool,
    pub central_url: String,
    pub ca_pem: Vec<u8>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            toml: "[sync]\nenabled = false\n".into(),
            snapshot: true,
            central_url: "https://127.0.0.1:9".into(),
            ca_pem: b"-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_vec(),
        }
    }
}

pub struct Daemon {
    pub base: String,
    pub app: Arc<App>,
    pub clock: Arc<ManualClock>,
    pub indicator: Arc<RecordingIndicator>,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    pub dir: tempfile::TempDir,
}

pub fn write_config(dir: &Path, toml: &str) -> Config {
    let text = format!("data_dir = {:?}\n{toml}", dir.display().to_string());
    Config::parse(&text, "test config").expect("test config")
}

impl Daemon {
    pub async fn start(setup: Setup) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        let central = central();
        central
            .enrol_into(dir.path(), &setup.central_url, &setup.ca_pem)
            .expect("identity");
        Daemon::start_in(dir, setup).await
    }

    /// Starts on an already enrolled data directory.
    pub async fn start_in(dir: tempfile::TempDir, setup: Setup) -> Daemon {
        let config = write_config(dir.path(), &setup.toml);
        let clock = Arc::new(ManualClock::new(ts(START)));
        let indicator = Arc::new(RecordingIndicator::default());
        let app = agent::open_app(
            config,
            agent::RunOptions {
                clock: clock.clone(),
                indicator: Some(indicator.clone()),
            },
        )
        .expect("open app");
        if setup.snapshot && app.store.snapshot().version.is_none() {
            let central = central();
            app.store
                .apply_snapshot(
                    fixture_snapshot(&central, 1).as_slice(),
                    &apply_context(&central, ts(START)),
                )
                .expect("fixture snapshot");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(agent::run_app(
            app.clone(),
            agent::ApiListener::Tcp(listener),
            async move {
                let _ = stopped.await;
            },
        ));
        Daemon {
            base,
            app,
            clock,
            indicator,
            client: reqwest::Client::new(),
            stop: Some(stop),
            task: Some(task),
            dir,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!(
                "{path}: answer is not JSON ({err}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, headers, value)
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .body(body);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|err| {
            panic!(
                "{path}: answer is not JSON ({err}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.text().await.expect("text"))
    }

    pub async fn status(&self) -> Value {
        let (code, text) = self.get_text("/v1/status").await;
        assert_eq!(code, 200, "{text}");
        serde_json::from_str(&text).expect("status json")
    }

    /// Stops the daemon and waits for it; returns the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("daemon task").expect("daemon result");
        }
        self.dir
    }
}

pub fn card(uid: &str) -> Value {
    serde_json::json!({"kind": "card", "id": uid})
}

pub fn lunch_cart() -> Value {
    serde_json::json!([{"sku": "L1", "category": "meal.lunch", "unit_price": "2.50", "qty": 1}])
}

/// A cart with no limit behind it: as many sales as a test needs.
pub fn coffee_cart() -> Value {
    serde_json::json!([{"sku": "C", "category": "drink.coffee", "unit_price": "1.50", "qty": 1}])
}

pub fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

pub fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or("")
}
