//! The changes of one team while the guards sort them, and the helpers
//! every step uses to say why.

use std::collections::BTreeMap;

use super::hashing::Set;
use super::{BlockReason, Blocked, Change, Finding, FindingCode, SeatUsage, Severity};
use crate::model::Email;

/// The changes of one team while the guards sort them.
#[derive(Default)]
pub(crate) struct Draft {
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
        // In place: a guard that blocks nothing (the usual case) moves no
        // change, where rebuilding the list moved every one of them.
        let mut reasons = Vec::new();
        let taken: Vec<Change> = self
            .changes
            .extract_if(.., |change| match why(change) {
                Some(reason) => {
                    reasons.push(reason);
                    true
                }
                None => false,
            })
            .collect();
        let moved: Vec<Blocked> = taken
            .into_iter()
            .zip(reasons)
            .map(|(change, reason)| Blocked { change, reason })
            .collect();
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
        // Emails are shared pointers: collecting them copies no string.
        let inviting: Set<Email> = self
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

pub(super) fn finding(severity: Severity, code: FindingCode, message: String) -> Finding {
    Finding {
        severity,
        code,
        message,
    }
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
