//! Processes for `agent_binary.rs`: the real `central` and `agent` binaries
//! as an operator runs them (`scripts/demo`), in one temporary directory.
//!
//! Every process sits behind a guard that kills it when dropped, so a
//! failing assert leaves no orphan; every wait is bounded and, when it runs
//! out, fails with both daemons' logs.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use shared::wire::auth::sign_request;
use shared::wire::keys::SigningKey;
use shared::wire::record::SignedRecord;

/// The bound of every wait: generous for a loaded 2-core machine, short
/// enough that a hang fails the test rather than the CI job.
pub const WAIT: Duration = Duration::from_secs(30);

/// The agent binary: not a target of this package, so it is found beside
/// central's. `cargo test --workspace` builds it (the agent package has
/// integration tests); `cargo test -p central` alone does not.
pub fn agent_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_central")).with_file_name("agent");
    assert!(
        path.is_file(),
        "the agent binary is not at {}: run `cargo build -p agent` first",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// A free port below the usual ephemeral range (32768 and up on Linux),
/// for central, which is restarted on the same port: while it is down,
/// no other test's `bind(…:0)` can be handed this port.
pub fn stable_port() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id();
    (0..200u32)
        .map(|attempt| 20_000 + (seed.wrapping_add(attempt.wrapping_mul(7_919)) % 12_000))
        .filter_map(|port| u16::try_from(port).ok())
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free loopback port between 20000 and 32000")
}

