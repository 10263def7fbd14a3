//! The controller: owns every team's schedule and runtime state, decides
//! which declaration is in force, starts passes and records their outcome.
//!
//! A declaration is adopted only once the files have stopped changing: the
//! same content read twice, a settle window apart. Adopting a change makes
//! the teams it touches due at once, stops their running passes before
//! their next write, and starts their removal delay: for that long, their
//! unassignments are held (the planner shows them blocked), so a
//! half-written file or an edit reverted at once never costs anyone access.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use super::consistency::Expectations;
use super::notify::Observation;
use super::reconcile::{self, Pass, PassResult};
use super::schedule::TeamSchedule;
use super::state::{Shared, TeamState};
use super::{Settings, systemd};
use crate::api::Client;
use crate::apply::Halt;
use crate::config::{self, Loaded};
use crate::metrics::{self, Metrics};
use crate::model::{DesiredTeam, TeamId};

/// Per-team state owned by the controller.
struct TeamRuntime {
    schedule: TeamSchedule,
    /// `None` while a pass holds them.
    expectations: Option<Expectations>,
    known_users: Option<u64>,
    /// When the team's declaration last changed (or the service started).
    declared_since: Timestamp,
    /// Set while a pass runs: cancelling it stops that pass before its next
    /// write.
    running: Option<CancellationToken>,
}

/// The declaration in force.
struct InForce {
    /// Each team's declaration, shared with its passes.
    teams: BTreeMap<TeamId, Arc<DesiredTeam>>,
    digest: String,
    git_commit: Option<String>,
}

/// Which teams a read makes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Due {
    /// Only teams whose declaration changed (file events, re-reads).
    Changed,
    /// Every team, changed or not (start, SIGHUP).
    Every,
}

impl Due {
    /// The wider of two requests.
    fn and(self, other: Due) -> Due {
        if self == Due::Every || other == Due::Every {
            Due::Every
        } else {
            Due::Changed
        }
    }
}

/// Files that changed and have not yet been seen unchanged for the settle
/// window.
struct Candidate {
    digest: String,
    since: Instant,
    /// Which teams run once this settles (SIGHUP: every one).
    due: Due,
}

pub(super) struct Controller {
    settings: Settings,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    client: Arc<Client>,
    shutdown: CancellationToken,
    in_force: Option<InForce>,
    teams: BTreeMap<TeamId, TeamRuntime>,
    candidate: Option<Candidate>,
    /// A file event arrived: look then (events come in bursts).
    look_at: Option<Instant>,
    /// The files' stamp at the last full read.
    last_stamp: Option<String>,
    pub running: tokio::task::JoinSet<PassResult>,
}

/// File events within this long of the first are read together.
const EVENT_BATCH: Duration = Duration::from_millis(50);

/// Reads the declaration's files through `read` off the event loop, so a
/// slow network filesystem stalls no pass, signal or watchdog; a read that
/// panicked is logged, and None.
async fn off_the_loop<T: Send + 'static>(read: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    match tokio::task::spawn_blocking(read).await {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(error = %e, "reading the declaration failed");
            None
        }
    }
}

impl Controller {
    pub fn new(
        settings: Settings,
        shared: Arc<Shared>,
        metrics: Arc<Metrics>,
        client: Arc<Client>,
        shutdown: CancellationToken,
    ) -> Self {
        Controller {
            settings,
            shared,
            metrics,
            client,
            shutdown,
            in_force: None,
            teams: BTreeMap::new(),
            candidate: None,
            look_at: None,
            last_stamp: None,
            running: tokio::task::JoinSet::new(),
        }
    }

