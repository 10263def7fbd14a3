//! A sandbox world built from a snapshot of live teams (`flexsync snapshot`,
//! or the service's `/snapshot`), so a big change can be applied, inspected
//! and thrown away before it touches the real team.
//!
//! The snapshot is the observed state as the API shows it, which is less
//! than the sandbox's world: it has effective assignments, not where each
//! comes from. What is rebuilt, and how:
//! - teams, members (role as observed), pools (seats and dates);
//! - `DIRECT` assignments as direct ones;
//! - `GROUP` (and unknown inherited kinds) as one group per product holding
//!   exactly the people who hold it that way;
//! - `TEAM` as a team product when every member holds it that way, else
//!   like `GROUP`;
//! - the team's email domains as those of its `USER` members, so an
//!   invitation outside them joins as `EXTERNAL_USER`, as it would;
//! - one admin (the bundled seed's Ada) administering every team.
//!
//! Someone shown `DIRECT` may also hold the product through a group, which
//! the API does not say: here a direct unassignment frees their seat, there
//! it might not. The plan already says so wherever it counts on freed seats.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::Timestamp;

use super::SandboxError;
use super::seed::Seed;
use super::state::{
    Account, DirectAssignment, Group, Member, MemberStatus, Pool, Role, Team, World,
};
use crate::model::AssignmentType;
use crate::snapshot::Snapshot;

/// Most members (over all teams) a snapshot may bring into the sandbox: the
/// largest team flexsync plans for. Their state file (with `--state`) is
/// rewritten on every change, about 50 MB at this size.
pub const MAX_SNAPSHOT_MEMBERS: usize = 100_000;

/// The admin every rehearsal logs in as: the bundled seed's first admin, so
/// what docs/sandbox.md says about logging in holds here too.
pub const REHEARSAL_ADMIN: &str = "USADMIN00001";
const REHEARSAL_ADMIN_EMAIL: &str = "ada.admin@example.com";

/// What the rebuilt world could not carry over exactly, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rehearsal {
    pub teams: usize,
    pub members: usize,
    pub captured_at: Option<Timestamp>,
    pub notes: Vec<String>,
}

impl Seed {
    /// Reads a snapshot file (capped at [`crate::snapshot::MAX_FILE_BYTES`])
    /// and builds the world it describes.
    pub fn from_snapshot_file(path: &Path) -> Result<(Seed, Rehearsal), SandboxError> {
        let name = path.display().to_string();
        let text = crate::input_file::read_text_capped(path, crate::snapshot::MAX_FILE_BYTES)
            .map_err(|source| SandboxError::Read {
                path: name.clone(),
                what: "snapshot",
                source,
            })?;
        let snapshot =
            Snapshot::parse(&name, &text).map_err(|d| SandboxError::SnapshotInvalid {
                place: d.place(),
                message: d.message,
            })?;
        Seed::from_snapshot(&snapshot, &name)
    }

    /// The world of `snapshot`; `source_name` names it in errors.
    pub fn from_snapshot(
        snapshot: &Snapshot,
        source_name: &str,
    ) -> Result<(Seed, Rehearsal), SandboxError> {
        let (world, report) = build(snapshot).map_err(|message| SandboxError::SnapshotInvalid {
            place: source_name.to_owned(),
            message,
        })?;
        Ok((Seed::from_world(world), report))
    }
}

/// Pools without dates in the snapshot are open from long ago to far ahead.
fn open_start() -> Timestamp {
    Timestamp::from_second(946_684_800).unwrap_or(Timestamp::UNIX_EPOCH) // 2000-01-01
}

fn open_end() -> Timestamp {
    Timestamp::from_second(4_102_444_799).unwrap_or(Timestamp::MAX) // 2099-12-31T23:59:59Z
}

