//! Reconciliation across terminals: is the sum of what all terminals gave a
//! recipient within the benefit's limits, and who bears it when not.
//!
//! Offline terminals cannot see each other, so two tills can each give "one
//! lunch a day" to the same pupil. Verification (at ingestion) checks that
//! each terminal applied the rules to what it knew; this module looks across
//! terminals afterwards. It replays every recipient's usage of each benefit
//! in time order and decides, per usage record, what the provider pays:
//!
//! - within every limit: payable in full;
//! - beyond a limit but within the benefit's [`OverusePolicy`] tolerance:
//!   payable in full, with an `offline_overuse_tolerated` conflict;
//! - beyond limit + tolerance: the later record is reduced to what still
//!   fits (amount limits), or loses the units that do not fit (count
//!   limits, the amount reduced pro rata), with an `offline_overuse`
//!   conflict. The merchant bears what is not payable.
//!
//! The rule, with worked examples, is in `docs/reconciliation.md`.
//!
//! Late arrivals ([`reconcile_late`]) replay only the groups they touch,
//! from the first changed record on, and return per-record payable deltas;
//! settlements turn them into adjustments, never rewriting an issued one.
//!
//! [`flags`] holds the fraud and integrity detectors and the flag model with
//! its audit trail.
//!
//! Pure: no I/O, no clock. The caller (ingestion and storage) feeds records
//! and stores decisions.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use shared::model::{Benefit, Period};
use shared::money::Money;
use shared::time::{period_start, LocalNow};
use shared::wire::keys::Hash;

/// One benefit's discount on one cart line of one signed record: the unit
/// that reconciliation, settlements and open data work on.
///
/// A record whose quote has several `LineDiscount`s becomes several usage
/// records, one per (line, benefit), all with the record's `terminal`,
/// `seq`, `at` and `record_hash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageRecord {
    pub terminal: String,
    /// The record's per-terminal sequence number (1, 2, 3, …).
    pub seq: u64,
    /// Index of the cart line in the record (`LineDiscount::line`).
    pub line: u32,
    /// The instant of the tap.
    pub at: Timestamp,
    /// Pseudonymous recipient reference.
    pub recipient: String,
    /// Keyed hash of the credential used (for the travel detector).
    pub credential: String,
    pub benefit: String,
    pub provider: String,
    pub merchant: String,
    /// Category of the cart line (decides the VAT rate in settlements).
    pub category: String,
    /// Discount the terminal gave on this line for this benefit.
    pub amount: Money,
    /// Units of the line this benefit discounted (each is one use for
    /// count limits, as in the rules engine).
    pub count: u32,
    /// Snapshot version the terminal quoted against.
    pub snapshot: u64,
    /// `true` when a void record of the same terminal cancels this sale.
    #[serde(default)]
    pub voided: bool,
    pub record_hash: Hash,
}

impl UsageRecord {
    pub fn key(&self) -> RecordKey {
        RecordKey {
            terminal: self.terminal.clone(),
            seq: self.seq,
            line: self.line,
            benefit: self.benefit.clone(),
        }
    }

    fn key_ref(&self) -> KeyRef<'_> {
        (&self.terminal, self.seq, self.line, &self.benefit)
    }
}

type KeyRef<'a> = (&'a str, u64, u32, &'a str);

/// Identity of a usage record: terminal, seq, line and benefit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordKey {
    pub terminal: String,
    pub seq: u64,
    pub line: u32,
    pub benefit: String,
}

impl RecordKey {
    fn as_ref(&self) -> KeyRef<'_> {
        (&self.terminal, self.seq, self.line, &self.benefit)
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}#{} line {} benefit {}",
            self.terminal, self.seq, self.line, self.benefit
        )
    }
}

/// How much offline overuse a provider accepts for one benefit, per limit
/// and per period, like a card scheme's offline floor limit. Applies to
/// every limit of the benefit: `tolerance_count` to its count limits,
/// `tolerance_amount` to its amount limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OverusePolicy {
    #[serde(default)]
    pub tolerance_count: u32,
    #[serde(default)]
    pub tolerance_amount: Money,
}

/// Policies keyed by benefit id; a benefit without an entry has zero
/// tolerance.
pub type Policies = BTreeMap<String, OverusePolicy>;

/// What reconciliation decided for one usage record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    pub key: RecordKey,
    pub outcome: Outcome,
    /// What the terminal gave.
    pub claimed: Money,
    pub claimed_count: u32,
    /// What the provider pays for it.
    pub payable: Money,
    pub payable_count: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<Conflict>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Within every limit.
    Payable,
    /// Payable in full, but beyond a limit within the tolerance.
    Tolerated,
    /// Partly payable: part of it is beyond limit + tolerance.
    Reduced,
    /// Nothing payable: all of it is beyond limit + tolerance.
    NotPayable,
    /// Cancelled by a void record; never payable.
    Voided,
}

/// One limit a record went beyond, and by how much.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Conflict {
    pub kind: ConflictKind,
    /// Index of the limit in the benefit's `limits`.
    pub limit: usize,
    pub period: Period,
    /// First local day of the period instance, in the benefit's zone.
    pub period_start: Date,
    /// The limit (`max_count` or `max_amount`).
    pub max: Quantity,
    pub tolerance: Quantity,
    /// Payable usage in the period before this record.
    pub used_before: Quantity,
    /// Tolerated: the part of this record beyond `max`.
    /// Overuse: the part of this record refused (beyond `max + tolerance`).
    pub excess: Quantity,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    OfflineOveruseTolerated,
    OfflineOveruse,
}

impl ConflictKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConflictKind::OfflineOveruseTolerated => "offline_overuse_tolerated",
            ConflictKind::OfflineOveruse => "offline_overuse",
        }
    }
}

/// A number of uses or an amount of money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    Count(u64),
    Amount(Money),
}

/// What is wrong with an input, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {kind}")]
pub struct ReconcileError {
    /// `records[17] (T-1#5 line 0 benefit lunch)`, `benefits[2]`, …
    pub at: String,
    pub kind: ReconcileErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileErrorKind {
    #[error("benefit {0:?} is not defined")]
    UnknownBenefit(String),
    #[error("benefit id {0:?} is defined twice")]
    DuplicateBenefit(String),
    #[error("provider {record:?} differs from the benefit's provider {benefit:?}")]
    ProviderMismatch { record: String, benefit: String },
    #[error("{0} is empty")]
    Empty(&'static str),
    #[error("seq 0 is not allowed (sequences start at 1)")]
    SeqZero,
    #[error("count is 0 (a discount covers at least one unit)")]
    ZeroCount,
    #[error("amount {0} is negative")]
    NegativeAmount(Money),
    #[error("the same terminal, seq, line and benefit appears twice")]
    Duplicate,
    #[error(
        "records were loaded from {loaded_from} but replaying this group needs every record \
         from {needed_from}"
    )]
    WindowTooShort {
        loaded_from: Timestamp,
        needed_from: Timestamp,
    },
    #[error("there are {records} records but {decisions} decisions")]
    LengthMismatch { records: usize, decisions: usize },
    #[error("decision is for {0}, not for this record")]
    DecisionMismatch(RecordKey),
}

fn record_error(idx: usize, record: &UsageRecord, kind: ReconcileErrorKind) -> ReconcileError {
    ReconcileError {
        at: format!(
            "records[{idx}] ({}#{} line {} benefit {})",
            record.terminal, record.seq, record.line, record.benefit
        ),
        kind,
    }
}

/// Decisions for every record, in the order of the records given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub decisions: Vec<Decision>,
}

/// Result of a late re-run: decisions for every record given (same order)
/// and the records whose payable amount changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rereconciled {
    pub decisions: Vec<Decision>,
    pub adjustments: Vec<PayableDelta>,
}

/// A change of what is payable for one record since the previous decisions.
/// A record seen for the first time has `previous = 0`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayableDelta {
    pub key: RecordKey,
    pub previous: Money,
    pub payable: Money,
    /// `payable − previous`: positive when more is owed, negative when less.
    pub delta: Money,
}

/// Decides every record: replays each (recipient, benefit) in time order
/// (ties by terminal, then seq, then line), whatever the order given.
pub fn reconcile(
    benefits: &[Benefit],
    policies: &Policies,
    records: &[UsageRecord],
) -> Result<Reconciliation, ReconcileError> {
    let decisions = run(benefits, policies, records, None)?;
    Ok(Reconciliation { decisions })
}

/// Re-runs reconciliation after late arrivals or voids.
///
/// `records` must hold every record of each affected (recipient, benefit)
/// group whose `at` is at or after `loaded_from` (old ones and new ones);
/// `previous` the decisions made earlier for the old ones. A record without
/// a previous decision is new; a record whose `voided` or claim differs from
/// its previous decision has changed. In each group, records ordered before
/// the first new or changed one keep their previous decisions (nothing they
/// depend on changed); from that one on, the group is replayed with period
/// usage seeded from the kept decisions. The result equals a full
/// [`reconcile`] of everything, at the cost of only the affected periods.
///
/// Refuses to guess: when a group would need records from before
/// `loaded_from` (see [`replay_window_start`]), it is an error naming the
/// instant to load from.
pub fn reconcile_late(
    benefits: &[Benefit],
    policies: &Policies,
    previous: &[Decision],
    records: &[UsageRecord],
    loaded_from: Timestamp,
) -> Result<Rereconciled, ReconcileError> {
    let previous_by_key: HashMap<KeyRef<'_>, &Decision> = previous
        .iter()
        .map(|decision| (decision.key.as_ref(), decision))
        .collect();
    let decisions = run(
        benefits,
        policies,
        records,
        Some(Late {
            previous: &previous_by_key,
            loaded_from,
        }),
    )?;
    let adjustments = records
        .iter()
        .zip(&decisions)
        .filter_map(|(record, decision)| {
            let before = previous_by_key
                .get(&record.key_ref())
                .map_or(Money::ZERO, |previous| previous.payable);
            (before != decision.payable).then(|| PayableDelta {
                key: decision.key.clone(),
                previous: before,
                payable: decision.payable,
                delta: decision.payable - before,
            })
        })
        .collect();
    Ok(Rereconciled {
        decisions,
        adjustments,
    })
}

