//! Eventual consistency: the team-wide assignment list may lag behind
//! writes. The service remembers what its own writes did (from their
//! answers) and lays that over the next reads until the list agrees or a
//! window passes, so it never repeats a write because of lag. Pure.

use std::time::Duration;

use jiff::Timestamp;

use crate::model::{Assignment, AssignmentType, Email, ObservedTeam, ProductId, TeamUser, UserId};
use crate::plan::Change;
use crate::report::Outcome;

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Clone, Debug, PartialEq)]
enum Fact {
    Member { id: UserId, email: Email },
    Held { user: UserId, product: ProductId },
    NotHeld { user: UserId, product: ProductId },
}

/// What a fact is about: a later fact on the same subject replaces it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Subject {
    Member(Email),
    Holding(UserId, ProductId),
}

impl Fact {
    fn subject(&self) -> Subject {
        match self {
            Fact::Member { email, .. } => Subject::Member(email.clone()),
            Fact::Held { user, product } | Fact::NotHeld { user, product } => {
                Subject::Holding(user.clone(), product.clone())
            }
        }
    }
}

/// What recent writes of one team established, one fact per subject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expectations {
    facts: BTreeMap<Subject, (Fact, Timestamp)>,
}

impl Expectations {
    /// Remembers the effect of a successful write. `invited` maps emails to
    /// the ids invites returned in the same pass.
    pub fn record(
        &mut self,
        change: &Change,
        outcome: &Outcome,
        invited: Option<&UserId>,
        now: Timestamp,
    ) {
        let Outcome::Done { user_id, .. } = outcome else {
            return;
        };
        let fact = match change {
            Change::Invite { email, .. } => match user_id {
                Some(id) => Fact::Member {
                    id: id.clone(),
                    email: email.clone(),
                },
                None => return,
            },
            Change::Assign {
                user_id, product, ..
            } => match user_id.as_ref().or(invited) {
                Some(u) => Fact::Held {
                    user: u.clone(),
                    product: product.id.clone(),
                },
                None => return,
            },
            Change::Unassign {
                user_id, product, ..
            } => Fact::NotHeld {
                user: user_id.clone(),
                product: product.id.clone(),
            },
        };
        self.facts.insert(fact.subject(), (fact, now));
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// How many facts are remembered.
    pub fn len(&self) -> usize {
        self.facts.len()
    }

    /// When the latest remembered write was acknowledged.
    pub fn latest(&self) -> Option<Timestamp> {
        self.facts.values().map(|(_, at)| *at).max()
    }

    /// Lays the remembered facts over a fresh read. Facts the read already
    /// shows, or older than `window`, are forgotten: after the window the
    /// list is trusted again, so real drift is still repaired. Linear in the
    /// team and the facts: the read is indexed once.
    pub fn overlay(&mut self, team: &mut ObservedTeam, now: Timestamp, window: Duration) {
        if self.facts.is_empty() {
            return;
        }
        let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
        let members: HashSet<&Email> = team.users.iter().map(|u| &u.email).collect();
        let held: HashMap<(&UserId, &ProductId), AssignmentType> = team
            .assignments
            .iter()
            .map(|a| ((&a.user_id, &a.product_id), a.assignment_type))
            .collect();
        let shown = |fact: &Fact| match fact {
            Fact::Member { email, .. } => members.contains(email),
            Fact::Held { user, product } => held.contains_key(&(user, product)),
            Fact::NotHeld { user, product } => {
                !held.get(&(user, product)).is_some_and(|t| t.is_direct())
            }
        };
        self.facts
            .retain(|_, (fact, at)| now.duration_since(*at) < window && !shown(fact));
        let mut removed: HashSet<(UserId, ProductId)> = HashSet::new();
        for (fact, _) in self.facts.values() {
            match fact {
                Fact::Member { id, email } => team.users.push(TeamUser {
                    id: id.clone(),
                    email: email.clone(),
                    first_name: None,
                    last_name: None,
                    role: None,
                }),
                Fact::Held { user, product } => team.assignments.push(Assignment {
                    user_id: user.clone(),
                    product_id: product.clone(),
                    assignment_type: AssignmentType::Direct,
                }),
                Fact::NotHeld { user, product } => {
                    removed.insert((user.clone(), product.clone()));
                }
            }
        }
        if !removed.is_empty() {
            team.assignments.retain(|a| {
                !(a.assignment_type.is_direct()
                    && removed.contains(&(a.user_id.clone(), a.product_id.clone())))
            });
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{Alias, TeamId};
    use crate::plan::ProductRef;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Team 1 with one member, a@x.io (U1), nothing held: the read both
    /// this module's and `previews`' tests lay writes over.
    pub(in crate::daemon) fn team() -> ObservedTeam {
        ObservedTeam {
            id: TeamId("1".into()),
            name: "T".into(),
            users: vec![TeamUser {
                id: UserId("U1".into()),
                email: Email::from_observed("a@x.io"),
                first_name: None,
                last_name: None,
                role: None,
            }],
            pools: vec![],
            assignments: vec![],
        }
    }

    fn done() -> Outcome {
        Outcome::Done {
            status: 201,
            request_id: "r".into(),
            note: "assigned",
            user_id: None,
        }
    }

    #[test]
    fn a_lagging_list_is_corrected_until_it_catches_up_or_the_window_ends() {
        let product = ProductRef {
            alias: Alias("ps".into()),
            id: ProductId("P".into()),
            name: "PS".into(),
        };
        let change = Change::Assign {
            email: Email::from_observed("a@x.io"),
            user_id: Some(UserId("U1".into())),
            product: std::sync::Arc::new(product),
        };
        let mut e = Expectations::default();
        let now = t("2026-11-26T10:00:00Z");
        e.record(&change, &done(), None, now);

        // The list lags: the overlay adds the assignment.
        let mut read = team();
        e.overlay(&mut read, now, Duration::from_secs(600));
        assert_eq!(read.assignments.len(), 1);

        // The list caught up: the fact is forgotten.
        let mut read = team();
        read.assignments.push(Assignment {
            user_id: UserId("U1".into()),
            product_id: ProductId("P".into()),
            assignment_type: AssignmentType::Direct,
        });
        e.overlay(&mut read, now, Duration::from_secs(600));
        assert!(e.is_empty());

        // Past the window, the list is trusted (someone removed it: drift).
        e.record(&change, &done(), None, now);
        let mut read = team();
        e.overlay(
            &mut read,
            t("2026-11-26T10:11:00Z"),
            Duration::from_secs(600),
        );
        assert!(read.assignments.is_empty());
        assert!(e.is_empty());
    }
}
