//! The planner: `compute(desired, observed, now) -> Plan`, pure and
//! deterministic. It reads no clock, file or network; time comes in as an
//! argument.
//!
//! One team is planned in three steps: [`propose`] lists every write the
//! declaration asks for; the guards of [`super::guards::GUARDS`], in order,
//! move what must not happen to `blocked`, each through the one partition
//! step [`Draft::block`]; [`finish`] orders the result and derives the
//! holdings before and after.

use jiff::Timestamp;

use super::draft::{Draft, finding, list};
use super::guards::GUARDS;
use super::team::{Person, Team};
use super::{
    BlockReason, Blocked, Change, FindingCode, Options, Plan, ProductRef, Severity, TeamPlan,
};
use crate::model::{Desired, DesiredTeam, Observed, ObservedTeam, ProductId};
use std::sync::Arc;

/// Computes the minimal plan that makes every declared team match its
/// declaration. Teams absent from `observed` get a blocker and no changes.
pub fn compute(desired: &Desired, observed: &Observed, now: Timestamp) -> Plan {
    compute_with(desired, observed, &Options::at(now))
}

/// [`compute`] with every option.
pub fn compute_with(desired: &Desired, observed: &Observed, opts: &Options) -> Plan {
    let teams = desired
        .teams
        .values()
        .map(|dt| compute_team(dt, observed.teams.get(&dt.id), opts))
        .collect();
    Plan { teams }
}

/// One team's plan (the service plans team by team).
pub fn compute_team(dt: &DesiredTeam, ot: Option<&ObservedTeam>, opts: &Options) -> TeamPlan {
    match ot {
        Some(ot) => plan_team(dt, ot, opts),
        None => unobserved(dt, opts.unreadable.get(&dt.id)),
    }
}

fn unobserved(dt: &DesiredTeam, read_error: Option<&String>) -> TeamPlan {
    let message = match read_error {
        Some(why) => format!(
            "team {} could not be read, so nothing is planned for it: {why}",
            dt.id
        ),
        None => format!(
            "team {} is not in the observed state: this login does not administer it, \
             it does not exist, or the snapshot does not include it",
            dt.id
        ),
    };
    TeamPlan {
        team_id: dt.id.clone(),
        team_name: dt.name.clone().unwrap_or_default(),
        managed: Vec::new(),
        changes: Vec::new(),
        blocked: Vec::new(),
        findings: vec![finding(
            Severity::Blocker,
            FindingCode::TeamNotObserved,
            message,
        )],
        seats: Vec::new(),
    }
}
fn plan_team(dt: &DesiredTeam, ot: &ObservedTeam, opts: &Options) -> TeamPlan {
    let mut draft = Draft::default();
    let team = Team::new(dt, ot, &mut draft);
    propose(&team, &mut draft);
    for guard in GUARDS {
        guard(&team, opts, &mut draft);
    }
    finish(&team, draft)
}
/// Every write the declaration asks for, before any guard: invitations and
/// assignments for declared people, and with prune, unassignments of direct
/// assignments nobody declared (never of protected people or inherited
/// assignments, which are only noted). Proposed close to execution order
/// (unassignments, invitations, then assignments product by product, each
/// in email order), so `finish`'s sort finds runs and has little to do.
fn propose(team: &Team<'_>, draft: &mut Draft) {
    propose_removals(team, draft);
    // Sized up front: at 100,000 people, growing these lists by doubling
    // copied and faulted in several megabytes more than once.
    let mut assignments: Vec<Vec<Change>> = (0..team.products.len())
        .map(|p| Vec::with_capacity(team.wanting.get(p).copied().unwrap_or(0)))
        .collect();
    let invites = team.people.iter().filter(|p| p.member.is_none()).count();
    let wanted: usize = team.wanting.iter().sum();
    draft.changes.reserve(invites + wanted);
    for person in &team.people {
        propose_for(team, person, draft, &mut assignments);
    }
    let mut by_name: Vec<usize> = (0..team.products.len()).collect();
    by_name.sort_by(|a, b| team.products[*a].name.cmp(&team.products[*b].name));
    for p in by_name {
        draft.changes.append(&mut assignments[p]);
    }
}

