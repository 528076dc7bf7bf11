//! Writing the delivered files without following anyone's links.
//!
//! A delivered file holds secrets, so where it lands must be decided by the policy alone, not
//! by whoever else can write to the directory. Each file is written as a new temporary file
//! in its directory — created through a handle on that directory with `O_EXCL|O_NOFOLLOW`, so
//! a planted link is never followed — given its mode, synced, and renamed over the target (a
//! link at the target is replaced, not followed). A directory that others may write to is
//! refused unless it is sticky and ours (then nobody else can rename or remove our entries),
//! or the deployment declares it private to the container (`CUSTOS_PRIVATE_DIRS`).

use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use custos_protocol::enclave::DeliveredFile;
use rustix::fs::{Mode, OFlags};

use crate::RunError;

/// Writes every delivered file with its permission bits, creating missing directories;
/// `private_dirs` are trusted although others may write to them.
pub fn write_files(files: &[DeliveredFile], private_dirs: &[PathBuf]) -> Result<(), RunError> {
    for file in files {
        write_file(
            Path::new(&file.path),
            &file.content,
            file.mode,
            private_dirs,
        )?;
    }
    Ok(())
}

fn write_file(
    path: &Path,
    content: &[u8],
    mode: u32,
    private_dirs: &[PathBuf],
) -> Result<(), RunError> {
    let error = |reason: String| RunError::WriteFile {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, reason),
    };
    let io_error = |source: std::io::Error| RunError::WriteFile {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_absolute() {
        return Err(error("injection file paths must be absolute".into()));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(error("injection file paths must not contain `..`".into()));
    }
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(error("the path names no file".into()));
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(parent)
        .map_err(io_error)?;
    let dir = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(e.into()))?;
    if !private_dirs.iter().any(|d| d == parent) {
        check_directory(path, parent, &dir)?;
    }

    let temporary = format!(".{}.custos-{}", name.to_string_lossy(), random_suffix()?);
    let fd = rustix::fs::openat(
        &dir,
        temporary.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| io_error(e.into()))?;
    let written = write_and_sync(fd, content, mode)
        .and_then(|()| {
            rustix::fs::renameat(&dir, temporary.as_str(), &dir, name).map_err(Into::into)
        })
        // The rename is durable only once the directory is.
        .and_then(|()| rustix::fs::fsync(&dir).map_err(Into::into));
    if let Err(e) = written {
        let _ = rustix::fs::unlinkat(&dir, temporary.as_str(), rustix::fs::AtFlags::empty());
        return Err(io_error(e));
    }
    Ok(())
}

fn write_and_sync(fd: OwnedFd, content: &[u8], mode: u32) -> std::io::Result<()> {
    // Set explicitly: the mode given at creation is filtered by the umask.
    rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(content)?;
    file.sync_all()
}

/// Refuses a directory that another user could change entries of.
fn check_directory(file: &Path, path: &Path, dir: &OwnedFd) -> Result<(), RunError> {
    let stat = rustix::fs::fstat(dir).map_err(|e| RunError::WriteFile {
        path: file.to_path_buf(),
        source: e.into(),
    })?;
    let mode = stat.st_mode & 0o7777;
    let writable_by_others = mode & 0o022 != 0;
    let sticky = mode & 0o1000 != 0;
    let uid = rustix::process::geteuid().as_raw();
    if writable_by_others && !(sticky && stat.st_uid == uid) {
        return Err(RunError::WriteFile {
            path: file.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "directory check of {}: expected a directory only its owner may write to, or a sticky one owned by uid {uid}; actual mode {mode:04o}, owner uid {} (others could swap the file)",
                    path.display(),
                    stat.st_uid
                ),
            ),
        });
    }
    Ok(())
}

fn random_suffix() -> Result<String, RunError> {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| RunError::Local("the random number generator failed".into()))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn file(path: &Path, content: &[u8], mode: u32) -> DeliveredFile {
        DeliveredFile {
            path: path.to_str().unwrap().into(),
            content: content.to_vec(),
            mode,
        }
    }

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        dir
    }

    #[test]
    fn files_get_their_mode_and_directories_whatever_the_umask() {
        let dir = private_dir();
        let key = dir.path().join("tls/deep/flask.key");
        let crt = dir.path().join("tls/flask.crt");
        std::fs::create_dir_all(crt.parent().unwrap()).unwrap();
        std::fs::write(&crt, "old content that is longer").unwrap();
        std::fs::set_permissions(&crt, std::fs::Permissions::from_mode(0o777)).unwrap();
        write_files(&[file(&key, b"key", 0o600), file(&crt, b"crt", 0o644)], &[]).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"key");
        assert_eq!(std::fs::read(&crt).unwrap(), b"crt");
        assert_eq!(mode(&key), 0o600);
        assert_eq!(mode(&crt), 0o644);
        // Nothing but the two files is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("tls"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_planted_link_is_replaced_not_followed() {
        let dir = private_dir();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).unwrap();
        let target = dir.path().join("flask.key");
        std::os::unix::fs::symlink(&victim, &target).unwrap();

        write_files(&[file(&target, b"secret", 0o600)], &[]).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(mode(&victim), 0o644, "the link's target was not chmod-ed");
        assert!(std::fs::symlink_metadata(&target).unwrap().is_file());
        assert_eq!(std::fs::read(&target).unwrap(), b"secret");
    }

    #[test]
    fn a_directory_others_can_write_is_refused_unless_sticky_and_ours() {
        let dir = private_dir();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
        let error = write_files(&[file(&shared.join("a.key"), b"k", 0o600)], &[])
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with(&format!("cannot write {}", shared.join("a.key").display()))
                && error.contains("actual mode 0777"),
            "{error}"
        );
        assert!(!shared.join("a.key").exists());

        // Unless the deployment says it is private to this container.
        write_files(
            &[file(&shared.join("b.key"), b"b", 0o600)],
            std::slice::from_ref(&shared),
        )
        .unwrap();
        assert_eq!(std::fs::read(shared.join("b.key")).unwrap(), b"b");

        // Sticky and owned by this user: nobody else can rename or remove our entries.
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
        write_files(&[file(&shared.join("a.key"), b"k", 0o600)], &[]).unwrap();
        assert_eq!(std::fs::read(shared.join("a.key")).unwrap(), b"k");
    }

    #[test]
    fn relative_and_dotdot_paths_are_refused() {
        let error = write_files(&[file(Path::new("tls/flask.key"), b"", 0o600)], &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be absolute"), "{error}");
        let error = write_files(&[file(Path::new("/tls/../etc/flask.key"), b"", 0o600)], &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("must not contain `..`"), "{error}");
    }
}
