//! `flexsync teams`, `flexsync snapshot` and `flexsync export`: looking at
//! what exists.

use std::io::Write;
use std::sync::Arc;

use crate::Error;
use crate::api::ReadHint;
use crate::model::TeamId;
use crate::snapshot::{Snapshot, SnapshotTeam};

use super::connect::ConnectArgs;

#[derive(Debug, clap::Args)]
pub struct TeamsArgs {
    /// Print JSON ({"formatVersion": 1, "teams": [{"id", "name"}]}) instead
    /// of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    pub(super) connect: ConnectArgs,
}

#[derive(Debug, clap::Args)]
pub struct SnapshotArgs {
    /// Team id to include (repeat for several). Default: every team the
    /// login administers.
    #[arg(long = "team", value_name = "ID")]
    teams: Vec<String>,
    #[command(flatten)]
    pub(super) connect: ConnectArgs,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The team to export.
    #[arg(long, value_name = "ID")]
    team: String,
    /// Only these products (productId or exact productName; repeat for
    /// several). Default: every product pool of the team.
    #[arg(long = "products", value_name = "PRODUCT", num_args = 1..)]
    products: Vec<String>,
    #[command(flatten)]
    pub(super) connect: ConnectArgs,
}

pub async fn export(args: ExportArgs) -> Result<u8, Error> {
    let conn = args.connect.connect().await?;
    let team = TeamId(args.team.clone());
    let (state, _) = conn
        .client
        .fetch_observed(&team, &ReadHint::default())
        .await?;
    let yaml = crate::config::export::to_yaml(&state, &args.products, conn.client.clock().now())
        .map_err(Error::Usage)?;
    let mut out = std::io::stdout().lock();
    out.write_all(yaml.as_bytes())?;
    Ok(0)
}

pub async fn teams(args: TeamsArgs) -> Result<u8, Error> {
    let conn = args.connect.connect().await?;
    let teams = conn.client.teams().await?;
    let mut out = std::io::stdout().lock();
    if args.json {
        let list: Vec<serde_json::Value> = teams
            .iter()
            .map(|(id, name)| serde_json::json!({ "id": id.0, "name": name }))
            .collect();
        // `teams --json` format 1.
        let doc = serde_json::json!({ "formatVersion": 1, "teams": list });
        serde_json::to_writer_pretty(&mut out, &doc).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else if teams.is_empty() {
        writeln!(out, "This login administers no team.")?;
    } else {
        let width = teams.keys().map(|t| t.0.len()).max().unwrap_or(2).max(2);
        writeln!(out, "{:<width$}  NAME", "ID")?;
        for (id, name) in &teams {
            writeln!(out, "{:<width$}  {name}", id.0)?;
        }
    }
    Ok(0)
}

pub async fn snapshot(args: SnapshotArgs) -> Result<u8, Error> {
    let conn = args.connect.connect().await?;
    let all = conn.client.teams().await?;
    let wanted: Vec<TeamId> = if args.teams.is_empty() {
        all.keys().cloned().collect()
    } else {
        args.teams.iter().map(|t| TeamId(t.clone())).collect()
    };
    let mut teams = Vec::new();
    for team in wanted {
        let (state, stats) = conn
            .client
            .fetch_observed(&team, &ReadHint::default())
            .await?;
        tracing::info!(team = %team, calls = stats.calls, "team read");
        // Teams are read one after another: each keeps its own time.
        teams.push(Arc::new(SnapshotTeam::read(
            state,
            Some(conn.client.clock().now()),
        )));
    }
    let snapshot = Snapshot::of_teams(teams, Vec::new());
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &snapshot).map_err(std::io::Error::from)?;
    writeln!(out)?;
    Ok(0)
}
