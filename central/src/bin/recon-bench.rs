//! Benchmark of the ledger: a month of a city (1,000,000 usage lines of
//! 100,000 recipients at 200 terminals of 20 merchants, two benefits with
//! limits, about 1 % offline overuse) stored in a real SQLite file, then:
//!
//! 1. the ceiling: a bare read of the same rows (nothing decoded);
//! 2. a ledger run: load every line, reconcile across terminals, store
//!    the decisions (all new on the first run), run the detectors;
//! 3. issuing the month's settlements (a second run, with nothing changed,
//!    then settle every provider × merchant and store the settlements).
//!
//! With `CENTRAL_TEST_PG_URL` set, the same on PostgreSQL in a fresh schema.
//!
//! `cargo run --release -p central --bin recon-bench [LINES]`; the figures
//! are in `docs/performance.md`.

use std::time::Instant;

use anyhow::Context;
use central::ledger;
use central::reconcile::UsageRecord;
use central::store::ledger::{Intake, UsageLine};
use central::store::postgres::PostgresStore;
use central::store::sqlite::SqliteStore;
use central::store::{Party, Store};
use jiff::civil::date;
use jiff::tz::TimeZone;
use shared::model::Benefit;
use shared::money::Money;
use shared::wire::keys::Hash;

const RECIPIENTS: u64 = 100_000;
const TERMINALS: u64 = 200;
const MERCHANTS: u64 = 20;

fn benefit(json: serde_json::Value) -> anyhow::Result<Benefit> {
    Ok(serde_json::from_value(json)?)
}

