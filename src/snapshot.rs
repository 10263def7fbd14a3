//! The snapshot file: the observed state of some teams, as JSON.
//!
//! `flexsync snapshot` and the service write it; `flexsync plan --observed`
//! reads it, so a CI job without Autodesk credentials can still plan.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;
use crate::model::{Observed, ObservedTeam};

/// Bumped whenever a reader of an older version could misread the file.
pub const FORMAT_VERSION: u32 = 1;

/// Largest snapshot flexsync reads. A team of 10,000 people with a few
/// products each is a few megabytes, so this holds dozens of big teams; a
/// larger file is refused from its size, before any of it is read (parsing
/// takes about five times the file's size in memory).
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// The file's top level.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Snapshot {
    pub format_version: u32,
    /// When the state was read; shown to reviewers so they know its age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<Timestamp>,
    pub teams: Vec<ObservedTeam>,
}

impl Snapshot {
    pub fn new(observed: &Observed, captured_at: Option<Timestamp>) -> Self {
        Snapshot {
            format_version: FORMAT_VERSION,
            captured_at,
            teams: observed.teams.values().cloned().collect(),
        }
    }

    /// Parses a snapshot, naming `file:line:column` on any problem.
    pub fn parse(file: &str, text: &str) -> Result<Snapshot, Diagnostic> {
        let snapshot: Snapshot = serde_json::from_str(text).map_err(|e| {
            Diagnostic::error(file, e.line() as u64, e.column() as u64, strip_position(&e))
        })?;
        if snapshot.format_version != FORMAT_VERSION {
            return Err(Diagnostic::error(
                file,
                0,
                0,
                format!(
                    "snapshot formatVersion {} is not supported (this flexsync reads {FORMAT_VERSION})",
                    snapshot.format_version
                ),
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for team in &snapshot.teams {
            if !seen.insert(&team.id) {
                return Err(Diagnostic::error(
                    file,
                    0,
                    0,
                    format!("team {} appears twice in the snapshot", team.id),
                ));
            }
        }
        Ok(snapshot)
    }

    pub fn observed(&self) -> Observed {
        Observed {
            teams: self
                .teams
                .iter()
                .map(|t| (t.id.clone(), t.clone()))
                .collect(),
        }
    }
}

/// serde_json appends " at line L column C"; the diagnostic carries those.
fn strip_position(e: &serde_json::Error) -> String {
    let s = e.to_string();
    match s.rfind(" at line ") {
        Some(i) => s[..i].to_owned(),
        None => s,
    }
}
