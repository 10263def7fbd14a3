//! `flexsync run`: the service.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::api::auth::Secret;
use crate::audit::AuditLog;
use crate::daemon::{self, Settings, schedule::Pacing};
use crate::metrics::Metrics;

use super::connect::ConnectArgs;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Desired-state files or directories to keep converged. Changes are
    /// picked up on their own (file events, plus a periodic re-read).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Period between passes per team, which repairs drift (e.g. 30s, 10m,
    /// 1h); ±10% jitter is added.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Address of /healthz, /readyz, /metrics, /status and /snapshot.
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: String,
    /// Report-only drift detection: plan every pass, export drift as metrics
    /// and logs, apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Serve /snapshot and /snapshot/{team} (the latest observed state, for
    /// pull-request previews), to requests bearing the token in FILE.
    #[arg(long, value_name = "FILE")]
    pub snapshot_token_file: Option<PathBuf>,
    /// Append one JSON line per write to FILE. Default: .flexsync/audit.jsonl
    /// with --sandbox, else ~/.local/state/flexsync/audit.jsonl.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// How long the service trusts its own writes over a team-wide list
    /// that has not caught up yet (the API is eventually consistent).
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub consistency_window: Duration,
    /// Re-read the files this often even without file events (lost events,
    /// network filesystems).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub reread: Duration,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s.parse().map_err(|_| {
        format!("{s:?} is not a duration: write a number and a unit, like 30s, 10m or 1h")
    })?;
    let d = Duration::try_from(d).map_err(|_| format!("{s:?} must not be negative"))?;
    if d.is_zero() {
        return Err(format!("{s:?} must be longer than zero"));
    }
    Ok(d)
}

pub async fn run(args: RunArgs, connect: &ConnectArgs) -> Result<u8, Error> {
    let snapshot_token = match &args.snapshot_token_file {
        Some(path) => {
            let token = super::connect::read_secret_file(path, "--snapshot-token-file")?;
            let token = token.trim().to_owned();
            if token.len() < 16 {
                return Err(Error::Input(format!(
                    "the snapshot token in {} is too short (at least 16 characters)",
                    path.display()
                )));
            }
            Some(Secret::new(token))
        }
        None => None,
    };
    let metrics = Arc::new(Metrics::new());
    let conn = connect.connect_observed(Some(metrics.clone())).await?;
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| super::apply::default_audit_log(connect));
    let audit = Arc::new(AuditLog::open(&audit_path).map_err(|e| {
        Error::Input(format!(
            "cannot open the audit log {}: {e}",
            audit_path.display()
        ))
    })?);
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| Error::Input(format!("cannot listen on {}: {e}", args.listen)))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, dry_run = args.dry_run, interval = ?args.interval, "serving /healthz /readyz /metrics /status");
    let settings = Settings {
        paths: args.paths,
        pacing: Pacing::new(args.interval),
        dry_run: args.dry_run,
        consistency_window: args.consistency_window,
        reread_every: args.reread,
        shutdown_grace: Duration::from_secs(25),
        audit,
        snapshot_token,
    };
    let shutdown = CancellationToken::new();
    daemon::cancel_on_termination(shutdown.clone());
    daemon::run(settings, conn.client.clone(), metrics, listener, shutdown).await?;
    drop(conn);
    tracing::info!("stopped");
    Ok(0)
}
