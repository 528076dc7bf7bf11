//! Starting the program: the delivered files, then `exec` with the policy's arguments,
//! environment and working directory.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use custos_protocol::enclave::{DeliveredFile, Delivery};

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

/// Writes every delivered file with its permission bits, creating missing directories.
pub fn write_files(files: &[DeliveredFile]) -> Result<(), RunError> {
    for file in files {
        let path = Path::new(&file.path);
        let error = |source| RunError::WriteFile {
            path: path.to_path_buf(),
            source,
        };
        if !path.is_absolute() {
            return Err(error(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "injection file paths must be absolute",
            )));
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(file.mode)
            .open(path)
            .map_err(error)?;
        // The mode above is filtered by the umask and ignored for an existing file.
        out.set_permissions(std::fs::Permissions::from_mode(file.mode))
            .map_err(error)?;
        out.write_all(&file.content).map_err(error)?;
        out.sync_all().map_err(error)?;
    }
    Ok(())
}

/// Replaces this process with `program` as the policy says. Returns only on failure.
///
/// `program` is the file that was measured; the policy's `argv[0]` becomes its `argv[0]`,
/// and an empty policy command keeps the command line given to `custos-run`.
pub fn exec_attested(program: &Path, delivery: &Delivery, given_args: &[OsString]) -> RunError {
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
    exec_error(program, command.exec())
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
    fn files_get_their_mode_and_directories_whatever_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("tls/deep/flask.key");
        let crt = dir.path().join("tls/flask.crt");
        std::fs::create_dir_all(crt.parent().unwrap()).unwrap();
        std::fs::write(&crt, "old content that is longer").unwrap();
        std::fs::set_permissions(&crt, std::fs::Permissions::from_mode(0o777)).unwrap();
        let files = vec![
            DeliveredFile {
                path: key.to_str().unwrap().into(),
                content: b"key".to_vec(),
                mode: 0o600,
            },
            DeliveredFile {
                path: crt.to_str().unwrap().into(),
                content: b"crt".to_vec(),
                mode: 0o644,
            },
        ];
        write_files(&files).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        assert_eq!(std::fs::read(&crt).unwrap(), b"crt");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&crt), 0o644);
    }

    #[test]
    fn relative_paths_are_refused() {
        let files = vec![DeliveredFile {
            path: "tls/flask.key".into(),
            content: vec![],
            mode: 0o600,
        }];
        let error = write_files(&files).unwrap_err().to_string();
        assert!(error.contains("must be absolute"), "{error}");
    }

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
