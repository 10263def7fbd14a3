//! Terraform-like text for terminals. Colour is the caller's decision (it is
//! on only for a TTY without NO_COLOR).

use std::io::{self, Write};

use owo_colors::Style;

use super::{Context, describe_reason, full_name, painter, summary_line};
use crate::plan::{Change, Plan, Severity};

pub fn render(plan: &Plan, ctx: &Context, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let paint = painter(color);
    let bold = Style::new().bold();
    let red = Style::new().red();
    let green = Style::new().green();
    let yellow = Style::new().yellow();
    let dim = Style::new().dimmed();

    for team in &plan.teams {
        let header = format!("Team {} \"{}\"", team.team_id, team.team_name);
        writeln!(out, "{}", paint(&header, bold))?;
        if let Some(age) = ctx.age_line(&team.team_id) {
            writeln!(out, "  {}", paint(&age, dim))?;
        }
        writeln!(
            out,
            "  {}",
            paint(&ctx.cost_line(&team.team_id, team.changes.len()), dim)
        )?;
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
        if !team.seats.is_empty() {
            writeln!(out)?;
            writeln!(out, "  Seats:")?;
            for s in &team.seats {
                let short = if s.short > 0 {
                    paint(&format!(" ({} short)", s.short), red)
                } else {
                    String::new()
                };
                // Unassigning frees a seat only if the person holds the
                // product no other way (see the planner's warning).
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
        }
        writeln!(out)?;
    }
    let summary = plan.summary();
    writeln!(out, "{}", paint(&ctx.source_line(), dim))?;
    let line = format!("Plan: {}.", summary_line(&summary));
    writeln!(out, "{}", paint(&line, bold))?;
    if summary.blockers > 0 {
        let what = if summary.blocked > 0 {
            "the changes above marked x will not be made"
        } else {
            "see them above"
        };
        writeln!(
            out,
            "{}",
            paint(&format!("{} blocker(s): {what}.", summary.blockers), red)
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
