//! One team's declaration and live state, indexed once: what the proposal
//! and every guard look things up in.
//!
//! Addresses and user ids are strings behind pointers, and a team of
//! 100,000 people would chase them for every lookup and comparison. So each
//! is hashed once here, and what follows works on dense numbers: a declared
//! person is their place in the declaration (email order), a member their
//! place in the live user list, a managed product its place among the
//! managed pools (pool id order).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;

use super::ProductRef;
use super::draft::{Draft, list};
use super::hashing::{self, Map};
use super::{FindingCode, Severity};
use crate::model::{
    Assignment, DesiredTeam, DesiredUser, Email, ObservedTeam, ProductId, ProductPool,
    ProductSelector, TeamUser,
};

/// One team's declaration and live state, indexed once for the guards.
pub(super) struct Team<'a> {
    pub dt: &'a DesiredTeam,
    pub ot: &'a ObservedTeam,
    pub pools: BTreeMap<&'a ProductId, &'a ProductPool>,
    /// The managed products, by pool id (shared by every change naming one).
    /// A product's place in this map is its number.
    pub managed: BTreeMap<&'a ProductId, Arc<ProductRef>>,
    /// The managed products by number.
    pub products: Vec<Arc<ProductRef>>,
    /// Every alias with the pool it resolves to (merged aliases included).
    pub aliases: Vec<ProductRef>,
    /// Every declared person, in the declaration's (email) order.
    pub people: Vec<Person<'a>>,
    /// What `Person::wants` ranges over.
    wanted: Vec<u32>,
    /// Which managed products each member holds, in any way.
    pub held: Held<'a>,
    /// How many declared people want each managed product.
    pub declared_holders: BTreeMap<&'a ProductId, usize>,
    /// The same counts by product number.
    pub wanting: Vec<usize>,
    /// Assignments of managed products that the declaration does not give
    /// their holder (holders missing from the user list included), sorted
    /// so findings and changes do not depend on the API's order.
    pub undeclared_assignments: Vec<&'a Assignment>,
    /// People holding a managed product directly that the declaration does
    /// not give them (pruned or not), sorted: the other half of a probable
    /// typo.
    pub undeclared: Vec<&'a Email>,
    /// Today's direct assignments of managed products: the removal guard's
    /// base.
    pub direct_holdings: usize,
    /// Declared renames (old address, new address).
    pub renames: BTreeSet<(&'a Email, &'a Email)>,
    /// Aliases that resolve to no single pool.
    pub unresolved: BTreeSet<&'a str>,
    /// Members by user id.
    by_id: Map<&'a str, u32>,
}

/// A declared person and the member with their address, if any.
pub(super) struct Person<'a> {
    pub user: &'a DesiredUser,
    /// The member with this address.
    pub member: Option<&'a TeamUser>,
    /// That member's number by user id, for `Held`.
    holder: Option<u32>,
    /// The managed products they must hold, sorted by number, no duplicates.
    wants: Range<u32>,
}

/// Which managed products each member holds: member `m` holds
/// `products[start[m]..start[m + 1]]`, sorted.
pub(super) struct Held<'a> {
    start: Vec<u32>,
    products: Vec<u32>,
    /// (user id, product) of assignments to user ids missing from the user
    /// list, sorted, no duplicates: they still take seats.
    unlisted: Vec<(&'a str, u32)>,
}

impl Held<'_> {
    fn holds(&self, member: u32, product: u32) -> bool {
        let m = member as usize;
        match (self.start.get(m), self.start.get(m + 1)) {
            (Some(&a), Some(&b)) => self.products[a as usize..b as usize].contains(&product),
            _ => false,
        }
    }

    /// How many user ids hold `product`, in any way.
    pub fn count(&self, product: u32) -> u64 {
        let listed = self.products.iter().filter(|p| **p == product).count();
        let unlisted = self.unlisted.iter().filter(|(_, p)| *p == product).count();
        (listed + unlisted) as u64
    }
}

