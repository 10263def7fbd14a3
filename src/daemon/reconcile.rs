//! One reconcile pass of one team: read, lay recent writes over the read,
//! plan, apply (unless dry-run or suspended), and report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::consistency::Expectations;
use super::notify::{Notifier, Observation, PlanSignals};
use super::previews::Publisher;
use super::state::{AppliedCounts, PlanCounts, Shared, TeamState};
use crate::api::{ApiError, Client, ReadHint, UserStrategy};
use crate::apply::{self, Both, Halt, Observer};
use crate::audit::{AuditLog, AuditTrail, RunInfo};
use crate::metrics::{self, ActionLabels, Metrics, ReconcileLabels};
use crate::model::{self, DesiredTeam, Observed, TeamId};
use crate::plan::{self, Change};
use crate::planfile::SavedPlan;
use crate::report::{ApplyReport, Outcome};

/// Everything a pass needs; owned, so the pass runs as its own task.
pub struct Pass {
    /// Shared with the declaration in force: a pass copies nothing.
    pub team: Arc<DesiredTeam>,
    /// Keep the raw read for /snapshot.
    pub keep_snapshot: bool,
    pub expectations: Expectations,
    pub known_users: Option<u64>,
    pub client: Arc<Client>,
    pub metrics: Arc<Metrics>,
    pub shared: Arc<Shared>,
    pub audit: Arc<AuditLog>,
    pub dry_run: bool,
    pub consistency_window: Duration,
    /// Stops the pass before its next write on shutdown, or when the team's
    /// declaration changes meanwhile.
    pub halt: Halt,
    /// Unassignments wait until then (the removal delay after the team's
    /// declaration last changed).
    pub hold_removals_until: Option<Timestamp>,
    pub desired_digest: String,
    pub git_commit: Option<String>,
    pub notify: Notifier,
}

/// Why a pass failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum PassError {
    /// The team could not be read; nothing was planned.
    #[error("{0}")]
    Read(Arc<ApiError>),
    /// Some changes were not made (failed, or skipped after a failure).
    #[error("{not_made} of {of} change(s) not made; first: {first}")]
    Incomplete {
        not_made: usize,
        of: usize,
        first: String,
    },
}

/// What a pass hands back to the controller.
pub struct PassResult {
    pub team: TeamId,
    pub outcome: Result<(), PassError>,
    pub expectations: Expectations,
    pub known_users: Option<u64>,
    /// Removals the plan held for the removal delay may go then.
    pub hold_until: Option<Timestamp>,
}

/// Counts writes in metrics as they finish.
struct Counting {
    metrics: Arc<Metrics>,
}

impl Observer for Counting {
    fn finished(&self, team: &TeamId, change: &Change, outcome: &Outcome) {
        self.metrics
            .actions
            .get_or_create(&ActionLabels {
                team: team.0.clone(),
                kind: change.verb().to_owned(),
                result: outcome.label().to_owned(),
            })
            .inc();
    }
}

pub async fn run(mut pass: Pass) -> PassResult {
    let id = pass.team.id.clone();
    let started = Instant::now();
    let mut hold_until = None;
    let outcome = run_inner(&mut pass, &mut hold_until).await;
    let label = metrics::team(&id.0);
    pass.metrics
        .reconcile_seconds
        .get_or_create(&label)
        .observe(started.elapsed().as_secs_f64());
    pass.metrics
        .budget_remaining
        .get_or_create(&label)
        .set(pass.client.budget_remaining(&id) as i64);
    // From 0, not from the first 429: increase() cannot see a counter's
    // first step, so the rate-limit alert would miss it.
    drop(pass.metrics.rate_limited.get_or_create(&label));
    let result = match &outcome {
        Ok(end) => end.label(),
        Err(_) => "failure",
    };
    pass.metrics
        .reconciles
        .get_or_create(&ReconcileLabels {
            team: id.0.clone(),
            result: result.to_string(),
        })
        .inc();
    if outcome.is_ok() {
        pass.metrics
            .last_success
            .get_or_create(&label)
            .set(pass.client.clock().now().as_millisecond() as f64 / 1000.0);
    }
    PassResult {
        team: id,
        outcome: outcome.map(|_| ()),
        expectations: pass.expectations,
        known_users: pass.known_users,
        hold_until,
    }
}