/// The (recipient, benefit) groups that new or changed records touch: the
/// groups the store must load for [`reconcile_late`].
pub fn affected_groups(changed: &[UsageRecord]) -> BTreeSet<(String, String)> {
    changed
        .iter()
        .map(|record| (record.recipient.clone(), record.benefit.clone()))
        .collect()
}

/// The earliest instant whose records can share a limit period with a
/// record at `at`: the start of the longest period instance of the
/// benefit's limits containing `at`. Records before it neither influence
/// nor are influenced by a change at `at`. Without limits, `at` itself.
pub fn replay_window_start(benefit: &Benefit, at: Timestamp) -> Timestamp {
    if benefit.limits.is_empty() {
        return at;
    }
    let local = LocalNow::new(at, benefit.time_zone.tz());
    benefit
        .limits
        .iter()
        .map(|limit| local.bounds(limit.period).0)
        .min()
        .unwrap_or(at)
}

struct Late<'p, 'k> {
    previous: &'p HashMap<KeyRef<'k>, &'p Decision>,
    loaded_from: Timestamp,
}

/// Local calendars per time zone, cached per local day: records of one day
/// share one `LocalNow`, so a month of a city needs a few dozen time-zone
/// conversions per zone instead of one per record.
#[derive(Default)]
pub(crate) struct Calendar {
    zones: HashMap<String, ZoneDays>,
}

struct ZoneDays {
    tz: TimeZone,
    /// Day start → the local calendar of that day.
    days: BTreeMap<Timestamp, LocalNow>,
}

impl Calendar {
    /// The local date of `at` in `zone`.
    pub(crate) fn date(&mut self, zone: &shared::model::Zone, at: Timestamp) -> Date {
        self.zone(zone.name(), zone.tz()).local(at).date
    }

    fn zone(&mut self, name: &str, tz: &TimeZone) -> &mut ZoneDays {
        self.zones
            .entry(name.to_owned())
            .or_insert_with(|| ZoneDays {
                tz: tz.clone(),
                days: BTreeMap::new(),
            })
    }
}

impl ZoneDays {
    fn local(&mut self, at: Timestamp) -> &LocalNow {
        let cached = self
            .days
            .range(..=at)
            .next_back()
            .filter(|(_, local)| at < local.bounds(Period::Day).1)
            .map(|(start, _)| *start);
        let start = match cached {
            Some(start) => start,
            None => {
                let local = LocalNow::new(at, &self.tz);
                let start = local.bounds(Period::Day).0;
                self.days.insert(start, local);
                start
            }
        };
        // Present: found or inserted just above.
        &self.days[&start]
    }
}

/// Usage of one limit in its current period instance.
#[derive(Clone, Copy)]
struct LimitState {
    start: Timestamp,
    end: Timestamp,
    period_start: Date,
    used_count: u64,
    used_cents: i64,
}

fn run(
    benefits: &[Benefit],
    policies: &Policies,
    records: &[UsageRecord],
    late: Option<Late<'_, '_>>,
) -> Result<Vec<Decision>, ReconcileError> {
    let by_id = benefit_index(benefits)?;
    validate_records(records, &by_id)?;

    // Group ids per (recipient, benefit), then one sort puts every group's
    // records together in replay order.
    let mut group_ids: HashMap<(&str, &str), u32> = HashMap::new();
    let mut group_of: Vec<u32> = Vec::with_capacity(records.len());
    for record in records {
        let next = u32::try_from(group_ids.len()).unwrap_or(u32::MAX);
        let id = *group_ids
            .entry((record.recipient.as_str(), record.benefit.as_str()))
            .or_insert(next);
        group_of.push(id);
    }
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_unstable_by(|&a, &b| {
        let (ra, rb) = (&records[a], &records[b]);
        group_of[a]
            .cmp(&group_of[b])
            .then_with(|| ra.at.cmp(&rb.at))
            .then_with(|| ra.terminal.cmp(&rb.terminal))
            .then_with(|| ra.seq.cmp(&rb.seq))
            .then_with(|| ra.line.cmp(&rb.line))
    });

    let mut decisions: Vec<Option<Decision>> = vec![None; records.len()];
    let mut calendar = Calendar::default();
    let zero_policy = OverusePolicy::default();
    let mut group_start = 0;
    while group_start < order.len() {
        let group = group_of[order[group_start]];
        let mut group_end = group_start;
        while group_end < order.len() && group_of[order[group_end]] == group {
            group_end += 1;
        }
        let members = &order[group_start..group_end];
        group_start = group_end;

        let first = &records[members[0]];
        let benefit = by_id[first.benefit.as_str()];
        let policy = policies.get(&benefit.id).unwrap_or(&zero_policy);

        // Where replay starts in this group: at once for a full run; at the
        // first new or changed record for a late run.
        let cutoff = match &late {
            None => 0,
            Some(late) => {
                let position = members.iter().position(|&idx| {
                    let record = &records[idx];
                    late.previous
                        .get(&record.key_ref())
                        .is_none_or(|previous| changed(record, previous))
                });
                match position {
                    None => members.len(),
                    Some(position) => {
                        let cut = &records[members[position]];
                        let needed_from = replay_window_start(benefit, cut.at);
                        if needed_from < late.loaded_from {
                            return Err(record_error(
                                members[position],
                                cut,
                                ReconcileErrorKind::WindowTooShort {
                                    loaded_from: late.loaded_from,
                                    needed_from,
                                },
                            ));
                        }
                        position
                    }
                }
            }
        };

        let zone = calendar.zone(benefit.time_zone.name(), benefit.time_zone.tz());
        let mut states: Vec<Option<LimitState>> = vec![None; benefit.limits.len()];
        for (position, &idx) in members.iter().enumerate() {
            let record = &records[idx];
            advance_periods(benefit, zone, &mut states, record.at);
            let decision = match (&late, position < cutoff) {
                (Some(late), true) => {
                    // Before the cutoff: unchanged input, so the previous
                    // decision stands and seeds the period usage.
                    let previous = late.previous.get(&record.key_ref()).copied();
                    match previous {
                        Some(previous) => previous.clone(),
                        None => decide(benefit, policy, &states, record),
                    }
                }
                _ => decide(benefit, policy, &states, record),
            };
            let payable_cents = decision.payable.cents();
            for state in states.iter_mut().flatten() {
                state.used_count += u64::from(decision.payable_count);
                state.used_cents = state.used_cents.saturating_add(payable_cents);
            }
            decisions[idx] = Some(decision);
        }
    }
    // Every index belongs to exactly one group, so every slot is filled.
    Ok(decisions
        .into_iter()
        .zip(records)
        .map(|(decision, record)| decision.unwrap_or_else(|| voided_decision(record)))
        .collect())
}

/// A record differs from what its previous decision was made on.
fn changed(record: &UsageRecord, previous: &Decision) -> bool {
    record.voided != (previous.outcome == Outcome::Voided)
        || record.amount != previous.claimed
        || record.count != previous.claimed_count
}

fn benefit_index(benefits: &[Benefit]) -> Result<HashMap<&str, &Benefit>, ReconcileError> {
    let mut by_id = HashMap::with_capacity(benefits.len());
    for (idx, benefit) in benefits.iter().enumerate() {
        if by_id.insert(benefit.id.as_str(), benefit).is_some() {
            return Err(ReconcileError {
                at: format!("benefits[{idx}]"),
                kind: ReconcileErrorKind::DuplicateBenefit(benefit.id.clone()),
            });
        }
    }
    Ok(by_id)
}

fn validate_records(
    records: &[UsageRecord],
    by_id: &HashMap<&str, &Benefit>,
) -> Result<(), ReconcileError> {
    let mut seen: HashSet<KeyRef<'_>> = HashSet::with_capacity(records.len());
    for (idx, record) in records.iter().enumerate() {
        let fail = |kind| Err(record_error(idx, record, kind));
        for (name, value) in [
            ("terminal", &record.terminal),
            ("recipient", &record.recipient),
            ("benefit", &record.benefit),
            ("provider", &record.provider),
            ("merchant", &record.merchant),
        ] {
            if value.is_empty() {
                return fail(ReconcileErrorKind::Empty(name));
            }
        }
        if record.seq == 0 {
            return fail(ReconcileErrorKind::SeqZero);
        }
        if record.count == 0 {
            return fail(ReconcileErrorKind::ZeroCount);
        }
        if record.amount.is_negative() {
            return fail(ReconcileErrorKind::NegativeAmount(record.amount));
        }
        let Some(benefit) = by_id.get(record.benefit.as_str()) else {
            return fail(ReconcileErrorKind::UnknownBenefit(record.benefit.clone()));
        };
        if benefit.provider != record.provider {
            return fail(ReconcileErrorKind::ProviderMismatch {
                record: record.provider.clone(),
                benefit: benefit.provider.clone(),
            });
        }
        if !seen.insert(record.key_ref()) {
            return fail(ReconcileErrorKind::Duplicate);
        }
    }
    Ok(())
}

/// Moves each limit's state to the period instance containing `at`
/// (records come in time order, so only forward), resetting its usage.
fn advance_periods(
    benefit: &Benefit,
    zone: &mut ZoneDays,
    states: &mut [Option<LimitState>],
    at: Timestamp,
) {
    let stale = states
        .iter()
        .any(|state| state.is_none_or(|state| at >= state.end || at < state.start));
    if !stale {
        return;
    }
    let local = zone.local(at);
    for (limit, state) in benefit.limits.iter().zip(states.iter_mut()) {
        if state.is_none_or(|state| at >= state.end || at < state.start) {
            let (start, end) = local.bounds(limit.period);
            *state = Some(LimitState {
                start,
                end,
                period_start: period_start(local.date, limit.period),
                used_count: 0,
                used_cents: 0,
            });
        }
    }
}

