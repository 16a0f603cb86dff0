//! [`LedgerStore`] on PostgreSQL.

use async_trait::async_trait;
use jiff::civil::Date;
use shared::money::Money;
use tokio_postgres::Row;

use super::{
    outcome_text, parse_state, parse_ts, stored_settlement, subject_json, ConflictRow, FlagColumns,
    FlagDecision, FlagFilter, FlagRow, Intake, LedgerStore, PendingRecord, SettlementFilter,
    SettlementSummary, StoredSettlement, StoredUsage, UsageColumns, FLAG_COLUMNS, USAGE_COLUMNS,
};
use crate::reconcile::flags::{AuditEntry, OpenGap};
use crate::reconcile::{Decision, OverusePolicy, Policies};
use crate::store::postgres::PostgresStore;
use crate::store::{StoreError, StoreResult};

/// Decisions per `UPDATE … FROM unnest(…)` statement.
const DECISIONS_PER_STATEMENT: usize = 10_000;

fn i(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn usage_row(row: &Row) -> UsageColumns {
    UsageColumns {
        terminal: row.get(0),
        seq: row.get(1),
        line: row.get(2),
        benefit: row.get(3),
        at: row.get(4),
        day: row.get(5),
        recipient: row.get(6),
        credential: row.get(7),
        provider: row.get(8),
        merchant: row.get(9),
        category: row.get(10),
        amount_cents: row.get(11),
        units: row.get(12),
        snapshot: row.get(13),
        record_hash: row.get(14),
        voided: row.get(15),
        outcome: row.get(16),
        payable_cents: row.get(17),
        payable_units: row.get(18),
        conflicts: row.get(19),
    }
}

fn flag_row(row: &Row) -> FlagColumns {
    FlagColumns {
        id: row.get(0),
        kind: row.get(1),
        subject: row.get(2),
        terminal: row.get(3),
        seq: row.get(4),
        merchant: row.get(5),
        providers: row.get(6),
        state: row.get(7),
        raised_at: row.get(8),
        evidence: row.get(9),
    }
}

/// Usage lines as one array per column, for `unnest`.
#[derive(Default)]
struct UsageArrays {
    terminal: Vec<String>,
    seq: Vec<i64>,
    line: Vec<i64>,
    benefit: Vec<String>,
    at: Vec<String>,
    day: Vec<String>,
    recipient: Vec<String>,
    credential: Vec<String>,
    provider: Vec<String>,
    merchant: Vec<String>,
    category: Vec<String>,
    amount_cents: Vec<i64>,
    units: Vec<i64>,
    snapshot: Vec<i64>,
    record_hash: Vec<String>,
    counted: Vec<i64>,
}

impl UsageArrays {
    fn push(&mut self, line: &super::UsageLine, counted: bool) {
        let r = &line.record;
        self.terminal.push(r.terminal.clone());
        self.seq.push(i(r.seq));
        self.line.push(i64::from(r.line));
        self.benefit.push(r.benefit.clone());
        self.at.push(r.at.to_string());
        self.day.push(line.day.to_string());
        self.recipient.push(r.recipient.clone());
        self.credential.push(r.credential.clone());
        self.provider.push(r.provider.clone());
        self.merchant.push(r.merchant.clone());
        self.category.push(r.category.clone());
        self.amount_cents.push(r.amount.cents());
        self.units.push(i64::from(r.count));
        self.snapshot.push(i(r.snapshot));
        self.record_hash.push(r.record_hash.to_hex());
        self.counted.push(i64::from(counted));
    }
}

/// A unique violation is an expected answer (`Conflict`), anything else a fault.
fn conflict_error(err: tokio_postgres::Error, what: String) -> StoreError {
    if err.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(what)
    } else {
        err.into()
    }
}

