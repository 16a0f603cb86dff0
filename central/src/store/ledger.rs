//! Storage of what central decides after ingestion: reconciliation
//! outcomes, fraud and integrity flags with their audit trail, and issued
//! settlements. A separate trait from [`super::Store`] (its supertrait) so
//! that the ledger's queries live beside each other; both backends
//! implement it (`ledger/sqlite.rs`, `ledger/postgres.rs`).
//!
//! What the database guarantees: one usage line per (terminal, seq, line,
//! benefit); a flag's audit trail only grows (numbered steps, so two
//! concurrent decisions cannot both append the same step); an issued
//! settlement is inserted once under a unique number, a unique creditor
//! reference and a unique (provider, merchant, period, sequence), and no
//! method of this trait updates or deletes one.

mod postgres;
mod sqlite;

use super::parse_ts;
use async_trait::async_trait;
use jiff::civil::Date;
use jiff::Timestamp;

use shared::money::Money;
use shared::wire::keys::Hash;

use super::{StoreError, StoreResult};
use crate::reconcile::flags::{AuditEntry, Flag, FlagKind, FlagState, OpenGap};
use crate::reconcile::{Decision, Outcome, OverusePolicy, Policies, UsageRecord};
use crate::settlement::Settlement;

/// A stored record the ledger has not taken in at its current outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRecord {
    pub terminal: String,
    pub seq: u64,
    /// `accepted`, `flagged` or `held`.
    pub outcome: String,
    pub reason: Option<String>,
    /// `sale` or `void`.
    pub kind: String,
    pub merchant: String,
    /// `",riga,state,"`.
    pub providers: String,
    pub snapshot: u64,
    pub credential: String,
    pub at: Timestamp,
    /// Canonical JSON of the record body, as signed.
    pub body: String,
    /// States of the flags on this record (the decision of a reviewer
    /// decides whether a flagged record counts).
    pub flag_states: Vec<FlagState>,
}

/// A usage line as extracted from a record, with the local day it counts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageLine {
    pub record: UsageRecord,
    pub day: Date,
}

/// What the ledger takes in for one record: its usage lines (none when the
/// record does not count) and, for a void, the sale it cancels. Replaces
/// whatever was taken in for the record before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Intake {
    pub terminal: String,
    pub seq: u64,
    pub outcome: String,
    /// `false` when the record does not count (flagged and not accepted, or
    /// rejected by a reviewer): its lines are kept, never payable, so that
    /// what was settled for them is credited back.
    pub counted: bool,
    pub lines: Vec<UsageLine>,
    pub voids: Option<u64>,
}

/// A usage line with its latest decision (`None` before the first run).
/// `record.voided` is set when a void the ledger took in cancels it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUsage {
    pub line: UsageLine,
    pub decision: Option<Decision>,
}

/// A flag as stored, with who may see it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlagRow {
    pub flag: Flag,
    /// The record, terminal or merchant the flag is about, for scoping.
    pub terminal: Option<String>,
    pub seq: Option<u64>,
    pub merchant: Option<String>,
    /// `",riga,state,"`: providers whose money the flagged records concern.
    pub providers: String,
}

/// Which flags to list. `None` is "any".
#[derive(Debug, Clone, Default)]
pub struct FlagFilter {
    pub provider: Option<String>,
    pub merchant: Option<String>,
    pub state: Option<FlagState>,
    pub kind: Option<FlagKind>,
    pub limit: u32,
}

/// A reviewer's decision, appended as step `trail.len() + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagDecision {
    pub id: String,
    /// The state the reviewer saw; the store refuses (conflict) when the
    /// flag is no longer in it.
    pub from: FlagState,
    pub entry: AuditEntry,
    /// Step number: one more than the trail the reviewer saw.
    pub step: u64,
    /// `admin`, `provider` or `merchant` (who decided, beside their label).
    pub role: String,
}

