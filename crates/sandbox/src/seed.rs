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
    let mut world = World::default();
    // Lower-cased email -> account id, so each check is a lookup, not a scan
    // of every account (quadratic in a seed of many generated users).
    let mut emails: BTreeMap<String, String> = BTreeMap::new();
    let mut add_account = |world: &mut World, id: &str, account: Account| -> Result<(), String> {
        match world.accounts.get(id) {
            Some(existing) if !existing.email.eq_ignore_ascii_case(&account.email) => Err(format!(
                "user {id} appears with two emails: {} and {}",
                existing.email, account.email
            )),
            Some(_) => Ok(()),
            None => {
                let key = account.email.to_ascii_lowercase();
                if let Some(other) = emails.get(&key) {
                    return Err(format!(
                        "email {} is used by both {other} and {id}",
                        account.email
                    ));
                }
                emails.insert(key, id.to_owned());
                world.accounts.insert(id.to_owned(), account);
                Ok(())
            }
        }
    };

    let mut seed_members = 0usize;
    for team in doc.teams {
        if world.teams.contains_key(&team.id) {
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
        let mut members: Vec<Member> = Vec::new();
        let mut member_ids = BTreeSet::new();
        let generated = (1..=team.generated_users).map(|n| SeedUser {
            id: format!("US{}{:05}", team.id, n),
            email: format!("member{n:03}.{}@example.com", team.id),
            first_name: "Member".to_owned(),
            last_name: format!("{n:03}"),
        });
        for user in team.users.into_iter().chain(generated) {
            if !member_ids.insert(user.id.clone()) {
                return Err(format!(
                    "user {} is listed twice in team {}",
                    user.id, team.id
                ));
            }
            let role = role_for(&team.domains, &user.email);
            add_account(
                &mut world,
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

        let mut pools = Vec::new();
        let mut products = BTreeSet::new();
        for p in team.pools {
            if !products.insert(p.product_id.clone()) {
                return Err(format!(
                    "product {} has two pools in team {}",
                    p.product_id, team.id
                ));
            }
            if !p.unlimited && p.total_quantity.is_none() {
                return Err(format!(
                    "pool {} in team {} needs totalQuantity or unlimited: true",
                    p.product_id, team.id
                ));
            }
            if p.end_date <= p.start_date {
                return Err(format!(
                    "pool {} in team {} ends before it starts",
                    p.product_id, team.id
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
        let check_user = |u: &str, what: &str| {
            if member_ids.contains(u) {
                Ok(())
            } else {
                Err(format!("{what} in team {} names unknown user {u}", team.id))
            }
        };
        let check_product = |p: &str, what: &str| {
            if products.contains(p) {
                Ok(())
            } else {
                Err(format!(
                    "{what} in team {} names unknown product {p}",
                    team.id
                ))
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
                    "assignment of {} to {} is listed twice in team {}",
                    a.product_id, a.user_id, team.id
                ));
            }
            direct.push(DirectAssignment {
                user_id: a.user_id,
                product_id: a.product_id,
                created_at: None,
                removed_at: None,
            });
        }
        world.teams.insert(
            team.id,
            Team {
                name: team.name,
                domains: team.domains,
                members,
                pools,
                groups,
                team_products: team.team_products.into_iter().collect(),
                direct,
                invitations: BTreeMap::new(),
            },
        );
    }

    for admin in doc.admins {
        add_account(
            &mut world,
            &admin.id,
            Account {
                email: admin.email,
                first_name: admin.first_name,
                last_name: admin.last_name,
            },
        )?;
        for t in &admin.administers {
            if !world.teams.contains_key(t) {
                return Err(format!("admin {} administers unknown team {t}", admin.id));
            }
        }
        world
            .admins
            .insert(admin.id, admin.administers.into_iter().collect());
    }
    if world.admins.is_empty() {
        return Err("the seed needs at least one admin to log in as".to_owned());
    }
    Ok(world)
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

    #[test]
    fn unknown_reference_is_named() {
        let yaml = "admins: [{id: A, email: a@x, firstName: A, lastName: B, administers: ['9']}]\nteams: []\n";
        let err = Seed::parse(yaml, "s.yaml").unwrap_err().to_string();
        assert!(err.contains("unknown team 9"), "{err}");
    }
}
