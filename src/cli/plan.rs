//! `flexsync plan`: read the teams, plan, render.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::Error;
use crate::api::{ApiError, ReadHint, ReadStats};
use crate::model::{Desired, Limit, Observed, TeamId};
use crate::plan::{self, Overrides, Plan};
use crate::planfile::{PlanKey, SavedPlan};
use crate::render::json::Status;
use crate::render::{self, Context, Format, Source};
use crate::snapshot::Snapshot;

use super::connect::{ConnectArgs, Connection};
use super::{load_valid, stderr_color, stdout_color};

#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    /// Files or directories of desired-state YAML.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Plan against this observed-state snapshot (JSON, as written by
    /// `flexsync snapshot`) instead of reading the live teams.
    #[arg(long, value_name = "SNAPSHOT.json", conflicts_with = "sandbox")]
    pub observed: Option<PathBuf>,
    /// Output format: text for terminals, markdown for pull-request
    /// comments, json for machines (see README for its fields).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 0 when there is nothing to do, 2 when there are changes and no
    /// blocker, 3 when the plan has a blocker (some declared change cannot
    /// be made; this wins over 2), 1 on error (like terraform plan
    /// -detailed-exitcode, plus 3). The JSON's `status` says the same:
    /// in_sync, changes, blocked.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also write the plan as JSON to FILE (e.g. Markdown for a comment on
    /// stdout and JSON for a CI check, from one read of the teams).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// Save the plan to FILE for `flexsync apply FILE`, which applies
    /// exactly these changes, or refuses them if the teams changed since.
    #[arg(long, value_name = "FILE", conflicts_with = "observed")]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub key: PlanKeyArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// The key that seals saved plans.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct PlanKeyArgs {
    /// Seal saved plans with HMAC-SHA256 keyed with this file's content (at
    /// least 16 bytes), and require that seal on apply: only holders of the
    /// key can make a plan apply accepts. Without it, the digest is a plain
    /// SHA-256 that detects edits but that anyone can recompute.
    #[arg(long, env = "FLEXSYNC_PLAN_KEY_FILE", value_name = "FILE")]
    pub plan_key: Option<PathBuf>,
}

impl PlanKeyArgs {
    pub fn load(&self) -> Result<Option<PlanKey>, Error> {
        let Some(path) = self.plan_key.as_ref().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(None);
        };
        let bytes = crate::input_file::read_capped(path, PlanKey::MAX_BYTES as u64 + 64)
            .map_err(|e| Error::file("--plan-key", path, e))?;
        warn_if_shared(path);
        PlanKey::new(&bytes)
            .map(Some)
            .map_err(|e| Error::file("--plan-key", path, e))
    }
}

/// A key others can read proves little; say so once.
fn warn_if_shared(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(file = %path.display(), "the plan key is readable by other users; chmod 600 it");
        }
    }
}

/// One-run overrides of the guards. Each is shown with the plan, kept in a
/// saved plan, and recorded in every audit line.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct GuardArgs {
    /// Raise (or lower) every team's policy.maxUnassign for this run only:
    /// a count (e.g. 40) or a percentage of today's direct assignments
    /// (e.g. "60%").
    #[arg(long, value_name = "N|P%", value_parser = Limit::parse)]
    pub max_unassign: Option<Limit>,
    /// Raise (or lower) every team's policy.maxInvite for this run only: a
    /// count (e.g. 200) or a percentage of today's members (e.g. "50%").
    #[arg(long, value_name = "N|P%", value_parser = Limit::parse)]
    pub max_invite: Option<Limit>,
    /// Confirm every probable typo of this run: an address unassigned while
    /// a look-alike is invited is taken as a rename. Prefer `replaces:` in
    /// the file, which reviewers see.
    #[arg(long)]
    pub allow_renames: bool,
}

impl GuardArgs {
    /// The overrides in force, for plans, saved plans and audit lines.
    pub fn overrides(&self) -> Overrides {
        Overrides {
            max_unassign: self.max_unassign,
            max_invite: self.max_invite,
            allow_renames: self.allow_renames,
        }
    }
}

/// What could be read of the declared teams.
pub struct Observation {
    pub observed: Observed,
    pub stats: BTreeMap<TeamId, ReadStats>,
    /// Teams that could not be read, with why: each fails alone, as a
    /// blocker in the plan and an error in the exit code.
    pub unreadable: BTreeMap<TeamId, String>,
}

