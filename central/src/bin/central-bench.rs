//! `central-bench`: central's throughput figures, each beside the ceiling
//! measured in the same run on the same machine.
//!
//! - Ingestion: verified records per second through the real pipeline
//!   (packet decode, packet and record signatures, quote re-run, chain and
//!   store), from packet bytes to committed rows. Ceiling: the lower of
//!   (a) a raw insert of the same rows into the same database, in the same
//!   batches, and (b) raw `ring` Ed25519 verification of the same records
//!   on all cores.
//! - Import: rows per second of a CSV of credentials and memberships
//!   (parse, check, hash, apply in one transaction).
//! - Snapshots: a full snapshot for a terminal with every credential in
//!   scope, and a delta of 1,000 changes.
//!
//! Runs on SQLite in a temporary directory, and on PostgreSQL too when
//! `CENTRAL_TEST_PG_URL` is set (in a fresh schema).
//!
//! `cargo run --release -p central --bin central-bench -- --help`

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use clap::Parser;
use rayon::prelude::*;
use shared::model::{Benefit, CartLine, Grant, HistoryEntry};
use shared::rules::{evaluate, QuoteInput};
use shared::wire::credential::credential_hash;
use shared::wire::keys::{Hash, SigningKey};
use shared::wire::packet::Packet;
use shared::wire::record::{
    benefit_hash, local_time_of, BenefitRef, CredentialKind, CredentialRef, QuoteInputs,
    RecordBody, RecordKind, RecordType, SignedRecord, RECORD_VERSION,
};

use central::http::staff::{import_context, new_terminal, publish_benefit};
use central::import::{self, Format, Kind};
use central::ingest::{check_packet, Knowledge};
use central::keys::secret_hash;
use central::snapshot::{self, ChunkSink, SnapshotError};
use central::store::{Group, IncomingRecord, Party, Store, Terminal};
use central::{AppState, Clock, Config};

#[derive(Parser)]
#[command(about = "Central's ingestion, import and snapshot benchmarks")]
struct Args {
    /// Records ingested per backend.
    #[arg(long, default_value_t = 100_000)]
    records: u32,
    /// Terminals the records are spread over.
    #[arg(long, default_value_t = 8)]
    terminals: usize,
    /// Records per packet.
    #[arg(long, default_value_t = 1_000)]
    packet: usize,
    /// Credentials imported for the snapshot benchmark (0 skips import and snapshots).
    #[arg(long, default_value_t = 2_000_000)]
    credentials: u32,
    /// Only SQLite, even when CENTRAL_TEST_PG_URL is set.
    #[arg(long, conflicts_with = "postgres_only")]
    sqlite_only: bool,
    /// Only PostgreSQL (needs CENTRAL_TEST_PG_URL).
    #[arg(long)]
    postgres_only: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    println!(
        "machine: {} cores; {} records in packets of {} over {} terminals; {} credentials",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        args.records,
        args.packet,
        args.terminals,
        args.credentials
    );
    let dir = tempfile::tempdir()?;
    if !args.postgres_only {
        let sqlite_path = dir.path().join("sqlite");
        std::fs::create_dir_all(&sqlite_path)?;
        let store: Arc<dyn Store> = Arc::new(
            central::store::sqlite::SqliteStore::open(&sqlite_path.join("central.sqlite")).await?,
        );
        let raw = RawTarget::Sqlite(sqlite_path.join("central.sqlite"));
        bench_backend("sqlite", store, &sqlite_path, raw, &args).await?;
    }

    if let (false, Ok(url)) = (args.sqlite_only, std::env::var("CENTRAL_TEST_PG_URL")) {
        let schema = format!("bench_{}", std::process::id());
        let store: Arc<dyn Store> =
            Arc::new(central::store::postgres::PostgresStore::connect(&url, Some(&schema)).await?);
        let pg_path = dir.path().join("postgres");
        std::fs::create_dir_all(&pg_path)?;
        let raw = RawTarget::Postgres { url, schema };
        bench_backend("postgres", store, &pg_path, raw, &args).await?;
    } else {
        println!("postgres: skipped (set CENTRAL_TEST_PG_URL)");
    }
    Ok(())
}