fn voided_decision(record: &UsageRecord) -> Decision {
    Decision {
        key: record.key(),
        outcome: Outcome::Voided,
        claimed: record.amount,
        claimed_count: record.count,
        payable: Money::ZERO,
        payable_count: 0,
        conflicts: Vec::new(),
    }
}

/// The rule of `docs/reconciliation.md` for one record, given the payable
/// usage of every limit's current period before it.
fn decide(
    benefit: &Benefit,
    policy: &OverusePolicy,
    states: &[Option<LimitState>],
    record: &UsageRecord,
) -> Decision {
    if record.voided {
        return voided_decision(record);
    }
    let claimed_units = u64::from(record.count);
    let claimed_cents = record.amount.cents();
    let tolerance_count = u64::from(policy.tolerance_count);
    let tolerance_cents = policy.tolerance_amount.cents();
    let mut conflicts = Vec::new();
    let conflict = |kind, limit_idx: usize, state: &LimitState, max, tolerance, used, excess| {
        let limit: &shared::model::Limit = &benefit.limits[limit_idx];
        Conflict {
            kind,
            limit: limit_idx,
            period: limit.period,
            period_start: state.period_start,
            max,
            tolerance,
            used_before: used,
            excess,
        }
    };

    // Count limits first: the units that still fit under max + tolerance.
    let mut units = claimed_units;
    for (limit_idx, (limit, state)) in benefit.limits.iter().zip(states).enumerate() {
        let (Some(max_count), Some(state)) = (limit.max_count, state) else {
            continue;
        };
        let room = (u64::from(max_count) + tolerance_count).saturating_sub(state.used_count);
        if room < claimed_units {
            conflicts.push(conflict(
                ConflictKind::OfflineOveruse,
                limit_idx,
                state,
                Quantity::Count(u64::from(max_count)),
                Quantity::Count(tolerance_count),
                Quantity::Count(state.used_count),
                Quantity::Count(claimed_units - room),
            ));
            units = units.min(room);
        }
    }
    // Units refused by a count limit take their share of the amount with
    // them (half-up to the cent); the engine gives one unit at a time, so a
    // record's units have equal shares unless a cap cut the last one.
    let mut payable_cents = if units == claimed_units {
        claimed_cents
    } else {
        let numerator =
            2 * i128::from(claimed_cents) * i128::from(units) + i128::from(claimed_units);
        let share = numerator / (2 * i128::from(claimed_units));
        i64::try_from(share).unwrap_or(claimed_cents)
    };
    // Amount limits: what still fits under max + tolerance.
    for (limit_idx, (limit, state)) in benefit.limits.iter().zip(states).enumerate() {
        let (Some(max_amount), Some(state)) = (limit.max_amount, state) else {
            continue;
        };
        let room = (max_amount.cents() + tolerance_cents - state.used_cents).max(0);
        if payable_cents > room {
            conflicts.push(conflict(
                ConflictKind::OfflineOveruse,
                limit_idx,
                state,
                Quantity::Amount(max_amount),
                Quantity::Amount(policy.tolerance_amount),
                Quantity::Amount(Money::from_cents(state.used_cents)),
                Quantity::Amount(Money::from_cents(payable_cents - room)),
            ));
            payable_cents = room;
        }
    }
    // An amount limit that leaves nothing gives nothing, so no use either.
    if payable_cents == 0 && claimed_cents > 0 {
        units = 0;
    }
    // What is paid beyond a limit (within its tolerance) is tolerated.
    let mut tolerated = false;
    for (limit_idx, (limit, state)) in benefit.limits.iter().zip(states).enumerate() {
        let Some(state) = state else { continue };
        if let Some(max_count) = limit.max_count.map(u64::from) {
            let after = state.used_count + units;
            if units > 0 && after > max_count {
                tolerated = true;
                conflicts.push(conflict(
                    ConflictKind::OfflineOveruseTolerated,
                    limit_idx,
                    state,
                    Quantity::Count(max_count),
                    Quantity::Count(tolerance_count),
                    Quantity::Count(state.used_count),
                    Quantity::Count(after - max_count.max(state.used_count)),
                ));
            }
        }
        if let Some(max_amount) = limit.max_amount {
            let max_cents = max_amount.cents();
            let after = state.used_cents + payable_cents;
            if payable_cents > 0 && after > max_cents {
                tolerated = true;
                conflicts.push(conflict(
                    ConflictKind::OfflineOveruseTolerated,
                    limit_idx,
                    state,
                    Quantity::Amount(max_amount),
                    Quantity::Amount(policy.tolerance_amount),
                    Quantity::Amount(Money::from_cents(state.used_cents)),
                    Quantity::Amount(Money::from_cents(after - max_cents.max(state.used_cents))),
                ));
            }
        }
    }
    let outcome = if payable_cents < claimed_cents || units < claimed_units {
        if payable_cents == 0 && units == 0 {
            Outcome::NotPayable
        } else {
            Outcome::Reduced
        }
    } else if tolerated {
        Outcome::Tolerated
    } else {
        Outcome::Payable
    };
    Decision {
        key: record.key(),
        outcome,
        claimed: record.amount,
        claimed_count: record.count,
        payable: Money::from_cents(payable_cents),
        payable_count: u32::try_from(units).unwrap_or(record.count),
        conflicts,
    }
}

pub mod flags {
    //! Fraud and integrity flags: the model (kind, subject, evidence, state
    //! with an audit trail of who decided), a pure state-transition
    //! function, and detectors that are pure functions over records.
    //!
    //! Ingestion raises the per-record flags it finds while verifying
    //! (forks, bad signatures, discount mismatches) with [`Flag::raise`];
    //! the detectors here look across records. A flag's id is derived from
    //! what it is about, so running a detector again over the same records
    //! yields the same ids and the store can upsert without duplicates.

    use std::collections::{BTreeMap, HashMap};

    use jiff::civil::Date;
    use jiff::{SignedDuration, Timestamp};
    use serde::{Deserialize, Serialize};
    use serde_json::json;
    use shared::model::Zone;
    use shared::money::Money;
    use shared::wire::keys::Hash;

    use super::{Calendar, ConflictKind, Decision, UsageRecord};

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FlagKind {
        /// Reconciliation refused part of a record (beyond limit + tolerance).
        OfflineOveruse,
        /// Reconciliation paid beyond a limit, within the tolerance.
        OfflineOveruseTolerated,
        /// Records of a terminal missing and not filled within the limit.
        ChainGap,
        /// Two different records with the same terminal and seq.
        Fork,
        BadSignature,
        /// Re-running the engine on the record's inputs gave another quote.
        DiscountMismatch,
        /// A blocked credential used at a terminal that already had the block.
        BlockedCredential,
        /// Ingestion flagged the record for another reason (broken link,
        /// unknown credential or benefit, wrong merchant, bad local time, a
        /// void naming no sale); the reason is in the evidence.
        RecordRefused,
        /// The same credential at two terminals too far apart too quickly.
        ImpossibleTravel,
        /// Far more transactions in a day than the subject's usual.
        UnusualVolume,
    }

