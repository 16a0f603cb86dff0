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
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let delete_usage = tx
            .prepare("DELETE FROM ledger_usage WHERE terminal = $1 AND seq = $2")
            .await?;
        let delete_void = tx
            .prepare("DELETE FROM ledger_voids WHERE terminal = $1 AND seq = $2")
            .await?;
        let insert_usage = tx
            .prepare(
                "INSERT INTO ledger_usage (terminal, seq, line, benefit, at, day, recipient, credential,
                    provider, merchant, category, amount_cents, units, snapshot, record_hash, counted,
                    outcome, payable_cents, payable_units, conflicts)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 'pending', 0, 0, '[]')",
            )
            .await?;
        let insert_void = tx
            .prepare("INSERT INTO ledger_voids (terminal, voids, seq) VALUES ($1, $2, $3)")
            .await?;
        let taken = tx
            .prepare(
                "INSERT INTO ledger_records (terminal, seq, outcome) VALUES ($1, $2, $3)
                 ON CONFLICT (terminal, seq) DO UPDATE SET outcome = excluded.outcome",
            )
            .await?;
        for intake in &intakes {
            let seq = i(intake.seq);
            tx.execute(&delete_usage, &[&intake.terminal, &seq]).await?;
            tx.execute(&delete_void, &[&intake.terminal, &seq]).await?;
            for line in &intake.lines {
                let r = &line.record;
                tx.execute(
                    &insert_usage,
                    &[
                        &r.terminal,
                        &i(r.seq),
                        &i64::from(r.line),
                        &r.benefit,
                        &r.at.to_string(),
                        &line.day.to_string(),
                        &r.recipient,
                        &r.credential,
                        &r.provider,
                        &r.merchant,
                        &r.category,
                        &r.amount.cents(),
                        &i64::from(r.count),
                        &i(r.snapshot),
                        &r.record_hash.to_hex(),
                        &i64::from(intake.counted),
                    ],
                )
                .await?;
            }
            if let (Some(voids), true) = (intake.voids, intake.counted) {
                tx.execute(&insert_void, &[&intake.terminal, &i(voids), &seq])
                    .await?;
            }
            tx.execute(&taken, &[&intake.terminal, &seq, &intake.outcome])
                .await?;
        }
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

    async fn ledger_store_decisions(&self, decisions: Vec<Decision>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let update = tx
            .prepare(
                "UPDATE ledger_usage SET outcome = $5, payable_cents = $6, payable_units = $7, conflicts = $8
                 WHERE terminal = $1 AND seq = $2 AND line = $3 AND benefit = $4",
            )
            .await?;
        for decision in &decisions {
            let conflicts = serde_json::to_string(&decision.conflicts)
                .map_err(|err| StoreError::Other(format!("conflicts: {err}")))?;
            tx.execute(
                &update,
                &[
                    &decision.key.terminal,
                    &i(decision.key.seq),
                    &i64::from(decision.key.line),
                    &decision.key.benefit,
                    &outcome_text(Some(decision)),
                    &decision.payable.cents(),
                    &i64::from(decision.payable_count),
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

    async fn flags(&self, filter: &FlagFilter) -> StoreResult<Vec<FlagRow>> {
        let provider = filter.provider.as_ref().map(|p| format!("%,{p},%"));
        let state = filter.state.map(|s| s.as_str());
        let kind = filter.kind.map(|k| k.as_str());
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {FLAG_COLUMNS} FROM ledger_flags
                     WHERE ($1::TEXT IS NULL OR providers LIKE $1) AND ($2::TEXT IS NULL OR merchant = $2)
                       AND ($3::TEXT IS NULL OR state = $3) AND ($4::TEXT IS NULL OR kind = $4)
                     ORDER BY raised_at, id LIMIT $5"
                ),
                &[
                    &provider,
                    &filter.merchant,
                    &state,
                    &kind,
                    &i64::from(filter.limit),
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
        let settled = tx
            .prepare(
                "INSERT INTO ledger_settled (number, terminal, seq, line, benefit, amount_cents)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .await?;
        for item in &s.items {
            tx.execute(
                &settled,
                &[
                    &s.number,
                    &item.key.terminal,
                    &i(item.key.seq),
                    &i64::from(item.key.line),
                    &item.key.benefit,
                    &item.amount.cents(),
                ],
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
