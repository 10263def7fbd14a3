//! The machine-readable plan. These structs are the format: internal plan
//! types may change freely, this may not without bumping [`FORMAT_VERSION`].
//! Ordering is stable: teams by id, changes in execution order.

use std::io::{self, Write};

use serde::Serialize;

use super::{Context, Source, describe_reason};
use crate::plan::{self, Change, Plan};

/// Bump when a consumer's parser would break.
pub const FORMAT_VERSION: u32 = 1;

/// What a plan means for a pull request, in one word: the JSON's `status`
/// and `plan --detailed-exitcode` both come from here, so they cannot
/// disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Nothing to do, no blocker.
    InSync,
    /// Changes to make, no blocker.
    Changes,
    /// At least one blocker: some declared change cannot be made (whatever
    /// else the plan would do), so the pull request should not merge as is.
    Blocked,
}

impl Status {
    /// Blockers win over changes: a plan that can only partly be carried
    /// out must not read as ready.
    pub fn of(s: &plan::Summary) -> Status {
        if s.blockers > 0 {
            Status::Blocked
        } else if s.changes() > 0 {
            Status::Changes
        } else {
            Status::InSync
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::InSync => "in_sync",
            Status::Changes => "changes",
            Status::Blocked => "blocked",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPlan<'a> {
    format_version: u32,
    /// `in_sync`, `changes` or `blocked` ([`Status`]).
    status: &'static str,
    source: JsonSource<'a>,
    summary: JsonSummary,
    teams: Vec<JsonTeam<'a>>,
}

/// Where the observed state came from; the explanation's JSON has the same
/// block.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JsonSource<'a> {
    /// `live`, `sandbox` or `snapshot`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    captured_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonCost {
    #[serde(skip_serializing_if = "Option::is_none")]
    read_calls: Option<u64>,
    apply_calls: usize,
    min_minutes: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSummary {
    invite: usize,
    assign: usize,
    unassign: usize,
    blocked: usize,
    blockers: usize,
    warnings: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonTeam<'a> {
    id: &'a str,
    name: &'a str,
    status: &'static str,
    summary: JsonSummary,
    cost: JsonCost,
    findings: Vec<JsonFinding<'a>>,
    changes: Vec<JsonChange<'a>>,
    blocked: Vec<JsonBlocked<'a>>,
    seats: Vec<JsonSeats<'a>>,
}

/// A finding as both JSON documents (plan and explain) show it.
#[derive(Serialize)]
pub(super) struct JsonFinding<'a> {
    severity: &'static str,
    code: &'static str,
    message: &'a str,
}

impl<'a> JsonFinding<'a> {
    pub(super) fn of(f: &'a plan::Finding) -> Self {
        JsonFinding {
            severity: f.severity.as_str(),
            code: f.code.as_str(),
            message: &f.message,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonChange<'a> {
    action: &'static str,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<JsonProduct<'a>>,
}

#[derive(Serialize)]
struct JsonProduct<'a> {
    alias: &'a str,
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
struct JsonBlocked<'a> {
    #[serde(flatten)]
    change: JsonChange<'a>,
    reason: &'static str,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonSeats<'a> {
    product: JsonProduct<'a>,
    total: u64,
    before: u64,
    after: u64,
    freed: u64,
    short: u64,
}

pub(super) fn source(ctx: &Context) -> JsonSource<'_> {
    match &ctx.source {
        Source::Live { api_url } => JsonSource {
            kind: "live",
            location: Some(api_url),
            captured_at: None,
        },
        Source::Sandbox => JsonSource {
            kind: "sandbox",
            location: None,
            captured_at: None,
        },
        Source::Snapshot { file, captured_at } => JsonSource {
            kind: "snapshot",
            location: Some(file),
            captured_at: captured_at.map(|t| t.to_string()),
        },
    }
}

pub fn render(plan: &Plan, ctx: &Context, out: &mut dyn Write) -> io::Result<()> {
    let source = source(ctx);
    let totals = plan.summary();
    let doc = JsonPlan {
        format_version: FORMAT_VERSION,
        status: Status::of(&totals).as_str(),
        source,
        summary: summary(&totals),
        teams: plan.teams.iter().map(|t| team(t, ctx)).collect(),
    };
    serde_json::to_writer_pretty(&mut *out, &doc)?;
    writeln!(out)
}

fn summary(s: &plan::Summary) -> JsonSummary {
    JsonSummary {
        invite: s.invite,
        assign: s.assign,
        unassign: s.unassign,
        blocked: s.blocked,
        blockers: s.blockers,
        warnings: s.warnings,
    }
}

fn team<'a>(t: &'a plan::TeamPlan, ctx: &Context) -> JsonTeam<'a> {
    let (apply_calls, min_minutes) = ctx.apply_estimate(t.changes.len());
    let totals = t.summary();
    JsonTeam {
        id: &t.team_id.0,
        name: &t.team_name,
        status: Status::of(&totals).as_str(),
        summary: summary(&totals),
        cost: JsonCost {
            read_calls: ctx.read_calls.get(&t.team_id).copied(),
            apply_calls,
            min_minutes,
        },
        findings: t.findings.iter().map(JsonFinding::of).collect(),
        changes: t.changes.iter().map(change).collect(),
        blocked: t
            .blocked
            .iter()
            .map(|b| JsonBlocked {
                change: change(&b.change),
                reason: b.reason.code(),
                message: describe_reason(&b.reason),
            })
            .collect(),
        seats: t
            .seats
            .iter()
            .map(|s| JsonSeats {
                product: product(&s.product),
                total: s.total,
                before: s.before,
                after: s.after,
                freed: s.freed,
                short: s.short,
            })
            .collect(),
    }
}

fn product(p: &plan::ProductRef) -> JsonProduct<'_> {
    JsonProduct {
        alias: &p.alias.0,
        id: &p.id.0,
        name: &p.name,
    }
}

fn change(c: &Change) -> JsonChange<'_> {
    let base = JsonChange {
        action: c.verb(),
        email: c.email().as_str(),
        user_id: None,
        first_name: None,
        last_name: None,
        product: c.product().map(product),
    };
    match c {
        Change::Invite {
            first_name,
            last_name,
            ..
        } => JsonChange {
            first_name: first_name.as_deref(),
            last_name: last_name.as_deref(),
            ..base
        },
        Change::Assign { user_id, .. } => JsonChange {
            user_id: user_id.as_ref().map(crate::model::UserId::as_str),
            ..base
        },
        Change::Unassign { user_id, .. } => JsonChange {
            user_id: Some(&user_id.0),
            ..base
        },
    }
}
