//! The planner: `compute(desired, observed, now) -> Plan`, pure and
//! deterministic. It reads no clock, file or network; time comes in as `now`.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;

use super::{
    BlockReason, Blocked, Change, Finding, Holding, Plan, ProductRef, SeatUsage, Severity, TeamPlan,
};
use crate::model::{
    AssignmentType, Desired, DesiredTeam, Email, Observed, ObservedTeam, PoolActivity, ProductId,
    ProductPool, ProductSelector, TeamUser, UserId,
};

/// Computes the minimal plan that makes every declared team match its
/// declaration. Teams absent from `observed` get a blocker and no changes.
pub fn compute(desired: &Desired, observed: &Observed, now: Timestamp) -> Plan {
    let teams = desired
        .teams
        .values()
        .map(|dt| match observed.teams.get(&dt.id) {
            Some(ot) => plan_team(dt, ot, now),
            None => unobserved(dt),
        })
        .collect();
    Plan { teams }
}

fn unobserved(dt: &DesiredTeam) -> TeamPlan {
    TeamPlan {
        team_id: dt.id.clone(),
        team_name: dt.name.clone().unwrap_or_default(),
        changes: Vec::new(),
        blocked: Vec::new(),
        findings: vec![Finding {
            severity: Severity::Blocker,
            message: format!(
                "team {} is not in the observed state: this login does not administer it, \
                 it does not exist, or the snapshot does not include it",
                dt.id
            ),
        }],
        seats: Vec::new(),
        before: Vec::new(),
        after: Vec::new(),
    }
}

/// Indexes of one observed team, built once.
struct Live<'a> {
    team: &'a ObservedTeam,
    by_email: BTreeMap<Email, &'a TeamUser>,
    by_id: BTreeMap<&'a UserId, &'a TeamUser>,
    /// (user, product) → effective assignment type.
    held: BTreeMap<(&'a UserId, &'a ProductId), AssignmentType>,
}

impl<'a> Live<'a> {
    fn new(team: &'a ObservedTeam) -> Self {
        Live {
            team,
            by_email: team.users.iter().map(|u| (u.email.clone(), u)).collect(),
            by_id: team.users.iter().map(|u| (&u.id, u)).collect(),
            held: team
                .assignments
                .iter()
                .map(|a| ((&a.user_id, &a.product_id), a.assignment_type))
                .collect(),
        }
    }
}

