//! The agent's configuration: one TOML file, every option with a default in
//! code, unknown keys refused, and every error naming the file and the key.
//!
//! `docs/agent-config.md` documents each option; keep the two in step.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use shared::model::{CartLine, Zone};
use shared::money::Money;

/// Where the local API listens: a loopback TCP address or a Unix socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Tcp(addr) => write!(f, "{addr}"),
            Listen::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Cashier till (quote, then commit when the sale is paid) or unattended
/// validator (a tap commits the configured fare at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    Cashier,
    Validator,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Cashier => "cashier",
            Mode::Validator => "validator",
        }
    }
}

/// The whole configuration, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub terminal: TerminalConfig,
    pub validator: Option<ValidatorConfig>,
    pub sync: SyncConfig,
}

#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub listen: Listen,
    pub request_timeout: Duration,
    pub body_bytes_max: usize,
    pub concurrent_requests_max: usize,
}

#[derive(Debug, Clone)]
pub struct TerminalConfig {
    pub mode: Mode,
    pub time_zone: Zone,
    pub language: String,
    pub double_tap_window: Duration,
    pub snapshot_age_max: Duration,
    pub void_window: Duration,
}

#[derive(Debug, Clone)]
pub struct ValidatorConfig {
    /// The one cart line a tap buys.
    pub fare: CartLine,
    /// Program and arguments run on every tap with `accepted` or `refused`
    /// and the refusal code appended; `None` logs the signal only.
    pub indicator_command: Option<Vec<String>>,
    pub indicator_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub enabled: bool,
    pub interval: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    pub request_timeout: Duration,
    pub snapshot_bytes_max: u64,
}

/// Why a configuration file was refused; the message names file and key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: String,
        key: &'static str,
        message: String,
    },
}

// The raw TOML shape. Defaults live in `Default` impls so that an empty
// file is a valid configuration for a cashier till on the loopback port.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    data_dir: PathBuf,
    api: RawApi,
    terminal: RawTerminal,
    validator: Option<RawValidator>,
    sync: RawSync,
}

