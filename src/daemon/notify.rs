//! Notifications: the service tells people, through webhooks, when a team
//! becomes degraded and when it recovers, when a guard blocks changes, when
//! a pool runs out of seats, when the login is lost and when it works again,
//! and when the declaration on disk is invalid.
//!
//! Two parts:
//! - [`Decider`] is pure (time is an argument). It is told the state of each
//!   condition, level-triggered: every pass reports the whole state, so an
//!   observation lost on a full channel is corrected by the next one. It
//!   answers with the events to send: one when a condition starts, one when
//!   it clears, nothing while it holds; and at most `max_per_hour` events per
//!   team (and for the service) in any hour, with one summary of what was
//!   held back once there is room again.
//! - [`start`] runs it in a task of its own behind a channel the controller
//!   never waits on, formats each event for each webhook (flexsync's JSON,
//!   Slack, Microsoft Teams) and posts it with bounded retries, one queue and
//!   task per webhook, so a slow webhook delays only itself.
//!
//! A webhook URL is its own credential (whoever has a Slack or Teams webhook
//! URL can post to the channel): it is read from a file, kept in a
//! [`Secret`], never logged, never shown by `Debug`, and cut out of any error
//! text before that is logged.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::api::auth::Secret;
use crate::metrics::Metrics;
use crate::model::TeamId;
use crate::plan::{self, BlockReason, FindingCode, TeamPlan};

/// Version of the generic JSON payload; bumped only when a consumer's parser
/// would break.
pub const FORMAT_VERSION: u32 = 1;

/// Largest webhook URL file read: a URL is a line of text.
pub const MAX_URL_FILE_BYTES: u64 = 64 * 1024;

/// Default of `--notify-max-per-hour`.
pub const DEFAULT_MAX_PER_HOUR: u32 = 6;

/// Block reasons that mean a guard stopped changes someone must look at
/// (the removal delay is routine and passes by itself).
pub const GUARD_REASONS: [&str; 4] = [
    "removal_guard",
    "probable_typo",
    "empty_declaration",
    "invite_guard",
];

/// How long the rate limit's window is.
const WINDOW: SignedDuration = SignedDuration::from_secs(3600);

/// Observations waiting for the decider; beyond this they are dropped (the
/// next pass reports the same state again).
const OBSERVATION_QUEUE: usize = 1024;
/// Events waiting for one webhook.
const DELIVERY_QUEUE: usize = 64;
/// Attempts per delivery (the first included).
const ATTEMPTS: u32 = 3;
/// The longest Retry-After honoured; a webhook asking for more is retried
/// after this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Text cut-offs: chat messages have limits (Slack: 3,000 characters per
/// section), and a log-sized error helps nobody in a channel.
const MAX_TEXT: usize = 1_500;
const MAX_LINES: usize = 8;

/// Why a webhook cannot be used. Never quotes the URL.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("cannot read the webhook URL file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: crate::input_file::ReadError,
    },
    #[error("the webhook URL file {path} is empty")]
    Empty { path: String },
    #[error("the webhook URL file {path} does not hold a URL")]
    NotUrl { path: String },
    #[error(
        "the webhook URL in {path} is not https (plain http is accepted for loopback addresses only)"
    )]
    NotHttps { path: String },
}

/// The payload a webhook accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// flexsync's own JSON (see README, "Notifications"), versioned.
    Json,
    /// A Slack incoming webhook: `{"text": …, "blocks": […]}`.
    Slack,
    /// A Microsoft Teams incoming webhook or Workflows "post to a channel
    /// when a webhook request is received": a message with an Adaptive Card.
    Teams,
}

impl Format {
    pub const NAMES: [&str; 3] = ["json", "slack", "teams"];

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Slack => "slack",
            Format::Teams => "teams",
        }
    }

    pub fn parse(s: &str) -> Option<Format> {
        match s {
            "json" => Some(Format::Json),
            "slack" => Some(Format::Slack),
            "teams" => Some(Format::Teams),
            _ => None,
        }
    }
}

/// One webhook: where its URL lives, and the URL as last read.
pub struct Webhook {
    pub format: Format,
    /// Read again before each delivery, so a rotated URL (a Kubernetes
    /// Secret updated in place) is used without a restart.
    pub file: PathBuf,
    url: Secret,
    /// A local receiver: reached directly, never through a proxy.
    loopback: bool,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("format", &self.format)
            .field("file", &self.file)
            .field("url", &self.url)
            .field("loopback", &self.loopback)
            .finish()
    }
}

impl Webhook {
    /// Reads and checks the URL in `file`.
    pub fn from_file(format: Format, file: &Path) -> Result<Webhook, NotifyError> {
        let (url, loopback) = read_url(file)?;
        Ok(Webhook {
            format,
            file: file.to_path_buf(),
            url,
            loopback,
        })
    }

    /// What logs call this webhook: its file, never its URL.
    fn label(&self) -> String {
        format!("{} ({})", self.file.display(), self.format.as_str())
    }
}

