//! The PostgreSQL [`Store`]: production, and several central processes
//! over one database.
//!
//! Safety across processes comes from the database: primary keys on
//! `(terminal, seq)`, `(terminal, seq, hash)` and packet ids; a packet's
//! transaction first locks its terminal's row (`FOR UPDATE`), so two
//! instances ingesting the same terminal take turns; and every transaction
//! that appends to `changes` takes one transaction-scoped advisory lock
//! just before it, so change numbers become visible in commit order and a
//! delta from version N can never miss a change below a newer one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use jiff::civil::Date;
use jiff::Timestamp;
use shared::model::{Benefit, Grant, Membership};
use shared::wire::record::CredentialKind;
use tokio_postgres::{NoTls, Transaction};

use super::plan::{self, Known, Outcome, Reason};
use super::*;

/// Migrations in order; the file names match `migrations/sqlite/`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../migrations/postgres/0001_init.sql"),
    ),
    (
        "0002_ledger.sql",
        include_str!("../../migrations/postgres/0002_ledger.sql"),
    ),
    (
        "0003_people.sql",
        include_str!("../../migrations/postgres/0003_people.sql"),
    ),
    (
        "0004_ingest.sql",
        include_str!("../../migrations/postgres/0004_ingest.sql"),
    ),
    (
        "0005_evidence.sql",
        include_str!("../../migrations/postgres/0005_evidence.sql"),
    ),
    (
        "0006_ledger_index.sql",
        include_str!("../../migrations/postgres/0006_ledger_index.sql"),
    ),
];

/// Advisory lock keys (arbitrary constants, named here once).
const LOCK_MIGRATIONS: i64 = 0x6365_6e74_0001;
const LOCK_CHANGES: i64 = 0x6365_6e74_0002;
/// Connections per central process.
const POOL_MAX: usize = 16;

pub struct PostgresStore {
    pool: Pool,
}

