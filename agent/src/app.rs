//! The imperative shell around [`crate::core`]: resolves a credential
//! against the snapshot, reads the journal's usage, calls the pure
//! decisions, and writes records. Each operation parses, reads, decides,
//! writes and renders, in that order; HTTP lives in [`crate::http`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use shared::model::CartLine;
use shared::money::Money;
use shared::validate::Problem;
use shared::wire::credential::{credential_hash, normalise_id};
use shared::wire::keys::Hash;
use shared::wire::record::{CredentialKind, CredentialRef, RecordKind, SignedRecord};
use shared::wire::WireErrorKind;

use crate::clock::Clock;
use crate::config::{Config, Mode};
use crate::core::{self, Catalog, Expected, Quoted, RecipientData, Refusal};
use crate::enrolment::Enrolment;
use crate::indicator::{Indicator, Signal};
use crate::metrics::{Gauges, Metrics};
use crate::store::{self, JournalHit, NewRecord, SnapshotState, Store, StoreError};

/// Longest raw credential id accepted (a QR token is the longest kind).
pub const CREDENTIAL_ID_LEN_MAX: usize = shared::wire::qr::QR_LEN_MAX;
/// Longest idempotency key accepted.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// How the recipient identified themself, as the POS sends it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialInput {
    pub kind: CredentialKind,
    /// The card UID, eID serial, bank-card token or QR text. Hashed at
    /// once; never stored or logged.
    pub id: String,
}

/// Why a request was not answered with a result.
#[derive(Debug)]
pub enum AppError {
    /// A clear "no" for the cashier (HTTP 422).
    Refused(Refusal),
    /// The request is malformed (HTTP 400); `details` name each field.
    BadRequest {
        code: &'static str,
        message: String,
        details: Vec<Problem>,
    },
    /// The request conflicts with what is committed (HTTP 409).
    Conflict {
        code: &'static str,
        message: String,
    },
    NotFound {
        code: &'static str,
        message: String,
    },
    /// The agent cannot answer yet (HTTP 503), e.g. no snapshot.
    Unavailable {
        code: &'static str,
        message: String,
    },
    /// A storage or internal failure (HTTP 500); details go to the log only.
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(err: StoreError) -> AppError {
        AppError::Internal(err.to_string())
    }
}

impl From<Refusal> for AppError {
    fn from(refusal: Refusal) -> AppError {
        AppError::Refused(refusal)
    }
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Refused(refusal) => refusal.code(),
            AppError::BadRequest { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Unavailable { code, .. } => code,
            AppError::Internal(_) => "internal_error",
        }
    }

    fn bad(path: &str, message: impl Into<String>) -> AppError {
        let message = message.into();
        AppError::BadRequest {
            code: "invalid_request",
            message: format!("{path}: {message}"),
            details: vec![Problem {
                path: path.to_owned(),
                message,
            }],
        }
    }
}

