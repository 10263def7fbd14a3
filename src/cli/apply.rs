//! `flexsync apply`: plan (or load a saved plan), confirm, execute, report.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::api::ReadHint;
use crate::apply::{self, Both, Observer};
use crate::audit::{AuditLog, AuditTrail, RunInfo};
use crate::model::{Observed, TeamId};
use crate::plan::{Change, Plan};
use crate::planfile::SavedPlan;
use crate::render::{Context, Format};
use crate::report::{ApplyReport, Outcome};

use super::connect::{ConnectArgs, Connection};
use super::plan::{GuardArgs, PlanKeyArgs, make_plan, render, report_unreadable};
use super::{Lenient, stdout_color};

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Desired-state files or directories (planned now), or one saved plan
    /// from `flexsync plan --out` (applied exactly, or refused if stale).
    #[arg(required = true, value_name = "PATH|FILE.plan")]
    pub paths: Vec<PathBuf>,
    /// Apply without asking for confirmation (for automation). Without it,
    /// apply asks on the terminal and refuses to run without one.
    #[arg(long)]
    pub auto_approve: bool,
    /// Append one JSON line per attempted write to FILE (never rewritten).
    /// Default: .flexsync/audit.jsonl with --sandbox, else
    /// ~/.local/state/flexsync/audit.jsonl.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub key: PlanKeyArgs,
    /// Apply the saved plan only if its digest is exactly this (as printed
    /// by `flexsync plan --out` and shown to reviewers): a pipeline then
    /// applies the plan it reviewed and no other file.
    #[arg(long, value_name = "DIGEST")]
    pub expect_digest: Option<String>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// Whether a file looks like a saved plan (JSON with the marker) rather
/// than YAML, or is named like one.
pub(crate) fn looks_saved(path: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "plan") {
        return true;
    }
    let mut head = [0u8; 64];
    let Ok(n) = crate::input_file::open_regular(path)
        .map_err(|_| ())
        .and_then(|(mut f, _)| std::io::Read::read(&mut f, &mut head).map_err(|_| ()))
    else {
        return false;
    };
    let head = String::from_utf8_lossy(&head[..n]);
    head.trim_start().starts_with('{') && head.contains("flexsyncSavedPlan")
}

/// The saved plan among `paths`, if any; it must come alone.
fn saved_plan_file(paths: &[PathBuf]) -> Result<Option<&PathBuf>, Error> {
    let saved: Vec<&PathBuf> = paths
        .iter()
        .filter(|p| p.is_file() && looks_saved(p))
        .collect();
    match (saved.as_slice(), paths.len()) {
        ([], _) => Ok(None),
        ([one], 1) => Ok(Some(*one)),
        ([one, ..], _) => Err(Error::Usage(format!(
            "{} is a saved plan: give it alone (`flexsync apply {}`), not with declaration files",
            one.display(),
            one.display()
        ))),
    }
}

pub(crate) fn default_audit_log(connect: &ConnectArgs) -> PathBuf {
    if connect.sandbox {
        return PathBuf::from(".flexsync/audit.jsonl");
    }
    super::connect::state_dir().join("audit.jsonl")
}

pub async fn apply(args: ApplyArgs, connect: &ConnectArgs) -> Result<u8, Error> {
    let saved = saved_or_refused(&args, connect)?;
    let conn = connect.connect().await?;
    // Teams that could not be read fail alone: the others are applied, and
    // the exit code says some team was not.
    let mut unreadable = std::collections::BTreeMap::new();
    let (plan, run, ctx) = match saved {
        Some((saved, name)) => load_saved(saved, name, connect, &conn).await?,
        None => {
            let planned = make_plan(&args.paths, None, connect, Some(&conn), &args.guard).await?;
            let mut out = Lenient(std::io::stdout().lock());
            render(&planned.plan, &planned.ctx, Format::Text, &mut out)?;
            if planned.plan.is_empty() {
                let _ = writeln!(out, "Nothing to apply.");
                return Ok(u8::from(report_unreadable(&planned.unreadable)));
            }
            unreadable = planned.unreadable.clone();
            drop(out);
            if !args.auto_approve {
                confirm()?;
            }
            let saved = planned.saved(args.key.load()?.as_ref());
            let run = RunInfo {
                command: "apply",
                plan_digest: saved.digest().to_owned(),
                git_commit: args.paths.first().and_then(|p| crate::git::head_commit(p)),
                overrides: planned.ctx.overrides,
            };
            (planned.plan, run, planned.ctx)
        }
    };
    if plan.is_empty() {
        let _ = writeln!(Lenient(std::io::stdout()), "Nothing to apply.");
        return Ok(0);
    }
    let audit_path = args
        .audit_log
        .clone()
        .unwrap_or_else(|| default_audit_log(connect));
    let report = execute(&plan, run, &ctx, &conn, &audit_path).await?;
    print_report(&report, &audit_path)?;
    let unread = report_unreadable(&unreadable);
    Ok(if report.has_failures() || unread {
        1
    } else {
        0
    })
}