/// The URL in `file`, and whether it is on this machine.
fn read_url(file: &Path) -> Result<(Secret, bool), NotifyError> {
    let path = || file.display().to_string();
    let text = crate::input_file::read_text_capped(file, MAX_URL_FILE_BYTES).map_err(|source| {
        NotifyError::Read {
            path: path(),
            source,
        }
    })?;
    let text = text.trim();
    if text.is_empty() {
        return Err(NotifyError::Empty { path: path() });
    }
    let url = url::Url::parse(text).map_err(|_| NotifyError::NotUrl { path: path() })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    // The URL is the credential: over plain http anyone on the path could
    // read it.
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        "http" => return Err(NotifyError::NotHttps { path: path() }),
        _ => return Err(NotifyError::NotUrl { path: path() }),
    }
    Ok((Secret::new(text), loopback))
}

/// What `flexsync run` was told about notifications.
#[derive(Debug)]
pub struct NotifySettings {
    pub webhooks: Vec<Webhook>,
    /// Events per team (and for the service) in any hour.
    pub max_per_hour: u32,
}

// ---------------------------------------------------------------------------
// What is observed

/// The state of one or more conditions, as the controller and the passes
/// see it.
#[derive(Clone, Debug, PartialEq)]
pub enum Observation {
    /// A pass of `team` ended; `degraded` after repeated failures.
    Health {
        team: TeamId,
        degraded: bool,
        failures: u32,
        error: Option<String>,
    },
    /// A pass of `team` planned.
    Plan { team: TeamId, signals: PlanSignals },
    /// The login works (`None`) or is lost (why).
    Login { lost: Option<String> },
    /// The files on disk are valid (`None`) or not (the first problem).
    Declaration { problem: Option<String> },
    /// The teams declared now: whatever is known of any other is forgotten
    /// without a message (the team is no longer managed).
    Declared { teams: Vec<TeamId> },
}

/// What a plan says that people must hear about.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PlanSignals {
    pub team_name: String,
    /// Changes blocked by a guard, by reason (see [`GUARD_REASONS`]).
    pub guarded: BTreeMap<&'static str, usize>,
    /// The guards' findings, as the plan words them.
    pub guard_findings: Vec<String>,
    /// Pools without the seats the declaration needs.
    pub seats: Vec<Shortage>,
}

/// A pool short of seats.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Shortage {
    pub product: String,
    pub product_id: String,
    pub total: u64,
    /// Seats the declaration needs beyond the total.
    pub short: u64,
    /// Assignments blocked for want of a seat.
    pub waiting: usize,
}

impl PlanSignals {
    /// The guard and seat blockers of a team's plan.
    pub fn of(plan: &TeamPlan) -> PlanSignals {
        let mut guarded = BTreeMap::new();
        let mut seats: BTreeMap<String, Shortage> = BTreeMap::new();
        for b in &plan.blocked {
            let code = b.reason.code();
            if let Some(reason) = GUARD_REASONS.iter().find(|r| **r == code) {
                *guarded.entry(*reason).or_insert(0) += 1;
            }
            if let (BlockReason::NoSeat { total }, Some(product)) = (&b.reason, b.change.product())
            {
                let entry = seats
                    .entry(product.id.0.clone())
                    .or_insert_with(|| Shortage {
                        product: product.name.clone(),
                        product_id: product.id.0.clone(),
                        total: *total,
                        short: 0,
                        waiting: 0,
                    });
                entry.waiting += 1;
            }
        }
        for s in &plan.seats {
            if s.short == 0 {
                continue;
            }
            let entry = seats
                .entry(s.product.id.0.clone())
                .or_insert_with(|| Shortage {
                    product: s.product.name.clone(),
                    product_id: s.product.id.0.clone(),
                    total: s.total,
                    short: 0,
                    waiting: 0,
                });
            entry.short = s.short;
        }
        for s in seats.values_mut() {
            // Blocked assignments without a seat count: each needs one.
            s.short = s.short.max(s.waiting as u64);
        }
        let guard_codes = [
            FindingCode::RemovalGuard,
            FindingCode::ProbableTypo,
            FindingCode::EmptyDeclaration,
            FindingCode::InviteGuard,
        ];
        let guard_findings = plan
            .findings
            .iter()
            .filter(|f| f.severity == plan::Severity::Blocker && guard_codes.contains(&f.code))
            .map(|f| clip(&f.message, MAX_TEXT))
            .take(MAX_LINES)
            .collect();
        PlanSignals {
            team_name: plan.team_name.clone(),
            guarded,
            guard_findings,
            seats: seats.into_values().collect(),
        }
    }
}

// ---------------------------------------------------------------------------
// What is sent

/// The conditions people are told about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    TeamDegraded,
    GuardBlocked,
    SeatsShort,
    LoginLost,
    DeclarationInvalid,
}

