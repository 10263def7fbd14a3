//! Eventual consistency: the team-wide assignment list may lag behind
//! writes. The service remembers what its own writes did (from their
//! answers) and lays that over the next reads until the list agrees or a
//! window passes, so it never repeats a write because of lag. Pure.

use std::time::Duration;

use jiff::Timestamp;

use crate::model::{Assignment, AssignmentType, Email, ObservedTeam, ProductId, TeamUser, UserId};
use crate::plan::Change;
use crate::report::Outcome;

#[derive(Clone, Debug, PartialEq)]
enum Fact {
    Member { id: UserId, email: Email },
    Held { user: UserId, product: ProductId },
    NotHeld { user: UserId, product: ProductId },
}

/// What recent writes of one team established.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expectations {
    facts: Vec<(Fact, Timestamp)>,
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
        self.facts.retain(|(f, _)| !same_subject(f, &fact));
        self.facts.push((fact, now));
    }

    pub fn is_empty(&self) -> bool {
        self.facts.is_empty()
    }

    /// Lays the remembered facts over a fresh read. Facts the read already
    /// shows, or older than `window`, are forgotten: after the window the
    /// list is trusted again, so real drift is still repaired.
    pub fn overlay(&mut self, team: &mut ObservedTeam, now: Timestamp, window: Duration) {
        let window = jiff::SignedDuration::try_from(window).unwrap_or(jiff::SignedDuration::MAX);
        self.facts.retain(|(fact, at)| {
            let fresh = now.duration_since(*at) < window;
            fresh && !shown(fact, team)
        });
        for (fact, _) in &self.facts {
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
                Fact::NotHeld { user, product } => team.assignments.retain(|a| {
                    !(&a.user_id == user
                        && &a.product_id == product
                        && a.assignment_type.is_direct())
                }),
            }
        }
    }
}

fn same_subject(a: &Fact, b: &Fact) -> bool {
    match (a, b) {
        (Fact::Member { email: x, .. }, Fact::Member { email: y, .. }) => x == y,
        (
            Fact::Held {
                user: u1,
                product: p1,
            }
            | Fact::NotHeld {
                user: u1,
                product: p1,
            },
            Fact::Held {
                user: u2,
                product: p2,
            }
            | Fact::NotHeld {
                user: u2,
                product: p2,
            },
        ) => u1 == u2 && p1 == p2,
        _ => false,
    }
}

/// Whether the read already shows the fact.
fn shown(fact: &Fact, team: &ObservedTeam) -> bool {
    match fact {
        Fact::Member { email, .. } => team.users.iter().any(|u| &u.email == email),
        Fact::Held { user, product } => team
            .assignments
            .iter()
            .any(|a| &a.user_id == user && &a.product_id == product),
        Fact::NotHeld { user, product } => !team.assignments.iter().any(|a| {
            &a.user_id == user && &a.product_id == product && a.assignment_type.is_direct()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Alias, TeamId};
    use crate::plan::ProductRef;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn team() -> ObservedTeam {
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
            product,
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
