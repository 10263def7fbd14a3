//! `flexsync explain`: one person, for people (text) and machines (JSON).
//! The JSON structs here are that format; bump [`FORMAT_VERSION`] when a
//! consumer's parser would break.

use std::io::{self, Write};

use owo_colors::Style;
use serde::Serialize;

use super::json::JsonFinding;
use super::{Context, describe_reason, full_name, painter};
use crate::explain::{Asker, Explanation, ProductExplanation, Step, TeamExplanation};
use crate::plan::Change;

pub const FORMAT_VERSION: u32 = 1;

fn asker(a: &Asker) -> String {
    match a {
        Asker::Entry(at) => format!("their users entry ({at})"),
        Asker::Group(name, at) => format!("group {name} ({at})"),
    }
}

/// "+ assign ps to ada@example.com"; a blocked one says why only when
/// `why` (a product's verdict already does).
fn step_line(step: &Step, why: bool) -> String {
    let what = match step.change() {
        Change::Invite {
            email,
            first_name,
            last_name,
        } => match full_name(first_name, last_name) {
            Some(name) => format!("invite {email} ({name})"),
            None => format!("invite {email}"),
        },
        Change::Assign { email, product, .. } => format!("assign {} to {email}", product.alias),
        Change::Unassign { email, product, .. } => {
            format!("unassign {} from {email}", product.alias)
        }
    };
    match step {
        Step::Planned(Change::Unassign { .. }) => format!("- {what}"),
        Step::Planned(_) => format!("+ {what}"),
        Step::Blocked(_, reason) if why => {
            format!("x {what}: blocked, {}", describe_reason(reason))
        }
        Step::Blocked(..) => format!("x {what} (blocked)"),
    }
}

pub fn text(e: &Explanation, ctx: &Context, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let paint = painter(color);
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let yellow = Style::new().yellow();
    for t in &e.teams {
        let header = format!("{} in team {} \"{}\"", e.email, t.team_id, t.team_name);
        writeln!(out, "{}", paint(&header, bold))?;
        if let Some(n) = ctx.read_calls.get(&t.team_id) {
            writeln!(
                out,
                "  {}",
                paint(&format!("read took {n} API call(s)"), dim)
            )?;
        }
        team_text(t, &paint, yellow, out)?;
        writeln!(out)?;
    }
    writeln!(out, "{}", paint(&ctx.source_line(), dim))?;
    Ok(())
}

fn team_text(
    t: &TeamExplanation,
    paint: &dyn Fn(&str, Style) -> String,
    yellow: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    let member = match (&t.member, t.observed) {
        (_, false) => "unknown: the team could not be read".to_owned(),
        (Some(m), _) => {
            let mut what = vec![m.id.to_string()];
            what.extend(full_name(&m.first_name, &m.last_name));
            what.extend(m.role.clone());
            format!("yes ({})", what.join(", "))
        }
        (None, _) => "no".to_owned(),
    };
    writeln!(out, "  member:    {member}")?;
    match &t.declared {
        Some(d) => {
            let how = if d.has_entry {
                "users entry"
            } else {
                "group member"
            };
            let mut line = format!("yes, at {} ({how})", d.at);
            if !d.groups.is_empty() {
                let groups: Vec<&str> = d.groups.iter().map(|(n, _)| n.as_str()).collect();
                line.push_str(&format!("; groups: {}", groups.join(", ")));
            }
            if !d.replaces.is_empty() {
                let old: Vec<&str> = d.replaces.iter().map(|e| e.as_str()).collect();
                line.push_str(&format!("; replaces {}", old.join(", ")));
            }
            writeln!(out, "  declared:  {line}")?;
        }
        None => writeln!(out, "  declared:  no")?,
    }
    let protect = if t.protected {
        "protected (never unassigned)"
    } else {
        "not protected"
    };
    writeln!(
        out,
        "  policy:    prune {}; {protect}",
        if t.prune { "on" } else { "off" }
    )?;
    if t.observed && t.member.is_none() && t.declared.is_none() {
        writeln!(
            out,
            "  neither a member nor declared: flexsync does nothing for them here"
        )?;
    }
    if let Some(invite) = &t.invite {
        writeln!(out, "  plan:      {}", step_line(invite, true))?;
    }
    for p in &t.products {
        writeln!(out)?;
        product_text(p, paint, yellow, out)?;
    }
    if !t.other_holdings.is_empty() {
        let list: Vec<String> = t
            .other_holdings
            .iter()
            .map(|(name, how)| format!("{name} ({how})"))
            .collect();
        writeln!(out)?;
        writeln!(out, "  also holds (not managed): {}", list.join(", "))?;
    }
    if !t.findings.is_empty() {
        writeln!(out)?;
        for f in &t.findings {
            writeln!(out, "  {}: {}", f.severity.as_str(), f.message)?;
        }
    }
    Ok(())
}

