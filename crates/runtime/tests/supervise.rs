//! The supervisor's process handling with real child processes. One test, run in this binary
//! alone: the supervisor reaps *any* ended child, which would steal the children of tests run
//! beside it.

use std::process::Command;
use std::time::{Duration, Instant};

use custos_runtime::supervise::{Child, Exit, Received, Signals};
use rustix::process::Signal;

fn sh(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

/// The state letter of `pid` in /proc (`Z`: ended, not reaped); `None` once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(") ").next()?.chars().next()
}

#[test]
fn the_program_s_end_signals_and_orphans_are_handled_like_a_pid_1() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut signals = Signals::install().unwrap();
        let mut refreshes = 0;

        // The exit code passes through; a signal's end becomes 128 + its number.
        let child = Child::spawn(&mut sh("exit 3")).unwrap();
        let exit = until_exit(&child, &mut signals, || refreshes += 1).await;
        assert_eq!((exit, exit.code()), (Exit::Code(3), 3));
        let child = Child::spawn(&mut sh("kill -TERM $$")).unwrap();
        let exit = until_exit(&child, &mut signals, || refreshes += 1).await;
        assert_eq!((exit, exit.code()), (Exit::Signal(15), 143));

        // Signals sent to the supervisor reach the program; SIGHUP stays with the supervisor.
        let child = Child::spawn(&mut sh(
            "trap 'exit 7' USR1; trap '' HUP; while :; do sleep 0.02; done",
        ))
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await; // the traps are set
        tokio::spawn(async {
            let me = rustix::process::getpid();
            rustix::process::kill_process(me, Signal::HUP).unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
            rustix::process::kill_process(me, Signal::USR1).unwrap();
        });
        let exit = until_exit(&child, &mut signals, || refreshes += 1).await;
        assert_eq!(exit, Exit::Code(7));
        assert_eq!(refreshes, 1, "SIGHUP asked for one refresh");

        // An orphan (the program's background child, left behind) is reaped when it ends.
        let orphan_file = tempfile::NamedTempFile::new().unwrap();
        let child = Child::spawn(&mut sh(&format!(
            "sleep 0.3 & echo $! > {}; exit 0",
            orphan_file.path().display()
        )))
        .unwrap();
        assert_eq!(until_exit(&child, &mut signals, || {}).await, Exit::Code(0));
        let orphan: u32 = std::fs::read_to_string(orphan_file.path())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let _ = child.reap();
            match state(orphan) {
                None => break, // reaped: gone from /proc
                Some(state) if Instant::now() > deadline => {
                    panic!("orphan {orphan} still there after 5 s, state {state}")
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }

        // A program that ignores SIGTERM is killed after the grace period.
        let child = Child::spawn(&mut sh("trap '' TERM; while :; do sleep 0.02; done")).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        let exit = child.stop(&mut signals, Duration::from_millis(300)).await;
        assert_eq!(exit, Exit::Signal(9));
        assert!(started.elapsed() >= Duration::from_millis(300));
        // One that honours it ends at once.
        let child = Child::spawn(&mut sh("while :; do sleep 0.02; done")).unwrap();
        let started = Instant::now();
        assert_eq!(
            child.stop(&mut signals, Duration::from_secs(5)).await,
            Exit::Signal(15)
        );
        assert!(started.elapsed() < Duration::from_secs(2));
    });
}

/// Runs the program until it ends, forwarding signals and reaping children; `on_refresh` is
/// called for SIGHUP. Returns how the program ended.
async fn until_exit(child: &Child, signals: &mut Signals, mut on_refresh: impl FnMut()) -> Exit {
    loop {
        if let Some(exit) = child.reap() {
            return exit;
        }
        match signals.next().await {
            Received::Forward(signal) => {
                let _ = child.signal(signal);
            }
            Received::Refresh => on_refresh(),
            Received::ChildChanged => {}
        }
    }
}
