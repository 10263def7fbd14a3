//! Property tests of the planner on random declarations and teams: a plan,
//! carried out, converges; it is minimal; protected people keep everything.

use std::collections::{BTreeMap, BTreeSet};

use flexsync::model::{
    Alias, Assignment, AssignmentType, Desired, DesiredTeam, DesiredUser, Email, Limit, Observed,
    ObservedTeam, Policy, ProductId, ProductPool, ProductSelector, TeamId, TeamUser, UserId,
};
use flexsync::plan::{self, BlockReason, Change};
use proptest::prelude::*;

const PEOPLE: usize = 7;
const PRODUCTS: [&str; 2] = ["unlimited", "limited"];

/// Distinct people: no two addresses look like one person's typo.
const NAMES: [&str; PEOPLE] = [
    "ada", "grace", "alan", "edsger", "barbara", "donald", "frances",
];

fn email(i: usize) -> Email {
    Email::parse(&format!("{}@example.com", NAMES[i])).unwrap()
}

/// Pairs of look-alikes: odd people have their even neighbour's local part
/// at a misspelt domain.
fn lookalike_email(i: usize) -> Email {
    match i % 2 {
        0 => Email::parse(&format!("{}@example.com", NAMES[i])).unwrap(),
        _ => Email::parse(&format!("{}@exmaple.com", NAMES[i - 1])).unwrap(),
    }
}

fn now() -> jiff::Timestamp {
    "2026-11-26T12:00:00Z".parse().unwrap()
}

#[derive(Debug, Clone)]
struct Case {
    desired: Desired,
    observed: Observed,
}

fn case() -> impl Strategy<Value = Case> {
    case_with(email)
}

fn case_with(email: fn(usize) -> Email) -> impl Strategy<Value = Case> {
    (
        // Observed: who is on the team, and per (person, product): 0 none, 1 direct, 2 group.
        prop::collection::vec(any::<bool>(), PEOPLE),
        prop::collection::vec(0u8..3, PEOPLE * PRODUCTS.len()),
        0u64..4,
        // Desired: who is declared, and per (person, product) whether wanted.
        prop::collection::vec(any::<bool>(), PEOPLE),
        prop::collection::vec(any::<bool>(), PEOPLE * PRODUCTS.len()),
        // Policy.
        any::<bool>(),
        prop::collection::vec(any::<bool>(), PEOPLE),
        prop_oneof![
            (0u32..6).prop_map(Limit::Count),
            (0u32..=100).prop_map(Limit::Percent)
        ],
        any::<bool>(),
    )
        .prop_map(
            move |(
                on_team,
                held,
                spare,
                declared,
                wants,
                prune,
                protect,
                max_unassign,
                allow_empty,
            )| {
                let team_id = TeamId("1".into());
                let mut users = Vec::new();
                let mut assignments = Vec::new();
                for i in 0..PEOPLE {
                    if !on_team[i] {
                        continue;
                    }
                    users.push(TeamUser {
                        id: UserId::from(format!("U{i}")),
                        email: email(i),
                        first_name: None,
                        last_name: None,
                        role: None,
                    });
                    for (p, product) in PRODUCTS.iter().enumerate() {
                        let kind = match held[i * PRODUCTS.len() + p] {
                            1 => AssignmentType::Direct,
                            2 => AssignmentType::Group,
                            _ => continue,
                        };
                        assignments.push(Assignment {
                            user_id: UserId::from(format!("U{i}")),
                            product_id: ProductId((*product).into()),
                            assignment_type: kind,
                        });
                    }
                }
                let in_limited = assignments
                    .iter()
                    .filter(|a| a.product_id.0 == "limited")
                    .count() as u64;
                let pools = vec![
                    ProductPool {
                        product_id: ProductId("unlimited".into()),
                        product_name: "Unlimited".into(),
                        total_quantity: None,
                        assigned_quantity: None,
                        unlimited: true,
                        start_date: None,
                        end_date: None,
                    },
                    ProductPool {
                        product_id: ProductId("limited".into()),
                        product_name: "Limited".into(),
                        total_quantity: Some(in_limited + spare),
                        assigned_quantity: Some(in_limited),
                        unlimited: false,
                        start_date: None,
                        end_date: None,
                    },
                ];
                let observed = ObservedTeam {
                    id: team_id.clone(),
                    name: "Team".into(),
                    users,
                    pools,
                    assignments,
                };
                let mut desired_users = BTreeMap::new();
                for i in 0..PEOPLE {
                    if !declared[i] {
                        continue;
                    }
                    let products = PRODUCTS
                        .iter()
                        .enumerate()
                        .filter(|(p, _)| wants[i * PRODUCTS.len() + p])
                        .map(|(_, name)| Alias((*name).into()))
                        .collect();
                    desired_users.insert(
                        email(i),
                        DesiredUser {
                            email: email(i),
                            first_name: None,
                            last_name: None,
                            products,
                            replaces: BTreeSet::new(),
                            origin: Default::default(),
                        },
                    );
                }
                let desired_team = DesiredTeam {
                    id: team_id.clone(),
                    name: None,
                    products: PRODUCTS
                        .iter()
                        .map(|p| {
                            (
                                Alias((*p).into()),
                                ProductSelector::Id(ProductId((*p).into())),
                            )
                        })
                        .collect(),
                    users: desired_users,
                    policy: Policy {
                        prune,
                        protect: (0..PEOPLE)
                            .filter(|i| protect[*i] && *i % 3 == 0)
                            .map(email)
                            .collect(),
                        max_unassign,
                        max_invite: Limit::DEFAULT_MAX_INVITE,
                        allow_empty,
                    },
                    suspended: false,
                    sources: vec![],
                    provenance: Default::default(),
                };
                Case {
                    desired: Desired {
                        teams: [(team_id.clone(), desired_team)].into(),
                    },
                    observed: Observed {
                        teams: [(team_id, observed)].into(),
                    },
                }
            },
        )
}