/// How a pass that did not fail ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PassEnd {
    /// Converged, or every change made.
    Success,
    /// `suspend: true`: planned, nothing sent.
    Suspended,
    /// --dry-run: planned, nothing sent.
    DryRun,
    /// The declaration changed mid-pass; the team runs again at once.
    Superseded,
}

impl PassEnd {
    /// The `result` label of `flexsync_reconciles_total`.
    fn label(self) -> &'static str {
        match self {
            PassEnd::Success => "success",
            PassEnd::Suspended => "suspended",
            PassEnd::DryRun => "dry_run",
            PassEnd::Superseded => "superseded",
        }
    }
}

/// Read, plan, publish the plan, then apply unless suspended, converged or
/// dry-run; each step is one function below.
async fn run_inner(
    pass: &mut Pass,
    hold_until: &mut Option<Timestamp>,
) -> Result<PassEnd, PassError> {
    let id = pass.team.id.clone();
    let (observed_team, publisher, now) = read(pass).await?;
    let mut observed = Observed::default();
    observed.teams.insert(id.clone(), observed_team);
    let options = plan::Options {
        hold_removals_until: pass.hold_removals_until,
        ..plan::Options::at(now)
    };
    let team_plan = plan::compute_team(&pass.team, observed.teams.get(&id), &options);
    *hold_until = team_plan.blocked.iter().find_map(|b| match b.reason {
        plan::BlockReason::RemovalDelay { until } => Some(until),
        _ => None,
    });
    publish_plan(pass, &team_plan, now);
    if let Some(end) = end_without_writes(pass, &team_plan) {
        return Ok(end);
    }
    let plan = plan::Plan {
        teams: vec![team_plan],
    };
    let report = execute(pass, &plan, &observed, publisher, now).await;
    remember_writes(pass, &report);
    if pass.halt.superseded() {
        // Not a failure: the controller runs the team again at once, with
        // the new declaration.
        tracing::info!(team = %id, "pass stopped: the declaration changed; planning again");
        return Ok(PassEnd::Superseded);
    }
    outcome(pass, &report)
}

/// The team as the plan must see it: read at the lower bound, with the
/// service's recent writes laid over the read; and, with /snapshot on, the
/// publisher that keeps the snapshot current write by write.
async fn read(
    pass: &mut Pass,
) -> Result<(model::ObservedTeam, Option<Publisher>, Timestamp), PassError> {
    let id = pass.team.id.clone();
    let client = pass.client.clone();
    let hint = ReadHint {
        emails: pass.team.users.keys().cloned().collect(),
        known_users: pass.known_users,
    };
    let (mut observed_team, stats) = match client.fetch_observed(&id, &hint).await {
        Ok(r) => {
            login_state(pass, None);
            r
        }
        Err(e) => {
            if matches!(
                e,
                ApiError::LoginRequired { .. } | ApiError::NotLoggedIn { .. }
            ) {
                login_state(pass, Some(e.to_string()));
            }
            return Err(PassError::Read(Arc::new(e)));
        }
    };
    let now = client.clock().now();
    // Only a full listing tells the team's size; lookups see the declared
    // people only.
    if stats.user_strategy == UserStrategy::List {
        pass.known_users = Some(observed_team.users.len() as u64);
    }
    // Kept for /snapshot only, which lays the service's acknowledged writes
    // over what Autodesk said, write by write; without snapshots enabled,
    // no second copy of the team.
    let raw = pass.keep_snapshot.then(|| observed_team.clone());
    pass.expectations
        .overlay(&mut observed_team, now, pass.consistency_window);
    tracing::debug!(team = %id, calls = stats.calls, "team read");
    let publisher = raw.map(|raw| {
        Publisher::start(
            pass.shared.clone(),
            client.clock().clone(),
            pass.consistency_window,
            raw,
            pass.expectations.clone(),
            now,
        )
    });
    Ok((observed_team, publisher, now))
}

