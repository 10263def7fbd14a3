//! One team's declaration and live state, indexed once: what the proposal
//! and every guard look things up in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::ProductRef;
use super::draft::{Draft, list};
use super::hashing::{self, Map};
use super::{FindingCode, Severity};
use crate::model::{
    AssignmentType, DesiredTeam, Email, ObservedTeam, ProductId, ProductPool, ProductSelector,
    TeamUser, UserId,
};

/// One team's declaration and live state, indexed once for the guards.
pub(super) struct Team<'a> {
    pub dt: &'a DesiredTeam,
    pub ot: &'a ObservedTeam,
    pub by_email: Map<&'a Email, &'a TeamUser>,
    pub by_id: Map<&'a UserId, &'a TeamUser>,
    /// (user, product) → effective assignment type.
    pub held: Map<(&'a UserId, &'a ProductId), AssignmentType>,
    pub pools: BTreeMap<&'a ProductId, &'a ProductPool>,
    /// The managed products, by pool id (shared by every change naming one).
    pub managed: BTreeMap<&'a ProductId, Arc<ProductRef>>,
    /// Every alias with the pool it resolves to (merged aliases included).
    pub aliases: Vec<ProductRef>,
    /// What each declared person must hold, by product id (sorted, no
    /// duplicates; usually one or two).
    pub wanted: Map<&'a Email, Vec<&'a ProductId>>,
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

impl<'a> Team<'a> {
    pub(super) fn new(dt: &'a DesiredTeam, ot: &'a ObservedTeam, draft: &mut Draft) -> Self {
        let by_email = ot.users.iter().map(|u| (&u.email, u)).collect();
        let by_id: Map<&UserId, &TeamUser> = ot.users.iter().map(|u| (&u.id, u)).collect();
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

        let declared = Declared::of(dt, &products, draft);
        let (undeclared, direct_holdings) =
            undeclared_holders(ot, &by_id, &managed, &declared.wanted);
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
            wanted: declared.wanted,
            declared_holders: declared.holders,
            undeclared,
            direct_holdings,
            renames,
            unresolved: declared.unresolved,
        }
    }
}

/// What the declaration asks for, resolved to pools.
struct Declared<'a> {
    wanted: Map<&'a Email, Vec<&'a ProductId>>,
    holders: BTreeMap<&'a ProductId, usize>,
    unresolved: BTreeSet<&'a str>,
}

impl<'a> Declared<'a> {
    /// Each person's products by pool id (sorted, no duplicates: two
    /// aliases may name one pool), how many want each pool, and the aliases
    /// that name no single pool (a blocker each).
    fn of(
        dt: &'a DesiredTeam,
        products: &BTreeMap<&'a str, (ProductRef, &'a ProductPool)>,
        draft: &mut Draft,
    ) -> Self {
        let mut wanted: Map<&Email, Vec<&ProductId>> = hashing::map_with_capacity(dt.users.len());
        let mut unresolved: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        let mut holders: BTreeMap<&ProductId, usize> = BTreeMap::new();
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
            ids.sort();
            ids.dedup();
            for id in &ids {
                *holders.entry(id).or_default() += 1;
            }
            wanted.insert(&user.email, ids);
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
            wanted,
            holders,
            unresolved: aliases,
        }
    }
}

/// People holding a managed product directly that the declaration does not
/// give them (the other half of a probable typo), and today's direct
/// assignments of managed products (the removal guard's base).
fn undeclared_holders<'a>(
    ot: &'a ObservedTeam,
    by_id: &Map<&'a UserId, &'a TeamUser>,
    managed: &BTreeMap<&'a ProductId, Arc<ProductRef>>,
    wanted: &Map<&'a Email, Vec<&'a ProductId>>,
) -> (BTreeMap<&'a Email, Vec<&'a ProductId>>, usize) {
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
    (undeclared, direct_holdings)
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
