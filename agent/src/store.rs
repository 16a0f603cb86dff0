//! The agent's one SQLite database: the current snapshot (benefits,
//! credentials, recipients), the journal of committed records with the
//! usage each sale counts against limits, the outbox of packets to upload, and a small
//! key/value `meta` table.
//!
//! Durability: WAL with `synchronous=FULL`, so a commit returns only after
//! the WAL is fsync'd; the HTTP answer is built after that. Writes go
//! through one [`Writer`] behind a mutex (SQLite has one writer anyway),
//! which also serialises seq assignment and the limit checks of commits.
//! Reads for identify and quote use a small pool of read-only connections
//! so they never wait for an fsync.
//!
//! Schema migrations are numbered by `PRAGMA user_version`; a database
//! written by a newer agent is refused rather than guessed at.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use jiff::Timestamp;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};
use shared::model::{Benefit, Grant};
use shared::money::Money;
use shared::wire::chain::{self, ChainIssue};
use shared::wire::keys::{Hash, PublicKey, SigningKey};
use shared::wire::packet::{Packet, PACKET_RECORDS_MAX};
use shared::wire::record::{benefit_hash, RecordKind, SignedRecord};
use shared::wire::snapshot::{
    check_addressed_to, check_applies, CredentialStatus, SnapshotHeader, SnapshotItem,
    SnapshotKind, SnapshotReader, UsageDay,
};
use shared::wire::WireError;

use crate::core::{Catalog, LocalUse, RecipientData};

/// Schema migrations, in order; `user_version` is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: initial schema.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE benefit (id TEXT PRIMARY KEY, hash TEXT NOT NULL, json TEXT NOT NULL) WITHOUT ROWID;
     CREATE TABLE credential (hash BLOB PRIMARY KEY, recipient TEXT NOT NULL, blocked INTEGER NOT NULL) WITHOUT ROWID;
     CREATE TABLE recipient (id TEXT PRIMARY KEY, entitlements TEXT NOT NULL, usage TEXT NOT NULL);
     CREATE TABLE journal (
         seq INTEGER PRIMARY KEY,
         hash BLOB NOT NULL,
         at_ms INTEGER NOT NULL,
         kind TEXT NOT NULL CHECK (kind IN ('sale', 'void')),
         voids INTEGER,
         idempotency_key TEXT NOT NULL UNIQUE,
         credential_hash TEXT NOT NULL,
         fingerprint BLOB NOT NULL,
         recipient TEXT NOT NULL,
         usage TEXT NOT NULL,
         record BLOB NOT NULL,
         answer BLOB NOT NULL
     );
     CREATE INDEX journal_recipient ON journal (recipient, at_ms);
     CREATE UNIQUE INDEX journal_voids ON journal (voids) WHERE voids IS NOT NULL;
     CREATE TABLE outbox (
         first_seq INTEGER PRIMARY KEY,
         last_seq INTEGER NOT NULL,
         packet_id TEXT NOT NULL,
         bytes BLOB NOT NULL
     );",
];

/// The snapshot tables, which a full snapshot rebuilds under `<name>_next`.
const SNAPSHOT_TABLES: [(&str, &str); 3] = [
    (
        "benefit",
        "(id TEXT PRIMARY KEY, hash TEXT NOT NULL, json TEXT NOT NULL) WITHOUT ROWID",
    ),
    (
        "credential",
        "(hash BLOB PRIMARY KEY, recipient TEXT NOT NULL, blocked INTEGER NOT NULL) WITHOUT ROWID",
    ),
    (
        "recipient",
        "(id TEXT PRIMARY KEY, entitlements TEXT NOT NULL, usage TEXT NOT NULL)",
    ),
];

/// Items written per transaction while staging a full snapshot: small
/// enough that a commit waiting for the write lock waits milliseconds.
const STAGE_BATCH_ITEMS: usize = 5_000;

/// How far back local usage is read: a year period plus slack for zones.
const USAGE_LOOKBACK_MS: i64 = 400 * 24 * 3600 * 1000;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {context}: {source}")]
    Sqlite {
        context: &'static str,
        source: rusqlite::Error,
    },
    #[error("database schema version {found} is newer than this agent supports ({supported}); install a newer agent")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("database is inconsistent: {0}")]
    Corrupt(String),
}

trait Context<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

/// Why a snapshot was not applied. The old snapshot stays in force.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot refused: {0}")]
    Wire(#[from] WireError),
    #[error("snapshot refused: {0}")]
    Refused(String),
    #[error("snapshot not applied: {0}")]
    Store(#[from] StoreError),
    #[error("snapshot not applied: reading it: {0}")]
    Io(#[from] std::io::Error),
}

/// The chain head: the last record's seq and hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub hash: Hash,
}

/// What the agent knows of its current snapshot, swapped whole on apply.
#[derive(Debug, Clone, Default)]
pub struct SnapshotState {
    pub version: Option<u64>,
    pub built_at: Option<Timestamp>,
    pub applied_at: Option<Timestamp>,
    pub catalog: Catalog,
}

/// What the snapshot must be for to be applied here.
#[derive(Debug, Clone)]
pub struct ApplyContext {
    pub central_keys: Vec<PublicKey>,
    pub terminal: String,
    pub merchant: String,
    pub credential_key_id: String,
    pub now: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub version: u64,
    pub kind: SnapshotKind,
    pub items: u64,
}

/// A journal row found by idempotency key or double-tap search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalHit {
    pub seq: u64,
    pub fingerprint: Vec<u8>,
    pub answer: Vec<u8>,
}

