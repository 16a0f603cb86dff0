//! A small world for tests: providers, merchants, groups, benefits and
//! recipients set up through central's own paths, a test terminal that
//! signs records and packets with `shared::wire` exactly as a terminal of
//! any vendor would, and an HTTPS client that trusts central's CA.

use std::collections::HashMap;
use std::sync::Arc;

use central::http::staff::{new_terminal, publish_benefit};
use central::keys::secret_hash;
use central::snapshot::terminal_form;
use central::store::{Group, ImportRow, Party, Role, Store, Terminal, Token};
use central::{AppState, Clock, Config};
use jiff::Timestamp;
use shared::model::{Benefit, CartLine, Grant, HistoryEntry, Membership};
use shared::rules::{eligible, evaluate, QuoteInput};
use shared::wire::auth::sign_request;
use shared::wire::credential::credential_hash;
use shared::wire::keys::{Hash, SigningKey};
use shared::wire::packet::Packet;
use shared::wire::record::{
    benefit_hash, local_time_of, BenefitRef, CredentialKind, CredentialRef, QuoteInputs,
    RecordBody, RecordKind, RecordType, SignedRecord, RECORD_VERSION,
};

use crate::db::TestDb;

/// 2026-03-02 is a Monday; 12:05 local time in Riga.
pub const NOW: &str = "2026-03-02T10:05:00Z";

pub fn now() -> Timestamp {
    NOW.parse().expect("NOW is an instant")
}

pub fn riga() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("Europe/Riga").expect("Europe/Riga in the bundled database")
}

pub fn benefit(json: serde_json::Value) -> Benefit {
    serde_json::from_value(json).expect("test benefit")
}

/// Riga's free pupil lunch (one a day) and the state's pensioner ride.
pub fn lunch_benefit() -> Benefit {
    benefit(serde_json::json!({
        "id": "riga-lunch", "provider": "riga", "groups": ["riga-pupil"],
        "categories": ["meal.lunch"], "discount": {"percent": "100"},
        "limits": [{"period": "day", "max_count": 1}]
    }))
}

pub fn ride_benefit() -> Benefit {
    benefit(serde_json::json!({
        "id": "state-ride", "provider": "state", "groups": ["state-pensioner"],
        "categories": ["transport.bus"], "discount": {"amount": "0.70"}
    }))
}

pub struct World {
    /// Kept alive: owns the data directory (and, for SQLite, the database file).
    _db: TestDb,
    pub state: AppState,
    pub admin_token: String,
    pub riga_token: String,
    pub state_token: String,
    pub canteen_token: String,
    pub bus_token: String,
}

/// A recipient of the world: reference, raw card UID and its hash.
#[derive(Debug, Clone)]
pub struct Person {
    pub id: String,
    pub card: String,
    pub hash: String,
}

pub fn pupil(n: u32, world: &World) -> Person {
    person(&format!("P{n:05}"), &format!("04AA{n:06X}"), world)
}

pub fn pensioner(n: u32, world: &World) -> Person {
    person(&format!("S{n:05}"), &format!("04BB{n:06X}"), world)
}

fn person(id: &str, card: &str, world: &World) -> Person {
    Person {
        id: id.to_owned(),
        card: card.to_owned(),
        hash: credential_hash(&world.state.keys.credential_key, CredentialKind::Card, card),
    }
}