impl Condition {
    pub fn code(self) -> &'static str {
        match self {
            Condition::TeamDegraded => "team_degraded",
            Condition::GuardBlocked => "guard_blocked",
            Condition::SeatsShort => "seats_short",
            Condition::LoginLost => "login_lost",
            Condition::DeclarationInvalid => "declaration_invalid",
        }
    }

    /// The event's name when the condition starts or clears.
    fn event(self, firing: bool) -> &'static str {
        match (self, firing) {
            (Condition::TeamDegraded, true) => "team_degraded",
            (Condition::TeamDegraded, false) => "team_recovered",
            (Condition::GuardBlocked, true) => "guard_blocked",
            (Condition::GuardBlocked, false) => "guard_cleared",
            (Condition::SeatsShort, true) => "seats_short",
            (Condition::SeatsShort, false) => "seats_available",
            (Condition::LoginLost, true) => "login_lost",
            (Condition::LoginLost, false) => "login_restored",
            (Condition::DeclarationInvalid, true) => "declaration_invalid",
            (Condition::DeclarationInvalid, false) => "declaration_valid",
        }
    }

    /// Nothing is reconciled (login, degraded team) or nothing new is
    /// adopted (declaration): critical. Some changes wait: warning.
    fn severity(self) -> Severity {
        match self {
            Condition::TeamDegraded | Condition::LoginLost | Condition::DeclarationInvalid => {
                Severity::Critical
            }
            Condition::GuardBlocked | Condition::SeatsShort => Severity::Warning,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The condition started.
    Firing,
    /// The condition cleared.
    Resolved,
    /// A summary of events held back by the rate limit.
    Info,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TeamRef {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl fmt::Display for TeamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "team {name} ({})", self.id),
            None => write!(f, "team {}", self.id),
        }
    }
}

/// One notification, before it is formatted for a webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// `team_degraded`, `team_recovered`, …, `notifications_suppressed`.
    pub kind: &'static str,
    /// `None` for the summary of held-back events.
    pub condition: Option<Condition>,
    pub status: Status,
    pub severity: Severity,
    /// `None` for the service as a whole (login, declaration).
    pub team: Option<TeamRef>,
    /// One sentence.
    pub summary: String,
    /// More lines for people (chat formats).
    pub lines: Vec<String>,
    /// The same for machines (JSON format).
    pub details: Value,
    pub at: Timestamp,
}

/// Which events a change of state makes, deduplicated and rate-limited.
#[derive(Debug)]
pub struct Decider {
    max_per_hour: u32,
    /// Conditions in force, by team (`None`: the service).
    active: BTreeSet<(Option<TeamId>, Condition)>,
    names: BTreeMap<TeamId, String>,
    windows: BTreeMap<Option<TeamId>, Window>,
    /// Events ever held back (for the metrics).
    held_total: u64,
}

/// The rate limit's record for one team (or the service).
#[derive(Debug, Default)]
struct Window {
    /// When each event of the last hour was sent, oldest first.
    sent: VecDeque<Timestamp>,
    /// Events held back since the last summary, by kind.
    held: BTreeMap<&'static str, u32>,
}

impl Window {
    fn prune(&mut self, now: Timestamp) {
        while self
            .sent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= WINDOW)
        {
            self.sent.pop_front();
        }
    }
}

impl Decider {
    pub fn new(max_per_hour: u32) -> Decider {
        Decider {
            max_per_hour: max_per_hour.max(1),
            active: BTreeSet::new(),
            names: BTreeMap::new(),
            windows: BTreeMap::new(),
            held_total: 0,
        }
    }

    /// The events `observation` makes at `now` (summaries that are due
    /// first).
    pub fn observe(&mut self, observation: &Observation, now: Timestamp) -> Vec<Event> {
        let mut out = self.tick(now);
        match observation {
            Observation::Health {
                team,
                degraded,
                failures,
                error,
            } => {
                let firing = degraded.then(|| self.degraded(team, *failures, error.as_deref()));
                self.set(Some(team), Condition::TeamDegraded, firing, now, &mut out);
            }
            Observation::Plan { team, signals } => {
                if !signals.team_name.is_empty() {
                    self.names.insert(team.clone(), signals.team_name.clone());
                }
                let guard = (!signals.guarded.is_empty()).then(|| self.guarded(team, signals));
                self.set(Some(team), Condition::GuardBlocked, guard, now, &mut out);
                let short = (!signals.seats.is_empty()).then(|| self.short(team, &signals.seats));
                self.set(Some(team), Condition::SeatsShort, short, now, &mut out);
            }
            Observation::Login { lost } => {
                let firing = lost.as_ref().map(|why| Firing {
                    summary: "The service's login is lost: no team is reconciled until someone \
                              runs `flexsync login` for its token file (it picks the new login \
                              up by itself)"
                        .to_owned(),
                    lines: vec![clip(why, MAX_TEXT)],
                    details: json!({ "error": why }),
                });
                self.set(None, Condition::LoginLost, firing, now, &mut out);
            }
            Observation::Declaration { problem } => {
                let firing = problem.as_ref().map(|p| Firing {
                    summary: "The declaration on disk is invalid: the last valid one stays in \
                              force (none, if there was none)"
                        .to_owned(),
                    lines: vec![clip(p, MAX_TEXT)],
                    details: json!({ "error": p }),
                });
                self.set(None, Condition::DeclarationInvalid, firing, now, &mut out);
            }
            Observation::Declared { teams } => {
                let keep = |t: &Option<TeamId>| t.as_ref().is_none_or(|t| teams.contains(t));
                self.active.retain(|(t, _)| keep(t));
                self.windows.retain(|t, _| keep(t));
                self.names.retain(|t, _| teams.contains(t));
            }
        }
        out
    }

    fn degraded(&self, team: &TeamId, failures: u32, error: Option<&str>) -> Firing {
        Firing {
            summary: format!(
                "{} is degraded: {failures} passes failed in a row; it is retried at a \
                 slower pace until one succeeds",
                capitalise(&self.team_ref(team).to_string())
            ),
            lines: error
                .iter()
                .map(|e| format!("Last error: {}", clip(e, MAX_TEXT)))
                .collect(),
            details: json!({ "failures": failures, "lastError": error }),
        }
    }