/// A record to append, with its bookkeeping.
pub struct NewRecord<'a> {
    pub record: &'a SignedRecord,
    pub credential_hash: &'a str,
    pub fingerprint: Hash,
    /// The commit answer without its `record` member, which is spliced in
    /// from the `record` column when the answer is replayed (see
    /// [`answer_with_record`]): the record is stored once, not twice.
    pub answer: &'a [u8],
    /// Per benefit: amount and units this sale uses (empty for a void).
    pub usage: &'a BTreeMap<String, (Money, u32)>,
}

/// One packet waiting for central's acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxPacket {
    pub first_seq: u64,
    pub last_seq: u64,
    pub packet_id: String,
    pub bytes: Vec<u8>,
}

/// Counts for `status` and metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreStatus {
    pub head: Option<Head>,
    pub acked_through: u64,
    pub outbox_packets: u64,
    pub credentials: u64,
    pub last_sync_ok: Option<String>,
    pub last_sync_attempt: Option<String>,
    pub last_sync_error: Option<String>,
}

/// The writer connection and the chain head it maintains.
pub struct Writer {
    conn: Connection,
    head: Option<Head>,
}

pub struct Store {
    path: PathBuf,
    writer: Mutex<Writer>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    snapshot: RwLock<Arc<SnapshotState>>,
    /// When the writer was last taken (ms since `epoch`), and how often
    /// since the last checkpoint: the checkpointer waits for a quiet moment.
    epoch: std::time::Instant,
    last_write_ms: AtomicU64,
    writes_since_checkpoint: AtomicU64,
}