/// The saved plan named among the arguments, read and checked, if any;
/// flags that make no sense with (or without) one are refused first, before
/// any API call.
fn saved_or_refused(
    args: &ApplyArgs,
    connect: &ConnectArgs,
) -> Result<Option<(SavedPlan, String)>, Error> {
    let saved_file = saved_plan_file(&args.paths)?;
    // Refuse before spending any API call on a plan nobody can approve.
    if saved_file.is_none() && !args.auto_approve && !std::io::stdin().is_terminal() {
        return Err(Error::Usage(
            "refusing to ask for confirmation without a terminal: review with `flexsync plan`, then run apply with --auto-approve (or apply a saved plan)".into(),
        ));
    }
    match saved_file {
        Some(_) if !args.guard.overrides().is_empty() => Err(Error::Usage(
            "--max-unassign, --max-invite and --allow-renames apply when planning; a saved plan keeps the overrides it was made with".into(),
        )),
        Some(file) => read_saved(file, connect, args).map(Some),
        None if args.expect_digest.is_some() => Err(Error::Usage(
            "--expect-digest checks a saved plan: give the FILE.plan written by `flexsync plan --out`".into(),
        )),
        None => Ok(None),
    }
}

/// Carries `plan` out: every write audited in `audit_path` (intent before,
/// outcome after) and shown as it ends; Ctrl-C or SIGTERM stops it between
/// writes.
async fn execute(
    plan: &Plan,
    run: RunInfo,
    ctx: &Context,
    conn: &Connection,
    audit_path: &Path,
) -> Result<ApplyReport, Error> {
    let log = Arc::new(
        AuditLog::open(audit_path)
            .map_err(|e| Error::file("cannot open the audit log", audit_path, e))?,
    );
    let trail = AuditTrail {
        log,
        run,
        clock: conn.client.clock().clone(),
    };
    let total = plan.teams.iter().map(|t| t.changes.len()).sum::<usize>();
    let progress = Progress::new(total, ctx);
    let observer: Arc<dyn Observer> = Arc::new(Both(trail, progress));
    let cancel = CancellationToken::new();
    crate::signals::cancel_on_termination(cancel.clone());
    let interrupted = cancel.clone();
    tokio::spawn(async move {
        interrupted.cancelled().await;
        let _ = writeln!(
            Lenient(std::io::stderr()),
            "\nInterrupted: finishing the write in flight, starting no new one…"
        );
    });
    let report = apply::execute(
        conn.client.clone(),
        plan,
        observer.clone(),
        apply::Halt::on_shutdown(&cancel),
    )
    .await;
    drop(observer);
    Ok(report)
}

/// Reads a saved plan and checks its seal, its own policy and its target,
/// before any connection is made: a tampered file costs no API call.
fn read_saved(
    file: &Path,
    connect: &ConnectArgs,
    args: &ApplyArgs,
) -> Result<(SavedPlan, String), Error> {
    let name = file.display().to_string();
    let text = crate::input_file::read_text_capped(file, crate::planfile::MAX_FILE_BYTES)
        .map_err(|e| Error::file("cannot read", file, e))?;
    let saved = SavedPlan::parse(&name, &text)?;
    saved.verify(
        &name,
        args.key.load()?.as_ref(),
        args.expect_digest.as_deref(),
    )?;
    let now_target = if connect.sandbox {
        "sandbox".to_owned()
    } else {
        connect.api_url.clone()
    };
    if saved.target != now_target {
        let hint = if saved.target == "sandbox" {
            " (add --sandbox)"
        } else {
            ""
        };
        return Err(Error::SavedPlan {
            error: crate::planfile::PlanFileError::Target {
                file: name,
                saved: saved.target.clone(),
                now: now_target,
            },
            hint,
        });
    }
    Ok((saved, name))
}