    impl FlagKind {
        pub fn as_str(self) -> &'static str {
            match self {
                FlagKind::OfflineOveruse => "offline_overuse",
                FlagKind::OfflineOveruseTolerated => "offline_overuse_tolerated",
                FlagKind::ChainGap => "chain_gap",
                FlagKind::Fork => "fork",
                FlagKind::BadSignature => "bad_signature",
                FlagKind::DiscountMismatch => "discount_mismatch",
                FlagKind::BlockedCredential => "blocked_credential",
                FlagKind::RecordRefused => "record_refused",
                FlagKind::ImpossibleTravel => "impossible_travel",
                FlagKind::UnusualVolume => "unusual_volume",
            }
        }
    }

    /// What a flag is about.
    #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case", tag = "type")]
    pub enum Subject {
        Record {
            terminal: String,
            seq: u64,
        },
        Terminal {
            terminal: String,
        },
        Merchant {
            merchant: String,
        },
        /// A credential by its keyed hash (never the raw number).
        Credential {
            credential: String,
        },
    }

    impl Subject {
        fn id_text(&self) -> String {
            match self {
                Subject::Record { terminal, seq } => format!("record:{terminal}#{seq}"),
                Subject::Terminal { terminal } => format!("terminal:{terminal}"),
                Subject::Merchant { merchant } => format!("merchant:{merchant}"),
                Subject::Credential { credential } => format!("credential:{credential}"),
            }
        }
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FlagState {
        /// Raised, nobody has decided yet.
        Open,
        /// A reviewer accepted the flagged transactions as they are
        /// (explained, or tolerated): no consequence for payment.
        Accepted,
        /// A reviewer rejected the flagged transactions: flags naming
        /// records make them not payable.
        Rejected,
    }

    impl FlagState {
        pub fn as_str(self) -> &'static str {
            match self {
                FlagState::Open => "open",
                FlagState::Accepted => "accepted",
                FlagState::Rejected => "rejected",
            }
        }
    }

    /// One decision on a flag: who moved it from which state to which, when, and why.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct AuditEntry {
        pub who: String,
        pub at: Timestamp,
        pub from: FlagState,
        pub to: FlagState,
        pub note: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Flag {
        /// 32 hex digits derived from kind, subject and discriminator.
        pub id: String,
        pub kind: FlagKind,
        pub subject: Subject,
        pub raised_at: Timestamp,
        pub evidence: serde_json::Value,
        pub state: FlagState,
        #[serde(default)]
        pub trail: Vec<AuditEntry>,
    }

    impl Flag {
        /// A new open flag. `discriminator` tells apart flags of the same
        /// kind on the same subject (the day, the two records, the gap), so
        /// that the id is stable across runs and distinct between findings.
        pub fn raise(
            kind: FlagKind,
            subject: Subject,
            discriminator: &str,
            evidence: serde_json::Value,
            raised_at: Timestamp,
        ) -> Flag {
            let text = format!("{}|{}|{}", kind.as_str(), subject.id_text(), discriminator);
            let id = Hash::of(text.as_bytes()).to_hex()[..32].to_owned();
            Flag {
                id,
                kind,
                subject,
                raised_at,
                evidence,
                state: FlagState::Open,
                trail: Vec::new(),
            }
        }
    }

    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum TransitionError {
        #[error("flag {id}: already {}", state.as_str())]
        SameState { id: String, state: FlagState },
        #[error(
            "flag {id}: cannot go from {} to {} (reopen it first)",
            from.as_str(),
            to.as_str()
        )]
        NotAllowed {
            id: String,
            from: FlagState,
            to: FlagState,
        },
        #[error("flag {id}: who decided is empty")]
        NoActor { id: String },
        #[error("flag {id}: a note saying why is required")]
        NoNote { id: String },
        #[error("flag {id}: decision at {at} is before the previous one at {last}")]
        Backdated {
            id: String,
            at: Timestamp,
            last: Timestamp,
        },
    }

    /// Moves a flag to `to`, appending an audit entry. Allowed: open →
    /// accepted, open → rejected, and accepted/rejected → open (reopen).
    /// A decision needs who and a note, and is never dated before the last
    /// one, so the trail reads in order. The input flag is not modified.
    pub fn transition(
        flag: &Flag,
        to: FlagState,
        who: &str,
        at: Timestamp,
        note: &str,
    ) -> Result<Flag, TransitionError> {
        let id = flag.id.clone();
        if flag.state == to {
            return Err(TransitionError::SameState { id, state: to });
        }
        let allowed = matches!(
            (flag.state, to),
            (FlagState::Open, FlagState::Accepted)
                | (FlagState::Open, FlagState::Rejected)
                | (FlagState::Accepted, FlagState::Open)
                | (FlagState::Rejected, FlagState::Open)
        );
        if !allowed {
            return Err(TransitionError::NotAllowed {
                id,
                from: flag.state,
                to,
            });
        }
        if who.trim().is_empty() {
            return Err(TransitionError::NoActor { id });
        }
        if note.trim().is_empty() {
            return Err(TransitionError::NoNote { id });
        }
        let last = flag
            .trail
            .last()
            .map_or(flag.raised_at, |entry| entry.at)
            .max(flag.raised_at);
        if at < last {
            return Err(TransitionError::Backdated { id, at, last });
        }
        let mut next = flag.clone();
        next.trail.push(AuditEntry {
            who: who.to_owned(),
            at,
            from: flag.state,
            to,
            note: note.to_owned(),
        });
        next.state = to;
        Ok(next)
    }

    /// One flag per record with a reconciliation conflict: `offline_overuse`
    /// when part of it was refused, else `offline_overuse_tolerated`.
    /// `decisions` are aligned with `records`.
    pub fn overuse_flags(
        records: &[UsageRecord],
        decisions: &[Decision],
        raised_at: Timestamp,
    ) -> Vec<Flag> {
        records
            .iter()
            .zip(decisions)
            .filter(|(_, decision)| !decision.conflicts.is_empty())
            .map(|(record, decision)| {
                let refused = decision
                    .conflicts
                    .iter()
                    .any(|c| c.kind == ConflictKind::OfflineOveruse);
                let kind = if refused {
                    FlagKind::OfflineOveruse
                } else {
                    FlagKind::OfflineOveruseTolerated
                };
                Flag::raise(
                    kind,
                    Subject::Record {
                        terminal: record.terminal.clone(),
                        seq: record.seq,
                    },
                    &format!("{}|{}", record.line, record.benefit),
                    json!({
                        "benefit": record.benefit,
                        "line": record.line,
                        "recipient": record.recipient,
                        "merchant": record.merchant,
                        "at": record.at,
                        "claimed": decision.claimed,
                        "payable": decision.payable,
                        "conflicts": decision.conflicts,
                    }),
                    raised_at,
                )
            })
            .collect()
    }

    /// A point on Earth in decimal degrees (WGS 84).
    #[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct GeoPoint {
        pub lat: f64,
        pub lon: f64,
    }

    impl GeoPoint {
        /// Great-circle distance (haversine, mean Earth radius 6371 km).
        pub fn distance_km(self, other: GeoPoint) -> f64 {
            let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
            let d_lat = lat2 - lat1;
            let d_lon = (other.lon - self.lon).to_radians();
            let a =
                (d_lat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (d_lon / 2.0).sin().powi(2);
            2.0 * 6371.0 * a.sqrt().min(1.0).asin()
        }

        fn is_valid(self) -> bool {
            (-90.0..=90.0).contains(&self.lat) && (-180.0..=180.0).contains(&self.lon)
        }
    }

    /// Where a terminal is, when known (a bus validator moves: leave it out).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct TerminalInfo {
        pub terminal: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub location: Option<GeoPoint>,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    pub struct TravelConfig {
        /// Faster than this between two located terminals is impossible.
        pub max_speed_kmh: f64,
        /// Closer than this is the same place (GPS and address noise).
        pub min_distance_km: f64,
        /// Without coordinates: two different merchants within this time.
        pub unlocated_window: SignedDuration,
    }

    impl Default for TravelConfig {
        fn default() -> TravelConfig {
            TravelConfig {
                // Faster than any bus or car on Latvian roads, straight line.
                max_speed_kmh: 150.0,
                min_distance_km: 2.0,
                // A canteen next to a bus stop: lunch, then a bus 5 minutes
                // later, is normal; two merchants within 2 minutes is not.
                unlocated_window: SignedDuration::from_mins(2),
            }
        }
    }

    /// Same credential at two terminals too far apart too quickly. Taps of
    /// one credential are taken in time order and each consecutive pair at
    /// different terminals is checked: with both locations known, by speed
    /// (distance at least `min_distance_km`); otherwise, different
    /// merchants within `unlocated_window`.
    pub fn impossible_travel(
        records: &[UsageRecord],
        terminals: &[TerminalInfo],
        config: &TravelConfig,
        raised_at: Timestamp,
    ) -> Vec<Flag> {
        let location: HashMap<&str, GeoPoint> = terminals
            .iter()
            .filter_map(|info| {
                info.location
                    .filter(|point| point.is_valid())
                    .map(|point| (info.terminal.as_str(), point))
            })
            .collect();
        // One tap per record (a record has several usage rows).
        let mut taps: Vec<&UsageRecord> = records.iter().collect();
        taps.sort_unstable_by(|a, b| {
            (&a.credential, a.at, &a.terminal, a.seq).cmp(&(
                &b.credential,
                b.at,
                &b.terminal,
                b.seq,
            ))
        });
        taps.dedup_by(|b, a| a.terminal == b.terminal && a.seq == b.seq);
        let mut flags = Vec::new();
        for pair in taps.windows(2) {
            let (first, second) = (pair[0], pair[1]);
            if first.credential != second.credential || first.terminal == second.terminal {
                continue;
            }
            let elapsed = second.at.duration_since(first.at);
            let hours = elapsed.as_secs_f64() / 3600.0;
            let evidence_base = json!({
                "first": {"terminal": first.terminal, "seq": first.seq, "merchant": first.merchant, "at": first.at},
                "second": {"terminal": second.terminal, "seq": second.seq, "merchant": second.merchant, "at": second.at},
                "elapsed_seconds": elapsed.as_secs(),
            });
            let located = (
                location.get(first.terminal.as_str()),
                location.get(second.terminal.as_str()),
            );
            let finding = match located {
                (Some(a), Some(b)) => {
                    let distance = a.distance_km(*b);
                    let too_fast = distance >= config.min_distance_km
                        && (hours <= 0.0 || distance / hours > config.max_speed_kmh);
                    too_fast.then(|| {
                        let speed = if hours > 0.0 { distance / hours } else { f64::INFINITY };
                        json!({
                            "distance_km": (distance * 10.0).round() / 10.0,
                            "speed_kmh": if speed.is_finite() { json!((speed).round()) } else { json!(null) },
                            "max_speed_kmh": config.max_speed_kmh,
                        })
                    })
                }
                _ => (first.merchant != second.merchant && elapsed < config.unlocated_window)
                    .then(|| json!({"window_seconds": config.unlocated_window.as_secs()})),
            };
            if let Some(extra) = finding {
                let mut evidence = evidence_base;
                if let (Some(target), Some(source)) = (evidence.as_object_mut(), extra.as_object())
                {
                    target.extend(source.clone());
                }
                flags.push(Flag::raise(
                    FlagKind::ImpossibleTravel,
                    Subject::Credential {
                        credential: first.credential.clone(),
                    },
                    &format!(
                        "{}#{}|{}#{}",
                        first.terminal, first.seq, second.terminal, second.seq
                    ),
                    evidence,
                    raised_at,
                ));
            }
        }
        flags
    }

    #[derive(Debug, Clone, PartialEq)]
    pub struct VolumeConfig {
        /// A day is unusual above `factor ×` the trailing median …
        pub factor: u64,
        /// … and above this many transactions (small numbers vary a lot).
        pub min_count: u64,
        /// Days looked back for the median.
        pub window_days: i32,
        /// Active days (with transactions) needed in the window to judge;
        /// a terminal back from the summer break has none and is not flagged.
        pub min_active_days: usize,
        /// Zone of the local day.
        pub zone: Zone,
    }

    impl Default for VolumeConfig {
        fn default() -> VolumeConfig {
            VolumeConfig {
                factor: 3,
                min_count: 50,
                window_days: 28,
                min_active_days: 5,
                zone: Zone::default(),
            }
        }
    }

    /// Unusual volume per terminal and per merchant per local day: more
    /// than `factor ×` the median of the subject's active days in the
    /// previous `window_days`, and more than `min_count`. Counts
    /// transactions (records), not usage rows.
    pub fn unusual_volume(
        records: &[UsageRecord],
        config: &VolumeConfig,
        raised_at: Timestamp,
    ) -> Vec<Flag> {
        let mut calendar = Calendar::default();
        let zone = calendar.zone(config.zone.name(), config.zone.tz());
        let mut seen: std::collections::HashSet<(&str, u64)> = Default::default();
        let mut per_day: BTreeMap<(Subject, Date), u64> = BTreeMap::new();
        let mut terminal_days: HashMap<(&str, Date), u64> = HashMap::new();
        let mut merchant_days: HashMap<(&str, Date), u64> = HashMap::new();
        for record in records {
            if !seen.insert((&record.terminal, record.seq)) {
                continue;
            }
            let day = zone.local(record.at).date;
            *terminal_days.entry((&record.terminal, day)).or_default() += 1;
            *merchant_days.entry((&record.merchant, day)).or_default() += 1;
        }
        for ((terminal, day), count) in terminal_days {
            per_day.insert(
                (
                    Subject::Terminal {
                        terminal: terminal.to_owned(),
                    },
                    day,
                ),
                count,
            );
        }
        for ((merchant, day), count) in merchant_days {
            per_day.insert(
                (
                    Subject::Merchant {
                        merchant: merchant.to_owned(),
                    },
                    day,
                ),
                count,
            );
        }
        let mut flags = Vec::new();
        for ((subject, day), &count) in &per_day {
            if count <= config.min_count {
                continue;
            }
            let window_start = day
                .checked_sub(jiff::Span::new().days(config.window_days))
                .unwrap_or(Date::MIN);
            let mut history: Vec<u64> = per_day
                .range((subject.clone(), window_start)..(subject.clone(), *day))
                .map(|(_, &n)| n)
                .collect();
            if history.len() < config.min_active_days {
                continue;
            }
            history.sort_unstable();
            let median = median(&history);
            // count > factor × median, in integers: 2·count > factor·(2·median).
            if u128::from(count) * 2 > u128::from(config.factor) * median.0 {
                flags.push(Flag::raise(
                    FlagKind::UnusualVolume,
                    subject.clone(),
                    &day.to_string(),
                    json!({
                        "day": day,
                        "transactions": count,
                        "median": median.0 as f64 / 2.0,
                        "active_days": history.len(),
                        "window_days": config.window_days,
                        "factor": config.factor,
                    }),
                    raised_at,
                ));
            }
        }
        flags
    }

    /// Twice the median (kept exact in integers).
    struct DoubledMedian(u128);

    fn median(sorted: &[u64]) -> DoubledMedian {
        let n = sorted.len();
        if n == 0 {
            return DoubledMedian(0);
        }
        if n % 2 == 1 {
            DoubledMedian(u128::from(sorted[n / 2]) * 2)
        } else {
            DoubledMedian(u128::from(sorted[n / 2 - 1]) + u128::from(sorted[n / 2]))
        }
    }

    /// A gap in a terminal's chain as the store sees it: records
    /// `from..=to` missing while later ones arrived, first noticed at
    /// `first_seen`, and still missing.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct OpenGap {
        pub terminal: String,
        pub from: u64,
        pub to: u64,
        pub first_seen: Timestamp,
    }

    /// Default time a terminal has to fill a gap. A gap is only visible
    /// once later records arrived, so the terminal was online and resends
    /// unacknowledged records at its next sync; a day is generous.
    pub const GAP_FILL_LIMIT: SignedDuration = SignedDuration::from_hours(24);

    /// Gaps still open after `limit` since first seen.
    pub fn unfilled_gaps(gaps: &[OpenGap], now: Timestamp, limit: SignedDuration) -> Vec<Flag> {
        gaps.iter()
            .filter(|gap| now.duration_since(gap.first_seen) > limit)
            .map(|gap| {
                Flag::raise(
                    FlagKind::ChainGap,
                    Subject::Terminal {
                        terminal: gap.terminal.clone(),
                    },
                    &format!("{}..={}", gap.from, gap.to),
                    json!({
                        "from": gap.from,
                        "to": gap.to,
                        "missing": gap.to.saturating_sub(gap.from) + 1,
                        "first_seen": gap.first_seen,
                        "open_hours": now.duration_since(gap.first_seen).as_secs() / 3600,
                        "limit_hours": limit.as_secs() / 3600,
                    }),
                    now,
                )
            })
            .collect()
    }

    /// A credential blocked from snapshot version `snapshot` on.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Block {
        pub credential: String,
        pub snapshot: u64,
        pub blocked_at: Timestamp,
    }

    /// Records that used a blocked credential although the terminal quoted
    /// against a snapshot that already carried the block: the terminal
    /// should have refused. Uses before the block reached the terminal are
    /// honest offline uses and are not flagged.
    pub fn blocked_credential_use(
        records: &[UsageRecord],
        blocks: &[Block],
        raised_at: Timestamp,
    ) -> Vec<Flag> {
        let mut first_block: HashMap<&str, &Block> = HashMap::new();
        for block in blocks {
            let entry = first_block.entry(&block.credential).or_insert(block);
            if block.snapshot < entry.snapshot {
                *entry = block;
            }
        }
        let mut flagged: std::collections::HashSet<(&str, u64)> = Default::default();
        let mut flags = Vec::new();
        for record in records {
            let Some(block) = first_block.get(record.credential.as_str()) else {
                continue;
            };
            if record.snapshot < block.snapshot || !flagged.insert((&record.terminal, record.seq)) {
                continue;
            }
            flags.push(Flag::raise(
                FlagKind::BlockedCredential,
                Subject::Record {
                    terminal: record.terminal.clone(),
                    seq: record.seq,
                },
                "",
                json!({
                    "credential": record.credential,
                    "record_snapshot": record.snapshot,
                    "block_snapshot": block.snapshot,
                    "blocked_at": block.blocked_at,
                    "at": record.at,
                    "merchant": record.merchant,
                }),
                raised_at,
            ));
        }
        flags
    }

    /// Sum of what records named by rejected flags would have been paid:
    /// a convenience for reports (payment itself is decided by excluding
    /// those records from reconciliation's input).
    pub fn rejected_amount(flags: &[Flag], records: &[UsageRecord]) -> Money {
        let rejected: std::collections::HashSet<(&str, u64)> = flags
            .iter()
            .filter(|flag| flag.state == FlagState::Rejected)
            .filter_map(|flag| match &flag.subject {
                Subject::Record { terminal, seq } => Some((terminal.as_str(), *seq)),
                _ => None,
            })
            .collect();
        records
            .iter()
            .filter(|record| rejected.contains(&(record.terminal.as_str(), record.seq)))
            .map(|record| record.amount)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    //! Each test states a case a provider or merchant would check by hand;
    //! the properties at the end check the rule's invariants on random
    //! multi-terminal histories.

    use super::flags::*;
    use super::*;
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn benefit(json: &str) -> Benefit {
        serde_json::from_str(json).expect("benefit JSON in test")
    }

    fn lunch_once_a_day() -> Benefit {
        benefit(
            r#"{"id":"lunch","provider":"riga","categories":["meal.lunch"],"discount":{"percent":"100"},
                "limits":[{"period":"day","max_count":1}]}"#,
        )
    }

    fn bus_month_cap() -> Benefit {
        benefit(
            r#"{"id":"bus","provider":"riga","categories":["transport"],"discount":{"percent":"50"},
                "limits":[{"period":"month","max_amount":"10.00"}]}"#,
        )
    }

    fn ts(text: &str) -> Timestamp {
        text.parse().expect("timestamp in test")
    }

    fn m(text: &str) -> Money {
        Money::parse_signed(text).expect("money in test")
    }

    fn rec(terminal: &str, seq: u64, at: &str, benefit: &str, amount: &str) -> UsageRecord {
        UsageRecord {
            terminal: terminal.into(),
            seq,
            line: 0,
            at: ts(at),
            recipient: "R-1".into(),
            credential: "cred-1".into(),
            benefit: benefit.into(),
            provider: "riga".into(),
            merchant: format!("merchant-of-{terminal}"),
            category: "meal.lunch".into(),
            amount: m(amount),
            count: 1,
            snapshot: 1,
            voided: false,
            record_hash: Hash::of(format!("{terminal}#{seq}").as_bytes()),
        }
    }

    fn by_key(decisions: &[Decision]) -> BTreeMap<RecordKey, Decision> {
        decisions
            .iter()
            .map(|decision| (decision.key.clone(), decision.clone()))
            .collect()
    }

    fn run_ok(benefits: &[Benefit], policies: &Policies, records: &[UsageRecord]) -> Vec<Decision> {
        reconcile(benefits, policies, records)
            .expect("valid input")
            .decisions
    }

    #[test]
    fn two_offline_tills_each_give_one_lunch_a_day_later_one_is_not_payable() {
        // Goal: the classic conflict. Method: two tills, same pupil, same day,
        // given in reverse arrival order; the later lunch bears it.
        let records = [
            rec("T-B", 7, "2026-03-02T12:00:00+02:00", "lunch", "2.50"),
            rec("T-A", 3, "2026-03-02T11:30:00+02:00", "lunch", "2.50"),
        ];
        let decisions = run_ok(&[lunch_once_a_day()], &Policies::new(), &records);
        assert_eq!(decisions[1].outcome, Outcome::Payable);
        assert_eq!(decisions[1].payable, m("2.50"));
        assert_eq!(decisions[0].outcome, Outcome::NotPayable);
        assert_eq!(decisions[0].payable, Money::ZERO);
        assert_eq!(decisions[0].payable_count, 0);
        let conflict = &decisions[0].conflicts[0];
        assert_eq!(conflict.kind, ConflictKind::OfflineOveruse);
        assert_eq!(conflict.period, Period::Day);
        assert_eq!(conflict.period_start, jiff::civil::date(2026, 3, 2));
        assert_eq!(conflict.max, Quantity::Count(1));
        assert_eq!(conflict.used_before, Quantity::Count(1));
        assert_eq!(conflict.excess, Quantity::Count(1));
    }

    #[test]
    fn tolerance_pays_the_first_overuse_and_refuses_beyond_it() {
        let policies = Policies::from([(
            "lunch".to_owned(),
            OverusePolicy {
                tolerance_count: 1,
                tolerance_amount: Money::ZERO,
            },
        )]);
        let records = [
            rec("T-A", 1, "2026-03-02T11:00:00+02:00", "lunch", "2.50"),
            rec("T-B", 1, "2026-03-02T11:10:00+02:00", "lunch", "2.50"),
            rec("T-C", 1, "2026-03-02T11:20:00+02:00", "lunch", "2.50"),
        ];
        let decisions = run_ok(&[lunch_once_a_day()], &policies, &records);
        let outcomes: Vec<Outcome> = decisions.iter().map(|d| d.outcome).collect();
        assert_eq!(
            outcomes,
            [Outcome::Payable, Outcome::Tolerated, Outcome::NotPayable]
        );
        assert_eq!(decisions[1].payable, m("2.50"));
        assert_eq!(
            decisions[1].conflicts[0].kind,
            ConflictKind::OfflineOveruseTolerated
        );
        assert_eq!(decisions[1].conflicts[0].excess, Quantity::Count(1));
        assert_eq!(decisions[2].payable, Money::ZERO);
    }

    #[test]
    fn monthly_amount_cap_spent_on_two_buses_reduces_the_later_ride() {
        let records = [
            rec("BUS-2", 40, "2026-03-20T08:00:00+02:00", "bus", "6.00"),
            rec("BUS-1", 12, "2026-03-05T08:00:00+02:00", "bus", "6.00"),
        ];
        let decisions = run_ok(&[bus_month_cap()], &Policies::new(), &records);
        assert_eq!(decisions[1].payable, m("6.00"));
        assert_eq!(decisions[0].outcome, Outcome::Reduced);
        assert_eq!(decisions[0].payable, m("4.00"));
        assert_eq!(decisions[0].conflicts.len(), 1);
        assert_eq!(
            decisions[0].conflicts[0].excess,
            Quantity::Amount(m("2.00"))
        );
        assert_eq!(
            decisions[0].conflicts[0].used_before,
            Quantity::Amount(m("6.00"))
        );

        // With 1.00 tolerance the later ride gets 5.00: 1.00 tolerated, 1.00 refused.
        let policies = Policies::from([(
            "bus".to_owned(),
            OverusePolicy {
                tolerance_count: 0,
                tolerance_amount: m("1.00"),
            },
        )]);
        let decisions = run_ok(&[bus_month_cap()], &policies, &records);
        assert_eq!(decisions[0].payable, m("5.00"));
        let kinds: Vec<(ConflictKind, Quantity)> = decisions[0]
            .conflicts
            .iter()
            .map(|c| (c.kind, c.excess))
            .collect();
        assert_eq!(
            kinds,
            [
                (ConflictKind::OfflineOveruse, Quantity::Amount(m("1.00"))),
                (
                    ConflictKind::OfflineOveruseTolerated,
                    Quantity::Amount(m("1.00"))
                ),
            ]
        );
        // Next month starts afresh.
        let april = [
            records[0].clone(),
            records[1].clone(),
            rec("BUS-1", 99, "2026-04-01T00:10:00+03:00", "bus", "6.00"),
        ];
        let decisions = run_ok(&[bus_month_cap()], &Policies::new(), &april);
        assert_eq!(decisions[2].outcome, Outcome::Payable);
    }

    #[test]
    fn same_instant_is_broken_by_terminal_then_seq() {
        let at = "2026-03-02T11:00:00+02:00";
        let records = [
            rec("T-B", 1, at, "lunch", "2.50"),
            rec("T-A", 9, at, "lunch", "2.50"),
            rec("T-A", 8, at, "lunch", "2.50"),
        ];
        let decisions = run_ok(&[lunch_once_a_day()], &Policies::new(), &records);
        let payable: Vec<&str> = decisions
            .iter()
            .filter(|d| d.payable.is_positive())
            .map(|d| d.key.terminal.as_str())
            .collect();
        assert_eq!(payable, ["T-A"]);
        assert_eq!(decisions[2].outcome, Outcome::Payable, "T-A#8 comes first");
    }

    #[test]
    fn days_are_local_to_the_benefit_zone_not_utc() {
        // 23:30 and 00:30 in Riga are the same UTC day but two local days.
        let records = [
            rec("T-A", 1, "2026-03-01T21:30:00Z", "lunch", "2.50"),
            rec("T-B", 1, "2026-03-01T22:30:00Z", "lunch", "2.50"),
        ];
        let decisions = run_ok(&[lunch_once_a_day()], &Policies::new(), &records);
        assert!(decisions.iter().all(|d| d.outcome == Outcome::Payable));
    }

    #[test]
    fn a_voided_sale_is_not_payable_and_uses_no_limit() {
        let mut voided = rec("T-A", 1, "2026-03-02T11:00:00+02:00", "lunch", "2.50");
        voided.voided = true;
        let records = [
            voided,
            rec("T-B", 1, "2026-03-02T11:30:00+02:00", "lunch", "2.50"),
        ];
        let decisions = run_ok(&[lunch_once_a_day()], &Policies::new(), &records);
        assert_eq!(decisions[0].outcome, Outcome::Voided);
        assert_eq!(decisions[0].payable, Money::ZERO);
        assert_eq!(decisions[1].outcome, Outcome::Payable);
    }

    #[test]
    fn units_beyond_a_count_limit_take_their_share_of_the_amount() {
        let three_a_day = benefit(
            r#"{"id":"snack","provider":"riga","categories":["meal"],"discount":{"amount":"1.00"},
                "limits":[{"period":"day","max_count":3}]}"#,
        );
        let mut first = rec("T-A", 1, "2026-03-02T10:00:00+02:00", "snack", "2.00");
        first.count = 2;
        let mut second = rec("T-B", 1, "2026-03-02T10:05:00+02:00", "snack", "2.00");
        second.count = 2;
        let decisions = run_ok(&[three_a_day], &Policies::new(), &[first, second]);
        assert_eq!(decisions[1].outcome, Outcome::Reduced);
        assert_eq!(decisions[1].payable_count, 1);
        assert_eq!(decisions[1].payable, m("1.00"));
    }

    #[test]
    fn without_limits_everything_is_payable() {
        let free = benefit(
            r#"{"id":"free","provider":"riga","categories":["meal"],"discount":{"percent":"100"}}"#,
        );
        let records: Vec<UsageRecord> = (1..=5)
            .map(|seq| rec("T-A", seq, "2026-03-02T10:00:00+02:00", "free", "3.00"))
            .collect();
        let decisions = run_ok(&[free], &Policies::new(), &records);
        assert!(decisions
            .iter()
            .all(|d| d.outcome == Outcome::Payable && d.payable == m("3.00")));
    }

    #[test]
    fn malformed_input_is_refused_with_where_and_what() {
        let benefits = [lunch_once_a_day()];
        let mut unknown = rec("T-A", 1, "2026-03-02T10:00:00+02:00", "nope", "1.00");
        unknown.provider = "riga".into();
        let err = reconcile(&benefits, &Policies::new(), &[unknown]).expect_err("unknown benefit");
        assert_eq!(
            err.to_string(),
            "records[0] (T-A#1 line 0 benefit nope): benefit \"nope\" is not defined"
        );

        let mut negative = rec("T-A", 2, "2026-03-02T10:00:00+02:00", "lunch", "1.00");
        negative.amount = Money::from_cents(-100);
        let ok = rec("T-A", 1, "2026-03-02T10:00:00+02:00", "lunch", "1.00");
        let err = reconcile(&benefits, &Policies::new(), &[ok.clone(), negative])
            .expect_err("negative amount");
        assert_eq!(
            err.to_string(),
            "records[1] (T-A#2 line 0 benefit lunch): amount -1.00 is negative"
        );

        let err = reconcile(&benefits, &Policies::new(), &[ok.clone(), ok.clone()])
            .expect_err("duplicate");
        assert_eq!(err.kind, ReconcileErrorKind::Duplicate);

        let mut other = ok.clone();
        other.provider = "jurmala".into();
        let err = reconcile(&benefits, &Policies::new(), &[other]).expect_err("provider");
        assert!(
            err.to_string().contains("provider \"jurmala\" differs"),
            "{err}"
        );

        let mut zero = ok;
        zero.count = 0;
        let err = reconcile(&benefits, &Policies::new(), &[zero]).expect_err("count 0");
        assert_eq!(err.kind, ReconcileErrorKind::ZeroCount);

        let twice = [lunch_once_a_day(), lunch_once_a_day()];
        let err = reconcile(&twice, &Policies::new(), &[]).expect_err("duplicate benefit");
        assert_eq!(err.at, "benefits[1]");
    }

    #[test]
    fn late_arrival_moves_payment_to_the_earlier_lunch_as_deltas() {
        // Goal: a till syncs a week late with an earlier lunch of the same
        // day; the lunch already decided payable loses it, and the deltas say so.
        let benefits = [lunch_once_a_day()];
        let on_time = rec("T-B", 5, "2026-03-02T12:00:00+02:00", "lunch", "2.50");
        let first = run_ok(&benefits, &Policies::new(), std::slice::from_ref(&on_time));
        assert_eq!(first[0].payable, m("2.50"));

        let late = rec("T-A", 1, "2026-03-02T11:00:00+02:00", "lunch", "2.50");
        let loaded_from = replay_window_start(&benefits[0], late.at);
        assert_eq!(loaded_from, ts("2026-03-02T00:00:00+02:00"));
        let again = reconcile_late(
            &benefits,
            &Policies::new(),
            &first,
            &[on_time.clone(), late.clone()],
            loaded_from,
        )
        .expect("window is long enough");
        assert_eq!(again.decisions[0].outcome, Outcome::NotPayable);
        assert_eq!(again.decisions[1].outcome, Outcome::Payable);
        let deltas: Vec<(String, Money)> = again
            .adjustments
            .iter()
            .map(|a| (a.key.terminal.clone(), a.delta))
            .collect();
        assert_eq!(
            deltas,
            [
                ("T-B".to_owned(), m("-2.50")),
                ("T-A".to_owned(), m("2.50"))
            ]
        );

        // Loading from noon would miss the morning: refused, naming the instant needed.
        let err = reconcile_late(
            &benefits,
            &Policies::new(),
            &first,
            &[on_time, late],
            ts("2026-03-02T12:00:00+02:00"),
        )
        .expect_err("window too short");
        assert!(matches!(
            err.kind,
            ReconcileErrorKind::WindowTooShort { needed_from, .. }
                if needed_from == ts("2026-03-02T00:00:00+02:00")
        ));
    }

    #[test]
    fn late_void_gives_the_limit_back_to_a_later_sale() {
        let benefits = [lunch_once_a_day()];
        let sale = rec("T-A", 1, "2026-03-02T11:00:00+02:00", "lunch", "2.50");
        let other = rec("T-B", 1, "2026-03-02T12:00:00+02:00", "lunch", "2.50");
        let before = run_ok(&benefits, &Policies::new(), &[sale.clone(), other.clone()]);
        assert_eq!(before[1].payable, Money::ZERO);
        let mut voided = sale;
        voided.voided = true;
        let after = reconcile_late(
            &benefits,
            &Policies::new(),
            &before,
            &[voided, other],
            Timestamp::MIN,
        )
        .expect("late run");
        let deltas: Vec<Money> = after.adjustments.iter().map(|a| a.delta).collect();
        assert_eq!(deltas, [m("-2.50"), m("2.50")]);
    }

    #[test]
    fn flag_transitions_keep_an_audit_trail_and_refuse_invalid_moves() {
        let raised = ts("2026-03-03T08:00:00Z");
        let flag = Flag::raise(
            FlagKind::Fork,
            Subject::Record {
                terminal: "T-A".into(),
                seq: 4,
            },
            "",
            serde_json::json!({"known": "aa", "got": "bb"}),
            raised,
        );
        assert_eq!(flag.state, FlagState::Open);
        assert_eq!(flag.id.len(), 32);

        let later = ts("2026-03-03T09:00:00Z");
        let accepted = transition(
            &flag,
            FlagState::Accepted,
            "anna@riga",
            later,
            "till restored from backup",
        )
        .expect("open → accepted");
        assert_eq!(accepted.state, FlagState::Accepted);
        assert_eq!(flag.state, FlagState::Open, "input flag untouched");
        assert_eq!(
            accepted.trail,
            [AuditEntry {
                who: "anna@riga".into(),
                at: later,
                from: FlagState::Open,
                to: FlagState::Accepted,
                note: "till restored from backup".into(),
            }]
        );
        assert!(matches!(
            transition(
                &accepted,
                FlagState::Rejected,
                "anna@riga",
                later,
                "changed my mind"
            ),
            Err(TransitionError::NotAllowed { .. })
        ));
        assert!(matches!(
            transition(&accepted, FlagState::Accepted, "anna@riga", later, "again"),
            Err(TransitionError::SameState { .. })
        ));
        let reopened = transition(&accepted, FlagState::Open, "audit@vk", later, "second look")
            .expect("reopen");
        let rejected = transition(&reopened, FlagState::Rejected, "audit@vk", later, "forged")
            .expect("open → rejected");
        assert_eq!(rejected.trail.len(), 3);
        assert!(matches!(
            transition(&flag, FlagState::Accepted, " ", later, "x"),
            Err(TransitionError::NoActor { .. })
        ));
        assert!(matches!(
            transition(&flag, FlagState::Accepted, "anna", later, ""),
            Err(TransitionError::NoNote { .. })
        ));
        assert!(matches!(
            transition(&accepted, FlagState::Open, "anna", raised, "back in time"),
            Err(TransitionError::Backdated { .. })
        ));
    }

    #[test]
    fn impossible_travel_by_speed_and_by_merchants() {
        let riga = GeoPoint {
            lat: 56.9496,
            lon: 24.1052,
        };
        let daugavpils = GeoPoint {
            lat: 55.8747,
            lon: 26.5362,
        };
        let distance = riga.distance_km(daugavpils);
        assert!((distance - 191.0).abs() < 5.0, "{distance}");
        let terminals = [
            TerminalInfo {
                terminal: "RIGA-1".into(),
                location: Some(riga),
            },
            TerminalInfo {
                terminal: "DAUG-1".into(),
                location: Some(daugavpils),
            },
        ];
        let raised = ts("2026-03-03T00:00:00Z");
        let quick = [
            rec("RIGA-1", 1, "2026-03-02T10:00:00+02:00", "lunch", "1.00"),
            rec("DAUG-1", 1, "2026-03-02T10:40:00+02:00", "lunch", "1.00"),
        ];
        let flags = impossible_travel(&quick, &terminals, &TravelConfig::default(), raised);
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].kind, FlagKind::ImpossibleTravel);
        assert_eq!(
            flags[0].subject,
            Subject::Credential {
                credential: "cred-1".into()
            }
        );
        assert_eq!(flags[0].evidence["elapsed_seconds"], 2400);
        // Same pair again gives the same flag id (idempotent upsert).
        let again = impossible_travel(&quick, &terminals, &TravelConfig::default(), raised);
        assert_eq!(again[0].id, flags[0].id);

        let slow = [
            rec("RIGA-1", 1, "2026-03-02T08:00:00+02:00", "lunch", "1.00"),
            rec("DAUG-1", 1, "2026-03-02T11:00:00+02:00", "lunch", "1.00"),
        ];
        assert!(impossible_travel(&slow, &terminals, &TravelConfig::default(), raised).is_empty());

        // Without coordinates: two merchants one minute apart, but not one merchant.
        let unlocated = [
            rec("BUS-7", 1, "2026-03-02T10:00:00+02:00", "lunch", "1.00"),
            rec("CANTEEN-2", 1, "2026-03-02T10:01:00+02:00", "lunch", "1.00"),
        ];
        assert_eq!(
            impossible_travel(&unlocated, &[], &TravelConfig::default(), raised).len(),
            1
        );
        let mut same_merchant = unlocated.clone();
        same_merchant[1].merchant = same_merchant[0].merchant.clone();
        assert!(
            impossible_travel(&same_merchant, &[], &TravelConfig::default(), raised).is_empty()
        );
    }

    #[test]
    fn unusual_volume_against_the_trailing_median_of_active_days() {
        let raised = ts("2026-03-20T00:00:00Z");
        let mut records = Vec::new();
        let mut seq = 0;
        let mut day_of = |day: i8, n: u32, records: &mut Vec<UsageRecord>| {
            for idx in 0..n {
                seq += 1;
                let at = format!(
                    "2026-03-{day:02}T{:02}:{:02}:00+02:00",
                    8 + idx / 60,
                    idx % 60
                );
                let mut record = rec("T-A", seq, &at, "lunch", "1.00");
                record.recipient = format!("R-{seq}");
                records.push(record);
            }
        };
        // Ten ordinary days of 20, then 55 (not > 3 × 20), then 61 (> 60 and > 50).
        for day in 2..=11 {
            day_of(day, 20, &mut records);
        }
        day_of(12, 55, &mut records);
        day_of(13, 61, &mut records);
        let flags = unusual_volume(&records, &VolumeConfig::default(), raised);
        let days: Vec<(Subject, String)> = flags
            .iter()
            .map(|f| {
                (
                    f.subject.clone(),
                    f.evidence["day"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        assert_eq!(
            days,
            [
                (
                    Subject::Terminal {
                        terminal: "T-A".into()
                    },
                    "2026-03-13".to_owned()
                ),
                (
                    Subject::Merchant {
                        merchant: "merchant-of-T-A".into()
                    },
                    "2026-03-13".to_owned()
                ),
            ]
        );
        // A new terminal's first busy day has no history to judge against.
        let mut fresh = Vec::new();
        day_of(14, 200, &mut fresh);
        assert!(unusual_volume(&fresh, &VolumeConfig::default(), raised).is_empty());
    }

    #[test]
    fn gaps_open_longer_than_the_limit_are_flagged() {
        let now = ts("2026-03-05T12:00:00Z");
        let gaps = [
            OpenGap {
                terminal: "T-A".into(),
                from: 10,
                to: 12,
                first_seen: ts("2026-03-04T06:00:00Z"),
            },
            OpenGap {
                terminal: "T-B".into(),
                from: 3,
                to: 3,
                first_seen: ts("2026-03-05T10:00:00Z"),
            },
        ];
        let flags = unfilled_gaps(&gaps, now, GAP_FILL_LIMIT);
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].kind, FlagKind::ChainGap);
        assert_eq!(flags[0].evidence["missing"], 3);
        assert_eq!(flags[0].evidence["open_hours"], 30);
        assert!(unfilled_gaps(&gaps, now, SignedDuration::from_hours(48)).is_empty());
    }

    #[test]
    fn blocked_credential_is_flagged_only_once_the_block_reached_the_terminal() {
        let block = Block {
            credential: "cred-1".into(),
            snapshot: 10,
            blocked_at: ts("2026-03-01T00:00:00Z"),
        };
        let mut honest = rec("T-A", 1, "2026-03-02T10:00:00+02:00", "lunch", "1.00");
        honest.snapshot = 9;
        let mut dishonest = rec("T-A", 2, "2026-03-02T11:00:00+02:00", "lunch", "1.00");
        dishonest.snapshot = 10;
        let flags = blocked_credential_use(
            &[honest, dishonest.clone()],
            &[block],
            ts("2026-03-03T00:00:00Z"),
        );
        assert_eq!(flags.len(), 1);
        assert_eq!(
            flags[0].subject,
            Subject::Record {
                terminal: "T-A".into(),
                seq: 2
            }
        );
        let rejected = transition(
            &flags[0],
            FlagState::Rejected,
            "anna",
            ts("2026-03-04T00:00:00Z"),
            "terminal ignored the deny list",
        )
        .expect("reject");
        assert_eq!(rejected_amount(&[rejected], &[dishonest]), m("1.00"));
    }

    #[test]
    fn overuse_flags_name_the_record_and_the_conflict() {
        let records = [
            rec("T-A", 1, "2026-03-02T11:00:00+02:00", "lunch", "2.50"),
            rec("T-B", 1, "2026-03-02T11:10:00+02:00", "lunch", "2.50"),
        ];
        let decisions = run_ok(&[lunch_once_a_day()], &Policies::new(), &records);
        let flags = overuse_flags(&records, &decisions, ts("2026-03-03T00:00:00Z"));
        assert_eq!(flags.len(), 1);
        assert_eq!(flags[0].kind, FlagKind::OfflineOveruse);
        assert_eq!(flags[0].evidence["payable"], "0.00");
        assert_eq!(flags[0].evidence["conflicts"][0]["kind"], "offline_overuse");
    }

    // ---- properties -------------------------------------------------------

    fn property_benefits() -> Vec<Benefit> {
        vec![
            benefit(
                r#"{"id":"free","provider":"riga","categories":["meal"],"discount":{"percent":"100"}}"#,
            ),
            lunch_once_a_day(),
            benefit(
                r#"{"id":"weekly","provider":"riga","categories":["meal"],"discount":{"percent":"50"},
                    "limits":[{"period":"week","max_count":3},{"period":"month","max_amount":"10.00"}]}"#,
            ),
            benefit(
                r#"{"id":"both","provider":"riga","categories":["meal"],"discount":{"percent":"50"},
                    "limits":[{"period":"day","max_count":2,"max_amount":"5.00"}]}"#,
            ),
        ]
    }

    #[derive(Debug, Clone)]
    struct Case {
        records: Vec<UsageRecord>,
        policies: Policies,
        /// Which records arrive late (for the late-run properties).
        late: Vec<bool>,
        permutation: Vec<usize>,
    }

    fn case() -> impl Strategy<Value = Case> {
        let row = (
            0u8..3,
            0usize..4,
            0u8..3,
            0i64..(40 * 24 * 60),
            1i64..800,
            1u32..4,
            0u8..10,
            any::<bool>(),
        );
        let tolerance = (0u32..2, 0i64..300);
        (
            proptest::collection::vec(row, 0..40),
            proptest::collection::vec(tolerance, 4),
        )
            .prop_flat_map(|(rows, tolerances)| {
                let n = rows.len();
                let ids = ["free", "lunch", "weekly", "both"];
                let base = ts("2026-03-20T00:00:00Z");
                let mut seqs = [0u64; 3];
                let mut late = Vec::with_capacity(n);
                let records: Vec<UsageRecord> = rows
                    .into_iter()
                    .map(
                        |(
                            recipient,
                            benefit,
                            terminal,
                            minutes,
                            cents,
                            count,
                            void_roll,
                            is_late,
                        )| {
                            seqs[usize::from(terminal)] += 1;
                            late.push(is_late);
                            let at = base + SignedDuration::from_mins(minutes);
                            let mut record = rec(
                                &format!("T-{terminal}"),
                                seqs[usize::from(terminal)],
                                "2026-01-01T00:00:00Z",
                                ids[benefit],
                                "0.00",
                            );
                            record.at = at;
                            record.recipient = format!("R-{recipient}");
                            record.amount = Money::from_cents(cents);
                            record.count = count;
                            record.voided = void_roll == 0;
                            record
                        },
                    )
                    .collect();
                let policies: Policies = ids
                    .iter()
                    .zip(tolerances)
                    .map(|(id, (count, cents))| {
                        (
                            (*id).to_owned(),
                            OverusePolicy {
                                tolerance_count: count,
                                tolerance_amount: Money::from_cents(cents),
                            },
                        )
                    })
                    .collect();
                let indexes: Vec<usize> = (0..n).collect();
                (
                    Just(records),
                    Just(policies),
                    Just(late),
                    Just(indexes).prop_shuffle(),
                )
            })
            .prop_map(|(records, policies, late, permutation)| Case {
                records,
                policies,
                late,
                permutation,
            })
    }

    proptest! {
        #[test]
        fn arrival_order_does_not_change_the_outcome(case in case()) {
            let benefits = property_benefits();
            let shuffled: Vec<UsageRecord> =
                case.permutation.iter().map(|&idx| case.records[idx].clone()).collect();
            let a = run_ok(&benefits, &case.policies, &case.records);
            let b = run_ok(&benefits, &case.policies, &shuffled);
            prop_assert_eq!(by_key(&a), by_key(&b));
        }

        #[test]
        fn payable_per_period_stays_within_limit_plus_tolerance(case in case()) {
            let benefits = property_benefits();
            let decisions = run_ok(&benefits, &case.policies, &case.records);
            // (recipient, benefit, limit, period start) → (units, cents)
            let mut used: BTreeMap<(String, String, usize, Timestamp), (u64, i64)> = BTreeMap::new();
            for (record, decision) in case.records.iter().zip(&decisions) {
                prop_assert!(decision.payable <= decision.claimed);
                prop_assert!(!decision.payable.is_negative());
                prop_assert!(decision.payable_count <= decision.claimed_count);
                let benefit = benefits.iter().find(|b| b.id == record.benefit).expect("known");
                let local = LocalNow::new(record.at, benefit.time_zone.tz());
                for (idx, limit) in benefit.limits.iter().enumerate() {
                    let key = (record.recipient.clone(), record.benefit.clone(), idx, local.bounds(limit.period).0);
                    let entry = used.entry(key).or_default();
                    entry.0 += u64::from(decision.payable_count);
                    entry.1 += decision.payable.cents();
                }
            }
            for ((_, benefit_id, idx, _), (units, cents)) in used {
                let benefit = benefits.iter().find(|b| b.id == benefit_id).expect("known");
                let policy = case.policies[&benefit_id];
                let limit = benefit.limits[idx];
                if let Some(max) = limit.max_count {
                    prop_assert!(units <= u64::from(max + policy.tolerance_count));
                }
                if let Some(max) = limit.max_amount {
                    prop_assert!(cents <= max.cents() + policy.tolerance_amount.cents());
                }
            }
        }

        #[test]
        fn everything_is_payable_without_limits(case in case()) {
            let mut benefits = property_benefits();
            for benefit in &mut benefits {
                benefit.limits.clear();
            }
            let decisions = run_ok(&benefits, &case.policies, &case.records);
            for (record, decision) in case.records.iter().zip(&decisions) {
                if record.voided {
                    prop_assert_eq!(decision.payable, Money::ZERO);
                } else {
                    prop_assert_eq!(decision.outcome, Outcome::Payable);
                    prop_assert_eq!(decision.payable, record.amount);
                }
            }
        }

        #[test]
        fn late_run_equals_a_full_run_and_deltas_are_the_differences(case in case()) {
            let benefits = property_benefits();
            let early: Vec<UsageRecord> = case.records.iter().zip(&case.late)
                .filter(|(_, late)| !**late).map(|(r, _)| r.clone()).collect();
            let previous = run_ok(&benefits, &case.policies, &early);
            let full = run_ok(&benefits, &case.policies, &case.records);

            // Everything loaded.
            let late = reconcile_late(&benefits, &case.policies, &previous, &case.records, Timestamp::MIN)
                .expect("late run");
            prop_assert_eq!(&late.decisions, &full);
            let before = by_key(&previous);
            for (record, decision) in case.records.iter().zip(&full) {
                let was = before.get(&record.key()).map_or(Money::ZERO, |d| d.payable);
                let delta = late.adjustments.iter().find(|a| a.key == record.key());
                match delta {
                    Some(delta) => {
                        prop_assert_eq!(delta.delta, decision.payable - was);
                        prop_assert!(!delta.delta.is_zero());
                    }
                    None => prop_assert_eq!(was, decision.payable),
                }
            }

            // Only the window the changed records need.
            let loaded_from = case.records.iter().zip(&case.late)
                .filter(|(_, late)| **late)
                .map(|(record, _)| {
                    let benefit = benefits.iter().find(|b| b.id == record.benefit).expect("known");
                    replay_window_start(benefit, record.at)
                })
                .min()
                .unwrap_or(Timestamp::MAX);
            let window: Vec<UsageRecord> = case.records.iter().filter(|r| r.at >= loaded_from).cloned().collect();
            let windowed = reconcile_late(&benefits, &case.policies, &previous, &window, loaded_from)
                .expect("window is long enough");
            let full_by_key = by_key(&full);
            for decision in &windowed.decisions {
                prop_assert_eq!(Some(decision), full_by_key.get(&decision.key));
            }
        }
    }
}