/// An issued settlement as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSettlement {
    pub settlement: Settlement,
    /// Hex SHA-256 of the canonical JSON (`Settlement::fingerprint`).
    pub fingerprint: String,
    /// The canonical JSON as issued, byte for byte.
    pub document: String,
    pub issued_at: Timestamp,
}

/// One issued settlement in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettlementSummary {
    pub number: String,
    pub provider: String,
    pub merchant: String,
    pub period: String,
    pub sequence: u64,
    pub creditor_reference: String,
    pub total_cents: i64,
    pub fingerprint: String,
    pub issued_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct SettlementFilter {
    pub provider: Option<String>,
    pub merchant: Option<String>,
    /// Period label, `2026-03`.
    pub period: Option<String>,
}

/// A usage line with a conflict, for the reconciliation view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictRow {
    pub line: UsageLine,
    pub decision: Decision,
}

/// The ledger's storage interface. Every method is one transaction.
#[async_trait]
pub trait LedgerStore: Send + Sync + 'static {
    /// Records not taken in at their current outcome, in (terminal, seq)
    /// order, at most `limit`.
    async fn ledger_pending(&self, limit: u32) -> StoreResult<Vec<PendingRecord>>;
    /// Takes records in: replaces their usage lines and voids; the lines of
    /// a sale whose void state changes lose their decision.
    async fn ledger_take_in(&self, intakes: Vec<Intake>) -> StoreResult<()>;
    /// Every usage line with its latest decision.
    async fn ledger_usage(&self) -> StoreResult<Vec<StoredUsage>>;
    /// Usage lines whose local day is `since` or later.
    async fn ledger_usage_since(&self, since: Date) -> StoreResult<Vec<StoredUsage>>;
    /// Per benefit, the earliest local day of a line without a current
    /// decision (new, re-taken, or whose void state changed): where the
    /// next run must replay from.
    async fn ledger_pending_days(&self) -> StoreResult<Vec<(String, Date)>>;
    /// Drops the decisions of a benefit's lines (its overuse policy
    /// changed), so that the next run decides them again.
    async fn ledger_reset_benefit(&self, benefit: &str) -> StoreResult<()>;
    /// Stores decisions (only those that changed need to be given).
    async fn ledger_store_decisions(&self, decisions: Vec<Decision>) -> StoreResult<()>;
    /// Usage lines with a conflict whose local day lies in `[from, to]`.
    async fn ledger_conflicts(
        &self,
        from: Date,
        to: Date,
        provider: Option<&str>,
        merchant: Option<&str>,
    ) -> StoreResult<Vec<ConflictRow>>;

    async fn overuse_policies(&self) -> StoreResult<Policies>;
    async fn set_overuse_policy(&self, benefit: &str, policy: &OverusePolicy) -> StoreResult<()>;

    /// Inserts flags not stored yet (by id); a stored flag keeps its state,
    /// trail and first `raised_at`. Returns how many were new.
    async fn raise_flags(&self, flags: Vec<FlagRow>) -> StoreResult<u64>;
    /// Flags in `raised_at`, id order, without their trail.
    async fn flags(&self, filter: &FlagFilter) -> StoreResult<Vec<FlagRow>> {
        self.flags_after(filter, None).await
    }
    /// A page of [`LedgerStore::flags`]: those after flag `after` in that
    /// order (a flag's `raised_at` never changes, so the order is stable
    /// between pages). Empty when `after` names no flag.
    async fn flags_after(
        &self,
        filter: &FlagFilter,
        after: Option<&str>,
    ) -> StoreResult<Vec<FlagRow>>;
    /// One flag with its audit trail.
    async fn flag(&self, id: &str) -> StoreResult<Option<FlagRow>>;
    /// Applies a decision: the flag must still be in `from` with
    /// `step − 1` trail entries, else `Conflict`. A decision on a record
    /// flag makes the record pending again, so the next run counts it or
    /// leaves it out.
    async fn decide_flag(&self, decision: &FlagDecision) -> StoreResult<()>;
    /// Gaps in terminals' chains: records missing below a held record.
    async fn open_gaps(&self) -> StoreResult<Vec<OpenGap>>;

    /// Inserts an issued settlement and what it settled. `Conflict` when
    /// its number, sequence or creditor reference is taken.
    async fn issue_settlement(&self, settlement: &StoredSettlement) -> StoreResult<()>;
    async fn settlements(&self, filter: &SettlementFilter) -> StoreResult<Vec<SettlementSummary>>;
    async fn settlement(&self, number: &str) -> StoreResult<Option<StoredSettlement>>;
    /// Every issued settlement (to rebuild the settlement ledger).
    async fn all_settlements(&self) -> StoreResult<Vec<StoredSettlement>>;

    /// Invoice details (JSON) of a `provider` or `merchant`.
    async fn invoice_party(&self, role: &str, id: &str) -> StoreResult<Option<String>>;
    async fn set_invoice_party(&self, role: &str, id: &str, details: &str) -> StoreResult<()>;
}

