//! The ledger: what central does with verified records after ingestion.
//!
//! A run ([`run`]) takes in every stored record it has not seen at its
//! current outcome (new records, held records released, flags decided),
//! turning each into usage lines (one per cart line × benefit, with the
//! line's units and category; the provider from the discount, checked
//! against the benefit); then it reconciles every counting line across
//! terminals (`crate::reconcile`), stores the decisions that changed, and
//! raises flags: ingestion's findings (discount mismatches, blocked
//! credentials, other refusals), forks and bad signatures from the evidence
//! tables, unfilled chain gaps, offline overuse, impossible travel and
//! unusual volume.
//!
//! [`issue`] settles a period for every provider × merchant
//! (`crate::settlement`) against what earlier settlements settled, and
//! stores the settlements, which are never rewritten: a later change of
//! what is payable becomes an adjustment in the next one.
//!
//! Runs are triggered after ingestion by [`ingested`] (a background task
//! per server, debounced so that a burst of packets reconciles once) and at
//! start by [`spawn`]. Nothing is lost when central stops: what is pending
//! is derived from the stored records, not from a queue in memory.
//!
//! Deterministic: the same stored records give the same usage lines,
//! decisions and flag ids whatever order they arrived in.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use jiff::civil::Date;
use jiff::Timestamp;
use serde_json::json;
use shared::model::{Benefit, Zone};
use shared::wire::keys::Hash;
use shared::wire::record::{RecordBody, RecordKind};
use tokio::sync::Notify;

use crate::ingest::units_per_line;
use crate::reconcile::flags::{self, Flag, FlagKind, FlagState, Subject, GAP_FILL_LIMIT};
use crate::reconcile::{self, Decision, UsageRecord};
use crate::settlement::{self, Ledger, Settlement, SettlementPeriod, VatRules};
use crate::store::ledger::{FlagRow, Intake, PendingRecord, StoredSettlement, UsageLine};
use crate::store::{Store, StoreError};
use crate::{AppState, State};