const READERS: usize = 2;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave SQLite half-written (the
    // transaction rolls back on drop), so the connection stays usable.
    mutex.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = Connection::open(path).ctx("open")?;
        configure_writer(&conn)?;
        migrate(&mut conn)?;
        let head = load_head(&conn)?;
        let state = load_snapshot_state(&conn)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            readers.push(Mutex::new(open_reader(path)?));
        }
        Ok(Store {
            path: path.to_owned(),
            writer: Mutex::new(Writer { conn, head }),
            readers,
            next_reader: AtomicUsize::new(0),
            snapshot: RwLock::new(Arc::new(state)),
            epoch: std::time::Instant::now(),
            last_write_ms: AtomicU64::new(0),
            writes_since_checkpoint: AtomicU64::new(0),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current snapshot's version, dates and benefits.
    pub fn snapshot(&self) -> Arc<SnapshotState> {
        self.snapshot
            .read()
            .unwrap_or_else(|poison| poison.into_inner())
            .clone()
    }

    fn set_snapshot(&self, state: SnapshotState) {
        *self
            .snapshot
            .write()
            .unwrap_or_else(|poison| poison.into_inner()) = Arc::new(state);
    }

    /// A read-only connection; the pool is tried round-robin without waiting.
    pub fn reader(&self) -> MutexGuard<'_, Connection> {
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for offset in 0..self.readers.len() {
            if let Ok(guard) = self.readers[(start + offset) % self.readers.len()].try_lock() {
                return guard;
            }
        }
        lock(&self.readers[start % self.readers.len()])
    }

    /// The single writer. Hold it across read-decide-write so that two
    /// commits never both pass a limit that only one of them may use.
    pub fn writer(&self) -> MutexGuard<'_, Writer> {
        let guard = lock(&self.writer);
        self.last_write_ms
            .store(self.elapsed_ms(), Ordering::Relaxed);
        self.writes_since_checkpoint.fetch_add(1, Ordering::Relaxed);
        guard
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Copies WAL frames into the database file without blocking writers.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writes_since_checkpoint.store(0, Ordering::Relaxed);
        let reader = self.reader();
        reader
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .ctx("checkpoint")
    }

    /// Checkpoints when there were writes and the writer has been quiet for
    /// `idle`, or after `writes_max` writes whatever the traffic. A
    /// checkpoint fsyncs the database file; run beside a commit it delays
    /// that commit's own fsync, so it waits for a pause between sales.
    /// Returns whether it ran.
    pub fn checkpoint_if_due(
        &self,
        idle: std::time::Duration,
        writes_max: u64,
    ) -> Result<bool, StoreError> {
        let writes = self.writes_since_checkpoint.load(Ordering::Relaxed);
        let quiet_ms = self
            .elapsed_ms()
            .saturating_sub(self.last_write_ms.load(Ordering::Relaxed));
        let quiet = u128::from(quiet_ms) >= idle.as_millis();
        if writes == 0 || !(quiet || writes >= writes_max) {
            return Ok(false);
        }
        self.checkpoint()?;
        Ok(true)
    }

    pub fn status(&self) -> Result<StoreStatus, StoreError> {
        status_on(&self.reader())
    }

    /// Records the outcome of a sync attempt.
    pub fn note_sync(&self, at: Timestamp, error: Option<&str>) -> Result<(), StoreError> {
        let writer = self.writer();
        let at = at.to_string();
        meta_set(&writer.conn, "last_sync_attempt", &at)?;
        match error {
            None => {
                meta_set(&writer.conn, "last_sync_ok", &at)?;
                writer
                    .conn
                    .execute("DELETE FROM meta WHERE key = 'last_sync_error'", [])
                    .ctx("clearing sync error")?;
            }
            Some(error) => meta_set(&writer.conn, "last_sync_error", error)?,
        }
        Ok(())
    }

    /// Applies a signed snapshot read from `input`. Nothing changes unless
    /// the trailer verifies; a full snapshot is staged in side tables in
    /// small transactions (commits keep flowing) and swapped in at the end.
    pub fn apply_snapshot<R: BufRead>(
        &self,
        input: R,
        ctx: &ApplyContext,
    ) -> Result<Applied, SnapshotError> {
        let reader = SnapshotReader::open(input, &ctx.central_keys)?;
        let header = reader.header().clone();
        check_header(&header, ctx)?;
        let current = self.snapshot().version;
        check_applies(current, &header)?;
        match header.kind {
            SnapshotKind::Full => self.apply_full(reader, ctx),
            SnapshotKind::Delta => self.apply_delta(reader, ctx),
        }
    }

    fn apply_full<R: BufRead>(
        &self,
        mut reader: SnapshotReader<R>,
        ctx: &ApplyContext,
    ) -> Result<Applied, SnapshotError> {
        {
            let writer = self.writer();
            for (name, columns) in SNAPSHOT_TABLES {
                writer
                    .conn
                    .execute_batch(&format!(
                        "DROP TABLE IF EXISTS {name}_next; CREATE TABLE {name}_next {columns};"
                    ))
                    .ctx("creating staging tables")?;
            }
        }
        let staged = (|| -> Result<(SnapshotHeader, u64), SnapshotError> {
            let mut items: u64 = 0;
            let mut batch = Vec::with_capacity(STAGE_BATCH_ITEMS);
            loop {
                let next = reader.next_item()?;
                let done = next.is_none();
                if let Some(item) = next {
                    items += 1;
                    batch.push(item);
                }
                if batch.len() >= STAGE_BATCH_ITEMS || (done && !batch.is_empty()) {
                    let first_line = items + 2 - batch.len() as u64;
                    let mut writer = self.writer();
                    let tx = writer.conn.transaction().ctx("staging snapshot")?;
                    for (offset, item) in batch.drain(..).enumerate() {
                        apply_item(&tx, "_next", first_line + offset as u64, item)?;
                    }
                    tx.commit().ctx("staging snapshot")?;
                }
                if done {
                    break;
                }
            }
            let header = reader.finish(&ctx.central_keys)?;
            Ok((header, items))
        })();
        let mut writer = self.writer();
        let (header, items) = match staged {
            Ok(staged) => staged,
            Err(err) => {
                drop_staging(&writer.conn);
                return Err(err);
            }
        };
        let result = (|| -> Result<SnapshotState, SnapshotError> {
            let tx = writer.conn.transaction().ctx("swapping snapshot")?;
            // Another full snapshot could not have been applied meanwhile
            // (sync is the only caller), but check rather than assume.
            let current = meta_u64(&tx, "snapshot_version")?;
            check_applies(current, &header)?;
            for (name, _) in SNAPSHOT_TABLES {
                tx.execute_batch(&format!(
                    "DROP TABLE {name}; ALTER TABLE {name}_next RENAME TO {name};"
                ))
                .ctx("swapping snapshot tables")?;
            }
            let state = record_applied(&tx, &header, ctx.now)?;
            tx.commit().ctx("swapping snapshot")?;
            Ok(state)
        })();
        match result {
            Ok(state) => {
                self.set_snapshot(state);
                Ok(Applied {
                    version: header.version,
                    kind: header.kind,
                    items,
                })
            }
            Err(err) => {
                drop_staging(&writer.conn);
                Err(err)
            }
        }
    }

    fn apply_delta<R: BufRead>(
        &self,
        mut reader: SnapshotReader<R>,
        ctx: &ApplyContext,
    ) -> Result<Applied, SnapshotError> {
        let mut writer = self.writer();
        let tx = writer.conn.transaction().ctx("applying delta")?;
        let mut items: u64 = 0;
        while let Some(item) = reader.next_item()? {
            items += 1;
            apply_item(&tx, "", items + 1, item)?;
        }
        let header = reader.finish(&ctx.central_keys)?;
        let current = meta_u64(&tx, "snapshot_version")?;
        check_applies(current, &header)?;
        let state = record_applied(&tx, &header, ctx.now)?;
        // Dropping `tx` on any error above rolls everything back.
        tx.commit().ctx("applying delta")?;
        drop(writer);
        self.set_snapshot(state);
        Ok(Applied {
            version: header.version,
            kind: header.kind,
            items,
        })
    }

    /// Packs journal records not yet in a packet into signed packets of at
    /// most [`PACKET_RECORDS_MAX`], stored so the same bytes are resent.
    pub fn pack(
        &self,
        key: &SigningKey,
        terminal: &str,
        now: Timestamp,
    ) -> Result<u64, StoreError> {
        let mut packed = 0;
        loop {
            let mut writer = self.writer();
            let tx = writer.conn.transaction().ctx("packing")?;
            let packed_through = meta_u64(&tx, "packed_through")?.unwrap_or(0);
            let records = {
                let mut stmt = tx
                    .prepare_cached(
                        "SELECT record FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                    )
                    .ctx("packing")?;
                let rows = stmt
                    .query_map(
                        params![to_i64(packed_through), PACKET_RECORDS_MAX as i64],
                        |row| bytes_of(row, 0),
                    )
                    .ctx("packing")?;
                let mut records = Vec::new();
                for row in rows {
                    let bytes = row.ctx("packing")?;
                    records.push(SignedRecord::from_json(&bytes).map_err(|err| {
                        StoreError::Corrupt(format!(
                            "journal record after seq {packed_through}: {err}"
                        ))
                    })?);
                }
                records
            };
            let Some(last) = records.last() else {
                return Ok(packed);
            };
            let last_seq = last.body.seq;
            let n_records = records.len() as u64;
            let packet = Packet::build(terminal, records, now, key)
                .map_err(|err| StoreError::Corrupt(format!("building packet: {err}")))?;
            tx.execute(
                "INSERT INTO outbox (first_seq, last_seq, packet_id, bytes) VALUES (?1, ?2, ?3, ?4)",
                params![
                    to_i64(packet.body.first_seq),
                    to_i64(last_seq),
                    packet.id().to_hex(),
                    packet.to_json()
                ],
            )
            .ctx("storing packet")?;
            meta_set(&tx, "packed_through", &last_seq.to_string())?;
            tx.commit().ctx("packing")?;
            packed += n_records;
        }
    }

    /// Packets waiting for acknowledgement, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<OutboxPacket>, StoreError> {
        let conn = self.reader();
        let mut stmt = conn
            .prepare_cached(
                "SELECT first_seq, last_seq, packet_id, bytes FROM outbox ORDER BY first_seq LIMIT ?1",
            )
            .ctx("reading outbox")?;
        let rows = stmt
            .query_map([limit as i64], |row| {
                Ok(OutboxPacket {
                    first_seq: from_i64(row.get(0)?),
                    last_seq: from_i64(row.get(1)?),
                    packet_id: row.get(2)?,
                    bytes: row.get(3)?,
                })
            })
            .ctx("reading outbox")?;
        rows.collect::<Result<_, _>>().ctx("reading outbox")
    }

    /// Central holds every record `1..=acked_through`: drop the packets it
    /// covers. When central holds less than packets already dropped (its
    /// database was restored from a backup), repack from its position so
    /// that nothing is lost.
    pub fn ack(&self, acked_through: u64) -> Result<(), StoreError> {
        let mut writer = self.writer();
        let head_seq = writer.head.map(|head| head.seq).unwrap_or(0);
        let acked_through = acked_through.min(head_seq);
        let tx = writer.conn.transaction().ctx("acknowledging")?;
        let known = meta_u64(&tx, "acked_through")?.unwrap_or(0);
        let oldest_pending: Option<i64> = tx
            .query_row("SELECT min(first_seq) FROM outbox", [], |row| row.get(0))
            .ctx("acknowledging")?;
        let packed_through = meta_u64(&tx, "packed_through")?.unwrap_or(0);
        let first_unsent = oldest_pending.map(from_i64).unwrap_or(packed_through + 1);
        if acked_through + 1 < first_unsent {
            tracing::warn!(
                acked_through,
                first_unsent,
                "central lacks records this terminal already dropped from its outbox: repacking from its position"
            );
            tx.execute("DELETE FROM outbox", []).ctx("repacking")?;
            meta_set(&tx, "packed_through", &acked_through.to_string())?;
        } else {
            tx.execute(
                "DELETE FROM outbox WHERE last_seq <= ?1",
                [to_i64(acked_through)],
            )
            .ctx("acknowledging")?;
        }
        if acked_through != known {
            meta_set(&tx, "acked_through", &acked_through.to_string())?;
        }
        tx.commit().ctx("acknowledging")
    }

    /// Checks the whole journal: every stored hash, signature, seq and link.
    pub fn verify_journal(
        &self,
        key: &PublicKey,
        terminal: &str,
    ) -> Result<JournalCheck, StoreError> {
        let conn = self.reader();
        verify_journal_on(&conn, key, terminal)
    }
}

