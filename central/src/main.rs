//! The `central` command: set up a data directory, serve the API, fill demo
//! data, and the operator's register commands (tokens, terminals, imports,
//! revocations, blocks, key rotation). Prints `{err:#}` and exits non-zero
//! on failure.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Parser, Subcommand, ValueEnum};
use shared::model::Benefit;
use shared::wire::credential::credential_hash;
use shared::wire::record::CredentialKind;

use central::http::staff;
use central::import::{self, Format, Kind};
use central::keys::{random_token, secret_hash};
use central::reconcile::flags::{FlagKind, FlagState};
use central::store::{Group, Party, Role, Token};
use central::{AppState, Config};

#[derive(Parser)]
#[command(
    name = "central",
    version,
    about = "Reconciliation server of the benefits system"
)]
struct Cli {
    /// Data directory: keys, certificates and the SQLite database.
    #[arg(long, global = true, env = "CENTRAL_DATA", default_value = "data")]
    data: PathBuf,
    /// Use PostgreSQL (`postgres://user:password@host/db`) instead of the SQLite file.
    #[arg(
        long,
        global = true,
        env = "CENTRAL_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the data directory, keys, certificates and database, and print a new admin token.
    Init {
        /// Extra DNS names or IP addresses for the server certificate.
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
    },
    /// Serve the HTTPS API.
    Serve {
        #[arg(long, env = "CENTRAL_LISTEN", default_value = "127.0.0.1:8443")]
        listen: String,
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
    },
    /// Fill the database with realistic demo data (prints tokens and enrolment codes).
    Demo {
        #[arg(long, default_value_t = 3_000)]
        recipients: u32,
        #[arg(long, default_value_t = 30)]
        days: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Staff API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Add or rename a provider.
    Provider { id: String, name: String },
    /// Add or rename a merchant.
    Merchant { id: String, name: String },
    /// Add or relabel a recipient group of a provider.
    Group {
        #[arg(long)]
        provider: String,
        id: String,
        label: String,
    },
    /// Publish a benefit definition from a JSON file.
    Benefit {
        #[arg(long)]
        provider: String,
        file: PathBuf,
    },
    /// Terminals.
    Terminal {
        #[command(subcommand)]
        command: TerminalCommand,
    },
    /// Create a terminal and print its one-time enrolment code (same as `terminal create`).
    EnrolCode {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        label: String,
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
    },
    /// Revoke a terminal: its requests are refused from now on.
    Revoke { terminal: String },
    /// Block a credential (lost card); it reaches the deny list of the next delta.
    BlockCredential {
        #[arg(long, value_enum)]
        kind: Option<KindArg>,
        /// The raw id (card UID, token) as read.
        #[arg(long)]
        id: Option<String>,
        /// Or the credential hash.
        #[arg(long)]
        hash: Option<String>,
    },
    /// Import a CSV or JSON Lines file of recipients, credentials, memberships, grants or guardians.
    Import {
        #[arg(long)]
        provider: String,
        #[arg(long, value_enum)]
        kind: ImportKind,
        /// `csv` or `jsonl`; by default from the file extension.
        #[arg(long)]
        format: Option<String>,
        file: PathBuf,
    },
    /// Central's signing key.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Reconcile now: take in new records, decide every usage line, raise flags
    /// (a running server does this by itself after ingestion).
    Reconcile,
    /// Issue the settlements of a month (docs/settlements.md).
    Settle {
        /// The month, `2026-03`.
        #[arg(long)]
        period: String,
        /// Only this provider's settlements.
        #[arg(long)]
        provider: Option<String>,
    },
    /// Fraud and integrity flags.
    Flags {
        #[command(subcommand)]
        command: FlagsCommand,
    },
    /// Issued settlements and their e-invoices.
    Settlement {
        #[command(subcommand)]
        command: SettlementCommand,
    },
}

#[derive(Subcommand)]
enum FlagsCommand {
    /// List flags, oldest first, a page at a time; when more follow, the
    /// cursor of the next page goes to stderr (`next page: --after <id>`).
    List {
        #[arg(long)]
        state: Option<String>,
        #[arg(long)]
        provider: Option<String>,
        #[arg(long)]
        merchant: Option<String>,
        /// Only this kind (`offline_overuse`, `impossible_travel`, ...).
        #[arg(long)]
        kind: Option<String>,
        /// Start after this flag id (the cursor the previous page printed).
        #[arg(long)]
        after: Option<String>,
        /// Flags per page, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Accept, reject or reopen a flag; recorded in its audit trail.
    Decide {
        id: String,
        /// `accept`, `reject` or `reopen`.
        #[arg(long)]
        decision: String,
        /// Who decides (recorded in the audit trail).
        #[arg(long)]
        who: String,
        #[arg(long)]
        note: String,
    },
}

#[derive(Subcommand)]
enum SettlementCommand {
    /// List issued settlements.
    List {
        #[arg(long)]
        period: Option<String>,
    },
    /// Print a settlement exactly as issued (JSON).
    Show { number: String },
    /// Print a UBL invoice or credit note of a settlement.
    Invoice {
        number: String,
        /// The document id (`{number}-V`, `-VC`, `-O`, `-OC`); the first by default.
        #[arg(long)]
        document: Option<String>,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create a token and print it (it is stored only as a hash).
    Create {
        #[arg(long, conflicts_with = "merchant")]
        provider: Option<String>,
        #[arg(long)]
        merchant: Option<String>,
        /// An admin token (sees everything).
        #[arg(long, conflicts_with_all = ["provider", "merchant"])]
        admin: bool,
        /// A token of the state portal: reads only the person view (docs/reports.md).
        #[arg(long, conflicts_with_all = ["provider", "merchant", "admin"])]
        portal: bool,
        #[arg(long, default_value = "cli")]
        label: String,
    },
}

#[derive(Subcommand)]
enum TerminalCommand {
    /// Create a terminal and print its one-time enrolment code.
    Create {
        #[arg(long)]
        merchant: String,
        #[arg(long)]
        label: String,
        #[arg(long = "category", required = true)]
        categories: Vec<String>,
    },
    /// List terminals.
    List,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create a new signing key and make it current (see docs/operations.md).
    Rotate,
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Card,
    Eid,
    BankCard,
    ResidentCard,
    Qr,
}

impl From<KindArg> for CredentialKind {
    fn from(kind: KindArg) -> CredentialKind {
        match kind {
            KindArg::Card => CredentialKind::Card,
            KindArg::Eid => CredentialKind::Eid,
            KindArg::BankCard => CredentialKind::BankCard,
            KindArg::ResidentCard => CredentialKind::ResidentCard,
            KindArg::Qr => CredentialKind::Qr,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum ImportKind {
    Recipients,
    Credentials,
    Memberships,
    Grants,
    Guardians,
}

/// Most flags `flags list` prints on one page.
const FLAGS_PAGE_MAX: u32 = 1_000;

/// Writes one line (or, with `; no newline`, a text as is) to stdout. A
/// closed pipe (`central settlement show … | head`) ends the command
/// quietly instead of panicking as `println!` does.
macro_rules! out {
    ($fmt:literal $(, $arg:expr)* ; no newline) => {
        write_stdout(format_args!($fmt $(, $arg)*), false)
    };
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*), true)
    };
}

fn write_stdout(text: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = if newline {
        writeln!(stdout, "{text}")
    } else {
        write!(stdout, "{text}")
    }
    .and_then(|()| stdout.flush());
    match written {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(err) => {
            eprintln!("error: writing to standard output: {err}");
            std::process::exit(1);
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open(cli: &Cli, tls_names: &[String]) -> anyhow::Result<AppState> {
    let mut config = Config::new(cli.data.clone());
    config.database_url = cli.database_url.clone();
    config.tls_names = tls_names.to_vec();
    AppState::open(&config)
        .await
        .with_context(|| format!("opening data directory {}", cli.data.display()))
}

/// Turns an API error into an anyhow error with its message.
fn api(err: central::http::ApiError) -> anyhow::Error {
    anyhow::anyhow!("{}", err.message())
}

async fn create_token(state: &AppState, role: Role, label: &str) -> anyhow::Result<String> {
    let token = format!("bpt_{}", random_token(24)?);
    state
        .store
        .create_token(&Token {
            hash: secret_hash(&token),
            role,
            label: label.to_owned(),
        })
        .await?;
    Ok(token)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Init { tls_names } => {
            let state = open(&cli, tls_names).await?;
            let token = create_token(&state, Role::Admin, "admin (init)").await?;
            out!("data directory: {}", cli.data.display());
            out!(
                "CA certificate for terminals: {}",
                cli.data.join("ca.pem").display()
            );
            out!("signing key: {}", state.keys.signing.key_id());
            out!("admin token: {token}");
        }
        Command::Serve { listen, tls_names } => {
            let state = open(&cli, tls_names).await?;
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            tracing::info!(
                address = %listener.local_addr()?,
                backend = state.store.backend(),
                data = %cli.data.display(),
                "central serving HTTPS"
            );
            // Reconcile what was ingested before the last stop, then after each burst of packets.
            central::ledger::spawn(&state, central::ledger::DEBOUNCE);
            central::serve(state, listener, shutdown_signal()).await?;
            tracing::info!("central stopped");
        }
        Command::Demo {
            recipients,
            days,
            seed,
        } => {
            let state = open(&cli, &[]).await?;
            let report = central::demo::fill(
                &state,
                &central::demo::DemoOptions {
                    recipients: *recipients,
                    days: *days,
                    seed: *seed,
                },
            )
            .await?;
            out!("{report}"; no newline);
        }
        Command::Token { command } => {
            let TokenCommand::Create {
                provider,
                merchant,
                admin,
                portal,
                label,
            } = command;
            let state = open(&cli, &[]).await?;
            if *portal {
                let token = format!("bpp_{}", random_token(24)?);
                state
                    .store
                    .create_portal_token(&secret_hash(&token), label)
                    .await?;
                out!("{token}");
                return Ok(());
            }
            let role = match (provider, merchant, admin) {
                (Some(provider), None, false) => {
                    ensure_provider(&state, provider).await?;
                    Role::Provider(provider.clone())
                }
                (None, Some(merchant), false) => {
                    if !state
                        .store
                        .merchants()
                        .await?
                        .iter()
                        .any(|m| m.id == *merchant)
                    {
                        bail!("--merchant: unknown merchant {merchant:?}");
                    }
                    Role::Merchant(merchant.clone())
                }
                (None, None, true) => Role::Admin,
                _ => bail!("give exactly one of --provider, --merchant, --admin"),
            };
            out!("{}", create_token(&state, role, label).await?);
        }
        Command::Provider { id, name } => {
            let state = open(&cli, &[]).await?;
            state
                .store
                .upsert_provider(&Party {
                    id: id.clone(),
                    name: name.clone(),
                })
                .await?;
        }
        Command::Merchant { id, name } => {
            let state = open(&cli, &[]).await?;
            state
                .store
                .upsert_merchant(&Party {
                    id: id.clone(),
                    name: name.clone(),
                })
                .await?;
        }
        Command::Group {
            provider,
            id,
            label,
        } => {
            let state = open(&cli, &[]).await?;
            ensure_provider(&state, provider).await?;
            state
                .store
                .upsert_group(&Group {
                    id: id.clone(),
                    provider: provider.clone(),
                    label: label.clone(),
                })
                .await?;
        }
        Command::Benefit { provider, file } => {
            let state = open(&cli, &[]).await?;
            ensure_provider(&state, provider).await?;
            let text =
                std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
            let benefit: Benefit = central::http::parse_json(&text)
                .map_err(api)
                .with_context(|| format!("{}", file.display()))?;
            if benefit.provider != *provider {
                bail!(
                    "{}: provider: {:?} but --provider is {provider:?}",
                    file.display(),
                    benefit.provider
                );
            }
            let stored = staff::publish_benefit(&state, provider, benefit)
                .await
                .map_err(api)
                .with_context(|| format!("{}", file.display()))?;
            out!(
                "published {} version {} (hash {})",
                stored.benefit.id,
                stored.published_seq,
                stored.terminal_hash
            );
        }
        Command::Terminal {
            command:
                TerminalCommand::Create {
                    merchant,
                    label,
                    categories,
                },
        }
        | Command::EnrolCode {
            merchant,
            label,
            categories,
        } => {
            let state = open(&cli, &[]).await?;
            let code = staff::new_terminal(&state, merchant, label, categories.clone())
                .await
                .map_err(api)?;
            out!("terminal: {}", code.terminal);
            out!("enrolment code: {}", code.code);
            out!("expires at: {}", code.expires_at);
        }
        Command::Terminal {
            command: TerminalCommand::List,
        } => {
            let state = open(&cli, &[]).await?;
            for terminal in state.store.terminals(None).await? {
                out!(
                    "{}\t{}\t{}\t{}\tacked through {}",
                    terminal.id,
                    terminal.merchant,
                    terminal.status.as_str(),
                    terminal.label,
                    terminal.acked_through
                );
            }
        }
        Command::Revoke { terminal } => {
            let state = open(&cli, &[]).await?;
            let now = state.clock.now();
            if !state.store.revoke_terminal(terminal, now).await? {
                bail!("no terminal {terminal:?}");
            }
            out!("revoked {terminal}");
        }
        Command::BlockCredential { kind, id, hash } => {
            let state = open(&cli, &[]).await?;
            let hash = match (kind, id, hash) {
                (Some(kind), Some(id), None) => {
                    credential_hash(&state.keys.credential_key, (*kind).into(), id)
                }
                (None, None, Some(hash)) => hash.clone(),
                _ => bail!("give either --kind and --id, or --hash"),
            };
            match state.store.block_credential(&hash).await? {
                Some(version) => out!("blocked {hash}: in snapshots from version {version} on"),
                None => bail!("no credential with hash {hash}"),
            }
        }
        Command::Import {
            provider,
            kind,
            format,
            file,
        } => {
            let state = open(&cli, &[]).await?;
            ensure_provider(&state, provider).await?;
            let format = match format
                .as_deref()
                .or_else(|| file.extension().and_then(|e| e.to_str()))
            {
                Some("csv") => Format::Csv,
                Some("jsonl" | "ndjson" | "json") => Format::JsonLines,
                other => bail!("--format: {other:?}: use csv or jsonl"),
            };
            let kind = match kind {
                ImportKind::Recipients => Kind::Recipients,
                ImportKind::Credentials => Kind::Credentials,
                ImportKind::Memberships => Kind::Memberships,
                ImportKind::Grants => Kind::Grants,
                ImportKind::Guardians => Kind::Guardians,
            };
            let context = staff::import_context(&state, provider).await.map_err(api)?;
            let input =
                std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
            let started = std::time::Instant::now();
            let parse_progress: central::store::Progress =
                Arc::new(|rows| eprintln!("checked {rows} rows"));
            let rows = tokio::task::spawn_blocking(move || {
                import::parse(
                    kind,
                    format,
                    std::io::BufReader::new(input),
                    &context,
                    Some(&parse_progress),
                )
            })
            .await?
            .map_err(|errors| anyhow::anyhow!("{}: {errors}", file.display()))?;
            eprintln!(
                "{} rows checked in {:.1} s; applying",
                rows.len(),
                started.elapsed().as_secs_f64()
            );
            let apply_progress: central::store::Progress =
                Arc::new(|rows| eprintln!("applied {rows} rows"));
            let summary = state
                .store
                .import(provider, rows, Some(apply_progress))
                .await?;
            out!(
                "{} rows: {} recipients, {} credentials, {} memberships, {} grants changed; snapshot version {} ({:.1} s)",
                summary.rows,
                summary.recipients_changed,
                summary.credentials_changed,
                summary.memberships_changed,
                summary.grants_changed,
                summary.version,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Key {
            command: KeyCommand::Rotate,
        } => {
            std::fs::create_dir_all(&cli.data)
                .with_context(|| format!("creating {}", cli.data.display()))?;
            let key_id = central::keys::rotate_signing_key(&cli.data)?;
            out!("new signing key {key_id} is current; restart central to use it");
        }
        Command::Reconcile => {
            let state = open(&cli, &[]).await?;
            let report = central::ledger::run(state.store.as_ref(), state.clock.now()).await?;
            out!(
                "took in {} records; {} usage lines, {} decisions changed, {} new flags",
                report.records_taken_in,
                report.usage_lines,
                report.decisions_changed,
                report.flags_raised
            );
        }
        Command::Settle { period, provider } => {
            let state = open(&cli, &[]).await?;
            let period = central::ledger::parse_month(period).map_err(anyhow::Error::msg)?;
            let issued = central::ledger::issue(
                state.store.as_ref(),
                period,
                provider.as_deref(),
                state.clock.now(),
            )
            .await?;
            if issued.is_empty() {
                out!("nothing to settle for {}", period.label());
            }
            for stored in issued {
                let s = &stored.settlement;
                out!(
                    "{}\t{}\t{}\t{} EUR\t{}",
                    s.number,
                    s.creditor_reference.print_format(),
                    s.documents
                        .iter()
                        .map(|d| d.id.as_str())
                        .collect::<Vec<_>>()
                        .join(","),
                    s.total,
                    stored.fingerprint
                );
            }
        }
        Command::Flags {
            command:
                FlagsCommand::List {
                    state: flag_state,
                    provider,
                    merchant,
                    kind,
                    after,
                    limit,
                },
        } => {
            if !(1..=FLAGS_PAGE_MAX).contains(limit) {
                bail!("--limit {limit}: must be 1 to {FLAGS_PAGE_MAX}");
            }
            let state = open(&cli, &[]).await?;
            let flag_state = flag_state.as_deref().map(parse_flag_state).transpose()?;
            let kind = kind.as_deref().map(parse_flag_kind).transpose()?;
            if let Some(after) = after {
                // An unknown cursor would list nothing, which reads as "no more".
                if state.store.flag(after).await?.is_none() {
                    bail!("--after {after:?}: no flag with this id");
                }
            }
            let mut rows = state
                .store
                .flags_after(
                    &central::store::ledger::FlagFilter {
                        provider: provider.clone(),
                        merchant: merchant.clone(),
                        state: flag_state,
                        kind,
                        // One more than asked tells whether a next page exists.
                        limit: limit + 1,
                    },
                    after.as_deref(),
                )
                .await?;
            let more = rows.len() > *limit as usize;
            rows.truncate(*limit as usize);
            for row in &rows {
                out!(
                    "{}\t{}\t{}\t{}\t{}",
                    row.flag.id,
                    row.flag.kind.as_str(),
                    row.flag.state.as_str(),
                    row.flag.raised_at,
                    serde_json::to_string(&row.flag.subject)?
                );
            }
            if let Some(last) = rows.last().filter(|_| more) {
                eprintln!("next page: --after {}", last.flag.id);
            }
        }
        Command::Flags {
            command:
                FlagsCommand::Decide {
                    id,
                    decision,
                    who,
                    note,
                },
        } => {
            let state = open(&cli, &[]).await?;
            let to = match decision.as_str() {
                "accept" => FlagState::Accepted,
                "reject" => FlagState::Rejected,
                "reopen" => FlagState::Open,
                other => anyhow::bail!("--decision {other:?}: expected accept, reject or reopen"),
            };
            let row = state
                .store
                .flag(id)
                .await?
                .with_context(|| format!("flag {id:?} not found"))?;
            central::ledger::decide(
                state.store.as_ref(),
                &row,
                to,
                who,
                "operator",
                note,
                state.clock.now(),
            )
            .await?;
            out!("flag {id} is {}", to.as_str());
        }
        Command::Settlement {
            command: SettlementCommand::List { period },
        } => {
            let state = open(&cli, &[]).await?;
            let rows = state
                .store
                .settlements(&central::store::ledger::SettlementFilter {
                    period: period.clone(),
                    ..Default::default()
                })
                .await?;
            for row in rows {
                out!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    row.number,
                    row.period,
                    row.provider,
                    row.merchant,
                    shared::money::Money::from_cents(row.total_cents),
                    row.creditor_reference
                );
            }
        }
        Command::Settlement {
            command: SettlementCommand::Show { number },
        } => {
            let state = open(&cli, &[]).await?;
            let stored = state
                .store
                .settlement(number)
                .await?
                .with_context(|| format!("settlement {number:?} not found"))?;
            out!("{}", stored.document);
        }
        Command::Settlement {
            command: SettlementCommand::Invoice { number, document },
        } => {
            let state = open(&cli, &[]).await?;
            let stored = state
                .store
                .settlement(number)
                .await?
                .with_context(|| format!("settlement {number:?} not found"))?;
            let xml =
                central::ledger::render_invoice(state.store.as_ref(), &stored, document.as_deref())
                    .await?;
            out!("{xml}"; no newline);
        }
    }
    Ok(())
}

fn parse_flag_state(text: &str) -> anyhow::Result<FlagState> {
    match text {
        "open" => Ok(FlagState::Open),
        "accepted" => Ok(FlagState::Accepted),
        "rejected" => Ok(FlagState::Rejected),
        other => anyhow::bail!("--state {other:?}: expected open, accepted or rejected"),
    }
}

fn parse_flag_kind(text: &str) -> anyhow::Result<FlagKind> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|_| anyhow::anyhow!("--kind {text:?}: not a flag kind (offline_overuse, offline_overuse_tolerated, chain_gap, fork, bad_signature, discount_mismatch, blocked_credential, record_refused, impossible_travel, unusual_volume)"))
}

async fn ensure_provider(state: &AppState, provider: &str) -> anyhow::Result<()> {
    if !state
        .store
        .providers()
        .await?
        .iter()
        .any(|p| p.id == provider)
    {
        bail!("--provider: unknown provider {provider:?}");
    }
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