/// Records taken in per transaction.
const INTAKE_BATCH: u32 = 5_000;
/// How long a burst of packets has to end before the run starts.
pub const DEBOUNCE: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reconciliation: {0}")]
    Reconcile(#[from] reconcile::ReconcileError),
    #[error("settlement: {0}")]
    Settlement(#[from] settlement::SettlementError),
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub records_taken_in: u64,
    pub usage_lines: u64,
    pub decisions_changed: u64,
    pub flags_raised: u64,
    /// Milliseconds per phase (take in, load, reconcile, store, flags), for
    /// logs and the benchmark.
    pub phases_ms: Vec<(&'static str, u64)>,
}

/// One run at a time per process: runs read everything and write what
/// changed, so two at once would only repeat each other's work.
static RUN_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Takes in pending records, reconciles every usage line, stores changed
/// decisions and raises flags.
pub async fn run(store: &dyn Store, now: Timestamp) -> Result<RunReport, LedgerError> {
    let _guard = RUN_LOCK.lock().await;
    run_locked(store, now).await
}

async fn run_locked(store: &dyn Store, now: Timestamp) -> Result<RunReport, LedgerError> {
    let mut report = RunReport::default();
    let benefits: Vec<Benefit> = store
        .benefits(None)
        .await?
        .into_iter()
        .map(|stored| stored.benefit)
        .collect();
    let by_id: HashMap<&str, &Benefit> = benefits.iter().map(|b| (b.id.as_str(), b)).collect();
    let mut versions: HashMap<String, Option<Benefit>> = HashMap::new();
    let mut phase = std::time::Instant::now();
    let mut lap = |report: &mut RunReport, name: &'static str| {
        let ms = u64::try_from(phase.elapsed().as_millis()).unwrap_or(u64::MAX);
        report.phases_ms.push((name, ms));
        phase = std::time::Instant::now();
    };
    loop {
        let pending = store.ledger_pending(INTAKE_BATCH).await?;
        if pending.is_empty() {
            break;
        }
        let mut intakes = Vec::with_capacity(pending.len());
        let mut raised = Vec::new();
        for record in &pending {
            let body: Option<RecordBody> = serde_json::from_str(&record.body).ok();
            let lines = match &body {
                Some(body) => usage_lines(store, record, body, &by_id, &mut versions).await?,
                None => Vec::new(),
            };
            if let Some(flag) = ingestion_flag(record, now) {
                raised.push(flag);
            }
            intakes.push(Intake {
                terminal: record.terminal.clone(),
                seq: record.seq,
                outcome: record.outcome.clone(),
                counted: counts(record),
                lines,
                voids: body
                    .as_ref()
                    .filter(|body| body.kind == RecordKind::Void)
                    .and_then(|body| body.voids),
            });
        }
        report.records_taken_in += pending.len() as u64;
        // Flags first: a crash between the two re-takes the records and
        // finds the flags already there (ids are stable).
        report.flags_raised += store.raise_flags(raised).await?;
        store.ledger_take_in(intakes).await?;
    }

    lap(&mut report, "take_in");
    // Only the periods that changes touch are replayed: from the start of
    // the longest limit period containing the earliest undecided line of
    // each benefit (`reconcile::replay_window_start`), and at least the
    // detectors' 29 days of history. Lines before keep their decisions.
    let pending_days = store.ledger_pending_days().await?;
    let window_start = pending_days
        .iter()
        .filter_map(|(benefit, day)| {
            let benefit = by_id.get(benefit.as_str())?;
            let day_start = day
                .to_zoned(benefit.time_zone.tz().clone())
                .ok()?
                .timestamp();
            Some(reconcile::replay_window_start(benefit, day_start))
        })
        .min();
    let Some(window_start) = window_start else {
        // Nothing undecided: only the time-dependent checks (gaps, forks).
        let flag_rows = detector_flags(store, &[], &[], now, false).await?;
        report.flags_raised += store.raise_flags(flag_rows).await?;
        lap(&mut report, "flags");
        return Ok(report);
    };
    let loaded_from = window_start.min(
        now.checked_sub(jiff::SignedDuration::from_hours(29 * 24))
            .unwrap_or(window_start),
    );
    // Days are local; a day earlier in UTC covers every zone's offset.
    let since = loaded_from
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .yesterday()
        .unwrap_or(Date::MIN);
    let stored = store.ledger_usage_since(since).await?;
    let (records, previous): (Vec<UsageRecord>, Vec<Option<Decision>>) = stored
        .into_iter()
        .filter(|usage| {
            by_id.contains_key(usage.line.record.benefit.as_str())
                && usage.line.record.at >= loaded_from
        })
        .map(|usage| (usage.line.record, usage.decision))
        .unzip();
    report.usage_lines = records.len() as u64;
    let policies = store.overuse_policies().await?;
    lap(&mut report, "load");
    let kept: Vec<Decision> = previous.iter().flatten().cloned().collect();
    let replayed = reconcile::reconcile_late(&benefits, &policies, &kept, &records, loaded_from)?;
    lap(&mut report, "reconcile");
    let changed: Vec<Decision> = replayed
        .decisions
        .iter()
        .zip(&previous)
        .filter(|(decision, previous)| previous.as_ref() != Some(*decision))
        .map(|(decision, _)| decision.clone())
        .collect();
    report.decisions_changed = changed.len() as u64;
    if !changed.is_empty() {
        store.ledger_store_decisions(changed).await?;
    }
    lap(&mut report, "store");
    let flag_rows = detector_flags(store, &records, &replayed.decisions, now, true).await?;
    report.flags_raised += store.raise_flags(flag_rows).await?;
    lap(&mut report, "flags");
    Ok(report)
}

/// Whether a record counts toward usage and payment: accepted and not
/// rejected by a reviewer, or flagged at ingestion and accepted by one.
fn counts(record: &PendingRecord) -> bool {
    let rejected = record.flag_states.contains(&FlagState::Rejected);
    let accepted = record.flag_states.contains(&FlagState::Accepted);
    match record.outcome.as_str() {
        "accepted" => !rejected,
        "flagged" => accepted && !rejected,
        _ => false,
    }
}

/// Usage lines of a sale: one per discount (cart line × benefit).
async fn usage_lines(
    store: &dyn Store,
    record: &PendingRecord,
    body: &RecordBody,
    by_id: &HashMap<&str, &Benefit>,
    versions: &mut HashMap<String, Option<Benefit>>,
) -> Result<Vec<UsageLine>, LedgerError> {
    if body.kind != RecordKind::Sale || body.quote.discounts.is_empty() {
        return Ok(Vec::new());
    }
    let units = if body.cart.iter().any(|line| line.qty > 1) {
        let mut definitions = Vec::new();
        for named in &body.inputs.benefits {
            let hash = named.hash.to_hex();
            if !versions.contains_key(&hash) {
                let version = store.benefit_version(&hash).await?.map(|v| v.benefit);
                versions.insert(hash.clone(), version);
            }
            if let Some(Some(benefit)) = versions.get(&hash) {
                definitions.push(benefit.clone());
            }
        }
        Some(units_per_line(body, &definitions))
    } else {
        None
    };
    let record_hash = Hash::of(record.body.as_bytes());
    let mut amounts: BTreeMap<(u32, &str), (shared::money::Money, &str)> = BTreeMap::new();
    for discount in &body.quote.discounts {
        let entry = amounts
            .entry((discount.line, discount.benefit.as_str()))
            .or_insert((shared::money::Money::ZERO, discount.provider.as_str()));
        entry.0 += discount.amount;
    }
    let mut lines = Vec::with_capacity(amounts.len());
    for ((line, benefit), (amount, provider)) in amounts {
        let Some(cart_line) = body.cart.get(line as usize) else {
            continue; // verification re-ran the quote: cannot happen for a verified record
        };
        let count = match &units {
            None => 1,
            Some(units) => units
                .get(&(line, benefit.to_owned()))
                .copied()
                .unwrap_or(cart_line.qty)
                .max(1),
        };
        let zone = by_id
            .get(benefit)
            .map(|b| b.time_zone.clone())
            .unwrap_or_default();
        lines.push(UsageLine {
            day: local_day(&zone, body.at),
            record: UsageRecord {
                terminal: record.terminal.clone(),
                seq: record.seq,
                line,
                at: body.at,
                recipient: body.recipient.clone(),
                credential: body.credential.hash.clone(),
                benefit: benefit.to_owned(),
                provider: provider.to_owned(),
                merchant: body.merchant.clone(),
                category: cart_line.category.clone(),
                amount,
                count,
                snapshot: body.inputs.snapshot,
                voided: false,
                record_hash,
            },
        });
    }
    Ok(lines)
}

fn local_day(zone: &Zone, at: Timestamp) -> Date {
    at.to_zoned(zone.tz().clone()).date()
}

/// The flag for a record ingestion flagged, by its reason.
fn ingestion_flag(record: &PendingRecord, now: Timestamp) -> Option<FlagRow> {
    if record.outcome != "flagged" {
        return None;
    }
    let reason = record.reason.clone().unwrap_or_default();
    let kind = match reason.as_str() {
        "bad_signature" => FlagKind::BadSignature,
        "fork" => FlagKind::Fork,
        "discount_mismatch" => FlagKind::DiscountMismatch,
        "blocked_credential" => FlagKind::BlockedCredential,
        _ => FlagKind::RecordRefused,
    };
    let flag = Flag::raise(
        kind,
        Subject::Record {
            terminal: record.terminal.clone(),
            seq: record.seq,
        },
        &reason,
        json!({
            "reason": reason,
            "merchant": record.merchant,
            "at": record.at,
            "credential": record.credential,
            "snapshot": record.snapshot,
        }),
        now,
    );
    Some(FlagRow {
        flag,
        terminal: Some(record.terminal.clone()),
        seq: Some(record.seq),
        merchant: Some(record.merchant.clone()),
        providers: record.providers.clone(),
    })
}

/// Flags that look across records: overuse, forks, bad signatures, gaps,
/// travel, volume (the ones over records only when `over_records`).
async fn detector_flags(
    store: &dyn Store,
    records: &[UsageRecord],
    decisions: &[Decision],
    now: Timestamp,
    over_records: bool,
) -> Result<Vec<FlagRow>, LedgerError> {
    let (records, decisions) = if over_records {
        (records, decisions)
    } else {
        (&[][..], &[][..])
    };
    let counting: Vec<UsageRecord> = records.iter().filter(|r| !r.voided).cloned().collect();
    let terminal_merchant: HashMap<String, String> = store
        .terminals(None)
        .await?
        .into_iter()
        .map(|t| (t.id, t.merchant))
        .collect();
    let mut record_scope: HashMap<(&str, u64), (&str, HashSet<&str>)> = HashMap::new();
    for record in records {
        let entry = record_scope
            .entry((&record.terminal, record.seq))
            .or_insert_with(|| (&record.merchant, HashSet::new()));
        entry.1.insert(&record.provider);
    }
    let providers_text = |providers: &mut dyn Iterator<Item = &str>| -> String {
        let mut sorted: Vec<&str> = providers.collect();
        sorted.sort_unstable();
        sorted.dedup();
        sorted.iter().fold(String::from(","), |mut out, p| {
            out.push_str(p);
            out.push(',');
            out
        })
    };
    let mut found: Vec<Flag> = flags::overuse_flags(records, decisions, now);
    found.extend(flags::impossible_travel(
        &counting,
        &[],
        &flags::TravelConfig::default(),
        now,
    ));
    found.extend(flags::unusual_volume(
        &counting,
        &flags::VolumeConfig::default(),
        now,
    ));
    found.extend(flags::unfilled_gaps(
        &store.open_gaps().await?,
        now,
        GAP_FILL_LIMIT,
    ));
    let mut rows = Vec::with_capacity(found.len());
    for fork in store.forks(None).await? {
        let body: Option<RecordBody> = serde_json::from_str(&fork.body).ok();
        let flag = Flag::raise(
            FlagKind::Fork,
            Subject::Record {
                terminal: fork.terminal.clone(),
                seq: fork.seq,
            },
            &fork.hash,
            json!({"second_hash": fork.hash, "second_at": body.as_ref().map(|b| b.at)}),
            now,
        );
        let providers = body
            .as_ref()
            .map(|b| providers_text(&mut b.quote.by_provider.keys().map(String::as_str)))
            .unwrap_or_else(|| ",".to_owned());
        rows.push(FlagRow {
            flag,
            terminal: Some(fork.terminal.clone()),
            seq: Some(fork.seq),
            merchant: terminal_merchant.get(&fork.terminal).cloned(),
            providers,
        });
    }
    // Copies whose signature failed are kept apart from the chain
    // (`bad_signatures`), so no stored record carries this finding. Only the
    // admin and the terminal's merchant see the flag: the copy's own claims
    // (which providers funded it) are not the terminal's, so they grant no
    // provider a view of it.
    for copy in store.bad_signatures(None).await? {
        let body: Option<RecordBody> = serde_json::from_str(&copy.body).ok();
        let flag = Flag::raise(
            FlagKind::BadSignature,
            Subject::Record {
                terminal: copy.terminal.clone(),
                seq: copy.seq,
            },
            &copy.hash,
            json!({"hash": copy.hash, "at": body.as_ref().map(|b| b.at)}),
            now,
        );
        rows.push(FlagRow {
            flag,
            terminal: Some(copy.terminal.clone()),
            seq: Some(copy.seq),
            merchant: terminal_merchant.get(&copy.terminal).cloned(),
            providers: ",".to_owned(),
        });
    }
    for flag in found {
        let (terminal, seq, merchant, providers) = match &flag.subject {
            Subject::Record { terminal, seq } => {
                let scope = record_scope.get(&(terminal.as_str(), *seq));
                (
                    Some(terminal.clone()),
                    Some(*seq),
                    scope.map(|(merchant, _)| (*merchant).to_owned()),
                    scope.map_or_else(
                        || ",".to_owned(),
                        |(_, providers)| providers_text(&mut providers.iter().copied()),
                    ),
                )
            }
            Subject::Terminal { terminal } => (
                Some(terminal.clone()),
                None,
                terminal_merchant.get(terminal).cloned(),
                ",".to_owned(),
            ),
            Subject::Merchant { merchant } => (None, None, Some(merchant.clone()), ",".to_owned()),
            Subject::Credential { .. } => {
                // The two records of a travel finding: their providers may look.
                let mut providers = Vec::new();
                for side in ["first", "second"] {
                    let terminal = flag.evidence[side]["terminal"].as_str().unwrap_or("");
                    let seq = flag.evidence[side]["seq"].as_u64().unwrap_or(0);
                    if let Some((_, funded)) = record_scope.get(&(terminal, seq)) {
                        providers.extend(funded.iter().copied());
                    }
                }
                (None, None, None, providers_text(&mut providers.into_iter()))
            }
        };
        rows.push(FlagRow {
            flag,
            terminal,
            seq,
            merchant,
            providers,
        });
    }
    Ok(rows)
}

/// Issues the settlements of `period` (every provider × merchant with
/// something to settle, or only `provider`'s), after a run so that they
/// rest on current decisions. Returns what was issued.
pub async fn issue(
    store: &dyn Store,
    period: SettlementPeriod,
    provider: Option<&str>,
    now: Timestamp,
) -> Result<Vec<StoredSettlement>, LedgerError> {
    let _guard = RUN_LOCK.lock().await;
    run_locked(store, now).await?;
    let benefits: Vec<Benefit> = store
        .benefits(None)
        .await?
        .into_iter()
        .map(|stored| stored.benefit)
        .collect();
    let known: HashSet<&str> = benefits.iter().map(|b| b.id.as_str()).collect();
    // Every line, not only the last run's window: a record of an earlier
    // period never settled, or settled at another amount, is an adjustment.
    let mut records = Vec::new();
    let mut decisions = Vec::new();
    for usage in store.ledger_usage().await? {
        if !known.contains(usage.line.record.benefit.as_str())
            || provider.is_some_and(|p| p != usage.line.record.provider)
        {
            continue;
        }
        let Some(decision) = usage.decision else {
            continue; // cannot happen right after a run
        };
        records.push(usage.line.record);
        decisions.push(decision);
    }
    let issued: Vec<Settlement> = store
        .all_settlements()
        .await?
        .into_iter()
        .map(|stored| stored.settlement)
        .collect();
    let ledger = Ledger::from_settlements(&issued);
    let issued_on = local_day(&Zone::default(), now);
    let settlements = settlement::settle_all(
        &benefits,
        &VatRules::latvia(),
        &records,
        &decisions,
        &ledger,
        period,
        issued_on,
    )?;
    let mut out = Vec::with_capacity(settlements.len());
    for settlement in settlements {
        let document = shared::wire::canonical::to_vec(&settlement)
            .map_err(|err| StoreError::Other(format!("encoding {}: {err}", settlement.number)))?;
        let stored = StoredSettlement {
            // `Settlement::fingerprint` of the same canonical bytes, without encoding twice.
            fingerprint: Hash::of(&document).to_hex(),
            document: String::from_utf8_lossy(&document).into_owned(),
            issued_at: now,
            settlement,
        };
        store.issue_settlement(&stored).await?;
        out.push(stored);
    }
    Ok(out)
}

/// Parses `2026-03` into the calendar month.
pub fn parse_month(text: &str) -> Result<SettlementPeriod, String> {
    let bad = || format!("period {text:?}: expected a month as YYYY-MM, e.g. 2026-03");
    let (year, month) = text.split_once('-').ok_or_else(bad)?;
    if year.len() != 4 || month.len() != 2 {
        return Err(bad());
    }
    let year: i16 = year.parse().map_err(|_| bad())?;
    let month: i8 = month.parse().map_err(|_| bad())?;
    SettlementPeriod::month(year, month).map_err(|err| format!("period {text:?}: {err}"))
}

/// Called after a packet was ingested: wakes this server's runner (started
/// on first use). Never waits: the packet answer is not delayed.
pub fn ingested(state: &AppState) {
    notifier(state, DEBOUNCE).notify_one();
}

/// Starts the runner of this server if needed, and runs once now: what was
/// ingested before a stop is reconciled at the next start.
pub fn spawn(state: &AppState, debounce: Duration) {
    notifier(state, debounce).notify_one();
}

/// This server's runner, started by the first call; it holds the state
/// weakly and ends when the server's state is dropped.
fn notifier(state: &AppState, debounce: Duration) -> &Notify {
    state
        .ledger_runner
        .get_or_init(|| start_runner(Arc::downgrade(&state.0), debounce))
}

fn start_runner(weak: Weak<State>, debounce: Duration) -> Arc<Notify> {
    let notify = Arc::new(Notify::new());
    let wake = Arc::clone(&notify);
    tokio::spawn(async move {
        loop {
            wake.notified().await;
            tokio::time::sleep(debounce).await;
            let Some(state) = weak.upgrade() else {
                return;
            };
            let now = state.clock.now();
            match run(state.store.as_ref(), now).await {
                Ok(report) => tracing::info!(
                    taken_in = report.records_taken_in,
                    lines = report.usage_lines,
                    changed = report.decisions_changed,
                    flags = report.flags_raised,
                    phases_ms = ?report.phases_ms,
                    "ledger run"
                ),
                Err(err) => {
                    tracing::error!(error = %err, "ledger run failed; retried on the next packet")
                }
            }
        }
    });
    notify
}

/// Why a flag decision was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("flag {0:?} not found")]
    NotFound(String),
    /// Who or the note is missing.
    #[error("{0}")]
    Incomplete(String),
    /// An illegal transition, or the flag changed meanwhile.
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
}

