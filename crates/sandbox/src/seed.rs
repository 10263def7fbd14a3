//! The seed: a YAML description of the world a fresh sandbox starts from.
//!
//! The bundled default (`seed.yaml` next to this file) is what `--sandbox` uses. A team
//! can ask for `generatedUsers: N`, made deterministically here, so the YAML stays short
//! while pagination still has many pages to walk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::Timestamp;
use serde::Deserialize;
use serde_saphyr::MessageFormatter;

use super::SandboxError;
use super::state::{
    Account, DirectAssignment, Group, Member, MemberStatus, Pool, Team, World, role_for,
};

/// The bundled default seed.
pub const DEFAULT_SEED_YAML: &str = include_str!("seed.yaml");

/// Largest seed file read: seeds are hand-written like declarations, and
/// `generatedUsers` makes big teams without big files.
pub const MAX_SEED_BYTES: u64 = 4 * 1024 * 1024;

/// Most `generatedUsers` one team may ask for: 100 pages of the largest
/// page, plenty for pagination tests.
pub const MAX_GENERATED_USERS: u32 = 10_000;

/// Most team members (listed plus generated) in a whole seed: the state file
/// holds them all and is rewritten on every change.
pub const MAX_SEED_MEMBERS: usize = 20_000;

/// A parsed and checked seed.
#[derive(Clone, Debug)]
pub struct Seed {
    world: World,
}

impl Seed {
    /// The bundled default seed.
    pub fn bundled() -> Result<Self, SandboxError> {
        Self::parse(DEFAULT_SEED_YAML, "<bundled seed.yaml>")
    }

    /// Reads and checks a seed file.
    /// Refuses a file over [`MAX_SEED_BYTES`] (from its size, unread), and
    /// FIFOs and devices (without opening them in a way that blocks).
    pub fn from_file(path: &Path) -> Result<Self, SandboxError> {
        let text = crate::read::read_text_capped(path, MAX_SEED_BYTES).map_err(|source| {
            SandboxError::Read {
                path: path.display().to_string(),
                what: "seed",
                source,
            }
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses seed YAML; `source_name` names it in errors. Parsing runs under
    /// budgets like a declaration's, so an alias bomb or deep nesting is an
    /// error, not a hang.
    pub fn parse(yaml: &str, source_name: &str) -> Result<Self, SandboxError> {
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! {
                max_depth: 32,
                max_aliases: 1_000,
                max_anchors: 1_000,
                // Enough for the most members a seed may list.
                max_events: 1_000_000,
                max_nodes: 500_000,
                max_documents: 1,
            },
            alias_limits: serde_saphyr::alias_limits! {
                max_total_replayed_events: 50_000,
                max_replay_stack_depth: 16,
            },
        };
        let doc: SeedDoc = serde_saphyr::from_str_with_options(yaml, options).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            // Without the "error: line L column C:" that the place already says.
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(&e)
                .into_owned();
            let message =
                if message.starts_with("budget breached") || message.contains("recursion limit") {
                    format!(
                        "the YAML is too complex for a seed ({message}); the sandbox allows 1,000 \
                     anchors and aliases, 32 levels of nesting and 500,000 nodes"
                    )
                } else {
                    message
                };
            SandboxError::SeedSyntax {
                path: source_name.to_owned(),
                line,
                column,
                message,
            }
        })?;
        let world = build(doc).map_err(|message| SandboxError::SeedInvalid {
            path: source_name.to_owned(),
            message,
        })?;
        Ok(Self { world })
    }

    /// A seed of a world built elsewhere (a snapshot's).
    pub(crate) fn from_world(world: World) -> Self {
        Self { world }
    }