impl<'a> Team<'a> {
    pub(super) fn new(dt: &'a DesiredTeam, ot: &'a ObservedTeam, draft: &mut Draft) -> Self {
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
        let numbers = Numbers(managed.keys().copied().collect());
        let members = Members::of(ot);
        let declared = Declared::of(dt, &products, &numbers, &members, draft);
        let assignments = Assignments::of(ot, &numbers, &members, &declared);
        let declared_holders = numbers
            .0
            .iter()
            .copied()
            .zip(declared.holders.iter().copied())
            .collect();
        Team {
            dt,
            ot,
            pools,
            products: managed.values().cloned().collect(),
            managed,
            aliases,
            people: declared.people,
            wanted: declared.wanted,
            held: assignments.held,
            declared_holders,
            wanting: declared.holders,
            undeclared_assignments: assignments.undeclared_assignments,
            undeclared: assignments.undeclared,
            direct_holdings: assignments.direct_holdings,
            renames: declared.renames,
            unresolved: declared.unresolved,
            by_id: members.by_id,
        }
    }

    /// The managed products `person` must hold, by number, in pool id order.
    pub fn wants(&self, person: &Person<'_>) -> &[u32] {
        &self.wanted[person.wants.start as usize..person.wants.end as usize]
    }

    /// Whether `person` holds managed product `product` today, in any way.
    pub fn holds(&self, person: &Person<'_>, product: u32) -> bool {
        person.holder.is_some_and(|m| self.held.holds(m, product))
    }

    /// The member with this user id.
    pub fn member(&self, user_id: &str) -> Option<&'a TeamUser> {
        let m = *self.by_id.get(user_id)?;
        self.ot.users.get(m as usize)
    }
}

/// The managed pools' ids in number order.
struct Numbers<'a>(Vec<&'a ProductId>);

impl Numbers<'_> {
    fn of(&self, id: &ProductId) -> Option<u32> {
        let i = self.0.binary_search(&id).ok()?;
        u32::try_from(i).ok()
    }
}

/// The live user list, indexed by address and by user id; the last listed
/// wins when the list repeats an address or id (a snapshot file may).
struct Members<'a> {
    users: &'a [TeamUser],
    by_email: Map<&'a Email, u32>,
    by_id: Map<&'a str, u32>,
    /// Each member's number by user id, when the list repeats one (else
    /// every member is their own).
    by_id_of: Option<Vec<u32>>,
    /// Each member's number by address, likewise.
    by_email_of: Option<Vec<u32>>,
}

impl<'a> Members<'a> {
    fn of(ot: &'a ObservedTeam) -> Self {
        let n = ot.users.len();
        let mut by_email: Map<&Email, u32> = hashing::map_with_capacity(n);
        let mut by_id: Map<&str, u32> = hashing::map_with_capacity(n);
        let (mut repeated_email, mut repeated_id) = (false, false);
        for (m, u) in (0u32..).zip(&ot.users) {
            repeated_email |= by_email.insert(&u.email, m).is_some();
            repeated_id |= by_id.insert(u.id.as_str(), m).is_some();
        }
        let by_id_of = repeated_id.then(|| {
            let of = |u: &TeamUser| by_id.get(u.id.as_str()).copied();
            ot.users.iter().map(of).collect::<Option<Vec<u32>>>()
        });
        let by_email_of = repeated_email.then(|| {
            let of = |u: &TeamUser| by_email.get(&u.email).copied();
            ot.users.iter().map(of).collect::<Option<Vec<u32>>>()
        });
        Members {
            users: &ot.users,
            by_email,
            by_id,
            by_id_of: by_id_of.flatten(),
            by_email_of: by_email_of.flatten(),
        }
    }

    fn same_id(&self, member: u32) -> u32 {
        same(self.by_id_of.as_deref(), member)
    }

    fn same_email(&self, member: u32) -> u32 {
        same(self.by_email_of.as_deref(), member)
    }
}

fn same(of: Option<&[u32]>, member: u32) -> u32 {
    of.and_then(|o| o.get(member as usize).copied())
        .unwrap_or(member)
}

