//! `flexsync show FILE.plan`: a saved plan for people (text, Markdown) and
//! machines (JSON), read without connecting. The JSON structs here are that
//! format; the saved plan's own format belongs to `planfile`.

use std::fmt::Write as _;
use std::io::{self, Write};

use jiff::Timestamp;
use owo_colors::Style;
use serde::Serialize;

use super::{human_age, markdown::escape, painter, summary_line};
use crate::model::Limit;
use crate::plan::Summary;
use crate::planfile::{SavedAction, SavedChange, SavedPlan, SavedTeam};

/// Bump when a consumer's parser would break.
pub const FORMAT_VERSION: u32 = 1;

/// Rows of changes shown per team in Markdown before eliding (a comment is
/// capped at 65,536 characters).
const MAX_ROWS: usize = 150;

/// What the fingerprints mean, said once under every rendering.
pub const FINGERPRINTS: &str = "Each change carries a fingerprint of the facts it was decided on \
(the person's account on the team, what they hold of the product, the pool's seats and dates). \
`flexsync apply` reads the teams again and applies nothing if any fingerprint no longer matches \
(stale: plan again), or if a user id is not that email's account (tampered).";

/// What is known of the seal without connecting.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seal {
    /// The digest was recomputed and matches: with the plan key when
    /// `keyed`, else a plain SHA-256.
    Intact { keyed: bool },
    /// Keyed, and no key was given to check it.
    Unverified,
    /// Apply would refuse the file as tampered, for these reasons.
    Broken(Vec<String>),
}

impl Seal {
    fn status(&self) -> &'static str {
        match self {
            Seal::Intact { .. } => "intact",
            Seal::Unverified => "unverified",
            Seal::Broken(_) => "broken",
        }
    }

    fn describe(&self) -> String {
        match self {
            Seal::Intact { keyed: true } => {
                "intact: verified with the plan key (HMAC-SHA256), so a holder of the key made it"
                    .to_owned()
            }
            Seal::Intact { keyed: false } => "intact: a plain SHA-256, which detects edits but \
                 which anyone can recompute (pin it with `apply --expect-digest`, or seal plans \
                 with --plan-key)"
                .to_owned(),
            Seal::Unverified => "not verified: sealed with a plan key (HMAC-SHA256); give \
                 --plan-key (or FLEXSYNC_PLAN_KEY_FILE) to check it"
                .to_owned(),
            Seal::Broken(what) => format!(
                "BROKEN: apply refuses this file as tampered: {}",
                what.join("; ")
            ),
        }
    }
}

/// A saved plan as `show` presents it.
pub struct Shown<'a> {
    /// The file as named on the command line.
    pub file: &'a str,
    pub saved: &'a SavedPlan,
    pub seal: Seal,
    /// For the plan's age.
    pub now: Timestamp,
}

impl Shown<'_> {
    fn age(&self) -> String {
        human_age(self.now.duration_since(self.saved.created_at))
    }

    fn target(&self) -> String {
        match self.saved.target.as_str() {
            "sandbox" => "the local sandbox (apply it with --sandbox)".to_owned(),
            t if t.starts_with("snapshot ") => format!("{t} (it cannot be applied)"),
            t => t.to_owned(),
        }
    }

    fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for t in &self.saved.teams {
            s.add(&team_summary(t));
        }
        s
    }
}

fn team_summary(t: &SavedTeam) -> Summary {
    let mut s = Summary::default();
    for c in &t.changes {
        match c.action {
            SavedAction::Invite => s.invite += 1,
            SavedAction::Assign => s.assign += 1,
            SavedAction::Unassign => s.unassign += 1,
        }
    }
    s
}

/// "prune on; protected: dave@example.com; maxUnassign 50% (2 of 4 direct
/// assignments when planned); maxInvite 20 (of 6 members when planned)".
fn policy_line(t: &SavedTeam) -> String {
    let p = &t.policy;
    let limit = |text: &str, base: usize, what: &str| match Limit::parse(text) {
        Ok(l @ Limit::Percent(_)) => {
            format!("{text} ({} of {base} {what} when planned)", l.limit(base))
        }
        _ => format!("{text} (of {base} {what} when planned)"),
    };
    let protect = if p.protect.is_empty() {
        "nobody protected".to_owned()
    } else {
        format!("protected: {}", p.protect.join(", "))
    };
    format!(
        "prune {}; {protect}; maxUnassign {}; maxInvite {}",
        if p.prune { "on" } else { "off" },
        limit(&p.max_unassign, p.direct_holdings, "direct assignments"),
        limit(&p.max_invite, p.members, "members"),
    )
}

