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
    pub state: TeamState,
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

/// Where a team stands after its last pass; /status and STATUS= show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TeamState {
    /// Not reconciled yet.
    #[default]
    Pending,
    /// Nothing to change.
    Converged,
    /// Changes wanted, not made: the service runs with --dry-run.
    Drift,
    /// Every change of the last pass was made.
    Applied,
    /// The last pass failed; it is retried with backoff.
    Failing,
    /// Failed so often that it is retried at the slowest pace only.
    Degraded,
    /// `suspend: true` in the declaration.
    Suspended,
}

impl TeamState {
    /// In the order STATUS= counts them.
    const SETTLED: [TeamState; 6] = [
        TeamState::Converged,
        TeamState::Applied,
        TeamState::Drift,
        TeamState::Failing,
        TeamState::Degraded,
        TeamState::Suspended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TeamState::Pending => "pending",
            TeamState::Converged => "converged",
            TeamState::Drift => "drift",
            TeamState::Applied => "applied",
            TeamState::Failing => "failing",
            TeamState::Degraded => "degraded",
            TeamState::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for TeamState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl TeamStatus {
    pub fn failing(&self) -> bool {
        matches!(self.state, TeamState::Failing | TeamState::Degraded)
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
            state: TeamState::Pending,
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
        let count = |s: TeamState| teams.values().filter(|t| t.state == s).count();
        let decl = self.declaration();
        if !decl.loaded && !decl.errors.is_empty() {
            return format!(
                "no valid declaration ({} problem(s), see the journal or /status): nothing is reconciled",
                decl.errors.len()
            );
        }
        let counts: Vec<String> = TeamState::SETTLED
            .iter()
            .map(|&s| format!("{} {s}", count(s)))
            .collect();
        let mut line = format!("{} team(s): {}", teams.len(), counts.join(", "));
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

    #[test]
    fn the_summary_counts_teams_by_state_and_status_names_them_in_lowercase() {
        let shared = Shared::default();
        let set = |id: &str, state| shared.update_team(&TeamId(id.into()), |t| t.state = state);
        set("1", TeamState::Converged);
        set("2", TeamState::Converged);
        set("3", TeamState::Degraded);
        shared.update_team(&TeamId("4".into()), |_| {});
        assert_eq!(
            shared.summary(),
            "4 team(s): 2 converged, 0 applied, 0 drift, 0 failing, 1 degraded, 0 suspended"
        );
        let teams = shared.teams();
        let json = serde_json::to_value(&teams[&TeamId("4".into())]).unwrap();
        assert_eq!(json["state"], "pending");
        assert!(teams[&TeamId("3".into())].failing());
    }
}