/// Carries changes out the way the API would: a write that cannot succeed
/// (no such user, no free seat) is refused and changes nothing.
fn apply(observed: &Observed, changes: &[Change]) -> Observed {
    let mut out = observed.clone();
    let Some(team) = out.teams.values_mut().next() else {
        return out;
    };
    for change in changes {
        match change {
            Change::Invite { email, .. } => {
                if !team.users.iter().any(|u| &u.email == email) {
                    team.users.push(TeamUser {
                        id: UserId::from(format!("NEW-{email}")),
                        email: email.clone(),
                        first_name: None,
                        last_name: None,
                        role: None,
                    });
                }
            }
            Change::Assign { email, product, .. } => {
                let Some(user) = team.users.iter().find(|u| &u.email == email) else {
                    continue;
                };
                let id = user.id.clone();
                if team
                    .assignments
                    .iter()
                    .any(|a| a.user_id == id && a.product_id == product.id)
                {
                    continue;
                }
                let pool = team
                    .pools
                    .iter_mut()
                    .find(|p| p.product_id == product.id)
                    .unwrap();
                if let (Some(total), Some(used)) =
                    (pool.total_quantity, pool.assigned_quantity.as_mut())
                {
                    if *used >= total {
                        continue;
                    }
                    *used += 1;
                }
                team.assignments.push(Assignment {
                    user_id: id,
                    product_id: product.id.clone(),
                    assignment_type: AssignmentType::Direct,
                });
            }
            Change::Unassign {
                user_id, product, ..
            } => {
                let before = team.assignments.len();
                team.assignments.retain(|a| {
                    !(a.user_id == *user_id
                        && a.product_id == product.id
                        && a.assignment_type.is_direct())
                });
                if team.assignments.len() < before {
                    let pool = team
                        .pools
                        .iter_mut()
                        .find(|p| p.product_id == product.id)
                        .unwrap();
                    if let Some(used) = pool.assigned_quantity.as_mut() {
                        *used -= 1;
                    }
                }
            }
        }
    }
    out
}