/// When the plan was made, to the second.
fn made_at(saved: &SavedPlan) -> String {
    saved.created_at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// "assign   autocad to frank@contractor.example.net".
fn describe(c: &SavedChange) -> String {
    let product = c.product.as_deref().unwrap_or("?");
    match c.action {
        SavedAction::Invite => {
            let name = crate::render::full_name(&c.first_name, &c.last_name);
            match name {
                Some(name) => format!("{:<8} {} ({name})", c.action, c.email),
                None => format!("{:<8} {}", c.action, c.email),
            }
        }
        SavedAction::Unassign => format!("{:<8} {product} from {}", c.action, c.email),
        SavedAction::Assign => format!("{:<8} {product} to {}", c.action, c.email),
    }
}

pub fn text(shown: &Shown<'_>, color: bool, out: &mut dyn Write) -> io::Result<()> {
    let paint = painter(color);
    let bold = Style::new().bold();
    let dim = Style::new().dimmed();
    let saved = shown.saved;
    writeln!(
        out,
        "{}",
        paint(&format!("Saved plan {}", shown.file), bold)
    )?;
    writeln!(
        out,
        "  made:        {} by flexsync {} ({} ago)",
        made_at(saved),
        saved.tool_version,
        shown.age()
    )?;
    writeln!(out, "  against:     {}", shown.target())?;
    writeln!(out, "  declaration: {}", saved.desired_digest)?;
    let seal = match &shown.seal {
        Seal::Broken(_) => paint(&shown.seal.describe(), Style::new().red()),
        s => s.describe(),
    };
    writeln!(out, "  digest:      {}", saved.digest)?;
    writeln!(out, "  seal:        {seal}")?;
    if let Ok(o) = saved.overrides()
        && !o.is_empty()
    {
        writeln!(
            out,
            "  overrides:   {o} (instead of each team's policy, for this plan only)"
        )?;
    }
    writeln!(out)?;
    for t in &saved.teams {
        writeln!(
            out,
            "{}",
            paint(&format!("Team {} \"{}\"", t.id, t.name), bold)
        )?;
        writeln!(out, "  policy:   {}", policy_line(t))?;
        let products: Vec<String> = t
            .products
            .iter()
            .map(|(alias, p)| format!("{alias} = {} ({})", p.name, p.id))
            .collect();
        writeln!(out, "  products: {}", products.join("; "))?;
        writeln!(out)?;
        for c in &t.changes {
            let sign = if c.action == SavedAction::Unassign {
                "-"
            } else {
                "+"
            };
            writeln!(out, "  {sign} {}", describe(c))?;
        }
        writeln!(out)?;
    }
    if saved.teams.is_empty() {
        writeln!(out, "No team has a change: there is nothing to apply.\n")?;
    }
    writeln!(
        out,
        "{}",
        paint(&format!("Plan: {}.", summary_line(&shown.summary())), bold)
    )?;
    writeln!(out, "{}", paint(FINGERPRINTS, dim))?;
    Ok(())
}

pub fn markdown(shown: &Shown<'_>, out: &mut dyn Write) -> io::Result<()> {
    let saved = shown.saved;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### flexsync saved plan `{}`: {}\n",
        shown.file.replace('`', "'"),
        summary_line(&shown.summary())
    );
    s.push_str("| | |\n|---|---|\n");
    let _ = writeln!(s, "| Against | {} |", escape(&shown.target()));
    let _ = writeln!(
        s,
        "| Made | {} by flexsync {} ({} ago) |",
        made_at(saved),
        escape(&saved.tool_version),
        shown.age()
    );
    let _ = writeln!(s, "| Declaration | `{}` |", saved.desired_digest);
    let _ = writeln!(s, "| Digest | `{}` |", saved.digest);
    let mark = match shown.seal {
        Seal::Intact { .. } => "✅",
        Seal::Unverified => "❔",
        Seal::Broken(_) => "⛔",
    };
    let _ = writeln!(s, "| Seal | {mark} {} |", escape(&shown.seal.describe()));
    if let Ok(o) = saved.overrides()
        && !o.is_empty()
    {
        let _ = writeln!(s, "| Overrides | {} |", escape(&o.to_string()));
    }
    s.push('\n');
    for t in &saved.teams {
        let _ = writeln!(
            s,
            "#### Team {} · {} — {}\n",
            escape(&t.id),
            escape(&t.name),
            summary_line(&team_summary(t))
        );
        let _ = writeln!(s, "Policy: {}.\n", escape(&policy_line(t)));
        s.push_str("| | Action | Person | Product |\n|---|---|---|---|\n");
        for c in t.changes.iter().take(MAX_ROWS) {
            let sign = if c.action == SavedAction::Unassign {
                "➖"
            } else {
                "➕"
            };
            let product = c
                .product
                .as_ref()
                .map(|alias| match t.products.get(alias) {
                    Some(p) => format!("`{}` ({})", escape(alias), escape(&p.name)),
                    None => format!("`{}`", escape(alias)),
                })
                .unwrap_or_default();
            let person = match crate::render::full_name(&c.first_name, &c.last_name) {
                Some(name) => format!("{} ({})", escape(&c.email), escape(&name)),
                None => escape(&c.email),
            };
            let _ = writeln!(
                s,
                "| {sign} | {} | {person} | {product} |",
                c.action.as_str()
            );
        }
        if t.changes.len() > MAX_ROWS {
            let _ = writeln!(
                s,
                "\n… {} more change(s) not shown; run `flexsync show --format json` for all of them.",
                t.changes.len() - MAX_ROWS
            );
        }
        s.push('\n');
    }
    let _ = writeln!(s, "_{}_", escape(FINGERPRINTS));
    out.write_all(s.as_bytes())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonShown<'a> {
    format_version: u32,
    file: &'a str,
    saved_plan_format: u32,
    tool_version: &'a str,
    created_at: Timestamp,
    age_seconds: i64,
    target: &'a str,
    desired_digest: &'a str,
    digest: &'a str,
    seal: JsonSeal,
    #[serde(skip_serializing_if = "Option::is_none")]
    overrides: Option<String>,
    summary: JsonSummary,
    teams: Vec<JsonTeam<'a>>,
    fingerprints: &'static str,
}

