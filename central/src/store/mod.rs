//! The storage interface of central: one [`Store`] trait speaking domain
//! types, with an SQLite implementation ([`sqlite`], the zero-set-up
//! default) and a PostgreSQL implementation ([`postgres`], production and
//! several central processes over one database). Both pass the same suite
//! (`tests/it/store.rs`).
//!
//! What the database enforces, so that several central processes are safe:
//! one row per `(terminal, seq)` in `records` (the chain), one row per
//! `(terminal, seq, hash)` in `forks` (evidence), records whose signature
//! does not verify only in `bad_signatures` (evidence, never in the chain),
//! one row per packet id,
//! single-use enrolment codes, and a `changes` log whose sequence numbers
//! become visible in commit order (the snapshot version). Decisions about a
//! run of records are taken by the pure [`plan`] module inside the
//! backend's transaction, after the terminal's row is locked.
//!
//! Deliberately missing: any HTTP or wire decoding; handlers never name a
//! database crate.

pub mod ledger;
pub mod people;
pub mod plan;
pub mod postgres;
pub mod sqlite;
pub mod verify;

use std::sync::Arc;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::Timestamp;
use shared::model::{Benefit, Grant, Membership};
use shared::wire::record::CredentialKind;

/// What went wrong in storage. `NotFound` and `Conflict` are expected
/// answers the API maps to 404 / 409; `Other` is a fault whose details are
/// logged and never shown to a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    #[error("storage: {0}")]
    Other(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(err: rusqlite::Error) -> StoreError {
        StoreError::Other(format!("sqlite: {err}"))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(err: tokio_postgres::Error) -> StoreError {
        // `{:#}`-like detail: the database error's own message is the useful part.
        match err.as_db_error() {
            Some(db) => StoreError::Other(format!("postgres: {}: {}", db.code().code(), db)),
            None => StoreError::Other(format!("postgres: {err}")),
        }
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(err: deadpool_postgres::PoolError) -> StoreError {
        StoreError::Other(format!("postgres pool: {err}"))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Parses an instant as the backends store it (RFC 3339 text). A bad one is
/// a fault of the database, not of a client.
pub(crate) fn parse_ts(text: &str) -> StoreResult<Timestamp> {
    text.parse()
        .map_err(|err| StoreError::Other(format!("stored instant {text:?}: {err}")))
}

/// Parses an optional stored civil date.
pub(crate) fn parse_date(text: Option<String>) -> StoreResult<Option<Date>> {
    text.map(|text| {
        text.parse()
            .map_err(|err| StoreError::Other(format!("stored date {text:?}: {err}")))
    })
    .transpose()
}

/// A staff API role. Provider and merchant tokens carry the id they are
/// bound to; they see only their own data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Admin,
    Provider(String),
    Merchant(String),
}

impl Role {
    pub fn kind(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Provider(_) => "provider",
            Role::Merchant(_) => "merchant",
        }
    }
    pub fn scope(&self) -> Option<&str> {
        match self {
            Role::Admin => None,
            Role::Provider(id) | Role::Merchant(id) => Some(id),
        }
    }
    pub fn from_parts(kind: &str, scope: Option<String>) -> StoreResult<Role> {
        match (kind, scope) {
            ("admin", _) => Ok(Role::Admin),
            ("provider", Some(id)) => Ok(Role::Provider(id)),
            ("merchant", Some(id)) => Ok(Role::Merchant(id)),
            (kind, scope) => Err(StoreError::Other(format!(
                "token row has role {kind:?} with scope {scope:?}"
            ))),
        }
    }
}

/// A staff token as stored: only the SHA-256 of the secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub hash: String,
    pub role: Role,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Party {
    pub id: String,
    pub name: String,
}

/// The two tables of [`Party`] rows. Only these fixed names ever reach SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartyTable {
    Providers,
    Merchants,
}

impl PartyTable {
    pub(crate) fn name(self) -> &'static str {
        match self {
            PartyTable::Providers => "providers",
            PartyTable::Merchants => "merchants",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub id: String,
    pub provider: String,
    pub label: String,
}

/// A benefit as a provider defined it (with `groups`), and the hash of the
/// form terminals see (without `groups`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBenefit {
    pub benefit: Benefit,
    pub terminal_hash: String,
    /// The change sequence number of the publication of this version.
    pub published_seq: u64,
}

/// One published terminal-visible benefit definition, by hash.
#[derive(Debug, Clone, PartialEq)]
pub struct BenefitVersion {
    pub hash: String,
    pub benefit: Benefit,
    pub published_seq: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TerminalStatus {
    /// Created with an enrolment code that has not been used yet.
    Pending,
    Active,
    Revoked,
}

impl TerminalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TerminalStatus::Pending => "pending",
            TerminalStatus::Active => "active",
            TerminalStatus::Revoked => "revoked",
        }
    }
    pub fn parse(text: &str) -> StoreResult<TerminalStatus> {
        match text {
            "pending" => Ok(TerminalStatus::Pending),
            "active" => Ok(TerminalStatus::Active),
            "revoked" => Ok(TerminalStatus::Revoked),
            other => Err(StoreError::Other(format!("terminal status {other:?}"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terminal {
    pub id: String,
    pub merchant: String,
    pub label: String,
    pub categories: Vec<String>,
    pub status: TerminalStatus,
    /// base64url Ed25519 public key, set at enrolment.
    pub public_key: Option<String>,
    /// Every record `1..=acked_through` of this terminal is stored.
    pub acked_through: u64,
    pub last_seen: Option<Timestamp>,
    pub clock_skew_s: Option<i64>,
}

/// A new terminal with the SHA-256 of its one-time enrolment code.
#[derive(Debug, Clone)]
pub struct NewTerminal {
    pub merchant: String,
    pub label: String,
    pub categories: Vec<String>,
    pub code_hash: String,
    pub code_expires_at: Timestamp,
}

/// Why an enrolment was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolRefusal {
    UnknownCode,
    UsedCode,
    ExpiredCode,
    KeyInUse,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialStatus {
    Active,
    Blocked,
}

/// What central knows of one credential hash, for verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialState {
    pub recipient: String,
    /// The change sequence number at which the block was published; a
    /// terminal with a snapshot version at or above it knew of the block.
    pub blocked_seq: Option<u64>,
}

/// One row of a bulk import, already validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportRow {
    Recipient {
        recipient: String,
        personal_code: Option<String>,
        name: Option<String>,
    },
    Credential {
        recipient: String,
        kind: CredentialKind,
        hash: String,
    },
    Membership {
        recipient: String,
        membership: Membership,
    },
    Grant {
        recipient: String,
        grant: Grant,
    },
    /// Personal data, kept beside the personal code; never in snapshots.
    BirthDate {
        recipient: String,
        birth_date: Date,
    },
    /// `guardian` sees `child`'s benefits on the portal while the child is a minor.
    Guardian {
        guardian: String,
        child: String,
    },
}

/// What an import changed. A re-import of the same file gives all zeros.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: u64,
    pub recipients_changed: u64,
    pub credentials_changed: u64,
    pub memberships_changed: u64,
    pub grants_changed: u64,
    /// The snapshot version after the import (unchanged when nothing changed).
    pub version: u64,
}

/// Called with the number of rows applied so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// A record as ingestion hands it to the store: already decoded and checked
/// on its own; only the chain (link to the previous record) is left to the
/// store, which knows what is already stored.
#[derive(Debug, Clone)]
pub struct IncomingRecord {
    pub seq: u64,
    pub hash: String,
    pub prev: String,
    /// `Err(reason)` when a check independent of the chain failed.
    pub verdict: Result<(), plan::Reason>,
    pub recipient: String,
    pub credential: String,
    pub merchant: String,
    pub at: Timestamp,
    pub kind: RecordKindRow,
    pub voids: Option<u64>,
    pub discount_cents: i64,
    /// `",riga,state,"`: the providers that funded a discount, for scoping.
    pub providers: String,
    pub snapshot: u64,
    /// Canonical JSON of the body, as signed.
    pub body: String,
    pub sig: String,
    /// Usage this record adds (a void subtracts), per benefit and local day.
    pub usage: Vec<UsageDelta>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKindRow {
    Sale,
    Void,
}

impl RecordKindRow {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKindRow::Sale => "sale",
            RecordKindRow::Void => "void",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageDelta {
    pub benefit: String,
    pub day: Date,
    pub count: i64,
    pub amount_cents: i64,
}

/// A packet handed to [`Store::ingest`].
#[derive(Debug, Clone)]
pub struct IncomingPacket {
    pub id: String,
    pub terminal: String,
    pub first_seq: u64,
    pub last_seq: u64,
    pub received_at: Timestamp,
    pub records: Vec<IncomingRecord>,
}

/// The store's answer for one packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestAnswer {
    pub records: Vec<plan::RecordAnswer>,
    pub acked_through: u64,
    /// `true` when this packet id had been ingested before.
    pub seen_before: bool,
    /// Held records of this terminal that the packet resolved (their outcome now final).
    pub resolved: Vec<plan::RecordAnswer>,
}

/// A stored record, for the staff API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRow {
    pub terminal: String,
    pub seq: u64,
    pub hash: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub recipient: String,
    pub merchant: String,
    pub at: Timestamp,
    pub kind: String,
    pub discount_cents: i64,
    pub body: String,
}

/// Which records a staff client may list.
#[derive(Debug, Clone, Default)]
pub struct RecordFilter {
    pub merchant: Option<String>,
    pub provider: Option<String>,
    pub terminal: Option<String>,
    pub outcome: Option<String>,
    pub after: Option<(String, u64)>,
    pub limit: u32,
}

/// A fork: a second, different record for a seq that is already stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkRow {
    pub terminal: String,
    pub seq: u64,
    pub hash: String,
    pub body: String,
}

/// A change in the log: what a delta must re-send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Benefit(String),
    Credential(String),
    Recipient(String),
}

