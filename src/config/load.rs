//! Reading desired-state files from disk and parsing them, defensively.
//!
//! Files come from pull requests, so any of them may be hostile: huge, binary,
//! not UTF-8, an alias bomb, nested a thousand levels deep, a FIFO that never
//! delivers a byte, a symlink that leads back to its own directory. Each such
//! file becomes a diagnostic; nothing here panics, blocks or runs unbounded.
//! Files are opened through [`crate::input_file`], like every file flexsync
//! did not write itself.

use std::collections::BTreeSet;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};

use serde_saphyr::MessageFormatter;

use super::format::Document;
use crate::diagnostic::{Diagnostic, Sources};
use crate::input_file::{ReadError, read_capped, size_text};

/// A declaration of 100,000 people, with names, is about 10 MB (an export
/// of such a team, in one file); no real team reaches the cap, which keeps
/// a hostile 10 GB file from being read.
pub const MAX_FILE_BYTES: u64 = 32 * 1024 * 1024;

/// Directories below a named one are followed this deep: real layouts
/// (teams/region/…, a ConfigMap mount, a git-sync worktree) use a handful.
pub const MAX_WALK_DEPTH: usize = 32;

/// Directory entries a walk looks at before giving up: a symlink to `/` or
/// to a huge tree must end in a diagnostic, not a walk of the whole disk.
pub const MAX_WALK_ENTRIES: usize = 100_000;

/// One parsed document and where it came from.
#[derive(Debug)]
pub struct ParsedDocument {
    /// Display name of the file.
    pub file: String,
    /// 1-based index of the document within its file.
    pub index: usize,
    pub document: Document,
}

/// Expands the paths given on the command line into the YAML files to read:
/// a file as is, a directory as every `*.yaml`/`*.yml` below it in sorted
/// order. Hidden entries are skipped, which also skips the `..data` and
/// `..2026_…` twins of a Kubernetes ConfigMap mount. Symlinks are followed
/// (ConfigMaps and git-sync are made of them), but a directory that leads
/// back to one of its ancestors is a diagnostic, and so are walks deeper or
/// wider than [`MAX_WALK_DEPTH`] and [`MAX_WALK_ENTRIES`]. Problems are
/// collected, so the files that can be read are still checked.
pub fn expand_paths(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Diagnostic>) {
    let mut walk = Walk::default();
    for path in paths {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => walk.dir(path, &meta, &mut Vec::new()),
            // Anything else is read (or refused) by `read_file`, which
            // names FIFOs and devices.
            Ok(_) => walk.files.push(path.clone()),
            Err(e) => walk.diagnostics.push(Diagnostic::error(
                &display(path),
                0,
                0,
                format!("cannot read: {e}"),
            )),
        }
    }
    let Walk {
        mut files,
        diagnostics,
        ..
    } = walk;
    // The same file reached twice (a directory and a file in it, `./a` and
    // `a`) is read once.
    let mut seen = BTreeSet::new();
    files.retain(|f| seen.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    (files, diagnostics)
}

/// What identifies a directory however it is reached: device and inode
/// (elsewhere, the canonical path).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct DirId(#[cfg(unix)] (u64, u64), #[cfg(not(unix))] PathBuf);

#[cfg(unix)]
fn dir_id(_path: &Path, meta: &Metadata) -> Option<DirId> {
    use std::os::unix::fs::MetadataExt;
    Some(DirId((meta.dev(), meta.ino())))
}

#[cfg(not(unix))]
fn dir_id(path: &Path, _meta: &Metadata) -> Option<DirId> {
    fs::canonicalize(path).ok().map(DirId)
}

#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    diagnostics: Vec<Diagnostic>,
    /// Every directory listed so far: one reached again through another
    /// symlink is not listed twice, so links cannot multiply the work.
    visited: BTreeSet<DirId>,
    entries: usize,
    gave_up: bool,
}

