//! The plan: what must change in each team, as inert data.
//!
//! [`compute`] is the whole decision: it takes the desired state, the observed
//! state and the current time, and performs no I/O. Renderers explain a
//! [`Plan`]; apply executes [`TeamPlan::changes`] and nothing else. Blocked
//! changes live in their own list so no executor can send them by mistake.

mod compute;
mod depends;

pub use compute::compute;
pub use depends::fingerprint;

use jiff::Timestamp;

use crate::model::{Alias, Email, MaxUnassign, ProductId, TeamId, UserId};

/// The changes for every declared team, ordered by team id.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub teams: Vec<TeamPlan>,
}

impl Plan {
    /// True when no team has anything to execute (blocked changes may remain).
    pub fn is_empty(&self) -> bool {
        self.teams.iter().all(|t| t.changes.is_empty())
    }

    pub fn has_blockers(&self) -> bool {
        self.teams.iter().any(TeamPlan::has_blockers)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for t in &self.teams {
            s.add(&t.summary());
        }
        s
    }
}

/// One team's plan.
#[derive(Clone, Debug, PartialEq)]
pub struct TeamPlan {
    pub team_id: TeamId,
    /// The live name, or the declared one when the team was not observed.
    pub team_name: String,
    /// What to execute, in order: unassignments (they free seats), invites,
    /// then assignments.
    pub changes: Vec<Change>,
    /// What the declaration asks for but a guard stops. Never executed.
    pub blocked: Vec<Blocked>,
    /// Blockers first, then warnings, then notes.
    pub findings: Vec<Finding>,
    /// Seat use of each limited pool touched by the declaration.
    pub seats: Vec<SeatUsage>,
    /// Who holds which managed product today, and after this plan.
    pub before: Vec<Holding>,
    pub after: Vec<Holding>,
}

impl TeamPlan {
    pub fn has_blockers(&self) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Blocker)
    }

    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for c in &self.changes {
            match c {
                Change::Invite { .. } => s.invite += 1,
                Change::Assign { .. } => s.assign += 1,
                Change::Unassign { .. } => s.unassign += 1,
            }
        }
        s.blocked = self.blocked.len();
        s.blockers = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Blocker)
            .count();
        s.warnings = self
            .findings
            .iter()
            .filter(|f| f.severity == Severity::Warning)
            .count();
        s
    }
}

/// Counts for a summary line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub invite: usize,
    pub assign: usize,
    pub unassign: usize,
    pub blocked: usize,
    pub blockers: usize,
    pub warnings: usize,
}

impl Summary {
    fn add(&mut self, o: &Summary) {
        self.invite += o.invite;
        self.assign += o.assign;
        self.unassign += o.unassign;
        self.blocked += o.blocked;
        self.blockers += o.blockers;
        self.warnings += o.warnings;
    }

    pub fn changes(&self) -> usize {
        self.invite + self.assign + self.unassign
    }
}

/// A product pool as the plan names it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProductRef {
    pub alias: Alias,
    pub id: ProductId,
    pub name: String,
}

/// One write against the Team Admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// Add Team User: invite someone who is not on the team yet.
    Invite {
        email: Email,
        first_name: Option<String>,
        last_name: Option<String>,
    },
    /// Assign Product. `user_id` is `None` for a person invited by this same
    /// plan; the invite's response supplies it.
    Assign {
        email: Email,
        user_id: Option<UserId>,
        product: ProductRef,
    },
    /// Unassign Product (DIRECT assignments only).
    Unassign {
        email: Email,
        user_id: UserId,
        product: ProductRef,
    },
}

impl Change {
    pub fn email(&self) -> &Email {
        match self {
            Change::Invite { email, .. }
            | Change::Assign { email, .. }
            | Change::Unassign { email, .. } => email,
        }
    }

    pub fn product(&self) -> Option<&ProductRef> {
        match self {
            Change::Invite { .. } => None,
            Change::Assign { product, .. } | Change::Unassign { product, .. } => Some(product),
        }
    }

    /// The API operation, as a verb.
    pub fn verb(&self) -> &'static str {
        match self {
            Change::Invite { .. } => "invite",
            Change::Assign { .. } => "assign",
            Change::Unassign { .. } => "unassign",
        }
    }

    /// Execution order: unassign, invite, assign; then by product and email.
    fn order_key(&self) -> (u8, Option<&str>, &Email) {
        let rank = match self {
            Change::Unassign { .. } => 0,
            Change::Invite { .. } => 1,
            Change::Assign { .. } => 2,
        };
        (rank, self.product().map(|p| p.name.as_str()), self.email())
    }
}

/// A change a guard stops, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocked {
    pub change: Change,
    pub reason: BlockReason,
}

/// Why a change is blocked. Explains; the executor never sees blocked changes.
#[derive(Clone, Debug, PartialEq)]
pub enum BlockReason {
    /// The declared team name differs from the live one.
    TeamNameMismatch {
        declared: String,
        live: String,
    },
    /// The pool has no seat left for this person.
    NoSeat {
        total: u64,
    },
    PoolNotStarted {
        start: Timestamp,
    },
    PoolExpired {
        end: Timestamp,
    },
    /// The run would unassign more than `policy.maxUnassign` allows.
    RemovalGuard {
        wanted: usize,
        limit: usize,
        max_unassign: MaxUnassign,
        holders: usize,
    },
    /// Nobody is declared for this product and `allowEmpty` is off.
    EmptyDeclaration,
    /// The team's declaration says `suspend: true`.
    Suspended,
}

/// Something reviewers must see.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Some declared change cannot be made; the plan is not fully applicable.
    Blocker,
    Warning,
    /// Context, e.g. a holder that prune cannot remove.
    Note,
}

/// Seats of one limited pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeatUsage {
    pub product: ProductRef,
    pub total: u64,
    pub before: u64,
    /// In use after the plan, counting the seats its unassignments free.
    pub after: u64,
    /// Seats the plan's unassignments free, provided the people unassigned
    /// do not also hold the product through a group (the API cannot tell).
    pub freed: u64,
    /// Seats the declaration needs beyond the total (0 when it fits).
    pub short: u64,
}

/// One person holding one managed product.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Holding {
    pub email: Email,
    pub product: String,
    /// `direct`, `through a group`, …
    pub how: String,
}