fn plan_team(dt: &DesiredTeam, ot: &ObservedTeam, now: Timestamp) -> TeamPlan {
    let live = Live::new(ot);
    let mut findings = Vec::new();

    let products = resolve_products(dt, ot, &mut findings);
    let managed: BTreeMap<&ProductId, &ProductRef> =
        products.values().map(|(p, _)| (&p.id, p)).collect();

    // What each declared person must hold, by product id.
    let mut wanted: BTreeMap<&Email, BTreeSet<&ProductId>> = BTreeMap::new();
    let mut unresolved: BTreeMap<&str, Vec<&Email>> = BTreeMap::new();
    for user in dt.users.values() {
        let entry = wanted.entry(&user.email).or_default();
        for alias in &user.products {
            match products.get(alias.0.as_str()) {
                Some((p, _)) => {
                    entry.insert(&p.id);
                }
                None => unresolved.entry(&alias.0).or_default().push(&user.email),
            }
        }
    }
    for (alias, emails) in &unresolved {
        findings.push(Finding {
            severity: Severity::Blocker,
            message: format!(
                "`{alias}` cannot be assigned to {}, because it resolves to no single pool",
                list(emails.iter().map(|e| e.as_str()))
            ),
        });
    }

    let mut changes = Vec::new();
    let mut blocked = Vec::new();

    // Invites and assignments.
    for user in dt.users.values() {
        let on_team = live.by_email.get(&user.email);
        if on_team.is_none() {
            changes.push(Change::Invite {
                email: user.email.clone(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
            });
        }
        for pid in wanted.get(&user.email).into_iter().flatten() {
            let holds = on_team.is_some_and(|u| live.held.contains_key(&(&u.id, *pid)));
            if let (false, Some(product)) = (holds, managed.get(pid)) {
                changes.push(Change::Assign {
                    email: user.email.clone(),
                    user_id: on_team.map(|u| u.id.clone()),
                    product: (*product).clone(),
                });
            }
        }
    }

    // Unassignments, only with prune.
    let mut unassigns = Vec::new();
    let mut inherited_extra: Vec<String> = Vec::new();
    let mut undeclared_holders = 0usize;
    // Sorted, so findings and changes do not depend on the API's order.
    let mut assignments: Vec<_> = ot.assignments.iter().collect();
    assignments.sort();
    for a in assignments {
        let Some(product) = managed.get(&a.product_id) else {
            continue;
        };
        let Some(user) = live.by_id.get(&a.user_id) else {
            findings.push(Finding {
                severity: Severity::Warning,
                message: format!(
                    "{} is assigned to user id {}, who is not in the team's user list; \
                     flexsync leaves it alone",
                    product.name, a.user_id
                ),
            });
            continue;
        };
        let declared = wanted
            .get(&user.email)
            .is_some_and(|set| set.contains(&a.product_id));
        if declared {
            continue;
        }
        if !dt.policy.prune {
            // Only direct ones could ever be pruned; inherited ones are
            // not worth a mention here.
            if a.assignment_type.is_direct() {
                undeclared_holders += 1;
            }
            continue;
        }
        if dt.policy.protect.contains(&user.email) {
            findings.push(Finding {
                severity: Severity::Note,
                message: format!(
                    "{} keeps {}: protected by policy",
                    user.email, product.alias
                ),
            });
        } else if !a.assignment_type.is_direct() {
            inherited_extra.push(format!("{} ({})", user.email, a.assignment_type));
        } else {
            unassigns.push(Change::Unassign {
                email: user.email.clone(),
                user_id: user.id.clone(),
                product: (*product).clone(),
            });
        }
    }
    if undeclared_holders > 0 {
        findings.push(Finding {
            severity: Severity::Note,
            message: format!(
                "{undeclared_holders} direct assignment(s) of managed products are not declared; \
                 prune is off, so they stay"
            ),
        });
    }
    if !inherited_extra.is_empty() {
        findings.push(Finding {
            severity: Severity::Note,
            message: format!(
                "not removable by flexsync (inherited, not direct): {}",
                inherited_extra.join(", ")
            ),
        });
    }
    guard_unassigns(
        dt,
        ot,
        &managed,
        &wanted,
        unassigns,
        &mut changes,
        &mut blocked,
        &mut findings,
    );

    // Assignments into pools that cannot take them.
    check_pools(ot, now, &mut changes, &mut blocked, &mut findings);
    let seats = check_seats(
        ot,
        &live,
        &managed,
        now,
        &mut changes,
        &mut blocked,
        &mut findings,
    );

    if let Some(declared) = &dt.name
        && *declared != ot.name
    {
        findings.push(Finding {
            severity: Severity::Blocker,
            message: format!(
                "the declaration names team {} {declared:?} but the live team is called {:?}: \
                 nothing is changed in it (check the team id)",
                dt.id, ot.name
            ),
        });
        for change in changes.drain(..) {
            blocked.push(Blocked {
                change,
                reason: BlockReason::TeamNameMismatch {
                    declared: declared.clone(),
                    live: ot.name.clone(),
                },
            });
        }
    }

    if dt.suspended {
        findings.push(Finding {
            severity: Severity::Note,
            message: format!(
                "team {} is suspended (suspend: true): nothing is applied until it is removed",
                dt.id
            ),
        });
        blocked.extend(changes.drain(..).map(|change| Blocked {
            change,
            reason: BlockReason::Suspended,
        }));
    }

    changes.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    blocked.sort_by(|a, b| a.change.order_key().cmp(&b.change.order_key()));
    findings.sort();
    findings.dedup();
    let (before, after) = holdings(&live, &managed, &changes);
    TeamPlan {
        team_id: dt.id.clone(),
        team_name: ot.name.clone(),
        changes,
        blocked,
        findings,
        seats,
        before,
        after,
    }
}

/// Resolves each alias to one pool. Aliases matching no pool or several are
/// blockers; two aliases meaning one pool are merged under the first.
fn resolve_products<'a>(
    dt: &'a DesiredTeam,
    ot: &'a ObservedTeam,
    findings: &mut Vec<Finding>,
) -> BTreeMap<&'a str, (ProductRef, &'a ProductPool)> {
    let mut out = BTreeMap::new();
    let mut by_pool: BTreeMap<&ProductId, &str> = BTreeMap::new();
    for (alias, selector) in &dt.products {
        let mut matches: Vec<&ProductPool> = ot
            .pools
            .iter()
            .filter(|p| match selector {
                ProductSelector::Id(id) => p.product_id == *id,
                ProductSelector::Name(n) => p.product_name == *n,
            })
            .collect();
        matches.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        match matches.as_slice() {
            [pool] => {
                if let Some(first) = by_pool.get(&pool.product_id) {
                    findings.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "aliases `{first}` and `{alias}` both mean {}; they are treated as one product",
                            pool.product_name
                        ),
                    });
                    let merged = out.get(*first).cloned();
                    if let Some(m) = merged {
                        out.insert(alias.0.as_str(), m);
                    }
                    continue;
                }
                by_pool.insert(&pool.product_id, &alias.0);
                out.insert(
                    alias.0.as_str(),
                    (
                        ProductRef {
                            alias: alias.clone(),
                            id: pool.product_id.clone(),
                            name: pool.product_name.clone(),
                        },
                        *pool,
                    ),
                );
            }
            [] => findings.push(Finding {
                severity: Severity::Blocker,
                message: format!(
                    "product alias `{alias}` ({selector}) matches no product pool of team {}; \
                     pools: {}",
                    dt.id,
                    list(
                        ot.pools
                            .iter()
                            .map(|p| p.product_name.as_str())
                            .collect::<BTreeSet<_>>()
                            .into_iter()
                    )
                ),
            }),
            several => findings.push(Finding {
                severity: Severity::Blocker,
                message: format!(
                    "product alias `{alias}` ({selector}) matches {} pools of team {} ({}); \
                     use productId to pick one",
                    several.len(),
                    dt.id,
                    list(several.iter().map(|p| p.product_id.0.as_str()))
                ),
            }),
        }
    }
    out
}

