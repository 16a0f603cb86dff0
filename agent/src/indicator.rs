//! The validator's lights and beeper, behind one small trait so that a
//! hardware integrator can drive GPIO without touching the agent: the
//! command hook runs a program of their choosing with the signal as its
//! arguments. The tap's answer never waits for the indicator.

use std::sync::Arc;
use std::time::Duration;

/// What the passenger should see and hear.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Green light, one short beep.
    Accepted,
    /// Red light, two beeps.
    Refused,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Accepted => "accepted",
            Signal::Refused => "refused",
        }
    }
}

pub trait Indicator: Send + Sync {
    /// Shows `signal`; `code` is the refusal code (or `ok`). Must not block.
    fn show(&self, signal: Signal, code: &str);
}

/// Logs the signal: for a console, and when no hardware is attached.
#[derive(Debug, Default)]
pub struct LogIndicator;

impl Indicator for LogIndicator {
    fn show(&self, signal: Signal, code: &str) {
        let (light, beep) = match signal {
            Signal::Accepted => ("green", "short"),
            Signal::Refused => ("red", "double"),
        };
        tracing::info!(light, beep, code, "indicator");
    }
}

/// Runs `program args… <accepted|refused> <code>` for every signal, with a
/// timeout after which the program is killed. Failures are logged, never
/// surfaced to the tap: a broken lamp must not stop fares being recorded.
#[derive(Debug, Clone)]
pub struct CommandIndicator {
    command: Arc<Vec<String>>,
    timeout: Duration,
}

impl CommandIndicator {
    /// `command` must be non-empty (checked by the configuration).
    pub fn new(command: Vec<String>, timeout: Duration) -> CommandIndicator {
        CommandIndicator {
            command: Arc::new(command),
            timeout,
        }
    }
}

impl Indicator for CommandIndicator {
    fn show(&self, signal: Signal, code: &str) {
        let Some((program, args)) = self.command.split_first() else {
            return;
        };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .arg(signal.as_str())
            .arg(code)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        let timeout = self.timeout;
        let program = program.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(%program, "indicator command needs a running runtime");
            return;
        };
        runtime.spawn(async move {
            let child = match command.spawn() {
                Ok(child) => child,
                Err(err) => {
                    tracing::warn!(%program, error = %err, "indicator command could not start");
                    return;
                }
            };
            match tokio::time::timeout(timeout, child.wait_with_output()).await {
                Ok(Ok(output)) if output.status.success() => {}
                Ok(Ok(output)) => {
                    tracing::warn!(%program, status = %output.status, "indicator command failed")
                }
                Ok(Err(err)) => tracing::warn!(%program, error = %err, "indicator command failed"),
                // Dropping the future drops the child, which kills it.
                Err(_) => {
                    tracing::warn!(%program, ?timeout, "indicator command timed out and was killed")
                }
            }
        });
    }
}