/// Counts and sync notes, on any connection (the CLI opens the file
/// read-only while the daemon may be running).
pub fn status_on(conn: &Connection) -> Result<StoreStatus, StoreError> {
    Ok(StoreStatus {
        head: load_head(conn)?,
        acked_through: meta_u64(conn, "acked_through")?.unwrap_or(0),
        outbox_packets: count(conn, "SELECT count(*) FROM outbox")?,
        credentials: meta_u64(conn, "snapshot_credentials")?.unwrap_or(0),
        last_sync_ok: meta_get(conn, "last_sync_ok")?,
        last_sync_attempt: meta_get(conn, "last_sync_attempt")?,
        last_sync_error: meta_get(conn, "last_sync_error")?,
    })
}

/// The snapshot version and build time recorded in `meta`.
pub fn snapshot_meta(conn: &Connection) -> Result<(Option<u64>, Option<Timestamp>), StoreError> {
    Ok((
        meta_u64(conn, "snapshot_version")?,
        meta_get(conn, "snapshot_built_at")?.and_then(|text| text.parse().ok()),
    ))
}

/// What `verify-journal` found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalCheck {
    pub records: u64,
    pub head: Option<Head>,
    pub issues: Vec<String>,
}

/// Verifies the journal on any connection (the CLI opens the file read-only).
pub fn verify_journal_on(
    conn: &Connection,
    key: &PublicKey,
    terminal: &str,
) -> Result<JournalCheck, StoreError> {
    const CHUNK: i64 = 1_000;
    let mut check = JournalCheck::default();
    let mut after: i64 = 0;
    let mut prev: Option<Hash> = Some(Hash::GENESIS);
    let mut stmt = conn
        .prepare("SELECT seq, hash, record FROM journal WHERE seq > ?1 ORDER BY seq LIMIT ?2")
        .ctx("reading journal")?;
    loop {
        let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = stmt
            .query_map(params![after, CHUNK], |row| {
                Ok((row.get(0)?, bytes_of(row, 1)?, bytes_of(row, 2)?))
            })
            .ctx("reading journal")?
            .collect::<Result<_, _>>()
            .ctx("reading journal")?;
        if rows.is_empty() {
            break;
        }
        let mut records = Vec::with_capacity(rows.len());
        for (seq, stored_hash, bytes) in &rows {
            match SignedRecord::from_json(bytes) {
                Ok(record) => {
                    if record.hash().0.as_slice() != stored_hash.as_slice() {
                        check.issues.push(format!(
                            "record seq {seq}: stored hash differs from the record's hash"
                        ));
                    }
                    if record.body.seq != from_i64(*seq) {
                        check.issues.push(format!(
                            "row {seq}: holds a record with seq {}",
                            record.body.seq
                        ));
                    }
                    records.push(record);
                }
                Err(err) => check
                    .issues
                    .push(format!("record seq {seq}: does not decode: {err}")),
            }
        }
        if let Some(first) = records.first() {
            if first.body.seq != from_i64(after) + 1 {
                check.issues.push(
                    ChainIssue::Gap {
                        from: from_i64(after) + 1,
                        to: first.body.seq - 1,
                    }
                    .to_string(),
                );
                prev = None;
            }
        }
        check.issues.extend(
            chain::verify_run(key, terminal, prev, &records)
                .iter()
                .map(ToString::to_string),
        );
        if let Some(last) = records.last() {
            prev = Some(last.hash());
            check.head = Some(Head {
                seq: last.body.seq,
                hash: last.hash(),
            });
        }
        check.records += rows.len() as u64;
        after = rows.last().map(|row| row.0).unwrap_or(after);
    }
    Ok(check)
}