impl World {
    /// Sets up the world on a store, with `pupils` Riga pupils and
    /// `pensioners` pensioners, each with a card.
    pub async fn new(db: TestDb, pupils: u32, pensioners: u32) -> World {
        let config = Config::new(db.dir.path().to_owned());
        let state = AppState::with_store(&config, Arc::clone(&db.store), Clock::fixed(now()))
            .expect("opening the test data directory");
        let store = &state.store;
        for (id, name) in [("riga", "Riga"), ("state", "State")] {
            store
                .upsert_provider(&Party {
                    id: id.into(),
                    name: name.into(),
                })
                .await
                .expect("provider");
        }
        for (id, name) in [("canteen", "Canteen Ltd"), ("bus", "Bus Ltd")] {
            store
                .upsert_merchant(&Party {
                    id: id.into(),
                    name: name.into(),
                })
                .await
                .expect("merchant");
        }
        store
            .upsert_group(&Group {
                id: "riga-pupil".into(),
                provider: "riga".into(),
                label: "Pupils".into(),
            })
            .await
            .expect("group");
        store
            .upsert_group(&Group {
                id: "state-pensioner".into(),
                provider: "state".into(),
                label: "Pensioners".into(),
            })
            .await
            .expect("group");
        publish_benefit(&state, "riga", lunch_benefit())
            .await
            .expect("lunch benefit");
        publish_benefit(&state, "state", ride_benefit())
            .await
            .expect("ride benefit");
        let mut world = World {
            state: state.clone(),
            _db: db,
            admin_token: String::new(),
            riga_token: String::new(),
            state_token: String::new(),
            canteen_token: String::new(),
            bus_token: String::new(),
        };
        world.admin_token = world.token(Role::Admin).await;
        world.riga_token = world.token(Role::Provider("riga".into())).await;
        world.state_token = world.token(Role::Provider("state".into())).await;
        world.canteen_token = world.token(Role::Merchant("canteen".into())).await;
        world.bus_token = world.token(Role::Merchant("bus".into())).await;
        let mut riga_rows = Vec::new();
        for n in 0..pupils {
            let p = pupil(n, &world);
            riga_rows.extend(rows_for(&p, "riga-pupil", &world));
        }
        if !riga_rows.is_empty() {
            store
                .import("riga", riga_rows, None)
                .await
                .expect("importing pupils");
        }
        let mut state_rows = Vec::new();
        for n in 0..pensioners {
            let p = pensioner(n, &world);
            state_rows.extend(rows_for(&p, "state-pensioner", &world));
        }
        if !state_rows.is_empty() {
            store
                .import("state", state_rows, None)
                .await
                .expect("importing pensioners");
        }
        world
    }

    async fn token(&self, role: Role) -> String {
        let token = format!("test-{}-{}", role.kind(), role.scope().unwrap_or("all"));
        self.state
            .store
            .create_token(&Token {
                hash: secret_hash(&token),
                role,
                label: "test".into(),
            })
            .await
            .expect("token");
        token
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    /// Creates and enrols a terminal with a fresh key (through the store).
    pub async fn terminal(&self, merchant: &str, category: &str) -> TestTerminal {
        let code = new_terminal(
            &self.state,
            merchant,
            "test till",
            vec![category.to_owned()],
        )
        .await
        .expect("creating a terminal");
        let (key, _) = SigningKey::generate(&ring::rand::SystemRandom::new()).expect("key");
        let terminal = self
            .state
            .store
            .enrol(
                &secret_hash(&code.code),
                &key.public_key().to_base64(),
                None,
                now(),
            )
            .await
            .expect("enrolling")
            .expect("code accepted");
        TestTerminal::new(terminal, key, self).await
    }
}

fn rows_for(person: &Person, group: &str, world: &World) -> Vec<ImportRow> {
    vec![
        ImportRow::Credential {
            recipient: person.id.clone(),
            kind: CredentialKind::Card,
            hash: credential_hash(
                &world.state.keys.credential_key,
                CredentialKind::Card,
                &person.card,
            ),
        },
        ImportRow::Membership {
            recipient: person.id.clone(),
            membership: Membership {
                group: group.into(),
                valid_from: None,
                valid_to: None,
            },
        },
    ]
}

/// A terminal built with `shared::wire` only: what another vendor would write.
pub struct TestTerminal {
    pub terminal: Terminal,
    pub key: SigningKey,
    pub seq: u64,
    pub prev: Hash,
    /// Terminal-visible benefits in scope, by id.
    pub benefits: HashMap<String, Benefit>,
    pub snapshot: u64,
    /// Own journal per recipient, for `inputs.history`.
    pub journal: HashMap<String, Vec<HistoryEntry>>,
}

impl TestTerminal {
    pub async fn new(terminal: Terminal, key: SigningKey, world: &World) -> TestTerminal {
        let benefits = world
            .state
            .store
            .benefits(None)
            .await
            .expect("benefits")
            .into_iter()
            .map(|b| terminal_form(&b.benefit))
            .filter(|b| central::snapshot::in_scope(b, &terminal.categories))
            .map(|b| (b.id.clone(), b))
            .collect();
        TestTerminal {
            snapshot: world.state.store.version().await.expect("version"),
            terminal,
            key,
            seq: 0,
            prev: Hash::GENESIS,
            benefits,
            journal: HashMap::new(),
        }
    }

    pub fn id(&self) -> &str {
        &self.terminal.id
    }

