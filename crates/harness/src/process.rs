//! A child process whose standard output and error go to files in a log directory (so it can
//! outlive the orchestrator: `custos demo --keep-running`), waited on for a ready file or a
//! log line within a deadline, and killed when its handle drops unless detached.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use crate::ready;

/// How often files are polled.
const POLL: Duration = Duration::from_millis(20);
/// Log lines shown when a process fails to start.
const TAIL_LINES: usize = 15;

/// A log file of a process.
#[derive(Debug, Clone)]
pub struct Log(PathBuf);

impl Log {
    /// The file.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Everything written so far.
    pub fn text(&self) -> String {
        fs::read_to_string(&self.0).unwrap_or_default()
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<String> {
        self.text().lines().map(str::to_owned).collect()
    }

    /// The first line containing `needle`, waiting for it at most `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.find(needle) {
                return Some(line);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    fn find(&self, needle: &str) -> Option<String> {
        self.text()
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_owned)
    }
}

/// A child process, killed when dropped (unless [`Process::detach`]ed).
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    detached: bool,
    /// Standard output: `LOGS/NAME.out`.
    pub stdout: Log,
    /// Standard error, the log of every Custos program: `LOGS/NAME.log`.
    pub stderr: Log,
}

impl Process {
    /// Starts `command` with no input, its output in `log_dir` (created if missing) under
    /// `name` (made unique there: `NAME-2.log`, … when taken), and plain (uncoloured) logs.
    pub fn spawn(name: &str, command: &mut Command, log_dir: &Path) -> Result<Self, String> {
        fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
        let stem = unique_stem(log_dir, name, &["out", "log"]);
        let stdout = log_dir.join(format!("{stem}.out"));
        let stderr = log_dir.join(format!("{stem}.log"));
        let create =
            |path: &Path| File::create_new(path).map_err(|e| format!("{}: {e}", path.display()));
        let (out, err) = (create(&stdout)?, create(&stderr)?);
        let child = command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env("NO_COLOR", "1")
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            detached: false,
            stdout: Log(stdout),
            stderr: Log(stderr),
        })
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Both logs, standard output first.
    pub fn logs(&self) -> String {
        format!("{}{}", self.stdout.text(), self.stderr.text())
    }

    /// The last lines of its log (standard error), indented, for an error message.
    pub fn tail(&self) -> String {
        let text = self.stderr.text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(TAIL_LINES)..]
            .iter()
            .map(|line| format!("        {line}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether it has exited, and how.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits for it to exit (at most `timeout`).
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits until `found` gives a value, failing when the process exits first (after one
    /// last look: what it wrote before exiting counts) or `timeout` passes.
    fn wait_until<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut found: impl FnMut() -> Result<Option<T>, String>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.try_wait();
            if let Some(value) = found()? {
                return Ok(value);
            }
            if let Some(status) = exited {
                return Err(format!(
                    "{} exited ({status}) before {what}; its log:\n{}",
                    self.name,
                    self.tail()
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "{}: no {what} within {timeout:?}; its log:\n{}",
                    self.name,
                    self.tail()
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the ready document at `path` (see [`ready`]).
    pub fn wait_ready<T: DeserializeOwned>(
        &mut self,
        path: &Path,
        timeout: Duration,
    ) -> Result<T, String> {
        self.wait_until(&format!("it wrote {}", path.display()), timeout, || {
            ready::read(path)
        })
    }

    /// Waits for a line containing `needle` in its log (standard error); returns it.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let log = self.stderr.clone();
        self.wait_until(&format!("a line with {needle:?}"), timeout, || {
            Ok(log.find(needle))
        })
    }

    /// Stops it: SIGTERM, then SIGKILL if it has not exited within `grace`.
    pub fn stop(&mut self, grace: Duration) {
        if self.try_wait().is_none() {
            let _ = Command::new("kill")
                .args(["-TERM", &self.id().to_string()])
                .stderr(Stdio::null())
                .status();
            self.wait(grace);
        }
        self.kill();
    }

    /// Kills it (SIGKILL: no chance to clean up, as in a crash) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Leaves it running when the handle drops.
    pub fn detach(&mut self) {
        self.detached = true;
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.detached {
            self.kill();
        }
    }
}

/// `name` made a plain file name, unique in `dir` for each extension in `extensions`
/// (`NAME`, `NAME-2`, …).
pub(crate) fn unique_stem(dir: &Path, name: &str, extensions: &[&str]) -> String {
    let base: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut stem = base.clone();
    for n in 2.. {
        if extensions
            .iter()
            .all(|ext| !dir.join(format!("{stem}.{ext}")).exists())
        {
            break;
        }
        stem = format!("{base}-{n}");
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_files_and_a_second_process_of_the_same_name_gets_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = Process::spawn(
            "a shell",
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            dir.path(),
        )
        .unwrap();
        let mut second = Process::spawn(
            "a shell",
            Command::new("sh").args(["-c", "echo two >&2"]),
            dir.path(),
        )
        .unwrap();
        first.wait(Duration::from_secs(10)).unwrap();
        second.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(first.stdout.text(), "out\n");
        assert_eq!(first.stderr.text(), "err\n");
        assert_eq!(second.stderr.path(), dir.path().join("a-shell-2.log"));
        assert_eq!(second.stderr.text(), "two\n");
    }

    #[test]
    fn waiting_fails_with_the_log_when_the_process_exits_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Process::spawn(
            "failing",
            Command::new("sh").args(["-c", "echo cannot listen >&2; exit 3"]),
            dir.path(),
        )
        .unwrap();
        let error = process
            .wait_ready::<ready::LasReady>(&dir.path().join("ready"), Duration::from_secs(30))
            .unwrap_err();
        assert!(
            error.contains("failing exited") && error.contains("cannot listen"),
            "{error}"
        );
    }

    #[test]
    fn a_line_written_just_before_exit_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Process::spawn(
            "quick",
            Command::new("sh").args(["-c", "echo listening on x >&2"]),
            dir.path(),
        )
        .unwrap();
        process.wait(Duration::from_secs(10)).unwrap();
        assert_eq!(
            process
                .wait_for("listening on", Duration::from_secs(1))
                .unwrap(),
            "listening on x"
        );
    }

    #[test]
    fn a_process_still_starting_at_the_deadline_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let mut process =
            Process::spawn("sleeper", Command::new("sleep").arg("30"), dir.path()).unwrap();
        let error = process
            .wait_ready::<ready::LasReady>(&dir.path().join("ready"), Duration::from_millis(100))
            .unwrap_err();
        assert!(error.contains("sleeper: no it wrote"), "{error}");
        process.stop(Duration::from_secs(5));
        assert!(process.try_wait().is_some());
    }
}
