//! Supervised services: secrets kept fresh without restarting the program.
//!
//! When the delivery carries [`Refresh`] (the session's `services[].refresh`), `custos-run`
//! starts the program as its child ([`crate::supervise`]) and re-attests every interval and on
//! SIGHUP — each time a whole new attestation: a fresh nonce, a fresh ephemeral key, fresh
//! evidence; nothing of the first one is reused. When the delivery says a value expires (an
//! Entra ID token, a certificate), it re-attests before that: see [`next_attestation`]. What
//! changed is applied:
//!
//! - changed files are rewritten atomically ([`crate::files`]), then the program is told as
//!   `on_change` says (a signal, a graceful restart, or nothing);
//! - a changed environment, argument list or working directory cannot reach a running process:
//!   `on_change: restart` restarts the program with it, otherwise it waits for the next start
//!   and `custos-run` says so;
//! - a failed re-attestation (CAS unreachable, evidence unavailable) keeps the program running
//!   with what it has and is retried with backoff; a denial follows `on_denial`.
//!
//! Nothing delivered is ever printed: lines name paths, variables and counts only.

use std::ffi::OsString;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use custos_protocol::enclave::{DeliveredFile, Delivery, OnChange, OnDenial, Refresh};
use rustix::process::Signal;
use tokio::time::Instant;

use crate::RunError;
use crate::config::RunConfig;
use crate::supervise::{Child, Received, Signals};
use crate::{attest, files, launch};

/// The first retry after a failed re-attestation; doubled each time, at most the interval.
const FIRST_RETRY: Duration = Duration::from_secs(2);

/// What `custos-run` needs to start and re-attest the program.
#[derive(Debug)]
pub struct Service<'a> {
    /// The configuration (CAS, evidence, private directories).
    pub config: &'a RunConfig,
    /// `<session>/<service>`.
    pub config_id: &'a str,
    /// The program (the file that is measured).
    pub program: &'a Path,
    /// The arguments given to `custos-run` (used when the session has no command).
    pub given_args: &'a [OsString],
}

type Attestation<'a> = Pin<Box<dyn Future<Output = Result<Delivery, RunError>> + 'a>>;

/// Runs the program under supervision with `delivery` (its files already written) until it
/// ends; returns its exit code, or why it was stopped.
pub async fn supervise(service: &Service<'_>, delivery: Delivery) -> Result<u8, RunError> {
    let mut refresh = delivery
        .refresh
        .clone()
        .ok_or_else(|| RunError::Local("supervise: the delivery asks for no refresh".into()))?;
    // Fail before starting anything if the signal cannot be sent.
    signal_named(&refresh.signal)?;
    let mut signals = Signals::install().map_err(|e| local("signal handlers", e))?;
    let mut child = start(service, &delivery)?;
    let mut current = delivery;
    let mut failures = 0u32;
    let mut next = Instant::now() + next_attestation(&refresh, SystemTime::now());
    let mut pending: Option<Attestation<'_>> = None;
    loop {
        if let Some(exit) = child.reap() {
            eprintln!("custos-run: the program ended ({exit:?}); exiting with its status");
            return Ok(exit.code());
        }
        tokio::select! {
            received = signals.next() => match received {
                Received::Forward(signal) => {
                    let _ = child.signal(signal);
                }
                Received::Refresh if pending.is_none() => {
                    eprintln!("custos-run: SIGHUP: re-attesting");
                    pending = Some(Box::pin(attest::attest(service.config, service.config_id, service.program)));
                }
                Received::Refresh | Received::ChildChanged => {}
            },
            () = tokio::time::sleep_until(next), if pending.is_none() => {
                pending = Some(Box::pin(attest::attest(service.config, service.config_id, service.program)));
            }
            outcome = async { pending.as_mut().expect("guarded").await }, if pending.is_some() => {
                pending = None;
                match outcome {
                    Ok(fresh) => {
                        failures = 0;
                        if let Some(settings) = &fresh.refresh {
                            refresh = settings.clone();
                        }
                        child = apply(service, &refresh, child, &mut signals, &current, &fresh).await?;
                        current = fresh;
                        next = Instant::now() + next_attestation(&refresh, SystemTime::now());
                    }
                    Err(denied @ RunError::Denied { .. }) if refresh.on_denial == OnDenial::Stop => {
                        eprintln!("custos-run: re-attestation denied and on_denial is stop: stopping the program");
                        child.stop(&mut signals, secs(refresh.grace_secs)).await;
                        return Err(denied);
                    }
                    Err(error) => {
                        failures += 1;
                        let wait = retry_after(failures, next_attestation(&refresh, SystemTime::now()));
                        eprintln!("custos-run: re-attestation failed, the program keeps what it has; retrying in {} s: {error}", wait.as_secs());
                        next = Instant::now() + wait;
                    }
                }
            }
        }
    }
}