/// The observed state of every declared team, read in parallel (teams have
/// independent budgets). A team that cannot be read fails alone; when none
/// can be read (a lost login, a wrong API URL), that is the error.
pub async fn observe(conn: &Connection, desired: &Desired) -> Result<Observation, Error> {
    let mut tasks = tokio::task::JoinSet::new();
    for team in desired.teams.values() {
        let client = conn.client.clone();
        let id = team.id.clone();
        let hint = ReadHint {
            emails: team.users.keys().cloned().collect(),
            known_users: None,
        };
        tasks.spawn(async move {
            let result = client.fetch_observed(&id, &hint).await;
            (id, result)
        });
    }
    let mut observed = Observed::default();
    let mut stats = BTreeMap::new();
    let mut errors: BTreeMap<TeamId, ApiError> = BTreeMap::new();
    while let Some(joined) = tasks.join_next().await {
        let (id, result) =
            joined.map_err(|e| Error::Internal(format!("a read task failed: {e}")))?;
        match result {
            Ok((team, s)) => {
                observed.teams.insert(id.clone(), team);
                stats.insert(id, s);
            }
            Err(e) => {
                errors.insert(id, e);
            }
        }
    }
    if observed.teams.is_empty() && !errors.is_empty() {
        let mut errors: Vec<(TeamId, ApiError)> = errors.into_iter().collect();
        return Err(match errors.pop() {
            Some((_, only)) if errors.is_empty() => Error::from(only),
            last => {
                errors.extend(last);
                Error::NoTeamReadable(errors)
            }
        });
    }
    Ok(Observation {
        observed,
        stats,
        unreadable: errors
            .into_iter()
            .map(|(id, e)| (id, e.to_string()))
            .collect(),
    })
}

/// Says on stderr which teams could not be read; true if any.
pub fn report_unreadable(unreadable: &BTreeMap<TeamId, String>) -> bool {
    for (id, why) in unreadable {
        let _ = writeln!(
            super::Lenient(std::io::stderr()),
            "error: team {id} could not be read, so nothing is planned for it: {why}"
        );
    }
    !unreadable.is_empty()
}

/// The plan and the context it was made in, from a snapshot or live.
pub struct Planned {
    pub plan: Plan,
    pub ctx: Context,
    pub observed: Observed,
    /// Teams that could not be read (their plans carry a blocker).
    pub unreadable: BTreeMap<TeamId, String>,
    pub desired: Desired,
    pub desired_digest: String,
}

impl Planned {
    /// The plan as a saved plan (fingerprints, policy, digests, the guard
    /// overrides), sealed with `key` when one is given.
    pub fn saved(&self, key: Option<&PlanKey>) -> SavedPlan {
        let mut saved = SavedPlan::new(
            &self.plan,
            &self.observed,
            |id| self.desired.teams.get(id),
            self.desired_digest.clone(),
            target_of(&self.ctx.source),
            &self.ctx.overrides,
            self.ctx.now,
        );
        saved.seal(key);
        saved
    }
}

fn target_of(source: &Source) -> String {
    match source {
        Source::Sandbox => "sandbox".to_owned(),
        Source::Live { api_url } => api_url.clone(),
        Source::Snapshot { file, .. } => format!("snapshot {file}"),
    }
}

/// Loads, reads and plans. `conn` is `None` with `--observed`.
pub async fn make_plan(
    paths: &[PathBuf],
    observed_file: Option<&PathBuf>,
    connect: &ConnectArgs,
    conn: Option<&Connection>,
    guard: &GuardArgs,
) -> Result<Planned, Error> {
    let loaded = load_valid(paths)?;
    let now = jiff::Timestamp::now();
    let mut unreadable = BTreeMap::new();
    let mut team_ages = BTreeMap::new();
    let (observed, source, read_calls, per_minute) = match (observed_file, conn) {
        (Some(file), _) => {
            let (snapshot, name) = read_snapshot(file)?;
            // Teams the snapshot could not see: blockers quoting why.
            unreadable.extend(snapshot.missing_among(loaded.desired.teams.keys()));
            team_ages = snapshot.ages();
            let source = Source::Snapshot {
                file: name,
                captured_at: snapshot.captured_at,
            };
            let per = crate::api::budget::TEAM_LIMIT.saturating_sub(connect.rate_reserve);
            (snapshot.observed(), source, BTreeMap::new(), per)
        }
        (None, Some(conn)) => {
            let seen = observe(conn, &loaded.desired).await?;
            unreadable = seen.unreadable;
            let (observed, stats) = (seen.observed, seen.stats);
            let source = if conn.sandbox.is_some() {
                Source::Sandbox
            } else {
                Source::Live {
                    api_url: connect.api_url.clone(),
                }
            };
            let reads = stats.into_iter().map(|(t, s)| (t, s.calls)).collect();
            (observed, source, reads, conn.client.calls_per_window())
        }
        (None, None) => {
            return Err(Error::Usage(
                "nothing to plan against: give --observed SNAPSHOT.json, --sandbox, or log in"
                    .into(),
            ));
        }
    };
    let overrides = guard.overrides();
    let options = plan::Options {
        overrides,
        unreadable: unreadable.clone(),
        ..plan::Options::at(now)
    };
    let plan = plan::compute_with(&loaded.desired, &observed, &options);
    Ok(Planned {
        plan,
        ctx: Context {
            source,
            read_calls,
            calls_per_minute: per_minute,
            now,
            overrides,
            team_ages,
        },
        observed,
        unreadable,
        desired_digest: loaded.digest(),
        desired: loaded.desired,
    })
}

