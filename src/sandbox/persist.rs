//! The state file: the whole world as JSON, replaced atomically on every change.
//!
//! Atomic means temp file in the same directory, fsync, rename over the old file, fsync
//! the directory: a crash leaves either the old or the new state, never half of one.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SandboxError;
use super::state::World;

const FORMAT: &str = "flexsync-sandbox-state";
const VERSION: u32 = 1;

/// Largest state file read. The biggest seed allowed (20,000 members) saves
/// to about 10 MB; the rest is room for what a long session adds.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

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
    let text = crate::config::load::read_text_capped(path, MAX_STATE_BYTES).map_err(|source| {
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
    use crate::sandbox::Seed;

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