/// Applies a fresh delivery to the running program; returns the program (restarted or not).
async fn apply(
    service: &Service<'_>,
    refresh: &Refresh,
    child: Child,
    signals: &mut Signals,
    current: &Delivery,
    fresh: &Delivery,
) -> Result<Child, RunError> {
    let changed_files = changed_files(current, fresh);
    let start_changed =
        current.argv != fresh.argv || current.env != fresh.env || current.pwd != fresh.pwd;
    if changed_files.is_empty() && !start_changed {
        eprintln!("custos-run: re-attested: nothing changed");
        return Ok(child);
    }
    let owned: Vec<DeliveredFile> = changed_files.into_iter().cloned().collect();
    files::write_files(&owned, &service.config.private_dirs)?;
    let paths: Vec<&str> = owned.iter().map(|f| f.path.as_str()).collect();
    eprintln!(
        "custos-run: re-attested: {} file(s) rewritten ({}){}",
        owned.len(),
        paths.join(", "),
        if start_changed {
            "; the environment, arguments or working directory changed"
        } else {
            ""
        }
    );
    match refresh.on_change {
        OnChange::Restart => {
            eprintln!("custos-run: on_change restart: restarting the program");
            let exit = child.stop(signals, secs(refresh.grace_secs)).await;
            eprintln!("custos-run: the program stopped ({exit:?}); starting it again");
            return start(service, fresh);
        }
        OnChange::Signal if !owned.is_empty() => {
            let sent = signal_named(&refresh.signal)
                .and_then(|signal| child.signal(signal).map_err(|e| local("signal", e)));
            if let Err(e) = sent {
                eprintln!(
                    "custos-run: cannot send {} to the program: {e}",
                    refresh.signal
                );
            }
        }
        OnChange::Signal | OnChange::None => {}
    }
    if start_changed {
        eprintln!(
            "custos-run: the new environment, arguments or working directory wait for the next start (on_change: restart applies them at once)"
        );
    }
    Ok(child)
}

/// The files of `fresh` whose path is new or whose content or mode changed.
fn changed_files<'d>(current: &Delivery, fresh: &'d Delivery) -> Vec<&'d DeliveredFile> {
    fresh
        .files
        .iter()
        .filter(|file| !current.files.contains(file))
        .collect()
}

fn start(service: &Service<'_>, delivery: &Delivery) -> Result<Child, RunError> {
    let mut command = launch::attested_command(service.program, delivery, service.given_args);
    Child::spawn(&mut command).map_err(|e| RunError::Program {
        path: PathBuf::from(service.program),
        reason: format!("cannot start: {e}"),
    })
}

/// The signal `on_change: signal` sends.
pub fn signal_named(name: &str) -> Result<Signal, RunError> {
    match name {
        "SIGHUP" => Ok(Signal::HUP),
        "SIGUSR1" => Ok(Signal::USR1),
        "SIGUSR2" => Ok(Signal::USR2),
        other => Err(RunError::Local(format!(
            "refresh signal: expected SIGHUP, SIGUSR1 or SIGUSR2, found {other:?}"
        ))),
    }
}

/// The shortest wait before a re-attestation, so a value about to expire is not asked for
/// in a busy loop.
const MIN_WAIT: Duration = Duration::from_secs(1);
/// How long before a value's expiry `custos-run` re-attests, at most. Entra ID tokens are
/// renewed by the CAS's credential only in their last five minutes: re-attesting earlier
/// would bring back the same token.
const EXPIRY_MARGIN: Duration = Duration::from_secs(240);