impl Default for RawConfig {
    fn default() -> RawConfig {
        RawConfig {
            data_dir: PathBuf::from("/var/lib/benefits-agent"),
            api: RawApi::default(),
            terminal: RawTerminal::default(),
            validator: None,
            sync: RawSync::default(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawApi {
    listen: String,
    request_timeout_ms: u64,
    body_bytes_max: usize,
    concurrent_requests_max: usize,
}

impl Default for RawApi {
    fn default() -> RawApi {
        RawApi {
            listen: "127.0.0.1:7310".into(),
            request_timeout_ms: 5_000,
            body_bytes_max: 64 * 1024,
            concurrent_requests_max: 64,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawTerminal {
    mode: Mode,
    time_zone: String,
    language: String,
    double_tap_window_ms: Option<u64>,
    snapshot_age_max_hours: u64,
    void_window_seconds: u64,
}

impl Default for RawTerminal {
    fn default() -> RawTerminal {
        RawTerminal {
            mode: Mode::Cashier,
            time_zone: shared::model::DEFAULT_TIME_ZONE.into(),
            language: "lv".into(),
            double_tap_window_ms: None,
            snapshot_age_max_hours: 48,
            void_window_seconds: 900,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidator {
    fare: RawFare,
    #[serde(default)]
    indicator_command: Option<Vec<String>>,
    #[serde(default = "default_indicator_timeout_ms")]
    indicator_timeout_ms: u64,
}

fn default_indicator_timeout_ms() -> u64 {
    2_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFare {
    sku: String,
    category: String,
    unit_price: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawSync {
    enabled: bool,
    interval_seconds: u64,
    backoff_initial_seconds: u64,
    backoff_max_seconds: u64,
    request_timeout_seconds: u64,
    snapshot_bytes_max: u64,
}

impl Default for RawSync {
    fn default() -> RawSync {
        RawSync {
            enabled: true,
            interval_seconds: 30,
            backoff_initial_seconds: 1,
            backoff_max_seconds: 300,
            request_timeout_seconds: 60,
            snapshot_bytes_max: 2 * 1024 * 1024 * 1024,
        }
    }
}

/// Double-tap window when the file gives none: a validator sees the same
/// card twice in a second or two when the passenger hesitates; a cashier
/// till commits only on the cashier's action, so it needs none.
pub const VALIDATOR_DOUBLE_TAP_WINDOW_MS: u64 = 3_000;

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|err| ConfigError::Parse {
            path: origin.to_owned(),
            message: err.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: &'static str, message: String| ConfigError::Invalid {
            path: origin.to_owned(),
            key,
            message,
        };

        if raw.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty".into()));
        }
        let listen = parse_listen(&raw.api.listen).map_err(|m| invalid("api.listen", m))?;
        if raw.api.request_timeout_ms == 0 {
            return Err(invalid(
                "api.request_timeout_ms",
                "must be at least 1".into(),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&raw.api.body_bytes_max) {
            return Err(invalid(
                "api.body_bytes_max",
                format!("{} is outside 1024..=16777216", raw.api.body_bytes_max),
            ));
        }
        if !(1..=4096).contains(&raw.api.concurrent_requests_max) {
            return Err(invalid(
                "api.concurrent_requests_max",
                format!("{} is outside 1..=4096", raw.api.concurrent_requests_max),
            ));
        }
        let time_zone =
            Zone::get(&raw.terminal.time_zone).map_err(|m| invalid("terminal.time_zone", m))?;
        let language = raw.terminal.language;
        if language.is_empty()
            || language.len() > 8
            || !language.bytes().all(|b| b.is_ascii_lowercase())
        {
            return Err(invalid(
                "terminal.language",
                format!("{language:?} is not a language code such as \"lv\" or \"en\""),
            ));
        }
        let default_window_ms = match raw.terminal.mode {
            Mode::Validator => VALIDATOR_DOUBLE_TAP_WINDOW_MS,
            Mode::Cashier => 0,
        };
        let window_ms = raw
            .terminal
            .double_tap_window_ms
            .unwrap_or(default_window_ms);
        if window_ms > 600_000 {
            return Err(invalid(
                "terminal.double_tap_window_ms",
                format!("{window_ms} is more than 600000 (10 minutes)"),
            ));
        }
        if raw.terminal.snapshot_age_max_hours == 0 {
            return Err(invalid(
                "terminal.snapshot_age_max_hours",
                "must be at least 1".into(),
            ));
        }

        let validator = match (raw.terminal.mode, raw.validator) {
            (Mode::Validator, None) => return Err(invalid(
                "validator",
                "terminal.mode is \"validator\" but there is no [validator] section with the fare"
                    .into(),
            )),
            (Mode::Cashier, Some(_)) => {
                return Err(invalid(
                    "validator",
                    "a [validator] section needs terminal.mode = \"validator\"".into(),
                ))
            }
            (Mode::Cashier, None) => None,
            (Mode::Validator, Some(raw_validator)) => Some(
                validator_config(raw_validator).map_err(|(key, message)| invalid(key, message))?,
            ),
        };

        let sync = &raw.sync;
        if sync.interval_seconds == 0 {
            return Err(invalid(
                "sync.interval_seconds",
                "must be at least 1".into(),
            ));
        }
        if sync.backoff_initial_seconds == 0 {
            return Err(invalid(
                "sync.backoff_initial_seconds",
                "must be at least 1".into(),
            ));
        }
        if sync.backoff_max_seconds < sync.backoff_initial_seconds {
            return Err(invalid(
                "sync.backoff_max_seconds",
                format!(
                    "{} is below sync.backoff_initial_seconds {}",
                    sync.backoff_max_seconds, sync.backoff_initial_seconds
                ),
            ));
        }
        if sync.request_timeout_seconds == 0 {
            return Err(invalid(
                "sync.request_timeout_seconds",
                "must be at least 1".into(),
            ));
        }
        if sync.snapshot_bytes_max < 1024 {
            return Err(invalid(
                "sync.snapshot_bytes_max",
                "must be at least 1024".into(),
            ));
        }

        Ok(Config {
            data_dir: raw.data_dir,
            api: ApiConfig {
                listen,
                request_timeout: Duration::from_millis(raw.api.request_timeout_ms),
                body_bytes_max: raw.api.body_bytes_max,
                concurrent_requests_max: raw.api.concurrent_requests_max,
            },
            terminal: TerminalConfig {
                mode: raw.terminal.mode,
                time_zone,
                language,
                double_tap_window: Duration::from_millis(window_ms),
                snapshot_age_max: Duration::from_secs(raw.terminal.snapshot_age_max_hours * 3600),
                void_window: Duration::from_secs(raw.terminal.void_window_seconds),
            },
            validator,
            sync: SyncConfig {
                enabled: sync.enabled,
                interval: Duration::from_secs(sync.interval_seconds),
                backoff_initial: Duration::from_secs(sync.backoff_initial_seconds),
                backoff_max: Duration::from_secs(sync.backoff_max_seconds),
                request_timeout: Duration::from_secs(sync.request_timeout_seconds),
                snapshot_bytes_max: sync.snapshot_bytes_max,
            },
        })
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("agent.sqlite")
    }
}

fn validator_config(raw: RawValidator) -> Result<ValidatorConfig, (&'static str, String)> {
    let unit_price = Money::parse(&raw.fare.unit_price)
        .map_err(|err| ("validator.fare.unit_price", err.to_string()))?;
    let fare = CartLine {
        sku: raw.fare.sku,
        category: raw.fare.category,
        unit_price,
        qty: 1,
    };
    if let Err(problems) = shared::validate::cart(std::slice::from_ref(&fare)) {
        let message = problems
            .0
            .iter()
            .map(|p| format!("{}: {}", p.path.replacen("cart[0]", "fare", 1), p.message))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(("validator.fare", message));
    }
    if let Some(command) = &raw.indicator_command {
        if command.first().is_none_or(|program| program.is_empty()) {
            return Err((
                "validator.indicator_command",
                "must name a program, e.g. [\"/usr/local/bin/lights\"]".into(),
            ));
        }
    }
    if !(1..=60_000).contains(&raw.indicator_timeout_ms) {
        return Err((
            "validator.indicator_timeout_ms",
            format!("{} is outside 1..=60000", raw.indicator_timeout_ms),
        ));
    }
    Ok(ValidatorConfig {
        fare,
        indicator_command: raw.indicator_command,
        indicator_timeout: Duration::from_millis(raw.indicator_timeout_ms),
    })
}

/// `127.0.0.1:7310`, `[::1]:7310` or `unix:/run/benefits-agent/api.sock`.
/// Anything reachable from another machine is refused: the API has no
/// authentication of its own, so loopback or a Unix socket is the fence.
fn parse_listen(text: &str) -> Result<Listen, String> {
    if let Some(path) = text.strip_prefix("unix:") {
        if path.is_empty() || !path.starts_with('/') {
            return Err(format!("{text:?}: a Unix socket needs an absolute path, e.g. \"unix:/run/benefits-agent/api.sock\""));
        }
        return Ok(Listen::Unix(PathBuf::from(path)));
    }
    let addr: SocketAddr = text.parse().map_err(|_| {
        format!("{text:?} is neither an address like \"127.0.0.1:7310\" nor \"unix:/path/to.sock\"")
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "{text:?} is not a loopback address: the local API must listen on 127.0.0.1, ::1 or a Unix socket"
        ));
    }
    Ok(Listen::Tcp(addr))
}

#[cfg(test)]
mod tests;
