//! Markdown for a pull-request comment: one summary line, blockers and
//! warnings first, the actions, a seat table, and the before/after holdings
//! as a collapsed unified diff.
//!
//! GitHub caps a comment at 65,536 characters, so long lists are cut and the
//! comment says what was left out.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{Context, describe_reason, full_name, holdings_diff, summary_line};
use crate::plan::{BlockReason, Change, Plan, Severity, TeamPlan};

/// Rows of actions shown per team before eliding.
const MAX_ROWS: usize = 150;
/// Lines of the holdings diff shown per team before eliding.
const MAX_DIFF_LINES: usize = 300;

pub fn render(plan: &Plan, ctx: &Context, out: &mut dyn Write) -> io::Result<()> {
    let mut s = String::new();
    let summary = plan.summary();
    let status = if summary.blockers > 0 {
        format!(" · ⛔ {} blocker(s)", summary.blockers)
    } else if summary.changes() == 0 {
        " · ✅ in sync".to_owned()
    } else {
        String::new()
    };
    let _ = writeln!(s, "### flexsync plan: {}{status}\n", summary_line(&summary));
    let _ = writeln!(s, "{}\n", escape(&ctx.source_line()));
    for team in &plan.teams {
        team_section(team, ctx, &mut s);
    }
    out.write_all(s.as_bytes())
}

fn team_section(team: &TeamPlan, ctx: &Context, s: &mut String) {
    let _ = writeln!(
        s,
        "#### Team {} · {} — {}\n",
        team.team_id,
        escape(&team.team_name),
        summary_line(&team.summary())
    );
    let cost = ctx.cost_line(&team.team_id, team.changes.len());
    let line = match ctx.age_line(&team.team_id) {
        Some(age) => format!("{age}; {cost}"),
        None => cost,
    };
    let _ = writeln!(s, "_{}._\n", escape(&line));
    for f in &team.findings {
        let tag = match f.severity {
            Severity::Blocker => "⛔ **Blocker**",
            Severity::Warning => "⚠️ **Warning**",
            Severity::Note => "ℹ️ Note",
        };
        let _ = writeln!(s, "- {tag}: {}", escape(&f.message));
    }
    if !team.findings.is_empty() {
        s.push('\n');
    }
    if team.changes.is_empty() && team.blocked.is_empty() {
        s.push_str(if team.has_blockers() {
            "Nothing can be planned until the blockers above are resolved.\n\n"
        } else {
            "No changes: the team matches its declaration.\n\n"
        });
    } else {
        changes_table(team, s);
    }
    seats_table(team, s);
    holdings_section(team, s);
}

/// One row per change, executable first, then blocked ones with why.
fn changes_table(team: &TeamPlan, s: &mut String) {
    s.push_str("| | Action | Person | Product | Note |\n|---|---|---|---|---|\n");
    let rows = team
        .changes
        .iter()
        .map(|c| (c, None))
        .chain(team.blocked.iter().map(|b| (&b.change, Some(&b.reason))));
    for (c, reason) in rows.take(MAX_ROWS) {
        change_row(c, reason, s);
    }
    let total = team.changes.len() + team.blocked.len();
    if total > MAX_ROWS {
        let _ = writeln!(
            s,
            "\n… {} more row(s) not shown; run `flexsync plan --format json` for all of them.",
            total - MAX_ROWS
        );
    }
    s.push('\n');
}

fn change_row(c: &Change, reason: Option<&BlockReason>, s: &mut String) {
    let sign = match (c, reason) {
        (_, Some(_)) => "⛔",
        (Change::Unassign { .. }, None) => "➖",
        _ => "➕",
    };
    let product = c
        .product()
        .map(|p| format!("`{}` ({})", p.alias, escape(&p.name)))
        .unwrap_or_default();
    let note = match (c, reason) {
        (_, Some(r)) => format!("blocked: {}", escape(&describe_reason(r))),
        (
            Change::Invite {
                first_name,
                last_name,
                ..
            },
            None,
        ) => full_name(first_name, last_name)
            .map(|n| escape(&n))
            .unwrap_or_default(),
        _ => String::new(),
    };
    // Blocked rows say so in words, not only with an emoji.
    let action = match reason {
        Some(_) => format!("{} — **blocked**", c.verb()),
        None => c.verb().to_owned(),
    };
    let _ = writeln!(
        s,
        "| {sign} | {action} | {} | {product} | {note} |",
        escape(c.email().as_str())
    );
}

/// Seats of each pool the plan touches, before and after.
fn seats_table(team: &TeamPlan, s: &mut String) {
    if team.seats.is_empty() {
        return;
    }
    let hedged = team.seats.iter().any(|seat| seat.freed > 0);
    let after = if hedged { "After¹" } else { "After" };
    let _ = writeln!(
        s,
        "| Pool | Seats | In use now | {after} | Short |\n|---|---|---|---|---|"
    );
    for seat in &team.seats {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            escape(&seat.product.name),
            seat.total,
            seat.before,
            seat.after,
            if seat.short > 0 {
                format!("⛔ {}", seat.short)
            } else {
                "0".to_owned()
            }
        );
    }
    s.push('\n');
    if hedged {
        s.push_str(
            "¹ Counting seats freed by unassignments, which holds only for people who do not also hold the product through a group.\n\n",
        );
    }
}

/// The before → after holdings as a folded, highlighted diff.
fn holdings_section(team: &TeamPlan, s: &mut String) {
    let lines = holdings_diff(&team.changes);
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "<details><summary>Holdings of managed products, before → after</summary>\n\n\
         Autodesk reports one effective assignment per person and product: someone who \
         also holds a product through a group keeps it after a direct unassignment.\n\n```diff"
    );
    for line in lines.iter().take(MAX_DIFF_LINES) {
        // A fence inside the diff would end the code block early.
        let _ = writeln!(s, "{}", line.replace("```", "'''"));
    }
    s.push_str("```\n");
    if lines.len() > MAX_DIFF_LINES {
        let _ = writeln!(
            s,
            "\n… {} more diff line(s) not shown.",
            lines.len() - MAX_DIFF_LINES
        );
    }
    s.push_str("\n</details>\n\n");
}

/// Keeps names from breaking the table or injecting markup.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '|' | '*' | '_' | '`' | '<' | '>' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}