    fn guarded(&self, team: &TeamId, signals: &PlanSignals) -> Firing {
        let counts = signals
            .guarded
            .iter()
            .map(|(reason, n)| format!("{n} by {reason}"))
            .collect::<Vec<_>>()
            .join(", ");
        Firing {
            summary: format!(
                "A guard blocks changes in {}: {counts}; they wait until the \
                 declaration or the guard's limit changes",
                self.team_ref(team)
            ),
            lines: signals.guard_findings.clone(),
            details: json!({
                "blocked": signals.guarded,
                "findings": signals.guard_findings,
            }),
        }
    }

    fn short(&self, team: &TeamId, shortages: &[Shortage]) -> Firing {
        Firing {
            summary: format!(
                "{} is out of seats: {}",
                capitalise(&self.team_ref(team).to_string()),
                shortages
                    .iter()
                    .map(|s| format!("{} short of {}", s.product, seats(s.short)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            lines: shortages
                .iter()
                .map(|s| {
                    format!(
                        "{}: {} in all, {} blocked for want of a seat",
                        s.product,
                        seats(s.total),
                        plural(s.waiting, "assignment")
                    )
                })
                .collect(),
            details: json!({ "products": shortages }),
        }
    }

    /// Summaries of held-back events whose window has room again.
    pub fn tick(&mut self, now: Timestamp) -> Vec<Event> {
        let mut out = Vec::new();
        let scopes: Vec<Option<TeamId>> = self.windows.keys().cloned().collect();
        for scope in scopes {
            let max = self.max_per_hour as usize;
            let Some(window) = self.windows.get_mut(&scope) else {
                continue;
            };
            window.prune(now);
            if window.held.is_empty() || window.sent.len() >= max {
                continue;
            }
            let held = std::mem::take(&mut window.held);
            window.sent.push_back(now);
            let now_active: Vec<&'static str> = self
                .active
                .iter()
                .filter(|(t, _)| *t == scope)
                .map(|(_, c)| c.code())
                .collect();
            let total: u32 = held.values().sum();
            let team = scope.as_ref().map(|t| self.team_ref(t));
            let about = team
                .as_ref()
                .map_or_else(|| "the service".to_owned(), ToString::to_string);
            let state = if now_active.is_empty() {
                "nothing is in force now".to_owned()
            } else {
                format!("in force now: {}", now_active.join(", "))
            };
            out.push(Event {
                kind: "notifications_suppressed",
                condition: None,
                status: Status::Info,
                severity: Severity::Info,
                summary: format!(
                    "{} about {about} held back (at most {} an hour); {state}",
                    plural(total as usize, "notification"),
                    self.max_per_hour
                ),
                lines: held.iter().map(|(k, n)| format!("{n} × {k}")).collect(),
                details: json!({
                    "suppressed": held,
                    "active": now_active,
                    "maxPerHour": self.max_per_hour,
                }),
                team,
                at: now,
            });
        }
        out
    }

    /// When [`tick`](Self::tick) may have a summary to send, if ever.
    pub fn next_tick(&self) -> Option<Timestamp> {
        self.windows
            .values()
            .filter(|w| !w.held.is_empty())
            .filter_map(|w| w.sent.front())
            .filter_map(|t| t.checked_add(WINDOW).ok())
            .min()
    }

    fn team_ref(&self, team: &TeamId) -> TeamRef {
        TeamRef {
            id: team.0.clone(),
            name: self.names.get(team).cloned(),
        }
    }

    fn set(
        &mut self,
        team: Option<&TeamId>,
        condition: Condition,
        firing: Option<Firing>,
        now: Timestamp,
        out: &mut Vec<Event>,
    ) {
        let key = (team.cloned(), condition);
        let was = self.active.contains(&key);
        let event = match (was, firing) {
            (false, Some(f)) => {
                self.active.insert(key.clone());
                Event {
                    kind: condition.event(true),
                    condition: Some(condition),
                    status: Status::Firing,
                    severity: condition.severity(),
                    team: team.map(|t| self.team_ref(t)),
                    summary: f.summary,
                    lines: f.lines,
                    details: f.details,
                    at: now,
                }
            }
            (true, None) => {
                self.active.remove(&key);
                let team = team.map(|t| self.team_ref(t));
                let about = team
                    .as_ref()
                    .map_or_else(|| "The service".to_owned(), |t| capitalise(&t.to_string()));
                let summary = match condition {
                    Condition::TeamDegraded => format!("{about} recovered: a pass succeeded"),
                    Condition::GuardBlocked => {
                        format!("{about}: no guard blocks changes any more")
                    }
                    Condition::SeatsShort => {
                        format!("{about} has the seats its declaration needs again")
                    }
                    Condition::LoginLost => "The service's login works again".to_owned(),
                    Condition::DeclarationInvalid => {
                        "The declaration on disk is valid again".to_owned()
                    }
                };
                Event {
                    kind: condition.event(false),
                    condition: Some(condition),
                    status: Status::Resolved,
                    severity: Severity::Info,
                    team,
                    summary,
                    lines: Vec::new(),
                    details: json!({}),
                    at: now,
                }
            }
            // No change: the same event is not repeated while it holds.
            _ => return,
        };
        let max = self.max_per_hour as usize;
        let window = self.windows.entry(key.0).or_default();
        window.prune(now);
        if window.sent.len() < max {
            window.sent.push_back(now);
            out.push(event);
        } else {
            *window.held.entry(event.kind).or_insert(0) += 1;
            self.held_total += 1;
        }
    }

    /// Events ever held back by the rate limit.
    pub fn held_total(&self) -> u64 {
        self.held_total
    }

    /// Events held back and not yet summed up.
    pub fn held(&self) -> u64 {
        self.windows
            .values()
            .flat_map(|w| w.held.values())
            .map(|n| u64::from(*n))
            .sum()
    }
}

/// What a firing event says.
struct Firing {
    summary: String,
    lines: Vec<String>,
    details: Value,
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn seats(n: u64) -> String {
    plural(n as usize, "seat")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// At most `max` characters, marked when cut.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Payloads

/// The body posted to a webhook of `format`.
pub fn payload(format: Format, event: &Event) -> Value {
    match format {
        Format::Json => json_payload(event),
        Format::Slack => slack_payload(event),
        Format::Teams => teams_payload(event),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonPayload<'a> {
    format_version: u32,
    source: &'static str,
    event: &'a str,
    condition: Option<&'static str>,
    status: Status,
    severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    team: Option<&'a TeamRef>,
    summary: &'a str,
    details: &'a Value,
    at: Timestamp,
}

fn json_payload(event: &Event) -> Value {
    serde_json::to_value(JsonPayload {
        format_version: FORMAT_VERSION,
        source: "flexsync",
        event: event.kind,
        condition: event.condition.map(Condition::code),
        status: event.status,
        severity: event.severity,
        team: event.team.as_ref(),
        summary: &event.summary,
        details: &event.details,
        at: event.at,
    })
    .unwrap_or_default()
}

fn title(event: &Event) -> String {
    let what = match event.status {
        Status::Firing => "FIRING",
        Status::Resolved => "RESOLVED",
        Status::Info => "NOTE",
    };
    format!("flexsync {what}: {}", event.kind.replace('_', " "))
}

/// Slack's mrkdwn gives `&`, `<` and `>` meaning (links, `<!channel>`):
/// escaped, text from errors and declarations cannot ping anyone.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_payload(event: &Event) -> Value {
    let icon = match event.status {
        Status::Firing if event.severity == Severity::Critical => ":rotating_light:",
        Status::Firing => ":warning:",
        Status::Resolved => ":white_check_mark:",
        Status::Info => ":information_source:",
    };
    let mut body = format!(
        "{icon} *{}*\n{}",
        slack_escape(&title(event)),
        slack_escape(&event.summary)
    );
    for line in event.lines.iter().take(MAX_LINES) {
        body.push_str("\n• ");
        body.push_str(&slack_escape(line));
    }
    let context = match &event.team {
        Some(t) => format!("{} · {}", slack_escape(&t.to_string()), event.at),
        None => format!("flexsync service · {}", event.at),
    };
    json!({
        // The fallback for notifications and clients without blocks.
        "text": slack_escape(&format!("{}: {}", title(event), event.summary)),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": clip(&body, 2_900) } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": context } ] },
        ],
    })
}

fn teams_payload(event: &Event) -> Value {
    let color = match event.status {
        Status::Firing if event.severity == Severity::Critical => "Attention",
        Status::Firing => "Warning",
        Status::Resolved => "Good",
        Status::Info => "Default",
    };
    let mut body = vec![
        json!({ "type": "TextBlock", "text": title(event), "weight": "Bolder",
                "size": "Medium", "color": color, "wrap": true }),
        json!({ "type": "TextBlock", "text": event.summary, "wrap": true }),
    ];
    for line in event.lines.iter().take(MAX_LINES) {
        body.push(json!({ "type": "TextBlock", "text": line, "wrap": true,
                          "isSubtle": true, "spacing": "Small" }));
    }
    let mut facts = vec![json!({ "title": "Event", "value": event.kind })];
    if let Some(t) = &event.team {
        facts.push(json!({ "title": "Team", "value": t.to_string() }));
    }
    facts.push(json!({ "title": "At", "value": event.at.to_string() }));
    body.push(json!({ "type": "FactSet", "facts": facts }));
    // The message-with-attachment form is what both Teams incoming webhooks
    // and Workflows webhooks accept (a bare card is refused by the former).
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

// ---------------------------------------------------------------------------
// The running part

/// The controller's and the passes' handle: cheap to clone, never waits.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    tx: Option<mpsc::Sender<Observation>>,
}

impl Notifier {
    /// Notifies nobody.
    pub fn disabled() -> Notifier {
        Notifier::default()
    }