/// The plan's counts in metrics and /status, and its blocked changes in
/// logs, metrics and notifications.
fn publish_plan(pass: &Pass, team_plan: &plan::TeamPlan, now: Timestamp) {
    record_blocked(pass, team_plan);
    let summary = team_plan.summary();
    let label = metrics::team(&team_plan.team_id.0);
    pass.metrics
        .drift
        .get_or_create(&label)
        .set(summary.changes() as i64);
    pass.metrics
        .blocked
        .get_or_create(&label)
        .set(summary.blocked as i64);
    let name = team_plan.team_name.clone();
    pass.shared.update_team(&team_plan.team_id, |t| {
        t.name = Some(name);
        t.last_run = Some(now);
        t.planned = Some(PlanCounts {
            invite: summary.invite,
            assign: summary.assign,
            unassign: summary.unassign,
            blocked: summary.blocked,
        });
    });
}

/// How the pass ends when it must not or need not write: suspended,
/// converged, or a dry run (which logs the drift instead).
fn end_without_writes(pass: &Pass, team_plan: &plan::TeamPlan) -> Option<PassEnd> {
    let id = &team_plan.team_id;
    let (state, end) = if pass.team.suspended {
        (TeamState::Suspended, PassEnd::Suspended)
    } else if team_plan.changes.is_empty() {
        (TeamState::Converged, PassEnd::Success)
    } else if pass.dry_run {
        // A few examples, then the count: a big drift must not flood the log.
        const SHOWN: usize = 20;
        for c in team_plan.changes.iter().take(SHOWN) {
            tracing::info!(team = %id, action = c.verb(), user = %c.email(), product = c.product().map(|p| p.alias.0.as_str()), "drift (dry run, not applied): {} {}", c.verb(), c.email());
        }
        let summary = team_plan.summary();
        tracing::info!(team = %id, invite = summary.invite, assign = summary.assign, unassign = summary.unassign, "drift (dry run, not applied): {} change(s) in all", summary.changes());
        (TeamState::Drift, PassEnd::DryRun)
    } else {
        return None;
    };
    pass.shared.update_team(id, |t| {
        t.state = state;
        // A suspended team keeps the last error it had.
        if state != TeamState::Suspended {
            t.last_error = None;
        }
    });
    Some(end)
}

/// Carries the plan out, every write audited (intent before, outcome
/// after), counted in metrics and, with /snapshot on, published.
async fn execute(
    pass: &Pass,
    plan: &plan::Plan,
    observed: &Observed,
    publisher: Option<Publisher>,
    now: Timestamp,
) -> ApplyReport {
    let saved = SavedPlan::new(
        plan,
        observed,
        |_| Some(&*pass.team),
        pass.desired_digest.clone(),
        "service".into(),
        &Default::default(),
        now,
    );
    let recording = Both(
        AuditTrail {
            log: pass.audit.clone(),
            run: RunInfo {
                command: "run",
                plan_digest: saved.digest().to_owned(),
                git_commit: pass.git_commit.clone(),
                overrides: Default::default(),
            },
            clock: pass.client.clock().clone(),
        },
        Counting {
            metrics: pass.metrics.clone(),
        },
    );
    // The audit line is written before the snapshot shows a write.
    let observer: Arc<dyn Observer> = match publisher {
        Some(p) => Arc::new(Both(recording, p)),
        None => Arc::new(recording),
    };
    apply::execute(pass.client.clone(), plan, observer, pass.halt.clone()).await
}