#[async_trait]
impl LedgerStore for PostgresStore {
    async fn ledger_pending(&self, limit: u32) -> StoreResult<Vec<PendingRecord>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT r.terminal, r.seq, r.outcome, r.reason, r.kind, r.merchant, r.providers,
                        r.snapshot, r.credential, r.at, r.body,
                        ARRAY(SELECT f.state FROM ledger_flags f WHERE f.terminal = r.terminal AND f.seq = r.seq)
                 FROM records r LEFT JOIN ledger_records l ON l.terminal = r.terminal AND l.seq = r.seq
                 WHERE l.terminal IS NULL OR l.outcome <> r.outcome
                 ORDER BY r.terminal, r.seq LIMIT $1",
                &[&i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let states: Vec<String> = row.get(11);
                Ok(PendingRecord {
                    terminal: row.get(0),
                    seq: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                    outcome: row.get(2),
                    reason: row.get(3),
                    kind: row.get(4),
                    merchant: row.get(5),
                    providers: row.get(6),
                    snapshot: u64::try_from(row.get::<_, i64>(7)).unwrap_or(0),
                    credential: row.get(8),
                    at: parse_ts(row.get(9))?,
                    body: row.get(10),
                    flag_states: states
                        .iter()
                        .map(|state| parse_state(state))
                        .collect::<StoreResult<Vec<_>>>()?,
                })
            })
            .collect()
    }

    async fn ledger_take_in(&self, intakes: Vec<Intake>) -> StoreResult<()> {
        // Arrays per column and one statement per table, not a round trip
        // per record: a busy day takes in a million records.
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let (mut terminals, mut seqs, mut outcomes) = (Vec::new(), Vec::new(), Vec::new());
        let (mut void_terminals, mut void_sales, mut void_seqs) =
            (Vec::new(), Vec::new(), Vec::new());
        let mut columns = UsageArrays::default();
        for intake in &intakes {
            terminals.push(intake.terminal.as_str());
            seqs.push(i(intake.seq));
            outcomes.push(intake.outcome.as_str());
            if let (Some(voids), true) = (intake.voids, intake.counted) {
                void_terminals.push(intake.terminal.as_str());
                void_sales.push(i(voids));
                void_seqs.push(i(intake.seq));
            }
            for line in &intake.lines {
                columns.push(line, intake.counted);
            }
        }
        tx.execute(
            "DELETE FROM ledger_usage u USING unnest($1::TEXT[], $2::BIGINT[]) AS r(terminal, seq)
             WHERE u.terminal = r.terminal AND u.seq = r.seq",
            &[&terminals, &seqs],
        )
        .await?;
        // A sale whose void comes or goes is decided again.
        tx.execute(
            "UPDATE ledger_usage u SET outcome = 'pending'
             FROM ledger_voids v, unnest($1::TEXT[], $2::BIGINT[]) AS r(terminal, seq)
             WHERE v.terminal = r.terminal AND v.seq = r.seq AND u.terminal = v.terminal AND u.seq = v.voids",
            &[&terminals, &seqs],
        )
        .await?;
        tx.execute(
            "DELETE FROM ledger_voids v USING unnest($1::TEXT[], $2::BIGINT[]) AS r(terminal, seq)
             WHERE v.terminal = r.terminal AND v.seq = r.seq",
            &[&terminals, &seqs],
        )
        .await?;
        tx.execute(
            "INSERT INTO ledger_usage (terminal, seq, line, benefit, at, day, recipient, credential,
                provider, merchant, category, amount_cents, units, snapshot, record_hash, counted,
                outcome, payable_cents, payable_units, conflicts)
             SELECT terminal, seq, line, benefit, at, day, recipient, credential, provider, merchant,
                    category, amount_cents, units, snapshot, record_hash, counted, 'pending', 0, 0, '[]'
             FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], $6::TEXT[],
                         $7::TEXT[], $8::TEXT[], $9::TEXT[], $10::TEXT[], $11::TEXT[], $12::BIGINT[],
                         $13::BIGINT[], $14::BIGINT[], $15::TEXT[], $16::BIGINT[])
                  AS l(terminal, seq, line, benefit, at, day, recipient, credential, provider, merchant,
                       category, amount_cents, units, snapshot, record_hash, counted)",
            &[
                &columns.terminal,
                &columns.seq,
                &columns.line,
                &columns.benefit,
                &columns.at,
                &columns.day,
                &columns.recipient,
                &columns.credential,
                &columns.provider,
                &columns.merchant,
                &columns.category,
                &columns.amount_cents,
                &columns.units,
                &columns.snapshot,
                &columns.record_hash,
                &columns.counted,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO ledger_voids (terminal, voids, seq)
             SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[])",
            &[&void_terminals, &void_sales, &void_seqs],
        )
        .await?;
        tx.execute(
            "UPDATE ledger_usage u SET outcome = 'pending'
             FROM unnest($1::TEXT[], $2::BIGINT[]) AS v(terminal, voids)
             WHERE u.terminal = v.terminal AND u.seq = v.voids",
            &[&void_terminals, &void_sales],
        )
        .await?;
        tx.execute(
            "INSERT INTO ledger_records (terminal, seq, outcome)
             SELECT * FROM unnest($1::TEXT[], $2::BIGINT[], $3::TEXT[])
             ON CONFLICT (terminal, seq) DO UPDATE SET outcome = excluded.outcome",
            &[&terminals, &seqs, &outcomes],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn ledger_usage(&self) -> StoreResult<Vec<StoredUsage>> {
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT {USAGE_COLUMNS} FROM ledger_usage u"), &[])
            .await?;
        rows.iter()
            .map(|row| usage_row(row).into_stored())
            .collect()
    }

    async fn ledger_usage_since(&self, since: Date) -> StoreResult<Vec<StoredUsage>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!("SELECT {USAGE_COLUMNS} FROM ledger_usage u WHERE u.day >= $1"),
                &[&since.to_string()],
            )
            .await?;
        rows.iter()
            .map(|row| usage_row(row).into_stored())
            .collect()
    }

    async fn ledger_pending_days(&self) -> StoreResult<Vec<(String, Date)>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT benefit, MIN(day) FROM ledger_usage WHERE outcome = 'pending' GROUP BY benefit",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| Ok((row.get(0), super::parse_day(row.get(1))?)))
            .collect()
    }

    async fn ledger_reset_benefit(&self, benefit: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE ledger_usage SET outcome = 'pending' WHERE benefit = $1",
                &[&benefit],
            )
            .await?;
        Ok(())
    }

    async fn ledger_store_decisions(&self, decisions: Vec<Decision>) -> StoreResult<()> {
        // One statement per chunk of arrays instead of one round trip per
        // line: the first run of a month stores a million decisions.
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let update = tx
            .prepare(
                "UPDATE ledger_usage u SET outcome = d.outcome, payable_cents = d.payable_cents,
                        payable_units = d.payable_units, conflicts = d.conflicts
                 FROM unnest($1::TEXT[], $2::BIGINT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[],
                             $6::BIGINT[], $7::BIGINT[], $8::TEXT[])
                      AS d(terminal, seq, line, benefit, outcome, payable_cents, payable_units, conflicts)
                 WHERE u.terminal = d.terminal AND u.seq = d.seq AND u.line = d.line AND u.benefit = d.benefit",
            )
            .await?;
        for chunk in decisions.chunks(DECISIONS_PER_STATEMENT) {
            let mut terminals = Vec::with_capacity(chunk.len());
            let mut seqs = Vec::with_capacity(chunk.len());
            let mut lines = Vec::with_capacity(chunk.len());
            let mut benefits = Vec::with_capacity(chunk.len());
            let mut outcomes = Vec::with_capacity(chunk.len());
            let mut payable_cents = Vec::with_capacity(chunk.len());
            let mut payable_units = Vec::with_capacity(chunk.len());
            let mut conflicts = Vec::with_capacity(chunk.len());
            for decision in chunk {
                terminals.push(decision.key.terminal.as_str());
                seqs.push(i(decision.key.seq));
                lines.push(i64::from(decision.key.line));
                benefits.push(decision.key.benefit.as_str());
                outcomes.push(outcome_text(Some(decision)));
                payable_cents.push(decision.payable.cents());
                payable_units.push(i64::from(decision.payable_count));
                conflicts.push(
                    serde_json::to_string(&decision.conflicts)
                        .map_err(|err| StoreError::Other(format!("conflicts: {err}")))?,
                );
            }
            tx.execute(
                &update,
                &[
                    &terminals,
                    &seqs,
                    &lines,
                    &benefits,
                    &outcomes,
                    &payable_cents,
                    &payable_units,
                    &conflicts,
                ],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn ledger_conflicts(
        &self,
        from: Date,
        to: Date,
        provider: Option<&str>,
        merchant: Option<&str>,
    ) -> StoreResult<Vec<ConflictRow>> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {USAGE_COLUMNS} FROM ledger_usage u
                     WHERE u.day >= $1 AND u.day <= $2 AND u.conflicts <> '[]'
                       AND ($3::TEXT IS NULL OR u.provider = $3) AND ($4::TEXT IS NULL OR u.merchant = $4)
                     ORDER BY u.day, u.at, u.terminal, u.seq, u.line, u.benefit"
                ),
                &[&from.to_string(), &to.to_string(), &provider, &merchant],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let stored = usage_row(row).into_stored()?;
                let decision = stored
                    .decision
                    .ok_or_else(|| StoreError::Other("a conflict without a decision".into()))?;
                Ok(ConflictRow {
                    line: stored.line,
                    decision,
                })
            })
            .collect()
    }

    async fn overuse_policies(&self) -> StoreResult<Policies> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT benefit, tolerance_count, tolerance_cents FROM ledger_policies",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get::<_, String>(0),
                    OverusePolicy {
                        tolerance_count: u32::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                        tolerance_amount: Money::from_cents(row.get(2)),
                    },
                )
            })
            .collect())
    }

    async fn set_overuse_policy(&self, benefit: &str, policy: &OverusePolicy) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO ledger_policies (benefit, tolerance_count, tolerance_cents) VALUES ($1, $2, $3)
                 ON CONFLICT (benefit) DO UPDATE SET tolerance_count = excluded.tolerance_count,
                    tolerance_cents = excluded.tolerance_cents",
                &[
                    &benefit,
                    &i64::from(policy.tolerance_count),
                    &policy.tolerance_amount.cents(),
                ],
            )
            .await?;
        Ok(())
    }

    async fn raise_flags(&self, flags: Vec<FlagRow>) -> StoreResult<u64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let insert = tx
            .prepare(&format!(
                "INSERT INTO ledger_flags ({FLAG_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                 ON CONFLICT (id) DO NOTHING"
            ))
            .await?;
        let mut new = 0;
        for row in &flags {
            let flag = &row.flag;
            new += tx
                .execute(
                    &insert,
                    &[
                        &flag.id,
                        &flag.kind.as_str(),
                        &subject_json(flag)?,
                        &row.terminal,
                        &row.seq.map(i),
                        &row.merchant,
                        &row.providers,
                        &flag.state.as_str(),
                        &flag.raised_at.to_string(),
                        &flag.evidence.to_string(),
                    ],
                )
                .await?;
        }
        tx.commit().await?;
        Ok(new)
    }

    async fn flags_after(
        &self,
        filter: &FlagFilter,
        after: Option<&str>,
    ) -> StoreResult<Vec<FlagRow>> {
        let provider = filter.provider.as_ref().map(|p| format!("%,{p},%"));
        let state = filter.state.map(|s| s.as_str());
        let kind = filter.kind.map(|k| k.as_str());
        // The cursor condition only when there is a cursor, so that the
        // planner can start the (raised_at, id) index at it.
        let cursor = if after.is_some() {
            "AND (raised_at, id) > (SELECT raised_at, id FROM ledger_flags WHERE id = $6)"
        } else {
            "AND $6::TEXT IS NULL"
        };
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {FLAG_COLUMNS} FROM ledger_flags
                     WHERE ($1::TEXT IS NULL OR providers LIKE $1) AND ($2::TEXT IS NULL OR merchant = $2)
                       AND ($3::TEXT IS NULL OR state = $3) AND ($4::TEXT IS NULL OR kind = $4)
                       {cursor}
                     ORDER BY raised_at, id LIMIT $5"
                ),
                &[
                    &provider,
                    &filter.merchant,
                    &state,
                    &kind,
                    &i64::from(filter.limit),
                    &after,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| flag_row(row).into_row(Vec::new()))
            .collect()
    }

    async fn flag(&self, id: &str) -> StoreResult<Option<FlagRow>> {
        let client = self.client().await?;
        let Some(row) = client
            .query_opt(
                &format!("SELECT {FLAG_COLUMNS} FROM ledger_flags WHERE id = $1"),
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let trail = client
            .query(
                "SELECT who, at, from_state, to_state, note FROM ledger_flag_audit WHERE flag = $1 ORDER BY n",
                &[&id],
            )
            .await?
            .iter()
            .map(|entry| {
                Ok(AuditEntry {
                    who: entry.get(0),
                    at: parse_ts(entry.get(1))?,
                    from: parse_state(entry.get(2))?,
                    to: parse_state(entry.get(3))?,
                    note: entry.get(4),
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(flag_row(&row).into_row(trail)?))
    }

    async fn decide_flag(&self, decision: &FlagDecision) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let changed = tx
            .execute(
                "UPDATE ledger_flags SET state = $3 WHERE id = $1 AND state = $2",
                &[
                    &decision.id,
                    &decision.from.as_str(),
                    &decision.entry.to.as_str(),
                ],
            )
            .await?;
        if changed != 1 {
            return Err(StoreError::Conflict(format!(
                "flag {}: no longer {} (decided meanwhile); reload it",
                decision.id,
                decision.from.as_str()
            )));
        }
        let entry = &decision.entry;
        tx.execute(
            "INSERT INTO ledger_flag_audit (flag, n, who, role, at, from_state, to_state, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &decision.id,
                &i(decision.step),
                &entry.who,
                &decision.role,
                &entry.at.to_string(),
                &entry.from.as_str(),
                &entry.to.as_str(),
                &entry.note,
            ],
        )
        .await
        .map_err(|err| {
            conflict_error(
                err,
                format!("flag {}: decided meanwhile; reload it", decision.id),
            )
        })?;
        tx.execute(
            "DELETE FROM ledger_records WHERE (terminal, seq) IN
               (SELECT terminal, seq FROM ledger_flags WHERE id = $1 AND seq IS NOT NULL)",
            &[&decision.id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn open_gaps(&self) -> StoreResult<Vec<OpenGap>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT t.id, t.acked_through, MIN(r.seq), MIN(p.received_at)
                 FROM terminals t JOIN records r ON r.terminal = t.id AND r.outcome = 'held'
                 LEFT JOIN packets p ON p.id = r.packet
                 GROUP BY t.id, t.acked_through ORDER BY t.id",
                &[],
            )
            .await?;
        rows.iter()
            .filter_map(|row| {
                let seen: Option<String> = row.get(3);
                seen.map(|seen| (row, seen))
            })
            .map(|(row, seen)| {
                Ok(OpenGap {
                    terminal: row.get(0),
                    from: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0) + 1,
                    to: u64::try_from(row.get::<_, i64>(2) - 1).unwrap_or(0),
                    first_seen: parse_ts(&seen)?,
                })
            })
            .collect()
    }

    async fn issue_settlement(&self, stored: &StoredSettlement) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let s = &stored.settlement;
        tx.execute(
            "INSERT INTO ledger_settlements (number, provider, merchant, period, sequence,
                creditor_reference, total_cents, fingerprint, document, issued_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &s.number,
                &s.provider,
                &s.merchant,
                &s.period.label(),
                &i64::from(s.sequence),
                &s.creditor_reference.as_str(),
                &s.total.cents(),
                &stored.fingerprint,
                &stored.document,
                &stored.issued_at.to_string(),
            ],
        )
        .await
        .map_err(|err| {
            conflict_error(
                err,
                format!(
                    "settlement {} (or its sequence or creditor reference) was already issued",
                    s.number
                ),
            )
        })?;
        // One statement per chunk of items: a month of a city settles a
        // million of them.
        for chunk in s.items.chunks(DECISIONS_PER_STATEMENT) {
            let terminals: Vec<&str> = chunk
                .iter()
                .map(|item| item.key.terminal.as_str())
                .collect();
            let seqs: Vec<i64> = chunk.iter().map(|item| i(item.key.seq)).collect();
            let lines: Vec<i64> = chunk.iter().map(|item| i64::from(item.key.line)).collect();
            let benefits: Vec<&str> = chunk.iter().map(|item| item.key.benefit.as_str()).collect();
            let amounts: Vec<i64> = chunk.iter().map(|item| item.amount.cents()).collect();
            tx.execute(
                "INSERT INTO ledger_settled (number, terminal, seq, line, benefit, amount_cents)
                 SELECT $1, * FROM unnest($2::TEXT[], $3::BIGINT[], $4::BIGINT[], $5::TEXT[], $6::BIGINT[])",
                &[&s.number, &terminals, &seqs, &lines, &benefits, &amounts],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn settlements(&self, filter: &SettlementFilter) -> StoreResult<Vec<SettlementSummary>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT number, provider, merchant, period, sequence, creditor_reference, total_cents,
                        fingerprint, issued_at
                 FROM ledger_settlements
                 WHERE ($1::TEXT IS NULL OR provider = $1) AND ($2::TEXT IS NULL OR merchant = $2)
                   AND ($3::TEXT IS NULL OR period = $3)
                 ORDER BY period, provider, merchant, sequence",
                &[&filter.provider, &filter.merchant, &filter.period],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(SettlementSummary {
                    number: row.get(0),
                    provider: row.get(1),
                    merchant: row.get(2),
                    period: row.get(3),
                    sequence: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
                    creditor_reference: row.get(5),
                    total_cents: row.get(6),
                    fingerprint: row.get(7),
                    issued_at: parse_ts(row.get(8))?,
                })
            })
            .collect()
    }

    async fn settlement(&self, number: &str) -> StoreResult<Option<StoredSettlement>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT document, fingerprint, issued_at FROM ledger_settlements WHERE number = $1",
                &[&number],
            )
            .await?;
        row.map(|row| stored_settlement(row.get(0), row.get(1), row.get(2)))
            .transpose()
    }

    async fn all_settlements(&self) -> StoreResult<Vec<StoredSettlement>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT document, fingerprint, issued_at FROM ledger_settlements ORDER BY issued_at, number",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| stored_settlement(row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    async fn invoice_party(&self, role: &str, id: &str) -> StoreResult<Option<String>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT details FROM ledger_parties WHERE role = $1 AND id = $2",
                &[&role, &id],
            )
            .await?
            .map(|row| row.get(0)))
    }

    async fn set_invoice_party(&self, role: &str, id: &str, details: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO ledger_parties (role, id, details) VALUES ($1, $2, $3)
                 ON CONFLICT (role, id) DO UPDATE SET details = excluded.details",
                &[&role, &id, &details],
            )
            .await?;
        Ok(())
    }
}
