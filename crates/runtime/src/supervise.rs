//! `custos-run` as the program's parent (supervisor mode), for services whose secrets are kept
//! fresh: the program runs as a child, and `custos-run` stays — a proper PID 1 in a container.
//!
//! - Signals a container runtime or a user sends (TERM, INT, QUIT, USR1, USR2) are forwarded
//!   to the program; SIGHUP is not: it asks `custos-run` itself to refresh.
//! - Every child that ends is reaped, the program's and orphans' alike: `custos-run` makes
//!   itself the child subreaper, so orphaned grandchildren become its children even when it is
//!   not PID 1.
//! - The program's end is `custos-run`'s: its exit code, or 128 + the signal that ended it, as
//!   a shell reports it.

use std::io;
use std::process::Command;
use std::time::Duration;

use rustix::process::{Pid, Signal, WaitOptions};
use tokio::signal::unix::{SignalKind, signal};

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code.
    Code(i32),
    /// This signal ended it.
    Signal(i32),
}

impl Exit {
    /// The exit code to pass on: the program's own, or 128 + the signal's number.
    pub fn code(self) -> u8 {
        match self {
            Exit::Code(code) => code as u8,
            Exit::Signal(signal) => (128 + signal) as u8,
        }
    }
}

/// The program, running as a child of this process.
#[derive(Debug)]
pub struct Child {
    pid: Pid,
}

impl Child {
    /// Starts `command` as the program and makes this process the reaper of its orphans.
    pub fn spawn(command: &mut Command) -> io::Result<Self> {
        rustix::process::set_child_subreaper(Some(rustix::process::getpid()))?;
        let child = command.spawn()?;
        // Reaped through `reap` (waitpid on any child), never through `std::process::Child`.
        Ok(Self {
            pid: Pid::from_child(&child),
        })
    }

    /// The program's process id.
    pub fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get() as u32
    }

    /// Sends `signal` to the program.
    pub fn signal(&self, signal: Signal) -> io::Result<()> {
        Ok(rustix::process::kill_process(self.pid, signal)?)
    }

    /// Reaps every child that has ended, without waiting; the program's end if it was one.
    pub fn reap(&self) -> Option<Exit> {
        let mut program = None;
        while let Ok(Some((pid, status))) = rustix::process::waitpid(None, WaitOptions::NOHANG) {
            if pid != self.pid {
                continue; // an orphan
            }
            program = match (status.exit_status(), status.terminating_signal()) {
                (Some(code), _) => Some(Exit::Code(code)),
                (None, Some(signal)) => Some(Exit::Signal(signal)),
                (None, None) => program, // stopped or continued: still running
            };
        }
        program
    }

    /// Stops the program: SIGTERM, then SIGKILL if it has not ended within `grace`.
    pub async fn stop(&self, signals: &mut Signals, grace: Duration) -> Exit {
        if let Some(exit) = self.reap() {
            return exit;
        }
        let _ = self.signal(Signal::TERM);
        let deadline = tokio::time::Instant::now() + grace;
        let mut killed = false;
        loop {
            if let Some(exit) = self.reap() {
                return exit;
            }
            tokio::select! {
                _ = signals.child.recv() => {}
                () = tokio::time::sleep_until(deadline), if !killed => {
                    let _ = self.signal(Signal::KILL);
                    killed = true;
                }
                // SIGCHLD may have come between the reap and the select.
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}

/// What arrived for the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A signal for the program.
    Forward(Signal),
    /// SIGHUP: refresh now.
    Refresh,
    /// SIGCHLD: a child ended (or stopped); reap.
    ChildChanged,
}

/// The signals a supervisor handles, installed before the program starts.
#[derive(Debug)]
pub struct Signals {
    forwarded: Vec<(Signal, tokio::signal::unix::Signal)>,
    hangup: tokio::signal::unix::Signal,
    child: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (within a tokio runtime).
    pub fn install() -> io::Result<Self> {
        let forwarded = [
            (Signal::TERM, SignalKind::terminate()),
            (Signal::INT, SignalKind::interrupt()),
            (Signal::QUIT, SignalKind::quit()),
            (Signal::USR1, SignalKind::user_defined1()),
            (Signal::USR2, SignalKind::user_defined2()),
        ]
        .into_iter()
        .map(|(name, kind)| Ok((name, signal(kind)?)))
        .collect::<io::Result<_>>()?;
        Ok(Self {
            forwarded,
            hangup: signal(SignalKind::hangup())?,
            child: signal(SignalKind::child())?,
        })
    }

    /// The next signal.
    pub async fn next(&mut self) -> Received {
        let forwarded = first_forwarded(&mut self.forwarded);
        tokio::select! {
            name = forwarded => Received::Forward(name),
            _ = self.hangup.recv() => Received::Refresh,
            _ = self.child.recv() => Received::ChildChanged,
        }
    }
}

/// The first of the forwarded signals to arrive.
async fn first_forwarded(signals: &mut [(Signal, tokio::signal::unix::Signal)]) -> Signal {
    std::future::poll_fn(|cx| {
        for (name, stream) in signals.iter_mut() {
            if stream.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*name);
            }
        }
        std::task::Poll::Pending
    })
    .await
}
