//! `flexsync run`: the service.

use std::io::Write;
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
    /// 1h; at most 24h); ±10% jitter is added.
    #[arg(long, default_value = "10m", value_parser = parse_duration, value_name = "DURATION")]
    pub interval: Duration,
    /// Address of /healthz, /readyz, /metrics, /status and /snapshot
    /// (http, or https with --tls-cert and --tls-key).
    #[arg(long, default_value = "127.0.0.1:9464", value_name = "ADDR")]
    pub listen: String,
    /// Report-only drift detection: plan every pass, export drift as metrics
    /// and logs, apply nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Serve /snapshot and /snapshot/{team} (the latest observed state, for
    /// pull-request previews), to requests bearing the token in FILE.
    /// /snapshot?teams=ID,ID answers exactly those teams: declared ones as
    /// last read (with the service's own writes), others the login
    /// administers read on demand, and the rest listed as missing with why.
    #[arg(long, value_name = "FILE")]
    pub snapshot_token_file: Option<PathBuf>,
    /// Serve every endpoint over TLS (HTTPS) with the PEM certificate chain
    /// in FILE; needs --tls-key. Both files are read again when they change
    /// (e.g. a renewed Kubernetes Secret), from the next connection on; a
    /// pair that cannot be used is logged and the previous one kept.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Append one JSON line per write to FILE. Default: .flexsync/audit.jsonl
    /// with --sandbox, else ~/.local/state/flexsync/audit.jsonl.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// How long the service trusts its own writes over a team-wide list
    /// that has not caught up yet (the API is eventually consistent; at
    /// most 24h).
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub consistency_window: Duration,
    /// Re-read the files this often even without file events (lost events,
    /// network filesystems; at most 24h).
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub reread: Duration,
    /// A changed declaration is acted on only once the files read the same
    /// this far apart (a half-written file or a checkout in progress is
    /// never applied).
    #[arg(long, default_value = "400ms", value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Duration,
    /// After a team's declaration changes (and at start), its unassignments
    /// wait this long, and are made then only if the declaration still asks
    /// for them: a bad edit reverted within it never removes anyone.
    /// Invitations and assignments do not wait. 0s turns it off.
    #[arg(long, default_value = "60s", value_parser = parse_delay, value_name = "DURATION")]
    pub removal_delay: Duration,
    #[command(flatten)]
    pub notify: super::notify::NotifyArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Check the setup and exit instead of serving: parse every flag, load
    /// and validate the declaration (exit 1 with its diagnostics if
    /// invalid), set up the HTTP client (CA certificates), check that the
    /// token file's and the audit log's
    /// directories are writable (by creating and removing an empty probe
    /// file; the token file itself is only read, never created) and the
    /// secret files readable, and print the address and endpoints it would
    /// serve. No API call, no listener. For deployment checks: run it with
    /// the service's own flags, as its user.
    #[arg(long)]
    pub check: bool,
}

fn parse_delay(s: &str) -> Result<Duration, String> {
    if s.trim().trim_end_matches(|c: char| c.is_ascii_alphabetic()) == "0" {
        return Ok(Duration::ZERO);
    }
    parse_duration(s)
}

/// How long SIGTERM waits for the writes in flight; supervisors must allow
/// more (systemd's TimeoutStopSec, Kubernetes' terminationGracePeriodSeconds).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(25);

/// The longest `--interval`, `--reread` and `--consistency-window`. A day
/// is already far slower than drift repair is useful, and a bound keeps
/// the service's arithmetic on them (a degraded team waits 4 intervals,
/// deadlines are `now + duration`) far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

fn parse_duration(s: &str) -> Result<Duration, String> {
    const SHAPE: &str = "write a number and a unit, like 30s, 10m or 1h";
    // A SignedDuration takes hours and smaller; days are read as 24 hours
    // (there is no calendar here), so `1000d` is refused for its length
    // rather than for its spelling.
    let d = match s.parse::<jiff::SignedDuration>() {
        Ok(d) => d,
        Err(_) => s
            .parse::<jiff::Span>()
            .and_then(|span| span.to_duration(jiff::SpanRelativeTo::days_are_24_hours()))
            .map_err(|_| format!("{s:?} is not a duration: {SHAPE}"))?,
    };
    let d = Duration::try_from(d).map_err(|_| format!("{s:?} must not be negative"))?;
    if d.is_zero() {
        return Err(format!("{s:?} must be longer than zero"));
    }
    if d > MAX_DURATION {
        return Err(format!(
            "{s:?} is longer than 24h, the longest flexsync accepts"
        ));
    }
    Ok(d)
}