impl PostgresStore {
    /// Connects and runs migrations. `schema`: use (and create) this schema
    /// instead of the default search path; tests use a fresh one each.
    pub async fn connect(url: &str, schema: Option<&str>) -> StoreResult<PostgresStore> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|err| StoreError::Other(format!("database URL: {err}")))?;
        if let Some(schema) = schema {
            if !schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(StoreError::Invalid(format!("schema name {schema:?}")));
            }
            let (client, connection) = config.connect(NoTls).await?;
            let task = tokio::spawn(connection);
            client
                .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                .await?;
            drop(client);
            let _ = task.await;
            config.options(format!("-c search_path={schema}"));
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_MAX)
            .build()
            .map_err(|err| StoreError::Other(format!("postgres pool: {err}")))?;
        let store = PostgresStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    pub(crate) async fn client(&self) -> StoreResult<Object> {
        Ok(self.pool.get().await?)
    }

    /// Providers and merchants are the same kind of row in two tables.
    async fn upsert_party(&self, table: PartyTable, party: &Party) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                &format!(
                    "INSERT INTO {} (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                    table.name()
                ),
                &[&party.id, &party.name],
            )
            .await?;
        Ok(())
    }

    async fn parties(&self, table: PartyTable) -> StoreResult<Vec<Party>> {
        Ok(self
            .client()
            .await?
            .query(
                &format!("SELECT id, name FROM {} ORDER BY id", table.name()),
                &[],
            )
            .await?
            .iter()
            .map(|row| Party {
                id: row.get(0),
                name: row.get(1),
            })
            .collect())
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_MIGRATIONS])
            .await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .await?;
        let applied: HashSet<String> = tx
            .query("SELECT name FROM schema_migrations", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let known: HashSet<&str> = MIGRATIONS.iter().map(|(name, _)| *name).collect();
        if let Some(newer) = applied.iter().find(|name| !known.contains(name.as_str())) {
            return Err(StoreError::Other(format!(
                "the database has migration {newer} that this central does not know: refusing to run an older central on a newer database"
            )));
        }
        for (name, sql) in MIGRATIONS {
            if applied.contains(*name) {
                continue;
            }
            tx.batch_execute(sql)
                .await
                .map_err(|err| StoreError::Other(format!("migration {name}: {err}")))?;
            tx.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                &[name, &Timestamp::now().to_string()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A [`RecordRow`] from a row whose columns are `terminal, seq, hash,
/// outcome, reason, recipient, merchant, at, kind, discount_cents, body`.
pub(crate) fn record_row(row: &tokio_postgres::Row) -> StoreResult<RecordRow> {
    Ok(RecordRow {
        terminal: row.get(0),
        seq: to_u64(row.get(1)),
        hash: row.get(2),
        outcome: row.get(3),
        reason: row.get(4),
        recipient: row.get(5),
        merchant: row.get(6),
        at: parse_ts(row.get(7))?,
        kind: row.get(8),
        discount_cents: row.get(9),
        body: row.get(10),
    })
}

impl PostgresStore {
    /// Evidence kept apart from the chain (forks, bad signatures) by
    /// `sql`, which selects `terminal, seq, hash, body` for `$1` (a
    /// terminal, or NULL for all).
    async fn evidence(&self, sql: &str, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>> {
        Ok(self
            .client()
            .await?
            .query(sql, &[&terminal])
            .await?
            .iter()
            .map(|row| ForkRow {
                terminal: row.get(0),
                seq: to_u64(row.get(1)),
                hash: row.get(2),
                body: row.get(3),
            })
            .collect())
    }
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn date_text(date: Option<Date>) -> Option<String> {
    date.map(|date| date.to_string())
}

fn parse_benefit(json: &str) -> StoreResult<Benefit> {
    serde_json::from_str(json)
        .map_err(|err| StoreError::Other(format!("stored benefit definition: {err}")))
}

fn credential_kind(text: &str) -> StoreResult<CredentialKind> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Other(format!("stored credential kind {text:?}")))
}

/// Takes the change-log lock: from here to commit this transaction is the
/// only one appending changes, so seqs are visible in order.
async fn lock_changes(tx: &Transaction<'_>) -> StoreResult<()> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_CHANGES])
        .await?;
    Ok(())
}

async fn log_change(tx: &Transaction<'_>, kind: &str, key: &str) -> StoreResult<u64> {
    let row = tx
        .query_one(
            "INSERT INTO changes (kind, key) VALUES ($1, $2) RETURNING seq",
            &[&kind, &key],
        )
        .await?;
    Ok(to_u64(row.get(0)))
}

const TERMINAL_COLUMNS: &str =
    "id, merchant, label, categories, status, public_key, acked_through, last_seen, clock_skew_s";

fn terminal_from_row(row: &tokio_postgres::Row) -> StoreResult<Terminal> {
    let categories: String = row.get(3);
    let status: String = row.get(4);
    let last_seen: Option<String> = row.get(7);
    Ok(Terminal {
        id: row.get(0),
        merchant: row.get(1),
        label: row.get(2),
        categories: serde_json::from_str(&categories).unwrap_or_default(),
        status: TerminalStatus::parse(&status)?,
        public_key: row.get(5),
        acked_through: to_u64(row.get(6)),
        last_seen: last_seen.and_then(|text| text.parse().ok()),
        clock_skew_s: row.get(8),
    })
}

fn credential_row(row: &tokio_postgres::Row) -> CredentialRow {
    let blocked: Option<i64> = row.get(2);
    CredentialRow {
        hash: row.get(0),
        recipient: row.get(1),
        status: if blocked.is_some() {
            CredentialStatus::Blocked
        } else {
            CredentialStatus::Active
        },
    }
}

/// Which recipients a register read covers: a few by id, or a page as
/// the id range `(after, last]` (a range scan of the primary keys: `= ANY`
/// with thousands of ids makes PostgreSQL scan whole tables).
enum Which<'a> {
    Ids(&'a [String]),
    Range(&'a str, &'a str),
}

impl Which<'_> {
    fn condition(&self, column: &str) -> String {
        match self {
            Which::Ids(_) => format!("{column} = ANY($1)"),
            Which::Range(..) => format!("{column} > $1 AND {column} <= $2"),
        }
    }
}

async fn query_which(
    client: &Object,
    sql: &str,
    which: &Which<'_>,
    extra: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> StoreResult<Vec<tokio_postgres::Row>> {
    let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::new();
    let ids_param;
    let (after, last);
    match which {
        Which::Ids(ids) => {
            ids_param = ids.to_vec();
            params.push(&ids_param);
        }
        Which::Range(a, l) => {
            (after, last) = (a.to_string(), l.to_string());
            params.push(&after);
            params.push(&last);
        }
    }
    params.extend_from_slice(extra);
    Ok(client.query(sql, &params).await?)
}

async fn recipient_data(
    client: &Object,
    ids: &[String],
    which: Which<'_>,
    usage: &UsageQuery,
) -> StoreResult<Vec<RecipientData>> {
    let mut entries: HashMap<String, RecipientEntries> = HashMap::new();
    let offset = match which {
        Which::Ids(_) => 1,
        Which::Range(..) => 2,
    };
    for row in query_which(
        client,
        &format!(
            "SELECT recipient, benefit, valid_from, valid_to FROM grants WHERE {}",
            which.condition("recipient")
        ),
        &which,
        &[],
    )
    .await?
    {
        entries.entry(row.get(0)).or_default().grants.push(Grant {
            benefit: row.get(1),
            valid_from: parse_date(row.get(2))?,
            valid_to: parse_date(row.get(3))?,
        });
    }
    for row in query_which(
        client,
        &format!(
            "SELECT recipient, grp, valid_from, valid_to FROM memberships WHERE {}",
            which.condition("recipient")
        ),
        &which,
        &[],
    )
    .await?
    {
        entries
            .entry(row.get(0))
            .or_default()
            .memberships
            .push(Membership {
                group: row.get(1),
                valid_from: parse_date(row.get(2))?,
                valid_to: parse_date(row.get(3))?,
            });
    }
    let mut usage_rows: HashMap<String, Vec<UsageRow>> = HashMap::new();
    let since = usage.since.to_string();
    for row in query_which(
        client,
        &format!(
            "SELECT recipient, benefit, day, SUM(count)::BIGINT, SUM(amount_cents)::BIGINT FROM usage_days
             WHERE {} AND day >= ${} AND terminal <> ${}
             GROUP BY recipient, benefit, day",
            which.condition("recipient"),
            offset + 1,
            offset + 2
        ),
        &which,
        &[&since, &usage.exclude_terminal],
    )
    .await?
    {
        let day: String = row.get(2);
        usage_rows.entry(row.get(0)).or_default().push(UsageRow {
            benefit: row.get(1),
            day: parse_date(Some(day))?.unwrap_or(Date::MIN),
            count: row.get(3),
            amount_cents: row.get(4),
        });
    }
    Ok(ids
        .iter()
        .map(|id| RecipientData {
            id: id.clone(),
            entries: entries.remove(id).unwrap_or_default(),
            usage: usage_rows.remove(id).unwrap_or_default(),
        })
        .collect())
}

#[async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn create_token(&self, token: &Token) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO tokens (hash, role, scope, label) VALUES ($1, $2, $3, $4)",
                &[
                    &token.hash,
                    &token.role.kind(),
                    &token.role.scope(),
                    &token.label,
                ],
            )
            .await?;
        Ok(())
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<Token>> {
        let row = self
            .client()
            .await?
            .query_opt(
                "SELECT role, scope, label FROM tokens WHERE hash = $1",
                &[&hash],
            )
            .await?;
        row.map(|row| {
            Ok(Token {
                hash: hash.to_owned(),
                role: Role::from_parts(row.get::<_, &str>(0), row.get(1))?,
                label: row.get(2),
            })
        })
        .transpose()
    }

    async fn upsert_provider(&self, party: &Party) -> StoreResult<()> {
        self.upsert_party(PartyTable::Providers, party).await
    }

    async fn providers(&self) -> StoreResult<Vec<Party>> {
        self.parties(PartyTable::Providers).await
    }

    async fn upsert_merchant(&self, party: &Party) -> StoreResult<()> {
        self.upsert_party(PartyTable::Merchants, party).await
    }

    async fn merchants(&self) -> StoreResult<Vec<Party>> {
        self.parties(PartyTable::Merchants).await
    }

    async fn upsert_group(&self, group: &Group) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let owner: Option<String> = tx
            .query_opt(
                "SELECT provider FROM recipient_groups WHERE id = $1 FOR UPDATE",
                &[&group.id],
            )
            .await?
            .map(|row| row.get(0));
        if let Some(owner) = owner.filter(|owner| *owner != group.provider) {
            return Err(StoreError::Conflict(format!(
                "group {:?} belongs to provider {owner:?}",
                group.id
            )));
        }
        tx.execute(
            "INSERT INTO recipient_groups (id, provider, label) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET label = excluded.label",
            &[&group.id, &group.provider, &group.label],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn groups(&self, provider: Option<&str>) -> StoreResult<Vec<Group>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, provider, label FROM recipient_groups WHERE $1::TEXT IS NULL OR provider = $1 ORDER BY id",
                &[&provider],
            )
            .await?
            .iter()
            .map(|row| Group {
                id: row.get(0),
                provider: row.get(1),
                label: row.get(2),
            })
            .collect())
    }

    async fn publish_benefit(
        &self,
        benefit: &Benefit,
        terminal_json: &str,
        terminal_hash: &str,
    ) -> StoreResult<StoredBenefit> {
        let definition = serde_json::to_string(benefit)
            .map_err(|err| StoreError::Other(format!("encoding benefit: {err}")))?;
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Serialise publications of one benefit id across processes.
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtext('benefit:' || $1))",
            &[&benefit.id],
        )
        .await?;
        let existing = tx
            .query_opt(
                "SELECT provider, definition, terminal_hash, published_seq FROM benefits WHERE id = $1",
                &[&benefit.id],
            )
            .await?;
        let mut old_benefit: Option<Benefit> = None;
        if let Some(row) = existing {
            let provider: String = row.get(0);
            let old_definition: String = row.get(1);
            if provider != benefit.provider {
                return Err(StoreError::Conflict(format!(
                    "benefit {:?} belongs to provider {provider:?}",
                    benefit.id
                )));
            }
            if old_definition == definition {
                return Ok(StoredBenefit {
                    benefit: benefit.clone(),
                    terminal_hash: row.get(2),
                    published_seq: to_u64(row.get(3)),
                });
            }
            old_benefit = Some(parse_benefit(&old_definition)?);
        }
        lock_changes(&tx).await?;
        let seq = log_change(&tx, "benefit", &benefit.id).await?;
        tx.execute(
            "INSERT INTO benefit_versions (hash, benefit, definition, published_seq) VALUES ($1, $2, $3, $4)
             ON CONFLICT (hash) DO NOTHING",
            &[&terminal_hash, &benefit.id, &terminal_json, &to_i64(seq)],
        )
        .await?;
        tx.execute(
            "INSERT INTO benefits (id, provider, definition, terminal_hash, published_seq) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
               terminal_hash = excluded.terminal_hash, published_seq = excluded.published_seq",
            &[&benefit.id, &benefit.provider, &definition, &terminal_hash, &to_i64(seq)],
        )
        .await?;
        for (sql, parameter) in super::sqlite::affected_recipients(old_benefit.as_ref(), benefit) {
            tx.execute(sql.as_str(), &[&parameter]).await?;
        }
        tx.commit().await?;
        Ok(StoredBenefit {
            benefit: benefit.clone(),
            terminal_hash: terminal_hash.to_owned(),
            published_seq: seq,
        })
    }

    async fn benefits(&self, provider: Option<&str>) -> StoreResult<Vec<StoredBenefit>> {
        self.client()
            .await?
            .query(
                "SELECT definition, terminal_hash, published_seq FROM benefits WHERE $1::TEXT IS NULL OR provider = $1 ORDER BY id",
                &[&provider],
            )
            .await?
            .iter()
            .map(|row| {
                Ok(StoredBenefit {
                    benefit: parse_benefit(row.get(0))?,
                    terminal_hash: row.get(1),
                    published_seq: to_u64(row.get(2)),
                })
            })
            .collect()
    }

    async fn benefit_version(&self, hash: &str) -> StoreResult<Option<BenefitVersion>> {
        self.client()
            .await?
            .query_opt(
                "SELECT definition, published_seq FROM benefit_versions WHERE hash = $1",
                &[&hash],
            )
            .await?
            .map(|row| {
                Ok(BenefitVersion {
                    hash: hash.to_owned(),
                    benefit: parse_benefit(row.get(0))?,
                    published_seq: to_u64(row.get(1)),
                })
            })
            .transpose()
    }

    async fn create_terminal(&self, terminal: &NewTerminal) -> StoreResult<String> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if tx
            .query_opt(
                "SELECT 1 FROM merchants WHERE id = $1",
                &[&terminal.merchant],
            )
            .await?
            .is_none()
        {
            return Err(StoreError::NotFound(format!(
                "merchant {:?}",
                terminal.merchant
            )));
        }
        let n: i64 = tx
            .query_one("INSERT INTO terminal_ids DEFAULT VALUES RETURNING n", &[])
            .await?
            .get(0);
        let id = format!("T-{n:06}");
        let categories = serde_json::to_string(&terminal.categories)
            .map_err(|err| StoreError::Other(err.to_string()))?;
        tx.execute(
            "INSERT INTO terminals (id, merchant, label, categories, status) VALUES ($1, $2, $3, $4, 'pending')",
            &[&id, &terminal.merchant, &terminal.label, &categories],
        )
        .await?;
        tx.execute(
            "INSERT INTO enrol_codes (hash, terminal, expires_at) VALUES ($1, $2, $3)",
            &[
                &terminal.code_hash,
                &id,
                &terminal.code_expires_at.to_string(),
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn enrol(
        &self,
        code_hash: &str,
        public_key: &str,
        label: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Result<Terminal, EnrolRefusal>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(code) = tx
            .query_opt(
                "SELECT terminal, expires_at, used_at FROM enrol_codes WHERE hash = $1 FOR UPDATE",
                &[&code_hash],
            )
            .await?
        else {
            return Ok(Err(EnrolRefusal::UnknownCode));
        };
        let terminal_id: String = code.get(0);
        let expires_at: String = code.get(1);
        let used_at: Option<String> = code.get(2);
        if used_at.is_some() {
            return Ok(Err(EnrolRefusal::UsedCode));
        }
        if parse_ts(&expires_at)? <= now {
            return Ok(Err(EnrolRefusal::ExpiredCode));
        }
        if tx
            .query_opt(
                "SELECT 1 FROM terminals WHERE public_key = $1",
                &[&public_key],
            )
            .await?
            .is_some()
        {
            return Ok(Err(EnrolRefusal::KeyInUse));
        }
        let updated = tx
            .execute(
                "UPDATE terminals SET public_key = $2, status = 'active', enrolled_at = $3,
                   label = COALESCE($4, label)
                 WHERE id = $1 AND status = 'pending'",
                &[&terminal_id, &public_key, &now.to_string(), &label],
            )
            .await?;
        if updated == 0 {
            return Ok(Err(EnrolRefusal::UsedCode));
        }
        tx.execute(
            "UPDATE enrol_codes SET used_at = $2 WHERE hash = $1",
            &[&code_hash, &now.to_string()],
        )
        .await?;
        let row = tx
            .query_one(
                &format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE id = $1"),
                &[&terminal_id],
            )
            .await?;
        let terminal = terminal_from_row(&row)?;
        tx.commit().await?;
        Ok(Ok(terminal))
    }

    async fn terminal(&self, id: &str) -> StoreResult<Option<Terminal>> {
        self.client()
            .await?
            .query_opt(
                &format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE id = $1"),
                &[&id],
            )
            .await?
            .map(|row| terminal_from_row(&row))
            .transpose()
    }

    async fn terminals(&self, merchant: Option<&str>) -> StoreResult<Vec<Terminal>> {
        self.client()
            .await?
            .query(
                &format!(
                    "SELECT {TERMINAL_COLUMNS} FROM terminals WHERE $1::TEXT IS NULL OR merchant = $1 ORDER BY id"
                ),
                &[&merchant],
            )
            .await?
            .iter()
            .map(terminal_from_row)
            .collect()
    }

    async fn revoke_terminal(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let updated = tx
            .execute(
                "UPDATE terminals SET status = 'revoked', revoked_at = COALESCE(revoked_at, $2) WHERE id = $1",
                &[&id, &now.to_string()],
            )
            .await?;
        tx.execute(
            "UPDATE enrol_codes SET used_at = $2 WHERE terminal = $1 AND used_at IS NULL",
            &[&id, &now.to_string()],
        )
        .await?;
        tx.commit().await?;
        Ok(updated > 0)
    }

    async fn heartbeat(&self, id: &str, now: Timestamp, skew_s: i64) -> StoreResult<()> {
        self.client()
            .await?
            .execute(
                "UPDATE terminals SET last_seen = $2, clock_skew_s = $3 WHERE id = $1",
                &[&id, &now.to_string(), &skew_s],
            )
            .await?;
        Ok(())
    }

    async fn import(
        &self,
        provider: &str,
        rows: Vec<ImportRow>,
        progress: Option<Progress>,
    ) -> StoreResult<ImportSummary> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let summary = import_rows(&tx, provider, rows, progress).await?;
        tx.commit().await?;
        Ok(summary)
    }

    async fn block_credential(&self, hash: &str) -> StoreResult<Option<u64>> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT blocked_seq FROM credentials WHERE hash = $1 FOR UPDATE",
                &[&hash],
            )
            .await?
        else {
            return Ok(None);
        };
        if let Some(seq) = row.get::<_, Option<i64>>(0) {
            return Ok(Some(to_u64(seq)));
        }
        lock_changes(&tx).await?;
        let seq = log_change(&tx, "credential", hash).await?;
        tx.execute(
            "UPDATE credentials SET blocked_seq = $2 WHERE hash = $1",
            &[&hash, &to_i64(seq)],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(seq))
    }

    async fn recipient(
        &self,
        id: &str,
        provider: Option<&str>,
    ) -> StoreResult<Option<RecipientView>> {
        let client = self.client().await?;
        let visible = client
            .query_opt(
                "SELECT 1 FROM recipients r WHERE r.id = $1 AND ($2::TEXT IS NULL OR r.provider = $2
                   OR EXISTS (SELECT 1 FROM grants g WHERE g.recipient = r.id AND g.provider = $2)
                   OR EXISTS (SELECT 1 FROM memberships m WHERE m.recipient = r.id AND m.provider = $2))",
                &[&id, &provider],
            )
            .await?
            .is_some();
        if !visible {
            return Ok(None);
        }
        let ids = vec![id.to_owned()];
        let usage = UsageQuery {
            since: Date::MAX,
            exclude_terminal: String::new(),
        };
        let entries = recipient_data(&client, &ids, Which::Ids(&ids), &usage)
            .await?
            .pop()
            .map(|data| data.entries)
            .unwrap_or_default();
        let mut credentials = Vec::new();
        for row in client
            .query(
                "SELECT hash, kind, blocked_seq FROM credentials WHERE recipient = $1 ORDER BY hash",
                &[&id],
            )
            .await?
        {
            let blocked: Option<i64> = row.get(2);
            credentials.push((
                row.get(0),
                credential_kind(row.get(1))?,
                if blocked.is_some() {
                    CredentialStatus::Blocked
                } else {
                    CredentialStatus::Active
                },
            ));
        }
        Ok(Some(RecipientView {
            id: id.to_owned(),
            entries,
            credentials,
        }))
    }

    async fn provider_knows_credential(&self, provider: &str, hash: &str) -> StoreResult<bool> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT 1 FROM credentials c JOIN recipients r ON r.id = c.recipient WHERE c.hash = $1 AND (r.provider = $2
                   OR EXISTS (SELECT 1 FROM grants g WHERE g.recipient = r.id AND g.provider = $2)
                   OR EXISTS (SELECT 1 FROM memberships m WHERE m.recipient = r.id AND m.provider = $2))",
                &[&hash, &provider],
            )
            .await?
            .is_some())
    }

    async fn ingest(&self, packet: IncomingPacket) -> StoreResult<IngestAnswer> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // Commits too: see the end of `ingest_packet`.
        ingest_packet(tx, &packet).await
    }

    async fn records(&self, filter: &RecordFilter) -> StoreResult<Vec<RecordRow>> {
        let provider_pattern = filter.provider.as_ref().map(|p| format!("%,{p},%"));
        let (after_terminal, after_seq) = filter
            .after
            .clone()
            .map(|(terminal, seq)| (Some(terminal), to_i64(seq)))
            .unwrap_or((None, 0));
        self.client()
            .await?
            .query(
                "SELECT terminal, seq, hash, outcome, reason, recipient, merchant, at, kind, discount_cents, body
                 FROM records
                 WHERE ($1::TEXT IS NULL OR merchant = $1) AND ($2::TEXT IS NULL OR providers LIKE $2)
                   AND ($3::TEXT IS NULL OR terminal = $3) AND ($4::TEXT IS NULL OR outcome = $4)
                   AND ($5::TEXT IS NULL OR terminal > $5 OR (terminal = $5 AND seq > $6))
                 ORDER BY terminal, seq LIMIT $7",
                &[
                    &filter.merchant,
                    &provider_pattern,
                    &filter.terminal,
                    &filter.outcome,
                    &after_terminal,
                    &after_seq,
                    &i64::from(filter.limit),
                ],
            )
            .await?
            .iter()
            .map(record_row)
            .collect()
    }

    async fn forks(&self, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>> {
        self.evidence(
            "SELECT terminal, seq, hash, body FROM forks WHERE $1::TEXT IS NULL OR terminal = $1 ORDER BY terminal, seq, hash",
            terminal,
        )
        .await
    }

    async fn bad_signatures(&self, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>> {
        self.evidence(
            "SELECT terminal, seq, hash, body FROM bad_signatures WHERE $1::TEXT IS NULL OR terminal = $1
             ORDER BY terminal, seq, hash, sig",
            terminal,
        )
        .await
    }

    async fn record_body(&self, terminal: &str, seq: u64) -> StoreResult<Option<String>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT body FROM records WHERE terminal = $1 AND seq = $2",
                &[&terminal, &to_i64(seq)],
            )
            .await?
            .map(|row| row.get(0)))
    }

    async fn version(&self) -> StoreResult<u64> {
        let row = self
            .client()
            .await?
            .query_one("SELECT MAX(seq) FROM changes", &[])
            .await?;
        Ok(row.get::<_, Option<i64>>(0).map(to_u64).unwrap_or(0))
    }

    async fn oldest_delta_base(&self) -> StoreResult<u64> {
        Ok(0)
    }

    async fn changes_since(&self, after: u64, upto: u64, limit: u64) -> StoreResult<Vec<Change>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT DISTINCT kind, key FROM changes WHERE seq > $1 AND seq <= $2 AND kind <> 'usage' LIMIT $3",
                &[&to_i64(after), &to_i64(upto), &to_i64(limit + 1)],
            )
            .await?
            .iter()
            .map(|row| {
                let kind: &str = row.get(0);
                let key: String = row.get(1);
                match kind {
                    "benefit" => Change::Benefit(key),
                    "credential" => Change::Credential(key),
                    _ => Change::Recipient(key),
                }
            })
            .collect())
    }

    async fn usage_changed_since(
        &self,
        after: u64,
        upto: u64,
        terminal: &str,
    ) -> StoreResult<Vec<String>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT DISTINCT recipient FROM usage_days WHERE change_seq > $1 AND change_seq <= $2 AND terminal <> $3",
                &[&to_i64(after), &to_i64(upto), &terminal],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn credentials_page(&self, after: &str, limit: u32) -> StoreResult<Vec<CredentialRow>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE hash > $1 ORDER BY hash LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(credential_row)
            .collect())
    }

    async fn credentials_by_hash(&self, hashes: &[String]) -> StoreResult<Vec<CredentialRow>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE hash = ANY($1) ORDER BY hash",
                &[&hashes],
            )
            .await?
            .iter()
            .map(credential_row)
            .collect())
    }

    async fn credentials_of(&self, recipients: &[String]) -> StoreResult<Vec<CredentialRow>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE recipient = ANY($1) ORDER BY hash",
                &[&recipients],
            )
            .await?
            .iter()
            .map(credential_row)
            .collect())
    }

    async fn recipients_page(
        &self,
        after: &str,
        limit: u32,
        usage: &UsageQuery,
    ) -> StoreResult<Vec<RecipientData>> {
        let client = self.client().await?;
        let ids: Vec<String> = client
            .query(
                "SELECT id FROM recipients WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &i64::from(limit)],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let Some(last) = ids.last() else {
            return Ok(Vec::new());
        };
        recipient_data(&client, &ids, Which::Range(after, last), usage).await
    }

    async fn recipients_by_id(
        &self,
        ids: &[String],
        usage: &UsageQuery,
    ) -> StoreResult<Vec<RecipientData>> {
        let client = self.client().await?;
        let known: Vec<String> = client
            .query(
                "SELECT id FROM recipients WHERE id = ANY($1) ORDER BY id",
                &[&ids],
            )
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect();
        recipient_data(&client, &known, Which::Ids(&known), usage).await
    }
}

