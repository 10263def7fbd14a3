//! `flexsync explain EMAIL PATH…`: why one person holds (or does not hold)
//! each managed product.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use crate::Error;
use crate::api::ReadHint;
use crate::model::{Desired, Email, Observed, TeamId};
use crate::plan;
use crate::render::{self, Context, Source};

use super::connect::ConnectArgs;
use super::plan::{GuardArgs, read_snapshot};
use super::{Lenient, load_valid, stdout_color};

#[derive(Debug, clap::Args)]
pub struct ExplainArgs {
    /// The person's email address (any case).
    #[arg(value_name = "EMAIL")]
    pub email: String,
    /// Files or directories of desired-state YAML.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The team to look in. Default: the teams that declare the person, or
    /// every declared team when none does (each read once).
    #[arg(long, value_name = "ID")]
    pub team: Option<String>,
    /// Explain against this snapshot (JSON, as written by `flexsync
    /// snapshot`) instead of reading the live team.
    #[arg(long, value_name = "SNAPSHOT.json", conflicts_with = "sandbox")]
    pub observed: Option<PathBuf>,
    /// Output format: text for people, json for machines.
    #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
    pub format: ExplainFormat,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ExplainFormat {
    Text,
    Json,
}

pub async fn explain(args: ExplainArgs) -> Result<u8, Error> {
    let email = Email::parse(&args.email)
        .map_err(|e| Error::Usage(format!("{:?} is not an email address: {e}", args.email)))?;
    let loaded = load_valid(&args.paths)?;
    let desired = select_teams(loaded.desired, &email, args.team.as_deref())?;
    let now = jiff::Timestamp::now();
    let mut unreadable = BTreeMap::new();
    let mut read_calls = BTreeMap::new();
    let (observed, source, per_minute, _conn) = match &args.observed {
        Some(file) => {
            let (snapshot, name) = read_snapshot(file)?;
            let source = Source::Snapshot {
                file: name,
                captured_at: snapshot.captured_at,
            };
            let per = crate::api::budget::TEAM_LIMIT.saturating_sub(args.connect.rate_reserve);
            (snapshot.observed(), source, per, None)
        }
        None => {
            let conn = args.connect.connect().await?;
            // Only this person's address as the hint: the read is the
            // team's cheapest (pools, assignments, users), as for a plan.
            let hint = ReadHint {
                emails: [email.clone()].into(),
                known_users: None,
            };
            let mut observed = Observed::default();
            let mut errors = Vec::new();
            for id in desired.teams.keys() {
                match conn.client.fetch_observed(id, &hint).await {
                    Ok((team, stats)) => {
                        observed.teams.insert(id.clone(), team);
                        read_calls.insert(id.clone(), stats.calls);
                    }
                    Err(e) => {
                        unreadable.insert(id.clone(), e.to_string());
                        errors.push(e);
                    }
                }
            }
            if observed.teams.is_empty()
                && let Some(e) = errors.into_iter().next()
            {
                return Err(e.into());
            }
            let source = if conn.sandbox.is_some() {
                Source::Sandbox
            } else {
                Source::Live {
                    api_url: args.connect.api_url.clone(),
                }
            };
            let per = conn.client.calls_per_window();
            (observed, source, per, Some(conn))
        }
    };
    let overrides = args.guard.overrides();
    let options = plan::Options {
        overrides,
        unreadable,
        ..plan::Options::at(now)
    };
    let planned = plan::compute_with(&desired, &observed, &options);
    let explanation = crate::explain::explain(&email, &desired, &observed, &planned);
    let ctx = Context {
        source,
        read_calls,
        calls_per_minute: per_minute,
        now,
        overrides,
        team_ages: Default::default(),
    };
    let mut out = Lenient(std::io::stdout().lock());
    match args.format {
        ExplainFormat::Text => render::explain::text(&explanation, &ctx, stdout_color(), &mut out)?,
        ExplainFormat::Json => render::explain::json(&explanation, &ctx, &mut out)?,
    }
    out.flush()?;
    Ok(0)
}

/// The teams to explain: `--team`, else those declaring the person, else
/// all of them.
fn select_teams(mut desired: Desired, email: &Email, team: Option<&str>) -> Result<Desired, Error> {
    let keep: Vec<TeamId> = match team {
        Some(id) => {
            let id = TeamId(id.to_owned());
            if !desired.teams.contains_key(&id) {
                let declared: Vec<&str> = desired.teams.keys().map(|t| t.0.as_str()).collect();
                return Err(Error::Usage(format!(
                    "team {id} is not in the declaration (its teams: {})",
                    declared.join(", ")
                )));
            }
            vec![id]
        }
        None => {
            let declaring: Vec<TeamId> = desired
                .teams
                .values()
                .filter(|t| t.users.contains_key(email))
                .map(|t| t.id.clone())
                .collect();
            if declaring.is_empty() {
                desired.teams.keys().cloned().collect()
            } else {
                declaring
            }
        }
    };
    desired.teams.retain(|id, _| keep.contains(id));
    Ok(desired)
}
