//! flexsync: declarative assignment of Autodesk Flex products to team members.
//!
//! # Layout
//!
//! Data flows left to right. A functional core (`config` after reading
//! bytes, `plan`, `render`, `daemon::schedule`, `daemon::consistency`)
//! decides; a shell does the I/O: `cli` reads argv, flexsync's environment
//! variables and the terminal, binds the service's listener and writes
//! saved plans and JSON output; `api` speaks HTTP to Autodesk and keeps the
//! token and budget files; `daemon` owns SIGHUP, the file watcher and
//! systemd, and serves on the listener; `signals` stops a long-running
//! command on SIGTERM or SIGINT; `input_file` reads every file flexsync did
//! not write (`config::load` walks the declaration's directories);
//! `audit` appends the audit log; `rehearsal` reads a snapshot for the
//! sandbox. `planfile` is a format, not I/O: parse, seal, verify.
//!
//! ```text
//! desired/*.yaml --config::load--> Desired  --+
//!                                             +--plan::compute--> Plan --render--> text / Markdown / JSON
//! Team Admin API --api::Client---> Observed --+        |
//!  (or snapshot.json, the sandbox)                     +--apply::execute--> ApplyReport --> audit log
//! ```
//!
//! The sandbox, a local simulator of the Team Admin API (`--sandbox`,
//! `flexsync sandbox`, the tests' peer), is the crate `flexsync_sandbox`
//! (`crates/sandbox`). It depends on nothing of flexsync, so it shares no
//! code with `api`: the crate graph enforces it.
//!
//! - [`model`]: the vocabulary (ids, emails, desired and observed state); a leaf.
//! - [`config`]: YAML files → validated [`model::Desired`], with diagnostics.
//! - [`diagnostic`]: problems with `file:line:column`, rendered for people or JSON.
//! - [`input_file`]: reading files flexsync did not write: regular only, capped.
//! - [`snapshot`]: the observed-state file format.
//! - [`rehearsal`]: a snapshot handed to the sandbox as a copy of live teams to rehearse on.
//! - [`plan`]: the pure planner (guards as an ordered list) and the plan as data.
//! - [`planfile`]: saved plans: sealed, checked against their policy and the live team.
//! - [`explain`]: one person's holdings, declaration and planned changes, from a plan.
//! - [`render`]: text, Markdown and JSON views of a plan, an explanation and a saved plan.
//! - [`api`]: the Team Admin API client (OAuth, token store, budget, retries, reads).
//! - [`apply`]: carries out a plan's executable changes; decides nothing.
//! - [`report`]: what each change's write came to.
//! - [`audit`]: the append-only audit log (intent and outcome lines).
//! - [`git`]: the commit a declaration's checkout is at, read from `.git`.
//! - [`daemon`]: `flexsync run`, the service.
//! - [`signals`]: SIGTERM and SIGINT stop `apply`, `run` and `sandbox serve` alike.
//! - [`metrics`]: the service's Prometheus metrics.
//! - [`telemetry`]: logging (text, JSON, journald priorities).
//! - [`cli`]: the command line; wires the rest together.

pub mod api;
pub mod apply;
pub mod audit;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnostic;
pub mod explain;
pub mod git;
pub mod input_file;
pub mod metrics;
pub mod model;
pub mod plan;
pub mod planfile;
pub mod rehearsal;
pub mod render;
pub mod report;
pub mod signals;
pub mod snapshot;
pub mod telemetry;

/// What can go wrong in a command, for the user.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// The diagnostics were already printed; this only sets the exit code.
    #[error("the declaration is invalid: {0} error(s)")]
    #[diagnostic(help("fix the errors above, then run `flexsync validate` again"))]
    InvalidDeclaration(usize),
    /// Flags or arguments that are missing or cannot go together.
    #[error("{0}")]
    Usage(String),
    /// A file flexsync was pointed at that cannot be read, written or used;
    /// `context` names it (and the flag that named it).
    #[error("{context}: {cause}")]
    File {
        context: String,
        cause: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A saved plan that must not be applied or shown as it is.
    #[error("{error}{hint}")]
    SavedPlan {
        error: planfile::PlanFileError,
        hint: &'static str,
    },
    /// None of the declared teams could be read.
    #[error("no team can be read:\n{}", unreadable_list(.0))]
    NoTeamReadable(Vec<(model::TeamId, api::ApiError)>),
    /// The person at the prompt did not say yes.
    #[error("apply cancelled; nothing was changed")]
    Cancelled,
    /// The service's endpoints cannot listen where they were told to.
    #[error("cannot listen on {addr}: {cause}")]
    Listen { addr: String, cause: std::io::Error },
    /// The local sandbox refused (its state locked by another process,
    /// unreadable, a seed it cannot use), with what to do next.
    #[error("{error}{next_step}")]
    Sandbox {
        error: flexsync_sandbox::SandboxError,
        next_step: String,
    },
    /// A snapshot that cannot become a rehearsal sandbox.
    #[error("{0}")]
    Rehearsal(rehearsal::RehearsalError),
    /// Something in flexsync itself failed (a task, an encoder): a bug.
    #[error("{0}")]
    Internal(String),
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    #[error(transparent)]
    Api(#[from] api::ApiError),
}

impl From<flexsync_sandbox::SandboxError> for Error {
    fn from(error: flexsync_sandbox::SandboxError) -> Self {
        Error::Sandbox {
            error,
            next_step: String::new(),
        }
    }
}

impl From<rehearsal::RehearsalError> for Error {
    fn from(error: rehearsal::RehearsalError) -> Self {
        Error::Rehearsal(error)
    }
}

impl From<planfile::PlanFileError> for Error {
    fn from(error: planfile::PlanFileError) -> Self {
        Error::SavedPlan { error, hint: "" }
    }
}

fn unreadable_list(teams: &[(model::TeamId, api::ApiError)]) -> String {
    let lines: Vec<String> = teams
        .iter()
        .map(|(id, e)| format!("  team {id}: {e}"))
        .collect();
    lines.join("\n")
}

impl Error {
    /// An error about the file `path` (named by `what`, e.g. a flag).
    pub fn file(
        what: impl std::fmt::Display,
        path: &std::path::Path,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::File {
            context: format!("{what} {}", path.display()),
            cause: cause.into(),
        }
    }

    /// Every error exits 1; 2 and 3 are `plan --detailed-exitcode`'s
    /// "changes" and "blocked".
    pub fn exit_code(&self) -> u8 {
        1
    }
}