/// How long to wait, as of `now`, before re-attesting: the interval, or less when a delivered
/// value expires sooner — then until a third of its remaining time, at most
/// [`EXPIRY_MARGIN`], is left, for retries should the CAS be unreachable then. A value that
/// has already expired does not hurry it (re-attesting sooner would not change it);
/// `custos-run` says so.
fn next_attestation(refresh: &Refresh, now: SystemTime) -> Duration {
    let now_secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let interval = secs(refresh.interval_secs);
    let mut wait = interval;
    for (secret, &at) in &refresh.expires {
        match at.checked_sub(now_secs).filter(|left| *left > 0) {
            Some(left) => {
                let left = secs(left);
                wait = wait.min(left - (left / 3).min(EXPIRY_MARGIN));
            }
            None => eprintln!(
                "custos-run: the delivered value of {secret} has expired (at {at}, now {now_secs}); re-attesting every interval until the CAS delivers a valid one"
            ),
        }
    }
    if wait < interval {
        eprintln!(
            "custos-run: re-attesting in {} s, before a delivered value expires",
            wait.max(MIN_WAIT).as_secs()
        );
    }
    wait.max(MIN_WAIT)
}

/// Backoff after `failures` failed re-attestations in a row: 2 s, 4 s, 8 s, … at most `cap`.
fn retry_after(failures: u32, cap: Duration) -> Duration {
    FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(cap)
}

fn secs(seconds: u64) -> Duration {
    Duration::from_secs(seconds)
}

fn local(what: &str, error: std::io::Error) -> RunError {
    RunError::Local(format!("{what}: {error}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, content: &[u8]) -> DeliveredFile {
        DeliveredFile {
            path: path.into(),
            content: content.to_vec(),
            mode: 0o600,
        }
    }

    fn delivery(files: Vec<DeliveredFile>) -> Delivery {
        Delivery {
            argv: vec![],
            env: Default::default(),
            pwd: String::new(),
            files,
            refresh: None,
        }
    }

    #[test]
    fn only_new_or_changed_files_are_rewritten() {
        let current = delivery(vec![file("/a", b"1"), file("/b", b"2")]);
        let fresh = delivery(vec![file("/a", b"1"), file("/b", b"3"), file("/c", b"4")]);
        let changed: Vec<&str> = changed_files(&current, &fresh)
            .iter()
            .map(|f| f.path.as_str())
            .collect();
        assert_eq!(changed, ["/b", "/c"]);
        let mut mode_only = fresh.files[0].clone();
        mode_only.mode = 0o644;
        assert_eq!(
            changed_files(&current, &delivery(vec![mode_only])).len(),
            1,
            "a mode change rewrites the file"
        );
    }

    #[test]
    fn retries_back_off_up_to_the_interval() {
        let cap = Duration::from_secs(30);
        let waits: Vec<u64> = (1..=6).map(|n| retry_after(n, cap).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        assert_eq!(retry_after(u32::MAX, cap), cap);
    }

    #[test]
    fn an_expiring_value_brings_the_next_attestation_forward() {
        let at = |unix: u64| SystemTime::UNIX_EPOCH + secs(unix);
        let mut refresh = Refresh {
            interval_secs: 600,
            on_change: OnChange::Signal,
            signal: "SIGHUP".into(),
            grace_secs: 10,
            on_denial: OnDenial::Keep,
            expires: Default::default(),
        };
        assert_eq!(next_attestation(&refresh, at(1000)), secs(600));
        refresh.expires.insert("TOKEN".into(), 1090);
        refresh.expires.insert("TLS".into(), 1000 + 3600);
        assert_eq!(
            next_attestation(&refresh, at(1000)),
            secs(60),
            "until a third of 90 s is left"
        );
        assert_eq!(next_attestation(&refresh, at(1089)), MIN_WAIT);
        // Already expired: it cannot hurry the next attestation (TLS is an hour away).
        assert_eq!(next_attestation(&refresh, at(2000)), secs(600));
        refresh.expires.clear();
        refresh.expires.insert("TLS".into(), 1000 + 3600);
        assert_eq!(next_attestation(&refresh, at(1000)), secs(600));
        // An hour-long token: re-attest in its last four minutes, when Entra ID's client
        // hands out a new one.
        refresh.interval_secs = 86_400;
        refresh.expires.insert("TOKEN".into(), 1000 + 3600);
        assert_eq!(next_attestation(&refresh, at(1000)), secs(3600 - 240));
    }

    #[test]
    fn only_the_documented_signals_are_sent() {
        assert_eq!(signal_named("SIGUSR2").unwrap(), Signal::USR2);
        let error = signal_named("SIGKILL").unwrap_err();
        assert_eq!(
            error.to_string(),
            "refresh signal: expected SIGHUP, SIGUSR1 or SIGUSR2, found \"SIGKILL\""
        );
    }
}