fn snapshot_token(args: &RunArgs) -> Result<Option<Secret>, Error> {
    let Some(path) = &args.snapshot_token_file else {
        return Ok(None);
    };
    let token = super::connect::read_secret_file(path, "--snapshot-token-file")?;
    let token = token.trim().to_owned();
    if token.len() < 16 {
        return Err(Error::file(
            "the snapshot token in",
            path,
            "too short (at least 16 characters)",
        ));
    }
    Ok(Some(Secret::new(token)))
}

pub async fn run(args: RunArgs, connect: &ConnectArgs) -> Result<u8, Error> {
    if args.check {
        return check(&args, connect);
    }
    // Before connecting: a webhook that cannot work is a reason not to start.
    let notify = args.notify.settings()?;
    let snapshot_token = snapshot_token(&args)?;
    let metrics = Arc::new(Metrics::new());
    let notify = daemon::notify::start(notify, metrics.clone());
    let conn = connect.connect_observed(Some(metrics.clone())).await?;
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| super::apply::default_audit_log(connect));
    let audit = Arc::new(
        AuditLog::open(&audit_path)
            .map_err(|e| Error::file("cannot open the audit log", &audit_path, e))?,
    );
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(
            daemon::tls::Reloading::new(daemon::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .map_err(|e| Error::File {
                context: "--tls-cert/--tls-key".into(),
                cause: e.into(),
            })?,
        )),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|cause| Error::Listen {
            addr: args.listen.clone(),
            cause,
        })?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(%addr, scheme, dry_run = args.dry_run, interval = %jiff::SignedDuration::try_from(args.interval).unwrap_or_default(), "serving /healthz /readyz /metrics /status");
    if snapshot_token.is_some() && tls.is_none() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "/snapshot is served over plain HTTP beyond loopback: people's addresses and the bearer token cross the network in clear text; add --tls-cert and --tls-key, or put a TLS proxy in front and listen on loopback");
    }
    let settings = Settings {
        paths: args.paths,
        pacing: Pacing::new(args.interval),
        dry_run: args.dry_run,
        consistency_window: args.consistency_window,
        reread_every: args.reread,
        settle: args.settle,
        removal_delay: args.removal_delay,
        shutdown_grace: SHUTDOWN_GRACE,
        audit,
        snapshot_token,
        notify,
        tls,
    };
    let shutdown = CancellationToken::new();
    crate::signals::cancel_on_termination(shutdown.clone());
    daemon::run(settings, conn.client.clone(), metrics, listener, shutdown).await?;
    drop(conn);
    tracing::info!("stopped");
    Ok(0)
}

/// `run --check`: what a start would read or need, without serving. Each
/// line printed is `what: value`, so scripts can pick lines out.
fn check(args: &RunArgs, connect: &ConnectArgs) -> Result<u8, Error> {
    let loaded = super::load_valid(&args.paths)?;
    let users: usize = loaded.desired.teams.values().map(|t| t.users.len()).sum();
    let mut lines = vec![format!(
        "declaration: {} file(s), {} team(s), {users} user(s)",
        loaded.files.len(),
        loaded.desired.teams.len()
    )];
    let snapshot = snapshot_token(args)?.is_some();

    lines.extend(check_api(connect)?);
    let audit = args
        .audit_log
        .clone()
        .unwrap_or_else(|| super::apply::default_audit_log(connect));
    usable_dir(&audit, "--audit-log")?;
    if audit.exists() {
        // Appending is all a start does to it; opening writes nothing.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&audit)
            .map_err(|e| Error::file("--audit-log", &audit, e))?;
    }
    lines.push(format!("audit log: {}", audit.display()));

    let addrs: Vec<_> = std::net::ToSocketAddrs::to_socket_addrs(args.listen.as_str())
        .map_err(|cause| Error::Listen {
            addr: args.listen.clone(),
            cause,
        })?
        .map(|a| a.to_string())
        .collect();
    lines.push(format!("listen: {}", addrs.join(" ")));
    let mut endpoints = daemon::http::ENDPOINTS.to_vec();
    if snapshot {
        endpoints.extend(daemon::http::SNAPSHOT_ENDPOINTS);
    }
    lines.push(format!("endpoints: {}", endpoints.join(" ")));
    lines.push(format!("shutdown grace: {}s", SHUTDOWN_GRACE.as_secs()));

    let mut out = std::io::stdout().lock();
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(0)
}

