//! A sandbox world built from a snapshot of live teams (`flexsync snapshot`,
//! or the service's `/snapshot`), so a big change can be applied, inspected
//! and thrown away before it touches the real team.
//!
//! The snapshot comes as a [`TeamCopy`] (flexsync reads its own file format
//! and fills one in; nothing here knows that format). It is the observed
//! state as the API shows it, which is less than the sandbox's world: it has effective assignments, not where each
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

use jiff::Timestamp;

use super::SandboxError;
use super::seed::Seed;
use super::state::{
    Account, DirectAssignment, Group, Member, MemberStatus, Pool, Role, Team, World,
};

/// Most members (over all teams) a snapshot may bring into the sandbox: the
/// largest team flexsync plans for. Their state file (with `--state`) is
/// rewritten on every change, about 50 MB at this size.
pub const MAX_SNAPSHOT_MEMBERS: usize = 100_000;

/// The admin every rehearsal logs in as: the bundled seed's first admin, so
/// what docs/sandbox.md says about logging in holds here too.
pub const REHEARSAL_ADMIN: &str = "USADMIN00001";
const REHEARSAL_ADMIN_EMAIL: &str = "ada.admin@example.com";

/// Live teams as a snapshot of them shows them, field for field, in the
/// sandbox's own plain types: what a rehearsal starts from. Reading a
/// snapshot file is its owner's business (flexsync's `rehearsal` module
/// fills this in); making a world of it is the sandbox's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TeamCopy {
    /// When the teams were read, if known; reported back in [`Rehearsal`].
    pub captured_at: Option<Timestamp>,
    pub teams: Vec<CopiedTeam>,
}

/// One team of a [`TeamCopy`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopiedTeam {
    pub id: String,
    pub name: String,
    pub members: Vec<CopiedMember>,
    pub pools: Vec<CopiedPool>,
    pub assignments: Vec<CopiedAssignment>,
}

/// A member as List Team Users shows one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopiedMember {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The API's word (`USER`, `EXTERNAL_USER`), verbatim.
    pub role: Option<String>,
}

/// A pool as List Product Pools shows one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopiedPool {
    pub product_id: String,
    pub product_name: String,
    pub unlimited: bool,
    /// Seats; not known for some limited pools.
    pub total_quantity: Option<u64>,
    /// Seats in use, as reported.
    pub assigned_quantity: Option<u64>,
    pub start_date: Option<Timestamp>,
    pub end_date: Option<Timestamp>,
}

/// One person holding one product, with the effective assignment type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopiedAssignment {
    pub user_id: String,
    pub product_id: String,
    pub kind: AssignmentKind,
}

/// How an assignment is held: the API's `DIRECT`, `GROUP`, `TEAM`, or
/// another (inherited) kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AssignmentKind {
    Direct,
    Group,
    Team,
    /// An inherited kind other than `GROUP` and `TEAM`: rebuilt like `GROUP`.
    OtherInherited,
}

/// What the rebuilt world could not carry over exactly, for the operator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rehearsal {
    pub teams: usize,
    pub members: usize,
    pub captured_at: Option<Timestamp>,
    pub notes: Vec<String>,
}