/// What the declaration asks for, resolved to pools.
struct Declared<'a> {
    people: Vec<Person<'a>>,
    wanted: Vec<u32>,
    /// How many declared people want each managed product, by number.
    holders: Vec<usize>,
    /// What the declared person with each member's address must hold (an
    /// empty range for members nobody declared), by member number: read in
    /// the live lists' order, not the declaration's.
    wants_of: Vec<Range<u32>>,
    unresolved: BTreeSet<&'a str>,
    renames: BTreeSet<(&'a Email, &'a Email)>,
}

impl<'a> Declared<'a> {
    /// Each person's products by pool (no duplicates: two aliases may name
    /// one pool), how many want each pool, and the aliases that name no
    /// single pool (a blocker each).
    fn of(
        dt: &'a DesiredTeam,
        products: &BTreeMap<&'a str, (ProductRef, &'a ProductPool)>,
        numbers: &Numbers<'_>,
        members: &Members<'a>,
        draft: &mut Draft,
    ) -> Self {
        let mut people = Vec::with_capacity(dt.users.len());
        let mut wanted: Vec<u32> = Vec::with_capacity(dt.users.len() * 2);
        let mut holders = vec![0usize; numbers.0.len()];
        let mut wants_of: Vec<Range<u32>> = vec![0..0; members.users.len()];
        let mut unresolved: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut renames = BTreeSet::new();
        // Addresses first, in a loop of their own: the lookups do not wait
        // on each other, so the processor overlaps their cache misses.
        let member_of: Vec<Option<u32>> = dt
            .users
            .keys()
            .map(|email| members.by_email.get(email).copied())
            .collect();
        // Every resolved alias's pool is managed, so each has a number; were
        // one missing, its people would be reported as going without it (a
        // blocker), never have their holding of it read as undeclared.
        let number_of: BTreeMap<&str, u32> = products
            .iter()
            .filter_map(|(alias, (_, pool))| Some((*alias, numbers.of(&pool.product_id)?)))
            .collect();
        for (user, member) in dt.users.values().zip(member_of) {
            renames.extend(user.replaces.iter().map(|old| (old, &user.email)));
            let start = wanted.len();
            for alias in &user.products {
                match number_of.get(alias.0.as_str()) {
                    Some(number) => wanted.push(*number),
                    None => unresolved
                        .entry(&alias.0)
                        .or_default()
                        .push(user.email.as_str()),
                }
            }
            let kept = sort_unique(&mut wanted[start..]);
            wanted.truncate(start + kept);
            for p in &wanted[start..] {
                if let Some(n) = holders.get_mut(*p as usize) {
                    *n += 1;
                }
            }
            let wants = number(start)..number(wanted.len());
            if let Some(slot) = member.and_then(|m| wants_of.get_mut(m as usize)) {
                *slot = wants.clone();
            }
            people.push(Person {
                user,
                member: member.and_then(|m| members.users.get(m as usize)),
                holder: member.map(|m| members.same_id(m)),
                wants,
            });
        }
        let aliases = unresolved.keys().copied().collect();
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
        Declared {
            people,
            wanted,
            holders,
            wants_of,
            unresolved: aliases,
            renames,
        }
    }

    /// Whether the declaration gives member `member`'s address `product`.
    fn gives(&self, member: u32, product: u32) -> bool {
        self.wants_of
            .get(member as usize)
            .is_some_and(|w| self.wanted[w.start as usize..w.end as usize].contains(&product))
    }
}

/// An offset into a list of at most `u32::MAX` entries (a team has far
/// fewer people and products).
fn number(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// The live assignments of managed products, against the declaration.
struct Assignments<'a> {
    held: Held<'a>,
    undeclared_assignments: Vec<&'a Assignment>,
    undeclared: Vec<&'a Email>,
    direct_holdings: usize,
}

