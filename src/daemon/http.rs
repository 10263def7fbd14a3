//! The service's HTTP endpoints: `/healthz`, `/readyz`, `/metrics`,
//! `/status`, and (when enabled) `/snapshot`, `/snapshot?teams=ID,ID` and
//! `/snapshot/{team}`. Served over plain HTTP, or over TLS (see [`super::tls`]).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::previews::{MAX_TEAMS_PER_REQUEST, OnDemand};
use super::state::{Shared, TeamStatus};
use crate::api::auth::Secret;
use crate::metrics::Metrics;
use crate::model::TeamId;
use crate::snapshot::{MissingTeam, Snapshot};

#[derive(Clone)]
pub struct AppState {
    pub shared: Arc<Shared>,
    pub metrics: Arc<Metrics>,
    /// Bearer token guarding `/snapshot`; `None` turns it off.
    pub snapshot_token: Option<Secret>,
    /// Reads teams no declaration names yet, for `/snapshot?teams=`.
    pub on_demand: Arc<OnDemand>,
}

/// What `router` always serves, in this order: liveness, readiness,
/// metrics, status. `run --check` prints it, and deployment checks hold
/// probes and scrape paths to it.
pub const ENDPOINTS: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/status"];
/// Served only with a snapshot token (404 otherwise).
pub const SNAPSHOT_ENDPOINTS: [&str; 2] = ["/snapshot", "/snapshot/{team}"];

pub fn router(state: AppState) -> Router {
    let [healthz_path, readyz_path, metrics_path, status_path] = ENDPOINTS;
    let [snapshot_path, snapshot_team_path] = SNAPSHOT_ENDPOINTS;
    Router::new()
        .route(healthz_path, get(healthz))
        .route(readyz_path, get(readyz))
        .route(metrics_path, get(metrics))
        .route(status_path, get(status))
        .route(snapshot_path, get(snapshot_all))
        .route(snapshot_team_path, get(snapshot_team))
        .with_state(state)
}

/// The controller's loop wakes at least this often; a loop that has not run
/// for this long is stuck, and liveness fails so the supervisor restarts it.
pub const LIVENESS_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Liveness: the controller's loop is running (not merely the listener).
async fn healthz(State(s): State<AppState>) -> Response {
    match s.shared.since_beat() {
        Some(d) if d > LIVENESS_LIMIT => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the controller loop has not run for {} s\n", d.as_secs()),
        )
            .into_response(),
        _ => (StatusCode::OK, "ok\n").into_response(),
    }
}

/// Readiness means "can serve /status, /metrics and /snapshot": true once
/// the controller has read the declaration, whatever it found. Problems
/// (no valid declaration, a lost login, failing teams) are listed in the
/// body, /status and metrics, and alerted on; they do not take the pod out
/// of its Service, which would hide /status exactly during an incident.
async fn readyz(State(s): State<AppState>) -> Response {
    if !s.shared.is_started() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "ready": false, "problems": ["starting"] })),
        )
            .into_response();
    }
    let mut problems = Vec::new();
    let decl = s.shared.declaration();
    if !decl.loaded {
        problems.push("no valid declaration: nothing is reconciled (see /status)".to_owned());
    } else if !decl.valid {
        problems
            .push("the declaration on disk is invalid; the last good one is in force".to_owned());
    }
    if let Some(e) = s.shared.credentials_error() {
        problems.push(format!("login lost: {e}"));
    }
    for t in s.shared.teams().values() {
        if t.failing() {
            problems.push(format!(
                "team {} is {}: {}",
                t.id,
                t.state,
                t.last_error.clone().unwrap_or_default()
            ));
        }
    }
    (
        StatusCode::OK,
        axum::Json(json!({ "ready": true, "problems": problems })),
    )
        .into_response()
}

async fn metrics(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    let teams: Vec<_> = s.shared.teams().into_values().collect();
    axum::Json(json!({
        // `/status` format 1.
        "formatVersion": 1,
        "dryRun": s.shared.dry_run,
        "declaration": s.shared.declaration(),
        "credentialsError": s.shared.credentials_error(),
        "summary": s.shared.summary(),
        "teams": teams,
    }))
    .into_response()
}

