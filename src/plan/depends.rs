//! What each change depends on in the observed state, as a fingerprint.
//!
//! A saved plan records these; applying it later re-reads the team and
//! refuses the plan when any fingerprint differs, because the change was
//! decided on facts that no longer hold. Fingerprints detect a changed team;
//! they prove nothing about who wrote the file (anyone who can read the team
//! can compute them): that is the saved plan's digest's job.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::Change;
use super::hashing::Map;
use crate::model::{AssignmentType, Email, ObservedTeam, ProductId, ProductPool, UserId};

/// One team's facts, indexed once so fingerprinting n changes is O(n).
pub struct Facts<'a> {
    user_of: Map<&'a Email, &'a UserId>,
    held: Map<(&'a UserId, &'a ProductId), AssignmentType>,
    pools: Map<&'a ProductId, &'a ProductPool>,
}

impl<'a> Facts<'a> {
    pub fn new(team: &'a ObservedTeam) -> Self {
        Facts {
            user_of: team.users.iter().map(|u| (&u.email, &u.id)).collect(),
            held: team
                .assignments
                .iter()
                .map(|a| ((&a.user_id, &a.product_id), a.assignment_type))
                .collect(),
            pools: team.pools.iter().map(|p| (&p.product_id, p)).collect(),
        }
    }

    /// The account `email` has on the team, if any.
    pub fn user_of(&self, email: &Email) -> Option<&'a UserId> {
        self.user_of.get(email).copied()
    }

    pub fn held(&self, user: &UserId, product: &ProductId) -> Option<AssignmentType> {
        self.held.get(&(user, product)).copied()
    }

    pub fn pool(&self, product: &ProductId) -> Option<&'a ProductPool> {
        self.pools.get(product).copied()
    }
}

/// A short hex digest of the facts `change` was decided on.
pub fn fingerprint(change: &Change, facts: &Facts<'_>) -> String {
    let mut text = String::new();
    match change {
        Change::Invite { email, .. } => {
            let _ = write!(text, "user {email}={:?}", facts.user_of(email));
        }
        Change::Assign { email, product, .. } => {
            let uid = facts.user_of(email);
            let _ = write!(text, "user {email}={uid:?};");
            if let Some(uid) = uid {
                let _ = write!(text, "held={:?};", facts.held(uid, &product.id));
            }
            // Seats of a limited pool decide whether the assignment fits.
            if let Some(pool) = facts.pool(&product.id) {
                let _ = write!(
                    text,
                    "pool={:?}/{:?}/{}/{:?}/{:?}",
                    pool.total_quantity,
                    if pool.unlimited {
                        None
                    } else {
                        pool.assigned_quantity
                    },
                    pool.unlimited,
                    pool.start_date,
                    pool.end_date
                );
            }
        }
        Change::Unassign {
            email,
            user_id,
            product,
        } => {
            let _ = write!(
                text,
                "user {email}={:?};held {user_id} {}={:?}",
                facts.user_of(email),
                product.id,
                facts.held(user_id, &product.id)
            );
        }
    }
    // 96 bits tell changed facts apart; the full hash only makes files longer.
    let mut hex = format!("{:x}", Sha256::digest(text.as_bytes()));
    hex.truncate(24);
    hex
}
