//! The SQLite [`Store`]: one file in the data directory, no set-up.
//!
//! One connection on one dedicated thread owns the file (WAL,
//! `synchronous=FULL`): SQLite allows one writer at a time anyway, and a
//! single owner keeps every method one transaction without lock retries.
//! Async callers send closures over a bounded channel and await the answer.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use async_trait::async_trait;
use jiff::civil::Date;
use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use shared::model::{Benefit, Grant, Membership};
use shared::wire::record::CredentialKind;
use tokio::sync::{mpsc, oneshot};

use super::plan::{self, Known, Outcome, Reason};
use super::*;

/// Migrations in order; the file names match `migrations/postgres/`.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "0001_init.sql",
        include_str!("../../migrations/sqlite/0001_init.sql"),
    ),
    (
        "0002_ledger.sql",
        include_str!("../../migrations/sqlite/0002_ledger.sql"),
    ),
    (
        "0003_people.sql",
        include_str!("../../migrations/sqlite/0003_people.sql"),
    ),
    (
        "0004_ingest.sql",
        include_str!("../../migrations/sqlite/0004_ingest.sql"),
    ),
    (
        "0005_evidence.sql",
        include_str!("../../migrations/sqlite/0005_evidence.sql"),
    ),
    (
        "0006_ledger_index.sql",
        include_str!("../../migrations/sqlite/0006_ledger_index.sql"),
    ),
];

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Bounds the queue of pending calls: back-pressure instead of memory growth.
const QUEUE_MAX: usize = 256;