    /// When the files should be read next because of events or a change
    /// that is settling, if at all.
    pub fn next_look(&self) -> Option<Instant> {
        let settle = self
            .candidate
            .as_ref()
            .map(|c| c.since + self.settings.settle);
        match (settle, self.look_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Something under the watched paths changed.
    pub fn file_event(&mut self) {
        self.look_at
            .get_or_insert_with(|| Instant::now() + EVENT_BATCH);
    }

    /// Reads the files. Content already in force changes nothing (SIGHUP
    /// still makes every team due); new content is adopted only when it was
    /// read unchanged a settle window earlier.
    pub async fn look(&mut self, due: Due) {
        self.look_at = None;
        let paths = self.settings.paths.clone();
        let Some(stamp) = off_the_loop(move || config::stamp(&paths)).await else {
            return;
        };
        self.read(due, stamp).await;
    }

    /// The periodic re-read, the backstop for lost file events: files whose
    /// names, sizes, times and inodes are as last read are not parsed again.
    pub async fn reread(&mut self) {
        let paths = self.settings.paths.clone();
        let Ok(stamp) = tokio::task::spawn_blocking(move || config::stamp(&paths)).await else {
            return;
        };
        if self.candidate.is_none() && self.last_stamp.as_ref() == Some(&stamp) {
            return;
        }
        self.read(Due::Changed, stamp).await;
    }

    async fn read(&mut self, due: Due, stamp: String) {
        let paths = self.settings.paths.clone();
        let Some(loaded) = off_the_loop(move || config::load(&paths)).await else {
            return;
        };
        self.last_stamp = Some(stamp);
        let digest = loaded.digest();
        let in_force = self.in_force.as_ref().map(|f| f.digest.as_str());
        if loaded.is_valid() && in_force == Some(digest.as_str()) {
            self.candidate = None;
            self.mark_valid();
            if due == Due::Every {
                self.trigger_all();
            }
            return;
        }
        let settle = self.settings.settle;
        match &mut self.candidate {
            Some(c) if c.digest == digest && c.since.elapsed() >= settle => {
                let due = due.and(c.due);
                self.candidate = None;
                self.adopt(loaded, digest, due);
            }
            Some(c) if c.digest == digest => c.due = c.due.and(due),
            _ => {
                tracing::debug!(digest = %digest, "declaration changed on disk; waiting for it to settle");
                self.candidate = Some(Candidate {
                    digest,
                    since: Instant::now(),
                    due,
                });
            }
        }
    }

    fn mark_valid(&self) {
        self.metrics.config_valid.set(1);
        self.settings
            .notify
            .observe(Observation::Declaration { problem: None });
        let mut decl = self
            .shared
            .declaration
            .write()
            .unwrap_or_else(|p| p.into_inner());
        if !decl.valid && !decl.errors.is_empty() {
            tracing::info!("the declaration is valid again");
        }
        decl.valid = true;
        decl.errors.clear();
    }

    fn trigger_all(&mut self) {
        let now = self.client.clock().now();
        for rt in self.teams.values_mut() {
            rt.schedule.trigger(now);
        }
    }

    /// Settled content: a valid declaration replaces the one in force; an
    /// invalid one is reported and changes nothing.
    fn adopt(&mut self, loaded: Loaded, digest: String, due: Due) {
        if !loaded.is_valid() {
            self.report_invalid(loaded);
            return;
        }
        self.mark_valid();
        let now = self.client.clock().now();
        tracing::info!(digest = %digest, teams = loaded.desired.teams.len(), "declaration loaded");
        let git_commit = self
            .settings
            .paths
            .first()
            .and_then(|p| crate::git::head_commit(p));
        let before = self.in_force.as_ref().map(|f| &f.teams);
        // Teams that left the declaration are forgotten (a running pass of
        // theirs stops before its next write); new ones are due now.
        for (id, rt) in &self.teams {
            if !loaded.desired.teams.contains_key(id)
                && let Some(token) = &rt.running
            {
                token.cancel();
            }
        }
        self.teams
            .retain(|id, _| loaded.desired.teams.contains_key(id));
        self.shared
            .teams
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| loaded.desired.teams.contains_key(id));
        self.settings.notify.observe(Observation::Declared {
            teams: loaded.desired.teams.keys().cloned().collect(),
        });
        for (id, team) in &loaded.desired.teams {
            let changed = before.and_then(|b| b.get(id)).map(|t| &**t) != Some(team);
            let rt = self.teams.entry(id.clone()).or_insert_with(|| TeamRuntime {
                schedule: TeamSchedule::new(now),
                expectations: Some(Expectations::default()),
                known_users: None,
                declared_since: now,
                running: None,
            });
            if changed {
                rt.declared_since = now;
                if let Some(token) = &rt.running {
                    tracing::info!(team = %id, "the team's declaration changed during its pass: stopping it before its next write");
                    token.cancel();
                }
            }
            if changed || due == Due::Every {
                rt.schedule.trigger(now);
            }
            self.shared.update_team(id, |_| {});
        }
        {
            let mut decl = self
                .shared
                .declaration
                .write()
                .unwrap_or_else(|p| p.into_inner());
            decl.loaded = true;
            decl.digest = Some(digest.clone());
            decl.loaded_at = Some(now);
            decl.git_commit = git_commit.clone();
        }
        self.metrics.declaration_loaded.set(1);
        self.in_force = Some(InForce {
            teams: loaded
                .desired
                .teams
                .into_iter()
                .map(|(id, t)| (id, Arc::new(t)))
                .collect(),
            digest,
            git_commit,
        });
        super::systemd::status(&self.shared.summary());
    }

    fn report_invalid(&self, loaded: Loaded) {
        let same_error = self.shared.declaration().errors == loaded.diagnostics;
        if !same_error {
            self.metrics.config_load_errors.inc();
            let consequence = if self.in_force.is_some() {
                "invalid declaration; keeping the last good one"
            } else {
                "invalid declaration; nothing is applied until it is fixed"
            };
            for d in &loaded.diagnostics {
                tracing::error!(place = %d.place(), error = %d.message, "{consequence}");
            }
        }
        self.metrics.config_valid.set(0);
        self.settings.notify.observe(Observation::Declaration {
            problem: loaded
                .diagnostics
                .first()
                .map(|d| format!("{}: {}", d.place(), d.message)),
        });
        {
            let mut decl = self
                .shared
                .declaration
                .write()
                .unwrap_or_else(|p| p.into_inner());
            decl.valid = false;
            decl.errors = loaded.diagnostics;
        }
        // Else `systemctl status` keeps showing the line from before the
        // files were read.
        super::systemd::status(&self.shared.summary());
    }

    /// Starts every due pass that is not already running.
    pub async fn start_due(&mut self) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let Some(force) = &self.in_force else {
            return;
        };
        let now = self.client.clock().now();
        let due: Vec<TeamId> = self
            .teams
            .iter()
            .filter(|(_, t)| t.schedule.due(now) && t.running.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        if due.is_empty() {
            return;
        }
        // Admin roles may have changed since the last cycle.
        self.client.forget_teams().await;
        let delay = self.settings.removal_delay;
        for id in due {
            let (Some(team), Some(rt)) = (force.teams.get(&id), self.teams.get_mut(&id)) else {
                continue;
            };
            let (halt, token) = Halt::or_superseded(&self.shutdown);
            rt.running = Some(token);
            rt.schedule.started();
            let hold_removals_until = (!delay.is_zero())
                .then(|| SignedDuration::try_from(delay).ok())
                .flatten()
                .and_then(|d| rt.declared_since.checked_add(d).ok())
                .filter(|until| *until > now);
            let pass = Pass {
                team: team.clone(),
                keep_snapshot: self.settings.snapshot_token.is_some(),
                expectations: rt.expectations.take().unwrap_or_default(),
                known_users: rt.known_users,
                client: self.client.clone(),
                metrics: self.metrics.clone(),
                shared: self.shared.clone(),
                audit: self.settings.audit.clone(),
                dry_run: self.settings.dry_run,
                consistency_window: self.settings.consistency_window,
                halt,
                hold_removals_until,
                desired_digest: force.digest.clone(),
                git_commit: force.git_commit.clone(),
                notify: self.settings.notify.clone(),
            };
            self.running.spawn(reconcile::run(pass));
        }
    }

    /// How long until the next idle team is due.
    pub fn sleep_for(&self) -> Duration {
        let now = self.client.clock().now();
        self.teams
            .values()
            .filter(|t| t.running.is_none())
            .map(|t| t.schedule.next_at)
            .min()
            .map(|at| Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(10))
    }

    /// A pass ended: schedule the team's next one and record the outcome.
    pub fn finish(&mut self, result: PassResult) {
        let Some(rt) = self.teams.get_mut(&result.team) else {
            // The team left the declaration while its pass ran; what the
            // pass published since (its status, its state for /snapshot)
            // goes with it.
            self.shared
                .teams
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&result.team);
            return;
        };
        rt.running = None;
        rt.expectations = Some(result.expectations);
        rt.known_users = result.known_users;
        let now = self.client.clock().now();
        match &result.outcome {
            Ok(()) => rt
                .schedule
                .succeeded(now, &self.settings.pacing, super::jitter_unit()),
            Err(e) => {
                rt.schedule.failed(now, &self.settings.pacing);
                tracing::warn!(team = %result.team, failures = rt.schedule.failures, degraded = rt.schedule.degraded, next_run = %rt.schedule.next_at, error = %e, "reconcile failed");
            }
        }
        if let Some(at) = result.hold_until {
            rt.schedule.wake_by(at);
        }
        let schedule = rt.schedule;
        self.metrics
            .degraded
            .get_or_create(&metrics::team(&result.team.0))
            .set(i64::from(schedule.degraded));
        self.settings.notify.observe(Observation::Health {
            team: result.team.clone(),
            degraded: schedule.degraded,
            failures: schedule.failures,
            error: result.outcome.as_ref().err().map(ToString::to_string),
        });
        self.shared.update_team(&result.team, |t| {
            t.next_run = Some(schedule.next_at);
            t.failures = schedule.failures;
            t.removals_held_until = result.hold_until;
            match &result.outcome {
                Ok(()) => t.last_success = Some(now),
                Err(e) => {
                    t.state = if schedule.degraded {
                        TeamState::Degraded
                    } else {
                        TeamState::Failing
                    };
                    t.last_error = Some(e.to_string());
                }
            }
        });
        systemd::status(&self.shared.summary());
    }
}