    /// Hands an observation to the decider, or drops it when the queue is
    /// full: the next pass reports the same state again.
    pub fn observe(&self, observation: Observation) {
        if let Some(tx) = &self.tx
            && tx.try_send(observation).is_err()
        {
            tracing::debug!("notification queue full; an observation was dropped");
        }
    }
}

/// Starts the decider and one delivery task per webhook (inside a tokio
/// runtime). Without webhooks, nothing runs.
pub fn start(settings: NotifySettings, metrics: Arc<Metrics>) -> Notifier {
    if settings.webhooks.is_empty() {
        return Notifier::disabled();
    }
    let mut queues = Vec::new();
    for webhook in settings.webhooks {
        let label = webhook.label();
        let mut builder = reqwest::Client::builder()
            // A redirect would carry the payload somewhere nobody configured.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("flexsync/", env!("CARGO_PKG_VERSION")));
        if webhook.loopback {
            builder = builder.no_proxy();
        }
        let http = match builder.build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(webhook = %label, error = %e, "cannot build the HTTP client of a webhook; it gets no notification");
                continue;
            }
        };
        let (tx, rx) = mpsc::channel(DELIVERY_QUEUE);
        tokio::spawn(deliver(webhook, rx, http, metrics.clone()));
        queues.push((label, tx));
    }
    let (tx, rx) = mpsc::channel(OBSERVATION_QUEUE);
    tokio::spawn(decide(
        rx,
        Decider::new(settings.max_per_hour),
        queues,
        metrics,
    ));
    Notifier { tx: Some(tx) }
}