/// One recipient's register entries, for snapshots and the staff API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientEntries {
    pub grants: Vec<Grant>,
    pub memberships: Vec<Membership>,
}

/// Which usage a snapshot carries: days from `since` on, from terminals
/// other than the receiving one (the agent adds its own journal).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageQuery {
    pub since: Date,
    pub exclude_terminal: String,
}

/// Usage of one benefit on one local day, summed over terminals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    pub benefit: String,
    pub day: Date,
    pub count: i64,
    pub amount_cents: i64,
}

/// A recipient as snapshots need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientData {
    pub id: String,
    pub entries: RecipientEntries,
    pub usage: Vec<UsageRow>,
}

/// A credential as snapshots carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialRow {
    pub hash: String,
    pub recipient: String,
    pub status: CredentialStatus,
}

/// A recipient for the staff API; personal data only for staff who may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientView {
    pub id: String,
    pub entries: RecipientEntries,
    pub credentials: Vec<(String, CredentialKind, CredentialStatus)>,
}

/// The storage interface. Every method is one transaction.
#[async_trait]
pub trait Store:
    ledger::LedgerStore + people::PeopleStore + verify::VerifyStore + Send + Sync + 'static
{
    /// `"sqlite"` or `"postgres"`, for logs and metrics.
    fn backend(&self) -> &'static str;

    // --- staff and parties -------------------------------------------------
    async fn create_token(&self, token: &Token) -> StoreResult<()>;
    async fn token(&self, hash: &str) -> StoreResult<Option<Token>>;
    async fn upsert_provider(&self, party: &Party) -> StoreResult<()>;
    async fn providers(&self) -> StoreResult<Vec<Party>>;
    async fn upsert_merchant(&self, party: &Party) -> StoreResult<()>;
    async fn merchants(&self) -> StoreResult<Vec<Party>>;
    async fn upsert_group(&self, group: &Group) -> StoreResult<()>;
    async fn groups(&self, provider: Option<&str>) -> StoreResult<Vec<Group>>;

    // --- benefits ------------------------------------------------------------
    /// Publishes a benefit version (validated by the caller). Publishing the
    /// same definition again changes nothing and returns the old version.
    /// `terminal_json` is the canonical JSON of the terminal-visible form
    /// (no `groups`) and `terminal_hash` its SHA-256.
    async fn publish_benefit(
        &self,
        benefit: &Benefit,
        terminal_json: &str,
        terminal_hash: &str,
    ) -> StoreResult<StoredBenefit>;
    async fn benefits(&self, provider: Option<&str>) -> StoreResult<Vec<StoredBenefit>>;
    async fn benefit_version(&self, hash: &str) -> StoreResult<Option<BenefitVersion>>;

    // --- terminals -----------------------------------------------------------
    /// Creates a pending terminal; returns its id (`T-000001`).
    async fn create_terminal(&self, terminal: &NewTerminal) -> StoreResult<String>;
    /// Uses a one-time code: binds the key and activates the terminal.
    async fn enrol(
        &self,
        code_hash: &str,
        public_key: &str,
        label: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Result<Terminal, EnrolRefusal>>;
    async fn terminal(&self, id: &str) -> StoreResult<Option<Terminal>>;
    async fn terminals(&self, merchant: Option<&str>) -> StoreResult<Vec<Terminal>>;
    /// Returns `false` when there is no such terminal.
    async fn revoke_terminal(&self, id: &str, now: Timestamp) -> StoreResult<bool>;
    async fn heartbeat(&self, id: &str, now: Timestamp, skew_s: i64) -> StoreResult<()>;

    // --- registers -----------------------------------------------------------
    /// Applies a whole import in one transaction, or nothing.
    async fn import(
        &self,
        provider: &str,
        rows: Vec<ImportRow>,
        progress: Option<Progress>,
    ) -> StoreResult<ImportSummary>;
    /// Blocks a credential; returns the change seq of the block, `None`
    /// when the hash is unknown. Blocking twice keeps the first block.
    async fn block_credential(&self, hash: &str) -> StoreResult<Option<u64>>;
    /// `None` when unknown, or when `provider` is given and has nothing to do with it.
    async fn recipient(
        &self,
        id: &str,
        provider: Option<&str>,
    ) -> StoreResult<Option<RecipientView>>;
    /// `true` when the provider registered the recipient or holds a grant or
    /// membership of it.
    async fn provider_knows_credential(&self, provider: &str, hash: &str) -> StoreResult<bool>;

    // --- ingestion -----------------------------------------------------------
    async fn ingest(&self, packet: IncomingPacket) -> StoreResult<IngestAnswer>;
    async fn records(&self, filter: &RecordFilter) -> StoreResult<Vec<RecordRow>>;
    async fn forks(&self, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>>;
    /// Copies of records whose signature did not verify with their
    /// terminal's key: evidence kept outside the chain, never a fork.
    async fn bad_signatures(&self, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>>;
    async fn record_body(&self, terminal: &str, seq: u64) -> StoreResult<Option<String>>;

    // --- snapshots -----------------------------------------------------------
    /// The newest change sequence number: the current snapshot version.
    async fn version(&self) -> StoreResult<u64>;
    /// The oldest version a delta can start from (older changes pruned).
    async fn oldest_delta_base(&self) -> StoreResult<u64>;
    /// Distinct changes with seq in `(after, upto]`, at most `limit + 1`
    /// (so the caller can tell "too many").
    async fn changes_since(&self, after: u64, upto: u64, limit: u64) -> StoreResult<Vec<Change>>;
    /// Recipients whose usage changed in `(after, upto]` through records of
    /// a terminal other than `terminal`.
    async fn usage_changed_since(
        &self,
        after: u64,
        upto: u64,
        terminal: &str,
    ) -> StoreResult<Vec<String>>;
    /// Credentials with hash after `after`, in hash order, at most `limit`.
    async fn credentials_page(&self, after: &str, limit: u32) -> StoreResult<Vec<CredentialRow>>;
    async fn credentials_by_hash(&self, hashes: &[String]) -> StoreResult<Vec<CredentialRow>>;
    /// Every credential of the given recipients.
    async fn credentials_of(&self, recipients: &[String]) -> StoreResult<Vec<CredentialRow>>;
    /// Recipients with id after `after`, in id order, at most `limit`, with
    /// their register entries and usage.
    async fn recipients_page(
        &self,
        after: &str,
        limit: u32,
        usage: &UsageQuery,
    ) -> StoreResult<Vec<RecipientData>>;
    /// The same for the given recipients; unknown ids are absent.
    async fn recipients_by_id(
        &self,
        ids: &[String],
        usage: &UsageQuery,
    ) -> StoreResult<Vec<RecipientData>>;
}
