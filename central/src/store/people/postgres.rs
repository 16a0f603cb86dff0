//! [`PeopleStore`] on PostgreSQL. Stored instants are text compared in
//! byte order (`COLLATE "C"`), the order SQLite uses, whatever the
//! database's default collation.

use async_trait::async_trait;
use jiff::Timestamp;

use super::{
    page, period_sql, widened_range, Budget, PeopleStore, PeriodPage, PeriodQuery, Person,
    PortalAccess, SqlValue,
};
use crate::store::postgres::{record_row, PostgresStore};
use crate::store::{parse_date, parse_ts, StoreResult};

fn person(row: &tokio_postgres::Row) -> StoreResult<Person> {
    let birth: Option<String> = row.get(4);
    Ok(Person {
        recipient: row.get(0),
        provider: row.get(1),
        personal_code: row.get(2),
        name: row.get(3),
        birth_date: parse_date(birth)?,
    })
}

#[async_trait]
impl PeopleStore for PostgresStore {
    async fn accepted_in_period(&self, from: Timestamp, to: Timestamp) -> StoreResult<u64> {
        let (from_text, to_text) = widened_range(from, to);
        let row = self
            .client()
            .await?
            .query_one(
                // Merchant by merchant, so that the `(merchant, at)` index
                // serves it: every record names its terminal's merchant, a
                // registered one (a foreign key).
                "SELECT COUNT(*) FROM records
                 WHERE merchant IN (SELECT id FROM merchants)
                   AND at COLLATE \"C\" >= $1 AND at COLLATE \"C\" < $2 AND outcome = 'accepted'",
                &[&from_text, &to_text],
            )
            .await?;
        let count: i64 = row.get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn records_in_period(&self, query: &PeriodQuery) -> StoreResult<PeriodPage> {
        let (sql, values) = period_sql(query, true);
        let values: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = values
            .into_iter()
            .map(
                |value| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                    match value {
                        SqlValue::Text(text) => Box::new(text),
                        SqlValue::Int(int) => Box::new(int),
                    }
                },
            )
            .collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|value| value.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let rows = self.client().await?.query(&sql, &params).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            // The stored text too: pages are cut and resumed on it.
            out.push((row.get(7), record_row(row)?));
        }
        Ok(page(query, out))
    }

    async fn persons_by_code(&self, codes: &[String]) -> StoreResult<Vec<Person>> {
        self.client()
            .await?
            .query(
                "SELECT r.id, r.provider, p.personal_code, p.name, p.birth_date
                 FROM recipient_personal p JOIN recipients r ON r.id = p.recipient
                 WHERE p.personal_code = ANY($1) ORDER BY r.id",
                &[&codes],
            )
            .await?
            .iter()
            .map(person)
            .collect()
    }

    async fn children_of(&self, guardians: &[String]) -> StoreResult<Vec<Person>> {
        self.client()
            .await?
            .query(
                "SELECT DISTINCT r.id, r.provider, p.personal_code, p.name, p.birth_date
                 FROM guardians g JOIN recipients r ON r.id = g.child
                 LEFT JOIN recipient_personal p ON p.recipient = g.child
                 WHERE g.guardian = ANY($1) ORDER BY r.id",
                &[&guardians],
            )
            .await?
            .iter()
            .map(person)
            .collect()
    }

    async fn create_portal_token(&self, hash: &str, label: &str) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO portal_tokens (hash, label) VALUES ($1, $2)",
                &[&hash, &label],
            )
            .await?;
        Ok(())
    }

    async fn portal_token(&self, hash: &str) -> StoreResult<Option<String>> {
        Ok(self
            .client()
            .await?
            .query_opt("SELECT label FROM portal_tokens WHERE hash = $1", &[&hash])
            .await?
            .map(|row| row.get(0)))
    }

    async fn log_portal_access(&self, access: &PortalAccess) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO portal_access (at, client, person_hash, found) VALUES ($1, $2, $3, $4)",
                &[
                    &access.at.to_string(),
                    &access.client,
                    &access.person_hash,
                    &i32::from(access.found),
                ],
            )
            .await?;
        Ok(())
    }

    async fn portal_accesses(&self, person_hash: &str) -> StoreResult<Vec<PortalAccess>> {
        self.client()
            .await?
            .query(
                "SELECT at, client, person_hash, found FROM portal_access WHERE person_hash = $1 ORDER BY at COLLATE \"C\"",
                &[&person_hash],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(PortalAccess {
                    at: parse_ts(row.get(0))?,
                    client: row.get(1),
                    person_hash: row.get(2),
                    found: row.get::<_, i32>(3) != 0,
                })
            })
            .collect()
    }

    async fn put_budget(&self, budget: &Budget) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO budgets (benefit, month, provider, expected_cents) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (benefit, month) DO UPDATE SET provider = excluded.provider, expected_cents = excluded.expected_cents",
                &[&budget.benefit, &budget.month, &budget.provider, &budget.expected_cents],
            )
            .await?;
        Ok(())
    }

    async fn budgets(&self, provider: &str, month: &str) -> StoreResult<Vec<Budget>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT benefit, month, provider, expected_cents FROM budgets
                 WHERE provider = $1 AND month = $2 ORDER BY benefit",
                &[&provider, &month],
            )
            .await?
            .iter()
            .map(|row| Budget {
                benefit: row.get(0),
                month: row.get(1),
                provider: row.get(2),
                expected_cents: row.get(3),
            })
            .collect())
    }
}