impl Writer {
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    pub fn head(&self) -> Option<Head> {
        self.head
    }

    /// Appends a record with its usage and bookkeeping in one transaction,
    /// committed (fsync'd) before this returns.
    pub fn append(&mut self, new: &NewRecord<'_>) -> Result<(), StoreError> {
        let body = &new.record.body;
        let (expected_seq, expected_prev) = match self.head {
            Some(head) => (head.seq + 1, head.hash),
            None => (1, Hash::GENESIS),
        };
        // Pair assertion with chain verification on read: a record that
        // does not extend the head never reaches the disk.
        if body.seq != expected_seq || body.prev != expected_prev {
            return Err(StoreError::Corrupt(format!(
                "record seq {} does not extend the journal head (expected seq {expected_seq})",
                body.seq
            )));
        }
        let at_ms = body.at.as_millisecond();
        let tx = self.conn.transaction().ctx("beginning commit")?;
        // Usage travels in the journal row itself: one row and two index
        // entries per commit keep the fsync'd WAL write small.
        let usage: Vec<(&str, i64, u32)> = new
            .usage
            .iter()
            .map(|(benefit, (amount, units))| (benefit.as_str(), amount.cents(), *units))
            .collect();
        let usage = serde_json::to_string(&usage)
            .map_err(|err| StoreError::Corrupt(format!("encoding usage: {err}")))?;
        tx.prepare_cached(
            "INSERT INTO journal (seq, hash, at_ms, kind, voids, idempotency_key, credential_hash,
                                  fingerprint, recipient, usage, record, answer)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .ctx("writing journal")?
        .execute(params![
            to_i64(body.seq),
            new.record.hash().0.as_slice(),
            at_ms,
            match body.kind {
                RecordKind::Sale => "sale",
                RecordKind::Void => "void",
            },
            body.voids.map(to_i64),
            body.idempotency_key,
            new.credential_hash,
            new.fingerprint.0.as_slice(),
            body.recipient,
            usage,
            new.record.to_json(),
            new.answer,
        ])
        .ctx("writing journal")?;
        tx.commit().ctx("committing")?;
        self.head = Some(Head {
            seq: body.seq,
            hash: new.record.hash(),
        });
        Ok(())
    }
}

// --- reads usable on the writer or a reader connection ---

/// The recipient a credential hash belongs to, and whether it is blocked.
pub fn credential(conn: &Connection, hash: &Hash) -> Result<Option<(String, bool)>, StoreError> {
    conn.prepare_cached("SELECT recipient, blocked FROM credential WHERE hash = ?1")
        .ctx("looking up credential")?
        .query_row([hash.0.as_slice()], |row| {
            Ok((row.get(0)?, row.get::<_, i64>(1)? != 0))
        })
        .optional()
        .ctx("looking up credential")
}

/// The recipient's entitlements and central's usage, from the snapshot.
pub fn recipient(conn: &Connection, id: &str) -> Result<Option<RecipientData>, StoreError> {
    let row: Option<(String, String)> = conn
        .prepare_cached("SELECT entitlements, usage FROM recipient WHERE id = ?1")
        .ctx("looking up recipient")?
        .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()
        .ctx("looking up recipient")?;
    let Some((entitlements, usage)) = row else {
        return Ok(None);
    };
    let entitlements: Vec<Grant> = serde_json::from_str(&entitlements)
        .map_err(|err| StoreError::Corrupt(format!("recipient {id:?} entitlements: {err}")))?;
    let usage: Vec<UsageDay> = serde_json::from_str(&usage)
        .map_err(|err| StoreError::Corrupt(format!("recipient {id:?} usage: {err}")))?;
    Ok(Some(RecipientData {
        entitlements,
        usage,
    }))
}

