//! The sandbox: a local HTTP simulator of Autodesk's Team Admin API v1 and its OAuth.
//!
//! It is the peer of flexsync's integration tests, the world `--sandbox` runs against,
//! and a place for admins to rehearse. It follows `team-admin-api.md`; where that says
//! [NOT FOUND] the behaviour is a [`Quirks`] knob (see `docs/sandbox.md`). It is a crate
//! of its own that depends on nothing of flexsync, so it shares no code with flexsync's
//! API client, and tests that pair them check the contract, not a shared assumption.
//!
//! # Layout
//! - `config`: [`SandboxConfig`] and every knob, including [`Quirks`].
//! - `clock`: the [`Clock`] trait, a real clock that can be moved, and a [`ManualClock`].
//! - `seed`: the YAML seed format and the bundled default ([`Seed`]).
//! - `rehearsal`: a world from a copy of live teams ([`TeamCopy`], [`Seed::from_team_copy`]).
//! - `state`: the world (accounts, teams, pools, groups, assignments) and its rules.
//! - `grants`: the OAuth codes and tokens issued, kept (and saved) with the world.
//! - `ids`: random identifiers: tokens, codes and minted request ids.
//! - `persist`: the JSON state file, written atomically.
//! - `read`: seed and state files read capped, regular files only ([`ReadError`]).
//! - `ratelimit`: fixed UTC-minute windows per team and per OAuth client.
//! - `problem`: Problem Details, request ids, APS and OAuth error bodies.
//! - `oauth`: `/authentication/v2/authorize` and `/authentication/v2/token`.
//! - `api`: the eight operations under `/team-admin/v1`.
//! - `faults`: which requests fail, and how (latency, 500/503, 429, dropped
//!   connections), decided deterministically; no HTTP.
//! - `admin`: `/_sandbox/` endpoints (off unless enabled).
//! - `server`: the router, the middleware that carries out the faults, and
//!   [`serve`].
//!
//! # Use
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use flexsync_sandbox::{Sandbox, SandboxConfig, Seed};
//! let sandbox = Sandbox::open(".flexsync/sandbox.json", &Seed::bundled()?, SandboxConfig::default())?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8787").await?;
//! // A CLI passes e.g. `async { let _ = tokio::signal::ctrl_c().await; }`.
//! let shutdown = std::future::pending::<()>();
//! flexsync_sandbox::serve(listener, sandbox, shutdown).await?;
//! # Ok(()) }
//! ```

mod admin;
mod api;
mod clock;
mod config;
mod faults;
mod grants;
mod ids;
mod oauth;
mod persist;
mod problem;
mod ratelimit;
mod read;
mod rehearsal;
mod seed;
mod server;
mod state;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use config::{
    AuthErrorFormat, AuthSettings, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, ForeignTeamFilter,
    Limits, OAuthClient, Precedence, Quirks, SandboxConfig, UnassignSuccess,
};
pub use faults::FaultSettings;
pub use persist::MAX_STATE_BYTES;
pub use read::ReadError;
pub use rehearsal::{
    AssignmentKind, CopiedAssignment, CopiedMember, CopiedPool, CopiedTeam, MAX_SNAPSHOT_MEMBERS,
    REHEARSAL_ADMIN, Rehearsal, TeamCopy,
};
pub use seed::{DEFAULT_SEED_YAML, MAX_GENERATED_USERS, MAX_SEED_BYTES, MAX_SEED_MEMBERS, Seed};
pub use server::serve;

use faults::FaultState;
use ratelimit::RateLimiter;
use state::World;

/// Base path of the simulated API.
pub const API_BASE_PATH: &str = "/team-admin/v1";

/// Scopes a full reconciler asks for.
pub const ALL_SCOPES: &str = "tmadmapi:team:read tmadmapi:team:write tmadmapi:team-users:read tmadmapi:team-users:write tmadmapi:team-products:read tmadmapi:team-products:write";

