//! `flexsync sandbox serve|reset`: the local Team Admin API simulator.

use std::path::{Path, PathBuf};

use flexsync_sandbox::{Sandbox, SandboxConfig, SandboxError, Seed, serve};

use crate::Error;

/// Where the embedded sandbox keeps its state, relative to the working
/// directory (ignored by git).
pub const SANDBOX_STATE: &str = ".flexsync/sandbox.json";

#[derive(Debug, clap::Subcommand)]
pub enum SandboxCommand {
    /// Serve the sandbox over HTTP until Ctrl-C or SIGTERM.
    ///
    /// API under /team-admin/v1, OAuth under /authentication/v2 (client id
    /// flexsync-sandbox, secret flexsync-sandbox-secret). See
    /// docs/sandbox.md.
    Serve {
        /// Address to listen on. Loopback by default: the sandbox has no
        /// real security.
        #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
        listen: String,
        /// State file, created from the seed when missing; every change is
        /// saved to it. Without it, state lives in memory only. The server
        /// owns the file while it runs: `--sandbox` and `sandbox reset` on
        /// the same file are refused until it stops.
        #[arg(long, value_name = "FILE")]
        state: Option<PathBuf>,
        /// Seed YAML (teams, users, pools, assignments). Default: the
        /// bundled seed.
        #[arg(long, value_name = "FILE")]
        seed: Option<PathBuf>,
        /// Start from a snapshot of live teams (`flexsync snapshot`, or the
        /// service's /snapshot) instead of a seed, to rehearse a change on
        /// a copy of the real team: apply it here, inspect, throw it away.
        /// The admin (Ada, the default login) administers every team of it.
        /// With --state, the file must not exist yet.
        #[arg(long, value_name = "FILE", conflicts_with = "seed")]
        from_snapshot: Option<PathBuf>,
        /// Mount the /_sandbox/ endpoints (clock, faults, drift, state).
        #[arg(long)]
        admin_endpoints: bool,
    },
    /// Restore the embedded sandbox's state (.flexsync/sandbox.json, or
    /// --state) from the seed. Refused while a process uses that state.
    Reset {
        /// The state file to overwrite.
        #[arg(long, value_name = "FILE", default_value = SANDBOX_STATE)]
        state: PathBuf,
        /// Seed YAML to restore from. Default: the bundled seed.
        #[arg(long, value_name = "FILE")]
        seed: Option<PathBuf>,
        /// Restore from a snapshot of live teams instead of a seed.
        #[arg(long, value_name = "FILE", conflicts_with = "seed")]
        from_snapshot: Option<PathBuf>,
    },
}

/// A state file another process owns gets a next step; other errors speak
/// for themselves.
fn state_error(e: SandboxError) -> Error {
    let next_step = match e {
        SandboxError::Locked { .. } => ". Stop that process first.".to_owned(),
        _ => String::new(),
    };
    Error::Sandbox {
        error: e,
        next_step,
    }
}

fn seed(path: Option<&PathBuf>, snapshot: Option<&PathBuf>) -> Result<Seed, Error> {
    if let Some(file) = snapshot {
        return rehearsal_seed(file);
    }
    match path {
        Some(p) => Seed::from_file(p),
        None => Seed::bundled(),
    }
    .map_err(Error::from)
}

/// The world of a snapshot, saying on stderr what it holds and what could
/// not be copied exactly.
pub(super) fn rehearsal_seed(file: &Path) -> Result<Seed, Error> {
    let (seed, report) = crate::rehearsal::seed_from_file(file)?;
    let captured = report
        .captured_at
        .map(|t| format!(", captured {t}"))
        .unwrap_or_default();
    eprintln!(
        "Rehearsal: a sandbox copy of {} team(s), {} member(s), from {}{captured}; nothing \
         reaches Autodesk.",
        report.teams,
        report.members,
        file.display()
    );
    for note in &report.notes {
        eprintln!("  note: {note}");
    }
    Ok(seed)
}

pub fn run(cmd: SandboxCommand) -> Result<u8, Error> {
    match cmd {
        SandboxCommand::Reset {
            state,
            seed: seed_file,
            from_snapshot,
        } => {
            let seed = seed(seed_file.as_ref(), from_snapshot.as_ref())?;
            if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Sandbox::reset(&state, &seed).map_err(state_error)?;
            let from = if from_snapshot.is_some() {
                "the snapshot"
            } else {
                "the seed"
            };
            eprintln!("Sandbox state {} restored from {from}.", state.display());
            Ok(0)
        }
        SandboxCommand::Serve {
            listen,
            state,
            seed: seed_file,
            from_snapshot,
            admin_endpoints,
        } => {
            let seed = seed(seed_file.as_ref(), from_snapshot.as_ref())?;
            let config = SandboxConfig {
                admin_endpoints,
                ..SandboxConfig::default()
            };
            let sandbox = match &state {
                // A rehearsal starts from the snapshot, never from (or over)
                // an earlier state.
                Some(path) if from_snapshot.is_some() => {
                    Sandbox::create(path, &seed, config).map_err(state_error)?
                }
                Some(path) => Sandbox::open(path, &seed, config).map_err(state_error)?,
                None => Sandbox::new(&seed, config),
            };
            super::runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|cause| Error::Listen {
                        addr: listen.clone(),
                        cause,
                    })?;
                let addr = listener.local_addr()?;
                eprintln!("Sandbox serving http://{addr}/team-admin/v1 (Ctrl-C to stop)");
                let stop = tokio_util::sync::CancellationToken::new();
                crate::signals::cancel_on_termination(stop.clone());
                serve(listener, sandbox, stop.cancelled_owned()).await?;
                Ok(0)
            })
        }
    }
}