/// Applies a decision to a flag (a pure transition, then one store
/// transaction that refuses when someone decided meanwhile). `role` says
/// which kind of token or operator decided, beside `who`.
pub async fn decide(
    store: &dyn Store,
    flag: &FlagRow,
    to: FlagState,
    who: &str,
    role: &str,
    note: &str,
    now: Timestamp,
) -> Result<(), DecideError> {
    let next = flags::transition(&flag.flag, to, who, now, note).map_err(|err| match err {
        flags::TransitionError::NoActor { .. } | flags::TransitionError::NoNote { .. } => {
            DecideError::Incomplete(err.to_string())
        }
        _ => DecideError::Conflict(err.to_string()),
    })?;
    let entry = next.trail.last().cloned().ok_or_else(|| {
        DecideError::Store(StoreError::Other("transition left no audit entry".into()))
    })?;
    store
        .decide_flag(&crate::store::ledger::FlagDecision {
            id: flag.flag.id.clone(),
            from: flag.flag.state,
            step: flag.flag.trail.len() as u64 + 1,
            entry,
            role: role.to_owned(),
        })
        .await
        .map_err(|err| match err {
            StoreError::Conflict(message) => DecideError::Conflict(message),
            StoreError::NotFound(what) => DecideError::NotFound(what),
            other => DecideError::Store(other),
        })
}

