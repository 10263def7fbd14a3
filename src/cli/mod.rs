//! The command line: the only reader of argv, the environment and the
//! terminal. Each subcommand wires library modules together and maps the
//! outcome to a documented exit code.

mod apply;
mod connect;
mod explain;
mod inspect;
mod notify;
mod plan;
mod run;
mod sandbox;
mod show;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Error;
use crate::config::{self, Loaded};
use crate::diagnostic::{self, Diagnostic};

pub use connect::ConnectArgs;

/// Declarative, reviewed assignment of Autodesk Flex products to the members
/// of Autodesk teams.
///
/// Exit codes: 0 success; 1 error or invalid input; with plan
/// --detailed-exitcode, 2 there are changes and 3 the plan has a blocker.
#[derive(Debug, Parser)]
#[command(name = "flexsync", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log format on stderr: text for people, json for machines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check desired-state files without contacting Autodesk.
    ///
    /// Exits 0 when every file is valid, 1 otherwise. Every problem is
    /// reported with file:line:column.
    #[command(after_help = "Examples:
  flexsync validate teams/
  flexsync validate teams/ --format json     # for CI annotations")]
    Validate(ValidateArgs),
    /// Print the JSON Schema (draft 2020-12) of desired-state files.
    ///
    /// Point your editor at it with a first line like
    /// `# yaml-language-server: $schema=../schemas/flexsync.schema.json`.
    Schema,
    /// Show what must change so the teams match the declaration.
    ///
    /// Reads the live teams (or the sandbox with --sandbox, or a snapshot
    /// with --observed) and prints the plan. Nothing is changed.
    #[command(after_help = "Examples:
  flexsync plan teams/                                   # against the live teams
  flexsync plan --sandbox examples/full.yaml             # against the local sandbox
  flexsync plan teams/ --observed snapshot.json --format markdown > comment.md
  flexsync plan teams/ --out review.plan                 # for `flexsync apply review.plan`")]
    Plan(plan::PlanArgs),
    /// Carry out a plan: the changes shown, after confirmation.
    ///
    /// Exit 0 when every change succeeded, 1 when any failed or was skipped
    /// (the summary lists them with the API's message and request id).
    #[command(after_help = "Examples:
  flexsync apply review.plan                   # exactly the saved plan, or refused if the teams moved
  flexsync apply teams/                        # plan, show, ask for \"yes\"
  flexsync apply teams/ --auto-approve         # automation")]
    Apply(apply::ApplyArgs),
    /// Keep every declared team converged: the long-running service.
    ///
    /// Reconciles on start, on every change of the files, and every
    /// interval (repairing drift). SIGHUP re-reads at once; SIGTERM/SIGINT
    /// stop after the write in flight. Serves /healthz, /readyz, /metrics,
    /// /status and, when enabled, /snapshot.
    #[command(after_help = "Examples:
  flexsync run teams/ --interval 10m --listen 127.0.0.1:9464
  flexsync run teams/ --dry-run                # report drift, change nothing")]
    Run(run::RunArgs),
    /// Show a saved plan (`flexsync plan --out FILE`) without connecting:
    /// its target, age, seal, each team's recorded policy and changes.
    ///
    /// Exits 0, or 1 when apply would refuse the file as tampered (it is
    /// still shown, with why).
    #[command(after_help = "Examples:
  flexsync show review.plan
  flexsync show review.plan --format markdown  # for the pull request
  flexsync show review.plan --plan-key plan.key  # also verify a keyed seal")]
    Show(show::ShowArgs),
    /// Why does (or doesn't) this person hold each managed product?
    ///
    /// For each product the declaration manages: what they hold now
    /// (direct, through a group, through the team), where the declaration
    /// asks for it (file:line:column, group), what the plan would do and
    /// what blocks it. Reads each team once, as `flexsync plan` does, or a
    /// snapshot. Exits 0, or 1 on error.
    #[command(after_help = "Examples:
  flexsync explain ada@example.com teams/
  flexsync explain ada@example.com teams/ --team 100001 --observed snapshot.json
  flexsync explain ada@example.com teams/ --format json")]
    Explain(explain::ExplainArgs),
    /// Sign in as a team administrator (three-legged OAuth with PKCE) and
    /// save the tokens.
    Login(LoginArgs),
    /// List the teams the login administers.
    Teams(inspect::TeamsArgs),
    /// Write a desired-state YAML of who holds what in a team today (direct
    /// assignments declared, inherited ones as comments): the start of
    /// managing an existing team.
    Export(inspect::ExportArgs),
    /// Print the observed state of teams as a snapshot (JSON), for
    /// `flexsync plan --observed` in CI jobs without credentials.
    Snapshot(inspect::SnapshotArgs),
    /// Run or reset the local Team Admin API sandbox.
    #[command(subcommand)]
    Sandbox(sandbox::SandboxCommand),
    /// Print shell completions (bash, zsh, fish, powershell, elvish).
    ///
    /// Generated from the same definitions as --help, so they always match
    /// this version. See README, "Shell completions and man pages".
    #[command(after_help = "Examples:
  flexsync completions bash > ~/.local/share/bash-completion/completions/flexsync
  flexsync completions zsh > ~/.zfunc/_flexsync
  flexsync completions fish > ~/.config/fish/completions/flexsync.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write one per command into a
    /// directory.
    #[command(after_help = "Examples:
  flexsync man | man -l -
  flexsync man --dir ~/.local/share/man/man1")]
    Man {
        /// Write flexsync.1 and flexsync-COMMAND.1 for every command into
        /// DIR instead of printing the main page.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct ValidateArgs {
    /// Files or directories of desired-state YAML (directories are searched
    /// for *.yaml and *.yml, hidden entries skipped).
    #[arg(default_value = ".", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Output format of the diagnostics.
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
    format: DiagnosticFormat,
    /// When valid, print only the declared team ids, comma-separated: what a
    /// pull-request pipeline asks the service's /snapshot?teams= for.
    #[arg(long, conflicts_with = "format")]
    team_ids: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiagnosticFormat {
    /// Human-readable, with the offending line.
    Text,
    /// JSON: {"formatVersion": 1, "valid", "diagnostics": [{file, line,
    /// column, severity, message, help}]}.
    Json,
}

#[derive(Debug, clap::Args)]
struct LoginArgs {
    /// The redirect URL registered with your APS app; flexsync listens on
    /// it for the end of the sign-in.
    #[arg(
        long,
        default_value = "http://localhost:8910/callback",
        value_name = "URL"
    )]
    callback_url: String,
    /// Only print the sign-in URL; do not try to open a browser.
    #[arg(long)]
    no_browser: bool,
    /// Do not sign in: install the tokens a `flexsync login` saved elsewhere
    /// (FILE, or - for standard input) into this token file, the way a
    /// running service expects (locked, atomic, 0600, owned like its
    /// directory when run as root). The service picks them up by itself.
    /// Delete FILE afterwards: its refresh token now belongs here.
    #[arg(long, value_name = "FILE|-", conflicts_with_all = ["callback_url", "no_browser"])]
    from_file: Option<PathBuf>,
    #[command(flatten)]
    pub(super) connect: ConnectArgs,
}

