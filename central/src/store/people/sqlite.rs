//! [`PeopleStore`] on SQLite.

use async_trait::async_trait;
use jiff::Timestamp;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::{
    page, period_sql, widened_range, Budget, PeopleStore, PeriodPage, PeriodQuery, Person,
    PortalAccess, SqlValue,
};
use crate::store::sqlite::{record_row, SqliteStore};
use crate::store::{parse_date, parse_ts, StoreResult};

fn person(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Person, Option<String>)> {
    Ok((
        Person {
            recipient: row.get(0)?,
            provider: row.get(1)?,
            personal_code: row.get(2)?,
            name: row.get(3)?,
            birth_date: None,
        },
        row.get(4)?,
    ))
}

fn persons(found: Vec<(Person, Option<String>)>) -> StoreResult<Vec<Person>> {
    found
        .into_iter()
        .map(|(mut person, birth)| {
            person.birth_date = parse_date(birth)?;
            Ok(person)
        })
        .collect()
}

fn placeholders(n: usize) -> String {
    vec!["?"; n].join(",")
}

#[async_trait]
impl PeopleStore for SqliteStore {
    async fn accepted_in_period(&self, from: Timestamp, to: Timestamp) -> StoreResult<u64> {
        self.call(move |conn| {
            let (from_text, to_text) = widened_range(from, to);
            let count: i64 = conn
                .prepare_cached(
                    // Merchant by merchant, so that the `(merchant, at)`
                    // index serves it: every record names its terminal's
                    // merchant, a registered one (a foreign key).
                    "SELECT COUNT(*) FROM records
                     WHERE merchant IN (SELECT id FROM merchants)
                       AND at >= ?1 AND at < ?2 AND outcome = 'accepted'",
                )?
                .query_row(params![from_text, to_text], |row| row.get(0))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    async fn records_in_period(&self, query: &PeriodQuery) -> StoreResult<PeriodPage> {
        let query = query.clone();
        self.call(move |conn| {
            let (sql, values) = period_sql(&query, false);
            let values: Vec<rusqlite::types::Value> = values
                .into_iter()
                .map(|value| match value {
                    SqlValue::Text(text) => rusqlite::types::Value::Text(text),
                    SqlValue::Int(int) => rusqlite::types::Value::Integer(int),
                })
                .collect();
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(values.iter()))?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                // The stored text too: pages are cut and resumed on it.
                let at: String = row.get(7)?;
                out.push((at, record_row(row)?));
            }
            Ok(page(&query, out))
        })
        .await
    }

    async fn persons_by_code(&self, codes: &[String]) -> StoreResult<Vec<Person>> {
        let codes = codes.to_vec();
        self.call(move |conn| {
            if codes.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT r.id, r.provider, p.personal_code, p.name, p.birth_date
                 FROM recipient_personal p JOIN recipients r ON r.id = p.recipient
                 WHERE p.personal_code IN ({}) ORDER BY r.id",
                placeholders(codes.len())
            );
            let mut stmt = conn.prepare(&sql)?;
            let found = stmt
                .query_map(params_from_iter(codes.iter()), person)?
                .collect::<Result<Vec<_>, _>>()?;
            persons(found)
        })
        .await
    }

    async fn children_of(&self, guardians: &[String]) -> StoreResult<Vec<Person>> {
        let guardians = guardians.to_vec();
        self.call(move |conn| {
            if guardians.is_empty() {
                return Ok(Vec::new());
            }
            let sql = format!(
                "SELECT DISTINCT r.id, r.provider, p.personal_code, p.name, p.birth_date
                 FROM guardians g JOIN recipients r ON r.id = g.child
                 LEFT JOIN recipient_personal p ON p.recipient = g.child
                 WHERE g.guardian IN ({}) ORDER BY r.id",
                placeholders(guardians.len())
            );
            let mut stmt = conn.prepare(&sql)?;
            let found = stmt
                .query_map(params_from_iter(guardians.iter()), person)?
                .collect::<Result<Vec<_>, _>>()?;
            persons(found)
        })
        .await
    }

    async fn create_portal_token(&self, hash: &str, label: &str) -> StoreResult<()> {
        let (hash, label) = (hash.to_owned(), label.to_owned());
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO portal_tokens (hash, label) VALUES (?1, ?2)",
                params![hash, label],
            )?;
            Ok(())
        })
        .await
    }

    async fn portal_token(&self, hash: &str) -> StoreResult<Option<String>> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT label FROM portal_tokens WHERE hash = ?1",
                    [&hash],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn log_portal_access(&self, access: &PortalAccess) -> StoreResult<()> {
        let access = access.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO portal_access (at, client, person_hash, found) VALUES (?1, ?2, ?3, ?4)",
                params![
                    access.at.to_string(),
                    access.client,
                    access.person_hash,
                    i64::from(access.found)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn portal_accesses(&self, person_hash: &str) -> StoreResult<Vec<PortalAccess>> {
        let person_hash = person_hash.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT at, client, person_hash, found FROM portal_access WHERE person_hash = ?1 ORDER BY at",
            )?;
            let rows = stmt
                .query_map([&person_hash], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(at, client, person_hash, found)| {
                    Ok(PortalAccess {
                        at: parse_ts(&at)?,
                        client,
                        person_hash,
                        found: found != 0,
                    })
                })
                .collect()
        })
        .await
    }

    async fn put_budget(&self, budget: &Budget) -> StoreResult<()> {
        let budget = budget.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO budgets (benefit, month, provider, expected_cents) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (benefit, month) DO UPDATE SET provider = excluded.provider, expected_cents = excluded.expected_cents",
                params![budget.benefit, budget.month, budget.provider, budget.expected_cents],
            )?;
            Ok(())
        })
        .await
    }

    async fn budgets(&self, provider: &str, month: &str) -> StoreResult<Vec<Budget>> {
        let (provider, month) = (provider.to_owned(), month.to_owned());
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT benefit, month, provider, expected_cents FROM budgets
                 WHERE provider = ?1 AND month = ?2 ORDER BY benefit",
            )?;
            let rows = stmt
                .query_map(params![provider, month], |row| {
                    Ok(Budget {
                        benefit: row.get(0)?,
                        month: row.get(1)?,
                        provider: row.get(2)?,
                        expected_cents: row.get(3)?,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }
}