/// How many rows go into one multi-row statement of an import.
const IMPORT_BATCH: usize = 10_000;

async fn import_rows(
    tx: &Transaction<'_>,
    provider: &str,
    rows: Vec<ImportRow>,
    progress: Option<Progress>,
) -> StoreResult<ImportSummary> {
    let mut summary = ImportSummary {
        // A birth date rides on its recipients line: count file lines.
        rows: rows
            .iter()
            .filter(|row| !matches!(row, ImportRow::BirthDate { .. }))
            .count() as u64,
        ..ImportSummary::default()
    };
    let mut recipients_touched: HashSet<String> = HashSet::new();
    let mut changed_recipients: HashSet<String> = HashSet::new();
    let mut changed_credentials: Vec<String> = Vec::new();
    let mut done: u64 = 0;
    let mut personal: Vec<(String, Option<String>, Option<String>)> = Vec::new();
    let mut credentials: Vec<(String, String, String)> = Vec::new();
    let mut memberships: Vec<(String, String, Option<String>, Option<String>)> = Vec::new();
    let mut grants: Vec<(String, String, Option<String>, Option<String>)> = Vec::new();
    let mut births: Vec<(String, String)> = Vec::new();
    let mut guardians: Vec<(String, String)> = Vec::new();
    let mut all_recipients: Vec<String> = Vec::new();
    for row in rows {
        match row {
            ImportRow::Recipient {
                recipient,
                personal_code,
                name,
            } => {
                all_recipients.push(recipient.clone());
                if personal_code.is_some() || name.is_some() {
                    personal.push((recipient, personal_code, name));
                }
            }
            ImportRow::Credential {
                recipient,
                kind,
                hash,
            } => {
                all_recipients.push(recipient.clone());
                credentials.push((hash, kind.as_str().to_owned(), recipient));
            }
            ImportRow::Membership {
                recipient,
                membership,
            } => {
                all_recipients.push(recipient.clone());
                memberships.push((
                    recipient,
                    membership.group,
                    date_text(membership.valid_from),
                    date_text(membership.valid_to),
                ));
            }
            ImportRow::Grant { recipient, grant } => {
                all_recipients.push(recipient.clone());
                grants.push((
                    recipient,
                    grant.benefit,
                    date_text(grant.valid_from),
                    date_text(grant.valid_to),
                ));
            }
            ImportRow::BirthDate {
                recipient,
                birth_date,
            } => {
                all_recipients.push(recipient.clone());
                births.push((recipient, birth_date.to_string()));
            }
            ImportRow::Guardian { guardian, child } => {
                all_recipients.push(guardian.clone());
                all_recipients.push(child.clone());
                guardians.push((guardian, child));
            }
        }
    }
    let mut report = |count: usize| {
        let before = done / 100_000;
        done += count as u64;
        if let Some(report) = &progress {
            if done / 100_000 != before {
                report(done);
            }
        }
    };
    all_recipients.sort();
    all_recipients.dedup();
    for chunk in all_recipients.chunks(IMPORT_BATCH) {
        for row in tx
            .query(
                "INSERT INTO recipients (id, provider) SELECT unnest($1::TEXT[]), $2
                 ON CONFLICT (id) DO NOTHING RETURNING id",
                &[&chunk, &provider],
            )
            .await?
        {
            recipients_touched.insert(row.get(0));
        }
    }
    for chunk in personal.chunks(IMPORT_BATCH) {
        let ids: Vec<&String> = chunk.iter().map(|r| &r.0).collect();
        let codes: Vec<&Option<String>> = chunk.iter().map(|r| &r.1).collect();
        let names: Vec<&Option<String>> = chunk.iter().map(|r| &r.2).collect();
        for row in tx
            .query(
                "INSERT INTO recipient_personal (recipient, personal_code, name)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[])
                 ON CONFLICT (recipient) DO UPDATE SET personal_code = excluded.personal_code, name = excluded.name
                 WHERE recipient_personal.personal_code IS DISTINCT FROM excluded.personal_code
                    OR recipient_personal.name IS DISTINCT FROM excluded.name
                 RETURNING recipient",
                &[&ids, &codes, &names],
            )
            .await?
        {
            recipients_touched.insert(row.get(0));
        }
        report(chunk.len());
    }
    // Birth dates and guardians are personal data: they change what the
    // portal shows, never a snapshot, so they log no change.
    for chunk in births.chunks(IMPORT_BATCH) {
        let ids: Vec<&String> = chunk.iter().map(|r| &r.0).collect();
        let dates: Vec<&String> = chunk.iter().map(|r| &r.1).collect();
        for row in tx
            .query(
                "INSERT INTO recipient_personal (recipient, birth_date)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[])
                 ON CONFLICT (recipient) DO UPDATE SET birth_date = excluded.birth_date
                 WHERE recipient_personal.birth_date IS DISTINCT FROM excluded.birth_date
                 RETURNING recipient",
                &[&ids, &dates],
            )
            .await?
        {
            recipients_touched.insert(row.get(0));
        }
        report(chunk.len());
    }
    for chunk in guardians.chunks(IMPORT_BATCH) {
        let parents: Vec<&String> = chunk.iter().map(|r| &r.0).collect();
        let children: Vec<&String> = chunk.iter().map(|r| &r.1).collect();
        for row in tx
            .query(
                "INSERT INTO guardians (guardian, child, provider)
                 SELECT g, c, $3 FROM unnest($1::TEXT[], $2::TEXT[]) AS u(g, c)
                 ON CONFLICT (guardian, child) DO NOTHING
                 RETURNING child",
                &[&parents, &children, &provider],
            )
            .await?
        {
            recipients_touched.insert(row.get(0));
        }
        report(chunk.len());
    }
    summary.recipients_changed = recipients_touched.len() as u64;
    for chunk in credentials.chunks(IMPORT_BATCH) {
        let hashes: Vec<&String> = chunk.iter().map(|r| &r.0).collect();
        let kinds: Vec<&String> = chunk.iter().map(|r| &r.1).collect();
        let owners: Vec<&String> = chunk.iter().map(|r| &r.2).collect();
        for row in tx
            .query(
                "INSERT INTO credentials (hash, kind, recipient)
                 SELECT * FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[])
                 ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, recipient = excluded.recipient
                 WHERE credentials.kind IS DISTINCT FROM excluded.kind
                    OR credentials.recipient IS DISTINCT FROM excluded.recipient
                 RETURNING hash",
                &[&hashes, &kinds, &owners],
            )
            .await?
        {
            changed_credentials.push(row.get(0));
        }
        report(chunk.len());
    }
    summary.credentials_changed = changed_credentials.len() as u64;
    for (table, column, entries, counter) in [
        (
            "memberships",
            "grp",
            &memberships,
            &mut summary.memberships_changed,
        ),
        ("grants", "benefit", &grants, &mut summary.grants_changed),
    ] {
        for chunk in entries.chunks(IMPORT_BATCH) {
            let ids: Vec<&String> = chunk.iter().map(|r| &r.0).collect();
            let keys: Vec<&String> = chunk.iter().map(|r| &r.1).collect();
            let froms: Vec<&Option<String>> = chunk.iter().map(|r| &r.2).collect();
            let tos: Vec<&Option<String>> = chunk.iter().map(|r| &r.3).collect();
            let sql = format!(
                "INSERT INTO {table} (recipient, {column}, provider, valid_from, valid_to)
                 SELECT r, k, $5, f, t FROM unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[]) AS u(r, k, f, t)
                 ON CONFLICT (recipient, {column}) DO UPDATE SET valid_from = excluded.valid_from, valid_to = excluded.valid_to
                 WHERE {table}.valid_from IS DISTINCT FROM excluded.valid_from
                    OR {table}.valid_to IS DISTINCT FROM excluded.valid_to
                 RETURNING recipient"
            );
            for row in tx
                .query(sql.as_str(), &[&ids, &keys, &froms, &tos, &provider])
                .await?
            {
                *counter += 1;
                changed_recipients.insert(row.get(0));
            }
            report(chunk.len());
        }
    }
    lock_changes(tx).await?;
    for chunk in changed_credentials.chunks(IMPORT_BATCH) {
        tx.execute(
            "INSERT INTO changes (kind, key) SELECT 'credential', unnest($1::TEXT[])",
            &[&chunk],
        )
        .await?;
    }
    let mut recipients: Vec<String> = changed_recipients.into_iter().collect();
    recipients.sort();
    for chunk in recipients.chunks(IMPORT_BATCH) {
        tx.execute(
            "INSERT INTO changes (kind, key) SELECT 'recipient', unnest($1::TEXT[])",
            &[&chunk],
        )
        .await?;
    }
    let version: Option<i64> = tx
        .query_one("SELECT MAX(seq) FROM changes", &[])
        .await?
        .get(0);
    summary.version = version.map(to_u64).unwrap_or(0);
    if let Some(report) = &progress {
        report(summary.rows);
    }
    Ok(summary)
}

