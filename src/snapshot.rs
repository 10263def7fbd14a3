//! The snapshot file: the observed state of some teams, as JSON.
//!
//! `flexsync snapshot` and the service write it; `flexsync plan --observed`
//! reads it, so a CI job without Autodesk credentials can still plan.
//!
//! Format 2 adds, per team, when it was read (`observedAt`) and how many of
//! the service's own acknowledged writes were laid over that read
//! (`ownWrites`), and lists the teams asked for that could not be read
//! (`missing`, with why). Format 1 files are still read.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::diagnostic::Diagnostic;
use crate::model::{Assignment, Observed, ObservedTeam, ProductPool, TeamId, TeamUser};

/// The version written. Bumped whenever a reader of an older version could
/// misread the file (format 1 readers refuse format 2's new fields).
pub const FORMAT_VERSION: u32 = 2;

/// The versions read.
pub const READABLE_VERSIONS: [u32; 2] = [1, 2];

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
    /// When the state was read (the oldest team's read, when they differ);
    /// shown to reviewers so they know its age.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<Timestamp>,
    /// Shared: the service serves the teams it holds without copying them.
    pub teams: Vec<Arc<SnapshotTeam>>,
    /// Teams asked for that could not be read, with why (format 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingTeam>,
}

/// One team: what Autodesk said when it was read, plus (in the service's
/// snapshots) the effect of its own acknowledged writes since.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SnapshotTeam {
    pub id: TeamId,
    pub name: String,
    /// When Autodesk was read for this team (format 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_at: Option<Timestamp>,
    /// The service's own writes laid over the read (format 2): the list
    /// Autodesk returns lags behind writes, and a preview must not show
    /// what the service already did as still to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_writes: Option<OwnWrites>,
    #[serde(default)]
    pub users: Vec<TeamUser>,
    #[serde(default)]
    pub pools: Vec<ProductPool>,
    #[serde(default)]
    pub assignments: Vec<Assignment>,
}

/// Acknowledged writes whose effect is laid over a team's read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnWrites {
    /// Facts laid over the read (a member added, a product held or not).
    pub count: usize,
    /// When the latest of them was acknowledged.
    pub last_at: Timestamp,
}

/// A team asked for that could not be read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MissingTeam {
    pub id: TeamId,
    /// Why, in words a reviewer can act on.
    pub reason: String,
}

/// How old one team's state is, for the plan's header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TeamAge {
    pub observed_at: Timestamp,
    pub own_writes: Option<OwnWrites>,
}

impl SnapshotTeam {
    /// A team read at `observed_at`, with no writes laid over it.
    pub fn read(team: ObservedTeam, observed_at: Option<Timestamp>) -> Self {
        SnapshotTeam {
            id: team.id,
            name: team.name,
            observed_at,
            own_writes: None,
            users: team.users,
            pools: team.pools,
            assignments: team.assignments,
        }
    }

    pub fn observed(&self) -> ObservedTeam {
        ObservedTeam {
            id: self.id.clone(),
            name: self.name.clone(),
            users: self.users.clone(),
            pools: self.pools.clone(),
            assignments: self.assignments.clone(),
        }
    }
}

impl Snapshot {
    /// Teams all read at `captured_at` (`flexsync snapshot`).
    pub fn new(observed: &Observed, captured_at: Option<Timestamp>) -> Self {
        Snapshot {
            format_version: FORMAT_VERSION,
            captured_at,
            teams: observed
                .teams
                .values()
                .map(|t| Arc::new(SnapshotTeam::read(t.clone(), captured_at)))
                .collect(),
            missing: Vec::new(),
        }
    }

    /// Teams read at their own times (the service); `capturedAt` is the
    /// oldest read, so the header never understates the age.
    pub fn of_teams(teams: Vec<Arc<SnapshotTeam>>, missing: Vec<MissingTeam>) -> Self {
        Snapshot {
            format_version: FORMAT_VERSION,
            captured_at: teams.iter().filter_map(|t| t.observed_at).min(),
            teams,
            missing,
        }
    }

