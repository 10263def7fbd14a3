//! Presenting a [`Plan`]: text for terminals, Markdown for pull-request
//! comments, JSON for machines. Renderers only read the plan; none of them
//! decides anything.

pub mod json;
pub mod markdown;
pub mod text;

use crate::plan::{BlockReason, Change, Summary};

/// The output formats of `flexsync plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// Why a change is blocked, in words.
pub fn describe_reason(reason: &BlockReason) -> String {
    match reason {
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
            "removal guard: {wanted} unassignments > {limit} allowed (maxUnassign {max_unassign} of {holders})"
        ),
        BlockReason::EmptyDeclaration => {
            "nobody is declared for this product (policy.allowEmpty is off)".to_owned()
        }
    }
}

/// The verb of a change.
pub fn verb(change: &Change) -> &'static str {
    match change {
        Change::Invite { .. } => "invite",
        Change::Assign { .. } => "assign",
        Change::Unassign { .. } => "unassign",
    }
}

/// "Ada Lovelace" from optional parts.
pub fn full_name(first: &Option<String>, last: &Option<String>) -> Option<String> {
    let name = [first.as_deref(), last.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ");
    (!name.is_empty()).then_some(name)
}

/// "1 invite, 2 assignments, no unassignment" and the blocked count.
pub fn summary_line(s: &Summary) -> String {
    let mut parts = vec![
        count(s.invite, "invite", "invites"),
        count(s.assign, "assignment", "assignments"),
        count(s.unassign, "unassignment", "unassignments"),
    ];
    if s.blocked > 0 {
        parts.push(format!("{} blocked", s.blocked));
    }
    parts.join(", ")
}

fn count(n: usize, one: &str, many: &str) -> String {
    match n {
        0 => format!("no {one}"),
        1 => format!("1 {one}"),
        n => format!("{n} {many}"),
    }
}

/// The holdings of a team as lines, for a diff.
pub fn holding_lines(h: &[crate::plan::Holding]) -> String {
    let mut s = String::new();
    for h in h {
        s.push_str(&format!("{}  {}  ({})\n", h.email, h.product, h.how));
    }
    s
}