    /// The world this seed describes.
    pub(crate) fn world(&self) -> World {
        self.world.clone()
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedDoc {
    admins: Vec<SeedAdmin>,
    teams: Vec<SeedTeam>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedAdmin {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
    administers: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedTeam {
    id: String,
    name: String,
    #[serde(default)]
    domains: Vec<String>,
    #[serde(default)]
    users: Vec<SeedUser>,
    #[serde(default)]
    generated_users: u32,
    #[serde(default)]
    pools: Vec<SeedPool>,
    #[serde(default)]
    groups: Vec<SeedGroup>,
    #[serde(default)]
    team_products: Vec<String>,
    #[serde(default)]
    assignments: Vec<SeedAssignment>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedUser {
    id: String,
    email: String,
    first_name: String,
    last_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedPool {
    product_id: String,
    product_name: String,
    #[serde(default)]
    total_quantity: Option<u32>,
    #[serde(default)]
    unlimited: bool,
    start_date: Timestamp,
    end_date: Timestamp,
    #[serde(default = "yes")]
    supported: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedGroup {
    name: String,
    members: Vec<String>,
    products: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SeedAssignment {
    user_id: String,
    product_id: String,
}

/// Turns the document into a world, checking every cross-reference.
fn build(doc: SeedDoc) -> Result<World, String> {
    let mut b = Builder::default();
    let mut seed_members = 0usize;
    for team in doc.teams {
        if b.world.teams.contains_key(&team.id) {
            return Err(format!("team {} is defined twice", team.id));
        }
        if team.generated_users > MAX_GENERATED_USERS {
            return Err(format!(
                "team {} asks for generatedUsers: {}; the sandbox makes at most {MAX_GENERATED_USERS} per team",
                team.id, team.generated_users
            ));
        }
        seed_members = seed_members
            .saturating_add(team.users.len())
            .saturating_add(team.generated_users as usize);
        if seed_members > MAX_SEED_MEMBERS {
            return Err(format!(
                "with team {} the seed has more than {MAX_SEED_MEMBERS} team members (listed and generated); \
                 the sandbox holds at most that many",
                team.id
            ));
        }
        b.team(team)?;
    }
    for admin in doc.admins {
        b.add_account(
            &admin.id,
            Account {
                email: admin.email,
                first_name: admin.first_name,
                last_name: admin.last_name,
            },
        )?;
        for t in &admin.administers {
            if !b.world.teams.contains_key(t) {
                return Err(format!("admin {} administers unknown team {t}", admin.id));
            }
        }
        b.world
            .admins
            .insert(admin.id, admin.administers.into_iter().collect());
    }
    if b.world.admins.is_empty() {
        return Err("the seed needs at least one admin to log in as".to_owned());
    }
    Ok(b.world)
}

/// The world as the seed's teams and admins are added to it.
#[derive(Default)]
struct Builder {
    world: World,
    /// Lower-cased email -> account id, so each check is a lookup, not a
    /// scan of every account (quadratic in a seed of many generated users).
    emails: BTreeMap<String, String>,
}

impl Builder {
    /// An account, once: the same id must keep its email, and one email
    /// belongs to one id.
    fn add_account(&mut self, id: &str, account: Account) -> Result<(), String> {
        match self.world.accounts.get(id) {
            Some(existing) if !existing.email.eq_ignore_ascii_case(&account.email) => Err(format!(
                "user {id} appears with two emails: {} and {}",
                existing.email, account.email
            )),
            Some(_) => Ok(()),
            None => {
                let key = account.email.to_ascii_lowercase();
                if let Some(other) = self.emails.get(&key) {
                    return Err(format!(
                        "email {} is used by both {other} and {id}",
                        account.email
                    ));
                }
                self.emails.insert(key, id.to_owned());
                self.world.accounts.insert(id.to_owned(), account);
                Ok(())
            }
        }
    }

    fn team(&mut self, team: SeedTeam) -> Result<(), String> {
        let id = team.id;
        let members = self.members(&id, &team.domains, team.users, team.generated_users)?;
        let member_ids: BTreeSet<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        let pools = pools(&id, team.pools)?;
        let products: BTreeSet<&str> = pools.iter().map(|p| p.product_id.as_str()).collect();
        let check_user = |u: &str, what: &str| {
            if member_ids.contains(u) {
                Ok(())
            } else {
                Err(format!("{what} in team {id} names unknown user {u}"))
            }
        };
        let check_product = |p: &str, what: &str| {
            if products.contains(p) {
                Ok(())
            } else {
                Err(format!("{what} in team {id} names unknown product {p}"))
            }
        };
        let mut groups = Vec::new();
        for g in team.groups {
            for u in &g.members {
                check_user(u, &format!("group {}", g.name))?;
            }
            for p in &g.products {
                check_product(p, &format!("group {}", g.name))?;
            }
            groups.push(Group {
                name: g.name,
                members: g.members.into_iter().collect(),
                products: g.products.into_iter().collect(),
            });
        }
        for p in &team.team_products {
            check_product(p, "teamProducts")?;
        }
        let mut direct = Vec::new();
        let mut seen = BTreeSet::new();
        for a in team.assignments {
            check_user(&a.user_id, "an assignment")?;
            check_product(&a.product_id, "an assignment")?;
            if !seen.insert((a.user_id.clone(), a.product_id.clone())) {
                return Err(format!(
                    "assignment of {} to {} is listed twice in team {id}",
                    a.product_id, a.user_id
                ));
            }
            direct.push(DirectAssignment {
                user_id: a.user_id,
                product_id: a.product_id,
                created_at: None,
                removed_at: None,
            });
        }
        let team = Team {
            name: team.name,
            domains: team.domains,
            members,
            pools,
            groups,
            team_products: team.team_products.into_iter().collect(),
            direct,
            invitations: BTreeMap::new(),
        };
        self.world.teams.insert(id, team);
        Ok(())
    }

    /// The team's listed and generated members, each once, with accounts.
    fn members(
        &mut self,
        team: &str,
        domains: &[String],
        users: Vec<SeedUser>,
        generated: u32,
    ) -> Result<Vec<Member>, String> {
        let mut members: Vec<Member> = Vec::new();
        let mut member_ids = BTreeSet::new();
        let generated = (1..=generated).map(|n| SeedUser {
            id: format!("US{team}{n:05}"),
            email: format!("member{n:03}.{team}@example.com"),
            first_name: "Member".to_owned(),
            last_name: format!("{n:03}"),
        });
        for user in users.into_iter().chain(generated) {
            if !member_ids.insert(user.id.clone()) {
                return Err(format!("user {} is listed twice in team {team}", user.id));
            }
            let role = role_for(domains, &user.email);
            self.add_account(
                &user.id,
                Account {
                    email: user.email,
                    first_name: user.first_name,
                    last_name: user.last_name,
                },
            )?;
            members.push(Member {
                user_id: user.id,
                role,
                status: MemberStatus::Active,
            });
        }
        Ok(members)
    }
}

/// The team's pools, one per product, each with a quantity and dates that
/// make sense.
fn pools(team: &str, seeded: Vec<SeedPool>) -> Result<Vec<Pool>, String> {
    let mut pools = Vec::new();
    let mut products = BTreeSet::new();
    for p in seeded {
        if !products.insert(p.product_id.clone()) {
            return Err(format!(
                "product {} has two pools in team {team}",
                p.product_id
            ));
        }
        if !p.unlimited && p.total_quantity.is_none() {
            return Err(format!(
                "pool {} in team {team} needs totalQuantity or unlimited: true",
                p.product_id
            ));
        }
        if p.end_date <= p.start_date {
            return Err(format!(
                "pool {} in team {team} ends before it starts",
                p.product_id
            ));
        }
        pools.push(Pool {
            product_id: p.product_id,
            product_name: p.product_name,
            unlimited: p.unlimited,
            total_quantity: if p.unlimited { None } else { p.total_quantity },
            start_date: p.start_date,
            end_date: p.end_date,
            supported: p.supported,
        });
    }
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_seed_is_valid_and_has_a_big_team() {
        let seed = Seed::bundled().unwrap();
        let world = seed.world();
        assert!(world.teams.values().any(|t| t.members.len() > 100));
    }

    #[test]
    fn syntax_error_names_file_and_position() {
        let err = Seed::parse("admins: []\nteams:\n  - id: 1\n    nme: x\n", "s.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("s.yaml:4:"), "{text}");
    }

    /// A seed with one team whose body is `team` (YAML lines indented
    /// for the team's mapping).
    fn with_team(team: &str) -> String {
        format!(
            "admins: [{{id: A, email: a@x.io, firstName: A, lastName: B, administers: ['1']}}]\n\
             teams:\n  - id: '1'\n    name: T\n{team}"
        )
    }

    #[test]
    fn every_inconsistency_of_a_team_is_refused_by_name() {
        let pool = "{productId: p, productName: P, totalQuantity: 1, startDate: 2025-01-01T00:00:00Z, endDate: 2026-01-01T00:00:00Z}";
        let user = "{id: U1, email: u@x.io, firstName: U, lastName: One}";
        let cases = [
            (format!("    users: [{user}, {user}]\n"), "user U1 is listed twice in team 1"),
            (
                "    users: [{id: U1, email: a@x.io, firstName: U, lastName: One}]\n".to_owned(),
                "email a@x.io is used by both U1 and A",
            ),
            (format!("    pools: [{pool}, {pool}]\n"), "product p has two pools in team 1"),
            (
                "    pools: [{productId: p, productName: P, startDate: 2025-01-01T00:00:00Z, endDate: 2026-01-01T00:00:00Z}]\n".to_owned(),
                "pool p in team 1 needs totalQuantity or unlimited: true",
            ),
            (
                "    pools: [{productId: p, productName: P, unlimited: true, startDate: 2026-01-01T00:00:00Z, endDate: 2025-01-01T00:00:00Z}]\n".to_owned(),
                "pool p in team 1 ends before it starts",
            ),
            (
                format!("    users: [{user}]\n    groups: [{{name: G, members: [U9], products: []}}]\n"),
                "group G in team 1 names unknown user U9",
            ),
            (
                format!("    users: [{user}]\n    assignments: [{{userId: U1, productId: q}}]\n"),
                "an assignment in team 1 names unknown product q",
            ),
            (
                format!("    users: [{user}]\n    pools: [{pool}]\n    assignments: [{{userId: U1, productId: p}}, {{userId: U1, productId: p}}]\n"),
                "assignment of p to U1 is listed twice in team 1",
            ),
            ("    teamProducts: [z]\n".to_owned(), "teamProducts in team 1 names unknown product z"),
            ("    generatedUsers: 100000000\n".to_owned(), "asks for generatedUsers: 100000000"),
        ];
        for (team, expected) in cases {
            let yaml = with_team(&team);
            let err = Seed::parse(&yaml, "s.yaml")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(
                err.contains(expected),
                "{expected:?} not in {err:?} for\n{yaml}"
            );
        }
        // The same team twice.
        let twice = with_team("") + "  - id: '1'\n    name: T\n";
        let err = Seed::parse(&twice, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("team 1 is defined twice"), "{err}");
        // And a consistent one is accepted.
        let good = with_team(&format!(
            "    users: [{user}]\n    pools: [{pool}]\n    assignments: [{{userId: U1, productId: p}}]\n"
        ));
        assert!(Seed::parse(&good, "s.yaml").is_ok());
    }

    #[test]
    fn unknown_reference_is_named() {
        let yaml = "admins: [{id: A, email: a@x, firstName: A, lastName: B, administers: ['9']}]\nteams: []\n";
        let err = Seed::parse(yaml, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("unknown team 9"), "{err}");
    }
}