impl Walk {
    /// Lists `dir`; `ancestors` are the directories above it on this path.
    fn dir(&mut self, dir: &Path, meta: &Metadata, ancestors: &mut Vec<(DirId, PathBuf)>) {
        if self.gave_up {
            return;
        }
        let Some(id) = self.enter(dir, meta, ancestors) else {
            return;
        };
        let Some(paths) = self.list(dir, ancestors) else {
            return;
        };
        for path in paths {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if hidden {
                continue;
            }
            let yaml = matches!(
                path.extension().and_then(|e| e.to_str()),
                Some("yaml" | "yml")
            );
            // Follows symlinks: a link to a directory is walked, a link
            // to a file is read. stat never blocks, even on a FIFO.
            match fs::metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    ancestors.push((id.clone(), dir.to_path_buf()));
                    self.dir(&path, &meta, ancestors);
                    ancestors.pop();
                    if self.gave_up {
                        return;
                    }
                }
                // A dangling link, a FIFO, a socket named *.yaml: `read_file`
                // says what is wrong with it.
                _ if yaml => self.files.push(path),
                _ => {}
            }
        }
    }

    /// The directory's identity, if it is to be listed: not a loop back to
    /// an ancestor, not seen before through another link, not too deep.
    fn enter(
        &mut self,
        dir: &Path,
        meta: &Metadata,
        ancestors: &[(DirId, PathBuf)],
    ) -> Option<DirId> {
        let error = |message: String| Diagnostic::error(&display(dir), 0, 0, message);
        let Some(id) = dir_id(dir, meta) else {
            self.diagnostics
                .push(error("cannot resolve this directory".into()));
            return None;
        };
        if let Some((_, ancestor)) = ancestors.iter().find(|(a, _)| *a == id) {
            self.diagnostics.push(
                error(format!(
                    "symlink loop: this leads back to {}, a directory that contains it",
                    display(ancestor)
                ))
                .with_help("remove the symlink, or point it at a directory outside this one"),
            );
            return None;
        }
        if !self.visited.insert(id.clone()) {
            return None;
        }
        if ancestors.len() >= MAX_WALK_DEPTH {
            self.diagnostics.push(error(format!(
                "directories nest more than {MAX_WALK_DEPTH} levels deep below the path given"
            )));
            return None;
        }
        Some(id)
    }

    /// The directory's entries, sorted; none once the walk has seen more
    /// entries than any declaration has (then it gives up, saying so).
    fn list(&mut self, dir: &Path, ancestors: &[(DirId, PathBuf)]) -> Option<Vec<PathBuf>> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                self.diagnostics.push(Diagnostic::error(
                    &display(dir),
                    0,
                    0,
                    format!("cannot list: {e}"),
                ));
                return None;
            }
        };
        let mut paths = Vec::new();
        for entry in entries {
            self.entries += 1;
            if self.entries > MAX_WALK_ENTRIES {
                self.gave_up = true;
                let root = ancestors.first().map_or(dir, |(_, p)| p.as_path());
                self.diagnostics.push(
                    Diagnostic::error(
                        &display(root),
                        0,
                        0,
                        format!(
                            "more than {MAX_WALK_ENTRIES} directory entries below this path; \
                             flexsync stopped looking for declarations"
                        ),
                    )
                    .with_help("is there a symlink pointing outside the declaration?"),
                );
                return None;
            }
            if let Ok(entry) = entry {
                paths.push(entry.path());
            }
        }
        paths.sort();
        Some(paths)
    }
}

/// The name a path is shown with in messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Reads and parses one file. The text is recorded in `sources` whenever it
/// is readable, so diagnostics can show snippets.
pub fn read_file(path: &Path, sources: &mut Sources) -> Result<Vec<ParsedDocument>, Diagnostic> {
    let name = display(path);
    let bytes = read_capped(path, MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::NotRegular { .. } => Diagnostic::error(
            &name,
            0,
            0,
            format!("{e}; flexsync reads declarations from regular files only"),
        )
        .with_help("remove it, or give it a name that does not end in .yaml or .yml"),
        ReadError::TooLarge { .. } => Diagnostic::error(
            &name,
            0,
            0,
            format!(
                "file is larger than {}; desired-state files are hand-written YAML",
                size_text(MAX_FILE_BYTES)
            ),
        )
        .with_help("split the declaration into several files in one directory"),
        ReadError::Io(e) => Diagnostic::error(&name, 0, 0, format!("cannot read: {e}")),
    })?;
    let text = decode(&name, bytes)?;
    sources.insert(&name, &text);
    parse_text(&name, &text)
}

/// Turns raw bytes into text, or says precisely why they are not YAML text.
fn decode(name: &str, bytes: Vec<u8>) -> Result<String, Diagnostic> {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let (line, column) = position_of(&bytes[..pos]);
        return Err(Diagnostic::error(
            name,
            line,
            column,
            "file contains a NUL byte: this looks like a binary file, not YAML",
        ));
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let (line, column) = position_of(&e.as_bytes()[..valid]);
        Diagnostic::error(
            name,
            line,
            column,
            format!("file is not UTF-8 (invalid byte at offset {valid})"),
        )
        .with_help("save the file as UTF-8")
    })
}

/// 1-based line and column just after `prefix` (which is valid UTF-8).
fn position_of(prefix: &[u8]) -> (u64, u64) {
    let text = String::from_utf8_lossy(prefix);
    let line = text.matches('\n').count() as u64 + 1;
    let column = text.rsplit('\n').next().map_or(0, |l| l.chars().count()) as u64 + 1;
    (line, column)
}

