//! What an apply did, change by change, as plain data.

use crate::model::{TeamId, UserId};
use crate::plan::Change;

/// The outcome of every change an apply was given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApplyReport {
    pub teams: Vec<TeamReport>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TeamReport {
    pub team_id: TeamId,
    pub team_name: String,
    pub results: Vec<ChangeResult>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ChangeResult {
    pub change: Change,
    pub outcome: Outcome,
}

/// One change's fate.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The team is now as the change wanted. `note` says how (e.g. "created",
    /// "already there", "was not assigned").
    Done {
        status: u16,
        request_id: String,
        note: &'static str,
        /// The user id an invite returned.
        user_id: Option<UserId>,
    },
    Failed {
        status: Option<u16>,
        request_id: Option<String>,
        message: String,
    },
    /// Not attempted, and why (a failed invite, shutdown).
    Skipped { reason: String },
}

impl Outcome {
    /// A bounded label for metrics and audit lines.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Done { .. } => "done",
            Outcome::Failed { .. } => "failed",
            Outcome::Skipped { .. } => "skipped",
        }
    }
}

/// Counts for a summary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl ApplyReport {
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for r in self.teams.iter().flat_map(|t| &t.results) {
            match r.outcome {
                Outcome::Done { .. } => t.done += 1,
                Outcome::Failed { .. } => t.failed += 1,
                Outcome::Skipped { .. } => t.skipped += 1,
            }
        }
        t
    }

    pub fn has_failures(&self) -> bool {
        let t = self.tally();
        t.failed > 0 || t.skipped > 0
    }
}
