//! Reading desired-state files from disk and parsing them, defensively.
//!
//! Files come from pull requests, so any of them may be hostile: huge, binary,
//! not UTF-8, an alias bomb, nested a thousand levels deep. Each such file
//! becomes a diagnostic; nothing here panics or runs unbounded.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_saphyr::MessageFormatter;

use super::format::Document;
use crate::diagnostic::{Diagnostic, Sources};

/// Desired-state files are hand-written; a few thousand users fit in well
/// under a megabyte. The cap keeps a hostile 10 GB file from being read.
pub const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

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
/// `..2026_…` twins of a Kubernetes ConfigMap mount.
pub fn expand_paths(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut files = Vec::new();
    for path in paths {
        let meta = fs::metadata(path)
            .map_err(|e| Diagnostic::error(&display(path), 0, 0, format!("cannot read: {e}")))?;
        if meta.is_dir() {
            walk(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    // The same file reached twice (a directory and a file in it, `./a` and
    // `a`) is read once.
    let mut seen = std::collections::BTreeSet::new();
    files.retain(|f| seen.insert(fs::canonicalize(f).unwrap_or_else(|_| f.clone())));
    Ok(files)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    let entries = fs::read_dir(dir)
        .map_err(|e| Diagnostic::error(&display(dir), 0, 0, format!("cannot list: {e}")))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_none_or(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// The name a path is shown with in messages.
pub fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Reads and parses one file. The text is recorded in `sources` whenever it
/// is readable, so diagnostics can show snippets.
pub fn read_file(path: &Path, sources: &mut Sources) -> Result<Vec<ParsedDocument>, Diagnostic> {
    let name = display(path);
    let file = fs::File::open(path)
        .map_err(|e| Diagnostic::error(&name, 0, 0, format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Diagnostic::error(&name, 0, 0, format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(Diagnostic::error(
            &name,
            0,
            0,
            format!(
                "file is larger than {} MiB; desired-state files are hand-written YAML",
                MAX_FILE_BYTES / (1024 * 1024)
            ),
        )
        .with_help("split the declaration into several files in one directory"));
    }
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
    fn a_nul_byte_is_reported_as_binary() {
        let err = decode("x.yaml", b"version: 1\n\0\x01".to_vec()).unwrap_err();
        assert!(err.message.contains("binary"));
        assert_eq!((err.line, err.column), (2, 1));
    }
}