/// Inserts the planned records with one binary `COPY`: the cheapest bulk
/// path into PostgreSQL, whose CPU the ingesting machine usually shares.
/// The whole payload is encoded here and sent as one message, so the
/// server reads it in one go instead of a few rows per message. The
/// terminal's row lock is held and the plan inserts only seqs not stored,
/// so no row can conflict.
async fn copy_records(
    tx: &Transaction<'_>,
    packet: &IncomingPacket,
    inserts: &[(usize, plan::RecordAnswer)],
) -> StoreResult<()> {
    use futures_util::SinkExt;
    let mut payload = CopyPayload::new(
        inserts
            .iter()
            .map(|(idx, _)| {
                let record = &packet.records[*idx];
                record.body.len() + record.providers.len() + 512
            })
            .sum(),
    );
    for (idx, answer) in inserts {
        let record = &packet.records[*idx];
        payload.row(17);
        payload.text(&packet.terminal)?;
        payload.int8(to_i64(record.seq));
        payload.text(&record.hash)?;
        payload.text(&record.prev)?;
        payload.text(answer.outcome.as_str())?;
        payload.nullable_text(answer.reason.map(Reason::as_str))?;
        payload.text(&record.recipient)?;
        payload.text(&record.credential)?;
        payload.text(&record.merchant)?;
        payload.text(&record.at.to_string())?;
        payload.text(record.kind.as_str())?;
        payload.int8(record.discount_cents);
        payload.text(&record.providers)?;
        payload.int8(to_i64(record.snapshot));
        payload.text(&record.body)?;
        payload.text(&record.sig)?;
        payload.text(&packet.id)?;
    }
    let sink = tx
        .copy_in::<_, std::io::Cursor<Vec<u8>>>(
            "COPY records (terminal, seq, hash, prev, outcome, reason, recipient, credential, merchant, at,
               kind, discount_cents, providers, snapshot, body, sig, packet) FROM STDIN BINARY",
        )
        .await?;
    futures_util::pin_mut!(sink);
    sink.send(std::io::Cursor::new(payload.finish())).await?;
    sink.finish().await?;
    Ok(())
}

