//! File watching: editors' atomic renames, `git pull`, and Kubernetes
//! ConfigMap `..data` symlink swaps all replace files rather than write
//! them, so the parent directory is watched, not the files. Any event is
//! only a hint: the controller re-reads and compares content hashes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};
use tokio::sync::mpsc;

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Watches every path (a file's parent directory, or a directory
/// recursively) and sends `()` on `tx` after changes settle.
pub fn watch(paths: &[PathBuf], tx: mpsc::Sender<()>) -> notify::Result<Watcher> {
    let names: Vec<Option<std::ffi::OsString>> = paths
        .iter()
        .map(|p| {
            (!p.is_dir())
                .then(|| p.file_name().map(|n| n.to_owned()))
                .flatten()
        })
        .collect();
    let files: Vec<(PathBuf, Option<std::ffi::OsString>)> =
        paths.iter().cloned().zip(names).collect();
    let relevant = files.clone();
    let mut debouncer = new_debouncer(
        Duration::from_millis(100),
        None,
        move |res: DebounceEventResult| {
            let Ok(events) = res else { return };
            let hit = events.iter().any(|e| {
                e.paths.iter().any(|p| {
                    relevant.iter().any(|(root, name)| match name {
                        // A watched file: its own name, or the ConfigMap
                        // `..data` swap in its directory.
                        Some(name) => {
                            p.file_name() == Some(name.as_os_str())
                                || p.file_name() == Some(std::ffi::OsStr::new("..data"))
                        }
                        None => p.starts_with(root),
                    })
                })
            });
            if hit {
                // A full channel already holds a pending reload.
                let _ = tx.try_send(());
            }
        },
    )?;
    for (path, name) in &files {
        match name {
            Some(_) => {
                let parent = path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                debouncer.watch(parent, RecursiveMode::NonRecursive)?;
            }
            None => {
                debouncer.watch(path, RecursiveMode::Recursive)?;
                // A directory reached through a symlink that is swapped
                // (git-sync's `current`) is replaced, not written: watch
                // its parent for the swap too.
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    debouncer.watch(parent, RecursiveMode::NonRecursive)?;
                }
            }
        }
    }
    Ok(Watcher {
        _debouncer: debouncer,
    })
}