impl<'a> Assignments<'a> {
    fn of(
        ot: &'a ObservedTeam,
        numbers: &Numbers<'_>,
        members: &Members<'a>,
        declared: &Declared<'a>,
    ) -> Self {
        let mut rows: Vec<(u32, u32)> = Vec::with_capacity(ot.assignments.len());
        let mut unlisted = Vec::new();
        let mut undeclared_assignments = Vec::new();
        let mut undeclared = Vec::new();
        let mut direct_holdings = 0;
        let mut last: Option<(&str, Option<u32>)> = None;
        for a in &ot.assignments {
            let Some(p) = numbers.of(&a.product_id) else {
                continue;
            };
            let direct = a.assignment_type.is_direct();
            direct_holdings += usize::from(direct);
            // The API lists a user's assignments together: the previous
            // answer is usually this one.
            let member = match last {
                Some((id, m)) if id == a.user_id.as_str() => m,
                _ => members.by_id.get(a.user_id.as_str()).copied(),
            };
            last = Some((a.user_id.as_str(), member));
            match member {
                Some(m) => rows.push((m, p)),
                None => unlisted.push((a.user_id.as_str(), p)),
            }
            let given = member.is_some_and(|m| declared.gives(members.same_email(m), p));
            if !given {
                undeclared_assignments.push(a);
                if let (true, Some(u)) =
                    (direct, member.and_then(|m| members.users.get(m as usize)))
                {
                    undeclared.push(&u.email);
                }
            }
        }
        undeclared_assignments.sort();
        // A list that repeats an assignment (a snapshot may) still means one
        // unassignment: the second would be a write for nothing.
        undeclared_assignments.dedup();
        undeclared.sort_unstable();
        undeclared.dedup();
        unlisted.sort_unstable();
        unlisted.dedup();
        Assignments {
            held: held_by_member(rows, members.users.len(), unlisted),
            undeclared_assignments,
            undeclared,
            direct_holdings,
        }
    }
}

/// Groups (member, product) rows by member, without duplicates: a counting
/// sort by member, then each member's few products sorted in place.
fn held_by_member<'a>(
    rows: Vec<(u32, u32)>,
    members: usize,
    unlisted: Vec<(&'a str, u32)>,
) -> Held<'a> {
    let mut start = vec![0u32; members + 1];
    for (m, _) in &rows {
        if let Some(n) = start.get_mut(*m as usize + 1) {
            *n += 1;
        }
    }
    for i in 1..start.len() {
        start[i] += start[i - 1];
    }
    let mut next = start.clone();
    let mut products = vec![0u32; rows.len()];
    for (m, p) in rows {
        if let Some(at) = next.get_mut(m as usize) {
            products[*at as usize] = p;
            *at += 1;
        }
    }
    // Sorted runs, duplicates dropped and the gaps they leave closed.
    let mut kept = 0;
    for m in 0..members {
        let (from, to) = (start[m] as usize, start[m + 1] as usize);
        start[m] = number(kept);
        let unique = sort_unique(&mut products[from..to]);
        products.copy_within(from..from + unique, kept);
        kept += unique;
    }
    start[members] = number(kept);
    products.truncate(kept);
    Held {
        start,
        products,
        unlisted,
    }
}

/// Sorts `run` and moves its distinct values to its front; returns how
/// many there are.
fn sort_unique(run: &mut [u32]) -> usize {
    run.sort_unstable();
    let mut kept = 0;
    for i in 0..run.len() {
        if kept == 0 || run[kept - 1] != run[i] {
            run[kept] = run[i];
            kept += 1;
        }
    }
    kept
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdings_are_grouped_by_member_sorted_and_without_repeats() {
        // Member 1 is listed twice for product 2 (a snapshot may repeat an
        // assignment); member 2 holds nothing; "GHOST" is not in the list.
        let rows = vec![(1, 2), (0, 1), (1, 2), (1, 0)];
        let held = held_by_member(rows, 3, vec![("GHOST", 2)]);
        assert!(held.holds(0, 1) && !held.holds(0, 0));
        assert!(held.holds(1, 0) && held.holds(1, 2) && !held.holds(1, 1));
        assert!(!held.holds(2, 0) && !held.holds(3, 0));
        assert_eq!(held.start, [0, 1, 3, 3]);
        assert_eq!(held.products, [1, 0, 2]);
        // Seats: member 1 and the unlisted holder.
        assert_eq!(held.count(2), 2);
    }
}