fn holds(observed: &Observed, email: &Email, product: &str) -> bool {
    let team = observed.teams.values().next().unwrap();
    let Some(user) = team.users.iter().find(|u| &u.email == email) else {
        return false;
    };
    team.assignments
        .iter()
        .any(|a| a.user_id == user.id && a.product_id.0 == product)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn a_carried_out_plan_converges(c in case()) {
        let plan = plan::compute(&c.desired, &c.observed, now());
        let team = &plan.teams[0];
        let after = apply(&c.observed, &team.changes);

        // Every declared holding is there, unless the plan said why not.
        for user in c.desired.teams.values().next().unwrap().users.values() {
            for alias in &user.products {
                let blocked = team.blocked.iter().any(|b| {
                    b.change.email() == &user.email && b.change.product().is_some_and(|p| p.alias == *alias)
                });
                prop_assert!(blocked || holds(&after, &user.email, &alias.0),
                    "{} lacks {} after the plan: {:#?}", user.email, alias, team);
            }
        }

        // The next plan may only let through what this one blocked: the
        // removal guard measures today's holders, which this run's
        // assignments raise, and removals it then lets through free seats.
        let again = plan::compute(&c.desired, &after, now());
        // (An assignment blocked for an invitee has no user id yet.)
        let same = |a: &Change, b: &Change| {
            a.verb() == b.verb() && a.email() == b.email() && a.product() == b.product()
        };
        for change in &again.teams[0].changes {
            prop_assert!(team.blocked.iter().any(|b| same(&b.change, change)),
                "{change:?} appeared only in the second plan");
        }
        // After that, nothing is left.
        let settled = apply(&after, &again.teams[0].changes);
        let third = plan::compute(&c.desired, &settled, now());
        prop_assert!(third.is_empty(), "third plan not empty: {:#?}", third.teams[0].changes);
    }

    #[test]
    fn a_probable_typo_is_never_half_carried_out(c in case_with(lookalike_email)) {
        let plan = plan::compute(&c.desired, &c.observed, now());
        let team = &plan.teams[0];
        let invited: BTreeSet<&Email> = team.changes.iter()
            .filter(|c| matches!(c, Change::Invite { .. })).map(Change::email).collect();
        for change in &team.changes {
            if let Change::Unassign { email, .. } = change {
                let (local, _) = email.as_str().split_once('@').unwrap();
                prop_assert!(!invited.iter().any(|i| i.as_str().starts_with(&format!("{local}@")) && *i != email),
                    "{email} is unassigned while a look-alike is invited: {:#?}", team);
            }
        }
        // The other half of a blocked pair is not carried out either.
        for b in &team.blocked {
            if let BlockReason::ProbableTypo { looks_like } = &b.reason {
                let other_half = |c: &Change| match (&b.change, c) {
                    (Change::Invite { .. }, Change::Unassign { email, .. })
                    | (Change::Unassign { .. }, Change::Invite { email, .. }) => email == looks_like,
                    _ => false,
                };
                prop_assert!(!team.changes.iter().any(other_half), "{:#?}", team);
            }
        }
    }

    #[test]
    fn every_change_is_needed(c in case()) {
        let plan = plan::compute(&c.desired, &c.observed, now());
        let changes = &plan.teams[0].changes;
        for skip in 0..changes.len() {
            let mut fewer = changes.clone();
            let dropped = fewer.remove(skip);
            let after = apply(&c.observed, &fewer);
            let again = plan::compute(&c.desired, &after, now());
            prop_assert!(!again.is_empty(), "dropping {dropped:?} still converged");
        }
    }

    #[test]
    fn protected_people_are_never_unassigned(c in case()) {
        let plan = plan::compute(&c.desired, &c.observed, now());
        let protect = &c.desired.teams.values().next().unwrap().policy.protect;
        for change in &plan.teams[0].changes {
            if let Change::Unassign { email, .. } = change {
                prop_assert!(!protect.contains(email), "{email} is protected");
            }
        }
    }

    #[test]
    fn only_direct_assignments_are_unassigned_and_only_with_prune(c in case()) {
        let plan = plan::compute(&c.desired, &c.observed, now());
        let dt = c.desired.teams.values().next().unwrap();
        let ot = c.observed.teams.values().next().unwrap();
        for change in &plan.teams[0].changes {
            if let Change::Unassign { user_id, product, .. } = change {
                prop_assert!(dt.policy.prune);
                let direct = ot.assignments.iter().any(|a| &a.user_id == user_id && a.product_id == product.id && a.assignment_type.is_direct());
                prop_assert!(direct);
            }
        }
    }

    #[test]
    fn no_change_is_planned_twice_and_order_of_input_does_not_matter(c in case()) {
        let plan = plan::compute(&c.desired, &c.observed, now());
        let changes = &plan.teams[0].changes;
        let unique: BTreeSet<String> = changes.iter().map(|c| format!("{c:?}")).collect();
        prop_assert_eq!(unique.len(), changes.len());

        let mut shuffled = c.observed.clone();
        for t in shuffled.teams.values_mut() {
            t.users.reverse();
            t.assignments.reverse();
            t.pools.reverse();
        }
        prop_assert_eq!(plan, plan::compute(&c.desired, &shuffled, now()));
    }
}