/// One declared person: an invitation if they are not on the team, an
/// assignment of each product they lack (into `assignments`, by product),
/// and a blocked row for each alias that resolves to no single pool (so
/// every format says who goes without).
fn propose_for(
    team: &Team<'_>,
    person: &Person<'_>,
    draft: &mut Draft,
    assignments: &mut [Vec<Change>],
) {
    let user = person.user;
    if person.member.is_none() {
        draft.changes.push(Change::Invite {
            email: user.email.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
        });
    }
    let user_id = || person.member.map(|u| u.id.clone());
    for &p in team.wants(person) {
        if team.holds(person, p) {
            continue;
        }
        if let (Some(product), Some(list)) = (
            team.products.get(p as usize),
            assignments.get_mut(p as usize),
        ) {
            list.push(Change::Assign {
                email: user.email.clone(),
                user_id: user_id(),
                product: product.clone(),
            });
        }
    }
    if team.unresolved.is_empty() {
        return;
    }
    for alias in user
        .products
        .iter()
        .filter(|a| team.unresolved.contains(a.0.as_str()))
    {
        let name = team
            .dt
            .products
            .get(alias)
            .map(ToString::to_string)
            .unwrap_or_default();
        draft.blocked.push(Blocked {
            change: Change::Assign {
                email: user.email.clone(),
                user_id: user_id(),
                product: Arc::new(ProductRef {
                    alias: alias.clone(),
                    id: ProductId(String::new()),
                    name,
                }),
            },
            reason: BlockReason::UnresolvedAlias,
        });
    }
}

/// With prune, an unassignment of every direct assignment of a managed
/// product nobody declared, except protected people's; what stays is noted.
fn propose_removals(team: &Team<'_>, draft: &mut Draft) {
    let policy = &team.dt.policy;
    let mut inherited_extra: Vec<String> = Vec::new();
    let mut kept_without_prune: Vec<String> = Vec::new();
    let mut removals = Vec::new();
    for a in &team.undeclared_assignments {
        let Some(product) = team.managed.get(&a.product_id) else {
            continue;
        };
        let Some(user) = team.member(&a.user_id.0) else {
            draft.finding(
                Severity::Warning,
                FindingCode::UnknownUserAssigned,
                format!(
                    "{} is assigned to user id {}, who is not in the team's user list; \
                     flexsync leaves it alone",
                    product.name, a.user_id
                ),
            );
            continue;
        };
        if !policy.prune {
            // Only direct ones could ever be pruned; inherited ones are
            // not worth a mention here.
            if a.assignment_type.is_direct() {
                kept_without_prune.push(format!("{} ({})", user.email, product.alias));
            }
        } else if policy.protect.contains(&user.email) {
            draft.finding(
                Severity::Note,
                FindingCode::Protected,
                format!(
                    "{} keeps {}: protected by policy",
                    user.email, product.alias
                ),
            );
        } else if !a.assignment_type.is_direct() {
            inherited_extra.push(format!("{} ({})", user.email, a.assignment_type));
        } else {
            removals.push(Change::Unassign {
                email: user.email.clone(),
                user_id: user.id.clone(),
                product: product.clone(),
            });
        }
    }
    // Listed by user id; sorted here, the whole proposal is one run for
    // `finish`'s sort.
    removals.sort_by(Change::execution_order);
    draft.changes.append(&mut removals);
    if !kept_without_prune.is_empty() {
        draft.finding(
            Severity::Note,
            FindingCode::UndeclaredHolders,
            format!(
                "{} direct assignment(s) of managed products are not declared; prune is off, \
                 so they stay: {}",
                kept_without_prune.len(),
                list(kept_without_prune.iter().map(String::as_str))
            ),
        );
    }
    if !inherited_extra.is_empty() {
        draft.finding(
            Severity::Note,
            FindingCode::InheritedNotRemovable,
            format!(
                "not removable by flexsync (inherited, not direct): {}",
                list(inherited_extra.iter().map(String::as_str))
            ),
        );
    }
}

/// Orders the outcome.
fn finish(team: &Team<'_>, mut draft: Draft) -> TeamPlan {
    draft.changes.sort_by(Change::execution_order);
    draft
        .blocked
        .sort_by(|a, b| a.change.execution_order(&b.change));
    draft.findings.sort();
    draft.findings.dedup();
    TeamPlan {
        team_id: team.dt.id.clone(),
        team_name: team.ot.name.clone(),
        managed: team.aliases.clone(),
        changes: draft.changes,
        blocked: draft.blocked,
        findings: draft.findings,
        seats: draft.seats,
    }
}
