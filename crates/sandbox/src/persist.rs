//! The state file: the whole world as JSON, replaced atomically on every change.
//!
//! Atomic means temp file in the same directory, fsync, rename over the old file, fsync
//! the directory: a crash leaves either the old or the new state, never half of one.
//!
//! One process owns a state file at a time ([`lock`]): two would each load the state,
//! then overwrite each other's changes with every save.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SandboxError;
use super::state::World;

const FORMAT: &str = "flexsync-sandbox-state";
const VERSION: u32 = 1;

/// Largest state file read. The biggest seed allowed (20,000 members) saves
/// to about 10 MB; the rest is room for what a long session adds.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Exclusive ownership of a state file, held for as long as this value lives (the lock
/// is released when the file closes, also when the process dies).
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

/// The lock file next to `state`: `sandbox.json` is locked through `sandbox.json.lock`.
/// Not the state file itself, which every save replaces by a rename.
pub(crate) fn lock_path(state: &Path) -> PathBuf {
    let name = state
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sandbox.json".to_owned());
    state.with_file_name(format!("{name}.lock"))
}

/// Takes the exclusive lock on `state` without waiting, or says who holds it.
pub(crate) fn lock(state: &Path) -> Result<StateLock, SandboxError> {
    let path = lock_path(state);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Should something other than a file sit there (a FIFO), opening must not wait.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let mut file = options.open(&path).map_err(io_err(&path))?;
    if !file.metadata().map_err(io_err(&path))?.is_file() {
        return Err(io_err(&path)(std::io::Error::other("not a regular file")));
    }
    match file.try_lock() {
        Ok(()) => {
            // Best effort: only the message a second process shows depends on it.
            let _ = file
                .set_len(0)
                .and_then(|()| writeln!(file, "{}", holder()));
            Ok(StateLock { _file: file })
        }
        Err(fs::TryLockError::WouldBlock) => {
            let holder = crate::read::read_text_capped(&path, 4096)
                .ok()
                .and_then(|t| t.lines().next().map(|l| l.trim().to_owned()))
                .filter(|l| !l.is_empty());
            Err(SandboxError::Locked {
                path: state.display().to_string(),
                holder,
            })
        }
        Err(fs::TryLockError::Error(e)) => Err(io_err(&path)(e)),
    }
}

/// `pid 4242: flexsync run --sandbox`: this process, as a second one is told. Only
/// subcommand words and `--sandbox` are kept; values (paths, URLs) never are.
fn holder() -> String {
    // args_os: `args` panics on an argument that is not UTF-8.
    let words: Vec<String> = std::env::args_os()
        .take(6)
        .enumerate()
        .filter_map(|(i, arg)| {
            if i == 0 {
                return Path::new(&arg)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned());
            }
            let arg = arg.to_str()?;
            let word = !arg.is_empty() && arg.chars().all(|c| c.is_ascii_lowercase());
            (word || arg == "--sandbox").then(|| arg.to_owned())
        })
        .collect();
    format!("pid {}: {}", std::process::id(), words.join(" "))
}

#[derive(Serialize)]
struct StateFileRef<'a> {
    format: &'a str,
    version: u32,
    world: &'a World,
}

#[derive(Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    world: World,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
    move |source| SandboxError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `world` to `path` atomically.
pub(crate) fn save(path: &Path, world: &World) -> Result<(), SandboxError> {
    let bytes = serde_json::to_vec_pretty(&StateFileRef {
        format: FORMAT,
        version: VERSION,
        world,
    })
    .map_err(|e| io_err(path)(std::io::Error::other(e)))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sandbox.json".to_owned());
    let tmp = dir.join(format!(".{file_name}.tmp"));
    {
        let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    fs::rename(&tmp, path).map_err(io_err(path))?;
    // The rename itself lives in the directory; without this a crash could lose it.
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))?;
    Ok(())
}

/// Reads a state file written by [`save`].
pub(crate) fn load(path: &Path) -> Result<World, SandboxError> {
    let text = crate::read::read_text_capped(path, MAX_STATE_BYTES).map_err(|source| {
        SandboxError::Read {
            path: path.display().to_string(),
            what: "sandbox state",
            source,
        }
    })?;
    let file: StateFile = serde_json::from_str(&text).map_err(|e| SandboxError::StateSyntax {
        path: path.display().to_string(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    })?;
    if file.format != FORMAT || file.version != VERSION {
        return Err(SandboxError::StateSyntax {
            path: path.display().to_string(),
            line: 1,
            column: 1,
            message: format!(
                "expected format {FORMAT:?} version {VERSION}, found {:?} version {}",
                file.format, file.version
            ),
        });
    }
    Ok(file.world)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Seed;

    #[test]
    fn round_trip_and_no_temp_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let world = Seed::bundled().unwrap().world();
        save(&path, &world).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back.teams.len(), world.teams.len());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("state.json")]);
    }

    #[test]
    fn broken_file_error_names_file_and_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, "{\n  \"format\": 3\n}").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("state.json:2:"), "{err}");
    }
}