/// Applies the empty-declaration and removal guards to prune's
/// unassignments; what passes joins `changes`, the rest is blocked.
#[allow(clippy::too_many_arguments)]
fn guard_unassigns(
    dt: &DesiredTeam,
    ot: &ObservedTeam,
    managed: &BTreeMap<&ProductId, &ProductRef>,
    wanted: &BTreeMap<&Email, BTreeSet<&ProductId>>,
    unassigns: Vec<Change>,
    changes: &mut Vec<Change>,
    blocked: &mut Vec<Blocked>,
    findings: &mut Vec<Finding>,
) {
    let mut passing = Vec::new();
    let mut emptied = BTreeSet::new();
    for change in unassigns {
        let Some(product) = change.product() else {
            continue;
        };
        let declared_holders = wanted.values().filter(|s| s.contains(&product.id)).count();
        if declared_holders == 0 && !dt.policy.allow_empty {
            emptied.insert(product.alias.clone());
            blocked.push(Blocked {
                change,
                reason: BlockReason::EmptyDeclaration,
            });
        } else {
            passing.push(change);
        }
    }
    for alias in emptied {
        findings.push(Finding {
            severity: Severity::Blocker,
            message: format!(
                "nobody is declared for `{alias}` in team {}, so prune would remove every direct \
                 holder; those unassignments are blocked (set policy.allowEmpty: true if you mean it)",
                dt.id
            ),
        });
    }
    if passing.is_empty() {
        return;
    }
    // The base counts the assignments this run adds too: otherwise applying
    // them would raise the limit and the next plan would suddenly let
    // through removals this one blocked.
    let adding = changes
        .iter()
        .filter(|c| matches!(c, Change::Assign { .. }))
        .count();
    let holders = adding
        + ot.assignments
            .iter()
            .filter(|a| a.assignment_type.is_direct() && managed.contains_key(&a.product_id))
            .count();
    let limit = dt.policy.max_unassign.limit(holders);
    if passing.len() > limit {
        findings.push(Finding {
            severity: Severity::Blocker,
            message: format!(
                "this run would unassign {} of {holders} direct assignment(s) in team {}, more than \
                 policy.maxUnassign {} allows ({limit}); all of the team's unassignments are blocked, \
                 invites and assignments still go ahead",
                passing.len(),
                dt.id,
                dt.policy.max_unassign
            ),
        });
        let reason = BlockReason::RemovalGuard {
            wanted: passing.len(),
            limit,
            max_unassign: dt.policy.max_unassign,
            holders,
        };
        blocked.extend(passing.into_iter().map(|change| Blocked {
            change,
            reason: reason.clone(),
        }));
    } else {
        changes.extend(passing);
    }
}

