//! The planner: `compute(desired, observed, now) -> Plan`, pure and
//! deterministic. It reads no clock, file or network; time comes in as an
//! argument.
//!
//! One team is planned in three steps: [`propose`] lists every write the
//! declaration asks for; the guards of [`super::guards::GUARDS`], in order,
//! move what must not happen to `blocked`, each through the one partition
//! step [`Draft::block`]; [`finish`] orders the result and derives the
//! holdings before and after.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use jiff::Timestamp;

use super::guards::GUARDS;
use super::{
    BlockReason, Blocked, Change, Finding, FindingCode, Holding, Overrides, Plan, ProductRef,
    SeatUsage, Severity, TeamPlan,
};
use crate::model::{
    AssignmentType, Desired, DesiredTeam, Email, Observed, ObservedTeam, ProductId, ProductPool,
    ProductSelector, TeamId, TeamUser, UserId,
};

/// What a plan is made with besides the two states.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    pub now: Timestamp,
    /// One-run overrides of the teams' guards.
    pub overrides: Overrides,
    /// Unassignments wait until then (the service's removal delay after a
    /// declaration change); `None` lets them through.
    pub hold_removals_until: Option<Timestamp>,
    /// Teams whose read failed, with why: their blocker says so.
    pub unreadable: BTreeMap<TeamId, String>,
}

impl Options {
    pub fn at(now: Timestamp) -> Self {
        Options {
            now,
            overrides: Overrides::default(),
            hold_removals_until: None,
            unreadable: BTreeMap::new(),
        }
    }
}

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
        before: Vec::new(),
        after: Vec::new(),
    }
}

pub(super) fn finding(severity: Severity, code: FindingCode, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
    }
}

/// One team's declaration and live state, indexed once for the guards.
pub(super) struct Team<'a> {
    pub dt: &'a DesiredTeam,
    pub ot: &'a ObservedTeam,
    pub by_email: HashMap<&'a Email, &'a TeamUser>,
    pub by_id: HashMap<&'a UserId, &'a TeamUser>,
    /// (user, product) → effective assignment type.
    pub held: HashMap<(&'a UserId, &'a ProductId), AssignmentType>,
    pub pools: BTreeMap<&'a ProductId, &'a ProductPool>,
    /// The managed products, by pool id (shared by every change naming one).
    pub managed: BTreeMap<&'a ProductId, Arc<ProductRef>>,
    /// Every alias with the pool it resolves to (merged aliases included).
    pub aliases: Vec<ProductRef>,
    /// What each declared person must hold, by product id (sorted, no
    /// duplicates; usually one or two).
    pub wanted: HashMap<&'a Email, Vec<&'a ProductId>>,
    /// How many declared people want each managed product.
    pub declared_holders: BTreeMap<&'a ProductId, usize>,
    /// People holding a managed product directly that the declaration does
    /// not give them (pruned or not), with those products: the other half
    /// of a probable typo.
    pub undeclared: BTreeMap<&'a Email, Vec<&'a ProductId>>,
    /// Today's direct assignments of managed products: the removal guard's
    /// base.
    pub direct_holdings: usize,
    /// Declared renames (old address, new address).
    pub renames: BTreeSet<(&'a Email, &'a Email)>,
    /// Aliases that resolve to no single pool.
    pub unresolved: BTreeSet<&'a str>,
}

/// The changes of one team while the guards sort them.
#[derive(Default)]
pub(super) struct Draft {
    pub changes: Vec<Change>,
    pub blocked: Vec<Blocked>,
    pub findings: Vec<Finding>,
    /// Filled by the seats guard.
    pub seats: Vec<SeatUsage>,
}

impl Draft {
    /// The one partition step: every change `why` gives a reason for moves
    /// to `blocked`, in order; they are returned for the guard's message.
    /// Assignments that were waiting for a now-blocked invitation follow it.
    pub fn block(&mut self, mut why: impl FnMut(&Change) -> Option<BlockReason>) -> Vec<Blocked> {
        let mut kept = Vec::with_capacity(self.changes.len());
        let mut moved = Vec::new();
        for change in self.changes.drain(..) {
            match why(&change) {
                Some(reason) => moved.push(Blocked { change, reason }),
                None => kept.push(change),
            }
        }
        self.changes = kept;
        self.blocked.extend(moved.iter().cloned());
        if moved
            .iter()
            .any(|b| matches!(b.change, Change::Invite { .. }))
        {
            self.cascade();
        }
        moved
    }

