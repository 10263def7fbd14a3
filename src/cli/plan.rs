//! `flexsync plan`: read the teams, plan, render.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::Error;
use crate::api::{ApiError, ReadHint, ReadStats};
use crate::model::{Desired, Observed, TeamId};
use crate::plan::{self, Plan};
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
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on
    /// error (like terraform plan -detailed-exitcode).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

/// The observed state of every declared team, read in parallel (teams have
/// independent budgets). A team the login does not administer is left out;
/// the planner reports it as a blocker.
pub async fn observe(
    conn: &Connection,
    desired: &Desired,
) -> Result<(Observed, BTreeMap<TeamId, ReadStats>), Error> {
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
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let (id, result) = joined.map_err(|e| Error::Input(format!("a read task failed: {e}")))?;
        match result {
            Ok((team, s)) => {
                observed.teams.insert(id.clone(), team);
                stats.insert(id, s);
            }
            Err(ApiError::Forbidden { .. }) => {}
            Err(e) => {
                tracing::error!(team = %id, error = %e, "cannot read the team");
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e.into()),
        None => Ok((observed, stats)),
    }
}

/// The plan and the context it was made in, from a snapshot or live.
pub struct Planned {
    pub plan: Plan,
    pub ctx: Context,
}

/// Loads, reads and plans. `conn` is `None` with `--observed`.
pub async fn make_plan(
    paths: &[PathBuf],
    observed_file: Option<&PathBuf>,
    connect: &ConnectArgs,
    conn: Option<&Connection>,
) -> Result<Planned, Error> {
    let loaded = load_valid(paths)?;
    let now = jiff::Timestamp::now();
    let (observed, source, read_calls, per_minute) = match (observed_file, conn) {
        (Some(file), _) => {
            let (snapshot, name) = read_snapshot(file)?;
            let source = Source::Snapshot {
                file: name,
                captured_at: snapshot.captured_at,
            };
            let per = crate::api::budget::TEAM_LIMIT.saturating_sub(connect.rate_reserve);
            (snapshot.observed(), source, BTreeMap::new(), per)
        }
        (None, Some(conn)) => {
            let (observed, stats) = observe(conn, &loaded.desired).await?;
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
            return Err(Error::Input(
                "nothing to plan against: give --observed SNAPSHOT.json, --sandbox, or log in"
                    .into(),
            ));
        }
    };
    let plan = plan::compute(&loaded.desired, &observed, now);
    Ok(Planned {
        plan,
        ctx: Context {
            source,
            read_calls,
            calls_per_minute: per_minute,
            now,
        },
    })
}

fn read_snapshot(file: &PathBuf) -> Result<(Snapshot, String), Error> {
    let name = file.display().to_string();
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Input(format!("cannot read snapshot {name}: {e}")))?;
    let snapshot = Snapshot::parse(&name, &text).map_err(|d| {
        let mut sources = crate::diagnostic::Sources::default();
        sources.insert(&name, &text);
        let rendered = crate::diagnostic::render_human(&[d], &sources, stderr_color());
        // Best effort: the error below still reaches the user if this fails.
        let _ = std::io::stderr().write_all(rendered.as_bytes());
        Error::Input(format!("{name} is not a usable snapshot"))
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
    let planned = make_plan(&args.paths, args.observed.as_ref(), connect, conn.as_ref()).await?;
    let mut out = std::io::stdout().lock();
    render(&planned.plan, &planned.ctx, args.format, &mut out)?;
    Ok(if args.detailed_exitcode && !planned.plan.is_empty() {
        2
    } else {
        0
    })
}