/// A `CENTRAL_DATABASE_URL` for a fresh schema on the test server
/// (`CENTRAL_TEST_PG_URL`), created and migrated through the store, then
/// named in the URL so that every `central` command of a test uses it.
/// `None` when there is no test server (an error under CI, see `db.rs`).
pub async fn postgres_database_url() -> Option<String> {
    let url = crate::db::postgres_url()?;
    let schema = crate::db::fresh_schema();
    central::store::postgres::PostgresStore::connect(&url, Some(&schema))
        .await
        .expect("creating the test schema");
    let separator = if url.contains('?') { '&' } else { '?' };
    Some(format!(
        "{url}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// Polls `probe` every 100 ms until it gives `Some`, for at most `limit`;
/// then fails naming `what`, with `diagnostics()` (the daemons' logs).
pub async fn poll<T>(
    what: &str,
    limit: Duration,
    diagnostics: impl Fn() -> String,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "waited {limit:?} for: {what}\n{}",
            diagnostics()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The last lines of a log file.
fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A running child process, killed (SIGKILL) and reaped when dropped.
struct Guard {
    child: Child,
}

impl Guard {
    fn spawn(command: &mut Command, log: &Path) -> Guard {
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("opening a log file");
        let stdout = stderr.try_clone().expect("log file handle");
        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|err| panic!("starting {command:?}: {err}"));
        Guard { child }
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("checking a child process")
    }

    /// SIGTERM, the way systemd stops a daemon; SIGKILL after 15 s.
    fn terminate(mut self) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Central: its data directory, optional PostgreSQL URL, and `serve` when running.
pub struct Central {
    pub data: PathBuf,
    database_url: Option<String>,
    pub port: u16,
    log: PathBuf,
    serve: Option<Guard>,
    pub admin_token: String,
    http: reqwest::Client,
}

impl Central {
    /// `central init`: keys, certificates, database, admin token.
    pub fn init(root: &Path, database_url: Option<String>) -> Central {
        let mut central = Central {
            data: root.join("central"),
            database_url,
            port: stable_port(),
            log: root.join("central.log"),
            serve: None,
            admin_token: String::new(),
            http: reqwest::Client::new(),
        };
        let init = central.cli(&["init"]);
        central.admin_token = init
            .lines()
            .find_map(|line| line.strip_prefix("admin token: "))
            .unwrap_or_else(|| panic!("no admin token in `central init` output:\n{init}"))
            .trim()
            .to_owned();
        let ca = std::fs::read(central.ca()).expect("ca.pem after init");
        central.http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("central's CA"))
            .timeout(Duration::from_secs(20))
            .build()
            .expect("HTTPS client");
        central
    }

    pub fn ca(&self) -> PathBuf {
        self.data.join("ca.pem")
    }

    /// The URL a terminal is given, with the name on central's certificate.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.port)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_central"));
        command
            .arg("--data")
            .arg(&self.data)
            .env("RUST_LOG", "info");
        match &self.database_url {
            Some(url) => command.env("CENTRAL_DATABASE_URL", url),
            None => command.env_remove("CENTRAL_DATABASE_URL"),
        };
        command
    }

    /// Runs an operator command; fails with its stderr unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.command().args(args).output().expect("running central");
        assert!(
            out.status.success(),
            "central {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `central serve` on its port, waiting until `/healthz` answers.
    pub async fn start(&mut self) {
        assert!(self.serve.is_none(), "central is already running");
        let listen = format!("127.0.0.1:{}", self.port);
        let mut serve = Guard::spawn(
            self.command().args(["serve", "--listen", &listen]),
            &self.log,
        );
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = serve.exited() {
                panic!(
                    "central serve exited with {status}:\n{}",
                    tail(&self.log, 40)
                );
            }
            let health = self
                .http
                .get(format!("{}/healthz", self.url()))
                .send()
                .await;
            if health.is_ok_and(|answer| answer.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "central serve did not answer /healthz within {WAIT:?}:\n{}",
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.serve = Some(serve);
    }

    /// The whole log of `central serve` (every start).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills `serve` with SIGKILL: a crash or a pulled cable, not a clean stop.
    pub fn kill(&mut self) {
        drop(self.serve.take().expect("central is running"));
    }

    /// GET on the staff API with the admin token; fails unless `200`.
    pub async fn staff_get(&self, path: &str) -> Value {
        let answer = self
            .http
            .get(format!("{}{path}", self.url()))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .unwrap_or_else(|err| panic!("GET {path}: {err}"));
        let status = answer.status();
        let body: Value = answer.json().await.expect("a JSON answer");
        assert!(status.is_success(), "GET {path}: {status} {body}");
        body
    }

    /// POST on the staff API with the admin token; status and JSON answer.
    pub async fn staff_post(&self, path: &str, body: &Value) -> (u16, Value) {
        let answer = self
            .http
            .post(format!("{}{path}", self.url()))
            .bearer_auth(&self.admin_token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("a JSON answer"))
    }

    /// Uploads packet bytes signed as `terminal` with `key`, now.
    pub async fn upload(&self, key: &SigningKey, terminal: &str, bytes: Vec<u8>) -> (u16, Value) {
        let path = "/api/v1/packets";
        let headers = sign_request(key, terminal, "POST", path, jiff::Timestamp::now(), &bytes);
        let mut request = self
            .http
            .post(format!("{}{path}", self.url()))
            .header("content-type", "application/json")
            .body(bytes);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let answer = request.send().await.expect("uploading a packet");
        let status = answer.status().as_u16();
        (status, answer.json().await.expect("a JSON answer"))
    }
}

/// The agent: its configuration file, data directory and local API port.
pub struct Agent {
    config: PathBuf,
    pub data: PathBuf,
    port: u16,
    log: PathBuf,
    run: Option<Guard>,
    /// More TOML after `[sync]`: `[terminal]` and `[validator]` for a validator.
    extra_toml: String,
    http: reqwest::Client,
}

impl Agent {
    /// A till (cashier mode) in `root`.
    pub fn new(root: &Path) -> Agent {
        Agent::with_toml(root, "")
    }

    /// An agent in `root` whose configuration ends with `extra_toml`.
    pub fn with_toml(root: &Path, extra_toml: &str) -> Agent {
        let agent = Agent {
            config: root.join("agent.toml"),
            data: root.join("agent"),
            port: free_port(),
            log: root.join("agent.log"),
            run: None,
            extra_toml: extra_toml.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .expect("HTTP client"),
        };
        agent.write_config(true);
        agent
    }

    /// The configuration; sync rounds every second, and a short backoff
    /// so that a returning central is seen within seconds.
    pub fn write_config(&self, sync: bool) {
        let text = format!(
            "data_dir = {:?}\n\n[api]\nlisten = \"127.0.0.1:{}\"\n\n[sync]\nenabled = {sync}\ninterval_seconds = 1\nbackoff_initial_seconds = 1\nbackoff_max_seconds = 2\n\n{}",
            self.data.display().to_string(),
            self.port,
            self.extra_toml
        );
        std::fs::write(&self.config, text).expect("writing agent.toml");
    }

    /// Runs an `agent` command (not `run`) to completion.
    pub fn command(&self, args: &[&str]) -> Output {
        Command::new(agent_binary())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("AGENT_LOG", "info")
            .output()
            .expect("running agent")
    }

    pub fn enroll(&self, central: &Central, code: &str) {
        let out = self.command(&[
            "enroll",
            "--central",
            &central.url(),
            "--ca",
            central.ca().to_str().expect("UTF-8 path"),
            "--code",
            code,
            "--label",
            "Canteen till 1",
        ]);
        assert!(
            out.status.success(),
            "agent enroll failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `agent run`, waiting until its local API answers.
    pub async fn start(&mut self) {
        assert!(self.run.is_none(), "the agent is already running");
        let mut command = Command::new(agent_binary());
        command
            .arg("--config")
            .arg(&self.config)
            .arg("run")
            .env("AGENT_LOG", "info");
        let mut run = Guard::spawn(&mut command, &self.log);
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = run.exited() {
                panic!("agent run exited with {status}:\n{}", tail(&self.log, 40));
            }
            let answer = self.http.get(self.api("/v1/status")).send().await;
            if answer.is_ok_and(|answer| answer.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "agent run did not answer /v1/status within {WAIT:?}:\n{}",
                tail(&self.log, 40)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.run = Some(run);
    }

    /// Stops `agent run` with SIGTERM; it must exit cleanly.
    pub fn terminate(&mut self) {
        let run = self.run.take().expect("the agent is running");
        let status = run.terminate();
        assert!(
            status.is_some_and(|status| status.success()),
            "agent run did not stop cleanly on SIGTERM ({status:?}):\n{}",
            tail(&self.log, 40)
        );
    }

    /// The whole log of this agent (stderr of every `agent run`).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last lines of this agent's log, for a failure message.
    pub fn log_tail(&self) -> String {
        tail(&self.log, 40)
    }

    fn api(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub async fn status(&self) -> Value {
        self.http
            .get(self.api("/v1/status"))
            .send()
            .await
            .expect("GET /v1/status")
            .json()
            .await
            .expect("status JSON")
    }

    /// POST on the local API (`/v1/identify`, `/v1/quote`): status and JSON answer.
    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let (status, _, answer) = self.post_with_outcome(path, body).await;
        (status, answer)
    }

    /// POST on the local API: status, `X-Commit-Outcome` (empty when
    /// absent) and JSON answer.
    pub async fn post_with_outcome(&self, path: &str, body: &Value) -> (u16, String, Value) {
        let answer = self
            .http
            .post(self.api(path))
            .json(body)
            .send()
            .await
            .unwrap_or_else(|err| panic!("POST {path}: {err}"));
        let status = answer.status().as_u16();
        let outcome = answer
            .headers()
            .get("x-commit-outcome")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, outcome, answer.json().await.expect("a JSON answer"))
    }

    /// `POST /v1/commit`: status, `X-Commit-Outcome`, JSON answer.
    pub async fn commit(&self, key: &str, credential: Value, cart: Value) -> (u16, String, Value) {
        self.post_with_outcome(
            "/v1/commit",
            &serde_json::json!({"idempotency_key": key, "credential": credential, "cart": cart}),
        )
        .await
    }

    /// The terminal's key, read from its data directory (PKCS#8).
    pub fn terminal_key(&self) -> SigningKey {
        let pkcs8 = std::fs::read(self.data.join("terminal.key")).expect("terminal.key");
        SigningKey::from_pkcs8(&pkcs8).expect("a PKCS#8 Ed25519 key")
    }

    /// Every record of the journal, in seq order, as the agent signed it.
    pub fn journal(&self) -> Vec<SignedRecord> {
        let conn = rusqlite::Connection::open_with_flags(
            self.data.join("agent.sqlite"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("opening the agent's database");
        let mut statement = conn
            .prepare("SELECT seq, record FROM journal ORDER BY seq")
            .expect("the journal table");
        let rows = statement
            .query_map([], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, Vec<u8>>(1)?))
            })
            .expect("reading the journal");
        rows.map(|row| {
            let (seq, bytes) = row.expect("a journal row");
            let record = SignedRecord::from_json(&bytes)
                .unwrap_or_else(|err| panic!("journal seq {seq}: {err}"));
            assert_eq!(i64::try_from(record.body.seq).ok(), Some(seq));
            record
        })
        .collect()
    }
}

/// One central, one till, in one temporary directory.
pub struct Site {
    // Dropped last (fields drop in order): the processes go before their files.
    pub agent: Agent,
    pub central: Central,
    pub dir: tempfile::TempDir,
}

impl Site {
    /// A site whose agent's configuration ends with `extra_toml`.
    pub fn new(database_url: Option<String>, extra_toml: &str) -> Site {
        let dir = tempfile::tempdir().expect("temporary directory");
        Site {
            agent: Agent::with_toml(dir.path(), extra_toml),
            central: Central::init(dir.path(), database_url),
            dir,
        }
    }

    /// Both daemons' recent logs, for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "--- central log ---\n{}\n--- agent log ---\n{}",
            tail(&self.central.log, 40),
            self.agent.log_tail()
        )
    }

    /// Waits until the agent has a verified snapshot; returns its status.
    pub async fn wait_for_snapshot(&self) -> Value {
        poll(
            "the agent applies its first snapshot",
            WAIT,
            || self.logs(),
            async || {
                let status = self.agent.status().await;
                status["snapshot"]["version"].is_u64().then_some(status)
            },
        )
        .await
    }
}