fn build(snapshot: &Snapshot) -> Result<(World, Rehearsal), String> {
    let mut world = World::default();
    let mut report = Rehearsal {
        captured_at: snapshot.captured_at,
        ..Rehearsal::default()
    };
    // Lower-cased email -> account id: the sandbox finds people by email.
    let mut emails: BTreeMap<String, String> = BTreeMap::new();
    for observed in &snapshot.teams {
        let team_id = observed.id.0.clone();
        report.members = report.members.saturating_add(observed.users.len());
        if report.members > MAX_SNAPSHOT_MEMBERS {
            return Err(format!(
                "with team {team_id} the snapshot has more than {MAX_SNAPSHOT_MEMBERS} team \
                 members; the sandbox holds at most that many"
            ));
        }
        let mut members = Vec::new();
        let mut member_ids = BTreeSet::new();
        let mut domains = BTreeSet::new();
        for user in &observed.users {
            let id = user.id.0.clone();
            let email = user.email.as_str().to_owned();
            if !member_ids.insert(id.clone()) {
                return Err(format!("user {id} is listed twice in team {team_id}"));
            }
            match world.accounts.get(&id) {
                Some(a) if !a.email.eq_ignore_ascii_case(&email) => {
                    return Err(format!(
                        "user {id} appears with two emails: {} and {email}",
                        a.email
                    ));
                }
                Some(_) => {}
                None => {
                    if let Some(other) = emails.insert(email.clone(), id.clone()) {
                        return Err(format!("email {email} is used by both {other} and {id}"));
                    }
                    world.accounts.insert(
                        id.clone(),
                        Account {
                            email: email.clone(),
                            first_name: user.first_name.clone().unwrap_or_default(),
                            last_name: user.last_name.clone().unwrap_or_default(),
                        },
                    );
                }
            }
            let role = match user.role.as_deref() {
                Some("EXTERNAL_USER") => Role::ExternalUser,
                _ => {
                    if let Some((_, domain)) = email.rsplit_once('@') {
                        domains.insert(domain.to_owned());
                    }
                    Role::User
                }
            };
            members.push(Member {
                user_id: id,
                role,
                status: MemberStatus::Active,
            });
        }

        let mut pools = Vec::new();
        let mut products = BTreeSet::new();
        for p in &observed.pools {
            let product = p.product_id.0.clone();
            if !products.insert(product.clone()) {
                return Err(format!("product {product} has two pools in team {team_id}"));
            }
            let total_quantity = match (p.unlimited, p.total_quantity) {
                (true, _) => None,
                (false, Some(n)) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                (false, None) => {
                    report.notes.push(format!(
                        "team {team_id}: pool {product} is limited but its seat count is not \
                         known; the sandbox gives it {} seat(s), those in use",
                        p.assigned_quantity.unwrap_or(0)
                    ));
                    Some(u32::try_from(p.assigned_quantity.unwrap_or(0)).unwrap_or(u32::MAX))
                }
            };
            pools.push(Pool {
                product_id: product,
                product_name: p.product_name.clone(),
                unlimited: p.unlimited,
                total_quantity,
                start_date: p.start_date.unwrap_or_else(open_start),
                end_date: p.end_date.unwrap_or_else(open_end),
                supported: true,
            });
        }

        let mut direct = Vec::new();
        let mut inherited: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut through_team: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut skipped = 0usize;
        for a in &observed.assignments {
            let (user, product) = (a.user_id.0.clone(), a.product_id.0.clone());
            if !member_ids.contains(&user) || !products.contains(&product) {
                skipped += 1;
                continue;
            }
            if !seen.insert((user.clone(), product.clone())) {
                continue;
            }
            match a.assignment_type {
                AssignmentType::Direct => direct.push(DirectAssignment {
                    user_id: user,
                    product_id: product,
                    created_at: None,
                    removed_at: None,
                }),
                AssignmentType::Team => {
                    through_team.entry(product).or_default().insert(user);
                }
                AssignmentType::Group | AssignmentType::Inherited => {
                    inherited.entry(product).or_default().insert(user);
                }
            }
        }
        if skipped > 0 {
            report.notes.push(format!(
                "team {team_id}: {skipped} assignment(s) name a user or product the snapshot \
                 does not list; left out"
            ));
        }
        let mut team_products = BTreeSet::new();
        for (product, holders) in through_team {
            if holders.len() == member_ids.len() {
                team_products.insert(product);
            } else {
                // Held "through the team" by only some: a group keeps the
                // others from gaining it.
                inherited.entry(product).or_default().extend(holders);
            }
        }
        let groups = inherited
            .into_iter()
            .map(|(product, members)| Group {
                name: format!("inherited {product} (from the snapshot)"),
                members,
                products: BTreeSet::from([product]),
            })
            .collect();

        let team = Team {
            name: observed.name.clone(),
            domains: domains.into_iter().collect(),
            members,
            pools,
            groups,
            team_products,
            direct,
            invitations: BTreeMap::new(),
        };
        // The sandbox counts seats from holders; say where that differs
        // from what Autodesk reported.
        for p in &observed.pools {
            let Some(reported) = p.assigned_quantity else {
                continue;
            };
            let holders = holders_of(&team, &p.product_id.0);
            if holders as u64 != reported && !p.unlimited {
                report.notes.push(format!(
                    "team {team_id}: pool {} reported {reported} seat(s) in use; the sandbox \
                     counts {holders} from the assignments the snapshot lists",
                    p.product_id
                ));
            }
        }
        if world.teams.insert(team_id.clone(), team).is_some() {
            return Err(format!("team {team_id} appears twice"));
        }
    }
    report.teams = world.teams.len();

    if world.accounts.contains_key(REHEARSAL_ADMIN) {
        return Err(format!(
            "a member has the id {REHEARSAL_ADMIN}, which the sandbox's admin needs"
        ));
    }
    if let Some(other) = emails.get(REHEARSAL_ADMIN_EMAIL) {
        return Err(format!(
            "member {other} has the email {REHEARSAL_ADMIN_EMAIL}, which the sandbox's admin needs"
        ));
    }
    world.accounts.insert(
        REHEARSAL_ADMIN.to_owned(),
        Account {
            email: REHEARSAL_ADMIN_EMAIL.to_owned(),
            first_name: "Ada".to_owned(),
            last_name: "Admin".to_owned(),
        },
    );
    world.admins.insert(
        REHEARSAL_ADMIN.to_owned(),
        world.teams.keys().cloned().collect(),
    );
    Ok((world, report))
}