/// Compares digests, so the comparison takes the same time whatever the
/// guess.
/// `None` when the request may read snapshots, else the refusal.
fn refusal(s: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = &s.snapshot_token else {
        return Some((StatusCode::NOT_FOUND, "snapshots are not enabled\n").into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if Sha256::digest(given.as_bytes()) == Sha256::digest(token.expose().as_bytes()) {
        None
    } else {
        Some(
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "a valid bearer token is required\n",
            )
                .into_response(),
        )
    }
}

/// `?teams=ID,ID`: exactly these teams, declared or not.
#[derive(Debug, serde::Deserialize)]
pub struct SnapshotQuery {
    teams: Option<String>,
}

/// The team ids of `?teams=` (or a path), checked: a request names at most
/// [`MAX_TEAMS_PER_REQUEST`] ids of letters, digits, `-`, `_` and `.`.
fn team_list(text: &str) -> Result<Vec<TeamId>, String> {
    let mut ids = std::collections::BTreeSet::new();
    for id in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        let fits = id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !fits {
            return Err(format!(
                "{:?} is not a team id (at most 64 letters, digits, '-', '_' or '.')\n",
                id.chars().take(80).collect::<String>()
            ));
        }
        ids.insert(TeamId(id.to_owned()));
    }
    if ids.len() > MAX_TEAMS_PER_REQUEST {
        return Err(format!(
            "{} teams asked for; at most {MAX_TEAMS_PER_REQUEST} per request\n",
            ids.len()
        ));
    }
    Ok(ids.into_iter().collect())
}

/// Why a declared team has no state to serve yet.
fn not_read(t: &TeamStatus) -> String {
    match &t.last_error {
        Some(e) => format!("the service could not read it: {e}"),
        None => "the service has not read it yet (its first pass is pending); try again shortly"
            .to_owned(),
    }
}

/// The declared teams (`wanted: None`), or exactly `wanted`: declared ones
/// as the service last saw them, the others read on demand. A team that
/// cannot be seen is listed under `missing` with why; it never fails the
/// others.
async fn snapshot_of(s: &AppState, wanted: Option<Vec<TeamId>>) -> Response {
    if !s.shared.is_started() {
        return (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response();
    }
    let declared = s.shared.teams();
    let wanted = wanted.unwrap_or_else(|| declared.keys().cloned().collect());
    let mut teams = Vec::new();
    let mut missing = Vec::new();
    let mut reads = tokio::task::JoinSet::new();
    for id in wanted {
        match declared.get(&id) {
            Some(t) => match &t.observed {
                Some(team) => teams.push(team.clone()),
                None => missing.push(MissingTeam {
                    reason: not_read(t),
                    id,
                }),
            },
            // Teams have independent budgets: read them side by side.
            None => {
                let on_demand = s.on_demand.clone();
                reads.spawn(async move {
                    let read = on_demand.read(&id).await;
                    (id, read)
                });
            }
        }
    }
    while let Some(joined) = reads.join_next().await {
        match joined {
            Ok((_, Ok(team))) => teams.push(team),
            Ok((id, Err(reason))) => missing.push(MissingTeam { id, reason }),
            Err(e) => tracing::error!(error = %e, "snapshot: a read on demand failed"),
        }
    }
    teams.sort_by(|a, b| a.id.cmp(&b.id));
    missing.sort_by(|a, b| a.id.cmp(&b.id));
    // The body holds people's addresses: it is sent, never logged.
    axum::Json(Snapshot::of_teams(teams, missing)).into_response()
}

async fn snapshot_all(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SnapshotQuery>,
) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        return r;
    }
    let wanted = match query.teams.as_deref().map(team_list).transpose() {
        Ok(w) => w,
        Err(e) => return (StatusCode::BAD_REQUEST, e).into_response(),
    };
    snapshot_of(&s, wanted).await
}

async fn snapshot_team(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(team): Path<String>,
) -> Response {
    if let Some(r) = refusal(&s, &headers) {
        return r;
    }
    match team_list(&team) {
        Ok(ids) if ids.len() == 1 => snapshot_of(&s, Some(ids)).await,
        Ok(_) => (
            StatusCode::BAD_REQUEST,
            "name one team here; ask for several with /snapshot?teams=ID,ID\n",
        )
            .into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_lists_are_checked_deduplicated_and_bounded() {
        assert_eq!(
            team_list(" 2, 1,,2 ").unwrap(),
            vec![TeamId("1".into()), TeamId("2".into())]
        );
        assert!(team_list("").unwrap().is_empty());
        assert!(team_list("1,../etc").unwrap_err().contains("not a team id"));
        assert!(team_list(&"9".repeat(65)).is_err());
        let many: Vec<String> = (0..=MAX_TEAMS_PER_REQUEST).map(|i| i.to_string()).collect();
        assert!(team_list(&many.join(",")).unwrap_err().contains("at most"));
    }
}