/// This terminal's own usage by a recipient: the usage of every sale in
/// its journal that no void cancels.
pub fn local_usage(
    conn: &Connection,
    recipient: &str,
    now: Timestamp,
) -> Result<Vec<LocalUse>, StoreError> {
    let since = now.as_millisecond().saturating_sub(USAGE_LOOKBACK_MS);
    let mut stmt = conn
        .prepare_cached(
            "SELECT seq, at_ms, usage FROM journal
             WHERE recipient = ?1 AND at_ms >= ?2 AND kind = 'sale'
               AND NOT EXISTS (SELECT 1 FROM journal AS v WHERE v.voids = journal.seq)",
        )
        .ctx("reading usage")?;
    let rows = stmt
        .query_map(params![recipient, since], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .ctx("reading usage")?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, at_ms, usage) = row.ctx("reading usage")?;
        let corrupt = |what: String| StoreError::Corrupt(format!("journal seq {seq}: {what}"));
        let at = Timestamp::from_millisecond(at_ms)
            .map_err(|_| corrupt(format!("instant {at_ms} out of range")))?;
        let usage: Vec<(String, i64, u32)> =
            serde_json::from_str(&usage).map_err(|err| corrupt(format!("usage: {err}")))?;
        out.extend(usage.into_iter().map(|(benefit, cents, count)| LocalUse {
            at,
            benefit,
            amount: Money::from_cents(cents),
            count,
        }));
    }
    Ok(out)
}

/// The record committed under an idempotency key.
pub fn by_idempotency_key(conn: &Connection, key: &str) -> Result<Option<JournalHit>, StoreError> {
    conn.prepare_cached(
        "SELECT seq, fingerprint, answer, record FROM journal WHERE idempotency_key = ?1",
    )
    .ctx("looking up idempotency key")?
    .query_row([key], journal_hit)
    .optional()
    .ctx("looking up idempotency key")
}

/// The latest unvoided sale to `recipient` with the same credential and
/// cart (`fingerprint` covers both) since `since`.
pub fn recent_same_sale(
    conn: &Connection,
    recipient: &str,
    fingerprint: &Hash,
    since: Timestamp,
) -> Result<Option<JournalHit>, StoreError> {
    conn.prepare_cached(
        "SELECT seq, fingerprint, answer, record FROM journal
         WHERE recipient = ?1 AND at_ms >= ?2 AND kind = 'sale' AND fingerprint = ?3
           AND NOT EXISTS (SELECT 1 FROM journal AS v WHERE v.voids = journal.seq)
         ORDER BY seq DESC LIMIT 1",
    )
    .ctx("looking for a double tap")?
    .query_row(
        params![recipient, since.as_millisecond(), fingerprint.0.as_slice()],
        journal_hit,
    )
    .optional()
    .ctx("looking for a double tap")
}

/// `true` when any sale to `recipient` was committed with this credential hash.
pub fn credential_used(
    conn: &Connection,
    recipient: &str,
    credential_hash: &str,
) -> Result<bool, StoreError> {
    conn.prepare_cached(
        "SELECT 1 FROM journal WHERE recipient = ?1 AND credential_hash = ?2 AND kind = 'sale' LIMIT 1",
    )
    .ctx("looking up token use")?
    .query_row([recipient, credential_hash], |_| Ok(()))
    .optional()
    .map(|found| found.is_some())
    .ctx("looking up token use")
}

/// A committed record by seq, and whether a void already cancels it.
pub fn record_by_seq(
    conn: &Connection,
    seq: u64,
) -> Result<Option<(SignedRecord, bool)>, StoreError> {
    let row: Option<(Vec<u8>, bool)> = conn
        .prepare_cached(
            "SELECT record, EXISTS (SELECT 1 FROM journal AS v WHERE v.voids = journal.seq)
             FROM journal WHERE seq = ?1",
        )
        .ctx("reading record")?
        .query_row([to_i64(seq)], |row| Ok((bytes_of(row, 0)?, row.get(1)?)))
        .optional()
        .ctx("reading record")?;
    match row {
        None => Ok(None),
        Some((bytes, voided)) => SignedRecord::from_json(&bytes)
            .map(|record| Some((record, voided)))
            .map_err(|err| StoreError::Corrupt(format!("journal record seq {seq}: {err}"))),
    }
}

/// A commit answer: `head` is a JSON object without `record`; the signed
/// record's JSON becomes its last member.
pub fn answer_with_record(head: &[u8], record: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len() + record.len() + 12);
    match head.split_last() {
        Some((b'}', body)) => {
            out.extend_from_slice(body);
            if body.len() > 1 {
                out.push(b',');
            }
        }
        // Not an object: stored by a broken build. Keep the record anyway.
        _ => out.push(b'{'),
    }
    out.extend_from_slice(b"\"record\":");
    out.extend_from_slice(record);
    out.push(b'}');
    out
}

