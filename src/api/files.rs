//! File helpers shared by the token store and the shared budget: private
//! directories, opens that never follow a planted symlink, and advisory
//! locks that give up instead of hanging on a stuck process.
//!
//! Locks are `flock(2)` locks (std's `File::lock`): they belong to the open
//! file, so two `Client`s in one process exclude each other exactly like two
//! processes do, and the kernel drops them when a process dies (`kill -9`
//! leaves no stale lock). Everything here blocks: call it from
//! `spawn_blocking`.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Creates `dir` and its missing parents readable by the owner only.
/// Existing directories are left as they are.
pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Options for a private (0600) file that refuse to open through a symlink.
pub(crate) fn private_file_options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    opts
}

/// Opens (creating) a lock or state file for reading and writing.
pub(crate) fn open_private(path: &Path) -> io::Result<File> {
    let file = private_file_options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    owned_like_its_directory(&file, path);
    Ok(file)
}

/// Gives a file root just created in a service's directory to that
/// directory's owner. `sudo flexsync login --token-file
/// /var/lib/flexsync/token.json` under systemd's DynamicUser would otherwise
/// leave a token (or lock) file the service cannot read. Anyone else cannot
/// chown and needs nothing: their files are already theirs.
pub(crate) fn owned_like_its_directory(file: &File, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let (Ok(meta), Ok(dir)) = (file.metadata(), std::fs::metadata(parent_dir(path))) else {
            return;
        };
        if meta.uid() == 0 && dir.uid() != 0 {
            let _ = std::os::unix::fs::fchown(file, Some(dir.uid()), Some(dir.gid()));
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
}

/// Takes the exclusive lock on `file`, waiting at most `max_wait`.
pub(crate) fn lock_within(file: &File, max_wait: Duration) -> io::Result<()> {
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < max_wait => {
                // Holders keep these locks for a file write or one token
                // request; polling briefly costs nothing.
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "another flexsync process has held the lock for over {} s",
                        max_wait.as_secs()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// Follows symlinks at the last component of `path` (dangling ones too), so
/// a file can be replaced where it really lives and the link kept.
pub(crate) fn resolve_symlinks(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    // The kernel's own limit on nested links.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&current)?;
                current = match current.parent() {
                    Some(parent) if target.is_relative() => parent.join(target),
                    _ => target,
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{}: too many levels of symbolic links",
        path.display()
    )))
}

/// `path` with `suffix` appended to its file name (`token.json` ->
/// `token.json.lock`).
pub(crate) fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_are_followed_to_the_file_they_name_even_when_it_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real").join("token.json");
        let link = dir.path().join("token.json");
        let hop = dir.path().join("hop.json");
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("real/token.json", &hop).unwrap();
            std::os::unix::fs::symlink("hop.json", &link).unwrap();
            assert_eq!(resolve_symlinks(&link).unwrap(), real);
        }
        let plain = dir.path().join("plain.json");
        assert_eq!(resolve_symlinks(&plain).unwrap(), plain);
    }

    #[test]
    fn a_held_lock_is_given_up_on_after_the_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let holder = open_private(&path).unwrap();
        lock_within(&holder, Duration::ZERO).unwrap();
        // A second open file is a second lock owner, as another process is.
        let other = open_private(&path).unwrap();
        let err = lock_within(&other, Duration::ZERO).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(holder);
        lock_within(&other, Duration::ZERO).unwrap();
    }
}
