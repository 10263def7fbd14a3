//! The plan: what must change in each team, as inert data.
//!
//! [`compute`] is the whole decision: it takes the desired state, the observed
//! state and the current time, and performs no I/O. Renderers explain a
//! [`Plan`]; apply executes [`TeamPlan::changes`] and nothing else. Blocked
//! changes live in their own list so no executor can send them by mistake.

mod compute;
mod depends;
mod draft;
mod guards;
mod hashing;
mod lookalike;
mod team;

pub use compute::{compute, compute_team, compute_with};
pub use depends::{Facts, fingerprint};

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::model::{Alias, Email, Limit, ProductId, TeamId, UserId};

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
    /// The products the declaration manages in this team, resolved to
    /// pools, by alias.
    pub managed: Vec<ProductRef>,
    /// What to execute, in order: unassignments (they free seats), invites,
    /// then assignments.
    pub changes: Vec<Change>,
    /// What the declaration asks for but a guard stops. Never executed.
    pub blocked: Vec<Blocked>,
    /// Blockers first, then warnings, then notes.
    pub findings: Vec<Finding>,
    /// Seat use of each limited pool touched by the declaration.
    pub seats: Vec<SeatUsage>,
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

/// One-run overrides of every team's guards (`--max-unassign`,
/// `--max-invite`, `--allow-renames`): shown with the plan, kept in a saved
/// plan, recorded in each audit line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    pub max_unassign: Option<Limit>,
    pub max_invite: Option<Limit>,
    /// Take every probable typo as a rename.
    pub allow_renames: bool,
}

impl Overrides {
    pub fn is_empty(&self) -> bool {
        *self == Overrides::default()
    }
}

impl std::fmt::Display for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(m) = self.max_unassign {
            parts.push(format!("maxUnassign {m}"));
        }
        if let Some(m) = self.max_invite {
            parts.push(format!("maxInvite {m}"));
        }
        if self.allow_renames {
            parts.push("probable typos accepted as renames".to_owned());
        }
        f.write_str(&parts.join(", "))
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
    pub fn add(&mut self, o: &Summary) {
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
    /// plan; the invite's response supplies it. In a blocked row whose alias
    /// matches no single pool, the product id is empty.
    Assign {
        email: Email,
        user_id: Option<UserId>,
        product: Arc<ProductRef>,
    },
    /// Unassign Product (DIRECT assignments only).
    Unassign {
        email: Email,
        user_id: UserId,
        product: Arc<ProductRef>,
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

    /// Execution order: unassign, invite, assign; then by product name and
    /// email.
    fn execution_order(&self, other: &Change) -> Ordering {
        let rank = |c: &Change| match c {
            Change::Unassign { .. } => 0,
            Change::Invite { .. } => 1,
            Change::Assign { .. } => 2,
        };
        rank(self)
            .cmp(&rank(other))
            .then_with(|| match (self.product(), other.product()) {
                // The changes of one product share its `ProductRef`: no need
                // to compare its name with itself 90,000 times.
                (Some(a), Some(b)) if std::ptr::eq(a, b) => Ordering::Equal,
                (a, b) => a.map(|p| &p.name).cmp(&b.map(|p| &p.name)),
            })
            .then_with(|| self.email().cmp(other.email()))
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
    /// An unassignment paired with an invitation of a look-alike address
    /// (same local part, or one typing slip away): probably a typo, so
    /// neither is made until a `replaces:` or `--allow-renames` confirms it.
    ProbableTypo {
        /// The other address of the pair.
        looks_like: Email,
    },
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
        max_unassign: Limit,
        /// Today's direct assignments of managed products.
        holders: usize,
    },
    /// The run would invite more people than `policy.maxInvite` allows.
    InviteGuard {
        wanted: usize,
        limit: usize,
        max_invite: Limit,
        /// Today's members of the team.
        members: usize,
    },
    /// The service waits this long after a declaration changes before it
    /// removes anything, so a half-written file or a quick revert never
    /// costs anyone their access.
    RemovalDelay {
        until: Timestamp,
    },
    /// An invitation none of whose assignments can go ahead (seats, pool
    /// dates, unknown products): inviting would add a member for nothing.
    NothingAssignable,
    /// The product's alias matches no pool of the team, or several: the
    /// row's product has no id.
    UnresolvedAlias,
    /// Nobody is declared for this product and `allowEmpty` is off.
    EmptyDeclaration,
    /// The team's declaration says `suspend: true`.
    Suspended,
}

impl BlockReason {
    /// Every [`BlockReason::code`].
    pub const CODES: &[&str] = &[
        "probable_typo",
        "team_name_mismatch",
        "no_seat",
        "pool_not_started",
        "pool_expired",
        "removal_guard",
        "invite_guard",
        "removal_delay",
        "nothing_assignable",
        "unresolved_alias",
        "empty_declaration",
        "suspended",
    ];

    /// A stable machine name (JSON, metrics labels).
    pub fn code(&self) -> &'static str {
        match self {
            BlockReason::ProbableTypo { .. } => "probable_typo",
            BlockReason::TeamNameMismatch { .. } => "team_name_mismatch",
            BlockReason::NoSeat { .. } => "no_seat",
            BlockReason::PoolNotStarted { .. } => "pool_not_started",
            BlockReason::PoolExpired { .. } => "pool_expired",
            BlockReason::RemovalGuard { .. } => "removal_guard",
            BlockReason::InviteGuard { .. } => "invite_guard",
            BlockReason::RemovalDelay { .. } => "removal_delay",
            BlockReason::NothingAssignable => "nothing_assignable",
            BlockReason::UnresolvedAlias => "unresolved_alias",
            BlockReason::EmptyDeclaration => "empty_declaration",
            BlockReason::Suspended => "suspended",
        }
    }
}