pub(super) fn read_snapshot(file: &std::path::Path) -> Result<(Snapshot, String), Error> {
    use crate::input_file::{ReadError, read_text_capped, size_text};
    let name = file.display().to_string();
    let text = read_text_capped(file, crate::snapshot::MAX_FILE_BYTES).map_err(|e| match e {
        ReadError::TooLarge { cap } => Error::File {
            context: format!(
                "snapshot {name} is larger than {}, the limit for snapshots",
                size_text(cap)
            ),
            cause: "it was not read".into(),
        },
        e => Error::file("cannot read snapshot", file, e),
    })?;
    let snapshot = Snapshot::parse(&name, &text).map_err(|d| {
        let mut sources = crate::diagnostic::Sources::default();
        sources.insert(&name, &text);
        let rendered = crate::diagnostic::render_human(&[d], &sources, stderr_color());
        // Best effort: the error below still reaches the user if this fails.
        let _ = std::io::stderr().write_all(rendered.as_bytes());
        Error::File {
            context: name.clone(),
            cause: "not a usable snapshot (see above)".into(),
        }
    })?;
    Ok((snapshot, name))
}

/// Writes the plan in the chosen format.
pub fn render(
    plan: &Plan,
    ctx: &Context,
    format: Format,
    out: &mut dyn Write,
) -> Result<(), Error> {
    match format {
        Format::Text => render::text::render(plan, ctx, stdout_color(), out)?,
        Format::Markdown => render::markdown::render(plan, ctx, out)?,
        Format::Json => render::json::render(plan, ctx, out)?,
    }
    out.flush()?;
    Ok(())
}

pub async fn plan(args: PlanArgs, connect: &ConnectArgs) -> Result<u8, Error> {
    let conn = match &args.observed {
        Some(_) => None,
        None => Some(connect.connect().await?),
    };
    let planned = make_plan(
        &args.paths,
        args.observed.as_ref(),
        connect,
        conn.as_ref(),
        &args.guard,
    )
    .await?;
    let mut out = std::io::stdout().lock();
    render(&planned.plan, &planned.ctx, args.format, &mut out)?;
    if let Some(file) = &args.json_out {
        let mut buf = Vec::new();
        render::json::render(&planned.plan, &planned.ctx, &mut buf)?;
        std::fs::write(file, buf).map_err(|e| Error::file("cannot write", file, e))?;
    }
    if let Some(file) = &args.out {
        let saved = planned.saved(args.key.load()?.as_ref());
        let text = serde_json::to_string_pretty(&saved)
            .map_err(|e| Error::Internal(format!("cannot encode the plan: {e}")))?;
        std::fs::write(file, text + "\n").map_err(|e| Error::file("cannot write", file, e))?;
        eprintln!(
            "Plan saved to {} (digest {}). Apply exactly these changes with `flexsync apply {}`; \
             add `--expect-digest {}` to refuse any other file.",
            file.display(),
            saved.digest(),
            file.display(),
            saved.digest()
        );
    }
    if report_unreadable(&planned.unreadable) {
        return Ok(1);
    }
    Ok(if args.detailed_exitcode {
        detailed_exitcode(&planned.plan)
    } else {
        0
    })
}

/// `--detailed-exitcode`: 3 blocked, 2 changes, 0 in sync; from the same
/// [`Status`] the JSON reports.
fn detailed_exitcode(plan: &Plan) -> u8 {
    match Status::of(&plan.summary()) {
        Status::Blocked => 3,
        Status::Changes => 2,
        Status::InSync => 0,
    }
}