/// Why a sandbox could not be built or saved.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A seed or state file was refused before parsing: too large, not a
    /// regular file, unreadable.
    #[error("{path}: cannot read the {what}: {source}")]
    Read {
        path: String,
        what: &'static str,
        #[source]
        source: ReadError,
    },
    /// The seed is not valid YAML of the seed format.
    #[error("{path}:{line}:{column}: invalid seed: {message}")]
    SeedSyntax {
        path: String,
        line: u64,
        column: u64,
        message: String,
    },
    /// The seed parses but contradicts itself (unknown user, duplicate id...).
    #[error("{path}: invalid seed: {message}")]
    SeedInvalid { path: String, message: String },
    /// Another process owns the state file (`holder`: its pid and command, when known).
    #[error(
        "{path} is in use by another process{}: one process at a time may own a sandbox state file",
        .holder.as_deref().map(|h| format!(" ({h})")).unwrap_or_default()
    )]
    Locked {
        path: String,
        holder: Option<String>,
    },
    /// A snapshot to rehearse on is not valid, or does not fit the sandbox.
    #[error("{place}: invalid snapshot: {message}")]
    SnapshotInvalid { place: String, message: String },
    /// A state file that must be new exists already.
    #[error(
        "{path} exists: remove it to start again from the snapshot, or serve it without \
         --from-snapshot to go on with it"
    )]
    StateExists { path: String },
    /// The state file is not a sandbox state file.
    #[error("{path}:{line}:{column}: invalid sandbox state: {message}")]
    StateSyntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// A running (or ready to run) sandbox: a cheap, cloneable handle to shared state.
#[derive(Clone)]
pub struct Sandbox {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("state_file", &self.inner.state_file)
            .finish_non_exhaustive()
    }
}

/// Shared state. The std mutexes are right here: no lock is held across an `.await`,
/// and the critical sections are short.
pub(crate) struct Inner {
    pub config: SandboxConfig,
    pub world: Mutex<World>,
    pub runtime: Mutex<Runtime>,
    pub limiter: Mutex<RateLimiter>,
    /// 429s and refused refreshes, for `/_sandbox/stats`. Locked after `world` when both are.
    pub counters: Mutex<admin::Counters>,
    pub state_file: Option<PathBuf>,
    /// Held while any handle lives, so no other process writes the same file.
    _state_lock: Option<persist::StateLock>,
}

