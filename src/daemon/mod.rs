//! `flexsync run`: the long-running reconciler.
//!
//! - [`controller`]: which declaration is in force, when passes start,
//!   what their outcomes change;
//! - [`schedule`]: when each team runs next (pure: backoff, degraded pace);
//! - [`consistency`]: our own writes laid over lagging reads (pure);
//! - [`reconcile`]: one pass of one team;
//! - [`watch`]: file events → reload hints;
//! - [`http`]: `/healthz`, `/readyz`, `/metrics`, `/status`, `/snapshot`;
//! - [`notify`]: webhooks told when a team degrades, a guard blocks, seats
//!   run out, the login is lost (deduplicated, rate-limited, never waited on);
//! - [`previews`]: what `/snapshot` serves (own writes laid over each read);
//! - [`state`]: what the controller shares with the endpoints;
//! - [`tls`]: the endpoints over TLS, the certificate reloaded when it changes;
//! - [`systemd`]: READY, STATUS, WATCHDOG, STOPPING;
//! - [`memory`]: free pages handed back once the passes are over.
//!
//! The controller owns all per-team state and is the only writer of
//! schedules. At most one pass per team runs at a time; triggers arriving
//! meanwhile make the team run again right after it. After shutdown starts,
//! no new pass or write begins; running passes finish their write in flight.

pub mod consistency;
mod controller;
pub mod http;
pub mod memory;
pub mod notify;
pub mod previews;
pub mod reconcile;
pub mod schedule;
pub mod state;
pub mod systemd;
pub mod tls;
pub mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::Client;
use crate::api::auth::Secret;
use crate::audit::AuditLog;
use crate::metrics::Metrics;
use controller::{Controller, Due};
use schedule::Pacing;
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
    /// Changed files must read the same this long apart before they are
    /// acted on.
    pub settle: Duration,
    /// After a team's declaration changes, its unassignments wait this long
    /// (and are made then only if a fresh plan still wants them).
    pub removal_delay: Duration,
    /// How long shutdown waits for passes to finish their write.
    pub shutdown_grace: Duration,
    pub audit: Arc<AuditLog>,
    pub snapshot_token: Option<Secret>,
    /// Where conditions people must hear about are reported.
    pub notify: notify::Notifier,
    /// Serve the endpoints over TLS with this certificate; plain HTTP
    /// without.
    pub tls: Option<Arc<tls::Reloading>>,
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
    let server = serve(&settings, &client, &metrics, &shared, listener, &shutdown);
    let shutdown_grace = settings.shutdown_grace;
    let (tx, changes) = tokio::sync::mpsc::channel(1);
    let _watcher = match watch::watch(&settings.paths, tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the declaration; relying on periodic re-reads");
            None
        }
    };
    // Before the first read: SIGHUP's default action would end the process.
    let hangups = hangup_signals();
    let reread_every = settings.reread_every;
    let mut ctl = Controller::new(settings, shared.clone(), metrics, client, shutdown.clone());
    ctl.look(Due::Every).await;
    // Serving whatever the declaration: an invalid one is reported on
    // /status, /readyz and metrics, and picked up once fixed; a start that
    // waited for it would hang `systemctl start` and restart forever.
    shared.mark_started();
    shared.beat();
    systemd::ready("serving; reading the declaration");
    tracing::info!("flexsync is running");
    let events = Events {
        changes,
        hangups,
        reread_every,
    };
    control_loop(&mut ctl, &shared, events, &shutdown).await;
    drain(&mut ctl, shutdown_grace).await;
    match server.await {
        Ok(result) => result,
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// The endpoints, over TLS when configured, until `shutdown`.
fn serve(
    settings: &Settings,
    client: &Arc<Client>,
    metrics: &Arc<Metrics>,
    shared: &Arc<Shared>,
    listener: TcpListener,
    shutdown: &CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>> {
    let app = http::router(http::AppState {
        shared: shared.clone(),
        metrics: metrics.clone(),
        snapshot_token: settings.snapshot_token.clone(),
        on_demand: Arc::new(previews::OnDemand::new(client.clone())),
    });
    let server_stop = shutdown.clone();
    match settings.tls.clone() {
        Some(tls) => tokio::spawn(tls::serve(listener, app, tls, server_stop)),
        None => tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(server_stop.cancelled_owned())
                .await
        }),
    }
}

/// What wakes the controller besides its own schedule.
struct Events {
    /// File events (hints; the controller re-reads and compares).
    changes: tokio::sync::mpsc::Receiver<()>,
    hangups: tokio::sync::mpsc::Receiver<()>,
    reread_every: Duration,
}

/// The controller's loop: passes as they are due, their outcomes, file
/// events, SIGHUP, periodic re-reads and the watchdog, until `shutdown`.
async fn control_loop(
    ctl: &mut Controller,
    shared: &Shared,
    events: Events,
    shutdown: &CancellationToken,
) {
    let Events {
        mut changes,
        mut hangups,
        reread_every,
    } = events;
    let watchdog = systemd::watchdog_period();
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    let mut reread = tokio::time::interval(reread_every);
    reread.tick().await;
    let mut heartbeat = tokio::time::interval(http::LIVENESS_LIMIT / 6);
    loop {
        shared.beat();
        ctl.start_due().await;
        let sleep_for = ctl.sleep_for();
        let look_at = ctl.next_look();

        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(joined) = ctl.running.join_next(), if !ctl.running.is_empty() => {
                match joined {
                    Ok(result) => ctl.finish(result),
                    Err(e) => tracing::error!(error = %e, "a reconcile task failed"),
                }
                if ctl.running.is_empty() {
                    memory::release_free_memory();
                }
            }
            Some(()) = changes.recv() => ctl.file_event(),
            Some(()) = hangups.recv() => {
                tracing::info!("SIGHUP: re-reading the declaration and reconciling every team");
                ctl.look(Due::Every).await;
            }
            _ = reread.tick() => ctl.reread().await,
            _ = sleep_until(look_at), if look_at.is_some() => ctl.look(Due::Changed).await,
            _ = watchdog_tick.tick(), if watchdog.is_some() => systemd::ping(),
            _ = heartbeat.tick() => {}
            _ = tokio::time::sleep(sleep_for) => {}
        }
    }
}

/// Shutdown: no new pass or write; passes finish the write in flight
/// within the grace period, then are abandoned.
async fn drain(ctl: &mut Controller, grace: Duration) {
    systemd::stopping();
    tracing::info!(
        running = ctl.running.len(),
        "shutting down: no new writes; finishing the ones in flight"
    );
    let drained = tokio::time::timeout(grace, async {
        while let Some(joined) = ctl.running.join_next().await {
            if let Ok(result) = joined {
                ctl.finish(result);
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("shutdown grace period over; abandoning passes still running");
        ctl.running.abort_all();
    }
}

async fn sleep_until(at: Option<std::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn jitter_unit() -> f64 {
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
