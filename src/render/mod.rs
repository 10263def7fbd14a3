//! Presenting a [`Plan`]: text for terminals, Markdown for pull-request
//! comments, JSON for machines. Renderers only read the plan; none of them
//! decides anything.

pub mod explain;
pub mod json;
pub mod markdown;
pub mod saved;
pub mod text;

use std::collections::BTreeMap;

use jiff::Timestamp;

use crate::model::TeamId;
use crate::plan::{BlockReason, Overrides, Summary};
use crate::snapshot::TeamAge;

/// What a plan was made from and what carrying it out costs: shown beside
/// the plan, never used to make it.
#[derive(Clone, Debug)]
pub struct Context {
    pub source: Source,
    /// API calls each team's read took (live reads only).
    pub read_calls: BTreeMap<TeamId, u64>,
    /// Calls per UTC minute an apply may spend on one team.
    pub calls_per_minute: u32,
    /// When the plan was made (for the snapshot's age).
    pub now: Timestamp,
    /// One-run guard overrides in force, if any.
    pub overrides: Overrides,
    /// When each team was read, from a snapshot that says (format 2): a
    /// service's snapshot reads its teams at different times.
    pub team_ages: BTreeMap<TeamId, TeamAge>,
}

/// Where the observed state came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Live {
        api_url: String,
    },
    Sandbox,
    Snapshot {
        file: String,
        captured_at: Option<Timestamp>,
    },
}

impl Context {
    /// Calls an apply of `changes` takes, and the least whole minutes it
    /// needs at the per-minute budget (the first window assumed fresh).
    pub fn apply_estimate(&self, changes: usize) -> (usize, u64) {
        let per = self.calls_per_minute.max(1) as usize;
        let windows = changes.div_ceil(per);
        (changes, windows.saturating_sub(1) as u64)
    }

    /// "Planned against …" for headers, with any one-run override.
    pub fn source_line(&self) -> String {
        let base = self.source_only();
        if self.overrides.is_empty() {
            base
        } else {
            format!(
                "{base} Guards overridden for this run: {} (instead of each team's policy).",
                self.overrides
            )
        }
    }

    fn source_only(&self) -> String {
        match &self.source {
            Source::Live { api_url } => format!("Planned against the live teams ({api_url})."),
            Source::Sandbox => "Planned against the local sandbox.".to_owned(),
            Source::Snapshot { file, captured_at } => match captured_at {
                Some(at) => {
                    let age = self.now.duration_since(*at);
                    format!(
                        "Planned against snapshot {file}, captured {at} ({} old).",
                        human_age(age)
                    )
                }
                None => format!("Planned against snapshot {file} (capture time unknown)."),
            },
        }
    }

    /// "Observed 12 min ago (…), plus 2 of the service's own writes (the
    /// latest 1 min ago)" for a team whose read time the snapshot gives.
    pub fn age_line(&self, team: &TeamId) -> Option<String> {
        let age = self.team_ages.get(team)?;
        let ago = |at: Timestamp| human_age(self.now.duration_since(at));
        let mut line = format!(
            "observed {} ago ({})",
            ago(age.observed_at),
            age.observed_at
        );
        if let Some(w) = age.own_writes {
            line.push_str(&format!(
                ", plus {} fact(s) from the service's own acknowledged writes (the latest {} ago)",
                w.count,
                ago(w.last_at)
            ));
        }
        Some(line)
    }

    /// "read 4 calls; apply 10 calls, under a minute at 55 calls/min".
    pub fn cost_line(&self, team: &TeamId, changes: usize) -> String {
        let (calls, minutes) = self.apply_estimate(changes);
        let read = match self.read_calls.get(team) {
            Some(n) => format!("read took {n} API call(s); "),
            None => String::new(),
        };
        let time = if calls == 0 {
            "nothing to send".to_owned()
        } else if minutes == 0 {
            format!("under a minute at {} calls/min", self.calls_per_minute)
        } else {
            format!(
                "at least {minutes} min at {} calls/min",
                self.calls_per_minute
            )
        };
        format!("{read}apply takes {calls} call(s), {time}")
    }
}

pub(crate) fn human_age(d: jiff::SignedDuration) -> String {
    let secs = d.as_secs().max(0);
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

/// The output formats of `flexsync plan`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// Why a change is blocked, in words (the reason's own `Display`).
/// Styles text for a terminal, or leaves it plain when colour is off.
pub(crate) fn painter(color: bool) -> impl Fn(&str, owo_colors::Style) -> String {
    use owo_colors::OwoColorize;
    move |s, style| {
        if color {
            s.style(style).to_string()
        } else {
            s.to_owned()
        }
    }
}

pub fn describe_reason(reason: &BlockReason) -> String {
    reason.to_string()
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

/// The holdings of managed products that the plan changes, as unified-diff
/// lines (`--- before`, `+++ after`, then `-`/`+` lines sorted by person
/// and product). Derived from the executable changes alone: an
/// unassignment takes a direct holding away and an assignment adds one
/// (the planner never assigns what someone holds already, directly or not),
/// so a plan need not carry two copies of every holding of the team.
pub fn holdings_diff(changes: &[crate::plan::Change]) -> Vec<String> {
    use crate::plan::Change;
    let mut rows: Vec<(&str, &str, char)> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Unassign { email, product, .. } => {
                Some((email.as_str(), product.alias.0.as_str(), '-'))
            }
            Change::Assign { email, product, .. } => {
                Some((email.as_str(), product.alias.0.as_str(), '+'))
            }
            Change::Invite { .. } => None,
        })
        .collect();
    if rows.is_empty() {
        return Vec::new();
    }
    rows.sort_unstable();
    let mut out = Vec::with_capacity(rows.len() + 2);
    out.extend(["--- before".to_owned(), "+++ after".to_owned()]);
    out.extend(
        rows.into_iter()
            .map(|(email, alias, sign)| format!("{sign}{email}  {alias}  (direct)")),
    );
    out
}