/// PostgreSQL's binary `COPY` format: a signature and two zero words, then
/// per row a field count and per field its length and bytes (length -1 for
/// NULL), then -1. TEXT travels as its UTF-8 bytes, BIGINT as 8 bytes
/// big-endian: what `tokio_postgres`' own binary writer sends for them.
struct CopyPayload(Vec<u8>);

impl CopyPayload {
    fn new(capacity: usize) -> CopyPayload {
        let mut bytes = Vec::with_capacity(capacity + 32);
        bytes.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        bytes.extend_from_slice(&0i32.to_be_bytes());
        bytes.extend_from_slice(&0i32.to_be_bytes());
        CopyPayload(bytes)
    }

    fn row(&mut self, fields: i16) {
        self.0.extend_from_slice(&fields.to_be_bytes());
    }

    /// A TEXT field; refused beyond the 2 GiB a field length can say
    /// (packets are limited far below that).
    fn text(&mut self, value: &str) -> StoreResult<()> {
        let len = i32::try_from(value.len()).map_err(|_| {
            StoreError::Invalid(format!(
                "a record field of {} bytes is too long to store",
                value.len()
            ))
        })?;
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(value.as_bytes());
        Ok(())
    }

    fn nullable_text(&mut self, value: Option<&str>) -> StoreResult<()> {
        match value {
            Some(value) => self.text(value),
            None => {
                self.0.extend_from_slice(&(-1i32).to_be_bytes());
                Ok(())
            }
        }
    }