/// People holding `product` in `team` by any route (how the sandbox counts
/// seats by default).
fn holders_of(team: &Team, product: &str) -> usize {
    team.members
        .iter()
        .filter(|m| {
            team.team_products.contains(product)
                || team.direct.iter().any(|d| {
                    d.user_id == m.user_id && d.product_id == product && d.removed_at.is_none()
                })
                || team
                    .groups
                    .iter()
                    .any(|g| g.members.contains(&m.user_id) && g.products.contains(product))
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> Snapshot {
        let text = include_str!("../../examples/snapshot.json");
        Snapshot::parse("snapshot.json", text).unwrap()
    }

    #[test]
    fn the_example_snapshot_becomes_a_world_with_its_admin_and_inherited_assignments() {
        let (seed, report) = Seed::from_snapshot(&example(), "snapshot.json").unwrap();
        let world = seed.world();
        assert_eq!(report.teams, 2);
        assert!(report.notes.is_empty(), "{:?}", report.notes);
        assert_eq!(
            world.admins[REHEARSAL_ADMIN],
            BTreeSet::from(["100001".to_owned(), "100002".to_owned()])
        );
        let eng = &world.teams["100001"];
        assert_eq!(eng.name, "Example Engineering");
        assert_eq!(eng.domains, ["example.com"]);
        let frank = eng
            .members
            .iter()
            .find(|m| m.user_id == "US1000000006")
            .unwrap();
        assert_eq!(frank.role, Role::ExternalUser);
        // Docs through the team for everyone; Carol's AutoCAD through a group.
        assert_eq!(eng.team_products, BTreeSet::from(["prod_docs".to_owned()]));
        assert_eq!(eng.groups.len(), 1);
        assert_eq!(
            eng.groups[0].members,
            BTreeSet::from(["US1000000003".to_owned()])
        );
        assert_eq!(eng.direct.len(), 4);
        let acad = eng
            .pools
            .iter()
            .find(|p| p.product_id == "prod_acad_premium")
            .unwrap();
        assert_eq!(acad.total_quantity, Some(4));
        assert_eq!(holders_of(eng, "prod_acad_premium"), 3);
        assert_eq!(world.teams["100002"].members.len(), 141);
    }

    #[test]
    fn inconsistencies_are_noted_or_refused() {
        let mut s = example();
        let eng =
            std::sync::Arc::make_mut(s.teams.iter_mut().find(|t| t.id.0 == "100001").unwrap());
        // Docs "through the team" for one person only: a group, not the team.
        eng.assignments
            .retain(|a| a.product_id.0 != "prod_docs" || a.user_id.0 == "US1000000001");
        eng.assignments.push(crate::model::Assignment {
            user_id: crate::model::UserId("US404".into()),
            product_id: crate::model::ProductId("prod_docs".into()),
            assignment_type: AssignmentType::Direct,
        });
        let (seed, report) = Seed::from_snapshot(&s, "s.json").unwrap();
        let eng = &seed.world().teams["100001"];
        assert!(eng.team_products.is_empty());
        assert_eq!(holders_of(eng, "prod_docs"), 1);
        assert!(
            report.notes.iter().any(|n| n.contains("1 assignment(s)")),
            "{:?}",
            report.notes
        );

        let mut s = example();
        let email = s.teams[0].users[0].email.clone();
        std::sync::Arc::make_mut(&mut s.teams[0]).users[1].email = email;
        let e = Seed::from_snapshot(&s, "s.json").unwrap_err().to_string();
        assert!(e.starts_with("s.json: invalid snapshot:"), "{e}");
        assert!(e.contains("is used by both"), "{e}");
    }
}