/// Our own writes' answers, trusted over a lagging team-wide list in the
/// next passes.
fn remember_writes(pass: &mut Pass, report: &ApplyReport) {
    let done_at = pass.client.clock().now();
    let mut invited = BTreeMap::new();
    for r in report.teams.iter().flat_map(|t| &t.results) {
        if let (
            Change::Invite { email, .. },
            Outcome::Done {
                user_id: Some(u), ..
            },
        ) = (&r.change, &r.outcome)
        {
            invited.insert(email.clone(), u.clone());
        }
    }
    for r in report.teams.iter().flat_map(|t| &t.results) {
        pass.expectations.record(
            &r.change,
            &r.outcome,
            invited.get(r.change.email()),
            done_at,
        );
    }
}

/// What the apply leaves: drift still to do in metrics, counts in
/// /status, and a failure naming the first change not made.
fn outcome(pass: &Pass, report: &ApplyReport) -> Result<PassEnd, PassError> {
    let id = &pass.team.id;
    let tally = report.tally();
    pass.metrics
        .drift
        .get_or_create(&metrics::team(&id.0))
        .set((tally.failed + tally.skipped) as i64);
    let first_problem =
        report
            .teams
            .iter()
            .flat_map(|t| &t.results)
            .find_map(|r| match &r.outcome {
                Outcome::Failed { message, .. } => Some(format!(
                    "{} {}: {message}",
                    r.change.verb(),
                    r.change.email()
                )),
                Outcome::Skipped { reason } => Some(format!(
                    "{} {} skipped: {reason}",
                    r.change.verb(),
                    r.change.email()
                )),
                Outcome::Done { .. } => None,
            });
    pass.shared.update_team(id, |t| {
        t.applied = Some(AppliedCounts {
            done: tally.done,
            failed: tally.failed,
            skipped: tally.skipped,
        });
    });
    match first_problem {
        Some(first) => Err(PassError::Incomplete {
            not_made: tally.failed + tally.skipped,
            of: tally.done + tally.failed + tally.skipped,
            first,
        }),
        None => {
            pass.shared.update_team(id, |t| {
                t.state = TeamState::Applied;
                t.last_error = None;
            });
            Ok(PassEnd::Success)
        }
    }
}

/// Blocked changes in logs and metrics, by reason; blockers as warnings.
fn record_blocked(pass: &Pass, team_plan: &plan::TeamPlan) {
    let id = &team_plan.team_id;
    let mut by_reason: BTreeMap<&'static str, i64> = BTreeMap::new();
    for b in &team_plan.blocked {
        *by_reason.entry(b.reason.code()).or_default() += 1;
    }
    pass.metrics.record_blocked(&id.0, &by_reason);
    pass.notify.observe(Observation::Plan {
        team: id.clone(),
        signals: PlanSignals::of(team_plan),
    });
    for f in &team_plan.findings {
        match f.severity {
            plan::Severity::Blocker => {
                tracing::warn!(team = %id, code = f.code.as_str(), "plan blocker: {}", f.message)
            }
            plan::Severity::Warning => {
                tracing::warn!(team = %id, code = f.code.as_str(), "plan warning: {}", f.message)
            }
            plan::Severity::Note if f.code == plan::FindingCode::RemovalDelay => {
                tracing::info!(team = %id, code = f.code.as_str(), "{}", f.message)
            }
            plan::Severity::Note => {}
        }
    }
}

/// Records whether the login works, saying so once when it changes: the
/// service stays up without one and picks up a new token file by itself.
fn login_state(pass: &Pass, error: Option<String>) {
    pass.metrics.login_valid.set(i64::from(error.is_none()));
    pass.notify.observe(Observation::Login {
        lost: error.clone(),
    });
    let mut current = pass
        .shared
        .credentials_error
        .write()
        .unwrap_or_else(|p| p.into_inner());
    match (&*current, &error) {
        (None, Some(e)) => tracing::error!(
            "the login is lost: {e}. No team is reconciled until someone runs `flexsync login` \
             with this service's token file; the service picks the new token up by itself"
        ),
        (Some(_), None) => tracing::info!("the login works again"),
        _ => {}
    }
    *current = error;
}