/// A merchant's or provider's invoice details as stored (JSON).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceDetails {
    pub party: crate::einvoice::Party,
    /// The merchant's account (merchants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iban: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_days: Option<u16>,
    /// The provider's own reference for its books (providers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buyer_reference: Option<String>,
}

/// Why an invoice could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum InvoiceError {
    #[error("{0}")]
    NoDocument(String),
    /// The merchant or provider has no usable invoice details.
    #[error("{0}")]
    Details(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn invoice_details(
    store: &dyn Store,
    role: &str,
    id: &str,
) -> Result<InvoiceDetails, InvoiceError> {
    let text = store.invoice_party(role, id).await?.ok_or_else(|| {
        InvoiceError::Details(format!(
            "{role} {id:?} has no invoice details yet: PUT /api/v1/invoice-details/{role}/{id}"
        ))
    })?;
    serde_json::from_str(&text).map_err(|err| {
        InvoiceError::Store(StoreError::Other(format!(
            "stored invoice details of {role} {id}: {err}"
        )))
    })
}

/// One document of an issued settlement as UBL XML (`document`: its id;
/// the first document when `None`).
pub async fn render_invoice(
    store: &dyn Store,
    stored: &StoredSettlement,
    document: Option<&str>,
) -> Result<String, InvoiceError> {
    let settlement = &stored.settlement;
    let found = match document {
        Some(id) => settlement.documents.iter().find(|d| d.id == id),
        None => settlement.documents.first(),
    }
    .ok_or_else(|| {
        InvoiceError::NoDocument(format!(
            "document {:?} of settlement {}: it has {:?}",
            document.unwrap_or(""),
            settlement.number,
            settlement
                .documents
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>()
        ))
    })?;
    let seller = invoice_details(store, "merchant", &settlement.merchant).await?;
    let buyer = invoice_details(store, "provider", &settlement.provider).await?;
    let context = crate::einvoice::InvoiceContext {
        iban: seller.iban.clone().ok_or_else(|| {
            InvoiceError::Details(format!(
                "merchant {:?}: invoice details have no iban",
                settlement.merchant
            ))
        })?,
        bic: seller.bic.clone(),
        payment_days: seller.payment_days.unwrap_or(30),
        buyer_reference: buyer.buyer_reference.clone(),
        seller: seller.party,
        buyer: buyer.party,
    };
    crate::einvoice::render(settlement, found, &context)
        .map_err(|err| InvoiceError::Details(err.to_string()))
}