pub struct SqliteStore {
    jobs: mpsc::Sender<Job>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and runs migrations.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path)
            .map_err(|err| StoreError::Other(format!("opening {}: {err}", path.display())))?;
        SqliteStore::start(conn).await
    }

    /// A private in-memory database, for tests.
    pub async fn memory() -> StoreResult<SqliteStore> {
        SqliteStore::start(Connection::open_in_memory()?).await
    }

    async fn start(mut conn: Connection) -> StoreResult<SqliteStore> {
        // 16 KB pages for a new database (an existing file keeps its own):
        // a stored record is about 1.5 KB, so 4 KB pages split every
        // second insert; set before WAL mode, which fixes the page size.
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // The default 2 MB page cache thrashes on imports of millions of
        // rows keyed by random hashes; 256 MB keeps the hot B-tree pages.
        conn.pragma_update(None, "cache_size", -262_144)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // `rarray(?)`: ingestion looks a packet's credentials up in one
        // statement, binding them as an array.
        rusqlite::vtab::array::load_module(&conn)?;
        migrate(&mut conn)?;
        let (jobs, mut receiver) = mpsc::channel::<Job>(QUEUE_MAX);
        std::thread::Builder::new()
            .name("sqlite-store".into())
            .spawn(move || {
                while let Some(job) = receiver.blocking_recv() {
                    job(&mut conn);
                }
            })
            .map_err(|err| StoreError::Other(format!("starting the store thread: {err}")))?;
        Ok(SqliteStore { jobs })
    }

    pub(crate) async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let (answer, receive) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let _ = answer.send(f(conn));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| StoreError::Other("the store thread has stopped".into()))?;
        receive
            .await
            .map_err(|_| StoreError::Other("the store thread dropped a call".into()))?
    }

    /// Runs `f` in one immediate transaction (write lock taken up front).
    pub(crate) async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> StoreResult<T> + Send + 'static,
    {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Providers and merchants are the same kind of row in two tables.
    async fn upsert_party(&self, table: PartyTable, party: &Party) -> StoreResult<()> {
        let party = party.clone();
        self.write(move |tx| {
            tx.execute(
                &format!(
                    "INSERT INTO {} (id, name) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET name = excluded.name",
                    table.name()
                ),
                params![party.id, party.name],
            )?;
            Ok(())
        })
        .await
    }

    async fn parties(&self, table: PartyTable) -> StoreResult<Vec<Party>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT id, name FROM {} ORDER BY id",
                table.name()
            ))?;
            let rows = stmt
                .query_map([], |row| {
                    Ok(Party {
                        id: row.get(0)?,
                        name: row.get(1)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }
}

fn migrate(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let applied: HashSet<String> = {
        let mut stmt = conn.prepare("SELECT name FROM schema_migrations")?;
        let names = stmt
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<_, _>>()?;
        names
    };
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
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .map_err(|err| StoreError::Other(format!("migration {name}: {err}")))?;
        tx.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
            params![name, Timestamp::now().to_string()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
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

/// The statements that log a recipient change for everyone whose
/// entitlements a new benefit version changes: members of groups that joined
/// or left it; when its categories changed (terminal scopes move), every
/// grant holder and member. Each is `(sql, parameter)`; the SQL is the same
/// for both backends.
pub(crate) fn affected_recipients(old: Option<&Benefit>, new: &Benefit) -> Vec<(String, String)> {
    let old_groups: HashSet<&String> = old.map(|b| b.groups.iter().collect()).unwrap_or_default();
    let new_groups: HashSet<&String> = new.groups.iter().collect();
    let categories_changed = old.is_some_and(|old| old.categories != new.categories);
    let groups: Vec<&String> = if categories_changed {
        old_groups.union(&new_groups).copied().collect()
    } else {
        old_groups
            .symmetric_difference(&new_groups)
            .copied()
            .collect()
    };
    let mut out: Vec<(String, String)> = groups
        .into_iter()
        .map(|group| {
            (
                "INSERT INTO changes (kind, key) SELECT 'recipient', recipient FROM memberships WHERE grp = $1"
                    .to_owned(),
                group.clone(),
            )
        })
        .collect();
    if categories_changed {
        out.push((
            "INSERT INTO changes (kind, key) SELECT 'recipient', recipient FROM grants WHERE benefit = $1"
                .to_owned(),
            new.id.clone(),
        ));
    }
    out
}

fn log_change(tx: &Transaction<'_>, kind: &str, key: &str) -> StoreResult<u64> {
    tx.execute(
        "INSERT INTO changes (kind, key) VALUES (?1, ?2)",
        params![kind, key],
    )?;
    Ok(to_u64(tx.last_insert_rowid()))
}

/// A [`RecordRow`] from a row whose columns are `terminal, seq, hash,
/// outcome, reason, recipient, merchant, at, kind, discount_cents, body`.
pub(crate) fn record_row(row: &rusqlite::Row<'_>) -> StoreResult<RecordRow> {
    let at: String = row.get(7)?;
    Ok(RecordRow {
        terminal: row.get(0)?,
        seq: to_u64(row.get(1)?),
        hash: row.get(2)?,
        outcome: row.get(3)?,
        reason: row.get(4)?,
        recipient: row.get(5)?,
        merchant: row.get(6)?,
        at: parse_ts(&at)?,
        kind: row.get(8)?,
        discount_cents: row.get(9)?,
        body: row.get(10)?,
    })
}

impl SqliteStore {
    /// Evidence kept apart from the chain (forks, bad signatures) by
    /// `sql`, which selects `terminal, seq, hash, body` for `?1` (a
    /// terminal, or NULL for all).
    async fn evidence(
        &self,
        sql: &'static str,
        terminal: Option<&str>,
    ) -> StoreResult<Vec<ForkRow>> {
        let terminal = terminal.map(str::to_owned);
        self.call(move |conn| {
            let mut stmt = conn.prepare(sql)?;
            let rows = stmt
                .query_map([&terminal], |row| {
                    Ok(ForkRow {
                        terminal: row.get(0)?,
                        seq: to_u64(row.get(1)?),
                        hash: row.get(2)?,
                        body: row.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }
}

fn terminal_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Terminal, String)> {
    let categories: String = row.get(3)?;
    let status: String = row.get(4)?;
    let last_seen: Option<String> = row.get(7)?;
    Ok((
        Terminal {
            id: row.get(0)?,
            merchant: row.get(1)?,
            label: row.get(2)?,
            categories: serde_json::from_str(&categories).unwrap_or_default(),
            status: TerminalStatus::Pending,
            public_key: row.get(5)?,
            acked_through: to_u64(row.get(6)?),
            last_seen: last_seen.and_then(|text| text.parse().ok()),
            clock_skew_s: row.get(8)?,
        },
        status,
    ))
}

const TERMINAL_COLUMNS: &str =
    "id, merchant, label, categories, status, public_key, acked_through, last_seen, clock_skew_s";

fn finish_terminal((mut terminal, status): (Terminal, String)) -> StoreResult<Terminal> {
    terminal.status = TerminalStatus::parse(&status)?;
    Ok(terminal)
}

fn read_terminal(conn: &Connection, id: &str) -> StoreResult<Option<Terminal>> {
    conn.query_row(
        &format!("SELECT {TERMINAL_COLUMNS} FROM terminals WHERE id = ?1"),
        [id],
        terminal_from_row,
    )
    .optional()?
    .map(finish_terminal)
    .transpose()
}

fn credential_kind(text: &str) -> StoreResult<CredentialKind> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| StoreError::Other(format!("stored credential kind {text:?}")))
}

/// `>` for a page after a recipient id, `>=` for one recipient (`low == high`).
fn low_op(after: &str, last: &str) -> &'static str {
    if after == last {
        ">="
    } else {
        ">"
    }
}

fn entries_in_range(
    conn: &Connection,
    after: &str,
    last: &str,
) -> StoreResult<HashMap<String, RecipientEntries>> {
    let op = low_op(after, last);
    let mut out: HashMap<String, RecipientEntries> = HashMap::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT recipient, benefit, valid_from, valid_to FROM grants WHERE recipient {op} ?1 AND recipient <= ?2"
    ))?;
    let mut rows = stmt.query(params![after, last])?;
    while let Some(row) = rows.next()? {
        let recipient: String = row.get(0)?;
        out.entry(recipient).or_default().grants.push(Grant {
            benefit: row.get(1)?,
            valid_from: parse_date(row.get(2)?)?,
            valid_to: parse_date(row.get(3)?)?,
        });
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT recipient, grp, valid_from, valid_to FROM memberships WHERE recipient {op} ?1 AND recipient <= ?2"
    ))?;
    let mut rows = stmt.query(params![after, last])?;
    while let Some(row) = rows.next()? {
        let recipient: String = row.get(0)?;
        out.entry(recipient)
            .or_default()
            .memberships
            .push(Membership {
                group: row.get(1)?,
                valid_from: parse_date(row.get(2)?)?,
                valid_to: parse_date(row.get(3)?)?,
            });
    }
    Ok(out)
}

fn usage_in_range(
    conn: &Connection,
    after: &str,
    last: &str,
    usage: &UsageQuery,
) -> StoreResult<HashMap<String, Vec<UsageRow>>> {
    let op = low_op(after, last);
    let mut out: HashMap<String, Vec<UsageRow>> = HashMap::new();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT recipient, benefit, day, SUM(count), SUM(amount_cents) FROM usage_days
         WHERE recipient {op} ?1 AND recipient <= ?2 AND day >= ?3 AND terminal <> ?4
         GROUP BY recipient, benefit, day"
    ))?;
    let mut rows = stmt.query(params![
        after,
        last,
        usage.since.to_string(),
        usage.exclude_terminal
    ])?;
    while let Some(row) = rows.next()? {
        let recipient: String = row.get(0)?;
        let day: String = row.get(2)?;
        out.entry(recipient).or_default().push(UsageRow {
            benefit: row.get(1)?,
            day: parse_date(Some(day))?.unwrap_or(Date::MIN),
            count: row.get(3)?,
            amount_cents: row.get(4)?,
        });
    }
    Ok(out)
}

fn recipient_data_for(
    conn: &Connection,
    ids: &[String],
    usage: &UsageQuery,
) -> StoreResult<Vec<RecipientData>> {
    let mut out = Vec::with_capacity(ids.len());
    let mut exists = conn.prepare_cached("SELECT 1 FROM recipients WHERE id = ?1")?;
    for id in ids {
        if !exists.exists([id])? {
            continue;
        }
        let mut entries = entries_in_range(conn, id, id)?;
        let mut usage_rows = usage_in_range(conn, id, id, usage)?;
        out.push(RecipientData {
            id: id.clone(),
            entries: entries.remove(id).unwrap_or_default(),
            usage: usage_rows.remove(id).unwrap_or_default(),
        });
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn create_token(&self, token: &Token) -> StoreResult<()> {
        let token = token.clone();
        self.write(move |tx| {
            tx.execute(
                "INSERT INTO tokens (hash, role, scope, label) VALUES (?1, ?2, ?3, ?4)",
                params![
                    token.hash,
                    token.role.kind(),
                    token.role.scope(),
                    token.label
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn token(&self, hash: &str) -> StoreResult<Option<Token>> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            let row = conn
                .query_row(
                    "SELECT role, scope, label FROM tokens WHERE hash = ?1",
                    [&hash],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<String>>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()?;
            row.map(|(role, scope, label)| {
                Ok(Token {
                    hash: hash.clone(),
                    role: Role::from_parts(&role, scope)?,
                    label,
                })
            })
            .transpose()
        })
        .await
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
        let group = group.clone();
        self.write(move |tx| {
            let owner: Option<String> = tx
                .query_row(
                    "SELECT provider FROM recipient_groups WHERE id = ?1",
                    [&group.id],
                    |row| row.get(0),
                )
                .optional()?;
            if let Some(owner) = owner.filter(|owner| *owner != group.provider) {
                return Err(StoreError::Conflict(format!(
                    "group {:?} belongs to provider {owner:?}",
                    group.id
                )));
            }
            tx.execute(
                "INSERT INTO recipient_groups (id, provider, label) VALUES (?1, ?2, ?3)
                 ON CONFLICT (id) DO UPDATE SET label = excluded.label",
                params![group.id, group.provider, group.label],
            )?;
            Ok(())
        })
        .await
    }

    async fn groups(&self, provider: Option<&str>) -> StoreResult<Vec<Group>> {
        let provider = provider.map(str::to_owned);
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT id, provider, label FROM recipient_groups WHERE ?1 IS NULL OR provider = ?1 ORDER BY id",
            )?;
            let rows = stmt
                .query_map([&provider], |row| {
                    Ok(Group {
                        id: row.get(0)?,
                        provider: row.get(1)?,
                        label: row.get(2)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn publish_benefit(
        &self,
        benefit: &Benefit,
        terminal_json: &str,
        terminal_hash: &str,
    ) -> StoreResult<StoredBenefit> {
        let benefit = benefit.clone();
        let definition = serde_json::to_string(&benefit)
            .map_err(|err| StoreError::Other(format!("encoding benefit: {err}")))?;
        let terminal_json = terminal_json.to_owned();
        let terminal_hash = terminal_hash.to_owned();
        self.write(move |tx| {
            let existing: Option<(String, String, String, i64)> = tx
                .query_row(
                    "SELECT provider, definition, terminal_hash, published_seq FROM benefits WHERE id = ?1",
                    [&benefit.id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
                )
                .optional()?;
            let mut old_benefit: Option<Benefit> = None;
            if let Some((provider, old_definition, old_hash, old_seq)) = existing {
                if provider != benefit.provider {
                    return Err(StoreError::Conflict(format!(
                        "benefit {:?} belongs to provider {provider:?}",
                        benefit.id
                    )));
                }
                if old_definition == definition {
                    return Ok(StoredBenefit {
                        benefit,
                        terminal_hash: old_hash,
                        published_seq: to_u64(old_seq),
                    });
                }
                old_benefit = Some(parse_benefit(&old_definition)?);
            }
            let seq = log_change(tx, "benefit", &benefit.id)?;
            tx.execute(
                "INSERT INTO benefit_versions (hash, benefit, definition, published_seq) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (hash) DO NOTHING",
                params![terminal_hash, benefit.id, terminal_json, to_i64(seq)],
            )?;
            tx.execute(
                "INSERT INTO benefits (id, provider, definition, terminal_hash, published_seq) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET definition = excluded.definition,
                   terminal_hash = excluded.terminal_hash, published_seq = excluded.published_seq",
                params![benefit.id, benefit.provider, definition, terminal_hash, to_i64(seq)],
            )?;
            for sql in affected_recipients(old_benefit.as_ref(), &benefit) {
                tx.execute(&sql.0, params![sql.1])?;
            }
            Ok(StoredBenefit {
                benefit,
                terminal_hash,
                published_seq: seq,
            })
        })
        .await
    }

    async fn benefits(&self, provider: Option<&str>) -> StoreResult<Vec<StoredBenefit>> {
        let provider = provider.map(str::to_owned);
        self.call(move |conn| {
            let mut stmt = conn.prepare(
                "SELECT definition, terminal_hash, published_seq FROM benefits WHERE ?1 IS NULL OR provider = ?1 ORDER BY id",
            )?;
            let mut rows = stmt.query([&provider])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let definition: String = row.get(0)?;
                out.push(StoredBenefit {
                    benefit: parse_benefit(&definition)?,
                    terminal_hash: row.get(1)?,
                    published_seq: to_u64(row.get(2)?),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn benefit_version(&self, hash: &str) -> StoreResult<Option<BenefitVersion>> {
        let hash = hash.to_owned();
        self.call(move |conn| {
            let row: Option<(String, i64)> = conn
                .query_row(
                    "SELECT definition, published_seq FROM benefit_versions WHERE hash = ?1",
                    [&hash],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            row.map(|(definition, seq)| {
                Ok(BenefitVersion {
                    hash: hash.clone(),
                    benefit: parse_benefit(&definition)?,
                    published_seq: to_u64(seq),
                })
            })
            .transpose()
        })
        .await
    }

    async fn create_terminal(&self, terminal: &NewTerminal) -> StoreResult<String> {
        let terminal = terminal.clone();
        self.write(move |tx| {
            let merchant_known = tx
                .prepare("SELECT 1 FROM merchants WHERE id = ?1")?
                .exists([&terminal.merchant])?;
            if !merchant_known {
                return Err(StoreError::NotFound(format!("merchant {:?}", terminal.merchant)));
            }
            tx.execute("INSERT INTO terminal_ids DEFAULT VALUES", [])?;
            let id = format!("T-{:06}", tx.last_insert_rowid());
            let categories = serde_json::to_string(&terminal.categories)
                .map_err(|err| StoreError::Other(err.to_string()))?;
            tx.execute(
                "INSERT INTO terminals (id, merchant, label, categories, status) VALUES (?1, ?2, ?3, ?4, 'pending')",
                params![id, terminal.merchant, terminal.label, categories],
            )?;
            tx.execute(
                "INSERT INTO enrol_codes (hash, terminal, expires_at) VALUES (?1, ?2, ?3)",
                params![terminal.code_hash, id, terminal.code_expires_at.to_string()],
            )?;
            Ok(id)
        })
        .await
    }

    async fn enrol(
        &self,
        code_hash: &str,
        public_key: &str,
        label: Option<&str>,
        now: Timestamp,
    ) -> StoreResult<Result<Terminal, EnrolRefusal>> {
        let code_hash = code_hash.to_owned();
        let public_key = public_key.to_owned();
        let label = label.map(str::to_owned);
        self.write(move |tx| {
            let code: Option<(String, String, Option<String>)> = tx
                .query_row(
                    "SELECT terminal, expires_at, used_at FROM enrol_codes WHERE hash = ?1",
                    [&code_hash],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()?;
            let Some((terminal_id, expires_at, used_at)) = code else {
                return Ok(Err(EnrolRefusal::UnknownCode));
            };
            if used_at.is_some() {
                return Ok(Err(EnrolRefusal::UsedCode));
            }
            if parse_ts(&expires_at)? <= now {
                return Ok(Err(EnrolRefusal::ExpiredCode));
            }
            let key_in_use = tx
                .prepare("SELECT 1 FROM terminals WHERE public_key = ?1")?
                .exists([&public_key])?;
            if key_in_use {
                return Ok(Err(EnrolRefusal::KeyInUse));
            }
            let updated = tx.execute(
                "UPDATE terminals SET public_key = ?2, status = 'active', enrolled_at = ?3,
                   label = COALESCE(?4, label)
                 WHERE id = ?1 AND status = 'pending'",
                params![terminal_id, public_key, now.to_string(), label],
            )?;
            if updated == 0 {
                return Ok(Err(EnrolRefusal::UsedCode));
            }
            tx.execute(
                "UPDATE enrol_codes SET used_at = ?2 WHERE hash = ?1",
                params![code_hash, now.to_string()],
            )?;
            let terminal = read_terminal(tx, &terminal_id)?
                .ok_or_else(|| StoreError::NotFound(format!("terminal {terminal_id}")))?;
            Ok(Ok(terminal))
        })
        .await
    }

    async fn terminal(&self, id: &str) -> StoreResult<Option<Terminal>> {
        let id = id.to_owned();
        self.call(move |conn| read_terminal(conn, &id)).await
    }

    async fn terminals(&self, merchant: Option<&str>) -> StoreResult<Vec<Terminal>> {
        let merchant = merchant.map(str::to_owned);
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {TERMINAL_COLUMNS} FROM terminals WHERE ?1 IS NULL OR merchant = ?1 ORDER BY id"
            ))?;
            let rows: Vec<(Terminal, String)> = stmt
                .query_map([&merchant], terminal_from_row)?
                .collect::<Result<_, _>>()?;
            rows.into_iter().map(finish_terminal).collect()
        })
        .await
    }

    async fn revoke_terminal(&self, id: &str, now: Timestamp) -> StoreResult<bool> {
        let id = id.to_owned();
        self.write(move |tx| {
            let updated = tx.execute(
                "UPDATE terminals SET status = 'revoked', revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1",
                params![id, now.to_string()],
            )?;
            // An unused code of a revoked terminal must never enrol anything.
            tx.execute(
                "UPDATE enrol_codes SET used_at = ?2 WHERE terminal = ?1 AND used_at IS NULL",
                params![id, now.to_string()],
            )?;
            Ok(updated > 0)
        })
        .await
    }

    async fn heartbeat(&self, id: &str, now: Timestamp, skew_s: i64) -> StoreResult<()> {
        let id = id.to_owned();
        self.write(move |tx| {
            tx.execute(
                "UPDATE terminals SET last_seen = ?2, clock_skew_s = ?3 WHERE id = ?1",
                params![id, now.to_string(), skew_s],
            )?;
            Ok(())
        })
        .await
    }

    async fn import(
        &self,
        provider: &str,
        rows: Vec<ImportRow>,
        progress: Option<Progress>,
    ) -> StoreResult<ImportSummary> {
        let provider = provider.to_owned();
        self.write(move |tx| import_rows(tx, &provider, rows, progress))
            .await
    }

    async fn block_credential(&self, hash: &str) -> StoreResult<Option<u64>> {
        let hash = hash.to_owned();
        self.write(move |tx| {
            let row: Option<Option<i64>> = tx
                .query_row(
                    "SELECT blocked_seq FROM credentials WHERE hash = ?1",
                    [&hash],
                    |row| row.get(0),
                )
                .optional()?;
            match row {
                None => Ok(None),
                Some(Some(seq)) => Ok(Some(to_u64(seq))),
                Some(None) => {
                    let seq = log_change(tx, "credential", &hash)?;
                    tx.execute(
                        "UPDATE credentials SET blocked_seq = ?2 WHERE hash = ?1",
                        params![hash, to_i64(seq)],
                    )?;
                    Ok(Some(seq))
                }
            }
        })
        .await
    }

    async fn recipient(
        &self,
        id: &str,
        provider: Option<&str>,
    ) -> StoreResult<Option<RecipientView>> {
        let id = id.to_owned();
        let provider = provider.map(str::to_owned);
        self.call(move |conn| {
            let visible = conn
                .prepare(
                    "SELECT 1 FROM recipients r WHERE r.id = ?1 AND (?2 IS NULL OR r.provider = ?2
                       OR EXISTS (SELECT 1 FROM grants g WHERE g.recipient = r.id AND g.provider = ?2)
                       OR EXISTS (SELECT 1 FROM memberships m WHERE m.recipient = r.id AND m.provider = ?2))",
                )?
                .exists(params![id, provider])?;
            if !visible {
                return Ok(None);
            }
            let entries = entries_in_range(conn, &id, &id)?
                .remove(&id)
                .unwrap_or_default();
            let mut stmt = conn.prepare(
                "SELECT hash, kind, blocked_seq FROM credentials WHERE recipient = ?1 ORDER BY hash",
            )?;
            let mut rows = stmt.query([&id])?;
            let mut credentials = Vec::new();
            while let Some(row) = rows.next()? {
                let kind: String = row.get(1)?;
                let blocked: Option<i64> = row.get(2)?;
                credentials.push((
                    row.get(0)?,
                    credential_kind(&kind)?,
                    if blocked.is_some() {
                        CredentialStatus::Blocked
                    } else {
                        CredentialStatus::Active
                    },
                ));
            }
            Ok(Some(RecipientView {
                id,
                entries,
                credentials,
            }))
        })
        .await
    }

    async fn provider_knows_credential(&self, provider: &str, hash: &str) -> StoreResult<bool> {
        let provider = provider.to_owned();
        let hash = hash.to_owned();
        self.call(move |conn| {
            Ok(conn
                .prepare(
                    "SELECT 1 FROM credentials c JOIN recipients r ON r.id = c.recipient WHERE c.hash = ?1 AND (r.provider = ?2
                       OR EXISTS (SELECT 1 FROM grants g WHERE g.recipient = r.id AND g.provider = ?2)
                       OR EXISTS (SELECT 1 FROM memberships m WHERE m.recipient = r.id AND m.provider = ?2))",
                )?
                .exists(params![hash, provider])?)
        })
        .await
    }

    async fn ingest(&self, packet: IncomingPacket) -> StoreResult<IngestAnswer> {
        self.write(move |tx| ingest_packet(tx, packet)).await
    }

    async fn records(&self, filter: &RecordFilter) -> StoreResult<Vec<RecordRow>> {
        let filter = filter.clone();
        self.call(move |conn| {
            let provider_pattern = filter.provider.as_ref().map(|p| format!("%,{p},%"));
            let (after_terminal, after_seq) = filter
                .after
                .clone()
                .map(|(terminal, seq)| (Some(terminal), to_i64(seq)))
                .unwrap_or((None, 0));
            let mut stmt = conn.prepare(
                "SELECT terminal, seq, hash, outcome, reason, recipient, merchant, at, kind, discount_cents, body
                 FROM records
                 WHERE (?1 IS NULL OR merchant = ?1) AND (?2 IS NULL OR providers LIKE ?2)
                   AND (?3 IS NULL OR terminal = ?3) AND (?4 IS NULL OR outcome = ?4)
                   AND (?5 IS NULL OR terminal > ?5 OR (terminal = ?5 AND seq > ?6))
                 ORDER BY terminal, seq LIMIT ?7",
            )?;
            let mut rows = stmt.query(params![
                filter.merchant,
                provider_pattern,
                filter.terminal,
                filter.outcome,
                after_terminal,
                after_seq,
                i64::from(filter.limit)
            ])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                out.push(record_row(row)?);
            }
            Ok(out)
        })
        .await
    }

    async fn forks(&self, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>> {
        self.evidence(
            "SELECT terminal, seq, hash, body FROM forks WHERE ?1 IS NULL OR terminal = ?1 ORDER BY terminal, seq, hash",
            terminal,
        )
        .await
    }

    async fn bad_signatures(&self, terminal: Option<&str>) -> StoreResult<Vec<ForkRow>> {
        self.evidence(
            "SELECT terminal, seq, hash, body FROM bad_signatures WHERE ?1 IS NULL OR terminal = ?1
             ORDER BY terminal, seq, hash, sig",
            terminal,
        )
        .await
    }

    async fn record_body(&self, terminal: &str, seq: u64) -> StoreResult<Option<String>> {
        let terminal = terminal.to_owned();
        self.call(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT body FROM records WHERE terminal = ?1 AND seq = ?2",
                    params![terminal, to_i64(seq)],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn version(&self) -> StoreResult<u64> {
        self.call(|conn| {
            let seq: Option<i64> =
                conn.query_row("SELECT MAX(seq) FROM changes", [], |row| row.get(0))?;
            Ok(seq.map(to_u64).unwrap_or(0))
        })
        .await
    }

    async fn oldest_delta_base(&self) -> StoreResult<u64> {
        Ok(0)
    }

    async fn changes_since(&self, after: u64, upto: u64, limit: u64) -> StoreResult<Vec<Change>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT kind, key FROM changes WHERE seq > ?1 AND seq <= ?2 AND kind <> 'usage' LIMIT ?3",
            )?;
            let mut rows = stmt.query(params![to_i64(after), to_i64(upto), to_i64(limit + 1)])?;
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let kind: String = row.get(0)?;
                let key: String = row.get(1)?;
                out.push(match kind.as_str() {
                    "benefit" => Change::Benefit(key),
                    "credential" => Change::Credential(key),
                    _ => Change::Recipient(key),
                });
            }
            Ok(out)
        })
        .await
    }

    async fn usage_changed_since(
        &self,
        after: u64,
        upto: u64,
        terminal: &str,
    ) -> StoreResult<Vec<String>> {
        let terminal = terminal.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT DISTINCT recipient FROM usage_days WHERE change_seq > ?1 AND change_seq <= ?2 AND terminal <> ?3",
            )?;
            let rows = stmt
                .query_map(params![to_i64(after), to_i64(upto), terminal], |row| {
                    row.get(0)
                })?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn credentials_page(&self, after: &str, limit: u32) -> StoreResult<Vec<CredentialRow>> {
        let after = after.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE hash > ?1 ORDER BY hash LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![after, i64::from(limit)], credential_row)?
                .collect::<Result<_, _>>()?;
            Ok(rows)
        })
        .await
    }

    async fn credentials_by_hash(&self, hashes: &[String]) -> StoreResult<Vec<CredentialRow>> {
        let hashes = hashes.to_vec();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE hash = ?1",
            )?;
            let mut out = Vec::with_capacity(hashes.len());
            for hash in &hashes {
                if let Some(row) = stmt.query_row([hash], credential_row).optional()? {
                    out.push(row);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn credentials_of(&self, recipients: &[String]) -> StoreResult<Vec<CredentialRow>> {
        let recipients = recipients.to_vec();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT hash, recipient, blocked_seq FROM credentials WHERE recipient = ?1 ORDER BY hash",
            )?;
            let mut out = Vec::new();
            for recipient in &recipients {
                let rows: Vec<CredentialRow> = stmt
                    .query_map([recipient], credential_row)?
                    .collect::<Result<_, _>>()?;
                out.extend(rows);
            }
            Ok(out)
        })
        .await
    }

    async fn recipients_page(
        &self,
        after: &str,
        limit: u32,
        usage: &UsageQuery,
    ) -> StoreResult<Vec<RecipientData>> {
        let after = after.to_owned();
        let usage = usage.clone();
        self.call(move |conn| {
            let ids: Vec<String> = {
                let mut stmt = conn.prepare_cached(
                    "SELECT id FROM recipients WHERE id > ?1 ORDER BY id LIMIT ?2",
                )?;
                let ids = stmt
                    .query_map(params![after, i64::from(limit)], |row| row.get(0))?
                    .collect::<Result<_, _>>()?;
                ids
            };
            let Some(last) = ids.last() else {
                return Ok(Vec::new());
            };
            let mut entries = entries_in_range(conn, &after, last)?;
            let mut usage_rows = usage_in_range(conn, &after, last, &usage)?;
            Ok(ids
                .into_iter()
                .map(|id| RecipientData {
                    entries: entries.remove(&id).unwrap_or_default(),
                    usage: usage_rows.remove(&id).unwrap_or_default(),
                    id,
                })
                .collect())
        })
        .await
    }

    async fn recipients_by_id(
        &self,
        ids: &[String],
        usage: &UsageQuery,
    ) -> StoreResult<Vec<RecipientData>> {
        let ids = ids.to_vec();
        let usage = usage.clone();
        self.call(move |conn| recipient_data_for(conn, &ids, &usage))
            .await
    }
}

fn credential_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CredentialRow> {
    let blocked: Option<i64> = row.get(2)?;
    Ok(CredentialRow {
        hash: row.get(0)?,
        recipient: row.get(1)?,
        status: if blocked.is_some() {
            CredentialStatus::Blocked
        } else {
            CredentialStatus::Active
        },
    })
}

/// How often an import reports progress, in rows.
const PROGRESS_EVERY: u64 = 100_000;

fn import_rows(
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
    let mut changed_recipients: HashSet<String> = HashSet::new();
    let mut changed_credentials: Vec<String> = Vec::new();
    let mut add_recipient = tx.prepare_cached(
        "INSERT INTO recipients (id, provider) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
    )?;
    let mut personal = tx.prepare_cached(
        "INSERT INTO recipient_personal (recipient, personal_code, name) VALUES (?1, ?2, ?3)
         ON CONFLICT (recipient) DO UPDATE SET personal_code = excluded.personal_code, name = excluded.name
         WHERE recipient_personal.personal_code IS NOT excluded.personal_code
            OR recipient_personal.name IS NOT excluded.name",
    )?;
    let mut credential = tx.prepare_cached(
        "INSERT INTO credentials (hash, kind, recipient) VALUES (?1, ?2, ?3)
         ON CONFLICT (hash) DO UPDATE SET kind = excluded.kind, recipient = excluded.recipient
         WHERE credentials.kind IS NOT excluded.kind OR credentials.recipient IS NOT excluded.recipient",
    )?;
    let mut membership = tx.prepare_cached(
        "INSERT INTO memberships (recipient, grp, provider, valid_from, valid_to) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (recipient, grp) DO UPDATE SET valid_from = excluded.valid_from, valid_to = excluded.valid_to
         WHERE memberships.valid_from IS NOT excluded.valid_from OR memberships.valid_to IS NOT excluded.valid_to",
    )?;
    let mut grant = tx.prepare_cached(
        "INSERT INTO grants (recipient, benefit, provider, valid_from, valid_to) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (recipient, benefit) DO UPDATE SET valid_from = excluded.valid_from, valid_to = excluded.valid_to
         WHERE grants.valid_from IS NOT excluded.valid_from OR grants.valid_to IS NOT excluded.valid_to",
    )?;
    let mut birth = tx.prepare_cached(
        "INSERT INTO recipient_personal (recipient, birth_date) VALUES (?1, ?2)
         ON CONFLICT (recipient) DO UPDATE SET birth_date = excluded.birth_date
         WHERE recipient_personal.birth_date IS NOT excluded.birth_date",
    )?;
    let mut guardian_of = tx.prepare_cached(
        "INSERT INTO guardians (guardian, child, provider) VALUES (?1, ?2, ?3)
         ON CONFLICT (guardian, child) DO NOTHING",
    )?;
    // A person counts once however many of their rows changed, as on PostgreSQL.
    let mut people_touched: HashSet<String> = HashSet::new();
    for (idx, row) in rows.into_iter().enumerate() {
        match row {
            ImportRow::Recipient {
                recipient,
                personal_code,
                name,
            } => {
                let added = add_recipient.execute(params![recipient, provider])?;
                let changed = if personal_code.is_some() || name.is_some() {
                    personal.execute(params![recipient, personal_code, name])?
                } else {
                    0
                };
                if added + changed > 0 {
                    summary.recipients_changed += 1;
                    people_touched.insert(recipient);
                }
            }
            ImportRow::Credential {
                recipient,
                kind,
                hash,
            } => {
                if add_recipient.execute(params![recipient, provider])? > 0 {
                    summary.recipients_changed += 1;
                }
                if credential.execute(params![hash, kind.as_str(), recipient])? > 0 {
                    summary.credentials_changed += 1;
                    changed_credentials.push(hash);
                }
            }
            ImportRow::Membership {
                recipient,
                membership: m,
            } => {
                if add_recipient.execute(params![recipient, provider])? > 0 {
                    summary.recipients_changed += 1;
                }
                if membership.execute(params![
                    recipient,
                    m.group,
                    provider,
                    date_text(m.valid_from),
                    date_text(m.valid_to)
                ])? > 0
                {
                    summary.memberships_changed += 1;
                    changed_recipients.insert(recipient);
                }
            }
            ImportRow::Grant {
                recipient,
                grant: g,
            } => {
                if add_recipient.execute(params![recipient, provider])? > 0 {
                    summary.recipients_changed += 1;
                }
                if grant.execute(params![
                    recipient,
                    g.benefit,
                    provider,
                    date_text(g.valid_from),
                    date_text(g.valid_to)
                ])? > 0
                {
                    summary.grants_changed += 1;
                    changed_recipients.insert(recipient);
                }
            }
            // Birth dates and guardians are personal data: they change what
            // the portal shows, never a snapshot, so they log no change.
            ImportRow::BirthDate {
                recipient,
                birth_date,
            } => {
                let added = add_recipient.execute(params![recipient, provider])?;
                let changed = birth.execute(params![recipient, birth_date.to_string()])?;
                // Its recipients row (same file line) may have counted it already.
                if added + changed > 0 && people_touched.insert(recipient) {
                    summary.recipients_changed += 1;
                }
            }
            ImportRow::Guardian { guardian, child } => {
                add_recipient.execute(params![guardian, provider])?;
                add_recipient.execute(params![child, provider])?;
                if guardian_of.execute(params![guardian, child, provider])? > 0
                    && people_touched.insert(child)
                {
                    summary.recipients_changed += 1;
                }
            }
        }
        let done = idx as u64 + 1;
        if done % PROGRESS_EVERY == 0 {
            if let Some(report) = &progress {
                report(done);
            }
        }
    }
    let mut change = tx.prepare_cached("INSERT INTO changes (kind, key) VALUES (?1, ?2)")?;
    for hash in &changed_credentials {
        change.execute(params!["credential", hash])?;
    }
    let mut recipients: Vec<&String> = changed_recipients.iter().collect();
    recipients.sort();
    for recipient in recipients {
        change.execute(params!["recipient", recipient])?;
    }
    let version: Option<i64> =
        tx.query_row("SELECT MAX(seq) FROM changes", [], |row| row.get(0))?;
    summary.version = version.map(to_u64).unwrap_or(0);
    if let Some(report) = &progress {
        report(summary.rows);
    }
    Ok(summary)
}

/// Runs `{head}VALUES {row}, {row}, …{tail}` over `rows`, `per_statement`
/// rows per statement (fewer statement executions per packet), the rest one
/// row each; both statement texts are prepared once and cached, so the cache
/// holds two texts, not one per chunk length. `bind` binds one row's values
/// from the given parameter index and returns the index after them.
fn insert_chunked<T>(
    tx: &Transaction<'_>,
    (head, row, tail): (&str, &str, &str),
    per_statement: usize,
    rows: &[T],
    mut bind: impl FnMut(&mut rusqlite::Statement<'_>, usize, &T) -> StoreResult<usize>,
) -> StoreResult<()> {
    let chunk_sql = format!("{head}VALUES {}{tail}", vec![row; per_statement].join(", "));
    let row_sql = format!("{head}VALUES {row}{tail}");
    for chunk in rows.chunks(per_statement) {
        if chunk.len() < per_statement {
            let mut statement = tx.prepare_cached(&row_sql)?;
            for values in chunk {
                bind(&mut statement, 1, values)?;
                statement.raw_execute()?;
            }
        } else {
            let mut statement = tx.prepare_cached(&chunk_sql)?;
            let mut at = 1;
            for values in chunk {
                at = bind(&mut statement, at, values)?;
            }
            statement.raw_execute()?;
        }
    }
    Ok(())
}

/// Binds `values` from parameter `at` on; the index after them.
fn bind_all(
    statement: &mut rusqlite::Statement<'_>,
    at: usize,
    values: &[&dyn rusqlite::ToSql],
) -> StoreResult<usize> {
    for (offset, value) in values.iter().enumerate() {
        statement.raw_bind_parameter(at + offset, value)?;
    }
    Ok(at + values.len())
}

/// Rows per multi-row `INSERT` of records: 32 × 17 parameters stay far
/// below SQLite's limit of 32,766.
const RECORDS_PER_INSERT: usize = 32;

/// Inserts the planned records.
fn insert_records(
    tx: &Transaction<'_>,
    packet: &IncomingPacket,
    inserts: &[(usize, plan::RecordAnswer)],
) -> StoreResult<()> {
    let sql = (
        "INSERT INTO records (terminal, seq, hash, prev, outcome, reason, recipient, credential, merchant, at,
           kind, discount_cents, providers, snapshot, body, sig, packet) ",
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "",
    );
    insert_chunked(
        tx,
        sql,
        RECORDS_PER_INSERT,
        inserts,
        |statement, at, (idx, answer)| {
            let record = &packet.records[*idx];
            bind_all(
                statement,
                at,
                &[
                    &packet.terminal,
                    &to_i64(record.seq),
                    &record.hash,
                    &record.prev,
                    &answer.outcome.as_str(),
                    &answer.reason.map(Reason::as_str),
                    &record.recipient,
                    &record.credential,
                    &record.merchant,
                    &record.at.to_string(),
                    &record.kind.as_str(),
                    &record.discount_cents,
                    &record.providers,
                    &to_i64(record.snapshot),
                    &record.body,
                    &record.sig,
                    &packet.id,
                ],
            )
        },
    )
}

/// Rows per multi-row usage upsert (7 × 64 parameters).
const USAGE_PER_UPSERT: usize = 64;

/// Adds a packet's usage, summed per `(recipient, benefit, day)`, to the
/// terminal's `usage_days` rows.
fn upsert_usage(
    tx: &Transaction<'_>,
    terminal: &str,
    change_seq: u64,
    usage: BTreeMap<(&str, &str, Date), (i64, i64)>,
) -> StoreResult<()> {
    let sql = (
        "INSERT INTO usage_days (recipient, benefit, day, terminal, count, amount_cents, change_seq) ",
        "(?, ?, ?, ?, ?, ?, ?)",
        " ON CONFLICT (recipient, benefit, day, terminal) DO UPDATE SET
           count = usage_days.count + excluded.count,
           amount_cents = usage_days.amount_cents + excluded.amount_cents,
           change_seq = excluded.change_seq",
    );
    let change_seq = to_i64(change_seq);
    let rows: Vec<_> = usage.into_iter().collect();
    insert_chunked(
        tx,
        sql,
        USAGE_PER_UPSERT,
        &rows,
        |statement, at, ((recipient, benefit, day), (count, amount_cents))| {
            bind_all(
                statement,
                at,
                &[
                    recipient,
                    benefit,
                    &day.to_string(),
                    &terminal,
                    count,
                    amount_cents,
                    &change_seq,
                ],
            )
        },
    )
}

/// Keeps the packet's records at `indices` as evidence (forks, bad
/// signatures) with `sql`: terminal, seq, hash, body, sig, packet, then
/// `received_at` when given. Evidence is never overwritten, so a replay
/// adds nothing.
fn insert_evidence(
    tx: &Transaction<'_>,
    packet: &IncomingPacket,
    indices: &[usize],
    sql: &str,
    received_at: Option<&String>,
) -> StoreResult<()> {
    if indices.is_empty() {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(sql)?;
    for idx in indices {
        let record = &packet.records[*idx];
        let seq = to_i64(record.seq);
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![
            &packet.terminal,
            &seq,
            &record.hash,
            &record.body,
            &record.sig,
            &packet.id,
        ];
        if let Some(received_at) = &received_at {
            values.push(received_at);
        }
        insert.execute(values.as_slice())?;
    }
    Ok(())
}

fn ingest_packet(tx: &Transaction<'_>, packet: IncomingPacket) -> StoreResult<IngestAnswer> {
    let acked: Option<i64> = tx
        .query_row(
            "SELECT acked_through FROM terminals WHERE id = ?1",
            [&packet.terminal],
            |row| row.get(0),
        )
        .optional()?;
    let Some(acked) = acked else {
        return Err(StoreError::NotFound(format!(
            "terminal {}",
            packet.terminal
        )));
    };
    let seen_before = tx
        .prepare_cached("SELECT 1 FROM packets WHERE id = ?1")?
        .exists([&packet.id])?;
    let mut known = BTreeMap::new();
    {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, hash, prev, outcome, reason FROM records WHERE terminal = ?1 AND seq >= ?2 AND seq <= ?3",
        )?;
        let mut rows = stmt.query(params![
            packet.terminal,
            to_i64(packet.first_seq.saturating_sub(1)),
            to_i64(packet.last_seq.saturating_add(1))
        ])?;
        while let Some(row) = rows.next()? {
            let outcome: String = row.get(3)?;
            let reason: Option<String> = row.get(4)?;
            known.insert(
                to_u64(row.get(0)?),
                Known {
                    hash: row.get(1)?,
                    prev: row.get(2)?,
                    outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Flagged),
                    reason: reason.as_deref().and_then(Reason::parse),
                },
            );
        }
    }
    let decided = plan::plan(&packet.records, &known, seen_before);
    insert_records(tx, &packet, &decided.inserts)?;
    insert_evidence(
        tx,
        &packet,
        &decided.forks,
        "INSERT INTO forks (terminal, seq, hash, body, sig, packet) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (terminal, seq, hash) DO NOTHING",
        None,
    )?;
    insert_evidence(
        tx,
        &packet,
        &decided.bad_signatures,
        "INSERT INTO bad_signatures (terminal, seq, hash, body, sig, packet, received_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (terminal, seq, hash, sig) DO NOTHING",
        Some(&packet.received_at.to_string()),
    )?;
    let mut resolve = tx.prepare_cached(
        "UPDATE records SET outcome = ?3, reason = ?4, resolved_by = ?5
         WHERE terminal = ?1 AND seq = ?2 AND outcome = 'held'",
    )?;
    for answer in &decided.resolved {
        resolve.execute(params![
            packet.terminal,
            to_i64(answer.seq),
            answer.outcome.as_str(),
            answer.reason.map(Reason::as_str),
            packet.id
        ])?;
    }
    // A packet seen before is answered as the first time, held records it
    // resolved then included.
    let resolved = if seen_before {
        let mut stmt = tx.prepare_cached(
            "SELECT seq, outcome, reason FROM records WHERE terminal = ?1 AND resolved_by = ?2 ORDER BY seq",
        )?;
        let rows = stmt.query_map(params![packet.terminal, packet.id], |row| {
            let outcome: String = row.get(1)?;
            let reason: Option<String> = row.get(2)?;
            Ok(plan::RecordAnswer {
                seq: to_u64(row.get(0)?),
                outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Flagged),
                reason: reason.as_deref().and_then(Reason::parse),
            })
        })?;
        rows.collect::<Result<Vec<_>, _>>()?
    } else {
        decided.resolved
    };
    tx.execute(
        "INSERT INTO packets (id, terminal, first_seq, last_seq, received_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (id) DO NOTHING",
        params![
            packet.id,
            packet.terminal,
            to_i64(packet.first_seq),
            to_i64(packet.last_seq),
            packet.received_at.to_string()
        ],
    )?;
    // Usage, summed per key first: the bench's and a canteen's packets
    // often hold one recipient several times a day.
    let mut usage: BTreeMap<(&str, &str, Date), (i64, i64)> = BTreeMap::new();
    for (idx, _) in &decided.inserts {
        let record = &packet.records[*idx];
        for delta in &record.usage {
            let entry = usage
                .entry((record.recipient.as_str(), delta.benefit.as_str(), delta.day))
                .or_default();
            entry.0 += delta.count;
            entry.1 += delta.amount_cents;
        }
    }
    if !usage.is_empty() {
        let seq = log_change(tx, "usage", &packet.id)?;
        upsert_usage(tx, &packet.terminal, seq, usage)?;
    }
    // Advance the contiguous head past everything now stored without a gap.
    let mut head = acked;
    let mut next = tx.prepare_cached(
        "SELECT seq FROM records WHERE terminal = ?1 AND seq > ?2 ORDER BY seq LIMIT 1000",
    )?;
    loop {
        let seqs: Vec<i64> = next
            .query_map(params![packet.terminal, head], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        let before = head;
        for seq in &seqs {
            if *seq != head + 1 {
                break;
            }
            head = *seq;
        }
        if head == before || seqs.len() < 1000 || head != *seqs.last().unwrap_or(&head) {
            break;
        }
    }
    if head != acked {
        tx.execute(
            "UPDATE terminals SET acked_through = ?2 WHERE id = ?1",
            params![packet.terminal, head],
        )?;
    }
    Ok(IngestAnswer {
        records: decided.answers,
        acked_through: to_u64(head),
        seen_before,
        resolved,
    })
}