fn product_text(
    p: &ProductExplanation,
    paint: &dyn Fn(&str, Style) -> String,
    yellow: Style,
    out: &mut dyn Write,
) -> io::Result<()> {
    match &p.pool {
        Some((id, name)) => writeln!(out, "  {} — {name} ({id})", p.alias)?,
        None => writeln!(out, "  {} — no single pool", p.alias)?,
    }
    let holds = match p.holds {
        Some(t) if t.is_direct() => "yes, directly".to_owned(),
        Some(t) => format!("yes, {t}"),
        None => "no".to_owned(),
    };
    writeln!(out, "    holds:     {holds}")?;
    let asked = if p.asked_by.is_empty() {
        "nobody declares it for them".to_owned()
    } else {
        p.asked_by.iter().map(asker).collect::<Vec<_>>().join("; ")
    };
    writeln!(out, "    asked by:  {asked}")?;
    if let Some(step) = &p.step {
        let line = step_line(step, false);
        let line = match step {
            Step::Blocked(..) => paint(&line, yellow),
            _ => line,
        };
        writeln!(out, "    plan:      {line}")?;
    }
    writeln!(out, "    so:        {}", p.verdict)?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonExplanation<'a> {
    format_version: u32,
    email: &'a str,
    source: super::json::JsonSource<'a>,
    teams: Vec<JsonTeam<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonTeam<'a> {
    id: &'a str,
    name: &'a str,
    observed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    read_calls: Option<u64>,
    member: Option<JsonMember<'a>>,
    declared: Option<JsonDeclared<'a>>,
    prune: bool,
    protected: bool,
    invite: Option<JsonStep>,
    products: Vec<JsonProduct<'a>>,
    other_holdings: Vec<JsonHolding<'a>>,
    findings: Vec<JsonFinding<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonMember<'a> {
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonDeclared<'a> {
    /// `file:line:column` of their users entry, else of their first group
    /// membership.
    at: &'a str,
    has_entry: bool,
    groups: Vec<JsonGroup<'a>>,
    replaces: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    name: &'a str,
    at: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonStep {
    action: &'static str,
    /// `planned` or `blocked`.
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonProduct<'a> {
    alias: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    /// `direct`, `group`, `team` or `inherited`; null when not held.
    holds: Option<&'static str>,
    declared_by: Vec<JsonAsker<'a>>,
    plan: Option<JsonStep>,
    verdict: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonAsker<'a> {
    /// `entry` (their users entry) or `group`.
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    at: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonHolding<'a> {
    product_name: &'a str,
    holds: &'static str,
}

fn json_step(s: &Step) -> JsonStep {
    match s {
        Step::Planned(c) => JsonStep {
            action: c.verb(),
            status: "planned",
            reason: None,
            message: None,
        },
        Step::Blocked(c, r) => JsonStep {
            action: c.verb(),
            status: "blocked",
            reason: Some(r.code()),
            message: Some(describe_reason(r)),
        },
    }
}

fn holding_code(t: crate::model::AssignmentType) -> &'static str {
    use crate::model::AssignmentType as A;
    match t {
        A::Direct => "direct",
        A::Group => "group",
        A::Team => "team",
        A::Inherited => "inherited",
    }
}

pub fn json(e: &Explanation, ctx: &Context, out: &mut dyn Write) -> io::Result<()> {
    let source = super::json::source(ctx);
    let teams = e
        .teams
        .iter()
        .map(|t| JsonTeam {
            id: &t.team_id.0,
            name: &t.team_name,
            observed: t.observed,
            read_calls: ctx.read_calls.get(&t.team_id).copied(),
            member: t.member.as_ref().map(|m| JsonMember {
                user_id: &m.id.0,
                first_name: m.first_name.as_deref(),
                last_name: m.last_name.as_deref(),
                role: m.role.as_deref(),
            }),
            declared: t.declared.as_ref().map(|d| JsonDeclared {
                at: &d.at,
                has_entry: d.has_entry,
                groups: d
                    .groups
                    .iter()
                    .map(|(name, at)| JsonGroup { name, at })
                    .collect(),
                replaces: d.replaces.iter().map(|e| e.as_str()).collect(),
            }),
            prune: t.prune,
            protected: t.protected,
            invite: t.invite.as_ref().map(json_step),
            products: t
                .products
                .iter()
                .map(|p| JsonProduct {
                    alias: &p.alias,
                    id: p.pool.as_ref().map(|(id, _)| id.0.as_str()),
                    name: p.pool.as_ref().map(|(_, n)| n.as_str()),
                    holds: p.holds.map(holding_code),
                    declared_by: p
                        .asked_by
                        .iter()
                        .map(|a| match a {
                            Asker::Entry(at) => JsonAsker {
                                kind: "entry",
                                group: None,
                                at,
                            },
                            Asker::Group(name, at) => JsonAsker {
                                kind: "group",
                                group: Some(name),
                                at,
                            },
                        })
                        .collect(),
                    plan: p.step.as_ref().map(json_step),
                    verdict: &p.verdict,
                })
                .collect(),
            other_holdings: t
                .other_holdings
                .iter()
                .map(|(name, how)| JsonHolding {
                    product_name: name,
                    holds: holding_code(*how),
                })
                .collect(),
            findings: t.findings.iter().map(JsonFinding::of).collect(),
        })
        .collect();
    let doc = JsonExplanation {
        format_version: FORMAT_VERSION,
        email: e.email.as_str(),
        source,
        teams,
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::from)?;
    writeln!(out)
}