    /// Assignments that wait for an invitation that is blocked are blocked
    /// for the same reason: they could not be sent without the user id.
    fn cascade(&mut self) {
        let inviting: BTreeSet<Email> = self
            .changes
            .iter()
            .filter(|c| matches!(c, Change::Invite { .. }))
            .map(|c| c.email().clone())
            .collect();
        let orphaned = |c: &Change| matches!(c, Change::Assign { user_id: None, email, .. } if !inviting.contains(email));
        if !self.changes.iter().any(orphaned) {
            return;
        }
        let reasons: BTreeMap<Email, BlockReason> = self
            .blocked
            .iter()
            .filter(|b| matches!(b.change, Change::Invite { .. }))
            .map(|b| (b.change.email().clone(), b.reason.clone()))
            .collect();
        let (kept, waiting): (Vec<Change>, Vec<Change>) =
            self.changes.drain(..).partition(|c| !orphaned(c));
        self.changes = kept;
        self.blocked.extend(waiting.into_iter().map(|change| {
            let reason = reasons
                .get(change.email())
                .cloned()
                .unwrap_or(BlockReason::NothingAssignable);
            Blocked { change, reason }
        }));
    }

    pub fn finding(&mut self, severity: Severity, code: FindingCode, message: String) {
        self.findings.push(finding(severity, code, message));
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

impl<'a> Team<'a> {
    fn new(dt: &'a DesiredTeam, ot: &'a ObservedTeam, draft: &mut Draft) -> Self {
        let by_email = ot.users.iter().map(|u| (&u.email, u)).collect();
        let by_id: HashMap<&UserId, &TeamUser> = ot.users.iter().map(|u| (&u.id, u)).collect();
        let held = ot
            .assignments
            .iter()
            .map(|a| ((&a.user_id, &a.product_id), a.assignment_type))
            .collect();
        let pools = ot.pools.iter().map(|p| (&p.product_id, p)).collect();
        let products = resolve_products(dt, ot, draft);
        let managed: BTreeMap<&ProductId, Arc<ProductRef>> = products
            .values()
            .map(|(p, pool)| (&pool.product_id, Arc::new(p.clone())))
            .collect();
        let aliases = products
            .iter()
            .map(|(alias, (p, _))| ProductRef {
                alias: crate::model::Alias((*alias).to_owned()),
                ..p.clone()
            })
            .collect();

        let mut wanted: HashMap<&Email, Vec<&ProductId>> = HashMap::with_capacity(dt.users.len());
        let mut unresolved: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut declared_holders: BTreeMap<&ProductId, usize> = BTreeMap::new();
        for user in dt.users.values() {
            let mut ids: Vec<&ProductId> = Vec::with_capacity(user.products.len());
            for alias in &user.products {
                match products.get(alias.0.as_str()) {
                    Some((_, pool)) => ids.push(&pool.product_id),
                    None => unresolved
                        .entry(&alias.0)
                        .or_default()
                        .push(user.email.as_str()),
                }
            }
            // Two aliases may name one pool.
            ids.sort();
            ids.dedup();
            for id in &ids {
                *declared_holders.entry(id).or_default() += 1;
            }
            wanted.insert(&user.email, ids);
        }
        let unresolved_aliases = unresolved.keys().copied().collect();
        for (alias, emails) in unresolved {
            draft.finding(
                Severity::Blocker,
                FindingCode::UnresolvedAlias,
                format!(
                    "`{alias}` cannot be assigned to {}, because it resolves to no single pool",
                    list(emails.into_iter())
                ),
            );
        }

        let mut undeclared: BTreeMap<&Email, Vec<&ProductId>> = BTreeMap::new();
        let mut direct_holdings = 0;
        for a in &ot.assignments {
            if !a.assignment_type.is_direct() || !managed.contains_key(&a.product_id) {
                continue;
            }
            direct_holdings += 1;
            let Some(user) = by_id.get(&a.user_id) else {
                continue;
            };
            let declared = wanted
                .get(&user.email)
                .is_some_and(|s| s.contains(&&a.product_id));
            if !declared {
                undeclared
                    .entry(&user.email)
                    .or_default()
                    .push(&a.product_id);
            }
        }
        let renames = dt
            .users
            .values()
            .flat_map(|u| u.replaces.iter().map(move |old| (old, &u.email)))
            .collect();
        Team {
            dt,
            ot,
            by_email,
            by_id,
            held,
            pools,
            managed,
            aliases,
            wanted,
            declared_holders,
            undeclared,
            direct_holdings,
            renames,
            unresolved: unresolved_aliases,
        }
    }
}

/// Every write the declaration asks for, before any guard: invitations and
/// assignments for declared people, and with prune, unassignments of direct
/// assignments nobody declared (never of protected people or inherited
/// assignments, which are only noted).
fn propose(team: &Team<'_>, draft: &mut Draft) {
    let dt = team.dt;
    for user in dt.users.values() {
        let on_team = team.by_email.get(&user.email);
        if on_team.is_none() {
            draft.changes.push(Change::Invite {
                email: user.email.clone(),
                first_name: user.first_name.clone(),
                last_name: user.last_name.clone(),
            });
        }
        for pid in team.wanted.get(&user.email).into_iter().flatten() {
            let holds = on_team.is_some_and(|u| team.held.contains_key(&(&u.id, *pid)));
            if let (false, Some(product)) = (holds, team.managed.get(pid)) {
                draft.changes.push(Change::Assign {
                    email: user.email.clone(),
                    user_id: on_team.map(|u| u.id.clone()),
                    product: product.clone(),
                });
            }
        }
        // Products whose alias resolves to no single pool show as blocked
        // rows, so every format says who goes without.
        for alias in user
            .products
            .iter()
            .filter(|a| team.unresolved.contains(a.0.as_str()))
        {
            let name = dt
                .products
                .get(alias)
                .map(ToString::to_string)
                .unwrap_or_default();
            draft.blocked.push(Blocked {
                change: Change::Assign {
                    email: user.email.clone(),
                    user_id: on_team.map(|u| u.id.clone()),
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

    let mut inherited_extra: Vec<String> = Vec::new();
    let mut kept_without_prune: Vec<String> = Vec::new();
    // Only the assignments nobody declared matter here; sorted, so findings
    // and changes do not depend on the API's order.
    let mut assignments: Vec<_> = team
        .ot
        .assignments
        .iter()
        .filter(|a| team.managed.contains_key(&a.product_id))
        .filter(|a| {
            !team.by_id.get(&a.user_id).is_some_and(|u| {
                team.wanted
                    .get(&u.email)
                    .is_some_and(|set| set.contains(&&a.product_id))
            })
        })
        .collect();
    assignments.sort();
    for a in assignments {
        let Some(product) = team.managed.get(&a.product_id) else {
            continue;
        };
        let Some(user) = team.by_id.get(&a.user_id) else {
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
        if !dt.policy.prune {
            // Only direct ones could ever be pruned; inherited ones are
            // not worth a mention here.
            if a.assignment_type.is_direct() {
                kept_without_prune.push(format!("{} ({})", user.email, product.alias));
            }
            continue;
        }
        if dt.policy.protect.contains(&user.email) {
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
            draft.changes.push(Change::Unassign {
                email: user.email.clone(),
                user_id: user.id.clone(),
                product: product.clone(),
            });
        }
    }
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

/// Resolves each alias to one pool. Aliases matching no pool or several are
/// blockers; two aliases meaning one pool are merged under the first.
fn resolve_products<'a>(
    dt: &'a DesiredTeam,
    ot: &'a ObservedTeam,
    draft: &mut Draft,
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
                    draft.finding(
                        Severity::Warning,
                        FindingCode::AliasesMerged,
                        format!(
                            "aliases `{first}` and `{alias}` both mean {}; they are treated as one product",
                            pool.product_name
                        ),
                    );
                    let merged = out.get(*first).cloned();
                    if let Some(m) = merged {
                        out.insert(alias.0.as_str(), m);
                    }
                    continue;
                }
                by_pool.insert(&pool.product_id, &alias.0);
                let product = ProductRef {
                    alias: alias.clone(),
                    id: pool.product_id.clone(),
                    name: pool.product_name.clone(),
                };
                out.insert(alias.0.as_str(), (product, *pool));
            }
            [] => draft.finding(
                Severity::Blocker,
                FindingCode::AliasMatchesNoPool,
                format!(
                    "product alias `{alias}` ({selector}) matches no product pool of team {}; \
                     pools: {}",
                    dt.id,
                    list(
                        ot.pools
                            .iter()
                            .map(|p| format!("{} ({})", p.product_name, p.product_id))
                            .collect::<BTreeSet<_>>()
                            .iter()
                            .map(String::as_str)
                    )
                ),
            ),
            several => draft.finding(
                Severity::Blocker,
                FindingCode::AliasMatchesSeveralPools,
                format!(
                    "product alias `{alias}` ({selector}) matches {} pools of team {} ({}); \
                     use productId to pick one",
                    several.len(),
                    dt.id,
                    list(several.iter().map(|p| p.product_id.0.as_str()))
                ),
            ),
        }
    }
    out
}

/// Orders the outcome and derives the holdings before and after.
fn finish(team: &Team<'_>, mut draft: Draft) -> TeamPlan {
    draft
        .changes
        .sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    draft
        .blocked
        .sort_by(|a, b| a.change.order_key().cmp(&b.change.order_key()));
    draft.findings.sort();
    draft.findings.dedup();
    let (before, after) = holdings(team, &draft.changes);
    TeamPlan {
        team_id: team.dt.id.clone(),
        team_name: team.ot.name.clone(),
        managed: team.aliases.clone(),
        changes: draft.changes,
        blocked: draft.blocked,
        findings: draft.findings,
        seats: draft.seats,
        before,
        after,
    }
}

/// Holdings of managed products before and after the executable changes,
/// sorted by person and product. Built by sorting and one merge, not by
/// maps of copied keys: a plan of 100,000 people holds 100,000 of these.
fn holdings(team: &Team<'_>, changes: &[Change]) -> (Vec<Holding>, Vec<Holding>) {
    let mut before: Vec<Holding> = team
        .ot
        .assignments
        .iter()
        .filter_map(|a| {
            let product = team.managed.get(&a.product_id)?;
            let user = team.by_id.get(&a.user_id)?;
            Some(Holding {
                email: user.email.clone(),
                product: product.alias.0.clone(),
                how: a.assignment_type.describe(),
            })
        })
        .collect();
    before.sort_unstable_by(|a, b| (&a.email, &a.product).cmp(&(&b.email, &b.product)));
    before.dedup_by(|a, b| a.email == b.email && a.product == b.product);
    let removed: HashSet<(&Email, &str)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Unassign { email, product, .. } => Some((email, product.alias.0.as_str())),
            _ => None,
        })
        .collect();
    let mut added: Vec<Holding> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Assign { email, product, .. } => Some(Holding {
                email: email.clone(),
                product: product.alias.0.clone(),
                how: "direct",
            }),
            _ => None,
        })
        .collect();
    added.sort_unstable_by(|a, b| (&a.email, &a.product).cmp(&(&b.email, &b.product)));
    let mut after = Vec::with_capacity(before.len() + added.len());
    let mut added = added.into_iter().peekable();
    for h in &before {
        while let Some(a) = added.next_if(|a| (&a.email, &a.product) < (&h.email, &h.product)) {
            after.push(a);
        }
        if added
            .peek()
            .is_some_and(|a| a.email == h.email && a.product == h.product)
        {
            // Assigned directly over what was there (inherited): direct now.
            if let Some(a) = added.next() {
                after.push(a);
            }
            continue;
        }
        if !removed.contains(&(&h.email, h.product.as_str())) {
            after.push(h.clone());
        }
    }
    after.extend(added);
    (before, after)
}

/// "a, b and 3 more" style lists keep findings readable for big teams.
pub(super) fn list<'a>(items: impl Iterator<Item = &'a str>) -> String {
    const SHOWN: usize = 10;
    let mut shown = Vec::with_capacity(SHOWN);
    let mut more = 0usize;
    for item in items {
        if shown.len() < SHOWN {
            shown.push(item);
        } else {
            more += 1;
        }
    }
    match (shown.is_empty(), more) {
        (true, _) => "none".to_owned(),
        (false, 0) => shown.join(", "),
        (false, n) => format!("{} and {n} more", shown.join(", ")),
    }
}