enum RawTarget {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

fn lunch_benefit() -> anyhow::Result<Benefit> {
    Ok(serde_json::from_value(serde_json::json!({
        "id": "bench-lunch", "provider": "riga", "groups": ["bench-pupil"],
        "categories": ["meal.lunch"], "discount": {"percent": "50"}, "max_per_transaction": "5.00",
        "limits": [{"period": "day", "max_count": 1}, {"period": "month", "max_amount": "40.00"}]
    }))?)
}

fn recipient_id(n: u32) -> String {
    format!("B{n:08}")
}

fn card_uid(n: u32) -> String {
    format!(
        "04{:012X}",
        u64::from(n).wrapping_mul(0x9E37_79B9) & 0xFFFF_FFFF_FFFF
    )
}

async fn bench_backend(
    name: &str,
    store: Arc<dyn Store>,
    data_dir: &std::path::Path,
    raw: RawTarget,
    args: &Args,
) -> anyhow::Result<()> {
    let now: jiff::Timestamp = "2026-03-20T10:00:00Z".parse()?;
    let state = AppState::with_store(&Config::new(data_dir.to_owned()), store, Clock::fixed(now))?;
    let store = Arc::clone(&state.store);
    store
        .upsert_provider(&Party {
            id: "riga".into(),
            name: "Riga".into(),
        })
        .await?;
    store
        .upsert_merchant(&Party {
            id: "canteen".into(),
            name: "Canteen".into(),
        })
        .await?;
    store
        .upsert_group(&Group {
            id: "bench-pupil".into(),
            provider: "riga".into(),
            label: "Pupils".into(),
        })
        .await?;
    let benefit = publish_benefit(&state, "riga", lunch_benefit()?)
        .await
        .map_err(|err| anyhow::anyhow!("{}", err.message()))?
        .benefit;

    // --- import: memberships then credentials, from CSV text -------------
    let recipients = (args.credentials / 4 * 3).max(args.records.min(20_000));
    let credentials = args.credentials.max(recipients);
    let context = import_context(&state, "riga")
        .await
        .map_err(|err| anyhow::anyhow!("{}", err.message()))?;
    let mut memberships_csv = String::from("recipient,group,valid_from,valid_to\n");
    for n in 0..recipients {
        memberships_csv.push_str(&format!("{},bench-pupil,2025-09-01,\n", recipient_id(n)));
    }
    let mut credentials_csv = String::from("recipient,kind,id\n");
    for n in 0..credentials {
        credentials_csv.push_str(&format!(
            "{},card,{}\n",
            recipient_id(n % recipients),
            card_uid(n)
        ));
    }
    let started = Instant::now();
    let rows = import::parse(
        Kind::Memberships,
        Format::Csv,
        memberships_csv.as_bytes(),
        &context,
        None,
    )
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    store.import("riga", rows, None).await?;
    let rows = import::parse(
        Kind::Credentials,
        Format::Csv,
        credentials_csv.as_bytes(),
        &context,
        None,
    )
    .map_err(|err| anyhow::anyhow!("{err}"))?;
    store.import("riga", rows, None).await?;
    let elapsed = started.elapsed().as_secs_f64();
    let total_rows = f64::from(recipients) + f64::from(credentials);
    println!(
        "{name}: import {} rows ({recipients} memberships + {credentials} credentials, CSV parse+check+apply): {:.1} s, {:.0} rows/s",
        recipients + credentials,
        elapsed,
        total_rows / elapsed
    );
    drop((memberships_csv, credentials_csv));

    // --- terminals and records, signed before any timing ------------------
    let mut terminals = Vec::new();
    for idx in 0..args.terminals {
        let code = new_terminal(
            &state,
            "canteen",
            &format!("bench till {idx}"),
            vec!["meal".into()],
        )
        .await
        .map_err(|err| anyhow::anyhow!("{}", err.message()))?;
        let mut seed = [0u8; 32];
        seed.copy_from_slice(&Hash::of(format!("bench-{name}-{idx}").as_bytes()).0);
        let key = SigningKey::from_seed(&seed)?;
        let terminal = store
            .enrol(
                &secret_hash(&code.code),
                &key.public_key().to_base64(),
                None,
                now,
            )
            .await?
            .map_err(|refusal| anyhow::anyhow!("enrolment refused: {refusal:?}"))?;
        terminals.push((terminal, key));
    }
    let visible = central::snapshot::terminal_form(&benefit);
    let hash = benefit_hash(&visible)?;
    let version = store.version().await?;
    let zone = visible.time_zone.tz().clone();
    let started = Instant::now();
    let per_terminal = args.records as usize / args.terminals.max(1);
    let packets: Vec<(Terminal, Vec<Vec<u8>>)> = terminals
        .par_iter()
        .enumerate()
        .map(|(idx, (terminal, key))| {
            sign_records(
                terminal,
                key,
                idx,
                per_terminal,
                args.packet,
                &visible,
                hash,
                version,
                &zone,
                now,
                recipients,
                &state,
            )
            .map(|packets| (terminal.clone(), packets))
        })
        .collect::<anyhow::Result<_>>()?;
    let n_records: usize = per_terminal * terminals.len();
    println!(
        "{name}: signed {n_records} records for the run in {:.1} s (not measured)",
        started.elapsed().as_secs_f64()
    );

    // --- ceiling (b): ring verification on all cores ------------------------
    let started = Instant::now();
    let decoded: Vec<Packet> = packets
        .iter()
        .flat_map(|(_, list)| list.iter())
        .map(|bytes| Packet::from_json(bytes))
        .collect::<Result<_, _>>()?;
    let decode_rate = n_records as f64 / started.elapsed().as_secs_f64();
    let keys: HashMap<&str, shared::wire::keys::PublicKey> = terminals
        .iter()
        .map(|(t, k)| (t.id.as_str(), k.public_key()))
        .collect();
    // Also the CPU time it takes, per record: unlike rates, CPU time
    // hardly depends on what else the shared machine runs at the moment.
    // `ring` one signature at a time is the ceiling's definition; `batched`
    // is the verifier ingestion uses, measured the same way for comparison.
    let verify_all = |batched: bool| {
        let cpu_before = process_cpu_secs();
        let started = Instant::now();
        let verified: usize = decoded
            .par_iter()
            .map(|packet| {
                let key = keys[packet.body.terminal.as_str()];
                if batched {
                    central::ingest::verify_records(packet, &key)
                        .iter()
                        .filter(|ok| **ok)
                        .count()
                } else {
                    packet
                        .body
                        .records
                        .iter()
                        .filter(|r| ring_verify(&key, r))
                        .count()
                }
            })
            .sum();
        let rate = verified as f64 / started.elapsed().as_secs_f64();
        let cpu_us = (process_cpu_secs() - cpu_before) * 1e6 / verified.max(1) as f64;
        (verified, rate, cpu_us)
    };
    // Measured before and after ingestion, and the higher rate kept: the
    // machine is shared, and a ceiling measured in a busy moment would
    // flatter the ratio.
    let (verified, verify_rate_before, verify_cpu_before) = verify_all(false);
    anyhow::ensure!(
        verified == n_records,
        "only {verified} of {n_records} signatures verified"
    );
    let (verified, batch_rate_before, batch_cpu_before) = verify_all(true);
    anyhow::ensure!(
        verified == n_records,
        "only {verified} of {n_records} signatures verified in batches"
    );

    // --- ingestion through the real pipeline --------------------------------
    println!("{name}: ingesting {n_records} records");
    let machine_before = machine_cpu_ticks();
    let server_before = postgres_cpu_ticks();
    let cpu_before = process_cpu_secs();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (terminal, list) in packets {
        let state = state.clone();
        tasks.push(tokio::spawn(async move {
            let mut accepted = 0usize;
            for bytes in list {
                let answer = state.ingestor.ingest(&terminal, &bytes, now).await?;
                for record in &answer.records {
                    match record.outcome {
                        central::store::plan::Outcome::Accepted => accepted += 1,
                        outcome => anyhow::bail!(
                            "record {} of {}: {} {}",
                            record.seq,
                            terminal.id,
                            outcome.as_str(),
                            record.reason.map(|r| r.as_str()).unwrap_or("")
                        ),
                    }
                }
            }
            anyhow::Ok(accepted)
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        accepted += task.await??;
    }
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingest_cpu = process_cpu_secs() - cpu_before;
    let machine_cpu = machine_cpu_ticks().saturating_sub(machine_before) as f64 / TICKS_PER_SEC;
    let server_cpu = if name == "postgres" {
        Some(ticks_since(&server_before, &postgres_cpu_ticks()) as f64 / TICKS_PER_SEC)
    } else {
        None
    };
    let ingest_rate = n_records as f64 / ingest_secs;
    println!(
        "{name}: ingest used {ingest_cpu:.1} s of this process's CPU in {ingest_secs:.1} s \
         ({:.2} cores busy; {:.1} µs of CPU per record)",
        ingest_cpu / ingest_secs,
        ingest_cpu * 1e6 / n_records as f64
    );
    // The whole machine too: the database server (and anything else
    // running meanwhile) spends CPU per record that this process does not
    // see, and on a machine shared with the server that CPU is what caps
    // the rate.
    let per_record = |secs: f64| secs * 1e6 / n_records as f64;
    println!(
        "{name}: machine CPU during ingest: {machine_cpu:.1} s ({:.2} cores busy; {:.1} µs per record; \
         this process {:.1} µs per record)",
        machine_cpu / ingest_secs,
        per_record(machine_cpu),
        per_record(ingest_cpu)
    );
    if let Some(server_cpu) = server_cpu {
        println!(
            "{name}: postgres server processes' CPU during ingest: {server_cpu:.1} s \
             ({:.2} cores busy; {:.1} µs per record)",
            server_cpu / ingest_secs,
            per_record(server_cpu)
        );
    }
    anyhow::ensure!(
        accepted == n_records,
        "only {accepted} of {n_records} records accepted"
    );
    let (_, verify_rate_after, verify_cpu_after) = verify_all(false);
    let verify_rate = verify_rate_before.max(verify_rate_after);
    let verify_cpu = verify_cpu_before.min(verify_cpu_after);
    let (_, batch_rate_after, batch_cpu_after) = verify_all(true);
    let batch_rate = batch_rate_before.max(batch_rate_after);
    let batch_cpu = batch_cpu_before.min(batch_cpu_after);
    let ingest_cpu_us = ingest_cpu * 1e6 / n_records as f64;
    println!(
        "{name}: ring verify on all cores: {verify_rate_before:.0}/s before ingestion, \
         {verify_rate_after:.0}/s after; CPU per record: ring verify {verify_cpu:.1} µs, \
         ingestion {ingest_cpu_us:.1} µs in this process, batched verification included"
    );
    println!(
        "{name}: batched verify (what ingestion uses) on all cores: {batch_rate_before:.0}/s \
         before ingestion, {batch_rate_after:.0}/s after; CPU per record {batch_cpu:.1} µs"
    );

    // --- ceiling (a): raw insert of the same rows ---------------------------
    // The checks run against what central knows (as ingestion does), so
    // that every record takes the full path, quote re-run included.
    let credentials: Vec<String> = decoded
        .iter()
        .flat_map(|packet| packet.body.records.iter())
        .map(|record| record.body.credential.hash.clone())
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    let facts = store
        .record_facts(&credentials, std::slice::from_ref(&visible.id))
        .await?;
    let version_row = store
        .benefit_version(&hash.to_hex())
        .await?
        .context("the bench benefit's published version")?;
    let known = Knowledge {
        version: facts.version,
        benefits: HashMap::from([(hash.to_hex(), Arc::new(version_row))]),
        credentials: facts.credentials,
        entitlements: facts.entitlements,
        benefit_groups: facts.benefit_groups,
        sales: HashMap::new(),
    };
    let started = Instant::now();
    let rows: Vec<Vec<IncomingRecord>> = decoded
        .iter()
        .map(|packet| {
            check_packet(
                packet,
                &keys[packet.body.terminal.as_str()],
                "canteen",
                &known,
            )
        })
        .collect();
    let check_rate = n_records as f64 / started.elapsed().as_secs_f64();
    let passed = rows
        .iter()
        .flatten()
        .filter(|row| row.verdict.is_ok())
        .count();
    anyhow::ensure!(
        passed == n_records,
        "only {passed} of {n_records} records pass the checks outside the pipeline"
    );
    println!("{name}: parts: packet decode on one core {decode_rate:.0}/s; record checks on all cores {check_rate:.0}/s");
    let insert_rate = raw_insert(&raw, &rows).await?;
    let ceiling = insert_rate.min(verify_rate);
    println!(
        "{name}: ingest {n_records} records: {ingest_secs:.1} s, {ingest_rate:.0} records/s; \
         ceiling {ceiling:.0}/s = min(raw insert {insert_rate:.0}/s, ring verify on all cores {verify_rate:.0}/s); \
         {:.0} % of ceiling",
        100.0 * ingest_rate / ceiling
    );
    // The issue's ceiling assumes one-by-one verification; with the batched
    // verifier the same definition gives a higher ceiling, printed too so
    // that the ratio is not read as more than it is.
    let batch_ceiling = insert_rate.min(batch_rate);
    println!(
        "{name}: against min(raw insert {insert_rate:.0}/s, batched verify on all cores \
         {batch_rate:.0}/s) = {batch_ceiling:.0}/s: {:.0} %",
        100.0 * ingest_rate / batch_ceiling
    );

    // --- snapshots ------------------------------------------------------------
    if args.credentials > 0 {
        let (terminal, _) = &terminals[0];
        let terminal = store
            .terminal(&terminal.id)
            .await?
            .context("bench terminal")?;
        let started = Instant::now();
        let plan = snapshot::plan(store.as_ref(), None).await?;
        let mut sink = Counter::default();
        let items = snapshot::build(&store, &state.keys, &terminal, plan, now, &mut sink).await?;
        println!(
            "{name}: full snapshot: {items} items, {:.0} MB, {:.2} s",
            sink.bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
        let base = store.version().await?;
        for n in 0..1_000u32 {
            let hash = credential_hash(
                &state.keys.credential_key,
                CredentialKind::Card,
                &card_uid(n * 7),
            );
            store.block_credential(&hash).await?;
        }
        let started = Instant::now();
        let plan = snapshot::plan(store.as_ref(), Some(base)).await?;
        let mut sink = Counter::default();
        let items = snapshot::build(&store, &state.keys, &terminal, plan, now, &mut sink).await?;
        println!(
            "{name}: delta of 1000 blocked credentials: {items} items, {} kB, {:.0} ms ({plan:?})",
            sink.bytes / 1000,
            started.elapsed().as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// CPU time (user + system) this process has used so far, from
/// `/proc/self/stat` (0 where that file does not exist): tells whether
/// ingestion kept the cores busy or waited.
fn process_cpu_secs() -> f64 {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|stat| stat_cpu_ticks(&stat).map(|(_, ticks)| ticks))
        .unwrap_or(0);
    ticks as f64 / TICKS_PER_SEC
}

/// The command name and CPU clock ticks (user + system) of one
/// `/proc/<pid>/stat` line: utime and stime are the 14th and 15th fields,
/// counted after the parenthesised name (which may itself hold spaces).
fn stat_cpu_ticks(stat: &str) -> Option<(&str, u64)> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(').map_or("", |(_, comm)| comm);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |idx: usize| {
        fields
            .get(idx)
            .and_then(|text| text.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some((comm, field(11) + field(12)))
}

/// Linux's clock ticks per second in `/proc` (USER_HZ, 100 on every
/// architecture Linux supports today).
const TICKS_PER_SEC: f64 = 100.0;

/// Busy clock ticks of the whole machine so far (user, nice, system, irq,
/// softirq, over all CPUs; not idle or iowait), from the `cpu` line of
/// `/proc/stat`; 0 where that file does not exist.
fn machine_cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().find(|line| line.starts_with("cpu ")) else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|text| text.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq ...
    [0, 1, 2, 5, 6]
        .iter()
        .map(|&idx| fields.get(idx).copied().unwrap_or(0))
        .sum()
}

/// CPU clock ticks (user + system) used so far by each process whose
/// command name starts with "postgres" (the server and its backends, when
/// on this machine and readable), by pid.
fn postgres_cpu_ticks() -> HashMap<u32, u64> {
    let mut ticks = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        match stat_cpu_ticks(&stat) {
            Some((comm, used)) if comm.starts_with("postgres") => {
                ticks.insert(pid, used);
            }
            _ => {}
        }
    }
    ticks
}

/// Ticks used between two readings of [`postgres_cpu_ticks`]: a process
/// started in between counts from zero; one that ended in between is lost
/// (the pool keeps its connections, so ingestion's backends live on).
fn ticks_since(before: &HashMap<u32, u64>, after: &HashMap<u32, u64>) -> u64 {
    after
        .iter()
        .map(|(pid, now)| now.saturating_sub(before.get(pid).copied().unwrap_or(0)))
        .sum()
}

#[derive(Default)]
struct Counter {
    bytes: u64,
}

#[async_trait::async_trait]
impl ChunkSink for Counter {
    async fn send(&mut self, chunk: Vec<u8>) -> Result<(), SnapshotError> {
        self.bytes += chunk.len() as u64;
        Ok(())
    }
}

/// The records one terminal signs: lunches for recipients in turn, one a
/// day each, with the quote the engine gives and the terminal's own history.
#[allow(clippy::too_many_arguments)]
fn sign_records(
    terminal: &Terminal,
    key: &SigningKey,
    idx: usize,
    count: usize,
    per_packet: usize,
    benefit: &Benefit,
    hash: Hash,
    version: u64,
    zone: &jiff::tz::TimeZone,
    now: jiff::Timestamp,
    recipients: u32,
    state: &AppState,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let cart = vec![CartLine {
        sku: "LUNCH".into(),
        category: "meal.lunch".into(),
        unit_price: "3.10".parse()?,
        qty: 1,
    }];
    // What the recipients' snapshot line says: the membership imported
    // above, resolved into the benefit (central checks it was granted).
    let entitlements = vec![Grant {
        benefit: benefit.id.clone(),
        valid_from: Some(jiff::civil::date(2025, 9, 1)),
        valid_to: None,
    }];
    let mut journal: HashMap<String, Vec<HistoryEntry>> = HashMap::new();
    let mut prev = Hash::GENESIS;
    let mut records = Vec::with_capacity(count);
    let per_terminal_recipients = (recipients as usize / 8).max(1);
    for seq in 1..=count as u64 {
        let n = (idx * per_terminal_recipients + (seq as usize % per_terminal_recipients)) as u32
            % recipients;
        let recipient = recipient_id(n);
        // A lunch a day per recipient: later rounds go to later days.
        let round = (seq as i64 - 1) / per_terminal_recipients as i64;
        let at = now.checked_sub(jiff::SignedDuration::from_hours(24 * (20 - round.min(19))))?;
        let history = journal.get(&recipient).cloned().unwrap_or_default();
        let quote = evaluate(&QuoteInput {
            benefits: std::slice::from_ref(benefit),
            grants: &entitlements,
            memberships: &[],
            history: &history,
            cart: &cart,
            now: at,
        });
        for discount in &quote.discounts {
            journal
                .entry(recipient.clone())
                .or_default()
                .push(HistoryEntry {
                    at,
                    benefit: discount.benefit.clone(),
                    amount: discount.amount,
                    count: 1,
                });
        }
        let body = RecordBody {
            at,
            cart: cart.clone(),
            credential: CredentialRef {
                hash: credential_hash(
                    &state.keys.credential_key,
                    CredentialKind::Card,
                    &card_uid(n),
                ),
                kind: CredentialKind::Card,
            },
            idempotency_key: format!("{}-{seq}", terminal.id),
            inputs: QuoteInputs {
                benefits: vec![BenefitRef {
                    hash,
                    id: benefit.id.clone(),
                }],
                entitlements: entitlements.clone(),
                history,
                snapshot: version,
            },
            kind: RecordKind::Sale,
            local_time: local_time_of(at, zone),
            merchant: terminal.merchant.clone(),
            prev,
            quote,
            recipient,
            seq,
            terminal: terminal.id.clone(),
            record_type: RecordType::Record,
            v: RECORD_VERSION,
            voids: None,
        };
        let record = SignedRecord::sign(body, key)?;
        prev = record.hash();
        records.push(record);
    }
    records
        .chunks(per_packet)
        .map(|chunk| Ok(Packet::build(&terminal.id, chunk.to_vec(), now, key)?.to_json()))
        .collect()
}

/// Inserts the same rows as ingestion stores, in the same batches (one
/// transaction per packet), under other terminal ids; returns rows/s.
async fn raw_insert(target: &RawTarget, batches: &[Vec<IncomingRecord>]) -> anyhow::Result<f64> {
    let total: usize = batches.iter().map(Vec::len).sum();
    match target {
        RawTarget::Sqlite(path) => {
            let path = path.clone();
            let batches = batches.to_vec();
            tokio::task::spawn_blocking(move || -> anyhow::Result<f64> {
                let mut conn = rusqlite::Connection::open(&path)?;
                conn.pragma_update(None, "synchronous", "FULL")?;
                conn.busy_timeout(std::time::Duration::from_secs(30))?;
                let started = Instant::now();
                for (batch_idx, batch) in batches.iter().enumerate() {
                    let tx = conn.transaction()?;
                    {
                        let mut insert = tx.prepare_cached(
                            "INSERT INTO records (terminal, seq, hash, prev, outcome, reason, recipient, credential, merchant, at,
                               kind, discount_cents, providers, snapshot, body, sig, packet)
                             VALUES (?1, ?2, ?3, ?4, 'accepted', NULL, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, 'raw')",
                        )?;
                        for (idx, r) in batch.iter().enumerate() {
                            insert.execute(rusqlite::params![
                                format!("raw-{batch_idx}"),
                                idx as i64,
                                r.hash, r.prev, r.recipient, r.credential, r.merchant, r.at.to_string(),
                                r.kind.as_str(), r.discount_cents, r.providers, r.snapshot as i64, r.body, r.sig,
                            ])?;
                        }
                    }
                    tx.commit()?;
                }
                Ok(total as f64 / started.elapsed().as_secs_f64())
            })
            .await?
        }
        RawTarget::Postgres { url, schema } => {
            use futures_util::SinkExt;
            let mut config: tokio_postgres::Config = url.parse()?;
            config.options(format!("-c search_path={schema}"));
            let (mut client, connection) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            let started = Instant::now();
            for (batch_idx, batch) in batches.iter().enumerate() {
                let tx = client.transaction().await?;
                let sink = tx
                    .copy_in::<_, std::io::Cursor<Vec<u8>>>(
                        "COPY records (terminal, seq, hash, prev, outcome, recipient, credential, merchant, at,
                           kind, discount_cents, providers, snapshot, body, sig, packet) FROM STDIN",
                    )
                    .await?;
                let mut text = String::with_capacity(batch.len() * 2_000);
                for (idx, r) in batch.iter().enumerate() {
                    let fields = [
                        format!("raw-{batch_idx}"),
                        idx.to_string(),
                        r.hash.clone(),
                        r.prev.clone(),
                        "accepted".into(),
                        r.recipient.clone(),
                        r.credential.clone(),
                        r.merchant.clone(),
                        r.at.to_string(),
                        r.kind.as_str().into(),
                        r.discount_cents.to_string(),
                        r.providers.clone(),
                        r.snapshot.to_string(),
                        r.body.clone(),
                        r.sig.clone(),
                        "raw".into(),
                    ];
                    let escaped: Vec<String> = fields.iter().map(|f| copy_escape(f)).collect();
                    text.push_str(&escaped.join("\t"));
                    text.push('\n');
                }
                futures_util::pin_mut!(sink);
                sink.send(std::io::Cursor::new(text.into_bytes())).await?;
                sink.finish().await?;
                tx.commit().await?;
            }
            Ok(total as f64 / started.elapsed().as_secs_f64())
        }
    }
}

/// COPY text format escaping.
fn copy_escape(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    for c in field.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// ring's own verification, one signature at a time: the ceiling's term as
/// the benchmark's goal defines it.
fn ring_verify(
    key: &shared::wire::keys::PublicKey,
    record: &shared::wire::record::SignedRecord,
) -> bool {
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key.0)
        .verify(record.canonical_body(), &record.sig.0)
        .is_ok()
}