/// Settings that `/_sandbox/` can change while running.
pub(crate) struct Runtime {
    pub faults: FaultState,
    pub consistency_delay: Duration,
    pub quirks: Quirks,
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere must not take the whole sandbox down with poisoned locks.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Sandbox {
    /// An in-memory sandbox built from `seed` (nothing is written to disk).
    pub fn new(seed: &Seed, config: SandboxConfig) -> Self {
        Self::build(seed.world(), config, None)
    }

    /// A sandbox persisted in `state_file`: continues from the file when it exists,
    /// otherwise starts from `seed` and creates the file.
    ///
    /// The sandbox owns the file until its last handle is dropped: opening a file that
    /// another sandbox (in any process) owns is [`SandboxError::Locked`].
    pub fn open(
        state_file: impl Into<PathBuf>,
        seed: &Seed,
        config: SandboxConfig,
    ) -> Result<Self, SandboxError> {
        let path = state_file.into();
        let lock = persist::lock(&path)?;
        if path.exists() {
            let world = persist::load(&path)?;
            Ok(Self::build(world, config, Some((path, lock))))
        } else {
            Self::seeded_into(path, lock, seed, config)
        }
    }

    /// A sandbox persisted in a new `state_file`, starting from `seed`; an
    /// existing file is [`SandboxError::StateExists`] (a rehearsal never
    /// continues from, nor overwrites, state it did not start).
    pub fn create(
        state_file: impl Into<PathBuf>,
        seed: &Seed,
        config: SandboxConfig,
    ) -> Result<Self, SandboxError> {
        let path = state_file.into();
        let lock = persist::lock(&path)?;
        if path.exists() {
            return Err(SandboxError::StateExists {
                path: path.display().to_string(),
            });
        }
        Self::seeded_into(path, lock, seed, config)
    }

    /// A sandbox started from `seed` into the state file at `path` (locked,
    /// and absent so far), which is written at once.
    fn seeded_into(
        path: PathBuf,
        lock: persist::StateLock,
        seed: &Seed,
        config: SandboxConfig,
    ) -> Result<Self, SandboxError> {
        let sandbox = Self::build(seed.world(), config, Some((path, lock)));
        sandbox.save()?;
        Ok(sandbox)
    }

    /// Overwrites `state_file` with the world of `seed` (`flexsync sandbox reset`),
    /// unless a running sandbox owns it ([`SandboxError::Locked`]).
    pub fn reset(state_file: &Path, seed: &Seed) -> Result<(), SandboxError> {
        let _lock = persist::lock(state_file)?;
        persist::save(state_file, &seed.world())
    }

    fn build(
        world: World,
        config: SandboxConfig,
        state_file: Option<(PathBuf, persist::StateLock)>,
    ) -> Self {
        let (state_file, state_lock) = state_file.unzip();
        let runtime = Runtime {
            faults: FaultState::new(config.faults.clone()),
            consistency_delay: config.consistency_delay,
            quirks: config.quirks.clone(),
        };
        Self {
            inner: Arc::new(Inner {
                config,
                world: Mutex::new(world),
                runtime: Mutex::new(runtime),
                limiter: Mutex::new(RateLimiter::default()),
                counters: Mutex::new(admin::Counters::default()),
                state_file,
                _state_lock: state_lock,
            }),
        }
    }

    /// The axum router serving the API, OAuth and (if enabled) `/_sandbox/`.
    ///
    /// [`serve`] is preferred: only it can honour the dropped-connection fault.
    pub fn router(&self) -> axum::Router {
        server::router(self)
    }

    /// The sandbox's clock.
    pub fn clock(&self) -> SharedClock {
        self.inner.config.clock.clone()
    }

    /// The whole world as JSON (what `GET /_sandbox/state` returns).
    pub fn state_json(&self) -> serde_json::Value {
        serde_json::to_value(&*lock(&self.inner.world)).unwrap_or_default()
    }

    /// Invitations sent to `email` (any case) by Add Team User on `team_id`.
    pub fn invitations(&self, team_id: &str, email: &str) -> u32 {
        lock(&self.inner.world)
            .teams
            .get(team_id)
            .and_then(|t| t.invitations.get(&email.to_ascii_lowercase()).copied())
            .unwrap_or(0)
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: FaultSettings) {
        lock(&self.inner.runtime).faults.replace(faults);
    }

    /// Changes the consistency delay of team-wide List Assignments.
    pub fn set_consistency_delay(&self, delay: Duration) {
        lock(&self.inner.runtime).consistency_delay = delay;
    }

    /// Writes the state file now (no-op for an in-memory sandbox).
    pub fn save(&self) -> Result<(), SandboxError> {
        let world = lock(&self.inner.world);
        self.persist(&world)
    }

    pub(crate) fn persist(&self, world: &World) -> Result<(), SandboxError> {
        match &self.inner.state_file {
            Some(path) => persist::save(path, world),
            None => Ok(()),
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.inner.config.clock.now()
    }

    pub(crate) fn quirks(&self) -> Quirks {
        lock(&self.inner.runtime).quirks.clone()
    }

    pub(crate) fn consistency_delay(&self) -> SignedDuration {
        SignedDuration::try_from(lock(&self.inner.runtime).consistency_delay)
            .unwrap_or(SignedDuration::MAX)
    }

    /// Runs `f` on the world and saves the result, holding the lock throughout so writes
    /// reach the file in the order they happened.
    pub(crate) fn mutate<R>(&self, f: impl FnOnce(&mut World) -> R) -> Result<R, SandboxError> {
        let mut world = lock(&self.inner.world);
        let out = f(&mut world);
        self.persist(&world)?;
        Ok(out)
    }
}
