//! What every Custos server does the same way around its work: log lines on stderr, a stop on
//! SIGTERM or SIGINT, and one exit convention — `program: message` on stderr, exit 2 for a bad
//! command line or configuration (nothing was started), 1 for a failure while starting or
//! running.

use std::process::ExitCode;

/// Why a server stopped before its work was done.
#[derive(Debug)]
pub enum Failure {
    /// The command line or configuration is unusable: exit 2.
    Usage(String),
    /// Starting or running failed: exit 1.
    Failed(String),
}

impl Failure {
    /// The exit code of this failure.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Failed(_) => ExitCode::FAILURE,
        }
    }

    fn message(&self) -> &str {
        match self {
            Failure::Usage(message) | Failure::Failed(message) => message,
        }
    }
}

impl From<String> for Failure {
    /// A bare message is a run-time failure.
    fn from(message: String) -> Self {
        Failure::Failed(message)
    }
}

/// Prints a failure as `program: message` and turns the outcome into the process's exit code.
pub fn exit(program: &str, outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("{program}: {}", failure.message());
            failure.exit_code()
        }
    }
}

/// Sends log lines to stderr (coloured only on a terminal), filtered by `configured`, else by
/// `RUST_LOG`, else at `info` — in `tracing`'s env-filter syntax (`info`,
/// `custos_cas=debug,info`, …). An unusable filter falls back to `info` and says so.
pub fn init_logging(configured: Option<&str>) {
    let filter = match configured {
        Some(filter) => filter.to_owned(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
    };
    let (filter, unusable) = match tracing_subscriber::EnvFilter::try_new(&filter) {
        Ok(filter) => (filter, None),
        Err(e) => (tracing_subscriber::EnvFilter::new("info"), Some(e)),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Some(e) = unusable {
        tracing::warn!("log filter unusable ({e}): logging at info");
    }
}

/// Resolves on SIGTERM or SIGINT. If the handlers cannot be installed it says so and never
/// resolves: the server keeps serving and only SIGKILL stops it.
pub async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot watch for SIGTERM/SIGINT ({e}): stop with SIGKILL");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_usage_exits_2_and_failures_exit_1() {
        assert_eq!(exit("x", Ok(())), ExitCode::SUCCESS);
        assert_eq!(
            exit("x", Err(Failure::Usage("--listen: bad".into()))),
            ExitCode::from(2)
        );
        assert_eq!(
            exit("x", Err(Failure::from("cannot bind".to_owned()))),
            ExitCode::FAILURE
        );
    }
}