/// Parses argv and runs the command. Returns the process exit code.
pub fn run() -> Result<u8, Error> {
    // clap exits 2 on a usage error, which --detailed-exitcode means
    // "there are changes": a typo must read as an error (1) instead.
    let mut cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            if let Some(message) = empty_variable(&e) {
                let _ = writeln!(Lenient(std::io::stderr()), "error: {message}");
                return Ok(1);
            }
            let _ = e.print();
            return Ok(if e.use_stderr() { 1 } else { 0 });
        }
    };
    init_logging(cli.log_format);
    if let Some(connect) = cli.command.connect_mut() {
        connect.imply_sandbox();
    }
    let outcome = match cli.command {
        Command::Validate(args) => validate(args),
        Command::Schema => schema(),
        Command::Plan(args) => {
            let connect = args.connect.clone();
            runtime()?.block_on(plan::plan(args, &connect))
        }
        Command::Apply(args) => {
            let connect = args.connect.clone();
            runtime()?.block_on(apply::apply(args, &connect))
        }
        Command::Run(args) => {
            let connect = args.connect.clone();
            crate::daemon::memory::limit_arenas();
            runtime()?.block_on(run::run(args, &connect))
        }
        Command::Login(args) => runtime()?.block_on(login(args)),
        Command::Export(args) => runtime()?.block_on(inspect::export(args)),
        Command::Teams(args) => runtime()?.block_on(inspect::teams(args)),
        Command::Snapshot(args) => runtime()?.block_on(inspect::snapshot(args)),
        Command::Sandbox(cmd) => sandbox::run(cmd),
        Command::Show(args) => show::show(args),
        Command::Explain(args) => runtime()?.block_on(explain::explain(args)),
        Command::Completions { shell } => completions(shell),
        Command::Man { dir } => man(dir.as_deref()),
    };
    match outcome {
        // A closed pipe (`flexsync plan … | head`) is not a failure.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other,
    }
}

