//! The `agent` command: `run`, `enroll`, `status`, `verify-journal`.
//! Configuration, logging and signals; the daemon itself is `agent::run`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand};

use agent::config::Config;
use agent::enrolment::{self, EnrolRequest, Enrolment};
use agent::store;

#[derive(Parser)]
#[command(
    name = "agent",
    version,
    about = "Benefits agent for POS tills and bus validators"
)]
struct Cli {
    /// Configuration file (docs/agent-config.md).
    #[arg(
        long,
        short,
        env = "AGENT_CONFIG",
        default_value = "/etc/benefits-agent/agent.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: local API, sync, checkpoints. Stops on SIGTERM or Ctrl-C.
    Run,
    /// Generate this terminal's key and register it with central.
    Enroll {
        /// Central's base URL, e.g. https://central.example.lv:8443
        #[arg(long)]
        central: String,
        /// Central's CA certificate (PEM), the only one this terminal will trust.
        #[arg(long)]
        ca: PathBuf,
        /// The one-time enrolment code from central.
        #[arg(long, env = "AGENT_ENROL_CODE")]
        code: String,
        /// A name for this terminal shown to central's operators.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Show snapshot freshness, outbox depth, last sync and clock (reads the
    /// database directly, so it works while the daemon is stopped).
    Status {
        /// Print JSON (the same shape as GET /v1/status).
        #[arg(long)]
        json: bool,
    },
    /// Check the local journal: every signature, seq, link and stored hash.
    VerifyJournal,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match real_main(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("agent: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("AGENT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: under systemd or with stderr redirected
    // to a file, escape codes would litter the journal and break grep.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    match cli.command {
        Command::Run => {
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            runtime.block_on(async {
                let listener = agent::ApiListener::bind(&config.api.listen).await?;
                agent::run(config, listener, shutdown_signal()).await
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Enroll {
            central,
            ca,
            code,
            label,
        } => {
            let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
            let request = EnrolRequest {
                data_dir: config.data_dir.clone(),
                central_url: central,
                ca_pem_path: ca,
                code,
                label,
                timeout: Duration::from_secs(60),
            };
            let file =
                runtime.block_on(enrolment::enrol(&request, &ring::rand::SystemRandom::new()))?;
            println!(
                "enrolled as terminal {} of merchant {} at {}; key in {}",
                file.terminal,
                file.merchant,
                file.central_url,
                config.data_dir.join(enrolment::KEY_FILE).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Status { json } => {
            let enrolment = Enrolment::load(&config.data_dir)?;
            let database = config.database_path();
            let conn = store::open_read_only(&database)
                .with_context(|| format!("opening {}", database.display()))?;
            let status = store::status_on(&conn)?;
            let (version, built_at) = store::snapshot_meta(&conn)?;
            let answer = agent::app::status_answer(
                &config,
                &enrolment.file,
                &status,
                version,
                built_at,
                jiff::Timestamp::now(),
            );
            if json {
                println!("{}", serde_json::to_string_pretty(&answer)?);
            } else {
                print_status(&answer);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyJournal => {
            let enrolment = Enrolment::load(&config.data_dir)?;
            let database = config.database_path();
            let conn = store::open_read_only(&database)
                .with_context(|| format!("opening {}", database.display()))?;
            let check =
                store::verify_journal_on(&conn, &enrolment.key.public_key(), enrolment.terminal())?;
            let head = check
                .head
                .map(|head| format!("head seq {} hash {}", head.seq, head.hash))
                .unwrap_or_else(|| "empty".into());
            if check.issues.is_empty() {
                println!("journal OK: {} records, {head}", check.records);
                Ok(ExitCode::SUCCESS)
            } else {
                for issue in &check.issues {
                    println!("{issue}");
                }
                bail!(
                    "journal has {} problems in {} records ({head})",
                    check.issues.len(),
                    check.records
                )
            }
        }
    }
}

fn print_status(status: &agent::app::StatusAnswer) {
    println!(
        "terminal  {} (merchant {}), {}",
        status.terminal, status.merchant, status.mode
    );
    let stale = if status.snapshot.stale {
        "  ** STALE **"
    } else {
        ""
    };
    match status.snapshot.version {
        Some(version) => println!(
            "snapshot  version {version}: {}{stale}",
            status.snapshot.message
        ),
        None => println!("snapshot  none: {}{stale}", status.snapshot.message),
    }
    println!(
        "journal   {} records{}",
        status.journal.records,
        status
            .journal
            .head
            .as_deref()
            .map(|head| format!(", head {head}"))
            .unwrap_or_default()
    );
    println!(
        "outbox    {} records not yet acknowledged by central ({} packets built), acknowledged through seq {}",
        status.outbox.records, status.outbox.packets, status.outbox.acked_through
    );
    println!(
        "sync      {} with {}; last success {}; last attempt {}",
        if status.sync.enabled {
            "enabled"
        } else {
            "disabled"
        },
        status.sync.central,
        status.sync.last_success.as_deref().unwrap_or("never"),
        status.sync.last_attempt.as_deref().unwrap_or("never"),
    );
    if let Some(error) = &status.sync.last_error {
        println!("          last error: {error}");
    }
    println!(
        "clock     {} ({})",
        status.clock.local, status.clock.time_zone
    );
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutting down");
}