/// A BLOB column's bytes, also when a damaged row holds TEXT there, so
/// that verification reports the damage instead of failing to read it.
fn bytes_of(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Vec<u8>> {
    let value = row.get_ref(idx)?;
    value
        .as_bytes()
        .map(<[u8]>::to_vec)
        .map_err(|_| rusqlite::Error::InvalidColumnType(idx, "bytes".into(), value.data_type()))
}

fn journal_hit(row: &rusqlite::Row<'_>) -> rusqlite::Result<JournalHit> {
    Ok(JournalHit {
        seq: from_i64(row.get(0)?),
        fingerprint: row.get(1)?,
        answer: answer_with_record(&bytes_of(row, 2)?, &bytes_of(row, 3)?),
    })
}

// --- internals ---

fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
        .ctx("enabling WAL")?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "the file system refused WAL mode (journal_mode is {mode})"
        )));
    }
    // Checkpoints normally run in the background in pauses between sales
    // (`Store::checkpoint_if_due`), so a commit only appends to the WAL
    // and fsyncs it.
    // The automatic checkpoint stays as a backstop at 10,000 pages (40 MB)
    // should the background one fall behind.
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA busy_timeout = 10000;
         PRAGMA wal_autocheckpoint = 10000;
         PRAGMA foreign_keys = OFF;",
    )
    .ctx("configuring")?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .ctx("opening reader")?;
    // Read-write at the file level so that this connection can run WAL
    // checkpoints, but refusing every write statement.
    conn.execute_batch("PRAGMA query_only = ON; PRAGMA busy_timeout = 10000;")
        .ctx("configuring reader")?;
    Ok(conn)
}