impl Command {
    /// The connection flags of a command that connects.
    fn connect_mut(&mut self) -> Option<&mut ConnectArgs> {
        match self {
            Command::Plan(a) => Some(&mut a.connect),
            Command::Apply(a) => Some(&mut a.connect),
            Command::Run(a) => Some(&mut a.connect),
            Command::Login(a) => Some(&mut a.connect),
            Command::Export(a) => Some(&mut a.connect),
            Command::Teams(a) => Some(&mut a.connect),
            Command::Snapshot(a) => Some(&mut a.connect),
            Command::Explain(a) => Some(&mut a.connect),
            Command::Validate(_)
            | Command::Schema
            | Command::Sandbox(_)
            | Command::Show(_)
            | Command::Completions { .. }
            | Command::Man { .. } => None,
        }
    }
}

/// clap blames the flag for an empty value that came from its environment
/// variable (`FLEXSYNC_TOKEN_FILE=`), which sends people looking for a flag
/// they never typed: name the variable instead.
fn empty_variable(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split_whitespace().next()?.strip_prefix("--")?;
    let flag = format!("--{long}");
    let typed = std::env::args_os().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    });
    if typed {
        return None;
    }
    let var = env_of(&<Cli as clap::CommandFactory>::command(), long)?;
    std::env::var_os(&var)
        .is_some_and(|v| v.is_empty())
        .then(|| {
            format!("{var} is set but empty: unset it, or set it to a value (it stands for {flag})")
        })
}

/// The environment variable of the flag `--long`, in any subcommand.
fn env_of(cmd: &clap::Command, long: &str) -> Option<String> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .or_else(|| cmd.get_subcommands().find_map(|c| env_of(c, long)))
}

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(Error::Output)
}

/// Logs go to stderr; RUST_LOG picks the level (default: warnings, and
/// flexsync's own info lines).
fn init_logging(format: LogFormat) {
    // On a terminal, apply draws a progress bar instead of a line per write
    // (failures, at warn, still show).
    let default = if std::io::stderr().is_terminal() {
        "warn,flexsync=info,flexsync::apply=warn"
    } else {
        "warn,flexsync=info"
    };
    crate::telemetry::init(matches!(format, LogFormat::Json), default, stderr_color());
}

/// Terminal output that never fails: once the reader has gone (a closed
/// pipe, `| head`), the rest is dropped. An apply is never stopped between
/// writes by its own output; what it did is in the audit log.
pub(crate) struct Lenient<W: Write>(pub W);

impl<W: Write> Write for Lenient<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = self.0.flush();
        Ok(())
    }
}

pub(crate) fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