/// `run --check`'s lines about the API and the login: the URL, the app and
/// the token file are usable (no connection is made).
fn check_api(connect: &ConnectArgs) -> Result<Vec<String>, Error> {
    let mut lines = Vec::new();
    if connect.sandbox {
        lines.push("api: the embedded sandbox (--sandbox)".into());
        let state = std::path::Path::new(super::sandbox::SANDBOX_STATE);
        usable_dir(state, "the sandbox's state")?;
    } else {
        let config = crate::api::ClientConfig::new(&connect.api_url)?;
        config.oauth_urls()?;
        // Building the client reads the system's CA certificates; it makes
        // no connection.
        crate::api::http_client(&config)?;
        lines.push(format!("api: {}", connect.api_url));
        if std::env::var_os("FLEXSYNC_ACCESS_TOKEN").is_some_and(|t| !t.is_empty()) {
            lines.push("login: FLEXSYNC_ACCESS_TOKEN (never refreshed)".into());
        } else {
            if connect.client_id.as_deref().is_none_or(str::is_empty) {
                return Err(Error::Usage(
                    "no APS app: set FLEXSYNC_CLIENT_ID (or --client-id)".into(),
                ));
            }
            match &connect.client_secret_file {
                Some(path) => {
                    super::connect::read_secret_file(path, "--client-secret-file")?;
                }
                None if std::env::var_os("FLEXSYNC_CLIENT_SECRET").is_some() => {}
                None => {
                    return Err(Error::Usage(
                        "no client secret: set --client-secret-file or FLEXSYNC_CLIENT_SECRET"
                            .into(),
                    ));
                }
            }
            let token_file = connect
                .token_file
                .clone()
                .unwrap_or_else(super::connect::default_token_file);
            usable_dir(&token_file, "--token-file")?;
            lines.push(format!(
                "token file: {} ({})",
                token_file.display(),
                token_state(&token_file)?
            ));
        }
    }
    Ok(lines)
}

/// Whether the file's directory can take it: the directory (or, when
/// missing, the nearest existing ancestor, under which the service would
/// create it) accepts a new file. Probing with a real file answers for
/// permissions, ACLs, read-only mounts and sandboxes (ProtectSystem=) alike.
fn usable_dir(file: &std::path::Path, what: &str) -> Result<(), Error> {
    let parent = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let mut dir = parent;
    while !dir.exists() {
        match dir.parent().filter(|d| !d.as_os_str().is_empty()) {
            Some(up) => dir = up,
            None => {
                dir = std::path::Path::new(".");
                break;
            }
        }
    }
    let probe = dir.join(format!(".flexsync-check-{}", std::process::id()));
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe);
    match created {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => {
            let missing = if dir == parent {
                String::new()
            } else {
                format!(" ({} does not exist)", parent.display())
            };
            Err(Error::file(
                what,
                file,
                format!("cannot create files in {}{missing}: {e}", dir.display()),
            ))
        }
    }
}

/// The token file is read (a start reads it too), never created.
fn token_state(path: &std::path::Path) -> Result<&'static str, Error> {
    if !path.exists() {
        return Ok("absent: install one with `flexsync login`");
    }
    let text = crate::input_file::read_text_capped(path, crate::api::auth::MAX_TOKEN_FILE_BYTES)
        .map_err(|e| Error::file("--token-file", path, e))?;
    let tokens = crate::api::auth::Tokens::from_file_bytes(text.as_bytes())
        .map_err(|e| Error::file("--token-file", path, e))?;
    Ok(if tokens.refresh_token.is_some() {
        "present"
    } else {
        "present, without a refresh token: it ends within the hour"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_bounded_with_a_clear_message() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("24h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("1d"), Ok(MAX_DURATION));
        for long in ["1000d", "25h", "86401s", "2w", "100000000000h"] {
            let err = parse_duration(long).unwrap_err();
            assert!(err.contains("longer than 24h"), "{long}: {err}");
        }
        assert!(
            parse_duration("0s")
                .unwrap_err()
                .contains("longer than zero")
        );
        assert!(parse_duration("-5m").unwrap_err().contains("negative"));
        assert!(
            parse_duration("soon")
                .unwrap_err()
                .contains("not a duration")
        );
    }
}
