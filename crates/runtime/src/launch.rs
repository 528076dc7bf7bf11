//! Starting the program: `exec` with the policy's arguments, environment and working
//! directory (the delivered files are written first, by [`crate::files`]).

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use custos_protocol::enclave::Delivery;

use crate::RunError;

/// Finds `program` the way a shell would: as a path if it contains `/`, else on `PATH`.
pub fn resolve_program(program: &OsStr) -> Result<PathBuf, RunError> {
    let as_path = Path::new(program);
    if as_path.components().count() > 1 || program.to_string_lossy().contains('/') {
        return Ok(as_path.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or_else(|| RunError::Program {
            path: as_path.to_path_buf(),
            reason: "not found on PATH".into(),
        })
}

/// Replaces this process with `program` as the policy says. Returns only on failure.
///
/// `program` is the file that was measured; the policy's `argv[0]` becomes its `argv[0]`,
/// and an empty policy command keeps the command line given to `custos-run`.
pub fn exec_attested(program: &Path, delivery: &Delivery, given_args: &[OsString]) -> RunError {
    exec_error(
        program,
        attested_command(program, delivery, given_args).exec(),
    )
}

/// The command that starts `program` as the policy says (see [`exec_attested`]).
pub fn attested_command(program: &Path, delivery: &Delivery, given_args: &[OsString]) -> Command {
    let mut command = Command::new(program);
    match delivery.argv.split_first() {
        Some((arg0, rest)) => {
            command.arg0(arg0).args(rest);
        }
        None => {
            command.args(given_args);
        }
    }
    command.env_clear().envs(&delivery.env);
    if !delivery.pwd.is_empty() {
        command.current_dir(&delivery.pwd);
    }
    command
}

/// Replaces this process with `program args` unchanged (no config id: no attestation).
pub fn exec_unchanged(program: &OsStr, args: &[OsString]) -> RunError {
    exec_error(Path::new(program), Command::new(program).args(args).exec())
}

fn exec_error(program: &Path, error: std::io::Error) -> RunError {
    RunError::Program {
        path: program.to_path_buf(),
        reason: format!("cannot start: {error}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_resolve_like_a_shell() {
        assert_eq!(
            resolve_program(OsStr::new("./app")).unwrap(),
            PathBuf::from("./app")
        );
        let sh = resolve_program(OsStr::new("sh")).unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{}", sh.display());
        let error = resolve_program(OsStr::new("no-such-program-custos")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "no-such-program-custos: not found on PATH"
        );
    }
}
