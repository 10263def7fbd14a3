//! File watching: editors' atomic renames, `git pull`, and Kubernetes
//! ConfigMap `..data` symlink swaps all replace files rather than write
//! them, so the parent directory is watched, not the files. Any event is
//! only a hint: the controller re-reads, waits for the files to settle and
//! compares content hashes.
//!
//! Paths are made absolute first: inotify reports absolute paths, and a
//! relative root would never match them. Access events are ignored, so the
//! service's own reads never wake it. No debouncing thread runs here: the
//! controller's settle window is the debounce, and an idle service has no
//! timer ticking on behalf of the watcher.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Keeps the watcher alive; dropping it stops watching.
pub struct Watcher {
    _inner: RecommendedWatcher,
}

/// What one named path asks to be told about.
#[derive(Clone, Debug)]
struct Root {
    /// Absolute, with `.` and `..` resolved lexically (never through
    /// symlinks: a git-sync `current` link must stay the name watched).
    path: PathBuf,
    /// For a file: its name, matched in its directory.
    file_name: Option<OsString>,
}

impl Root {
    /// Whether an event on `p` may concern this root.
    fn concerns(&self, p: &Path) -> bool {
        match &self.file_name {
            // The file itself, or the ConfigMap `..data` swap beside it.
            Some(name) => {
                p.parent() == self.path.parent()
                    && (p.file_name() == Some(name.as_os_str())
                        || p.file_name() == Some(std::ffi::OsStr::new("..data")))
            }
            // Anything under the directory, or the directory (or the link
            // naming it) being replaced.
            None => p.starts_with(&self.path),
        }
    }
}

/// `path` made absolute against `cwd`, `.` and `..` resolved lexically.
pub fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_owned()
    } else {
        cwd.join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Watches every path (a file's parent directory, or a directory
/// recursively plus its parent for swaps) and sends `()` on `tx` when
/// something that may concern them changes.
pub fn watch(paths: &[PathBuf], tx: mpsc::Sender<()>) -> notify::Result<Watcher> {
    let cwd = std::env::current_dir().map_err(notify::Error::io)?;
    let roots: Vec<Root> = paths
        .iter()
        .map(|p| {
            let path = absolute(p, &cwd);
            let file_name = (!path.is_dir())
                .then(|| path.file_name().map(|n| n.to_owned()))
                .flatten();
            Root { path, file_name }
        })
        .collect();
    let relevant = roots.clone();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            // An overflow or error: re-read rather than miss a change.
            let _ = tx.try_send(());
            return;
        };
        // Reading the files (ours included) is not a change.
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        let hit = event.need_rescan()
            || event
                .paths
                .iter()
                .any(|p| relevant.iter().any(|r| r.concerns(p)));
        if hit {
            // A full channel already holds a pending look.
            let _ = tx.try_send(());
        }
    })?;
    for root in &roots {
        let parent = root.path.parent().unwrap_or(Path::new("/"));
        match root.file_name {
            Some(_) => watcher.watch(parent, RecursiveMode::NonRecursive)?,
            None => {
                watcher.watch(&root.path, RecursiveMode::Recursive)?;
                // A directory reached through a symlink that is swapped
                // (git-sync's `current`) is replaced, not written: watch its
                // parent for the swap too.
                watcher.watch(parent, RecursiveMode::NonRecursive)?;
            }
        }
    }
    Ok(Watcher { _inner: watcher })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_become_absolute_without_resolving_links() {
        let cwd = Path::new("/srv/flexsync");
        for (given, expected) in [
            ("teams", "/srv/flexsync/teams"),
            ("./teams/", "/srv/flexsync/teams"),
            ("../git/current/a.yaml", "/srv/git/current/a.yaml"),
            ("/etc/x.yaml", "/etc/x.yaml"),
        ] {
            assert_eq!(
                absolute(Path::new(given), cwd),
                Path::new(expected),
                "{given}"
            );
        }
    }

    #[test]
    fn events_are_matched_to_what_was_named() {
        let dir = Root {
            path: PathBuf::from("/srv/teams"),
            file_name: None,
        };
        assert!(dir.concerns(Path::new("/srv/teams/a.yaml")));
        assert!(dir.concerns(Path::new("/srv/teams/sub/b.yaml")));
        assert!(dir.concerns(Path::new("/srv/teams")));
        assert!(!dir.concerns(Path::new("/srv/other.yaml")));
        let file = Root {
            path: PathBuf::from("/srv/teams/a.yaml"),
            file_name: Some("a.yaml".into()),
        };
        assert!(file.concerns(Path::new("/srv/teams/a.yaml")));
        assert!(file.concerns(Path::new("/srv/teams/..data")));
        assert!(!file.concerns(Path::new("/srv/teams/b.yaml")));
        assert!(!file.concerns(Path::new("/elsewhere/a.yaml")));
    }
}
