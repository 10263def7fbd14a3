//! The guards, in the order they run. Each looks at the team and the
//! changes still planned, and moves what must not happen to `blocked`
//! through [`Draft::block`], saying why in a finding.
//!
//! The order matters: look-alike pairs are taken out before the removal and
//! invitation guards count, so a batch of typos is reported as typos; the
//! service's removal delay holds what the guards let through; seats are
//! counted only after every unassignment that will really happen is known;
//! an invitation left with no assignment is dropped last; a wrong team name
//! or `suspend` stops everything.

use std::collections::{BTreeMap, BTreeSet};

use super::Options;
use super::draft::{Draft, list};
use super::hashing::Set;
use super::lookalike;
use super::team::Team;
use super::{BlockReason, Blocked, Change, FindingCode, ProductRef, SeatUsage, Severity};
use crate::model::{Alias, Email, PoolActivity, ProductId, ProductPool};

/// One guard: reads the team, blocks changes in the draft.
pub(super) type Guard = fn(&Team<'_>, &Options, &mut Draft);

pub(super) const GUARDS: &[Guard] = &[
    empty_declaration,
    probable_typos,
    removal_guard,
    invite_guard,
    new_domains,
    removal_delay,
    pool_dates,
    seats,
    nothing_assignable,
    team_name,
    suspended,
];

/// Pruning a product nobody is declared for would remove every direct
/// holder: almost always an emptied or truncated list.
fn empty_declaration(team: &Team<'_>, _: &Options, draft: &mut Draft) {
    if team.dt.policy.allow_empty {
        return;
    }
    let moved = draft.block(|c| match c {
        Change::Unassign { product, .. }
            if team.declared_holders.get(&product.id).copied().unwrap_or(0) == 0 =>
        {
            Some(BlockReason::EmptyDeclaration)
        }
        _ => None,
    });
    let aliases: BTreeSet<&Alias> = moved
        .iter()
        .filter_map(|b| b.change.product())
        .map(|p| &p.alias)
        .collect();
    for alias in aliases {
        draft.finding(
            Severity::Blocker,
            FindingCode::EmptyDeclaration,
            format!(
                "nobody is declared for `{alias}` in team {}, so prune would remove every direct \
                 holder; those unassignments are blocked (set policy.allowEmpty: true if you mean it)",
                team.dt.id
            ),
        );
    }
}

/// An invitation of an address that looks like someone who holds a managed
/// product and is no longer declared: a mistyped address unassigns the
/// developer and invites a stranger. Both are blocked until a `replaces:`
/// entry (or `--allow-renames` for one run) says the change is meant.
fn probable_typos(team: &Team<'_>, opts: &Options, draft: &mut Draft) {
    if team.undeclared.is_empty() {
        return;
    }
    let invites: Vec<Email> = draft
        .changes
        .iter()
        .filter(|c| matches!(c, Change::Invite { .. }))
        .map(|c| c.email().clone())
        .collect();
    if invites.is_empty() {
        return;
    }
    let index = lookalike::Index::new(team.undeclared.iter().copied());
    let mut suspect_invites: BTreeMap<Email, Email> = BTreeMap::new();
    let mut suspect_holders: BTreeMap<Email, Email> = BTreeMap::new();
    let mut confirmed = Vec::new();
    for invitee in &invites {
        for holder in index.matches(invitee) {
            if team.renames.contains(&(holder, invitee)) {
                confirmed.push(format!("{holder} → {invitee} (replaces:)"));
            } else if opts.overrides.allow_renames {
                confirmed.push(format!("{holder} → {invitee} (--allow-renames)"));
            } else {
                suspect_invites
                    .entry(invitee.clone())
                    .or_insert_with(|| holder.clone());
                suspect_holders
                    .entry(holder.clone())
                    .or_insert_with(|| invitee.clone());
            }
        }
    }
    if !confirmed.is_empty() {
        draft.finding(
            Severity::Warning,
            FindingCode::DeclaredRename,
            format!(
                "renames accepted: {}; the old address loses its products and the new one is invited",
                list(confirmed.iter().map(String::as_str))
            ),
        );
    }
    if suspect_invites.is_empty() {
        return;
    }
    draft.block(|c| {
        let other = match c {
            Change::Invite { email, .. } => suspect_invites.get(email),
            Change::Unassign { email, .. } => suspect_holders.get(email),
            Change::Assign { .. } => None,
        };
        other.map(|o| BlockReason::ProbableTypo {
            looks_like: o.clone(),
        })
    });
    let pairs: Vec<String> = suspect_invites
        .iter()
        .map(|(invitee, holder)| format!("{invitee} (looks like {holder})"))
        .collect();
    let consequence = if team.dt.policy.prune {
        "their invitations and the look-alikes' unassignments are blocked"
    } else {
        "their invitations are blocked (prune is off, so the look-alikes keep their products)"
    };
    draft.finding(
        Severity::Blocker,
        FindingCode::ProbableTypo,
        format!(
            "{} probable typo(s) in team {}: {}, who hold managed products directly and are no \
             longer declared; {consequence}. If an address is meant, add `replaces: OLD` to its \
             entry (or apply once with --allow-renames)",
            pairs.len(),
            team.dt.id,
            list(pairs.iter().map(String::as_str))
        ),
    );
}

/// `policy.maxUnassign`, a count or a share of today's direct assignments
/// of managed products (what the run adds does not raise it).
fn removal_guard(team: &Team<'_>, opts: &Options, draft: &mut Draft) {
    let wanted = count(draft, |c| matches!(c, Change::Unassign { .. }));
    let max_unassign = opts
        .overrides
        .max_unassign
        .unwrap_or(team.dt.policy.max_unassign);
    let holders = team.direct_holdings;
    let limit = max_unassign.limit(holders);
    if wanted <= limit {
        return;
    }
    draft.finding(
        Severity::Blocker,
        FindingCode::RemovalGuard,
        format!(
            "this run would unassign {wanted} of today's {holders} direct assignment(s) of managed \
             products in team {}, more than policy.maxUnassign {max_unassign} allows ({limit}); all \
             of the team's unassignments are blocked, invites and assignments still go ahead \
             (raise it for one run with --max-unassign)",
            team.dt.id
        ),
    );
    let reason = BlockReason::RemovalGuard {
        wanted,
        limit,
        max_unassign,
        holders,
    };
    draft.block(|c| matches!(c, Change::Unassign { .. }).then(|| reason.clone()));
}

/// `policy.maxInvite`, a count or a share of today's members: a pasted
/// directory or generated list does not invite thousands of people.
fn invite_guard(team: &Team<'_>, opts: &Options, draft: &mut Draft) {
    let wanted = count(draft, |c| matches!(c, Change::Invite { .. }));
    let max_invite = opts
        .overrides
        .max_invite
        .unwrap_or(team.dt.policy.max_invite);
    let members = team.ot.users.len();
    let limit = max_invite.limit(members);
    if wanted <= limit {
        return;
    }
    draft.finding(
        Severity::Blocker,
        FindingCode::InviteGuard,
        format!(
            "this run would invite {wanted} people to team {} ({members} member(s) today), more \
             than policy.maxInvite {max_invite} allows ({limit}); every invitation and the \
             assignments waiting for it are blocked, changes for members still go ahead (raise it \
             for one run with --max-invite)",
            team.dt.id
        ),
    );
    let reason = BlockReason::InviteGuard {
        wanted,
        limit,
        max_invite,
        members,
    };
    draft.block(|c| matches!(c, Change::Invite { .. }).then(|| reason.clone()));
}

/// Invitations to a domain no member has today are worth a second look
/// (`@exmaple.com`); they are flagged, not blocked.
fn new_domains(team: &Team<'_>, _: &Options, draft: &mut Draft) {
    let mut new: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for c in &draft.changes {
        if let Change::Invite { email, .. } = c {
            new.entry(domain(email)).or_default().push(email.as_str());
        }
    }
    // Invitations name few domains, and most members share one: the walk
    // over the members usually ends after a handful.
    for member in &team.ot.users {
        if new.is_empty() {
            break;
        }
        new.remove(domain(&member.email));
    }
    let messages: Vec<String> = new
        .into_iter()
        .map(|(d, emails)| {
            format!(
                "invitation(s) to {d}, a domain no member of team {} has today: {}; check the spelling",
                team.dt.id,
                list(emails.into_iter())
            )
        })
        .collect();
    for message in messages {
        draft.finding(Severity::Warning, FindingCode::NewDomain, message);
    }
}

fn domain(e: &Email) -> &str {
    e.as_str().rsplit_once('@').map(|(_, d)| d).unwrap_or("")
}

/// The service holds removals for a while after the declaration changed: a
/// half-written file or an edit reverted at once never unassigns anyone.
fn removal_delay(team: &Team<'_>, opts: &Options, draft: &mut Draft) {
    let Some(until) = opts.hold_removals_until.filter(|u| *u > opts.now) else {
        return;
    };
    let held = draft.block(|c| {
        matches!(c, Change::Unassign { .. }).then_some(BlockReason::RemovalDelay { until })
    });
    if !held.is_empty() {
        draft.finding(
            Severity::Note,
            FindingCode::RemovalDelay,
            format!(
                "the declaration of team {} changed recently: {} unassignment(s) wait until {until}, \
                 and are made then only if the declaration still asks for them",
                team.dt.id,
                held.len()
            ),
        );
    }
}

/// Pools that have not started or have ended take no assignment.
fn pool_dates(team: &Team<'_>, opts: &Options, draft: &mut Draft) {
    // Each pool's dates are read once, not once per assignment; when every
    // pool is active (the usual case) no change is looked at.
    let closed: BTreeMap<&ProductId, BlockReason> = team
        .pools
        .iter()
        .filter_map(|(id, p)| match p.activity(opts.now) {
            PoolActivity::Active => None,
            PoolActivity::NotStarted(start) => Some((*id, BlockReason::PoolNotStarted { start })),
            PoolActivity::Expired(end) => Some((*id, BlockReason::PoolExpired { end })),
        })
        .collect();
    if closed.is_empty() {
        return;
    }
    let moved = draft.block(|c| match c {
        Change::Assign { product, .. } => closed.get(&product.id).cloned(),
        _ => None,
    });
    let mut stopped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for Blocked { change, reason } in &moved {
        let name = change.product().map(|p| p.name.as_str()).unwrap_or("");
        let what = match reason {
            BlockReason::PoolNotStarted { start } => {
                format!("{name} does not start before {start}")
            }
            BlockReason::PoolExpired { end } => format!("{name} ended at {end}"),
            _ => continue,
        };
        stopped
            .entry(what)
            .or_default()
            .push(change.email().to_string());
    }
    for (what, emails) in stopped {
        draft.finding(
            Severity::Blocker,
            FindingCode::PoolDates,
            format!(
                "{what}: not assigned to {}",
                list(emails.iter().map(String::as_str))
            ),
        );
    }
}

/// Limited pools: assignments beyond the free seats (after this plan's
/// unassignments free theirs) are blocked, in email order.
fn seats(team: &Team<'_>, opts: &Options, draft: &mut Draft) {
    let mut freed_by: BTreeMap<&ProductId, u64> = BTreeMap::new();
    for c in &draft.changes {
        if let Change::Unassign { product, .. } = c
            && let Some((pid, _)) = team.managed.get_key_value(&product.id)
        {
            *freed_by.entry(*pid).or_default() += 1;
        }
    }
    for (number, (pid, product)) in (0u32..).zip(&team.managed) {
        let Some(pool) = team.pools.get(pid) else {
            continue;
        };
        let Some(total) = pool.total_quantity.filter(|_| !pool.unlimited) else {
            continue;
        };
        let in_use = seats_in_use(team, number, pool, opts, draft);
        let freed = freed_by.get(pid).copied().unwrap_or(0);
        let usage = grant_seats(product, pool, total, in_use, freed, draft);
        draft.seats.push(usage);
    }
}

/// Seats a pool says are in use, or the listed assignments when it does
/// not say (a pool that has not started may not: only an active one is
/// worth a warning).
fn seats_in_use(
    team: &Team<'_>,
    product: u32,
    pool: &ProductPool,
    opts: &Options,
    draft: &mut Draft,
) -> u64 {
    if let Some(n) = pool.assigned_quantity {
        return n;
    }
    let counted = team.held.count(product);
    if pool.activity(opts.now) == PoolActivity::Active {
        draft.finding(
            Severity::Warning,
            FindingCode::NoAssignedQuantity,
            format!(
                "{} reports no assigned quantity; counting {counted} listed assignment(s) instead",
                pool.product_name
            ),
        );
    }
    counted
}

/// Lets assignments into `pool` through while seats last (after `freed`
/// come back from this plan's unassignments), blocks the rest, and says
/// who relies on freed seats and who goes without.
fn grant_seats(
    product: &ProductRef,
    pool: &ProductPool,
    total: u64,
    in_use: u64,
    freed: u64,
    draft: &mut Draft,
) -> SeatUsage {
    let free_now = total.saturating_sub(in_use);
    let mut free = total.saturating_sub(in_use.saturating_sub(freed));
    let mut granted = 0u64;
    let mut on_freed_seats = Vec::new();
    let refused = draft.block(|c| match c {
        Change::Assign { product, email, .. } if product.id == pool.product_id => {
            if free == 0 {
                return Some(BlockReason::NoSeat { total });
            }
            free -= 1;
            granted += 1;
            if granted > free_now {
                on_freed_seats.push(email.to_string());
            }
            None
        }
        _ => None,
    });
    if !on_freed_seats.is_empty() {
        // The API reports one effective type per person and product, so a
        // person who also holds the product through a group looks like a
        // direct holder: unassigning them frees no seat.
        draft.finding(
            Severity::Warning,
            FindingCode::ReliesOnFreedSeats,
            format!(
                "{} for {} relies on seats this plan's unassignments free; if someone unassigned also holds {} through a group, no seat is freed and Autodesk refuses the assignment (the next plan then shows it blocked)",
                pool.product_name,
                list(on_freed_seats.iter().map(String::as_str)),
                pool.product_name
            ),
        );
    }
    let short = refused.len() as u64;
    if short > 0 {
        draft.finding(
            Severity::Blocker,
            FindingCode::NoSeats,
            format!(
                "{} has {total} seat(s) and {} would be in use; {short} more needed: not assigned to {}",
                pool.product_name,
                in_use - freed.min(in_use) + granted,
                list(refused.iter().map(|b| b.change.email().as_str()))
            ),
        );
    }
    SeatUsage {
        product: product.clone(),
        total,
        before: in_use,
        after: in_use.saturating_sub(freed) + granted,
        freed,
        short,
    }
}

/// An invitation is worth sending only for an assignment that can go ahead,
/// or when membership alone is declared.
fn nothing_assignable(team: &Team<'_>, _: &Options, draft: &mut Draft) {
    // Found first, then blocked: only the (few) emails blocked are copied.
    let idle: Set<Email> = {
        // An invitee's assignments are the ones without a user id: everyone
        // else assigned is a member already.
        let assigning: Set<&Email> = draft
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Assign { user_id: None, .. }))
            .map(Change::email)
            .collect();
        draft
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Invite { email, .. }
                    if !assigning.contains(email)
                        && team
                            .dt
                            .users
                            .get(email)
                            .is_some_and(|u| !u.products.is_empty()) =>
                {
                    Some(email.clone())
                }
                _ => None,
            })
            .collect()
    };
    if idle.is_empty() {
        return;
    }
    let moved = draft.block(|c| match c {
        Change::Invite { email, .. } if idle.contains(email) => {
            Some(BlockReason::NothingAssignable)
        }
        _ => None,
    });
    draft.finding(
        Severity::Warning,
        FindingCode::NothingAssignable,
        format!(
            "not invited, because none of the products declared for them can be assigned now \
             (see the blockers above): {}",
            list(moved.iter().map(|b| b.change.email().as_str()))
        ),
    );
}

/// A declaration pointed at the wrong team id changes nothing in it.
fn team_name(team: &Team<'_>, _: &Options, draft: &mut Draft) {
    let Some(declared) = &team.dt.name else {
        return;
    };
    let live = &team.ot.name;
    if declared == live {
        return;
    }
    draft.finding(
        Severity::Blocker,
        FindingCode::TeamNameMismatch,
        format!(
            "the declaration names team {} {declared:?} but the live team is called {live:?}: \
             nothing is changed in it (check the team id)",
            team.dt.id
        ),
    );
    let reason = BlockReason::TeamNameMismatch {
        declared: declared.clone(),
        live: live.clone(),
    };
    draft.block(|_| Some(reason.clone()));
}

fn suspended(team: &Team<'_>, _: &Options, draft: &mut Draft) {
    if !team.dt.suspended {
        return;
    }
    draft.finding(
        Severity::Note,
        FindingCode::Suspended,
        format!(
            "team {} is suspended (suspend: true): nothing is applied until it is removed",
            team.dt.id
        ),
    );
    draft.block(|_| Some(BlockReason::Suspended));
}

fn count(draft: &Draft, f: impl Fn(&Change) -> bool) -> usize {
    draft.changes.iter().filter(|c| f(c)).count()
}