    /// Parses a snapshot, naming `file:line:column` on any problem.
    pub fn parse(file: &str, text: &str) -> Result<Snapshot, Diagnostic> {
        let snapshot: Snapshot = serde_json::from_str(text).map_err(|e| {
            Diagnostic::error(file, e.line() as u64, e.column() as u64, strip_position(&e))
        })?;
        if !READABLE_VERSIONS.contains(&snapshot.format_version) {
            return Err(Diagnostic::error(
                file,
                0,
                0,
                format!(
                    "snapshot formatVersion {} is not supported (this flexsync reads 1 and {FORMAT_VERSION})",
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
        for m in &snapshot.missing {
            if !seen.insert(&m.id) {
                return Err(Diagnostic::error(
                    file,
                    0,
                    0,
                    format!(
                        "team {} is listed as missing and also appears elsewhere in the snapshot",
                        m.id
                    ),
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
                .map(|t| (t.id.clone(), t.observed()))
                .collect(),
        }
    }

    /// When each team was read, for teams that say (format 2; in format 1
    /// `capturedAt` is every team's time, and the header shows it once).
    pub fn ages(&self) -> BTreeMap<TeamId, TeamAge> {
        self.teams
            .iter()
            .filter_map(|t| {
                Some((
                    t.id.clone(),
                    TeamAge {
                        observed_at: t.observed_at?,
                        own_writes: t.own_writes,
                    },
                ))
            })
            .collect()
    }

    /// Why each of `teams` is missing, for those that are: the planner's
    /// blocker quotes it.
    pub fn missing_among<'a>(
        &self,
        teams: impl IntoIterator<Item = &'a TeamId>,
    ) -> BTreeMap<TeamId, String> {
        let why: BTreeMap<&TeamId, &String> =
            self.missing.iter().map(|m| (&m.id, &m.reason)).collect();
        teams
            .into_iter()
            .filter_map(|id| {
                why.get(id)
                    .map(|r| (id.clone(), format!("the snapshot says: {r}")))
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"formatVersion":1,"capturedAt":"2026-11-26T09:00:00Z",
        "teams":[{"id":"1","name":"T","users":[],"pools":[],"assignments":[]}]}"#;

    #[test]
    fn format_1_is_still_read() {
        let s = Snapshot::parse("s.json", V1).unwrap();
        assert!(s.ages().is_empty());
        assert!(s.observed().teams.contains_key(&TeamId("1".into())));
    }

    #[test]
    fn format_2_carries_per_team_times_own_writes_and_missing_teams() {
        let text = r#"{"formatVersion":2,"capturedAt":"2026-11-26T09:00:00Z",
            "teams":[{"id":"1","name":"T","observedAt":"2026-11-26T09:05:00Z",
                      "ownWrites":{"count":2,"lastAt":"2026-11-26T09:06:00Z"}}],
            "missing":[{"id":"2","reason":"not an administrator"}]}"#;
        let s = Snapshot::parse("s.json", text).unwrap();
        let age = s.ages()[&TeamId("1".into())];
        assert_eq!(age.own_writes.map(|w| w.count), Some(2));
        assert_eq!(
            age.observed_at,
            "2026-11-26T09:05:00Z".parse::<Timestamp>().unwrap()
        );
        let ids = [TeamId("1".into()), TeamId("2".into()), TeamId("3".into())];
        let missing = s.missing_among(&ids);
        assert_eq!(missing.len(), 1);
        assert!(missing[&TeamId("2".into())].contains("not an administrator"));
        // What it writes, it reads back.
        let again = serde_json::to_string(&s).unwrap();
        assert_eq!(Snapshot::parse("s.json", &again).unwrap(), s);
    }

    #[test]
    fn unknown_versions_and_contradictions_are_refused() {
        let e = Snapshot::parse(
            "s.json",
            &V1.replace("\"formatVersion\":1", "\"formatVersion\":3"),
        )
        .unwrap_err();
        assert!(e.message.contains("formatVersion 3"), "{}", e.message);
        let both = r#"{"formatVersion":2,"teams":[{"id":"1","name":"T"}],
            "missing":[{"id":"1","reason":"x"}]}"#;
        let e = Snapshot::parse("s.json", both).unwrap_err();
        assert!(e.message.contains("missing"), "{}", e.message);
    }

    #[test]
    fn capture_time_is_the_oldest_read() {
        let t = |s: &str| s.parse::<Timestamp>().unwrap();
        let team = |id: &str, at: &str| {
            Arc::new(SnapshotTeam {
                id: TeamId(id.into()),
                name: "T".into(),
                observed_at: Some(t(at)),
                own_writes: None,
                users: vec![],
                pools: vec![],
                assignments: vec![],
            })
        };
        let s = Snapshot::of_teams(
            vec![
                team("1", "2026-11-26T09:05:00Z"),
                team("2", "2026-11-26T09:01:00Z"),
            ],
            vec![],
        );
        assert_eq!(s.captured_at, Some(t("2026-11-26T09:01:00Z")));
    }
}