/// Blocks assignments into pools that have not started or have ended.
fn check_pools(
    ot: &ObservedTeam,
    now: Timestamp,
    changes: &mut Vec<Change>,
    blocked: &mut Vec<Blocked>,
    findings: &mut Vec<Finding>,
) {
    let mut kept = Vec::new();
    let mut stopped: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for change in changes.drain(..) {
        let reason = match &change {
            Change::Assign { product, .. } => ot
                .pools
                .iter()
                .find(|p| p.product_id == product.id)
                .and_then(|p| match p.activity(now) {
                    PoolActivity::Active => None,
                    PoolActivity::NotStarted(start) => Some(BlockReason::PoolNotStarted { start }),
                    PoolActivity::Expired(end) => Some(BlockReason::PoolExpired { end }),
                }),
            _ => None,
        };
        match reason {
            Some(reason) => {
                let key = match (&reason, change.product()) {
                    (BlockReason::PoolNotStarted { start }, Some(p)) => {
                        format!("{} does not start before {start}", p.name)
                    }
                    (BlockReason::PoolExpired { end }, Some(p)) => {
                        format!("{} ended at {end}", p.name)
                    }
                    _ => String::new(),
                };
                stopped
                    .entry(key)
                    .or_default()
                    .push(change.email().to_string());
                blocked.push(Blocked { change, reason });
            }
            None => kept.push(change),
        }
    }
    *changes = kept;
    for (what, emails) in stopped {
        findings.push(Finding {
            severity: Severity::Blocker,
            message: format!(
                "{what}: not assigned to {}",
                list(emails.iter().map(String::as_str))
            ),
        });
    }
}