impl std::fmt::Display for BlockReason {
    /// One line for people: the renderers put it beside the blocked row.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = match self {
            BlockReason::TeamNameMismatch { declared, live } => {
                format!("declared team name {declared:?} differs from live name {live:?}")
            }
            BlockReason::NoSeat { total } => format!("no free seat (pool has {total})"),
            BlockReason::PoolNotStarted { start } => format!("pool starts {start}"),
            BlockReason::PoolExpired { end } => format!("pool ended {end}"),
            BlockReason::RemovalGuard {
                wanted,
                limit,
                max_unassign,
                holders,
            } => format!(
                "removal guard: {wanted} unassignments > {limit} allowed (maxUnassign {max_unassign} of {holders} direct assignments today)"
            ),
            BlockReason::EmptyDeclaration => {
                "nobody is declared for this product (policy.allowEmpty is off)".to_owned()
            }
            BlockReason::Suspended => "the team is suspended".to_owned(),
            BlockReason::ProbableTypo { looks_like } => {
                format!("probable typo: looks like {looks_like} (confirm with `replaces:`)")
            }
            BlockReason::InviteGuard {
                wanted,
                limit,
                max_invite,
                members,
            } => format!(
                "invitation guard: {wanted} invitations > {limit} allowed (maxInvite {max_invite} of {members} members)"
            ),
            BlockReason::RemovalDelay { until } => {
                format!("removal delay: waits until {until} for the declaration to settle")
            }
            BlockReason::NothingAssignable => {
                "none of the person's products can be assigned now".to_owned()
            }
            BlockReason::UnresolvedAlias => {
                "the alias matches no single pool of the team (see the blocker listing them)"
                    .to_owned()
            }
        };
        f.write_str(&text)
    }
}

/// Something reviewers must see.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub severity: Severity,
    /// What kind of finding, stable for machines (the JSON's `code`).
    pub code: FindingCode,
    pub message: String,
}

/// The kinds of findings, named in the JSON plan so CI can act on them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FindingCode {
    TeamNotObserved,
    TeamNameMismatch,
    Suspended,
    AliasMatchesNoPool,
    AliasMatchesSeveralPools,
    AliasesMerged,
    UnresolvedAlias,
    UnknownUserAssigned,
    UndeclaredHolders,
    InheritedNotRemovable,
    Protected,
    EmptyDeclaration,
    ProbableTypo,
    DeclaredRename,
    RemovalGuard,
    InviteGuard,
    NewDomain,
    RemovalDelay,
    PoolDates,
    NoAssignedQuantity,
    ReliesOnFreedSeats,
    NoSeats,
    NothingAssignable,
}

impl FindingCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::TeamNotObserved => "team_not_observed",
            FindingCode::TeamNameMismatch => "team_name_mismatch",
            FindingCode::Suspended => "suspended",
            FindingCode::AliasMatchesNoPool => "alias_matches_no_pool",
            FindingCode::AliasMatchesSeveralPools => "alias_matches_several_pools",
            FindingCode::AliasesMerged => "aliases_merged",
            FindingCode::UnresolvedAlias => "unresolved_alias",
            FindingCode::UnknownUserAssigned => "unknown_user_assigned",
            FindingCode::UndeclaredHolders => "undeclared_holders",
            FindingCode::InheritedNotRemovable => "inherited_not_removable",
            FindingCode::Protected => "protected",
            FindingCode::EmptyDeclaration => "empty_declaration",
            FindingCode::ProbableTypo => "probable_typo",
            FindingCode::DeclaredRename => "declared_rename",
            FindingCode::RemovalGuard => "removal_guard",
            FindingCode::InviteGuard => "invite_guard",
            FindingCode::NewDomain => "new_domain",
            FindingCode::RemovalDelay => "removal_delay",
            FindingCode::PoolDates => "pool_dates",
            FindingCode::NoAssignedQuantity => "no_assigned_quantity",
            FindingCode::ReliesOnFreedSeats => "relies_on_freed_seats",
            FindingCode::NoSeats => "no_seats",
            FindingCode::NothingAssignable => "nothing_assignable",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Some declared change cannot be made; the plan is not fully applicable.
    Blocker,
    Warning,
    /// Context, e.g. a holder that prune cannot remove.
    Note,
}

impl Severity {
    /// Stable for machines (the JSON's `severity`) and the text views' tag.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Blocker => "blocker",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_block_reason_code_is_listed_for_the_metrics() {
        let t: Timestamp = "2026-11-26T12:00:00Z".parse().unwrap();
        let all = [
            BlockReason::ProbableTypo {
                looks_like: Email::from_observed("a@b.example"),
            },
            BlockReason::TeamNameMismatch {
                declared: String::new(),
                live: String::new(),
            },
            BlockReason::NoSeat { total: 1 },
            BlockReason::PoolNotStarted { start: t },
            BlockReason::PoolExpired { end: t },
            BlockReason::RemovalGuard {
                wanted: 2,
                limit: 1,
                max_unassign: Limit::Count(1),
                holders: 4,
            },
            BlockReason::InviteGuard {
                wanted: 2,
                limit: 1,
                max_invite: Limit::Count(1),
                members: 4,
            },
            BlockReason::RemovalDelay { until: t },
            BlockReason::NothingAssignable,
            BlockReason::UnresolvedAlias,
            BlockReason::EmptyDeclaration,
            BlockReason::Suspended,
        ];
        let codes: Vec<&str> = all.iter().map(BlockReason::code).collect();
        assert_eq!(codes, BlockReason::CODES);
    }
}