/// How fresh the snapshot is, in words a cashier or driver can act on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Freshness {
    pub version: Option<u64>,
    pub built_at: Option<String>,
    pub age_seconds: Option<i64>,
    pub age_max_seconds: u64,
    pub stale: bool,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IdentifyAnswer {
    pub benefits: Vec<BenefitAnswer>,
    pub snapshot: Freshness,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BenefitAnswer {
    pub id: String,
    pub label: String,
    pub categories: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<String>,
    pub limits: Vec<LimitAnswer>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LimitAnswer {
    pub period: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub used_amount: Option<Money>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct QuoteAnswer {
    pub total: Money,
    pub discount_total: Money,
    pub due: Money,
    pub lines: Vec<LineAnswer>,
    pub by_provider: BTreeMap<String, Money>,
    pub notes: Vec<NoteAnswer>,
    pub snapshot: Freshness,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LineAnswer {
    pub line: u32,
    pub sku: String,
    pub benefit: String,
    pub label: String,
    pub provider: String,
    pub amount: Money,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoteAnswer {
    pub benefit: String,
    pub label: String,
    pub code: &'static str,
    pub message: String,
}

/// The commit answer without the record, which is spliced in as the exact
/// signed bytes (see [`render_commit`]).
#[derive(Debug, Clone, Serialize)]
struct CommitHead<'a> {
    seq: u64,
    hash: String,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    voids: Option<u64>,
    at: String,
    local_time: &'a str,
    total: Money,
    discount_total: Money,
    due: Money,
    lines: Vec<LineAnswer>,
    by_provider: &'a BTreeMap<String, Money>,
    notes: Vec<NoteAnswer>,
    receipt: String,
    warnings: Vec<Warning>,
}

/// A commit's answer bytes, and how they came about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub answer: Vec<u8>,
    pub seq: u64,
    pub outcome: CommitOutcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// A new record was written.
    New,
    /// The idempotency key was seen before: the same answer again.
    Replayed,
    /// The same credential and cart inside the double-tap window.
    DoubleTap,
}

impl CommitOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitOutcome::New => "new",
            CommitOutcome::Replayed => "replayed",
            CommitOutcome::DoubleTap => "double_tap",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedInput {
    #[serde(default)]
    pub due: Option<Money>,
    #[serde(default)]
    pub discount_total: Option<Money>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitRequest {
    pub idempotency_key: String,
    pub credential: CredentialInput,
    pub cart: Vec<CartLine>,
    #[serde(default)]
    pub expected: Option<ExpectedInput>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    pub idempotency_key: String,
    pub seq: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusAnswer {
    pub terminal: String,
    pub merchant: String,
    pub mode: &'static str,
    pub snapshot: Freshness,
    pub journal: JournalStatus,
    pub outbox: OutboxStatus,
    pub sync: SyncStatus,
    pub clock: ClockStatus,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct JournalStatus {
    pub records: u64,
    pub head: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxStatus {
    /// Committed records central has not acknowledged yet.
    pub records: u64,
    pub packets: u64,
    pub acked_through: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SyncStatus {
    pub enabled: bool,
    pub central: String,
    pub last_success: Option<String>,
    pub last_attempt: Option<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClockStatus {
    pub now: String,
    pub local: String,
    pub time_zone: String,
}

/// Everything a request needs; shared by the HTTP handlers and sync.
pub struct App {
    pub config: Config,
    pub store: Arc<Store>,
    pub enrolment: Arc<Enrolment>,
    pub clock: Arc<dyn Clock>,
    pub metrics: Metrics,
    pub indicator: Arc<dyn Indicator>,
}

/// A credential turned into its hash (and, for a QR token, the recipient
/// the token names).
struct HashedCredential {
    reference: CredentialRef,
    qr_recipient: Option<String>,
}

/// A credential resolved against the snapshot.
struct Resolved {
    reference: CredentialRef,
    recipient: String,
    data: RecipientData,
}

impl App {
    fn freshness(&self, snapshot: &SnapshotState, now: Timestamp) -> Freshness {
        freshness(
            snapshot.version,
            snapshot.built_at,
            self.config.terminal.snapshot_age_max,
            now,
        )
    }

    fn warnings(freshness: &Freshness) -> Vec<Warning> {
        if freshness.stale {
            vec![Warning {
                code: "snapshot_stale",
                message: freshness.message.clone(),
            }]
        } else {
            Vec::new()
        }
    }

    fn require_snapshot(snapshot: &SnapshotState) -> Result<u64, AppError> {
        snapshot.version.ok_or_else(|| AppError::Unavailable {
            code: "no_snapshot",
            message: "No benefit data yet: connect the terminal to the network and wait for the first sync".into(),
        })
    }

    /// Hashes the raw credential; the raw id goes no further than this.
    fn hash_credential(
        &self,
        input: &CredentialInput,
        now: Timestamp,
    ) -> Result<HashedCredential, AppError> {
        let id = input.id.as_str();
        if id.is_empty() || id.len() > CREDENTIAL_ID_LEN_MAX {
            return Err(AppError::bad(
                "credential.id",
                format!("must be 1-{CREDENTIAL_ID_LEN_MAX} characters"),
            ));
        }
        if id.chars().any(char::is_control) {
            return Err(AppError::bad(
                "credential.id",
                "contains control characters",
            ));
        }
        if input.kind == CredentialKind::Qr {
            let payload =
                shared::wire::qr::decode(id, &self.enrolment.central_keys, now).map_err(|err| {
                    tracing::info!(error = %err, "QR token refused");
                    match err.kind {
                        WireErrorKind::Expired(_) => AppError::Refused(Refusal::TokenExpired),
                        _ => AppError::Refused(Refusal::TokenInvalid),
                    }
                })?;
            // The nonce makes each token unique: its keyed hash names this
            // token in records, and a second sale with it is a replay.
            return Ok(HashedCredential {
                reference: payload.credential_ref(&self.enrolment.credential_key),
                qr_recipient: Some(payload.recipient),
            });
        }
        if normalise_id(input.kind, id).is_empty() {
            return Err(AppError::bad(
                "credential.id",
                "has no characters left after removing separators",
            ));
        }
        Ok(HashedCredential {
            reference: CredentialRef {
                hash: credential_hash(&self.enrolment.credential_key, input.kind, id),
                kind: input.kind,
            },
            qr_recipient: None,
        })
    }

    /// Looks the hashed credential up: unknown, blocked, or a recipient.
    fn resolve(
        &self,
        conn: &rusqlite::Connection,
        hashed: HashedCredential,
    ) -> Result<Resolved, AppError> {
        let from_token = hashed.qr_recipient.is_some();
        let recipient = match hashed.qr_recipient {
            Some(recipient) => recipient,
            None => {
                let hash = Hash::from_hex(&hashed.reference.hash)
                    .map_err(|err| AppError::Internal(format!("credential hash: {err}")))?;
                match store::credential(conn, &hash)? {
                    None => return Err(Refusal::UnknownCredential.into()),
                    Some((_, true)) => return Err(Refusal::BlockedCredential.into()),
                    Some((recipient, false)) => recipient,
                }
            }
        };
        let data = match store::recipient(conn, &recipient)? {
            Some(data) => data,
            // A QR token for someone this merchant's snapshot does not hold.
            None if from_token => return Err(Refusal::UnknownCredential.into()),
            None => RecipientData::default(),
        };
        Ok(Resolved {
            reference: hashed.reference,
            recipient,
            data,
        })
    }

    pub fn identify(&self, input: &CredentialInput) -> Result<IdentifyAnswer, AppError> {
        let now = self.clock.now();
        let snapshot = self.store.snapshot();
        Self::require_snapshot(&snapshot)?;
        let hashed = self.hash_credential(input, now)?;
        let conn = self.store.reader();
        let resolved = self.resolve(&conn, hashed)?;
        let local = store::local_usage(&conn, &resolved.recipient, now)?;
        drop(conn);
        let language = &self.config.terminal.language;
        let visible = core::identify(&snapshot.catalog, &resolved.data, &local, now, language)?;
        let freshness = self.freshness(&snapshot, now);
        Ok(IdentifyAnswer {
            benefits: visible
                .into_iter()
                .map(|benefit| BenefitAnswer {
                    id: benefit.id,
                    label: benefit.label,
                    categories: benefit.categories,
                    valid_to: benefit.valid_to.map(|date| date.to_string()),
                    limits: benefit
                        .limits
                        .into_iter()
                        .map(|limit| match limit {
                            core::LimitState::Count { period, max, used } => LimitAnswer {
                                period: period.as_str(),
                                max_count: Some(max),
                                used_count: Some(used),
                                max_amount: None,
                                used_amount: None,
                            },
                            core::LimitState::Amount { period, max, used } => LimitAnswer {
                                period: period.as_str(),
                                max_count: None,
                                used_count: None,
                                max_amount: Some(max),
                                used_amount: Some(used),
                            },
                        })
                        .collect(),
                })
                .collect(),
            warnings: Self::warnings(&freshness),
            snapshot: freshness,
        })
    }

    pub fn quote(
        &self,
        input: &CredentialInput,
        cart: &[CartLine],
    ) -> Result<QuoteAnswer, AppError> {
        let started = Instant::now();
        validate_cart(cart)?;
        let now = self.clock.now();
        let snapshot = self.store.snapshot();
        let version = Self::require_snapshot(&snapshot)?;
        let hashed = self.hash_credential(input, now)?;
        let conn = self.store.reader();
        let resolved = self.resolve(&conn, hashed)?;
        let local = store::local_usage(&conn, &resolved.recipient, now)?;
        drop(conn);
        let language = &self.config.terminal.language;
        let quoted = core::quote(
            &snapshot.catalog,
            version,
            &resolved.data,
            &local,
            cart,
            now,
            language,
        )?;
        let freshness = self.freshness(&snapshot, now);
        let answer = QuoteAnswer {
            total: quoted.quote.total,
            discount_total: quoted.quote.discount_total,
            due: quoted.quote.due,
            lines: line_answers(&quoted.quote, cart, &snapshot.catalog, language),
            by_provider: quoted.quote.by_provider.clone(),
            notes: note_answers(&quoted),
            warnings: Self::warnings(&freshness),
            snapshot: freshness,
        };
        self.metrics.quote_latency.observe(started.elapsed());
        Ok(answer)
    }

    /// Commits a sale: re-quotes under the write lock, signs, chains and
    /// fsyncs the record, then returns the answer. Blocking: call it from
    /// a blocking thread.
    pub fn commit(&self, request: &CommitRequest) -> Result<Committed, AppError> {
        let started = Instant::now();
        validate_idempotency_key(&request.idempotency_key)?;
        validate_cart(&request.cart)?;
        let now = self.clock.now();
        let hashed = self.hash_credential(&request.credential, now)?;
        let fingerprint = core::fingerprint(&hashed.reference.hash, &request.cart);

        let mut writer = self.store.writer();
        // Read under the lock: a snapshot swap also holds it.
        let snapshot = self.store.snapshot();
        let version = Self::require_snapshot(&snapshot)?;
        if let Some(hit) = store::by_idempotency_key(writer.conn(), &request.idempotency_key)? {
            return replay(hit, &fingerprint, CommitOutcome::Replayed);
        }
        let qr_token = hashed.qr_recipient.is_some();
        let resolved = self.resolve(writer.conn(), hashed)?;
        let window = self.config.terminal.double_tap_window;
        if !window.is_zero() {
            let since = now
                .checked_sub(SignedDuration::try_from(window).unwrap_or(SignedDuration::ZERO))
                .unwrap_or(now);
            if let Some(hit) =
                store::recent_same_sale(writer.conn(), &resolved.recipient, &fingerprint, since)?
            {
                return Ok(Committed {
                    seq: hit.seq,
                    answer: hit.answer,
                    outcome: CommitOutcome::DoubleTap,
                });
            }
        }
        if qr_token
            && store::credential_used(writer.conn(), &resolved.recipient, &resolved.reference.hash)?
        {
            return Err(Refusal::TokenAlreadyUsed.into());
        }
        let local = store::local_usage(writer.conn(), &resolved.recipient, now)?;
        let language = &self.config.terminal.language;
        let quoted = core::quote(
            &snapshot.catalog,
            version,
            &resolved.data,
            &local,
            &request.cart,
            now,
            language,
        )?;
        if let Some(expected) = &request.expected {
            core::check_expected(
                &quoted.quote,
                &Expected {
                    due: expected.due,
                    discount_total: expected.discount_total,
                },
            )?;
        }
        let head = writer.head();
        let ctx = core::RecordContext {
            terminal: self.enrolment.terminal(),
            merchant: self.enrolment.merchant(),
            zone: &self.config.terminal.time_zone,
            seq: head.map(|head| head.seq + 1).unwrap_or(1),
            prev: head.map(|head| head.hash).unwrap_or(Hash::GENESIS),
            at: now,
        };
        let body = core::sale_record(
            &ctx,
            &request.idempotency_key,
            resolved.reference.clone(),
            &resolved.recipient,
            &request.cart,
            &quoted,
        );
        let record = SignedRecord::sign(body, &self.enrolment.key)
            .map_err(|err| AppError::Internal(format!("signing record: {err}")))?;
        let freshness = self.freshness(&snapshot, now);
        let head = render_commit(
            &record,
            &snapshot.catalog,
            language,
            note_answers(&quoted),
            Self::warnings(&freshness),
        )?;
        writer.append(&NewRecord {
            record: &record,
            credential_hash: &resolved.reference.hash,
            fingerprint,
            answer: &head,
            usage: &quoted.usage,
        })?;
        let answer = store::answer_with_record(&head, &record.to_json());
        drop(writer);
        self.metrics.commit_latency.observe(started.elapsed());
        tracing::info!(seq = record.body.seq, due = %record.body.quote.due, discount = %record.body.quote.discount_total, "sale committed");
        Ok(Committed {
            seq: record.body.seq,
            answer,
            outcome: CommitOutcome::New,
        })
    }

    /// Cancels an earlier sale of this terminal with a `void` record.
    pub fn void(&self, request: &VoidRequest) -> Result<Committed, AppError> {
        validate_idempotency_key(&request.idempotency_key)?;
        let now = self.clock.now();
        let fingerprint = Hash::of(format!("void:{}", request.seq).as_bytes());
        let mut writer = self.store.writer();
        if let Some(hit) = store::by_idempotency_key(writer.conn(), &request.idempotency_key)? {
            return replay(hit, &fingerprint, CommitOutcome::Replayed);
        }
        let Some((sale, voided)) = store::record_by_seq(writer.conn(), request.seq)? else {
            return Err(AppError::NotFound {
                code: "unknown_record",
                message: format!("seq: no record {} on this terminal", request.seq),
            });
        };
        if sale.body.kind != RecordKind::Sale {
            return Err(AppError::Conflict {
                code: "not_a_sale",
                message: format!(
                    "seq: record {} is itself a void and cannot be voided",
                    request.seq
                ),
            });
        }
        if voided {
            return Err(AppError::Conflict {
                code: "already_voided",
                message: format!("seq: sale {} is already voided", request.seq),
            });
        }
        let window = SignedDuration::try_from(self.config.terminal.void_window)
            .unwrap_or(SignedDuration::ZERO);
        if now.duration_since(sale.body.at) > window {
            return Err(AppError::Conflict {
                code: "void_window_passed",
                message: format!(
                    "seq: sale {} is older than the {} s in which a sale may be voided here; the benefit provider can correct it",
                    request.seq,
                    self.config.terminal.void_window.as_secs()
                ),
            });
        }
        let snapshot = self.store.snapshot();
        let head = writer.head();
        let ctx = core::RecordContext {
            terminal: self.enrolment.terminal(),
            merchant: self.enrolment.merchant(),
            zone: &self.config.terminal.time_zone,
            seq: head.map(|head| head.seq + 1).unwrap_or(1),
            prev: head.map(|head| head.hash).unwrap_or(Hash::GENESIS),
            at: now,
        };
        let body = core::void_record(&ctx, &request.idempotency_key, &sale.body);
        let record = SignedRecord::sign(body, &self.enrolment.key)
            .map_err(|err| AppError::Internal(format!("signing record: {err}")))?;
        let head = render_commit(
            &record,
            &snapshot.catalog,
            &self.config.terminal.language,
            Vec::new(),
            Vec::new(),
        )?;
        writer.append(&NewRecord {
            record: &record,
            credential_hash: &sale.body.credential.hash,
            fingerprint,
            answer: &head,
            usage: &BTreeMap::new(),
        })?;
        let answer = store::answer_with_record(&head, &record.to_json());
        tracing::info!(seq = record.body.seq, voids = request.seq, "sale voided");
        Ok(Committed {
            seq: record.body.seq,
            answer,
            outcome: CommitOutcome::New,
        })
    }

    /// A validator tap: commits the configured fare at once and drives the
    /// indicator. Blocking, like [`App::commit`].
    pub fn tap(&self, credential: CredentialInput) -> Result<Committed, AppError> {
        let Some(validator) = &self.config.validator else {
            return Err(AppError::Conflict {
                code: "not_a_validator",
                message: "this terminal is a cashier till: use /v1/quote and /v1/commit".into(),
            });
        };
        let now = self.clock.now();
        // A fresh key per tap: a repeated tap is caught by the double-tap
        // window, not by the key.
        let nonce = {
            let mut bytes = [0u8; 8];
            let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
            hex::encode(bytes)
        };
        let request = CommitRequest {
            idempotency_key: format!("tap-{}-{nonce}", now.as_millisecond()),
            credential,
            cart: vec![validator.fare.clone()],
            expected: None,
        };
        let result = self.commit(&request);
        match &result {
            Ok(_) => self.indicator.show(Signal::Accepted, "ok"),
            Err(err) => self.indicator.show(Signal::Refused, err.code()),
        }
        result
    }

    pub fn status(&self) -> Result<StatusAnswer, AppError> {
        let snapshot = self.store.snapshot();
        let status = self.store.status()?;
        Ok(status_answer(
            &self.config,
            &self.enrolment.file,
            &status,
            snapshot.version,
            snapshot.built_at,
            self.clock.now(),
        ))
    }

    pub fn gauges(&self) -> Result<Gauges, AppError> {
        let now = self.clock.now();
        let snapshot = self.store.snapshot();
        let freshness = self.freshness(&snapshot, now);
        let status = self.store.status()?;
        let head_seq = status.head.map(|head| head.seq).unwrap_or(0);
        Ok(Gauges {
            snapshot_version: freshness.version,
            snapshot_age_seconds: freshness.age_seconds,
            snapshot_stale: freshness.stale,
            journal_head_seq: head_seq,
            outbox_records: head_seq.saturating_sub(status.acked_through),
            outbox_packets: status.outbox_packets,
            credentials: status.credentials,
            last_sync_ok_unix: status
                .last_sync_ok
                .and_then(|text| text.parse::<Timestamp>().ok())
                .map(|at| at.as_second()),
        })
    }

    pub fn is_validator(&self) -> bool {
        self.config.terminal.mode == Mode::Validator
    }
}

fn replay(
    hit: JournalHit,
    fingerprint: &Hash,
    outcome: CommitOutcome,
) -> Result<Committed, AppError> {
    if hit.fingerprint.as_slice() != fingerprint.0.as_slice() {
        return Err(AppError::Conflict {
            code: "idempotency_key_reused",
            message: format!(
                "idempotency_key: already used for record {} with a different credential or cart; use a new key for a new sale",
                hit.seq
            ),
        });
    }
    Ok(Committed {
        seq: hit.seq,
        answer: hit.answer,
        outcome,
    })
}

fn validate_cart(cart: &[CartLine]) -> Result<(), AppError> {
    shared::validate::cart(cart).map_err(|problems| AppError::BadRequest {
        code: "invalid_cart",
        message: problems.to_string(),
        details: problems.0,
    })
}

fn validate_idempotency_key(key: &str) -> Result<(), AppError> {
    if key.is_empty()
        || key.len() > IDEMPOTENCY_KEY_LEN_MAX
        || !key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(AppError::bad(
            "idempotency_key",
            format!(
                "must be 1-{IDEMPOTENCY_KEY_LEN_MAX} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(())
}

fn line_answers(
    quote: &shared::model::Quote,
    cart: &[CartLine],
    catalog: &Catalog,
    language: &str,
) -> Vec<LineAnswer> {
    quote
        .discounts
        .iter()
        .map(|discount| LineAnswer {
            line: discount.line,
            sku: cart
                .get(discount.line as usize)
                .map(|line| line.sku.clone())
                .unwrap_or_default(),
            benefit: discount.benefit.clone(),
            label: catalog.label(&discount.benefit, language),
            provider: discount.provider.clone(),
            amount: discount.amount,
        })
        .collect()
}

fn note_answers(quoted: &Quoted) -> Vec<NoteAnswer> {
    quoted
        .notes
        .iter()
        .map(|note| NoteAnswer {
            benefit: note.benefit.clone(),
            label: note.label.clone(),
            code: note.code,
            message: note.message.clone(),
        })
        .collect()
}

/// The commit answer without its `record` member; [`store::answer_with_record`]
/// adds the signed record exactly as signed (canonical bytes), so a POS can
/// store it and anyone can verify it later.
fn render_commit(
    record: &SignedRecord,
    catalog: &Catalog,
    language: &str,
    notes: Vec<NoteAnswer>,
    warnings: Vec<Warning>,
) -> Result<Vec<u8>, AppError> {
    let body = &record.body;
    let head = CommitHead {
        seq: body.seq,
        hash: record.hash().to_hex(),
        kind: match body.kind {
            RecordKind::Sale => "sale",
            RecordKind::Void => "void",
        },
        voids: body.voids,
        at: body.at.to_string(),
        local_time: &body.local_time,
        total: body.quote.total,
        discount_total: body.quote.discount_total,
        due: body.quote.due,
        lines: line_answers(&body.quote, &body.cart, catalog, language),
        by_provider: &body.quote.by_provider,
        notes,
        receipt: core::receipt(body, catalog, language),
        warnings,
    };
    serde_json::to_vec(&head).map_err(|err| AppError::Internal(format!("encoding answer: {err}")))
}

/// How fresh a snapshot is, in words a cashier or driver can act on.
pub fn freshness(
    version: Option<u64>,
    built_at: Option<Timestamp>,
    age_max: std::time::Duration,
    now: Timestamp,
) -> Freshness {
    let age_max_seconds = age_max.as_secs();
    let Some(version) = version else {
        return Freshness {
            version: None,
            built_at: None,
            age_seconds: None,
            age_max_seconds,
            stale: true,
            message: "No benefit data yet: connect the terminal to the network".into(),
        };
    };
    let built_at = built_at.unwrap_or(Timestamp::UNIX_EPOCH);
    let age_seconds = now.as_second() - built_at.as_second();
    let age_max_signed = i64::try_from(age_max_seconds).unwrap_or(i64::MAX);
    let stale = age_seconds > age_max_signed;
    let message = if stale {
        format!(
            "Benefit data is {} old, more than the {} allowed: connect the terminal to the network",
            human_age(age_seconds),
            human_age(age_max_signed)
        )
    } else {
        format!("Benefit data is {} old", human_age(age_seconds))
    };
    Freshness {
        version: Some(version),
        built_at: Some(built_at.to_string()),
        age_seconds: Some(age_seconds),
        age_max_seconds,
        stale,
        message,
    }
}

/// The status answer, from the database's view (also used by `agent status`
/// when the daemon is not running).
pub fn status_answer(
    config: &Config,
    enrolment: &crate::enrolment::EnrolmentFile,
    status: &store::StoreStatus,
    version: Option<u64>,
    built_at: Option<Timestamp>,
    now: Timestamp,
) -> StatusAnswer {
    let head_seq = status.head.map(|head| head.seq).unwrap_or(0);
    let zone = &config.terminal.time_zone;
    StatusAnswer {
        terminal: enrolment.terminal.clone(),
        merchant: enrolment.merchant.clone(),
        mode: config.terminal.mode.as_str(),
        snapshot: freshness(version, built_at, config.terminal.snapshot_age_max, now),
        journal: JournalStatus {
            records: head_seq,
            head: status.head.map(|head| head.hash.to_hex()),
        },
        outbox: OutboxStatus {
            records: head_seq.saturating_sub(status.acked_through),
            packets: status.outbox_packets,
            acked_through: status.acked_through,
        },
        sync: SyncStatus {
            enabled: config.sync.enabled,
            central: enrolment.central_url.clone(),
            last_success: status.last_sync_ok.clone(),
            last_attempt: status.last_sync_attempt.clone(),
            last_error: status.last_sync_error.clone(),
        },
        clock: ClockStatus {
            now: now.to_string(),
            local: core::local_time(now, zone),
            time_zone: zone.name().to_owned(),
        },
    }
}

/// `"40 s"`, `"5 min"`, `"3 h"`, `"2 days"`.
pub fn human_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match seconds {
        0..=119 => format!("{seconds} s"),
        120..=7_199 => format!("{} min", seconds / 60),
        7_200..=172_799 => format!("{} hours", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}