    /// A sale of `cart` to `person` entitled to `entitled` (benefit ids), at `at`.
    pub fn sale(
        &mut self,
        person: &Person,
        entitled: &[&str],
        cart: Vec<CartLine>,
        at: Timestamp,
    ) -> SignedRecord {
        let benefits: Vec<Benefit> = self.benefits.values().cloned().collect();
        let entitlements: Vec<Grant> = entitled
            .iter()
            .map(|id| Grant {
                benefit: (*id).to_owned(),
                valid_from: None,
                valid_to: None,
            })
            .collect();
        let usable: Vec<Benefit> = eligible(&benefits, &entitlements, &[], at)
            .into_iter()
            .cloned()
            .collect();
        let history = self.journal.get(&person.id).cloned().unwrap_or_default();
        let quote = evaluate(&QuoteInput {
            benefits: &usable,
            grants: &entitlements,
            memberships: &[],
            history: &history,
            cart: &cart,
            now: at,
        });
        for discount in &quote.discounts {
            self.journal
                .entry(person.id.clone())
                .or_default()
                .push(HistoryEntry {
                    at,
                    benefit: discount.benefit.clone(),
                    amount: discount.amount,
                    count: 1,
                });
        }
        self.seq += 1;
        let body = RecordBody {
            at,
            cart,
            credential: CredentialRef {
                hash: person.hash.clone(),
                kind: CredentialKind::Card,
            },
            idempotency_key: format!("{}-{}", self.terminal.id, self.seq),
            inputs: QuoteInputs {
                benefits: usable
                    .iter()
                    .map(|b| BenefitRef {
                        hash: benefit_hash(b).expect("hash"),
                        id: b.id.clone(),
                    })
                    .collect(),
                entitlements,
                history,
                snapshot: self.snapshot,
            },
            kind: RecordKind::Sale,
            local_time: local_time_of(at, &riga()),
            merchant: self.terminal.merchant.clone(),
            prev: self.prev,
            quote,
            recipient: person.id.clone(),
            seq: self.seq,
            terminal: self.terminal.id.clone(),
            record_type: RecordType::Record,
            v: RECORD_VERSION,
            voids: None,
        };
        self.sign(body)
    }

    /// Signs a body as the next record (the caller may have altered it).
    pub fn sign(&mut self, body: RecordBody) -> SignedRecord {
        let record = SignedRecord::sign(body, &self.key).expect("signing");
        self.prev = record.hash();
        record
    }

    pub fn packet(&self, records: Vec<SignedRecord>) -> Packet {
        Packet::build(&self.terminal.id, records, now(), &self.key).expect("packet")
    }
}

pub fn lunch(price: &str) -> Vec<CartLine> {
    vec![CartLine {
        sku: "LUNCH".into(),
        category: "meal.lunch".into(),
        unit_price: price.parse().expect("price"),
        qty: 1,
    }]
}

/// A running central on loopback over real TLS, and a client trusting its CA.
pub struct Server {
    pub base: String,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start(state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding loopback");
        let address = listener.local_addr().expect("address");
        let ca = std::fs::read(state.config.data_dir.join("ca.pem")).expect("ca.pem");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            central::serve(state, listener, async {
                let _ = stopped.await;
            })
            .await
            .expect("serving");
        });
        let http = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("CA certificate"))
            .build()
            .expect("HTTPS client");
        Server {
            base: format!("https://localhost:{}", address.port()),
            http,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    /// A request signed as `terminal` (at the fixed test clock).
    pub fn signed(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Vec<u8>,
        terminal: &TestTerminal,
    ) -> reqwest::RequestBuilder {
        let headers = sign_request(
            &terminal.key,
            terminal.id(),
            method.as_str(),
            path,
            now(),
            &body,
        );
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .body(body);
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request
    }

    pub fn staff(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token)
    }

    /// Uploads a packet's bytes; returns the status and JSON answer.
    pub async fn upload(
        &self,
        terminal: &TestTerminal,
        bytes: Vec<u8>,
    ) -> (u16, serde_json::Value) {
        let response = self
            .signed(reqwest::Method::POST, "/api/v1/packets", bytes, terminal)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("upload");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON answer"))
    }
}

/// `[(seq, outcome, reason)]` of a packet answer.
pub fn outcomes(answer: &serde_json::Value) -> Vec<(u64, String, Option<String>)> {
    answer["records"]
        .as_array()
        .expect("records array")
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

/// Local noon-ish times on consecutive days from `NOW`.
pub fn day(n: i64) -> Timestamp {
    now()
        .checked_add(jiff::SignedDuration::from_hours(24 * n))
        .expect("instant")
}