impl Seed {
    /// The world of the teams `copy` holds; `source_name` (the snapshot's
    /// file) names it in errors.
    pub fn from_team_copy(
        copy: &TeamCopy,
        source_name: &str,
    ) -> Result<(Seed, Rehearsal), SandboxError> {
        let (world, report) = build(copy).map_err(|message| SandboxError::SnapshotInvalid {
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

fn build(copy: &TeamCopy) -> Result<(World, Rehearsal), String> {
    let mut b = Builder {
        world: World::default(),
        emails: BTreeMap::new(),
        report: Rehearsal {
            captured_at: copy.captured_at,
            ..Rehearsal::default()
        },
    };
    for observed in &copy.teams {
        b.report.members = b.report.members.saturating_add(observed.members.len());
        if b.report.members > MAX_SNAPSHOT_MEMBERS {
            return Err(format!(
                "with team {} the snapshot has more than {MAX_SNAPSHOT_MEMBERS} team \
                 members; the sandbox holds at most that many",
                observed.id
            ));
        }
        b.team(observed)?;
    }
    b.report.teams = b.world.teams.len();
    b.admin()?;
    Ok((b.world, b.report))
}

/// The world and the report as the copied teams are added.
struct Builder {
    world: World,
    /// Lower-cased email -> account id: the sandbox finds people by email.
    emails: BTreeMap<String, String>,
    report: Rehearsal,
}

/// What a team's assignments become in the sandbox.
struct Holdings {
    direct: Vec<DirectAssignment>,
    groups: Vec<Group>,
    team_products: BTreeSet<String>,
}

impl Builder {
    fn team(&mut self, observed: &CopiedTeam) -> Result<(), String> {
        let team_id = &observed.id;
        let (members, domains) = self.members(observed)?;
        let member_ids: BTreeSet<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        let pools = self.pools(observed)?;
        let products: BTreeSet<&str> = pools.iter().map(|p| p.product_id.as_str()).collect();
        let holdings = self.holdings(observed, &member_ids, &products);
        let team = Team {
            name: observed.name.clone(),
            domains: domains.into_iter().collect(),
            members,
            pools,
            groups: holdings.groups,
            team_products: holdings.team_products,
            direct: holdings.direct,
            invitations: BTreeMap::new(),
        };
        // The sandbox counts seats from holders; say where that differs
        // from what Autodesk reported.
        for p in &observed.pools {
            let Some(reported) = p.assigned_quantity else {
                continue;
            };
            let holders = holders_of(&team, &p.product_id);
            if holders as u64 != reported && !p.unlimited {
                self.report.notes.push(format!(
                    "team {team_id}: pool {} reported {reported} seat(s) in use; the sandbox \
                     counts {holders} from the assignments the snapshot lists",
                    p.product_id
                ));
            }
        }
        if self.world.teams.insert(team_id.clone(), team).is_some() {
            return Err(format!("team {team_id} appears twice"));
        }
        Ok(())
    }

    /// The team's members with their accounts (one email per account, one
    /// account per email), and the domains of its internal members.
    fn members(
        &mut self,
        observed: &CopiedTeam,
    ) -> Result<(Vec<Member>, BTreeSet<String>), String> {
        let team_id = &observed.id;
        let mut members = Vec::new();
        let mut member_ids = BTreeSet::new();
        let mut domains = BTreeSet::new();
        for user in &observed.members {
            let id = user.id.clone();
            let email = user.email.clone();
            if !member_ids.insert(id.clone()) {
                return Err(format!("user {id} is listed twice in team {team_id}"));
            }
            match self.world.accounts.get(&id) {
                Some(a) if !a.email.eq_ignore_ascii_case(&email) => {
                    return Err(format!(
                        "user {id} appears with two emails: {} and {email}",
                        a.email
                    ));
                }
                Some(_) => {}
                None => {
                    if let Some(other) = self.emails.insert(email.to_ascii_lowercase(), id.clone())
                    {
                        return Err(format!("email {email} is used by both {other} and {id}"));
                    }
                    self.world.accounts.insert(
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
        Ok((members, domains))
    }

    /// The team's pools, one per product; a limited pool of unknown size
    /// gets the seats in use (noted).
    fn pools(&mut self, observed: &CopiedTeam) -> Result<Vec<Pool>, String> {
        let team_id = &observed.id;
        let mut pools = Vec::new();
        let mut products = BTreeSet::new();
        for p in &observed.pools {
            let product = p.product_id.clone();
            if !products.insert(product.clone()) {
                return Err(format!("product {product} has two pools in team {team_id}"));
            }
            let total_quantity = match (p.unlimited, p.total_quantity) {
                (true, _) => None,
                (false, Some(n)) => Some(u32::try_from(n).unwrap_or(u32::MAX)),
                (false, None) => {
                    self.report.notes.push(format!(
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
        Ok(pools)
    }

    /// Direct assignments as such; inherited ones as groups of the sandbox;
    /// a product every member holds through the team as a team product.
    /// Assignments naming someone or something not copied are left out
    /// (noted).
    fn holdings(
        &mut self,
        observed: &CopiedTeam,
        member_ids: &BTreeSet<&str>,
        products: &BTreeSet<&str>,
    ) -> Holdings {
        let mut direct = Vec::new();
        let mut inherited: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut through_team: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut seen = BTreeSet::new();
        let mut skipped = 0usize;
        for a in &observed.assignments {
            let (user, product) = (a.user_id.clone(), a.product_id.clone());
            if !member_ids.contains(user.as_str()) || !products.contains(product.as_str()) {
                skipped += 1;
                continue;
            }
            if !seen.insert((user.clone(), product.clone())) {
                continue;
            }
            match a.kind {
                AssignmentKind::Direct => direct.push(DirectAssignment {
                    user_id: user,
                    product_id: product,
                    created_at: None,
                    removed_at: None,
                }),
                AssignmentKind::Team => {
                    through_team.entry(product).or_default().insert(user);
                }
                AssignmentKind::Group | AssignmentKind::OtherInherited => {
                    inherited.entry(product).or_default().insert(user);
                }
            }
        }
        if skipped > 0 {
            self.report.notes.push(format!(
                "team {}: {skipped} assignment(s) name a user or product the snapshot \
                 does not list; left out",
                observed.id
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
        Holdings {
            direct,
            groups,
            team_products,
        }
    }

    /// The sandbox's own admin of every copied team, whose id and email no
    /// member may already have.
    fn admin(&mut self) -> Result<(), String> {
        if self.world.accounts.contains_key(REHEARSAL_ADMIN) {
            return Err(format!(
                "a member has the id {REHEARSAL_ADMIN}, which the sandbox's admin needs"
            ));
        }
        if let Some(other) = self.emails.get(REHEARSAL_ADMIN_EMAIL) {
            return Err(format!(
                "member {other} has the email {REHEARSAL_ADMIN_EMAIL}, which the sandbox's admin needs"
            ));
        }
        self.world.accounts.insert(
            REHEARSAL_ADMIN.to_owned(),
            Account {
                email: REHEARSAL_ADMIN_EMAIL.to_owned(),
                first_name: "Ada".to_owned(),
                last_name: "Admin".to_owned(),
            },
        );
        let teams = self.world.teams.keys().cloned().collect();
        self.world.admins.insert(REHEARSAL_ADMIN.to_owned(), teams);
        Ok(())
    }
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

    fn member(id: &str, email: &str, role: &str) -> CopiedMember {
        CopiedMember {
            id: id.to_owned(),
            email: email.to_owned(),
            first_name: Some(id.to_owned()),
            last_name: None,
            role: Some(role.to_owned()),
        }
    }

    fn pool(product: &str, total: Option<u64>, assigned: Option<u64>) -> CopiedPool {
        CopiedPool {
            product_id: product.to_owned(),
            product_name: product.to_owned(),
            unlimited: total.is_none(),
            total_quantity: total,
            assigned_quantity: assigned,
            start_date: None,
            end_date: None,
        }
    }

    fn holds(user: &str, product: &str, kind: AssignmentKind) -> CopiedAssignment {
        CopiedAssignment {
            user_id: user.to_owned(),
            product_id: product.to_owned(),
            kind,
        }
    }

    /// Team 100001 of examples/snapshot.json (its pools' dates left out),
    /// and a smaller 100002.
    fn example() -> TeamCopy {
        use AssignmentKind::{Direct, Group, Team};
        let users = [
            ("US1000000001", "alice@example.com", "USER"),
            ("US1000000002", "bob@example.com", "USER"),
            ("US1000000003", "carol@example.com", "USER"),
            ("US1000000004", "dave@example.com", "USER"),
            ("US1000000005", "erin@example.com", "USER"),
            (
                "US1000000006",
                "frank@contractor.example.net",
                "EXTERNAL_USER",
            ),
        ];
        let mut assignments = vec![
            holds("US1000000001", "prod_flex_platform", Direct),
            holds("US1000000001", "prod_acad_premium", Direct),
            holds("US1000000002", "prod_acad_premium", Direct),
            holds("US1000000003", "prod_acad_premium", Group),
            holds("US1000000004", "prod_flex_platform", Direct),
        ];
        assignments.extend(users.iter().map(|u| holds(u.0, "prod_docs", Team)));
        let engineering = CopiedTeam {
            id: "100001".to_owned(),
            name: "Example Engineering".to_owned(),
            members: users.iter().map(|u| member(u.0, u.1, u.2)).collect(),
            pools: vec![
                pool("prod_flex_platform", None, None),
                pool("prod_acad_premium", Some(4), Some(3)),
                pool("prod_docs", None, None),
                pool("prod_revit_next_term", Some(10), None),
                pool("prod_navisworks_old", Some(5), Some(0)),
            ],
            assignments,
        };
        let manufacturing = CopiedTeam {
            id: "100002".to_owned(),
            name: "Example Manufacturing".to_owned(),
            members: vec![
                member("US1000000001", "alice@example.com", "USER"),
                member("US2000000001", "user1@example.com", "USER"),
            ],
            pools: vec![pool("prod_fusion", Some(3), Some(1))],
            assignments: vec![holds("US2000000001", "prod_fusion", Direct)],
        };
        TeamCopy {
            captured_at: Some("2026-11-26T09:00:00Z".parse().unwrap()),
            teams: vec![engineering, manufacturing],
        }
    }

    #[test]
    fn the_example_snapshot_becomes_a_world_with_its_admin_and_inherited_assignments() {
        let (seed, report) = Seed::from_team_copy(&example(), "snapshot.json").unwrap();
        let world = seed.world();
        assert_eq!(report.teams, 2);
        assert_eq!(report.members, 8);
        assert_eq!(report.captured_at, example().captured_at);
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
        // Alice is on both teams: one account.
        assert_eq!(world.teams["100002"].members.len(), 2);
        assert_eq!(world.accounts.len(), 8);
    }

    #[test]
    fn inconsistencies_are_noted_or_refused() {
        let mut s = example();
        let eng = s.teams.iter_mut().find(|t| t.id == "100001").unwrap();
        // Docs "through the team" for one person only: a group, not the team.
        eng.assignments
            .retain(|a| a.product_id != "prod_docs" || a.user_id == "US1000000001");
        eng.assignments
            .push(holds("US404", "prod_docs", AssignmentKind::Direct));
        let (seed, report) = Seed::from_team_copy(&s, "s.json").unwrap();
        let eng = &seed.world().teams["100001"];
        assert!(eng.team_products.is_empty());
        assert_eq!(holders_of(eng, "prod_docs"), 1);
        assert!(
            report.notes.iter().any(|n| n.contains("1 assignment(s)")),
            "{:?}",
            report.notes
        );

        let mut s = example();
        let email = s.teams[0].members[0].email.clone();
        s.teams[0].members[1].email = email;
        let e = Seed::from_team_copy(&s, "s.json").unwrap_err().to_string();
        assert!(e.starts_with("s.json: invalid snapshot:"), "{e}");
        assert!(e.contains("is used by both"), "{e}");
    }

    #[test]
    fn a_pool_without_a_seat_count_or_with_other_holders_is_noted() {
        let mut s = example();
        let eng = &mut s.teams[0];
        eng.pools[1].total_quantity = None;
        eng.pools[4].assigned_quantity = Some(2);
        let (seed, report) = Seed::from_team_copy(&s, "s.json").unwrap();
        let acad = &seed.world().teams["100001"].pools[1];
        assert_eq!(acad.total_quantity, Some(3));
        assert_eq!(
            report.notes,
            [
                "team 100001: pool prod_acad_premium is limited but its seat count is not known; \
                 the sandbox gives it 3 seat(s), those in use",
                "team 100001: pool prod_navisworks_old reported 2 seat(s) in use; the sandbox \
                 counts 0 from the assignments the snapshot lists",
            ]
        );
    }

    #[test]
    fn too_many_members_or_the_admins_id_are_refused() {
        let mut s = example();
        let extra = MAX_SNAPSHOT_MEMBERS + 1 - s.teams[0].members.len();
        s.teams[1].members = (0..extra)
            .map(|i| member(&format!("US{i}"), &format!("u{i}@example.com"), "USER"))
            .collect();
        let e = Seed::from_team_copy(&s, "s.json").unwrap_err().to_string();
        assert!(
            e.contains("with team 100002 the snapshot has more than 100000"),
            "{e}"
        );

        let mut s = example();
        s.teams[1].members[1].id = REHEARSAL_ADMIN.to_owned();
        let e = Seed::from_team_copy(&s, "s.json").unwrap_err().to_string();
        assert!(e.contains("which the sandbox's admin needs"), "{e}");
    }
}
