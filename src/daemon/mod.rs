//! `flexsync run`: the long-running reconciler.
//!
//! - [`schedule`]: when each team runs next (pure: backoff, degraded pace);
//! - [`consistency`]: our own writes laid over lagging reads (pure);
//! - [`reconcile`]: one pass of one team;
//! - [`watch`]: file events → reload hints;
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`, `/snapshot`;
//! - [`state`]: what the controller shares with the endpoints;
//! - [`systemd`]: READY, STATUS, WATCHDOG, STOPPING.
//!
//! The controller below owns all per-team state and is the only writer of
//! schedules. At most one pass per team runs at a time; triggers arriving
//! meanwhile merge into the next pass. After shutdown starts, no new pass
//! or write begins; running passes finish their write in flight.

pub mod consistency;
pub mod http;
pub mod reconcile;
pub mod schedule;
pub mod state;
pub mod systemd;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::Client;
use crate::api::auth::Secret;
use crate::audit::AuditLog;
use crate::config;
use crate::metrics::{self, Metrics};
use crate::model::{Desired, TeamId};
use consistency::Expectations;
use reconcile::{Pass, PassResult};
use schedule::{Pacing, TeamSchedule};
use state::Shared;

/// How the service runs.
pub struct Settings {
    pub paths: Vec<PathBuf>,
    pub pacing: Pacing,
    pub dry_run: bool,
    /// How long our own writes are trusted over a lagging list.
    pub consistency_window: Duration,
    /// Files are re-read this often even without events (lost inotify
    /// events, network filesystems).
    pub reread_every: Duration,
    /// How long shutdown waits for passes to finish their write.
    pub shutdown_grace: Duration,
    pub audit: Arc<AuditLog>,
    pub snapshot_token: Option<Secret>,
}

/// Per-team state owned by the controller.
struct TeamRuntime {
    schedule: TeamSchedule,
    /// `None` while a pass holds them.
    expectations: Option<Expectations>,
    known_users: Option<u64>,
}

/// The declaration in force.
struct InForce {
    desired: Desired,
    digest: String,
    git_commit: Option<String>,
}

/// Runs until `shutdown` is cancelled, then stops gracefully.
pub async fn run(
    settings: Settings,
    client: Arc<Client>,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        dry_run: settings.dry_run,
        ..Shared::default()
    });
    let app = http::router(http::AppState {
        shared: shared.clone(),
        metrics: metrics.clone(),
        snapshot_token: settings.snapshot_token.clone(),
    });
    let server_stop = shutdown.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(server_stop.cancelled_owned())
            .await
    });

    let (tx, mut changes) = tokio::sync::mpsc::channel(1);
    let _watcher = match watch::watch(&settings.paths, tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the declaration; relying on periodic re-reads");
            None
        }
    };
    let mut hangups = hangup_signals();

    let mut in_force: Option<InForce> = None;
    let mut teams: BTreeMap<TeamId, TeamRuntime> = BTreeMap::new();
    let mut running: tokio::task::JoinSet<PassResult> = tokio::task::JoinSet::new();
    let mut busy: BTreeSet<TeamId> = BTreeSet::new();
    let mut announced_ready = false;
    let watchdog = systemd::watchdog_period();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut reread = tokio::time::interval(settings.reread_every);
    reread.tick().await;

    reload(
        &settings,
        &shared,
        &metrics,
        &client,
        &mut in_force,
        &mut teams,
        true,
    );
    loop {
        if !announced_ready && in_force.is_some() {
            systemd::ready(&shared.summary());
            announced_ready = true;
            tracing::info!(summary = %shared.summary(), "flexsync is running");
        }
        // Start every due pass that is not already running.
        if !shutdown.is_cancelled()
            && let Some(force) = &in_force
        {
            let now = client.clock().now();
            let due: Vec<TeamId> = teams
                .iter()
                .filter(|(id, t)| t.schedule.due(now) && !busy.contains(*id))
                .map(|(id, _)| id.clone())
                .collect();
            if !due.is_empty() {
                // Admin roles may have changed since the last cycle.
                client.forget_teams().await;
            }
            for id in due {
                let (Some(team), Some(rt)) = (force.desired.teams.get(&id), teams.get_mut(&id))
                else {
                    continue;
                };
                let pass = Pass {
                    team: team.clone(),
                    expectations: rt.expectations.take().unwrap_or_default(),
                    known_users: rt.known_users,
                    client: client.clone(),
                    metrics: metrics.clone(),
                    shared: shared.clone(),
                    audit: settings.audit.clone(),
                    dry_run: settings.dry_run,
                    consistency_window: settings.consistency_window,
                    cancel: shutdown.clone(),
                    desired_digest: force.digest.clone(),
                    git_commit: force.git_commit.clone(),
                };
                busy.insert(id);
                running.spawn(reconcile::run(pass));
            }
        }
        let next_wake = teams
            .iter()
            .filter(|(id, _)| !busy.contains(*id))
            .map(|(_, t)| t.schedule.next_at)
            .min();
        let sleep_for = next_wake
            .map(|at| {
                let d = at.duration_since(client.clock().now());
                Duration::try_from(d).unwrap_or(Duration::ZERO)
            })
            .unwrap_or(Duration::from_secs(3600))
            .max(Duration::from_millis(10));

        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(joined) = running.join_next(), if !running.is_empty() => {
                match joined {
                    Ok(result) => finish(result, &settings, &shared, &metrics, &client, &mut teams, &mut busy),
                    Err(e) => tracing::error!(error = %e, "a reconcile task failed"),
                }
                systemd::status(&shared.summary());
            }
            Some(()) = changes.recv() => {
                reload(&settings, &shared, &metrics, &client, &mut in_force, &mut teams, false);
            }
            Some(()) = hangups.recv() => {
                tracing::info!("SIGHUP: re-reading the declaration and reconciling every team");
                reload(&settings, &shared, &metrics, &client, &mut in_force, &mut teams, true);
            }
            _ = reread.tick() => {
                reload(&settings, &shared, &metrics, &client, &mut in_force, &mut teams, false);
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => systemd::ping(),
            _ = tokio::time::sleep(sleep_for) => {}
        }
    }

    systemd::stopping();
    tracing::info!(
        running = running.len(),
        "shutting down: no new writes; finishing the ones in flight"
    );
    let drained = tokio::time::timeout(settings.shutdown_grace, async {
        while let Some(joined) = running.join_next().await {
            if let Ok(result) = joined {
                finish(
                    result, &settings, &shared, &metrics, &client, &mut teams, &mut busy,
                );
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over; abandoning passes still running");
        running.abort_all();
    }
    match server.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// A pass ended: schedule the team's next one.
fn finish(
    result: PassResult,
    settings: &Settings,
    shared: &Shared,
    metrics: &Metrics,
    client: &Client,
    teams: &mut BTreeMap<TeamId, TeamRuntime>,
    busy: &mut BTreeSet<TeamId>,
) {
    busy.remove(&result.team);
    let Some(rt) = teams.get_mut(&result.team) else {
        // The team left the declaration while its pass ran.
        return;
    };
    rt.expectations = Some(result.expectations);
    rt.known_users = result.known_users;
    let now = client.clock().now();
    match &result.outcome {
        Ok(()) => rt.schedule.succeeded(now, &settings.pacing, jitter_unit()),
        Err(e) => {
            rt.schedule.failed(now, &settings.pacing);
            tracing::warn!(team = %result.team, failures = rt.schedule.failures, degraded = rt.schedule.degraded, next_run = %rt.schedule.next_at, error = %e, "reconcile failed");
        }
    }
    let schedule = rt.schedule;
    metrics
        .degraded
        .get_or_create(&metrics::team(&result.team.0))
        .set(i64::from(schedule.degraded));
    shared.update_team(&result.team, |t| {
        t.next_run = Some(schedule.next_at);
        t.failures = schedule.failures;
        match &result.outcome {
            Ok(()) => t.last_success = Some(now),
            Err(e) => {
                t.state = if schedule.degraded {
                    "degraded"
                } else {
                    "failing"
                }
                .into();
                t.last_error = Some(e.clone());
            }
        }
    });
}

/// Re-reads the files. A valid change replaces the declaration in force and
/// makes every team due; an invalid one is reported and changes nothing.
fn reload(
    settings: &Settings,
    shared: &Shared,
    metrics: &Metrics,
    client: &Client,
    in_force: &mut Option<InForce>,
    teams: &mut BTreeMap<TeamId, TeamRuntime>,
    force: bool,
) {
    let loaded = config::load(&settings.paths);
    let now = client.clock().now();
    let digest = loaded.digest();
    if !loaded.is_valid() {
        let same_error = shared.declaration().errors == loaded.diagnostics;
        if !same_error {
            metrics.config_load_errors.inc();
            let consequence = if in_force.is_some() {
                "invalid declaration; keeping the last good one"
            } else {
                "invalid declaration; nothing is applied until it is fixed"
            };
            for d in &loaded.diagnostics {
                tracing::error!(place = %d.place(), error = %d.message, "{consequence}");
            }
        }
        metrics.config_valid.set(0);
        let mut decl = shared
            .declaration
            .write()
            .unwrap_or_else(|p| p.into_inner());
        decl.valid = false;
        decl.errors = loaded.diagnostics;
        return;
    }
    metrics.config_valid.set(1);
    let changed = in_force.as_ref().is_none_or(|f| f.digest != digest);
    {
        let mut decl = shared
            .declaration
            .write()
            .unwrap_or_else(|p| p.into_inner());
        decl.valid = true;
        decl.errors.clear();
    }
    if !changed && !force {
        return;
    }
    if changed {
        tracing::info!(digest = %digest, teams = loaded.desired.teams.len(), "declaration loaded");
    }
    let git_commit = settings
        .paths
        .first()
        .and_then(|p| crate::audit::git_commit(p));
    // Teams that left the declaration are forgotten; new ones are due now.
    teams.retain(|id, _| loaded.desired.teams.contains_key(id));
    {
        let mut statuses = shared.teams.write().unwrap_or_else(|p| p.into_inner());
        statuses.retain(|id, _| loaded.desired.teams.contains_key(id));
    }
    for id in loaded.desired.teams.keys() {
        let rt = teams.entry(id.clone()).or_insert_with(|| TeamRuntime {
            schedule: TeamSchedule::new(now),
            expectations: Some(Expectations::default()),
            known_users: None,
        });
        rt.schedule.trigger(now);
        shared.update_team(id, |_| {});
    }
    {
        let mut decl = shared
            .declaration
            .write()
            .unwrap_or_else(|p| p.into_inner());
        decl.loaded = true;
        decl.digest = Some(digest.clone());
        decl.loaded_at = Some(now);
        decl.git_commit = git_commit.clone();
    }
    *in_force = Some(InForce {
        desired: loaded.desired,
        digest,
        git_commit,
    });
}

fn jitter_unit() -> f64 {
    let mut b = [0u8; 4];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(b)) / (f64::from(u32::MAX) + 1.0)
}

/// SIGHUP as a stream; never fires where signals are unavailable.
fn hangup_signals() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = tx.try_send(());
                }
            });
        }
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_termination(token: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let Ok(mut term) = signal(SignalKind::terminate()) else {
                let _ = tokio::signal::ctrl_c().await;
                token.cancel();
                return;
            };
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT"),
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        token.cancel();
    });
}
