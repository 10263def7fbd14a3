//! `flexsync sandbox serve|reset`: the local Team Admin API simulator.

use std::path::PathBuf;

use crate::Error;
use crate::sandbox::{Sandbox, SandboxConfig, SandboxError, Seed, serve};

use super::connect::SANDBOX_STATE;

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
    },
}

/// A state file another process owns gets a next step; other errors speak
/// for themselves.
fn state_error(e: SandboxError) -> Error {
    match e {
        SandboxError::Locked { .. } => Error::Input(format!("{e}. Stop that process first.")),
        e => Error::Input(e.to_string()),
    }
}

fn seed(path: Option<&PathBuf>) -> Result<Seed, Error> {
    match path {
        Some(p) => Seed::from_file(p),
        None => Seed::bundled(),
    }
    .map_err(|e| Error::Input(e.to_string()))
}

pub fn run(cmd: SandboxCommand) -> Result<u8, Error> {
    match cmd {
        SandboxCommand::Reset {
            state,
            seed: seed_file,
        } => {
            let seed = seed(seed_file.as_ref())?;
            if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Sandbox::reset(&state, &seed).map_err(state_error)?;
            eprintln!("Sandbox state {} restored from the seed.", state.display());
            Ok(0)
        }
        SandboxCommand::Serve {
            listen,
            state,
            seed: seed_file,
            admin_endpoints,
        } => {
            let seed = seed(seed_file.as_ref())?;
            let config = SandboxConfig {
                admin_endpoints,
                ..SandboxConfig::default()
            };
            let sandbox = match &state {
                Some(path) => Sandbox::open(path, &seed, config).map_err(state_error)?,
                None => Sandbox::new(&seed, config),
            };
            super::runtime()?.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .map_err(|e| Error::Input(format!("cannot listen on {listen}: {e}")))?;
                let addr = listener.local_addr()?;
                eprintln!("Sandbox serving http://{addr}/team-admin/v1 (Ctrl-C to stop)");
                let stop = tokio_util::sync::CancellationToken::new();
                crate::daemon::cancel_on_termination(stop.clone());
                serve(listener, sandbox, stop.cancelled_owned()).await?;
                Ok(0)
            })
        }
    }
}
