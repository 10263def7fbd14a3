//! Desired state: YAML files in, a validated [`Desired`] out.
//!
//! - [`format`]: the file format (serde + JSON Schema from one set of types);
//! - [`load`]: finding, reading and parsing files, defensively;
//! - [`check`]: semantic checks and merging a team's documents;
//! - [`export`]: writing a declaration from a team's current state.

pub mod check;
pub mod export;
pub mod format;
pub mod load;

use std::path::PathBuf;

use crate::diagnostic::{Diagnostic, Severity, Sources};
use crate::model::Desired;

/// The outcome of loading a declaration: the model when it is valid, and
/// every diagnostic either way.
#[derive(Debug)]
pub struct Loaded {
    pub desired: Desired,
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
    pub files: Vec<PathBuf>,
}

impl Loaded {
    /// sha256 over every file's name and text: which declaration a plan
    /// was made from.
    pub fn digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (file, text) in self.sources.iter() {
            h.update(file.as_bytes());
            h.update([0]);
            h.update(text.as_bytes());
            h.update([0]);
        }
        format!("sha256:{:x}", h.finalize())
    }

    pub fn is_valid(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }
}

/// Loads every file under `paths`. Problems in one file do not stop the
/// others from being checked, so one run reports everything.
pub fn load(paths: &[PathBuf]) -> Loaded {
    let mut sources = Sources::default();
    let (files, mut diagnostics) = load::expand_paths(paths);
    if files.is_empty() && diagnostics.is_empty() {
        diagnostics.push(Diagnostic::error(
            &paths
                .iter()
                .map(|p| load::display(p))
                .collect::<Vec<_>>()
                .join(", "),
            0,
            0,
            "no *.yaml or *.yml file found",
        ));
    }
    let mut documents = Vec::new();
    for file in &files {
        match load::read_file(file, &mut sources) {
            Ok(docs) => documents.extend(docs),
            Err(d) => diagnostics.push(d),
        }
    }
    let (desired, semantic) = check::build(documents);
    diagnostics.extend(semantic);
    diagnostics.sort();
    Loaded {
        desired,
        diagnostics,
        sources,
        files,
    }
}

/// A cheap fingerprint of what `load(paths)` would read: every file's name,
/// size, modification time and inode, and the walk's problems. Equal stamps
/// mean nothing to parse again; the service's periodic re-read checks this
/// first, so an idle service does not parse its declaration every minute.
pub fn stamp(paths: &[PathBuf]) -> String {
    use sha2::{Digest, Sha256};
    let (files, problems) = load::expand_paths(paths);
    let mut h = Sha256::new();
    for file in &files {
        h.update(file.as_os_str().as_encoded_bytes());
        h.update([0]);
        match std::fs::metadata(file) {
            Ok(m) => {
                h.update(m.len().to_le_bytes());
                if let Ok(t) = m.modified()
                    && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
                {
                    h.update(d.as_nanos().to_le_bytes());
                }
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    h.update(m.ino().to_le_bytes());
                    h.update(m.dev().to_le_bytes());
                    h.update(m.ctime_nsec().to_le_bytes());
                }
            }
            Err(e) => h.update(e.to_string().as_bytes()),
        }
    }
    for d in &problems {
        h.update(d.message.as_bytes());
    }
    format!("{:x}", h.finalize())
}

/// Loads documents from text, for tests and tools that hold YAML in memory.
pub fn load_str(name: &str, text: &str) -> Loaded {
    let mut sources = Sources::default();
    sources.insert(name, text);
    let (desired, diagnostics) = match load::parse_text(name, text) {
        Ok(docs) => check::build(docs),
        Err(d) => (Desired::default(), vec![d]),
    };
    Loaded {
        desired,
        diagnostics,
        sources,
        files: Vec::new(),
    }
}