async fn decide(
    mut rx: mpsc::Receiver<Observation>,
    mut decider: Decider,
    queues: Vec<(String, mpsc::Sender<Event>)>,
    metrics: Arc<Metrics>,
) {
    loop {
        let wake = decider.next_tick().map(|at| {
            Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
        });
        let held_before = decider.held_total();
        let events = tokio::select! {
            o = rx.recv() => match o {
                Some(o) => decider.observe(&o, Timestamp::now()),
                None => return,
            },
            _ = tokio::time::sleep(wake.unwrap_or_default()), if wake.is_some() => {
                decider.tick(Timestamp::now())
            }
        };
        let held = decider.held_total() - held_before;
        if held > 0 {
            tracing::info!(
                held,
                "notifications held back by the rate limit; a summary follows"
            );
            metrics.notification("held").inc_by(held);
        }
        for event in events {
            tracing::info!(
                event = event.kind,
                team = event.team.as_ref().map(|t| t.id.as_str()),
                "notifying: {}",
                event.summary
            );
            for (label, queue) in &queues {
                if queue.try_send(event.clone()).is_err() {
                    tracing::warn!(webhook = %label, event = event.kind, "notification dropped: the webhook's queue is full");
                    metrics.notification("dropped").inc();
                }
            }
        }
    }
}

async fn deliver(
    mut webhook: Webhook,
    mut rx: mpsc::Receiver<Event>,
    http: reqwest::Client,
    metrics: Arc<Metrics>,
) {
    let label = webhook.label();
    while let Some(event) = rx.recv().await {
        match read_url(&webhook.file) {
            Ok((url, _)) => webhook.url = url,
            Err(e) => {
                tracing::warn!(webhook = %label, error = %e, "cannot read the webhook URL again; using the one read before");
            }
        }
        let body = payload(webhook.format, &event);
        match post(&http, &webhook.url, &body).await {
            Ok(attempts) => {
                tracing::debug!(webhook = %label, event = event.kind, attempts, "notification delivered");
                metrics.notification("sent").inc();
            }
            Err(why) => {
                tracing::warn!(webhook = %label, event = event.kind, "notification not delivered: {why}");
                metrics.notification("failed").inc();
            }
        }
    }
}

/// Posts `body`, retrying timeouts, dropped connections, 5xx and 429 a
/// bounded number of times. `Ok` has the attempts made; `Err` says why the
/// last one failed, with the URL cut out.
async fn post(http: &reqwest::Client, url: &Secret, body: &Value) -> Result<u32, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let (retry, why, wait) = match http.post(url.expose()).json(body).send().await {
            Ok(resp) if resp.status().is_success() => return Ok(attempt),
            Ok(resp) => {
                let status = resp.status();
                let after = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
                let text = resp.text().await.unwrap_or_default();
                let text = clip(text.trim(), 200);
                let why = if text.is_empty() {
                    format!("HTTP {status}")
                } else {
                    format!("HTTP {status}: {text}")
                };
                let retry = status.is_server_error() || status.as_u16() == 429;
                (retry, why, after)
            }
            Err(e) => (true, describe(e.without_url()), None),
        };
        let why = redact(&why, url);
        if !retry || attempt >= ATTEMPTS {
            return Err(format!(
                "{why} (after {})",
                plural(attempt as usize, "attempt")
            ));
        }
        let backoff = Duration::from_secs(2u64.pow(attempt - 1));
        tokio::time::sleep(wait.unwrap_or(backoff)).await;
    }
}