/// Checks a saved plan against the teams as they are now.
async fn load_saved(
    saved: SavedPlan,
    name: String,
    connect: &ConnectArgs,
    conn: &Connection,
) -> Result<(Plan, RunInfo, Context), Error> {
    let now_source = if conn.sandbox.is_some() {
        crate::render::Source::Sandbox
    } else {
        crate::render::Source::Live {
            api_url: connect.api_url.clone(),
        }
    };
    let mut observed = Observed::default();
    for team in &saved.teams {
        let id = TeamId(team.id.clone());
        let (state, _) = conn
            .client
            .fetch_observed(&id, &ReadHint::default())
            .await?;
        observed.teams.insert(id, state);
    }
    let plan = saved.to_plan(&name, &observed)?;
    let overrides = saved.overrides().map_err(|e| Error::File {
        context: name.clone(),
        cause: e.into(),
    })?;
    let ctx = Context {
        source: now_source,
        read_calls: Default::default(),
        calls_per_minute: conn.client.calls_per_window(),
        now: conn.client.clock().now(),
        overrides,
        team_ages: Default::default(),
    };
    let run = RunInfo {
        command: "apply",
        plan_digest: saved.digest().to_owned(),
        git_commit: None,
        overrides,
    };
    let count: usize = plan.teams.iter().map(|t| t.changes.len()).sum();
    let _ = writeln!(
        Lenient(std::io::stderr()),
        "Applying saved plan {name} ({count} change(s), digest {}); it is intact and still current.",
        saved.digest()
    );
    Ok((plan, run, ctx))
}

/// Asks for "yes" on the terminal, like terraform apply.
fn confirm() -> Result<(), Error> {
    let mut err = Lenient(std::io::stderr());
    let _ = write!(
        err,
        "\nDo you want to make these changes? Only 'yes' will be accepted: "
    );
    let _ = err.flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer)? == 0 {
        // Ctrl-D: end the prompt's line before the message.
        let _ = writeln!(err);
    }
    if answer.trim() != "yes" {
        return Err(Error::Cancelled);
    }
    Ok(())
}

/// A progress bar on a terminal, with a line per finished change printed
/// above it: the bar goes when the apply ends, the record of what was done
/// stays. Nothing otherwise (each write is logged).
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    ctx: Context,
    remaining: Mutex<usize>,
}

impl Progress {
    fn new(total: usize, ctx: &Context) -> Self {
        let bar = std::io::stderr()
            .is_terminal()
            .then(|| indicatif::ProgressBar::new(total as u64));
        Self::with_bar(bar, total, ctx)
    }

    fn with_bar(bar: Option<indicatif::ProgressBar>, total: usize, ctx: &Context) -> Self {
        if let Some(bar) = &bar {
            let style = indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
        }
        Progress {
            bar,
            ctx: ctx.clone(),
            remaining: Mutex::new(total),
        }
    }
}

/// "done    assign platform-services to erin@example.com (team 100001, created)".
fn record_line(team: &TeamId, change: &Change, outcome: &Outcome) -> String {
    let what = match change.product() {
        Some(p) if matches!(change, Change::Unassign { .. }) => {
            format!("{} {} from {}", change.verb(), p.alias, change.email())
        }
        Some(p) => format!("{} {} to {}", change.verb(), p.alias, change.email()),
        None => format!("{} {}", change.verb(), change.email()),
    };
    let how = match outcome {
        Outcome::Done { note, .. } => format!("team {team}, {note}"),
        Outcome::Failed { message, .. } => format!("team {team}: {message}"),
        Outcome::Skipped { reason } => format!("team {team}: {reason}"),
    };
    format!("{:<7} {what} ({how})", outcome.label())
}

impl Observer for Progress {
    fn finished(&self, team: &TeamId, change: &Change, outcome: &Outcome) {
        let Some(bar) = &self.bar else { return };
        bar.println(record_line(team, change, outcome));
        let mut remaining = self.remaining.lock().unwrap_or_else(|p| p.into_inner());
        *remaining = remaining.saturating_sub(1);
        let (_, minutes) = self.ctx.apply_estimate(*remaining);
        let eta = if minutes == 0 {
            "under a minute left".to_owned()
        } else {
            format!("≥ {minutes} min left (rate budget)")
        };
        bar.inc(1);
        bar.set_message(format!(
            "{} {} {}: {} · {eta}",
            change.verb(),
            change.product().map(|p| p.alias.0.as_str()).unwrap_or(""),
            change.email(),
            outcome.label()
        ));
        if *remaining == 0 {
            // Only the bar is cleared; the lines printed above it stay.
            bar.finish_and_clear();
        }
    }
}

