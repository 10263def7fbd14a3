//! What each change depends on in the observed state, as a fingerprint.
//!
//! A saved plan records these; applying it later re-reads the team and
//! refuses the plan when any fingerprint differs, because the change was
//! decided on facts that no longer hold.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use super::Change;
use crate::model::{ObservedTeam, ProductId, UserId};

/// A short hex digest of the facts `change` was decided on.
pub fn fingerprint(change: &Change, team: &ObservedTeam) -> String {
    let mut facts = String::new();
    let user_of = |email: &crate::model::Email| {
        team.users
            .iter()
            .find(|u| &u.email == email)
            .map(|u| u.id.0.clone())
    };
    let held = |user: &UserId, product: &ProductId| {
        team.assignments
            .iter()
            .find(|a| &a.user_id == user && &a.product_id == product)
            .map(|a| format!("{:?}", a.assignment_type))
    };
    match change {
        Change::Invite { email, .. } => {
            let _ = write!(facts, "user {email}={:?}", user_of(email));
        }
        Change::Assign { email, product, .. } => {
            let uid = user_of(email);
            let _ = write!(facts, "user {email}={uid:?};");
            if let Some(uid) = uid {
                let _ = write!(facts, "held={:?};", held(&UserId(uid), &product.id));
            }
            // Seats of a limited pool decide whether the assignment fits.
            if let Some(pool) = team.pools.iter().find(|p| p.product_id == product.id) {
                let _ = write!(
                    facts,
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
            user_id, product, ..
        } => {
            let _ = write!(
                facts,
                "held {user_id} {}={:?}",
                product.id,
                held(user_id, &product.id)
            );
        }
    }
    // 96 bits tell changed facts apart; the full hash only makes files longer.
    let mut hex = format!("{:x}", Sha256::digest(facts.as_bytes()));
    hex.truncate(24);
    hex
}
