//! [`LedgerStore`] on SQLite.

use async_trait::async_trait;
use jiff::civil::Date;
use rusqlite::{params, OptionalExtension};
use shared::money::Money;

use super::{
    outcome_text, parse_state, parse_ts, stored_settlement, subject_json, ConflictRow, FlagColumns,
    FlagDecision, FlagFilter, FlagRow, Intake, LedgerStore, PendingRecord, SettlementFilter,
    SettlementSummary, StoredSettlement, StoredUsage, UsageColumns, FLAG_COLUMNS, USAGE_COLUMNS,
};
use crate::reconcile::flags::{AuditEntry, OpenGap};
use crate::reconcile::{Decision, OverusePolicy, Policies};
use crate::store::sqlite::SqliteStore;
use crate::store::{StoreError, StoreResult};

fn i(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn usage_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UsageColumns> {
    Ok(UsageColumns {
        terminal: row.get(0)?,
        seq: row.get(1)?,
        line: row.get(2)?,
        benefit: row.get(3)?,
        at: row.get(4)?,
        day: row.get(5)?,
        recipient: row.get(6)?,
        credential: row.get(7)?,
        provider: row.get(8)?,
        merchant: row.get(9)?,
        category: row.get(10)?,
        amount_cents: row.get(11)?,
        units: row.get(12)?,
        snapshot: row.get(13)?,
        record_hash: row.get(14)?,
        voided: row.get(15)?,
        outcome: row.get(16)?,
        payable_cents: row.get(17)?,
        payable_units: row.get(18)?,
        conflicts: row.get(19)?,
    })
}

fn flag_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<FlagColumns> {
    Ok(FlagColumns {
        id: row.get(0)?,
        kind: row.get(1)?,
        subject: row.get(2)?,
        terminal: row.get(3)?,
        seq: row.get(4)?,
        merchant: row.get(5)?,
        providers: row.get(6)?,
        state: row.get(7)?,
        raised_at: row.get(8)?,
        evidence: row.get(9)?,
    })
}

fn conflict_error(err: rusqlite::Error, what: String) -> StoreError {
    match err {
        rusqlite::Error::SqliteFailure(code, _)
            if code.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::Conflict(what)
        }
        other => other.into(),
    }
}