pub(crate) fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn validate(args: ValidateArgs) -> Result<u8, Error> {
    refuse_saved_plans(&args.paths)?;
    // Never freed: the process ends right after, and freeing 100,000
    // people one by one would be a fiftieth of `validate`'s time.
    let loaded = std::mem::ManuallyDrop::new(config::load(&args.paths));
    let mut out = std::io::stdout().lock();
    if args.team_ids {
        if loaded.is_valid() {
            let ids: Vec<&str> = loaded.desired.teams.keys().map(|t| t.0.as_str()).collect();
            writeln!(out, "{}", ids.join(","))?;
        }
        report(&loaded.diagnostics, &loaded)?;
        return Ok(if loaded.is_valid() { 0 } else { 1 });
    }
    match args.format {
        DiagnosticFormat::Json => {
            // `validate --format json` format 1.
            let doc = serde_json::json!({
                "formatVersion": 1,
                "valid": loaded.is_valid(),
                "diagnostics": loaded.diagnostics,
            });
            serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        DiagnosticFormat::Text => {
            if loaded.is_valid() {
                let teams = loaded.desired.teams.len();
                let users: usize = loaded.desired.teams.values().map(|t| t.users.len()).sum();
                writeln!(
                    out,
                    "{} file(s) valid: {teams} team(s), {users} user(s).",
                    loaded.files.len()
                )?;
            }
            report(&loaded.diagnostics, &loaded)?;
        }
    }
    Ok(if loaded.is_valid() { 0 } else { 1 })
}

/// Prints diagnostics to stderr for people.
fn report(diags: &[Diagnostic], loaded: &Loaded) -> Result<(), Error> {
    if diags.is_empty() {
        return Ok(());
    }
    let text = diagnostic::render_human(diags, &loaded.sources, stderr_color());
    std::io::stderr().write_all(text.as_bytes())?;
    Ok(())
}

/// A saved plan is JSON, which YAML reads too: named as a declaration it
/// would fail on its first field. Say what it is and what to do with it.
fn refuse_saved_plans(paths: &[PathBuf]) -> Result<(), Error> {
    match paths.iter().find(|p| p.is_file() && apply::looks_saved(p)) {
        Some(p) => Err(Error::Usage(format!(
            "{} is a saved plan, not a declaration: look at it with `flexsync show {}`, apply it with `flexsync apply {}`",
            p.display(),
            p.display(),
            p.display()
        ))),
        None => Ok(()),
    }
}

/// Loads the declaration, printing its diagnostics; an invalid one is an
/// error.
fn load_valid(paths: &[PathBuf]) -> Result<Loaded, Error> {
    refuse_saved_plans(paths)?;
    let loaded = config::load(paths);
    report(&loaded.diagnostics, &loaded)?;
    if !loaded.is_valid() {
        let errors = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == diagnostic::Severity::Error)
            .count();
        return Err(Error::InvalidDeclaration(errors));
    }
    Ok(loaded)
}

fn completions(shell: clap_complete::Shell) -> Result<u8, Error> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "flexsync", &mut out);
    std::io::stdout().lock().write_all(&out)?;
    Ok(0)
}

fn man(dir: Option<&std::path::Path>) -> Result<u8, Error> {
    let cmd = <Cli as clap::CommandFactory>::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(cmd, dir))
                .map_err(|e| Error::file("cannot write man pages to", dir, e))?;
            eprintln!(
                "Man pages written to {} (flexsync.1 and one per command).",
                dir.display()
            );
        }
        None => {
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            std::io::stdout().lock().write_all(&out)?;
        }
    }
    Ok(0)
}

fn schema() -> Result<u8, Error> {
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string_pretty(&config::format::schema())
        .map_err(|e| Error::Internal(format!("cannot encode the schema: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(0)
}

async fn login(args: LoginArgs) -> Result<u8, Error> {
    let connect = &args.connect;
    if let Some(from) = &args.from_file {
        let path = connect.import_login(from).await?;
        let _ = writeln!(
            Lenient(std::io::stderr()),
            "Login installed in {} (readable by its owner only).",
            path.display()
        );
        return Ok(0);
    }
    // Autodesk's token answer names nobody (no id token without the
    // `openid` scope), so the teams the login administers say who it is.
    let (path, who) = connect.login(&args.callback_url, !args.no_browser).await?;
    eprintln!("{}", signed_in_line(&who));
    eprintln!("Tokens saved to {} (readable by you only).", path.display());
    Ok(0)
}

/// "Signed in; this login administers teams 100001 (Example Engineering)."
fn signed_in_line(teams: &connect::Teams) -> String {
    let teams = match teams {
        Ok(teams) => teams,
        Err(e) => {
            return format!("Signed in, but the teams it administers could not be listed: {e}");
        }
    };
    if teams.is_empty() {
        return "Signed in, but this login administers no team: sign in as a primary, \
                secondary or SSO administrator of the team."
            .to_owned();
    }
    let list: Vec<String> = teams
        .iter()
        .map(|(id, name)| format!("{id} ({name})"))
        .collect();
    let noun = if list.len() == 1 { "team" } else { "teams" };
    format!(
        "Signed in; this login administers {noun} {}.",
        list.join(", ")
    )
}