    fn int8(&mut self, value: i64) {
        self.0.extend_from_slice(&8i32.to_be_bytes());
        self.0.extend_from_slice(&value.to_be_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        self.0.extend_from_slice(&(-1i16).to_be_bytes());
        self.0
    }
}

/// The contiguous head after a packet, when the stored seqs read before
/// its `COPY` (`known`: every stored seq from `first_seq - 1` to
/// `last_seq + 1`) and the seqs it inserted decide it: the first stored seq
/// from the old head on whose successor is missing. `None` when the run of
/// stored seqs reaches past what was read (or starts outside it): then the
/// database answers.
fn head_from_window(
    acked: i64,
    (first_seq, last_seq): (u64, u64),
    known: &BTreeMap<u64, Known>,
    inserted: &HashSet<u64>,
) -> Option<i64> {
    let low = first_seq.saturating_sub(1);
    let high = last_seq.saturating_add(1);
    let stored = |seq: u64| known.contains_key(&seq) || inserted.contains(&seq);
    let start = if acked > 0 {
        u64::try_from(acked).ok()?
    } else {
        1
    };
    if start < low || start > high {
        return None;
    }
    if !stored(start) {
        // No stored seq 1: the head stays at 0. A stored head that is not
        // in the window's answer is left to the database.
        return (acked <= 0).then_some(0);
    }
    let mut seq = start;
    while seq < high {
        if !stored(seq + 1) {
            return i64::try_from(seq).ok();
        }
        seq += 1;
    }
    None
}

/// The contiguous head from the database: the first stored seq from the
/// old head on whose successor is missing (0 while seq 1 is not stored).
async fn head_in_database(
    tx: &deadpool_postgres::Transaction<'_>,
    terminal: &str,
    acked: i64,
) -> StoreResult<i64> {
    let start = if acked > 0 {
        Some(acked)
    } else {
        let first = tx
            .prepare_cached("SELECT 1 FROM records WHERE terminal = $1 AND seq = 1")
            .await?;
        tx.query_opt(&first, &[&terminal]).await?.map(|_| 1)
    };
    let Some(start) = start else {
        return Ok(0);
    };
    let run_end = tx
        .prepare_cached(
            "SELECT MIN(r.seq) FROM records r WHERE r.terminal = $1 AND r.seq >= $2
               AND NOT EXISTS (SELECT 1 FROM records n WHERE n.terminal = r.terminal AND n.seq = r.seq + 1)",
        )
        .await?;
    Ok(tx
        .query_one(&run_end, &[&terminal, &start])
        .await?
        .get::<_, Option<i64>>(0)
        .unwrap_or(start))
}

/// One packet in one transaction, in as few round trips as the order of
/// its statements allows: statements that need no earlier answer are sent
/// together (the server runs them in the order sent), and every statement
/// is prepared once per connection.
/// Keeps the packet's records at `indices` as evidence (forks, bad
/// signatures) with `sql`: terminal, seq, hash, body, sig, packet, then
/// `received_at` when given. Evidence is never overwritten, so a replay
/// adds nothing.
async fn insert_evidence(
    tx: &deadpool_postgres::Transaction<'_>,
    packet: &IncomingPacket,
    indices: &[usize],
    sql: &str,
    received_at: Option<&String>,
) -> StoreResult<()> {
    use tokio_postgres::types::ToSql;
    if indices.is_empty() {
        return Ok(());
    }
    let insert = tx.prepare_cached(sql).await?;
    for idx in indices {
        let record = &packet.records[*idx];
        let seq = to_i64(record.seq);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &packet.terminal,
            &seq,
            &record.hash,
            &record.body,
            &record.sig,
            &packet.id,
        ];
        if let Some(received_at) = &received_at {
            params.push(received_at);
        }
        tx.execute(&insert, &params).await?;
    }
    Ok(())
}

