//! Terraform-like text for terminals. Colour is the caller's decision (it is
//! on only for a TTY without NO_COLOR).

use std::io::{self, Write};

use owo_colors::Style;

use super::{Context, describe_reason, full_name, painter, summary_line};
use crate::plan::{Change, Plan, Severity, TeamPlan};

pub fn render(plan: &Plan, ctx: &Context, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let paint = painter(color);
    for team in &plan.teams {
        team_section(team, ctx, &paint, out)?;
    }
    let summary = plan.summary();
    writeln!(out, "{}", paint(&ctx.source_line(), Style::new().dimmed()))?;
    let line = format!("Plan: {}.", summary_line(&summary));
    writeln!(out, "{}", paint(&line, Style::new().bold()))?;
    if summary.blockers > 0 {
        let what = if summary.blocked > 0 {
            "the changes above marked x will not be made"
        } else {
            "see them above"
        };
        let line = format!("{} blocker(s): {what}.", summary.blockers);
        writeln!(out, "{}", paint(&line, Style::new().red()))?;
    }
    Ok(())
}

/// Text with a style, or plain without colour.
type Paint<'a> = &'a dyn Fn(&str, Style) -> String;

/// One team: header, findings, changes (blocked ones marked x), seats.
fn team_section(
    team: &TeamPlan,
    ctx: &Context,
    paint: Paint,
    out: &mut dyn Write,
) -> io::Result<()> {
    let (red, green, yellow, dim) = (
        Style::new().red(),
        Style::new().green(),
        Style::new().yellow(),
        Style::new().dimmed(),
    );
    let header = format!("Team {} \"{}\"", team.team_id, team.team_name);
    writeln!(out, "{}", paint(&header, Style::new().bold()))?;
    if let Some(age) = ctx.age_line(&team.team_id) {
        writeln!(out, "  {}", paint(&age, dim))?;
    }
    let cost = ctx.cost_line(&team.team_id, team.changes.len());
    writeln!(out, "  {}", paint(&cost, dim))?;
    for f in &team.findings {
        let (tag, style) = match f.severity {
            Severity::Blocker => ("blocker", red),
            Severity::Warning => ("warning", yellow),
            Severity::Note => ("note", dim),
        };
        writeln!(out, "  {} {}", paint(&format!("{tag}:"), style), f.message)?;
    }
    if !team.findings.is_empty() {
        writeln!(out)?;
    }
    if team.changes.is_empty() && team.blocked.is_empty() {
        if team.has_blockers() {
            writeln!(
                out,
                "  Nothing can be planned until the blockers above are resolved."
            )?;
        } else {
            writeln!(out, "  No changes. The team matches its declaration.")?;
        }
    }
    for c in &team.changes {
        let (sign, style) = match c {
            Change::Unassign { .. } => ("-", red),
            _ => ("+", green),
        };
        writeln!(out, "  {} {}", paint(sign, style), describe(c))?;
    }
    for b in &team.blocked {
        writeln!(
            out,
            "  {} {}: {}",
            paint("x", yellow),
            describe(&b.change),
            paint(&describe_reason(&b.reason), yellow)
        )?;
    }
    seats(team, paint, out)?;
    writeln!(out)
}

fn seats(team: &TeamPlan, paint: Paint, out: &mut dyn Write) -> io::Result<()> {
    if team.seats.is_empty() {
        return Ok(());
    }
    writeln!(out)?;
    writeln!(out, "  Seats:")?;
    for s in &team.seats {
        let short = if s.short > 0 {
            paint(&format!(" ({} short)", s.short), Style::new().red())
        } else {
            String::new()
        };
        // Unassigning frees a seat only if the person holds the product no
        // other way (see the planner's warning).
        let hedge = if s.freed > 0 {
            " (if unassignments free their seats)"
        } else {
            ""
        };
        writeln!(
            out,
            "    {}: {} -> {} of {} in use{hedge}{short}",
            s.product.name, s.before, s.after, s.total
        )?;
    }
    Ok(())
}

fn describe(c: &Change) -> String {
    match c {
        Change::Invite {
            email,
            first_name,
            last_name,
        } => match full_name(first_name, last_name) {
            Some(name) => format!("{:<8} {email} ({name})", c.verb()),
            None => format!("{:<8} {email}", c.verb()),
        },
        Change::Assign { email, product, .. } => {
            format!("{:<8} {} to {email}", c.verb(), product.alias)
        }
        Change::Unassign { email, product, .. } => {
            format!("{:<8} {} from {email}", c.verb(), product.alias)
        }
    }
}