/// Where the bare `SELECT` of the ceiling reads from.
enum Ceiling {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let lines: u64 = match std::env::args().nth(1) {
        Some(text) => text.parse().context("LINES must be a number")?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("central.sqlite");
    println!("== SQLite");
    let store = SqliteStore::open(&path).await?;
    bench(&store, lines, Ceiling::Sqlite(path)).await?;
    drop(store);
    if let Some(url) = std::env::var("CENTRAL_TEST_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
    {
        println!("== PostgreSQL");
        let schema = format!("recon_bench_{}", std::process::id());
        let store = PostgresStore::connect(&url, Some(&schema)).await?;
        bench(&store, lines, Ceiling::Postgres { url, schema }).await?;
    }
    Ok(())
}

async fn bench(store: &dyn Store, lines: u64, ceiling: Ceiling) -> anyhow::Result<()> {
    store
        .upsert_provider(&Party {
            id: "riga".into(),
            name: "Riga".into(),
        })
        .await?;
    for m in 0..MERCHANTS {
        store
            .upsert_merchant(&Party {
                id: format!("m{m:02}"),
                name: format!("Merchant {m}"),
            })
            .await?;
    }
    let benefits = [
        benefit(serde_json::json!({
            "id": "lunch", "provider": "riga", "categories": ["meal.lunch"],
            "discount": {"percent": "100"}, "limits": [{"period": "day", "max_count": 1}]}))?,
        benefit(serde_json::json!({
            "id": "bus", "provider": "riga", "categories": ["transport"],
            "discount": {"amount": "0.70"}, "funding": "loss_compensation",
            "limits": [{"period": "month", "max_amount": "10.00"}]}))?,
    ];
    for b in &benefits {
        let visible = central::snapshot::terminal_form(b);
        let json = shared::wire::canonical::to_vec(&visible)?;
        store
            .publish_benefit(
                b,
                &String::from_utf8_lossy(&json),
                &Hash::of(&json).to_hex(),
            )
            .await?;
    }

    // Lines in (recipient, day) order: lunches on weekdays at the
    // recipient's school, a bus ride now and then; every 100th recipient
    // also gets a second lunch at another till on the same day.
    let started = Instant::now();
    let riga = TimeZone::get("Europe/Riga")?;
    let mut batch = Vec::with_capacity(20_000);
    let mut seqs = vec![0u64; TERMINALS as usize];
    let mut made = 0u64;
    let mut n = 0u64;
    while made < lines {
        let recipient = n % RECIPIENTS;
        let round = n / RECIPIENTS;
        n += 1;
        let day = date(2026, 3, 1 + (round % 31) as i8);
        let is_bus = round % 4 == 3;
        let second = !is_bus && recipient % 100 == 0 && round % 3 == 0;
        let terminal = if is_bus {
            100 + (recipient * 7 + round) % 100
        } else {
            recipient % 100
        };
        let (benefit, category, amount, hour) = if is_bus {
            ("bus", "transport.bus", "0.70", 8)
        } else {
            ("lunch", "meal.lunch", "2.50", 12)
        };
        let at = day
            .at(hour, (recipient % 60) as i8, 0, 0)
            .to_zoned(riga.clone())?
            .timestamp();
        seqs[terminal as usize] += 1;
        let seq = seqs[terminal as usize];
        let terminal_id = format!("T-{terminal:06}");
        let record = UsageRecord {
            terminal: terminal_id.clone(),
            seq,
            line: 0,
            at,
            recipient: format!("R{recipient:07}"),
            credential: format!("c{recipient:07}"),
            benefit: benefit.into(),
            provider: "riga".into(),
            merchant: format!("m{:02}", terminal % MERCHANTS),
            category: category.into(),
            amount: Money::parse(amount)?,
            count: 1,
            snapshot: 1,
            voided: false,
            record_hash: Hash::of(format!("{terminal_id}#{seq}").as_bytes()),
        };
        if second {
            // The same pupil's lunch at a second, offline till 10 minutes later.
            let other = (terminal + 1) % 100;
            seqs[other as usize] += 1;
            let other_id = format!("T-{other:06}");
            let mut twin = record.clone();
            twin.terminal = other_id.clone();
            twin.seq = seqs[other as usize];
            twin.at = at.checked_add(jiff::SignedDuration::from_mins(10))?;
            twin.merchant = format!("m{:02}", other % MERCHANTS);
            twin.record_hash = Hash::of(format!("{other_id}#{}", twin.seq).as_bytes());
            batch.push(Intake {
                terminal: other_id,
                seq: twin.seq,
                outcome: "accepted".into(),
                counted: true,
                lines: vec![UsageLine { record: twin, day }],
                voids: None,
            });
            made += 1;
        }
        batch.push(Intake {
            terminal: terminal_id,
            seq,
            outcome: "accepted".into(),
            counted: true,
            lines: vec![UsageLine { record, day }],
            voids: None,
        });
        made += 1;
        if batch.len() == batch.capacity() {
            store.ledger_take_in(std::mem::take(&mut batch)).await?;
            batch.reserve(20_000);
        }
    }
    store.ledger_take_in(batch).await?;
    println!(
        "stored {made} usage lines of {RECIPIENTS} recipients in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let read = bare_select(&ceiling).await?;
    let select_s = started.elapsed().as_secs_f64();
    println!("ceiling: bare SELECT of {read} rows: {select_s:.2} s");

    let now = "2026-04-02T08:00:00Z".parse()?;
    let started = Instant::now();
    let report = ledger::run(store, now).await?;
    let run_s = started.elapsed().as_secs_f64();
    println!(
        "ledger run (load, reconcile, store {} decisions, detectors, {} flags): {run_s:.2} s {:?}",
        report.decisions_changed, report.flags_raised, report.phases_ms
    );
    let started = Instant::now();
    let issued = ledger::issue(
        store,
        ledger::parse_month("2026-03").map_err(anyhow::Error::msg)?,
        None,
        now,
    )
    .await?;
    let issue_s = started.elapsed().as_secs_f64();
    let total: Money = issued.iter().map(|s| s.settlement.total).sum();
    println!(
        "issue March (re-run, settle, store): {} settlements, total {total} EUR: {issue_s:.2} s",
        issued.len()
    );
    println!(
        "reconcile + settle: {:.2} s beside {select_s:.2} s to read the rows (goal 60 s)",
        run_s + issue_s
    );
    Ok(())
}

/// Reads every `ledger_usage` row and every column, decoding nothing
/// (SQLite: a `SELECT *`; PostgreSQL: a `COPY` of the same `SELECT`): the
/// least any load of the same rows costs.
async fn bare_select(ceiling: &Ceiling) -> anyhow::Result<u64> {
    let mut read = 0u64;
    match ceiling {
        Ceiling::Sqlite(path) => {
            let conn = rusqlite::Connection::open(path)?;
            let mut stmt = conn.prepare("SELECT * FROM ledger_usage")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                for column in 0..row.as_ref().column_count() {
                    let _: rusqlite::types::ValueRef<'_> = row.get_ref(column)?;
                }
                read += 1;
            }
        }
        Ceiling::Postgres { url, schema } => {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .batch_execute(&format!("SET search_path TO {schema}"))
                .await?;
            // COPY streams every row as text: the cheapest full read.
            let stream = client
                .copy_out("COPY (SELECT * FROM ledger_usage) TO STDOUT")
                .await?;
            futures_util::pin_mut!(stream);
            while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
                read += chunk?.iter().filter(|byte| **byte == b'\n').count() as u64;
            }
        }
    }
    Ok(read)
}