/// Checks seats of limited pools: assignments beyond the free seats (after
/// this plan's unassignments free theirs) are blocked, by email order.
fn check_seats(
    ot: &ObservedTeam,
    live: &Live<'_>,
    managed: &BTreeMap<&ProductId, &ProductRef>,
    now: Timestamp,
    changes: &mut Vec<Change>,
    blocked: &mut Vec<Blocked>,
    findings: &mut Vec<Finding>,
) -> Vec<SeatUsage> {
    let mut usage = Vec::new();
    for (pid, product) in managed {
        let Some(pool) = ot.pools.iter().find(|p| &p.product_id == *pid) else {
            continue;
        };
        let Some(total) = pool.total_quantity.filter(|_| !pool.unlimited) else {
            continue;
        };
        let in_use = match pool.assigned_quantity {
            Some(n) => n,
            None => {
                let counted = live
                    .team
                    .assignments
                    .iter()
                    .filter(|a| &a.product_id == *pid)
                    .count();
                // A pool that has not started may report no count (the API
                // says so); only an active one is worth a warning.
                if pool.activity(now) == PoolActivity::Active {
                    findings.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{} reports no assigned quantity; counting {counted} listed assignment(s) instead",
                            pool.product_name
                        ),
                    });
                }
                counted as u64
            }
        };
        let freed = changes
            .iter()
            .filter(|c| matches!(c, Change::Unassign { product, .. } if &product.id == *pid))
            .count() as u64;
        let free_now = total.saturating_sub(in_use);
        let mut free = total.saturating_sub(in_use.saturating_sub(freed));
        let mut granted = 0u64;
        let mut refused = Vec::new();
        let mut on_freed_seats = Vec::new();
        let mut kept = Vec::new();
        for change in changes.drain(..) {
            let is_assign =
                matches!(&change, Change::Assign { product, .. } if &product.id == *pid);
            if !is_assign {
                kept.push(change);
            } else if free > 0 {
                free -= 1;
                granted += 1;
                if granted > free_now {
                    on_freed_seats.push(change.email().to_string());
                }
                kept.push(change);
            } else {
                refused.push(change);
            }
        }
        *changes = kept;
        if !on_freed_seats.is_empty() {
            // The API reports one effective type per person and product, so
            // a person who also holds the product through a group looks
            // like a direct holder: unassigning them frees no seat.
            findings.push(Finding {
                severity: Severity::Warning,
                message: format!(
                    "{} for {} relies on seats this plan's unassignments free; if someone unassigned also holds {} through a group, no seat is freed and Autodesk refuses the assignment (the next plan then shows it blocked)",
                    pool.product_name,
                    list(on_freed_seats.iter().map(String::as_str)),
                    pool.product_name
                ),
            });
        }
        let short = refused.len() as u64;
        if !refused.is_empty() {
            findings.push(Finding {
                severity: Severity::Blocker,
                message: format!(
                    "{} has {total} seat(s) and {} would be in use; {short} more needed: not assigned to {}",
                    pool.product_name,
                    in_use - freed.min(in_use) + granted,
                    list(refused.iter().map(|c| c.email().as_str()))
                ),
            });
        }
        blocked.extend(refused.into_iter().map(|change| Blocked {
            change,
            reason: BlockReason::NoSeat { total },
        }));
        usage.push(SeatUsage {
            product: (*product).clone(),
            total,
            before: in_use,
            after: in_use.saturating_sub(freed) + granted,
            freed,
            short,
        });
    }
    usage
}

/// Holdings of managed products before and after the executable changes.
fn holdings(
    live: &Live<'_>,
    managed: &BTreeMap<&ProductId, &ProductRef>,
    changes: &[Change],
) -> (Vec<Holding>, Vec<Holding>) {
    let mut before = BTreeMap::new();
    for a in &live.team.assignments {
        let (Some(product), Some(user)) = (managed.get(&a.product_id), live.by_id.get(&a.user_id))
        else {
            continue;
        };
        before.insert(
            (user.email.clone(), product.alias.0.clone()),
            a.assignment_type.to_string(),
        );
    }
    let mut after = before.clone();
    for change in changes {
        match change {
            Change::Assign { email, product, .. } => {
                after.insert(
                    (email.clone(), product.alias.0.clone()),
                    "direct".to_owned(),
                );
            }
            Change::Unassign { email, product, .. } => {
                after.remove(&(email.clone(), product.alias.0.clone()));
            }
            Change::Invite { .. } => {}
        }
    }
    let to_vec = |m: BTreeMap<(Email, String), String>| {
        m.into_iter()
            .map(|((email, product), how)| Holding {
                email,
                product,
                how,
            })
            .collect()
    };
    (to_vec(before), to_vec(after))
}

/// "a, b and 3 more" style lists keep findings readable for big teams.
fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    const SHOWN: usize = 10;
    let items: Vec<&str> = items.collect();
    if items.is_empty() {
        return "none".to_owned();
    }
    if items.len() <= SHOWN {
        return items.join(", ");
    }
    format!(
        "{} and {} more",
        items[..SHOWN].join(", "),
        items.len() - SHOWN
    )
}
