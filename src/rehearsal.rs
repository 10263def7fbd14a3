//! Rehearsals, flexsync's side: a snapshot file (`flexsync snapshot`, or the
//! service's `/snapshot`) read and handed to the sandbox as a [`TeamCopy`],
//! of which the sandbox builds a world (`--from-snapshot`,
//! `--sandbox-from-snapshot`). The sandbox knows nothing of the snapshot
//! format; this is the one place where the two meet. It copies, field for
//! field, and decides nothing: what the copy becomes, and what cannot be
//! carried over exactly, is the sandbox's (`crates/sandbox/src/rehearsal.rs`).

use std::path::Path;
use std::sync::Arc;

use flexsync_sandbox::{
    AssignmentKind, CopiedAssignment, CopiedMember, CopiedPool, CopiedTeam, Rehearsal,
    SandboxError, Seed, TeamCopy,
};

use crate::input_file::{ReadError, read_text_capped};
use crate::model::AssignmentType;
use crate::snapshot::{self, Snapshot, SnapshotTeam};

/// Why no sandbox world could be made of a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum RehearsalError {
    /// The file was refused before parsing: too large, not a regular file,
    /// unreadable.
    #[error("{path}: cannot read the snapshot: {source}")]
    Read {
        path: String,
        #[source]
        source: ReadError,
    },
    /// The file is not a snapshot.
    #[error("{place}: invalid snapshot: {message}")]
    Invalid { place: String, message: String },
    /// A snapshot the sandbox refuses (inconsistent, or too large for it).
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
}

/// Reads a snapshot file (capped at [`snapshot::MAX_FILE_BYTES`]) and builds
/// the world it describes.
pub fn seed_from_file(path: &Path) -> Result<(Seed, Rehearsal), RehearsalError> {
    let name = path.display().to_string();
    let text = read_text_capped(path, snapshot::MAX_FILE_BYTES).map_err(|source| {
        RehearsalError::Read {
            path: name.clone(),
            source,
        }
    })?;
    let snapshot = Snapshot::parse(&name, &text).map_err(|d| RehearsalError::Invalid {
        place: d.place(),
        message: d.message,
    })?;
    drop(text);
    seed_from_snapshot(snapshot, &name)
}

/// The world of `snapshot`; `source_name` names it in errors.
pub fn seed_from_snapshot(
    snapshot: Snapshot,
    source_name: &str,
) -> Result<(Seed, Rehearsal), RehearsalError> {
    Ok(Seed::from_team_copy(&team_copy(snapshot), source_name)?)
}

/// `snapshot` in the sandbox's plain types. Teams are moved out of it, not
/// copied, unless something else shares them.
pub fn team_copy(snapshot: Snapshot) -> TeamCopy {
    TeamCopy {
        captured_at: snapshot.captured_at,
        teams: snapshot
            .teams
            .into_iter()
            .map(|t| copied_team(Arc::unwrap_or_clone(t)))
            .collect(),
    }
}