/// An error and its causes on one line.
fn describe(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Cuts the URL, and its path and query (where a webhook's secret lives),
/// out of `text`, whatever produced it.
fn redact(text: &str, url: &Secret) -> String {
    let mut out = text.replace(url.expose(), "(webhook URL)");
    if let Ok(parsed) = url::Url::parse(url.expose()) {
        let secret_part = &parsed[url::Position::BeforePath..];
        if secret_part.len() > 1 {
            out = out.replace(secret_part, "(webhook URL)");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    fn team(id: &str) -> TeamId {
        TeamId(id.to_owned())
    }

    fn health(id: &str, degraded: bool) -> Observation {
        Observation::Health {
            team: team(id),
            degraded,
            failures: if degraded { 5 } else { 0 },
            error: degraded.then(|| "403".to_owned()),
        }
    }

    fn guarded(id: &str, n: usize) -> Observation {
        let mut signals = PlanSignals {
            team_name: "Example Engineering".into(),
            ..PlanSignals::default()
        };
        if n > 0 {
            signals.guarded.insert("removal_guard", n);
        }
        Observation::Plan {
            team: team(id),
            signals,
        }
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn an_event_is_sent_when_a_condition_starts_and_when_it_clears_never_while_it_holds() {
        let mut d = Decider::new(10);
        assert!(d.observe(&health("1", false), at(0)).is_empty());
        assert_eq!(
            kinds(&d.observe(&health("1", true), at(1))),
            ["team_degraded"]
        );
        for s in 2..10 {
            assert!(d.observe(&health("1", true), at(s)).is_empty());
        }
        let back = d.observe(&health("1", false), at(10));
        assert_eq!(kinds(&back), ["team_recovered"]);
        assert_eq!(back[0].status, Status::Resolved);
        assert!(d.observe(&health("1", false), at(11)).is_empty());
    }

    #[test]
    fn a_changing_count_is_the_same_condition() {
        let mut d = Decider::new(10);
        assert_eq!(
            kinds(&d.observe(&guarded("1", 3), at(0))),
            ["guard_blocked"]
        );
        assert!(d.observe(&guarded("1", 7), at(1)).is_empty());
        assert_eq!(
            kinds(&d.observe(&guarded("1", 0), at(2))),
            ["guard_cleared"]
        );
    }

    #[test]
    fn teams_are_independent_and_the_service_is_its_own_scope() {
        let mut d = Decider::new(10);
        assert_eq!(kinds(&d.observe(&guarded("1", 1), at(0))).len(), 1);
        assert_eq!(
            kinds(&d.observe(&guarded("2", 1), at(0))),
            ["guard_blocked"]
        );
        let lost = Observation::Login {
            lost: Some("refresh token refused".into()),
        };
        let e = d.observe(&lost, at(1));
        assert_eq!(kinds(&e), ["login_lost"]);
        assert!(e[0].team.is_none());
        assert!(d.observe(&lost, at(2)).is_empty());
        assert_eq!(
            kinds(&d.observe(&Observation::Login { lost: None }, at(3))),
            ["login_restored"]
        );
    }

    #[test]
    fn a_flapping_team_is_rate_limited_and_summed_up_once_there_is_room() {
        let mut d = Decider::new(3);
        let mut sent = Vec::new();
        // Ten flips within ten minutes: three go out, seven are held.
        for i in 0..10 {
            sent.extend(d.observe(&health("1", i % 2 == 0), at(i * 60)));
        }
        assert_eq!(
            kinds(&sent),
            ["team_degraded", "team_recovered", "team_degraded"]
        );
        assert_eq!(d.held(), 7);
        assert_eq!(d.held_total(), 7);
        // Another team is not held back by the first one.
        assert_eq!(d.observe(&guarded("2", 1), at(600)).len(), 1);
        // Nothing is due before the first send leaves the window.
        assert_eq!(d.next_tick(), Some(at(3600)));
        assert!(d.tick(at(3599)).is_empty());
        let summary = d.tick(at(3600));
        assert_eq!(kinds(&summary), ["notifications_suppressed"]);
        let s = &summary[0];
        assert_eq!(s.team.as_ref().unwrap().id, "1");
        assert_eq!(s.details["suppressed"]["team_degraded"], 3);
        assert_eq!(s.details["suppressed"]["team_recovered"], 4);
        // The last flip (i = 9) left the team recovered.
        assert_eq!(s.details["active"], json!([]));
        assert!(s.summary.contains("7 notifications"), "{}", s.summary);
        assert_eq!(d.held(), 0);
        assert_eq!(d.next_tick(), None);
        // The summary took a slot of the window.
        assert!(d.tick(at(3700)).is_empty());
    }

    #[test]
    fn a_team_no_longer_declared_is_forgotten_silently() {
        let mut d = Decider::new(10);
        d.observe(&health("1", true), at(0));
        assert!(
            d.observe(
                &Observation::Declared {
                    teams: vec![team("2")]
                },
                at(1)
            )
            .is_empty()
        );
        // Declared again and healthy: no "recovered" for a forgotten state.
        assert!(d.observe(&health("1", false), at(2)).is_empty());
    }

    fn plan_with(blocked: Vec<plan::Blocked>, seats: Vec<plan::SeatUsage>) -> TeamPlan {
        TeamPlan {
            team_id: team("100001"),
            team_name: "Example Engineering".into(),
            managed: vec![],
            changes: vec![],
            blocked,
            findings: vec![],
            seats,
        }
    }

    fn acad() -> Arc<plan::ProductRef> {
        Arc::new(plan::ProductRef {
            alias: crate::model::Alias("autocad".into()),
            id: crate::model::ProductId("prod_acad".into()),
            name: "AutoCAD".into(),
        })
    }

    #[test]
    fn plan_signals_count_guards_and_seats_and_ignore_routine_blocks() {
        let assign = |who: &str| plan::Change::Assign {
            email: crate::model::Email::parse(who).unwrap(),
            user_id: None,
            product: acad(),
        };
        let unassign = |who: &str| plan::Change::Unassign {
            email: crate::model::Email::parse(who).unwrap(),
            user_id: crate::model::UserId("U1".into()),
            product: acad(),
        };
        let guard = BlockReason::RemovalGuard {
            wanted: 3,
            limit: 1,
            max_unassign: crate::model::Limit::Count(1),
            holders: 4,
        };
        let p = plan_with(
            vec![
                plan::Blocked {
                    change: unassign("a@x.example"),
                    reason: guard.clone(),
                },
                plan::Blocked {
                    change: unassign("b@x.example"),
                    reason: guard,
                },
                plan::Blocked {
                    change: unassign("c@x.example"),
                    reason: BlockReason::RemovalDelay { until: at(0) },
                },
                plan::Blocked {
                    change: assign("d@x.example"),
                    reason: BlockReason::NoSeat { total: 4 },
                },
            ],
            vec![plan::SeatUsage {
                product: (*acad()).clone(),
                total: 4,
                before: 4,
                after: 5,
                freed: 0,
                short: 1,
            }],
        );
        let s = PlanSignals::of(&p);
        assert_eq!(s.guarded, BTreeMap::from([("removal_guard", 2)]));
        assert_eq!(
            s.seats,
            [Shortage {
                product: "AutoCAD".into(),
                product_id: "prod_acad".into(),
                total: 4,
                short: 1,
                waiting: 1,
            }]
        );
        let quiet = PlanSignals::of(&plan_with(vec![], vec![]));
        assert!(quiet.guarded.is_empty() && quiet.seats.is_empty());
    }

    fn sample() -> Event {
        let mut d = Decider::new(10);
        d.observe(
            &Observation::Plan {
                team: team("100001"),
                signals: PlanSignals {
                    team_name: "R&D <core>".into(),
                    guarded: BTreeMap::from([("probable_typo", 2)]),
                    guard_findings: vec![
                        "<!channel> ada@mock.exmaple looks like ada@mock.example".into(),
                    ],
                    seats: vec![],
                },
            },
            at(0),
        )
        .remove(0)
    }

    #[test]
    fn the_json_payload_is_versioned_and_complete() {
        let v = payload(Format::Json, &sample());
        assert_eq!(v["formatVersion"], 1);
        assert_eq!(v["source"], "flexsync");
        assert_eq!(v["event"], "guard_blocked");
        assert_eq!(v["condition"], "guard_blocked");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["severity"], "warning");
        assert_eq!(v["team"], json!({ "id": "100001", "name": "R&D <core>" }));
        assert_eq!(v["details"]["blocked"]["probable_typo"], 2);
        assert!(
            v["summary"]
                .as_str()
                .unwrap()
                .contains("2 by probable_typo")
        );
        assert!(v["at"].is_string());
    }

    #[test]
    fn slack_text_is_escaped_so_nobody_is_pinged() {
        let v = payload(Format::Slack, &sample());
        let text = v["text"].as_str().unwrap();
        assert!(text.contains("R&amp;D &lt;core&gt;"), "{text}");
        let block = v["blocks"][0]["text"]["text"].as_str().unwrap();
        assert!(!block.contains("<!channel>"), "{block}");
        assert!(block.contains("&lt;!channel&gt;"), "{block}");
        assert_eq!(v["blocks"][0]["text"]["type"], "mrkdwn");
    }

    #[test]
    fn teams_gets_an_adaptive_card_message() {
        let v = payload(Format::Teams, &sample());
        assert_eq!(v["type"], "message");
        let a = &v["attachments"][0];
        assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
        assert_eq!(a["content"]["type"], "AdaptiveCard");
        let body = a["content"]["body"].as_array().unwrap();
        assert!(body.iter().any(|b| b["type"] == "FactSet"));
        assert!(body.iter().any(|b| {
            b["text"]
                .as_str()
                .is_some_and(|t| t.contains("probable_typo"))
        }));
    }

    #[test]
    fn url_files_are_checked_and_the_url_is_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hook");
        let secret = "https://hooks.slack.example/services/T0/B0/s3cr3t-t0k3n";
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        let w = Webhook::from_file(Format::Slack, &file).unwrap();
        assert!(!format!("{w:?}").contains("s3cr3t"), "{w:?}");
        assert!(!w.label().contains("s3cr3t"));
        for (text, expect) in [
            ("", "is empty"),
            ("not a url at all s3cr3t", "does not hold a URL"),
            ("http://hooks.example/s3cr3t", "is not https"),
            ("ftp://hooks.example/s3cr3t", "does not hold a URL"),
        ] {
            std::fs::write(&file, text).unwrap();
            let e = Webhook::from_file(Format::Json, &file)
                .unwrap_err()
                .to_string();
            assert!(e.contains(expect), "{text}: {e}");
            assert!(!e.contains("s3cr3t"), "{e}");
        }
        std::fs::write(&file, "http://127.0.0.1:9/hook").unwrap();
        assert!(Webhook::from_file(Format::Json, &file).is_ok());
        assert!(Webhook::from_file(Format::Json, &dir.path().join("missing")).is_err());
    }

    #[test]
    fn redaction_cuts_the_url_and_its_secret_path() {
        let url = Secret::new("https://hooks.example/services/s3cr3t?token=t0k3n");
        let text = redact(
            "error for https://hooks.example/services/s3cr3t?token=t0k3n and /services/s3cr3t?token=t0k3n",
            &url,
        );
        assert!(
            !text.contains("s3cr3t") && !text.contains("t0k3n"),
            "{text}"
        );
    }
}