async fn ingest_packet(
    tx: deadpool_postgres::Transaction<'_>,
    packet: &IncomingPacket,
) -> StoreResult<IngestAnswer> {
    use tokio_postgres::types::ToSql;
    // The terminal's row lock serialises ingestion of one terminal across
    // central processes; other terminals proceed in parallel. The two reads
    // sent with it run after it, so they see the terminal locked.
    let lock_terminal = tx
        .prepare_cached("SELECT acked_through FROM terminals WHERE id = $1 FOR UPDATE")
        .await?;
    let seen = tx
        .prepare_cached("SELECT 1 FROM packets WHERE id = $1")
        .await?;
    let window = tx
        .prepare_cached(
            "SELECT seq, hash, prev, outcome, reason FROM records WHERE terminal = $1 AND seq >= $2 AND seq <= $3",
        )
        .await?;
    let low = to_i64(packet.first_seq.saturating_sub(1));
    let high = to_i64(packet.last_seq.saturating_add(1));
    let terminal_params: [&(dyn ToSql + Sync); 1] = [&packet.terminal];
    let seen_params: [&(dyn ToSql + Sync); 1] = [&packet.id];
    let window_params: [&(dyn ToSql + Sync); 3] = [&packet.terminal, &low, &high];
    let (terminal_row, seen_row, window_rows) = futures_util::try_join!(
        tx.query_opt(&lock_terminal, &terminal_params),
        tx.query_opt(&seen, &seen_params),
        tx.query(&window, &window_params),
    )?;
    let Some(row) = terminal_row else {
        return Err(StoreError::NotFound(format!(
            "terminal {}",
            packet.terminal
        )));
    };
    let acked: i64 = row.get(0);
    let seen_before = seen_row.is_some();
    let mut known = BTreeMap::new();
    for row in window_rows {
        let outcome: &str = row.get(3);
        let reason: Option<&str> = row.get(4);
        known.insert(
            to_u64(row.get(0)),
            Known {
                hash: row.get(1),
                prev: row.get(2),
                outcome: Outcome::parse(outcome).unwrap_or(Outcome::Flagged),
                reason: reason.and_then(Reason::parse),
            },
        );
    }
    let decided = plan::plan(&packet.records, &known, seen_before);
    if !decided.inserts.is_empty() {
        copy_records(&tx, packet, &decided.inserts).await?;
    }
    insert_evidence(
        &tx,
        packet,
        &decided.forks,
        "INSERT INTO forks (terminal, seq, hash, body, sig, packet) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (terminal, seq, hash) DO NOTHING",
        None,
    )
    .await?;
    let received_at = packet.received_at.to_string();
    insert_evidence(
        &tx,
        packet,
        &decided.bad_signatures,
        "INSERT INTO bad_signatures (terminal, seq, hash, body, sig, packet, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (terminal, seq, hash, sig) DO NOTHING",
        Some(&received_at),
    )
    .await?;
    if !decided.resolved.is_empty() {
        let update = tx
            .prepare_cached(
                "UPDATE records SET outcome = $3, reason = $4, resolved_by = $5
                 WHERE terminal = $1 AND seq = $2 AND outcome = 'held'",
            )
            .await?;
        for answer in &decided.resolved {
            tx.execute(
                &update,
                &[
                    &packet.terminal,
                    &to_i64(answer.seq),
                    &answer.outcome.as_str(),
                    &answer.reason.map(Reason::as_str),
                    &packet.id,
                ],
            )
            .await?;
        }
    }
    // A packet seen before is answered as the first time, held records it
    // resolved then included.
    let resolved = if seen_before {
        let select = tx
            .prepare_cached(
                "SELECT seq, outcome, reason FROM records WHERE terminal = $1 AND resolved_by = $2 ORDER BY seq",
            )
            .await?;
        tx.query(&select, &[&packet.terminal, &packet.id])
            .await?
            .iter()
            .map(|row| {
                let outcome: &str = row.get(1);
                let reason: Option<&str> = row.get(2);
                plan::RecordAnswer {
                    seq: to_u64(row.get(0)),
                    outcome: Outcome::parse(outcome).unwrap_or(Outcome::Flagged),
                    reason: reason.and_then(Reason::parse),
                }
            })
            .collect()
    } else {
        decided.resolved.clone()
    };
    // Usage, summed per key first: one upsert may not touch a row twice.
    let mut usage: BTreeMap<(&str, &str, String), (i64, i64)> = BTreeMap::new();
    for (idx, _) in &decided.inserts {
        let record = &packet.records[*idx];
        for delta in &record.usage {
            let entry = usage
                .entry((
                    record.recipient.as_str(),
                    delta.benefit.as_str(),
                    delta.day.to_string(),
                ))
                .or_default();
            entry.0 += delta.count;
            entry.1 += delta.amount_cents;
        }
    }
    // Advance the contiguous head past everything now stored without a gap:
    // the first stored seq from the old head on whose successor is missing.
    // Usually the records read above and those just inserted tell.
    let inserted: HashSet<u64> = decided
        .inserts
        .iter()
        .map(|(idx, _)| packet.records[*idx].seq)
        .collect();
    let head = match head_from_window(
        acked,
        (packet.first_seq, packet.last_seq),
        &known,
        &inserted,
    ) {
        Some(head) => head,
        None => head_in_database(&tx, &packet.terminal, acked).await?,
    };
    // The writes that need no answer, sent together and last: the packet,
    // the head, and usage with its change, so that the change-log lock is
    // held for one statement and the commit only.
    let insert_packet = tx
        .prepare_cached(
            "INSERT INTO packets (id, terminal, first_seq, last_seq, received_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let update_head = tx
        .prepare_cached("UPDATE terminals SET acked_through = $2 WHERE id = $1")
        .await?;
    // The change-log lock is taken inside the statement, before the change
    // row (and its seq) exists, and held to commit: see `lock_changes`.
    let upsert_usage = tx
        .prepare_cached(
            "WITH locked AS (SELECT pg_advisory_xact_lock($7)),
                  change AS (INSERT INTO changes (kind, key) SELECT 'usage', $8 FROM locked RETURNING seq)
             INSERT INTO usage_days (recipient, benefit, day, terminal, count, amount_cents, change_seq)
             SELECT u.r, u.b, u.d, $4, u.c, u.a, change.seq
             FROM change, unnest($1::TEXT[], $2::TEXT[], $3::TEXT[], $5::BIGINT[], $6::BIGINT[]) AS u(r, b, d, c, a)
             ON CONFLICT (recipient, benefit, day, terminal) DO UPDATE SET
               count = usage_days.count + excluded.count,
               amount_cents = usage_days.amount_cents + excluded.amount_cents,
               change_seq = excluded.change_seq
",
        )
        .await?;
    let received_at = packet.received_at.to_string();
    let first_seq = to_i64(packet.first_seq);
    let last_seq = to_i64(packet.last_seq);
    let recipients: Vec<&str> = usage.keys().map(|k| k.0).collect();
    let benefits: Vec<&str> = usage.keys().map(|k| k.1).collect();
    let days: Vec<&str> = usage.keys().map(|k| k.2.as_str()).collect();
    let counts: Vec<i64> = usage.values().map(|v| v.0).collect();
    let amounts: Vec<i64> = usage.values().map(|v| v.1).collect();
    let packet_params: [&(dyn ToSql + Sync); 5] = [
        &packet.id,
        &packet.terminal,
        &first_seq,
        &last_seq,
        &received_at,
    ];
    let packet_write = tx.execute(&insert_packet, &packet_params);
    let head_write = async {
        if head != acked {
            tx.execute(&update_head, &[&packet.terminal, &head]).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    let usage_write = async {
        if !usage.is_empty() {
            tx.execute(
                &upsert_usage,
                &[
                    &recipients,
                    &benefits,
                    &days,
                    &packet.terminal,
                    &counts,
                    &amounts,
                    &LOCK_CHANGES,
                    &packet.id,
                ],
            )
            .await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    // COMMIT goes out with them: the server commits as soon as the usage
    // statement ends, instead of holding the change-log lock for one more
    // round trip to a client whose cores are busy verifying signatures. If
    // a statement before it fails, the server ends the transaction with a
    // rollback instead. Its answer comes after the commit is durable.
    let commit = tx.batch_execute("COMMIT");
    futures_util::try_join!(packet_write, head_write, usage_write, commit)?;
    // The transaction is over; dropping its handle would send a ROLLBACK
    // the server answers with a warning. It owns no resources.
    std::mem::forget(tx);
    Ok(IngestAnswer {
        records: decided.answers,
        acked_through: to_u64(head),
        seen_before,
        resolved,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// What the database query answers: the first stored seq from the old
    /// head on whose successor is missing (the old head when none; 0 while
    /// seq 1 is not stored and the head is 0).
    fn head_by_query(acked: i64, stored: &BTreeSet<u64>) -> i64 {
        let start = if acked > 0 {
            acked
        } else if stored.contains(&1) {
            1
        } else {
            return 0;
        };
        stored
            .iter()
            .copied()
            .filter(|&seq| seq >= start as u64 && !stored.contains(&(seq + 1)))
            .map(|seq| seq as i64)
            .next()
            .unwrap_or(start)
    }

    fn known(seqs: impl Iterator<Item = u64>) -> BTreeMap<u64, Known> {
        seqs.map(|seq| {
            (
                seq,
                Known {
                    hash: String::new(),
                    prev: String::new(),
                    outcome: Outcome::Accepted,
                    reason: None,
                },
            )
        })
        .collect()
    }

    /// Every chain of seqs 1..=8 stored after a packet, every packet range,
    /// every split of the range's stored seqs into stored before and
    /// inserted now, every old head: where the window decides, it decides
    /// as the query would.
    #[test]
    fn the_head_from_the_window_is_the_head_the_query_finds() {
        let mut decided = 0u32;
        for after_mask in 0u32..256 {
            let after: BTreeSet<u64> = (1..=8)
                .filter(|seq| after_mask & (1 << (seq - 1)) != 0)
                .collect();
            for first in 1..=8u64 {
                for last in first..=8u64 {
                    let in_range: Vec<u64> = after
                        .iter()
                        .copied()
                        .filter(|seq| (first..=last).contains(seq))
                        .collect();
                    for split in 0u32..(1 << in_range.len()) {
                        let inserted: HashSet<u64> = in_range
                            .iter()
                            .enumerate()
                            .filter(|(idx, _)| split & (1 << idx) != 0)
                            .map(|(_, seq)| *seq)
                            .collect();
                        let before: BTreeSet<u64> = after
                            .difference(&inserted.iter().copied().collect())
                            .copied()
                            .collect();
                        let window = known(
                            before
                                .iter()
                                .copied()
                                .filter(|seq| (first.saturating_sub(1)..=last + 1).contains(seq)),
                        );
                        for acked in std::iter::once(0).chain(before.iter().map(|seq| *seq as i64))
                        {
                            if let Some(head) =
                                head_from_window(acked, (first, last), &window, &inserted)
                            {
                                decided += 1;
                                assert_eq!(
                                    head,
                                    head_by_query(acked, &after),
                                    "acked {acked}, packet {first}..={last}, stored after {after:?}, inserted {inserted:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
        assert!(decided > 10_000, "the window decided only {decided} cases");
    }

    /// The usual case: packets in order, each continuing the chain.
    #[test]
    fn packets_in_order_need_no_query() {
        let inserted: HashSet<u64> = (1..=1000).collect();
        assert_eq!(
            head_from_window(0, (1, 1000), &known(std::iter::empty()), &inserted),
            Some(1000)
        );
        let inserted: HashSet<u64> = (1001..=2000).collect();
        assert_eq!(
            head_from_window(1000, (1001, 2000), &known(std::iter::once(1000)), &inserted),
            Some(2000)
        );
        // A stored successor beyond the window: the database must answer.
        assert_eq!(
            head_from_window(
                1000,
                (1001, 2000),
                &known([1000, 2001].into_iter()),
                &inserted
            ),
            None
        );
    }
}