fn copied_team(team: SnapshotTeam) -> CopiedTeam {
    CopiedTeam {
        id: team.id.0,
        name: team.name,
        members: team
            .users
            .into_iter()
            .map(|u| CopiedMember {
                id: u.id.0.to_string(),
                email: u.email.as_str().to_owned(),
                first_name: u.first_name,
                last_name: u.last_name,
                role: u.role,
            })
            .collect(),
        pools: team
            .pools
            .into_iter()
            .map(|p| CopiedPool {
                product_id: p.product_id.0,
                product_name: p.product_name,
                unlimited: p.unlimited,
                total_quantity: p.total_quantity,
                assigned_quantity: p.assigned_quantity,
                start_date: p.start_date,
                end_date: p.end_date,
            })
            .collect(),
        assignments: team
            .assignments
            .into_iter()
            .map(|a| CopiedAssignment {
                user_id: a.user_id.0.to_string(),
                product_id: a.product_id.0,
                kind: match a.assignment_type {
                    AssignmentType::Direct => AssignmentKind::Direct,
                    AssignmentType::Group => AssignmentKind::Group,
                    AssignmentType::Team => AssignmentKind::Team,
                    AssignmentType::Inherited => AssignmentKind::OtherInherited,
                },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Snapshot {
        let text = include_str!("../examples/snapshot.json");
        Snapshot::parse("snapshot.json", text).unwrap()
    }

    #[test]
    fn the_example_snapshot_is_copied_field_for_field_and_becomes_a_world() {
        let copy = team_copy(example());
        assert_eq!(copy.captured_at, example().captured_at);
        assert_eq!(copy.teams.len(), 2);
        let eng = &copy.teams[0];
        assert_eq!(
            (eng.id.as_str(), eng.name.as_str()),
            ("100001", "Example Engineering")
        );
        let frank = &eng.members[5];
        assert_eq!(frank.email, "frank@contractor.example.net");
        assert_eq!(frank.role.as_deref(), Some("EXTERNAL_USER"));
        assert_eq!(frank.first_name.as_deref(), Some("Frank"));
        let acad = &eng.pools[1];
        assert_eq!(acad.product_id, "prod_acad_premium");
        assert_eq!(
            (acad.total_quantity, acad.assigned_quantity),
            (Some(4), Some(3))
        );
        assert!(!acad.unlimited && acad.start_date.is_some() && acad.end_date.is_some());
        let kinds = |k| eng.assignments.iter().filter(|a| a.kind == k).count();
        assert_eq!(kinds(AssignmentKind::Direct), 4);
        assert_eq!(kinds(AssignmentKind::Group), 1);
        assert_eq!(kinds(AssignmentKind::Team), 6);
        assert_eq!(copy.teams[1].members.len(), 141);

        let (_, report) = seed_from_snapshot(example(), "snapshot.json").unwrap();
        assert_eq!(report.teams, 2);
        assert_eq!(report.members, 147);
        assert_eq!(report.captured_at, example().captured_at);
        assert!(report.notes.is_empty(), "{:?}", report.notes);
    }

    #[test]
    fn an_unknown_inherited_kind_is_handed_over_as_such() {
        let mut s = example();
        Arc::make_mut(&mut s.teams[0]).assignments[5].assignment_type = AssignmentType::Inherited;
        let copy = team_copy(s);
        assert_eq!(
            copy.teams[0].assignments[5].kind,
            AssignmentKind::OtherInherited
        );
    }

    #[test]
    fn inconsistencies_are_noted_or_refused() {
        let mut s = example();
        let eng = Arc::make_mut(s.teams.iter_mut().find(|t| t.id.0 == "100001").unwrap());
        // Docs "through the team" for one person only: a group, not the team.
        eng.assignments
            .retain(|a| a.product_id.0 != "prod_docs" || a.user_id.as_str() == "US1000000001");
        eng.assignments.push(crate::model::Assignment {
            user_id: crate::model::UserId("US404".into()),
            product_id: crate::model::ProductId("prod_docs".into()),
            assignment_type: AssignmentType::Direct,
        });
        let (_, report) = seed_from_snapshot(s, "s.json").unwrap();
        assert!(
            report.notes.iter().any(|n| n.contains("1 assignment(s)")),
            "{:?}",
            report.notes
        );

        let mut s = example();
        let email = s.teams[0].users[0].email.clone();
        Arc::make_mut(&mut s.teams[0]).users[1].email = email;
        let e = seed_from_snapshot(s, "s.json").unwrap_err().to_string();
        assert!(e.starts_with("s.json: invalid snapshot:"), "{e}");
        assert!(e.contains("is used by both"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_snapshot_is_refused_with_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let e = seed_from_file(dir.path()).unwrap_err().to_string();
        assert!(
            e.ends_with(": cannot read the snapshot: it is a directory, not a regular file"),
            "{e}"
        );
        let path = dir.path().join("s.json");
        std::fs::write(&path, "{\"formatVersion\": 1,\n\"teams\": 3}").unwrap();
        let e = seed_from_file(&path).unwrap_err().to_string();
        assert!(e.contains("s.json:2:"), "{e}");
        assert!(e.contains(": invalid snapshot: "), "{e}");
    }
}