/// Parses the documents of one file's text.
pub fn parse_text(name: &str, text: &str) -> Result<Vec<ParsedDocument>, Diagnostic> {
    let options = serde_saphyr::options! {
        // Tight limits: a real declaration uses few anchors and little depth,
        // so anything near these is an attack or an accident.
        budget: serde_saphyr::budget! {
            max_depth: 32,
            max_aliases: 1_000,
            max_anchors: 1_000,
            // Enough for the largest file the size cap lets through (tens
            // of thousands of users); the alias limits stop expansion bombs.
            max_events: 4_000_000,
            max_nodes: 2_000_000,
            max_documents: 100,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 50_000,
            max_replay_stack_depth: 16,
        },
    };
    let documents: Vec<Document> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|e| yaml_error(name, &e))?;
    if documents.is_empty() {
        return Err(Diagnostic::error(
            name,
            0,
            0,
            "file holds no YAML document (it is empty or only comments)",
        )
        .with_help("start the file with `version: 1` and a `team:`"));
    }
    Ok(documents
        .into_iter()
        .enumerate()
        .map(|(i, document)| ParsedDocument {
            file: name.to_owned(),
            index: i + 1,
            document,
        })
        .collect())
}

fn yaml_error(name: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let message = serde_saphyr::DefaultMessageFormatter.format_message(err);
    let message = message
        .split(", set DuplicateKeyPolicy")
        .next()
        .unwrap_or_default();
    let message = if message.starts_with("budget breached") || message.contains("alias replay") {
        format!(
            "the YAML is too complex to be a declaration ({message}); flexsync allows \
             1,000 anchors and aliases and 32 levels of nesting, which stops alias bombs"
        )
    } else if message.contains("recursion limit") {
        "the YAML is nested too deeply to be a declaration (flexsync allows 32 levels)".to_owned()
    } else {
        message.to_owned()
    };
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    let help = hint_for(&message);
    let d = Diagnostic::error(name, line, column, message);
    match help {
        Some(h) => d.with_help(h),
        None => d,
    }
}

/// A next step for the errors admins hit most.
fn hint_for(message: &str) -> Option<&'static str> {
    if message.contains("unknown field") {
        Some("check the spelling; `flexsync schema` prints every allowed field")
    } else if message.contains("duplicate mapping key") {
        Some("each key may appear once in a mapping; merge the two entries")
    } else if message.contains("expected sequence") {
        Some("this field takes a list: `[a, b]`, or one `- item` per line")
    } else if message.contains("expected mapping") {
        Some("this field takes a mapping: `{ key: value }`, or one `key: value` per line")
    } else if message.contains("missing field `version`") {
        Some("every document starts with `version: 1`")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_of_bad_bytes() {
        assert_eq!(position_of(b""), (1, 1));
        assert_eq!(position_of(b"ab\ncd"), (2, 3));
    }

    #[test]
    fn an_oversized_file_is_refused_from_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        // Sparse: refused from its length, nothing is read.
        fs::File::create(&path)
            .unwrap()
            .set_len(1024 * 1024 * 1024)
            .unwrap();
        let err = read_capped(&path, MAX_FILE_BYTES).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "it is larger than 32 MiB, the limit for this kind of file"
        );
        fs::write(&path, "four").unwrap();
        assert_eq!(read_capped(&path, 4).unwrap(), b"four");
        assert!(matches!(
            read_capped(&path, 3),
            Err(ReadError::TooLarge { cap: 3 })
        ));
    }

    #[test]
    fn a_directory_is_not_read_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = read_capped(dir.path(), 10).unwrap_err();
        assert_eq!(err.to_string(), "it is a directory, not a regular file");
    }

    #[test]
    fn walks_stop_at_the_depth_limit() {
        let root = tempfile::tempdir().unwrap();
        let mut dir = root.path().to_path_buf();
        for _ in 0..=MAX_WALK_DEPTH {
            dir.push("d");
        }
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("deep.yaml"), "version: 1\n").unwrap();
        let (files, diags) = expand_paths(&[root.path().to_path_buf()]);
        assert!(files.is_empty(), "{files:?}");
        assert_eq!(diags.len(), 1, "{diags:?}");
        assert!(
            diags[0].message.contains("more than 32 levels"),
            "{diags:?}"
        );
    }

    #[test]
    fn a_nul_byte_is_reported_as_binary() {
        let err = decode("x.yaml", b"version: 1\n\0\x01".to_vec()).unwrap_err();
        assert!(err.message.contains("binary"));
        assert_eq!((err.line, err.column), (2, 1));
    }
}
