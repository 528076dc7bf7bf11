//! The demo's background processes: started with their output in log files, awaited until
//! they say they are ready, and stopped (SIGTERM, then SIGKILL) when the demo ends.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a process may take to say it is ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopped process may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

pub struct Processes {
    logs: PathBuf,
    children: Vec<(String, Child)>,
    detached: bool,
}

impl Processes {
    pub fn new(logs: PathBuf) -> Self {
        Self {
            logs,
            children: Vec::new(),
            detached: false,
        }
    }

    /// Where `name`'s stderr (and, unless captured apart, stdout) goes.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.log"))
    }

    /// Where `name`'s stdout goes when captured apart.
    pub fn stdout_path(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{name}.out"))
    }

    /// Starts `command` with all its output in `name.log`; returns the first line containing
    /// `ready`.
    pub fn start(&mut self, name: &str, command: Command, ready: &str) -> Result<String, String> {
        let log = self.log_path(name);
        self.spawn(name, command, &log, &log)?;
        self.wait_for(name, ready)
    }

    /// Starts `command` with stdout in `name.out` and stderr in `name.log`; returns the first
    /// stdout line containing `ready`.
    pub fn start_with_stdout(
        &mut self,
        name: &str,
        command: Command,
        ready: &str,
    ) -> Result<String, String> {
        let (out, log) = (self.stdout_path(name), self.log_path(name));
        self.spawn(name, command, &out, &log)?;
        self.wait_in(name, &out, ready)
    }

    fn spawn(
        &mut self,
        name: &str,
        mut command: Command,
        stdout: &Path,
        stderr: &Path,
    ) -> Result<(), String> {
        let open = |path: &Path| {
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))
        };
        let out = open(stdout)?;
        let err = if stdout == stderr {
            out.try_clone().map_err(|e| e.to_string())?
        } else {
            open(stderr)?
        };
        command
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            // Plain logs: they are parsed and shown.
            .env("NO_COLOR", "1");
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.children.push((name.to_owned(), child));
        Ok(())
    }

    /// Waits for a line containing `ready` in `name.log`.
    pub fn wait_for(&mut self, name: &str, ready: &str) -> Result<String, String> {
        let log = self.log_path(name);
        self.wait_in(name, &log, ready)
    }

    fn wait_in(&mut self, name: &str, file: &Path, ready: &str) -> Result<String, String> {
        let started = Instant::now();
        loop {
            if let Some(line) = fs::read_to_string(file)
                .unwrap_or_default()
                .lines()
                .map(strip_ansi)
                .find(|line| line.contains(ready))
            {
                return Ok(line);
            }
            let child = self
                .children
                .iter_mut()
                .find(|(n, _)| n == name)
                .map(|(_, c)| c)
                .ok_or_else(|| format!("{name} was not started"))?;
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!(
                    "{name} exited ({status}) before it was ready; its log:\n{}",
                    tail(&self.log_path(name), 15)
                ));
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(format!(
                    "{name} did not say {ready:?} within {READY_TIMEOUT:?}; its log:\n{}",
                    tail(&self.log_path(name), 15)
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything `name` logged so far, without colour codes.
    pub fn lines(&self, name: &str) -> Vec<String> {
        fs::read_to_string(self.log_path(name))
            .unwrap_or_default()
            .lines()
            .map(strip_ansi)
            .collect()
    }

    pub fn pids(&self) -> Vec<(String, u32)> {
        self.children
            .iter()
            .map(|(name, child)| (name.clone(), child.id()))
            .collect()
    }

    /// Leaves the processes running after the demo.
    pub fn detach(&mut self) {
        self.detached = true;
    }

    /// Stops every process, newest first; returns how many there were.
    pub fn stop_all(&mut self) -> usize {
        let count = self.children.len();
        while let Some((_, mut child)) = self.children.pop() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let started = Instant::now();
            while matches!(child.try_wait(), Ok(None)) && started.elapsed() < STOP_GRACE {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        count
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        if !self.detached {
            self.stop_all();
        }
    }
}

/// The last `n` lines of a log file, indented for display.
pub fn tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|line| format!("        {}", strip_ansi(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A log line without terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[2mlisten\u{1b}[0m=127.0.0.1:1 \u{1b}[32mINFO\u{1b}[0m"),
            "listen=127.0.0.1:1 INFO"
        );
    }
}
