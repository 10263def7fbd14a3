//! What the controller knows, shared with the HTTP endpoints. The
//! controller writes; `/status`, `/readyz` and `/snapshot` read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use serde::Serialize;

use crate::diagnostic::Diagnostic;
use crate::model::TeamId;
use crate::snapshot::SnapshotTeam;

/// The declaration in force and the latest load attempt.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclarationStatus {
    /// A valid declaration is in force.
    pub loaded: bool,
    /// The files on disk are valid (if not, the last good one is in force).
    pub valid: bool,
    pub digest: Option<String>,
    pub loaded_at: Option<Timestamp>,
    pub git_commit: Option<String>,
    /// Problems of the files on disk, when they are invalid.
    pub errors: Vec<Diagnostic>,
}

/// One team, as `/status` shows it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TeamStatus {
    pub id: String,
    pub name: Option<String>,
    /// `pending`, `converged`, `drift` (dry run), `applied`, `failing`,
    /// `degraded`, `suspended`.
    pub state: String,
    pub last_run: Option<Timestamp>,
    pub next_run: Option<Timestamp>,
    pub last_success: Option<Timestamp>,
    pub last_error: Option<String>,
    pub failures: u32,
    /// The team's declaration changed recently: its unassignments wait
    /// until then (the removal delay).
    pub removals_held_until: Option<Timestamp>,
    /// Changes the last plan wanted / blocked.
    pub planned: Option<PlanCounts>,
    /// Outcome of the last apply.
    pub applied: Option<AppliedCounts>,
    /// What /snapshot serves for the team: its last read with the
    /// service's acknowledged writes laid over it. Shared, so /status and
    /// /snapshot copy a pointer, not the team.
    #[serde(skip)]
    pub observed: Option<Arc<SnapshotTeam>>,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PlanCounts {
    pub invite: usize,
    pub assign: usize,
    pub unassign: usize,
    pub blocked: usize,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct AppliedCounts {
    pub done: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl TeamStatus {
    pub fn failing(&self) -> bool {
        matches!(self.state.as_str(), "failing" | "degraded")
    }
}

/// Shared between the controller and the HTTP server.
#[derive(Debug, Default)]
pub struct Shared {
    pub declaration: RwLock<DeclarationStatus>,
    pub teams: RwLock<BTreeMap<TeamId, TeamStatus>>,
    pub dry_run: bool,
    /// The last token acquisition failed (e.g. the refresh token was
    /// refused): a human must log in again.
    pub credentials_error: RwLock<Option<String>>,
    /// The controller has read the declaration once (valid or not).
    pub started: AtomicBool,
    /// When the controller's loop last ran: liveness.
    pub heartbeat: Mutex<Option<Instant>>,
}

impl Shared {
    /// The controller's loop is alive.
    pub fn beat(&self) {
        *self.heartbeat.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    /// How long since the loop last ran (`None` before it first did).
    pub fn since_beat(&self) -> Option<Duration> {
        self.heartbeat
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .map(|t| t.elapsed())
    }

    pub fn mark_started(&self) {
        self.started.store(true, Ordering::Relaxed);
    }

    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Relaxed)
    }

    pub fn declaration(&self) -> DeclarationStatus {
        self.declaration
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn teams(&self) -> BTreeMap<TeamId, TeamStatus> {
        self.teams.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn update_team(&self, id: &TeamId, f: impl FnOnce(&mut TeamStatus)) {
        let mut teams = self.teams.write().unwrap_or_else(|p| p.into_inner());
        let entry = teams.entry(id.clone()).or_insert_with(|| TeamStatus {
            id: id.0.clone(),
            state: "pending".into(),
            ..TeamStatus::default()
        });
        f(entry);
    }

    pub fn credentials_error(&self) -> Option<String> {
        self.credentials_error
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// One line for systemd's STATUS and logs.
    pub fn summary(&self) -> String {
        let teams = self.teams();
        let count = |s: &str| teams.values().filter(|t| t.state == s).count();
        let decl = self.declaration();
        if !decl.loaded && !decl.errors.is_empty() {
            return format!(
                "no valid declaration ({} problem(s), see the journal or /status): nothing is reconciled",
                decl.errors.len()
            );
        }
        let mut line = format!(
            "{} team(s): {} converged, {} applied, {} drift, {} failing, {} degraded, {} suspended",
            teams.len(),
            count("converged"),
            count("applied"),
            count("drift"),
            count("failing"),
            count("degraded"),
            count("suspended")
        );
        if decl.loaded && !decl.valid {
            line.push_str("; declaration on disk INVALID, last good in force");
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_when_no_declaration_is_in_force() {
        let shared = Shared::default();
        assert!(shared.summary().starts_with("0 team(s)"));
        shared.declaration.write().unwrap().errors = vec![Diagnostic::error(
            "team.yaml",
            7,
            43,
            "unknown product alias",
        )];
        assert_eq!(
            shared.summary(),
            "no valid declaration (1 problem(s), see the journal or /status): nothing is reconciled"
        );
        let mut decl = shared.declaration.write().unwrap();
        decl.loaded = true;
        drop(decl);
        assert!(
            shared
                .summary()
                .ends_with("; declaration on disk INVALID, last good in force")
        );
    }
}
