//! The command line: the only reader of argv, the environment and the
//! terminal. Each subcommand wires library modules together and maps the
//! outcome to a documented exit code.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::Error;
use crate::config::{self, Loaded};
use crate::diagnostic::{self, Diagnostic};
use crate::plan;
use crate::render::{self, Format};
use crate::snapshot::Snapshot;

/// Declarative, reviewed assignment of Autodesk Flex products to the members
/// of Autodesk teams.
///
/// Exit codes: 0 success; 1 error or invalid input; 2 (plan with
/// --detailed-exitcode) there are changes.
#[derive(Debug, Parser)]
#[command(name = "flexsync", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check desired-state files without contacting Autodesk.
    ///
    /// Exits 0 when every file is valid, 1 otherwise. Every problem is
    /// reported with file:line:column.
    Validate(ValidateArgs),
    /// Print the JSON Schema (draft 2020-12) of desired-state files.
    ///
    /// Point your editor at it with a first line like
    /// `# yaml-language-server: $schema=../schemas/flexsync.schema.json`.
    Schema,
    /// Show what must change so the teams match the declaration.
    Plan(PlanArgs),
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
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiagnosticFormat {
    /// Human-readable, with the offending line.
    Text,
    /// A JSON list of {file, line, column, severity, message, help}.
    Json,
}

#[derive(Debug, clap::Args)]
struct PlanArgs {
    /// Files or directories of desired-state YAML.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Plan against this observed-state snapshot (JSON, as written by
    /// `flexsync snapshot`) instead of a live team.
    #[arg(long, value_name = "SNAPSHOT.json", required = true)]
    observed: PathBuf,
    /// Output format: text for terminals, markdown for pull-request
    /// comments, json for machines (see README for its fields).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on
    /// error (like terraform plan -detailed-exitcode).
    #[arg(long)]
    detailed_exitcode: bool,
}

/// Parses argv and runs the command. Returns the process exit code.
pub fn run() -> Result<u8, Error> {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Validate(args) => validate(args),
        Command::Schema => schema(),
        Command::Plan(args) => plan(args),
    };
    match outcome {
        // A closed pipe (`flexsync plan … | head`) is not a failure.
        Err(Error::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        other => other,
    }
}

fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn validate(args: ValidateArgs) -> Result<u8, Error> {
    let loaded = config::load(&args.paths);
    let mut out = std::io::stdout().lock();
    match args.format {
        DiagnosticFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &loaded.diagnostics)
                .map_err(std::io::Error::from)?;
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

fn schema() -> Result<u8, Error> {
    let mut out = std::io::stdout().lock();
    let text = serde_json::to_string_pretty(&config::format::schema())
        .map_err(|e| Error::Input(format!("cannot encode the schema: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(0)
}

fn plan(args: PlanArgs) -> Result<u8, Error> {
    let loaded = config::load(&args.paths);
    report(&loaded.diagnostics, &loaded)?;
    if !loaded.is_valid() {
        let errors = loaded
            .diagnostics
            .iter()
            .filter(|d| d.severity == diagnostic::Severity::Error)
            .count();
        return Err(Error::InvalidDeclaration(errors));
    }
    let name = args.observed.display().to_string();
    let text = std::fs::read_to_string(&args.observed)
        .map_err(|e| Error::Input(format!("cannot read snapshot {name}: {e}")))?;
    let snapshot = Snapshot::parse(&name, &text).map_err(|d| {
        let mut sources = diagnostic::Sources::default();
        sources.insert(&name, &text);
        let rendered = diagnostic::render_human(&[d], &sources, stderr_color());
        // Best effort: the error below still reaches the user if this fails.
        let _ = std::io::stderr().write_all(rendered.as_bytes());
        Error::Input(format!("{name} is not a usable snapshot"))
    })?;
    let plan = plan::compute(
        &loaded.desired,
        &snapshot.observed(),
        jiff::Timestamp::now(),
    );
    let mut out = std::io::stdout().lock();
    match args.format {
        Format::Text => render::text::render(&plan, stdout_color(), &mut out)?,
        Format::Markdown => render::markdown::render(&plan, &mut out)?,
        Format::Json => render::json::render(&plan, &mut out)?,
    }
    out.flush()?;
    Ok(if args.detailed_exitcode && !plan.is_empty() {
        2
    } else {
        0
    })
}