#[async_trait]
impl LedgerStore for SqliteStore {
    async fn ledger_pending(&self, limit: u32) -> StoreResult<Vec<PendingRecord>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT r.terminal, r.seq, r.outcome, r.reason, r.kind, r.merchant, r.providers,
                        r.snapshot, r.credential, r.at, r.body
                 FROM records r LEFT JOIN ledger_records l ON l.terminal = r.terminal AND l.seq = r.seq
                 WHERE l.terminal IS NULL OR l.outcome <> r.outcome
                 ORDER BY r.terminal, r.seq LIMIT ?1",
            )?;
            let rows = stmt
                .query_map(params![i64::from(limit)], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, Option<String>>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, String>(6)?,
                        row.get::<_, i64>(7)?,
                        row.get::<_, String>(8)?,
                        row.get::<_, String>(9)?,
                        row.get::<_, String>(10)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            let mut states =
                conn.prepare_cached("SELECT state FROM ledger_flags WHERE terminal = ?1 AND seq = ?2")?;
            let mut out = Vec::with_capacity(rows.len());
            for (terminal, seq, outcome, reason, kind, merchant, providers, snapshot, credential, at, body) in rows {
                let flag_states = states
                    .query_map(params![terminal, seq], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?
                    .iter()
                    .map(|state| parse_state(state))
                    .collect::<StoreResult<Vec<_>>>()?;
                out.push(PendingRecord {
                    terminal,
                    seq: u64::try_from(seq).unwrap_or(0),
                    outcome,
                    reason,
                    kind,
                    merchant,
                    providers,
                    snapshot: u64::try_from(snapshot).unwrap_or(0),
                    credential,
                    at: parse_ts(&at)?,
                    body,
                    flag_states,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn ledger_take_in(&self, intakes: Vec<Intake>) -> StoreResult<()> {
        self.write(move |tx| {
            let mut delete_usage =
                tx.prepare_cached("DELETE FROM ledger_usage WHERE terminal = ?1 AND seq = ?2")?;
            let mut delete_void =
                tx.prepare_cached("DELETE FROM ledger_voids WHERE terminal = ?1 AND seq = ?2")?;
            // A sale whose void comes or goes is decided again.
            let mut unvoided = tx.prepare_cached(
                "UPDATE ledger_usage SET outcome = 'pending' WHERE terminal = ?1 AND seq IN
                   (SELECT voids FROM ledger_voids WHERE terminal = ?1 AND seq = ?2)",
            )?;
            let mut voided = tx.prepare_cached(
                "UPDATE ledger_usage SET outcome = 'pending' WHERE terminal = ?1 AND seq = ?2",
            )?;
            let mut insert_usage = tx.prepare_cached(
                "INSERT INTO ledger_usage (terminal, seq, line, benefit, at, day, recipient, credential,
                    provider, merchant, category, amount_cents, units, snapshot, record_hash, counted,
                    outcome, payable_cents, payable_units, conflicts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, 'pending', 0, 0, '[]')",
            )?;
            let mut insert_void =
                tx.prepare_cached("INSERT INTO ledger_voids (terminal, voids, seq) VALUES (?1, ?2, ?3)")?;
            let mut taken = tx.prepare_cached(
                "INSERT INTO ledger_records (terminal, seq, outcome) VALUES (?1, ?2, ?3)
                 ON CONFLICT (terminal, seq) DO UPDATE SET outcome = excluded.outcome",
            )?;
            for intake in &intakes {
                let seq = i(intake.seq);
                delete_usage.execute(params![intake.terminal, seq])?;
                unvoided.execute(params![intake.terminal, seq])?;
                delete_void.execute(params![intake.terminal, seq])?;
                for line in &intake.lines {
                    let r = &line.record;
                    insert_usage.execute(params![
                        r.terminal,
                        i(r.seq),
                        i64::from(r.line),
                        r.benefit,
                        r.at.to_string(),
                        line.day.to_string(),
                        r.recipient,
                        r.credential,
                        r.provider,
                        r.merchant,
                        r.category,
                        r.amount.cents(),
                        i64::from(r.count),
                        i(r.snapshot),
                        r.record_hash.to_hex(),
                        i64::from(intake.counted),
                    ])?;
                }
                if let (Some(voids), true) = (intake.voids, intake.counted) {
                    insert_void.execute(params![intake.terminal, i(voids), seq])?;
                    voided.execute(params![intake.terminal, i(voids)])?;
                }
                taken.execute(params![intake.terminal, seq, intake.outcome])?;
            }
            Ok(())
        })
        .await
    }

    async fn ledger_usage(&self) -> StoreResult<Vec<StoredUsage>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {USAGE_COLUMNS} FROM ledger_usage u"))?;
            let rows = stmt
                .query_map([], usage_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(UsageColumns::into_stored).collect()
        })
        .await
    }

    async fn ledger_usage_since(&self, since: Date) -> StoreResult<Vec<StoredUsage>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {USAGE_COLUMNS} FROM ledger_usage u WHERE u.day >= ?1"
            ))?;
            let rows = stmt
                .query_map(params![since.to_string()], usage_row)?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter().map(UsageColumns::into_stored).collect()
        })
        .await
    }

    async fn ledger_pending_days(&self) -> StoreResult<Vec<(String, Date)>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT benefit, MIN(day) FROM ledger_usage WHERE outcome = 'pending' GROUP BY benefit",
            )?;
            let rows = stmt
                .query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(benefit, day)| Ok((benefit, super::parse_day(&day)?)))
                .collect()
        })
        .await
    }

    async fn ledger_reset_benefit(&self, benefit: &str) -> StoreResult<()> {
        let benefit = benefit.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE ledger_usage SET outcome = 'pending' WHERE benefit = ?1",
                params![benefit],
            )?;
            Ok(())
        })
        .await
    }

    async fn ledger_store_decisions(&self, decisions: Vec<Decision>) -> StoreResult<()> {
        self.write(move |tx| {
            let mut update = tx.prepare_cached(
                "UPDATE ledger_usage SET outcome = ?5, payable_cents = ?6, payable_units = ?7, conflicts = ?8
                 WHERE terminal = ?1 AND seq = ?2 AND line = ?3 AND benefit = ?4",
            )?;
            for decision in &decisions {
                let conflicts = serde_json::to_string(&decision.conflicts)
                    .map_err(|err| StoreError::Other(format!("conflicts: {err}")))?;
                update.execute(params![
                    decision.key.terminal,
                    i(decision.key.seq),
                    i64::from(decision.key.line),
                    decision.key.benefit,
                    outcome_text(Some(decision)),
                    decision.payable.cents(),
                    i64::from(decision.payable_count),
                    conflicts,
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn ledger_conflicts(
        &self,
        from: Date,
        to: Date,
        provider: Option<&str>,
        merchant: Option<&str>,
    ) -> StoreResult<Vec<ConflictRow>> {
        let (provider, merchant) = (provider.map(str::to_owned), merchant.map(str::to_owned));
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {USAGE_COLUMNS} FROM ledger_usage u
                 WHERE u.day >= ?1 AND u.day <= ?2 AND u.conflicts <> '[]'
                   AND (?3 IS NULL OR u.provider = ?3) AND (?4 IS NULL OR u.merchant = ?4)
                 ORDER BY u.day, u.at, u.terminal, u.seq, u.line, u.benefit"
            ))?;
            let rows = stmt
                .query_map(
                    params![from.to_string(), to.to_string(), provider, merchant],
                    usage_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|columns| {
                    let stored = columns.into_stored()?;
                    let decision = stored
                        .decision
                        .ok_or_else(|| StoreError::Other("a conflict without a decision".into()))?;
                    Ok(ConflictRow {
                        line: stored.line,
                        decision,
                    })
                })
                .collect()
        })
        .await
    }

    async fn overuse_policies(&self) -> StoreResult<Policies> {
        self.call(|conn| {
            let mut stmt = conn
                .prepare("SELECT benefit, tolerance_count, tolerance_cents FROM ledger_policies")?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows
                .into_iter()
                .map(|(benefit, count, cents)| {
                    (
                        benefit,
                        OverusePolicy {
                            tolerance_count: u32::try_from(count).unwrap_or(0),
                            tolerance_amount: Money::from_cents(cents),
                        },
                    )
                })
                .collect())
        })
        .await
    }

    async fn set_overuse_policy(&self, benefit: &str, policy: &OverusePolicy) -> StoreResult<()> {
        let (benefit, policy) = (benefit.to_owned(), *policy);
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO ledger_policies (benefit, tolerance_count, tolerance_cents) VALUES (?1, ?2, ?3)
                 ON CONFLICT (benefit) DO UPDATE SET tolerance_count = excluded.tolerance_count,
                    tolerance_cents = excluded.tolerance_cents",
                params![benefit, i64::from(policy.tolerance_count), policy.tolerance_amount.cents()],
            )?;
            Ok(())
        })
        .await
    }

    async fn raise_flags(&self, flags: Vec<FlagRow>) -> StoreResult<u64> {
        self.write(move |tx| {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO ledger_flags ({FLAG_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (id) DO NOTHING"
            ))?;
            let mut new = 0;
            for row in &flags {
                let flag = &row.flag;
                new += insert.execute(params![
                    flag.id,
                    flag.kind.as_str(),
                    subject_json(flag)?,
                    row.terminal,
                    row.seq.map(i),
                    row.merchant,
                    row.providers,
                    flag.state.as_str(),
                    flag.raised_at.to_string(),
                    flag.evidence.to_string(),
                ])? as u64;
            }
            Ok(new)
        })
        .await
    }

    async fn flags_after(
        &self,
        filter: &FlagFilter,
        after: Option<&str>,
    ) -> StoreResult<Vec<FlagRow>> {
        let provider = filter.provider.as_ref().map(|p| format!("%,{p},%"));
        let merchant = filter.merchant.clone();
        let state = filter.state.map(|s| s.as_str());
        let kind = filter.kind.map(|k| k.as_str());
        let limit = i64::from(filter.limit);
        let after = after.map(str::to_owned);
        self.call(move |conn| {
            // The cursor condition only when there is a cursor: written as
            // `?6 IS NULL OR ...` the planner cannot seek the (raised_at, id)
            // index to the cursor and scans from the first flag.
            let cursor = if after.is_some() {
                "AND (raised_at, id) > (SELECT raised_at, id FROM ledger_flags WHERE id = ?6)"
            } else {
                "AND ?6 IS NULL"
            };
            let mut stmt = conn.prepare(&format!(
                "SELECT {FLAG_COLUMNS} FROM ledger_flags
                 WHERE (?1 IS NULL OR providers LIKE ?1) AND (?2 IS NULL OR merchant = ?2)
                   AND (?3 IS NULL OR state = ?3) AND (?4 IS NULL OR kind = ?4)
                   {cursor}
                 ORDER BY raised_at, id LIMIT ?5"
            ))?;
            let rows = stmt
                .query_map(
                    params![provider, merchant, state, kind, limit, after],
                    flag_row,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|row| row.into_row(Vec::new()))
                .collect()
        })
        .await
    }

    async fn flag(&self, id: &str) -> StoreResult<Option<FlagRow>> {
        let id = id.to_owned();
        self.call(move |conn| {
            let Some(columns) = conn
                .query_row(
                    &format!("SELECT {FLAG_COLUMNS} FROM ledger_flags WHERE id = ?1"),
                    params![id],
                    flag_row,
                )
                .optional()?
            else {
                return Ok(None);
            };
            let mut stmt = conn.prepare(
                "SELECT who, role, at, from_state, to_state, note FROM ledger_flag_audit WHERE flag = ?1 ORDER BY n",
            )?;
            let trail = stmt
                .query_map(params![id], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, String>(4)?,
                        row.get::<_, String>(5)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .map(|(who, _role, at, from, to, note)| {
                    Ok(AuditEntry {
                        who,
                        at: parse_ts(&at)?,
                        from: parse_state(&from)?,
                        to: parse_state(&to)?,
                        note,
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some(columns.into_row(trail)?))
        })
        .await
    }

    async fn decide_flag(&self, decision: &FlagDecision) -> StoreResult<()> {
        let decision = decision.clone();
        self.write(move |tx| {
            let changed = tx.execute(
                "UPDATE ledger_flags SET state = ?3 WHERE id = ?1 AND state = ?2",
                params![
                    decision.id,
                    decision.from.as_str(),
                    decision.entry.to.as_str()
                ],
            )?;
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
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    decision.id,
                    i(decision.step),
                    entry.who,
                    decision.role,
                    entry.at.to_string(),
                    entry.from.as_str(),
                    entry.to.as_str(),
                    entry.note
                ],
            )
            .map_err(|err| {
                conflict_error(
                    err,
                    format!("flag {}: decided meanwhile; reload it", decision.id),
                )
            })?;
            // The record named by the flag is taken in again by the next run.
            tx.execute(
                "DELETE FROM ledger_records WHERE (terminal, seq) IN
                   (SELECT terminal, seq FROM ledger_flags WHERE id = ?1 AND seq IS NOT NULL)",
                params![decision.id],
            )?;
            Ok(())
        })
        .await
    }

    async fn open_gaps(&self) -> StoreResult<Vec<OpenGap>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT t.id, t.acked_through, MIN(r.seq), MIN(p.received_at)
                 FROM terminals t JOIN records r ON r.terminal = t.id AND r.outcome = 'held'
                 LEFT JOIN packets p ON p.id = r.packet
                 GROUP BY t.id, t.acked_through ORDER BY t.id",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, Option<String>>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .filter_map(|(terminal, acked, first_held, seen)| {
                    let seen = seen?;
                    Some((terminal, acked, first_held, seen))
                })
                .map(|(terminal, acked, first_held, seen)| {
                    Ok(OpenGap {
                        terminal,
                        from: u64::try_from(acked).unwrap_or(0) + 1,
                        to: u64::try_from(first_held - 1).unwrap_or(0),
                        first_seen: parse_ts(&seen)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn issue_settlement(&self, stored: &StoredSettlement) -> StoreResult<()> {
        let stored = stored.clone();
        self.write(move |tx| {
            let s = &stored.settlement;
            tx.execute(
                "INSERT INTO ledger_settlements (number, provider, merchant, period, sequence,
                    creditor_reference, total_cents, fingerprint, document, issued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    s.number,
                    s.provider,
                    s.merchant,
                    s.period.label(),
                    i64::from(s.sequence),
                    s.creditor_reference.as_str(),
                    s.total.cents(),
                    stored.fingerprint,
                    stored.document,
                    stored.issued_at.to_string()
                ],
            )
            .map_err(|err| {
                conflict_error(
                    err,
                    format!(
                        "settlement {} (or its sequence or creditor reference) was already issued",
                        s.number
                    ),
                )
            })?;
            let mut settled = tx.prepare_cached(
                "INSERT INTO ledger_settled (number, terminal, seq, line, benefit, amount_cents)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for item in &s.items {
                settled.execute(params![
                    s.number,
                    item.key.terminal,
                    i(item.key.seq),
                    i64::from(item.key.line),
                    item.key.benefit,
                    item.amount.cents()
                ])?;
            }
            Ok(())
        })
        .await
    }

    async fn settlements(&self, filter: &SettlementFilter) -> StoreResult<Vec<SettlementSummary>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT number, provider, merchant, period, sequence, creditor_reference, total_cents,
                        fingerprint, issued_at
                 FROM ledger_settlements
                 WHERE (?1 IS NULL OR provider = ?1) AND (?2 IS NULL OR merchant = ?2)
                   AND (?3 IS NULL OR period = ?3)
                 ORDER BY period, provider, merchant, sequence",
            )?;
            let rows = stmt
                .query_map(params![filter.provider, filter.merchant, filter.period], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, String>(5)?,
                        row.get::<_, i64>(6)?,
                        row.get::<_, String>(7)?,
                        row.get::<_, String>(8)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(number, provider, merchant, period, sequence, reference, total, fingerprint, at)| {
                    Ok(SettlementSummary {
                        number,
                        provider,
                        merchant,
                        period,
                        sequence: u64::try_from(sequence).unwrap_or(0),
                        creditor_reference: reference,
                        total_cents: total,
                        fingerprint,
                        issued_at: parse_ts(&at)?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn settlement(&self, number: &str) -> StoreResult<Option<StoredSettlement>> {
        let number = number.to_owned();
        self.call(move |conn| {
            let found = conn
                .query_row(
                    "SELECT document, fingerprint, issued_at FROM ledger_settlements WHERE number = ?1",
                    params![number],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)),
                )
                .optional()?;
            found
                .map(|(document, fingerprint, at)| stored_settlement(document, fingerprint, &at))
                .transpose()
        })
        .await
    }

    async fn all_settlements(&self) -> StoreResult<Vec<StoredSettlement>> {
        self.call(|conn| {
            let mut stmt = conn.prepare(
                "SELECT document, fingerprint, issued_at FROM ledger_settlements ORDER BY issued_at, number",
            )?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(document, fingerprint, at)| stored_settlement(document, fingerprint, &at))
                .collect()
        })
        .await
    }

    async fn invoice_party(&self, role: &str, id: &str) -> StoreResult<Option<String>> {
        let (role, id) = (role.to_owned(), id.to_owned());
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT details FROM ledger_parties WHERE role = ?1 AND id = ?2",
                    params![role, id],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn set_invoice_party(&self, role: &str, id: &str, details: &str) -> StoreResult<()> {
        let (role, id, details) = (role.to_owned(), id.to_owned(), details.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO ledger_parties (role, id, details) VALUES (?1, ?2, ?3)
                 ON CONFLICT (role, id) DO UPDATE SET details = excluded.details",
                params![role, id, details],
            )?;
            Ok(())
        })
        .await
    }
}