/// Opens an existing database read-only (CLI `status` and `verify-journal`).
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    if !path.exists() {
        return Err(StoreError::Corrupt(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ctx("opening read-only")?;
    conn.execute_batch("PRAGMA busy_timeout = 10000;")
        .ctx("configuring")?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .ctx("reading schema version")?;
    if version > MIGRATIONS.len() as i64 {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported: MIGRATIONS.len() as i64,
        });
    }
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .ctx("reading schema version")?;
    let supported = MIGRATIONS.len() as i64;
    if version > supported {
        return Err(StoreError::SchemaTooNew {
            found: version,
            supported,
        });
    }
    for (idx, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .skip(usize::try_from(version).unwrap_or(0))
    {
        let tx = conn.transaction().ctx("migrating")?;
        tx.execute_batch(sql).ctx("migrating")?;
        tx.execute_batch(&format!("PRAGMA user_version = {}", idx + 1))
            .ctx("migrating")?;
        tx.commit().ctx("migrating")?;
        tracing::info!(version = idx + 1, "database schema migrated");
    }
    Ok(())
}

fn load_head(conn: &Connection) -> Result<Option<Head>, StoreError> {
    let row: Option<(i64, Vec<u8>)> = conn
        .query_row(
            "SELECT seq, hash FROM journal ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()
        .ctx("reading journal head")?;
    row.map(|(seq, hash)| {
        let hash: [u8; 32] = hash
            .try_into()
            .map_err(|_| StoreError::Corrupt(format!("journal seq {seq}: hash is not 32 bytes")))?;
        Ok(Head {
            seq: from_i64(seq),
            hash: Hash(hash),
        })
    })
    .transpose()
}

fn load_snapshot_state(conn: &Connection) -> Result<SnapshotState, StoreError> {
    let version = meta_u64(conn, "snapshot_version")?;
    let built_at = meta_get(conn, "snapshot_built_at")?.and_then(|text| text.parse().ok());
    let applied_at = meta_get(conn, "snapshot_applied_at")?.and_then(|text| text.parse().ok());
    let mut stmt = conn
        .prepare("SELECT id, hash, json FROM benefit")
        .ctx("reading benefits")?;
    let rows = stmt
        .query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .ctx("reading benefits")?;
    let mut entries = Vec::new();
    for row in rows {
        let (id, hash, json) = row.ctx("reading benefits")?;
        let benefit: Benefit = serde_json::from_str(&json)
            .map_err(|err| StoreError::Corrupt(format!("benefit {id:?}: {err}")))?;
        let hash = Hash::from_hex(&hash)
            .map_err(|err| StoreError::Corrupt(format!("benefit {id:?} hash: {err}")))?;
        entries.push((benefit, hash));
    }
    Ok(SnapshotState {
        version,
        built_at,
        applied_at,
        catalog: Catalog::new(entries),
    })
}

fn check_header(header: &SnapshotHeader, ctx: &ApplyContext) -> Result<(), SnapshotError> {
    check_addressed_to(header, &ctx.terminal, &ctx.merchant)?;
    if header.credential_key_id != ctx.credential_key_id {
        return Err(SnapshotError::Refused(format!(
            "credential hashes use key {:?}, this terminal has key {:?}; enrol again to get the new key",
            header.credential_key_id, ctx.credential_key_id
        )));
    }
    Ok(())
}

fn record_applied(
    tx: &Transaction<'_>,
    header: &SnapshotHeader,
    now: Timestamp,
) -> Result<SnapshotState, StoreError> {
    meta_set(tx, "snapshot_version", &header.version.to_string())?;
    meta_set(tx, "snapshot_built_at", &header.built_at.to_string())?;
    meta_set(tx, "snapshot_applied_at", &now.to_string())?;
    // Counted once here rather than on every status or metrics scrape.
    let credentials = count(tx, "SELECT count(*) FROM credential")?;
    meta_set(tx, "snapshot_credentials", &credentials.to_string())?;
    load_snapshot_state(tx)
}

fn drop_staging(conn: &Connection) {
    for (name, _) in SNAPSHOT_TABLES {
        if let Err(err) = conn.execute_batch(&format!("DROP TABLE IF EXISTS {name}_next")) {
            tracing::warn!(table = name, error = %err, "could not drop a snapshot staging table");
        }
    }
}

fn refused(line: u64, message: String) -> SnapshotError {
    SnapshotError::Refused(format!("line {line}: {message}"))
}

/// Writes one snapshot item into the tables named with `suffix`
/// (`""` for the live tables, `"_next"` while staging a full snapshot).
fn apply_item(
    tx: &Transaction<'_>,
    suffix: &str,
    line: u64,
    item: SnapshotItem,
) -> Result<(), SnapshotError> {
    match item {
        SnapshotItem::Benefit { benefit } => {
            if let Err(problems) = shared::validate::benefit("benefit", &benefit) {
                return Err(refused(line, problems.to_string()));
            }
            if !benefit.groups.is_empty() {
                // Terminals must not learn which groups entitle: that is the
                // social status the design keeps off the till.
                return Err(refused(
                    line,
                    format!(
                        "benefit {:?} carries groups; terminals must never receive them",
                        benefit.id
                    ),
                ));
            }
            let hash = benefit_hash(&benefit).map_err(|err| refused(line, err.to_string()))?;
            let json =
                serde_json::to_string(&benefit).map_err(|err| refused(line, err.to_string()))?;
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO benefit{suffix} (id, hash, json) VALUES (?1, ?2, ?3)"
            ))
            .ctx("writing benefit")?
            .execute(params![benefit.id, hash.to_hex(), json])
            .ctx("writing benefit")?;
        }
        SnapshotItem::BenefitRemoved { id } => {
            tx.prepare_cached(&format!("DELETE FROM benefit{suffix} WHERE id = ?1"))
                .ctx("removing benefit")?
                .execute([id])
                .ctx("removing benefit")?;
        }
        SnapshotItem::Credential {
            hash,
            recipient,
            status,
        } => {
            let hash = Hash::from_hex(&hash)
                .map_err(|err| refused(line, format!("credential hash: {err}")))?;
            if !shared::validate::is_valid_id(&recipient) {
                return Err(refused(
                    line,
                    format!("recipient {recipient:?} is not a valid reference"),
                ));
            }
            let blocked = matches!(status, CredentialStatus::Blocked);
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO credential{suffix} (hash, recipient, blocked) VALUES (?1, ?2, ?3)"
            ))
            .ctx("writing credential")?
            .execute(params![hash.0.as_slice(), recipient, blocked])
            .ctx("writing credential")?;
        }
        SnapshotItem::CredentialRemoved { hash } => {
            let hash = Hash::from_hex(&hash)
                .map_err(|err| refused(line, format!("credential hash: {err}")))?;
            tx.prepare_cached(&format!("DELETE FROM credential{suffix} WHERE hash = ?1"))
                .ctx("removing credential")?
                .execute([hash.0.as_slice()])
                .ctx("removing credential")?;
        }
        SnapshotItem::Recipient {
            recipient,
            entitlements,
            usage,
        } => {
            if !shared::validate::is_valid_id(&recipient) {
                return Err(refused(
                    line,
                    format!("recipient {recipient:?} is not a valid reference"),
                ));
            }
            for (idx, grant) in entitlements.iter().enumerate() {
                if !shared::validate::is_valid_id(&grant.benefit) {
                    return Err(refused(
                        line,
                        format!("entitlements[{idx}].benefit is not a valid id"),
                    ));
                }
                if let (Some(from), Some(to)) = (grant.valid_from, grant.valid_to) {
                    if from > to {
                        return Err(refused(
                            line,
                            format!("entitlements[{idx}].valid_from {from} is after valid_to {to}"),
                        ));
                    }
                }
            }
            for (idx, day) in usage.iter().enumerate() {
                if day.amount.is_negative() {
                    return Err(refused(
                        line,
                        format!("usage[{idx}].amount {} is negative", day.amount),
                    ));
                }
            }
            let entitlements = serde_json::to_string(&entitlements)
                .map_err(|err| refused(line, err.to_string()))?;
            let usage =
                serde_json::to_string(&usage).map_err(|err| refused(line, err.to_string()))?;
            tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO recipient{suffix} (id, entitlements, usage) VALUES (?1, ?2, ?3)"
            ))
            .ctx("writing recipient")?
            .execute(params![recipient, entitlements, usage])
            .ctx("writing recipient")?;
        }
        SnapshotItem::RecipientRemoved { recipient } => {
            tx.prepare_cached(&format!("DELETE FROM recipient{suffix} WHERE id = ?1"))
                .ctx("removing recipient")?
                .execute([recipient])
                .ctx("removing recipient")?;
        }
    }
    Ok(())
}

pub fn meta_get(conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
        .ctx("reading meta")?
        .query_row([key], |row| row.get(0))
        .optional()
        .ctx("reading meta")
}

pub fn meta_u64(conn: &Connection, key: &str) -> Result<Option<u64>, StoreError> {
    meta_get(conn, key)?
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| StoreError::Corrupt(format!("meta {key} = {text:?} is not a number")))
        })
        .transpose()
}

fn meta_set(conn: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")
        .ctx("writing meta")?
        .execute([key, value])
        .ctx("writing meta")?;
    Ok(())
}

fn count(conn: &Connection, sql: &str) -> Result<u64, StoreError> {
    conn.query_row(sql, [], |row| row.get::<_, i64>(0))
        .map(from_i64)
        .ctx("counting")
}

/// SQLite integers are i64; seqs and counts never reach 2^63.
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_i64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests;