/// The stored text of a decision's outcome (`pending` before any decision).
pub(crate) fn outcome_text(decision: Option<&Decision>) -> &'static str {
    match decision.map(|decision| decision.outcome) {
        None => "pending",
        Some(Outcome::Payable) => "payable",
        Some(Outcome::Tolerated) => "tolerated",
        Some(Outcome::Reduced) => "reduced",
        Some(Outcome::NotPayable) => "not_payable",
        Some(Outcome::Voided) => "voided",
    }
}

fn parse_outcome(text: &str) -> StoreResult<Option<Outcome>> {
    Ok(Some(match text {
        "pending" => return Ok(None),
        "payable" => Outcome::Payable,
        "tolerated" => Outcome::Tolerated,
        "reduced" => Outcome::Reduced,
        "not_payable" => Outcome::NotPayable,
        "voided" => Outcome::Voided,
        other => return Err(StoreError::Other(format!("usage outcome {other:?}"))),
    }))
}

pub(crate) fn parse_day(text: &str) -> StoreResult<Date> {
    text.parse()
        .map_err(|err| StoreError::Other(format!("stored day {text:?}: {err}")))
}

pub(crate) fn parse_state(text: &str) -> StoreResult<FlagState> {
    match text {
        "open" => Ok(FlagState::Open),
        "accepted" => Ok(FlagState::Accepted),
        "rejected" => Ok(FlagState::Rejected),
        other => Err(StoreError::Other(format!("flag state {other:?}"))),
    }
}

pub(crate) fn parse_kind(text: &str) -> StoreResult<FlagKind> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Other(format!("flag kind {text:?}")))
}

/// One `ledger_usage` row as both backends read it.
pub(crate) struct UsageColumns {
    pub terminal: String,
    pub seq: i64,
    pub line: i64,
    pub benefit: String,
    pub at: String,
    pub day: String,
    pub recipient: String,
    pub credential: String,
    pub provider: String,
    pub merchant: String,
    pub category: String,
    pub amount_cents: i64,
    pub units: i64,
    pub snapshot: i64,
    pub record_hash: String,
    pub voided: bool,
    pub outcome: String,
    pub payable_cents: i64,
    pub payable_units: i64,
    pub conflicts: String,
}

/// The column list matching [`UsageColumns`]; `u` is `ledger_usage`.
pub(crate) const USAGE_COLUMNS: &str = "u.terminal, u.seq, u.line, u.benefit, u.at, u.day, \
     u.recipient, u.credential, u.provider, u.merchant, u.category, u.amount_cents, u.units, \
     u.snapshot, u.record_hash, \
     (u.counted = 0 OR EXISTS (SELECT 1 FROM ledger_voids v WHERE v.terminal = u.terminal AND v.voids = u.seq)), \
     u.outcome, u.payable_cents, u.payable_units, u.conflicts";

fn to_u(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value)
        .map_err(|_| StoreError::Other(format!("stored {what} {value} is negative")))
}

fn to_u32(value: i64, what: &str) -> StoreResult<u32> {
    u32::try_from(value)
        .map_err(|_| StoreError::Other(format!("stored {what} {value} is out of range")))
}