fn print_report(report: &ApplyReport, audit: &Path) -> Result<(), Error> {
    let mut out = Lenient(std::io::stdout().lock());
    let color = stdout_color();
    let t = report.tally();
    writeln!(out)?;
    for team in &report.teams {
        let failed: Vec<_> = team
            .results
            .iter()
            .filter(|r| !matches!(r.outcome, Outcome::Done { .. }))
            .collect();
        if failed.is_empty() {
            continue;
        }
        writeln!(out, "Team {} \"{}\":", team.team_id, team.team_name)?;
        for r in failed {
            let what = format!(
                "{} {}{}",
                r.change.verb(),
                r.change
                    .product()
                    .map(|p| format!("{} ", p.alias))
                    .unwrap_or_default(),
                r.change.email()
            );
            match &r.outcome {
                Outcome::Failed {
                    message,
                    request_id,
                    ..
                } => {
                    // Most API errors already quote their request id.
                    let rid = request_id
                        .as_deref()
                        .filter(|r| !message.contains(*r))
                        .map(|r| format!(" [request id {r}]"))
                        .unwrap_or_default();
                    writeln!(out, "  failed  {what}: {message}{rid}")?;
                }
                Outcome::Skipped { reason } => writeln!(out, "  skipped {what}: {reason}")?,
                Outcome::Done { .. } => {}
            }
        }
    }
    let line = format!(
        "Apply complete: {} done, {} failed, {} skipped. Audit: {}",
        t.done,
        t.failed,
        t.skipped,
        audit.display()
    );
    if color && (t.failed > 0 || t.skipped > 0) {
        use owo_colors::OwoColorize;
        writeln!(out, "{}", line.red())?;
    } else {
        writeln!(out, "{line}")?;
    }
    if t.failed > 0 || t.skipped > 0 {
        writeln!(
            out,
            "Run `flexsync apply` again once the cause is fixed: done changes are not repeated."
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Alias, Email, ProductId, UserId};
    use crate::plan::ProductRef;

    /// A terminal that keeps every line written to it.
    #[derive(Clone, Debug, Default)]
    struct Screen(Arc<Mutex<Vec<String>>>);

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            120
        }
        fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.write_str(s)?;
            self.write_str("\n")
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.0.lock().unwrap().push(s.to_owned());
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_finished_change_leaves_a_line_on_the_terminal() {
        let screen = Screen::default();
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(2),
            indicatif::ProgressDrawTarget::term_like(Box::new(screen.clone())),
        );
        let ctx = Context {
            source: crate::render::Source::Sandbox,
            read_calls: Default::default(),
            calls_per_minute: 55,
            now: jiff::Timestamp::UNIX_EPOCH,
            overrides: Default::default(),
            team_ages: Default::default(),
        };
        let progress = Progress::with_bar(Some(bar), 2, &ctx);
        let team = TeamId::from("100001");
        let product = Arc::new(ProductRef {
            alias: Alias("ps".into()),
            id: ProductId("prod_ps".into()),
            name: "Platform Services".into(),
        });
        let assign = Change::Assign {
            email: Email::from_observed("erin@example.com"),
            user_id: Some(UserId("US5".into())),
            product: product.clone(),
        };
        let unassign = Change::Unassign {
            email: Email::from_observed("bob@example.com"),
            user_id: UserId("US2".into()),
            product,
        };
        progress.finished(
            &team,
            &unassign,
            &Outcome::Failed {
                status: Some(500),
                request_id: None,
                message: "server error".into(),
            },
        );
        progress.finished(
            &team,
            &assign,
            &Outcome::Done {
                status: 201,
                request_id: "r1".into(),
                note: "created",
                user_id: None,
            },
        );
        let lines = screen.0.lock().unwrap().concat();
        assert!(
            lines.contains("failed  unassign ps from bob@example.com (team 100001: server error)"),
            "{lines}"
        );
        assert!(
            lines.contains("done    assign ps to erin@example.com (team 100001, created)"),
            "{lines}"
        );
    }
}