#[derive(Serialize)]
struct JsonSeal {
    /// `sha256` or `hmac-sha256`.
    kind: &'static str,
    /// `intact`, `unverified` or `broken`.
    status: &'static str,
    problems: Vec<String>,
}

#[derive(Serialize)]
struct JsonSummary {
    invite: usize,
    assign: usize,
    unassign: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonTeam<'a> {
    id: &'a str,
    name: &'a str,
    policy: JsonPolicy<'a>,
    products: Vec<JsonProduct<'a>>,
    changes: Vec<JsonChange<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPolicy<'a> {
    prune: bool,
    protect: &'a [String],
    max_unassign: &'a str,
    max_invite: &'a str,
    direct_holdings: usize,
    members: usize,
}

#[derive(Serialize)]
struct JsonProduct<'a> {
    alias: &'a str,
    id: &'a str,
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonChange<'a> {
    action: &'a str,
    email: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    product: Option<&'a str>,
    depends_on: &'a str,
}

pub fn json(shown: &Shown<'_>, out: &mut dyn Write) -> io::Result<()> {
    let saved = shown.saved;
    let summary = shown.summary();
    let doc = JsonShown {
        format_version: FORMAT_VERSION,
        file: shown.file,
        saved_plan_format: saved.flexsync_saved_plan,
        tool_version: &saved.tool_version,
        created_at: saved.created_at,
        age_seconds: shown.now.duration_since(saved.created_at).as_secs(),
        target: &saved.target,
        desired_digest: &saved.desired_digest,
        digest: &saved.digest,
        seal: JsonSeal {
            kind: if saved.is_keyed() {
                "hmac-sha256"
            } else {
                "sha256"
            },
            status: shown.seal.status(),
            problems: match &shown.seal {
                Seal::Broken(what) => what.clone(),
                _ => Vec::new(),
            },
        },
        overrides: saved
            .overrides()
            .ok()
            .filter(|o| !o.is_empty())
            .map(|o| o.to_string()),
        summary: JsonSummary {
            invite: summary.invite,
            assign: summary.assign,
            unassign: summary.unassign,
        },
        teams: saved
            .teams
            .iter()
            .map(|t| JsonTeam {
                id: &t.id,
                name: &t.name,
                policy: JsonPolicy {
                    prune: t.policy.prune,
                    protect: &t.policy.protect,
                    max_unassign: &t.policy.max_unassign,
                    max_invite: &t.policy.max_invite,
                    direct_holdings: t.policy.direct_holdings,
                    members: t.policy.members,
                },
                products: t
                    .products
                    .iter()
                    .map(|(alias, p)| JsonProduct {
                        alias,
                        id: &p.id,
                        name: &p.name,
                    })
                    .collect(),
                changes: t
                    .changes
                    .iter()
                    .map(|c| JsonChange {
                        action: c.action.as_str(),
                        email: &c.email,
                        user_id: c.user_id.as_deref(),
                        first_name: c.first_name.as_deref(),
                        last_name: c.last_name.as_deref(),
                        product: c.product.as_deref(),
                        depends_on: &c.depends_on,
                    })
                    .collect(),
            })
            .collect(),
        fingerprints: FINGERPRINTS,
    };
    serde_json::to_writer_pretty(&mut *out, &doc).map_err(io::Error::from)?;
    writeln!(out)
}