impl UsageColumns {
    pub(crate) fn into_stored(self) -> StoreResult<StoredUsage> {
        let record_hash = Hash::from_hex(&self.record_hash)
            .map_err(|err| StoreError::Other(format!("stored record hash: {err}")))?;
        let record = UsageRecord {
            terminal: self.terminal,
            seq: to_u(self.seq, "seq")?,
            line: to_u32(self.line, "line")?,
            at: parse_ts(&self.at)?,
            recipient: self.recipient,
            credential: self.credential,
            benefit: self.benefit,
            provider: self.provider,
            merchant: self.merchant,
            category: self.category,
            amount: Money::from_cents(self.amount_cents),
            count: to_u32(self.units, "units")?,
            snapshot: to_u(self.snapshot, "snapshot")?,
            voided: self.voided,
            record_hash,
        };
        let decision = match parse_outcome(&self.outcome)? {
            None => None,
            Some(outcome) => Some(Decision {
                key: record.key(),
                outcome,
                claimed: record.amount,
                claimed_count: record.count,
                payable: Money::from_cents(self.payable_cents),
                payable_count: to_u32(self.payable_units, "payable units")?,
                conflicts: serde_json::from_str(&self.conflicts)
                    .map_err(|err| StoreError::Other(format!("stored conflicts: {err}")))?,
            }),
        };
        Ok(StoredUsage {
            line: UsageLine {
                day: parse_day(&self.day)?,
                record,
            },
            decision,
        })
    }
}

/// Text of a subject for storage.
pub(crate) fn subject_json(flag: &Flag) -> StoreResult<String> {
    serde_json::to_string(&flag.subject)
        .map_err(|err| StoreError::Other(format!("flag subject: {err}")))
}

/// One `ledger_flags` row as both backends read it.
pub(crate) struct FlagColumns {
    pub id: String,
    pub kind: String,
    pub subject: String,
    pub terminal: Option<String>,
    pub seq: Option<i64>,
    pub merchant: Option<String>,
    pub providers: String,
    pub state: String,
    pub raised_at: String,
    pub evidence: String,
}

pub(crate) const FLAG_COLUMNS: &str =
    "id, kind, subject, terminal, seq, merchant, providers, state, raised_at, evidence";

impl FlagColumns {
    pub(crate) fn into_row(self, trail: Vec<AuditEntry>) -> StoreResult<FlagRow> {
        let bad =
            |what: &str, err: serde_json::Error| StoreError::Other(format!("flag {what}: {err}"));
        Ok(FlagRow {
            flag: Flag {
                id: self.id,
                kind: parse_kind(&self.kind)?,
                subject: serde_json::from_str(&self.subject).map_err(|err| bad("subject", err))?,
                raised_at: parse_ts(&self.raised_at)?,
                evidence: serde_json::from_str(&self.evidence)
                    .map_err(|err| bad("evidence", err))?,
                state: parse_state(&self.state)?,
                trail,
            },
            terminal: self.terminal,
            seq: self.seq.map(|seq| to_u(seq, "seq")).transpose()?,
            merchant: self.merchant,
            providers: self.providers,
        })
    }
}

/// Parses a stored settlement document and checks it against its fingerprint.
pub(crate) fn stored_settlement(
    document: String,
    fingerprint: String,
    issued_at: &str,
) -> StoreResult<StoredSettlement> {
    let settlement: Settlement = serde_json::from_str(&document)
        .map_err(|err| StoreError::Other(format!("stored settlement: {err}")))?;
    let actual = settlement
        .fingerprint()
        .map_err(|err| StoreError::Other(err.to_string()))?
        .to_hex();
    if actual != fingerprint {
        return Err(StoreError::Other(format!(
            "settlement {}: stored document does not match its fingerprint {fingerprint} (found {actual}): it was altered",
            settlement.number
        )));
    }
    Ok(StoredSettlement {
        settlement,
        fingerprint,
        document,
        issued_at: parse_ts(issued_at)?,
    })
}
